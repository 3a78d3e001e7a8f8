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

/* ---- argmax ------------------------------------------------------------------- */

/* As argmax_avx512 (ops_avx512.c): the largest value with NaNs kept out by
 * vmaxps's operand order, then its first index. */
static int argmax_avx2(const float *x, int n)
{
    if (!(x[0] == x[0]))
        return 0;
    __m256 m0 = _mm256_set1_ps(x[0]), m1 = m0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
        m1 = _mm256_max_ps(_mm256_loadu_ps(x + i + 8), m1);
    }
    m0 = _mm256_max_ps(m1, m0);
    float mx = x[0];
    for (; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    float lane[8];
    _mm256_storeu_ps(lane, m0);
    for (int j = 0; j < 8; j++)
        mx = lane[j] > mx ? lane[j] : mx;
    const __m256 v = _mm256_set1_ps(mx);
    for (i = 0; i + 8 <= n; i += 8) {
        const int eq = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), v, _CMP_EQ_OQ));
        if (eq)
            return i + __builtin_ctz((unsigned)eq);
    }
    for (; i < n; i++)
        if (x[i] == mx)
            return i;
    return 0; /* not reached: the max is one of the values */
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

/* sc[0 .. n-1] := exp(sc[t] - max), max-subtracted so every exp() is <= 1;
 * returns 1 / their sum. */
AINLINE float softmax_avx2(float *sc, int n)
{
    const int n8 = n & ~7;
    int t;
    __m256 mv = _mm256_set1_ps(-INFINITY);
    for (t = 0; t < n8; t += 8)
        mv = _mm256_max_ps(mv, _mm256_loadu_ps(sc + t));
    float mx = hmax(mv);
    for (; t < n; t++)
        mx = sc[t] > mx ? sc[t] : mx;
    mv = _mm256_set1_ps(mx);
    __m256 sv = _mm256_setzero_ps();
    for (t = 0; t < n8; t += 8) {
        __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(sc + t), mv));
        _mm256_storeu_ps(sc + t, e);
        sv = _mm256_add_ps(sv, e);
    }
    float sum = hsum(sv);
    for (; t < n; t++) {
        sc[t] = expf(sc[t] - mx);
        sum += sc[t];
    }
    return 1.0f / sum;
}

float gpt2k_softmax_avx2(float *sc, int n)
{
    return softmax_avx2(sc, n);
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

    const float inv = softmax_avx2(scratch, n_kv);

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

/* ---- attention on keys_t caches (kernels.h) ----------------------------------
 *
 * Every score is one FMA chain over the head's channels in index order, in
 * one lane of a vector of 8 keys (or in a scalar fmaf chain for keys that do
 * not fill a vector: the same operations); every output channel is one FMA
 * chain over the keys in order, then times 1 / sum. A tile of query rows only
 * shares the loads of keys and values between its rows, so each row gets the
 * bits it gets alone. */

/* acc[0 .. R-1][0 .. N-1] = 0 (the tiles' accumulators, kept in registers
 * once the loops over constant R and N are unrolled) */
AINLINE void zero_tile(__m256 acc[4][8], const int R, const int N)
{
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int j = 0; j < N; j++)
            acc[r][j] = _mm256_setzero_ps();
}

/* Scores of RR rows against NV vectors of 8 keys, vector j's channel d at
 * element kofs[j] + d * bs of k, its scores to sc[r * lds + tpos[j] ..]. */
