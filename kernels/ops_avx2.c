/* AVX2 + FMA (+ F16C for fp16 weights) kernels. Same contract as ops_ref.c;
 * every loop over a vector width has a scalar tail. */
#include "kernels.h"
#include "kv_view_internal.h"
#include "q8_0_internal.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>
#include <math.h>

#define AINLINE static inline __attribute__((always_inline))

/* Horizontal sums of four vectors, returned as the four lanes of one __m128. */
AINLINE __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d)
{
    __m256 ab = _mm256_hadd_ps(a, b); /* a01 a23 b01 b23 | a45 a67 b45 b67 */
    __m256 cd = _mm256_hadd_ps(c, d);
    __m256 abcd = _mm256_hadd_ps(ab, cd); /* a0-3 b0-3 c0-3 d0-3 | a4-7 ... */
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

AINLINE float hsum(__m256 a)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AINLINE float hmax(__m256 a)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* ---- matmul ---------------------------------------------------------------- */

/* Weight loads: w is float or fp16 depending on the compile-time flag. */
AINLINE __m256 load_w8(const void *w, size_t off, int f16)
{
    if (f16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + off)));
    return _mm256_loadu_ps((const float *)w + off);
}

AINLINE float load_w1(const void *w, size_t off, int f16)
{
    if (f16)
        return _cvtsh_ss(((const uint16_t *)w)[off]);
    return ((const float *)w)[off];
}

/* One MR x NR register tile: o[m][n] (+)= sum_{k<kc} a[m][k] * w[n][k] (+ bias[n]).
 * Each accumulator holds 8 partial sums of one (m, n) dot product; they are
 * reduced once at the end, so the inner loop is pure loads + FMAs:
 * MR + NR loads feed MR * NR FMAs. MR x NR <= 12 keeps the accumulators, the
 * NR weight vectors and one activation vector in the 16 ymm registers.
 * store != 0 overwrites o (first K block without accumulate), else adds.
 * pf (may be NULL): memory to prefetch alongside, NR*8 weights' worth per step. */
AINLINE void tile(const int MR, const int NR, const int f16, float *o, int ldo, const float *a,
                  int lda, const void *w, size_t ldw, int kc, const float *bias, int store,
                  const char *pf)
{
    __m256 acc[4][4];
    for (int m = 0; m < MR; m++)
        for (int n = 0; n < NR; n++)
            acc[m][n] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= kc; k += 8) {
        __m256 wv[4];
        if (pf) {
            const char *p = pf + (size_t)k * NR * (f16 ? 2 : 4);
            _mm_prefetch(p, _MM_HINT_T0);
            if (NR * 8 * (f16 ? 2 : 4) > 64)
                _mm_prefetch(p + 64, _MM_HINT_T0);
        }
        for (int n = 0; n < NR; n++)
            wv[n] = load_w8(w, n * ldw + k, f16);
        for (int m = 0; m < MR; m++) {
            __m256 av = _mm256_loadu_ps(a + (size_t)m * lda + k);
            for (int n = 0; n < NR; n++)
                acc[m][n] = _mm256_fmadd_ps(av, wv[n], acc[m][n]);
        }
    }
    float s[4][4];
    const __m256 z = _mm256_setzero_ps();
    for (int m = 0; m < MR; m++)
        _mm_storeu_ps(s[m], hsum4(acc[m][0], NR > 1 ? acc[m][1] : z, NR > 2 ? acc[m][2] : z,
                                  NR > 3 ? acc[m][3] : z));
    for (; k < kc; k++) /* scalar K tail */
        for (int m = 0; m < MR; m++)
            for (int n = 0; n < NR; n++)
                s[m][n] += a[(size_t)m * lda + k] * load_w1(w, n * ldw + k, f16);
    for (int m = 0; m < MR; m++) {
        float *om = o + (size_t)m * ldo;
        for (int n = 0; n < NR; n++) {
            float v = s[m][n] + (bias ? bias[n] : 0.0f);
            om[n] = store ? v : om[n] + v;
        }
    }
}

