/* fp32 / fp16-weight matmul for AVX2 + FMA (+ F16C): weights in 16-column
 * panels (packed once per model, kernels.h / pack.c, or packed here on the fly
 * from the plain layout), a 6 x 16 outer-product register tile.
 *
 * out[m][n] (+)= sum_k in[m][k] * w[n][k] + bias[n], W stored [N][K].
 *
 * Why outer products: the tile keeps 6 x 16 results in 12 accumulators; each
 * step over k loads 16 weights (two vectors, from a packed panel in L1) and
 * broadcasts 6 activations, so 8 loads feed 12 FMAs and every activation is
 * used for 16 columns. A dot-product tile (lanes over k) reuses each loaded
 * activation vector for only as many columns as it has accumulators to spare
 * and pays a horizontal sum per result.
 *
 * Why the order of the sum matters: every result is one fma chain over
 * k = 0, 1, ..., K-1 in index order, then + bias, then + the old out (the
 * residual), whatever M is and however the work is blocked (partial sums
 * between K blocks are stored exactly and resumed). So a row's result does not
 * depend on which other rows share the call: batched decode, prefill and a
 * sequence decoding alone agree bit for bit (the serving engine's promise).
 *
 * Packing on the fly (the plain-layout entry points): a panel is 16 weight
 * rows x KC k-values transposed to [k][16] (fp16 widened on the way), built
 * with 8 x 8 register transposes; rows past the range are zeros and never
 * read. It costs one pass over the weights per MC rows of activations. The
 * engine packs once per model instead (gpt2k_matmul_packed_avx2): decode then
 * streams the panels as they lie, prefill reads fp32 panel blocks in place. */
#include "matmul_internal.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>

#define AINLINE static inline __attribute__((always_inline))

#define NR 16  /* columns per panel: two vectors */
#define GH GPT2K_PACK_COLS_F16 /* fp16 packed: a group of two panels, one line per k */
#define MR 6   /* most rows per register tile */
/* Prefill (M > DECODE_MAX_M; packed: M > BATCH_MAX_M): one panel of KC
 * values of k (16 KiB, half of L1) stays while the MC rows of a pass stream
 * past; MC bounds the partial sums. */
#define KC 256
#define MC 192
/* Decode (M <= DECODE_MAX_M): every result is a serial chain of FMAs (see
 * above), and an FMA waits 4 cycles for the one before it, so at least 8
 * accumulators must be in flight: one row needs 64 columns at once. Panels
 * go in groups of GROUP (64 columns) over KC_DECODE values of k (16 KiB).
 * From 4 rows on the prefill loop's 4-6 x 16 tiles have the chains too, and
 * when its tiles read one panel at a time it was the faster one (Zen 3, 2
 * threads, packed 768 x 3072, weights from memory, three alternating runs:
 * M = 4 ~11 % more GB/s, M = 8 ~9 %, M = 16 ~13 %). Once the decode loop
 * read 4 long streams, it won for a packed matrix of up to BATCH_MAX_M rows
 * (batched decode), in chunks of up to 3 rows over each block, which stays
 * in L1 for the chunks after the first (Zen 4/5 class VM, --isa avx2,
 * 2 threads, kbench 124M shapes from memory, three alternating rounds: fp32
 * up 4 rows 0.24-0.26 vs 0.32-0.34 ms, 16 rows 0.52-0.53 vs 0.62-0.66; fp16
 * within noise; serving bench phase 4, fp32, tokens/s at 4 / 8 clients
 * 157-171 / 197-215 vs 131-156 / 176-186), and for short prompts up to 64
 * rows too (TTFT, three alternating rounds: 32 tokens f32 36.4-39.6 vs
 * 42.2-46.0 ms, F16 even; 64 tokens f32 64.4-66.2 vs 67.4-72.6, F16
 * 60.0-71.4 vs 62.9-77.4). Zen 3 was not measured again. The plain layout
 * keeps the prefill loop from 4 rows on: its panels are packed per block,
 * which the rows of a pass share. */
