/* The CUDA backend end to end, through engine/backend.h: logits against the
 * CPU backend's fp32 forward on small synthetic models, KV-cache decoding
 * against full recomputation, ragged batches against sequences run alone,
 * CUDA-graph replay against plain launches, the cuBLAS path against the
 * hand-written one, Q8_0 weights kept as Q8_0, and error paths.
 *
 * Tolerances, as |got - ref| <= ATOL + RTOL |ref| with ATOL = frac * max|ref|:
 *   f32 mode: frac = RTOL = 2e-3. Weights and activations are fp32 as on the
 *     CPU, but the KV cache is fp16 in every mode: keys and values carry a
 *     relative rounding of 2^-11 = 4.9e-4, which moves scores and attention
 *     outputs by about that much, and each later layer passes it on; 2e-3 of
 *     the logit scale holds that for these 2-3 layer models with margin.
 *   f16 mode: frac = RTOL = 1e-2. Every matmul input (weights, LayerNorm and
 *     attention outputs, GELU output) is rounded to 2^-11 as well, ~4
 *     roundings per layer; 1e-2 of the scale is ~20x one rounding.
 *   bf16 mode: frac = RTOL = 6e-2: 2^-8 = 3.9e-3 per rounding, 8x fp16.
 *   Q8_0 (both sides quantize weights and activations, but the GPU quantizes
 *     fp16 activations): frac = RTOL = 3e-2.
 *   A Q8_0 file in the f32/f16/bf16 modes: the GPU dequantizes the weights and
 *     keeps activations in that type, but the CPU reference still quantizes
 *     every matmul input to 8 bits (a step of max|block|/127, ~4 times per
 *     layer), so the gap is the Q8_0 one: 3e-2 as well (measured on an H100:
 *     5.0e-3 in f32 mode, past the f32 tolerance of 2e-3).
 * A real bug (wrong position, mask, block, bias or scale) moves logits by
 * 1e-1 .. 1 of their scale. Comparisons of the GPU with itself (decode vs
 * recompute, ragged vs alone) differ only in kernel choice and sum order:
 * frac = RTOL = 2e-3 in f16. Graph replay vs plain launches: bit-identical
 * (same kernels, same arguments, no atomics). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cuda_testutil.h"
#include "gpt2.h"
#include "model.h"
#include "testutil.h"

typedef struct mcfg {
    const char *name;
    gpt2_config c;
    gpt2_dtype dtype;
    int T; /* prompt length */
} mcfg;

/* C = 64 takes the tensor-core GEMM for M > 8; C = 36 (HD = 12, V = 301) takes
 * the GEMV fallback everywhere (K % 8 != 0) and odd head widths; the Q8_0
 * file needs K % 32 == 0. */
static const mcfg CFGS[] = {
    {"c64_f32", {512, 96, 64, 4, 2, 256, 1e-5f}, GPT2_DTYPE_F32, 80},
    {"c36_f32", {301, 40, 36, 3, 3, 144, 1e-5f}, GPT2_DTYPE_F32, 40},
    {"c64_f16", {512, 96, 64, 4, 2, 256, 1e-5f}, GPT2_DTYPE_F16, 80},
    {"c64_q8", {512, 96, 64, 4, 2, 256, 1e-5f}, GPT2_DTYPE_Q8_0, 80},
};
#define N_CFGS 4

static const char *model_path(const mcfg *m) { return tu_fmt("%s/cuda_%s.gguf", tu_data(), m->name); }

static void make_ids(int *ids, int T, int V, uint32_t seed)
{
    uint32_t x = 777u + seed;
    for (int t = 0; t < T; t++) {
        x = x * 1664525u + 1013904223u;
        ids[t] = (int)((x >> 8) % (uint32_t)V);
    }
}

static gpt2_model *load(const mcfg *m)
{
    gpt2_error err = {0};
    gpt2_model *mod = gpt2_model_load(model_path(m), NULL, &err);
    ck_assert_msg(mod != NULL, "load %s: %s", model_path(m), err.msg);
    return mod;
}

#define BS 4 /* positions per KV block: small, so tables have many entries */

