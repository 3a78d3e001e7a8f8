/* CPU kernels: plain C references, AVX2 and AVX-512 variants, run-time dispatch.
 *
 * Kernels know nothing of models: they take plain pointers and named shapes.
 * Shape letters used throughout:
 *   M  rows of activations (tokens in a batch)
 *   K  inner (reduction) dimension
 *   N  output columns (rows of a weight matrix)
 *   C  channels (embedding width), HD head dimension
 *
 * Weight matrices are stored as in GGUF: W[N][K], row-major, each output
 * column's weights contiguous over K. So out[m][n] = sum_k in[m][k] * W[n][k].
 *
 * Each op exists as a single-threaded slice function in a per-ISA table
 * (gpt2k_ops) and as a parallel driver (gpt2k_* in parallel.c) that splits the
 * work over a thread pool. */
#ifndef GPT2C_KERNELS_H
#define GPT2C_KERNELS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { GPT2K_ISA_SCALAR = 0, GPT2K_ISA_AVX2 = 1, GPT2K_ISA_AVX512 = 2 } gpt2k_isa;
#define GPT2K_ISA_COUNT 3

const char *gpt2k_isa_name(gpt2k_isa isa);
/* "scalar" | "avx2" | "avx512" | "auto" -> isa; auto -> best supported. -1 if unknown. */
int gpt2k_isa_parse(const char *s);
/* 1 if this CPU (and OS, via XGETBV) can run the ISA path. Read once (cpuid). */
int gpt2k_cpu_supports(gpt2k_isa isa);
gpt2k_isa gpt2k_best_isa(void);

/* Element type of fp weight matrices (Q8_0 has its own entry points) and of
 * the KV cache. */
typedef enum { GPT2K_W_F32 = 0, GPT2K_W_F16 = 1 } gpt2k_wtype;
/* packed Q8_0 layouts (see the Q8_0 section below) */
typedef enum { GPT2K_Q8_ROWS4 = 0, GPT2K_Q8_COLS16 = 1 } gpt2k_q8_layout;

/* ---- slice kernels (single thread) -------------------------------------- */

/* Where a sequence's cached keys and values live. Position t is row t % bs
 * of block blocks[t / bs]: channel c of its key at k + blocks[t / bs] *
 * block_stride + (t % bs) * ld + chan(c), its value at the same offset from
 * v, where chan(c) = c when head_dim == 0 (a position's channels together)
 * and (c / head_dim) * head_stride + c % head_dim otherwise (each head's
 * positions together inside a block: ld = head_dim, head_stride = bs *
 * head_dim, so one head's keys stream). A contiguous cache is one block:
 * blocks = {0}, bs >= every position. Strides and offsets count elements of
 * type elem: fp32 (float) or fp16 (IEEE binary16 bits, uint16_t), which
 * halves the bytes attention reads and the cache's memory.
 *
 * keys_t != 0 (with head_dim > 0): keys transposed inside each head's run,
 * channel c of the key of position t at k + blocks[t / bs] * block_stride +
 * (c / head_dim) * head_stride + (c % head_dim) * bs + t % bs; values as
 * above. The keys of 8 consecutive positions are then one vector per
 * channel, so a score is one FMA chain over the channels in one lane: the
 * same operations for a query alone or in a tile of queries (attention_rows),
 * with no horizontal sums. The CPU backend's cache has this form. */
typedef struct gpt2k_kv_view {
    const void *k, *v;
    const int *blocks;
    size_t block_stride; /* elements from one block to the next */
    int bs;              /* positions per block */
    int ld;              /* elements from one position to the next inside a block */
    int head_dim;        /* 0, or channels per head run (see above) */
    size_t head_stride;  /* elements from one head to the next inside a block */
    gpt2k_wtype elem;    /* GPT2K_W_F32 (0) or GPT2K_W_F16 */
    int keys_t;          /* keys transposed inside each head's run (see above) */
} gpt2k_kv_view;

