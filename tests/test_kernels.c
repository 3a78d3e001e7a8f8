/* Kernel tests: every op of every ISA table this CPU can run, against the plain
 * C reference (kernels/ops_ref.c) and, for the reference itself, against a
 * double-precision oracle written here. Shapes are ragged on purpose (K not a
 * multiple of any vector width, odd N, sub-ranges [n0, n1), padded strides),
 * outputs sit between guard values, and inputs a kernel must not read are NaN
 * so using them shows up in the result. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "kernel_testutil.h"
#include "kernels.h"

#define TIMEOUT_S 300        /* per test case; ASan builds are ~10x slower */

/* ---- helpers ------------------------------------------------------------------- */

static float *falloc(size_t n)
{
    return xmalloc(n * sizeof(float));
}

static void ffill(float *p, size_t n, float v)
{
    for (size_t i = 0; i < n; i++)
        p[i] = v;
}

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ISA tables to test beside the reference: those this CPU runs. */
static const gpt2k_ops *g_simd[GPT2K_ISA_COUNT];
static int g_nsimd;

static void find_isas(void)
{
    for (int i = GPT2K_ISA_SCALAR + 1; i < GPT2K_ISA_COUNT; i++) {
        const gpt2k_ops *o = gpt2k_ops_for((gpt2k_isa)i);
        if (o)
            g_simd[g_nsimd++] = o;
        else
            printf("test_kernels: SKIP isa %s: %s\n", gpt2k_isa_name((gpt2k_isa)i),
                   gpt2k_cpu_supports((gpt2k_isa)i) ? "not compiled in"
                                                    : "not supported by this CPU/OS");
    }
    printf("test_kernels: testing isa scalar");
    for (int i = 0; i < g_nsimd; i++)
        printf(" %s", gpt2k_isa_name(g_simd[i]->isa));
    printf("\n");
    fflush(stdout);
}

/* Fails unless |got[i] - want[i]| <= tol[i] (tol == NULL: exact, bit for bit
 * up to the sign of zero) for all i. The message names the first bad element
 * as [i / width][i % width], its values, and the largest difference. */
static void expect_close(const float *got, const float *want, const double *tol, size_t n,
                         size_t width, const char *fmt, ...)
{
    size_t nbad = 0, first = 0;
    double maxd = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (isnan(got[i]) || isnan(want[i]))
            d = isnan(got[i]) && isnan(want[i]) ? 0.0 : INFINITY;
        if (d > maxd)
            maxd = d;
        if (!(d <= (tol ? tol[i] : 0.0))) {
            if (nbad == 0)
                first = i;
            nbad++;
        }
    }
    if (nbad == 0)
        return;
    char ctx[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    if (width == 0)
        width = 1;
    ck_abort_msg("%s: %zu of %zu values differ; first at [%zu][%zu]: got %.9g want %.9g "
                 "(|diff| %.3g > tol %.3g); max |diff| %.3g",
                 ctx, nbad, n, first / width, first % width, got[first], want[first],
                 fabs((double)got[first] - want[first]), tol ? tol[first] : 0.0, maxd);
}

/* Fails if any buf[i] outside the region (in_region(i) != 0) lost its sentinel. */
static void expect_guards(const float *buf, size_t n, int (*in_region)(size_t i, const void *c),
                          const void *c, const char *ctx)
{
    for (size_t i = 0; i < n; i++)
        if (!in_region(i, c) && fbits(buf[i]) != fbits(SENTINEL))
            ck_abort_msg("%s: guard/padding value at buffer index %zu overwritten with %.9g", ctx,
                         i, buf[i]);
}

/* ---- matmul -------------------------------------------------------------------- */

typedef struct {
    int M, ldo, n0, n1;
} mm_region;

static int mm_in_region(size_t i, const void *c)
{
    const mm_region *r = c;
    if (i < GUARD)
        return 0;
    i -= GUARD;
    size_t m = i / r->ldo, n = i % r->ldo;
    return m < (size_t)r->M && n >= (size_t)r->n0 && n < (size_t)r->n1;
}

typedef struct {
    int wf16, M, K, N, n0, n1, ldi, ldo, bias, acc;
} mm_case;

/* Runs one op on a fresh guarded output; returns the [M][n1-n0] results.
 * wp: the same weights packed (gpt2k_pack_weights): run ops->matmul_packed. */
static void mm_run(const gpt2k_ops *ops, const mm_case *c, const float *in, const void *w,
                   const void *wp, const float *bias, const float *prev, float *res,
                   const char *ctx)
{
    size_t nbuf = GUARD + (size_t)c->M * c->ldo + GUARD;
    float *buf = falloc(nbuf);
    ffill(buf, nbuf, SENTINEL);
    float *out = buf + GUARD;
    int W = c->n1 - c->n0;
    for (int m = 0; m < c->M; m++)
        for (int j = 0; j < W; j++)
            out[(size_t)m * c->ldo + c->n0 + j] = prev[(size_t)m * W + j];
    if (wp)
        ops->matmul_packed(out, c->ldo, in, c->ldi, wp, c->wf16 ? GPT2K_W_F16 : GPT2K_W_F32,
                           c->bias ? bias : NULL, c->M, c->K, c->n0, c->n1, c->acc);
    else if (c->wf16)
        ops->matmul_f16(out, c->ldo, in, c->ldi, w, c->bias ? bias : NULL, c->M, c->K, c->n0, c->n1,
                        c->acc);
    else
        ops->matmul_f32(out, c->ldo, in, c->ldi, w, c->bias ? bias : NULL, c->M, c->K, c->n0, c->n1,
                        c->acc);
    mm_region r = {c->M, c->ldo, c->n0, c->n1};
    expect_guards(buf, nbuf, mm_in_region, &r, ctx);
    for (int m = 0; m < c->M; m++)
        for (int j = 0; j < W; j++)
            res[(size_t)m * W + j] = out[(size_t)m * c->ldo + c->n0 + j];
    free(buf);
}

static void check_matmul_case(const mm_case *c)
{
    const int M = c->M, K = c->K, N = c->N, W = c->n1 - c->n0;
    float *in = falloc((size_t)M * c->ldi + 1);
    float *wf = falloc((size_t)N * K + 1);
    uint16_t *wh = xmalloc(((size_t)N * K + 1) * sizeof(uint16_t));
    float *bias = falloc((size_t)N + 1), *prev = falloc((size_t)M * W + 1);
    float *want = falloc((size_t)M * W + 1), *got_ref = falloc((size_t)M * W + 1);
    float *got = falloc((size_t)M * W + 1);
    double *tol = xmalloc(((size_t)M * W + 1) * sizeof(double));

    /* Padding of in and weight rows / bias entries outside [n0, n1) are NaN:
     * a kernel that reads and uses them produces NaN. */
    for (int m = 0; m < M; m++)
        for (int k = 0; k < c->ldi; k++)
            in[(size_t)m * c->ldi + k] = k < K ? urand(-1, 1) : NAN;
    for (int n = 0; n < N; n++) {
        int live = n >= c->n0 && n < c->n1;
        for (int k = 0; k < K; k++) {
            size_t i = (size_t)n * K + k;
            wh[i] = live ? gpt2k_f32_to_f16(urand(-1, 1)) : 0x7e00;
            wf[i] = live ? urand(-1, 1) : NAN;
        }
        bias[n] = live ? urand(-1, 1) : NAN;
    }
    for (size_t i = 0; i < (size_t)M * W; i++)
        prev[i] = urand(-2, 2);

    /* Oracle in double. Tolerance: each float result is some reordering of
     * the same K+2 terms; reassociated fp32 sums differ by a random walk of
     * roundings, each <= eps/2 of a partial sum bounded by S = sum|terms|, so
     * ~eps*sqrt(K)*S. The factor 2 (two results compared) and +2 (bias, prev)
     * keep a wide margin; a dropped or doubled term still shows, because S
     * grows like K while the bound only like sqrt(K). */
    const double rtol = 2.0 * FLT_EPSILON * (sqrt((double)K) + 2.0);
    for (int m = 0; m < M; m++)
        for (int j = 0; j < W; j++) {
            int n = c->n0 + j;
            double s = 0.0, S = 0.0;
            for (int k = 0; k < K; k++) {
                double wk =
                    c->wf16 ? gpt2k_f16_to_f32(wh[(size_t)n * K + k]) : wf[(size_t)n * K + k];
                double t = in[(size_t)m * c->ldi + k] * wk;
                s += t;
                S += fabs(t);
            }
            if (c->bias) {
                s += bias[n];
                S += fabs(bias[n]);
            }
            if (c->acc) {
                s += prev[(size_t)m * W + j];
                S += fabs(prev[(size_t)m * W + j]);
            }
            want[(size_t)m * W + j] = (float)s;
            tol[(size_t)m * W + j] = rtol * S + FLT_MIN;
        }

    const void *w = c->wf16 ? (const void *)wh : (const void *)wf;
    char ctx[200];
    snprintf(ctx, sizeof ctx, "matmul_%s M=%d K=%d N=%d n=[%d,%d) ldi=%d ldo=%d bias=%d acc=%d",
             c->wf16 ? "f16" : "f32", M, K, N, c->n0, c->n1, c->ldi, c->ldo, c->bias, c->acc);
    char ctx2[260];
    snprintf(ctx2, sizeof ctx2, "%s [scalar vs double oracle]", ctx);
    mm_run(gpt2k_ops_ref(), c, in, w, NULL, bias, prev, got_ref, ctx2);
    expect_close(got_ref, want, tol, (size_t)M * W, (size_t)W, "%s", ctx2);
    /* The packed layout of the whole matrix (its NaN rows outside [n0, n1)
     * included: they share panels with live columns and must not leak). */
    const gpt2k_wtype wt = c->wf16 ? GPT2K_W_F16 : GPT2K_W_F32;
    void *wp = xmalloc(gpt2k_packed_bytes(wt, N, K) + 64);
    gpt2k_pack_weights(wp, w, wt, N, K);
    float *got_p = falloc((size_t)M * W + 1);
    for (int i = 0; i < g_nsimd; i++) {
        snprintf(ctx2, sizeof ctx2, "%s [%s vs scalar]", ctx, gpt2k_isa_name(g_simd[i]->isa));
        mm_run(g_simd[i], c, in, w, NULL, bias, prev, got, ctx2);
        expect_close(got, got_ref, tol, (size_t)M * W, (size_t)W, "%s", ctx2);
        /* packed weights: the same sums in the same order, so the same bits */
        if (g_simd[i]->matmul_packed && c->n0 % GPT2K_PANEL == 0) {
            snprintf(ctx2, sizeof ctx2, "%s [%s packed vs plain]", ctx,
                     gpt2k_isa_name(g_simd[i]->isa));
            mm_run(g_simd[i], c, in, w, wp, bias, prev, got_p, ctx2);
            for (size_t j = 0; j < (size_t)M * W; j++)
                ck_assert_msg(memcmp(&got_p[j], &got[j], sizeof(float)) == 0,
                              "%s: result %zu is %.9g, plain layout %.9g", ctx2, j, got_p[j],
                              got[j]);
        }
    }
    free(wp), free(got_p);
    free(in), free(wf), free(wh), free(bias), free(prev), free(want), free(got_ref), free(got);
    free(tol);
}

