/* Q8_0 matmul for AVX-512 VNNI on column panels (GPT2K_Q8_COLS16, kernels.h):
 * an int32 lane of vpdpbusd is one output column, so a block's integer dot
 * product is whole in its lane, with no horizontal sums.
 *
 * out[m][n] (+)= sum_b float(isum(m, n, b)) * (d_w(n, b) * d_x(m, b)) + bias[n]
 *
 * The order of the sum is the scalar reference's (q8_0_ref.c), lane for lane:
 * the exact int32 sum of each block pair, times the exact product of the two
 * scales (fp16 x fp16 fits a float), added to the running sum in block order
 * starting from +0 (a multiply and an add, not an FMA), then + bias, then +
 * the old out. So this path's results equal the reference bit for bit, for
 * any M and either layout, up to K = KB x 32 (4,096); beyond, each further
 * K chunk's sum is added to out as it comes (as the other Q8_0 paths do).
 *
 * vpdpbusd multiplies unsigned by signed bytes: the panels hold w + 128, so
 * the lane gets sum (w + 128) x = sum w x + 128 sum x, and starts from
 * -128 sum x of the activation block (computed once per row and block).
 *
 * Tiles: MR rows x NP panels of 16 columns, MR x NP int32 sums of the block
 * and MR x NP running fp32 sums in registers: 4 x 3 from 4 rows on (24 of 32
 * registers; 3 weight loads and 4 broadcasts per 12 vpdpbusd), 1-3 rows x 4
 * panels below (decode: 4 weight streams in flight). */
#include "q8_0_internal.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) &&                      \
    defined(__AVX512DQ__) && defined(__AVX512VNNI__) && defined(__F16C__)

#include <immintrin.h>
#include <string.h>

#define AINLINE static inline __attribute__((always_inline))
#define QK GPT2K_QK8_0
#define NC GPT2K_Q8_COLS /* columns per panel */
#define KB 128           /* blocks per K chunk (see the top) */
#define XCAP 8192        /* row x block entries of the activation tables */
#define SPREAD_ROWS 16   /* up to this many rows (decode, batched), tiles read runs */

typedef gpt2k_block_q8_0 blk;
typedef gpt2k_q8_0_cols cgrp;

/* Lanes [0, n) of 16. */
AINLINE __mmask16 lanes(int n)
{
    return n >= NC ? (__mmask16)0xffff : (__mmask16)((1u << (n > 0 ? n : 0)) - 1u);
}

/* Per row and block of the activations: the scale as fp32 and -128 x the sum
 * of the 32 values (the start of each of its lanes). */
static void row_tables(float *xs, int32_t *corr, const blk *x, size_t ldx, int rows, int nbc)
{
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    for (int r = 0; r < rows; r++)
        for (int b = 0; b < nbc; b++) {
            const blk *xb = x + (size_t)r * ldx + b;
            uint16_t h;
            memcpy(&h, &xb->d, sizeof h);
            xs[r * nbc + b] = _cvtsh_ss(h);
            /* sum of (x + 128) by sad against 0, less 32 x 128 */
            const __m256i u = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)xb->qs), bias);
            const __m256i s4 = _mm256_sad_epu8(u, _mm256_setzero_si256());
            const __m128i s2 =
                _mm_add_epi64(_mm256_castsi256_si128(s4), _mm256_extracti128_si256(s4, 1));
            const int64_t s = _mm_cvtsi128_si64(s2) + _mm_extract_epi64(s2, 1) - 32 * 128;
            corr[r * nbc + b] = (int32_t)(-128 * s);
        }
}

/* mr rows x np panels over nbc blocks. x: row 0's first block (rows ldx
 * blocks apart); xs, corr: the rows' tables (row stride nbc); w: panel 0's
 * first group, panels wstride groups apart. Writes the first nc columns of
 * each row (+ bias; stored when store, else added to out), panel p's at
 * column p * ostride of o and bias (NC: side by side). */
