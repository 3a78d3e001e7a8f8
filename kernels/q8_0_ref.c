/* Q8_0 in plain C: the reference encoding, decoding and dot product. The
 * encoding is llama.cpp's quantize_row_q8_0_ref, operation for operation, so
 * a GGUF file we write and one llama.cpp writes hold the same bytes:
 *
 *   amax = max |x|                (sequential, as MAX(amax, |x|))
 *   d    = amax / 127             (float division)
 *   id   = d != 0 ? 1 / d : 0
 *   q    = roundf(x * id)         (halves away from zero)
 *   store fp16(d), rounded to nearest even
 *
 * Range: |x * id| <= amax * id, which is 127 within a few ulps (d and 1/d are
 * each rounded once), so q lies in [-127, 127]: -128 never occurs, which the
 * SIMD dot products rely on (q8_0_internal.h).
 *
 * Non-finite x * id: C leaves (int8_t)roundf(inf or nan) undefined. It occurs
 * only for a block with an inf or nan, or with amax below about 127 * 2^-128
 * (then 1 / d overflows; fp16(d) is 0 there, so no q could be decoded anyway). We
 * store q = 0 for it, in every variant. NaN inputs are otherwise out of
 * contract: a tree maximum (SIMD) and a sequential one differ on them. */
#include <math.h>

#include "q8_0_internal.h"

#define QK GPT2K_QK8_0

size_t gpt2k_q8_0_row_bytes(int K)
{
    return (size_t)(K / QK) * sizeof(gpt2k_block_q8_0);
}

void gpt2k_quantize_q8_0_ref(void *dst, const float *x, int n)
{
    gpt2k_block_q8_0 *y = dst;
    for (int b = 0; b < n / QK; b++) {
        const float *xb = x + (size_t)b * QK;
        float amax = 0.0f;
        for (int i = 0; i < QK; i++) {
            float a = fabsf(xb[i]);
            amax = amax > a ? amax : a;
        }
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = gpt2k_f32_to_f16(d);
        for (int i = 0; i < QK; i++) {
            float v = xb[i] * id;
            y[b].qs[i] = isfinite(v) ? (int8_t)roundf(v) : 0;
        }
    }
}

void gpt2k_dequantize_q8_0(float *out, const void *src, int n)
{
    const gpt2k_block_q8_0 *y = src;
    for (int b = 0; b < n / QK; b++) {
        const float d = gpt2k_f16_to_f32(y[b].d);
        for (int i = 0; i < QK; i++)
            out[(size_t)b * QK + i] = d * (float)y[b].qs[i];
    }
}

/* As llama.cpp's scalar q8_0 x q8_0 dot: the block's integer sum is exact in
 * int32 (32 * 128 * 127 < 2^31), then scaled by the product of the two fp16
 * scales and summed over blocks in index order, in float. */
void gpt2k_matmul_q8_0_ref(float *out, int ldo, const void *inq, const void *w, const float *bias,
                           int M, int K, int n0, int n1, int accumulate)
{
    const int nb = K / QK;
    const gpt2k_block_q8_0 *xq = inq, *wq = w;
    for (int m = 0; m < M; m++) {
        const gpt2k_block_q8_0 *xr = xq + (size_t)m * nb;
        float *o = out + (size_t)m * ldo;
        for (int n = n0; n < n1; n++) {
            const gpt2k_block_q8_0 *wr = wq + (size_t)n * nb;
            float s = 0.0f;
            for (int b = 0; b < nb; b++) {
                int32_t isum = 0;
                for (int i = 0; i < QK; i++)
                    isum += (int32_t)wr[b].qs[i] * xr[b].qs[i];
                s += (float)isum * (gpt2k_f16_to_f32(wr[b].d) * gpt2k_f16_to_f32(xr[b].d));
            }
            if (bias)
                s += bias[n];
            o[n] = accumulate ? o[n] + s : s;
        }
    }
}
