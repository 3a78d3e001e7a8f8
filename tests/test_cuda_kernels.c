/* Every CUDA kernel against the CPU reference kernels (gpt2k_ops_ref) over
 * many shapes, ragged ones included (K, N, C not multiples of any vector or
 * tile width; M = 1; M just past the GEMV/GEMM switch).
 *
 * Inputs are rounded to the device type on the host first, so the reference
 * sees exactly the values the GPU sees and the only differences left are the
 * order of fp32 sums and the rounding of the output. Tolerances:
 *   fp32 outputs: |d| <= 1e-4 * max|ref| + 1e-4 |ref|. fp32 sums of K <= 3072
 *     products differ by order only: ~sqrt(K) * 6e-8 relative to the terms'
 *     scale, two orders below this bound; a wrong index or bias moves
 *     results by O(max|ref|).
 *   fp16 outputs add one rounding: rtol 1e-3 (2^-11 = 4.9e-4 per rounding).
 *   bf16 outputs: rtol 8e-3 (2^-8 = 3.9e-3 per rounding).
 *   attention uses __expf (2 ulp): included in the fp32 bound.
 * Without a CUDA device the suite prints "skipped: no CUDA device" and passes. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h" /* gpt2_sample_row: the sampling rule */
#include "cuda_kernels.h"
#include "cuda_testutil.h"
#include "gemm_cublas.h"
#include "kernel_testutil.h"
#include "kernels.h"
#include "testutil.h"

static const gpt2k_ops *REF;

static float *rand_vec(size_t n, float scale, int dtype)
{
    float *v = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        v[i] = cu_round(urand(-scale, scale), dtype);
    return v;
}

static double out_rtol(int dtype) { return dtype == 1 ? 1e-3 : dtype == 2 ? 8e-3 : 1e-4; }

static void expect_close(const char *what, const float *got, const float *ref, long n,
                         double rtol)
{
    double mx = 0;
    for (long i = 0; i < n; i++)
        mx = fabs(ref[i]) > mx ? fabs(ref[i]) : mx;
    tu_diff d = tu_compare(got, ref, n, 1e-4 * (mx > 0 ? mx : 1) + 1e-6, rtol);
    if (d.n_bad)
        ck_abort_msg("%s: %ld of %ld values differ; worst at %ld: got %.7g expected %.7g "
                     "(max |diff| %.3g, max |ref| %.3g)",
                     what, d.n_bad, n, d.worst, got[d.worst], ref[d.worst], d.max_abs, d.ref_max);
}

/* ---- LayerNorm ------------------------------------------------------------- */

START_TEST(test_layernorm)
{
    const int Cs[] = {1, 7, 32, 36, 100, 768};
    const int Rs[] = {1, 3, 17};
    for (int ci = 0; ci < 6; ci++)
        for (int ri = 0; ri < 3; ri++)
            for (int dt = 0; dt < 3; dt++) {
                const int C = Cs[ci], R = Rs[ri], ldx = C + 5, ldo = C + 3, X = 2 * R + 1;
                float *x = rand_vec((size_t)X * ldx, 3.0f, 0);
                for (long i = 0; i < (long)X * ldx; i++)
                    x[i] += 1.5f; /* a mean away from zero */
                float *g = rand_vec(C, 1.5f, 0), *b = rand_vec(C, 0.5f, 0);
                int rows[64];
                for (int r = 0; r < R; r++)
                    rows[r] = (r * 7 + 3) % X; /* gathered rows, as for the logit rows */
                float *ref = xmalloc(sizeof(float) * R * ldo), *got = xmalloc(sizeof(float) * R * ldo);
                memset(ref, 0, sizeof(float) * R * ldo);
                for (int r = 0; r < R; r++) {
                    REF->layernorm(ref + (size_t)r * ldo, x + (size_t)rows[r] * ldx, g, b, C, 1e-5f);
                    for (int c = 0; c < C; c++)
                        ref[(size_t)r * ldo + c] = cu_round(ref[(size_t)r * ldo + c], dt);
                }
                float *dx = cu_upload(x, sizeof(float) * X * ldx);
                float *dg = cu_upload(g, sizeof(float) * C), *db = cu_upload(b, sizeof(float) * C);
                int *drows = cu_upload(rows, sizeof(int) * R);
                void *dout;
                CU(cudaMalloc(&dout, (size_t)R * ldo * 4));
                CU(cudaMemset(dout, 0, (size_t)R * ldo * 4));
                LAUNCH_OK(g2c_layernorm(0, dout, (g2c_dtype)dt, ldo, dx, ldx, drows, dg, db, R, C, 1e-5f));
                cu_download_as(got, dout, (size_t)R * ldo, dt);
                expect_close(tu_fmt("layernorm C=%d R=%d %s", C, R, g2c_dtype_name(dt)), got, ref,
                             (long)R * ldo, out_rtol(dt));
                cudaFree(dx), cudaFree(dg), cudaFree(db), cudaFree(drows), cudaFree(dout);
                free(x), free(g), free(b), free(ref), free(got);
            }
}
END_TEST

/* ---- argmax of logit rows ------------------------------------------------------ */

/* the definition the greedy sampler uses, run sequentially */
static int seq_argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

