/* The CUDA device as reports describe it: a plain C interface the engine and
 * tools may call (cuda/device_info.c). Available when GPT2C_HAVE_CUDA is
 * defined. */
#ifndef GPT2C_GPT2_CUDA_H
#define GPT2C_GPT2_CUDA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gpt2_cuda_device {
    char name[256];
    int cc_major, cc_minor;
    int sm_count;
    size_t mem_bytes, l2_bytes;
    int sm_clock_khz, mem_clock_khz, mem_bus_bits;
    int driver_version, runtime_version; /* 13000 = 13.0 */
    double peak_gbs;         /* DRAM: 2 * mem clock * bus width */
    double peak_tc_tflops;   /* dense fp16 tensor-core, fp32 accumulate (estimate) */
} gpt2_cuda_device;

/* Number of CUDA devices; 0 (and why, in why[cap]) when there is none. */
int gpt2_cuda_device_count(char *why, size_t cap);

/* Fills d for device ordinal `device`; 0 on success, -1 with why[cap] filled. */
int gpt2_cuda_device_query(int device, gpt2_cuda_device *d, char *why, size_t cap);

/* The same as one JSON object for reports:
 *   {"name":..., "compute_capability":"9.0", "sm_count":..., "memory_bytes":...,
 *    "l2_bytes":..., "sm_clock_mhz":..., "mem_clock_mhz":..., "mem_bus_bits":...,
 *    "driver_version":"13.0", "runtime_version":"13.0", "peak_dram_gbs":...,
 *    "peak_fp16_tc_tflops_est":...}
 * or {"error": "..."} (and -1) when the device cannot be queried. Returns 0, or
 * -1 (also when cap is too small). */
int gpt2_cuda_device_info(int device, char *json, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