typedef struct gpt2k_ops {
    gpt2k_isa isa;

    /* out[m][n] (+)= sum_k in[m][k] * w[n][k] + bias[n], for m in [0,M), n in [n0,n1).
     * ldo / ldi are row strides (floats). bias may be NULL. accumulate != 0 adds
     * the result to out (fused residual). */
    void (*matmul_f32)(float *out, int ldo, const float *in, int ldi, const float *w,
                       const float *bias, int M, int K, int n0, int n1, int accumulate);
    /* Same with fp16 weights (IEEE binary16 bits). */
    void (*matmul_f16)(float *out, int ldo, const float *in, int ldi, const uint16_t *w,
                       const float *bias, int M, int K, int n0, int n1, int accumulate);
    /* Same as matmul_f32 / matmul_f16 on weights rearranged by
     * gpt2k_pack_weights (n0 a multiple of GPT2K_PANEL), with results equal bit
     * for bit to theirs. NULL where the ISA path has no packed kernel: callers
     * then keep the plain layout. */
    void (*matmul_packed)(float *out, int ldo, const float *in, int ldi, const void *wp,
                          gpt2k_wtype wt, const float *bias, int M, int K, int n0, int n1,
                          int accumulate);

    /* One row: out = (x - mean) / sqrt(var + eps) * g + b. out may equal x. */
    void (*layernorm)(float *out, const float *x, const float *g, const float *b, int C,
                      float eps);
    /* In place, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
    void (*gelu)(float *x, int n);
    /* out[i] = a[i] + b[i]; out may alias a or b. */
    void (*add)(float *out, const float *a, const float *b, int n);
    /* The greedy pick over a logit row: the lowest index of the largest value
     * (ties: the first; -0 and +0 equal). NaNs never win, except x[0], which
     * is returned when it is NaN: the result of the scan best = 0; for i: if
     * x[i] > x[best], best = i. n >= 1. */
    int (*argmax)(const float *x, int n);

    /* One attention head for one query over positions 0 .. n_kv-1 of a cache
     * (see gpt2k_kv_view), the head's channels starting at column col:
     *   s[t] = scale * dot(q, key(t) + col)
     *   p = softmax(s);  out = sum_t p[t] * (value(t) + col)
     * q, out: HD floats. scratch: n_kv floats. */
    void (*attention_head)(float *out, const float *q, const struct gpt2k_kv_view *kv, int col,
                           int n_kv, int HD, float scale, float *scratch);
    /* The same head for rows consecutive queries of one sequence: row r
     * (q + r * ldq, out + r * ldo) attends to positions 0 .. n0 + r - 1.
     * Each row's out equals, bit for bit, attention_head for that row alone,
     * so a row's result does not depend on the tile it was computed in.
     * scratch: rows * (n0 + rows - 1) floats. n0 >= 1, rows >= 1. */
    void (*attention_rows)(float *out, int ldo, const float *q, int ldq,
                           const struct gpt2k_kv_view *kv, int col, int n0, int rows, int HD,
                           float scale, float *scratch);
    /* dst[i] = x[i] rounded to fp16 (nearest even; as gpt2k_f32_to_f16, bit
     * for bit): keys and values into an fp16 KV cache. */
    void (*to_f16)(uint16_t *dst, const float *x, int n);

    /* Q8_0 (see below): quantize n floats (n % 32 == 0) into n / 32 blocks. */
    void (*quantize_q8_0)(void *dst, const float *x, int n);
    /* out[m][n] (+)= dot(inq[m], w[n]) + bias[n] for n in [n0, n1): both operands
     * rows of K / 32 Q8_0 blocks (row strides K / 32 blocks); integer products per
     * block, fp32 accumulation across blocks. */
    void (*matmul_q8_0)(float *out, int ldo, const void *inq, const void *w, const float *bias,
                        int M, int K, int n0, int n1, int accumulate);
    /* Same on weights rearranged by gpt2k_q8_0_pack_weights in layout
     * q8_layout (n0 a multiple of its panel), with results equal bit for bit
     * to matmul_q8_0's. NULL where the ISA path has no packed kernel: callers
     * keep the plain layout. */
    void (*matmul_q8_0_packed)(float *out, int ldo, const void *inq, const void *wp,
                               const float *bias, int M, int K, int n0, int n1, int accumulate);
    gpt2k_q8_layout q8_layout;
} gpt2k_ops;

