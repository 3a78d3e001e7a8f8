/* The baseline GEMM: OpenBLAS cblas_sgemm behind the same contract as
 * gpt2k_matmul (F32 weights only), so `--gemm openblas` swaps one for the
 * other and the bench compares them on identical work. */
#include <cblas.h>

#include "kernels.h"

/* provided by OpenBLAS (declared in its cblas.h on most builds; repeated here
 * for those whose header lacks them) */
void openblas_set_num_threads(int num_threads);
char *openblas_get_config(void);

void gpt2k_openblas_set_threads(int n) { openblas_set_num_threads(n); }

const char *gpt2k_openblas_config(void) { return openblas_get_config(); }

void gpt2k_matmul_openblas(float *out, int ldo, const float *in, int ldi, const float *w,
                           const float *bias, int M, int K, int N, int accumulate)
{
    /* out = bias (or out += bias), then out += in * W^T in one sgemm */
    if (bias) {
        for (int m = 0; m < M; m++) {
            float *o = out + (size_t)m * ldo;
            if (accumulate)
                for (int n = 0; n < N; n++)
                    o[n] += bias[n];
            else
                for (int n = 0; n < N; n++)
                    o[n] = bias[n];
        }
    }
    float beta = (bias || accumulate) ? 1.0f : 0.0f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, in, ldi, w, K, beta, out,
                ldo);
}