static gpt2_backend_opts opts_for(const gpt2_model *mod, const char *gemm, int max_batch)
{
    const gpt2_config *c = gpt2_model_config(mod);
    gpt2_backend_opts o = {.n_threads = 2, .max_batch = max_batch, .max_logit_rows = max_batch,
                           .gemm = gemm, .kv_block_tokens = BS, .device = 0};
    o.kv_blocks = 8 * ((c->n_ctx + BS - 1) / BS); /* room for 8 whole sequences */
    return o;
}

typedef struct be {
    const gpt2_backend_ops *ops;
    void *st;
} be;

static be make_be(const gpt2_backend_ops *ops, const gpt2_model *mod, const char *gemm, int max_batch)
{
    gpt2_backend_opts o = opts_for(mod, gemm, max_batch);
    gpt2_error err = {0};
    be b = {ops, ops->create(mod, &o, &err)};
    ck_assert_msg(b.st != NULL, "%s create: %s", ops->name, err.msg);
    return b;
}

/* block table of sequence slot s: blocks s, s + 8, s + 16, ... (interleaved
 * with the other slots, so a wrong table shows) */
static int *table_for(int slot, int n_ctx)
{
    int n = (n_ctx + BS - 1) / BS;
    int *t = malloc(sizeof(int) * n);
    for (int j = 0; j < n; j++)
        t[j] = slot + 8 * (n - 1 - j); /* reversed order too */
    return t;
}

/* One sequence, one forward: rows pos0 .. pos0+n-1, logits from first_logit. */
static void fwd1(be b, const int *ids, int n, int pos0, int first_logit, const int *table, float *logits)
{
    gpt2_batch_seq q = {n, pos0, first_logit, table};
    gpt2_batch bt = {.ids = ids, .n_rows = n, .seqs = &q, .n_seqs = 1,
                     .n_logit_rows = n - first_logit};
    gpt2_error err = {0};
    int rc = b.ops->forward(b.st, &bt, logits, &err);
    ck_assert_msg(rc == 0, "%s forward (n=%d pos0=%d): %s", b.ops->name, n, pos0, err.msg);
}

static void expect_close(const char *what, const float *got, const float *ref, long n, double frac)
{
    double mx = 0;
    for (long i = 0; i < n; i++)
        mx = fabs(ref[i]) > mx ? fabs(ref[i]) : mx;
    tu_diff d = tu_compare(got, ref, n, frac * mx, frac);
    if (d.n_bad)
        ck_abort_msg("%s: %ld of %ld logits differ; worst at %ld (row %ld): got %.6g expected %.6g "
                     "(max |diff| %.3g = %.2e of max |ref| %.3g)",
                     what, d.n_bad, n, d.worst, d.worst, got[d.worst], ref[d.worst], d.max_abs,
                     d.max_abs / (mx > 0 ? mx : 1), mx);
}

/* all logits of a prompt from the CPU backend (fp32) */
static float *cpu_logits(const gpt2_model *mod, const int *ids, int T)
{
    const gpt2_config *c = gpt2_model_config(mod);
    be cpu = make_be(&gpt2_backend_cpu, mod, NULL, T);
    float *ref = malloc(sizeof(float) * T * c->n_vocab);
    int *tab = table_for(0, c->n_ctx);
    fwd1(cpu, ids, T, 0, 0, tab, ref);
    cpu.ops->destroy(cpu.st);
    free(tab);
    return ref;
}

static float *gpu_logits(const gpt2_model *mod, const char *gemm, const int *ids, int T)
{
    const gpt2_config *c = gpt2_model_config(mod);
    be g = make_be(&gpt2_backend_cuda, mod, gemm, T);
    float *out = malloc(sizeof(float) * T * c->n_vocab);
    int *tab = table_for(3, c->n_ctx);
    fwd1(g, ids, T, 0, 0, tab, out);
    g.ops->destroy(g.st);
    free(tab);
    return out;
}

/* ---- GPU vs CPU, per model and device dtype ------------------------------------ */

