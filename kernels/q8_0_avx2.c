/* Q8_0 kernels for AVX2 + FMA + F16C. Same contracts and results as
 * q8_0_ref.c: the quantizer is byte-identical to the reference, the matmul
 * differs from it only by the order of the fp32 sums over blocks. */
#include "q8_0_internal.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>
#include <string.h>

#define AINLINE static inline __attribute__((always_inline))
#define QK GPT2K_QK8_0

typedef gpt2k_block_q8_0 blk;

/* ---- quantize ------------------------------------------------------------- */

/* (int32) roundf(v) per lane, 0 where v is not finite (as the reference).
 * _mm256_round_ps has no "halves away from zero" mode and floor(|v| + 0.5)
 * is off for v = 0.5 - 2^-25 (the sum rounds up to 1), so: t = trunc(v),
 * |v - t| is exact, and t moves one away from zero when that is >= 0.5. */
AINLINE __m256i round_away_epi32(__m256 v)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    __m256 one = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f)); /* copysign(1, v) */
    __m256 r = _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), one));
    /* cvtt gives INT_MIN for inf/nan, which would pack to -128: mask those to 0.
     * Finite lanes are within 127 and a few ulps (q8_0_ref.c). */
    __m256 finite = _mm256_cmp_ps(_mm256_andnot_ps(sign, v), _mm256_set1_ps(128.0f), _CMP_LT_OQ);
    return _mm256_and_si256(_mm256_cvttps_epi32(r), _mm256_castps_si256(finite));
}

void gpt2k_quantize_q8_0_avx2(void *dst, const float *x, int n)
{
    blk *y = dst;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    /* packs works within 128-bit lanes; this puts the 4-byte groups back in order */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int b = 0; b < n / QK; b++) {
        const float *xb = x + (size_t)b * QK;
        __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8);
        __m256 v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
        /* max is associative without NaN, so the tree equals the sequential max */
        __m256 a = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                 _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        const float amax = _mm_cvtss_f32(h);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT); /* same RNE as gpt2k_f32_to_f16 */
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q0 = round_away_epi32(_mm256_mul_ps(v0, vid));
        __m256i q1 = round_away_epi32(_mm256_mul_ps(v1, vid));
        __m256i q2 = round_away_epi32(_mm256_mul_ps(v2, vid));
        __m256i q3 = round_away_epi32(_mm256_mul_ps(v3, vid));
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
        _mm256_storeu_si256((__m256i *)y[b].qs, _mm256_permutevar8x32_epi32(p, order));
    }
}

/* ---- matmul --------------------------------------------------------------- */

/* sum_i w[i] * x[i] of one block pair as 8 int32 partial sums. maddubs wants
 * an unsigned and a signed operand: |w| and x with w's sign (a zero w zeroes
 * it). Its int16 pair sums stay below 2 * 128 * 127 < 32767 (no saturation)
 * because x is never -128 (see q8_0_internal.h); madd with ones widens. */