const gpt2k_ops *gpt2k_ops_ref(void);    /* scalar references */
const gpt2k_ops *gpt2k_ops_avx2(void);   /* NULL if not compiled in */
const gpt2k_ops *gpt2k_ops_avx512(void); /* NULL if not compiled in */
/* The table for an ISA (NULL if not compiled in or not supported by this CPU). */
const gpt2k_ops *gpt2k_ops_for(gpt2k_isa isa);

/* ---- Q8_0 ----------------------------------------------------------------
 * GGUF's 8-bit block format: 32 values share one fp16 scale d; q = round(x / d)
 * with d = max|x| / 127 (0 for an all-zero block), as llama.cpp encodes it, so
 * files and kernels agree bit for bit. 34 bytes per 32 values. */
#define GPT2K_QK8_0 32
typedef struct gpt2k_block_q8_0 {
    uint16_t d;     /* fp16 scale */
    int8_t qs[32];
} gpt2k_block_q8_0;
_Static_assert(sizeof(gpt2k_block_q8_0) == 34, "Q8_0 block must be 34 bytes");

/* bytes of one row of K values (K % 32 == 0) */
size_t gpt2k_q8_0_row_bytes(int K);
/* plain C: quantize (the reference encoding) and dequantize n values */
void gpt2k_quantize_q8_0_ref(void *dst, const float *x, int n);
void gpt2k_dequantize_q8_0(float *out, const void *src, int n);

/* ---- packed fp weights (pack.c) -------------------------------------------
 * W[N][K] as column groups of one 64-byte line per k: G = 16 rows of W for
 * fp32, 32 for fp16 (GPT2K_PACK_COLS), group g holding rows G g .. G g + G-1
 * transposed: element (n, k) at group n / G, offset k * G + n % G; the last
 * group is padded with zeros. A kernel's panel is 16 output columns (one
 * fp32 vector): panel p is group p / 2 columns 0-15 or 16-31 in fp16, and a
 * group itself in fp32. Decode then reads whole lines from each stream it
 * has open (an fp16 tile of 16-column panels each [K][16] would read half a
 * line per k from twice the streams: on Zen 4, 0.6x the cached speed and
 * 0.85x from memory), and prefill needs no packing of its own. */
#define GPT2K_PANEL 16
#define GPT2K_PACK_COLS_F16 32
#define GPT2K_PACK_COLS(t) ((t) == GPT2K_W_F16 ? GPT2K_PACK_COLS_F16 : GPT2K_PANEL)
size_t gpt2k_packed_bytes(gpt2k_wtype t, int N, int K);
void gpt2k_pack_weights(void *dst, const void *w, gpt2k_wtype t, int N, int K);
/* Only panels [p0, p1) (for splitting the packing across threads). */
void gpt2k_pack_panels(void *dst, const void *w, gpt2k_wtype t, int N, int K, int p0, int p1);
/* Row n of a packed matrix (K values) as fp32: embedding lookups from a
 * packed matrix shared with the LM head. */
void gpt2k_packed_row(float *out, const void *wp, gpt2k_wtype t, int K, int n);