#define DECODE_MAX_M 3
#define BATCH_MAX_M 64
#define BATCH_CHUNKS ((BATCH_MAX_M + DECODE_MAX_M - 1) / DECODE_MAX_M)
#define GROUP 4
#define KC_DECODE 64

/* ---- packing ----------------------------------------------------------------- */

AINLINE __m256 load8(const int f16, const void *p, int k)
{
    if (f16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + k)));
    return _mm256_loadu_ps((const float *)p + k);
}

AINLINE float load1(const int f16, const void *p, int k)
{
    return f16 ? _cvtsh_ss(((const uint16_t *)p)[k]) : ((const float *)p)[k];
}

/* r[i] = row i (8 values each) -> r[j] = column j (value j of every row). */
AINLINE void transpose8(__m256 r[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* Stands in for the missing rows of a partial panel (fp32 zeros are fp16 zeros too). */
static const float zero_row[KC] __attribute__((aligned(32)));

/* bp[k][r] = w[n + r][k0 + k] for r < nr, 0 for nr <= r < 16; k < kc.
 * pf != 0: prefetch each row pf weights further on as it goes. */
AINLINE void pack_panel(const int f16, float *bp, const void *w, size_t K, int n, int nr, int k0,
                        int kc, int pf)
{
    const size_t esz = f16 ? 2 : 4;
    for (int r0 = 0; r0 < NR; r0 += 8) {
        const char *row[8];
        int live = 0;
        for (int r = 0; r < 8; r++) {
            if (r0 + r < nr) {
                row[r] = (const char *)w + ((size_t)(n + r0 + r) * K + (size_t)k0) * esz;
                live++;
            } else {
                row[r] = (const char *)zero_row;
            }
        }
        if (!live) {
            for (int k = 0; k < kc; k++)
                _mm256_store_ps(bp + (size_t)k * NR + r0, _mm256_setzero_ps());
            continue;
        }
        int k = 0;
        for (; k + 8 <= kc; k += 8) {
            __m256 v[8];
            if (pf && (k * esz) % 64 == 0)
                for (int r = 0; r < live; r++)
                    _mm_prefetch(row[r] + ((size_t)k + (size_t)pf) * esz, _MM_HINT_T0);
            for (int r = 0; r < 8; r++)
                v[r] = load8(f16, row[r], k);
            transpose8(v);
            for (int j = 0; j < 8; j++)
                _mm256_store_ps(bp + (size_t)(k + j) * NR + r0, v[j]);
        }
        for (; k < kc; k++)
            for (int r = 0; r < 8; r++)
                bp[(size_t)k * NR + r0 + r] = r0 + r < nr ? load1(f16, row[r], k) : 0.0f;
    }
}

/* ---- the register tile ----------------------------------------------------------- */

/* Weight vector j (8 columns) of panel block b at k: fp32, or fp16 widened. */
AINLINE __m256 load_b(const int f16, const void *b, int k, int j)
{
    if (f16)
        return _mm256_cvtph_ps(
            _mm_loadu_si128((const __m128i *)((const uint16_t *)b + (size_t)k * GH + j * 8)));
    return _mm256_loadu_ps((const float *)b + (size_t)k * NR + j * 8);
}

/* mr rows x np panels (np * 16 columns) of results over kc values of k.
 * a: row 0's first activation (row stride lda); bq[p]: panel p's block, [kc][16]
 * (fp16 when f16). cb: the tile's partial sums ([mr][np * 16]): resumed when
 * resume, saved unless fin. fin: the last K block; writes out (+ bias, + old
 * out when accumulate) for the first nc columns. The columns of the tile's
 * streams (fp32 panels, fp16 groups of two) lie ostride apart in o and bias
 * (16 or 32: side by side); only a tile of all np * 16 columns (nc) may
 * spread them.
 *
 * The accumulators are one array indexed only by constants (every loop over
 * rows or vectors is written out, unused ones fold away), so the compiler
 * keeps it in registers; mr * np * 2 <= 12 of the 16. */
AINLINE void tile(const int mr, const int np, const int f16, int kc, const float *a, size_t lda,
                  const void *const *bq, float *cb, int resume, int fin, float *o, size_t ldo,
                  const float *bias, int nc, int accumulate, size_t ostride)
{
    const int nv = 2 * np;
    const size_t ldc = (size_t)np * NR;
    __m256 x[12];
#define EACH_M(F) F(0) F(1) F(2) F(3) F(4) F(5)
#define EACH_V(F, m) F(m, 0) F(m, 1) F(m, 2) F(m, 3) F(m, 4) F(m, 5) F(m, 6) F(m, 7)
#define LIVE(m, v) (mr > (m) && nv > (v))
#define X(m, v) x[(m) * nv + (v)]
#define INIT_V(m, v)                                                                               \
    if (LIVE(m, v))                                                                                \
        X(m, v) = resume ? _mm256_load_ps(cb + (m) * ldc + (v) * 8) : _mm256_setzero_ps();
#define INIT_M(m) EACH_V(INIT_V, m)
    EACH_M(INIT_M)
    /* unrolled: the loop counter and address updates otherwise hold Zen 3
     * at ~75 % of the FMA rate (a 6 x 16 tile in L1: 4x unrolled ~88 %) */
#pragma GCC unroll 4
    for (int k = 0; k < kc; k++) {
        /* decode's tiles (several panels; prefill's are one wide) stream
         * their panels from memory */
        if (np > 1)
            gpt2k_prefetch_decode(f16, 2, np, bq, k, GPT2K_DECODE_PREFETCH);
        if (nv == 2) {
            /* one panel: two weight vectors held, one broadcast at a time */
            const __m256 b0 = load_b(f16, bq[0], k, 0), b1 = load_b(f16, bq[0], k, 1);
#define STEP1(m)                                                                                   \
    if (mr > (m)) {                                                                                \
        const __m256 av = _mm256_broadcast_ss(a + (size_t)(m) * lda + k);                          \
        X(m, 0) = _mm256_fmadd_ps(av, b0, X(m, 0));                                                \
        X(m, 1) = _mm256_fmadd_ps(av, b1, X(m, 1));                                                \
    }
            EACH_M(STEP1)
        } else {
            /* several panels: the (<= 3) broadcasts held, one weight vector at a time */
            __m256 av[3];
            av[0] = _mm256_broadcast_ss(a + k);
            if (mr > 1)
                av[1] = _mm256_broadcast_ss(a + lda + k);
            if (mr > 2)
                av[2] = _mm256_broadcast_ss(a + 2 * lda + k);
#define STEPN_V(v)                                                                                 \
    if (nv > (v)) {                                                                                \
        const __m256 b = load_b(f16, bq[(v) / 2], k, (v) % 2);                                     \
        X(0, v) = _mm256_fmadd_ps(av[0], b, X(0, v));                                              \
        if (mr > 1)                                                                                \
            X(1, v) = _mm256_fmadd_ps(av[1], b, X(1, v));                                          \
        if (mr > 2)                                                                                \
            X(2, v) = _mm256_fmadd_ps(av[2], b, X(2, v));                                          \
    }
            STEPN_V(0) STEPN_V(1) STEPN_V(2) STEPN_V(3) STEPN_V(4) STEPN_V(5) STEPN_V(6) STEPN_V(7)
        }
    }
    if (!fin) {
#define SAVE_V(m, v)                                                                               \
    if (LIVE(m, v))                                                                                \
        _mm256_store_ps(cb + (m) * ldc + (v) * 8, X(m, v));
#define SAVE_M(m) EACH_V(SAVE_V, m)
        EACH_M(SAVE_M)
        return;
    }
    if (nc == nv * 8) {
#define OUT_V(m, v)                                                                                \
    if (LIVE(m, v)) {                                                                              \
        const size_t oc = (v) / 2 / (f16 + 1) * ostride + ((v) / 2 % (f16 + 1) * 2 + (v) % 2) * 8; \
        float *op = o + (size_t)(m) * ldo + oc;                                                    \
        __m256 r = X(m, v);                                                                        \
        if (bias)                                                                                  \
            r = _mm256_add_ps(r, _mm256_loadu_ps(bias + oc));                                      \
        if (accumulate)                                                                            \
            r = _mm256_add_ps(_mm256_loadu_ps(op), r);                                             \
        _mm256_storeu_ps(op, r);                                                                   \
    }
#define OUT_M(m) EACH_V(OUT_V, m)
        EACH_M(OUT_M)
        return;
    }
    float s[MR * 8 * 8] __attribute__((aligned(32)));
#define SPILL_V(m, v)                                                                              \
    if (LIVE(m, v))                                                                                \
        _mm256_store_ps(s + (m) * 64 + (v) * 8, X(m, v));
#define SPILL_M(m) EACH_V(SPILL_V, m)
    EACH_M(SPILL_M)
    for (int m = 0; m < mr; m++) {
        float *om = o + (size_t)m * ldo;
        for (int j = 0; j < nc; j++) {
            float v = bias ? s[m * 64 + j] + bias[j] : s[m * 64 + j];
            om[j] = accumulate ? om[j] + v : v;
        }
    }
#undef EACH_M
#undef EACH_V
#undef LIVE
#undef X
#undef INIT_V
#undef INIT_M
#undef STEP1
#undef STEPN_V
#undef SAVE_V
#undef SAVE_M
#undef OUT_V
#undef OUT_M
#undef SPILL_V
#undef SPILL_M
}

typedef void (*tile_fn)(int kc, const float *a, size_t lda, const void *const *bq, float *cb,
                        int resume, int fin, float *o, size_t ldo, const float *bias, int nc,
                        int accumulate, size_t ostride);

/* One out-of-line instance per shape and weight type: a call costs nothing
 * next to a tile's k loop. */
#define DEF_TILE(R, P)                                                                             \
    static void tile_##R##x##P(int kc, const float *a, size_t lda, const void *const *bq,          \
                               float *cb, int resume, int fin, float *o, size_t ldo,               \
                               const float *bias, int nc, int accumulate, size_t ostride)          \
    {                                                                                              \
        tile(R, P, 0, kc, a, lda, bq, cb, resume, fin, o, ldo, bias, nc, accumulate, ostride);     \
    }
#define DEF_TILE_H(R, P)                                                                           \
    static void tile_h_##R##x##P(int kc, const float *a, size_t lda, const void *const *bq,        \
                                 float *cb, int resume, int fin, float *o, size_t ldo,             \
                                 const float *bias, int nc, int accumulate, size_t ostride)        \
    {                                                                                              \
        tile(R, P, 1, kc, a, lda, bq, cb, resume, fin, o, ldo, bias, nc, accumulate, ostride);     \
    }