static const int K_LIST[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 64, 100, 768};
#define NK_LIST ((int)(sizeof K_LIST / sizeof K_LIST[0]))
static const int M_LIST[] = {1, 2, 3, 4, 5, 7, 16, 33, 64, 65};
#define NM_LIST ((int)(sizeof M_LIST / sizeof M_LIST[0]))
/* N, n0, n1: single column, full odd/even widths, interior sub-ranges, and
 * ranges wide enough for the streamed tiles (up to 64 rows) that read runs
 * of panels side by side (with units left over, and a partial last panel).
 * M: 64 and 65 are the last streamed and the first prefill row counts. */
static const int N_LIST[][3] = {{1, 0, 1}, {19, 0, 19},   {40, 5, 37},
                                {48, 16, 48}, {6, 0, 6}, {160, 0, 160}, {300, 16, 299}};
#define NN_LIST ((int)(sizeof N_LIST / sizeof N_LIST[0]))

static void matmul_sweep(int wf16, int K)
{
    int variant = 0;
    for (int mi = 0; mi < NM_LIST; mi++)
        for (int ni = 0; ni < NN_LIST; ni++)
            for (int flags = 0; flags < 4; flags++, variant++) {
                if (N_LIST[ni][0] > 64 && M_LIST[mi] > 16)
                    continue; /* wide ranges: the runs of the streamed tiles, which
                               * 4-16 rows walk as 17-64 do (more row tiles) */
                mm_case c = {wf16,          M_LIST[mi],    K, N_LIST[ni][0],
                             N_LIST[ni][1], N_LIST[ni][2], K, N_LIST[ni][0],
                             flags & 1,     flags >> 1};
                /* Every other case pads the strides (odd amounts: misaligned rows). */
                if (variant & 1) {
                    c.ldi = K + 5;
                    c.ldo = c.N + 3;
                }
                check_matmul_case(&c);
            }
}

START_TEST(test_matmul_f32_sweep)
{
    matmul_sweep(0, K_LIST[_i]);
}
END_TEST

START_TEST(test_matmul_f16_sweep)
{
    matmul_sweep(1, K_LIST[_i]);
}
END_TEST

/* Shapes past the small-M (GEMV) path and past one cache block in K and M. */
START_TEST(test_matmul_blocked)
{
    static const mm_case cases[] = {
        {0, 130, 1100, 37, 3, 37, 1103, 40, 1, 0},
        {1, 130, 1100, 37, 3, 37, 1100, 37, 1, 1},
        {0, 64, 3072, 20, 0, 20, 3072, 21, 0, 1},
        {1, 64, 3072, 20, 0, 20, 3075, 20, 1, 0},
        {0, 5, 2000, 50, 1, 50, 2000, 50, 1, 1},
        {1, 6, 2001, 50, 0, 49, 2003, 51, 0, 0},
        {0, 257, 513, 9, 0, 9, 513, 9, 1, 0},
        /* N past one column block, with K blocks too, odd sub-range */
        {0, 20, 300, 250, 5, 250, 301, 253, 1, 1},
        {1, 40, 1600, 200, 7, 199, 1600, 200, 1, 0},
        {0, 37, 1600, 200, 0, 200, 1601, 200, 0, 1},
        {1, 9, 0, 5, 0, 5, 1, 5, 1, 0}, /* K = 0: out = bias */
        {0, 1, 0, 5, 0, 5, 1, 5, 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_matmul_case(&cases[i]);
}
END_TEST

/* The AVX-512 table's fp matmuls against the AVX2 table's, bit for bit over
 * the whole output buffer (columns outside [n0, n1) and padding must stay as
 * they were): both compute each result as the same FMA chain (see
 * kernels/matmul_avx512.c), so any difference is a changed order of the sum,
 * a lost or doubled term or a wrong column. The shapes cross every path of
 * both kernels: 1-3 rows (decode) and the prefill tiles (rows dealt out to
 * tiles of 4-8), ragged panels and groups of 3 panels, K blocks and their
 * tails, K = 0; N, flags and strides rotate with M. Small on purpose: it runs
 * on the emulator (tools/avx512_emu), some 300x slower than the host. */
START_TEST(test_matmul_avx512_vs_avx2)
{
    const gpt2k_ops *t2 = NULL, *t512 = NULL;
    for (int i = 0; i < g_nsimd; i++) {
        if (g_simd[i]->isa == GPT2K_ISA_AVX2)
            t2 = g_simd[i];
        if (g_simd[i]->isa == GPT2K_ISA_AVX512)
            t512 = g_simd[i];
    }
    if (!t2 || !t512) {
        printf("test_kernels: SKIP matmul avx512 vs avx2: the %s table is not tested here\n",
               t2 ? "avx512" : "avx2");
        return;
    }
    static const int Ms[] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                             12, 13, 14, 15, 16, 17, 18, 19, 20, 64, 67};
    static const int Ns[] = {1, 15, 17, 33, 50, 100};
    static const int Ks[] = {0, 1, 7, 64, 255, 257, 768};
    const int nM = (int)(sizeof Ms / sizeof Ms[0]), nN = (int)(sizeof Ns / sizeof Ns[0]);
    const int Mmax = 67, Nmax = 100, pad = 5;
    for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++)
        for (int wf16 = 0; wf16 < 2; wf16++) {
            const int K = Ks[ki];
            const gpt2k_wtype wt = wf16 ? GPT2K_W_F16 : GPT2K_W_F32;
            /* one matrix per K and type; a case uses its first N rows */
            float *in = falloc((size_t)Mmax * (K + pad) + 1), *wf = falloc((size_t)Nmax * K + 1);
            uint16_t *wh = xmalloc(((size_t)Nmax * K + 1) * sizeof(uint16_t));
            float *bias = falloc(Nmax);
            for (size_t i = 0; i < (size_t)Mmax * (K + pad); i++)
                in[i] = urand(-1, 1);
            for (size_t i = 0; i < (size_t)Nmax * K; i++) {
                wf[i] = urand(-1, 1);
                wh[i] = gpt2k_f32_to_f16(wf[i]);
            }
            for (int n = 0; n < Nmax; n++)
                bias[n] = urand(-1, 1);
            const void *w = wf16 ? (const void *)wh : (const void *)wf;
            for (int mi = 0; mi < nM; mi++) {
                const int v = mi + 3 * (int)ki + wf16, M = Ms[mi], N = Ns[(mi + (int)ki) % nN];
                const int has_bias = v & 1, acc = (v >> 1) & 1, sub = (v >> 2) & 1;
                const int ldi = (v >> 3) & 1 ? K + pad : K, ldo = (v >> 3) & 1 ? N + pad : N;
                /* a thread's range: n0 on a panel, n1 short of N */
                const int n0 = sub && N > 16 ? 16 : 0, n1 = sub && N - n0 > 1 ? N - 1 : N;
                void *wp = xmalloc(gpt2k_packed_bytes(wt, N, K) + 64);
                gpt2k_pack_weights(wp, w, wt, N, K);
                const size_t nout = (size_t)M * ldo;
                float *want = falloc(nout), *got = falloc(nout), *start = falloc(nout);
                for (size_t i = 0; i < nout; i++)
                    start[i] = urand(-2, 2);
                const float *b = has_bias ? bias : NULL;
                memcpy(want, start, nout * sizeof(float));
                t2->matmul_packed(want, ldo, in, ldi, wp, wt, b, M, K, n0, n1, acc);
                for (int path = 0; path < 2; path++) {
                    memcpy(got, start, nout * sizeof(float));
                    if (path == 0)
                        t512->matmul_packed(got, ldo, in, ldi, wp, wt, b, M, K, n0, n1, acc);
                    else if (wf16)
                        t512->matmul_f16(got, ldo, in, ldi, wh, b, M, K, n0, n1, acc);
                    else
                        t512->matmul_f32(got, ldo, in, ldi, wf, b, M, K, n0, n1, acc);
                    for (size_t i = 0; i < nout; i++)
                        CHECK(memcmp(&got[i], &want[i], sizeof(float)) == 0,
                              "avx512 %s %s M=%d K=%d N=%d n=[%d,%d) ldi=%d ldo=%d bias=%d "
                              "acc=%d: out[%zu][%zu] = %.9g, avx2 %.9g",
                              path ? "plain" : "packed", wf16 ? "f16" : "f32", M, K, N, n0, n1,
                              ldi, ldo, has_bias, acc, i / ldo, i % ldo, got[i], want[i]);
                }
                free(wp), free(want), free(got), free(start);
            }
            free(in), free(wf), free(wh), free(bias);
        }
}
END_TEST

/* ---- layernorm ------------------------------------------------------------------- */

typedef struct {
    int off, n;
} span_region;

static int span_in_region(size_t i, const void *c)
{
    const span_region *r = c;
    return i >= (size_t)r->off && i < (size_t)(r->off + r->n);
}

static const int C_LIST[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 64, 100, 768, 1600};
#define NC_LIST ((int)(sizeof C_LIST / sizeof C_LIST[0]))

