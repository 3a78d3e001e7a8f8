/* Q8_0 kernels for AVX-512 (F/BW/VL/DQ, + VNNI for one matmul variant): the
 * logic of q8_0_avx2.c at 512 bits. A zmm holds two 32-value blocks (block b
 * in lanes 0-7 of the int32 / float results, b + 1 in lanes 8-15), so scales
 * come as [s_b x 8, s_b+1 x 8] vectors and an odd last block runs with a
 * zero upper half. Quantize is byte-identical to q8_0_ref.c; the matmul
 * differs from it only by the order of the fp32 sums over blocks. */
#include "q8_0_internal.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) &&                      \
    defined(__AVX512DQ__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>

#define AINLINE static inline __attribute__((always_inline))
#define QK GPT2K_QK8_0

typedef gpt2k_block_q8_0 blk;

/* ---- quantize ------------------------------------------------------------- */

/* (int32) roundf(v) per lane, 0 where v is not finite: trunc, then one away
 * from zero where the exact |v - trunc(v)| >= 0.5 (see q8_0_avx2.c). */
AINLINE __m512i round_away_epi32(__m512 v)
{
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)), _mm512_set1_ps(0.5f),
                                      _CMP_GE_OQ);
    __m512 one = _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_and_si512(_mm512_castps_si512(v), sign), _mm512_castps_si512(_mm512_set1_ps(1.0f))));
    __m512 r = _mm512_mask_add_ps(t, up, t, one);
    __mmask16 finite = _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(128.0f), _CMP_LT_OQ);
    return _mm512_maskz_cvttps_epi32(finite, r);
}

void gpt2k_quantize_q8_0_avx512(void *dst, const float *x, int n)
{
    blk *y = dst;
    for (int b = 0; b < n / QK; b++) {
        const float *xb = x + (size_t)b * QK;
        __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
        /* max is associative without NaN: equals the reference's sequential max */
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        const __m512 vid = _mm512_set1_ps(id);
        /* saturating narrow keeps lane order; values are within [-127, 127] */
        _mm_storeu_si128((__m128i *)y[b].qs,
                         _mm512_cvtsepi32_epi8(round_away_epi32(_mm512_mul_ps(v0, vid))));
        _mm_storeu_si128((__m128i *)(y[b].qs + 16),
                         _mm512_cvtsepi32_epi8(round_away_epi32(_mm512_mul_ps(v1, vid))));
    }
}

/* ---- matmul --------------------------------------------------------------- */

/* Quants of blocks b and b + 1 (two == 0: b only, upper half zero). */
AINLINE __m512i load_qs2(const blk *b, const int two)
{
    __m256i lo = _mm256_loadu_si256((const __m256i *)b[0].qs);
    if (!two)
        return _mm512_inserti64x4(_mm512_setzero_si512(), lo, 0);
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo),
                              _mm256_loadu_si256((const __m256i *)b[1].qs), 1);
}

/* [s[0] x 8, s[1] x 8] (two == 0: upper half 0, so a zero quant sum times it stays 0). */
AINLINE __m512 scales2(const float *s, const int two)
{
    __m512 lo = _mm512_set1_ps(s[0]);
    return two ? _mm512_mask_blend_ps(0xff00, lo, _mm512_set1_ps(s[1]))
               : _mm512_maskz_mov_ps(0x00ff, lo);
}

/* The same from two fp16 scales. */
AINLINE __m512 scales2_f16(const blk *b, const int two)
{
    __m512 lo = _mm512_set1_ps(_cvtsh_ss(b[0].d));
    return two ? _mm512_mask_blend_ps(0xff00, lo, _mm512_set1_ps(_cvtsh_ss(b[1].d)))
               : _mm512_maskz_mov_ps(0x00ff, lo);
}

/* Integer dot of two block pairs as 16 int32 partial sums (8 per block).
 * Sign trick as in q8_0_avx2.c: |w| (u8) times x with w's sign (s8); there
 * is no 512-bit psignb, so x is negated under w's sign-bit mask (a zero w
 * leaves x, but |w| = 0 zeroes the product). vnni: vpdpbusd sums 4 products
 * per lane straight into int32; else maddubs (int16 pair sums, no saturation
 * since x != -128) + madd with ones. */
AINLINE __m512i dot2(const int vnni, __m512i wabs, __mmask64 wneg, __m512i x)
{
    const __m512i sx = _mm512_mask_sub_epi8(x, wneg, _mm512_setzero_si512(), x);
#ifdef __AVX512VNNI__
    if (vnni)
        return _mm512_dpbusd_epi32(_mm512_setzero_si512(), wabs, sx);
#endif
    return _mm512_madd_epi16(_mm512_maddubs_epi16(wabs, sx), _mm512_set1_epi16(1));
}

