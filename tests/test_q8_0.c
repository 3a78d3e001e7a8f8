/* Q8_0 tests: the reference quantizer against a slow definition written here
 * (double math, explicit tie handling, its own fp16 rounding); the decode
 * error bound; every SIMD quantizer byte for byte against the reference;
 * every SIMD matmul against the reference, which is checked against an exact
 * oracle; the parallel driver bit for bit against its own table's slice
 * kernel. Both AVX-512 matmul variants (with and without VNNI) are tested
 * where the CPU runs them; an ISA this machine cannot run prints a SKIP line. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel_testutil.h"
#include "kernels.h"
#include "q8_0_internal.h"

#define QK GPT2K_QK8_0
#define TIMEOUT_S 600        /* per test case; ASan builds are ~10x slower */

typedef gpt2k_block_q8_0 blk;

static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* The tables under test beside the reference, each with a name. */
typedef struct {
    const gpt2k_ops *ops;
    const char *name;
} table;
static table g_simd[4];
static int g_nsimd;

static void find_tables(void)
{
    if (gpt2k_cpu_supports(GPT2K_ISA_AVX2) && gpt2k_ops_avx2())
        g_simd[g_nsimd++] = (table){gpt2k_ops_avx2(), "avx2"};
    else
        printf("test_q8_0: SKIP avx2: %s\n",
               gpt2k_cpu_supports(GPT2K_ISA_AVX2) ? "not compiled in" : "not supported by this CPU/OS");
    if (!gpt2k_cpu_supports(GPT2K_ISA_AVX512)) {
        printf("test_q8_0: SKIP avx512 (bw and vnni variants): not supported by this CPU/OS\n");
    } else {
        if (gpt2k_ops_avx512_variant(0))
            g_simd[g_nsimd++] = (table){gpt2k_ops_avx512_variant(0), "avx512bw"};
        else
            printf("test_q8_0: SKIP avx512bw: not compiled in\n");
        if (!gpt2k_cpu_has_vnni())
            printf("test_q8_0: SKIP avx512vnni: this CPU has no AVX512_VNNI\n");
        else if (gpt2k_ops_avx512_variant(1))
            g_simd[g_nsimd++] = (table){gpt2k_ops_avx512_variant(1), "avx512vnni"};
        else
            printf("test_q8_0: SKIP avx512vnni: not compiled in\n");
    }
    printf("test_q8_0: testing scalar");
    for (int i = 0; i < g_nsimd; i++)
        printf(" %s", g_simd[i].name);
    printf("\n");
    fflush(stdout);
}

/* ---- the slow definition of the encoding ------------------------------------ */

/* fp16 bits of v, rounded to nearest even, by arithmetic on doubles: scale v
 * to an integer count of fp16 quanta at its exponent, round that with an
 * explicit tie rule, rebuild the bits. */
static uint16_t slow_f16_bits(double v)
{
    uint16_t sign = signbit(v) ? 0x8000 : 0;
    double a = fabs(v);
    if (a >= 65520.0) /* halfway to 2^16 and beyond: the tie goes to even, inf */
        return sign | 0x7c00;
    if (a == 0.0)
        return sign;
    int e;
    frexp(a, &e); /* a in [2^(e-1), 2^e) */
    int E = e - 1 < -14 ? -14 : e - 1;
    double quantum = ldexp(1.0, E - 10); /* subnormals share 2^-24 */
    double r = a / quantum, fl = floor(r), frac = r - fl;
    if (frac > 0.5 || (frac == 0.5 && fmod(fl, 2.0) == 1.0))
        fl += 1.0;
    /* fl < 2048; fl == 2048 means the mantissa carried into the exponent */
    if (fl >= 2048.0) {
        fl /= 2.0;
        E++;
    }
    if (fl < 1024.0) /* subnormal (E == -14) or zero */
        return sign | (uint16_t)fl;
    return sign | (uint16_t)((E + 15) << 10 | ((int)fl - 1024));
}

/* One block the slow way. amax, d and id as the definition's float steps;
 * each is done in double and rounded once to float, which gives the float
 * result exactly (for / and * of floats, double rounding through double is
 * innocuous: 53 >= 2 * 24 + 2). q: round half away from zero by floor(|v| +
 * 0.5), exact in double; a non-finite v gives 0. */
static void slow_quantize_block(blk *y, const float *x)
{
    float amax = 0.0f;
    for (int i = 0; i < QK; i++)
        if (fabsf(x[i]) > amax)
            amax = fabsf(x[i]);
    float d = (float)((double)amax / 127.0);
    float id = d != 0.0f ? (float)(1.0 / (double)d) : 0.0f;
    y->d = slow_f16_bits(d);
    for (int i = 0; i < QK; i++) {
        float v = (float)((double)x[i] * (double)id);
        if (!isfinite(v)) {
            y->qs[i] = 0;
            continue;
        }
        double r = floor(fabs((double)v) + 0.5);
        y->qs[i] = (int8_t)(v < 0 ? -r : r);
    }
}

/* Fails unless a and b (n values) hold the same blocks; names the first
 * difference and the input block. */
static void expect_same_blocks(const blk *got, const blk *want, const float *x, int nblk,
                               const char *what)
{
    for (int b = 0; b < nblk; b++) {
        for (int i = 0; i < QK; i++)
            CHECK(got[b].qs[i] != -128, "%s: block %d q[%d] = -128 (x = %.9g)", what, b, i,
                  x[b * QK + i]);
        if (got[b].d != want[b].d)
            ck_abort_msg("%s: block %d: d = 0x%04x, want 0x%04x (amax-scale %.9g)", what, b,
                         got[b].d, want[b].d, (double)gpt2k_f16_to_f32(want[b].d));
        for (int i = 0; i < QK; i++)
            if (got[b].qs[i] != want[b].qs[i])
                ck_abort_msg("%s: block %d q[%d] = %d, want %d (x = %.9g = 0x%08x)", what, b, i,
                             got[b].qs[i], want[b].qs[i], x[b * QK + i],
                             fbits(x[b * QK + i]));
    }
}

/* Quantizes x (nblk blocks) with the slow definition, the reference and
 * every SIMD table; all must agree byte for byte. */
