/* Tensor-core GEMM for prefill and large batches: out = x[M][K] * W[N][K]^T
 * with the epilogue fused. Block tiles BM x BN over K in steps of 32; each
 * step's x and W tiles are copied global -> shared by cp.async (16 bytes,
 * zero-filled past the edges) into a ring of STAGES buffers, STAGES - 1 steps
 * ahead of the warps running WMMA 16x16x16 (fp16/bf16 in, fp32 accumulate).
 * At GPT-2's sizes most grids have about one block per SM, so each block's
 * K loop is latency-bound: the deeper ring keeps more loads in flight (the
 * first H100 run: 0.30x cuBLAS at K = 3072, N = 768 with two buffers).
 *
 * Split K: where even the 64x64 tiles are fewer than the SMs (N = 768 at
 * M = 512 is 96 tiles on 132 SMs; at M = 64, a 64-sequence decode step, it
 * is 12), gridDim.z blocks share each tile, each over its own contiguous
 * range of K steps, writing fp32 partial sums to a workspace; a second
 * kernel adds the partials in split order and runs the epilogue. The split
 * count depends only on the shape, the device and the workspace's size
 * (fixed per backend context), so a shape always gives the same bits. */
#include <mma.h>

#include "common.cuh"

using namespace nvcuda;

#define GEMM_BK 32
#define GEMM_LDS (GEMM_BK + 8) /* shared row stride (elements): padding against bank conflicts */

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, bool valid)
{
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    int n = valid ? 16 : 0; /* 0: nothing read, 16 zero bytes written */
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(n));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/* WM x WN warps; each warp owns a (BM/WM) x (BN/WN) tile of the output. */
template <typename T, int BM, int BN, int WM, int WN, int STAGES>
__global__ void __launch_bounds__(WM *WN * 32)
    gemm_kernel(void *out, int ldo, g2c_epi epi, const T *__restrict__ x, int ldx,
                const T *__restrict__ w, const float *__restrict__ bias, int M, int K, int N,
                float *__restrict__ part)
{
    constexpr int THREADS = WM * WN * 32;
    constexpr int WTM = BM / WM, WTN = BN / WN; /* warp tile */
    constexpr int FM = WTM / 16, FN = WTN / 16; /* fragments per warp */
    constexpr int CH = GEMM_BK / 8;             /* 16-byte chunks per tile row */
    constexpr int A_ELEMS = BM * GEMM_LDS, B_ELEMS = BN * GEMM_LDS;
    constexpr int TILE_BYTES = STAGES * (A_ELEMS + B_ELEMS) * (int)sizeof(T);
    static_assert(TILE_BYTES <= 48 * 1024, "static shared memory");
    constexpr int EPI_BYTES = WM * WN * 256 * (int)sizeof(float);
    __shared__ __align__(128) unsigned char smem[TILE_BYTES > EPI_BYTES ? TILE_BYTES : EPI_BYTES];
    T *As = (T *)smem;            /* [STAGES][BM][LDS] */
    T *Bs = As + STAGES * A_ELEMS; /* [STAGES][BN][LDS] */

    const int tid = threadIdx.x, warp = tid / 32, lane = tid & 31;
    const int wm = warp / WN, wn = warp % WN;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    /* this block's K steps: all of them, or split blockIdx.z of gridDim.z */
    const int nk_all = (K + GEMM_BK - 1) / GEMM_BK;
    const int kt0 = (int)((long)nk_all * blockIdx.z / gridDim.z);
    const int nk = (int)((long)nk_all * (blockIdx.z + 1) / gridDim.z) - kt0;

    auto load_tile = [&](int kt, int stage) {
        const int k0 = (kt0 + kt) * GEMM_BK;
        for (int c = tid; c < BM * CH; c += THREADS) {
            int r = c / CH, kc = (c % CH) * 8;
            int gm = m0 + r, gk = k0 + kc;
            bool ok = gm < M && gk < K; /* K % 8 == 0: a chunk is wholly in or out */
            const T *src = ok ? x + (size_t)gm * ldx + gk : x;
            cp_async16(As + stage * A_ELEMS + r * GEMM_LDS + kc, src, ok);
        }
        for (int c = tid; c < BN * CH; c += THREADS) {
            int r = c / CH, kc = (c % CH) * 8;
            int gn = n0 + r, gk = k0 + kc;
            bool ok = gn < N && gk < K;
            const T *src = ok ? w + (size_t)gn * K + gk : w;
            cp_async16(Bs + stage * B_ELEMS + r * GEMM_LDS + kc, src, ok);
        }
        cp_async_commit();
    };

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[FM][FN];
#pragma unroll
    for (int i = 0; i < FM; i++)
#pragma unroll
        for (int j = 0; j < FN; j++)
            wmma::fill_fragment(acc[i][j], 0.0f);

    /* one commit group per step, empty past the end, so that "all but the
     * newest STAGES - 2 groups are complete" always means step kt arrived */
#pragma unroll
    for (int st = 0; st < STAGES - 1; st++) {
        if (st < nk)
            load_tile(st, st);
        else
            cp_async_commit();
    }
    for (int kt = 0; kt < nk; kt++) {
        cp_async_wait<STAGES - 2>();
        __syncthreads(); /* step kt is visible; everyone is done with step kt - 1 */
        const int next = kt + STAGES - 1;
        if (next < nk)
            load_tile(next, next % STAGES); /* the buffer step kt - 1 used */
        else
            cp_async_commit();
        const int cur = kt % STAGES;
        const T *a = As + cur * A_ELEMS + (wm * WTM) * GEMM_LDS;
        const T *b = Bs + cur * B_ELEMS + (wn * WTN) * GEMM_LDS;
#pragma unroll
        for (int kk = 0; kk < GEMM_BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[FM];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> fb[FN];
#pragma unroll
            for (int i = 0; i < FM; i++)
                wmma::load_matrix_sync(fa[i], a + i * 16 * GEMM_LDS + kk, GEMM_LDS);
#pragma unroll
            for (int j = 0; j < FN; j++) /* W tile [n][k] is B (k x n) column-major */
                wmma::load_matrix_sync(fb[j], b + j * 16 * GEMM_LDS + kk, GEMM_LDS);
#pragma unroll
            for (int i = 0; i < FM; i++)
#pragma unroll
                for (int j = 0; j < FN; j++)
                    wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
        }
    }
    cp_async_wait<0>(); /* only empty groups are left, but the ring is reused below */
    __syncthreads();

    /* epilogue: each warp stages one 16x16 fragment at a time in shared memory
     * (the tile buffers are free now), then writes it with bias/GELU/residual,
     * or, split, as this split's partial sums */
    float *my_part = part ? part + (size_t)blockIdx.z * M * N : NULL;
    float *stage = (float *)smem + warp * 256;
#pragma unroll
    for (int i = 0; i < FM; i++) {
#pragma unroll
        for (int j = 0; j < FN; j++) {
            wmma::store_matrix_sync(stage, acc[i][j], 16, wmma::mem_row_major);
            __syncwarp();
            const int fm = m0 + wm * WTM + i * 16, fn = n0 + wn * WTN + j * 16;
#pragma unroll
            for (int e = lane; e < 256; e += 32) {
                int m = fm + e / 16, n = fn + e % 16;
                if (m < M && n < N) {
                    if (my_part)
                        my_part[(size_t)m * N + n] = stage[e];
                    else
                        epilogue_store<T>(out, ldo, epi, bias, m, n, stage[e]);
                }
            }
            __syncwarp();
        }
    }
}