START_TEST(test_logits_vs_cpu)
{
    const mcfg *m = &CFGS[_i];
    static const char *modes[] = {"f32", "f16", "bf16", "q8_0"};
    static const double fracs[] = {2e-3, 1e-2, 6e-2, 3e-2};
    gpt2_model *mod = load(m);
    const gpt2_config *c = gpt2_model_config(mod);
    int ids[128];
    make_ids(ids, m->T, c->n_vocab, 1);
    float *ref = cpu_logits(mod, ids, m->T);
    for (int k = 0; k < 4; k++) {
        if (k == 3 && m->dtype != GPT2_DTYPE_Q8_0)
            continue;
        /* the CPU quantizes activations of a Q8_0 file in every mode */
        const double frac = m->dtype == GPT2_DTYPE_Q8_0 && fracs[k] < fracs[3] ? fracs[3] : fracs[k];
        setenv("GPT2C_CUDA_DTYPE", modes[k], 1);
        float *got = gpu_logits(mod, NULL, ids, m->T);
        expect_close(tu_fmt("%s GPT2C_CUDA_DTYPE=%s vs CPU", m->name, modes[k]), got, ref,
                     (long)m->T * c->n_vocab, frac);
        free(got);
    }
    unsetenv("GPT2C_CUDA_DTYPE");
    free(ref);
    gpt2_model_free(mod);
}
END_TEST

/* ---- KV-cache decode vs one full forward ------------------------------------- */

START_TEST(test_decode_vs_recompute)
{
    const mcfg *m = &CFGS[_i];
    gpt2_model *mod = load(m);
    const gpt2_config *c = gpt2_model_config(mod);
    const int T = m->T, V = c->n_vocab, P = T / 3;
    int ids[128];
    make_ids(ids, T, V, 2);
    float *full = gpu_logits(mod, NULL, ids, T);
    be g = make_be(&gpt2_backend_cuda, mod, NULL, T);
    int *tab = table_for(5, c->n_ctx);
    float *got = malloc(sizeof(float) * T * V);
    /* a prompt chunk of P rows (prefill tiles), a chunk of 3 (decode kernel), then one at a time */
    fwd1(g, ids, P, 0, 0, tab, got);
    fwd1(g, ids + P, 3, P, 0, tab, got + (size_t)P * V);
    for (int t = P + 3; t < T; t++)
        fwd1(g, ids + t, 1, t, 0, tab, got + (size_t)t * V);
    expect_close(tu_fmt("%s: chunked + one-token decode vs one forward", m->name), got, full,
                 (long)T * V, 2e-3);
    g.ops->destroy(g.st);
    free(tab), free(got), free(full);
    gpt2_model_free(mod);
}
END_TEST

/* ---- a ragged batch vs each sequence alone -------------------------------------- */

START_TEST(test_ragged_batch)
{
    const mcfg *m = &CFGS[_i];
    gpt2_model *mod = load(m);
    const gpt2_config *c = gpt2_model_config(mod);
    const int V = c->n_vocab;
    enum { S = 4 };
    /* per sequence: prompt length already cached, then rows in the batch */
    const int cached[S] = {0, 10, 33, 5}, rows[S] = {20, 1, 2, 9};
    int ids[S][64], *tabs[S];
    be g = make_be(&gpt2_backend_cuda, mod, NULL, 64);
    float *scratch = malloc(sizeof(float) * 64 * V);
    for (int s = 0; s < S; s++) {
        make_ids(ids[s], cached[s] + rows[s], V, 10 + s);
        tabs[s] = table_for(s, c->n_ctx);
        if (cached[s])
            fwd1(g, ids[s], cached[s], 0, cached[s], tabs[s], scratch); /* fill its cache */
    }
    /* the batch: all rows, logits for the last 2 rows of each sequence (or 1) */
    int bids[64], n = 0, nl = 0;
    gpt2_batch_seq qs[S];
    for (int s = 0; s < S; s++) {
        memcpy(bids + n, ids[s] + cached[s], sizeof(int) * rows[s]);
        int fl = rows[s] >= 2 ? rows[s] - 2 : 0;
        qs[s] = (gpt2_batch_seq){rows[s], cached[s], fl, tabs[s]};
        n += rows[s], nl += rows[s] - fl;
    }
    gpt2_batch bt = {.ids = bids, .n_rows = n, .seqs = qs, .n_seqs = S, .n_logit_rows = nl};
    float *got = malloc(sizeof(float) * nl * V), *want = malloc(sizeof(float) * nl * V);
    gpt2_error err = {0};
    ck_assert_msg(g.ops->forward(g.st, &bt, got, &err) == 0, "ragged forward: %s", err.msg);
    /* each sequence alone, from scratch, in a fresh backend */
    int k = 0;
    for (int s = 0; s < S; s++) {
        int len = cached[s] + rows[s];
        float *all = gpu_logits(mod, NULL, ids[s], len);
        int fl = rows[s] >= 2 ? rows[s] - 2 : 0;
        for (int r = fl; r < rows[s]; r++, k++)
            memcpy(want + (size_t)k * V, all + (size_t)(cached[s] + r) * V, sizeof(float) * V);
        free(all);
    }
    expect_close(tu_fmt("%s: ragged batch of %d sequences vs alone", m->name, S), got, want,
                 (long)nl * V, 2e-3);
    g.ops->destroy(g.st);
    for (int s = 0; s < S; s++)
        free(tabs[s]);
    free(scratch), free(got), free(want);
    gpt2_model_free(mod);
}
END_TEST

