/* Small helpers shared by the Check suites: where things are, running the
 * Python references, reading files, comparing float arrays, capping the
 * address space. Header-only. */
#ifndef GPT2C_TESTUTIL_H
#define GPT2C_TESTUTIL_H

#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static inline const char *tu_env(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

static inline const char *tu_src(void) { return tu_env("GPT2C_SOURCE_DIR", "."); }
static inline const char *tu_data(void) { return tu_env("GPT2C_TESTDATA", "/tmp"); }
static inline const char *tu_python(void) { return tu_env("GPT2C_PYTHON", "python3"); }

/* snprintf into a static ring of buffers: tu_path("%s/x", dir) */
static inline const char *tu_fmt(const char *fmt, ...)
{
    static char ring[8][1024];
    static int next;
    char *b = ring[next++ & 7];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof ring[0], fmt, ap);
    va_end(ap);
    return b;
}

/* Runs a shell command; fails the test (with the command) if it exits non-zero. */
static inline void tu_run(const char *cmd)
{
    int rc = system(cmd);
    ck_assert_msg(rc == 0, "command failed (status %d): %s", rc, cmd);
}

/* Runs tests/reference/<script> with the Python that has NumPy. */
static inline void tu_python_ref(const char *script, const char *args)
{
    tu_run(tu_fmt("%s %s/tests/reference/%s %s", tu_python(), tu_src(), script, args));
}

static inline void *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    ck_assert(buf != NULL);
    ck_assert_msg(fread(buf, 1, (size_t)n, f) == (size_t)n, "short read of %s", path);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static inline int tu_file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* No file named path, nor any "<path>.tmp*" a writer would leave behind. */
static inline void tu_assert_no_output(const char *path)
{
    ck_assert_msg(!tu_file_exists(path), "%s exists after a failed run", path);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    ck_assert(slash != NULL);
    *slash = 0;
    const char *base = slash + 1;
    DIR *d = opendir(dir);
    ck_assert(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)))
        ck_assert_msg(strncmp(e->d_name, base, strlen(base)) != 0,
                      "leftover '%s' in %s after a failed run", e->d_name, dir);
    closedir(d);
}

typedef struct tu_diff {
    double max_abs;  /* max |a - b| */
    double max_rel;  /* max |a - b| / |b| over elements with |b| > 1e-3 * max|b| */
    double ref_max;  /* max |b| */
    long worst;      /* index of the worst violation of the tolerance (-1: none) */
    long n_bad;
} tu_diff;

/* Compares got against ref with |got - ref| <= atol + rtol * |ref|. */
static inline tu_diff tu_compare(const float *got, const float *ref, long n, double atol,
                                 double rtol)
{
    tu_diff d = {0, 0, 0, -1, 0};
    for (long i = 0; i < n; i++)
        if (fabs(ref[i]) > d.ref_max)
            d.ref_max = fabs(ref[i]);
    double worst_excess = 0;
    for (long i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]);
        if (!(e == e) || isinf(got[i]))
            e = INFINITY;
        if (e > d.max_abs)
            d.max_abs = e;
        if (fabs(ref[i]) > 1e-3 * d.ref_max && e / fabs(ref[i]) > d.max_rel)
            d.max_rel = e / fabs(ref[i]);
        double excess = e - (atol + rtol * fabs(ref[i]));
        if (excess > 0) {
            d.n_bad++;
            if (excess > worst_excess || d.worst < 0) {
                worst_excess = excess;
                d.worst = i;
            }
        }
    }
    return d;
}

/* ---- address-space cap ----------------------------------------------------- */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TU_CAN_LIMIT_MEMORY 0 /* the sanitizers reserve terabytes of address space */
#else
#define TU_CAN_LIMIT_MEMORY 1
#endif

/* Caps the address space at what the process maps now plus `extra` bytes, so
 * an allocation sized from an absurd header claim fails (NULL, then a NOMEM
 * that the test's message checks catch) instead of succeeding lazily. For a
 * test run in its own process (CK_FORK); tu_unlimit_memory restores. Does
 * nothing under ASan or TSan. Returns 1 when a cap is in place. */
static inline int tu_limit_memory(unsigned long long extra, struct rlimit *old)
{
    getrlimit(RLIMIT_AS, old);
    if (!TU_CAN_LIMIT_MEMORY)
        return 0;
    unsigned long long pages = 0;
    FILE *fp = fopen("/proc/self/statm", "r");
    if (fp) {
        if (fscanf(fp, "%llu", &pages) != 1)
            pages = 0;
        fclose(fp);
    }
    if (!pages)
        return 0;
    struct rlimit lim = *old;
    lim.rlim_cur = (rlim_t)(pages * (unsigned long long)sysconf(_SC_PAGESIZE) + extra);
    if (old->rlim_cur != RLIM_INFINITY && old->rlim_cur <= lim.rlim_cur)
        return 0;
    return setrlimit(RLIMIT_AS, &lim) == 0;
}

static inline void tu_unlimit_memory(const struct rlimit *old) { setrlimit(RLIMIT_AS, old); }

#endif