START_TEST(test_layernorm)
{
    const int C = C_LIST[_i];
    const float offsets[] = {0.0f, 5.0f, -300.0f};
    const float spreads[] = {1.0f, 1e-3f, 0.0f}; /* 0: constant row, var = 0 */
    const float eps = 1e-5f;
    float *x = falloc(C), *g = falloc(C), *b = falloc(C), *want = falloc(C);
    float *buf = falloc(C + 2 * GUARD), *got_ref = falloc(C);
    double *tol = xmalloc(C * sizeof(double));
    for (int oi = 0; oi < 3; oi++)
        for (int si = 0; si < 3; si++)
            for (int inplace = 0; inplace < 2; inplace++) {
                for (int i = 0; i < C; i++) {
                    x[i] = offsets[oi] + spreads[si] * urand(-1, 1);
                    g[i] = urand(0.5f, 1.5f);
                    b[i] = urand(-1, 1);
                }
                /* Oracle in double. The only float roundings left in any
                 * implementation are the final xhat*g + b and the float
                 * mean/var's few ulps; 8 eps of the terms' size covers them. */
                double mean = 0, var = 0;
                for (int i = 0; i < C; i++)
                    mean += x[i];
                mean /= C;
                for (int i = 0; i < C; i++)
                    var += (x[i] - mean) * (x[i] - mean);
                var /= C;
                double rstd = 1.0 / sqrt(var + eps);
                for (int i = 0; i < C; i++) {
                    double xh = (x[i] - mean) * rstd;
                    want[i] = (float)(xh * g[i] + b[i]);
                    tol[i] = 8.0 * FLT_EPSILON * (fabs(xh * g[i]) + fabs(b[i])) + FLT_MIN;
                }
                for (int t = -1; t < g_nsimd; t++) {
                    const gpt2k_ops *ops = t < 0 ? gpt2k_ops_ref() : g_simd[t];
                    char ctx[160];
                    snprintf(ctx, sizeof ctx, "layernorm %s C=%d offset=%g spread=%g inplace=%d",
                             gpt2k_isa_name(ops->isa), C, offsets[oi], spreads[si], inplace);
                    ffill(buf, C + 2 * GUARD, SENTINEL);
                    float *out = buf + GUARD;
                    if (inplace) {
                        memcpy(out, x, C * sizeof(float));
                        ops->layernorm(out, out, g, b, C, eps);
                    } else {
                        ops->layernorm(out, x, g, b, C, eps);
                    }
                    span_region r = {GUARD, C};
                    expect_guards(buf, C + 2 * GUARD, span_in_region, &r, ctx);
                    expect_close(out, want, tol, C, C, "%s", ctx);
                    if (t < 0)
                        memcpy(got_ref, out, C * sizeof(float));
                    else /* and against the scalar table, same tolerance */
                        expect_close(out, got_ref, tol, C, C, "%s vs scalar", ctx);
                }
            }
    free(x), free(g), free(b), free(want), free(buf), free(got_ref), free(tol);
}
END_TEST

/* ---- gelu ------------------------------------------------------------------------ */

static const int NV_LIST[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 64, 100, 768, 3072};
#define NNV_LIST ((int)(sizeof NV_LIST / sizeof NV_LIST[0]))

static double gelu_oracle(double v)
{
    return 0.5 * v * (1.0 + tanh(0.79788456080286535588 * (v + 0.044715 * v * v * v)));
}

START_TEST(test_gelu)
{
    const int n = NV_LIST[_i];
    static const float special[] = {0.0f,  -0.0f,  1e-30f, -1e-30f, 1e-6f, -1e-6f,
                                    0.5f,  -0.5f,  3.0f,   -3.0f,   9.0f,  -9.0f,
                                    20.0f, -20.0f, 60.0f,  -60.0f,  1e4f,  -1e4f};
    const int nspec = (int)(sizeof special / sizeof special[0]);
    float *x = falloc(n), *want = falloc(n), *buf = falloc(n + 2 * GUARD);
    double *tol = xmalloc(n * sizeof(double));
    for (int rep = 0; rep < 3; rep++) {
        for (int i = 0; i < n; i++)
            x[i] = (rep == 0 && i < nspec) ? special[(i + n) % nspec] : urand(-10, 10);
        /* 2e-6 relative: the vector exp is good to ~2 ulp, but its argument
         * -2u carries a float rounding of |2u| eps, ~1e-6 relative at x ~ -6.
         * Further left the output is below 1e-9 and the absolute part takes
         * over; nothing downstream can see a 1e-9 difference. */
        for (int i = 0; i < n; i++) {
            double o = gelu_oracle(x[i]);
            want[i] = (float)o;
            tol[i] = 1e-9 + 2e-6 * fabs(o);
        }
        for (int t = -1; t < g_nsimd; t++) {
            const gpt2k_ops *ops = t < 0 ? gpt2k_ops_ref() : g_simd[t];
            ffill(buf, n + 2 * GUARD, SENTINEL);
            memcpy(buf + GUARD, x, n * sizeof(float));
            ops->gelu(buf + GUARD, n);
            char ctx[96];
            snprintf(ctx, sizeof ctx, "gelu %s n=%d rep=%d", gpt2k_isa_name(ops->isa), n, rep);
            span_region r = {GUARD, n};
            expect_guards(buf, n + 2 * GUARD, span_in_region, &r, ctx);
            expect_close(buf + GUARD, want, tol, n, n, "%s", ctx);
        }
    }
    free(x), free(want), free(buf), free(tol);
}
END_TEST

/* Dense sweep of the range that matters, one value per ~1e-4. */
START_TEST(test_gelu_dense)
{
    const int n = 200001;
    float *x = falloc(n), *y = falloc(n);
    for (int t = 0; t < g_nsimd; t++) {
        for (int i = 0; i < n; i++)
            x[i] = y[i] = -12.0f + 24.0f * (float)i / (n - 1);
        g_simd[t]->gelu(y, n);
        double worst = 0;
        int wi = 0;
        for (int i = 0; i < n; i++) {
            double o = gelu_oracle(x[i]);
            double excess = fabs(y[i] - o) / (1e-9 + 2e-6 * fabs(o));
            if (excess > worst)
                worst = excess, wi = i;
        }
        ck_assert_msg(worst <= 1.0,
                      "gelu %s dense: x=%.9g got %.9g want %.9g (error %.3g of tolerance)",
                      gpt2k_isa_name(g_simd[t]->isa), x[wi], y[wi], gelu_oracle(x[wi]), worst);
    }
    free(x), free(y);
}
END_TEST

/* ---- add ----------------------------------------------------------------------------- */

START_TEST(test_add)
{
    const int n = NV_LIST[_i];
    float *a = falloc(n), *b = falloc(n), *want = falloc(n), *buf = falloc(n + 2 * GUARD);
    for (int i = 0; i < n; i++) {
        a[i] = urand(-100, 100);
        b[i] = urand(-1, 1);
        want[i] = a[i] + b[i]; /* one rounding: every correct kernel agrees bit for bit */
    }
    for (int t = -1; t < g_nsimd; t++) {
        const gpt2k_ops *ops = t < 0 ? gpt2k_ops_ref() : g_simd[t];
        for (int alias = 0; alias < 3; alias++) { /* out separate, out == a, out == b */
            ffill(buf, n + 2 * GUARD, SENTINEL);
            float *out = buf + GUARD;
            if (alias == 0) {
                ops->add(out, a, b, n);
            } else if (alias == 1) {
                memcpy(out, a, n * sizeof(float));
                ops->add(out, out, b, n);
            } else {
                memcpy(out, b, n * sizeof(float));
                ops->add(out, a, out, n);
            }
            char ctx[96];
            snprintf(ctx, sizeof ctx, "add %s n=%d alias=%d", gpt2k_isa_name(ops->isa), n, alias);
            span_region r = {GUARD, n};
            expect_guards(buf, n + 2 * GUARD, span_in_region, &r, ctx);
            expect_close(out, want, NULL, n, n, "%s", ctx);
        }
    }
    free(a), free(b), free(want), free(buf);
}
END_TEST

/* ---- argmax ---------------------------------------------------------------------------- */

/* The oracle, written from the contract rather than as the scan: NaN at 0
 * gives 0; otherwise the first index holding the largest non-NaN value. */
static int argmax_oracle(const float *x, int n)
{
    if (isnan(x[0]))
        return 0;
    float mx = x[0];
    for (int i = 1; i < n; i++)
        if (!isnan(x[i]) && x[i] > mx)
            mx = x[i];
    for (int i = 0; i < n; i++)
        if (x[i] == mx)
            return i;
    return -1;
}

START_TEST(test_argmax)
{
    static const int ns[] = {1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 100, 1023, 50257};
    float *x = falloc(50257);
    for (size_t in = 0; in < sizeof ns / sizeof ns[0]; in++) {
        const int n = ns[in];
        for (int pat = 0; pat < 10; pat++) {
            for (int i = 0; i < n; i++)
                x[i] = urand(-30, 30);
            const int p = (int)(rand_u64() % (uint64_t)n), q = (int)(rand_u64() % (uint64_t)n);
            switch (pat) {
            case 1: x[n - 1] = 99; break;                       /* last (a vector tail) */
            case 2: x[0] = 99; break;                           /* first */
            case 3: x[p] = x[q] = 99; break;                    /* a tie: the first wins */
            case 4: x[p] = NAN, x[q] = 99; break;               /* NaN elsewhere */
            case 5: x[0] = NAN; break;                          /* NaN first: 0 */
            case 6:                                             /* +-0 above negatives */
                for (int i = 0; i < n; i++)
                    x[i] = -1.0f - (float)(i % 5);
                x[p] = -0.0f, x[q] = 0.0f;
                break;
            case 7:                                             /* all equal */
                for (int i = 0; i < n; i++)
                    x[i] = 2.5f;
                break;
            case 8:                                             /* -inf and NaN but one */
                for (int i = 0; i < n; i++)
                    x[i] = i % 3 ? -INFINITY : NAN;
                x[0] = -INFINITY, x[p] = -1e30f;
                break;
            case 9: /* NaN after the max to the end: the last loads of every lane */
                x[p] = 99;
                for (int i = p + 1; i < n; i++)
                    x[i] = NAN;
                break;
            }
            const int want = argmax_oracle(x, n);
            for (int t = -1; t < g_nsimd; t++) {
                const gpt2k_ops *ops = t < 0 ? gpt2k_ops_ref() : g_simd[t];
                const int got = ops->argmax(x, n);
                ck_assert_msg(got == want, "argmax %s n=%d pattern %d: got %d (%g), want %d (%g)",
                              gpt2k_isa_name(ops->isa), n, pat, got, x[got], want, x[want]);
            }
        }
    }
    free(x);
}
END_TEST

/* ---- batch invariance ------------------------------------------------------------- */

/* A row's result must not depend on the other rows of the call: the serving
 * engine's promise (batched == alone, bit for bit) rests on it. Every M up to
 * and past the GEMV/blocked boundary, K spanning several K blocks, fp32 and
 * fp16 weights, with and without bias and residual accumulation. */