DEF_TILE(1, 1)
DEF_TILE(2, 1)
DEF_TILE(3, 1)
DEF_TILE(4, 1)
DEF_TILE(5, 1)
DEF_TILE(6, 1)
DEF_TILE(1, 4)
DEF_TILE(2, 2)
DEF_TILE(3, 2)
/* fp16 blocks are read by tiles only in decode from a packed matrix */
DEF_TILE_H(1, 4)
DEF_TILE_H(2, 2)
DEF_TILE_H(3, 2)

/* The tile for 1-3 rows in decode: as many panels as keep >= 8 FMA chains
 * going within 12 accumulators. [f16][rows - 1] */
static const tile_fn decode_tiles[2][DECODE_MAX_M] = {
    {tile_1x4, tile_2x2, tile_3x2},
    {tile_h_1x4, tile_h_2x2, tile_h_3x2},
};
static const int decode_panels[DECODE_MAX_M] = {4, 2, 2};
/* one panel wide (prefill), by rows; fp32 panels */
static const tile_fn prefill_tiles[MR] = {tile_1x1, tile_2x1, tile_3x1,
                                           tile_4x1, tile_5x1, tile_6x1};

/* Stands in for panels past the last column in a packed matrix's last group. */
static const float zero_panel[KC_DECODE * NR] __attribute__((aligned(64)));

