/* Q8_0 matmul: activations quantized per row to Q8_0 (the reference encoding:
 * d = max|x| / 127 stored as fp16, q = round(x / d)), then per 32-block integer
 * dot products by dp4a (4 int8 products per instruction), scaled by both
 * blocks' scales and summed in fp32. One warp per output column, lanes over
 * blocks, weights read once per 8 rows with 128-bit loads. */
#include "common.cuh"

#define Q8_ROWS 8
#define Q8_WARPS 8

/* one warp per 32-value block */
template <typename XT>
__global__ void quantize_rows_kernel(int8_t *q, float *d, const XT *x, int ldx, int M, int K)
{
    const int nb = K / 32;
    const long blk = (long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x & 31;
    if (blk >= (long)M * nb)
        return;
    const int m = (int)(blk / nb), b = (int)(blk % nb);
    float v = to_f(x[(size_t)m * ldx + b * 32 + lane]);
    float amax = warp_max(fabsf(v));
    float dd = amax / 127.0f;
    float id = dd != 0.0f ? 1.0f / dd : 0.0f;
    float s = v * id;
    q[(size_t)m * K + b * 32 + lane] = isfinite(s) ? (int8_t)roundf(s) : 0; /* as the reference */
    if (lane == 0)
        d[(size_t)m * nb + b] = __half2float(__float2half_rn(dd));
}

__device__ __forceinline__ int dot32(const uint4 &a0, const uint4 &a1, const uint4 &b0,
                                     const uint4 &b1)
{
    int s = 0;
    s = __dp4a((int)a0.x, (int)b0.x, s), s = __dp4a((int)a0.y, (int)b0.y, s);
    s = __dp4a((int)a0.z, (int)b0.z, s), s = __dp4a((int)a0.w, (int)b0.w, s);
    s = __dp4a((int)a1.x, (int)b1.x, s), s = __dp4a((int)a1.y, (int)b1.y, s);
    s = __dp4a((int)a1.z, (int)b1.z, s), s = __dp4a((int)a1.w, (int)b1.w, s);
    return s;
}

template <typename OT>
__global__ void __launch_bounds__(Q8_WARPS * 32)
    gemv_q8_kernel(void *out, int ldo, g2c_epi epi, const int8_t *__restrict__ xq,
                   const float *__restrict__ xd, const int8_t *__restrict__ wq,
                   const float *__restrict__ wd, const float *__restrict__ bias, int M, int K,
                   int N)
{
    const int n = blockIdx.x * Q8_WARPS + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (n >= N)
        return;
    const int nb = K / 32;
    float acc[Q8_ROWS];
#pragma unroll
    for (int m = 0; m < Q8_ROWS; m++)
        acc[m] = 0.0f;
    for (int b = lane; b < nb; b += 32) {
        const uint4 *wp = (const uint4 *)(wq + (size_t)n * K + b * 32);
        uint4 w0 = __ldg(wp), w1 = __ldg(wp + 1);
        float ws = __ldg(wd + (size_t)n * nb + b);
#pragma unroll
        for (int m = 0; m < Q8_ROWS; m++) {
            if (m < M) {
                const uint4 *xp = (const uint4 *)(xq + (size_t)m * K + b * 32);
                int s = dot32(w0, w1, __ldg(xp), __ldg(xp + 1));
                acc[m] += (float)s * (ws * xd[(size_t)m * nb + b]);
            }
        }
    }
#pragma unroll
    for (int m = 0; m < Q8_ROWS; m++) {
        if (m < M) {
            float s = warp_sum(acc[m]);
            if (lane == 0)
                epilogue_store<OT>(out, ldo, epi, bias, m, n, s);
        }
    }
}

extern "C" int g2c_gemv_q8(cudaStream_t st, void *out, int ldo, g2c_epi epi, g2c_dtype xt,
                           const void *x, int ldx, const void *wq, const float *bias, int M, int K,
                           int N, void *xq)
{
    if (M <= 0 || N <= 0)
        return 0;
    if (K % 32 != 0 || ((uintptr_t)wq & 15) != 0 || ((uintptr_t)xq & 15) != 0 ||
        (xt != G2C_F16 && xt != G2C_F32))
        return (int)cudaErrorInvalidValue;
    int8_t *q = (int8_t *)xq;
    float *d = (float *)(q + (size_t)M * K);
    long blocks = (long)M * (K / 32);
    dim3 qgrid((unsigned)((blocks + 7) / 8)), qblock(256);
    if (xt == G2C_F16)
        quantize_rows_kernel<<<qgrid, qblock, 0, st>>>(q, d, (const __half *)x, ldx, M, K);
    else
        quantize_rows_kernel<<<qgrid, qblock, 0, st>>>(q, d, (const float *)x, ldx, M, K);
    int rc = g2c_launch_rc();
    if (rc)
        return rc;
    const int8_t *w = (const int8_t *)wq;
    const float *wd = (const float *)(w + (size_t)N * K);
    const size_t out_elem = epi == G2C_EPI_GELU ? g2c_dtype_size(xt) : sizeof(float);
    dim3 grid((N + Q8_WARPS - 1) / Q8_WARPS), block(Q8_WARPS * 32);
    for (int m0 = 0; m0 < M; m0 += Q8_ROWS) {
        int mr = M - m0 < Q8_ROWS ? M - m0 : Q8_ROWS;
        void *o = (char *)out + (size_t)m0 * ldo * out_elem;
        const int8_t *qm = q + (size_t)m0 * K;
        const float *dm = d + (size_t)m0 * (K / 32);
        if (xt == G2C_F16)
            gemv_q8_kernel<__half><<<grid, block, 0, st>>>(o, ldo, epi, qm, dm, w, wd, bias, mr, K, N);
        else
            gemv_q8_kernel<float><<<grid, block, 0, st>>>(o, ldo, epi, qm, dm, w, wd, bias, mr, K, N);
        if ((rc = g2c_launch_rc()))
            return rc;
    }
    return 0;
}
