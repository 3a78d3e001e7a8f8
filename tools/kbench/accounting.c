/* Bytes, FLOPs and the roofline of each op: pure arithmetic, no timing, so the
 * tests can check it. The counts are the compulsory ones (each operand read
 * once, each result written once), the least any implementation moves; a
 * kernel that re-reads its input from memory shows it as a lower % of roof. */
#include <math.h>
#include <string.h>

#include "kbench.h"

static const char *const OP_NAMES[KB_OP_COUNT] = {"matmul", "attention", "layernorm",
                                                   "gelu",   "add",       "quantize",
                                                   "to_f16", "argmax"};
static const char *const W_NAMES[KB_W_COUNT] = {"f32", "f16", "q8_0"};

const char *kb_op_name(kb_op op) { return op >= 0 && op < KB_OP_COUNT ? OP_NAMES[op] : "?"; }
const char *kb_wtype_name(kb_wtype w) { return w >= 0 && w < KB_W_COUNT ? W_NAMES[w] : "?"; }

const char *kb_gemm_name(kb_gemm g)
{
    return g == KB_GEMM_NATIVE ? "native" : g == KB_GEMM_OPENBLAS ? "openblas" : NULL;
}

int kb_op_parse(const char *s)
{
    for (int i = 0; s && i < KB_OP_COUNT; i++)
        if (!strcmp(s, OP_NAMES[i]))
            return i;
    return -1;
}

int kb_wtype_parse(const char *s)
{
    for (int i = 0; s && i < KB_W_COUNT; i++)
        if (!strcmp(s, W_NAMES[i]))
            return i;
    return -1;
}

int kb_gemm_parse(const char *s)
{
    if (!s)
        return KB_GEMM_NONE;
    if (!strcmp(s, "native"))
        return KB_GEMM_NATIVE;
    if (!strcmp(s, "openblas"))
        return KB_GEMM_OPENBLAS;
    return -1;
}

/* Nominal FLOPs per value of the elementwise ops (tools/kbench/README.md):
 * LayerNorm: mean 1, variance 2, normalise-scale-shift 4; GELU (tanh form):
 * x^3 2, fma 2, scale 1, tanh 1, 1 + t 1, 0.5 x (..) 2; add 1; Q8_0 quantize:
 * max |x| 1, scale 1, round 1; fp16 store: the rounding 1. */
#define LN_FLOPS 7.0
#define GELU_FLOPS 9.0
#define ADD_FLOPS 1.0
#define QUANT_FLOPS 3.0
#define TO_F16_FLOPS 1.0
#define ARGMAX_FLOPS 1.0 /* one comparison per value */

static double weight_bytes(kb_wtype w, double K, double N)
{
    switch (w) {
    case KB_W_F16: return N * K * 2;
    case KB_W_Q8_0: return N * (K / GPT2K_QK8_0) * sizeof(gpt2k_block_q8_0);
    default: return N * K * 4;
    }
}

/* Keys read by the attention rows: row r sits at position ctx - M + r and
 * attends to positions 0 .. its own. */
static double attention_positions(double M, double ctx)
{
    return M * ctx - M * (M - 1) / 2;
}

double kb_bytes(const kb_shape *s)
{
    double M = s->M, K = s->K, N = s->N;
    switch (s->op) {
    case KB_OP_MATMUL: {
        double b = weight_bytes(s->wtype, K, N) + M * K * 4 + M * N * 4 + N * 4; /* W, in, out, bias */
        if (s->wtype == KB_W_Q8_0) /* the activations, quantized once into a shared buffer */
            b += M * (K / GPT2K_QK8_0) * sizeof(gpt2k_block_q8_0);
        return b;
    }
    case KB_OP_ATTENTION: /* keys and values of the whole context, q in, out */
        return 2.0 * s->ctx * K * (s->wtype == KB_W_F16 ? 2 : 4) + 2.0 * M * K * 4;
    case KB_OP_LAYERNORM: return 2 * M * N * 4 + 2 * N * 4; /* x in, out, gamma, beta */
    case KB_OP_GELU: return 2 * M * N * 4;                   /* in place: read + write */
    case KB_OP_ADD: return 3 * M * N * 4;
    case KB_OP_QUANTIZE: return M * N * 4 + M * (N / GPT2K_QK8_0) * sizeof(gpt2k_block_q8_0);
    case KB_OP_TO_F16: return M * N * 4 + M * N * 2;
    case KB_OP_ARGMAX: return M * N * 4; /* the logits, once (ours reads them twice) */
    default: return 0;
    }
}