START_TEST(test_argmax)
{
    /* widths around the block's 1024 threads and the vocabulary's; rows of
     * edge cases: ties (the lowest index wins), NaN at 0 (gives 0), NaN
     * elsewhere (never wins), all -inf, the winner in the last position */
    const int Ns[] = {1, 31, 1024, 1025, 4099, 50257};
    enum { R = 9 };
    for (int ni = 0; ni < 6; ni++) {
        const int N = Ns[ni], ld = N + 3;
        float *x = rand_vec((size_t)R * ld, 1.0f, 0);
        float *r1 = x + ld, *r2 = x + 2 * ld, *r3 = x + 3 * ld, *r4 = x + 4 * ld;
        float *r5 = x + 5 * ld, *r6 = x + 6 * ld, *r7 = x + 7 * ld;
        for (int i = 0; i < N; i++)
            r1[i] = (float)(i % 7); /* ties at 6 all along */
        r2[0] = NAN;
        r3[N / 2] = NAN, r3[N - 1] = NAN;
        for (int i = 0; i < N; i++)
            r4[i] = -INFINITY;
        r5[N - 1] = 10.0f;
        for (int i = 0; i < N; i++)
            r6[i] = i % 3 ? NAN : -1.0f; /* NaNs around equal values */
        r7[N / 3] = INFINITY, r7[N - 1] = INFINITY;
        float *dx = cu_upload(x, sizeof(float) * R * ld);
        int *dout = NULL, got[R];
        CU(cudaMalloc((void **)&dout, sizeof got));
        LAUNCH_OK(g2c_argmax(0, dout, dx, ld, R, N));
        cu_download(got, dout, sizeof got);
        for (int r = 0; r < R; r++)
            ck_assert_msg(got[r] == seq_argmax(x + (size_t)r * ld, N),
                          "argmax N=%d row %d: device %d, sequential %d", N, r, got[r],
                          seq_argmax(x + (size_t)r * ld, N));
        cudaFree(dx), cudaFree(dout);
        free(x);
    }
}
END_TEST

/* ---- embedding --------------------------------------------------------------- */

START_TEST(test_embed)
{
    const int Cs[] = {32, 64, 768};
    for (int ci = 0; ci < 3; ci++)
        for (int wt = 0; wt < 4; wt++) {
            const int C = Cs[ci], V = 37, NCTX = 19, R = 11;
            float *wte = rand_vec((size_t)V * C, 0.5f, wt < 3 ? wt : 0);
            float *wpe = rand_vec((size_t)NCTX * C, 0.5f, 0);
            int ids[11], pos[11];
            for (int r = 0; r < R; r++)
                ids[r] = (int)(rand_u64() % V), pos[r] = (int)(rand_u64() % NCTX);
            void *dwte;
            if (wt == G2C_Q8_0) { /* quantize, dequantize for the reference, repack for the device */
                size_t rb = gpt2k_q8_0_row_bytes(C);
                gpt2k_block_q8_0 *q = xmalloc(rb * V);
                gpt2k_quantize_q8_0_ref(q, wte, V * C);
                gpt2k_dequantize_q8_0(wte, q, V * C);
                char *dev = xmalloc(g2c_q8_bytes(V, C));
                float *sc = (float *)(dev + (size_t)V * C);
                for (int blk = 0; blk < V * C / 32; blk++) {
                    memcpy(dev + (size_t)blk * 32, q[blk].qs, 32);
                    sc[blk] = gpt2k_f16_to_f32(q[blk].d);
                }
                dwte = cu_upload(dev, g2c_q8_bytes(V, C));
                free(q), free(dev);
            } else {
                dwte = cu_upload_as(wte, (size_t)V * C, wt);
            }
            float *ref = xmalloc(sizeof(float) * R * C), *got = xmalloc(sizeof(float) * R * C);
            for (int r = 0; r < R; r++)
                for (int c = 0; c < C; c++)
                    ref[r * C + c] = wte[(size_t)ids[r] * C + c] + wpe[(size_t)pos[r] * C + c];
            float *dwpe = cu_upload(wpe, sizeof(float) * NCTX * C), *dx;
            int *dids = cu_upload(ids, sizeof ids), *dpos = cu_upload(pos, sizeof pos);
            CU(cudaMalloc((void **)&dx, sizeof(float) * R * C));
            LAUNCH_OK(g2c_embed(0, dx, dids, dpos, R, dwte, (g2c_dtype)wt, V, dwpe, C));
            cu_download(got, dx, sizeof(float) * R * C);
            expect_close(tu_fmt("embed C=%d %s", C, g2c_dtype_name(wt)), got, ref, (long)R * C, 1e-6);
            cudaFree(dwte), cudaFree(dwpe), cudaFree(dx), cudaFree(dids), cudaFree(dpos);
            free(wte), free(wpe), free(ref), free(got);
        }
}
END_TEST

/* ---- matmul: GEMV, tensor-core GEMM, the dispatcher, cuBLAS ------------------- */

typedef struct mshape {
    int M, K, N;
} mshape;
static const mshape MSHAPES[] = {
    {1, 8, 1},    {1, 768, 2304}, {2, 36, 13},   {3, 40, 7},    {8, 64, 40},  {9, 64, 40},
    {17, 72, 33}, {64, 96, 130},  {65, 128, 64},
    /* split K through the dispatcher (g2c_gemm_splits): 4 uneven ranges of 17
     * K steps, the last one partial; then 8 splits; 6; 3 */
    {20, 520, 40}, {64, 3072, 192}, {130, 768, 200}, {256, 3072, 72}, {512, 768, 768},
};
#define N_MSHAPES (int)(sizeof MSHAPES / sizeof MSHAPES[0])