AINLINE void scores_t_vec(const int RR, const int NV, float *sc, int lds, const float *q,
                          int ldq, const void *k, const size_t *kofs, const int *tpos, int bs,
                          int HD, float scale, int f16)
{
    __m256 acc[4][8];
    zero_tile(acc, RR, NV);
    for (int d = 0; d < HD; d++) {
        __m256 kd[8];
#pragma GCC unroll 8
        for (int j = 0; j < NV; j++)
            kd[j] = kv_load8(k, kofs[j] + (size_t)d * bs, f16);
#pragma GCC unroll 4
        for (int r = 0; r < RR; r++) {
            const __m256 qd = _mm256_broadcast_ss(q + (size_t)r * ldq + d);
#pragma GCC unroll 8
            for (int j = 0; j < NV; j++)
                acc[r][j] = _mm256_fmadd_ps(qd, kd[j], acc[r][j]);
        }
    }
    const __m256 sv = _mm256_set1_ps(scale);
#pragma GCC unroll 4
    for (int r = 0; r < RR; r++)
#pragma GCC unroll 8
        for (int j = 0; j < NV; j++)
            _mm256_storeu_ps(sc + (size_t)r * lds + tpos[j], _mm256_mul_ps(acc[r][j], sv));
}

/* Scores of RR rows (q, ldq) against keys 0 .. n-1 into sc (row stride
 * lds). Full vectors of 8 keys inside a block are gathered NV at a time
 * (from several blocks: one row needs 8 chains in flight to hide the FMA
 * latency), the rest are scalar chains. */
AINLINE void scores_t(const int RR, float *sc, int lds, const float *q, int ldq,
                      const gpt2k_kv_view *kv, const gpt2k_kv_head *w, int n, int HD,
                      float scale, int f16)
{
    const int NV = RR == 1 ? 8 : RR == 2 ? 4 : 2, bs = w->bs, nblk = (n + bs - 1) / bs;
    size_t kofs[8];
    int tpos[8], nv = 0;
    for (int b = 0; b < nblk; b++) {
        const int t0 = b * bs, nb = n - t0 < bs ? n - t0 : bs;
        const size_t koff = gpt2k_kv_head_koff(w, b);
        if (RR == 1)
            gpt2k_kv_head_prefetch(kv, w, b, nblk, 1, f16);
        int j = 0;
        for (; j + 8 <= nb; j += 8) {
            kofs[nv] = koff + (size_t)j, tpos[nv] = t0 + j;
            if (++nv == NV) {
                scores_t_vec(RR, NV, sc, lds, q, ldq, kv->k, kofs, tpos, bs, HD, scale, f16);
                nv = 0;
            }
        }
        for (; j < nb; j++)
            for (int r = 0; r < RR; r++) {
                const float *qr = q + (size_t)r * ldq;
                float a = 0.0f;
                for (int d = 0; d < HD; d++)
                    a = fmaf(qr[d], kv_load1(kv->k, koff + (size_t)j + (size_t)d * bs, f16), a);
                sc[(size_t)r * lds + t0 + j] = a * scale;
            }
    }
    for (int j = 0; j < nv; j++)
        scores_t_vec(RR, 1, sc, lds, q, ldq, kv->k, kofs + j, tpos + j, bs, HD, scale, f16);
}

/* out[r][i .. i + 8 CV) = inv[r] * sum over t < nlo + r of p[r][t] v[t][i ..]
 * for RR rows (p: sc, row stride lds). */