double kb_flops(const kb_shape *s)
{
    double M = s->M, K = s->K, N = s->N;
    switch (s->op) {
    case KB_OP_MATMUL: return 2 * M * K * N;
    case KB_OP_ATTENTION: /* per position and head: q.k and p*v, 2 * head_dim each; softmax not counted */
        return 4 * K * attention_positions(M, s->ctx);
    case KB_OP_LAYERNORM: return LN_FLOPS * M * N;
    case KB_OP_GELU: return GELU_FLOPS * M * N;
    case KB_OP_ADD: return ADD_FLOPS * M * N;
    case KB_OP_QUANTIZE: return QUANT_FLOPS * M * N;
    case KB_OP_TO_F16: return TO_F16_FLOPS * M * N;
    case KB_OP_ARGMAX: return ARGMAX_FLOPS * M * N;
    default: return 0;
    }
}

int kb_roofline(const kb_ceilings *c, const kb_shape *s, int threads, kb_roof *out)
{
    memset(out, 0, sizeof *out);
    if (c->max_threads < 1 || threads < 1)
        return -1;
    int t = threads < c->max_threads ? threads : c->max_threads;
    while (t > 1 && !(c->bw_gb_s[t] > 0))
        t--;
    out->bw_gb_s = c->bw_gb_s[t];
    int all = threads > 1;
    if (s->op == KB_OP_MATMUL && s->wtype == KB_W_Q8_0) {
        out->peak_gflop_s = c->int8_gop_s[all];
    } else {
        for (int i = 0; i < GPT2K_ISA_COUNT; i++)
            if (c->fma_gflop_s[i][all] > out->peak_gflop_s)
                out->peak_gflop_s = c->fma_gflop_s[i][all];
    }
    double bytes = kb_bytes(s), flops = kb_flops(s);
    if (!(bytes > 0) || !(out->bw_gb_s > 0) || !(out->peak_gflop_s > 0))
        return -1;
    out->intensity = flops / bytes;
    out->ridge = out->peak_gflop_s / out->bw_gb_s;
    double mem_roof = out->intensity * out->bw_gb_s;
    out->roof_gflop_s = mem_roof < out->peak_gflop_s ? mem_roof : out->peak_gflop_s;
    out->compute_bound = out->intensity >= out->ridge;
    return 0;
}

void kb_result_finish(kb_result *r, const kb_ceilings *ceil)
{
    r->bytes = kb_bytes(&r->c.shape);
    r->flops = kb_flops(&r->c.shape);
    double s = r->median_ms / 1e3;
    r->gb_s = s > 0 ? r->bytes / s / 1e9 : NAN;
    r->gflop_s = s > 0 ? r->flops / s / 1e9 : NAN;
    if (kb_roofline(ceil, &r->c.shape, r->threads, &r->roof) == 0 && isfinite(r->gflop_s))
        r->pct_of_roof = 100.0 * r->gflop_s / r->roof.roof_gflop_s;
    else
        r->pct_of_roof = NAN;
    r->vs_openblas = NAN;
    r->vs_previous = NAN;
    /* the same-bytes read: native decode matmuls only (ops_bench.c) */
    if (r->read_bytes > 0 && r->read_median_ms > 0) {
        r->read_gb_s = r->read_bytes / (r->read_median_ms / 1e3) / 1e9;
        r->vs_read = s > 0 ? r->read_median_ms / r->median_ms : NAN;
    } else {
        r->read_bytes = 0;
        r->read_median_ms = r->read_gb_s = r->vs_read = NAN;
    }
}

static int same_gemm_shape(const kb_case *a, const kb_case *b)
{
    return a->shape.op == KB_OP_MATMUL && b->shape.op == KB_OP_MATMUL &&
           a->shape.wtype == b->shape.wtype && a->shape.M == b->shape.M &&
           a->shape.K == b->shape.K && a->shape.N == b->shape.N;
}

void kb_link_openblas(kb_result *rs, int n)
{
    for (int i = 0; i < n; i++) {
        kb_result *r = &rs[i];
        r->vs_openblas = NAN;
        if (r->c.shape.op != KB_OP_MATMUL || r->c.gemm != KB_GEMM_NATIVE ||
            r->c.shape.wtype != KB_W_F32)
            continue;
        for (int j = 0; j < n; j++)
            if (rs[j].c.gemm == KB_GEMM_OPENBLAS && same_gemm_shape(&rs[j].c, &r->c) &&
                rs[j].threads == r->threads && r->median_ms > 0)
                r->vs_openblas = rs[j].median_ms / r->median_ms;
    }
}

int kb_link_previous(kb_result *rs, int n, const kb_result *old, int n_old)
{
    int matched = 0;
    for (int i = 0; i < n; i++) {
        kb_result *r = &rs[i];
        r->vs_previous = NAN;
        for (int j = 0; j < n_old; j++)
            if (!strcmp(old[j].c.name, r->c.name) && old[j].threads == r->threads &&
                old[j].median_ms > 0 && r->median_ms > 0) {
                r->vs_previous = old[j].median_ms / r->median_ms;
                matched++;
                break;
            }
    }
    return matched;
}
