/* Device facts for reports and the kernel benchmark's ceilings. */
#include "gpt2_cuda.h"

#include <stdio.h>
#include <string.h>

#include <cuda_runtime_api.h>

int gpt2_cuda_device_count(char *why, size_t cap)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        snprintf(why, cap, "cudaGetDeviceCount: %s", cudaGetErrorString(e));
        return 0;
    }
    if (n == 0)
        snprintf(why, cap, "cudaGetDeviceCount found 0 devices");
    return n;
}

/* dense fp16 tensor-core FLOP per SM per clock with fp32 accumulation: A100
 * (8.0) 2048, H100 (9.0) 4096; consumer parts accumulate fp32 at half rate.
 * An estimate from the architecture, not a measurement. */
static double tc_flop_per_clk(int major, int minor)
{
    if (major == 8 && minor == 0)
        return 2048;
    if (major >= 9 && major < 12)
        return 4096;
    return 1024;
}

int gpt2_cuda_device_query(int device, gpt2_cuda_device *d, char *why, size_t cap)
{
    memset(d, 0, sizeof *d);
    struct cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, device);
    if (e != cudaSuccess) {
        snprintf(why, cap, "cudaGetDeviceProperties(%d): %s", device, cudaGetErrorString(e));
        return -1;
    }
    snprintf(d->name, sizeof d->name, "%s", p.name);
    d->cc_major = p.major, d->cc_minor = p.minor;
    d->sm_count = p.multiProcessorCount;
    d->mem_bytes = p.totalGlobalMem;
    d->l2_bytes = (size_t)p.l2CacheSize;
    d->mem_bus_bits = p.memoryBusWidth;
    cudaDeviceGetAttribute(&d->sm_clock_khz, cudaDevAttrClockRate, device);
    cudaDeviceGetAttribute(&d->mem_clock_khz, cudaDevAttrMemoryClockRate, device);
    cudaDriverGetVersion(&d->driver_version);
    cudaRuntimeGetVersion(&d->runtime_version);
    d->peak_gbs = 2.0 * d->mem_clock_khz * 1e3 * (d->mem_bus_bits / 8.0) / 1e9;
    d->peak_tc_tflops =
        d->sm_count * (d->sm_clock_khz * 1e3) * tc_flop_per_clk(d->cc_major, d->cc_minor) / 1e12;
    return 0;
}

/* JSON string escaping for the device name */
static void json_str(char *out, size_t cap, const char *s)
{
    size_t k = 0;
    for (; *s && k + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            out[k++] = '\\', out[k++] = (char)c;
        else if (c < 0x20)
            k += (size_t)snprintf(out + k, cap - k, "\\u%04x", c);
        else
            out[k++] = (char)c;
    }
    out[k] = 0;
}

int gpt2_cuda_device_info(int device, char *json, size_t cap)
{
    gpt2_cuda_device d;
    char why[256], name[600];
    int n;
    if (gpt2_cuda_device_query(device, &d, why, sizeof why)) {
        json_str(name, sizeof name, why);
        n = snprintf(json, cap, "{\"error\":\"%s\"}", name);
        return -1;
    }
    json_str(name, sizeof name, d.name);
    n = snprintf(json, cap,
                 "{\"name\":\"%s\",\"compute_capability\":\"%d.%d\",\"sm_count\":%d,"
                 "\"memory_bytes\":%zu,\"l2_bytes\":%zu,\"sm_clock_mhz\":%d,\"mem_clock_mhz\":%d,"
                 "\"mem_bus_bits\":%d,\"driver_version\":\"%d.%d\",\"runtime_version\":\"%d.%d\","
                 "\"peak_dram_gbs\":%.1f,\"peak_fp16_tc_tflops_est\":%.1f}",
                 name, d.cc_major, d.cc_minor, d.sm_count, d.mem_bytes, d.l2_bytes,
                 d.sm_clock_khz / 1000, d.mem_clock_khz / 1000, d.mem_bus_bits,
                 d.driver_version / 1000, d.driver_version % 1000 / 10, d.runtime_version / 1000,
                 d.runtime_version % 1000 / 10, d.peak_gbs, d.peak_tc_tflops);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}