START_TEST(test_matmul_rows_independent)
{
    static const int Ms[] = {2, 4, 5, 8, 13, 16, 17, 33};
    static const int Ks[] = {64, 1000, 3072};
    const int N = 37;
    for (int ki = 0; ki < 3; ki++)
        for (int wf16 = 0; wf16 < 2; wf16++) {
            const int K = Ks[ki], Mmax = 33;
            float *in = falloc((size_t)Mmax * K), *wf = falloc((size_t)N * K), *bias = falloc(N);
            uint16_t *wh = xmalloc(sizeof(uint16_t) * (size_t)N * K);
            float *all = falloc((size_t)Mmax * N), *one = falloc(N);
            for (size_t i = 0; i < (size_t)Mmax * K; i++)
                in[i] = urand(-1, 1);
            for (size_t i = 0; i < (size_t)N * K; i++) {
                wf[i] = urand(-1, 1);
                wh[i] = gpt2k_f32_to_f16(wf[i]);
            }
            for (int n = 0; n < N; n++)
                bias[n] = urand(-1, 1);
            const void *w = wf16 ? (const void *)wh : (const void *)wf;
            const gpt2k_wtype wt = wf16 ? GPT2K_W_F16 : GPT2K_W_F32;
            void *wp = xmalloc(gpt2k_packed_bytes(wt, N, K));
            gpt2k_pack_weights(wp, w, wt, N, K);
            for (int t = -1; t < g_nsimd; t++) {
                const gpt2k_ops *ops = t < 0 ? gpt2k_ops_ref() : g_simd[t];
                /* pk: the batch through the packed kernel (alone stays plain) */
                for (int pk = 0; pk < (ops->matmul_packed ? 2 : 1); pk++)
                for (int mi = 0; mi < (int)(sizeof Ms / sizeof Ms[0]); mi++)
                    for (int acc = 0; acc < 2; acc++) {
                        const int M = Ms[mi];
                        for (size_t i = 0; i < (size_t)M * N; i++)
                            all[i] = (float)(i % 7) * 0.25f;
                        if (pk)
                            ops->matmul_packed(all, N, in, K, wp, wf16 ? GPT2K_W_F16 : GPT2K_W_F32,
                                               acc ? NULL : bias, M, K, 0, N, acc);
                        else if (wf16)
                            ops->matmul_f16(all, N, in, K, w, acc ? NULL : bias, M, K, 0, N, acc);
                        else
                            ops->matmul_f32(all, N, in, K, w, acc ? NULL : bias, M, K, 0, N, acc);
                        for (int m = 0; m < M; m++) {
                            for (int n = 0; n < N; n++)
                                one[n] = (float)(((size_t)m * N + n) % 7) * 0.25f;
                            if (wf16)
                                ops->matmul_f16(one, N, in + (size_t)m * K, K, w, acc ? NULL : bias,
                                                1, K, 0, N, acc);
                            else
                                ops->matmul_f32(one, N, in + (size_t)m * K, K, w, acc ? NULL : bias,
                                                1, K, 0, N, acc);
                            ck_assert_msg(memcmp(one, all + (size_t)m * N, sizeof(float) * N) == 0,
                                          "%s %s%s K=%d M=%d acc=%d: row %d differs from the row alone",
                                          gpt2k_isa_name(ops->isa), wf16 ? "f16" : "f32",
                                          pk ? " packed" : "", K, M, acc, m);
                        }
                    }
            }
            free(in), free(wf), free(bias), free(wh), free(all), free(one), free(wp);
        }
}
END_TEST

/* ---- attention head ----------------------------------------------------------------- */

static const int NKV_LIST[] = {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 100, 300};
#define NNKV_LIST ((int)(sizeof NKV_LIST / sizeof NKV_LIST[0]))
static const int HD_LIST[] = {1, 3, 7, 8, 9, 16, 17, 31, 64, 65, 72, 128};
#define NHD_LIST ((int)(sizeof HD_LIST / sizeof HD_LIST[0]))

/* Double oracle for one query against n_kv keys (a softmax over all of them).
 * tol per output: a score error d moves each p[t] by a factor ~(1 +- 2d), so
 * the output moves by <= 2d * V, V = sum_t p[t] |v[t][i]|; d ~ eps sqrt(HD) of
 * the score's magnitude sum. The final weighted sum adds ~eps sqrt(n_kv) V,
 * and the vector exp a few eps. Everything is doubled for two results. */
static void attn_oracle(float *want, double *tol, const float *q, const float *k, int ldk,
                        const float *v, int ldv, int n_kv, int HD, float scale)
{
    double *s = xmalloc(n_kv * sizeof(double));
    double mx = -INFINITY, smax = 0, Z = 0;
    for (int t = 0; t < n_kv; t++) {
        double d = 0, a = 0;
        for (int i = 0; i < HD; i++) {
            d += (double)q[i] * k[(size_t)t * ldk + i];
            a += fabs((double)q[i] * k[(size_t)t * ldk + i]);
        }
        s[t] = d * scale;
        mx = s[t] > mx ? s[t] : mx;
        smax = a * scale > smax ? a * scale : smax;
    }
    for (int t = 0; t < n_kv; t++) {
        s[t] = exp(s[t] - mx);
        Z += s[t];
    }
    const double eps = FLT_EPSILON;
    const double rtol = 2.0 * (2.0 * eps * (sqrt((double)HD) + 1.0) * (smax + 1.0) +
                               eps * (sqrt((double)n_kv) + 4.0));
    for (int i = 0; i < HD; i++) {
        double o = 0, V = 0;
        for (int t = 0; t < n_kv; t++) {
            o += s[t] / Z * v[(size_t)t * ldv + i];
            V += s[t] / Z * fabs(v[(size_t)t * ldv + i]);
        }
        want[i] = (float)o;
        tol[i] = rtol * V + FLT_MIN;
    }
    free(s);
}

/* A paged copy of a contiguous cache k/v ([n_kv][ld]): bs positions per block,
 * blocks in a shuffled order inside a pool with one spare block, NaN wherever
 * no position was copied (a kernel that reads past n_kv or across a block
 * boundary without the table picks one up). */
typedef struct {
    float *k, *v;
    int *blocks;
    gpt2k_kv_view view;
    size_t n; /* floats in k (and in v) */
} paged_cache;

/* hd > 0: each run of hd channels (a head) keeps its positions together
 * inside a block, hd floats apart, heads bs * hd + 3 floats apart (the view's
 * head_dim / head_stride form); keys_t (with hd > 0): the keys of a head run
 * transposed, channel-major, as the CPU backend stores its cache. */
static void paged_make(paged_cache *pc, const float *k, const float *v, int n_kv, int ld, int bs,
                       int hd, int keys_t)
{
    const int nb = (n_kv + bs - 1) / bs, pool = nb + 1;
    const size_t hstride = hd ? (size_t)bs * hd + 3 : 0;
    const size_t stride = hd ? (size_t)((ld + hd - 1) / hd) * hstride + 5 : (size_t)bs * ld + 5;
    pc->k = falloc(stride * pool);
    pc->v = falloc(stride * pool);
    pc->blocks = xmalloc(sizeof(int) * (size_t)(nb > 0 ? nb : 1));
    ffill(pc->k, stride * pool, NAN);
    ffill(pc->v, stride * pool, NAN);
    for (int j = 0; j < nb; j++)
        pc->blocks[j] = (j * 7 + 3) % pool; /* 7 and pool coprime unless pool % 7 == 0 */
    if (pool % 7 == 0)
        for (int j = 0; j < nb; j++)
            pc->blocks[j] = pool - 1 - j;
    for (int t = 0; t < n_kv; t++) {
        const size_t base = (size_t)pc->blocks[t / bs] * stride;
        for (int c = 0; c < ld; c++) {
            const size_t off = hd ? base + (size_t)(c / hd) * hstride + (size_t)(t % bs) * hd + c % hd
                                  : base + (size_t)(t % bs) * ld + c;
            const size_t koff = keys_t ? base + (size_t)(c / hd) * hstride +
                                             (size_t)(c % hd) * bs + (size_t)(t % bs)
                                       : off;
            pc->k[koff] = k[(size_t)t * ld + c];
            pc->v[off] = v[(size_t)t * ld + c];
        }
    }
    pc->view = (gpt2k_kv_view){pc->k, pc->v, pc->blocks, stride, bs, hd ? hd : ld, hd, hstride,
                               GPT2K_W_F32, keys_t};
    pc->n = stride * pool;
}

/* The same cache as fp16 (every float, NaN padding included, converted; the
 * caller made the values exact in fp16): the view's strides are unchanged. */
static gpt2k_kv_view half_view(const gpt2k_kv_view *f, size_t n, uint16_t **k16, uint16_t **v16)
{
    *k16 = xmalloc(sizeof(uint16_t) * (n ? n : 1));
    *v16 = xmalloc(sizeof(uint16_t) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        (*k16)[i] = gpt2k_f32_to_f16(((const float *)f->k)[i]);
        (*v16)[i] = gpt2k_f32_to_f16(((const float *)f->v)[i]);
    }
    gpt2k_kv_view h = *f;
    h.k = *k16, h.v = *v16, h.elem = GPT2K_W_F16;
    return h;
}

/* x rounded to fp16 and back (NaN stays NaN). */
static void round_to_half(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = gpt2k_f16_to_f32(gpt2k_f32_to_f16(x[i]));
}

static void paged_free(paged_cache *pc)
{
    free(pc->k), free(pc->v), free(pc->blocks);
}

/* Block sizes tried for each cache: 0 stands for one contiguous block. */
static const int BS_LIST[] = {0, 1, 3, 4, 12, 16};
#define NBS_LIST ((int)(sizeof BS_LIST / sizeof BS_LIST[0]))

