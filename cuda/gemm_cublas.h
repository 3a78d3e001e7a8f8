/* The cuBLAS baseline for every matmul (--gemm cublas): same contract as
 * g2c_matmul in cuda_kernels.h, computed by cublasGemmEx (fp32 accumulate)
 * plus the stand-alone epilogue kernel for bias / residual / GELU.
 *
 * cuBLAS is loaded (dlopen) the first time a handle is opened, not linked:
 * merely mapping libcublasLt costs every process ~210 MB of resident memory,
 * which would show in every CPU run's memory figures. */
#ifndef GPT2C_GEMM_CUBLAS_H
#define GPT2C_GEMM_CUBLAS_H

#include <stddef.h>

#include "cuda_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct g2c_cublas g2c_cublas;

/* Loads cuBLAS if needed and creates a handle bound to stream st, with ws
 * (ws_bytes of device memory, may be NULL) as its workspace so nothing is
 * allocated while a graph is captured. NULL with why[cap] filled on failure. */
g2c_cublas *g2c_cublas_open(cudaStream_t st, void *ws, size_t ws_bytes, char *why, size_t cap);
void g2c_cublas_close(g2c_cublas *h);

/* scratch: fp32 [M][N] for the GELU epilogue (unused otherwise). Returns 0, or
 * a cublasStatus_t (> 0) or cudaError_t as -(code) on failure. t: F32, F16, BF16. */
int g2c_cublas_matmul(g2c_cublas *h, cudaStream_t st, void *out, int ldo, g2c_epi epi,
                      g2c_dtype t, const void *x, int ldx, const void *w, const float *bias, int M,
                      int K, int N, float *scratch);

/* a message for a g2c_cublas_matmul return value */
const char *g2c_cublas_error(int rc);

#ifdef __cplusplus
}
#endif

#endif