static void check_quantize(const float *x, int nblk, const char *what)
{
    blk *want = xmalloc(nblk * sizeof(blk)), *got = xmalloc((nblk + 1) * sizeof(blk));
    char ctx[200];
    for (int b = 0; b < nblk; b++)
        slow_quantize_block(want + b, x + b * QK);
    /* one guard block past the end */
    memset(got, 0x5a, (nblk + 1) * sizeof(blk));
    gpt2k_quantize_q8_0_ref(got, x, nblk * QK);
    snprintf(ctx, sizeof ctx, "%s [scalar ref vs slow definition]", what);
    expect_same_blocks(got, want, x, nblk, ctx);
    CHECK(gpt2k_ops_ref()->quantize_q8_0 == gpt2k_quantize_q8_0_ref, "ref table quantize");
    for (int t = 0; t < g_nsimd; t++) {
        memset(got, 0x5a, (nblk + 1) * sizeof(blk));
        g_simd[t].ops->quantize_q8_0(got, x, nblk * QK);
        snprintf(ctx, sizeof ctx, "%s [%s vs scalar ref]", what, g_simd[t].name);
        expect_same_blocks(got, want, x, nblk, ctx);
        const unsigned char *g = (const unsigned char *)(got + nblk);
        for (size_t i = 0; i < sizeof(blk); i++)
            CHECK(g[i] == 0x5a, "%s: wrote past the last block", ctx);
    }
    free(want);
    free(got);
}

/* ---- quantize ------------------------------------------------------------------ */

START_TEST(test_quantize_random)
{
    enum { NB = 512 };
    float *x = xmalloc(NB * QK * sizeof(float));
    /* Block scales from 1e-30 to 1e30 so d runs through fp16 zero, subnormal,
     * normal and inf; some blocks sparse, some one-signed. */
    for (int rep = 0; rep < 8; rep++) {
        for (int b = 0; b < NB; b++) {
            float scale = powf(10.0f, urand(-30.0f, 30.0f));
            int kind = (int)(rand_u64() % 4);
            for (int i = 0; i < QK; i++) {
                float v = urand(-1, 1) * scale;
                if (kind == 1 && rand_u64() % 3)
                    v = 0.0f;
                if (kind == 2)
                    v = fabsf(v);
                x[b * QK + i] = v;
            }
        }
        check_quantize(x, NB, "random blocks");
    }
    /* plain activations, the common case */
    for (int i = 0; i < NB * QK; i++)
        x[i] = urand(-3, 3);
    check_quantize(x, NB, "uniform [-3, 3]");
    free(x);
}
END_TEST

/* One block from a generator, checked alone. */
static void check_block(const float *x, const char *what)
{
    check_quantize(x, 1, what);
}

START_TEST(test_quantize_adversarial)
{
    float x[QK];
    char what[128];

    for (int i = 0; i < QK; i++)
        x[i] = 0.0f;
    check_block(x, "all zeros");
    blk y;
    gpt2k_quantize_q8_0_ref(&y, x, QK);
    ck_assert_uint_eq(y.d, 0);
    for (int i = 0; i < QK; i++)
        ck_assert_int_eq(y.qs[i], 0);
    x[3] = -0.0f;
    check_block(x, "zeros with -0");

    /* one huge outlier: the rest round to 0 */
    for (int i = 0; i < QK; i++)
        x[i] = urand(-1e-3f, 1e-3f);
    x[17] = -1e30f;
    check_block(x, "one huge outlier");
    gpt2k_quantize_q8_0_ref(&y, x, QK);
    ck_assert_int_eq(y.qs[17], -127);

    /* all equal, both signs: q = +-127 */
    for (int s = -1; s <= 1; s += 2) {
        for (int i = 0; i < QK; i++)
            x[i] = 0.3f * (float)s;
        check_block(x, "all equal");
        gpt2k_quantize_q8_0_ref(&y, x, QK);
        for (int i = 0; i < QK; i++)
            ck_assert_int_eq(y.qs[i], 127 * s);
    }

    /* Exact ties of x * id: with amax = 127, d = id = 1 and x * id = x; with
     * amax = 254, id = 0.5 exactly. Every +-(j + 0.5), j = 0..126, must round
     * away from zero. */
    for (int scale = 1; scale <= 2; scale++)
        for (int t0 = 0; t0 < 2 * 127; t0 += QK - 1) {
            x[0] = 127.0f * (float)scale;
            for (int i = 1; i < QK; i++) {
                int t = t0 + i - 1 < 2 * 127 ? t0 + i - 1 : 0; /* t: j = t / 2, sign t & 1 */
                x[i] = (t & 1 ? -1.0f : 1.0f) * ((float)(t / 2) + 0.5f) * (float)scale;
            }
            snprintf(what, sizeof what, "ties from %d, id = %g", t0, 1.0 / scale);
            check_block(x, what);
            gpt2k_quantize_q8_0_ref(&y, x, QK);
            for (int i = 1; i < QK; i++) {
                float v = x[i] / (float)scale;
                int want = v > 0 ? (int)v + 1 : (int)v - 1;
                ck_assert_msg(y.qs[i] == want, "tie %g -> %d, want %d", v, y.qs[i], want);
            }
        }
    /* just below and above 0.5: 0.5 - 2^-25 must give 0 (floor(|v| + 0.5) in
     * float arithmetic would give 1) */
    x[0] = 127.0f;
    for (int i = 1; i < QK; i++)
        x[i] = (i & 1 ? 1.0f : -1.0f) * (i < 16 ? 0.49999997f : 0.50000006f);
    check_block(x, "around 0.5");

    /* tiny blocks: d an fp16 subnormal; d rounding to fp16 0; d a float
     * subnormal; 1/d overflowing to inf (q = 0 by definition) */
    static const float tiny[] = {1e-3f, 7.7e-3f, 7.8e-3f, 1e-5f, 1e-6f, 3e-6f, 4e-6f,
                                 1e-20f, 1e-36f, 3.7e-37f, 3.8e-37f, 1e-38f, 1e-40f, 1e-45f};
    for (size_t t = 0; t < sizeof tiny / sizeof tiny[0]; t++) {
        for (int i = 0; i < QK; i++)
            x[i] = urand(-1, 1) * tiny[t];
        x[5] = tiny[t];
        snprintf(what, sizeof what, "tiny amax %g", (double)tiny[t]);
        check_block(x, what);
    }

    /* the largest finite floats: d overflows fp16 to inf, q still +-127 */
    for (int i = 0; i < QK; i++)
        x[i] = i % 3 == 0 ? FLT_MAX : i % 3 == 1 ? -FLT_MAX : urand(-1, 1) * FLT_MAX;
    check_block(x, "max finite floats");
    gpt2k_quantize_q8_0_ref(&y, x, QK);
    ck_assert_uint_eq(y.d, 0x7c00);
    ck_assert_int_eq(y.qs[0], 127);
    ck_assert_int_eq(y.qs[1], -127);
    x[4] = 65504.0f * 127.0f;
    check_block(x, "max finite floats 2");

    /* d at the fp16 overflow boundary: amax / 127 around 65504 and 65520 */
    static const float big[] = {65504.0f * 127.0f, 65519.0f * 127.0f, 65520.0f * 127.0f,
                                65536.0f * 127.0f};
    for (size_t t = 0; t < sizeof big / sizeof big[0]; t++) {
        for (int i = 0; i < QK; i++)
            x[i] = urand(-1, 1) * big[t];
        x[9] = -big[t];
        snprintf(what, sizeof what, "amax %g", (double)big[t]);
        check_block(x, what);
    }

    /* infinities (defined: d = inf, id = 0, q = 0) */
    for (int i = 0; i < QK; i++)
        x[i] = urand(-1, 1);
    x[2] = INFINITY;
    check_block(x, "an infinity");
    x[2] = -INFINITY;
    check_block(x, "a -infinity");
}
END_TEST