/* 16 partial sums -> 8 (low + high halves), then 4 such vectors summed into
 * the 4 lanes of an __m128; the same order for every element. */
AINLINE __m256 fold512(__m512 a)
{
    return _mm256_add_ps(_mm512_castps512_ps256(a),
                         _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
}

AINLINE __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d)
{
    __m256 ab = _mm256_hadd_ps(fold512(a), fold512(b));
    __m256 cd = _mm256_hadd_ps(fold512(c), fold512(d));
    __m256 abcd = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

static void load_scales(float *s, const blk *x, size_t ldx, int rows, int cb)
{
    for (int r = 0; r < rows; r++)
        for (int b = 0; b < cb; b++)
            s[r * cb + b] = _cvtsh_ss(x[r * ldx + b].d);
}

AINLINE void put(float *o, float v, const float *bias, int store)
{
    v += bias ? *bias : 0.0f;
    *o = store ? v : *o + v;
}

/* Decode: one weight row against MR (<= 4) activation rows, two blocks per
 * step, weights streamed sequentially with a prefetch ahead (see
 * q8_0_avx2.c). One accumulator per row, steps in order: the operations of
 * the prefill tile, so a row's result does not depend on how many rows share
 * the call. xs: activation scales, row m at m * nb. */
#define PF_DIST 2048
AINLINE void gemv_step(const int vnni, const int MR, __m512 *acc, const blk *x, size_t ldx,
                       const float *xs, int nb, const blk *w, int b, const int two)
{
    const __m512i wq = load_qs2(w + b, two), wa = _mm512_abs_epi8(wq);
    const __mmask64 wneg = _mm512_movepi8_mask(wq);
    const __m512 dw = scales2_f16(w + b, two);
    for (int m = 0; m < MR; m++) {
        __m512 f = _mm512_cvtepi32_ps(dot2(vnni, wa, wneg, load_qs2(x + m * ldx + b, two)));
        acc[m] = _mm512_fmadd_ps(f, _mm512_mul_ps(dw, scales2(xs + m * nb + b, two)), acc[m]);
    }
}

AINLINE void gemv_row(const int vnni, const int MR, float *o, int ldo, const blk *x, size_t ldx,
                      const float *xs, const blk *w, int nb, const float *bias, int store)
{
    __m512 acc[4];
    for (int m = 0; m < MR; m++)
        acc[m] = _mm512_setzero_ps();
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        _mm_prefetch((const char *)(w + b) + PF_DIST, _MM_HINT_T0);
        gemv_step(vnni, MR, acc, x, ldx, xs, nb, w, b, 1);
    }
    if (b < nb)
        gemv_step(vnni, MR, acc, x, ldx, xs, nb, w, b, 0);
    const __m512 z = _mm512_setzero_ps();
    for (int m = 0; m < MR; m++)
        put(o + (size_t)m * ldo, _mm_cvtss_f32(hsum4(acc[m], z, z, z)), bias, store);
}

/* Prefill: one MR x NR register tile, two blocks per step (see the AVX2
 * tile). Per step the NR weight vectors, |w|, their sign masks and scales
 * stay in registers for all MR activation rows. */
AINLINE void tile_step(const int vnni, const int MR, const int NR, __m512 acc[4][4], const blk *x,
                       size_t ldx, const float *xs, const blk *w, size_t ldw, const float *ws,
                       int nb, int b, const int two)
{
    __m512i wa[4];
    __mmask64 wneg[4];
    __m512 dw[4];
    for (int n = 0; n < NR; n++) {
        const __m512i wq = load_qs2(w + n * ldw + b, two);
        wa[n] = _mm512_abs_epi8(wq);
        wneg[n] = _mm512_movepi8_mask(wq);
        dw[n] = scales2(ws + n * nb + b, two);
    }
    for (int m = 0; m < MR; m++) {
        const __m512i xq = load_qs2(x + m * ldx + b, two);
        const __m512 dx = scales2(xs + m * nb + b, two);
        for (int n = 0; n < NR; n++) {
            __m512 f = _mm512_cvtepi32_ps(dot2(vnni, wa[n], wneg[n], xq));
            acc[m][n] = _mm512_fmadd_ps(f, _mm512_mul_ps(dw[n], dx), acc[m][n]);
        }
    }
}

