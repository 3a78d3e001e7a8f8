/* AVX2 + FMA (+ F16C for fp16 weights) kernels. Same contract as ops_ref.c;
 * every loop over a vector width has a scalar tail. */
#include "kernels.h"
#include "kv_view_internal.h"
#include "matmul_internal.h"
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

/* Eight / one cache elements at element index i of base, as fp32: the cache
 * is fp32 or fp16 (f16, a constant in each instantiation below, so the
 * branch folds away). fp16 -> fp32 is exact. */
AINLINE __m256 kv_load8(const void *base, size_t i, int f16)
{
    if (f16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + i)));
    return _mm256_loadu_ps((const float *)base + i);
}

AINLINE float kv_load1(const void *base, size_t i, int f16)
{
    return f16 ? _cvtsh_ss(((const uint16_t *)base)[i]) : ((const float *)base)[i];
}

/* Scores of n keys (the first at element k0 of k, row stride ldk) into sc,
 * four keys at a time: four independent FMA chains and one combined
 * horizontal reduction. */
AINLINE void scores_avx2(float *sc, const float *q, const void *k, size_t k0, int ldk, int n,
                         int HD, float scale, int f16)
{
    const int hd8 = HD & ~7;
    int t = 0;
    for (; t + 4 <= n; t += 4) {
        const size_t r0 = k0 + (size_t)t * ldk, r1 = r0 + ldk, r2 = r1 + ldk, r3 = r2 + ldk;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i < hd8; i += 8) {
            __m256 qv = _mm256_loadu_ps(q + i);
            a0 = _mm256_fmadd_ps(qv, kv_load8(k, r0 + i, f16), a0);
            a1 = _mm256_fmadd_ps(qv, kv_load8(k, r1 + i, f16), a1);
            a2 = _mm256_fmadd_ps(qv, kv_load8(k, r2 + i, f16), a2);
            a3 = _mm256_fmadd_ps(qv, kv_load8(k, r3 + i, f16), a3);
        }
        float s[4];
        _mm_storeu_ps(s, hsum4(a0, a1, a2, a3));
        for (int i = hd8; i < HD; i++) {
            s[0] += q[i] * kv_load1(k, r0 + i, f16);
            s[1] += q[i] * kv_load1(k, r1 + i, f16);
            s[2] += q[i] * kv_load1(k, r2 + i, f16);
            s[3] += q[i] * kv_load1(k, r3 + i, f16);
        }
        for (int j = 0; j < 4; j++)
            sc[t + j] = s[j] * scale;
    }
    for (; t < n; t++) {
        const size_t rt = k0 + (size_t)t * ldk;
        __m256 a0 = _mm256_setzero_ps();
        for (int i = 0; i < hd8; i += 8)
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), kv_load8(k, rt + i, f16), a0);
        float s = hsum(a0);
        for (int i = hd8; i < HD; i++)
            s += q[i] * kv_load1(k, rt + i, f16);
        sc[t] = s * scale;
    }
}

AINLINE void attention_head_body(float *out, const float *q, const gpt2k_kv_view *kv, int col,
                                 int n_kv, int HD, float scale, float *scratch, int f16)
{
    const int hd8 = HD & ~7;
    size_t off;
    int t, nb;
    for (int t0 = 0; t0 < n_kv; t0 += nb) {
        nb = gpt2k_kv_span_off(kv, col, t0, n_kv, &off);
        scores_avx2(scratch + t0, q, kv->k, off, kv->ld, nb, HD, scale, f16);
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
    const void *v = kv->v;
    int i = 0;
    for (; i + 64 <= hd8; i += 64) {
        __m256 acc[8];
        for (int j = 0; j < 8; j++)
            acc[j] = _mm256_setzero_ps();
        for (int t0 = 0; t0 < n_kv; t0 += nb) {
            nb = gpt2k_kv_span_off(kv, col, t0, n_kv, &off);
            for (t = 0; t < nb; t++) {
                const size_t vt = off + (size_t)t * kv->ld + i;
                __m256 p = _mm256_broadcast_ss(scratch + t0 + t);
                for (int j = 0; j < 8; j++)
                    acc[j] = _mm256_fmadd_ps(p, kv_load8(v, vt + 8 * j, f16), acc[j]);
            }
        }
        const __m256 iv = _mm256_set1_ps(inv);
        for (int j = 0; j < 8; j++)
            _mm256_storeu_ps(out + i + 8 * j, _mm256_mul_ps(acc[j], iv));
    }
    for (; i < hd8; i += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int t0 = 0; t0 < n_kv; t0 += nb) {
            nb = gpt2k_kv_span_off(kv, col, t0, n_kv, &off);
            for (t = 0; t < nb; t++)
                acc = _mm256_fmadd_ps(_mm256_broadcast_ss(scratch + t0 + t),
                                      kv_load8(v, off + (size_t)t * kv->ld + i, f16), acc);
        }
        _mm256_storeu_ps(out + i, _mm256_mul_ps(acc, _mm256_set1_ps(inv)));
    }
    for (; i < HD; i++) {
        float acc = 0.0f;
        for (int t0 = 0; t0 < n_kv; t0 += nb) {
            nb = gpt2k_kv_span_off(kv, col, t0, n_kv, &off);
            for (t = 0; t < nb; t++)
                acc += scratch[t0 + t] * kv_load1(v, off + (size_t)t * kv->ld + i, f16);
        }
        out[i] = acc * inv;
    }
}

/* The fp16-cache instantiation, also used by the AVX-512 table. */
void gpt2k_attention_head_f16_avx2(float *out, const float *q, const gpt2k_kv_view *kv, int col,
                                   int n_kv, int HD, float scale, float *scratch)
{
    attention_head_body(out, q, kv, col, n_kv, HD, scale, scratch, 1);
}

static void attention_head_avx2(float *out, const float *q, const gpt2k_kv_view *kv, int col,
                                int n_kv, int HD, float scale, float *scratch)
{
    if (kv->elem == GPT2K_W_F16)
        gpt2k_attention_head_f16_avx2(out, q, kv, col, n_kv, HD, scale, scratch);
    else
        attention_head_body(out, q, kv, col, n_kv, HD, scale, scratch, 0);
}

/* F16C's conversion rounds to nearest even, as gpt2k_f32_to_f16. */
void gpt2k_to_f16_avx2(uint16_t *dst, const float *x, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++)
        dst[i] = gpt2k_f32_to_f16(x[i]);
}

static const gpt2k_ops ops_avx2 = {
    .isa = GPT2K_ISA_AVX2,
    .matmul_f32 = gpt2k_matmul_f32_avx2,
    .matmul_f16 = gpt2k_matmul_f16_avx2,
    .matmul_packed = gpt2k_matmul_packed_avx2,
    .layernorm = layernorm_avx2,
    .gelu = gelu_avx2,
    .add = add_avx2,
    .attention_head = attention_head_avx2,
    .to_f16 = gpt2k_to_f16_avx2,
    .quantize_q8_0 = gpt2k_quantize_q8_0_avx2,
    .matmul_q8_0 = gpt2k_matmul_q8_0_avx2,
    .matmul_q8_0_packed = gpt2k_matmul_q8_0_packed_avx2,
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
