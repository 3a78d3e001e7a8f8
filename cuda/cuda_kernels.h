/* CUDA kernels of the GPT-2 forward, as C-callable launchers (cuda/k_*.cu).
 *
 * Kernels know nothing of models: plain device pointers and named shapes, the
 * same letters as kernels/kernels.h (M rows, K inner, N output columns, C
 * channels, HD head dim, NH heads). Weights are W[N][K] row-major as in GGUF:
 * out[m][n] = sum_k x[m][k] * W[n][k].
 *
 * Every launcher enqueues on `stream` and returns 0 or a cudaError_t (the
 * launch's own error; execution errors surface at the next synchronisation).
 * Nothing here allocates device memory. */
#ifndef GPT2C_CUDA_KERNELS_H
#define GPT2C_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element types on the device. Activations fed to matmuls (LayerNorm output,
 * attention output, GELU output) use the weights' float type: F32, F16 or BF16
 * (F16 when the weights are Q8_0). The residual stream, QKV, logits and all
 * accumulation are fp32. */
typedef enum { G2C_F32 = 0, G2C_F16 = 1, G2C_BF16 = 2, G2C_Q8_0 = 3 } g2c_dtype;

const char *g2c_dtype_name(g2c_dtype t);
size_t g2c_dtype_size(g2c_dtype t); /* bytes per element; Q8_0: see g2c_q8_bytes */

/* Q8_0 weights on the device, repacked from GGUF's 34-byte blocks so that
 * every load is aligned: N*K int8 values (row n at n*K), then N*K/32 fp32
 * scales (row n at n*K/32). K % 32 == 0. */
size_t g2c_q8_bytes(int N, int K);

/* Matmul epilogues, fused into every matmul kernel:
 *   STORE: out (fp32) = acc + bias
 *   ACCUM: out (fp32) += acc + bias     (the residual add)
 *   GELU:  out (activation type) = gelu_tanh(acc + bias)
 * bias may be NULL. */
typedef enum { G2C_EPI_STORE = 0, G2C_EPI_ACCUM = 1, G2C_EPI_GELU = 2 } g2c_epi;

/* ---- elementwise / rows ---------------------------------------------------- */

/* x[r][c] = wte[ids[r]][c] + wpe[pos[r]][c] (fp32 out, row stride C).
 * wte: [V][C] of type wt (F32, F16, BF16 or Q8_0 as g2c_q8_bytes); wpe: fp32. */
int g2c_embed(cudaStream_t st, float *x, const int *ids, const int *pos, int R, const void *wte,
              g2c_dtype wt, int V, const float *wpe, int C);

/* LayerNorm of R rows: out[r] = LN(x[rows ? rows[r] : r]) * g + b, out of type
 * ot (row stride ldo), x fp32 (row stride ldx). Two-pass mean/variance in fp32. */
int g2c_layernorm(cudaStream_t st, void *out, g2c_dtype ot, int ldo, const float *x, int ldx,
                  const int *rows, const float *g, const float *b, int R, int C, float eps);

/* Converts n fp32 values to type ot (used by tests and the cuBLAS path). */
int g2c_convert(cudaStream_t st, void *out, g2c_dtype ot, const float *in, size_t n);

/* The epilogue alone over an fp32 [M][N] matrix acc (row stride lda): used
 * after cuBLAS, which computes acc without bias. For STORE and ACCUM, acc may
 * equal out (then only the bias is added). */
int g2c_epilogue(cudaStream_t st, void *out, int ldo, g2c_epi epi, g2c_dtype ot, const float *acc,
                 int lda, const float *bias, int M, int N);

/* out[r] = the greedy choice over row r of x (fp32, N values, row stride ldx),
 * as gpt2_argmax: the lowest index of the largest value; NaNs never win, except
 * that a NaN at index 0 gives 0. R rows. */
int g2c_argmax(cudaStream_t st, int *out, const float *x, int ldx, int R, int N);

/* One row's sampling parameters (engine/backend.h: gpt2_row_sampling). */
typedef struct g2c_sample_params {
    int on;         /* 0: the row is skipped, out[r] untouched */
    int top_k;      /* 0: off */
    float inv_temp; /* 1 / temperature */
    float top_p;    /* >= 1: off */
    double u;       /* the draw, uniform in [0, 1) */
} g2c_sample_params;

/* out[r] = the token drawn from row r of x (fp32, N values, row stride ldx)
 * by gpt2_sample_row's rule (engine/sample_row.c: top-k / top-p kept set,
 * draw in id order), for the rows whose prm[r].on is set. p: scratch of R
 * rows of ldp >= N floats (left holding the probabilities). x is not changed.
 * R rows, one block each. */
int g2c_sample(cudaStream_t st, int *out, float *p, int ldp, const float *x, int ldx,
               const g2c_sample_params *prm, int R, int N);

/* ---- matmul ------------------------------------------------------------------ */

/* Few rows (decode): every weight is read once per 8 rows, 128-bit loads when K
 * and the row strides allow. x and w of type t (F32, F16 or BF16). Any M. */
int g2c_gemv(cudaStream_t st, void *out, int ldo, g2c_epi epi, g2c_dtype t, const void *x, int ldx,
             const void *w, const float *bias, int M, int K, int N);
/* Warps per output column g2c_gemv uses (1, 2, 3, 4, 6 or 8) for N columns of
 * K elements of elem_bytes each. */
