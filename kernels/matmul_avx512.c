/* fp32 / fp16-weight matmul for AVX-512 F (+ F16C): the packed 16-column
 * panels of pack.c, one panel's 16 weights for one k being one zmm, and an
 * 8 x 48 outer-product register tile.
 *
 * out[m][n] (+)= sum_k in[m][k] * w[n][k] + bias[n], W stored [N][K].
 *
 * Why 8 rows x 3 panels: 32 zmm registers hold 24 accumulators, the 3 weight
 * vectors of one k and a broadcast. Per k, 3 weight loads and 8 broadcasts
 * feed 24 FMAs (0.46 loads per FMA; 12 x 2 would need 0.58), well inside two
 * loads a cycle for two 512-bit FMAs a cycle, and 24 independent chains are
 * three times the 8 that two pipes of 4-cycle FMAs need.
 *
 * The order of the sum is the AVX2 kernels' (matmul_avx2.c), lane for lane:
 * every result is one FMA chain over k = 0 .. K-1 in index order from +0,
 * partial sums between K blocks stored exactly and resumed, then + bias, then
 * + the old out. A zmm accumulator of one panel is that chain for 16 columns,
 * so this table's results equal the AVX2 table's bit for bit, whatever M, and
 * a row's result does not depend on the rows beside it.
 *
 * Paths: up to 64 rows (decode, batched decode, short prompts) read the
 * weights from memory once, as they lie (fp16 widened in registers), 4
 * streams at once from runs spread over the thread's range, prefetched
 * ahead: 1-3 rows all of K in one tile with the sums in registers, 4-64
 * rows in tiles of up to 4 rows per block of k. From 65 rows on (prefill),
 * per 48 columns, per pass of rows, per block of KC k, every tile of the
 * pass; fp16 blocks are widened once per block. The
 * plain-layout entry points are the AVX2 ones: their on-the-fly packing lives
 * in matmul_avx2.c, and the engine packs its weights once and calls the
 * packed entry point. */