enum { K_GEMV = 0, K_GEMM = 1, K_DISPATCH = 2, K_CUBLAS = 3 };
static const char *KNAMES[] = {"gemv", "gemm", "matmul", "cublas"};

/* one (shape, dtype, epilogue, kernel) case: loop index = shape */
static void run_matmul_case(const mshape *s, int dt, int epi, int kern)
{
    const int M = s->M, K = s->K, N = s->N, ldx = K + (dt == 0 ? 4 : 8), ldo = N + 3;
    if (kern == K_GEMM && (dt == 0 || K % 8))
        return; /* the tensor-core kernel takes fp16/bf16 and K % 8 == 0 */
    float *x = rand_vec((size_t)M * ldx, 1.0f, dt), *w = rand_vec((size_t)N * K, 0.5f, dt);
    float *bias = rand_vec(N, 0.5f, 0);
    float *init = rand_vec((size_t)M * ldo, 1.0f, 0);
    float *ref = xmalloc(sizeof(float) * M * ldo), *got = xmalloc(sizeof(float) * M * ldo);
    const int out_dt = epi == G2C_EPI_GELU ? dt : 0;
    memcpy(ref, init, sizeof(float) * M * ldo);
    if (out_dt)
        for (long i = 0; i < (long)M * ldo; i++)
            ref[i] = init[i] = cu_round(init[i], dt);
    REF->matmul_f32(ref, ldo, x, ldx, w, bias, M, K, 0, N, epi == G2C_EPI_ACCUM);
    if (epi == G2C_EPI_GELU)
        for (int m = 0; m < M; m++) {
            REF->gelu(ref + (size_t)m * ldo, N);
            for (int n = 0; n < N; n++)
                ref[(size_t)m * ldo + n] = cu_round(ref[(size_t)m * ldo + n], dt);
        }
    void *dx = cu_upload_as(x, (size_t)M * ldx, dt), *dw = cu_upload_as(w, (size_t)N * K, dt);
    float *db = cu_upload(bias, sizeof(float) * N);
    void *dout = cu_upload_as(init, (size_t)M * ldo, out_dt);
    float *scratch, *ws;
    CU(cudaMalloc((void **)&scratch, sizeof(float) * M * N));
    const size_t ws_bytes = sizeof(float) * G2C_GEMM_MAX_SPLITS * M * N;
    CU(cudaMalloc((void **)&ws, ws_bytes));
    int rc = 0;
    g2c_cublas *h = NULL;
    char why[512];
    switch (kern) {
    case K_GEMV: rc = g2c_gemv(0, dout, ldo, epi, dt, dx, ldx, dw, db, M, K, N); break;
    /* the GEMM alone without a workspace (no split K), through the dispatcher
     * with one (split K where the shape has few tiles: see below) */
    case K_GEMM: rc = g2c_gemm(0, dout, ldo, epi, dt, dx, ldx, dw, db, M, K, N, 132, NULL, 0); break;
    case K_DISPATCH:
        rc = g2c_matmul(0, dout, ldo, epi, dt, dx, ldx, dw, dt, db, M, K, N, NULL, 132, ws, ws_bytes);
        break;
    case K_CUBLAS:
        h = g2c_cublas_open(0, NULL, 0, why, sizeof why);
        ck_assert_msg(h != NULL, "cuBLAS: %s", why);
        rc = g2c_cublas_matmul(h, 0, dout, ldo, epi, dt, dx, ldx, dw, db, M, K, N, scratch);
        ck_assert_msg(rc == 0, "cublas: %s", g2c_cublas_error(rc));
        break;
    }
    ck_assert_msg(rc == 0, "%s launch: %s", KNAMES[kern], cudaGetErrorString((cudaError_t)rc));
    CU(cudaDeviceSynchronize());
    g2c_cublas_close(h);
    cu_download_as(got, dout, (size_t)M * ldo, out_dt);
    /* padding columns n >= N must be untouched: compare them against init */
    for (int m = 0; m < M; m++)
        for (int n = N; n < ldo; n++)
            ck_assert_msg(got[(size_t)m * ldo + n] == init[(size_t)m * ldo + n],
                          "%s wrote past column N=%d at row %d", KNAMES[kern], N, m);
    /* cuBLAS may run its fp16 GEMMs on tensor cores with a different sum order
     * and split K: same bound */
    expect_close(tu_fmt("%s M=%d K=%d N=%d %s epi=%d", KNAMES[kern], M, K, N, g2c_dtype_name(dt), epi),
                 got, ref, (long)M * ldo, out_rtol(out_dt ? dt : 0));
    cudaFree(dx), cudaFree(dw), cudaFree(db), cudaFree(dout), cudaFree(scratch), cudaFree(ws);
    free(x), free(w), free(bias), free(init), free(ref), free(got);
}

/* The split-K rule (no device needed): splits only where the 64 x 64 tiles
 * are fewer than the SMs, about two blocks per SM, at least 4 K steps each,
 * at most G2C_GEMM_MAX_SPLITS, and only as many as the workspace holds. */