START_TEST(test_attention_head)
{
    const int HD = HD_LIST[_i];
    float *want = falloc(HD), *got_ref = falloc(HD), *obuf = falloc(HD + 2 * GUARD);
    double *tol = xmalloc(HD * sizeof(double));
    float *q = falloc(HD);
    for (int ki = 0; ki < NNKV_LIST; ki++)
        for (int pk = 0; pk < 4; pk++) {
            /* half: the cache in fp16. Its values are made exact in fp16
             * first, so the oracle is the same and each kernel must give the
             * bits it gives for the fp32 cache of those values. */
            const int n_kv = NKV_LIST[ki], peaky = pk & 1, half = pk >> 1;
            const int col = ki & 1 ? 5 : 0, ld = col + HD + (ki & 2 ? 3 : 0);
            /* Two extra NaN rows past n_kv and NaN padding: must not be read. */
            const size_t rows = (size_t)n_kv + 2;
            float *k = falloc(rows * ld), *v = falloc(rows * ld);
            float *sbuf = falloc(n_kv + GUARD);
            /* peaky: q scaled up so scores reach the hundreds; without the
             * max subtraction exp() would overflow. */
            const float qs = peaky ? 40.0f : 1.0f;
            for (int i = 0; i < HD; i++)
                q[i] = qs * urand(-1, 1);
            for (size_t t = 0; t < rows; t++)
                for (int i = 0; i < ld; i++) {
                    int in = t < (size_t)n_kv && i >= col && i < col + HD;
                    k[t * ld + i] = in ? urand(-1, 1) : NAN;
                    v[t * ld + i] = in ? urand(-2, 2) : NAN;
                }
            if (half) {
                round_to_half(k, rows * ld);
                round_to_half(v, rows * ld);
            }
            const float scale = 1.0f / sqrtf((float)HD);
            attn_oracle(want, tol, q, k + col, ld, v + col, ld, n_kv, HD, scale);
            /* The same head as head 1 of 2 (channels HD .. 2HD-1, head 0 NaN):
             * for the caches that keep each head's positions together. */
            const int ld2 = 2 * HD;
            float *k2 = falloc(rows * ld2), *v2 = falloc(rows * ld2);
            for (size_t t = 0; t < rows; t++)
                for (int i = 0; i < ld2; i++) {
                    k2[t * ld2 + i] = i < HD ? NAN : k[t * ld + col + i - HD];
                    v2[t * ld2 + i] = i < HD ? NAN : v[t * ld + col + i - HD];
                }
            /* position-major blocks, head runs, head runs with keys transposed */
            for (int bi = 0; bi < 3 * NBS_LIST; bi++) {
                paged_cache pc;
                const int bs = BS_LIST[bi % NBS_LIST], split = bi >= NBS_LIST;
                const int keys_t = bi >= 2 * NBS_LIST;
                int contiguous = bs == 0;
                if (split && contiguous)
                    continue;
                if (contiguous) {
                    static const int zero = 0;
                    pc = (paged_cache){NULL, NULL, NULL,
                                       {k, v, &zero, 0, n_kv + 2, ld, 0, 0, GPT2K_W_F32, 0},
                                       rows * ld};
                } else if (split) {
                    paged_make(&pc, k2, v2, n_kv, ld2, bs, HD, keys_t);
                } else {
                    paged_make(&pc, k, v, n_kv, ld, bs, 0, 0);
                }
                const int hcol = split ? HD : col;
                uint16_t *k16 = NULL, *v16 = NULL;
                gpt2k_kv_view hv;
                if (half)
                    hv = half_view(&pc.view, pc.n, &k16, &v16);
                for (int t = -1; t < g_nsimd; t++) {
                    const gpt2k_ops *ops = t < 0 ? gpt2k_ops_ref() : g_simd[t];
                    char ctx[160];
                    snprintf(ctx, sizeof ctx,
                             "attention_head %s HD=%d n_kv=%d ld=%d col=%d bs=%d split=%d keys_t=%d "
                             "peaky=%d kv %s", gpt2k_isa_name(ops->isa), HD, n_kv, ld, col,
                             pc.view.bs, split, keys_t, peaky, half ? "f16" : "f32");
                    ffill(obuf, HD + 2 * GUARD, SENTINEL);
                    ffill(sbuf, n_kv + GUARD, SENTINEL);
                    ops->attention_head(obuf + GUARD, q, &pc.view, hcol, n_kv, HD, scale, sbuf);
                    span_region r = {GUARD, HD}, rs = {0, n_kv};
                    expect_guards(obuf, HD + 2 * GUARD, span_in_region, &r, ctx);
                    expect_guards(sbuf, n_kv + GUARD, span_in_region, &rs, ctx);
                    expect_close(obuf + GUARD, want, tol, HD, HD, "%s", ctx);
                    if (t < 0 && contiguous)
                        memcpy(got_ref, obuf + GUARD, HD * sizeof(float));
                    else
                        expect_close(obuf + GUARD, got_ref, tol, HD, HD, "%s vs scalar", ctx);
                    if (!half)
                        continue;
                    /* the fp16 cache: the same bits as the fp32 cache just run */
                    float *o32 = falloc(HD);
                    memcpy(o32, obuf + GUARD, HD * sizeof(float));
                    ffill(obuf, HD + 2 * GUARD, SENTINEL);
                    ffill(sbuf, n_kv + GUARD, SENTINEL);
                    ops->attention_head(obuf + GUARD, q, &hv, hcol, n_kv, HD, scale, sbuf);
                    expect_guards(obuf, HD + 2 * GUARD, span_in_region, &r, ctx);
                    expect_guards(sbuf, n_kv + GUARD, span_in_region, &rs, ctx);
                    for (int i = 0; i < HD; i++)
                        CHECK(memcmp(&obuf[GUARD + i], &o32[i], sizeof(float)) == 0,
                              "%s: out[%d] = %.9g from the fp16 cache, %.9g from fp32", ctx, i,
                              obuf[GUARD + i], o32[i]);
                    free(o32);
                }
                free(k16), free(v16);
                if (!contiguous)
                    paged_free(&pc);
            }
            free(k), free(v), free(k2), free(v2), free(sbuf);
        }
    free(want), free(got_ref), free(obuf), free(tol), free(q);
}
END_TEST

/* ---- fp16 -------------------------------------------------------------------------- */

/* Independent half -> float: the definition, with ldexp. */
static double half_value(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

/* Independent float -> half by arithmetic: scale to the half grid spacing of
 * the value's binade and round with rint (round-half-even in the default FP
 * mode); all steps are exact in double. NaN is handled by the caller. */
static uint16_t slow_f32_to_f16(float f)
{
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    double a = fabs((double)f);
    if (isinf(f))
        return sign | 0x7c00;
    if (a == 0)
        return sign;
    int e2;
    frexp(a, &e2); /* a in [2^(e2-1), 2^e2) */
    int E = e2 - 1 < -14 ? -14 : e2 - 1;
    double r = rint(ldexp(a, 10 - E)); /* integer multiple of 2^(E-10) */
    double v = ldexp(r, E - 10);
    if (v > 65504.0)
        return sign | 0x7c00;
    if (v < ldexp(1.0, -14))
        return sign | (uint16_t)ldexp(v, 24); /* subnormal (or the rounding reached 0) */
    frexp(v, &e2);
    E = e2 - 1;
    return sign | (uint16_t)((E + 15) << 10) | (uint16_t)(ldexp(v, 10 - E) - 1024);
}

START_TEST(test_f16_exhaustive)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = gpt2k_f16_to_f32((uint16_t)h);
        int is_nan = ((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff);
        if (is_nan) {
            CHECK(isnan(f), "f16_to_f32(0x%04x) = %g, want nan", h, f);
            CHECK(!signbit(f) == !(h & 0x8000), "f16_to_f32(0x%04x): nan sign lost", h);
            uint16_t back = gpt2k_f32_to_f16(f);
            CHECK(((back >> 10) & 0x1f) == 0x1f && (back & 0x3ff) &&
                      (back & 0x8000) == (h & 0x8000),
                  "f32_to_f16(nan from 0x%04x) = 0x%04x, want a nan of the same sign", h, back);
            continue;
        }
        double want = ((h >> 10) & 0x1f) == 0x1f ? ((h & 0x8000) ? -INFINITY : INFINITY)
                                                 : half_value((uint16_t)h);
        CHECK((double)f == want && !signbit(f) == !(h & 0x8000),
              "f16_to_f32(0x%04x) = %.10g, want %.10g", h, f, want);
        uint16_t back = gpt2k_f32_to_f16(f);
        CHECK(back == h, "round trip 0x%04x -> %.10g -> 0x%04x", h, f, back);
    }
}
END_TEST

static void check_f32_to_f16(float f)
{
    if (isnan(f))
        return;
    uint16_t got = gpt2k_f32_to_f16(f), want = slow_f32_to_f16(f);
    CHECK(got == want, "f32_to_f16(%.10g = 0x%08x) = 0x%04x, want 0x%04x", f, fbits(f), got, want);
}

START_TEST(test_f16_rounding)
{
    /* Around every finite half: the value, one float ulp either side, the
     * exact midpoint to the next half (a tie) and one ulp either side of it. */
    for (uint32_t h = 0; h < 0x7c00; h++) {
        for (int s = 0; s < 2; s++) {
            float v = gpt2k_f16_to_f32((uint16_t)(h | (s ? 0x8000 : 0)));
            double next = h + 1 < 0x7c00 ? half_value((uint16_t)(h + 1)) : 65536.0;
            float mid = (float)((fabs((double)v) + next) / 2); /* exact: 12 bits */
            if (s)
                mid = -mid;
            const float cases[] = {v,   nextafterf(v, INFINITY),   nextafterf(v, -INFINITY),
                                   mid, nextafterf(mid, INFINITY), nextafterf(mid, -INFINITY)};
            for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
                check_f32_to_f16(cases[i]);
        }
    }
    /* Named edges: overflow threshold, the smallest subnormal's half-way
     * point, float subnormals, infinities. */
    const float edges[] = {65504.0f,
                           65519.996f,
                           65520.0f,
                           65520.004f,
                           65536.0f,
                           1e10f,
                           ldexpf(1, -24),
                           ldexpf(1, -25),
                           nextafterf(ldexpf(1, -25), 1),
                           nextafterf(ldexpf(1, -25), 0),
                           ldexpf(3, -26),
                           ldexpf(1, -26),
                           FLT_MIN,
                           FLT_TRUE_MIN,
                           FLT_MAX,
                           INFINITY,
                           -INFINITY,
                           0.0f,
                           -0.0f};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        check_f32_to_f16(edges[i]);
        check_f32_to_f16(-edges[i]);
    }
    /* A strided walk over every float bit pattern. */
    for (uint64_t u = 0; u < (1ull << 32); u += 65521)
        check_f32_to_f16(bits_f((uint32_t)u));
    /* NaN stays NaN with its sign. */
    const uint32_t nans[] = {0x7fc00000u, 0x7f800001u, 0xffc00000u, 0x7fbfffffu, 0xff800001u};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        uint16_t h = gpt2k_f32_to_f16(bits_f(nans[i]));
        CHECK(((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff) && (h >> 15) == (nans[i] >> 31),
              "f32_to_f16(nan 0x%08x) = 0x%04x, not a nan of the same sign", nans[i], h);
    }
}
END_TEST