/* ---- the loop nests --------------------------------------------------------------- */

/* Decode (1-3 rows; 4-64 from a packed matrix): per group of 4 streams
 * (4 panels; packed fp16: 4 groups of two panels, 8), per K block, the
 * group's block (packed now from the plain layout, or read where it lies in
 * a packed matrix) goes to the widest tiles the row count allows, chunk by
 * chunk of up to 3 rows. In a packed matrix the range's whole groups take
 * their streams from runs read side by side, as the AVX-512 decode tiles do
 * (matmul_avx512.c): group g reads unit g of each run, so each stream goes
 * on where the group before left it. Packed fp16 groups were 4 panels (two
 * streams) until then; 8 were faster (Zen 4, --isa avx2, F16 decode after
 * 32 tokens: medians 219 vs 211 tokens/s, six of six alternating rounds;
 * one thread 148 vs 140, three of four). */
AINLINE void matmul_decode(const int f16, const int packed, float *out, int ldo, const float *in,
                           int ldi, const void *w, const float *bias, int M, int K, int n0,
                           int n1, int accumulate)
{
    float bp[GROUP * KC_DECODE * NR] __attribute__((aligned(64)));
    /* partial sums: per chunk of rows, per sub-tile ([rows][np * 16]) */
    float cb[BATCH_CHUNKS * DECODE_MAX_M * 2 * GROUP * NR] __attribute__((aligned(64)));
    const size_t ps = (size_t)KC_DECODE * NR;
    const int nkb = K > 0 ? (K + KC_DECODE - 1) / KC_DECODE : 1; /* K = 0 still writes bias */
    const int hb = packed && f16;   /* tiles read fp16 blocks */
    const int nchunks = (M + DECODE_MAX_M - 1) / DECODE_MAX_M;
    const int u = hb + 1, ucols = u * NR; /* panels and columns per stream */
    const int gp = u * GROUP;             /* panels per group: 4 streams */
    const int run = packed ? (n1 - n0) / (gp * NR) : 0; /* groups read spread */
    /* the spread groups, then the rest from the column after their runs */
    for (int g = 0, rest = n0 + run * gp * NR; g < run || rest < n1; g++) {
        const int spread = g < run;
        const int n = spread ? n0 + g * ucols : rest;
        const size_t os = spread ? (size_t)run * ucols : (size_t)ucols;
        const int nc = spread || n1 - n >= gp * NR ? gp * NR : n1 - n;
        size_t col[2 * GROUP]; /* panel p's first column */
        for (int p = 0; p < gp; p++)
            col[p] = n + p / u * os + (size_t)(p % u) * NR;
        for (int kb = 0; kb < nkb; kb++) {
            const int k0 = kb * KC_DECODE, kc = K - k0 < KC_DECODE ? K - k0 : KC_DECODE;
            const void *bq[2 * GROUP];
            for (int p = 0; p < gp; p++) {
                if (!packed) {
                    /* 64 rows streamed at once are more than the hardware
                     * prefetcher follows: each asks for its next block */
                    pack_panel(f16, bp + p * ps, w, (size_t)K, n + p * NR, nc - p * NR, k0, kc,
                               KC_DECODE);
                    bq[p] = bp + p * ps;
                } else {
                    bq[p] = p * NR < nc ? gpt2k_packed_block(f16, w, K, (int)(col[p] / NR), k0)
                                        : zero_panel;
                }
            }
            const int resume = kb > 0, fin = kb == nkb - 1;
            for (int c = 0; c < nchunks; c++) {
                /* chunk c: rows [c * M / nchunks, (c + 1) * M / nchunks) */
                const int m = (int)((long)c * M / nchunks);
                const int mr = (int)((long)(c + 1) * M / nchunks) - m, np = decode_panels[mr - 1];
                float *cc = cb + (size_t)c * DECODE_MAX_M * 2 * GROUP * NR;
                for (int p = 0; p < gp && p * NR < nc; p += np) {
                    const int pc = nc - p * NR < np * NR ? nc - p * NR : np * NR;
                    decode_tiles[hb][mr - 1](kc, in + (size_t)m * ldi + k0, (size_t)ldi, bq + p,
                                             cc + (size_t)p * DECODE_MAX_M * NR, resume, fin,
                                             out + (size_t)m * ldo + col[p], (size_t)ldo,
                                             bias ? bias + col[p] : NULL, pc, accumulate, os);
                }
            }
        }
        if (!spread)
            rest += gp * NR;
    }
}