AINLINE __m256i dot_block(__m256i wabs, __m256i w, __m256i x)
{
    __m256i p = _mm256_maddubs_epi16(wabs, _mm256_sign_epi8(x, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

AINLINE __m256i load_q(const int8_t *q)
{
    return _mm256_loadu_si256((const __m256i *)q);
}

AINLINE __m256i load_qs(const blk *b) { return load_q(b->qs); }

AINLINE __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d)
{
    __m256 ab = _mm256_hadd_ps(a, b);
    __m256 cd = _mm256_hadd_ps(c, d);
    __m256 abcd = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

/* s[r * cb + b] = the fp16 scale at d0 + r * ld + b * step bytes (plain
 * rows: ld = a row's bytes, step one block; a packed panel: ld 2, step one
 * group): each scale is used by many block pairs, so it is widened once, not
 * per use. */
static void load_scales(float *s, const void *d0, size_t ld, size_t step, int nrows, int cb)
{
    for (int r = 0; r < nrows; r++)
        for (int b = 0; b < cb; b++) {
            uint16_t h;
            memcpy(&h, (const char *)d0 + (size_t)r * ld + (size_t)b * step, sizeof h);
            s[r * cb + b] = _cvtsh_ss(h);
        }
}

/* load_scales of nrows plain rows of blocks, nb blocks apart */
static void load_row_scales(float *s, const blk *x, size_t nb, int nrows, int cb)
{
    load_scales(s, &x->d, nb * sizeof(blk), sizeof(blk), nrows, cb);
}

/* Stores one finished dot product: v (+ bias) into *o, or added to it. */
AINLINE void put(float *o, float v, const float *bias, int store)
{
    v += bias ? *bias : 0.0f;
    *o = store ? v : *o + v;
}

/* Every output element, in every path below, is the same sequence of
 * operations: for each block b in order, acc = fma(float(int dot of the
 * block pair), d_w * d_x, acc) over 8 lanes; then the lanes summed by hsum4,
 * + bias, stored or added. So a row's result depends neither on how many
 * rows share the call (decode loop or prefill tile) nor on the weights'
 * layout (plain or packed). */

/* Decode on plain rows: one weight row w (nb blocks) against MR (<= 4)
 * activation rows, o[m * ldo] (+)= dot(x[m], w). Weight rows are walked one
 * after another, so the weights stream strictly sequentially, with a
 * software prefetch PF_DIST bytes ahead (Zen 3, weights from DRAM: 4
 * interleaved rows ~3.4 GB/s, sequential ~7, sequential + prefetch ~10, the
 * single-core read ceiling). xs: the activation scales, row m at xs + m * nb. */
#define PF_DIST 2048
AINLINE void gemv_row(const int MR, float *o, int ldo, const blk *x, size_t ldx, const float *xs,
                      const blk *w, int nb, const float *bias, int store)
{
    __m256 acc[4];
    for (int m = 0; m < MR; m++)
        acc[m] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        if (b % 2 == 0)
            _mm_prefetch((const char *)(w + b) + PF_DIST, _MM_HINT_T0);
        const __m256i wq = load_qs(w + b), wa = _mm256_abs_epi8(wq);
        const float dw = _cvtsh_ss(w[b].d);
        for (int m = 0; m < MR; m++) {
            __m256 f = _mm256_cvtepi32_ps(dot_block(wa, wq, load_qs(x + m * ldx + b)));
            acc[m] = _mm256_fmadd_ps(f, _mm256_set1_ps(dw * xs[m * nb + b]), acc[m]);
        }
    }
    const __m256 z = _mm256_setzero_ps();
    for (int m = 0; m < MR; m++)
        put(o + (size_t)m * ldo, _mm_cvtss_f32(hsum4(acc[m], z, z, z)), bias, store);
}

typedef void (*gemv_fn)(float *o, int ldo, const blk *x, size_t ldx, const float *xs,
                        const blk *w, int nb, const float *bias, int store);
#define DEF_GEMV(MR)                                                                               \
    static void gemv_##MR(float *o, int ldo, const blk *x, size_t ldx, const float *xs,            \
                          const blk *w, int nb, const float *bias, int store)                      \
    {                                                                                              \
        gemv_row(MR, o, ldo, x, ldx, xs, w, nb, bias, store);                                      \
    }
DEF_GEMV(1)
DEF_GEMV(2)
DEF_GEMV(3)
DEF_GEMV(4)
static const gemv_fn gemvs[4] = {gemv_1, gemv_2, gemv_3, gemv_4};

/* Decode on NQ (1 or 2) packed panels, gs groups apart: their 4 weight rows
 * each (g: the first panel's first group of this chunk) against MR (<= 2)
 * activation rows; panel q's results go to o + q * os (and take bias + q *
 * os); outputs of rows nv .. 3 (padding) are not written. One sequential
 * stream per panel, 4 * MR * NQ independent sums. The 4 scales
 * of a group are widened and multiplied by d_x together, then moved to each
 * row's lanes by an in-lane permute: the same product d_w * d_x as a scalar
 * one, in a third of the instructions. */
#define QP GPT2K_Q8_PANEL
typedef gpt2k_q8_0_group grp;
AINLINE void gemv_panel(const int MR, const int NQ, float *o, int ldo, const blk *x, size_t ldx,
                        const float *xs, const grp *g, size_t gs, int nb, int nv,
                        const float *bias, int store, size_t os)
{
    __m256 acc[2][2][QP];
    for (int q = 0; q < NQ; q++)
        for (int m = 0; m < MR; m++)
            for (int r = 0; r < QP; r++)
                acc[q][m][r] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m256i xq[2];
        for (int m = 0; m < MR; m++)
            xq[m] = load_qs(x + m * ldx + b);
        for (int q = 0; q < NQ; q++) {
            const grp *gb = g + q * gs + b; /* 136 bytes: prefetch two lines */
            _mm_prefetch((const char *)gb + PF_DIST, _MM_HINT_T0);
            _mm_prefetch((const char *)gb + PF_DIST + 64, _MM_HINT_T0);
            const __m128 dw = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)gb->d));
            __m256 d[2];
            for (int m = 0; m < MR; m++) {
                const __m128 dd = _mm_mul_ps(dw, _mm_set1_ps(xs[m * nb + b]));
                d[m] = _mm256_insertf128_ps(_mm256_castps128_ps256(dd), dd, 1);
            }
            for (int r = 0; r < QP; r++) {
                const __m256i wq = load_q(gb->qs[r]), wa = _mm256_abs_epi8(wq);
                /* row r's d_w * d_x in all 8 lanes */
                const __m256i sel = _mm256_set1_epi32(r);
                for (int m = 0; m < MR; m++) {
                    __m256 f = _mm256_cvtepi32_ps(dot_block(wa, wq, xq[m]));
                    acc[q][m][r] =
                        _mm256_fmadd_ps(f, _mm256_permutevar_ps(d[m], sel), acc[q][m][r]);
                }
            }
        }
    }
    const __m256 z = _mm256_setzero_ps();
    for (int q = 0; q < NQ; q++)
        for (int m = 0; m < MR; m++)
            for (int r = 0; r < nv; r++)
                put(o + q * os + (size_t)m * ldo + r,
                    _mm_cvtss_f32(hsum4(acc[q][m][r], z, z, z)), bias ? bias + q * os + r : NULL,
                    store);
}
_Static_assert(GPT2K_Q8_PANEL == 4, "gemv_panel and the 3 x 4 tiles are written for 4 rows");