#if defined(__x86_64__) && defined(__GNUC__)
/* Cross-check with the hardware conversion where the CPU has F16C. */
__attribute__((target("f16c"))) static uint16_t hw_f32_to_f16(float f)
{
    return (uint16_t)_cvtss_sh(f, 0); /* 0: round to nearest even */
}

START_TEST(test_f16_vs_hardware)
{
    if (!gpt2k_cpu_supports(GPT2K_ISA_AVX2)) {
        printf("test_kernels: SKIP f16 hardware cross-check: no F16C\n");
        return;
    }
    for (uint64_t u = 0; u < (1ull << 32); u += 4099) {
        float f = bits_f((uint32_t)u);
        if (isnan(f))
            continue;
        uint16_t got = gpt2k_f32_to_f16(f), want = hw_f32_to_f16(f);
        CHECK(got == want, "f32_to_f16(0x%08x) = 0x%04x, F16C says 0x%04x", (uint32_t)u, got, want);
    }
}
END_TEST
#endif

/* Every table's to_f16 (the KV cache's store) against gpt2k_f32_to_f16, bit
 * for bit: random values over many binades, the rounding edges, NaN (any NaN
 * of the same sign), at every length mod 8 and odd offsets, nothing written
 * past n. */
START_TEST(test_to_f16_op)
{
    enum { N = 300, PAD = 8 };
    float x[N];
    uint16_t got[N + PAD];
    for (int i = 0; i < N; i++)
        x[i] = ldexpf(urand(-1, 1), (int)urand(-30, 18));
    const float edges[] = {65504.0f, 65520.0f, 65519.996f, ldexpf(1, -25), ldexpf(3, -26),
                           ldexpf(1, -24), FLT_MIN, INFINITY, -INFINITY, -0.0f, NAN, 1e10f};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        x[7 * i + 3] = edges[i];
    for (int t = -1; t < g_nsimd; t++) {
        const gpt2k_ops *ops = t < 0 ? gpt2k_ops_ref() : g_simd[t];
        for (int off = 0; off < 3; off++)
            for (int n = 0; n + off <= N; n += n < 40 ? 1 : 37) {
                memset(got, 0xa5, sizeof got);
                ops->to_f16(got, x + off, n);
                for (int i = 0; i < n; i++) {
                    uint16_t want = gpt2k_f32_to_f16(x[off + i]);
                    int nan_ok = isnan(x[off + i]) && ((got[i] >> 10) & 0x1f) == 0x1f &&
                                 (got[i] & 0x3ff) && (got[i] & 0x8000) == (want & 0x8000);
                    CHECK(got[i] == want || nan_ok, "%s to_f16 n=%d off=%d [%d] (%.9g) = 0x%04x, "
                          "want 0x%04x", gpt2k_isa_name(ops->isa), n, off, i, x[off + i], got[i],
                          want);
                }
                for (int i = n; i < n + PAD && i < N + PAD; i++)
                    CHECK(got[i] == 0xa5a5, "%s to_f16 n=%d wrote past the end at %d",
                          gpt2k_isa_name(ops->isa), n, i);
            }
    }
}
END_TEST

/* ---- cpu features ---------------------------------------------------------------------- */

