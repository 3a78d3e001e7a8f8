/* Walking a gpt2k_kv_view block by block (shared by the attention kernels). */
#ifndef GPT2C_KV_VIEW_INTERNAL_H
#define GPT2C_KV_VIEW_INTERNAL_H

#include "kernels.h"

/* The run of positions t0 .. t0+n-1 that lies in one block, n <= n_kv - t0:
 * sets *off to the element offset (from kv->k and from kv->v) of channel col
 * of position t0, returns n. The caller's channels col .. col + HD - 1 lie in
 * one run (one head); within the run of positions, position t0+j is j * kv->ld
 * elements further. */
static inline int gpt2k_kv_span_off(const gpt2k_kv_view *kv, int col, int t0, int n_kv,
                                    size_t *off)
{
    int in_block = kv->bs - t0 % kv->bs, left = n_kv - t0;
    const size_t chan = kv->head_dim ? (size_t)(col / kv->head_dim) * kv->head_stride +
                                           (size_t)(col % kv->head_dim)
                                     : (size_t)col;
    *off = (size_t)kv->blocks[t0 / kv->bs] * kv->block_stride + (size_t)(t0 % kv->bs) * kv->ld +
           chan;
    return left < in_block ? left : in_block;
}

/* A keys_t view's run (kernels.h): as gpt2k_kv_span_off, *voff the values'
 * offset, and *koff the element offset (from kv->k) of channel col's key of
 * position t0: channel col + d of position t0 + j at *koff + d * bs + j. */
static inline int gpt2k_kv_span_t(const gpt2k_kv_view *kv, int col, int t0, int n_kv,
                                  size_t *koff, size_t *voff)
{
    const int n = gpt2k_kv_span_off(kv, col, t0, n_kv, voff);
    *koff = (size_t)kv->blocks[t0 / kv->bs] * kv->block_stride +
            (size_t)(col / kv->head_dim) * kv->head_stride +
            (size_t)(col % kv->head_dim) * (size_t)kv->bs + (size_t)(t0 % kv->bs);
    return n;
}

/* The AVX2 + F16C fp16 conversion (ops_avx2.c), shared with the AVX-512 table. */
void gpt2k_to_f16_avx2(uint16_t *dst, const float *x, int n);
/* AVX2 attention_rows (either element type), shared with the AVX-512 table
 * for keys_t views so that its attention_head and attention_rows agree. */
void gpt2k_attention_rows_avx2(float *out, int ldo, const float *q, int ldq,
                               const gpt2k_kv_view *kv, int col, int n0, int rows, int HD,
                               float scale, float *scratch);

#endif
