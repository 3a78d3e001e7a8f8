#include "sysinfo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB (1024.0 * 1024.0)

/* Reads up to cap - 1 bytes of a (proc) file into buf, NUL-terminated.
 * Returns the length, or -1. No allocation. */
static long read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    return (long)len;
}

double rss_mb(void)
{
    char buf[256];
    if (read_small("/proc/self/statm", buf, sizeof buf) <= 0)
        return -1;
    /* "size resident shared text lib data dt", in pages */
    char *p = buf, *end;
    strtoul(p, &end, 10);
    if (end == p)
        return -1;
    p = end;
    unsigned long resident = strtoul(p, &end, 10);
    if (end == p)
        return -1;
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        return -1;
    return (double)resident * (double)page / MIB;
}

double peak_rss_mb(void)
{
    char buf[4096]; /* /proc/self/status is ~1.5 KB; VmHWM is in the first half */
    if (read_small("/proc/self/status", buf, sizeof buf) <= 0)
        return -1;
    const char *line = strstr(buf, "\nVmHWM:");
    if (!line)
        return -1;
    char *end;
    unsigned long kb = strtoul(line + 7, &end, 10);
    if (end == line + 7)
        return -1;
    return (double)kb / 1024.0;
}

int reset_peak_rss(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t w;
    do
        w = write(fd, "5", 1);
    while (w < 0 && errno == EINTR);
    close(fd);
    return w == 1;
}

int open_fds(void)
{
    int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    /* getdents64 into a stack buffer: opendir would malloc */
    _Alignas(8) char buf[4096];
    int count = 0;
    for (;;) {
        ssize_t n = getdents64(dfd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            close(dfd);
            return -1;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            const struct dirent64 *d = (const struct dirent64 *)(buf + off);
            if (d->d_name[0] != '.')
                count++;
            off += d->d_reclen;
        }
    }
    close(dfd);
    return count - 1; /* the descriptor dfd itself is listed */
}

double mem_total_mb(void)
{
    long pages = sysconf(_SC_PHYS_PAGES);
    long page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0)
        return -1;
    return (double)pages * (double)page / MIB;
}

int cores_online(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : -1;
}
