/* The greedy choice of each logit row on the device, so that a greedy decode
 * step copies back one int per row instead of n_vocab floats. Same answer as
 * gpt2_argmax (engine/backend.h): the lowest index of the largest value, NaNs
 * never chosen, except that a NaN at index 0 gives 0. */
#include <climits>

#include "common.cuh"

#define ARGMAX_THREADS 1024

/* (v, i) becomes (v2, i2) when that is larger, or equal with a lower index:
 * a total order, so every reduction order gives the same winner */
__device__ __forceinline__ void take_better(float &v, int &i, float v2, int i2)
{
    if (v2 > v || (v2 == v && i2 < i))
        v = v2, i = i2;
}

__global__ void __launch_bounds__(ARGMAX_THREADS)
    argmax_kernel(int *out, const float *x, int ldx, int N)
{
    __shared__ float sv[ARGMAX_THREADS / 32];
    __shared__ int si[ARGMAX_THREADS / 32];
    const float *row = x + (size_t)blockIdx.x * ldx;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid / 32;
    /* NaN counts as -inf; the index INT_MAX loses every tie */
    float v = -INFINITY;
    int i = INT_MAX;
    for (int n = tid; n < N; n += ARGMAX_THREADS) {
        const float e = row[n];
        take_better(v, i, isnan(e) ? -INFINITY : e, n);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        take_better(v, i, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, i, o));
    if (lane == 0)
        sv[warp] = v, si[warp] = i;
    __syncthreads();
    if (warp == 0) {
        v = lane < ARGMAX_THREADS / 32 ? sv[lane] : -INFINITY;
        i = lane < ARGMAX_THREADS / 32 ? si[lane] : INT_MAX;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
            take_better(v, i, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, i, o));
        if (lane == 0)
            out[blockIdx.x] = isnan(row[0]) ? 0 : i;
    }
}

extern "C" int g2c_argmax(cudaStream_t st, int *out, const float *x, int ldx, int R, int N)
{
    if (R <= 0)
        return 0;
    if (N <= 0)
        return (int)cudaErrorInvalidValue;
    argmax_kernel<<<R, ARGMAX_THREADS, 0, st>>>(out, x, ldx, N);
    return g2c_launch_rc();
}
