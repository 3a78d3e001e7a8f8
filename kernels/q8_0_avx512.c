/* Q8_0 kernels for AVX-512 (F/BW/VL/DQ; the VNNI table's matmuls are in q8_0_cols_avx512.c): the
 * logic of q8_0_avx2.c at 512 bits. A zmm holds two 32-value blocks (block b
 * in lanes 0-7 of the int32 / float results, b + 1 in lanes 8-15), so scales
 * come as [s_b x 8, s_b+1 x 8] vectors and an odd last block runs with a
 * zero upper half. Quantize is byte-identical to q8_0_ref.c; the matmul
 * differs from it only by the order of the fp32 sums over blocks, and reads
 * plain rows or packed panels (kernels.h) with the same bits. */
#include "q8_0_internal.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) &&                      \
    defined(__AVX512DQ__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>
#include <string.h>

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

/* The same for weights: the 32 values of a block at q, the next block's
 * wstep bytes on (plain rows: one block; packed panels: one group). */
AINLINE __m512i load_w2(const int8_t *q, size_t wstep, const int two)
{
    __m256i lo = _mm256_loadu_si256((const __m256i *)q);
    if (!two)
        return _mm512_inserti64x4(_mm512_setzero_si512(), lo, 0);
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo),
                              _mm256_loadu_si256((const __m256i *)(q + wstep)), 1);
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
 * leaves x, but |w| = 0 zeroes the product). maddubs (int16 pair sums, no
 * saturation since x != -128) + madd with ones. */
AINLINE __m512i dot2(__m512i wabs, __mmask64 wneg, __m512i x)
{
    const __m512i sx = _mm512_mask_sub_epi8(x, wneg, _mm512_setzero_si512(), x);
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

/* s[r * cb + b] = the fp16 scale at d0 + r * ld + b * step bytes (plain
 * rows: ld = a row's bytes, step one block; a packed panel: ld 2, step one
 * group), widened once. */
static void load_scales(float *s, const void *d0, size_t ld, size_t step, int rows, int cb)
{
    for (int r = 0; r < rows; r++)
        for (int b = 0; b < cb; b++) {
            uint16_t h;
            memcpy(&h, (const char *)d0 + (size_t)r * ld + (size_t)b * step, sizeof h);
            s[r * cb + b] = _cvtsh_ss(h);
        }
}

/* load_scales of rows plain rows of blocks, ldx blocks apart */
static void load_row_scales(float *s, const blk *x, size_t ldx, int rows, int cb)
{
    load_scales(s, &x->d, ldx * sizeof(blk), sizeof(blk), rows, cb);
}

AINLINE void put(float *o, float v, const float *bias, int store)
{
    v += bias ? *bias : 0.0f;
    *o = store ? v : *o + v;
}

/* Every output element, in every path below, is the same sequence of
 * operations: for each pair of blocks (b, b + 1) in order, acc = fma(float(int
 * dot of the block pairs), [d_w * d_x of b x 8, of b + 1 x 8], acc) over 16
 * lanes (an odd last block with a zero upper half); then the lanes summed by
 * hsum4, + bias, stored or added. So a row's result depends neither on how
 * many rows share the call nor on the weights' layout (plain or packed). */

/* Decode on plain rows: one weight row against MR (<= 4) activation rows,
 * weights streamed sequentially with a prefetch ahead (see q8_0_avx2.c).
 * xs: activation scales, row m at m * nb. */
#define PF_DIST 2048
AINLINE void gemv_step(const int MR, __m512 *acc, const blk *x, size_t ldx,
                       const float *xs, int nb, const blk *w, int b, const int two)
{
    const __m512i wq = load_qs2(w + b, two), wa = _mm512_abs_epi8(wq);
    const __mmask64 wneg = _mm512_movepi8_mask(wq);
    const __m512 dw = scales2_f16(w + b, two);
    for (int m = 0; m < MR; m++) {
        __m512 f = _mm512_cvtepi32_ps(dot2(wa, wneg, load_qs2(x + m * ldx + b, two)));
        acc[m] = _mm512_fmadd_ps(f, _mm512_mul_ps(dw, scales2(xs + m * nb + b, two)), acc[m]);
    }
}

AINLINE void gemv_row(const int MR, float *o, int ldo, const blk *x, size_t ldx,
                      const float *xs, const blk *w, int nb, const float *bias, int store)
{
    __m512 acc[4];
    for (int m = 0; m < MR; m++)
        acc[m] = _mm512_setzero_ps();
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        _mm_prefetch((const char *)(w + b) + PF_DIST, _MM_HINT_T0);
        gemv_step(MR, acc, x, ldx, xs, nb, w, b, 1);
    }
    if (b < nb)
        gemv_step(MR, acc, x, ldx, xs, nb, w, b, 0);
    const __m512 z = _mm512_setzero_ps();
    for (int m = 0; m < MR; m++)
        put(o + (size_t)m * ldo, _mm_cvtss_f32(hsum4(acc[m], z, z, z)), bias, store);
}

