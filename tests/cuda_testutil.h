/* Helpers for the CUDA suites: is there a device (asked in a child process, so
 * the parent never initialises CUDA before Check forks), device buffers,
 * fp16/bf16 rounding on the host. Header-only. */
#ifndef GPT2C_CUDA_TESTUTIL_H
#define GPT2C_CUDA_TESTUTIL_H

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "gpt2_cuda.h"
#include "kernels.h"

/* 1 if a CUDA device is usable; else 0 and the reason in why. */
static inline int cu_have_device(char *why, size_t cap)
{
    int fd[2];
    if (pipe(fd) != 0) {
        snprintf(why, cap, "pipe failed");
        return 0;
    }
    pid_t pid = fork();
    if (pid == 0) {
        char msg[256] = "";
        int n = gpt2_cuda_device_count(msg, sizeof msg);
        if (write(fd[1], msg, strlen(msg) + 1) < 0)
            _exit(2);
        _exit(n > 0 ? 0 : 1);
    }
    close(fd[1]);
    ssize_t got = read(fd[0], why, cap - 1);
    why[got > 0 ? got : 0] = 0;
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

#define CU(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        ck_assert_msg(e_ == cudaSuccess, "%s: %s", #call, cudaGetErrorString(e_));                 \
    } while (0)

/* a launcher's status, then the kernel's execution status */
#define LAUNCH_OK(call)                                                                            \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        ck_assert_msg(rc_ == 0, "%s: %s", #call, cudaGetErrorString((cudaError_t)rc_));           \
        CU(cudaDeviceSynchronize());                                                               \
    } while (0)

static inline void *cu_upload(const void *h, size_t bytes)
{
    void *d = NULL;
    CU(cudaMalloc(&d, bytes ? bytes : 16));
    if (bytes)
        CU(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}

static inline void cu_download(void *h, const void *d, size_t bytes)
{
    CU(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
}

static inline uint16_t cu_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

static inline float cu_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* dtype codes as in cuda_kernels.h: 0 f32, 1 f16, 2 bf16 */
static inline float cu_round(float v, int dtype)
{
    if (dtype == 1)
        return gpt2k_f16_to_f32(gpt2k_f32_to_f16(v));
    if (dtype == 2)
        return cu_bf16_to_f32(cu_f32_to_bf16(v));
    return v;
}

/* n floats to a device buffer of type dtype (0 f32, 1 f16, 2 bf16) */
static inline void *cu_upload_as(const float *h, size_t n, int dtype)
{
    if (dtype == 0)
        return cu_upload(h, n * 4);
    uint16_t *b = malloc(n * 2 + 2);
    for (size_t i = 0; i < n; i++)
        b[i] = dtype == 1 ? gpt2k_f32_to_f16(h[i]) : cu_f32_to_bf16(h[i]);
    void *d = cu_upload(b, n * 2);
    free(b);
    return d;
}

static inline void cu_download_as(float *h, const void *d, size_t n, int dtype)
{
    if (dtype == 0) {
        cu_download(h, d, n * 4);
        return;
    }
    uint16_t *b = malloc(n * 2 + 2);
    cu_download(b, d, n * 2);
    for (size_t i = 0; i < n; i++)
        h[i] = dtype == 1 ? gpt2k_f16_to_f32(b[i]) : cu_bf16_to_f32(b[i]);
    free(b);
}

#endif