#include "matmul_internal.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) &&                      \
    defined(__AVX512DQ__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>

#define AINLINE static inline __attribute__((always_inline))

#define NR GPT2K_PANEL /* columns per panel: one zmm */
#define GH GPT2K_PACK_COLS_F16 /* fp16: a group of two panels, one line per k */
#define MR 8           /* most rows per prefill tile */
#define NP 3           /* panels per prefill tile */
/* Prefill: 3 panels x KC values of k (24 KiB fp32) stay in L1 while the rows
 * of a pass stream past, a tile's 8 x KC activations (4 KiB) beside them on a
 * 32 KiB L1. MC rows per pass bound the partial sums (MC x 48 floats). Not
 * measured on AVX-512 hardware: the AVX2 kernel's reasoning, scaled. */
#define KC 128
#define MC 192
/* Decode: 1-3 rows; the panels of one tile at once: 4 streams (fp16: 4
 * groups of two panels), whose chains (4 to 24) keep up with memory. One
 * f32 row once read 8 panels, so as to keep the 8 chains in flight that
 * cover the FMA latency on two pipes; once the panels came from long runs
 * (see matmul_streamed), 8 streams per thread were slower than
 * 4 on one thread (Zen 4, f32 decode, alternating rounds: medians 85.5 vs
 * 78.3 tokens/s, four of four) and even on two. fp16 tiles of 2-3 rows read
 * 2 groups until then; 4 were faster (768 x 3072 from memory, four
 * alternating rounds on two threads: 2 rows 66.5-68.1 vs 71.1-73.4 us, 3
 * rows 72.8-73.8 vs 74.3-76.3; on one thread faster in five of six). */
#define DECODE_MAX_M 3
/* Batched decode and short prompts: up to SMAX_M rows read the weights
 * from memory once, in tiles of up to SR rows by 4 fp32 panels or 3 fp16
 * groups (4 x 6 panels: 24 accumulators) per block of stream_kc[f16] k,
 * which stays in L1 for the block's other tiles (fp32 64 x 4 x 64 bytes,
 * fp16 128 x 3 x 64). Their streams are prefetched further ahead than
 * decode's, as a tile spends more time per line. Zen 4/5 class VM, 2
 * threads, gpt2c-kbench 124M shapes from memory, three alternating rounds,
 * vsRead at 4 rows with 1 / 2 / 4 KiB: fp16 up 0.60-0.68 / 0.67-0.69 /
 * 0.68-0.73, lm_head 0.62-0.72 / 0.70-0.75 / 0.67-0.75; fp32 up 0.74-0.79 /
 * 0.75-0.77 / 0.72-0.75. Up to 64 rows this beats the prefill loop, which
 * streams its three adjacent panels unprefetched (fp16 even widening them
 * into a buffer first): TTFT of 32- and 64-token prompts, alternating
 * rounds, F16 18.9-23.2 vs 27.8-36.3 ms and 32.4-35.2 vs 40.2-43.3, f32
 * 22.7-24.3 vs 22.3-26.0 and 37.6-40.7 vs 39.9-42.1; at 128 rows the
 * prefill loop is 4-10 % faster (kbench). */
#define SMAX_M 64
#define SR 4
static const int stream_kc[2] = {64, 128};
#define BATCHED_PREFETCH 2048

/* Lanes [0, n) of 16, n in [0, 16]. */
AINLINE __mmask16 lanes(int n)
{
    return n >= NR ? (__mmask16)0xffff : (__mmask16)((1u << (n > 0 ? n : 0)) - 1u);
}

/* The 16 weights of panel block b at k: fp32, or fp16 widened (exactly). */
AINLINE __m512 load_w(const int f16, const void *b, int k)
{
    if (f16)
        return _mm512_cvtph_ps(
            _mm256_loadu_si256((const __m256i *)((const uint16_t *)b + (size_t)k * GH)));
    return _mm512_loadu_ps((const float *)b + (size_t)k * NR);
}

/* mr rows x np panels of results over kc values of k. a: row 0's first
 * activation (row stride lda); bq[p]: panel p's block, [kc][16] (fp16 when
 * f16). cb: the tile's partial sums ([mr][np * 16]): resumed when resume,
 * saved unless fin. fin: the last K block; writes out (+ bias, + old out when
 * accumulate) for the first nc columns, masked: no scalar tail. The columns
 * of the tile's streams (units of `unit` panels: fp32 panels, fp16 groups
 * of two) lie ostride apart in o and bias (unit * 16: side by side). pf:
 * how far ahead the tile prefetches its streams, in bytes (0: none, the
 * block is in cache).
 *
 * The accumulators are one array indexed only by constants (every loop over
 * rows or panels is written out, unused ones fold away), so the compiler
 * keeps it in registers: mr * np <= 24 of the 32. */
AINLINE void tile(const int mr, const int np, const int f16, const int unit, const int pf,
                  int kc, const float *a, size_t lda, const void *const *bq, float *cb,
                  int resume, int fin, float *o, size_t ldo, const float *bias, int nc,
                  int accumulate, size_t ostride)
{
    const size_t ldc = (size_t)np * NR;
    /* rows 4-7 from their own base: 8 rows' addresses in few registers */
    const float *const a4 = mr > 4 ? a + 4 * lda : a;
    __m512 x[24];
#define EACH_M(F) F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7)
#define EACH_P(F, m) F(m, 0) F(m, 1) F(m, 2) F(m, 3) F(m, 4) F(m, 5) F(m, 6) F(m, 7)
#define LIVE(m, p) (mr > (m) && np > (p))
#define X(m, p) x[(m) * np + (p)]
#define INIT_P(m, p)                                                                               \
    if (LIVE(m, p))                                                                                \
        X(m, p) = resume ? _mm512_load_ps(cb + (m) * ldc + (p) * NR) : _mm512_setzero_ps();
#define INIT_M(m) EACH_P(INIT_P, m)
    EACH_M(INIT_M)
#pragma GCC unroll 4
    for (int k = 0; k < kc; k++) {
        /* tiles that stream from memory (up to SMAX_M rows) prefetch */
        if (pf)
            gpt2k_prefetch_decode(f16, unit, np, bq, k, pf);
        /* the np weight vectors held, one broadcast at a time */
        __m512 b[8];
#define LOAD_W(p)                                                                                  \
    if (np > (p))                                                                                  \
        b[p] = load_w(f16, bq[p], k);
        LOAD_W(0) LOAD_W(1) LOAD_W(2) LOAD_W(3) LOAD_W(4) LOAD_W(5) LOAD_W(6) LOAD_W(7)
#define FMA_P(m, p)                                                                                \
    if (LIVE(m, p))                                                                                \
        X(m, p) = _mm512_fmadd_ps(av, b[p], X(m, p));
#define STEP(m)                                                                                    \
    if (mr > (m)) {                                                                                \
        const __m512 av = _mm512_set1_ps(((m) < 4 ? a : a4)[(size_t)((m) % 4) * lda + k]);         \
        EACH_P(FMA_P, m)                                                                           \
    }
        EACH_M(STEP)
    }
    if (!fin) {
#define SAVE_P(m, p)                                                                               \
    if (LIVE(m, p))                                                                                \
        _mm512_store_ps(cb + (m) * ldc + (p) * NR, X(m, p));
#define SAVE_M(m) EACH_P(SAVE_P, m)
        EACH_M(SAVE_M)
        return;
    }
    /* panels past nc hold no columns of this call (a decode tile's tail) */
#define OUT_P(m, p)                                                                                \
    if (LIVE(m, p) && (p) * NR < nc) {                                                             \
        const __mmask16 mk = lanes(nc - (p) * NR);                                                 \
        const size_t oc = (p) / unit * ostride + (p) % unit * NR;                                  \
        float *op = o + (size_t)(m) * ldo + oc;                                                    \
        __m512 r = X(m, p);                                                                        \
        if (bias)                                                                                  \
            r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(mk, bias + oc));                            \
        if (accumulate)                                                                            \
            r = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, op), r);                                   \
        _mm512_mask_storeu_ps(op, mk, r);                                                          \
    }
