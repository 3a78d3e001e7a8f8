/* CPU backend: the fp32 GPT-2 forward over the mmapped weights, with the
 * kernels of kernels/ (ISA chosen once) on a persistent thread pool.
 * Everything is allocated in create(); forward() allocates nothing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "errors.h"
#include "kernels.h"
#include "model.h"

typedef struct cpu_state {
    const gpt2_model *m;
    const gpt2k_ops *ops;
    gpt2k_pool *pool;
    int max_batch;
    int openblas; /* matmuls by cblas_sgemm instead of our kernels */
    /* KV cache: per layer [n_ctx][C] for K then V */
    float *kv;
    size_t kv_floats;
    /* activations, [max_batch][...] */
    float *arena;
    size_t arena_floats;
    float *x;    /* residual stream [B][C] */
    float *xn;   /* normalised input of a sub-block [B][C] */
    float *qkv;  /* [B][3C] */
    float *att;  /* attention output [B][C] */
    float *ff;   /* MLP hidden [B][FF] */
    float *scratch; /* attention scores: [threads][n_ctx] */
    void *qbuf;     /* activations quantized to Q8_0 for Q8_0 weights: [B][FF / 32 blocks] */
    size_t q_bytes;
} cpu_state;

static float *layer_k(cpu_state *s, int l)
{
    const gpt2_config *c = &s->m->cfg;
    return s->kv + (size_t)l * 2 * c->n_ctx * c->n_embd;
}

static float *layer_v(cpu_state *s, int l)
{
    const gpt2_config *c = &s->m->cfg;
    return layer_k(s, l) + (size_t)c->n_ctx * c->n_embd;
}

static void cpu_destroy(void *p)
{
    cpu_state *s = p;
    if (!s)
        return;
    gpt2k_pool_free(s->pool);
    free(s->kv);
    free(s->arena);
    free(s->qbuf);
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

/* touch: write every page now, so the token loop never faults them in. The
 * KV cache is not touched: its pages become resident as positions are
 * written, so memory follows the tokens actually held (every position is
 * written before attention reads it). */
static void *alloc_floats(size_t n, int touch)
{
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p && touch)
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
    const size_t B = (size_t)o->max_batch, C = (size_t)c->n_embd, FF = (size_t)c->n_ff;
    s->kv_floats = (size_t)c->n_layer * 2 * c->n_ctx * C;
    size_t scratch = (size_t)o->n_threads * c->n_ctx;
    s->arena_floats = B * (C + C + 3 * C + C + FF) + scratch;
    s->kv = alloc_floats(s->kv_floats, 0);
    s->arena = alloc_floats(s->arena_floats, 1);
    if (!s->kv || !s->arena) {
        gpt2_seterr(err, GPT2_ERR_NOMEM,
                    "out of memory: KV cache %.1f MB + activations %.1f MB",
                    s->kv_floats * 4 / 1e6, s->arena_floats * 4 / 1e6);
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
        gpt2k_matmul_q8_0(s->pool, s->ops, out, ldo, in, ldi, w->data, bias, M, w->K, w->N,
                          accumulate, s->qbuf);
        return;
    }
    gpt2k_matmul(s->pool, s->ops, out, ldo, in, ldi, w->data,
                 w->type == GGML_T_F16 ? GPT2K_W_F16 : GPT2K_W_F32, bias, M, w->K, w->N,
                 accumulate);
}

static int cpu_forward(void *p, const int *ids, int T, int pos0, int first_logit, float *logits,
                       gpt2_error *err)
{
    cpu_state *s = p;
    const gpt2_model *m = s->m;
    const gpt2_config *c = &m->cfg;
    const int C = c->n_embd, FF = c->n_ff, NH = c->n_head, HD = C / NH;
    if (T < 1 || T > s->max_batch || pos0 < 0 || pos0 + T > c->n_ctx || first_logit < 0 ||
        first_logit > T)
        return gpt2_seterr(err, GPT2_ERR_INVALID,
                           "cpu forward: T=%d pos0=%d first_logit=%d outside max_batch %d / n_ctx %d",
                           T, pos0, first_logit, s->max_batch, c->n_ctx);
    for (int t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= c->n_vocab)
            return gpt2_seterr(err, GPT2_ERR_TOKENIZE, "token id %d at position %d: expected 0..%d",
                               ids[t], pos0 + t, c->n_vocab - 1);

    /* embeddings: x = wte[id] + wpe[pos] */
    for (int t = 0; t < T; t++) {
        float *x = s->x + (size_t)t * C;
        gpt2_embd_row(&m->tok_embd, ids[t], x);
        gpt2_embd_row(&m->pos_embd, pos0 + t, s->xn);
        s->ops->add(x, x, s->xn, C);
    }

    for (int l = 0; l < c->n_layer; l++) {
        const gpt2_layer *L = &m->layers[l];
        float *kc = layer_k(s, l), *vc = layer_v(s, l);
        /* attention sub-block */
        gpt2k_layernorm_rows(s->pool, s->ops, s->xn, C, s->x, C, L->ln1_g, L->ln1_b, T, C,
                             c->ln_eps);
        matmul(s, s->qkv, 3 * C, s->xn, C, &L->qkv, L->qkv_b, T, 0);
        for (int t = 0; t < T; t++) {
            const float *row = s->qkv + (size_t)t * 3 * C;
            memcpy(kc + (size_t)(pos0 + t) * C, row + C, sizeof(float) * C);
            memcpy(vc + (size_t)(pos0 + t) * C, row + 2 * C, sizeof(float) * C);
        }
        gpt2k_attention(s->pool, s->ops, s->att, C, s->qkv, 3 * C, kc, C, vc, C, pos0, T, NH,
                        HD, s->scratch, c->n_ctx);
        matmul(s, s->x, C, s->att, C, &L->proj, L->proj_b, T, 1); /* x += proj(att) */
        /* MLP sub-block */
        gpt2k_layernorm_rows(s->pool, s->ops, s->xn, C, s->x, C, L->ln2_g, L->ln2_b, T, C,
                             c->ln_eps);
        matmul(s, s->ff, FF, s->xn, C, &L->up, L->up_b, T, 0);
        gpt2k_gelu_rows(s->pool, s->ops, s->ff, FF, T, FF);
        matmul(s, s->x, C, s->ff, FF, &L->down, L->down_b, T, 1); /* x += down(gelu(up)) */
    }

    /* final LayerNorm and the LM head, only for the rows that need logits */
    int R = T - first_logit;
    if (R > 0) {
        const float *xr = s->x + (size_t)first_logit * C;
        gpt2k_layernorm_rows(s->pool, s->ops, s->xn, C, xr, C, m->lnf_g, m->lnf_b, R, C,
                             c->ln_eps);
        matmul(s, logits, c->n_vocab, s->xn, C, &m->lm_head, NULL, R, 0);
    }
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
static size_t cpu_kv_bytes(const void *p) { return ((const cpu_state *)p)->kv_floats * sizeof(float); }
static size_t cpu_arena_bytes(const void *p)
{
    const cpu_state *s = p;
    return s->arena_floats * sizeof(float) + s->q_bytes;
}

const gpt2_backend_ops gpt2_backend_cpu = {
    .name = "cpu",
    .create = cpu_create,
    .destroy = cpu_destroy,
    .forward = cpu_forward,
    .isa_name = cpu_isa_name,
    .gemm_name = cpu_gemm_name,
    .threads = cpu_threads,
    .kv_bytes = cpu_kv_bytes,
    .arena_bytes = cpu_arena_bytes,
};