extern "C" int g2c_gemm_ok(g2c_dtype t, const void *x, int ldx, const void *w, int K)
{
    return (t == G2C_F16 || t == G2C_BF16) && K % 8 == 0 && ldx % 8 == 0 &&
           ((uintptr_t)x & 15) == 0 && ((uintptr_t)w & 15) == 0;
}

/* The splits' partial sums of each (m, n), added in split order, then the
 * epilogue. */
template <typename T>
__global__ void splitk_reduce(void *out, int ldo, g2c_epi epi, const float *__restrict__ part,
                              int splits, const float *__restrict__ bias, int M, int N)
{
    const size_t MN = (size_t)M * N;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < MN;
         i += (size_t)gridDim.x * blockDim.x) {
        float v = part[i];
        for (int z = 1; z < splits; z++)
            v += part[(size_t)z * MN + i];
        epilogue_store<T>(out, ldo, epi, bias, (int)(i / N), (int)(i % N), v);
    }
}

template <typename T, int BM, int BN, int WM, int WN, int STAGES>
static int gemm_launch(cudaStream_t st, void *out, int ldo, g2c_epi epi, const void *x, int ldx,
                       const void *w, const float *bias, int M, int K, int N, int splits,
                       float *ws)
{
    dim3 grid((N + BN - 1) / BN, (M + BM - 1) / BM, splits), block(WM * WN * 32);
    gemm_kernel<T, BM, BN, WM, WN, STAGES><<<grid, block, 0, st>>>(
        out, ldo, epi, (const T *)x, ldx, (const T *)w, bias, M, K, N, splits > 1 ? ws : NULL);
    int rc = g2c_launch_rc();
    if (rc || splits < 2)
        return rc;
    const size_t MN = (size_t)M * N;
    const int threads = 256;
    const int blocks = (int)((MN + threads - 1) / threads < 4096 ? (MN + threads - 1) / threads : 4096);
    splitk_reduce<T><<<blocks, threads, 0, st>>>(out, ldo, epi, ws, splits, bias, M, N);
    return g2c_launch_rc();
}