/* ---- CUDA graphs: greedy decoding of 3 sequences, replay vs plain ----------------- */

static void greedy(const gpt2_model *mod, int graphs, int *tokens, float *last_logits, int n_new)
{
    const gpt2_config *c = gpt2_model_config(mod);
    const int V = c->n_vocab, P = 6;
    enum { S = 3 };
    setenv("GPT2C_CUDA_GRAPHS", graphs ? "1" : "0", 1);
    be g = make_be(&gpt2_backend_cuda, mod, NULL, 32);
    int *tabs[S], cur[S], ids[S][8];
    float *lg = malloc(sizeof(float) * S * V);
    for (int s = 0; s < S; s++) {
        tabs[s] = table_for(s, c->n_ctx);
        make_ids(ids[s], P, V, 20 + s);
        fwd1(g, ids[s], P, 0, P - 1, tabs[s], lg);
        int best = 0;
        for (int v = 1; v < V; v++)
            best = lg[v] > lg[best] ? v : best;
        cur[s] = best;
    }
    for (int step = 0; step < n_new; step++) {
        gpt2_batch_seq qs[S];
        for (int s = 0; s < S; s++)
            qs[s] = (gpt2_batch_seq){1, P + step, 0, tabs[s]};
        gpt2_batch bt = {.ids = cur, .n_rows = S, .seqs = qs, .n_seqs = S, .n_logit_rows = S};
        gpt2_error err = {0};
        ck_assert_msg(g.ops->forward(g.st, &bt, lg, &err) == 0, "decode step %d: %s", step, err.msg);
        for (int s = 0; s < S; s++) {
            tokens[step * S + s] = cur[s];
            const float *l = lg + (size_t)s * V;
            int best = 0;
            for (int v = 1; v < V; v++)
                best = l[v] > l[best] ? v : best;
            cur[s] = best;
        }
    }
    memcpy(last_logits, lg, sizeof(float) * S * V);
    g.ops->destroy(g.st);
    for (int s = 0; s < S; s++)
        free(tabs[s]);
    free(lg);
    unsetenv("GPT2C_CUDA_GRAPHS");
}

START_TEST(test_graph_replay)
{
    const mcfg *m = &CFGS[_i];
    gpt2_model *mod = load(m);
    const int V = gpt2_model_config(mod)->n_vocab, n_new = 24;
    int a[3 * 24], b[3 * 24];
    float *la = malloc(sizeof(float) * 3 * V), *lb = malloc(sizeof(float) * 3 * V);
    greedy(mod, 0, a, la, n_new);
    greedy(mod, 1, b, lb, n_new);
    for (int i = 0; i < 3 * n_new; i++)
        ck_assert_msg(a[i] == b[i], "%s: token %d: plain launches %d, graph replay %d", m->name, i, a[i], b[i]);
    for (int i = 0; i < 3 * V; i++)
        ck_assert_msg(la[i] == lb[i], "%s: last logits %d: plain %.9g, graph %.9g", m->name, i, la[i], lb[i]);
    free(la), free(lb);
    gpt2_model_free(mod);
}
END_TEST

/* ---- argmax on the device: greedy decoding without the logits ------------------ */

/* The greedy loop of greedy() with the backend's argmax: sequence 0 still
 * wants its logits, 1 and 2 only their argmax (their logits rows must stay
 * as the caller left them: the copy is skipped). */