START_TEST(test_gemm_splits)
{
    const size_t big = (size_t)1 << 30;
    ck_assert_int_eq(g2c_gemm_splits(512, 3072, 768, 132, big), 3);  /* 96 tiles */
    ck_assert_int_eq(g2c_gemm_splits(512, 768, 768, 132, big), 3);
    ck_assert_int_eq(g2c_gemm_splits(64, 3072, 768, 132, big), 8);   /* 12 tiles */
    ck_assert_int_eq(g2c_gemm_splits(64, 768, 768, 132, big), 6);    /* 24 K steps */
    ck_assert_int_eq(g2c_gemm_splits(512, 768, 3072, 132, big), 1);  /* 384 tiles */
    ck_assert_int_eq(g2c_gemm_splits(512, 768, 50257, 132, big), 1); /* 128 x 128 tiles */
    ck_assert_int_eq(g2c_gemm_splits(65, 128, 64, 132, big), 1);     /* 4 K steps */
    ck_assert_int_eq(g2c_gemm_splits(20, 520, 40, 132, big), 4);
    /* the workspace bounds it: 8 splits of 64 x 768 need 1.5 MiB */
    ck_assert_int_eq(g2c_gemm_splits(64, 3072, 768, 132, (size_t)5 * 64 * 768 * 4), 5);
    ck_assert_int_eq(g2c_gemm_splits(64, 3072, 768, 132, (size_t)64 * 768 * 4), 1);
    ck_assert_int_eq(g2c_gemm_splits(64, 3072, 768, 132, 0), 1);
    ck_assert_int_eq(g2c_gemm_splits(0, 3072, 768, 132, big), 1);
}
END_TEST

/* The GEMV's warps per column (no device needed): about 4096 warps in all,
 * at least one 16-byte load per lane each, one of 1, 2, 3, 4, 6, 8. The
 * matmul shapes above run each count through the kernel. */
START_TEST(test_gemv_ks)
{
    ck_assert_int_eq(g2c_gemv_ks(2304, 768, 2), 2);  /* QKV */
    ck_assert_int_eq(g2c_gemv_ks(768, 768, 2), 3);   /* proj: 3 loads per lane in all */
    ck_assert_int_eq(g2c_gemv_ks(768, 768, 4), 6);   /* fp32: 6 */
    ck_assert_int_eq(g2c_gemv_ks(3072, 768, 2), 2);  /* MLP up */
    ck_assert_int_eq(g2c_gemv_ks(768, 3072, 2), 6);  /* MLP down */
    ck_assert_int_eq(g2c_gemv_ks(50257, 768, 2), 1); /* LM head */
    ck_assert_int_eq(g2c_gemv_ks(72, 3072, 2), 8);
    ck_assert_int_eq(g2c_gemv_ks(40, 520, 4), 4);
    ck_assert_int_eq(g2c_gemv_ks(40, 520, 2), 2);
    ck_assert_int_eq(g2c_gemv_ks(40, 64, 2), 1);     /* less than a load per lane */
    ck_assert_int_eq(g2c_gemv_ks(200, 768, 2), 3);
    ck_assert_int_eq(g2c_gemv_ks(0, 768, 2), 1);
}
END_TEST

START_TEST(test_matmul)
{
    const mshape *s = &MSHAPES[_i];
    for (int kern = 0; kern < 4; kern++)
        for (int dt = 0; dt < 3; dt++)
            for (int epi = 0; epi < 3; epi++)
                run_matmul_case(s, dt, epi, kern);
}
END_TEST

/* ---- Q8_0 GEMV ----------------------------------------------------------------- */

