/* Which matmul kernel runs: GEMV for few rows (memory-bound: every weight read
 * once), the tensor-core GEMM for many (compute-bound), Q8_0 GEMV for Q8_0
 * weights. fp32 reference runs use the GEMV kernel throughout. */
#include "common.cuh"

#define GEMV_MAX_ROWS 8

extern "C" int g2c_matmul(cudaStream_t st, void *out, int ldo, g2c_epi epi, g2c_dtype xt,
                          const void *x, int ldx, const void *w, g2c_dtype wt, const float *bias,
                          int M, int K, int N, void *xq, int n_sm, float *ws,
                          size_t ws_bytes)
{
    if (wt == G2C_Q8_0)
        return g2c_gemv_q8(st, out, ldo, epi, xt, x, ldx, w, bias, M, K, N, xq);
    if (wt != xt)
        return (int)cudaErrorInvalidValue;
    if (M > GEMV_MAX_ROWS && g2c_gemm_ok(wt, x, ldx, w, K))
        return g2c_gemm(st, out, ldo, epi, wt, x, ldx, w, bias, M, K, N, n_sm, ws, ws_bytes);
    return g2c_gemv(st, out, ldo, epi, wt, x, ldx, w, bias, M, K, N);
}