/* Every float in [-127, 127] on a stride of bit patterns, plus +-3 ulps
 * around every k + 0.5: with a 127 anchor in the block, x * id = x exactly,
 * so this exercises the rounding itself on ~2 million values. */
START_TEST(test_quantize_rounding_sweep)
{
    enum { NB = 4096 };
    float *x = xmalloc(NB * QK * sizeof(float));
    int nb = 0, i = 0;
    const uint32_t lim = fbits(127.0f);
    for (uint64_t u = 0; u <= 2ull * lim; u += 2039) {
        uint32_t mag = (uint32_t)(u >> 1);
        float v = bits_f(mag | (u & 1 ? 0x80000000u : 0));
        if (i == 0)
            x[nb * QK + i++] = 127.0f;
        x[nb * QK + i++] = v;
        if (i == QK) {
            i = 0;
            if (++nb == NB) {
                check_quantize(x, nb, "rounding sweep");
                nb = 0;
            }
        }
    }
    for (int k = 0; k <= 127; k++)
        for (int du = -3; du <= 3; du++)
            for (int s = -1; s <= 1; s += 2) {
                float v = bits_f((uint32_t)((int64_t)fbits((float)k + 0.5f) + du)) * (float)s;
                if (fabsf(v) > 127.0f)
                    continue;
                if (i == 0)
                    x[nb * QK + i++] = -127.0f;
                x[nb * QK + i++] = v;
                if (i == QK) {
                    i = 0;
                    if (++nb == NB) {
                        check_quantize(x, nb, "near-tie sweep");
                        nb = 0;
                    }
                }
            }
    while (i != 0 && i < QK)
        x[nb * QK + i++] = 0.0f;
    if (i)
        nb++;
    if (nb)
        check_quantize(x, nb, "sweep rest");
    free(x);
}
END_TEST

/* Decode error. q = round(x * id) gives |x * id - q| <= 1/2; x * id and
 * d * id = 1 + e are each one float rounding off (|e| <= 2u, u = 2^-24), so
 * |x - d q| <= d/2 + 3u amax. The stored scale d16 = fp16(d) moves every
 * value by |d - d16| |q| <= 127 |d - d16|, and the final float product
 * rounds once more (<= u |x'|). Bound per element:
 *   |x - d16 * q| <= d/2 + 127 |d - d16| + 4u amax + u |d16 q|
 * (d16 = 0 when d underflows fp16: then the error is |x| <= amax = 127 d,
 * inside the bound). Blocks whose d16 overflows to inf decode to inf/nan and
 * are outside the format's range; they are skipped here. */
START_TEST(test_dequantize_bound)
{
    enum { NB = 2048 };
    float *x = xmalloc(NB * QK * sizeof(float)), *xr = xmalloc(NB * QK * sizeof(float));
    blk *y = xmalloc(NB * sizeof(blk));
    const double u = FLT_EPSILON / 2;
    for (int rep = 0; rep < 4; rep++) {
        for (int b = 0; b < NB; b++) {
            float scale = powf(10.0f, urand(-12.0f, 6.0f));
            for (int i = 0; i < QK; i++)
                x[b * QK + i] = urand(-1, 1) * scale;
        }
        gpt2k_quantize_q8_0_ref(y, x, NB * QK);
        gpt2k_dequantize_q8_0(xr, y, NB * QK);
        int skipped = 0;
        for (int b = 0; b < NB; b++) {
            float amax = 0.0f;
            for (int i = 0; i < QK; i++)
                amax = fmaxf(amax, fabsf(x[b * QK + i]));
            const double d = amax / 127.0f, d16 = gpt2k_f16_to_f32(y[b].d);
            if (isinf(d16)) {
                skipped++;
                continue;
            }
            for (int i = 0; i < QK; i++) {
                const double xi = x[b * QK + i], got = xr[b * QK + i];
                CHECK(got == (double)(float)(d16 * y[b].qs[i]), "dequantize is not d * q");
                double bound = d / 2 + 127 * fabs(d - d16) + 4 * u * amax + u * fabs(got);
                CHECK(fabs(xi - got) <= bound,
                      "block %d [%d]: x = %.9g decodes to %.9g (|err| %.3g > bound %.3g, d %.6g, "
                      "d16 %.6g)",
                      b, i, xi, got, fabs(xi - got), bound, d, d16);
            }
        }
        CHECK(skipped == 0, "scales chosen to stay inside fp16, yet %d blocks overflowed", skipped);
    }
    /* the bound is not vacuous: for ordinary blocks the error is about d/2 */
    free(x), free(xr), free(y);
}
END_TEST