START_TEST(test_q8)
{
    const mshape shapes[] = {{1, 32, 1}, {1, 768, 2304}, {5, 64, 7}, {8, 96, 65}, {9, 3072, 40}, {20, 128, 33}};
    for (int si = 0; si < 6; si++)
        for (int xt = 0; xt < 2; xt++)
            for (int epi = 0; epi < 3; epi++) {
                const int M = shapes[si].M, K = shapes[si].K, N = shapes[si].N, ldx = K + 32, ldo = N + 1;
                const int nb = K / 32;
                float *x = rand_vec((size_t)M * ldx, 2.0f, xt), *w = rand_vec((size_t)N * K, 0.5f, 0);
                float *bias = rand_vec(N, 0.5f, 0), *init = rand_vec((size_t)M * ldo, 1.0f, 0);
                const int out_dt = epi == G2C_EPI_GELU ? xt : 0;
                if (out_dt)
                    for (long i = 0; i < (long)M * ldo; i++)
                        init[i] = cu_round(init[i], xt);
                size_t rb = gpt2k_q8_0_row_bytes(K);
                char *wq = xmalloc(rb * N), *xq = xmalloc(rb * M);
                gpt2k_quantize_q8_0_ref(wq, w, N * K);
                for (int m = 0; m < M; m++)
                    REF->quantize_q8_0(xq + rb * m, x + (size_t)m * ldx, K);
                float *ref = xmalloc(sizeof(float) * M * ldo), *got = xmalloc(sizeof(float) * M * ldo);
                memcpy(ref, init, sizeof(float) * M * ldo);
                REF->matmul_q8_0(ref, ldo, xq, wq, bias, M, K, 0, N, epi == G2C_EPI_ACCUM);
                if (epi == G2C_EPI_GELU)
                    for (int m = 0; m < M; m++) {
                        REF->gelu(ref + (size_t)m * ldo, N);
                        for (int n = 0; n < N; n++)
                            ref[(size_t)m * ldo + n] = cu_round(ref[(size_t)m * ldo + n], xt);
                    }
                /* device layout: int8 rows, then fp32 scales */
                char *dev = xmalloc(g2c_q8_bytes(N, K));
                float *sc = (float *)(dev + (size_t)N * K);
                const gpt2k_block_q8_0 *blk = (const gpt2k_block_q8_0 *)wq;
                for (int b = 0; b < N * nb; b++) {
                    memcpy(dev + (size_t)b * 32, blk[b].qs, 32);
                    sc[b] = gpt2k_f16_to_f32(blk[b].d);
                }
                void *dw = cu_upload(dev, g2c_q8_bytes(N, K)), *dx = cu_upload_as(x, (size_t)M * ldx, xt);
                float *db = cu_upload(bias, sizeof(float) * N);
                void *dout = cu_upload_as(init, (size_t)M * ldo, out_dt), *dxq;
                CU(cudaMalloc(&dxq, g2c_q8_bytes(M, K)));
                LAUNCH_OK(g2c_gemv_q8(0, dout, ldo, epi, xt, dx, ldx, dw, db, M, K, N, dxq));
                cu_download_as(got, dout, (size_t)M * ldo, out_dt);
                expect_close(tu_fmt("q8_0 M=%d K=%d N=%d x=%s epi=%d", M, K, N, g2c_dtype_name(xt), epi),
                             got, ref, (long)M * ldo, out_rtol(out_dt));
                cudaFree(dw), cudaFree(dx), cudaFree(db), cudaFree(dout), cudaFree(dxq);
                free(x), free(w), free(bias), free(init), free(wq), free(xq), free(dev), free(ref), free(got);
            }
}
END_TEST

/* ---- attention over the paged cache ---------------------------------------------- */

typedef struct aseq {
    int pos0, n_rows;
} aseq;