/* Decode on a packed panel (kernels.h: GPT2K_Q8_PANEL): its 4 weight rows
 * against MR (<= 2) activation rows, two groups (blocks b and b + 1 of the 4
 * rows, 272 bytes) per step; outputs of rows nv .. 3 (padding) are not
 * written. One sequential stream, 4 * MR independent sums. The 8 scales of
 * the two groups are widened with one vcvtph2ps and multiplied by
 * [d_x(b) x 4, d_x(b + 1) x 4] in one vmulps (the same IEEE products d_w *
 * d_x as the plain path's); one permute per row then spreads row r's two
 * products over its lanes. */
#define QP GPT2K_Q8_PANEL
typedef gpt2k_q8_0_group grp;
_Static_assert(GPT2K_Q8_PANEL == 4, "gemv_panel and the packed tiles are written for 4 rows");

AINLINE void gemv_panel_step(const int MR, __m512 acc[2][QP], const blk *x,
                             size_t ldx, const float *xs, int nb, const grp *g, int b,
                             const int two)
{
    const grp *g0 = g + b;
    /* the 4 + 4 fp16 scales of groups b and b + 1 (b + 1 only if it exists) */
    __m128i h = _mm_loadl_epi64((const __m128i *)g0->d);
    if (two)
        h = _mm_unpacklo_epi64(h, _mm_loadl_epi64((const __m128i *)g0[1].d));
    const __m256 dw = _mm256_cvtph_ps(h);
    __m512i xq[2];
    __m512 d[2];
    for (int m = 0; m < MR; m++) {
        xq[m] = load_qs2(x + m * ldx + b, two);
        const __m256 dx = _mm256_insertf128_ps(
            _mm256_castps128_ps256(_mm_set1_ps(xs[m * nb + b])),
            two ? _mm_set1_ps(xs[m * nb + b + 1]) : _mm_setzero_ps(), 1);
        d[m] = _mm512_castps256_ps512(_mm256_mul_ps(dw, dx));
    }
    for (int r = 0; r < QP; r++) {
        const __m512i wq = load_w2(g0->qs[r], sizeof(grp), two), wa = _mm512_abs_epi8(wq);
        const __mmask64 wneg = _mm512_movepi8_mask(wq);
        /* lanes 0-7: product r (block b), lanes 8-15: product 4 + r (b + 1) */
        const __m512i sel = _mm512_setr_epi32(r, r, r, r, r, r, r, r, r + 4, r + 4, r + 4, r + 4,
                                              r + 4, r + 4, r + 4, r + 4);
        for (int m = 0; m < MR; m++) {
            __m512 f = _mm512_cvtepi32_ps(dot2(wa, wneg, xq[m]));
            acc[m][r] = _mm512_fmadd_ps(f, _mm512_permutexvar_ps(sel, d[m]), acc[m][r]);
        }
    }
}

AINLINE void gemv_panel(const int MR, float *o, int ldo, const blk *x, size_t ldx,
                        const float *xs, const grp *g, int nb, int nv, const float *bias,
                        int store)
{
    __m512 acc[2][QP];
    for (int m = 0; m < MR; m++)
        for (int r = 0; r < QP; r++)
            acc[m][r] = _mm512_setzero_ps();
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        const char *pf = (const char *)(g + b) + PF_DIST; /* 272 bytes: five lines */
        for (int l = 0; l < 5; l++)
            _mm_prefetch(pf + 64 * l, _MM_HINT_T0);
        gemv_panel_step(MR, acc, x, ldx, xs, nb, g, b, 1);
    }
    if (b < nb)
        gemv_panel_step(MR, acc, x, ldx, xs, nb, g, b, 0);
    for (int m = 0; m < MR; m++) {
        float s[4];
        _mm_storeu_ps(s, hsum4(acc[m][0], acc[m][1], acc[m][2], acc[m][3]));
        for (int r = 0; r < nv; r++)
            put(o + (size_t)m * ldo + r, s[r], bias ? bias + r : NULL, store);
    }
}

