/* cuBLAS baseline matmul. Row-major out[M][N] = x[M][K] W[N][K]^T is, read
 * column-major, out^T (N x M) = W^T (as op(A), A = W: K x N) * x^T (K x M):
 * one cublasGemmEx with transa = T, transb = N. */
#include "gemm_cublas.h"

static cudaDataType dtype_of(g2c_dtype t)
{
    return t == G2C_F16 ? CUDA_R_16F : t == G2C_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

int g2c_cublas_matmul(cublasHandle_t h, cudaStream_t st, void *out, int ldo, g2c_epi epi,
                      g2c_dtype t, const void *x, int ldx, const void *w, const float *bias, int M,
                      int K, int N, float *scratch)
{
    if (M <= 0 || N <= 0)
        return 0;
    if (t == G2C_Q8_0)
        return -(int)cudaErrorInvalidValue;
    const float one = 1.0f, zero = 0.0f;
    float *c = epi == G2C_EPI_GELU ? scratch : (float *)out;
    int ldc = epi == G2C_EPI_GELU ? N : ldo;
    const float *beta = epi == G2C_EPI_ACCUM ? &one : &zero;
    cublasStatus_t s = cublasSetStream(h, st);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, w, dtype_of(t), K, x,
                         dtype_of(t), ldx, beta, c, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS)
        return (int)s;
    int rc = g2c_epilogue(st, out, ldo, epi, t, c, ldc, bias, M, N);
    return rc ? -rc : 0;
}

const char *g2c_cublas_error(int rc)
{
    if (rc < 0)
        return cudaGetErrorString((cudaError_t)-rc);
    return cublasGetStatusString((cublasStatus_t)rc);
}