#define OUT_M(m) EACH_P(OUT_P, m)
    EACH_M(OUT_M)
#undef EACH_M
#undef EACH_P
#undef LIVE
#undef X
#undef INIT_P
#undef INIT_M
#undef LOAD_W
#undef FMA_P
#undef STEP
#undef SAVE_P
#undef SAVE_M
#undef OUT_P
#undef OUT_M
}

typedef void (*tile_fn)(int kc, const float *a, size_t lda, const void *const *bq, float *cb,
                        int resume, int fin, float *o, size_t ldo, const float *bias, int nc,
                        int accumulate, size_t ostride);

/* One out-of-line instance per shape, weight type and prefetch distance: a
 * call costs nothing next to a tile's k loop. fp16 tiles read U panels per
 * stream unit (2: groups of two panels). */
#define DEF_TILE(NAME, R, P, F16, U, PF)                                                           \
    static void NAME(int kc, const float *a, size_t lda, const void *const *bq, float *cb,         \
                     int resume, int fin, float *o, size_t ldo, const float *bias, int nc,         \
                     int accumulate, size_t ostride)                                               \
    {                                                                                              \
        tile(R, P, F16, U, PF, kc, a, lda, bq, cb, resume, fin, o, ldo, bias, nc, accumulate,      \
             ostride);                                                                             \
    }
/* prefill: 4-8 rows (rows are dealt out evenly, so no tile has fewer) by
 * 1-3 panels; fp32 blocks (fp16 ones are widened first), in L1 */
