/* CUDA backend: the GPT-2 forward on one GPU with the kernels of cuda/k_*.cu
 * (or cuBLAS for the matmuls, --gemm cublas), behind engine/backend.h.
 *
 * create() does every allocation: the weights (one device buffer, converted
 * once to the device type), the paged KV pool (fp16), one activation arena,
 * the per-call metadata buffers (pinned host + device). forward() uploads the
 * batch's metadata with one copy, enqueues ~10 kernels per layer on one
 * stream, and copies back the logit rows asked for. Decode-shaped batches
 * (no prefill tiles) are captured once per shape in a CUDA graph and replayed.
 *
 * Device types (GPT2C_CUDA_DTYPE): f16 (default) or bf16 weights and matmul
 * inputs, f32 for reference runs, q8_0 to keep Q8_0 matrices as Q8_0 (dp4a
 * GEMV) with f16 activations. The residual stream, QKV, softmax and all
 * accumulation are fp32 in every mode. GPT2C_CUDA_GRAPHS=0 turns graphs off. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "backend.h"
#include "cuda_kernels.h"
#include "errors.h"
#include "gemm_cublas.h"
#include "gguf.h"
#include "gpt2_cuda.h"
#include "kernels.h"
#include "model.h"

#define MAX_GRAPHS 32
#define PREFILL_MIN_ROWS 4 /* sequences with this many rows use the flash tiles */
#define PREFILL_TILE 64    /* rows per prefill tile (k_attention.cu: PF_ROWS) */
#define ALIGN 256
#define STAGED_LOGIT_ROWS 8 /* logit rows copied back through pinned memory */
#define SAMPLE_INTS ((int)(sizeof(g2c_sample_params) / sizeof(int)))

typedef struct dmat {
    void *p;
    g2c_dtype t;
    int K, N;
} dmat;

typedef struct dlayer {
    const float *ln1_g, *ln1_b, *qkv_b, *proj_b, *ln2_g, *ln2_b, *up_b, *down_b;
    dmat qkv, proj, up, down;
} dlayer;

/* counts that fix every launch of a forward: the key of a captured graph */
typedef struct shape {
    int R, S, G, D, P; /* rows, sequences, logit rows, decode rows, prefill tiles */
    int A;             /* 1: the argmax of each logit row is asked for */
    int Z;             /* 1: some logit rows are sampled here (gpt2_batch.sampling) */
} shape;

typedef struct graph_entry {
    shape k;
    cudaGraphExec_t exec;
} graph_entry;

typedef struct cuda_state {
    const gpt2_model *m;
    gpt2_config cfg;
    int device, n_sm, HD;
    char isa[16];
    g2c_dtype act; /* matmul input type */
    int keep_q8;   /* Q8_0 matrices stay Q8_0 (GPT2C_CUDA_DTYPE=q8_0) */
    int cublas_on, graphs_on;
    cudaStream_t stream;
    g2c_cublas *cublas;
    /* weights: one buffer */
    void *wbuf;
    size_t wbytes, woff;
    dmat tok, lm;
    float *wpe, *lnf_g, *lnf_b;
    dlayer *layers;
    /* KV pool */
    uint16_t *kv;
    size_t kv_size;
    int kv_blocks, bs;
    /* activation arena */
    void *arena;
    size_t arena_size;
    float *x, *qkv, *logits, *part, *scratch;
    int *amax;     /* argmax of each logit row */
    int *samp;     /* the token drawn for each sampled logit row */
    float *probs;  /* the sampler's probabilities, one row per logit row */
    int *dec_cnt;  /* decode attention's split counters (zero between launches) */
    void *xn, *att, *ff, *xq, *cublas_ws;
    float *gemm_ws; /* split-K partial sums of the native GEMM */
    size_t gemm_ws_bytes;
    /* batch metadata: packed ints, host (pinned) and device */
    int *meta_h, *meta_d;
    size_t meta_ints;
    /* pinned staging for the logits of decode-sized steps: a copy into pageable
     * memory goes through the driver's own bounce buffer, slower per byte */
    float *logits_h;
    int staged_rows;
    int *amax_h; /* pinned: the argmax rows */
    int *samp_h; /* pinned: the sampled rows */
    int max_batch, max_logit, max_tab;
    graph_entry graphs[MAX_GRAPHS];
    int n_graphs;
} cuda_state;

static int cuda_fail(gpt2_error *err, int code, const char *what, cudaError_t e)
{
    return gpt2_seterr(err, code, "cuda: %s: %s (%s)", what, cudaGetErrorString(e),
                       cudaGetErrorName(e));
}

/* ---- sizes: computed in one place ---------------------------------------------- */

static size_t up_align(size_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

/* device type of a matrix given the file type and the mode */
static g2c_dtype mat_type(const cuda_state *s, uint32_t file_type)
{
    if (s->keep_q8 && file_type == GGML_T_Q8_0)
        return G2C_Q8_0;
    return s->act;
}

static size_t mat_bytes(g2c_dtype t, int N, int K)
{
    return t == G2C_Q8_0 ? g2c_q8_bytes(N, K) : (size_t)N * K * g2c_dtype_size(t);
}

/* ---- weight upload ---------------------------------------------------------------- */

static void f32_to_bf16(uint16_t *out, const float *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &in[i], 4);
        if ((u & 0x7fffffffu) > 0x7f800000u)
            out[i] = (uint16_t)((u >> 16) | 0x40); /* NaN stays NaN */
        else
            out[i] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16); /* nearest even */
    }
}