typedef void (*tile_fn)(float *o, int ldo, const float *a, int lda, const void *w, size_t ldw,
                        int kc, const float *bias, int store, const char *pf);

/* One out-of-line instance per (MR, NR, weight type); a call costs nothing next
 * to a tile's K loop and keeps code size sane. */
#define DEF_TILE(MR, NR)                                                                           \
    static void tile_f32_##MR##x##NR(float *o, int ldo, const float *a, int lda, const void *w,    \
                                     size_t ldw, int kc, const float *bias, int store,             \
                                     const char *pf)                                               \
    {                                                                                              \
        tile(MR, NR, 0, o, ldo, a, lda, w, ldw, kc, bias, store, pf);                              \
    }                                                                                              \
    static void tile_f16_##MR##x##NR(float *o, int ldo, const float *a, int lda, const void *w,    \
                                     size_t ldw, int kc, const float *bias, int store,             \
                                     const char *pf)                                               \
    {                                                                                              \
        tile(MR, NR, 1, o, ldo, a, lda, w, ldw, kc, bias, store, pf);                              \
    }
DEF_TILE(1, 1)
DEF_TILE(1, 2) DEF_TILE(1, 3) DEF_TILE(1, 4) DEF_TILE(2, 1) DEF_TILE(2, 2) DEF_TILE(2, 3)
    DEF_TILE(2, 4) DEF_TILE(3, 1) DEF_TILE(3, 2) DEF_TILE(3, 3) DEF_TILE(3, 4) DEF_TILE(4, 1)
        DEF_TILE(4, 2) DEF_TILE(4, 3)

    /* [MR-1][NR-1]; 4x4 would spill (16 accumulators + operands > 16 registers). */
    static const tile_fn tiles_f32[4][4] = {
        {tile_f32_1x1, tile_f32_1x2, tile_f32_1x3, tile_f32_1x4},
        {tile_f32_2x1, tile_f32_2x2, tile_f32_2x3, tile_f32_2x4},
        {tile_f32_3x1, tile_f32_3x2, tile_f32_3x3, tile_f32_3x4},
        {tile_f32_4x1, tile_f32_4x2, tile_f32_4x3, NULL},
};
static const tile_fn tiles_f16[4][4] = {
    {tile_f16_1x1, tile_f16_1x2, tile_f16_1x3, tile_f16_1x4},
    {tile_f16_2x1, tile_f16_2x2, tile_f16_2x3, tile_f16_2x4},
    {tile_f16_3x1, tile_f16_3x2, tile_f16_3x3, tile_f16_3x4},
    {tile_f16_4x1, tile_f16_4x2, tile_f16_4x3, NULL},
};

/* Cache blocking for the compute-bound path (M > GEMV_MAX_M), 256 KiB-512 KiB L2:
 *  - K blocks of at most KC_MAX floats: a panel of PANEL_N weight rows
 *    (3 x 3 KiB) stays in L1 while the 4-row tiles of the M block stream past;
 *  - M blocks of MC rows: the activations of one K block (128 x 3 KiB) stay in L2;
 *  - N blocks of NBLK columns: the outputs a block revisits once per K block
 *    (128 x 96 floats) stay in L2 too; without them every K block would sweep
 *    all of out[MC][n0:n1] through the cache again.
 * KC_MAX = 768 makes GPT-2's K = 768 matmuls a single K block (measured: ~15%
 * faster than 512 on Zen 3, where the extra output passes cost more). */
#define KC_MAX 768
#define MC 128
#define NBLK 96
#define PANEL_N 3
#define MT 4
/* Up to 16 rows (batched decode) the GEMV loop with prefetch beats the
 * blocked path: measured on Zen 3, 2 threads, 124M, 5-15% per step. */
#define GEMV_MAX_M 16

