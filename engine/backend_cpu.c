/* CPU backend: the fp32 GPT-2 forward over the mmapped weights (or the
 * model's packed copies of them, where the ISA path reads that layout), with the
 * kernels of kernels/ (ISA chosen once) on a persistent thread pool, and a KV
 * cache of fp16 or fp32 elements (keys and values rounded to fp16 as they are
 * stored; attention computes in fp32 either way).
 * Everything is allocated in create(); forward() allocates nothing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "backend.h"
#include "errors.h"
#include "gguf.h"
#include "kernels.h"
#include "model.h"
#include "pages.h"

typedef struct cpu_state {
    const gpt2_model *m;
    const gpt2k_ops *ops;
    gpt2k_pool *pool;
    int max_batch, max_logit_rows;
    int openblas; /* matmuls by cblas_sgemm instead of our kernels */
    int packed;   /* weights from the model's packed copies where this ISA has the
                   * kernel (ops->matmul_packed, ops->matmul_q8_0_packed) */
    int q8_packed; /* and Q8_0 ones, in the layout this table reads */
    /* KV pool: kv_blocks blocks; block b, layer l holds K as [NH][HD][bs]
     * then V as [NH][bs][HD], elements of kv_type */
    void *kv;
    size_t kv_mapped; /* bytes of its mapping */
    gpt2_kv_type kv_type;
    size_t kv_elems;
    size_t block_elems; /* one block, all layers */
    int kv_blocks, bs;
    /* activations, [max_batch][...] */
    float *arena;
    size_t arena_floats;
    float *x;    /* residual stream [B][C] */
    float *xn;   /* normalised input of a sub-block [B][C] */
    float *qkv;  /* [B][3C] */
    float *att;  /* attention output [B][C] */
    float *ff;   /* MLP hidden [B][FF] */
    float *scratch; /* attention scores: [threads][GPT2K_ATT_ROWS * n_ctx] */
    void *qbuf;     /* activations quantized to Q8_0 for Q8_0 weights: [B][FF / 32 blocks] */
    size_t q_bytes;
    /* per-row bookkeeping of a batch */
    int *row_seq, *row_pos;
    int64_t *attn_cost;      /* [B + 1] */
    gpt2k_kv_view *views;    /* [B]: one per sequence (at most one per row) */
    float *probs;            /* [n_vocab]: gpt2_sample_row's scratch */
    uint16_t *kv_tmp;        /* [HD]: a key in fp16 before it is scattered */
    size_t book_bytes;
    /* gpt2_ctx_profile: on, the sums, the pass being timed and its last mark */
    int prof_on;
    gpt2_op_profile prof;
    gpt2_op_times *prof_pass;
    double prof_t;
} cpu_state;

/* Inside a KV block, each layer holds K as [NH][HD][bs], then V as
 * [NH][bs][HD]: one head's positions are contiguous, so decode attention
 * streams them (a position-major block, [bs][C], makes a head read HD floats
 * every C), and its keys are transposed (gpt2k_kv_view.keys_t) so that a
 * score is one lane's FMA chain, the same whether its query is alone
 * (decode) or in a tile of the prompt's queries (prefill). */

/* The element offset in the pool of layer l's key block of position pos of a
 * sequence (block table blocks): head h's keys start h * bs * HD elements
 * further, its values bs * C further. */
static size_t kv_slot(const cpu_state *s, const int *blocks, int l, int pos)
{
    const size_t C = (size_t)s->m->cfg.n_embd;
    return (size_t)blocks[pos / s->bs] * s->block_elems + (size_t)l * 2 * s->bs * C;
}

/* n channels of a key or value into the pool at element offset off, element
 * j at off + j * step. */
static void kv_store(cpu_state *s, size_t off, size_t step, const float *x, int n)
{
    if (s->kv_type == GPT2_KV_F16) {
        uint16_t *dst = (uint16_t *)s->kv + off;
        if (step == 1) {
            s->ops->to_f16(dst, x, n);
            return;
        }
        s->ops->to_f16(s->kv_tmp, x, n);
        for (int j = 0; j < n; j++)
            dst[(size_t)j * step] = s->kv_tmp[j];
    } else {
        float *dst = (float *)s->kv + off;
        for (int j = 0; j < n; j++)
            dst[(size_t)j * step] = x[j];
    }
}

/* ---- gpt2_ctx_profile ---------------------------------------------------- */

/* The time since the last mark goes to op k (a no-op when not profiling):
 * each op ends with its own mark, and where bookkeeping comes before an op
 * a mark of GPT2_OP_OTHER ends the bookkeeping. */