int g2c_gemv_ks(int N, int K, int elem_bytes);

/* Tensor-core GEMM (WMMA m16n16k16, fp32 accumulate), shared-memory tiles
 * filled by cp.async, multi-buffered (a 4-stage ring for the 64x64 tile). t is F16 or BF16. Needs K % 8 == 0,
 * ldx % 8 == 0 and 16-byte aligned x, w (g2c_gemm_ok says). Any M, N. */
int g2c_gemm_ok(g2c_dtype t, const void *x, int ldx, const void *w, int K);
/* ws (ws_bytes, may be NULL): fp32 workspace for split K, used when the
 * output tiles are fewer than the n_sm SMs; up to G2C_GEMM_MAX_SPLITS * M * N
 * floats are useful (fewer splits when it is smaller). */
#define G2C_GEMM_MAX_SPLITS 8
int g2c_gemm(cudaStream_t st, void *out, int ldo, g2c_epi epi, g2c_dtype t, const void *x, int ldx,
             const void *w, const float *bias, int M, int K, int N, int n_sm, float *ws,
             size_t ws_bytes);
/* The number of K splits g2c_gemm uses for this shape (1: none). */
int g2c_gemm_splits(int M, int K, int N, int n_sm, size_t ws_bytes);

/* Q8_0 weights (g2c_q8_bytes layout): activations x (type xt: F16 or F32) are
 * quantized per row into xq (M*K int8 then M*K/32 fp32 scales, g2c_q8_bytes(M,
 * K) bytes) with the reference Q8_0 encoding, then dp4a integer dot products
 * per 32-block, fp32 accumulation. Epilogue output type for GELU: xt. */
int g2c_gemv_q8(cudaStream_t st, void *out, int ldo, g2c_epi epi, g2c_dtype xt, const void *x,
                int ldx, const void *wq, const float *bias, int M, int K, int N, void *xq);

/* Chooses a kernel: GEMV for M <= 8 or F32, the tensor-core GEMM otherwise
 * (GEMV again when g2c_gemm_ok fails), Q8_0 GEMV for Q8_0 weights. wt is the
 * weights' type, xt the activations' type; ws, ws_bytes: the GEMM's split-K
 * workspace (may be NULL). */
int g2c_matmul(cudaStream_t st, void *out, int ldo, g2c_epi epi, g2c_dtype xt, const void *x,
               int ldx, const void *w, g2c_dtype wt, const float *bias, int M, int K, int N,
               void *xq, int n_sm, float *ws, size_t ws_bytes);

/* ---- attention over the paged KV cache ---------------------------------------
 * The cache is a pool of blocks of bs positions; every block holds, for every
 * layer, bs keys then bs values of C fp16 channels:
 *   key(layer l, block b, row i) = pool + ((b * L + l) * 2 + 0) * bs * C + i * C
 *   value                        = pool + ((b * L + l) * 2 + 1) * bs * C + i * C
 * A batch row r is position pos[r] of a sequence whose block table starts at
 * tables + tab[r]: position t lives in block tables[tab[r] + t / bs], row t % bs. */
typedef struct g2c_kv {
    uint16_t *pool; /* fp16 bits */
    int L, C, bs, layer;
    const int *tables;
} g2c_kv;

/* Writes the keys and values of R rows (qkv: fp32 [R][ldq], K at column C, V
 * at 2C) into the cache at their positions. */
int g2c_kv_write(cudaStream_t st, const g2c_kv *kv, const float *qkv, int ldq, const int *pos,
                 const int *tab, int R);

/* Flash-style causal attention for prefill: n_tiles tiles of up to 64
 * consecutive rows of one sequence (tiles[2i] = first row, tiles[2i+1] = row
 * count); each (tile, head) streams key/value tiles through shared memory with
 * an online softmax and never materialises the score matrix. q: fp32 rows
 * (stride ldq, head h at h*HD); out: type ot (stride ldo). HD <= 128. */
int g2c_attention_prefill(cudaStream_t st, const g2c_kv *kv, void *out, g2c_dtype ot, int ldo,
                          const float *q, int ldq, const int *pos, const int *tab,
                          const int *tiles, int n_tiles, int NH, int HD);

/* Split-K ("flash-decoding") attention for n_rows rows (rows[i] = batch row):
 * each (row, head) splits positions 0..pos into chunks of G2C_DECODE_CHUNK,
 * one block each (g2c_decode_splits(n_ctx) of them; those past pos exit at
 * once, so the launch shape depends only on n_rows: graph-friendly). The last
 * chunk to finish merges the others: one launch.
 *   part: workspace of n_rows * NH * splits * (HD + 2) floats.
 *   counters: n_rows * NH ints, zero before the call; left zero.
 *   write_kv: 1 when the caller did not write the rows' keys and values with
 *     g2c_kv_write: each row writes its own (q carries K at column C and V at
 *     2C, as qkv does). Only valid when no two rows are of one sequence.
 * HD <= 128. */
#define G2C_DECODE_CHUNK 128
int g2c_decode_splits(int n_ctx);
int g2c_attention_decode(cudaStream_t st, const g2c_kv *kv, void *out, g2c_dtype ot, int ldo,
                         const float *q, int ldq, const int *pos, const int *tab, const int *rows,
                         int n_rows, int NH, int HD, int n_ctx, float *part, int *counters,
                         int write_kv);

#ifdef __cplusplus
}
#endif

#endif