/* Rows r0 .. r0+n-1 of a file matrix as fp32. */
static void rows_f32(const gpt2_wmat *w, int r0, int n, float *out)
{
    for (int r = 0; r < n; r++)
        gpt2_embd_row(w, r0 + r, out + (size_t)r * w->K, 0);
}

static int upload(cuda_state *s, void *dst, const void *src, size_t bytes, const char *what,
                  gpt2_error *err)
{
    cudaError_t e = cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice);
    if (e != cudaSuccess) {
        char msg[160];
        snprintf(msg, sizeof msg, "uploading %s (%zu bytes)", what, bytes);
        return cuda_fail(err, GPT2_ERR_IO, msg, e);
    }
    return 0;
}

/* Takes the next piece of the weight buffer. */
static void *wtake(cuda_state *s, size_t bytes)
{
    void *p = (char *)s->wbuf + s->woff;
    s->woff += up_align(bytes);
    return p;
}

/* Converts a file matrix to its device type, in chunks of rows through host
 * staging (stage: room for chunk rows of K fp32 and their converted form). */
static int upload_mat(cuda_state *s, dmat *d, const gpt2_wmat *w, const char *what, float *stage,
                      void *conv, int chunk, gpt2_error *err)
{
    d->t = mat_type(s, w->type);
    d->K = w->K, d->N = w->N;
    d->p = wtake(s, mat_bytes(d->t, w->N, w->K));
    const int K = w->K, nb = K / 32;
    for (int r0 = 0; r0 < w->N; r0 += chunk) {
        int n = w->N - r0 < chunk ? w->N - r0 : chunk;
        size_t cnt = (size_t)n * K;
        int rc = 0;
        if (d->t == G2C_Q8_0) {
            /* repack 34-byte blocks: int8 values here, fp32 scales after all rows */
            int8_t *q = conv;
            float *sc = (float *)(q + cnt);
            const char *src = (const char *)w->data + (size_t)r0 * gpt2k_q8_0_row_bytes(K);
            for (size_t b = 0; b < (size_t)n * nb; b++) {
                const gpt2k_block_q8_0 *blk = (const gpt2k_block_q8_0 *)(src + b * 34);
                memcpy(q + b * 32, blk->qs, 32);
                sc[b] = gpt2k_f16_to_f32(blk->d);
            }
            rc = upload(s, (int8_t *)d->p + (size_t)r0 * K, q, cnt, what, err);
            if (!rc)
                rc = upload(s, (char *)d->p + (size_t)w->N * K + (size_t)r0 * nb * sizeof(float),
                            sc, (size_t)n * nb * sizeof(float), what, err);
        } else if (d->t == G2C_F16 && w->type == GGML_T_F16) {
            rc = upload(s, (uint16_t *)d->p + (size_t)r0 * K,
                        (const uint16_t *)w->data + (size_t)r0 * K, cnt * 2, what, err);
        } else if (d->t == G2C_F32 && w->type == GGML_T_F32) {
            rc = upload(s, (float *)d->p + (size_t)r0 * K, (const float *)w->data + (size_t)r0 * K,
                        cnt * 4, what, err);
        } else {
            rows_f32(w, r0, n, stage);
            if (d->t == G2C_F32) {
                rc = upload(s, (float *)d->p + (size_t)r0 * K, stage, cnt * 4, what, err);
            } else {
                uint16_t *h = conv;
                if (d->t == G2C_F16)
                    for (size_t i = 0; i < cnt; i++)
                        h[i] = gpt2k_f32_to_f16(stage[i]);
                else
                    f32_to_bf16(h, stage, cnt);
                rc = upload(s, (uint16_t *)d->p + (size_t)r0 * K, h, cnt * 2, what, err);
            }
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int upload_vec(cuda_state *s, const float **dst, const float *src, size_t n,
                      const char *what, gpt2_error *err)
{
    float *p = wtake(s, n * sizeof(float));
    *dst = p;
    return upload(s, p, src, n * sizeof(float), what, err);
}

static int upload_weights(cuda_state *s, gpt2_error *err)
{
    const gpt2_model *m = s->m;
    const gpt2_config *c = &s->cfg;
    const int C = c->n_embd, FF = c->n_ff;
    const int shared_lm = m->lm_head.data == m->tok_embd.data;
    /* total size first: one allocation */
    size_t total = up_align(mat_bytes(mat_type(s, m->tok_embd.type), c->n_vocab, C));
    if (!shared_lm)
        total += up_align(mat_bytes(mat_type(s, m->lm_head.type), c->n_vocab, C));
    total += up_align((size_t)c->n_ctx * C * 4) + 2 * up_align((size_t)C * 4);
    for (int l = 0; l < c->n_layer; l++) {
        const gpt2_layer *L = &m->layers[l];
        total += up_align(mat_bytes(mat_type(s, L->qkv.type), 3 * C, C));
        total += up_align(mat_bytes(mat_type(s, L->proj.type), C, C));
        total += up_align(mat_bytes(mat_type(s, L->up.type), FF, C));
        total += up_align(mat_bytes(mat_type(s, L->down.type), C, FF));
        total += 6 * up_align((size_t)C * 4) + up_align((size_t)3 * C * 4) + up_align((size_t)FF * 4);
    }
    s->wbytes = total;
    cudaError_t e = cudaMalloc(&s->wbuf, total);
    if (e != cudaSuccess) {
        char msg[128];
        snprintf(msg, sizeof msg, "cudaMalloc of %.1f MB for the weights", total / 1e6);
        return cuda_fail(err, GPT2_ERR_NOMEM, msg, e);
    }
    const int chunk = 1024; /* rows per staging pass */
    const int kmax = C > FF ? C : FF;
    float *stage = malloc((size_t)chunk * kmax * sizeof(float));
    void *conv = malloc((size_t)chunk * kmax * sizeof(float));
    if (!stage || !conv) {
        free(stage), free(conv);
        return gpt2_seterr(err, GPT2_ERR_NOMEM, "cuda: out of host memory for weight staging");
    }
    int rc = upload_mat(s, &s->tok, &m->tok_embd, "token_embd", stage, conv, chunk, err);
    if (!rc) {
        if (shared_lm)
            s->lm = s->tok;
        else
            rc = upload_mat(s, &s->lm, &m->lm_head, "output", stage, conv, chunk, err);
    }
    if (!rc) { /* position embeddings stay fp32 (gpt2_embd_row converts any type) */
        float *wpe = wtake(s, (size_t)c->n_ctx * C * 4);
        s->wpe = wpe;
        for (int r0 = 0; r0 < c->n_ctx && !rc; r0 += chunk) {
            int n = c->n_ctx - r0 < chunk ? c->n_ctx - r0 : chunk;
            rows_f32(&m->pos_embd, r0, n, stage);
            rc = upload(s, wpe + (size_t)r0 * C, stage, (size_t)n * C * 4, "position_embd", err);
        }
    }
    if (!rc)
        rc = upload_vec(s, (const float **)&s->lnf_g, m->lnf_g, C, "output_norm.weight", err);
    if (!rc)
        rc = upload_vec(s, (const float **)&s->lnf_b, m->lnf_b, C, "output_norm.bias", err);
    for (int l = 0; l < c->n_layer && !rc; l++) {
        const gpt2_layer *L = &m->layers[l];
        dlayer *D = &s->layers[l];
        char what[64];
        snprintf(what, sizeof what, "blk.%d", l);
        rc = upload_mat(s, &D->qkv, &L->qkv, what, stage, conv, chunk, err);
        if (!rc) rc = upload_mat(s, &D->proj, &L->proj, what, stage, conv, chunk, err);
        if (!rc) rc = upload_mat(s, &D->up, &L->up, what, stage, conv, chunk, err);
        if (!rc) rc = upload_mat(s, &D->down, &L->down, what, stage, conv, chunk, err);
        if (!rc) rc = upload_vec(s, &D->ln1_g, L->ln1_g, C, what, err);
        if (!rc) rc = upload_vec(s, &D->ln1_b, L->ln1_b, C, what, err);
        if (!rc) rc = upload_vec(s, &D->qkv_b, L->qkv_b, (size_t)3 * C, what, err);
        if (!rc) rc = upload_vec(s, &D->proj_b, L->proj_b, C, what, err);
        if (!rc) rc = upload_vec(s, &D->ln2_g, L->ln2_g, C, what, err);
        if (!rc) rc = upload_vec(s, &D->ln2_b, L->ln2_b, C, what, err);
        if (!rc) rc = upload_vec(s, &D->up_b, L->up_b, FF, what, err);
        if (!rc) rc = upload_vec(s, &D->down_b, L->down_b, C, what, err);
    }
    free(stage);
    free(conv);
    return rc;
}

/* ---- arena ------------------------------------------------------------------------ */

/* Lays out the arena (base NULL: sizes only); returns its size. */
static size_t arena_layout(cuda_state *s, char *base)
{
    const gpt2_config *c = &s->cfg;
    const size_t B = (size_t)s->max_batch, C = (size_t)c->n_embd, FF = (size_t)c->n_ff;
    const size_t a = g2c_dtype_size(s->act);
    const int splits = g2c_decode_splits(c->n_ctx);
    size_t off = 0;
#define TAKE(ptr, bytes) (ptr = (void *)(base ? base + off : NULL), off += up_align(bytes))
    TAKE(s->x, B * C * 4);
    TAKE(s->qkv, B * 3 * C * 4);
    TAKE(s->xn, B * C * a);
    TAKE(s->att, B * C * a);
    TAKE(s->ff, B * FF * a);
    TAKE(s->logits, (size_t)s->max_logit * c->n_vocab * 4);
    TAKE(s->amax, (size_t)s->max_logit * sizeof(int));
    TAKE(s->samp, (size_t)s->max_logit * sizeof(int));
    TAKE(s->probs, (size_t)s->max_logit * c->n_vocab * 4);
    TAKE(s->part, B * c->n_head * splits * (s->HD + 2) * 4);
    TAKE(s->dec_cnt, B * c->n_head * sizeof(int));
    /* split K pays where a matmul has few output tiles, i.e. N <= C at most
     * rows: room for the largest split count of those */
    s->gemm_ws_bytes = (size_t)G2C_GEMM_MAX_SPLITS * B * C * sizeof(float);
    TAKE(s->gemm_ws, s->gemm_ws_bytes);
    s->xq = NULL, s->scratch = NULL, s->cublas_ws = NULL;
    if (s->keep_q8)
        TAKE(s->xq, g2c_q8_bytes((int)B, (int)(C > FF ? C : FF)));
    if (s->cublas_on) {
        TAKE(s->scratch, B * FF * 4);
        TAKE(s->cublas_ws, (size_t)32 << 20); /* cuBLAS workspace: no allocation while capturing */
    }
#undef TAKE
    return off;
}

/* ---- create / destroy ------------------------------------------------------------------ */

static void cuda_destroy(void *p)
{
    cuda_state *s = p;
    if (!s)
        return;
    cudaSetDevice(s->device);
    for (int i = 0; i < s->n_graphs; i++)
        cudaGraphExecDestroy(s->graphs[i].exec);
    g2c_cublas_close(s->cublas);
    if (s->stream)
        cudaStreamDestroy(s->stream);
    cudaFree(s->wbuf);
    cudaFree(s->kv);
    cudaFree(s->arena);
    cudaFree(s->meta_d);
    if (s->meta_h)
        cudaFreeHost(s->meta_h);
    if (s->logits_h)
        cudaFreeHost(s->logits_h);
    if (s->amax_h)
        cudaFreeHost(s->amax_h);
    if (s->samp_h)
        cudaFreeHost(s->samp_h);
    free(s->layers);
    free(s);
}

static int resolve_dtype(cuda_state *s, gpt2_error *err)
{
    const char *v = getenv("GPT2C_CUDA_DTYPE");
    s->keep_q8 = v && strcmp(v, "q8_0") == 0;
    if (!v || !*v || strcmp(v, "f16") == 0 || s->keep_q8)
        s->act = G2C_F16;
    else if (strcmp(v, "bf16") == 0)
        s->act = G2C_BF16;
    else if (strcmp(v, "f32") == 0)
        s->act = G2C_F32;
    else
        return gpt2_seterr(err, GPT2_ERR_INVALID,
                           "cuda: GPT2C_CUDA_DTYPE=%s: expected f16, bf16, f32 or q8_0", v);
    return 0;
}

static void *cuda_create(const gpt2_model *m, const gpt2_backend_opts *o, gpt2_error *err)
{
    const gpt2_config *c = &m->cfg;
    char why[256];
    int n_dev = gpt2_cuda_device_count(why, sizeof why);
    if (n_dev < 1) {
        gpt2_seterr(err, GPT2_ERR_UNSUPPORTED, "cuda: no CUDA device (%s)", why);
        return NULL;
    }
    if (o->device < 0 || o->device >= n_dev) {
        gpt2_seterr(err, GPT2_ERR_INVALID, "cuda: --device %d: expected 0..%d (%d CUDA device%s)",
                    o->device, n_dev - 1, n_dev, n_dev == 1 ? "" : "s");
        return NULL;
    }
    if (o->max_batch < 1 || o->max_logit_rows < 0 || o->max_logit_rows > o->max_batch ||
        o->kv_blocks < 1 || o->kv_block_tokens < 1) {
        gpt2_seterr(err, GPT2_ERR_INVALID,
                    "cuda: options max_batch=%d max_logit_rows=%d kv_blocks=%d kv_block_tokens=%d: "
                    "expected max_batch >= 1, 0 <= max_logit_rows <= max_batch, kv_blocks >= 1, "
                    "kv_block_tokens >= 1",
                    o->max_batch, o->max_logit_rows, o->kv_blocks, o->kv_block_tokens);
        return NULL;
    }
    if (c->n_embd % c->n_head != 0 || c->n_embd / c->n_head > 128) {
        gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                    "cuda: head dim n_embd/n_head = %d/%d: the attention kernels need a whole "
                    "number <= 128",
                    c->n_embd, c->n_head);
        return NULL;
    }
    cuda_state *s = calloc(1, sizeof *s);
    if (s)
        s->layers = calloc((size_t)c->n_layer, sizeof *s->layers);
    if (!s || !s->layers) {
        free(s);
        gpt2_seterr(err, GPT2_ERR_NOMEM, "cuda: out of host memory creating the backend");
        return NULL;
    }
    s->m = m;
    s->cfg = *c;
    s->device = o->device;
    s->HD = c->n_embd / c->n_head;
    s->max_batch = o->max_batch;
    s->max_logit = o->max_logit_rows;
    s->kv_blocks = o->kv_blocks;
    s->bs = o->kv_block_tokens;
    s->max_tab = (c->n_ctx + s->bs - 1) / s->bs;
    const char *gv = getenv("GPT2C_CUDA_GRAPHS");
    s->graphs_on = !(gv && strcmp(gv, "0") == 0);
    cudaError_t e;
    size_t bytes;
    gpt2_cuda_device dev;
    if (resolve_dtype(s, err))
        goto fail;
    if (o->gemm && *o->gemm && strcmp(o->gemm, "native") != 0) {
        if (strcmp(o->gemm, "cublas") != 0) {
            gpt2_seterr(err, GPT2_ERR_INVALID,
                        "cuda: gemm '%s': expected native or cublas (openblas with --backend cpu)",
                        o->gemm);
            goto fail;
        }
        s->cublas_on = 1;
        if (s->keep_q8) {
            gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                        "cuda: gemm cublas with GPT2C_CUDA_DTYPE=q8_0: cuBLAS has no Q8_0 matmul; "
                        "use f16 or bf16");
            goto fail;
        }
    }
    if ((e = cudaSetDevice(s->device)) != cudaSuccess) {
        cuda_fail(err, GPT2_ERR_UNSUPPORTED, "cudaSetDevice", e);
        goto fail;
    }
    if (gpt2_cuda_device_query(s->device, &dev, why, sizeof why)) {
        gpt2_seterr(err, GPT2_ERR_UNSUPPORTED, "cuda: %s", why);
        goto fail;
    }
    if (dev.cc_major < 8) {
        gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                    "cuda: device %d (%s) is sm_%d%d; this build targets sm_80 and newer",
                    s->device, dev.name, dev.cc_major, dev.cc_minor);
        goto fail;
    }
    s->n_sm = dev.sm_count;
    snprintf(s->isa, sizeof s->isa, "sm_%d%d", dev.cc_major, dev.cc_minor);
    if ((e = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        cuda_fail(err, GPT2_ERR_UNSUPPORTED, "cudaStreamCreate", e);
        goto fail;
    }
    if (upload_weights(s, err))
        goto fail;
    /* KV pool: blocks x layers x {K, V} x bs x C fp16 */
    s->kv_size = (size_t)s->kv_blocks * c->n_layer * 2 * s->bs * c->n_embd * 2;
    if ((e = cudaMalloc((void **)&s->kv, s->kv_size)) != cudaSuccess) {
        char msg[128];
        snprintf(msg, sizeof msg, "cudaMalloc of %.1f MB for the KV pool (%d blocks of %d)",
                 s->kv_size / 1e6, s->kv_blocks, s->bs);
        cuda_fail(err, GPT2_ERR_NOMEM, msg, e);
        goto fail;
    }
    s->arena_size = arena_layout(s, NULL);
    if ((e = cudaMalloc(&s->arena, s->arena_size)) != cudaSuccess) {
        char msg[128];
        snprintf(msg, sizeof msg, "cudaMalloc of %.1f MB for activations (max_batch %d)",
                 s->arena_size / 1e6, s->max_batch);
        cuda_fail(err, GPT2_ERR_NOMEM, msg, e);
        goto fail;
    }
    arena_layout(s, s->arena);
    /* metadata: ids, pos, tab, dec rows (max_batch each), tiles (2 per row at
     * most), logit rows, block tables (one per sequence, max_tab each), then
     * sampling parameters (SAMPLE_INTS per logit row, 8-byte aligned) */
    s->meta_ints = (size_t)s->max_batch * (6 + s->max_tab) + s->max_logit + 1 +
                   (size_t)s->max_logit * SAMPLE_INTS;
    bytes = s->meta_ints * sizeof(int);
    if ((e = cudaMalloc((void **)&s->meta_d, bytes)) != cudaSuccess ||
        (e = cudaMallocHost((void **)&s->meta_h, bytes)) != cudaSuccess) {
        cuda_fail(err, GPT2_ERR_NOMEM, "allocating the batch metadata buffers", e);
        goto fail;
    }
    s->staged_rows = s->max_logit < STAGED_LOGIT_ROWS ? s->max_logit : STAGED_LOGIT_ROWS;
    bytes = (size_t)s->staged_rows * c->n_vocab * sizeof(float);
    if ((e = cudaMallocHost((void **)&s->logits_h, bytes)) != cudaSuccess ||
        (e = cudaMallocHost((void **)&s->amax_h, (size_t)s->max_logit * sizeof(int))) != cudaSuccess ||
        (e = cudaMallocHost((void **)&s->samp_h, (size_t)s->max_logit * sizeof(int))) != cudaSuccess) {
        cuda_fail(err, GPT2_ERR_NOMEM, "allocating the pinned logits buffers", e);
        goto fail;
    }
    if (s->cublas_on) {
        s->cublas = g2c_cublas_open(s->stream, s->cublas_ws, (size_t)32 << 20, why, sizeof why);
        if (!s->cublas) {
            gpt2_seterr(err, GPT2_ERR_UNSUPPORTED, "cuda: cuBLAS setup (--gemm cublas): %s", why);
            goto fail;
        }
    }
    /* clear the arena so that no stale NaN can leak from unused rows */
    if ((e = cudaMemset(s->arena, 0, s->arena_size)) != cudaSuccess ||
        (e = cudaDeviceSynchronize()) != cudaSuccess) {
        cuda_fail(err, GPT2_ERR_UNSUPPORTED, "initialising device memory", e);
        goto fail;
    }
    return s;
fail:
    cuda_destroy(s);
    return NULL;
}

/* ---- forward ------------------------------------------------------------------- */

/* Where each part of the packed metadata lives for one batch shape. */
typedef struct meta_layout {
    int ids, pos, tab, dec, tiles, logit, tables, samp, total;
} meta_layout;

static meta_layout layout_for(const cuda_state *s, shape k)
{
    meta_layout L;
    L.ids = 0;
    L.pos = k.R;
    L.tab = 2 * k.R;
    L.dec = 3 * k.R;
    L.tiles = L.dec + k.D;
    L.logit = L.tiles + 2 * k.P;
    L.tables = L.logit + k.G;
    L.samp = L.tables + k.S * s->max_tab;
    L.samp += L.samp % 2; /* the parameters hold a double */
    L.total = k.Z ? L.samp + k.G * SAMPLE_INTS : L.samp;
    return L;
}

/* Fills the host metadata; returns the shape (or -1 on a bad block id). */
static int build_meta(cuda_state *s, const gpt2_batch *b, shape *k, meta_layout *L,
                      gpt2_error *err)
{
    shape sh = {b->n_rows, b->n_seqs, b->n_logit_rows, 0, 0,
                b->argmax != NULL && b->n_logit_rows > 0, 0};
    for (int r = 0; b->sampling && r < b->n_logit_rows; r++)
        sh.Z |= b->sampling[r].on != 0;
    for (int i = 0; i < b->n_seqs; i++) {
        const gpt2_batch_seq *q = &b->seqs[i];
        if (q->n_rows >= PREFILL_MIN_ROWS)
            sh.P += (q->n_rows + PREFILL_TILE - 1) / PREFILL_TILE;
        else
            sh.D += q->n_rows;
    }
    *k = sh;
    *L = layout_for(s, sh);
    int *M = s->meta_h;
    memcpy(M + L->ids, b->ids, sizeof(int) * b->n_rows);
    int row = 0, d = 0, t = 0, g = 0;
    for (int i = 0; i < b->n_seqs; i++) {
        const gpt2_batch_seq *q = &b->seqs[i];
        const int nb = (q->pos0 + q->n_rows + s->bs - 1) / s->bs;
        for (int j = 0; j < nb; j++) {
            if (q->blocks[j] < 0 || q->blocks[j] >= s->kv_blocks)
                return gpt2_seterr(err, GPT2_ERR_INVALID,
                                   "cuda forward: sequence %d: block %d of its table is %d; "
                                   "expected 0..%d",
                                   i, j, q->blocks[j], s->kv_blocks - 1);
            M[L->tables + i * s->max_tab + j] = q->blocks[j];
        }
        for (int r = 0; r < q->n_rows; r++) {
            M[L->pos + row + r] = q->pos0 + r;
            M[L->tab + row + r] = i * s->max_tab;
            if (q->n_rows < PREFILL_MIN_ROWS)
                M[L->dec + d++] = row + r;
            if (r >= q->first_logit)
                M[L->logit + g++] = row + r;
        }
        if (q->n_rows >= PREFILL_MIN_ROWS)
            for (int r = 0; r < q->n_rows; r += PREFILL_TILE) {
                M[L->tiles + 2 * t] = row + r;
                M[L->tiles + 2 * t + 1] = q->n_rows - r < PREFILL_TILE ? q->n_rows - r : PREFILL_TILE;
                t++;
            }
        row += q->n_rows;
    }
    if (g != b->n_logit_rows)
        return gpt2_seterr(err, GPT2_ERR_INVALID,
                           "cuda forward: n_logit_rows = %d but the sequences ask for %d",
                           b->n_logit_rows, g);
    g2c_sample_params *sp = (g2c_sample_params *)(M + L->samp);
    for (int r = 0; sh.Z && r < b->n_logit_rows; r++) {
        const gpt2_row_sampling *rs = &b->sampling[r];
        sp[r] = (g2c_sample_params){rs->on, rs->top_k, rs->inv_temp, rs->top_p, rs->u};
    }
    return 0;
}

static int mm(cuda_state *s, void *out, int ldo, g2c_epi epi, const void *x, int ldx,
              const dmat *w, const float *bias, int M, gpt2_error *err, const char *what, int l)
{
    int rc;
    if (s->cublas_on) {
        rc = g2c_cublas_matmul(s->cublas, s->stream, out, ldo, epi, s->act, x, ldx, w->p, bias, M,
                               w->K, w->N, s->scratch);
        if (rc)
            return gpt2_seterr(err, GPT2_ERR_UNSUPPORTED, "cuda: layer %d %s (cuBLAS, M=%d K=%d N=%d): %s",
                               l, what, M, w->K, w->N, g2c_cublas_error(rc));
        return 0;
    }
    rc = g2c_matmul(s->stream, out, ldo, epi, s->act, x, ldx, w->p, w->t, bias, M, w->K, w->N,
                    s->xq, s->n_sm, s->gemm_ws, s->gemm_ws_bytes);
    if (rc)
        return gpt2_seterr(err, GPT2_ERR_UNSUPPORTED, "cuda: layer %d %s (%s, M=%d K=%d N=%d): %s", l,
                           what, g2c_dtype_name(w->t), M, w->K, w->N,
                           cudaGetErrorString((cudaError_t)rc));
    return 0;
}

#define LAUNCH(call, what, l)                                                                      \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_)                                                                                   \
            return gpt2_seterr(err, GPT2_ERR_UNSUPPORTED, "cuda: layer %d %s: %s", l, what,         \
                               cudaGetErrorString((cudaError_t)rc_));                              \
    } while (0)

