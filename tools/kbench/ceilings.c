/* The machine's ceilings, measured here rather than taken from a datasheet:
 * streaming read bandwidth with 1..N threads, fp32 FMA peak per ISA with 1 and
 * N threads, and the int8 dot-product peak of the Q8_0 path. Every ceiling is
 * the best of a few passes (a ceiling is what the machine can do, so noise
 * only ever lowers it). All threads run on the kernels' own pool, as the ops do. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "kbench.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int best_simd_isa(void)
{
    if (gpt2k_cpu_supports(GPT2K_ISA_AVX512) && kb_avx512_compiled())
        return GPT2K_ISA_AVX512;
    if (gpt2k_cpu_supports(GPT2K_ISA_AVX2))
        return GPT2K_ISA_AVX2;
    return GPT2K_ISA_SCALAR;
}

/* ---- read bandwidth ---- */

typedef struct bw_task {
    const char *buf;
    size_t bytes;
    int active;   /* > 0: threads that read equal whole 1 KiB steps, the others return
                   * at once (the ceiling); 0: every thread, every line (kb_read_split) */
    int isa;
    double sink[KB_MAX_THREADS];
} bw_task;

static double read_scalar(const float *p, size_t n)
{
    float a[8] = {0};
    for (size_t i = 0; i < n; i += 8) /* n % 8 == 0 */
        for (int k = 0; k < 8; k++)
            a[k] += p[i + k];
    return (double)a[0] + a[7];
}

/* p[0, bytes) (p 64-byte aligned, bytes % 64 == 0): the SIMD loops take whole
 * 1 KiB steps, the last lines (under 1 KiB) go through the plain loop. */
static double read_span(int isa, const char *p, size_t bytes)
{
    const size_t body = bytes / 1024 * 1024;
    const float *f = (const float *)p;
    double s = body == 0                 ? 0
             : isa == GPT2K_ISA_AVX512 ? kb_read_avx512(f, body / 4)
             : isa == GPT2K_ISA_AVX2   ? kb_read_avx2(f, body / 4)
                                       : read_scalar(f, body / 4);
    return s + read_scalar(f + body / 4, (bytes - body) / 4);
}

static void bw_fn(void *arg, int ith, int nth)
{
    bw_task *t = arg;
    size_t lo, hi;
    if (t->active == 0) {
        const size_t lines = t->bytes / 64;
        lo = lines * (size_t)ith / (size_t)nth * 64;
        hi = lines * (size_t)(ith + 1) / (size_t)nth * 64;
    } else {
        if (ith >= t->active)
            return;
        const size_t chunk = t->bytes / (size_t)t->active / 1024 * 1024;
        lo = chunk * (size_t)ith;
        hi = lo + chunk;
    }
    t->sink[ith] = read_span(t->isa, t->buf + lo, hi - lo);
}

double kb_read_bw(gpt2k_pool *pool, const float *buf, size_t n, int threads, int passes)
{
    bw_task *bt = calloc(1, sizeof *bt);
    if (!bt)
        return -1;
    bt->buf = (const char *)buf;
    bt->bytes = n * sizeof(float);
    bt->isa = best_simd_isa();
    bt->active = threads;
    const size_t per = n / (size_t)threads / 256 * 256; /* what the threads read in all */
    double best = 0;
    for (int p = 0; p < passes; p++) {
        double t0 = now_s();
        gpt2k_pool_run(pool, bw_fn, bt);
        double dt = now_s() - t0;
        double gbs = (double)per * (size_t)threads * sizeof(float) / dt / 1e9;
        if (dt > 0 && gbs > best)
            best = gbs;
    }
    free(bt);
    return best;
}

double kb_read_split(gpt2k_pool *pool, const void *p, size_t bytes)
{
    bw_task t; /* 2 KiB of sinks: the caller's stack, no allocation in a timed call */
    t.buf = p;
    t.bytes = bytes;
    t.active = 0;
    t.isa = best_simd_isa();
    const int nth = gpt2k_pool_size(pool);
    for (int i = 0; i < nth && i < KB_MAX_THREADS; i++)
        t.sink[i] = 0;
    gpt2k_pool_run(pool, bw_fn, &t);
    double s = 0;
    for (int i = 0; i < nth && i < KB_MAX_THREADS; i++)
        s += t.sink[i];
    return s;
}

/* ---- compute peaks ---- */

typedef struct peak_task {
    int active, kind; /* kind: 0 fp32 FMA, 1 int8 */
    int isa, vnni;
    long iters;
    double work[KB_MAX_THREADS], sink[KB_MAX_THREADS];
} peak_task;

static void peak_fn(void *arg, int ith, int nth)
{
    peak_task *t = arg;
    t->work[ith] = 0;
    if (ith >= t->active)
        return;
    double w = 0, s;
    if (t->kind == 0)
        s = t->isa == GPT2K_ISA_AVX512 ? kb_fma_avx512(t->iters, &w) : kb_fma_avx2(t->iters, &w);
    else
        s = t->isa == GPT2K_ISA_AVX512 ? kb_int8_avx512(t->iters, t->vnni, &w)
                                       : kb_int8_avx2(t->iters, &w);
    t->work[ith] = w;
    t->sink[ith] = s;
}