static inline void op_mark(cpu_state *s, gpt2_op_kind k)
{
    if (!s->prof_on)
        return;
    const double t = gpt2_now_ms();
    s->prof_pass->ms[k] += t - s->prof_t;
    s->prof_t = t;
}

static void pass_begin(cpu_state *s, const gpt2_batch *b)
{
    if (!s->prof_on)
        return;
    s->prof_pass = b->n_rows == b->n_seqs ? &s->prof.decode : &s->prof.prompt;
    s->prof_pass->passes++;
    s->prof_pass->rows += b->n_rows;
    s->prof_t = gpt2_now_ms();
}

static void cpu_profile(void *p, int on, gpt2_op_profile *out)
{
    cpu_state *s = p;
    if (on)
        memset(&s->prof, 0, sizeof s->prof);
    s->prof_on = on;
    if (out)
        *out = s->prof;
}

static void cpu_destroy(void *p)
{
    cpu_state *s = p;
    if (!s)
        return;
    gpt2k_pool_free(s->pool);
    if (s->kv)
        munmap(s->kv, s->kv_mapped);
    free(s->arena);
    free(s->qbuf);
    free(s->row_seq);
    free(s->row_pos);
    free(s->attn_cost);
    free(s->views);
    free(s->probs);
    free(s->kv_tmp);
    free(s);
}

static int resolve_isa(const char *want, const gpt2k_ops **ops, gpt2_error *err)
{
    const char *src = "--isa";
    if (!want || !*want) {
        want = getenv("GPT2C_ISA");
        src = "GPT2C_ISA";
    }
    if (!want || !*want)
        want = "auto";
    int isa = gpt2k_isa_parse(want);
    if (isa < 0)
        return gpt2_seterr(err, GPT2_ERR_INVALID,
                           "%s=%s: expected auto, scalar, avx2 or avx512", src, want);
    *ops = gpt2k_ops_for((gpt2k_isa)isa);
    if (!*ops)
        return gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                           "%s=%s: this CPU cannot run that path (it can run: %s)", src, want,
                           gpt2_cpu_isas());
    return 0;
}

/* Written through now, so the token loop never faults a page in. */
static void *alloc_touched(size_t n)
{
    size_t bytes = (n + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p)
        memset(p, 0, bytes);
    return p;
}

