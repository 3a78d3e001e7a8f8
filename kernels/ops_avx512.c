/* AVX-512 (F/BW/VL/DQ) kernels: the AVX2 logic of ops_avx2.c at 16 lanes, with
 * masked loads/stores (__mmask16) for the tails instead of scalar loops.
 * Nothing here needs VNNI; the Q8_0 matmul (q8_0_avx512.c) has a VNNI
 * variant, so there are two tables, chosen once by the CPU's VNNI bit. */
#include "kernels.h"
#include "kv_view_internal.h"
#include "matmul_internal.h"
#include "q8_0_internal.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) &&                      \
    defined(__AVX512DQ__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>
#include <math.h>

#define AINLINE static inline __attribute__((always_inline))

/* Lanes [0, n) of 16, n in [0, 16]. */
AINLINE __mmask16 tail_mask(int n)
{
    return (__mmask16)((1u << n) - 1u);
}

/* Low + high 256-bit halves: 16 partial sums -> 8. */
AINLINE __m256 fold512(__m512 a)
{
    __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
    return _mm256_add_ps(_mm512_castps512_ps256(a), hi);
}

/* Horizontal sums of four 8-lane vectors as the four lanes of one __m128. */
AINLINE __m128 hsum4_256(__m256 a, __m256 b, __m256 c, __m256 d)
{
    __m256 ab = _mm256_hadd_ps(a, b);
    __m256 cd = _mm256_hadd_ps(c, d);
    __m256 abcd = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

AINLINE __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d)
{
    return hsum4_256(fold512(a), fold512(b), fold512(c), fold512(d));
}

/* ---- matmul ----------------------------------------------------------------
 * matmul_avx512.c: on packed panels an 8 x 48 tile (8 rows x 3 panels, one
 * zmm per panel: 24 accumulators, 11 loads per 24 FMAs) from 4 rows on, and
 * 1-3 rows reading each panel once with 8-12 chains in flight. Each result
 * is the AVX2 kernels' FMA chain in the same order, so the two tables agree
 * bit for bit (batched rows equal rows alone, packed equals plain). The plain
 * layout stays with the AVX2 kernel (matmul_avx2.c packs it on the fly); the
 * engine uses the packed one. */

/* ---- layernorm ------------------------------------------------------------- */

AINLINE __m512d lo_pd(__m512 v)
{
    return _mm512_cvtps_pd(_mm512_castps512_ps256(v));
}

AINLINE __m512d hi_pd(__m512 v)
{
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

/* Statistics and normalisation in double, two passes (see ops_avx2.c). */
static void layernorm_avx512(float *out, const float *x, const float *g, const float *b, int C,
                             float eps)
{
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int i = 0; i < C; i += 16) {
        __mmask16 m = C - i >= 16 ? (__mmask16)0xffff : tail_mask(C - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i); /* masked lanes are 0: add nothing */
        s0 = _mm512_add_pd(s0, lo_pd(v));
        s1 = _mm512_add_pd(s1, hi_pd(v));
    }
    double mean = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) / C;

    const __m512d mv = _mm512_set1_pd(mean);
    s0 = _mm512_setzero_pd();
    s1 = _mm512_setzero_pd();
    for (int i = 0; i < C; i += 16) {
        __mmask16 m = C - i >= 16 ? (__mmask16)0xffff : tail_mask(C - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        /* masked lanes would give -mean: zero them */
        __m512d d0 = _mm512_maskz_sub_pd((__mmask8)m, lo_pd(v), mv);
        __m512d d1 = _mm512_maskz_sub_pd((__mmask8)(m >> 8), hi_pd(v), mv);
        s0 = _mm512_fmadd_pd(d0, d0, s0);
        s1 = _mm512_fmadd_pd(d1, d1, s1);
    }
    double var = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) / C;
    const __m512d rv = _mm512_set1_pd(1.0 / sqrt(var + eps));

    for (int i = 0; i < C; i += 16) {
        __mmask16 m = C - i >= 16 ? (__mmask16)0xffff : tail_mask(C - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        __m256 n0 = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_sub_pd(lo_pd(v), mv), rv));
        __m256 n1 = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_sub_pd(hi_pd(v), mv), rv));
        __m512 nv = _mm512_castpd_ps(_mm512_insertf64x4(
            _mm512_castps_pd(_mm512_castps256_ps512(n0)), _mm256_castps_pd(n1), 1));
        __m512 r =
            _mm512_fmadd_ps(nv, _mm512_maskz_loadu_ps(m, g + i), _mm512_maskz_loadu_ps(m, b + i));
        _mm512_mask_storeu_ps(out + i, m, r);
    }
}