AINLINE void matmul_avx2(const int f16, float *out, int ldo, const float *in, int ldi,
                         const void *w, const float *bias, int M, int K, int n0, int n1,
                         int accumulate)
{
    if (M <= 0 || n0 >= n1)
        return;
    const tile_fn(*tiles)[4] = f16 ? tiles_f16 : tiles_f32;

    /* K blocks of equal size (a multiple of the vector width) so no block is a
     * tiny leftover; at least one block so K = 0 still writes bias. Both paths
     * below sum K in these same blocks, so a row's result does not depend on
     * how many rows share the call (batched decode equals decode alone). */
    int nkb = (K + KC_MAX - 1) / KC_MAX;
    if (nkb < 1)
        nkb = 1;
    int kcs = ((K + nkb - 1) / nkb + 7) & ~7;
    if (M <= GEMV_MAX_M) {
        /* Decode, one or many sequences: memory-bound, so each weight row is read
         * from memory exactly once and used, from L1, by every group of up to 4
         * rows; NR rows at a time give NR independent streams (3 with 4-row
         * groups so the tile's accumulators stay in registers). */
        const int nr = M >= 4 ? 3 : 4;
        for (int n = n0; n < n1; n += nr) {
            int nb = n1 - n < nr ? n1 - n : nr;
            const void *wn = f16 ? (const void *)((const uint16_t *)w + (size_t)n * K)
                                 : (const void *)((const float *)w + (size_t)n * K);
            /* Panels are short (4 x 1.5 KiB fp16 at K = 768) and the hardware
             * prefetcher ramps up too late for each one, so the first row
             * group's tile pulls in the next panel as it goes: ~40% more from
             * DRAM for fp16 on Zen 3, and 10-15% per step for fp32 at 5-16 rows,
             * where the FMAs would otherwise wait on the loads. A lone fp32 row
             * streams fine without it (measured slower with it). */
            const size_t esz = f16 ? 2 : 4;
            const char *pf = (f16 || M > 4) && n + 2 * nr <= n1
                                 ? (const char *)wn + (size_t)nr * K * esz
                                 : NULL;
            for (int kb = 0; kb < nkb; kb++) {
                int k0 = kb * kcs, kc = K - k0 < kcs ? K - k0 : kcs;
                if (kc < 0)
                    kc = 0;
                const void *wk = f16 ? (const void *)((const uint16_t *)wn + k0)
                                     : (const void *)((const float *)wn + k0);
                for (int m0 = 0; m0 < M; m0 += 4) {
                    const int mr = M - m0 < 4 ? M - m0 : 4;
                    tiles[mr - 1][nb - 1](out + (size_t)m0 * ldo + n, ldo, in + (size_t)m0 * ldi + k0,
                                          ldi, wk, (size_t)K, kc, kb == 0 && bias ? bias + n : NULL,
                                          kb == 0 && !accumulate,
                                          pf && m0 == 0 ? pf + (size_t)k0 * nr * esz : NULL);
                }
            }
        }
        return;
    }

    /* fp16 panels are widened once into this buffer and reused by all tiles
     * of the M block, so the conversion cost is paid once per MC rows. */
    float wbuf[PANEL_N * KC_MAX] __attribute__((aligned(32)));

    for (int m0 = 0; m0 < M; m0 += MC) {
        int mb = M - m0 < MC ? M - m0 : MC;
        for (int nb0 = n0; nb0 < n1; nb0 += NBLK) {
            int nb1 = n1 - nb0 < NBLK ? n1 : nb0 + NBLK;
            for (int kb = 0; kb < nkb; kb++) {
                int k0 = kb * kcs;
                int kc = K - k0 < kcs ? K - k0 : kcs;
                if (kc < 0)
                    kc = 0;
                int first = kb == 0;
                for (int n = nb0; n < nb1; n += PANEL_N) {
                    int nb = nb1 - n < PANEL_N ? nb1 - n : PANEL_N;
                    const float *wp;
                    size_t ldw;
                    if (f16) {
                        const uint16_t *src = (const uint16_t *)w + (size_t)n * K + k0;
                        for (int j = 0; j < nb; j++) {
                            const uint16_t *s = src + (size_t)j * K;
                            float *d = wbuf + j * kcs;
                            int k = 0;
                            for (; k + 8 <= kc; k += 8)
                                _mm256_store_ps(d + k, _mm256_cvtph_ps(_mm_loadu_si128(
                                                           (const __m128i *)(s + k))));
                            for (; k < kc; k++)
                                d[k] = _cvtsh_ss(s[k]);
                        }
                        wp = wbuf;
                        ldw = (size_t)kcs;
                    } else {
                        wp = (const float *)w + (size_t)n * K + k0;
                        ldw = (size_t)K;
                    }
                    const float *bn = first && bias ? bias + n : NULL;
                    for (int m = 0; m < mb; m += MT) {
                        int mr = mb - m < MT ? mb - m : MT;
                        tiles_f32[mr - 1][nb - 1](out + (size_t)(m0 + m) * ldo + n, ldo,
                                                  in + (size_t)(m0 + m) * ldi + k0, ldi, wp, ldw,
                                                  kc, bn, first && !accumulate, NULL);
                    }
                }
            }
        }
    }
}