static void *cpu_create(const gpt2_model *m, const gpt2_backend_opts *o, gpt2_error *err)
{
    const gpt2_config *c = &m->cfg;
    cpu_state *s = calloc(1, sizeof *s);
    if (!s) {
        gpt2_seterr(err, GPT2_ERR_NOMEM, "out of memory creating the CPU backend");
        return NULL;
    }
    s->m = m;
    s->max_batch = o->max_batch;
    s->max_logit_rows = o->max_logit_rows;
    s->kv_blocks = o->kv_blocks;
    s->bs = o->kv_block_tokens;
    s->kv_type = o->kv_type;
    if (o->max_batch < 1 || o->max_logit_rows < 1 || o->kv_blocks < 1 || o->kv_block_tokens < 1) {
        gpt2_seterr(err, GPT2_ERR_INVALID,
                    "cpu backend: max_batch %d, max_logit_rows %d, kv_blocks %d, kv_block_tokens %d: "
                    "expected all >= 1", o->max_batch, o->max_logit_rows, o->kv_blocks,
                    o->kv_block_tokens);
        goto fail;
    }
    if (resolve_isa(o->isa, &s->ops, err))
        goto fail;
    if (o->gemm && *o->gemm && strcmp(o->gemm, "native") != 0) {
        if (strcmp(o->gemm, "openblas") != 0) {
            gpt2_seterr(err, GPT2_ERR_INVALID, "gemm '%s': expected native or openblas (cublas with --backend cuda)",
                        o->gemm);
            goto fail;
        }
        if (strcmp(m->dtype, "f32") != 0) {
            gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                        "gemm openblas: %s has %s weights; the OpenBLAS baseline needs F32 weights",
                        m->path, m->dtype);
            goto fail;
        }
        s->openblas = 1;
        gpt2k_openblas_set_threads(o->n_threads);
    }
    s->pool = gpt2k_pool_create(o->n_threads);
    if (!s->pool) {
        gpt2_seterr(err, GPT2_ERR_NOMEM, "cannot start a pool of %d threads", o->n_threads);
        goto fail;
    }
    if (!s->openblas && (s->ops->matmul_packed || s->ops->matmul_q8_0_packed)) {
        if (gpt2_model_pack(m, s->pool, s->ops->matmul_q8_0_packed != NULL, s->ops->q8_layout,
                            err))
            goto fail;
        s->packed = 1;
        /* packed by a context of another table: its Q8_0 layout may differ */
        s->q8_packed = s->ops->matmul_q8_0_packed && m->q8_packed &&
                       m->q8_layout == s->ops->q8_layout;
    }
    const size_t B = (size_t)o->max_batch, C = (size_t)c->n_embd, FF = (size_t)c->n_ff;
    s->block_elems = (size_t)c->n_layer * 2 * (size_t)s->bs * C;
    s->kv_elems = (size_t)s->kv_blocks * s->block_elems;
    size_t scratch = (size_t)o->n_threads * GPT2K_ATT_ROWS * c->n_ctx;
    s->arena_floats = B * (C + C + 3 * C + C + FF) + scratch;
    /* The KV pool in huge pages: decode attention reads each head's keys in
     * runs of one block (2 KiB in fp16 at 124M) a block's size apart, on 4 KiB
     * pages nearly every run a TLB miss. Untouched: memory follows the
     * positions written (every one is written before attention reads it). */
    s->kv = gpt2_map_huge(s->kv_elems * (size_t)gpt2_kv_elem_bytes(s->kv_type), &s->kv_mapped);
    s->arena = alloc_touched(s->arena_floats * sizeof(float));
    s->row_seq = calloc(B, sizeof(int));
    s->row_pos = calloc(B, sizeof(int));
    s->attn_cost = calloc(B + 1, sizeof(int64_t));
    s->views = calloc(B, sizeof(gpt2k_kv_view));
    s->probs = malloc(sizeof(float) * (size_t)c->n_vocab);
    const size_t HD = C / (size_t)c->n_head;
    s->kv_tmp = malloc(sizeof(uint16_t) * HD);
    s->book_bytes = B * (2 * sizeof(int) + sizeof(int64_t) + sizeof(gpt2k_kv_view)) + sizeof(int64_t) +
                    sizeof(float) * (size_t)c->n_vocab + sizeof(uint16_t) * HD;
    if (!s->kv || !s->arena || !s->row_seq || !s->row_pos || !s->attn_cost || !s->views ||
        !s->probs || !s->kv_tmp) {
        gpt2_seterr(err, GPT2_ERR_NOMEM,
                    "out of memory: KV pool %.1f MB (%d blocks of %d positions, %s) + activations "
                    "%.1f MB", (double)s->kv_elems * gpt2_kv_elem_bytes(s->kv_type) / 1e6,
                    s->kv_blocks, s->bs, gpt2_kv_type_name(s->kv_type), s->arena_floats * 4 / 1e6);
        goto fail;
    }
    /* Q8_0 weights: activations are quantized per row first; the widest K of
     * any matmul is max(C, FF) (the loader checked both are multiples of 32) */
    if (strcmp(m->dtype, "f32") != 0 && strcmp(m->dtype, "f16") != 0) {
        size_t kmax = C > FF ? C : FF;
        s->q_bytes = (B * gpt2k_q8_0_row_bytes((int)kmax) + 63) & ~(size_t)63;
        s->qbuf = aligned_alloc(64, s->q_bytes);
        if (!s->qbuf) {
            gpt2_seterr(err, GPT2_ERR_NOMEM, "out of memory for Q8_0 activations");
            goto fail;
        }
        memset(s->qbuf, 0, s->q_bytes);
    }
    float *p = s->arena;
    s->x = p, p += B * C;
    s->xn = p, p += B * C;
    s->qkv = p, p += B * 3 * C;
    s->att = p, p += B * C;
    s->ff = p, p += B * FF;
    s->scratch = p;
    return s;
fail:
    cpu_destroy(s);
    return NULL;
}

static void matmul(cpu_state *s, float *out, int ldo, const float *in, int ldi,
                   const gpt2_wmat *w, const float *bias, int M, int accumulate)
{
    if (s->openblas) {
        gpt2k_matmul_openblas(out, ldo, in, ldi, w->data, bias, M, w->K, w->N, accumulate);
        return;
    }
    if (w->type == GGML_T_Q8_0) {
        if (s->q8_packed && w->packed)
            gpt2k_matmul_q8_0_packed(s->pool, s->ops, out, ldo, in, ldi, w->packed, bias, M, w->K,
                                     w->N, accumulate, s->qbuf);
        else
            gpt2k_matmul_q8_0(s->pool, s->ops, out, ldo, in, ldi, w->data, bias, M, w->K, w->N,
                              accumulate, s->qbuf);
        return;
    }
    const gpt2k_wtype t = gpt2_wmat_wtype(w);
    if (s->packed && w->packed && s->ops->matmul_packed)
        gpt2k_matmul_packed(s->pool, s->ops, out, ldo, in, ldi, w->packed, t, bias, M, w->K, w->N,
                            accumulate);
    else
        gpt2k_matmul(s->pool, s->ops, out, ldo, in, ldi, w->data, t, bias, M, w->K, w->N,
                     accumulate);
}