/* ---- matmul ---------------------------------------------------------------------- */

/* Random Q8_0 rows: a block scale spread over 10^-3..10^1, values from the
 * reference quantizer. */
static void random_rows(blk *q, int rows, int K, float *tmp)
{
    const int nb = K / QK;
    for (int r = 0; r < rows; r++) {
        for (int b = 0; b < nb; b++) {
            float scale = powf(10.0f, urand(-3.0f, 1.0f));
            for (int i = 0; i < QK; i++)
                tmp[b * QK + i] = urand(-1, 1) * scale;
        }
        gpt2k_quantize_q8_0_ref(q + (size_t)r * nb, tmp, K);
    }
}

typedef struct {
    int M, K, N, n0, n1, ldo, bias, acc;
} mm_case;

/* Runs one matmul on a fresh guarded output holding prev in [n0, n1);
 * copies the [M][n1 - n0] results to res and checks the guards. */
static void mm_run(const gpt2k_ops *ops, const mm_case *c, const blk *xq, const blk *wq,
                   const float *bias, const float *prev, float *res, const char *ctx, int packed)
{
    const int W = c->n1 - c->n0;
    size_t nbuf = GUARD + (size_t)c->M * c->ldo + GUARD;
    float *buf = xmalloc(nbuf * sizeof(float));
    for (size_t i = 0; i < nbuf; i++)
        buf[i] = SENTINEL;
    float *out = buf + GUARD;
    for (int m = 0; m < c->M; m++)
        for (int j = 0; j < W; j++)
            out[(size_t)m * c->ldo + c->n0 + j] = prev[(size_t)m * W + j];
    if (packed)
        ops->matmul_q8_0_packed(out, c->ldo, xq, wq, c->bias ? bias : NULL, c->M, c->K, c->n0,
                                c->n1, c->acc);
    else
        ops->matmul_q8_0(out, c->ldo, xq, wq, c->bias ? bias : NULL, c->M, c->K, c->n0, c->n1,
                         c->acc);
    for (size_t i = 0; i < nbuf; i++) {
        size_t k = i - GUARD, m = k / c->ldo, n = k % c->ldo;
        int inside = i >= GUARD && m < (size_t)c->M && n >= (size_t)c->n0 && n < (size_t)c->n1;
        if (!inside && fbits(buf[i]) != fbits(SENTINEL))
            ck_abort_msg("%s: guard/padding value at buffer index %zu overwritten with %.9g", ctx,
                         i, buf[i]);
    }
    for (int m = 0; m < c->M; m++)
        for (int j = 0; j < W; j++)
            res[(size_t)m * W + j] = out[(size_t)m * c->ldo + c->n0 + j];
    free(buf);
}

static void expect_close(const float *got, const float *want, const double *tol, size_t n,
                         size_t width, const char *ctx)
{
    size_t nbad = 0, first = 0;
    double maxd = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (isnan(got[i]) || isnan(want[i]))
            d = INFINITY;
        maxd = d > maxd ? d : maxd;
        if (!(d <= (tol ? tol[i] : 0.0)) && nbad++ == 0)
            first = i;
    }
    if (nbad)
        ck_abort_msg("%s: %zu of %zu values differ; first at [%zu][%zu]: got %.9g want %.9g "
                     "(|diff| %.3g > tol %.3g); max |diff| %.3g",
                     ctx, nbad, n, first / width, first % width, got[first], want[first],
                     fabs((double)got[first] - want[first]), tol ? tol[first] : 0.0, maxd);
}

/* Tolerances. Each block pair's integer sum is exact (int32), and so is the
 * scale product dw * dx (two 11-bit fp16 significands fit a float's 24), so
 * the oracle E = sum_b isum_b * dw_b * dx_b (+ bias + prev) is exact up to
 * double rounding. What remains is fp32 rounding of the sums over blocks:
 *  - scalar ref: one rounding per block term and per addition, in order:
 *    |ref - E| <= u (nb + 2) (T + |bias| + |prev|), T = sum_b |isum_b s_b|;
 *  - SIMD: each lane sums its own partial integer sums (8 or 16 per block)
 *    over the blocks by FMA, then a fixed tree of <= 6 additions (chains,
 *    256/512 fold, hsum) and a K-chunk addition per chunk past the first.
 *    Its terms are bounded by A = sum_b |s_b| sum_i |w_i x_i| >= T, so
 *    |simd - E| <= u (nb + 6 + nch) (A + |bias| + |prev|).
 * SIMD is compared with the ref: tol = 2u (nb + 8 + nch) (A + |bias| + |prev|),
 * the sum of the two bounds, rounded up. A dropped, doubled or mis-scaled
 * block moves the result by ~|isum_b s_b| ~ T / nb, far above 2u nb A. */