static void greedy_device_argmax(const gpt2_model *mod, int graphs, int *tokens, int n_new)
{
    const gpt2_config *c = gpt2_model_config(mod);
    const int V = c->n_vocab, P = 6;
    enum { S = 3 };
    setenv("GPT2C_CUDA_GRAPHS", graphs ? "1" : "0", 1);
    be g = make_be(&gpt2_backend_cuda, mod, NULL, 32);
    int *tabs[S], cur[S], ids[S][8], amax[S];
    const unsigned char need[S] = {1, 0, 0};
    float *lg = malloc(sizeof(float) * S * V);
    for (int s = 0; s < S; s++) {
        tabs[s] = table_for(s, c->n_ctx);
        make_ids(ids[s], P, V, 20 + s);
        /* the prompt's last row: argmax asked, logits too */
        gpt2_batch_seq q = {P, 0, P - 1, tabs[s]};
        gpt2_batch bt = {.ids = ids[s], .n_rows = P, .seqs = &q, .n_seqs = 1, .n_logit_rows = 1,
                         .argmax = amax};
        gpt2_error err = {0};
        ck_assert_msg(g.ops->forward(g.st, &bt, lg, &err) == 0, "prompt %d: %s", s, err.msg);
        ck_assert_int_eq(amax[0], gpt2_argmax(lg, V));
        cur[s] = amax[0];
    }
    for (int step = 0; step < n_new; step++) {
        gpt2_batch_seq qs[S];
        for (int s = 0; s < S; s++)
            qs[s] = (gpt2_batch_seq){1, P + step, 0, tabs[s]};
        for (long i = 0; i < (long)S * V; i++)
            lg[i] = NAN; /* what a skipped row must still hold */
        gpt2_batch bt = {.ids = cur, .n_rows = S, .seqs = qs, .n_seqs = S, .n_logit_rows = S,
                         .argmax = amax, .need_logits = need};
        gpt2_error err = {0};
        ck_assert_msg(g.ops->forward(g.st, &bt, lg, &err) == 0, "decode step %d: %s", step, err.msg);
        ck_assert_msg(amax[0] == gpt2_argmax(lg, V), "step %d: device argmax %d, host argmax of the "
                      "same logits %d", step, amax[0], gpt2_argmax(lg, V));
        for (long i = V; i < (long)S * V; i++)
            ck_assert_msg(isnan(lg[i]), "step %d: logit %ld of a row nobody asked for was written",
                          step, i);
        for (int s = 0; s < S; s++) {
            tokens[step * S + s] = cur[s];
            cur[s] = amax[s];
        }
    }
    g.ops->destroy(g.st);
    for (int s = 0; s < S; s++)
        free(tabs[s]);
    free(lg);
    unsetenv("GPT2C_CUDA_GRAPHS");
}

START_TEST(test_device_argmax)
{
    const mcfg *m = &CFGS[_i];
    gpt2_model *mod = load(m);
    const int V = gpt2_model_config(mod)->n_vocab, n_new = 24;
    int want[3 * 24], got[3 * 24];
    float *lg = malloc(sizeof(float) * 3 * V);
    greedy(mod, 0, want, lg, n_new); /* host argmax of full logits, plain launches */
    for (int graphs = 0; graphs < 2; graphs++) {
        greedy_device_argmax(mod, graphs, got, n_new);
        for (int i = 0; i < 3 * n_new; i++)
            ck_assert_msg(got[i] == want[i], "%s graphs=%d: token %d: device argmax %d, host %d",
                          m->name, graphs, i, got[i], want[i]);
    }
    free(lg);
    gpt2_model_free(mod);
}
END_TEST

/* ---- sampling on the device ------------------------------------------------------ */

/* S sequences decoded together, every logit row sampled on the device with
 * its own parameters and draws (a fixed sequence of u). Rows 0 and 2 also ask
 * for their logits, and their tokens must be gpt2_sample_row's on exactly
 * those logits (where the draw and cut are > 1e-5 from a boundary: the
 * device's expf may round differently); row 1's logits must not be copied.
 * *compared counts the rows checked against the rule. */