AINLINE void tile(const int mr, const int np, float *o, size_t ldo, const blk *x, size_t ldx,
                  const float *xs, const int32_t *corr, const cgrp *w, size_t wstride, int nbc,
                  int nc, const float *bias, int store, size_t ostride)
{
    __m512 acc[12];
#define EACH_M(F) F(0) F(1) F(2) F(3)
#define EACH_P(F, m) F(m, 0) F(m, 1) F(m, 2) F(m, 3)
#define LIVE(m, p) (mr > (m) && np > (p))
#define ACC(m, p) acc[(m) * np + (p)]
#define ZERO_P(m, p)                                                                               \
    if (LIVE(m, p))                                                                                \
        ACC(m, p) = _mm512_setzero_ps();
#define ZERO_M(m) EACH_P(ZERO_P, m)
    EACH_M(ZERO_M)
    for (int b = 0; b < nbc; b++) {
        __m512i is[12];
        /* no software prefetch: since a decode tile's panels come from long
         * runs (panels() below), asking for each panel 4 blocks ahead made
         * decode slower (Zen 4, Q8_0
         * after 32 tokens: 470 vs 512 tokens/s, medians of eight alternating
         * rounds, slower in all eight; after 900 tokens 335 vs 362, four of
         * five) */
#define INIT_P(m, p)                                                                               \
    if (LIVE(m, p))                                                                                \
        is[(m) * np + (p)] = c##m;
#define INIT_M(m)                                                                                  \
    if (mr > (m)) {                                                                                \
        const __m512i c##m = _mm512_set1_epi32(corr[(m) * nbc + b]);                               \
        EACH_P(INIT_P, m)                                                                          \
    }
        EACH_M(INIT_M)
#pragma GCC unroll 8
        for (int j = 0; j < QK / 4; j++) {
            __m512i wv[4];
#define LOAD_W(p)                                                                                  \
    if (np > (p))                                                                                  \
        wv[p] = _mm512_loadu_si512((const void *)w[(size_t)(p) * wstride + b].q[j]);
            LOAD_W(0) LOAD_W(1) LOAD_W(2) LOAD_W(3)
#define DOT_P(m, p)                                                                                \
    if (LIVE(m, p))                                                                                \
        is[(m) * np + (p)] = _mm512_dpbusd_epi32(is[(m) * np + (p)], wv[p], xv);
#define DOT_M(m)                                                                                   \
    if (mr > (m)) {                                                                                \
        int32_t x4;                                                                                \
        memcpy(&x4, x[(size_t)(m) * ldx + b].qs + 4 * j, sizeof x4);                               \
        const __m512i xv = _mm512_set1_epi32(x4);                                                  \
        EACH_P(DOT_P, m)                                                                           \
    }
            EACH_M(DOT_M)
        }
        __m512 dw[4];
#define LOAD_D(p)                                                                                  \
    if (np > (p))                                                                                  \
        dw[p] = _mm512_cvtph_ps(                                                                   \
            _mm256_loadu_si256((const __m256i *)w[(size_t)(p) * wstride + b].d));
        LOAD_D(0) LOAD_D(1) LOAD_D(2) LOAD_D(3)
#define SCALE_P(m, p)                                                                              \
    if (LIVE(m, p))                                                                                \
        ACC(m, p) = _mm512_add_ps(                                                                 \
            ACC(m, p), _mm512_mul_ps(_mm512_cvtepi32_ps(is[(m) * np + (p)]),                       \
                                     _mm512_mul_ps(dw[p], dx##m)));
#define SCALE_M(m)                                                                                 \
    if (mr > (m)) {                                                                                \
        const __m512 dx##m = _mm512_set1_ps(xs[(m) * nbc + b]);                                    \
        EACH_P(SCALE_P, m)                                                                         \
    }
        EACH_M(SCALE_M)
    }
#define OUT_P(m, p)                                                                                \
    if (LIVE(m, p) && (p) * NC < nc) {                                                             \
        const __mmask16 mk = lanes(nc - (p) * NC);                                                 \
        float *op = o + (size_t)(m) * ldo + (p) * ostride;                                         \
        __m512 r = ACC(m, p);                                                                      \
        if (bias)                                                                                  \
            r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(mk, bias + (p) * ostride));                 \
        if (!store)                                                                                \
            r = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, op), r);                                   \
        _mm512_mask_storeu_ps(op, mk, r);                                                          \
    }
#define OUT_M(m) EACH_P(OUT_P, m)
    EACH_M(OUT_M)
#undef EACH_M
#undef EACH_P
#undef LIVE
#undef ACC
#undef ZERO_P
#undef ZERO_M
#undef INIT_P
#undef INIT_M
#undef LOAD_W
#undef DOT_P
#undef DOT_M
#undef LOAD_D
#undef SCALE_P
#undef SCALE_M
#undef OUT_P
#undef OUT_M
}

