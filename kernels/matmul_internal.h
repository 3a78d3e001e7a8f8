/* fp32 / fp16-weight matmul slice kernels shared between kernel files. Not part
 * of the public kernel API: the engine goes through gpt2k_ops (kernels.h). */
#ifndef GPT2C_MATMUL_INTERNAL_H
#define GPT2C_MATMUL_INTERNAL_H

#include "kernels.h"

/* Same contracts as gpt2k_ops.matmul_f32 / matmul_f16 (matmul_avx2.c). */
void gpt2k_matmul_f32_avx2(float *out, int ldo, const float *in, int ldi, const float *w,
                           const float *bias, int M, int K, int n0, int n1, int accumulate);
void gpt2k_matmul_f16_avx2(float *out, int ldo, const float *in, int ldi, const uint16_t *w,
                           const float *bias, int M, int K, int n0, int n1, int accumulate);

/* gpt2k_ops.matmul_packed: the same sums on weights from gpt2k_pack_weights. */
void gpt2k_matmul_packed_avx2(float *out, int ldo, const float *in, int ldi, const void *wp,
                              gpt2k_wtype wt, const float *bias, int M, int K, int n0, int n1,
                              int accumulate);

/* The AVX-512 table's (matmul_avx512.c): the same contracts, and bit for bit
 * the AVX2 kernels' results. */
void gpt2k_matmul_f32_avx512(float *out, int ldo, const float *in, int ldi, const float *w,
                             const float *bias, int M, int K, int n0, int n1, int accumulate);
void gpt2k_matmul_f16_avx512(float *out, int ldo, const float *in, int ldi, const uint16_t *w,
                             const float *bias, int M, int K, int n0, int n1, int accumulate);
void gpt2k_matmul_packed_avx512(float *out, int ldo, const float *in, int ldi, const void *wp,
                                gpt2k_wtype wt, const float *bias, int M, int K, int n0, int n1,
                                int accumulate);

/* Panel pn's (absolute) block from k0 in a packed matrix (kernels.h): row
 * stride GPT2K_PANEL elements in fp32, GPT2K_PACK_COLS_F16 in fp16 (two
 * panels per group, side by side). */
static inline __attribute__((always_inline)) const void *
gpt2k_packed_block(const int f16, const void *wp, int K, int pn, int k0)
{
    if (f16)
        return (const uint16_t *)wp +
               ((size_t)(pn / 2) * K + (size_t)k0) * GPT2K_PACK_COLS_F16 +
               (size_t)(pn % 2) * GPT2K_PANEL;
    return (const float *)wp + ((size_t)pn * K + (size_t)k0) * GPT2K_PANEL;
}

/* Decode tiles stream their packed panels from memory, one line per k from
 * each fp32 panel or fp16 group of two panels: at step k each asks for its
 * line dist bytes ahead (fp16: at even k, the lines of k and k + 1), decode
 * GPT2K_DECODE_PREFETCH. bq: the tile's np panel blocks (fp16: a group's
 * first panel every unit panels).
 * Zen 4, 2 threads, alternating rounds: F16 decode with 0 / 512 / 1024 /
 * 1536 / 2048 bytes 152-166 / 164-169 / 173-187 / 173-199 / 160-193
 * tokens/s; f32 with 0 / 1024 117-126 / 120-132; --isa avx2 f32 111-117 /
 * 123-131, F16 167-193 / 193-202 (kernels/README.md, "Decode prefetch"). */
#define GPT2K_DECODE_PREFETCH 1024

static inline __attribute__((always_inline)) void
gpt2k_prefetch_decode(const int f16, const int unit, const int np, const void *const *bq, int k,
                      const int dist)
{
    if (!f16) {
        for (int p = 0; p < np; p++)
            __builtin_prefetch((const char *)((const float *)bq[p] + (size_t)k * GPT2K_PANEL) +
                                   dist,
                               0, 3);
        return;
    }
    if (k & 1)
        return;
    for (int p = 0; p < np; p += unit) {
        const char *g =
            (const char *)((const uint16_t *)bq[p] + (size_t)k * GPT2K_PACK_COLS_F16);
        __builtin_prefetch(g + dist, 0, 3);
        __builtin_prefetch(g + dist + 64, 0, 3);
    }
}

#endif