static void sampled_device(const gpt2_model *mod, int graphs, int *tokens, int n_new, int *compared)
{
    const gpt2_config *c = gpt2_model_config(mod);
    const int V = c->n_vocab, P = 6;
    enum { S = 3 };
    setenv("GPT2C_CUDA_GRAPHS", graphs ? "1" : "0", 1);
    be g = make_be(&gpt2_backend_cuda, mod, NULL, 32);
    int *tabs[S], cur[S], ids[S][8], amax[S], drawn[S];
    const unsigned char need[S] = {1, 0, 1};
    float *lg = malloc(sizeof(float) * S * V), *p = malloc(sizeof(float) * V);
    gpt2_row_sampling rs[S];
    static const int ks[S] = {0, 40, 5};
    static const float ps[S] = {0.9f, 1.0f, 0.5f}, temps[S] = {1.0f, 0.7f, 1.4f};
    uint64_t u = 12345;
    for (int step = -1; step < n_new; step++) {
        for (int s = 0; s < S; s++) {
            u = u * 6364136223846793005ull + 1442695040888963407ull;
            rs[s] = (gpt2_row_sampling){1, ks[s], 1.0f / temps[s], ps[s], (u >> 11) * 0x1.0p-53};
        }
        if (step < 0) { /* the prompts, one sequence per call */
            for (int s = 0; s < S; s++) {
                tabs[s] = table_for(s, c->n_ctx);
                make_ids(ids[s], P, V, 40 + s);
                gpt2_batch_seq q = {P, 0, P - 1, tabs[s]};
                gpt2_batch bt = {.ids = ids[s], .n_rows = P, .seqs = &q, .n_seqs = 1,
                                 .n_logit_rows = 1, .sampling = &rs[s], .sampled = &drawn[s]};
                gpt2_error err = {0};
                ck_assert_msg(g.ops->forward(g.st, &bt, lg, &err) == 0, "prompt %d: %s", s, err.msg);
                cur[s] = drawn[s];
            }
            continue;
        }
        gpt2_batch_seq qs[S];
        for (int s = 0; s < S; s++)
            qs[s] = (gpt2_batch_seq){1, P + step, 0, tabs[s]};
        for (long i = 0; i < (long)S * V; i++)
            lg[i] = NAN;
        gpt2_batch bt = {.ids = cur, .n_rows = S, .seqs = qs, .n_seqs = S, .n_logit_rows = S,
                         .argmax = amax, .need_logits = need, .sampling = rs, .sampled = drawn};
        gpt2_error err = {0};
        ck_assert_msg(g.ops->forward(g.st, &bt, lg, &err) == 0, "decode step %d: %s", step, err.msg);
        for (long i = V; i < 2L * V; i++)
            ck_assert_msg(isnan(lg[i]), "step %d: logits of row 1 (not asked for) were written", step);
        for (int s = 0; s < S; s += 2) {
            gpt2_sample_info info;
            int want = gpt2_sample_row(lg + (size_t)s * V, V, &rs[s], p, &info);
            ck_assert_int_eq(amax[s], gpt2_argmax(lg + (size_t)s * V, V)); /* argmax still right */
            if (info.draw_margin > 1e-5 && info.cut_margin > 1e-5) {
                ++*compared;
                ck_assert_msg(drawn[s] == want, "graphs=%d step %d row %d: device drew %d, the rule %d",
                              graphs, step, s, drawn[s], want);
            }
        }
        for (int s = 0; s < S; s++) {
            ck_assert_msg(drawn[s] >= 0 && drawn[s] < V, "step %d row %d: token %d", step, s, drawn[s]);
            tokens[step * S + s] = cur[s];
            cur[s] = drawn[s];
        }
    }
    g.ops->destroy(g.st);
    for (int s = 0; s < S; s++)
        free(tabs[s]);
    free(lg), free(p);
    unsetenv("GPT2C_CUDA_GRAPHS");
}