static void matmul_f32_avx2(float *out, int ldo, const float *in, int ldi, const float *w,
                            const float *bias, int M, int K, int n0, int n1, int accumulate)
{
    matmul_avx2(0, out, ldo, in, ldi, w, bias, M, K, n0, n1, accumulate);
}

static void matmul_f16_avx2(float *out, int ldo, const float *in, int ldi, const uint16_t *w,
                            const float *bias, int M, int K, int n0, int n1, int accumulate)
{
    matmul_avx2(1, out, ldo, in, ldi, w, bias, M, K, n0, n1, accumulate);
}

/* ---- layernorm ------------------------------------------------------------- */

AINLINE double hsum_pd(__m256d a)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}

/* Statistics and the normalisation in double (two passes): activations of
 * GPT-2 carry a few large-offset channels where float would lose digits;
 * C is small, so the cost is irrelevant next to the matmuls. */
static void layernorm_avx2(float *out, const float *x, const float *g, const float *b, int C,
                           float eps)
{
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    int i = 0;
    for (; i + 8 <= C; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
    double sum = hsum_pd(_mm256_add_pd(s0, s1));
    for (; i < C; i++)
        sum += x[i];
    double mean = sum / C;

    __m256d mv = _mm256_set1_pd(mean);
    s0 = _mm256_setzero_pd();
    s1 = _mm256_setzero_pd();
    for (i = 0; i + 8 <= C; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), mv);
        __m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), mv);
        s0 = _mm256_fmadd_pd(d0, d0, s0);
        s1 = _mm256_fmadd_pd(d1, d1, s1);
    }
    double var = hsum_pd(_mm256_add_pd(s0, s1));
    for (; i < C; i++) {
        double d = x[i] - mean;
        var += d * d;
    }
    var /= C;
    double rstd = 1.0 / sqrt(var + eps);

    __m256d rv = _mm256_set1_pd(rstd);
    for (i = 0; i + 8 <= C; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256d d0 =
            _mm256_mul_pd(_mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), mv), rv);
        __m256d d1 =
            _mm256_mul_pd(_mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), mv), rv);
        __m256 nv = _mm256_set_m128(_mm256_cvtpd_ps(d1), _mm256_cvtpd_ps(d0));
        _mm256_storeu_ps(out + i,
                         _mm256_fmadd_ps(nv, _mm256_loadu_ps(g + i), _mm256_loadu_ps(b + i)));
    }
    for (; i < C; i++)
        out[i] = (float)((x[i] - mean) * rstd) * g[i] + b[i];
}

/* ---- gelu -------------------------------------------------------------------- */

