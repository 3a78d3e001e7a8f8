/* The list of cases: every op x every ISA path this CPU runs x GEMM path, over
 * GPT-2's shapes. Matmul cases of one weight matrix are consecutive, so the
 * runner makes each matrix (and its f16 / Q8_0 forms) once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kbench.h"

const kb_model kb_models[4] = {{"124M", 768}, {"355M", 1024}, {"774M", 1280}, {"1558M", 1600}};

#define N_VOCAB 50257
#define ATTN_HEADS 12   /* attention at 124M's geometry: 12 heads of 64 */
#define ATTN_HEAD_DIM 64

/* The five weight matrices of a layer and the head, K x N in units of C
 * (the head's N is the vocabulary). */
static const struct {
    const char *label;
    int k_mul, n_mul; /* n_mul 0: the vocabulary */
} SHAPES[5] = {{"qkv", 1, 3}, {"proj", 1, 1}, {"up", 1, 4}, {"down", 4, 1}, {"lm_head", 1, 0}};

int kb_filter_match(const char *filter, const char *name)
{
    if (!filter || !*filter)
        return 1;
    const char *p = filter;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len > 0) {
            char term[128];
            if (len >= sizeof term)
                len = sizeof term - 1;
            memcpy(term, p, len);
            term[len] = '\0';
            if (strstr(name, term))
                return 1;
        }
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

void kb_case_name(kb_case *c)
{
    const kb_shape *s = &c->shape;
    const char *isa = c->isa >= 0 ? gpt2k_isa_name((gpt2k_isa)c->isa) : NULL;
    switch (s->op) {
    case KB_OP_MATMUL:
        if (c->gemm == KB_GEMM_OPENBLAS)
            snprintf(c->name, sizeof c->name, "matmul/%s/openblas/%s/%s/M%d", kb_wtype_name(s->wtype),
                     c->model, c->label, s->M);
        else
            snprintf(c->name, sizeof c->name, "matmul/%s/native/%s/%s/%s/M%d", kb_wtype_name(s->wtype),
                     isa, c->model, c->label, s->M);
        break;
    case KB_OP_ATTENTION:
        snprintf(c->name, sizeof c->name, "attention/%s/%s/%s/ctx%d", kb_wtype_name(s->wtype), isa,
                 c->label, s->ctx);
        break;
    default:
        snprintf(c->name, sizeof c->name, "%s/%s/M%dxN%d", kb_op_name(s->op), isa, s->M, s->N);
        break;
    }
}

typedef struct plan {
    kb_case *v;
    int n, cap, oom;
    const kb_plan_opts *o;
} plan;

static void add(plan *p, const kb_case *c)
{
    kb_case k = *c;
    kb_case_name(&k);
    if (!kb_filter_match(p->o->filter, k.name))
        return;
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 256;
        kb_case *v = realloc(p->v, (size_t)cap * sizeof *v);
        if (!v) {
            p->oom = 1;
            return;
        }
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n++] = k;
}

static void add_matmuls(plan *p, const int *isas, int n_isa)
{
    const kb_plan_opts *o = p->o;
    /* decode: 1 row, 2 (the batched-decode tiles of 2-3 rows), 4 and 16 (the
     * prefill tiles on streamed weights); prefill: 128, 512 */
    static const int M_FULL[] = {1, 2, 4, 16, 128, 512}, M_QUICK[] = {1, 128};
    const int *Ms = o->quick ? M_QUICK : M_FULL;
    int nM = o->quick ? 2 : 6;
    for (int mi = 0; mi < 4; mi++) {
        for (int si = 0; si < 5; si++) {
            int C = kb_models[mi].C;
            kb_case c;
            memset(&c, 0, sizeof c);
            c.shape.op = KB_OP_MATMUL;
            c.shape.K = SHAPES[si].k_mul * C;
            c.shape.N = SHAPES[si].n_mul ? SHAPES[si].n_mul * C : N_VOCAB;
            snprintf(c.model, sizeof c.model, "%s", kb_models[mi].name);
            snprintf(c.label, sizeof c.label, "%s", SHAPES[si].label);
            for (int w = 0; w < KB_W_COUNT; w++) {
                c.shape.wtype = (kb_wtype)w;
                for (int k = 0; k < nM; k++) {
                    c.shape.M = Ms[k];
                    int prefill = Ms[k] >= 128;
                    /* --quick: prefill at 124M only; every size decodes */
                    if (o->quick && prefill && mi > 0)
                        continue;
                    if (w == KB_W_F32) {
                        c.isa = -1;
                        c.gemm = KB_GEMM_OPENBLAS;
                        add(p, &c);
                    }
                    c.gemm = KB_GEMM_NATIVE;
                    for (int i = 0; i < n_isa; i++) {
                        if (isas[i] == GPT2K_ISA_SCALAR && prefill && !o->scalar_prefill)
                            continue; /* minutes per shape; --scalar-prefill asks for it */
                        c.isa = isas[i];
                        add(p, &c);
                    }
                }
            }
        }
    }
}