/* Prefill: per 16-column panel, per MC rows, per K block, the panel's block
 * in fp32 (packed or widened now; a packed fp32 matrix is read in place) goes
 * to every 6-row tile of the pass. */
AINLINE void matmul_prefill(const int f16, const int packed, float *out, int ldo, const float *in,
                            int ldi, const void *w, const float *bias, int M, int K, int n0,
                            int n1, int accumulate)
{
    float bp[KC * NR] __attribute__((aligned(64)));
    float cb[MC * NR] __attribute__((aligned(64)));
    const int nkb = K > 0 ? (K + KC - 1) / KC : 1;
    for (int n = n0; n < n1; n += NR) {
        const int nc = n1 - n < NR ? n1 - n : NR;
        const float *bn = bias ? bias + n : NULL;
        for (int m0 = 0; m0 < M; m0 += MC) {
            const int mb = M - m0 < MC ? M - m0 : MC;
            for (int kb = 0; kb < nkb; kb++) {
                const int k0 = kb * KC, kc = K - k0 < KC ? K - k0 : KC;
                const void *blk = bp;
                if (!packed) {
                    pack_panel(f16, bp, w, (size_t)K, n, nc, k0, kc, 0);
                } else if (f16) {
                    const uint16_t *h = gpt2k_packed_block(1, w, K, n / NR, k0);
                    for (int k = 0; k < kc; k++)
                        for (int j = 0; j < NR; j += 8)
                            _mm256_store_ps(bp + (size_t)k * NR + j,
                                            _mm256_cvtph_ps(_mm_loadu_si128(
                                                (const __m128i *)(h + (size_t)k * GH + j))));
                } else {
                    blk = gpt2k_packed_block(0, w, K, n / NR, k0);
                }
                for (int m = 0; m < mb; m += MR) {
                    const int mr = mb - m < MR ? mb - m : MR;
                    prefill_tiles[mr - 1](
                        kc, in + (size_t)(m0 + m) * ldi + k0, (size_t)ldi, &blk,
                        cb + (size_t)m * NR, kb > 0, kb == nkb - 1,
                        out + (size_t)(m0 + m) * ldo + n, (size_t)ldo, bn, nc, accumulate,
                        (size_t)NR);
                }
            }
        }
    }
}