/* e^x, ~2 ulp for x in [-87.3, 88.3] (clamped outside: callers only need
 * "huge" and "tiny" there). x = n ln2 + r, |r| <= ln2/2, with ln2 split in
 * two so n*ln2_hi is exact; e^r by its degree-6 Taylor polynomial (remainder
 * < 1.3e-7 relative); 2^n built in the exponent field. */
AINLINE __m256 exp_avx2(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.42860682030941723212e-6f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* 0.5 x (1 + tanh(u)) == x / (1 + e^(-2u)): the same function without the
 * cancellation of 1 + tanh(u) for negative u. Large negative x gives e^(-2u)
 * ~ 1e38 (clamped) and an output ~ 0, as it should. */
static void gelu_avx2(float *x, int n)
{
    const __m256 c = _mm256_set1_ps(-2.0f * 0.79788456080286535588f); /* -2 sqrt(2/pi) */
    const __m256 c3 = _mm256_set1_ps(-2.0f * 0.79788456080286535588f * 0.044715f);
    const __m256 one = _mm256_set1_ps(1.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 arg = _mm256_mul_ps(v, _mm256_fmadd_ps(_mm256_mul_ps(v, v), c3, c));
        __m256 e = exp_avx2(arg);
        _mm256_storeu_ps(x + i, _mm256_div_ps(v, _mm256_add_ps(one, e)));
    }
    for (; i < n; i++) {
        float v = x[i];
        x[i] = v / (1.0f + expf(-2.0f * 0.79788456080286535588f * (v + 0.044715f * v * v * v)));
    }
}

/* ---- add ----------------------------------------------------------------------- */

static void add_avx2(float *out, const float *a, const float *b, int n)
{
    int i = 0;
    for (; i + 32 <= n; i += 32)
        for (int j = 0; j < 32; j += 8)
            _mm256_storeu_ps(out + i + j,
                             _mm256_add_ps(_mm256_loadu_ps(a + i + j), _mm256_loadu_ps(b + i + j)));
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    for (; i < n; i++)
        out[i] = a[i] + b[i];
}

/* ---- attention ------------------------------------------------------------------ */

/* Scores of n keys (row stride ldk) into sc, four keys at a time: four
 * independent FMA chains and one combined horizontal reduction. */
AINLINE void scores_avx2(float *sc, const float *q, const float *k, int ldk, int n, int HD,
                         float scale)
{
    const int hd8 = HD & ~7;
    int t = 0;
    for (; t + 4 <= n; t += 4) {
        const float *k0 = k + (size_t)t * ldk, *k1 = k0 + ldk, *k2 = k1 + ldk, *k3 = k2 + ldk;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i < hd8; i += 8) {
            __m256 qv = _mm256_loadu_ps(q + i);
            a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + i), a0);
            a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k1 + i), a1);
            a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k2 + i), a2);
            a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k3 + i), a3);
        }
        float s[4];
        _mm_storeu_ps(s, hsum4(a0, a1, a2, a3));
        for (int i = hd8; i < HD; i++) {
            s[0] += q[i] * k0[i];
            s[1] += q[i] * k1[i];
            s[2] += q[i] * k2[i];
            s[3] += q[i] * k3[i];
        }
        for (int j = 0; j < 4; j++)
            sc[t + j] = s[j] * scale;
    }
    for (; t < n; t++) {
        const float *kt = k + (size_t)t * ldk;
        __m256 a0 = _mm256_setzero_ps();
        for (int i = 0; i < hd8; i += 8)
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(kt + i), a0);
        float s = hsum(a0);
        for (int i = hd8; i < HD; i++)
            s += q[i] * kt[i];
        sc[t] = s * scale;
    }
}

