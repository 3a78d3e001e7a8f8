/* Causal attention over a keys-transposed cache (gpt2k_kv_view.keys_t, the
 * CPU backend's) for AVX-512: 16 positions per key vector (one 16-position
 * block of keys for one channel), 16 channels per value vector.
 *
 * Bits: every lane does what the AVX2 kernel (ops_avx2.c) does, in the same
 * order. A score is one FMA chain over the channels from +0, times scale; the
 * softmax is the AVX2 one (gpt2k_softmax_avx2), whose sums depend on its
 * vector width; an output channel is one FMA chain over the positions in
 * index order from +0, times 1 / sum. So results equal the AVX2 table's bit
 * for bit, and a row's result does not depend on the tile it is computed in,
 * while one instruction does twice the lanes (on a core with full-width
 * AVX-512 FMA units, twice the FLOPs per cycle).
 *
 * A lone query on an fp16 cache (decode) goes to the AVX2 kernel instead:
 * the same bits, and from memory its attention took 1.00 against 1.21 ms
 * per Q8_0 decode step after 900 tokens here (kernels/README.md).
 *
 * Registers (32 zmm): scores keep RR rows x NV key vectors of sums (at most
 * 16) beside NV key vectors and a broadcast; the value pass keeps RR rows x
 * 4 channel vectors (64 channels, all of a GPT-2 head) beside 4 value vectors
 * and a broadcast, so one pass over the positions serves the whole head. */
#include "kernels.h"
#include "kv_view_internal.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__F16C__)

#include <immintrin.h>

#define AINLINE static inline __attribute__((always_inline))

/* Lanes [0, n) of 16, n >= 0. */
AINLINE __mmask16 first_lanes(int n)
{
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
}

/* Sixteen cache elements from element i of base as fp32 (fp16 widened
 * exactly), lanes outside m zero and not read. */
AINLINE __m512 kv_load16(const void *base, size_t i, __mmask16 m, int f16)
{
    if (f16) {
        const uint16_t *p = (const uint16_t *)base + i;
        return _mm512_cvtph_ps(m == 0xffff ? _mm256_loadu_si256((const __m256i *)p)
                                           : _mm256_maskz_loadu_epi16(m, p));
    }
    const float *p = (const float *)base + i;
    return m == 0xffff ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(m, p);
}

/* Scores of RR rows against NV vectors of keys: vector j's channel d at
 * element kofs[j] + d * bs of k, lanes km[j], its scores to sc[r * lds +
 * tpos[j] ..]. */
AINLINE void scores_vec(const int RR, const int NV, float *sc, int lds, const float *q, int ldq,
                        const void *k, const size_t *kofs, const int *tpos,
                        const __mmask16 *km, int bs, int HD, float scale, int f16)
{
    __m512 acc[4][8];
#pragma GCC unroll 4
    for (int r = 0; r < RR; r++)
#pragma GCC unroll 8
        for (int j = 0; j < NV; j++)
            acc[r][j] = _mm512_setzero_ps();
    for (int d = 0; d < HD; d++) {
        __m512 kd[8];
#pragma GCC unroll 8
        for (int j = 0; j < NV; j++)
            kd[j] = kv_load16(k, kofs[j] + (size_t)d * (size_t)bs, km[j], f16);
#pragma GCC unroll 4
        for (int r = 0; r < RR; r++) {
            const __m512 qd = _mm512_set1_ps(q[(size_t)r * ldq + d]);
#pragma GCC unroll 8
            for (int j = 0; j < NV; j++)
                acc[r][j] = _mm512_fmadd_ps(qd, kd[j], acc[r][j]);
        }
    }
    const __m512 sv = _mm512_set1_ps(scale);
#pragma GCC unroll 4
    for (int r = 0; r < RR; r++)
#pragma GCC unroll 8
        for (int j = 0; j < NV; j++)
            _mm512_mask_storeu_ps(sc + (size_t)r * lds + tpos[j], km[j],
                                  _mm512_mul_ps(acc[r][j], sv));
}

/* Scores of RR rows against keys 0 .. n-1 into sc (row stride lds): the
 * vectors of each block's run (the last one of a run masked) go NV at a
 * time, from several blocks, so a lone row has NV chains in flight. A lone
 * row asks for the keys GPT2K_KV_AHEAD_KEYS positions on. */
AINLINE void scores_t(const int RR, float *sc, int lds, const float *q, int ldq,
                      const gpt2k_kv_view *kv, const gpt2k_kv_head *w, int n, int HD, float scale,
                      int f16)
{
    const int NV = RR == 1 ? 8 : RR == 2 ? 6 : 4, bs = w->bs, nblk = (n + bs - 1) / bs;
    size_t kofs[8];
    int tpos[8], nv = 0;
    __mmask16 km[8];
    for (int b = 0; b < nblk; b++) {
        const int t0 = b * bs, nb = n - t0 < bs ? n - t0 : bs;
        const size_t koff = gpt2k_kv_head_koff(w, b);
        if (RR == 1)
            gpt2k_kv_head_prefetch(kv, w, b, nblk, 1, f16);
        for (int j = 0; j < nb; j += 16) {
            kofs[nv] = koff + (size_t)j, tpos[nv] = t0 + j, km[nv] = first_lanes(nb - j);
            if (++nv == NV) {
                scores_vec(RR, NV, sc, lds, q, ldq, kv->k, kofs, tpos, km, bs, HD, scale, f16);
                nv = 0;
            }
        }
    }
    for (int j = 0; j < nv; j++)
        scores_vec(RR, 1, sc, lds, q, ldq, kv->k, kofs + j, tpos + j, km + j, bs, HD, scale, f16);
}