typedef void (*gemv_panel_fn)(float *o, int ldo, const blk *x, size_t ldx, const float *xs,
                              const grp *g, int nb, int nv, const float *bias, int store);
#define DEF_GEMV_PANEL(MR)                                                                         \
    static void gemv_panel_##MR(float *o, int ldo, const blk *x, size_t ldx, const float *xs,      \
                                const grp *g, int nb, int nv, const float *bias, int store)        \
    {                                                                                              \
        gemv_panel(MR, 1, o, ldo, x, ldx, xs, g, 0, nb, nv, bias, store, 0);                       \
    }
DEF_GEMV_PANEL(1)
DEF_GEMV_PANEL(2)
/* one row, two panels gs groups and os columns apart */
static void gemv_panel_1x2(float *o, int ldo, const blk *x, const float *xs, const grp *g,
                           size_t gs, int nb, const float *bias, int store, size_t os)
{
    gemv_panel(1, 2, o, ldo, x, 0, xs, g, gs, nb, QP, bias, store, os);
}
static const gemv_panel_fn gemv_panels[2] = {gemv_panel_1, gemv_panel_2};

/* Prefill: one MR x NR register tile over nb blocks, o[m][n] (+)= dot(x[m],
 * w[n]) (+ bias[n]) for n < nv. x rows ldx blocks apart; the 32 values of
 * block b of weight row n at w + n * ldw + b * wstep bytes (plain or packed);
 * scales as floats: xs rows and ws rows nb apart. Per block, |w| of the NR
 * weight rows stays in registers for all MR activation rows (w itself is
 * read again from L1 for the sign).
 *
 * The accumulators are one array indexed only by constants (each loop over
 * rows and columns written out; unused ones fold away), so the compiler keeps
 * them in registers: indexed in loops it kept them on the stack, with a load
 * and a store around every FMA. At most 12 are live (4 x 3 or 3 x 4). */
