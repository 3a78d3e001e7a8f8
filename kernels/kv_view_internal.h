/* Walking a gpt2k_kv_view block by block (shared by the attention kernels). */
#ifndef GPT2C_KV_VIEW_INTERNAL_H
#define GPT2C_KV_VIEW_INTERNAL_H

#include "kernels.h"

/* The run of positions t0 .. t0+n-1 that lies in one block, n <= n_kv - t0:
 * sets *k / *v to channel col of position t0's key / value, returns n. The
 * caller's channels col .. col + HD - 1 lie in one run (one head); within the
 * run of positions, position t0+j is at *k + j * kv->ld. */
static inline int gpt2k_kv_span(const gpt2k_kv_view *kv, int col, int t0, int n_kv,
                                const float **k, const float **v)
{
    int in_block = kv->bs - t0 % kv->bs, left = n_kv - t0;
    const size_t chan = kv->head_dim ? (size_t)(col / kv->head_dim) * kv->head_stride +
                                           (size_t)(col % kv->head_dim)
                                     : (size_t)col;
    size_t off = (size_t)kv->blocks[t0 / kv->bs] * kv->block_stride +
                 (size_t)(t0 % kv->bs) * kv->ld + chan;
    *k = kv->k + off;
    *v = kv->v + off;
    return left < in_block ? left : in_block;
}

#endif