static void check_matmul_case(const mm_case *c)
{
    const int M = c->M, K = c->K, N = c->N, W = c->n1 - c->n0, nb = K / QK;
    const size_t rb = gpt2k_q8_0_row_bytes(K);
    ck_assert_uint_eq(rb, (size_t)nb * sizeof(blk));
    float *tmp = xmalloc(((size_t)K + 1) * sizeof(float));
    blk *xq = xmalloc(M * rb + 1), *wq = xmalloc(N * rb + 1);
    float *bias = xmalloc(((size_t)N + 1) * sizeof(float));
    float *prev = xmalloc(((size_t)M * W + 1) * sizeof(float));
    float *want = xmalloc(((size_t)M * W + 1) * sizeof(float));
    float *got_ref = xmalloc(((size_t)M * W + 1) * sizeof(float));
    float *got = xmalloc(((size_t)M * W + 1) * sizeof(float));
    double *tol_ref = xmalloc(((size_t)M * W + 1) * sizeof(double));
    double *tol = xmalloc(((size_t)M * W + 1) * sizeof(double));

    random_rows(xq, M, K, tmp);
    random_rows(wq, N, K, tmp);
    for (int n = 0; n < N; n++) {
        int live = n >= c->n0 && n < c->n1;
        bias[n] = live ? urand(-1, 1) : NAN;
        for (int b = 0; b < nb; b++) {
            blk *wb = wq + (size_t)n * nb + b;
            if (!live)
                wb->d = 0x7e00; /* NaN scale: a kernel that reads this row shows it */
            else if (rand_u64() % 8 == 0)
                wb->qs[rand_u64() % QK] = -128; /* weight files may hold -128 (header) */
        }
    }
    for (int m = 0; m < M; m++)
        for (int b = 0; b < nb; b++)
            for (int i = 0; i < QK; i++)
                CHECK(xq[(size_t)m * nb + b].qs[i] != -128, "activation quantizer gave -128");
    for (size_t i = 0; i < (size_t)M * W; i++)
        prev[i] = urand(-2, 2);

    const double u = FLT_EPSILON / 2;
    const int nch = nb > 256 ? (nb + 255) / 256 : 1;
    for (int m = 0; m < M; m++)
        for (int j = 0; j < W; j++) {
            const int n = c->n0 + j;
            double e = 0.0, T = 0.0, A = 0.0;
            for (int b = 0; b < nb; b++) {
                const blk *xb = xq + (size_t)m * nb + b, *wb = wq + (size_t)n * nb + b;
                long isum = 0, iabs = 0;
                for (int i = 0; i < QK; i++) {
                    isum += (long)wb->qs[i] * xb->qs[i];
                    iabs += labs((long)wb->qs[i] * xb->qs[i]);
                }
                double s = (double)gpt2k_f16_to_f32(wb->d) * gpt2k_f16_to_f32(xb->d);
                CHECK(s == (double)(gpt2k_f16_to_f32(wb->d) * gpt2k_f16_to_f32(xb->d)),
                      "fp16 x fp16 not exact in float");
                e += (double)isum * s;
                T += fabs((double)isum * s);
                A += (double)iabs * fabs(s);
            }
            double extra = 0.0;
            if (c->bias) {
                e += bias[n];
                extra += fabs(bias[n]);
            }
            if (c->acc) {
                e += prev[(size_t)m * W + j];
                extra += fabs(prev[(size_t)m * W + j]);
            }
            want[(size_t)m * W + j] = (float)e;
            /* + one float rounding of the result itself; FLT_MIN: all-zero sums */
            tol_ref[(size_t)m * W + j] = u * (nb + 2) * (T + extra) + u * fabs(e) + FLT_MIN;
            tol[(size_t)m * W + j] = 2 * u * (nb + 8 + nch) * (A + extra) + FLT_MIN;
        }

    char ctx[200], ctx2[260];
    snprintf(ctx, sizeof ctx, "matmul_q8_0 M=%d K=%d N=%d n=[%d,%d) ldo=%d bias=%d acc=%d", M, K,
             N, c->n0, c->n1, c->ldo, c->bias, c->acc);
    snprintf(ctx2, sizeof ctx2, "%s [scalar vs exact oracle]", ctx);
    mm_run(gpt2k_ops_ref(), c, xq, wq, bias, prev, got_ref, ctx2, 0);
    expect_close(got_ref, want, tol_ref, (size_t)M * W, (size_t)W, ctx2);
    /* the packed layout (n0 on a panel): the bits of the plain layout */
    blk *wp = NULL;
    float *got_p = xmalloc(((size_t)M * W + 1) * sizeof(float));
    for (int t = 0; t < g_nsimd; t++) {
        const gpt2k_ops *ops = g_simd[t].ops;
        snprintf(ctx2, sizeof ctx2, "%s [%s vs scalar]", ctx, g_simd[t].name);
        mm_run(ops, c, xq, wq, bias, prev, got, ctx2, 0);
        /* the column-panel kernels sum in the reference's order: its bits */
        expect_close(got, got_ref, ops->q8_layout == GPT2K_Q8_COLS16 && K <= 4096 ? NULL : tol,
                     (size_t)M * W, (size_t)W, ctx2);
        if (!ops->matmul_q8_0_packed || c->n0 % gpt2k_q8_0_panel_rows(ops->q8_layout))
            continue;
        free(wp);
        wp = xmalloc(gpt2k_q8_0_packed_bytes(ops->q8_layout, N, K) + 1);
        gpt2k_q8_0_pack_weights(ops->q8_layout, wp, wq, N, K);
        snprintf(ctx2, sizeof ctx2, "%s [%s packed vs plain, bit for bit]", ctx, g_simd[t].name);
        mm_run(g_simd[t].ops, c, xq, wp, bias, prev, got_p, ctx2, 1);
        expect_close(got_p, got, NULL, (size_t)M * W, (size_t)W, ctx2);
    }
    free(tmp), free(xq), free(wq), free(bias), free(prev), free(want), free(got_ref), free(got);
    free(tol_ref), free(tol), free(wp), free(got_p);
}

static const int K_LIST[] = {32, 64, 96, 768, 3072};
#define NK_LIST ((int)(sizeof K_LIST / sizeof K_LIST[0]))
static const int M_LIST[] = {1, 2, 3, 4, 5, 7, 16, 33, 130};
#define NM_LIST ((int)(sizeof M_LIST / sizeof M_LIST[0]))
/* N, n0, n1: one column, odd and even full widths, interior sub-ranges, and
 * ranges of 10 and 11.5 panels of 16 (decode tiles read runs of panels
 * side by side, the leftover panels and a partial one after them) */
static const int N_LIST[][3] = {{1, 0, 1},  {19, 0, 19},     {40, 5, 37},   {48, 16, 48},
                                {6, 0, 6},  {23, 1, 22},     {160, 0, 160}, {200, 16, 200}};
#define NN_LIST ((int)(sizeof N_LIST / sizeof N_LIST[0]))

START_TEST(test_matmul_sweep)
{
    const int K = K_LIST[_i];
    int variant = 0;
    for (int mi = 0; mi < NM_LIST; mi++)
        for (int ni = 0; ni < NN_LIST; ni++)
            for (int flags = 0; flags < 4; flags++, variant++) {
                mm_case c = {M_LIST[mi], K, N_LIST[ni][0], N_LIST[ni][1], N_LIST[ni][2],
                             N_LIST[ni][0], flags & 1, flags >> 1};
                if (variant & 1)
                    c.ldo = c.N + 3; /* padded, misaligned output rows */
                check_matmul_case(&c);
            }
}
END_TEST