START_TEST(test_device_sampling)
{
    const mcfg *m = &CFGS[_i];
    gpt2_model *mod = load(m);
    const int n_new = 24;
    int plain[3 * 24], graph[3 * 24], compared = 0;
    sampled_device(mod, 0, plain, n_new, &compared);
    sampled_device(mod, 1, graph, n_new, &compared);
    for (int i = 0; i < 3 * n_new; i++) /* graph replay: the same draws, the same tokens */
        ck_assert_msg(graph[i] == plain[i], "%s: token %d: %d with graphs, %d without", m->name, i,
                      graph[i], plain[i]);
    ck_assert_msg(compared >= 2 * 2 * n_new * 8 / 10, "%s: only %d of %d rows compared with the rule",
                  m->name, compared, 2 * 2 * n_new);
    /* a bad draw is an error naming the row, not a stray token */
    be g = make_be(&gpt2_backend_cuda, mod, NULL, 32);
    int *tab = table_for(0, gpt2_model_config(mod)->n_ctx), id = 1, out = -1;
    gpt2_row_sampling bad = {1, 0, 1.0f, 0.9f, 1.0};
    gpt2_batch_seq q = {1, 0, 0, tab};
    gpt2_batch bt = {.ids = &id, .n_rows = 1, .seqs = &q, .n_seqs = 1, .n_logit_rows = 1,
                     .sampling = &bad, .sampled = &out};
    float *lg = malloc(sizeof(float) * gpt2_model_config(mod)->n_vocab);
    gpt2_error err = {0};
    ck_assert(g.ops->forward(g.st, &bt, lg, &err) != 0);
    ck_assert_msg(strstr(err.msg, "logit row 0") && strstr(err.msg, "u 1"), "error: %s", err.msg);
    g.ops->destroy(g.st);
    free(tab), free(lg);
    gpt2_model_free(mod);
}
END_TEST

/* ---- cuBLAS path vs hand-written ----------------------------------------------------- */