AINLINE void tile(const int MR, const int NR, float *o, int ldo, const blk *x, size_t ldx,
                  const float *xs, const int8_t *w, size_t ldw, size_t wstep, const float *ws,
                  int nb, int nv, const float *bias, int store)
{
    __m256 acc[16];
    const __m256i ones = _mm256_set1_epi16(1);
#define EACH_M(F) F(0) F(1) F(2) F(3)
#define EACH_N(F, m) F(m, 0) F(m, 1) F(m, 2) F(m, 3)
#define LIVE(m, n) (MR > (m) && NR > (n))
#define A(m, n) acc[(m) * 4 + (n)]
#define ZERO_N(m, n)                                                                               \
    if (LIVE(m, n))                                                                                \
        A(m, n) = _mm256_setzero_ps();
#define ZERO_M(m) EACH_N(ZERO_N, m)
    EACH_M(ZERO_M)
    for (int b = 0; b < nb; b++) {
        const int8_t *wb = w + (size_t)b * wstep;
        __m256i wa0, wa1, wa2, wa3;
        wa0 = _mm256_abs_epi8(load_q(wb));
        if (NR > 1)
            wa1 = _mm256_abs_epi8(load_q(wb + ldw));
        if (NR > 2)
            wa2 = _mm256_abs_epi8(load_q(wb + 2 * ldw));
        if (NR > 3)
            wa3 = _mm256_abs_epi8(load_q(wb + 3 * ldw));
#define PAIR(m, n)                                                                                 \
    if (LIVE(m, n)) {                                                                              \
        const __m256i sx = _mm256_sign_epi8(xq, load_q(wb + (n) * ldw));                           \
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(wa##n, sx), ones);                \
        const __m256 d = _mm256_mul_ps(_mm256_broadcast_ss(ws + (n) * nb + b), dx);                \
        A(m, n) = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, A(m, n));                              \
    }
#define ROW(m)                                                                                     \
    if (MR > (m)) {                                                                                \
        const __m256i xq = load_qs(x + (m) * ldx + b);                                             \
        const __m256 dx = _mm256_broadcast_ss(xs + (m) * nb + b);                                  \
        EACH_N(PAIR, m)                                                                            \
    }
        EACH_M(ROW)
    }
    const __m256 z = _mm256_setzero_ps();
#define OUT(m)                                                                                     \
    if (MR > (m)) {                                                                                \
        float s[4];                                                                                \
        _mm_storeu_ps(s, hsum4(A(m, 0), NR > 1 ? A(m, 1) : z, NR > 2 ? A(m, 2) : z,               \
                               NR > 3 ? A(m, 3) : z));                                             \
        for (int n = 0; n < nv; n++)                                                               \
            put(o + (size_t)(m) * ldo + n, s[n], bias ? bias + n : NULL, store);                   \
    }
    EACH_M(OUT)
#undef EACH_M
#undef EACH_N
#undef LIVE
#undef A
#undef ZERO_N
#undef ZERO_M
#undef PAIR
#undef ROW
#undef OUT
}

typedef void (*tile_fn)(float *o, int ldo, const blk *x, size_t ldx, const float *xs,
                        const int8_t *w, size_t ldw, size_t wstep, const float *ws, int nb,
                        int nv, const float *bias, int store);