/* Packed Q8_0 weights, in one of two layouts; each ops table names the one
 * its matmul_q8_0_packed reads (gpt2k_ops.q8_layout).
 *
 * GPT2K_Q8_ROWS4 (the AVX2 and AVX-512 BW tables): panels of GPT2K_Q8_PANEL
 * rows. For each block index b a panel holds one group: the 4 rows' fp16
 * scales side by side, then their 4 x 32 values; group (p, b) at index
 * p * (K / 32) + b, the last panel padded with zero rows. Decode then reads
 * one sequential stream that feeds 4 independent sums (a plain row of 768
 * values is 816 bytes: one short stream per output, a chain of dependent
 * FMAs), and widens the 4 scales with one instruction.
 *
 * GPT2K_Q8_COLS16 (the AVX-512 VNNI table): panels of GPT2K_Q8_COLS rows
 * (output columns). Group (p, b) holds the 16 rows' scales, then for each
 * 4 values k = 4j .. 4j+3 of block b the 16 rows' 4 values side by side,
 * stored as w + 128 (unsigned): one 64-byte vector is 16 columns x 4 k, the
 * unsigned operand of vpdpbusd, whose int32 lanes then are whole columns.
 *
 * Both hold the same 34 bytes per 32 values as the plain layout. */
#define GPT2K_Q8_PANEL 4
typedef struct gpt2k_q8_0_group {
    uint16_t d[GPT2K_Q8_PANEL]; /* fp16 scales of rows 0..3 */
    int8_t qs[GPT2K_Q8_PANEL][GPT2K_QK8_0];
} gpt2k_q8_0_group;
_Static_assert(sizeof(gpt2k_q8_0_group) == GPT2K_Q8_PANEL * sizeof(gpt2k_block_q8_0),
               "a packed group must be as large as the blocks it holds");
#define GPT2K_Q8_COLS 16
typedef struct gpt2k_q8_0_cols {
    uint16_t d[GPT2K_Q8_COLS];                       /* fp16 scales of rows 0..15 */
    uint8_t q[GPT2K_QK8_0 / 4][GPT2K_Q8_COLS][4];    /* [j][r][i]: w[r][4j + i] + 128 */
} gpt2k_q8_0_cols;
_Static_assert(sizeof(gpt2k_q8_0_cols) == GPT2K_Q8_COLS * sizeof(gpt2k_block_q8_0),
               "a packed column group must be as large as the blocks it holds");
/* Row r of a column group from block b of that row (its scale, its values
 * + 128); the one place the COLS16 encoding is written. */
void gpt2k_q8_0_cols_set(gpt2k_q8_0_cols *g, int r, const gpt2k_block_q8_0 *b);
/* rows per panel of a layout (a multiple of it divides GPT2K_PANEL) */
int gpt2k_q8_0_panel_rows(gpt2k_q8_layout l);
size_t gpt2k_q8_0_packed_bytes(gpt2k_q8_layout l, int N, int K);
void gpt2k_q8_0_pack_weights(gpt2k_q8_layout l, void *dst, const void *w, int N, int K);
/* Only panels [p0, p1). */
void gpt2k_q8_0_pack_panels(gpt2k_q8_layout l, void *dst, const void *w, int N, int K, int p0,
                            int p1);
/* Row n of a packed matrix, dequantized (K values). */
void gpt2k_q8_0_packed_row(gpt2k_q8_layout l, float *out, const void *wp, int K, int n);

/* ---- fp16 ---------------------------------------------------------------- */

float gpt2k_f16_to_f32(uint16_t h);
uint16_t gpt2k_f32_to_f16(float f); /* round to nearest even; inf/nan kept */

/* ---- thread pool --------------------------------------------------------- */

typedef struct gpt2k_pool gpt2k_pool;
/* n_threads >= 1 (the caller's thread is thread 0). NULL on failure. */
gpt2k_pool *gpt2k_pool_create(int n_threads);
void gpt2k_pool_free(gpt2k_pool *p);
int gpt2k_pool_size(const gpt2k_pool *p);
/* Runs fn(arg, ith, nth) on every thread (ith in [0, nth)) and waits for all.
 * No allocation. Not reentrant. */
void gpt2k_pool_run(gpt2k_pool *p, void (*fn)(void *arg, int ith, int nth), void *arg);