/* Enqueues every kernel of one forward on the stream (also used under capture). */
static int enqueue(cuda_state *s, shape k, const meta_layout *L, gpt2_error *err)
{
    const gpt2_config *c = &s->cfg;
    const int C = c->n_embd, FF = c->n_ff, NH = c->n_head, R = k.R;
    const int *M = s->meta_d;
    const int *ids = M + L->ids, *pos = M + L->pos, *tab = M + L->tab;
    cudaStream_t st = s->stream;
    int rc;
    LAUNCH(g2c_embed(st, s->x, ids, pos, R, s->tok.p, s->tok.t, c->n_vocab, s->wpe, C), "embedding",
           -1);
    g2c_kv kv = {s->kv, c->n_layer, C, s->bs, 0, M + L->tables};
    /* a step of one decode row per sequence: the attention kernel writes each
     * row's key and value itself, one launch fewer per layer */
    const int self_kv = k.P == 0 && k.D == k.S;
    for (int l = 0; l < c->n_layer; l++) {
        const dlayer *D = &s->layers[l];
        kv.layer = l;
        LAUNCH(g2c_layernorm(st, s->xn, s->act, C, s->x, C, NULL, D->ln1_g, D->ln1_b, R, C,
                             c->ln_eps), "ln1", l);
        if ((rc = mm(s, s->qkv, 3 * C, G2C_EPI_STORE, s->xn, C, &D->qkv, D->qkv_b, R, err, "qkv", l)))
            return rc;
        if (!self_kv)
            LAUNCH(g2c_kv_write(st, &kv, s->qkv, 3 * C, pos, tab, R), "kv write", l);
        LAUNCH(g2c_attention_prefill(st, &kv, s->att, s->act, C, s->qkv, 3 * C, pos, tab,
                                     M + L->tiles, k.P, NH, s->HD), "attention (prefill)", l);
        LAUNCH(g2c_attention_decode(st, &kv, s->att, s->act, C, s->qkv, 3 * C, pos, tab,
                                    M + L->dec, k.D, NH, s->HD, c->n_ctx, s->part, s->dec_cnt,
                                    self_kv),
               "attention (decode)", l);
        if ((rc = mm(s, s->x, C, G2C_EPI_ACCUM, s->att, C, &D->proj, D->proj_b, R, err, "attn proj", l)))
            return rc;
        LAUNCH(g2c_layernorm(st, s->xn, s->act, C, s->x, C, NULL, D->ln2_g, D->ln2_b, R, C,
                             c->ln_eps), "ln2", l);
        if ((rc = mm(s, s->ff, FF, G2C_EPI_GELU, s->xn, C, &D->up, D->up_b, R, err, "ffn up", l)))
            return rc;
        if ((rc = mm(s, s->x, C, G2C_EPI_ACCUM, s->ff, FF, &D->down, D->down_b, R, err, "ffn down", l)))
            return rc;
    }
    if (k.G > 0) { /* final LayerNorm and the LM head for the logit rows only */
        LAUNCH(g2c_layernorm(st, s->xn, s->act, C, s->x, C, M + L->logit, s->lnf_g, s->lnf_b, k.G,
                             C, c->ln_eps), "output_norm", c->n_layer);
        if ((rc = mm(s, s->logits, c->n_vocab, G2C_EPI_STORE, s->xn, C, &s->lm, NULL, k.G, err,
               "lm head", c->n_layer)))
            return rc;
        if (k.A)
            LAUNCH(g2c_argmax(st, s->amax, s->logits, c->n_vocab, k.G, c->n_vocab), "argmax",
                   c->n_layer);
        if (k.Z) /* the parameters (with this step's draws) come with the metadata */
            LAUNCH(g2c_sample(st, s->samp, s->probs, c->n_vocab, s->logits, c->n_vocab,
                              (const g2c_sample_params *)(M + L->samp), k.G, c->n_vocab),
                   "sampling", c->n_layer);
    }
    return 0;
}