/* Prefill: one MR x NR register tile, two blocks per step (see the AVX2
 * tile). Weight row n's block b at w + n * ldw + b * wstep bytes (plain rows
 * or packed panels); scales as floats, xs and ws rows nb apart. Per step the
 * NR weight vectors' |w|, sign masks and scales stay in registers for all MR
 * activation rows; outputs of columns nv .. NR - 1 (padding) are not written. */
AINLINE void tile_step(const int MR, const int NR, __m512 acc[4][4], const blk *x,
                       size_t ldx, const float *xs, const int8_t *w, size_t ldw, size_t wstep,
                       const float *ws, int nb, int b, const int two)
{
    __m512i wa[4];
    __mmask64 wneg[4];
    __m512 dw[4];
    for (int n = 0; n < NR; n++) {
        const __m512i wq = load_w2(w + n * ldw + b * wstep, wstep, two);
        wa[n] = _mm512_abs_epi8(wq);
        wneg[n] = _mm512_movepi8_mask(wq);
        dw[n] = scales2(ws + n * nb + b, two);
    }
    for (int m = 0; m < MR; m++) {
        const __m512i xq = load_qs2(x + m * ldx + b, two);
        const __m512 dx = scales2(xs + m * nb + b, two);
        for (int n = 0; n < NR; n++) {
            __m512 f = _mm512_cvtepi32_ps(dot2(wa[n], wneg[n], xq));
            acc[m][n] = _mm512_fmadd_ps(f, _mm512_mul_ps(dw[n], dx), acc[m][n]);
        }
    }
}

AINLINE void tile(const int MR, const int NR, float *o, int ldo, const blk *x,
                  size_t ldx, const float *xs, const int8_t *w, size_t ldw, size_t wstep,
                  const float *ws, int nb, int nv, const float *bias, int store)
{
    __m512 acc[4][4];
    for (int m = 0; m < MR; m++)
        for (int n = 0; n < NR; n++)
            acc[m][n] = _mm512_setzero_ps();
    int b = 0;
    for (; b + 2 <= nb; b += 2)
        tile_step(MR, NR, acc, x, ldx, xs, w, ldw, wstep, ws, nb, b, 1);
    if (b < nb)
        tile_step(MR, NR, acc, x, ldx, xs, w, ldw, wstep, ws, nb, b, 0);
    const __m512 z = _mm512_setzero_ps();
    for (int m = 0; m < MR; m++) {
        float s[4];
        _mm_storeu_ps(s, hsum4(acc[m][0], NR > 1 ? acc[m][1] : z, NR > 2 ? acc[m][2] : z,
                               NR > 3 ? acc[m][3] : z));
        for (int n = 0; n < nv; n++)
            put(o + (size_t)m * ldo + n, s[n], bias ? bias + n : NULL, store);
    }
}

typedef void (*gemv_fn)(float *o, int ldo, const blk *x, size_t ldx, const float *xs,
                        const blk *w, int nb, const float *bias, int store);
typedef void (*gemv_panel_fn)(float *o, int ldo, const blk *x, size_t ldx, const float *xs,
                              const grp *g, int nb, int nv, const float *bias, int store);
typedef void (*tile_fn)(float *o, int ldo, const blk *x, size_t ldx, const float *xs,
                        const int8_t *w, size_t ldw, size_t wstep, const float *ws, int nb,
                        int nv, const float *bias, int store);

/* One out-of-line instance per (variant, shape). */
#define DEF_GEMV(V, MR)                                                                            \
    static void gemv_##V##_##MR(float *o, int ldo, const blk *x, size_t ldx, const float *xs,      \
                                const blk *w, int nb, const float *bias, int store)                \
    {                                                                                              \
        gemv_row(MR, o, ldo, x, ldx, xs, w, nb, bias, store);                                      \
    }
#define DEF_GEMV_PANEL(V, MR)                                                                      \
    static void gemv_panel_##V##_##MR(float *o, int ldo, const blk *x, size_t ldx,                 \
                                      const float *xs, const grp *g, int nb, int nv,               \
                                      const float *bias, int store)                                \
    {                                                                                              \
        gemv_panel(MR, o, ldo, x, ldx, xs, g, nb, nv, bias, store);                                \
    }
#define DEF_TILE(V, MR, NR)                                                                        \
    static void tile_##V##_##MR##x##NR(float *o, int ldo, const blk *x, size_t ldx,                \
                                       const float *xs, const int8_t *w, size_t ldw,               \
                                       size_t wstep, const float *ws, int nb, int nv,              \
                                       const float *bias, int store)                               \
    {                                                                                              \
        tile(MR, NR, o, ldo, x, ldx, xs, w, ldw, wstep, ws, nb, nv, bias, store);                  \
    }
