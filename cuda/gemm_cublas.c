/* cuBLAS baseline matmul. Row-major out[M][N] = x[M][K] W[N][K]^T is, read
 * column-major, out^T (N x M) = W^T (as op(A), A = W: K x N) * x^T (K x M):
 * one cublasGemmEx with transa = T, transb = N.
 * The library is opened with dlopen on first use (see gemm_cublas.h). */
#include <dlfcn.h> /* dladdr: _GNU_SOURCE comes from the build */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>

#include "gemm_cublas.h"

#define STR_(x) #x
#define STR(x) STR_(x)

/* the handful of entry points used, by their exported (_v2) names */
static struct {
    cublasStatus_t (*create)(cublasHandle_t *);
    cublasStatus_t (*destroy)(cublasHandle_t);
    cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t);
    cublasStatus_t (*set_workspace)(cublasHandle_t, void *, size_t);
    cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                              const void *, const void *, cudaDataType, int, const void *,
                              cudaDataType, int, const void *, void *, cudaDataType, int,
                              cublasComputeType_t, cublasGemmAlgo_t);
    const char *(*status_string)(cublasStatus_t);
    char why[512];
    int ok;
} lib;
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

/* Next to the CUDA runtime this process already uses, else the loader's paths. */
static void *open_cublas(void)
{
    static const char *names[] = {"libcublas.so." STR(CUBLAS_VER_MAJOR), "libcublas.so"};
    Dl_info di;
    if (dladdr((void *)cudaGetDeviceCount, &di) && di.dli_fname) {
        const char *slash = strrchr(di.dli_fname, '/');
        for (size_t i = 0; slash && i < sizeof names / sizeof names[0]; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%.*s/%s", (int)(slash - di.dli_fname), di.dli_fname,
                     names[i]);
            void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
            if (h)
                return h;
        }
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (h)
            return h;
    }
    return NULL;
}

static void load(void)
{
    void *h = open_cublas();
    if (!h) {
        snprintf(lib.why, sizeof lib.why, "cannot load libcublas.so.%s: %s", STR(CUBLAS_VER_MAJOR),
                 dlerror());
        return;
    }
    static const char *syms[] = {"cublasCreate_v2", "cublasDestroy_v2", "cublasSetStream_v2",
                                 "cublasSetWorkspace_v2", "cublasGemmEx", "cublasGetStatusString"};
    void *fn[6];
    for (int i = 0; i < 6; i++)
        if (!(fn[i] = dlsym(h, syms[i]))) {
            snprintf(lib.why, sizeof lib.why, "libcublas has no %s (cuBLAS %s or newer needed)",
                     syms[i], STR(CUBLAS_VER_MAJOR));
            return;
        }
    memcpy(&lib.create, &fn[0], sizeof fn[0]);
    memcpy(&lib.destroy, &fn[1], sizeof fn[1]);
    memcpy(&lib.set_stream, &fn[2], sizeof fn[2]);
    memcpy(&lib.set_workspace, &fn[3], sizeof fn[3]);
    memcpy(&lib.gemm_ex, &fn[4], sizeof fn[4]);
    memcpy(&lib.status_string, &fn[5], sizeof fn[5]);
    lib.ok = 1;
}

struct g2c_cublas {
    cublasHandle_t h;
};

g2c_cublas *g2c_cublas_open(cudaStream_t st, void *ws, size_t ws_bytes, char *why, size_t cap)
{
    pthread_once(&lib_once, load);
    if (!lib.ok) {
        snprintf(why, cap, "%s", lib.why);
        return NULL;
    }
    g2c_cublas *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(why, cap, "out of memory");
        return NULL;
    }
    cublasStatus_t s = lib.create(&c->h);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = lib.set_stream(c->h, st);
    if (s == CUBLAS_STATUS_SUCCESS && ws)
        s = lib.set_workspace(c->h, ws, ws_bytes);
    if (s != CUBLAS_STATUS_SUCCESS) {
        snprintf(why, cap, "%s", lib.status_string(s));
        g2c_cublas_close(c);
        return NULL;
    }
    return c;
}

void g2c_cublas_close(g2c_cublas *c)
{
    if (!c)
        return;
    if (c->h)
        lib.destroy(c->h);
    free(c);
}

static cudaDataType dtype_of(g2c_dtype t)
{
    return t == G2C_F16 ? CUDA_R_16F : t == G2C_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

int g2c_cublas_matmul(g2c_cublas *h, cudaStream_t st, void *out, int ldo, g2c_epi epi,
                      g2c_dtype t, const void *x, int ldx, const void *w, const float *bias, int M,
                      int K, int N, float *scratch)
{
    if (M <= 0 || N <= 0)
        return 0;
    if (t == G2C_Q8_0)
        return -(int)cudaErrorInvalidValue;
    const float one = 1.0f, zero = 0.0f;
    float *c = epi == G2C_EPI_GELU ? scratch : (float *)out;
    int ldc = epi == G2C_EPI_GELU ? N : ldo;
    const float *beta = epi == G2C_EPI_ACCUM ? &one : &zero;
    cublasStatus_t s = lib.set_stream(h->h, st);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = lib.gemm_ex(h->h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, w, dtype_of(t), K, x,
                        dtype_of(t), ldx, beta, c, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS)
        return (int)s;
    int rc = g2c_epilogue(st, out, ldo, epi, t, c, ldc, bias, M, N);
    return rc ? -rc : 0;
}

const char *g2c_cublas_error(int rc)
{
    if (rc < 0)
        return cudaGetErrorString((cudaError_t)-rc);
    return lib.ok ? lib.status_string((cublasStatus_t)rc) : "cuBLAS error";
}