AINLINE void pv_t_pass(const int RR, const int CV, float *out, int ldo, const float *sc, int lds,
                       const float *inv, const gpt2k_kv_view *kv, const gpt2k_kv_head *w,
                       int nlo, int i, int f16)
{
    __m256 acc[4][8];
    zero_tile(acc, RR, CV);
    const int nhi = nlo + RR - 1, bs = w->bs, nblk = (nhi + bs - 1) / bs;
    for (int b = 0; b < nblk; b++) {
        const int t0 = b * bs, nb = nhi - t0 < bs ? nhi - t0 : bs;
        const size_t off = gpt2k_kv_head_voff(w, b);
        if (RR == 1 && i == 0)
            gpt2k_kv_head_prefetch(kv, w, b, nblk, 0, f16);
        /* positions before nlo are every row's: no mask test */
        const int nall = nlo - t0 < nb ? (nlo - t0 > 0 ? nlo - t0 : 0) : nb;
        const float *p0 = sc + t0;
        const char *vb = (const char *)kv->v + (off + (size_t)i) * (size_t)(f16 ? 2 : 4);
        const size_t vstep = (size_t)kv->ld * (size_t)(f16 ? 2 : 4);
        for (int t = 0; t < nall; t++, vb += vstep) {
            __m256 vv[8];
#pragma GCC unroll 8
            for (int c = 0; c < CV; c++)
                vv[c] = kv_load8(vb, 8 * (size_t)c, f16);
#pragma GCC unroll 4
            for (int r = 0; r < RR; r++) {
                const __m256 p = _mm256_broadcast_ss(p0 + (size_t)r * lds + t);
#pragma GCC unroll 8
                for (int c = 0; c < CV; c++)
                    acc[r][c] = _mm256_fmadd_ps(p, vv[c], acc[r][c]);
            }
        }
        for (int t = nall; t < nb; t++) {
            const int tt = t0 + t;
            const size_t vt = off + (size_t)t * kv->ld + (size_t)i;
            __m256 vv[8];
#pragma GCC unroll 8
            for (int c = 0; c < CV; c++)
                vv[c] = kv_load8(kv->v, vt + 8 * (size_t)c, f16);
#pragma GCC unroll 4
            for (int r = 0; r < RR; r++)
                if (tt < nlo + r) {
                    const __m256 p = _mm256_broadcast_ss(sc + (size_t)r * lds + tt);
#pragma GCC unroll 8
                    for (int c = 0; c < CV; c++)
                        acc[r][c] = _mm256_fmadd_ps(p, vv[c], acc[r][c]);
                }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < RR; r++)
#pragma GCC unroll 8
        for (int c = 0; c < CV; c++)
            _mm256_storeu_ps(out + (size_t)r * ldo + i + 8 * c,
                             _mm256_mul_ps(acc[r][c], _mm256_set1_ps(inv[r])));
}

AINLINE void pv_t(const int RR, float *out, int ldo, const float *sc, int lds, const float *inv,
                  const gpt2k_kv_view *kv, const gpt2k_kv_head *w, int nlo, int HD, int f16)
{
    const int CV = RR == 1 ? 8 : RR == 2 ? 4 : 2, hd8 = HD & ~7;
    int i = 0;
    for (; i + 8 * CV <= hd8; i += 8 * CV)
        pv_t_pass(RR, CV, out, ldo, sc, lds, inv, kv, w, nlo, i, f16);
    for (; i < hd8; i += 8)
        pv_t_pass(RR, 1, out, ldo, sc, lds, inv, kv, w, nlo, i, f16);
    for (; i < HD; i++)
        for (int r = 0; r < RR; r++) {
            const float *p = sc + (size_t)r * lds;
            const int n = nlo + r, bs = w->bs;
            float a = 0.0f;
            for (int t0 = 0, b = 0; t0 < n; t0 += bs, b++) {
                const int nb = n - t0 < bs ? n - t0 : bs;
                const size_t off = gpt2k_kv_head_voff(w, b);
                for (int t = 0; t < nb; t++)
                    a = fmaf(p[t0 + t], kv_load1(kv->v, off + (size_t)t * kv->ld + (size_t)i, f16),
                             a);
            }
            out[(size_t)r * ldo + i] = a * inv[r];
        }
}

/* RR (1..4) rows of a tile: scores, softmax per row, then p . v. */
AINLINE void rows_t_group(const int RR, float *out, int ldo, const float *q, int ldq,
                          const gpt2k_kv_view *kv, int col, int nlo, int HD, float scale,
                          float *sc, int lds, int f16)
{
    float inv[4];
    const gpt2k_kv_head w = gpt2k_kv_head_of(kv, col, f16);
    scores_t(RR, sc, lds, q, ldq, kv, &w, nlo + RR - 1, HD, scale, f16);
    for (int r = 0; r < RR; r++)
        inv[r] = softmax_avx2(sc + (size_t)r * lds, nlo + r);
    pv_t(RR, out, ldo, sc, lds, inv, kv, &w, nlo, HD, f16);
}

AINLINE void attention_rows_t(float *out, int ldo, const float *q, int ldq,
                              const gpt2k_kv_view *kv, int col, int n0, int rows, int HD,
                              float scale, float *scratch, int f16)
{
    const int lds = n0 + rows - 1;
    for (int r0 = 0; r0 < rows; r0 += 4) {
        float *o = out + (size_t)r0 * ldo, *sc = scratch + (size_t)r0 * lds;
        const float *qr = q + (size_t)r0 * ldq;
        switch (rows - r0 < 4 ? rows - r0 : 4) {
        case 1:
            rows_t_group(1, o, ldo, qr, ldq, kv, col, n0 + r0, HD, scale, sc, lds, f16);
            break;
        case 2:
            rows_t_group(2, o, ldo, qr, ldq, kv, col, n0 + r0, HD, scale, sc, lds, f16);
            break;
        case 3:
            rows_t_group(3, o, ldo, qr, ldq, kv, col, n0 + r0, HD, scale, sc, lds, f16);
            break;
        default:
            rows_t_group(4, o, ldo, qr, ldq, kv, col, n0 + r0, HD, scale, sc, lds, f16);
        }
    }
}

static void attention_rows_t_f16(float *out, int ldo, const float *q, int ldq,
                                 const gpt2k_kv_view *kv, int col, int n0, int rows, int HD,
                                 float scale, float *scratch)
{
    attention_rows_t(out, ldo, q, ldq, kv, col, n0, rows, HD, scale, scratch, 1);
}

static void attention_rows_t_f32(float *out, int ldo, const float *q, int ldq,
                                 const gpt2k_kv_view *kv, int col, int n0, int rows, int HD,
                                 float scale, float *scratch)
{
    attention_rows_t(out, ldo, q, ldq, kv, col, n0, rows, HD, scale, scratch, 0);
}

void gpt2k_attention_lone_t_f16_avx2(float *out, const float *q, const gpt2k_kv_view *kv,
                                     int col, int n_kv, int HD, float scale, float *scratch)
{
    attention_rows_t_f16(out, 0, q, 0, kv, col, n_kv, 1, HD, scale, scratch);
}

static void attention_head_avx2(float *out, const float *q, const gpt2k_kv_view *kv, int col,
                                int n_kv, int HD, float scale, float *scratch)
{
    if (kv->keys_t && kv->elem == GPT2K_W_F16)
        attention_rows_t_f16(out, 0, q, 0, kv, col, n_kv, 1, HD, scale, scratch);
    else if (kv->keys_t)
        attention_rows_t_f32(out, 0, q, 0, kv, col, n_kv, 1, HD, scale, scratch);
    else if (kv->elem == GPT2K_W_F16)
        attention_head_body(out, q, kv, col, n_kv, HD, scale, scratch, 1);
    else
        attention_head_body(out, q, kv, col, n_kv, HD, scale, scratch, 0);
}

static void attention_rows_avx2(float *out, int ldo, const float *q, int ldq,
                               const gpt2k_kv_view *kv, int col, int n0, int rows, int HD,
                               float scale, float *scratch)
{
    if (!kv->keys_t) { /* one row at a time: the per-head kernel above */
        for (int r = 0; r < rows; r++)
            attention_head_avx2(out + (size_t)r * ldo, q + (size_t)r * ldq, kv, col, n0 + r, HD,
                                scale, scratch);
    } else if (kv->elem == GPT2K_W_F16) {
        attention_rows_t_f16(out, ldo, q, ldq, kv, col, n0, rows, HD, scale, scratch);
    } else {
        attention_rows_t_f32(out, ldo, q, ldq, kv, col, n0, rows, HD, scale, scratch);
    }
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
    .argmax = argmax_avx2,
    .attention_head = attention_head_avx2,
    .attention_rows = attention_rows_avx2,
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