/* loop index: (HD, block size) combination */
START_TEST(test_attention)
{
    const int HDs[] = {12, 16, 64, 80}, BSs[] = {4, 16};
    const int HD = HDs[_i / 2], bs = BSs[_i % 2], NH = HD == 64 ? 3 : 2, C = NH * HD, L = 2;
    const int layer = 1, n_ctx = 300;
    /* ragged: decode rows, short chunks, long prefill chunks past one tile, a
     * chunk that starts mid-sequence */
    const aseq seqs[] = {{0, 1}, {0, 5}, {7, 1}, {13, 70}, {100, 3}, {0, 130}, {250, 1}, {60, 4}};
    const int S = 8;
    int R = 0, max_tab = (n_ctx + bs - 1) / bs;
    for (int i = 0; i < S; i++)
        R += seqs[i].n_rows;
    /* the block pool: every sequence gets a shuffled set of blocks */
    const int n_blocks = S * max_tab;
    int *perm = xmalloc(sizeof(int) * n_blocks);
    for (int i = 0; i < n_blocks; i++)
        perm[i] = i;
    for (int i = n_blocks - 1; i > 0; i--) {
        int j = (int)(rand_u64() % (uint64_t)(i + 1)), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    /* every position of every sequence (0 .. pos0+n_rows-1) gets a qkv row;
     * the cache is filled through g2c_kv_write; rows of the batch are the last
     * n_rows positions of each sequence */
    int n_all = 0;
    for (int i = 0; i < S; i++)
        n_all += seqs[i].pos0 + seqs[i].n_rows;
    const int ldq = 3 * C;
    float *qkv = rand_vec((size_t)n_all * ldq, 1.5f, 0);
    int *pos_all = xmalloc(sizeof(int) * n_all), *tab_all = xmalloc(sizeof(int) * n_all);
    int *pos = xmalloc(sizeof(int) * R), *tab = xmalloc(sizeof(int) * R), *brow = xmalloc(sizeof(int) * R);
    int *seq_of = xmalloc(sizeof(int) * R);
    int a = 0, r = 0;
    for (int i = 0; i < S; i++) {
        int n = seqs[i].pos0 + seqs[i].n_rows;
        for (int t = 0; t < n; t++, a++) {
            pos_all[a] = t, tab_all[a] = i * max_tab;
            if (t >= seqs[i].pos0)
                pos[r] = t, tab[r] = i * max_tab, brow[r] = a, seq_of[r] = i, r++;
        }
    }
    /* q of the batch rows: gathered from the qkv rows (stride ldq) */
    float *q = xmalloc(sizeof(float) * R * ldq);
    for (r = 0; r < R; r++)
        memcpy(q + (size_t)r * ldq, qkv + (size_t)brow[r] * ldq, sizeof(float) * ldq);

    size_t pool_elems = (size_t)n_blocks * L * 2 * bs * C;
    uint16_t *dpool;
    CU(cudaMalloc((void **)&dpool, pool_elems * 2));
    CU(cudaMemset(dpool, 0xff, pool_elems * 2)); /* NaN everywhere no write reaches */
    int *dtables = cu_upload(perm, sizeof(int) * n_blocks);
    float *dqkv = cu_upload(qkv, sizeof(float) * n_all * ldq), *dq = cu_upload(q, sizeof(float) * R * ldq);
    int *dpos_all = cu_upload(pos_all, sizeof(int) * n_all), *dtab_all = cu_upload(tab_all, sizeof(int) * n_all);
    int *dpos = cu_upload(pos, sizeof(int) * R), *dtab = cu_upload(tab, sizeof(int) * R);
    g2c_kv kv = {dpool, L, C, bs, layer, dtables};
    LAUNCH_OK(g2c_kv_write(0, &kv, dqkv, ldq, dpos_all, dtab_all, n_all));

    /* the cache as the reference reads it: fp16 values as floats, same layout */
    uint16_t *hpool = xmalloc(pool_elems * 2);
    float *fpool = xmalloc(pool_elems * sizeof(float));
    cu_download(hpool, dpool, pool_elems * 2);
    for (size_t i = 0; i < pool_elems; i++)
        fpool[i] = gpt2k_f16_to_f32(hpool[i]);
    /* the write itself: every position's K and V are fp16(qkv) at their place */
    for (a = 0; a < n_all; a++) {
        int t = pos_all[a], blk = perm[tab_all[a] + t / bs];
        for (int kind = 0; kind < 2; kind++)
            for (int c = 0; c < C; c++) {
                size_t i = (((size_t)blk * L + layer) * 2 + kind) * bs * C + (size_t)(t % bs) * C + c;
                float want = cu_round(qkv[(size_t)a * ldq + (kind + 1) * C + c], 1);
                ck_assert_msg(fpool[i] == want, "kv_write: position %d kind %d channel %d: %g, expected %g",
                              t, kind, c, fpool[i], want);
            }
    }
    /* reference output per batch row */
    float *ref = xmalloc(sizeof(float) * R * C), *scratch = xmalloc(sizeof(float) * n_ctx);
    for (r = 0; r < R; r++) {
        int i = seq_of[r];
        gpt2k_kv_view view = {fpool + (size_t)layer * 2 * bs * C, fpool + ((size_t)layer * 2 + 1) * bs * C,
                              perm + i * max_tab, (size_t)L * 2 * bs * C, bs, C, 0, 0, GPT2K_W_F32, 0};
        for (int h = 0; h < NH; h++)
            REF->attention_head(ref + (size_t)r * C + h * HD, q + (size_t)r * ldq + h * HD, &view,
                                h * HD, pos[r] + 1, HD, 1.0f / sqrtf((float)HD), scratch);
    }
    /* prefill tiles for the chunks of >= 4 rows, decode for the rest; then the
     * decode kernel alone for every row: both paths cover every row shape */
    int *tiles = xmalloc(sizeof(int) * 2 * R), *dec = xmalloc(sizeof(int) * R), *all = xmalloc(sizeof(int) * R);
    int P = 0, D = 0;
    r = 0;
    for (int i = 0; i < S; i++) {
        if (seqs[i].n_rows >= 4)
            for (int k = 0; k < seqs[i].n_rows; k += 64) {
                tiles[2 * P] = r + k;
                tiles[2 * P + 1] = seqs[i].n_rows - k < 64 ? seqs[i].n_rows - k : 64;
                P++;
            }
        else
            for (int k = 0; k < seqs[i].n_rows; k++)
                dec[D++] = r + k;
        r += seqs[i].n_rows;
    }
    for (r = 0; r < R; r++)
        all[r] = r;
    int *dtiles = cu_upload(tiles, sizeof(int) * 2 * P), *ddec = cu_upload(dec, sizeof(int) * D);
    int *dall = cu_upload(all, sizeof(int) * R);
    float *part;
    int *counters;
    CU(cudaMalloc((void **)&part, sizeof(float) * R * NH * g2c_decode_splits(n_ctx) * (HD + 2)));
    CU(cudaMalloc((void **)&counters, sizeof(int) * R * NH));
    CU(cudaMemset(counters, 0, sizeof(int) * R * NH));
    float *got = xmalloc(sizeof(float) * R * C);
    /* arguments the kernels cannot work with are refused, nothing launched */
    {
        g2c_kv bad = kv;
        bad.C = C + 1; /* channels != NH * HD */
        ck_assert_int_ne(g2c_attention_decode(0, &bad, NULL, G2C_F32, C, dq, ldq, dpos, dtab, dall, R,
                                              NH, HD, n_ctx, part, counters, 0), 0);
        ck_assert_int_ne(g2c_attention_prefill(0, &bad, NULL, G2C_F32, C, dq, ldq, dpos, dtab, dtiles,
                                               1, NH, HD), 0);
        bad = kv;
        bad.pool = (uint16_t *)((char *)kv.pool + 2); /* not 16-byte aligned */
        ck_assert_int_ne(g2c_attention_decode(0, &bad, NULL, G2C_F32, C, dq, ldq, dpos, dtab, dall, R,
                                              NH, HD, n_ctx, part, counters, 0), 0);
        ck_assert_int_ne(g2c_attention_decode(0, &kv, NULL, G2C_Q8_0, C, dq, ldq, dpos, dtab, dall, R,
                                              NH, HD, n_ctx, part, counters, 0), 0);
    }
    for (int ot = 0; ot < 2; ot++)
        for (int mode = 0; mode < 2; mode++) {
            void *dout;
            CU(cudaMalloc(&dout, (size_t)R * C * 4));
            CU(cudaMemset(dout, 0xff, (size_t)R * C * 4));
            if (mode == 0) {
                LAUNCH_OK(g2c_attention_prefill(0, &kv, dout, ot, C, dq, ldq, dpos, dtab, dtiles, P, NH, HD));
                LAUNCH_OK(g2c_attention_decode(0, &kv, dout, ot, C, dq, ldq, dpos, dtab, ddec, D, NH, HD,
                                               n_ctx, part, counters, 0));
            } else {
                LAUNCH_OK(g2c_attention_decode(0, &kv, dout, ot, C, dq, ldq, dpos, dtab, dall, R, NH, HD,
                                               n_ctx, part, counters, 0));
            }
            cu_download_as(got, dout, (size_t)R * C, ot);
            float *want = xmalloc(sizeof(float) * R * C);
            for (long i = 0; i < (long)R * C; i++)
                want[i] = cu_round(ref[i], ot);
            expect_close(tu_fmt("attention HD=%d bs=%d %s out=%s", HD, bs,
                                mode ? "decode-only" : "prefill+decode", g2c_dtype_name(ot)),
                         got, want, (long)R * C, ot ? 1e-3 : 1e-4);
            free(want);
            cudaFree(dout);
        }
    /* write_kv = 1, as a decode step of one row per sequence runs: the last
     * row of each sequence writes its own key and value. Spoil those cache
     * entries first; the output and the entries must come out right. */
    {
        int last[8], pos_last[8], tab_last[8];
        r = 0;
        for (int i = 0; i < S; i++) {
            r += seqs[i].n_rows;
            last[i] = r - 1, pos_last[i] = pos[r - 1], tab_last[i] = tab[r - 1];
        }
        float *junk = xmalloc(sizeof(float) * S * ldq);
        for (long i = 0; i < (long)S * ldq; i++)
            junk[i] = 1e4f;
        float *djunk = cu_upload(junk, sizeof(float) * S * ldq);
        int *dpl = cu_upload(pos_last, sizeof pos_last), *dtl = cu_upload(tab_last, sizeof tab_last);
        int *dlast = cu_upload(last, sizeof last);
        LAUNCH_OK(g2c_kv_write(0, &kv, djunk, ldq, dpl, dtl, S));
        void *dout;
        CU(cudaMalloc(&dout, (size_t)R * C * 4));
        CU(cudaMemset(dout, 0xff, (size_t)R * C * 4));
        LAUNCH_OK(g2c_attention_decode(0, &kv, dout, G2C_F32, C, dq, ldq, dpos, dtab, dlast, S, NH, HD,
                                       n_ctx, part, counters, 1));
        cu_download(got, dout, sizeof(float) * R * C);
        for (int i = 0; i < S; i++)
            expect_close(tu_fmt("attention HD=%d bs=%d write_kv, sequence %d", HD, bs, i),
                         got + (size_t)last[i] * C, ref + (size_t)last[i] * C, C, 1e-4);
        cu_download(hpool, dpool, pool_elems * 2);
        for (int i = 0; i < S; i++) {
            int t = pos_last[i], blk = perm[tab_last[i] + t / bs], a_row = brow[last[i]];
            for (int kind = 0; kind < 2; kind++)
                for (int c = 0; c < C; c++) {
                    size_t at = (((size_t)blk * L + layer) * 2 + kind) * bs * C + (size_t)(t % bs) * C + c;
                    float want = cu_round(qkv[(size_t)a_row * ldq + (kind + 1) * C + c], 1);
                    ck_assert_msg(gpt2k_f16_to_f32(hpool[at]) == want,
                                  "write_kv: sequence %d position %d kind %d channel %d: %g, expected %g",
                                  i, t, kind, c, gpt2k_f16_to_f32(hpool[at]), want);
                }
        }
        cudaFree(djunk), cudaFree(dpl), cudaFree(dtl), cudaFree(dlast), cudaFree(dout);
        free(junk);
    }
    cudaFree(dpool), cudaFree(dtables), cudaFree(dqkv), cudaFree(dq), cudaFree(dpos_all);
    cudaFree(dtab_all), cudaFree(dpos), cudaFree(dtab), cudaFree(dtiles), cudaFree(ddec);
    cudaFree(dall), cudaFree(part), cudaFree(counters);
    free(perm), free(qkv), free(pos_all), free(tab_all), free(pos), free(tab), free(brow), free(seq_of);
    free(q), free(hpool), free(fpool), free(ref), free(scratch), free(tiles), free(dec), free(all), free(got);
}
END_TEST

/* ---- sampling of logit rows ------------------------------------------------------ */

/* Each row against gpt2_sample_row (engine/sample_row.c), the rule in C. The
 * device's expf may differ from the host's by an ulp or two, which moves the
 * probabilities by ~2e-7 relative: tokens must agree wherever the draw and the
 * top-p cut are further than 1e-5 (of the kept mass / the total) from
 * choosing differently, and that must be nearly every row. Also: rows with
 * on = 0 are left alone, x is not changed, and a row's token does not depend
 * on the other rows of the launch (each row alone gives the same). */
START_TEST(test_sample)
{
    const int Ns[] = {1, 7, 1000, 1025, 50257};
    enum { R = 24 };
    int compared = 0, total = 0;
    /* GPT2C_CUDA_TEST_QUICK (under compute-sanitizer): not the full vocabulary */
    const int quick = getenv("GPT2C_CUDA_TEST_QUICK") && atoi(getenv("GPT2C_CUDA_TEST_QUICK"));
    for (int ni = 0; ni < (quick ? 4 : 5); ni++) {
        const int N = Ns[ni], ld = N + 5;
        float *x = rand_vec((size_t)R * ld, 6.0f, 0);
        for (int i = 0; i < N; i++) {
            x[(size_t)3 * ld + i] = (float)(i % 3);              /* many ties */
            x[(size_t)4 * ld + i] = i % 5 ? -INFINITY : 1.0f;    /* weightless tokens */
            x[(size_t)5 * ld + i] = i % 4 == 1 ? NAN : x[(size_t)5 * ld + i]; /* NaNs */
            x[(size_t)6 * ld + i] = 2.5f;                        /* all equal */
        }
        g2c_sample_params prm[R];
        static const int ks[] = {0, 1, 3, 40, 1000};
        static const float ps[] = {1.0f, 0.9f, 0.5f, 0.02f};
        for (int r = 0; r < R; r++)
            prm[r] = (g2c_sample_params){r % 11 != 10, ks[r % 5], 1.0f / (0.6f + 0.1f * (r % 7)),
                                         ps[r % 4], (r * 0.6180339887) - (int)(r * 0.6180339887)};
        float *dx = cu_upload(x, sizeof(float) * R * ld);
        g2c_sample_params *dprm = cu_upload(prm, sizeof prm);
        float *dp = NULL;
        int *dout = NULL, got[R], alone[R];
        CU(cudaMalloc((void **)&dp, sizeof(float) * R * ld));
        CU(cudaMalloc((void **)&dout, sizeof got));
        CU(cudaMemset(dout, 0xff, sizeof got)); /* -1: what a skipped row must keep */
        LAUNCH_OK(g2c_sample(0, dout, dp, ld, dx, ld, dprm, R, N));
        cu_download(got, dout, sizeof got);
        float *back = xmalloc(sizeof(float) * R * ld);
        cu_download(back, dx, sizeof(float) * R * ld);
        ck_assert_msg(memcmp(back, x, sizeof(float) * R * ld) == 0, "sample N=%d changed x", N);
        for (int r = 0; r < R; r++) { /* one row per launch */
            LAUNCH_OK(g2c_sample(0, dout + r, dp, ld, dx + (size_t)r * ld, ld, dprm + r, 1, N));
        }
        cu_download(alone, dout, sizeof alone);
        float *p = xmalloc(sizeof(float) * N);
        for (int r = 0; r < R; r++) {
            const char *what = tu_fmt("sample N=%d row %d (top_k %d, top_p %g, 1/T %g, u %.6f)", N, r,
                                      prm[r].top_k, (double)prm[r].top_p, (double)prm[r].inv_temp,
                                      prm[r].u);
            ck_assert_msg(got[r] == alone[r], "%s: %d in a batch of %d rows, %d alone", what, got[r],
                          R, alone[r]);
            if (!prm[r].on) {
                ck_assert_msg(got[r] == -1, "%s: skipped row written (%d)", what, got[r]);
                continue;
            }
            gpt2_row_sampling rs = {1, prm[r].top_k, prm[r].inv_temp, prm[r].top_p, prm[r].u};
            gpt2_sample_info info;
            int want = gpt2_sample_row(x + (size_t)r * ld, N, &rs, p, &info);
            ck_assert_msg(got[r] >= 0 && got[r] < N, "%s: token %d out of range", what, got[r]);
            total++;
            if (info.draw_margin > 1e-5 && info.cut_margin > 1e-5) {
                compared++;
                ck_assert_msg(got[r] == want, "%s: device %d, rule %d (draw margin %g, cut margin %g)",
                              what, got[r], want, info.draw_margin, info.cut_margin);
            }
        }
        cudaFree(dx), cudaFree(dprm), cudaFree(dp), cudaFree(dout);
        free(x), free(back), free(p);
    }
    ck_assert_msg(compared >= total * 8 / 10, "only %d of %d rows far enough from a boundary to compare",
                  compared, total);
}
END_TEST

int main(void)
{
    char why[256];
    Suite *s = suite_create("cuda_kernels");
    TCase *host = tcase_create("host"); /* launch rules: no device needed */
    tcase_add_test(host, test_gemm_splits);
    tcase_add_test(host, test_gemv_ks);
    suite_add_tcase(s, host);
    if (!cu_have_device(why, sizeof why)) {
        printf("test_cuda_kernels: skipped: no CUDA device (%s); the host-side rules run\n", why);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
    }
    REF = gpt2k_ops_ref();
    TCase *tc = tcase_create("kernels");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_layernorm);
    tcase_add_test(tc, test_embed);
    tcase_add_test(tc, test_argmax);
    tcase_add_test(tc, test_sample);
    /* GPT2C_CUDA_TEST_QUICK=1: the small shapes only, for runs under compute-sanitizer */
    const int quick = getenv("GPT2C_CUDA_TEST_QUICK") && atoi(getenv("GPT2C_CUDA_TEST_QUICK"));
    tcase_add_loop_test(tc, test_matmul, 0, quick ? 10 : N_MSHAPES);
    tcase_add_test(tc, test_q8);
    tcase_add_loop_test(tc, test_attention, 0, quick ? 4 : 8);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
