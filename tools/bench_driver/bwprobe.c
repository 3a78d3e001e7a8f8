/* The machine's read bandwidth, measured by the bench itself right before the
 * decode runs it is compared with: on a shared or virtual machine it moves by
 * tens of percent within minutes, so a figure taken earlier (gpt2c-kbench's)
 * is a loose yardstick. A child process reads the buffer, so neither its
 * memory nor its threads count in the bench's own RSS peak. */
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "kbench.h"

#define PROBE_MIB 256 /* far beyond any last-level cache */
#define PROBE_PASSES 5

/* In the child: gpt2c-kbench's read-bandwidth measurement (kb_read_bw) over a
 * fresh buffer, with a pool of `threads`. GB/s, or -1. */
static double probe_in_child(int threads)
{
    size_t n = ((size_t)PROBE_MIB << 20) / sizeof(float);
    n = n / (256 * (size_t)threads) * (256 * (size_t)threads);
    const size_t bytes = n * sizeof(float);
    float *buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED)
        return -1;
#ifdef MADV_HUGEPAGE
    madvise(buf, bytes, MADV_HUGEPAGE); /* as the engine keeps its weights */
#endif
    for (size_t i = 0; i < n; i++) /* touched: page faults are not measured */
        buf[i] = 1.0f;
    gpt2k_pool *pool = gpt2k_pool_create(threads);
    const double gbs = pool ? kb_read_bw(pool, buf, n, threads, PROBE_PASSES) : -1;
    gpt2k_pool_free(pool);
    munmap(buf, bytes);
    return gbs > 0 ? gbs : -1;
}

double bench_probe_read_bw(int threads)
{
    if (threads < 1)
        threads = 1;
    if (threads > KB_MAX_THREADS)
        threads = KB_MAX_THREADS;
    int fd[2];
    if (pipe(fd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return -1;
    }
    if (pid == 0) {
        close(fd[0]);
        double gbs = probe_in_child(threads);
        ssize_t w = write(fd[1], &gbs, sizeof gbs);
        _exit(w == (ssize_t)sizeof gbs ? 0 : 1);
    }
    close(fd[1]);
    double gbs = -1;
    ssize_t r = read(fd[0], &gbs, sizeof gbs);
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (r != (ssize_t)sizeof gbs || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    return gbs;
}
