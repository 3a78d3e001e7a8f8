/* Q8_0 slice kernels and table plumbing shared by the kernel files (and by
 * tests that must reach a specific variant). Not part of the public kernel
 * API: the engine goes through gpt2k_ops (kernels.h).
 *
 * Integer range: our quantizer only produces q in [-127, 127] (see
 * q8_0_ref.c). The SIMD dot products take |w| of the weights as the unsigned
 * operand and move w's sign onto the activation, so a -128 in a weight file
 * still multiplies exactly (|-128| = 128 as u8, 2 * 128 * 127 < 32767 keeps
 * _mm*_maddubs_epi16 from saturating); a -128 activation would not, which is
 * why activations must come from gpt2k_ops.quantize_q8_0. */
#ifndef GPT2C_Q8_0_INTERNAL_H
#define GPT2C_Q8_0_INTERNAL_H

#include "kernels.h"

/* Same contracts as gpt2k_ops.quantize_q8_0 / matmul_q8_0. */
void gpt2k_matmul_q8_0_ref(float *out, int ldo, const void *inq, const void *w, const float *bias,
                           int M, int K, int n0, int n1, int accumulate);
void gpt2k_quantize_q8_0_avx2(void *dst, const float *x, int n);
void gpt2k_matmul_q8_0_avx2(float *out, int ldo, const void *inq, const void *w,
                            const float *bias, int M, int K, int n0, int n1, int accumulate);
/* the same on packed weights (kernels.h: GPT2K_Q8_PANEL) */
void gpt2k_matmul_q8_0_packed_avx2(float *out, int ldo, const void *inq, const void *wp,
                                   const float *bias, int M, int K, int n0, int n1,
                                   int accumulate);
void gpt2k_quantize_q8_0_avx512(void *dst, const float *x, int n);
/* AVX-512BW: maddubs + madd */
void gpt2k_matmul_q8_0_avx512bw(float *out, int ldo, const void *inq, const void *w,
                                const float *bias, int M, int K, int n0, int n1, int accumulate);
/* on packed weights (GPT2K_Q8_ROWS4): the bits of the plain-layout version */
void gpt2k_matmul_q8_0_packed_avx512bw(float *out, int ldo, const void *inq, const void *wp,
                                       const float *bias, int M, int K, int n0, int n1,
                                       int accumulate);
/* AVX512_VNNI (q8_0_cols_avx512.c): vpdpbusd on column panels
 * (GPT2K_Q8_COLS16), the scalar reference's bits; plain rows are packed on
 * the fly */
void gpt2k_matmul_q8_0_avx512vnni(float *out, int ldo, const void *inq, const void *w,
                                  const float *bias, int M, int K, int n0, int n1,
                                  int accumulate);
void gpt2k_matmul_q8_0_packed_avx512vnni(float *out, int ldo, const void *inq, const void *wp,
                                         const float *bias, int M, int K, int n0, int n1,
                                         int accumulate);

/* 1 if the CPU has AVX512_VNNI (and the AVX-512 path is usable at all). */
int gpt2k_cpu_has_vnni(void);
/* The AVX-512 table with (vnni != 0) or without VNNI in matmul_q8_0; NULL if
 * not compiled in. gpt2k_ops_avx512() returns the one this CPU runs best;
 * tests use this to cover both on a VNNI machine. */
const gpt2k_ops *gpt2k_ops_avx512_variant(int vnni);

#endif