#define DEF_TILE(MR, NR)                                                                           \
    static void tile_##MR##x##NR(float *o, int ldo, const blk *x, size_t ldx, const float *xs,     \
                                 const int8_t *w, size_t ldw, size_t wstep, const float *ws,       \
                                 int nb, int nv, const float *bias, int store)                     \
    {                                                                                              \
        tile(MR, NR, o, ldo, x, ldx, xs, w, ldw, wstep, ws, nb, nv, bias, store);                  \
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

/* [MR-1][NR-1]; 4 x 4 (16 accumulators) is never used. */
static const tile_fn tiles[4][4] = {
    {tile_1x1, tile_1x2, tile_1x3, tile_1x4},
    {tile_2x1, tile_2x2, tile_2x3, tile_2x4},
    {tile_3x1, tile_3x2, tile_3x3, tile_3x4},
    {tile_4x1, tile_4x2, tile_4x3, NULL},
};

/* Part `part` of `parts` of the cache lines of [p, p + bytes), prefetched
 * into L2: the prefill tiles of one weight panel pull in the next panel a
 * slice at a time, so a large N does not stall on each new panel (Zen 3,
 * K = 768, N = 2304: ~4.0 -> ~2.75 TSC cycles per block pair). L2, not L1:
 * the activation rows streaming through L1 meanwhile would evict it. */
static inline void prefetch_part(const void *p, size_t bytes, int part, int parts)
{
    const size_t lines = (bytes + 63) / 64;
    for (size_t l = lines * part / parts; l < lines * (part + 1) / parts; l++)
        _mm_prefetch((const char *)p + l * 64, _MM_HINT_T1);
}

/* K is cut into chunks of at most NBC blocks (K = 8192; GPT-2's K <= 6400 is
 * one chunk) so the float scales fit fixed stack buffers; later chunks add
 * their partial sums to out. Prefill blocking: the activation rows of one
 * M block (at most MC rows and XS_CAP scales: 64 x 3.2 KiB at K = 3072) stay
 * in L2 while a panel of weight rows sits in L1 and tiles sweep the M block.
 * Plain rows: panels of 3 rows, 4 x 3 tiles (measured best on Zen 3, ~2.4 TSC
 * cycles per block pair vs ~2.7-3.1 for 4x2, 2x4, 3x3, 4x4). Packed: the
 * layout's panels of 4 rows, 3 x 4 tiles. */
#define NBC 256
/* Up to 8 rows (batched decode) the GEMV loop beats the tiles: measured on
 * Zen 3, 2 threads, 124M: 10-15% faster per step at 5-8 rows, slower at 16. */
#define GEMV_MAX_M 8
#define XS_CAP 8192
#define MC 64

static void matmul_q8_0(float *out, int ldo, const blk *x, const void *w, int packed,
                        const float *bias, int M, int K, int n0, int n1, int accumulate)
{
    if (M <= 0 || n0 >= n1)
        return;
    const int nb = K / QK;
    const int panel_n = packed ? QP : 3, mt = packed ? 3 : 4;
    const blk *wq = w;  /* plain rows */
    const grp *wg = w;  /* packed groups */
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
                /* one row reads two runs of the range's whole panels side by
                 * side (two streams, each going on where the call before left
                 * it), as the other tables' decode tiles do (matmul_avx512.c):
                 * Zen 4, --isa avx2, Q8_0 decode medians 433 vs 407 tokens/s
                 * (five alternating rounds); the rest one panel at a time */
                int nr0 = n0;
                if (M == 1) {
                    const int run = (n1 - n0) / QP / 2; /* panels per run */
                    for (int t = 0; t < run; t++) {
                        const int n = n0 + t * QP;
                        gemv_panel_1x2(out + n, ldo, x + b0, xs, wg + (size_t)(n / QP) * nb + b0,
                                       (size_t)run * nb, cb, bc ? bc + n : NULL, store,
                                       (size_t)run * QP);
                    }
                    nr0 = n0 + 2 * run * QP;
                }
                for (int n = nr0; n < n1; n += QP) {
                    const grp *g = wg + (size_t)(n / QP) * nb + b0;
                    const int nv = n1 - n < QP ? n1 - n : QP;
                    for (int m0 = 0; m0 < M; m0 += 2) {
                        const int mr = M - m0 < 2 ? M - m0 : 2;
                        gemv_panels[mr - 1](out + (size_t)m0 * ldo + n, ldo,
                                            x + (size_t)m0 * nb + b0, (size_t)nb,
                                            xs + (size_t)m0 * cb, g, cb, nv, bc ? bc + n : NULL,
                                            store);
                    }
                }
                continue;
            }
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
                    wv = g->qs[0], ldw = GPT2K_QK8_0, wstep = sizeof(grp);
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
                    tiles[mr - 1][ncols - 1](out + (size_t)(m0 + m) * ldo + n, ldo,
                                             xm + (size_t)m * nb, (size_t)nb,
                                             xs + (size_t)m * cb, wv, ldw, wstep, ws, cb, nr,
                                             bc ? bc + n : NULL, store);
                }
            }
        }
    }
}

void gpt2k_matmul_q8_0_avx2(float *out, int ldo, const void *inq, const void *w,
                            const float *bias, int M, int K, int n0, int n1, int accumulate)
{
    matmul_q8_0(out, ldo, inq, w, 0, bias, M, K, n0, n1, accumulate);
}

void gpt2k_matmul_q8_0_packed_avx2(float *out, int ldo, const void *inq, const void *wp,
                                   const float *bias, int M, int K, int n0, int n1,
                                   int accumulate)
{
    matmul_q8_0(out, ldo, inq, wp, 1, bias, M, K, n0, n1, accumulate);
}

#endif
