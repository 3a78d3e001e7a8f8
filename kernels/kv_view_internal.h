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

/* A lone query reads each head's keys, then its values, one run per block
 * (2 KiB at 124M in fp16). Where the runs lie apart, the hardware prefetcher
 * does not carry over from one run to the next, so decode would wait on
 * memory at every block: a lone row prefetches the run of the block
 * GPT2K_KV_AHEAD_KEYS positions on (values: GPT2K_KV_AHEAD_VALUES) as it
 * reaches each block (the keys_t kernels, through gpt2k_kv_head). Tiles of
 * several rows read runs their earlier groups brought into cache, where
 * prefetches only cost (measured slower), and long runs (big blocks) stream
 * without help: neither prefetches. */
#define GPT2K_KV_AHEAD_KEYS 96
#define GPT2K_KV_AHEAD_VALUES 48
#define GPT2K_KV_PREFETCH_MAX_RUN 8192

/* Every line of the run of bytes at p. */
static inline void gpt2k_kv_prefetch_run(const char *p, size_t run)
{
    for (size_t o = 0; o < run; o += 64)
        __builtin_prefetch(p + o, 0, 3);
    __builtin_prefetch(p + run - 1, 0, 3);
}

/* One head of a keys_t view, walked block by block with its divisions done
 * once: block j holds positions j * bs .. j * bs + bs - 1 (the walk starts
 * at position 0), its run of keys at element koff(j) of kv->k (channel d of
 * position j * bs + i at + d * bs + i), its run of values at voff(j) of
 * kv->v (position j * bs + i at + i * ld). The span functions above divide
 * per block, on the path of every address a decode kernel loads: Q8_0
 * decode after a 900-token prompt (Zen 4, eight alternating rounds against
 * the span functions), attention 1.18 against 1.25 ms per step (medians),
 * lower in every round. */
typedef struct gpt2k_kv_head {
    const int *blocks;
    size_t block_stride, kchan, vchan;
    size_t krun, vrun; /* bytes of one block's run of keys, of values; 0 when
                        * longer than GPT2K_KV_PREFETCH_MAX_RUN (not prefetched) */
    int bs;
    int kahead, vahead; /* GPT2K_KV_AHEAD_KEYS, _VALUES in blocks */
} gpt2k_kv_head;

static inline gpt2k_kv_head gpt2k_kv_head_of(const gpt2k_kv_view *kv, int col, int f16)
{
    const size_t eb = f16 ? 2 : 4, h = (size_t)(col / kv->head_dim),
                 c = (size_t)(col % kv->head_dim);
    gpt2k_kv_head w = {kv->blocks,
                       kv->block_stride,
                       h * kv->head_stride + c * (size_t)kv->bs,
                       h * kv->head_stride + c,
                       (size_t)kv->bs * (size_t)kv->head_dim * eb,
                       (size_t)kv->bs * (size_t)kv->ld * eb,
                       kv->bs,
                       (GPT2K_KV_AHEAD_KEYS + kv->bs - 1) / kv->bs,
                       (GPT2K_KV_AHEAD_VALUES + kv->bs - 1) / kv->bs};
    if (w.krun > GPT2K_KV_PREFETCH_MAX_RUN)
        w.krun = 0;
    if (w.vrun > GPT2K_KV_PREFETCH_MAX_RUN)
        w.vrun = 0;
    return w;
}

static inline size_t gpt2k_kv_head_koff(const gpt2k_kv_head *w, int j)
{
    return (size_t)w->blocks[j] * w->block_stride + w->kchan;
}

static inline size_t gpt2k_kv_head_voff(const gpt2k_kv_head *w, int j)
{
    return (size_t)w->blocks[j] * w->block_stride + w->vchan;
}

/* A lone row at block b of nblk: the run of keys (keys != 0) GPT2K_KV_AHEAD_KEYS
 * positions on, or of values GPT2K_KV_AHEAD_VALUES on, when there is one. */
static inline void gpt2k_kv_head_prefetch(const gpt2k_kv_view *kv, const gpt2k_kv_head *w,
                                          int b, int nblk, const int keys, int f16)
{
    const int a = b + (keys ? w->kahead : w->vahead);
    const size_t run = keys ? w->krun : w->vrun;
    if (!run || a >= nblk)
        return;
    const size_t off = keys ? gpt2k_kv_head_koff(w, a) : gpt2k_kv_head_voff(w, a);
    gpt2k_kv_prefetch_run((const char *)(keys ? kv->k : kv->v) + off * (f16 ? 2 : 4), run);
}

/* The AVX2 + F16C fp16 conversion (ops_avx2.c), shared with the AVX-512 table. */
void gpt2k_to_f16_avx2(uint16_t *dst, const float *x, int n);
/* The AVX2 softmax of the attention kernels (sc := exp(sc - max), returns 1 /
 * the sum), shared with the AVX-512 keys_t kernel so that both give the same
 * bits. */
float gpt2k_softmax_avx2(float *sc, int n);

/* One lone query over a keys_t view of fp16 elements with the AVX2 kernel
 * (ops_avx2.c), which the AVX-512 table uses for it (attention_avx512.c). */
void gpt2k_attention_lone_t_f16_avx2(float *out, const float *q, const gpt2k_kv_view *kv,
                                     int col, int n_kv, int HD, float scale, float *scratch);

/* The AVX-512 attention_rows for keys_t views (attention_avx512.c): the AVX2
 * one's bits with 16 lanes per vector. */
void gpt2k_attention_rows_t_avx512(float *out, int ldo, const float *q, int ldq,
                                   const gpt2k_kv_view *kv, int col, int n0, int rows, int HD,
                                   float scale, float *scratch);

#endif