static int same_shape(shape a, shape b)
{
    return a.R == b.R && a.S == b.S && a.G == b.G && a.D == b.D && a.P == b.P && a.A == b.A &&
           a.Z == b.Z;
}

/* Replays the graph of this shape, capturing it first if new. Returns 1 when
 * the shape cannot get a graph (the cache is full): run it plainly then. */
static int run_graph(cuda_state *s, shape k, const meta_layout *L, gpt2_error *err)
{
    graph_entry *g = NULL;
    for (int i = 0; i < s->n_graphs; i++)
        if (same_shape(s->graphs[i].k, k))
            g = &s->graphs[i];
    cudaError_t e;
    if (!g) {
        if (s->n_graphs == MAX_GRAPHS)
            return 1;
        cudaGraph_t graph = NULL;
        if ((e = cudaStreamBeginCapture(s->stream, cudaStreamCaptureModeThreadLocal)) != cudaSuccess)
            return cuda_fail(err, GPT2_ERR_UNSUPPORTED, "cudaStreamBeginCapture", e);
        int rc = enqueue(s, k, L, err);
        e = cudaStreamEndCapture(s->stream, &graph);
        if (rc) {
            if (graph)
                cudaGraphDestroy(graph);
            return rc;
        }
        if (e != cudaSuccess)
            return cuda_fail(err, GPT2_ERR_UNSUPPORTED, "capturing a decode step (cudaStreamEndCapture)", e);
        cudaGraphExec_t exec;
        e = cudaGraphInstantiate(&exec, graph, 0);
        cudaGraphDestroy(graph);
        if (e != cudaSuccess)
            return cuda_fail(err, GPT2_ERR_UNSUPPORTED, "cudaGraphInstantiate", e);
        g = &s->graphs[s->n_graphs++];
        g->k = k;
        g->exec = exec;
    }
    if ((e = cudaGraphLaunch(g->exec, s->stream)) != cudaSuccess)
        return cuda_fail(err, GPT2_ERR_UNSUPPORTED, "cudaGraphLaunch", e);
    return 0;
}