static void add_attention(plan *p, const int *isas, int n_isa)
{
    static const int CTX_FULL[] = {128, 512, 1024}, CTX_QUICK[] = {128, 512};
    const int *ctxs = p->o->quick ? CTX_QUICK : CTX_FULL;
    int nc = p->o->quick ? 2 : 3;
    for (int k = 0; k < nc; k++)
        for (int prefill = 0; prefill < 2; prefill++)
            for (int kvt = 0; kvt < 2; kvt++) /* the KV cache in fp32, then fp16 */
                for (int i = 0; i < n_isa; i++) {
                    kb_case c;
                    memset(&c, 0, sizeof c);
                    c.shape.op = KB_OP_ATTENTION;
                    c.shape.wtype = kvt ? KB_W_F16 : KB_W_F32;
                    c.shape.ctx = ctxs[k];
                    c.shape.M = prefill ? ctxs[k] : 1;
                    c.shape.heads = ATTN_HEADS;
                    c.shape.head_dim = ATTN_HEAD_DIM;
                    c.shape.K = ATTN_HEADS * ATTN_HEAD_DIM;
                    c.isa = isas[i];
                    c.gemm = KB_GEMM_NONE;
                    snprintf(c.label, sizeof c.label, "%s", prefill ? "prefill" : "decode");
                    add(p, &c);
                }
}

static void add_elementwise(plan *p, const int *isas, int n_isa)
{
    static const int M_FULL[] = {1, 128, 512}, M_QUICK[] = {1, 128};
    const int *Ms = p->o->quick ? M_QUICK : M_FULL;
    int nM = p->o->quick ? 2 : 3;
    static const kb_op OPS[] = {KB_OP_LAYERNORM, KB_OP_GELU, KB_OP_ADD, KB_OP_QUANTIZE,
                                KB_OP_TO_F16};
    for (int oi = 0; oi < (int)(sizeof OPS / sizeof OPS[0]); oi++)
        for (int k = 0; k < nM; k++)
            for (int i = 0; i < n_isa; i++) {
                kb_case c;
                memset(&c, 0, sizeof c);
                c.shape.op = OPS[oi];
                c.shape.M = Ms[k];
                /* GELU runs on the MLP's 4C activations, the rest on C (124M) */
                c.shape.N = OPS[oi] == KB_OP_GELU ? 4 * 768 : 768;
                c.isa = isas[i];
                c.gemm = KB_GEMM_NONE;
                add(p, &c);
            }
    /* the greedy pick: one row of the LM head's logits per decode step */
    for (int i = 0; i < n_isa; i++) {
        kb_case c;
        memset(&c, 0, sizeof c);
        c.shape.op = KB_OP_ARGMAX;
        c.shape.M = 1;
        c.shape.N = 50257;
        c.isa = isas[i];
        c.gemm = KB_GEMM_NONE;
        add(p, &c);
    }
}

kb_case *kb_plan(const kb_plan_opts *o, int *n)
{
    int isas[GPT2K_ISA_COUNT], n_isa = 0;
    for (int i = 0; i < GPT2K_ISA_COUNT; i++)
        if (gpt2k_ops_for((gpt2k_isa)i))
            isas[n_isa++] = i;
    plan p = {0};
    p.o = o;
    add_matmuls(&p, isas, n_isa);
    add_attention(&p, isas, n_isa);
    add_elementwise(&p, isas, n_isa);
    if (p.oom) {
        free(p.v);
        return NULL;
    }
    *n = p.n;
    if (!p.v)
        p.v = malloc(sizeof *p.v); /* an empty plan is not an error */
    return p.v;
}