#define DEF_PREFILL(R, P) DEF_TILE(tile_##R##x##P, R, P, 0, 1, 0)
DEF_PREFILL(4, 1)
DEF_PREFILL(5, 1)
DEF_PREFILL(6, 1)
DEF_PREFILL(7, 1)
DEF_PREFILL(8, 1)
DEF_PREFILL(4, 2)
DEF_PREFILL(5, 2)
DEF_PREFILL(6, 2)
DEF_PREFILL(7, 2)
DEF_PREFILL(8, 2)
DEF_PREFILL(4, 3)
DEF_PREFILL(5, 3)
DEF_PREFILL(6, 3)
DEF_PREFILL(7, 3)
DEF_PREFILL(8, 3)
/* decode: 1-3 rows by 4 fp32 panels or 4 fp16 groups */
DEF_TILE(tile_d_1x4, 1, 4, 0, 1, GPT2K_DECODE_PREFETCH)
DEF_TILE(tile_d_2x4, 2, 4, 0, 1, GPT2K_DECODE_PREFETCH)
DEF_TILE(tile_d_3x4, 3, 4, 0, 1, GPT2K_DECODE_PREFETCH)
DEF_TILE(tile_dh_1x8, 1, 8, 1, 2, GPT2K_DECODE_PREFETCH)
DEF_TILE(tile_dh_2x8, 2, 8, 1, 2, GPT2K_DECODE_PREFETCH)
DEF_TILE(tile_dh_3x8, 3, 8, 1, 2, GPT2K_DECODE_PREFETCH)
/* batched decode: 1-4 rows by 4 fp32 panels or 3 fp16 groups */
DEF_TILE(tile_b_1x4, 1, 4, 0, 1, BATCHED_PREFETCH)
DEF_TILE(tile_b_2x4, 2, 4, 0, 1, BATCHED_PREFETCH)
DEF_TILE(tile_b_3x4, 3, 4, 0, 1, BATCHED_PREFETCH)
DEF_TILE(tile_b_4x4, 4, 4, 0, 1, BATCHED_PREFETCH)
DEF_TILE(tile_bh_1x6, 1, 6, 1, 2, BATCHED_PREFETCH)
DEF_TILE(tile_bh_2x6, 2, 6, 1, 2, BATCHED_PREFETCH)
DEF_TILE(tile_bh_3x6, 3, 6, 1, 2, BATCHED_PREFETCH)
DEF_TILE(tile_bh_4x6, 4, 6, 1, 2, BATCHED_PREFETCH)

/* [panels - 1][rows - 4] */
static const tile_fn prefill_tiles[NP][MR - 3] = {
    {tile_4x1, tile_5x1, tile_6x1, tile_7x1, tile_8x1},
    {tile_4x2, tile_5x2, tile_6x2, tile_7x2, tile_8x2},
    {tile_4x3, tile_5x3, tile_6x3, tile_7x3, tile_8x3},
};
/* [f16][batched][rows - 1], and their panels */
static const tile_fn stream_tiles[2][2][SR] = {
    {{tile_d_1x4, tile_d_2x4, tile_d_3x4, NULL}, {tile_b_1x4, tile_b_2x4, tile_b_3x4, tile_b_4x4}},
    {{tile_dh_1x8, tile_dh_2x8, tile_dh_3x8, NULL},
     {tile_bh_1x6, tile_bh_2x6, tile_bh_3x6, tile_bh_4x6}},
};
static const int stream_panels[2][2] = {{4, 4}, {8, 6}};

/* ---- the loop nests --------------------------------------------------------------- */