static int cpu_forward(void *p, const gpt2_batch *b, float *logits, gpt2_error *err)
{
    cpu_state *s = p;
    const gpt2_model *m = s->m;
    const gpt2_config *c = &m->cfg;
    const int C = c->n_embd, FF = c->n_ff, NH = c->n_head, HD = C / NH;
    int rc = gpt2_batch_check(b, c, s->max_batch, s->max_logit_rows, s->kv_blocks, s->bs, err);
    if (rc)
        return rc;
    const int R = b->n_rows;
    pass_begin(s, b);
    for (int i = 0, r = 0; i < b->n_seqs; i++)
        for (int j = 0; j < b->seqs[i].n_rows; j++, r++) {
            s->row_seq[r] = i;
            s->row_pos[r] = b->seqs[i].pos0 + j;
        }

    /* embeddings: x = wte[id] + wpe[pos] */
    for (int r = 0; r < R; r++) {
        float *x = s->x + (size_t)r * C;
        gpt2_embd_row(&m->tok_embd, b->ids[r], x, s->packed);
        gpt2_embd_row(&m->pos_embd, s->row_pos[r], s->xn, 0);
        s->ops->add(x, x, s->xn, C);
    }
    op_mark(s, GPT2_OP_EMBED);

    for (int l = 0; l < c->n_layer; l++) {
        const gpt2_layer *L = &m->layers[l];
        /* attention sub-block */
        op_mark(s, GPT2_OP_OTHER);
        gpt2k_layernorm_rows(s->pool, s->ops, s->xn, C, s->x, C, L->ln1_g, L->ln1_b, R, C,
                             c->ln_eps);
        op_mark(s, GPT2_OP_LAYERNORM);
        matmul(s, s->qkv, 3 * C, s->xn, C, &L->qkv, L->qkv_b, R, 0);
        op_mark(s, GPT2_OP_MATMUL);
        /* this step's keys and values into each sequence's blocks, then every
         * row attends to its own sequence's positions 0 .. pos */
        for (int r = 0; r < R; r++) {
            const float *row = s->qkv + (size_t)r * 3 * C;
            const size_t k = kv_slot(s, b->seqs[s->row_seq[r]].blocks, l, s->row_pos[r]);
            const size_t t = (size_t)(s->row_pos[r] % s->bs);
            for (int h = 0; h < NH; h++) {
                const size_t kh = k + (size_t)h * s->bs * HD;
                kv_store(s, kh + t, (size_t)s->bs, row + C + h * HD, HD);
                kv_store(s, kh + (size_t)s->bs * C + t * HD, 1, row + 2 * C + h * HD, HD);
            }
        }
        op_mark(s, GPT2_OP_KV_STORE);
        const int eb = gpt2_kv_elem_bytes(s->kv_type);
        const char *kl = (const char *)s->kv + (size_t)l * 2 * s->bs * C * eb;
        for (int i = 0; i < b->n_seqs; i++)
            s->views[i] = (gpt2k_kv_view){
                kl, kl + (size_t)s->bs * C * eb, b->seqs[i].blocks, s->block_elems, s->bs, HD, HD,
                (size_t)s->bs * HD, s->kv_type == GPT2_KV_F16 ? GPT2K_W_F16 : GPT2K_W_F32, 1};
        op_mark(s, GPT2_OP_OTHER);
        gpt2k_attention(s->pool, s->ops, s->att, C, s->qkv, 3 * C, s->views, s->row_seq,
                        s->row_pos, R, NH, HD, s->scratch, GPT2K_ATT_ROWS * c->n_ctx,
                        s->attn_cost);
        op_mark(s, GPT2_OP_ATTENTION);
        matmul(s, s->x, C, s->att, C, &L->proj, L->proj_b, R, 1); /* x += proj(att) */
        op_mark(s, GPT2_OP_MATMUL);
        /* MLP sub-block */
        gpt2k_layernorm_rows(s->pool, s->ops, s->xn, C, s->x, C, L->ln2_g, L->ln2_b, R, C,
                             c->ln_eps);
        op_mark(s, GPT2_OP_LAYERNORM);
        matmul(s, s->ff, FF, s->xn, C, &L->up, L->up_b, R, 0);
        op_mark(s, GPT2_OP_MATMUL);
        gpt2k_gelu_rows(s->pool, s->ops, s->ff, FF, R, FF);
        op_mark(s, GPT2_OP_GELU);
        matmul(s, s->x, C, s->ff, FF, &L->down, L->down_b, R, 1); /* x += down(gelu(up)) */
        op_mark(s, GPT2_OP_MATMUL);
    }

    /* final LayerNorm and the LM head, only for the rows that want logits:
     * they are gathered into att (free now) so the head is one matmul */
    int n_out = 0;
    for (int i = 0, r0 = 0; i < b->n_seqs; r0 += b->seqs[i].n_rows, i++)
        for (int j = b->seqs[i].first_logit; j < b->seqs[i].n_rows; j++)
            memcpy(s->att + (size_t)n_out++ * C, s->x + (size_t)(r0 + j) * C, sizeof(float) * C);
    if (n_out > 0) {
        op_mark(s, GPT2_OP_OTHER);
        gpt2k_layernorm_rows(s->pool, s->ops, s->xn, C, s->att, C, m->lnf_g, m->lnf_b, n_out, C,
                             c->ln_eps);
        op_mark(s, GPT2_OP_LAYERNORM);
        matmul(s, logits, c->n_vocab, s->xn, C, &m->lm_head, NULL, n_out, 0);
        op_mark(s, GPT2_OP_LM_HEAD);
    }
    if (b->argmax)
        for (int i = 0; i < n_out; i++)
            b->argmax[i] = s->ops->argmax(logits + (size_t)i * c->n_vocab, c->n_vocab);
    /* rows the caller asks the backend to sample (gpt2_backend_samples) */
    for (int i = 0; b->sampling && i < n_out; i++)
        if (b->sampling[i].on)
            b->sampled[i] = gpt2_sample_row(logits + (size_t)i * c->n_vocab, c->n_vocab,
                                            &b->sampling[i], s->probs, NULL);
    op_mark(s, GPT2_OP_PICK);
    return 0;
}

