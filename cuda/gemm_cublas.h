/* The cuBLAS baseline for every matmul (--gemm cublas): same contract as
 * g2c_matmul in cuda_kernels.h, computed by cublasGemmEx (fp32 accumulate)
 * plus the stand-alone epilogue kernel for bias / residual / GELU. */
#ifndef GPT2C_GEMM_CUBLAS_H
#define GPT2C_GEMM_CUBLAS_H

#include <cublas_v2.h>

#include "cuda_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* scratch: fp32 [M][N] for the GELU epilogue (unused otherwise). Returns 0, or
 * a cublasStatus_t (> 0) or cudaError_t as -(code) on failure. t: F32, F16, BF16. */
int g2c_cublas_matmul(cublasHandle_t h, cudaStream_t st, void *out, int ldo, g2c_epi epi,
                      g2c_dtype t, const void *x, int ldx, const void *w, const float *bias, int M,
                      int K, int N, float *scratch);

/* a message for a g2c_cublas_matmul return value */
const char *g2c_cublas_error(int rc);

#ifdef __cplusplus
}
#endif

#endif