/* K past one K chunk (256 blocks) in both paths, and K = 0 (out = bias). */
START_TEST(test_matmul_edges)
{
    static const mm_case cases[] = {
        {1, 8224, 7, 0, 7, 7, 1, 0},   {3, 8224, 9, 2, 9, 11, 1, 1},
        {6, 8224, 7, 0, 7, 8, 0, 1},   {9, 16416, 4, 1, 4, 4, 1, 0},
        {1, 0, 5, 0, 5, 5, 1, 0},      {5, 0, 5, 1, 5, 6, 1, 1},
        {2, 32, 3, 0, 3, 3, 0, 0},     {67, 64, 50, 3, 50, 53, 1, 1},
        {129, 32, 17, 0, 17, 17, 1, 0}, {64, 6400, 5, 0, 5, 5, 1, 1},
        /* the prefill tile past one K chunk on packed panels (n0 % 4 == 0) */
        {9, 16416, 8, 0, 8, 8, 1, 1},  {67, 8224, 6, 0, 6, 9, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_matmul_case(&cases[i]);
}
END_TEST

/* ---- parallel driver ----------------------------------------------------------- */

/* gpt2k_matmul_q8_0 with 1..3 threads must equal, bit for bit, the same
 * table quantizing every row itself and running its slice kernel over all
 * of [0, N) (threads only cut [0, N) differently); its qbuf must hold the
 * reference encoding; and it must be close to the reference pipeline. */
START_TEST(test_parallel_matmul_q8_0)
{
    static const int shapes[][3] = {{1, 768, 200}, {3, 64, 37},  {4, 96, 50},  {5, 768, 33},
                                    {33, 3072, 40}, {130, 96, 17}, {2, 32, 1},   {7, 3072, 65},
                                    {1, 3072, 48}, {16, 0, 9},    {2, 64, 1000}};
    for (int nt = 1; nt <= 3; nt++) {
        gpt2k_pool *pool = gpt2k_pool_create(nt);
        ck_assert_ptr_nonnull(pool);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int t = -1; t < g_nsimd; t++) {
                const gpt2k_ops *ops = t < 0 ? gpt2k_ops_ref() : g_simd[t].ops;
                const char *name = t < 0 ? "scalar" : g_simd[t].name;
                const int M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
                const int ldi = K + 3, ldo = N + 2, acc = (int)(s & 1), nb = K / QK;
                const size_t rb = gpt2k_q8_0_row_bytes(K);
                float *in = xmalloc(((size_t)M * ldi + 1) * sizeof(float));
                float *tmp = xmalloc(((size_t)K + 1) * sizeof(float));
                float *bias = xmalloc((size_t)N * sizeof(float));
                float *o1 = xmalloc((size_t)M * ldo * sizeof(float));
                float *o2 = xmalloc((size_t)M * ldo * sizeof(float));
                float *o3 = xmalloc((size_t)M * ldo * sizeof(float));
                blk *wq = xmalloc(N * rb + 1), *q1 = xmalloc(M * rb + 1), *q2 = xmalloc(M * rb + 1);
                for (size_t i = 0; i < (size_t)M * ldi; i++)
                    in[i] = urand(-2, 2);
                random_rows(wq, N, K, tmp);
                for (int i = 0; i < N; i++)
                    bias[i] = urand(-1, 1);
                for (size_t i = 0; i < (size_t)M * ldo; i++)
                    o1[i] = o2[i] = o3[i] = urand(-1, 1); /* padding too: must survive */
                memset(q1, 0x5a, M * rb + 1);
                gpt2k_matmul_q8_0(pool, ops, o1, ldo, in, ldi, wq, s & 2 ? NULL : bias, M, K, N,
                                  acc, q1);
                for (int m = 0; m < M; m++)
                    ops->quantize_q8_0(q2 + (size_t)m * nb, in + (size_t)m * ldi, K);
                ops->matmul_q8_0(o2, ldo, q2, wq, s & 2 ? NULL : bias, M, K, 0, N, acc);
                CHECK(memcmp(q1, q2, M * rb) == 0,
                      "gpt2k_matmul_q8_0 %s threads=%d M=%d K=%d: qbuf differs from %s's own "
                      "quantization",
                      name, nt, M, K, name);
                CHECK(((unsigned char *)q1)[M * rb] == 0x5a, "qbuf written past M rows");
                char ctx[200];
                snprintf(ctx, sizeof ctx, "gpt2k_matmul_q8_0 %s threads=%d M=%d K=%d N=%d acc=%d",
                         name, nt, M, K, N, acc);
                expect_close(o1, o2, NULL, (size_t)M * ldo, (size_t)ldo, ctx);
                if (ops->matmul_q8_0_packed) { /* the packed driver: the same bits */
                    blk *wp = xmalloc(gpt2k_q8_0_packed_bytes(ops->q8_layout, N, K) + 1);
                    float *o4 = xmalloc((size_t)M * ldo * sizeof(float));
                    memcpy(o4, o3, (size_t)M * ldo * sizeof(float)); /* o1's starting values */
                    gpt2k_q8_0_pack_weights(ops->q8_layout, wp, wq, N, K);
                    gpt2k_matmul_q8_0_packed(pool, ops, o4, ldo, in, ldi, wp, s & 2 ? NULL : bias,
                                             M, K, N, acc, q2);
                    char ctxp[220];
                    snprintf(ctxp, sizeof ctxp, "%s packed", ctx);
                    expect_close(o4, o1, NULL, (size_t)M * ldo, (size_t)ldo, ctxp);
                    free(wp), free(o4);
                }

                /* and near the reference pipeline (ref quantize + ref matmul) */
                for (int m = 0; m < M; m++)
                    gpt2k_quantize_q8_0_ref(q2 + (size_t)m * nb, in + (size_t)m * ldi, K);
                CHECK(memcmp(q1, q2, M * rb) == 0, "%s: qbuf differs from the reference", ctx);
                gpt2k_ops_ref()->matmul_q8_0(o3, ldo, q2, wq, s & 2 ? NULL : bias, M, K, 0, N,
                                             acc);
                double *tol = xmalloc((size_t)M * ldo * sizeof(double));
                for (int m = 0; m < M; m++)
                    for (int n = 0; n < ldo; n++) {
                        /* as in check_matmul_case, with |bias| + |prev| <= 2 taken
                         * as 4; the tight bounds are test_matmul_*'s business */
                        double a = 0.0;
                        for (int b = 0; n < N && b < nb; b++) {
                            const blk *xb = q2 + (size_t)m * nb + b,
                                      *wb = wq + (size_t)n * nb + b;
                            long iabs = 0;
                            for (int i = 0; i < QK; i++)
                                iabs += labs((long)wb->qs[i] * xb->qs[i]);
                            a += iabs * fabs((double)gpt2k_f16_to_f32(wb->d) *
                                             gpt2k_f16_to_f32(xb->d));
                        }
                        tol[(size_t)m * ldo + n] = FLT_EPSILON * (nb + 10) * (a + 4);
                    }
                expect_close(o1, o3, tol, (size_t)M * ldo, (size_t)ldo, ctx);
                free(tol);
                free(in), free(tmp), free(bias), free(o1), free(o2), free(o3);
                free(wq), free(q1), free(q2);
            }
        gpt2k_pool_free(pool);
    }
}
END_TEST

/* ---- dispatch ------------------------------------------------------------------- */

/* A row's result must not depend on the other rows of the call (the serving
 * engine's batched == alone promise): every M across the GEMV/tile boundary,
 * K spanning several scale chunks. Integer paths: exact. */
START_TEST(test_matmul_rows_independent)
{
    static const int Ms[] = {2, 4, 5, 8, 9, 16, 33};
    static const int Ks[] = {64, 3072, 9216};
    const int N = 21;
    for (int ki = 0; ki < 3; ki++) {
        const int K = Ks[ki], Mmax = 33;
        const size_t rb = gpt2k_q8_0_row_bytes(K);
        float *x = xmalloc(sizeof(float) * (size_t)Mmax * K), *wf = xmalloc(sizeof(float) * (size_t)N * K);
        char *xq = xmalloc(rb * Mmax), *wq = xmalloc(rb * N);
        float *bias = xmalloc(sizeof(float) * N), *all = xmalloc(sizeof(float) * (size_t)Mmax * N);
        float *one = xmalloc(sizeof(float) * N);
        for (size_t i = 0; i < (size_t)Mmax * K; i++)
            x[i] = urand(-1, 1);
        for (size_t i = 0; i < (size_t)N * K; i++)
            wf[i] = urand(-1, 1);
        for (int n = 0; n < N; n++)
            bias[n] = urand(-1, 1);
        for (int m = 0; m < Mmax; m++)
            gpt2k_quantize_q8_0_ref(xq + m * rb, x + (size_t)m * K, K);
        for (int n = 0; n < N; n++)
            gpt2k_quantize_q8_0_ref(wq + n * rb, wf + (size_t)n * K, K);
        for (int t = -1; t < g_nsimd; t++) {
            const gpt2k_ops *ops = t < 0 ? gpt2k_ops_ref() : g_simd[t].ops;
            char *wp = xmalloc(gpt2k_q8_0_packed_bytes(ops->q8_layout, N, K));
            gpt2k_q8_0_pack_weights(ops->q8_layout, wp, wq, N, K);
            for (int mi = 0; mi < (int)(sizeof Ms / sizeof Ms[0]); mi++) {
                const int M = Ms[mi];
                ops->matmul_q8_0(all, N, xq, wq, bias, M, K, 0, N, 0);
                for (int m = 0; m < M; m++) {
                    ops->matmul_q8_0(one, N, xq + m * rb, wq, bias, 1, K, 0, N, 0);
                    ck_assert_msg(memcmp(one, all + (size_t)m * N, sizeof(float) * N) == 0,
                                  "%s K=%d M=%d: row %d differs from the row alone",
                                  t < 0 ? "scalar" : g_simd[t].name, K, M, m);
                }
                if (!ops->matmul_q8_0_packed)
                    continue;
                /* packed: every row, alone or in the batch, the plain alone row's bits */
                float *allp = xmalloc(sizeof(float) * (size_t)M * N);
                ops->matmul_q8_0_packed(allp, N, xq, wp, bias, M, K, 0, N, 0);
                for (int m = 0; m < M; m++) {
                    ops->matmul_q8_0(one, N, xq + m * rb, wq, bias, 1, K, 0, N, 0);
                    ck_assert_msg(memcmp(one, allp + (size_t)m * N, sizeof(float) * N) == 0,
                                  "%s packed K=%d M=%d: row %d differs from the plain row alone",
                                  g_simd[t].name, K, M, m);
                    ops->matmul_q8_0_packed(allp, N, xq + m * rb, wp, bias, 1, K, 0, N, 0);
                    ck_assert_msg(memcmp(one, allp, sizeof(float) * N) == 0,
                                  "%s packed K=%d: row %d alone differs from the plain row alone",
                                  g_simd[t].name, K, m);
                    ops->matmul_q8_0_packed(allp, N, xq, wp, bias, M, K, 0, N, 0);
                }
                free(allp);
            }
            free(wp);
        }
        free(x), free(wf), free(xq), free(wq), free(bias), free(all), free(one);
    }
}
END_TEST

/* The packed layouts against their definitions (kernels.h). ROWS4: block
 * (n, b) in group n / 4 * nb + b, its scale at d[n % 4] and its values at
 * qs[n % 4]. COLS16: in group n / 16 * nb + b, its scale at d[n % 16] and
 * value k at q[k / 4][n % 16][k % 4], stored + 128. Padding rows all zero;
 * a packed row dequantizes to the plain row's values. */
START_TEST(test_pack_layout)
{
    static const int shapes[][2] = {{1, 32}, {4, 64}, {7, 96}, {9, 768}, {50, 3072}};
    for (int l = 0; l < 2; l++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const gpt2k_q8_layout lay = l ? GPT2K_Q8_COLS16 : GPT2K_Q8_ROWS4;
            const int N = shapes[s][0], K = shapes[s][1], nb = K / QK;
            const int pr = l ? 16 : 4, panels = (N + pr - 1) / pr;
            ck_assert_int_eq(gpt2k_q8_0_panel_rows(lay), pr);
            const size_t bytes = gpt2k_q8_0_packed_bytes(lay, N, K);
            ck_assert_uint_eq(bytes, (size_t)panels * pr * nb * sizeof(blk));
            float *tmp = xmalloc(sizeof(float) * (size_t)K);
            float *a = xmalloc(sizeof(float) * (size_t)K), *b = xmalloc(sizeof(float) * (size_t)K);
            blk *wq = xmalloc((size_t)N * nb * sizeof(blk));
            char *wp = xmalloc(bytes);
            memset(wp, 0xa5, bytes);
            random_rows(wq, N, K, tmp);
            /* in two parts, as the engine packs across threads */
            gpt2k_q8_0_pack_panels(lay, wp, wq, N, K, 0, panels / 2);
            gpt2k_q8_0_pack_panels(lay, wp, wq, N, K, panels / 2, panels);
            for (int n = 0; n < panels * pr; n++)
                for (int bb = 0; bb < nb; bb++) {
                    const int r = n % pr;
                    const size_t gi = (size_t)(n / pr) * nb + bb;
                    blk zero, got;
                    memset(&zero, 0, sizeof zero);
                    const blk *want = n < N ? &wq[(size_t)n * nb + bb] : &zero;
                    if (l) {
                        const gpt2k_q8_0_cols *g = (const gpt2k_q8_0_cols *)wp + gi;
                        got.d = g->d[r];
                        for (int k = 0; k < QK; k++)
                            got.qs[k] = (int8_t)(g->q[k / 4][r][k % 4] - 128);
                    } else {
                        const gpt2k_q8_0_group *g = (const gpt2k_q8_0_group *)wp + gi;
                        got.d = g->d[r];
                        memcpy(got.qs, g->qs[r], QK);
                    }
                    CHECK(got.d == want->d && memcmp(got.qs, want->qs, QK) == 0,
                          "layout %d N=%d K=%d: block (%d, %d) misplaced", l, N, K, n, bb);
                }
            for (int n = 0; n < N; n++) {
                gpt2k_q8_0_packed_row(lay, a, wp, K, n);
                gpt2k_dequantize_q8_0(b, wq + (size_t)n * nb, K);
                CHECK(memcmp(a, b, sizeof(float) * (size_t)K) == 0,
                      "layout %d N=%d K=%d: packed row %d", l, N, K, n);
            }
            free(tmp), free(a), free(b), free(wq), free(wp);
        }
}
END_TEST

START_TEST(test_dispatch)
{
    ck_assert_uint_eq(gpt2k_q8_0_row_bytes(768), 24 * 34);
    ck_assert_uint_eq(gpt2k_q8_0_row_bytes(0), 0);
    for (int i = 0; i < GPT2K_ISA_COUNT; i++) {
        const gpt2k_ops *o = gpt2k_ops_for((gpt2k_isa)i);
        if (o)
            ck_assert(o->quantize_q8_0 && o->matmul_q8_0);
    }
    ck_assert_ptr_eq(gpt2k_ops_ref()->matmul_q8_0, gpt2k_matmul_q8_0_ref);
    if (gpt2k_cpu_supports(GPT2K_ISA_AVX512)) {
        const gpt2k_ops *o = gpt2k_ops_for(GPT2K_ISA_AVX512);
        ck_assert_ptr_nonnull(o);
        const gpt2k_ops *v = gpt2k_ops_avx512_variant(gpt2k_cpu_has_vnni());
        ck_assert_ptr_eq(o, v);
        ck_assert_ptr_eq(o->matmul_q8_0, gpt2k_cpu_has_vnni() ? gpt2k_matmul_q8_0_avx512vnni
                                                              : gpt2k_matmul_q8_0_avx512bw);
        ck_assert_ptr_eq(o->matmul_q8_0_packed, gpt2k_cpu_has_vnni()
                                                    ? gpt2k_matmul_q8_0_packed_avx512vnni
                                                    : gpt2k_matmul_q8_0_packed_avx512bw);
        printf("test_q8_0: avx512 table uses the %s Q8_0 matmul\n",
               gpt2k_cpu_has_vnni() ? "VNNI" : "AVX-512BW");
    }
    if (gpt2k_ops_avx512_variant(0)) {
        ck_assert_int_eq(gpt2k_ops_avx512_variant(0)->isa, GPT2K_ISA_AVX512);
        ck_assert_ptr_eq(gpt2k_ops_avx512_variant(0)->matmul_q8_0, gpt2k_matmul_q8_0_avx512bw);
        ck_assert_ptr_eq(gpt2k_ops_avx512_variant(0)->matmul_q8_0_packed,
                         gpt2k_matmul_q8_0_packed_avx512bw);
    }
}
END_TEST

/* ---- suite ------------------------------------------------------------------------ */

static Suite *q8_suite(void)
{
    Suite *s = suite_create("q8_0");
    TCase *tc;

    tc = tcase_create("quantize");
    tcase_set_timeout(tc, TIMEOUT_S);
    tcase_add_test(tc, test_dispatch);
    tcase_add_test(tc, test_quantize_random);
    tcase_add_test(tc, test_quantize_adversarial);
    tcase_add_test(tc, test_quantize_rounding_sweep);
    tcase_add_test(tc, test_dequantize_bound);
    suite_add_tcase(s, tc);

    tc = tcase_create("matmul");
    tcase_set_timeout(tc, TIMEOUT_S);
    tcase_add_loop_test(tc, test_matmul_sweep, 0, NK_LIST);
    tcase_add_test(tc, test_matmul_edges);
    suite_add_tcase(s, tc);

    tc = tcase_create("parallel");
    tcase_set_timeout(tc, TIMEOUT_S);
    tcase_add_test(tc, test_parallel_matmul_q8_0);
    tcase_add_test(tc, test_matmul_rows_independent);
    tcase_add_test(tc, test_pack_layout);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    find_tables();
    SRunner *sr = srunner_create(q8_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