/* ---- gelu -------------------------------------------------------------------- */

/* e^x as exp_avx2 in ops_avx2.c: Cody-Waite split, degree-6 Taylor, 2^n in the
 * exponent field; clamped to [-87.3, 88.3]. */
AINLINE __m512 exp_avx512(__m512 x)
{
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723212e-6f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    __m512i e =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

/* x / (1 + e^(-2u)), the tanh form without its cancellation (see ops_avx2.c). */
static void gelu_avx512(float *x, int n)
{
    const __m512 c = _mm512_set1_ps(-2.0f * 0.79788456080286535588f);
    const __m512 c3 = _mm512_set1_ps(-2.0f * 0.79788456080286535588f * 0.044715f);
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        __m512 arg = _mm512_mul_ps(v, _mm512_fmadd_ps(_mm512_mul_ps(v, v), c3, c));
        __m512 y = _mm512_div_ps(v, _mm512_add_ps(one, exp_avx512(arg)));
        _mm512_mask_storeu_ps(x + i, m, y);
    }
}

/* ---- argmax ------------------------------------------------------------------- */

/* Two passes over the row (an LM head's 50257 logits sit in L2 after the
 * matmul): the largest value, then its first index. vmaxps returns its
 * second operand when the first is NaN, so with the running max second,
 * NaNs never enter it; x[0] starts it, and a NaN there is the scan's answer. */
static int argmax_avx512(const float *x, int n)
{
    if (!(x[0] == x[0]))
        return 0;
    __m512 m0 = _mm512_set1_ps(x[0]), m1 = m0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        m0 = _mm512_max_ps(_mm512_loadu_ps(x + i), m0);
        m1 = _mm512_max_ps(_mm512_loadu_ps(x + i + 16), m1);
    }
    for (; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        m0 = _mm512_max_ps(_mm512_mask_loadu_ps(m0, k, x + i), m0);
    }
    const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(_mm512_max_ps(m0, m1)));
    for (i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        const __mmask16 eq = _mm512_mask_cmp_ps_mask(k, _mm512_maskz_loadu_ps(k, x + i), mx,
                                                     _CMP_EQ_OQ);
        if (eq)
            return i + __builtin_ctz(eq);
    }
    return 0; /* not reached: the max is one of the values */
}

/* ---- add ----------------------------------------------------------------------- */

static void add_avx512(float *out, const float *a, const float *b, int n)
{
    int i = 0;
    for (; i + 64 <= n; i += 64)
        for (int j = 0; j < 64; j += 16)
            _mm512_storeu_ps(out + i + j,
                             _mm512_add_ps(_mm512_loadu_ps(a + i + j), _mm512_loadu_ps(b + i + j)));
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        _mm512_mask_storeu_ps(
            out + i, m,
            _mm512_add_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i)));
    }
}

/* ---- attention ------------------------------------------------------------------ */

/* 16 cache elements from element offset i of base, as fp32: an fp32 cache's,
 * or an fp16 cache's widened (exactly), so both give the same bits. The masked
 * form reads only the lanes of m and sets the others to 0. */
AINLINE __m512 kv_load16(const void *base, size_t i, const int f16)
{
    return f16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)base + i)))
               : _mm512_loadu_ps((const float *)base + i);
}

AINLINE __m512 kv_load16_mask(__mmask16 m, const void *base, size_t i, const int f16)
{
    return f16 ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)base + i))
               : _mm512_maskz_loadu_ps(m, (const float *)base + i);
}

/* Scores of n keys (key t's channels at element koff + t * ldk of k) into sc,
 * four keys at a time; the HD tail is one masked step. */
