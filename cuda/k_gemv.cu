/* GEMV-style matmul for few rows (decode): one warp per output column reads
 * that column's weights once, 128-bit loads, for up to 8 activation rows at a
 * time; the warp's partial sums meet by shuffles; the epilogue is fused. */
#include "common.cuh"

#define GEMV_ROWS 8  /* rows sharing one read of the weights */
#define GEMV_WARPS 8 /* warps (columns) per block */

/* 16 bytes of T as floats */
__device__ __forceinline__ void unpack16(const uint4 &v, float *f, const float *)
{
    f[0] = __uint_as_float(v.x), f[1] = __uint_as_float(v.y);
    f[2] = __uint_as_float(v.z), f[3] = __uint_as_float(v.w);
}
__device__ __forceinline__ void unpack16(const uint4 &v, float *f, const __half *)
{
    const __half2 *h = (const __half2 *)&v;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 t = __half22float2(h[i]);
        f[2 * i] = t.x, f[2 * i + 1] = t.y;
    }
}
__device__ __forceinline__ void unpack16(const uint4 &v, float *f, const __nv_bfloat16 *)
{
    const __nv_bfloat162 *h = (const __nv_bfloat162 *)&v;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 t = __bfloat1622float2(h[i]);
        f[2 * i] = t.x, f[2 * i + 1] = t.y;
    }
}

/* M <= GEMV_ROWS. VECTOR: K, ldx multiples of 16 / sizeof(T), x and w 16-byte aligned. */
template <typename T, bool VECTOR>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
    gemv_kernel(void *out, int ldo, g2c_epi epi, const T *__restrict__ x, int ldx,
                const T *__restrict__ w, const float *__restrict__ bias, int M, int K, int N)
{
    const int n = blockIdx.x * GEMV_WARPS + threadIdx.x / 32;
    const int lane = threadIdx.x & 31;
    if (n >= N)
        return;
    const T *wr = w + (size_t)n * K;
    float acc[GEMV_ROWS];
#pragma unroll
    for (int m = 0; m < GEMV_ROWS; m++)
        acc[m] = 0.0f;
    if (VECTOR) {
        constexpr int VEC = 16 / sizeof(T);
#pragma unroll 2
        for (int k = lane * VEC; k < K; k += 32 * VEC) {
            float wf[VEC], xf[VEC];
            uint4 wv = __ldg((const uint4 *)(wr + k));
            unpack16(wv, wf, (const T *)0);
#pragma unroll
            for (int m = 0; m < GEMV_ROWS; m++) {
                if (m < M) {
                    uint4 xv = __ldg((const uint4 *)(x + (size_t)m * ldx + k));
                    unpack16(xv, xf, (const T *)0);
#pragma unroll
                    for (int i = 0; i < VEC; i++)
                        acc[m] = fmaf(wf[i], xf[i], acc[m]);
                }
            }
        }
    } else {
        for (int k = lane; k < K; k += 32) {
            float wk = to_f(wr[k]);
#pragma unroll
            for (int m = 0; m < GEMV_ROWS; m++)
                if (m < M)
                    acc[m] = fmaf(wk, to_f(x[(size_t)m * ldx + k]), acc[m]);
        }
    }
#pragma unroll
    for (int m = 0; m < GEMV_ROWS; m++) {
        if (m < M) {
            float s = warp_sum(acc[m]);
            if (lane == 0)
                epilogue_store<T>(out, ldo, epi, bias, m, n, s);
        }
    }
}

template <typename T>
static int gemv_launch(cudaStream_t st, void *out, int ldo, g2c_epi epi, const T *x, int ldx,
                       const T *w, const float *bias, int M, int K, int N)
{
    const int vec = 16 / (int)sizeof(T);
    const bool vector = K % vec == 0 && ldx % vec == 0 && ((uintptr_t)x & 15) == 0 &&
                        ((uintptr_t)w & 15) == 0;
    const size_t out_elem = epi == G2C_EPI_GELU ? sizeof(T) : sizeof(float);
    dim3 grid((N + GEMV_WARPS - 1) / GEMV_WARPS), block(GEMV_WARPS * 32);
    for (int m0 = 0; m0 < M; m0 += GEMV_ROWS) {
        int mr = M - m0 < GEMV_ROWS ? M - m0 : GEMV_ROWS;
        void *o = (char *)out + (size_t)m0 * ldo * out_elem;
        const T *xm = x + (size_t)m0 * ldx;
        if (vector)
            gemv_kernel<T, true><<<grid, block, 0, st>>>(o, ldo, epi, xm, ldx, w, bias, mr, K, N);
        else
            gemv_kernel<T, false><<<grid, block, 0, st>>>(o, ldo, epi, xm, ldx, w, bias, mr, K, N);
        int rc = g2c_launch_rc();
        if (rc)
            return rc;
    }
    return 0;
}

extern "C" int g2c_gemv(cudaStream_t st, void *out, int ldo, g2c_epi epi, g2c_dtype t,
                        const void *x, int ldx, const void *w, const float *bias, int M, int K,
                        int N)
{
    if (M <= 0 || N <= 0)
        return 0;
    switch (t) {
    case G2C_F32:
        return gemv_launch(st, out, ldo, epi, (const float *)x, ldx, (const float *)w, bias, M, K, N);
    case G2C_F16:
        return gemv_launch(st, out, ldo, epi, (const __half *)x, ldx, (const __half *)w, bias, M, K, N);
    case G2C_BF16:
        return gemv_launch(st, out, ldo, epi, (const __nv_bfloat16 *)x, ldx,
                           (const __nv_bfloat16 *)w, bias, M, K, N);
    default: return (int)cudaErrorInvalidValue;
    }
}