static int cuda_forward(void *p, const gpt2_batch *b, float *logits, gpt2_error *err)
{
    cuda_state *s = p;
    int rc = gpt2_batch_check(b, &s->cfg, s->max_batch, s->max_logit, s->kv_blocks, s->bs, err);
    if (rc)
        return rc;
    cudaError_t e;
    if ((e = cudaSetDevice(s->device)) != cudaSuccess)
        return cuda_fail(err, GPT2_ERR_UNSUPPORTED, "cudaSetDevice", e);
    shape k;
    meta_layout L;
    if ((rc = build_meta(s, b, &k, &L, err)))
        return rc;
    e = cudaMemcpyAsync(s->meta_d, s->meta_h, (size_t)L.total * sizeof(int),
                        cudaMemcpyHostToDevice, s->stream);
    if (e != cudaSuccess)
        return cuda_fail(err, GPT2_ERR_UNSUPPORTED, "copying the batch metadata", e);
    /* graphs for decode-shaped batches: their shapes repeat step after step */
    rc = s->graphs_on && k.P == 0 ? run_graph(s, k, &L, err) : 1;
    if (rc == 1)
        rc = enqueue(s, k, &L, err);
    if (rc)
        return rc;
    /* back to the host: the argmax rows if asked, the logit rows the caller
     * needs (runs of consecutive rows, one copy each) */
    const size_t V = (size_t)s->cfg.n_vocab;
    const unsigned char *need = b->need_logits;
    const int staged = k.G > 0 && k.G <= s->staged_rows;
    float *dst = staged ? s->logits_h : logits;
    if (k.A && (e = cudaMemcpyAsync(s->amax_h, s->amax, (size_t)k.G * sizeof(int),
                                    cudaMemcpyDeviceToHost, s->stream)) != cudaSuccess)
        return cuda_fail(err, GPT2_ERR_UNSUPPORTED, "copying the argmax rows to the host", e);
    if (k.Z && (e = cudaMemcpyAsync(s->samp_h, s->samp, (size_t)k.G * sizeof(int),
                                    cudaMemcpyDeviceToHost, s->stream)) != cudaSuccess)
        return cuda_fail(err, GPT2_ERR_UNSUPPORTED, "copying the sampled tokens to the host", e);
    for (int i = 0; i < k.G;) {
        if (need && !need[i]) {
            i++;
            continue;
        }
        int j = i + 1;
        while (j < k.G && (!need || need[j]))
            j++;
        e = cudaMemcpyAsync(dst + i * V, s->logits + i * V, (size_t)(j - i) * V * sizeof(float),
                            cudaMemcpyDeviceToHost, s->stream);
        if (e != cudaSuccess)
            return cuda_fail(err, GPT2_ERR_UNSUPPORTED, "copying logits to the host", e);
        i = j;
    }
    if ((e = cudaStreamSynchronize(s->stream)) != cudaSuccess)
        return cuda_fail(err, GPT2_ERR_UNSUPPORTED, "forward pass (kernel execution)", e);
    for (int i = 0; staged && i < k.G; i++)
        if (!need || need[i])
            memcpy(logits + i * V, s->logits_h + i * V, V * sizeof(float));
    if (k.A)
        memcpy(b->argmax, s->amax_h, (size_t)k.G * sizeof(int));
    for (int i = 0; k.Z && i < k.G; i++)
        if (b->sampling[i].on)
            b->sampled[i] = s->samp_h[i];
    return 0;
}