/* out[r][i .. i + 16 CV) = inv[r] * sum over t < nlo + r of p[r][t] v[t][i ..]
 * for RR rows (p: sc, row stride lds); the last channel vector's lanes mlast. */
AINLINE void pv_pass(const int RR, const int CV, float *out, int ldo, const float *sc, int lds,
                     const float *inv, const gpt2k_kv_view *kv, const gpt2k_kv_head *w, int nlo,
                     int i, __mmask16 mlast, int f16)
{
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < RR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < CV; c++)
            acc[r][c] = _mm512_setzero_ps();
    const int nhi = nlo + RR - 1, bs = w->bs, nblk = (nhi + bs - 1) / bs;
    const size_t eb = f16 ? 2 : 4;
    for (int b = 0; b < nblk; b++) {
        const int t0 = b * bs, nb = nhi - t0 < bs ? nhi - t0 : bs;
        const size_t off = gpt2k_kv_head_voff(w, b);
        if (RR == 1 && i == 0)
            gpt2k_kv_head_prefetch(kv, w, b, nblk, 0, f16);
        const char *vb = (const char *)kv->v + (off + (size_t)i) * eb;
        const size_t vstep = (size_t)kv->ld * eb;
        /* positions before nlo are every row's; the rest, some rows' */
        const int nall = nlo - t0 < nb ? (nlo - t0 > 0 ? nlo - t0 : 0) : nb;
        for (int t = 0; t < nb; t++, vb += vstep) {
            __m512 vv[4];
#pragma GCC unroll 4
            for (int c = 0; c < CV; c++)
                vv[c] = kv_load16(vb, 16 * (size_t)c, c == CV - 1 ? mlast : 0xffff, f16);
            const float *p = sc + t0 + t;
            if (t < nall) {
#pragma GCC unroll 4
                for (int r = 0; r < RR; r++) {
                    const __m512 pr = _mm512_set1_ps(p[(size_t)r * lds]);
#pragma GCC unroll 4
                    for (int c = 0; c < CV; c++)
                        acc[r][c] = _mm512_fmadd_ps(pr, vv[c], acc[r][c]);
                }
            } else {
#pragma GCC unroll 4
                for (int r = 0; r < RR; r++)
                    if (t0 + t < nlo + r) {
                        const __m512 pr = _mm512_set1_ps(p[(size_t)r * lds]);
#pragma GCC unroll 4
                        for (int c = 0; c < CV; c++)
                            acc[r][c] = _mm512_fmadd_ps(pr, vv[c], acc[r][c]);
                    }
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < RR; r++) {
        const __m512 iv = _mm512_set1_ps(inv[r]);
#pragma GCC unroll 4
        for (int c = 0; c < CV; c++)
            _mm512_mask_storeu_ps(out + (size_t)r * ldo + i + 16 * c,
                                  c == CV - 1 ? mlast : (__mmask16)0xffff,
                                  _mm512_mul_ps(acc[r][c], iv));
    }
}

/* All HD channels: 64 per pass, then 16 (the last masked). */
AINLINE void pv_t(const int RR, float *out, int ldo, const float *sc, int lds, const float *inv,
                  const gpt2k_kv_view *kv, const gpt2k_kv_head *w, int nlo, int HD, int f16)
{
    int i = 0;
    for (; i + 64 <= HD; i += 64)
        pv_pass(RR, 4, out, ldo, sc, lds, inv, kv, w, nlo, i, 0xffff, f16);
    for (; i < HD; i += 16)
        pv_pass(RR, 1, out, ldo, sc, lds, inv, kv, w, nlo, i, first_lanes(HD - i), f16);
}

/* RR (1..4) rows of a tile: scores, softmax per row, then p . v. */
AINLINE void rows_group(const int RR, float *out, int ldo, const float *q, int ldq,
                        const gpt2k_kv_view *kv, int col, int nlo, int HD, float scale, float *sc,
                        int lds, int f16)
{
    float inv[4];
    const gpt2k_kv_head w = gpt2k_kv_head_of(kv, col, f16);
    scores_t(RR, sc, lds, q, ldq, kv, &w, nlo + RR - 1, HD, scale, f16);
    for (int r = 0; r < RR; r++)
        inv[r] = gpt2k_softmax_avx2(sc + (size_t)r * lds, nlo + r);
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
        case 1: rows_group(1, o, ldo, qr, ldq, kv, col, n0 + r0, HD, scale, sc, lds, f16); break;
        case 2: rows_group(2, o, ldo, qr, ldq, kv, col, n0 + r0, HD, scale, sc, lds, f16); break;
        case 3: rows_group(3, o, ldo, qr, ldq, kv, col, n0 + r0, HD, scale, sc, lds, f16); break;
        default: rows_group(4, o, ldo, qr, ldq, kv, col, n0 + r0, HD, scale, sc, lds, f16);
        }
    }
}

void gpt2k_attention_rows_t_avx512(float *out, int ldo, const float *q, int ldq,
                                   const gpt2k_kv_view *kv, int col, int n0, int rows, int HD,
                                   float scale, float *scratch)
{
    /* A lone query on an fp16 cache (decode's): the AVX2 kernel, the same
     * bits (see the top) and faster from memory here (kernels/README.md,
     * "The AVX-512 keys_t kernel is the faster one from cache"). */
    if (rows == 1 && kv->elem == GPT2K_W_F16) {
        gpt2k_attention_lone_t_f16_avx2(out, q, kv, col, n0, HD, scale, scratch);
        return;
    }
    if (kv->elem == GPT2K_W_F16)
        attention_rows_t(out, ldo, q, ldq, kv, col, n0, rows, HD, scale, scratch, 1);
    else
        attention_rows_t(out, ldo, q, ldq, kv, col, n0, rows, HD, scale, scratch, 0);
}

#endif