AINLINE void matmul_avx2(const int f16, const int packed, float *out, int ldo, const float *in,
                         int ldi, const void *w, const float *bias, int M, int K, int n0, int n1,
                         int accumulate)
{
    if (M <= 0 || n0 >= n1)
        return;
    if (M <= DECODE_MAX_M || (packed && M <= BATCH_MAX_M))
        matmul_decode(f16, packed, out, ldo, in, ldi, w, bias, M, K, n0, n1, accumulate);
    else
        matmul_prefill(f16, packed, out, ldo, in, ldi, w, bias, M, K, n0, n1, accumulate);
}

void gpt2k_matmul_f32_avx2(float *out, int ldo, const float *in, int ldi, const float *w,
                           const float *bias, int M, int K, int n0, int n1, int accumulate)
{
    matmul_avx2(0, 0, out, ldo, in, ldi, w, bias, M, K, n0, n1, accumulate);
}

void gpt2k_matmul_f16_avx2(float *out, int ldo, const float *in, int ldi, const uint16_t *w,
                           const float *bias, int M, int K, int n0, int n1, int accumulate)
{
    matmul_avx2(1, 0, out, ldo, in, ldi, w, bias, M, K, n0, n1, accumulate);
}

void gpt2k_matmul_packed_avx2(float *out, int ldo, const float *in, int ldi, const void *wp,
                              gpt2k_wtype wt, const float *bias, int M, int K, int n0, int n1,
                              int accumulate)
{
    if (wt == GPT2K_W_F16)
        matmul_avx2(1, 1, out, ldo, in, ldi, wp, bias, M, K, n0, n1, accumulate);
    else
        matmul_avx2(0, 1, out, ldo, in, ldi, wp, bias, M, K, n0, n1, accumulate);
}

#endif