static const char *cuda_isa_name(const void *p) { return ((const cuda_state *)p)->isa; }
static const char *cuda_gemm_name(const void *p)
{
    return ((const cuda_state *)p)->cublas_on ? "cublas" : "native";
}
static int cuda_threads(const void *p) { return 1; }
static size_t cuda_kv_bytes(const void *p) { return ((const cuda_state *)p)->kv_size; }
/* The device weight buffer (its alignment padding included) less the
 * position rows a step does not read, and the token rows when the LM head
 * has its own copy. */
static size_t cuda_weight_bytes(const void *p)
{
    const cuda_state *s = p;
    const gpt2_config *c = &s->cfg;
    size_t b = s->wbytes - (size_t)(c->n_ctx - 1) * c->n_embd * sizeof(float);
    if (s->m->lm_head.data != s->m->tok_embd.data)
        b -= mat_bytes(mat_type(s, s->m->tok_embd.type), c->n_vocab - 1, c->n_embd);
    return b;
}
static size_t cuda_arena_bytes(const void *p)
{
    const cuda_state *s = p;
    return s->arena_size + s->meta_ints * sizeof(int);
}

const gpt2_backend_ops gpt2_backend_cuda = {
    .name = "cuda",
    .kv_f32 = 0, /* the cache is fp16 */
    .device_sampling = 1,
    .create = cuda_create,
    .destroy = cuda_destroy,
    .forward = cuda_forward,
    .isa_name = cuda_isa_name,
    .gemm_name = cuda_gemm_name,
    .threads = cuda_threads,
    .kv_bytes = cuda_kv_bytes,
    .weight_bytes = cuda_weight_bytes,
    .arena_bytes = cuda_arena_bytes,
};