extern "C" int g2c_gemm_splits(int M, int K, int N, int n_sm, size_t ws_bytes)
{
    if (M <= 0 || N <= 0 || n_sm < 1)
        return 1;
    const long big = (long)((M + 127) / 128) * ((N + 127) / 128);
    const long tiles = (long)((M + 63) / 64) * ((N + 63) / 64);
    if (big >= n_sm || tiles >= n_sm)
        return 1;
    /* about two blocks per SM, each over at least 4 K steps (128 of K) */
    long s = (2L * n_sm + tiles - 1) / tiles;
    const long by_k = ((K + GEMM_BK - 1) / GEMM_BK) / 4;
    s = s < by_k ? s : by_k;
    s = s < G2C_GEMM_MAX_SPLITS ? s : G2C_GEMM_MAX_SPLITS;
    while (s > 1 && (size_t)s * M * N * sizeof(float) > ws_bytes)
        s--;
    return s > 1 ? (int)s : 1;
}

template <typename T>
static int gemm_pick(cudaStream_t st, void *out, int ldo, g2c_epi epi, const void *x, int ldx,
                     const void *w, const float *bias, int M, int K, int N, int n_sm, float *ws,
                     size_t ws_bytes)
{
    /* large tiles reuse more per byte loaded, but only pay when they fill the GPU */
    long big = (long)((M + 127) / 128) * ((N + 127) / 128);
    if (big >= n_sm)
        return gemm_launch<T, 128, 128, 2, 4, 2>(st, out, ldo, epi, x, ldx, w, bias, M, K, N, 1,
                                                 NULL);
    const int splits = ws ? g2c_gemm_splits(M, K, N, n_sm, ws_bytes) : 1;
    return gemm_launch<T, 64, 64, 2, 2, 4>(st, out, ldo, epi, x, ldx, w, bias, M, K, N, splits,
                                           ws);
}

extern "C" int g2c_gemm(cudaStream_t st, void *out, int ldo, g2c_epi epi, g2c_dtype t,
                        const void *x, int ldx, const void *w, const float *bias, int M, int K,
                        int N, int n_sm, float *ws, size_t ws_bytes)
{
    if (M <= 0 || N <= 0)
        return 0;
    if (!g2c_gemm_ok(t, x, ldx, w, K))
        return (int)cudaErrorInvalidValue;
    if (n_sm < 1)
        n_sm = 1;
    if (t == G2C_F16)
        return gemm_pick<__half>(st, out, ldo, epi, x, ldx, w, bias, M, K, N, n_sm, ws, ws_bytes);
    return gemm_pick<__nv_bfloat16>(st, out, ldo, epi, x, ldx, w, bias, M, K, N, n_sm, ws,
                                    ws_bytes);
}