static void attention_head_avx2(float *out, const float *q, const gpt2k_kv_view *kv, int col,
                                int n_kv, int HD, float scale, float *scratch)
{
    const int hd8 = HD & ~7;
    const float *kb, *vb;
    int t, nb;
    for (int t0 = 0; t0 < n_kv; t0 += nb) {
        nb = gpt2k_kv_span(kv, col, t0, n_kv, &kb, &vb);
        scores_avx2(scratch + t0, q, kb, kv->ld, nb, HD, scale);
    }

    /* Softmax, max-subtracted so every exp() is <= 1. */
    const int n8 = n_kv & ~7;
    __m256 mv = _mm256_set1_ps(-INFINITY);
    for (t = 0; t < n8; t += 8)
        mv = _mm256_max_ps(mv, _mm256_loadu_ps(scratch + t));
    float mx = hmax(mv);
    for (; t < n_kv; t++)
        mx = scratch[t] > mx ? scratch[t] : mx;
    mv = _mm256_set1_ps(mx);
    __m256 sv = _mm256_setzero_ps();
    for (t = 0; t < n8; t += 8) {
        __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(scratch + t), mv));
        _mm256_storeu_ps(scratch + t, e);
        sv = _mm256_add_ps(sv, e);
    }
    float sum = hsum(sv);
    for (; t < n_kv; t++) {
        scratch[t] = expf(scratch[t] - mx);
        sum += scratch[t];
    }
    const float inv = 1.0f / sum;

    /* out = sum_t p[t] v[t], 64 columns (8 accumulators) per pass over t. */
    int i = 0;
    for (; i + 64 <= hd8; i += 64) {
        __m256 acc[8];
        for (int j = 0; j < 8; j++)
            acc[j] = _mm256_setzero_ps();
        for (int t0 = 0; t0 < n_kv; t0 += nb) {
            nb = gpt2k_kv_span(kv, col, t0, n_kv, &kb, &vb);
            for (t = 0; t < nb; t++) {
                const float *vt = vb + (size_t)t * kv->ld + i;
                __m256 p = _mm256_broadcast_ss(scratch + t0 + t);
                for (int j = 0; j < 8; j++)
                    acc[j] = _mm256_fmadd_ps(p, _mm256_loadu_ps(vt + 8 * j), acc[j]);
            }
        }
        const __m256 iv = _mm256_set1_ps(inv);
        for (int j = 0; j < 8; j++)
            _mm256_storeu_ps(out + i + 8 * j, _mm256_mul_ps(acc[j], iv));
    }
    for (; i < hd8; i += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int t0 = 0; t0 < n_kv; t0 += nb) {
            nb = gpt2k_kv_span(kv, col, t0, n_kv, &kb, &vb);
            for (t = 0; t < nb; t++)
                acc = _mm256_fmadd_ps(_mm256_broadcast_ss(scratch + t0 + t),
                                      _mm256_loadu_ps(vb + (size_t)t * kv->ld + i), acc);
        }
        _mm256_storeu_ps(out + i, _mm256_mul_ps(acc, _mm256_set1_ps(inv)));
    }
    for (; i < HD; i++) {
        float acc = 0.0f;
        for (int t0 = 0; t0 < n_kv; t0 += nb) {
            nb = gpt2k_kv_span(kv, col, t0, n_kv, &kb, &vb);
            for (t = 0; t < nb; t++)
                acc += scratch[t0 + t] * vb[(size_t)t * kv->ld + i];
        }
        out[i] = acc * inv;
    }
}

static const gpt2k_ops ops_avx2 = {
    .isa = GPT2K_ISA_AVX2,
    .matmul_f32 = matmul_f32_avx2,
    .matmul_f16 = matmul_f16_avx2,
    .layernorm = layernorm_avx2,
    .gelu = gelu_avx2,
    .add = add_avx2,
    .attention_head = attention_head_avx2,
    .quantize_q8_0 = gpt2k_quantize_q8_0_avx2,
    .matmul_q8_0 = gpt2k_matmul_q8_0_avx2,
};

const gpt2k_ops *gpt2k_ops_avx2(void)
{
    return &ops_avx2;
}

#else /* compiler without AVX2/FMA/F16C flags (not x86): no table */

const gpt2k_ops *gpt2k_ops_avx2(void)
{
    return NULL;
}

#endif
