/* The machine's read bandwidth, measured by the bench itself right before the
 * decode runs it is compared with: on a shared or virtual machine it moves by
 * tens of percent within minutes, so a figure taken earlier (gpt2c-kbench's)
 * is a loose yardstick. A child process reads the buffer, so neither its
 * memory nor its threads count in the bench's own RSS peak. */
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define PROBE_MIB 256 /* far beyond any last-level cache */
#define PROBE_PASSES 5
#define PROBE_MAX_THREADS 64

static volatile uint64_t probe_sink; /* the sums, so the reads stay */

typedef struct probe_arg {
    const uint64_t *p;
    size_t n; /* uint64 words, a multiple of 8 */
    uint64_t sum;
} probe_arg;

/* Four interleaved streams, two loads each per step (as gpt2c-kbench reads):
 * several streams keep more of the hardware prefetchers busy than one. Integer
 * sums, which the compiler may vectorize without changing the result. */
static uint64_t read_words(const uint64_t *p, size_t n)
{
    const size_t q = n / 4;
    const uint64_t *p0 = p, *p1 = p + q, *p2 = p + 2 * q, *p3 = p + 3 * q;
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t i = 0; i + 1 < q; i += 2) {
        a0 += p0[i] + p0[i + 1];
        a1 += p1[i] + p1[i + 1];
        a2 += p2[i] + p2[i + 1];
        a3 += p3[i] + p3[i + 1];
    }
    return a0 ^ a1 ^ a2 ^ a3;
}

static void *probe_thread(void *v)
{
    probe_arg *a = v;
    a->sum = read_words(a->p, a->n);
    return NULL;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* In the child: the best of PROBE_PASSES reads of the buffer by `threads`
 * threads, each its own contiguous part. GB/s, or -1. */
static double probe_in_child(int threads)
{
    const size_t bytes = (size_t)PROBE_MIB << 20;
    uint64_t *buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED)
        return -1;
#ifdef MADV_HUGEPAGE
    madvise(buf, bytes, MADV_HUGEPAGE); /* as the engine keeps its weights */
#endif
    const size_t words = bytes / sizeof(uint64_t);
    for (size_t i = 0; i < words; i++) /* touched: page faults are not measured */
        buf[i] = i;
    const size_t per = words / (size_t)threads / 8 * 8;
    probe_arg args[PROBE_MAX_THREADS];
    pthread_t tid[PROBE_MAX_THREADS];
    double best = -1;
    uint64_t check = 0;
    for (int pass = 0; pass < PROBE_PASSES; pass++) {
        double t0 = now_s();
        int started = 0;
        for (int t = 0; t < threads; t++) {
            args[t] = (probe_arg){buf + (size_t)t * per, per, 0};
            if (t > 0 && pthread_create(&tid[t], NULL, probe_thread, &args[t]) != 0)
                break;
            started = t + 1;
        }
        probe_thread(&args[0]); /* this thread reads the first part */
        for (int t = 1; t < started; t++)
            pthread_join(tid[t], NULL);
        double dt = now_s() - t0;
        for (int t = 0; t < started; t++)
            check ^= args[t].sum;
        double gbs = dt > 0 ? (double)per * (size_t)started * sizeof(uint64_t) / dt / 1e9 : -1;
        if (started == threads && gbs > best)
            best = gbs;
    }
    munmap(buf, bytes);
    probe_sink = check;
    return best;
}

double bench_probe_read_bw(int threads)
{
    if (threads < 1)
        threads = 1;
    if (threads > PROBE_MAX_THREADS)
        threads = PROBE_MAX_THREADS;
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