typedef void (*tile_fn)(float *o, size_t ldo, const blk *x, size_t ldx, const float *xs,
                        const int32_t *corr, const cgrp *w, size_t wstride, int nbc, int nc,
                        const float *bias, int store, size_t ostride);

#define DEF_TILE(R, P)                                                                             \
    static void tile_##R##x##P(float *o, size_t ldo, const blk *x, size_t ldx, const float *xs,    \
                               const int32_t *corr, const cgrp *w, size_t wstride, int nbc,        \
                               int nc, const float *bias, int store, size_t ostride)               \
    {                                                                                              \
        tile(R, P, o, ldo, x, ldx, xs, corr, w, wstride, nbc, nc, bias, store, ostride);           \
    }
DEF_TILE(1, 1)
DEF_TILE(1, 2)
DEF_TILE(1, 3)
DEF_TILE(1, 4)
DEF_TILE(2, 1)
DEF_TILE(2, 2)
DEF_TILE(2, 3)
DEF_TILE(2, 4)
DEF_TILE(3, 1)
DEF_TILE(3, 2)
DEF_TILE(3, 3)
DEF_TILE(3, 4)
DEF_TILE(4, 1)
DEF_TILE(4, 2)
DEF_TILE(4, 3)

/* [rows - 1][panels - 1]; 4 x 4 is never used */
static const tile_fn tiles[4][4] = {
    {tile_1x1, tile_1x2, tile_1x3, tile_1x4},
    {tile_2x1, tile_2x2, tile_2x3, tile_2x4},
    {tile_3x1, tile_3x2, tile_3x3, tile_3x4},
    {tile_4x1, tile_4x2, tile_4x3, NULL},
};

/* Tile rows for M rows, and rows per row block: the activation tables of a
 * block (rows x nbc entries) fit XCAP, in whole tiles. */
static int tile_rows(int M) { return M >= 4 ? 4 : M; }
static int block_rows(int M, int nbc)
{
    const int mt = tile_rows(M), mc = XCAP / (nbc > 0 ? nbc : 1);
    return mc < M ? mc - mc % mt : M;
}

/* Columns [n0, n1) of the mb rows at x (row tables xs, corr already made),
 * over the nbc blocks of a K chunk: panels of the chunk at wp (panel n / 16
 * at (n / 16) * wstride groups; wstride = the matrix's blocks per row for a
 * packed matrix), mt-row tiles. n0 is a panel's first column.
 *
 * Decode tiles (1-3 rows) stream their 4 panels from memory. The range's
 * whole panels are cut into 4 runs read side by side: tile t reads panel t
 * of each run, so each of its streams goes on where the tile before left it
 * (4 long streams per thread, as a plain read loop reads) rather than 4
 * adjacent panels that start 4 new streams every tile. Zen 4, 2 threads,
 * 124M M = 1 shapes, `gpt2c-kbench` vsRead in four alternating rounds:
 * 0.79-0.88 against 0.75-0.86, higher on every shape; Q8_0 decode after 32
 * tokens, eight alternating rounds: medians 455 vs 427 tokens/s. Batched
 * decode of 4-16 rows does the same with its 3-panel tiles, each run's
 * panels going to every row tile in turn (124M shapes, three alternating
 * rounds: M = 4 0.030-0.050 vs 0.048-0.071 ms for qkv / up / down, LM head
 * 0.68-0.81 vs 1.06-1.12; M = 16 up 0.086-0.103 vs 0.127-0.128, LM head
 * 1.53-1.74 vs 2.11-2.21). The panels left over (fewer than a tile's, and
 * a last partial one) go to the tiles below. */
