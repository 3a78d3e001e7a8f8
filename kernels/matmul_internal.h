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

#endif