/* Decode, batched decode, short prompts (1-64 rows, weights read from
 * memory once): per np panels, tiles of up to SR rows (1-3 rows: one tile
 * over all of K, sums in registers; 4-64: per block of stream_kc[f16] k,
 * every tile, the block's panels in L1 after the first tile). A tile reads
 * ns streams (fp32 panels, or fp16 groups of two panels): the range's whole
 * streams' worth of columns is cut into ns runs read side by side, tile t
 * reading unit t of each run, so each stream goes on where the tile before left it (ns
 * long streams per thread, as a plain read loop reads) rather than ns
 * adjacent units starting new streams every tile. Zen 4, 2 threads, decode
 * after 32 tokens, alternating rounds: F16 medians 253 vs 234 tokens/s (six
 * rounds, every spread run faster than every other), f32 143 vs 139 (four).
 * Batched decode read adjacent panels until it did the same (kernels/README,
 * "Decode streams"). The units left over go to tiles of np adjacent panels,
 * where in a group's tail the panels past n1 repeat the group's first (in
 * cache already); their results are not stored. */
AINLINE void matmul_streamed(const int f16, float *out, int ldo, const float *in, int ldi,
                             const void *wp, const float *bias, int M, int K, int n0, int n1,
                             int accumulate)
{
    float cb[SMAX_M * 8 * NR] __attribute__((aligned(64))); /* partial sums */
    const int batched = M > DECODE_MAX_M;
    const int np = stream_panels[f16][batched];
    const tile_fn *fns = stream_tiles[f16][batched];
    const int u = f16 + 1, ns = np / u, ucols = u * NR; /* panels, streams, columns per unit */
    const int ntiles = (M + SR - 1) / SR;
    const int bk = batched ? stream_kc[f16] : K > 0 ? K : 1; /* k per block */
    const int nkb = K > 0 ? (K + bk - 1) / bk : 1; /* K = 0 still writes bias */
    const int run = (n1 - n0) / ucols / ns; /* units per run */
    const int nsteps = run + (n1 - n0 - run * ns * ucols + np * NR - 1) / (np * NR);
    for (int s = 0; s < nsteps; s++) {
        const int spread = s < run;
        /* step s's first column: unit s of the first run, or (past the
         * runs, which end at unit run * ns) units side by side */
        const int n = n0 + (spread ? s : s * ns) * ucols;
        const int nc = spread ? np * NR : (n1 - n < np * NR ? n1 - n : np * NR);
        const int ustride = spread ? run : 1; /* units between streams */
        const float *bn = bias ? bias + n : NULL;
        for (int kb = 0; kb < nkb; kb++) {
            const int k0 = kb * bk, kc = K - k0 < bk ? K - k0 : bk;
            const void *bq[8];
            for (int p = 0; p < np; p++) {
                const int pn = p * NR < nc ? p / u * ustride * u + p % u : 0;
                bq[p] = gpt2k_packed_block(f16, wp, K, n / NR + pn, k0);
            }
            for (int t = 0; t < ntiles; t++) {
                /* tile t: rows [t * M / ntiles, (t + 1) * M / ntiles); the
                 * first streams the block, the others find it in L1 (their
                 * prefetches hit it there) */
                const int m = (int)((long)t * M / ntiles);
                const int mr = (int)((long)(t + 1) * M / ntiles) - m;
                fns[mr - 1](kc, in + (size_t)m * ldi + k0, (size_t)ldi, bq,
                            cb + (size_t)m * np * NR, kb > 0, kb == nkb - 1,
                            out + (size_t)m * ldo + n, (size_t)ldo, bn, nc, accumulate,
                            (size_t)ustride * ucols);
            }
        }
    }
}

/* Prefill (more than 64 rows): per 48 columns, per MC rows, per K block, the
 * block's panels in fp32 (a packed fp32 matrix read in place, fp16 widened
 * here) go to every tile of the pass. The rows are dealt out to tiles of 4-8
 * as evenly as they go (20 rows: 7 + 7 + 6), as a short tile has fewer
 * chains and more loads per FMA. */