static void panels(const int mt, float *out, int ldo, const blk *x, size_t ldx, const cgrp *wp,
                   size_t wstride, const float *bias, int mb, int nbc, int n0, int n1, int store,
                   const float *xs, const int32_t *corr)
{
    const int npg = mt == 4 ? 3 : 4; /* panels per tile */
    if (mb <= SPREAD_ROWS) {
        const int run = (n1 - n0) / NC / npg; /* panels per run */
        for (int t = 0; t < run; t++) {
            const int n = n0 + t * NC;
            for (int m = 0; m < mb; m += mt) {
                const int mr = mb - m < mt ? mb - m : mt;
                tiles[mr - 1][npg - 1](out + (size_t)m * ldo + n, (size_t)ldo,
                                       x + (size_t)m * ldx, ldx, xs + (size_t)m * nbc,
                                       corr + (size_t)m * nbc, wp + (size_t)(n / NC) * wstride,
                                       (size_t)run * wstride, nbc, npg * NC,
                                       bias ? bias + n : NULL, store, (size_t)run * NC);
            }
        }
        n0 += run * npg * NC;
    }
    for (int n = n0; n < n1; n += npg * NC) {
        const int nc = n1 - n < npg * NC ? n1 - n : npg * NC;
        const int np = (nc + NC - 1) / NC;
        const cgrp *w = wp + (size_t)(n / NC) * wstride;
        for (int m = 0; m < mb; m += mt) {
            const int mr = mb - m < mt ? mb - m : mt;
            tiles[mr - 1][np - 1](out + (size_t)m * ldo + n, (size_t)ldo, x + (size_t)m * ldx,
                                  ldx, xs + (size_t)m * nbc, corr + (size_t)m * nbc, w, wstride,
                                  nbc, nc, bias ? bias + n : NULL, store, NC);
        }
    }
}

void gpt2k_matmul_q8_0_packed_avx512vnni(float *out, int ldo, const void *inq, const void *wp,
                                         const float *bias, int M, int K, int n0, int n1,
                                         int accumulate)
{
    if (M <= 0 || n0 >= n1)
        return;
    const int nb = K / QK, mt = tile_rows(M);
    const blk *x = inq;
    const cgrp *w = wp;
    float xs[XCAP];
    int32_t corr[XCAP];
    /* K = 0 still writes the bias: one empty chunk */
    for (int b0 = 0; b0 < nb || b0 == 0; b0 += KB) {
        const int nbc = nb - b0 < KB ? nb - b0 : KB, mc = block_rows(M, nbc);
        for (int m0 = 0; m0 < M; m0 += mc) {
            const int mb = M - m0 < mc ? M - m0 : mc;
            const blk *xm = x + (size_t)m0 * nb + b0;
            row_tables(xs, corr, xm, (size_t)nb, mb, nbc);
            panels(mt, out + (size_t)m0 * ldo, ldo, xm, (size_t)nb, w + b0, (size_t)nb,
                   b0 == 0 ? bias : NULL, mb, nbc, n0, n1, b0 == 0 && !accumulate, xs, corr);
        }
    }
}

/* Plain rows: each panel of 16 rows is packed on the fly, one K chunk at a
 * time, and runs through the same tiles (a column's result does not depend
 * on the tile it is in); the row tables are made once per row block. */
void gpt2k_matmul_q8_0_avx512vnni(float *out, int ldo, const void *inq, const void *w,
                                  const float *bias, int M, int K, int n0, int n1, int accumulate)
{
    if (M <= 0 || n0 >= n1)
        return;
    const int nb = K / QK, mt = tile_rows(M);
    const blk *x = inq, *wq = w;
    float xs[XCAP];
    int32_t corr[XCAP];
    cgrp pan[KB];
    for (int b0 = 0; b0 < nb || b0 == 0; b0 += KB) {
        const int nbc = nb - b0 < KB ? nb - b0 : KB, mc = block_rows(M, nbc);
        const float *bc = b0 == 0 ? bias : NULL;
        for (int m0 = 0; m0 < M; m0 += mc) {
            const int mb = M - m0 < mc ? M - m0 : mc;
            const blk *xm = x + (size_t)m0 * nb + b0;
            row_tables(xs, corr, xm, (size_t)nb, mb, nbc);
            for (int n = n0; n < n1; n += NC) {
                const int nc = n1 - n < NC ? n1 - n : NC;
                for (int b = 0; b < nbc; b++)
                    for (int r = 0; r < NC; r++) {
                        blk src;
                        if (r < nc)
                            src = wq[(size_t)(n + r) * nb + b0 + b];
                        else
                            memset(&src, 0, sizeof src);
                        gpt2k_q8_0_cols_set(&pan[b], r, &src);
                    }
                /* the packed panel as column 0 of a 16-column matrix */
                panels(mt, out + (size_t)m0 * ldo + n, ldo, xm, (size_t)nb, pan, (size_t)nbc,
                       bc ? bc + n : NULL, mb, nbc, 0, nc, b0 == 0 && !accumulate, xs, corr);
            }
        }
    }
}

#endif