AINLINE void tile(const int vnni, const int MR, const int NR, float *o, int ldo, const blk *x,
                  size_t ldx, const float *xs, const blk *w, size_t ldw, const float *ws, int nb,
                  const float *bias, int store)
{
    __m512 acc[4][4];
    for (int m = 0; m < MR; m++)
        for (int n = 0; n < NR; n++)
            acc[m][n] = _mm512_setzero_ps();
    int b = 0;
    for (; b + 2 <= nb; b += 2)
        tile_step(vnni, MR, NR, acc, x, ldx, xs, w, ldw, ws, nb, b, 1);
    if (b < nb)
        tile_step(vnni, MR, NR, acc, x, ldx, xs, w, ldw, ws, nb, b, 0);
    const __m512 z = _mm512_setzero_ps();
    for (int m = 0; m < MR; m++) {
        float s[4];
        _mm_storeu_ps(s, hsum4(acc[m][0], NR > 1 ? acc[m][1] : z, NR > 2 ? acc[m][2] : z,
                               NR > 3 ? acc[m][3] : z));
        for (int n = 0; n < NR; n++)
            put(o + (size_t)m * ldo + n, s[n], bias ? bias + n : NULL, store);
    }
}

typedef void (*gemv_fn)(float *o, int ldo, const blk *x, size_t ldx, const float *xs,
                        const blk *w, int nb, const float *bias, int store);
typedef void (*tile_fn)(float *o, int ldo, const blk *x, size_t ldx, const float *xs,
                        const blk *w, size_t ldw, const float *ws, int nb, const float *bias,
                        int store);

/* One out-of-line instance per (variant, shape). */
#define DEF_GEMV(V, VNNI, MR)                                                                      \
    static void gemv_##V##_##MR(float *o, int ldo, const blk *x, size_t ldx, const float *xs,      \
                                const blk *w, int nb, const float *bias, int store)                \
    {                                                                                              \
        gemv_row(VNNI, MR, o, ldo, x, ldx, xs, w, nb, bias, store);                                \
    }
#define DEF_TILE(V, VNNI, MR, NR)                                                                  \
    static void tile_##V##_##MR##x##NR(float *o, int ldo, const blk *x, size_t ldx,                \
                                       const float *xs, const blk *w, size_t ldw, const float *ws, \
                                       int nb, const float *bias, int store)                       \
    {                                                                                              \
        tile(VNNI, MR, NR, o, ldo, x, ldx, xs, w, ldw, ws, nb, bias, store);                       \
    }