/* Plain rows: 4 x 3 tiles (panels of 3 rows); packed: the layout's panels of
 * 4 rows, 3 x 4 tiles (12 accumulators either way). */
#define DEF_VARIANT(V)                                                                             \
    DEF_GEMV(V, 1)                                                                                 \
    DEF_GEMV(V, 2)                                                                                 \
    DEF_GEMV(V, 3)                                                                                 \
    DEF_GEMV(V, 4)                                                                                 \
    DEF_GEMV_PANEL(V, 1)                                                                           \
    DEF_GEMV_PANEL(V, 2)                                                                           \
    DEF_TILE(V, 1, 1)                                                                              \
    DEF_TILE(V, 1, 2)                                                                              \
    DEF_TILE(V, 1, 3)                                                                              \
    DEF_TILE(V, 1, 4)                                                                              \
    DEF_TILE(V, 2, 1)                                                                              \
    DEF_TILE(V, 2, 2)                                                                              \
    DEF_TILE(V, 2, 3)                                                                              \
    DEF_TILE(V, 2, 4)                                                                              \
    DEF_TILE(V, 3, 1)                                                                              \
    DEF_TILE(V, 3, 2)                                                                              \
    DEF_TILE(V, 3, 3)                                                                              \
    DEF_TILE(V, 3, 4)                                                                              \
    DEF_TILE(V, 4, 1)                                                                              \
    DEF_TILE(V, 4, 2)                                                                              \
    DEF_TILE(V, 4, 3)                                                                              \
    static const kfns kfns_##V = {                                                                 \
        {gemv_##V##_1, gemv_##V##_2, gemv_##V##_3, gemv_##V##_4},                                  \
        {gemv_panel_##V##_1, gemv_panel_##V##_2},                                                  \
        {                                                                                          \
            {tile_##V##_1x1, tile_##V##_1x2, tile_##V##_1x3, tile_##V##_1x4},                      \
            {tile_##V##_2x1, tile_##V##_2x2, tile_##V##_2x3, tile_##V##_2x4},                      \
            {tile_##V##_3x1, tile_##V##_3x2, tile_##V##_3x3, tile_##V##_3x4},                      \
            {tile_##V##_4x1, tile_##V##_4x2, tile_##V##_4x3, NULL},                                \
        },                                                                                         \
    };

/* A variant's kernels; tiles[MR-1][NR-1] (4 x 4 is never used). */
typedef struct kfns {
    gemv_fn gemvs[4];
    gemv_panel_fn gemv_panels[2];
    tile_fn tiles[4][4];
} kfns;

DEF_VARIANT(bw)

/* Part `part` of `parts` of the cache lines of [p, p + bytes), into L2: the
 * tiles of one weight panel pull in the next panel (see q8_0_avx2.c). */
static inline void prefetch_part(const void *p, size_t bytes, int part, int parts)
{
    const size_t lines = (bytes + 63) / 64;
    for (size_t l = lines * part / parts; l < lines * (part + 1) / parts; l++)
        _mm_prefetch((const char *)p + l * 64, _MM_HINT_T1);
}

/* Blocking as in q8_0_avx2.c (see there). Not tuned on AVX-512 hardware. */
#define NBC 256
/* Up to 8 rows (batched decode) the GEMV loop beats the tiles: measured on
 * Zen 3, 2 threads, 124M: 10-15% faster per step at 5-8 rows, slower at 16. */
#define GEMV_MAX_M 8
#define XS_CAP 8192
#define MC 64

AINLINE void matmul(const kfns *k, float *out, int ldo, const void *inq, const void *w, int packed,
                    const float *bias, int M, int K, int n0, int n1, int accumulate)
{
    if (M <= 0 || n0 >= n1)
        return;
    const int nb = K / QK;
    const int panel_n = packed ? QP : 3, mt = packed ? 3 : 4;
    const blk *x = inq, *wq = w; /* plain rows */
    const grp *wg = w;           /* packed groups */
    float xs[XS_CAP], ws[QP * NBC];

    const int nch = nb > NBC ? (nb + NBC - 1) / NBC : 1; /* >= 1: K = 0 still writes bias */
    const int cbs = (nb + nch - 1) / nch;
    for (int c = 0; c < nch; c++) {
        const int b0 = c * cbs, cb = nb - b0 < cbs ? nb - b0 : cbs;
        const float *bc = c == 0 ? bias : NULL; /* bias and store with the first chunk */
        const int store = c == 0 && !accumulate;

        if (M <= GEMV_MAX_M) {
            /* Decode, one or many sequences: memory-bound; each weight row is read
             * from memory once and used, from L1, by every group of rows. */
            load_row_scales(xs, x + b0, (size_t)nb, M, cb);
            if (packed) {
                for (int n = n0; n < n1; n += QP) {
                    const grp *g = wg + (size_t)(n / QP) * nb + b0;
                    const int nv = n1 - n < QP ? n1 - n : QP;
                    for (int m0 = 0; m0 < M; m0 += 2) {
                        const int mr = M - m0 < 2 ? M - m0 : 2;
                        k->gemv_panels[mr - 1](out + (size_t)m0 * ldo + n, ldo,
                                               x + (size_t)m0 * nb + b0, (size_t)nb,
                                               xs + (size_t)m0 * cb, g, cb, nv,
                                               bc ? bc + n : NULL, store);
                    }
                }
                continue;
            }
            for (int n = n0; n < n1; n++)
                for (int m0 = 0; m0 < M; m0 += 4) {
                    const int mr = M - m0 < 4 ? M - m0 : 4;
                    k->gemvs[mr - 1](out + (size_t)m0 * ldo + n, ldo, x + (size_t)m0 * nb + b0,
                                     (size_t)nb, xs + (size_t)m0 * cb, wq + (size_t)n * nb + b0,
                                     cb, bc ? bc + n : NULL, store);
                }
            continue;
        }

        int mc = XS_CAP / (cb > 0 ? cb : 1);
        mc = mc > MC ? MC : mc - mc % mt;
        for (int m0 = 0; m0 < M; m0 += mc) {
            const int mb = M - m0 < mc ? M - m0 : mc;
            const blk *xm = x + (size_t)m0 * nb + b0;
            load_row_scales(xs, xm, (size_t)nb, mb, cb);
            for (int n = n0; n < n1; n += panel_n) {
                const int nr = n1 - n < panel_n ? n1 - n : panel_n;
                /* this panel's values of block b0 (row 0), their strides, and
                 * where the next panel's blocks of this chunk lie (contiguous
                 * in either layout) */
                const int8_t *wv;
                size_t ldw, wstep, next_bytes;
                const void *next;
                if (packed) {
                    const grp *g = wg + (size_t)(n / QP) * nb + b0;
                    wv = g->qs[0], ldw = QK, wstep = sizeof(grp);
                    load_scales(ws, g->d, sizeof g->d[0], sizeof(grp), QP, cb);
                    next = g + nb;
                    next_bytes = n + QP < n1 ? (size_t)cb * sizeof(grp) : 0;
                } else {
                    const blk *wn = wq + (size_t)n * nb + b0;
                    wv = wn->qs, ldw = (size_t)nb * sizeof(blk), wstep = sizeof(blk);
                    load_row_scales(ws, wn, (size_t)nb, nr, cb);
                    const int nr_next = n1 - n - nr < panel_n ? n1 - n - nr : panel_n;
                    next = wn + (size_t)nr * nb;
                    next_bytes = nr_next > 0 ? ((size_t)(nr_next - 1) * nb + cb) * sizeof(blk) : 0;
                }
                const int ncols = packed ? QP : nr; /* a packed tile always runs 4 rows */
                for (int m = 0, t = 0; m < mb; m += mt, t++) {
                    const int mr = mb - m < mt ? mb - m : mt;
                    prefetch_part(next, next_bytes, t, (mb + mt - 1) / mt);
                    k->tiles[mr - 1][ncols - 1](out + (size_t)(m0 + m) * ldo + n, ldo,
                                                xm + (size_t)m * nb, (size_t)nb,
                                                xs + (size_t)m * cb, wv, ldw, wstep, ws, cb, nr,
                                                bc ? bc + n : NULL, store);
                }
            }
        }
    }
}

void gpt2k_matmul_q8_0_avx512bw(float *out, int ldo, const void *inq, const void *w,
                                const float *bias, int M, int K, int n0, int n1, int accumulate)
{
    matmul(&kfns_bw, out, ldo, inq, w, 0, bias, M, K, n0, n1, accumulate);
}

void gpt2k_matmul_q8_0_packed_avx512bw(float *out, int ldo, const void *inq, const void *wp,
                                       const float *bias, int M, int K, int n0, int n1,
                                       int accumulate)
{
    matmul(&kfns_bw, out, ldo, inq, wp, 1, bias, M, K, n0, n1, accumulate);
}


#endif