AINLINE void matmul_prefill(const int f16, float *out, int ldo, const float *in, int ldi,
                            const void *wp, const float *bias, int M, int K, int n0, int n1,
                            int accumulate)
{
    float bp[NP * KC * NR] __attribute__((aligned(64)));
    float cb[MC * NP * NR] __attribute__((aligned(64))); /* partial sums */
    const int nkb = K > 0 ? (K + KC - 1) / KC : 1;       /* K = 0 still writes bias */
    const int ntiles = (M + MR - 1) / MR, tiles_per_pass = MC / MR;
    for (int n = n0; n < n1; n += NP * NR) {
        const int nc = n1 - n < NP * NR ? n1 - n : NP * NR;
        const int np = (nc + NR - 1) / NR;
        const float *bn = bias ? bias + n : NULL;
        for (int t0 = 0; t0 < ntiles; t0 += tiles_per_pass) {
            const int t1 = ntiles - t0 < tiles_per_pass ? ntiles : t0 + tiles_per_pass;
            for (int kb = 0; kb < nkb; kb++) {
                const int k0 = kb * KC, kc = K - k0 < KC ? K - k0 : KC;
                const void *bq[NP];
                for (int p = 0; p < np; p++) {
                    const void *blk = gpt2k_packed_block(f16, wp, K, n / NR + p, k0);
                    if (f16) {
                        const uint16_t *h = blk;
                        float *d = bp + (size_t)p * KC * NR;
                        for (int k = 0; k < kc; k++)
                            _mm512_store_ps(d + (size_t)k * NR,
                                            _mm512_cvtph_ps(_mm256_loadu_si256(
                                                (const __m256i *)(h + (size_t)k * GH))));
                        blk = d;
                    }
                    bq[p] = blk;
                }
                for (int t = t0; t < t1; t++) {
                    /* tile t: rows [t * M / ntiles, (t + 1) * M / ntiles) */
                    const int m = (int)((long)t * M / ntiles);
                    const int mr = (int)((long)(t + 1) * M / ntiles) - m;
                    prefill_tiles[np - 1][mr - 4](kc, in + (size_t)m * ldi + k0, (size_t)ldi, bq,
                                                  cb + (size_t)(t - t0) * MR * NP * NR, kb > 0,
                                                  kb == nkb - 1, out + (size_t)m * ldo + n,
                                                  (size_t)ldo, bn, nc, accumulate, NR);
                }
            }
        }
    }
}

void gpt2k_matmul_packed_avx512(float *out, int ldo, const float *in, int ldi, const void *wp,
                                gpt2k_wtype wt, const float *bias, int M, int K, int n0, int n1,
                                int accumulate)
{
    if (M <= 0 || n0 >= n1)
        return;
    if (M <= SMAX_M) {
        if (wt == GPT2K_W_F16)
            matmul_streamed(1, out, ldo, in, ldi, wp, bias, M, K, n0, n1, accumulate);
        else
            matmul_streamed(0, out, ldo, in, ldi, wp, bias, M, K, n0, n1, accumulate);
    } else if (wt == GPT2K_W_F16) {
        matmul_prefill(1, out, ldo, in, ldi, wp, bias, M, K, n0, n1, accumulate);
    } else {
        matmul_prefill(0, out, ldo, in, ldi, wp, bias, M, K, n0, n1, accumulate);
    }
}

/* The plain layout: the AVX2 kernel, which packs on the fly (see the top);
 * the same bits as the packed entry point above, as the AVX2 one's. */
void gpt2k_matmul_f32_avx512(float *out, int ldo, const float *in, int ldi, const float *w,
                             const float *bias, int M, int K, int n0, int n1, int accumulate)
{
    gpt2k_matmul_f32_avx2(out, ldo, in, ldi, w, bias, M, K, n0, n1, accumulate);
}

void gpt2k_matmul_f16_avx512(float *out, int ldo, const float *in, int ldi, const uint16_t *w,
                             const float *bias, int M, int K, int n0, int n1, int accumulate)
{
    gpt2k_matmul_f16_avx2(out, ldo, in, ldi, w, bias, M, K, n0, n1, accumulate);
}

#endif
