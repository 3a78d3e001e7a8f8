/* Device helpers shared by the kernel files: element conversions, warp
 * reductions, the matmul epilogue, launch error reporting. */
#ifndef GPT2C_CUDA_COMMON_CUH
#define GPT2C_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "cuda_kernels.h"

/* the launch's own error (bad configuration, no device); 0 if none */
static inline int g2c_launch_rc(void) { return (int)cudaGetLastError(); }

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v)
{
    return __float2bfloat16_rn(v);
}

/* fp16 cache entries are stored as raw bits (uint16_t) in the C API */
__device__ __forceinline__ float h2f_bits(uint16_t b) { return __half2float(__ushort_as_half(b)); }
__device__ __forceinline__ uint16_t f2h_bits(float v) { return __half_as_ushort(__float2half_rn(v)); }

__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* tanh-form GELU, as the CPU reference computes it */
__device__ __forceinline__ float gelu_tanh(float x)
{
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

/* Writes one matmul result v (acc without bias) for (m, n). Each (m, n) has
 * exactly one writer, so ACCUM needs no atomics. */
template <typename OT>
__device__ __forceinline__ void epilogue_store(void *out, int ldo, g2c_epi epi, const float *bias,
                                               int m, int n, float v)
{
    if (bias)
        v += bias[n];
    size_t i = (size_t)m * ldo + n;
    if (epi == G2C_EPI_STORE)
        ((float *)out)[i] = v;
    else if (epi == G2C_EPI_ACCUM)
        ((float *)out)[i] += v;
    else
        ((OT *)out)[i] = from_f<OT>(gelu_tanh(v));
}

#endif
