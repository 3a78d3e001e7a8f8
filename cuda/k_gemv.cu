/* GEMV-style matmul for few rows (decode): 1-8 warps per output column read
 * that column's weights once, 128-bit loads, for up to 8 activation rows at a
 * time; partial sums meet by shuffles (and shared memory between the warps
 * of a column); the epilogue is fused. */
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

/* M <= GEMV_ROWS. VECTOR: K, ldx multiples of 16 / sizeof(T), x and w 16-byte
 * aligned. KS warps share a column, warp j of them reading its warp-wide
 * stretches (32 lanes x 16 bytes) j, j + KS, j + 2 KS, ...: at GPT-2's sizes one warp
 * per column leaves most of the GPU idle (N = 768 is 768 warps, each with 3
 * loads of 16 bytes per lane: too few bytes in flight to reach the memory's
 * bandwidth). The KS partial sums meet in shared memory, added in warp order,
 * so the result depends only on the shape (KS is chosen from N and K). */
template <typename T, bool VECTOR, int KS>
__global__ void __launch_bounds__(256)
    gemv_kernel(void *out, int ldo, g2c_epi epi, const T *__restrict__ x, int ldx,
                const T *__restrict__ w, const float *__restrict__ bias, int M, int K, int N)
{
    constexpr int COLS = KS >= GEMV_WARPS ? 1 : GEMV_WARPS / KS; /* columns per block */
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    const int n = blockIdx.x * COLS + warp / KS, slice = warp % KS;
    const bool live = n < N; /* no early return: the block meets at a barrier below */
    float acc[GEMV_ROWS];
#pragma unroll
    for (int m = 0; m < GEMV_ROWS; m++)
        acc[m] = 0.0f;
    if (live) {
        const T *wr = w + (size_t)n * K;
        if (VECTOR) {
            constexpr int VEC = 16 / sizeof(T);
#pragma unroll 2
            for (int k = (slice * 32 + lane) * VEC; k < K; k += 32 * VEC * KS) {
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
            for (int k = slice * 32 + lane; k < K; k += 32 * KS) {
                float wk = to_f(wr[k]);
#pragma unroll
                for (int m = 0; m < GEMV_ROWS; m++)
                    if (m < M)
                        acc[m] = fmaf(wk, to_f(x[(size_t)m * ldx + k]), acc[m]);
            }
        }
    }
    if (KS == 1) {
#pragma unroll
        for (int m = 0; m < GEMV_ROWS; m++) {
            if (m < M) {
                float s = warp_sum(acc[m]);
                if (lane == 0 && live)
                    epilogue_store<T>(out, ldo, epi, bias, m, n, s);
            }
        }
    } else {
        __shared__ float part[COLS * KS][GEMV_ROWS];
#pragma unroll
        for (int m = 0; m < GEMV_ROWS; m++) {
            if (m < M) {
                float s = warp_sum(acc[m]);
                if (lane == 0)
                    part[warp][m] = s;
            }
        }
        __syncthreads();
        /* the column's first warp: lane m finishes row m */
        if (slice == 0 && live && lane < M) {
            float v = part[warp][lane];
#pragma unroll
            for (int j = 1; j < KS; j++)
                v += part[warp + j][lane];
            epilogue_store<T>(out, ldo, epi, bias, lane, n, v);
        }
    }
}

/* Warps per column: enough warps in all (about 4096, half an H100's resident
 * warps) without giving a warp less than one 16-byte load per lane; one of
 * the instantiated counts. Depends only on N, K and the element size. */
extern "C" int g2c_gemv_ks(int N, int K, int elem_bytes)
{
    if (N <= 0)
        return 1;
    const int vec = 16 / elem_bytes;
    long want = (4096L + N - 1) / N;
    const long by_k = K / (32L * vec);
    if (want > by_k)
        want = by_k;
    static const int counts[] = {8, 6, 4, 3, 2};
    for (int i = 0; i < 5; i++)
        if (want >= counts[i])
            return counts[i];
    return 1;
}

template <typename T, bool VECTOR, int KS>
static void gemv_launch_ks(cudaStream_t st, void *out, int ldo, g2c_epi epi, const T *x, int ldx,
                           const T *w, const float *bias, int M, int K, int N)
{
    constexpr int COLS = KS >= GEMV_WARPS ? 1 : GEMV_WARPS / KS;
    dim3 grid((N + COLS - 1) / COLS), block(COLS * KS * 32);
    gemv_kernel<T, VECTOR, KS><<<grid, block, 0, st>>>(out, ldo, epi, x, ldx, w, bias, M, K, N);
}

template <typename T, bool VECTOR>
static void gemv_launch_v(cudaStream_t st, int ks, void *out, int ldo, g2c_epi epi, const T *x,
                          int ldx, const T *w, const float *bias, int M, int K, int N)
{
    switch (ks) {
    case 8: gemv_launch_ks<T, VECTOR, 8>(st, out, ldo, epi, x, ldx, w, bias, M, K, N); break;
    case 6: gemv_launch_ks<T, VECTOR, 6>(st, out, ldo, epi, x, ldx, w, bias, M, K, N); break;
    case 4: gemv_launch_ks<T, VECTOR, 4>(st, out, ldo, epi, x, ldx, w, bias, M, K, N); break;
    case 3: gemv_launch_ks<T, VECTOR, 3>(st, out, ldo, epi, x, ldx, w, bias, M, K, N); break;
    case 2: gemv_launch_ks<T, VECTOR, 2>(st, out, ldo, epi, x, ldx, w, bias, M, K, N); break;
    default: gemv_launch_ks<T, VECTOR, 1>(st, out, ldo, epi, x, ldx, w, bias, M, K, N); break;
    }
}

template <typename T>
static int gemv_launch(cudaStream_t st, void *out, int ldo, g2c_epi epi, const T *x, int ldx,
                       const T *w, const float *bias, int M, int K, int N)
{
    const int vec = 16 / (int)sizeof(T);
    const bool vector = K % vec == 0 && ldx % vec == 0 && ((uintptr_t)x & 15) == 0 &&
                        ((uintptr_t)w & 15) == 0;
    const int ks = g2c_gemv_ks(N, K, (int)sizeof(T));
    const size_t out_elem = epi == G2C_EPI_GELU ? sizeof(T) : sizeof(float);
    for (int m0 = 0; m0 < M; m0 += GEMV_ROWS) {
        int mr = M - m0 < GEMV_ROWS ? M - m0 : GEMV_ROWS;
        void *o = (char *)out + (size_t)m0 * ldo * out_elem;
        const T *xm = x + (size_t)m0 * ldx;
        if (vector)
            gemv_launch_v<T, true>(st, ks, o, ldo, epi, xm, ldx, w, bias, mr, K, N);
        else
            gemv_launch_v<T, false>(st, ks, o, ldo, epi, xm, ldx, w, bias, mr, K, N);
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