START_TEST(test_cpu_features)
{
    for (int i = 0; i < GPT2K_ISA_COUNT; i++) {
        const char *name = gpt2k_isa_name((gpt2k_isa)i);
        ck_assert_int_eq(gpt2k_isa_parse(name), i);
        printf("test_kernels: cpu %s: %s\n", name, gpt2k_cpu_supports((gpt2k_isa)i) ? "yes" : "no");
    }
    ck_assert_int_eq(gpt2k_isa_parse("bogus"), -1);
    ck_assert_int_eq(gpt2k_isa_parse(NULL), -1);
    ck_assert_int_eq(gpt2k_isa_parse("auto"), (int)gpt2k_best_isa());
    ck_assert(gpt2k_cpu_supports(GPT2K_ISA_SCALAR));
    ck_assert_ptr_eq(gpt2k_ops_for(GPT2K_ISA_SCALAR), gpt2k_ops_ref());
    ck_assert_ptr_nonnull(gpt2k_ops_for(gpt2k_best_isa()));
    ck_assert_int_eq(gpt2k_ops_for(gpt2k_best_isa())->isa, gpt2k_best_isa());
    for (int i = 0; i < GPT2K_ISA_COUNT; i++) {
        const gpt2k_ops *o = gpt2k_ops_for((gpt2k_isa)i);
        if (o) {
            ck_assert_int_eq(o->isa, i);
            ck_assert(o->matmul_f32 && o->matmul_f16 && o->layernorm && o->gelu && o->add && o->argmax &&
                      o->attention_head);
            ck_assert((int)gpt2k_best_isa() >= i);
        }
    }
#if defined(__x86_64__) && defined(__GNUC__)
    /* Independent check through the compiler's own cpuid reading: we may
     * be stricter (OS state), never looser. */
    __builtin_cpu_init();
    if (gpt2k_cpu_supports(GPT2K_ISA_AVX2))
        ck_assert(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
    if (gpt2k_cpu_supports(GPT2K_ISA_AVX512))
        ck_assert(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"));
#endif
}
END_TEST

/* ---- thread pool ------------------------------------------------------------------------- */

typedef struct {
    atomic_int count[8];
    atomic_int bad_nth;
    int nth;
} pool_probe;

static void pool_probe_fn(void *arg, int ith, int nth)
{
    pool_probe *p = arg;
    if (nth != p->nth || ith < 0 || ith >= nth || ith >= 8)
        atomic_fetch_add(&p->bad_nth, 1);
    else
        atomic_fetch_add(&p->count[ith], 1);
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

START_TEST(test_threadpool)
{
    ck_assert_ptr_null(gpt2k_pool_create(0));
    for (int nt = 1; nt <= 4; nt++) {
        gpt2k_pool *pool = gpt2k_pool_create(nt);
        ck_assert_ptr_nonnull(pool);
        ck_assert_int_eq(gpt2k_pool_size(pool), nt);
        pool_probe pr;
        memset(&pr, 0, sizeof pr);
        pr.nth = nt;
        const int runs = 3000;
        for (int r = 1; r <= runs; r++) {
            gpt2k_pool_run(pool, pool_probe_fn, &pr);
            /* After run returns, every thread's call must be complete and
             * counted exactly once for this run. */
            for (int i = 0; i < nt; i++) {
                int c = atomic_load(&pr.count[i]);
                CHECK(c == r, "pool nt=%d run %d: ith %d ran %d times in total", nt, r, i, c);
            }
            CHECK(atomic_load(&pr.bad_nth) == 0, "pool nt=%d: bad ith/nth seen", nt);
            /* Now and then idle long enough for workers to go to sleep, so the
             * condvar wake path is exercised too. */
            if (r % 500 == 0)
                sleep_us(20000);
        }
        gpt2k_pool_free(pool);
    }
    gpt2k_pool_free(NULL);
}
END_TEST

/* ---- parallel drivers -------------------------------------------------------------------- */

/* Split results must equal one single-threaded slice call bit for bit: each
 * output element is computed by the same arithmetic whichever thread owns it. */
/* gpt2k_pack_weights puts element (n, k) at group n / G, offset k * G + n % G
 * (G = 16 columns for fp32, 32 for fp16: one 64-byte line per k) and zeros
 * past N; packing the panels in separate calls, one at a time from the last
 * (as the engine's rounds and threads split it), gives the same bytes;
 * gpt2k_packed_row reads a row back. Checked against that definition
 * directly, for N on and off the panel and group sizes, fp32 and fp16. */
START_TEST(test_pack_weights)
{
    static const int shapes[][2] = {{1, 1},    {16, 3}, {17, 5}, {40, 64},
                                    {33, 100}, {48, 7}, {64, 2}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int wf16 = 0; wf16 < 2; wf16++) {
            const int N = shapes[s][0], K = shapes[s][1], G = wf16 ? 32 : 16;
            const gpt2k_wtype wt = wf16 ? GPT2K_W_F16 : GPT2K_W_F32;
            const size_t groups = ((size_t)N + G - 1) / G, bytes = gpt2k_packed_bytes(wt, N, K);
            ck_assert_uint_eq(bytes, groups * G * (size_t)K * (wf16 ? 2 : 4));
            float *wf = falloc((size_t)N * K), *row = falloc(K);
            uint16_t *wh = xmalloc((size_t)N * K * sizeof(uint16_t));
            for (size_t i = 0; i < (size_t)N * K; i++) {
                wf[i] = urand(-1, 1);
                wh[i] = gpt2k_f32_to_f16(wf[i]);
            }
            unsigned char *wp = xmalloc(bytes), *wq = xmalloc(bytes);
            memset(wp, 0xAB, bytes); /* padding must be written, as zeros */
            memset(wq, 0xCD, bytes);
            const void *src = wf16 ? (const void *)wh : (const void *)wf;
            gpt2k_pack_weights(wp, src, wt, N, K);
            for (int p = (N + 15) / 16 - 1; p >= 0; p--)
                gpt2k_pack_panels(wq, src, wt, N, K, p, p + 1);
            ck_assert_msg(memcmp(wp, wq, bytes) == 0, "N=%d K=%d f16=%d: panel by panel differs",
                          N, K, wf16);
            for (size_t g = 0; g < groups; g++)
                for (int k = 0; k < K; k++)
                    for (int r = 0; r < G; r++) {
                        const size_t n = g * G + r, off = (g * G * K + (size_t)k * G + r);
                        if (wf16) {
                            uint16_t got = ((const uint16_t *)wp)[off];
                            ck_assert_uint_eq(got, n < (size_t)N ? wh[n * K + k] : 0);
                        } else {
                            float got = ((const float *)wp)[off];
                            float want = n < (size_t)N ? wf[n * K + k] : 0.0f;
                            ck_assert_msg(memcmp(&got, &want, 4) == 0, "N=%d K=%d n=%zu k=%d", N,
                                          K, n, k);
                        }
                    }
            for (int n = 0; n < N; n++) {
                gpt2k_packed_row(row, wp, wt, K, n);
                for (int k = 0; k < K; k++) {
                    float want = wf16 ? gpt2k_f16_to_f32(wh[(size_t)n * K + k]) : wf[(size_t)n * K + k];
                    ck_assert_msg(memcmp(&row[k], &want, 4) == 0, "packed_row N=%d K=%d n=%d k=%d",
                                  N, K, n, k);
                }
            }
            free(wf), free(row), free(wh), free(wp), free(wq);
        }
}
END_TEST

START_TEST(test_parallel_matmul)
{
    static const int shapes[][3] = {{1, 768, 100}, {7, 33, 37}, {20, 100, 37}, {3, 17, 5},
                                    {64, 130, 50}, {2, 9, 16},  {1, 1, 1},    {1, 64, 200},
                                    {30, 64, 129}, {4, 32, 1000}}; /* decode tail chunks */
    for (int nt = 1; nt <= 3; nt++) {
        gpt2k_pool *pool = gpt2k_pool_create(nt);
        ck_assert_ptr_nonnull(pool);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int wf16 = 0; wf16 < 2; wf16++)
                for (int t = -1; t < g_nsimd; t++) {
                    const gpt2k_ops *ops = t < 0 ? gpt2k_ops_ref() : g_simd[t];
                    const int M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
                    const int ldi = K + 1, ldo = N + 2, acc = (int)(s & 1);
                    float *in = falloc((size_t)M * ldi), *wf = falloc((size_t)N * K);
                    uint16_t *wh = xmalloc((size_t)N * K * sizeof(uint16_t));
                    float *bias = falloc(N), *o1 = falloc((size_t)M * ldo),
                          *o2 = falloc((size_t)M * ldo);
                    for (size_t i = 0; i < (size_t)M * ldi; i++)
                        in[i] = urand(-1, 1);
                    for (size_t i = 0; i < (size_t)N * K; i++) {
                        wf[i] = urand(-1, 1);
                        wh[i] = gpt2k_f32_to_f16(wf[i]);
                    }
                    for (int i = 0; i < N; i++)
                        bias[i] = urand(-1, 1);
                    for (size_t i = 0; i < (size_t)M * ldo; i++)
                        o1[i] = o2[i] = urand(-1, 1); /* padding too: must survive */
                    const void *w = wf16 ? (const void *)wh : (const void *)wf;
                    gpt2k_matmul(pool, ops, o1, ldo, in, ldi, w, wf16 ? GPT2K_W_F16 : GPT2K_W_F32,
                                 bias, M, K, N, acc);
                    if (wf16)
                        ops->matmul_f16(o2, ldo, in, ldi, wh, bias, M, K, 0, N, acc);
                    else
                        ops->matmul_f32(o2, ldo, in, ldi, wf, bias, M, K, 0, N, acc);
                    expect_close(o1, o2, NULL, (size_t)M * ldo, (size_t)ldo,
                                 "gpt2k_matmul %s threads=%d %s M=%d K=%d N=%d acc=%d",
                                 gpt2k_isa_name(ops->isa), nt, wf16 ? "f16" : "f32", M, K, N, acc);
                    if (ops->matmul_packed) { /* the packed driver: the same bits */
                        const gpt2k_wtype wt = wf16 ? GPT2K_W_F16 : GPT2K_W_F32;
                        void *wp = xmalloc(gpt2k_packed_bytes(wt, N, K));
                        gpt2k_pack_weights(wp, w, wt, N, K);
                        for (size_t i = 0; i < (size_t)M * ldo; i++)
                            o1[i] = (float)(i % 5);
                        memcpy(o2, o1, sizeof(float) * (size_t)M * ldo);
                        gpt2k_matmul_packed(pool, ops, o1, ldo, in, ldi, wp, wt, bias, M, K, N,
                                            acc);
                        gpt2k_matmul(pool, ops, o2, ldo, in, ldi, w, wt, bias, M, K, N, acc);
                        ck_assert_msg(memcmp(o1, o2, sizeof(float) * (size_t)M * ldo) == 0,
                                      "gpt2k_matmul_packed %s threads=%d %s M=%d K=%d N=%d: "
                                      "differs from gpt2k_matmul",
                                      gpt2k_isa_name(ops->isa), nt, wf16 ? "f16" : "f32", M, K, N);
                        free(wp);
                    }
                    free(in), free(wf), free(wh), free(bias), free(o1), free(o2);
                }
        gpt2k_pool_free(pool);
    }
}
END_TEST

START_TEST(test_parallel_rows)
{
    static const int shapes[][2] = {{1, 768}, {5, 768}, {3, 100}, {7, 17}, {1, 3072}, {2, 5}};
    for (int nt = 1; nt <= 3; nt++) {
        gpt2k_pool *pool = gpt2k_pool_create(nt);
        ck_assert_ptr_nonnull(pool);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int t = -1; t < g_nsimd; t++) {
                const gpt2k_ops *ops = t < 0 ? gpt2k_ops_ref() : g_simd[t];
                const int rows = shapes[s][0], C = shapes[s][1];
                const int ldx = C + 3, ldo = C + 1;
                float *x = falloc((size_t)rows * ldx), *g = falloc(C), *b = falloc(C);
                float *o1 = falloc((size_t)rows * ldo), *o2 = falloc((size_t)rows * ldo);
                for (size_t i = 0; i < (size_t)rows * ldx; i++)
                    x[i] = urand(-3, 3);
                for (int i = 0; i < C; i++) {
                    g[i] = urand(0.5f, 1.5f);
                    b[i] = urand(-1, 1);
                }
                ffill(o1, (size_t)rows * ldo, SENTINEL);
                ffill(o2, (size_t)rows * ldo, SENTINEL);
                gpt2k_layernorm_rows(pool, ops, o1, ldo, x, ldx, g, b, rows, C, 1e-5f);
                for (int r = 0; r < rows; r++)
                    ops->layernorm(o2 + (size_t)r * ldo, x + (size_t)r * ldx, g, b, C, 1e-5f);
                expect_close(o1, o2, NULL, (size_t)rows * ldo, (size_t)ldo,
                             "gpt2k_layernorm_rows %s threads=%d rows=%d C=%d",
                             gpt2k_isa_name(ops->isa), nt, rows, C);

                /* gelu in place over rows with a padded stride */
                memcpy(o1, x, (size_t)rows * ldo * sizeof(float));
                memcpy(o2, x, (size_t)rows * ldo * sizeof(float));
                gpt2k_gelu_rows(pool, ops, o1, ldo, rows, C);
                for (int r = 0; r < rows; r++)
                    ops->gelu(o2 + (size_t)r * ldo, C);
                expect_close(o1, o2, NULL, (size_t)rows * ldo, (size_t)ldo,
                             "gpt2k_gelu_rows %s threads=%d rows=%d n=%d", gpt2k_isa_name(ops->isa),
                             nt, rows, C);
                free(x), free(g), free(b), free(o1), free(o2);
            }
        gpt2k_pool_free(pool);
    }
}
END_TEST

/* attention_rows: every row of a tile gives the bits attention_head gives
 * it alone (kernels.h), on every cache form, both element types, block sizes
 * with and without full vectors of 8 (or 16) keys and tails, ragged HD;
 * nothing is written outside the rows' outputs and the rows * (n0 + rows -
 * 1) floats of scratch. On the keys_t form (the CPU backend's) every SIMD
 * table gives the first one's bits (ops_avx2.c, attention_avx512.c), so a
 * model's tokens do not depend on the ISA the machine picks. */
typedef struct {
    int rows, ldo;
} rows_region;

static int rows_in_region(size_t i, const void *c)
{
    const rows_region *r = c;
    if (i < GUARD)
        return 0;
    i -= GUARD;
    return i < (size_t)r->rows * r->ldo && (int)(i % r->ldo) < r->ldo - 3;
}

START_TEST(test_attention_rows)
{
    static const int hds[] = {1, 7, 8, 17, 64, 65};
    static const int bss[] = {1, 3, 8, 12, 16};
    static const int n0s[] = {1, 6, 17, 40};
    static const int rowss[] = {1, 2, 3, 4, 5, 8, 9};
    const int HD = hds[_i % 6], form = _i / 6; /* 0 keys_t, 1 head runs, 2 position-major */
    const int ld = 2 * HD, ldq = HD + 2, ldo = HD + 3;
    for (size_t bi = 0; bi < sizeof bss / sizeof bss[0]; bi++)
        for (size_t ni = 0; ni < sizeof n0s / sizeof n0s[0]; ni++)
            for (size_t ri = 0; ri < sizeof rowss / sizeof rowss[0]; ri++) {
                const int bs = bss[bi], n0 = n0s[ni], rows = rowss[ri], n_kv = n0 + rows - 1;
                float *k = falloc((size_t)n_kv * ld), *v = falloc((size_t)n_kv * ld);
                float *q = falloc((size_t)rows * ldq);
                for (size_t e = 0; e < (size_t)n_kv * ld; e++) {
                    k[e] = urand(-1, 1);
                    v[e] = urand(-2, 2);
                }
                round_to_half(k, (size_t)n_kv * ld); /* exact in both element types */
                round_to_half(v, (size_t)n_kv * ld);
                for (size_t e = 0; e < (size_t)rows * ldq; e++)
                    q[e] = urand(-3, 3);
                paged_cache pc;
                paged_make(&pc, k, v, n_kv, ld, bs, form < 2 ? HD : 0, form == 0);
                uint16_t *k16, *v16;
                const gpt2k_kv_view views[2] = {pc.view, half_view(&pc.view, pc.n, &k16, &v16)};
                const size_t nout = (size_t)rows * ldo + 2 * GUARD;
                const size_t nsc = (size_t)rows * n_kv;
                float *o = falloc(nout), *one = falloc(HD), *sc = falloc(nsc + GUARD);
                float *first = falloc(nout);
                const float scale = 1.0f / sqrtf((float)HD);
                for (int e = 0; e < 2; e++)
                    for (int t = -1; t < g_nsimd; t++) {
                        const gpt2k_ops *ops = t < 0 ? gpt2k_ops_ref() : g_simd[t];
                        char ctx[160];
                        snprintf(ctx, sizeof ctx,
                                 "attention_rows %s form=%d HD=%d bs=%d n0=%d rows=%d kv %s",
                                 gpt2k_isa_name(ops->isa), form, HD, bs, n0, rows,
                                 e ? "f16" : "f32");
                        ffill(o, nout, SENTINEL);
                        ffill(sc, nsc + GUARD, SENTINEL);
                        ops->attention_rows(o + GUARD, ldo, q, ldq, &views[e], HD, n0, rows, HD,
                                            scale, sc);
                        rows_region rr = {rows, ldo};
                        span_region rs = {0, (int)nsc};
                        expect_guards(o, nout, rows_in_region, &rr, ctx);
                        expect_guards(sc, nsc + GUARD, span_in_region, &rs, ctx);
                        for (int r = 0; r < rows; r++) {
                            ops->attention_head(one, q + (size_t)r * ldq, &views[e], HD, n0 + r,
                                                HD, scale, sc);
                            for (int i = 0; i < HD; i++)
                                CHECK(memcmp(&o[GUARD + (size_t)r * ldo + i], &one[i], 4) == 0,
                                      "%s: row %d out[%d] = %.9g in the tile, %.9g alone", ctx, r,
                                      i, o[GUARD + (size_t)r * ldo + i], one[i]);
                        }
                        if (form != 0 || t < 0)
                            continue;
                        if (t == 0) {
                            memcpy(first, o, nout * sizeof(float));
                            continue;
                        }
                        for (int r = 0; r < rows; r++)
                            for (int i = 0; i < HD; i++) {
                                const size_t at = GUARD + (size_t)r * ldo + i;
                                CHECK(memcmp(&o[at], &first[at], 4) == 0,
                                      "%s: row %d out[%d] = %.9g, %s gives %.9g", ctx, r, i, o[at],
                                      gpt2k_isa_name(g_simd[0]->isa), first[at]);
                            }
                    }
                paged_free(&pc);
                free(k16), free(v16), free(k), free(v), free(q), free(o), free(one), free(sc);
                free(first);
            }
}
END_TEST

/* Ragged batches: each sequence has n rows at positions pos0 .. pos0+n-1 and
 * its own paged cache holding positions 0 .. pos0+n-1. */
typedef struct {
    int n_seqs;
    int pos0[4], n[4];
    int NH, HD, bs;
} attn_batch;

START_TEST(test_parallel_attention)
{
    static const attn_batch shapes[] = {
        {1, {0}, {1}, 1, 8, 16},           {1, {0}, {9}, 3, 16, 4},
        {1, {5}, {1}, 12, 64, 16},         {1, {5}, {4}, 3, 7, 3},
        {1, {0}, {17}, 2, 64, 16},         {1, {30}, {3}, 4, 33, 16},
        {1, {0}, {33}, 5, 9, 1},           {3, {0, 7, 40}, {1, 1, 1}, 4, 16, 16},
        {4, {0, 3, 0, 20}, {5, 1, 2, 1}, 3, 24, 4},
        {2, {63, 0}, {1, 31}, 2, 32, 16},
        /* from here on: the CPU backend's form (keys transposed, room for
         * tiles), prompts whose rows make tiles of every size and tails */
        {1, {0}, {20}, 2, 64, 16},         {2, {3, 0}, {9, 17}, 3, 16, 16},
        {1, {100}, {8}, 2, 72, 16},        {3, {0, 5, 2}, {7, 1, 13}, 2, 65, 12},
    };
    for (int nt = 1; nt <= 3; nt++) {
        gpt2k_pool *pool = gpt2k_pool_create(nt);
        ck_assert_ptr_nonnull(pool);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int t = -1; t < g_nsimd; t++) {
                const gpt2k_ops *ops = t < 0 ? gpt2k_ops_ref() : g_simd[t];
                const attn_batch sh = shapes[s];
                const int C = sh.NH * sh.HD, ld = C + 3, ldq = 3 * C + 1, ldo = C + 5;
                int R = 0, maxp = 0;
                for (int i = 0; i < sh.n_seqs; i++) {
                    R += sh.n[i];
                    maxp = sh.pos0[i] + sh.n[i] > maxp ? sh.pos0[i] + sh.n[i] : maxp;
                }
                /* odd shapes and the last ones: room for tiles of
                 * GPT2K_ATT_ROWS rows */
                const int sstride = s % 2 || s >= 10 ? GPT2K_ATT_ROWS * (maxp + 7) : maxp + 7;
                float *q = falloc((size_t)R * ldq), *o1 = falloc((size_t)R * ldo);
                float *o2 = falloc((size_t)R * ldo), *scratch = falloc((size_t)nt * sstride);
                int *seq = xmalloc(sizeof(int) * R), *pos = xmalloc(sizeof(int) * R);
                int64_t *cost = xmalloc(sizeof(int64_t) * (R + 1));
                paged_cache pc[4];
                float *kc[4], *vc[4];
                gpt2k_kv_view views[4];
                for (size_t i = 0; i < (size_t)R * ldq; i++)
                    q[i] = urand(-2, 2);
                for (int i = 0, r = 0; i < sh.n_seqs; i++) {
                    const int P = sh.pos0[i] + sh.n[i];
                    kc[i] = falloc((size_t)P * ld);
                    vc[i] = falloc((size_t)P * ld);
                    for (size_t e = 0; e < (size_t)P * ld; e++) {
                        kc[i][e] = urand(-1, 1);
                        vc[i][e] = urand(-1, 1);
                    }
                    /* shapes 1, 2 mod 3: each head's positions together in a
                 * block; 2 mod 3: keys transposed too */
                    paged_make(&pc[i], kc[i], vc[i], P, ld, sh.bs, s % 3 || s >= 10 ? sh.HD : 0,
                               s % 3 == 2 || s >= 10);
                    views[i] = pc[i].view;
                    for (int j = 0; j < sh.n[i]; j++, r++) {
                        seq[r] = i;
                        pos[r] = sh.pos0[i] + j;
                    }
                }
                ffill(o1, (size_t)R * ldo, SENTINEL);
                ffill(o2, (size_t)R * ldo, SENTINEL);
                gpt2k_attention(pool, ops, o1, ldo, q, ldq, views, seq, pos, R, sh.NH, sh.HD,
                                scratch, sstride, cost);
                const float scale = 1.0f / sqrtf((float)sh.HD);
                for (int r = 0; r < R; r++)
                    for (int h = 0; h < sh.NH; h++)
                        ops->attention_head(o2 + (size_t)r * ldo + h * sh.HD,
                                            q + (size_t)r * ldq + h * sh.HD, &views[seq[r]],
                                            h * sh.HD, pos[r] + 1, sh.HD, scale, scratch);
                char ctx[160];
                snprintf(ctx, sizeof ctx, "gpt2k_attention %s threads=%d shape %zu (%d seqs, %d rows)",
                         gpt2k_isa_name(ops->isa), nt, s, sh.n_seqs, R);
                /* tiled or not, a row's result is the one it gets alone */
                for (size_t i = 0; i < (size_t)R * ldo; i++)
                    CHECK(memcmp(&o1[i], &o2[i], sizeof(float)) == 0,
                          "%s: element %zu = %.9g, per-head %.9g", ctx, i, o1[i], o2[i]);

                /* Causality and sequence isolation against the oracle on each
                 * row's own contiguous cache, positions 0 .. pos only. */
                float *want = falloc(sh.HD);
                double *tol = xmalloc(sh.HD * sizeof(double));
                for (int r = 0; r < R; r++)
                    for (int h = 0; h < sh.NH; h++) {
                        attn_oracle(want, tol, q + (size_t)r * ldq + h * sh.HD,
                                    kc[seq[r]] + h * sh.HD, ld, vc[seq[r]] + h * sh.HD, ld,
                                    pos[r] + 1, sh.HD, scale);
                        expect_close(o1 + (size_t)r * ldo + h * sh.HD, want, tol, sh.HD, sh.HD,
                                     "%s causal check row=%d h=%d", ctx, r, h);
                    }
                free(want), free(tol);
                for (int i = 0; i < sh.n_seqs; i++) {
                    paged_free(&pc[i]);
                    free(kc[i]), free(vc[i]);
                }
                free(q), free(o1), free(o2), free(scratch), free(seq), free(pos), free(cost);
            }
        gpt2k_pool_free(pool);
    }
}
END_TEST