AINLINE void scores_avx512(float *sc, const float *q, const void *k, size_t koff, int ldk, int n,
                           int HD, float scale, const int f16)
{
    const int hd16 = HD & ~15;
    const __mmask16 hm = tail_mask(HD - hd16);
    int t = 0;
    for (; t + 4 <= n; t += 4) {
        const size_t k0 = koff + (size_t)t * ldk, k1 = k0 + ldk, k2 = k1 + ldk, k3 = k2 + ldk;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i < hd16; i += 16) {
            __m512 qv = _mm512_loadu_ps(q + i);
            a0 = _mm512_fmadd_ps(qv, kv_load16(k, k0 + i, f16), a0);
            a1 = _mm512_fmadd_ps(qv, kv_load16(k, k1 + i, f16), a1);
            a2 = _mm512_fmadd_ps(qv, kv_load16(k, k2 + i, f16), a2);
            a3 = _mm512_fmadd_ps(qv, kv_load16(k, k3 + i, f16), a3);
        }
        if (hm) {
            __m512 qv = _mm512_maskz_loadu_ps(hm, q + hd16);
            a0 = _mm512_fmadd_ps(qv, kv_load16_mask(hm, k, k0 + hd16, f16), a0);
            a1 = _mm512_fmadd_ps(qv, kv_load16_mask(hm, k, k1 + hd16, f16), a1);
            a2 = _mm512_fmadd_ps(qv, kv_load16_mask(hm, k, k2 + hd16, f16), a2);
            a3 = _mm512_fmadd_ps(qv, kv_load16_mask(hm, k, k3 + hd16, f16), a3);
        }
        _mm_storeu_ps(sc + t, _mm_mul_ps(hsum4(a0, a1, a2, a3), _mm_set1_ps(scale)));
    }
    for (; t < n; t++) {
        const size_t kt = koff + (size_t)t * ldk;
        __m512 a0 = _mm512_setzero_ps();
        for (int i = 0; i < hd16; i += 16)
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), kv_load16(k, kt + i, f16), a0);
        if (hm)
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(hm, q + hd16),
                                 kv_load16_mask(hm, k, kt + hd16, f16), a0);
        sc[t] = _mm512_reduce_add_ps(a0) * scale;
    }
}

/* One head over a position-major cache, fp32 or fp16 (f16): the same
 * operations in the same order for both, so an fp16 cache gives the bits an
 * fp32 cache holding the same values gives. */
AINLINE void attention_head_pm_avx512(float *out, const float *q, const gpt2k_kv_view *kv, int col,
                                      int n_kv, int HD, float scale, float *scratch, const int f16)
{
    size_t off;
    int t, nb;
    for (int t0 = 0; t0 < n_kv; t0 += nb) {
        nb = gpt2k_kv_span_off(kv, col, t0, n_kv, &off);
        scores_avx512(scratch + t0, q, kv->k, off, kv->ld, nb, HD, scale, f16);
    }

    /* Softmax, max-subtracted. Masked-off lanes load as -inf for the max and
     * are left out of the sum. */
    __m512 mv = _mm512_set1_ps(-INFINITY);
    for (t = 0; t < n_kv; t += 16) {
        __mmask16 m = n_kv - t >= 16 ? (__mmask16)0xffff : tail_mask(n_kv - t);
        mv = _mm512_max_ps(mv, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), m, scratch + t));
    }
    const float mx = _mm512_reduce_max_ps(mv);
    mv = _mm512_set1_ps(mx);
    __m512 sv = _mm512_setzero_ps();
    for (t = 0; t < n_kv; t += 16) {
        __mmask16 m = n_kv - t >= 16 ? (__mmask16)0xffff : tail_mask(n_kv - t);
        __m512 e = exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, scratch + t), mv));
        _mm512_mask_storeu_ps(scratch + t, m, e);
        sv = _mm512_mask_add_ps(sv, m, sv, e);
    }
    const __m512 iv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sv));

    /* out = sum_t p[t] v[t]: 64 columns (4 accumulators) per pass over t, then
     * 16 at a time, the last one masked. */
    const void *vb = kv->v;
    int i = 0;
    for (; i + 64 <= HD; i += 64) {
        __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
        for (int t0 = 0; t0 < n_kv; t0 += nb) {
            nb = gpt2k_kv_span_off(kv, col, t0, n_kv, &off);
            for (t = 0; t < nb; t++) {
                const size_t vt = off + (size_t)t * kv->ld + i;
                __m512 p = _mm512_set1_ps(scratch[t0 + t]);
                c0 = _mm512_fmadd_ps(p, kv_load16(vb, vt, f16), c0);
                c1 = _mm512_fmadd_ps(p, kv_load16(vb, vt + 16, f16), c1);
                c2 = _mm512_fmadd_ps(p, kv_load16(vb, vt + 32, f16), c2);
                c3 = _mm512_fmadd_ps(p, kv_load16(vb, vt + 48, f16), c3);
            }
        }
        _mm512_storeu_ps(out + i, _mm512_mul_ps(c0, iv));
        _mm512_storeu_ps(out + i + 16, _mm512_mul_ps(c1, iv));
        _mm512_storeu_ps(out + i + 32, _mm512_mul_ps(c2, iv));
        _mm512_storeu_ps(out + i + 48, _mm512_mul_ps(c3, iv));
    }
    for (; i < HD; i += 16) {
        __mmask16 m = HD - i >= 16 ? (__mmask16)0xffff : tail_mask(HD - i);
        __m512 c0 = _mm512_setzero_ps();
        for (int t0 = 0; t0 < n_kv; t0 += nb) {
            nb = gpt2k_kv_span_off(kv, col, t0, n_kv, &off);
            for (t = 0; t < nb; t++)
                c0 = _mm512_fmadd_ps(_mm512_set1_ps(scratch[t0 + t]),
                                     kv_load16_mask(m, vb, off + (size_t)t * kv->ld + i, f16), c0);
        }
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(c0, iv));
    }
}