/* ---- parallel drivers ---------------------------------------------------- */
/* Each splits its op over the pool's threads with the given ops table. */

/* out[M][N] (+)= in[M][K] * W[N][K]^T + bias. Columns split across threads. */
void gpt2k_matmul(gpt2k_pool *p, const gpt2k_ops *ops, float *out, int ldo, const float *in,
                  int ldi, const void *w, gpt2k_wtype wtype, const float *bias, int M, int K,
                  int N, int accumulate);

/* The same on weights packed by gpt2k_pack_weights; needs ops->matmul_packed. */
void gpt2k_matmul_packed(gpt2k_pool *p, const gpt2k_ops *ops, float *out, int ldo,
                         const float *in, int ldi, const void *wp, gpt2k_wtype wtype,
                         const float *bias, int M, int K, int N, int accumulate);

/* out[M][N] (+)= in[M][K] * W^T + bias with Q8_0 weights: each row of `in` is
 * quantized to Q8_0 once (into qbuf: M * gpt2k_q8_0_row_bytes(K) bytes, shared by
 * all threads), then columns are split across threads. K % 32 == 0. */
void gpt2k_matmul_q8_0(gpt2k_pool *p, const gpt2k_ops *ops, float *out, int ldo, const float *in,
                       int ldi, const void *w, const float *bias, int M, int K, int N,
                       int accumulate, void *qbuf);
/* The same on packed Q8_0 weights (ops->matmul_q8_0_packed must exist). */
void gpt2k_matmul_q8_0_packed(gpt2k_pool *p, const gpt2k_ops *ops, float *out, int ldo,
                              const float *in, int ldi, const void *wp, const float *bias, int M,
                              int K, int N, int accumulate, void *qbuf);

/* rows x C LayerNorm, rows split across threads. ld*: row strides. */
void gpt2k_layernorm_rows(gpt2k_pool *p, const gpt2k_ops *ops, float *out, int ldo,
                          const float *x, int ldx, const float *g, const float *b, int rows,
                          int C, float eps);

/* In-place GELU over rows x n (row stride ld). */
void gpt2k_gelu_rows(gpt2k_pool *p, const gpt2k_ops *ops, float *x, int ld, int rows, int n);

/* Causal multi-head attention for R query rows of a ragged batch: row r is
 * position pos[r] of the sequence whose cache is views[seq[r]] and attends to
 * that sequence's positions 0 .. pos[r] (their keys/values already written).
 *   q:   [R][ldq], head h at q + r*ldq + h*HD
 *   out: [R][ldo], head h at out + r*ldo + h*HD
 * scratch: nth * scratch_stride floats, scratch_stride > every pos[r]; runs
 * of consecutive rows of one sequence go to ops->attention_rows in tiles of
 * up to GPT2K_ATT_ROWS rows as far as the stride holds their scores
 * (GPT2K_ATT_ROWS * n_ctx floats hold any tile).
 * cost: R + 1 int64 of workspace. (row, head) pairs are split across threads
 * by their cost (keys read), so a long sequence does not leave threads idle.
 * scale = 1/sqrt(HD). */
#define GPT2K_ATT_ROWS 8
void gpt2k_attention(gpt2k_pool *p, const gpt2k_ops *ops, float *out, int ldo, const float *q,
                     int ldq, const gpt2k_kv_view *views, const int *seq, const int *pos, int R,
                     int NH, int HD, float *scratch, int scratch_stride, int64_t *cost);

/* ---- the OpenBLAS baseline (gemm_openblas.c) ----------------------------- */

/* Same contract as gpt2k_matmul with F32 weights, computed by cblas_sgemm on
 * OpenBLAS's own threads. */
void gpt2k_matmul_openblas(float *out, int ldo, const float *in, int ldi, const float *w,
                           const float *bias, int M, int K, int N, int accumulate);
void gpt2k_openblas_set_threads(int n);
const char *gpt2k_openblas_config(void);

#endif