static const char *cpu_isa_name(const void *p)
{
    return gpt2k_isa_name(((const cpu_state *)p)->ops->isa);
}

static const char *cpu_gemm_name(const void *p)
{
    return ((const cpu_state *)p)->openblas ? "openblas" : "native";
}

static int cpu_threads(const void *p) { return gpt2k_pool_size(((const cpu_state *)p)->pool); }
/* All but one row of an embedding table: what a decode step does not read. */
static size_t unread_rows(const gpt2_wmat *e)
{
    return (size_t)(e->N - 1) * ggml_row_bytes(e->type, (uint64_t)e->K);
}

/* The file's weight tensors less the embedding rows a step does not read
 * (the packed copies' padding, at most 15 rows per matrix, is not counted);
 * a tied token embedding is the LM head, read whole. */
static size_t cpu_weight_bytes(const void *p)
{
    const gpt2_model *m = ((const cpu_state *)p)->m;
    size_t b = gpt2_model_weight_bytes(m) - unread_rows(&m->pos_embd);
    if (m->lm_head.data != m->tok_embd.data)
        b -= unread_rows(&m->tok_embd);
    return b;
}

static size_t cpu_kv_bytes(const void *p)
{
    const cpu_state *s = p;
    return s->kv_elems * (size_t)gpt2_kv_elem_bytes(s->kv_type);
}
static size_t cpu_arena_bytes(const void *p)
{
    const cpu_state *s = p;
    return s->arena_floats * sizeof(float) + s->q_bytes + s->book_bytes;
}

const gpt2_backend_ops gpt2_backend_cpu = {
    .name = "cpu",
    .kv_f32 = 1,
    .device_sampling = 0, /* honours gpt2_batch.sampling, but the host sampler is the default */
    .create = cpu_create,
    .destroy = cpu_destroy,
    .forward = cpu_forward,
    .isa_name = cpu_isa_name,
    .gemm_name = cpu_gemm_name,
    .threads = cpu_threads,
    .kv_bytes = cpu_kv_bytes,
    .arena_bytes = cpu_arena_bytes,
    .weight_bytes = cpu_weight_bytes,
    .profile = cpu_profile,
};