START_TEST(test_cublas_vs_native)
{
    const mcfg *m = &CFGS[_i];
    if (m->dtype == GPT2_DTYPE_Q8_0)
        return; /* default mode converts Q8_0 to f16: covered by the f16 model */
    gpt2_model *mod = load(m);
    const gpt2_config *c = gpt2_model_config(mod);
    int ids[128];
    make_ids(ids, m->T, c->n_vocab, 3);
    static const char *modes[] = {"f32", "f16", "bf16"};
    static const double fracs[] = {1e-4, 2e-3, 1e-2};
    for (int k = 0; k < 3; k++) {
        setenv("GPT2C_CUDA_DTYPE", modes[k], 1);
        float *nat = gpu_logits(mod, "native", ids, m->T);
        float *cub = gpu_logits(mod, "cublas", ids, m->T);
        expect_close(tu_fmt("%s %s: cuBLAS vs native", m->name, modes[k]), cub, nat,
                     (long)m->T * c->n_vocab, fracs[k]);
        free(nat), free(cub);
    }
    unsetenv("GPT2C_CUDA_DTYPE");
    gpt2_model_free(mod);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------- */

static void expect_create_error(const gpt2_model *mod, gpt2_backend_opts o, const char *needle)
{
    gpt2_error err = {0};
    void *st = gpt2_backend_cuda.create(mod, &o, &err);
    ck_assert_msg(st == NULL, "create succeeded; expected an error containing '%s'", needle);
    ck_assert_msg(strstr(err.msg, needle) != NULL, "error '%s' does not mention '%s'", err.msg, needle);
}

START_TEST(test_errors)
{
    gpt2_model *mod = load(&CFGS[0]);
    gpt2_backend_opts o = opts_for(mod, NULL, 8);
    setenv("GPT2C_CUDA_DTYPE", "fp8", 1);
    expect_create_error(mod, o, "GPT2C_CUDA_DTYPE=fp8");
    unsetenv("GPT2C_CUDA_DTYPE");
    o.gemm = "openblas";
    expect_create_error(mod, o, "gemm 'openblas'");
    o = opts_for(mod, NULL, 8);
    o.device = 99;
    expect_create_error(mod, o, "--device 99");
    /* a block id outside the pool is refused, nothing is written */
    o = opts_for(mod, NULL, 8);
    gpt2_error err = {0};
    void *st = gpt2_backend_cuda.create(mod, &o, &err);
    ck_assert_msg(st != NULL, "create: %s", err.msg);
    int bad[64], ids[2] = {1, 2};
    for (int j = 0; j < 64; j++)
        bad[j] = o.kv_blocks + j;
    gpt2_batch_seq q = {2, 0, 1, bad};
    gpt2_batch b = {.ids = ids, .n_rows = 2, .seqs = &q, .n_seqs = 1, .n_logit_rows = 1};
    float lg[512];
    ck_assert(gpt2_backend_cuda.forward(st, &b, lg, &err) != 0);
    ck_assert_msg(strstr(err.msg, "block") != NULL, "error '%s' does not name the block", err.msg);
    gpt2_backend_cuda.destroy(st);
    gpt2_model_free(mod);
}
END_TEST

/* weight_bytes (bench phase 2's bandwidth limit on a GPU) against the
 * parameter count: matrices and the token embedding (tied: the LM head) in
 * the device type, vectors and one position row in fp32, each allocation
 * padded to at most 256 bytes. */
START_TEST(test_weight_bytes)
{
    const mcfg *m = &CFGS[0]; /* f32 file, tied embedding */
    gpt2_model *mod = load(m);
    const size_t V = m->c.n_vocab, C = m->c.n_embd, FF = m->c.n_ff, L = m->c.n_layer;
    const size_t mats = V * C + L * (3 * C * C + C * C + FF * C + C * FF);
    const size_t vecs = C + 2 * C + L * (3 * C + C + FF + C + 4 * C);
    const size_t allocs = 4 + 12 * L;
    static const char *modes[] = {"f32", "f16", "bf16"};
    static const size_t elem[] = {4, 2, 2};
    for (int k = 0; k < 3; k++) {
        setenv("GPT2C_CUDA_DTYPE", modes[k], 1);
        be b = make_be(&gpt2_backend_cuda, mod, NULL, 8);
        const size_t got = b.ops->weight_bytes(b.st), want = elem[k] * mats + 4 * vecs;
        ck_assert_msg(got >= want && got <= want + 256 * allocs,
                      "GPT2C_CUDA_DTYPE=%s: %zu bytes read per step, expected %zu (+ padding)",
                      modes[k], got, want);
        b.ops->destroy(b.st);
    }
    unsetenv("GPT2C_CUDA_DTYPE");
    gpt2_model_free(mod);
}
END_TEST

/* Without a device, create() fails cleanly and says why. */
START_TEST(test_no_device_error)
{
    gpt2_model *mod = load(&CFGS[0]);
    gpt2_backend_opts o = opts_for(mod, NULL, 8);
    expect_create_error(mod, o, "no CUDA device");
    gpt2_model_free(mod);
}
END_TEST

static void make_models(void)
{
    for (int i = 0; i < N_CFGS; i++) {
        gpt2_error err = {0};
        int rc;
        if (CFGS[i].dtype == GPT2_DTYPE_Q8_0) { /* f32, then the quantizer (Q8_0 embeddings too) */
            const char *tmp = tu_fmt("%s.f32", model_path(&CFGS[i]));
            rc = gpt2_write_synthetic(&CFGS[i].c, 100 + i, GPT2_DTYPE_F32, tmp, 0, &err);
            if (!rc)
                rc = gpt2_quantize(tmp, model_path(&CFGS[i]), GPT2_DTYPE_Q8_0, GPT2_DTYPE_Q8_0,
                                   NULL, NULL, &err);
        } else {
            rc = gpt2_write_synthetic(&CFGS[i].c, 100 + i, CFGS[i].dtype, model_path(&CFGS[i]), 0,
                                      &err);
        }
        if (rc) {
            fprintf(stderr, "test_cuda_model: writing %s: %s\n", model_path(&CFGS[i]), err.msg);
            exit(1);
        }
    }
}

int main(void)
{
    char why[256];
    int have = cu_have_device(why, sizeof why);
    make_models();
    Suite *s = suite_create("cuda_model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 600);
    if (!have) {
        printf("test_cuda_model: skipped: no CUDA device (%s)\n", why);
        tcase_add_test(tc, test_no_device_error);
    } else {
        tcase_add_loop_test(tc, test_logits_vs_cpu, 0, N_CFGS);
        tcase_add_loop_test(tc, test_decode_vs_recompute, 0, N_CFGS);
        tcase_add_loop_test(tc, test_ragged_batch, 0, N_CFGS);
        tcase_add_loop_test(tc, test_graph_replay, 0, N_CFGS);
        tcase_add_loop_test(tc, test_device_argmax, 0, N_CFGS);
        tcase_add_loop_test(tc, test_device_sampling, 0, N_CFGS);
        tcase_add_loop_test(tc, test_cublas_vs_native, 0, N_CFGS);
        tcase_add_test(tc, test_errors);
        tcase_add_test(tc, test_weight_bytes);
    }
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