/* Best rate (G per s) of `passes` runs of about target_s each on `active` threads. */
static double peak(gpt2k_pool *pool, peak_task *t, int active, double target_s, int passes)
{
    t->active = active;
    t->iters = 20000; /* calibration: time a short run, scale to target_s */
    double t0 = now_s();
    gpt2k_pool_run(pool, peak_fn, t);
    double dt = now_s() - t0;
    if (dt > 0)
        t->iters = (long)(t->iters * (target_s / dt));
    if (t->iters < 1000)
        t->iters = 1000;
    double best = 0;
    for (int p = 0; p < passes; p++) {
        t0 = now_s();
        gpt2k_pool_run(pool, peak_fn, t);
        dt = now_s() - t0;
        double work = 0;
        for (int i = 0; i < active; i++)
            work += t->work[i];
        if (dt > 0 && work / dt / 1e9 > best)
            best = work / dt / 1e9;
    }
    return best;
}

static void empty_task(void *arg, int ith, int nth)
{
    (void)arg, (void)ith, (void)nth;
}

/* The cost of one gpt2k_pool_run that does nothing: waking the workers and
 * waiting for all of them, what every parallel op pays once. Median of runs
 * back to back (the workers still spinning, as between the ops of a token). */
static double pool_run_us(gpt2k_pool *pool)
{
    enum { WARM = 200, RUNS = 2001 };
    static double t[RUNS];
    for (int i = 0; i < WARM; i++)
        gpt2k_pool_run(pool, empty_task, NULL);
    for (int i = 0; i < RUNS; i++) {
        double t0 = now_s();
        gpt2k_pool_run(pool, empty_task, NULL);
        t[i] = now_s() - t0;
    }
    /* median by partial selection sort would do; RUNS is small: insertion sort */
    for (int i = 1; i < RUNS; i++)
        for (int j = i; j > 0 && t[j - 1] > t[j]; j--) {
            double x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    return t[RUNS / 2] * 1e6;
}

int kb_measure_ceilings(gpt2k_pool *pool, const kb_ceil_opts *o, kb_ceilings *c)
{
    memset(c, 0, sizeof *c);
    int N = gpt2k_pool_size(pool);
    if (N > KB_MAX_THREADS)
        N = KB_MAX_THREADS;
    c->max_threads = N;
    int passes = o->quick ? 3 : 5;
    double target = o->quick ? 0.03 : 0.2;

    /* bandwidth: a buffer far larger than any cache, touched first so page
     * faults are not measured, split evenly over the reading threads */
    size_t n = (size_t)(o->bw_mib * 1048576.0) / sizeof(float);
    size_t unit = 256 * (size_t)N;
    n = n / unit * unit;
    if (n == 0)
        n = unit;
    c->bw_buffer_mib = (double)n * sizeof(float) / 1048576.0;
    /* in 2 MiB pages where the kernel allows, as the engine keeps its packed
     * weights: with 4 KiB pages the TLB misses lower what a stream can read */
    const size_t buf_bytes = n * sizeof(float);
    float *buf = mmap(NULL, buf_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED)
        buf = NULL;
#ifdef MADV_HUGEPAGE
    if (buf)
        madvise(buf, buf_bytes, MADV_HUGEPAGE); /* advisory */
#endif
    if (!buf) {
        fprintf(stderr, "gpt2c-kbench: cannot allocate the %.0f MiB bandwidth buffer (--bw-mib)\n",
                c->bw_buffer_mib);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        buf[i] = 1.0f;
    for (int t = 1; t <= N; t++) {
        const double best = kb_read_bw(pool, buf, n, t, passes);
        if (best < 0) {
            munmap(buf, buf_bytes);
            return -1;
        }
        c->bw_gb_s[t] = best;
        fprintf(stderr, "gpt2c-kbench: read bandwidth, %d thread%s: %.1f GB/s\n", t, t > 1 ? "s" : "", best);
    }
    munmap(buf, buf_bytes);

    /* fp32 FMA per SIMD ISA, then the int8 path of the best one */
    peak_task *pt = calloc(1, sizeof *pt);
    if (!pt)
        return -1;
    for (int isa = GPT2K_ISA_AVX2; isa < GPT2K_ISA_COUNT; isa++) {
        if (!gpt2k_cpu_supports((gpt2k_isa)isa) || (isa == GPT2K_ISA_AVX512 && !kb_avx512_compiled()))
            continue;
        pt->kind = 0;
        pt->isa = isa;
        c->fma_gflop_s[isa][0] = peak(pool, pt, 1, target, passes);
        c->fma_gflop_s[isa][1] = peak(pool, pt, N, target, passes);
        fprintf(stderr, "gpt2c-kbench: fp32 FMA peak (%s): %.1f GFLOP/s on 1 thread, %.1f on %d\n",
                gpt2k_isa_name((gpt2k_isa)isa), c->fma_gflop_s[isa][0], c->fma_gflop_s[isa][1], N);
    }
    int isa = best_simd_isa();
    if (isa != GPT2K_ISA_SCALAR) {
        pt->kind = 1;
        pt->isa = isa;
        pt->vnni = isa == GPT2K_ISA_AVX512 && kb_cpu_has_vnni();
        snprintf(c->int8_kind, sizeof c->int8_kind, "%s", pt->vnni ? "vnni" : "maddubs");
        c->int8_gop_s[0] = peak(pool, pt, 1, target, passes);
        c->int8_gop_s[1] = peak(pool, pt, N, target, passes);
        fprintf(stderr, "gpt2c-kbench: int8 peak (%s %s): %.1f GOP/s on 1 thread, %.1f on %d\n",
                gpt2k_isa_name((gpt2k_isa)isa), c->int8_kind, c->int8_gop_s[0], c->int8_gop_s[1], N);
    }
    free(pt);
    c->pool_run_us = pool_run_us(pool);
    fprintf(stderr, "gpt2c-kbench: pool fork-join: %.2f us per run on %d threads\n", c->pool_run_us,
            N);
    return 0;
}