/* ---- suite ------------------------------------------------------------------------------ */

static Suite *kernels_suite(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc;

    tc = tcase_create("cpu");
    tcase_add_test(tc, test_cpu_features);
    suite_add_tcase(s, tc);

    tc = tcase_create("f16");
    tcase_set_timeout(tc, TIMEOUT_S);
    tcase_add_test(tc, test_f16_exhaustive);
    tcase_add_test(tc, test_f16_rounding);
    tcase_add_test(tc, test_to_f16_op);
#if defined(__x86_64__) && defined(__GNUC__)
    tcase_add_test(tc, test_f16_vs_hardware);
#endif
    suite_add_tcase(s, tc);

    tc = tcase_create("matmul");
    tcase_set_timeout(tc, TIMEOUT_S);
    tcase_add_loop_test(tc, test_matmul_f32_sweep, 0, NK_LIST);
    tcase_add_loop_test(tc, test_matmul_f16_sweep, 0, NK_LIST);
    tcase_add_test(tc, test_matmul_blocked);
    tcase_add_test(tc, test_matmul_avx512_vs_avx2);
    tcase_add_test(tc, test_pack_weights);
    suite_add_tcase(s, tc);

    tc = tcase_create("pointwise");
    tcase_set_timeout(tc, TIMEOUT_S);
    tcase_add_loop_test(tc, test_layernorm, 0, NC_LIST);
    tcase_add_loop_test(tc, test_gelu, 0, NNV_LIST);
    tcase_add_test(tc, test_gelu_dense);
    tcase_add_loop_test(tc, test_add, 0, NNV_LIST);
    tcase_add_test(tc, test_argmax);
    suite_add_tcase(s, tc);

    tc = tcase_create("attention");
    tcase_set_timeout(tc, TIMEOUT_S);
    tcase_add_loop_test(tc, test_attention_head, 0, NHD_LIST);
    tcase_add_loop_test(tc, test_attention_rows, 0, 18);
    suite_add_tcase(s, tc);

    tc = tcase_create("parallel");
    tcase_set_timeout(tc, TIMEOUT_S);
    tcase_add_test(tc, test_threadpool);
    tcase_add_test(tc, test_parallel_matmul);
    tcase_add_test(tc, test_parallel_rows);
    tcase_add_test(tc, test_parallel_attention);
    tcase_add_test(tc, test_matmul_rows_independent);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    find_isas();
    SRunner *sr = srunner_create(kernels_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