#define DEF_VARIANT(V, VNNI)                                                                       \
    DEF_GEMV(V, VNNI, 1)                                                                           \
    DEF_GEMV(V, VNNI, 2)                                                                           \
    DEF_GEMV(V, VNNI, 3)                                                                           \
    DEF_GEMV(V, VNNI, 4)                                                                           \
    DEF_TILE(V, VNNI, 1, 1)                                                                        \
    DEF_TILE(V, VNNI, 1, 2)                                                                        \
    DEF_TILE(V, VNNI, 1, 3)                                                                        \
    DEF_TILE(V, VNNI, 2, 1)                                                                        \
    DEF_TILE(V, VNNI, 2, 2)                                                                        \
    DEF_TILE(V, VNNI, 2, 3)                                                                        \
    DEF_TILE(V, VNNI, 3, 1)                                                                        \
    DEF_TILE(V, VNNI, 3, 2)                                                                        \
    DEF_TILE(V, VNNI, 3, 3)                                                                        \
    DEF_TILE(V, VNNI, 4, 1)                                                                        \
    DEF_TILE(V, VNNI, 4, 2)                                                                        \
    DEF_TILE(V, VNNI, 4, 3)                                                                        \
    static const gemv_fn gemvs_##V[4] = {gemv_##V##_1, gemv_##V##_2, gemv_##V##_3, gemv_##V##_4}; \
    static const tile_fn tiles_##V[4][3] = {                                                       \
        {tile_##V##_1x1, tile_##V##_1x2, tile_##V##_1x3},                                          \
        {tile_##V##_2x1, tile_##V##_2x2, tile_##V##_2x3},                                          \
        {tile_##V##_3x1, tile_##V##_3x2, tile_##V##_3x3},                                          \
        {tile_##V##_4x1, tile_##V##_4x2, tile_##V##_4x3},                                          \
    };

DEF_VARIANT(bw, 0)
#ifdef __AVX512VNNI__
DEF_VARIANT(vnni, 1)
#endif

/* Part `part` of `parts` of the cache lines of rows x rows, into L2: the
 * tiles of one weight panel pull in the next panel (see q8_0_avx2.c). */
static inline void prefetch_part(const blk *x, size_t ldx, int rows, int cb, int part, int parts)
{
    const size_t row_bytes = (size_t)cb * sizeof(blk), lines = (row_bytes + 63) / 64;
    const size_t total = (size_t)rows * lines;
    for (size_t l = total * part / parts; l < total * (part + 1) / parts; l++)
        _mm_prefetch((const char *)(x + (l / lines) * ldx) + (l % lines) * 64, _MM_HINT_T1);
}

/* Blocking as in q8_0_avx2.c (see there); 4 x 3 tiles: 12 accumulators and
 * 3 x (w, |w|, scales) leave room in the 32 zmm registers. Not tuned on
 * AVX-512 hardware. */
#define NBC 256
/* Up to 8 rows (batched decode) the GEMV loop beats the tiles: measured on
 * Zen 3, 2 threads, 124M: 10-15% faster per step at 5-8 rows, slower at 16. */
#define GEMV_MAX_M 8
#define XS_CAP 8192
#define MC 64
#define MT 4
#define PANEL_N 3

AINLINE void matmul(const gemv_fn *gemvs, const tile_fn (*tiles)[3], float *out, int ldo,
                    const void *inq, const void *w, const float *bias, int M, int K, int n0,
                    int n1, int accumulate)
{
    if (M <= 0 || n0 >= n1)
        return;
    const int nb = K / QK;
    const blk *x = inq, *wq = w;
    float xs[XS_CAP], ws[PANEL_N * NBC];

    const int nch = nb > NBC ? (nb + NBC - 1) / NBC : 1; /* >= 1: K = 0 still writes bias */
    const int cbs = (nb + nch - 1) / nch;
    for (int c = 0; c < nch; c++) {
        const int b0 = c * cbs, cb = nb - b0 < cbs ? nb - b0 : cbs;
        const float *bc = c == 0 ? bias : NULL; /* bias and store with the first chunk */
        const int store = c == 0 && !accumulate;

        if (M <= GEMV_MAX_M) {
            /* Decode, one or many sequences: memory-bound; each weight row is read
             * from memory once and used, from L1, by every group of up to 4 rows. */
            load_scales(xs, x + b0, (size_t)nb, M, cb);
            for (int n = n0; n < n1; n++)
                for (int m0 = 0; m0 < M; m0 += 4) {
                    const int mr = M - m0 < 4 ? M - m0 : 4;
                    gemvs[mr - 1](out + (size_t)m0 * ldo + n, ldo, x + (size_t)m0 * nb + b0,
                                  (size_t)nb, xs + (size_t)m0 * cb, wq + (size_t)n * nb + b0, cb,
                                  bc ? bc + n : NULL, store);
                }
            continue;
        }

        int mc = XS_CAP / (cb > 0 ? cb : 1);
        mc = mc > MC ? MC : mc - mc % MT;
        for (int m0 = 0; m0 < M; m0 += mc) {
            const int mb = M - m0 < mc ? M - m0 : mc;
            const blk *xm = x + (size_t)m0 * nb + b0;
            load_scales(xs, xm, (size_t)nb, mb, cb);
            for (int n = n0; n < n1; n += PANEL_N) {
                const int nr = n1 - n < PANEL_N ? n1 - n : PANEL_N;
                const blk *wn = wq + (size_t)n * nb + b0;
                load_scales(ws, wn, (size_t)nb, nr, cb);
                const int nr_next = n1 - n - nr < PANEL_N ? n1 - n - nr : PANEL_N;
                for (int m = 0, t = 0; m < mb; m += MT, t++) {
                    const int mr = mb - m < MT ? mb - m : MT;
                    prefetch_part(wn + (size_t)nr * nb, (size_t)nb, nr_next, cb, t,
                                  (mb + MT - 1) / MT);
                    tiles[mr - 1][nr - 1](out + (size_t)(m0 + m) * ldo + n, ldo,
                                          xm + (size_t)m * nb, (size_t)nb, xs + (size_t)m * cb,
                                          wn, (size_t)nb, ws, cb, bc ? bc + n : NULL, store);
                }
            }
        }
    }
}

void gpt2k_matmul_q8_0_avx512bw(float *out, int ldo, const void *inq, const void *w,
                                const float *bias, int M, int K, int n0, int n1, int accumulate)
{
    matmul(gemvs_bw, tiles_bw, out, ldo, inq, w, bias, M, K, n0, n1, accumulate);
}

#ifdef __AVX512VNNI__
void gpt2k_matmul_q8_0_avx512vnni(float *out, int ldo, const void *inq, const void *w,
                                  const float *bias, int M, int K, int n0, int n1,
                                  int accumulate)
{
    matmul(gemvs_vnni, tiles_vnni, out, ldo, inq, w, bias, M, K, n0, n1, accumulate);
}
#endif

#endif