static void attention_head_avx512(float *out, const float *q, const gpt2k_kv_view *kv, int col,
                                  int n_kv, int HD, float scale, float *scratch)
{
    /* A keys_t cache (the CPU backend's): the rows kernel for one row, so
     * that this table's attention_rows gives the same bits. */
    if (kv->keys_t)
        gpt2k_attention_rows_t_avx512(out, 0, q, 0, kv, col, n_kv, 1, HD, scale, scratch);
    else if (kv->elem == GPT2K_W_F16)
        attention_head_pm_avx512(out, q, kv, col, n_kv, HD, scale, scratch, 1);
    else
        attention_head_pm_avx512(out, q, kv, col, n_kv, HD, scale, scratch, 0);
}

static void attention_rows_avx512(float *out, int ldo, const float *q, int ldq,
                                  const gpt2k_kv_view *kv, int col, int n0, int rows, int HD,
                                  float scale, float *scratch)
{
    if (kv->keys_t) {
        gpt2k_attention_rows_t_avx512(out, ldo, q, ldq, kv, col, n0, rows, HD, scale, scratch);
        return;
    }
    for (int r = 0; r < rows; r++)
        attention_head_avx512(out + (size_t)r * ldo, q + (size_t)r * ldq, kv, col, n0 + r, HD,
                              scale, scratch);
}

#define OPS_AVX512_COMMON                                                                          \
    .isa = GPT2K_ISA_AVX512, .matmul_f32 = gpt2k_matmul_f32_avx512,                                \
    .matmul_f16 = gpt2k_matmul_f16_avx512, .matmul_packed = gpt2k_matmul_packed_avx512,            \
    .layernorm = layernorm_avx512, .gelu = gelu_avx512, .add = add_avx512,                         \
    .argmax = argmax_avx512,                                                                       \
    .attention_head = attention_head_avx512, .attention_rows = attention_rows_avx512,              \
    .to_f16 = gpt2k_to_f16_avx2,                                                                   \
    .quantize_q8_0 = gpt2k_quantize_q8_0_avx512

static const gpt2k_ops ops_avx512 = {
    OPS_AVX512_COMMON,
    .matmul_q8_0 = gpt2k_matmul_q8_0_avx512bw,
    .matmul_q8_0_packed = gpt2k_matmul_q8_0_packed_avx512bw,
};

#ifdef __AVX512VNNI__
static const gpt2k_ops ops_avx512_vnni = {
    OPS_AVX512_COMMON,
    .q8_layout = GPT2K_Q8_COLS16,
    .matmul_q8_0 = gpt2k_matmul_q8_0_avx512vnni,
    .matmul_q8_0_packed = gpt2k_matmul_q8_0_packed_avx512vnni,
};
#endif

const gpt2k_ops *gpt2k_ops_avx512_variant(int vnni)
{
#ifdef __AVX512VNNI__
    if (vnni)
        return &ops_avx512_vnni;
#else
    if (vnni)
        return NULL;
#endif
    return &ops_avx512;
}

const gpt2k_ops *gpt2k_ops_avx512(void)
{
    const gpt2k_ops *o = gpt2k_cpu_has_vnni() ? gpt2k_ops_avx512_variant(1) : NULL;
    return o ? o : &ops_avx512;
}

#else /* compiler without the AVX-512 flags: no table */

const gpt2k_ops *gpt2k_ops_avx512(void)
{
    return NULL;
}

const gpt2k_ops *gpt2k_ops_avx512_variant(int vnni)
{
    (void)vnni;
    return NULL;
}

#endif
