/* The report side of gpt2c-bench: report.html and summary.md from report
 * trees built here, and --compare.
 *
 * Trees: a full, realistic run; one with every phase null; one with every
 * figure null; one whose strings need escaping (HTML and Markdown) and whose
 * numbers are awkward (-0, exponents, many digits). Each is written as
 * report.json and rendered; tests/reference/validate_report.py (independent
 * Python) then checks the JSON against reports/report.schema.json and that
 * every value of the JSON appears in report.html, at its JSON path (data-k),
 * formatted by the documented rule. The validator itself is shown to fail on
 * a broken report and on a tampered page, so a pass means something.
 *
 * Compare: improvements vs regressions, the noise band with and without a
 * coefficient of variation, the leak's interval rule, 0 -> n, nulls, the
 * environment differences, and clear errors for a missing old report, one that
 * is not JSON, one that is not a bench report and one of another version.
 *
 * The stats objects here are computed from generated samples with the
 * README's definitions (sample stddev, linear-interpolation percentiles), so
 * the trees are internally consistent, as the validator demands. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "report.h"
#include "testutil.h"

/* ---- small JSON builders ------------------------------------------------ */

static int g_nulls; /* 1: every figure that may be null is null */

static void num(cJSON *o, const char *k, double v)
{
    if (g_nulls)
        cJSON_AddNullToObject(o, k);
    else
        cJSON_AddNumberToObject(o, k, v);
}

static void str(cJSON *o, const char *k, const char *v)
{
    if (g_nulls || !v)
        cJSON_AddNullToObject(o, k);
    else
        cJSON_AddStringToObject(o, k, v);
}

static void boo(cJSON *o, const char *k, int v)
{
    if (g_nulls)
        cJSON_AddNullToObject(o, k);
    else
        cJSON_AddBoolToObject(o, k, v);
}

/* deterministic pseudo-random in [-1, 1) */
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static double rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 4503599627370496.0 - 1.0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *sorted, int n, double p)
{
    double r = p / 100.0 * (n - 1);
    int i = (int)floor(r);
    if (i >= n - 1)
        return sorted[n - 1];
    return sorted[i] + (r - i) * (sorted[i + 1] - sorted[i]);
}

/* A stats object of n samples around base with relative spread rel (and a
 * few slow outliers when tail > 0). */
static cJSON *stats(double base, double rel, int n, double tail)
{
    cJSON *s = cJSON_CreateObject();
    if (g_nulls) {
        static const char *const K[] = {"mean", "stddev", "cv", "min", "p50", "p90", "p95", "p99", "max"};
        cJSON_AddNumberToObject(s, "n", 0);
        for (int i = 0; i < 9; i++)
            cJSON_AddNullToObject(s, K[i]);
        return s;
    }
    double *x = malloc(sizeof(double) * (size_t)n);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = base * (1 + rel * rnd());
        if (tail > 0 && n > 20 && i % 17 == 3)
            x[i] *= 1 + tail;
        sum += x[i];
    }
    double mean = sum / n, ss = 0;
    for (int i = 0; i < n; i++)
        ss += (x[i] - mean) * (x[i] - mean);
    qsort(x, (size_t)n, sizeof *x, cmp_d);
    cJSON_AddNumberToObject(s, "n", n);
    cJSON_AddNumberToObject(s, "mean", mean);
    if (n > 1) {
        double sd = sqrt(ss / (n - 1));
        cJSON_AddNumberToObject(s, "stddev", sd);
        cJSON_AddNumberToObject(s, "cv", sd / mean);
    } else {
        cJSON_AddNullToObject(s, "stddev");
        cJSON_AddNullToObject(s, "cv");
    }
    cJSON_AddNumberToObject(s, "min", x[0]);
    cJSON_AddNumberToObject(s, "p50", pct(x, n, 50));
    cJSON_AddNumberToObject(s, "p90", pct(x, n, 90));
    cJSON_AddNumberToObject(s, "p95", pct(x, n, 95));
    cJSON_AddNumberToObject(s, "p99", pct(x, n, 99));
    cJSON_AddNumberToObject(s, "max", x[n - 1]);
    free(x);
    return s;
}

static cJSON *int_array(const int *v, int n)
{
    if (g_nulls)
        return cJSON_CreateNull();
    return cJSON_CreateIntArray(v, n);
}

static cJSON *str_array(const char *const *v, int n)
{
    if (g_nulls)
        return cJSON_CreateNull();
    return cJSON_CreateStringArray(v, n);
}

/* ---- the trees ---------------------------------------------------------- */

typedef struct tree_opts {
    int nulls;          /* every nullable figure null */
    int phases_null;    /* every phase null */
    int soak_fail;      /* the soak failed: mismatches, failures, growth */
    int failures;       /* validation checks that fail */
    int quick;          /* --quick: one prompt length, concurrency 1 and 2, few samples */
    const char *odd;    /* a string needing escaping, put in every free-text field */
    double ttft_scale;  /* multiplies TTFT figures (compare tests) */
    double cv_scale;    /* multiplies the spread of repeated measurements */
    double rss_scale;
    double req_scale;
    double leak_slope;
    double leak_hw;     /* half width of the leak CI; < 0: no CI */
    const char *isa;
} tree_opts;

static tree_opts defaults(void)
{
    tree_opts o = {0};
    o.ttft_scale = o.cv_scale = o.rss_scale = o.req_scale = 1;
    o.leak_slope = 0.012;
    o.leak_hw = 0.21;
    o.isa = "avx2";
    return o;
}

static const char *txt(const tree_opts *o, const char *normal) { return o->odd ? o->odd : normal; }

static cJSON *make_report(const tree_opts *o)
{
    g_nulls = o->nulls;
    g_rng = 0x9e3779b97f4a7c15ull;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "schema", "gpt2c-bench-report");
    cJSON_AddNumberToObject(r, "schema_version", 1);
    cJSON_AddBoolToObject(r, "complete", !o->nulls);
    cJSON_AddStringToObject(r, "created_utc", "2026-11-28T09:41:07Z");
    cJSON_AddStringToObject(r, "command", txt(o, "gpt2c-bench --threads 2 --out reports/run1"));
    num(r, "wall_s", 423.7);

    cJSON *st = cJSON_AddObjectToObject(r, "settings");
    cJSON_AddStringToObject(st, "model", txt(o, "weights/gpt2-124M-synthetic-f32.gguf"));
    str(st, "reference", o->odd ? o->odd : NULL);
    cJSON_AddStringToObject(st, "backend", "cpu");
    if (g_nulls)
        cJSON_AddNullToObject(st, "threads");
    else
        cJSON_AddNumberToObject(st, "threads", 2);
    str(st, "isa", o->isa);
    str(st, "gemm", "native");
    int ph[] = {1, 2, 3, 4, 5};
    cJSON_AddItemToObject(st, "phases", cJSON_CreateIntArray(ph, 5));
    cJSON_AddBoolToObject(st, "quick", 0);
    cJSON_AddNumberToObject(st, "seed", 0);
    num(st, "soak_minutes", 30);

    cJSON *env = cJSON_AddObjectToObject(r, "environment");
    cJSON_AddStringToObject(env, "backend", "cpu");
    str(env, "cpu_model", txt(o, "AMD EPYC 7B13 64-Core Processor"));
    static const char *const flags[] = {"fpu", "sse2", "ssse3", "sse4_1", "sse4_2", "avx", "f16c", "fma",
                                        "avx2", "bmi2", "sha_ni", "rdrand", "adx", "clflushopt"};
    cJSON_AddItemToObject(env, "cpu_flags", str_array(flags, 14));
    num(env, "cores_online", 2);
    num(env, "threads_used", 2);
    str(env, "isa", o->isa);
    static const char *const isas[] = {"scalar", "avx2"};
    cJSON_AddItemToObject(env, "isa_available", str_array(isas, 2));
    str(env, "gemm", "native");
    num(env, "memory_total_mb", 24048.3);
    str(env, "os", txt(o, "Debian GNU/Linux 12 (bookworm)"));
    str(env, "kernel", txt(o, "6.1.0-27-cloud-amd64 #1 SMP PREEMPT_DYNAMIC"));
    str(env, "compiler", "gcc 12.2.0");
    str(env, "cflags", txt(o, "-O3 -DNDEBUG -Wall -Wextra"));
    str(env, "build_type", "Release");
    str(env, "git_commit", "1218b8a3f0c94e7d5a2b6c1d9e8f7a6b5c4d3e2f");
    boo(env, "git_dirty", 1);
    str(env, "gpt2c_version", "0.1.0");
    str(env, "hostname", txt(o, "bench-box-01"));
    cJSON *model = cJSON_AddObjectToObject(env, "model");
    str(model, "path", txt(o, "weights/gpt2-124M-synthetic-f32.gguf"));
    str(model, "file_name", txt(o, "gpt2-124M-synthetic-f32.gguf"));
    num(model, "size_bytes", 499534944);
    str(model, "dtype", "f32");
    str(model, "crc32", "0x1a2b3c4d");
    num(model, "n_layer", 12);
    num(model, "n_embd", 768);
    num(model, "n_head", 12);
    num(model, "n_ctx", 1024);
    num(model, "n_vocab", 50257);
    num(model, "params", 124439808);
    str(model, "source", txt(o, "synthetic 124M (seed 0)"));
    cJSON_AddNullToObject(env, "gpu");
    if (o->quick) {
        cJSON_AddNullToObject(env, "cuda_device");
    } else { /* the shape gpt2_cuda_device_info gives, so the page shows every field */
        cJSON *cd = cJSON_AddObjectToObject(env, "cuda_device");
        str(cd, "name", txt(o, "NVIDIA H100 80GB HBM3"));
        str(cd, "compute_capability", "9.0");
        num(cd, "sm_count", 132);
        num(cd, "memory_bytes", 85017755648.0);
        num(cd, "peak_dram_gbs", 3352.3);
        str(cd, "runtime_version", "13.0");
    }

    cJSON *phases = cJSON_AddObjectToObject(r, "phases");
    double ttft_hl = 0, dec_hl = 0, load = 270.14, peak = 0, rq1 = 0, rq4 = 0, sc4 = 0;
    if (o->phases_null) {
        cJSON_AddNullToObject(phases, "validation");
        cJSON_AddNullToObject(phases, "latency");
        cJSON_AddNullToObject(phases, "memory");
        cJSON_AddNullToObject(phases, "throughput");
        cJSON_AddNullToObject(phases, "soak");
    } else {
        /* phase 1 */
        cJSON *v = cJSON_AddObjectToObject(phases, "validation");
        num(v, "load_ms", load);
        num(v, "rss_after_load_mb", 480.21 * o->rss_scale);
        boo(v, "deterministic", 1);
        cJSON *g = cJSON_AddObjectToObject(v, "golden");
        cJSON_AddBoolToObject(g, "applicable", !o->quick); /* quick: as on a tiny model */
        int prompt[] = {464, 2068, 7586, 21831, 18045, 625, 262, 16931};
        int expected[] = {3290, 13, 383, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13, 50256, 0, 11, 198};
        int got[16];
        memcpy(got, expected, sizeof got);
        if (o->failures)
            got[11] = 318;
        cJSON_AddItemToObject(g, "prompt_ids", int_array(prompt, 8));
        cJSON_AddItemToObject(g, "expected", int_array(expected, 16));
        if (o->quick) {
            cJSON_AddNullToObject(g, "got");
            cJSON_AddNullToObject(g, "match");
            cJSON_AddStringToObject(g, "reason", "not the default synthetic model");
        } else {
            cJSON_AddItemToObject(g, "got", int_array(got, 16));
            boo(g, "match", !o->failures);
            num(g, "max_abs_logit_diff", o->failures ? 0.0213 : 5.765576172045428e-07);
        }
        cJSON *ref = cJSON_AddObjectToObject(v, "reference");
        cJSON_AddStringToObject(ref, "path", txt(o, "weights/gpt2-124M-synthetic-q8_0.gguf"));
        num(ref, "tokens", 64);
        num(ref, "top1_agreement", 0.984375);
        num(ref, "max_abs_logit_diff", 0.0731);
        num(ref, "mean_abs_logit_diff", 0.00912);
        num(ref, "mean_kl", 1.53e-05);
        num(ref, "rms_rel_logit_err", 0.00631);
        num(ref, "greedy_agreement_tokens", 41);
        num(ref, "greedy_compared_tokens", 64);
        num(v, "prompt_tokens", 32);
        num(v, "generated_tokens", 64);
        ttft_hl = 61.37 * o->ttft_scale;
        dec_hl = 17.03214;
        num(v, "ttft_ms", ttft_hl);
        num(v, "decode_tok_s", dec_hl);
        cJSON *checks = cJSON_AddArrayToObject(v, "checks");
        static const char *const names[] = {"model loads", "greedy deterministic", "golden tokens",
                                            "quantized top-1 agreement >= 0.95", "no NaN in logits"};
        for (int i = 0; i < 5; i++) {
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "name", o->odd && i == 1 ? o->odd : names[i]);
            int ok = !(o->failures && (i == 2 || (o->failures > 1 && i == 4)));
            cJSON_AddBoolToObject(c, "ok", ok);
            str(c, "detail", i == 2 && !ok ? "token 11: expected 13, got 318" : txt(o, "as expected"));
            cJSON_AddItemToArray(checks, c);
        }
        num(v, "failures", o->failures);

        /* phase 2 */
        cJSON *l = cJSON_AddObjectToObject(phases, "latency");
        num(l, "generated_tokens", 64);
        num(l, "warmup_runs", 1);
        num(l, "repeats", 5);
        num(l, "read_bw_gb_s", 28.5);
        num(l, "read_bw_threads", 2);
        str(l, "read_bw_source", "probe");
        num(l, "compute_peak_gflop_s", 190.4);
        cJSON *rows = cJSON_AddArrayToObject(l, "rows");
        for (int p = 32; p <= (o->quick ? 32 : 1024); p *= 2) {
            cJSON *row = cJSON_CreateObject();
            cJSON_AddNumberToObject(row, "prompt_tokens", p);
            num(row, "runs", 5);
            num(row, "warmup", 1);
            double ttft = (38.5 + 0.71 * p + 0.00021 * p * p) * o->ttft_scale;
            double itl = 56.0 + 0.021 * p;
            cJSON_AddItemToObject(row, "ttft_ms", stats(ttft, 0.03 * o->cv_scale, 5, 0.2));
            cJSON_AddItemToObject(row, "itl_ms", stats(itl, 0.05 * o->cv_scale, 5 * 63, 0.4));
            cJSON_AddItemToObject(row, "decode_tok_s", stats(1000.0 / itl, 0.02 * o->cv_scale, 5, 0));
            cJSON_AddItemToObject(row, "prefill_tok_s", stats(p * 1000.0 / ttft, 0.03 * o->cv_scale, 5, 0));
            const double bytes = 497759232.0 + 73728.0 * (p + 31.5);
            num(row, "bytes_per_token", bytes);
            num(row, "read_bw_gb_s", 28.5);
            cJSON *probes = cJSON_AddArrayToObject(row, "read_bw_probes_gb_s");
            cJSON_AddItemToArray(probes, cJSON_CreateNumber(27.9));
            cJSON_AddItemToArray(probes, cJSON_CreateNumber(28.5));
            num(row, "read_bw_spread_pct", 100.0 * (28.5 - 27.9) / 28.5);
            num(row, "bw_limit_tok_s", 28.5e9 / bytes);
            num(row, "decode_pct_of_bw_limit", 100.0 * (1000.0 / itl) / (28.5e9 / bytes));
            const double flop = 12 * (2.0 * 7077888 + 4.0 * 768 * (p + 1) / 2.0);
            num(row, "prefill_flop_per_token", flop);
            num(row, "compute_limit_tok_s", 190.4e9 / flop);
            num(row, "prefill_pct_of_compute_limit", 100.0 * (p * 1000.0 / ttft) / (190.4e9 / flop));
            if (o->quick || g_nulls) { /* as a backend without an op profile writes it */
                cJSON_AddNullToObject(row, "op_profile");
            } else {
                static const char *const ops[] = {"embed", "layernorm", "matmul", "kv_store",
                                                  "attention", "gelu", "lm_head", "pick", "other"};
                static const double share[] = {0.002, 0.01, 0.6, 0.01, 0.1, 0.01, 0.26, 0.004, 0.004};
                cJSON *pr = cJSON_AddObjectToObject(row, "op_profile");
                cJSON *d = cJSON_AddObjectToObject(pr, "decode_ms_per_step");
                cJSON *q = cJSON_AddObjectToObject(pr, "prompt_ms");
                for (int k = 0; k < 9; k++) {
                    num(d, ops[k], itl * share[k]);
                    num(q, ops[k], ttft * share[8 - k]);
                }
                num(pr, "decode_step_ms", itl);
                num(pr, "prompt_pass_ms", ttft);
                num(pr, "decode_steps", 63);
                num(pr, "decode_weights_gb_s", 497759232.0 / (itl * 0.86 * 1e6));
                num(pr, "decode_weights_pct_of_read_bw", 100 * 497759232.0 / (itl * 0.86 * 1e6) / 28.5);
            }
            cJSON_AddItemToArray(rows, row);
        }

        /* phase 3 */
        cJSON *m = cJSON_AddObjectToObject(phases, "memory");
        num(m, "rss_after_load_mb", 480.21 * o->rss_scale);
        peak = 612.5 * o->rss_scale;
        num(m, "peak_rss_mb", peak);
        boo(m, "peak_reset", 1);
        num(m, "weights_bytes", 497759232);
        boo(m, "weights_mapped", 1);
        num(m, "kv_bytes_per_token", 73728);
        num(m, "kv_bytes_total", 75497472);
        num(m, "arena_bytes", 20185088);
        num(m, "allocs_per_token", 0);
        cJSON *leak = cJSON_AddObjectToObject(m, "leak");
        num(leak, "window_s", 60);
        num(leak, "requests", 40);
        cJSON *samples = cJSON_AddArrayToObject(leak, "samples");
        if (!g_nulls)
            for (int i = 0; i < (o->quick ? 5 : 40); i++) {
                double t = i * 1.5;
                double rss = 600.1 * o->rss_scale + o->leak_slope / 3600.0 * t + 0.35 * rnd() + (i % 7 == 0 ? 0.6 : 0);
                double pt[2] = {t, rss};
                cJSON_AddItemToArray(samples, cJSON_CreateDoubleArray(pt, 2));
            }
        num(leak, "slope_mb_per_hour", o->leak_slope);
        if (g_nulls || o->leak_hw < 0) {
            cJSON_AddNullToObject(leak, "ci95_mb_per_hour");
        } else {
            double ci[2] = {o->leak_slope - o->leak_hw, o->leak_slope + o->leak_hw};
            cJSON_AddItemToObject(leak, "ci95_mb_per_hour", cJSON_CreateDoubleArray(ci, 2));
        }
        str(leak, "verdict", txt(o, "no growth detected"));

        /* phase 4 */
        cJSON *t = cJSON_AddObjectToObject(phases, "throughput");
        num(t, "prompt_tokens", 32);
        num(t, "generated_tokens", 32);
        num(t, "window_s", 20);
        str(t, "mode", txt(o, "continuous batching"));
        num(t, "max_seqs", 16);
        cJSON *trows = cJSON_AddArrayToObject(t, "rows");
        static const double rq[] = {0.52, 0.71, 0.86, 0.88, 0.87};
        for (int i = 0, c = 1; c <= (o->quick ? 2 : 16); c *= 2, i++) {
            cJSON *row = cJSON_CreateObject();
            cJSON_AddNumberToObject(row, "concurrency", c);
            double req = rq[i] * o->req_scale;
            num(row, "requests", floor(req * 20));
            num(row, "failures", 0);
            num(row, "mismatches", 0);
            num(row, "elapsed_s", 20 + 0.37 * c + 0.0123 * i);
            num(row, "req_s", req);
            num(row, "tok_s", req * 32);
            cJSON_AddItemToObject(row, "latency_ms", stats(1900.0 * c / (rq[i] / rq[0]), 0.1, 10, 0.3));
            num(row, "scaling", rq[i] / rq[0]);
            cJSON_AddItemToObject(row, "ttft_ms", stats(80.0 * c, 0.2, 10, 0.3));
            cJSON_AddItemToObject(row, "tpot_ms", stats(30.0 + 2.5 * c, 0.05, 10, 0.3));
            num(row, "tpot_p50_vs_one_client", (30.0 + 2.5 * c) / 32.5);
            num(row, "steps", 700 - 10 * c);
            num(row, "mean_batch_rows", 1.4 * c);
            num(row, "mean_batch_seqs", 0.97 * c);
            num(row, "kv_peak_blocks", 3 * c);
            if (c == 1)
                rq1 = req;
            if (c == 4) {
                rq4 = req;
                sc4 = rq[i] / rq[0];
            }
            cJSON_AddItemToArray(trows, row);
        }
    }

    if (!o->phases_null) { /* the soak */
        cJSON *k = cJSON_AddObjectToObject(phases, "soak");
        cJSON_AddNumberToObject(k, "minutes", 30);
        num(k, "duration_s", 1800.02);
        cJSON_AddBoolToObject(k, "complete", !o->nulls);
        num(k, "sample_interval_s", 5);
        num(k, "warmup_s", 120);
        num(k, "max_clients", 16);
        num(k, "max_prompt_tokens", 300);
        num(k, "max_new_tokens", 64);
        num(k, "check_one_in", 4);
        num(k, "growth_threshold_mb_per_hour", 1);
        num(k, "requests", 5210);
        num(k, "completed", 4402);
        num(k, "cancelled", 631);
        num(k, "abandoned", 160);
        num(k, "failures", o->soak_fail ? 2 : 0);
        num(k, "checked", 1127);
        num(k, "mismatches", o->soak_fail ? 1 : 0);
        num(k, "unchecked", 3);
        num(k, "generated_tokens", 150331);
        cJSON *samples = cJSON_AddArrayToObject(k, "samples");
        if (!g_nulls)
            for (int i = 0; i < (o->quick ? 4 : 360); i++) {
                double pt[4] = {i * 5.0 + 0.02, 380.5 + (i < 24 ? i * 0.5 : 12) + 0.2 * rnd(), 6, 1 + (i / 7) % 16};
                cJSON_AddItemToArray(samples, cJSON_CreateDoubleArray(pt, 4));
            }
        num(k, "fit_samples", o->quick ? 0 : 336);
        num(k, "rss_slope_mb_per_hour", o->soak_fail ? 7.25 : 0.031);
        num(k, "rss_slope_se_mb_per_hour", 0.052);
        if (g_nulls) {
            cJSON_AddNullToObject(k, "rss_ci95_mb_per_hour");
        } else {
            double base = o->soak_fail ? 7.25 : 0.031, ci[2] = {base - 0.102, base + 0.102};
            cJSON_AddItemToObject(k, "rss_ci95_mb_per_hour", cJSON_CreateDoubleArray(ci, 2));
        }
        num(k, "fds_first", 6);
        num(k, "fds_last", 6);
        num(k, "fds_max", 7);
        num(k, "fd_growth", 0);
        cJSON *pr = cJSON_AddArrayToObject(k, "problems");
        cJSON *rs = cJSON_AddArrayToObject(k, "reasons");
        if (o->soak_fail) {
            cJSON_AddItemToArray(pr, cJSON_CreateString(txt(o, "request 812 (prompt 37, n_new 12, greedy): token 3: 464 in the engine, 262 alone")));
            cJSON_AddItemToArray(pr, cJSON_CreateString("request 990 (prompt 5, n_new 9, greedy): failed: out of memory"));
            cJSON_AddItemToArray(rs, cJSON_CreateString("2 requests failed"));
            cJSON_AddItemToArray(rs, cJSON_CreateString(txt(o, "RSS grows 7.25 MiB/hour (95% interval 7.15 .. 7.35), above 1 MiB/hour")));
        }
        if (o->nulls) /* nothing measured: a failure, said so */
            cJSON_AddItemToArray(rs, cJSON_CreateString("0 RSS samples after the warm-up: too few to fit a slope"));
        cJSON_AddStringToObject(k, "verdict", o->soak_fail || o->nulls ? "FAIL" : "PASS");
    }

    cJSON *h = cJSON_AddObjectToObject(r, "headline");
    if (o->phases_null || o->nulls) {
        static const char *const K[] = {"load_ms", "ttft_ms", "decode_tok_s", "peak_rss_mb", "leak_mb_per_hour",
                                        "req_s_c1", "req_s_c4", "scaling_c4", "validation_failures"};
        for (int i = 0; i < 9; i++)
            cJSON_AddNullToObject(h, K[i]);
    } else {
        num(h, "load_ms", load);
        num(h, "ttft_ms", ttft_hl);
        num(h, "decode_tok_s", dec_hl);
        num(h, "peak_rss_mb", peak);
        num(h, "leak_mb_per_hour", o->leak_slope);
        num(h, "req_s_c1", rq1);
        if (o->quick) {
            cJSON_AddNullToObject(h, "req_s_c4");
            cJSON_AddNullToObject(h, "scaling_c4");
        } else {
            num(h, "req_s_c4", rq4);
            num(h, "scaling_c4", sc4);
        }
        num(h, "validation_failures", o->failures);
    }
    cJSON_AddNullToObject(r, "compare");
    g_nulls = 0;
    return r;
}

/* ---- files and the validator ------------------------------------------- */

/* DATA/report/<name>, created; in its own ring of buffers (tu_fmt's is reused often). */
static const char *dir_for(const char *name)
{
    static char ring[4][1024];
    static int next;
    char *d = ring[next++ & 3];
    snprintf(d, sizeof ring[0], "%s/report", tu_data());
    mkdir(d, 0755);
    snprintf(d, sizeof ring[0], "%s/report/%s", tu_data(), name);
    mkdir(d, 0755);
    return d;
}

static void write_json(const cJSON *r, const char *path)
{
    char *text = cJSON_Print(r);
    ck_assert(text != NULL);
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    free(text);
}

static char *slurp(const char *path)
{
    size_t n;
    char *b = tu_read_file(path, &n);
    char *s = realloc(b, n + 1);
    ck_assert(s != NULL);
    s[n] = '\0';
    return s;
}

/* Writes report.json, report.html, summary.md into DATA/report/<name>/. */
static const char *render_all(const cJSON *r, const char *name)
{
    const char *d = dir_for(name);
    char err[512] = "";
    write_json(r, tu_fmt("%s/report.json", d));
    ck_assert_msg(bench_write_html(r, tu_fmt("%s/report.html", d), err, sizeof err) == 0, "html: %s", err);
    ck_assert_msg(bench_write_summary_md(r, tu_fmt("%s/summary.md", d), err, sizeof err) == 0, "md: %s", err);
    return d;
}

/* Runs the validator; returns its exit status; its output goes to out_path. */
static int validate(const char *dir, int with_html, const char *out_path)
{
    const char *cmd = tu_fmt("%s %s/tests/reference/validate_report.py %s/report.json %s%s%s > %s 2>&1",
                             tu_python(), tu_src(), dir, with_html ? "--html " : "", with_html ? dir : "",
                             with_html ? "/report.html" : "", out_path);
    int rc = system(cmd);
    ck_assert_msg(rc != -1 && WIFEXITED(rc), "cannot run: %s", cmd);
    return WEXITSTATUS(rc);
}

static void expect_valid(const char *dir)
{
    const char *out = tu_fmt("%s/validate.txt", dir);
    int rc = validate(dir, 1, out);
    if (rc != 0) {
        char *msg = slurp(out);
        ck_abort_msg("validate_report.py failed (%d) on %s:\n%s", rc, dir, msg);
    }
}

/* A report rendered, checked by the validator and both documents read back. */
typedef struct rendered {
    const char *dir;
    char *html, *md;
} rendered;

static rendered render_valid(const cJSON *r, const char *name)
{
    rendered v = {render_all(r, name), NULL, NULL};
    expect_valid(v.dir);
    v.html = slurp(tu_fmt("%s/report.html", v.dir));
    v.md = slurp(tu_fmt("%s/summary.md", v.dir));
    return v;
}

static void rendered_free(rendered *v)
{
    free(v->html);
    free(v->md);
    v->html = v->md = NULL;
}

static int count_substr(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* ---- rendering tests ----------------------------------------------------- */

START_TEST(test_fmt_rule)
{
    char b[BENCH_NUM_BUF];
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0, "0"}, {-0.0, "0"}, {32, "32"}, {-1024, "-1024"}, {499534944, "499534944"},
        {270.14, "270.14"}, {17.03214, "17.0321"}, {0.984375, "0.984375"}, {1.53e-05, "1.53e-05"},
        {0.0001, "0.0001"}, {1234567.5, "1.23457e+06"}, {1e15, "1e+15"}, {-0.5, "-0.5"},
        {123456.5, "123456"}, {999999.5, "1e+06"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_str_eq(bench_fmt_num(cases[i].v, b, sizeof b), cases[i].want);
    ck_assert_str_eq(bench_fmt_num(NAN, b, sizeof b), "\xe2\x80\x94");
    ck_assert_str_eq(bench_fmt_num(INFINITY, b, sizeof b), "\xe2\x80\x94");
}
END_TEST

START_TEST(test_full_report)
{
    tree_opts o = defaults();
    cJSON *r = make_report(&o);
    rendered v = render_valid(r, "full");
    /* one self-contained page with seven charts (the soak's too), drawn as SVG */
    ck_assert_int_eq(count_substr(v.html, "<svg "), 7);
    ck_assert_int_eq(count_substr(v.html, "<script"), 0);
    ck_assert_ptr_nonnull(strstr(v.html, "All 5 validation checks passed"));
    /* the charts hold the data: 6 TTFT p50 markers, 18 ITL bars, 40 RSS samples */
    ck_assert_int_ge(count_substr(v.html, "tokens: p99"), 6);
    ck_assert_int_eq(count_substr(v.html, " ms</title></rect>"), 18);
    ck_assert_int_eq(count_substr(v.html, " MiB</title></circle>"), 40);
    ck_assert_ptr_nonnull(strstr(v.md, "| Figure | Value |"));
    ck_assert_ptr_nonnull(strstr(v.md, "| Model load | 270 ms |"));
    ck_assert_ptr_nonnull(strstr(v.md, "| Time to first token | 61.4 ms (32-token prompt) |"));
    ck_assert_ptr_nonnull(strstr(v.md, "| Validation failures | 0 |"));
    ck_assert_ptr_nonnull(strstr(v.md, "**Model** gpt2-124M-synthetic-f32.gguf (f32, 124.4 M parameters)"));
    ck_assert_ptr_nonnull(strstr(v.md, "AMD EPYC 7B13"));
    ck_assert_ptr_null(strstr(v.md, "FAILED"));
    ck_assert_int_eq(count_substr(v.md, "\n| "), 10); /* header + 9 figures */
    /* the op profile: both tables, and the summary's line on the first prompt length */
    ck_assert_ptr_nonnull(strstr(v.html, "Decode step by op (ms per step)"));
    ck_assert_ptr_nonnull(strstr(v.html, "Prompt pass by op (ms per pass)"));
    ck_assert_ptr_nonnull(strstr(v.md, "Its decode step (32-token prompt): 56.67 ms, of which the "
                                       "matmuls and the LM head 86 %, reading the weights at 10.2 "
                                       "GB/s (36 % of the read bandwidth); the rest: layernorm 1.0 %, "
                                       "kv_store 1.0 %, attention 10.0 %, gelu 1.0 %.\n"));
    rendered_free(&v);
    /* no temporary file is left behind */
    ck_assert_int_ne(access(tu_fmt("%s/report.html.tmp.%ld", v.dir, (long)getpid()), F_OK), 0);
    cJSON_Delete(r);
}
END_TEST

/* The bandwidth line of summary.md says where the limit came from: the
 * probe on a CPU, the DRAM peak of a GPU (not a measurement). */
START_TEST(test_bw_source_wording)
{
    tree_opts o = defaults();
    cJSON *r = make_report(&o);
    rendered v = render_valid(r, "bw_probe");
    ck_assert_ptr_nonnull(
        strstr(v.md, "at the read bandwidth measured just before and just after: median 28.5 GB/s)"));
    ck_assert_ptr_null(strstr(v.md, "DRAM peak"));
    ck_assert_ptr_null(strstr(v.md, "moved by up to"));
    ck_assert_ptr_null(strstr(v.html, "moved by up to"));
    rendered_free(&v);
    /* probes around one prompt length that disagree: both reports say how far */
    cJSON *l0 = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "phases"), "latency");
    cJSON *row1 = cJSON_GetArrayItem(cJSON_GetObjectItem(l0, "rows"), 1);
    cJSON_ReplaceItemInObjectCaseSensitive(row1, "read_bw_spread_pct", cJSON_CreateNumber(53.2));
    v = render_valid(r, "bw_spread");
    ck_assert_ptr_nonnull(strstr(v.md, "median 28.5 GB/s; the bandwidth moved by up to 53 % between "
                                       "the probes around one prompt length, so these ratios are "
                                       "loose)."));
    ck_assert_ptr_nonnull(strstr(v.html, "The read bandwidth moved by up to 53 % between the probes"));
    rendered_free(&v);
    cJSON *l = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "phases"), "latency");
    cJSON_ReplaceItemInObjectCaseSensitive(l, "read_bw_source", cJSON_CreateString("device_peak"));
    cJSON_ReplaceItemInObjectCaseSensitive(l, "read_bw_threads", cJSON_CreateNull());
    v = render_valid(r, "bw_device");
    ck_assert_ptr_nonnull(strstr(v.md, "at the device's DRAM peak of 28 GB/s, from its memory clock"));
    ck_assert_ptr_null(strstr(v.md, "measured just before"));
    rendered_free(&v);
    cJSON_Delete(r);
}
END_TEST

/* --quick: one point per curve, and no concurrency 4 */
START_TEST(test_quick_report)
{
    tree_opts o = defaults();
    o.quick = 1;
    cJSON *r = make_report(&o);
    rendered v = render_valid(r, "quick");
    ck_assert_ptr_nonnull(strstr(v.md, "| Throughput, 4 clients | \xe2\x80\x94 |"));
    rendered_free(&v);
    cJSON_Delete(r);
}
END_TEST

START_TEST(test_failures_prominent)
{
    tree_opts o = defaults();
    o.failures = 2;
    cJSON *r = make_report(&o);
    rendered v = render_valid(r, "failures");
    ck_assert_ptr_nonnull(strstr(v.html, "2 validation checks FAILED: golden tokens, no NaN in logits"));
    ck_assert_int_eq(count_substr(v.html, "class=\"failrow\""), 2);
    ck_assert_ptr_nonnull(strstr(v.html, "<div class=\"card bad\"><div class=\"l\">Validation failures"));
    ck_assert_ptr_nonnull(strstr(v.html, "<span class=\"diff\" data-k=\"phases.validation.golden.got[11]\">318</span>"));
    ck_assert_ptr_nonnull(strstr(v.md, "**2 validation checks FAILED**"));
    ck_assert_ptr_nonnull(strstr(v.md, "| Validation failures | 2 **FAILED** |"));
    rendered_free(&v);
    cJSON_Delete(r);
}
END_TEST

/* The soak's verdict is as prominent as the validation's. */
START_TEST(test_soak_verdict_shown)
{
    tree_opts o = defaults();
    cJSON *r = make_report(&o);
    rendered v = render_valid(r, "soak_pass");
    ck_assert_ptr_nonnull(strstr(v.html, "<div class=\"banner ok\">Soak verdict: <span data-k=\"phases.soak.verdict\">PASS</span>"));
    ck_assert_ptr_nonnull(strstr(v.html, "id=\"chart-soak\""));
    ck_assert_ptr_nonnull(strstr(v.md, "## Soak: **PASS**"));
    ck_assert_ptr_nonnull(strstr(v.md, "5,210 requests (631 cancelled), 1,127 checked"));
    rendered_free(&v);
    cJSON_Delete(r);

    o.soak_fail = 1;
    r = make_report(&o);
    v = render_valid(r, "soak_fail");
    ck_assert_ptr_nonnull(strstr(v.html, "<div class=\"banner bad\">Soak verdict: <span data-k=\"phases.soak.verdict\">FAIL</span>"));
    ck_assert_ptr_nonnull(strstr(v.html, "data-k=\"phases.soak.reasons[0]\">2 requests failed</li>"));
    ck_assert_ptr_nonnull(strstr(v.md, "## Soak: **FAIL**"));
    ck_assert_ptr_nonnull(strstr(v.md, "- 2 requests failed\n"));
    rendered_free(&v);
    /* a PASS that has reasons, or mismatches, is refused by the validator */
    cJSON *k = (cJSON *)bench_get_obj(bench_get_obj(r, "phases"), "soak");
    cJSON_ReplaceItemInObjectCaseSensitive(k, "verdict", cJSON_CreateString("PASS"));
    write_json(r, tu_fmt("%s/report.json", v.dir));
    const char *out = tu_fmt("%s/validate.txt", v.dir);
    ck_assert_int_eq(validate(v.dir, 0, out), 1);
    char *msg = slurp(out);
    ck_assert_msg(strstr(msg, "verdict PASS with 2 reasons") && strstr(msg, "verdict PASS with mismatches = 1"), "%s", msg);
    free(msg);
    cJSON_Delete(r);
}
END_TEST

START_TEST(test_phases_null)
{
    tree_opts o = defaults();
    o.phases_null = 1;
    cJSON *r = make_report(&o);
    rendered v = render_valid(r, "phases_null");
    ck_assert_int_eq(count_substr(v.html, "This phase did not run."), 5);
    ck_assert_ptr_nonnull(strstr(v.html, "no soak (--soak MINUTES)"));
    ck_assert_ptr_nonnull(strstr(v.html, "phase 2 (latency) did not run"));
    ck_assert_ptr_nonnull(strstr(v.html, "phase 3 (memory) did not run"));
    ck_assert_ptr_nonnull(strstr(v.html, "phase 4 (throughput) did not run"));
    ck_assert_int_eq(count_substr(v.md, "| \xe2\x80\x94 |"), 9);
    rendered_free(&v);
    cJSON_Delete(r);
}
END_TEST

START_TEST(test_nulls_everywhere)
{
    tree_opts o = defaults();
    o.nulls = 1;
    cJSON *r = make_report(&o);
    const char *d = render_all(r, "nulls");
    expect_valid(d);
    char *html = slurp(tu_fmt("%s/report.html", d));
    ck_assert_ptr_nonnull(strstr(html, "Incomplete run"));
    ck_assert_ptr_nonnull(strstr(html, "no TTFT figures"));
    ck_assert_ptr_nonnull(strstr(html, "no RSS samples"));
    free(html);
    cJSON_Delete(r);
}
END_TEST

/* Strings that must be escaped, and numbers that are awkward to print. */
static const char ODD[] = "<script>alert(\"x&y\")</script> & 'q' | *b* _i_ `c` \\ <!-- --> ]]> caf\xc3\xa9 \xf0\x9f\x9a\x80";

START_TEST(test_odd_strings)
{
    tree_opts o = defaults();
    o.odd = ODD;
    cJSON *r = make_report(&o);
    /* numbers: -0, an exponent, 17 significant digits, a huge integer */
    cJSON *leak = (cJSON *)bench_get_obj(bench_get_obj(bench_get_obj(r, "phases"), "memory"), "leak");
    double ci[2] = {-0.0, 0.1 + 0.2};
    cJSON_ReplaceItemInObjectCaseSensitive(leak, "ci95_mb_per_hour", cJSON_CreateDoubleArray(ci, 2));
    cJSON *model = (cJSON *)bench_get_obj(bench_get_obj(r, "environment"), "model");
    cJSON_ReplaceItemInObjectCaseSensitive(model, "size_bytes", cJSON_CreateNumber(549755813888.0));
    cJSON *memory = (cJSON *)bench_get_obj(bench_get_obj(r, "phases"), "memory");
    cJSON_ReplaceItemInObjectCaseSensitive(memory, "allocs_per_token", cJSON_CreateNumber(3.0e-7));
    const char *d = render_all(r, "odd");
    expect_valid(d); /* exact round trip of every string through an HTML parser */
    char *html = slurp(tu_fmt("%s/report.html", d));
    ck_assert_ptr_null(strstr(html, "<script"));
    ck_assert_ptr_null(strstr(html, "<!-- -->"));
    ck_assert_ptr_nonnull(strstr(html, "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt; &amp; &#39;q&#39;"));
    free(html);
    /* Markdown: the pipe in the CPU name must not split the table */
    char *md = slurp(tu_fmt("%s/summary.md", d));
    ck_assert_ptr_nonnull(strstr(md, "\\<script\\>"));
    ck_assert_ptr_nonnull(strstr(md, "\\| \\*b\\* \\_i\\_ \\`c\\` \\\\"));
    free(md);
    cJSON_Delete(r);
}
END_TEST

START_TEST(test_unknown_keys_ignored)
{
    tree_opts o = defaults();
    cJSON *r = make_report(&o);
    const char *d = render_all(r, "plain_for_extra");
    char *plain = slurp(tu_fmt("%s/report.html", d));
    char *plain_md = slurp(tu_fmt("%s/summary.md", d));
    cJSON_AddStringToObject(r, "future_key", "x");
    cJSON *phases = (cJSON *)bench_get_obj(r, "phases");
    cJSON_AddNumberToObject(phases, "phase6", 6);
    cJSON *lat = (cJSON *)bench_get_obj(phases, "latency");
    cJSON_AddNumberToObject(cJSON_GetArrayItem(bench_get(lat, "rows"), 0), "extra_ms", 1.5);
    cJSON_AddItemToObject((cJSON *)bench_get_obj(cJSON_GetArrayItem(bench_get(lat, "rows"), 1), "ttft_ms"),
                          "p999", cJSON_CreateNumber(9));
    const char *d2 = render_all(r, "extra");
    char *extra = slurp(tu_fmt("%s/report.html", d2));
    char *extra_md = slurp(tu_fmt("%s/summary.md", d2));
    ck_assert_msg(strcmp(plain, extra) == 0, "unknown keys changed the page");
    ck_assert_msg(strcmp(plain_md, extra_md) == 0, "unknown keys changed the summary");
    /* and the schema, which is strict, says so */
    const char *out = tu_fmt("%s/validate.txt", d2);
    ck_assert_int_eq(validate(d2, 0, out), 1);
    char *msg = slurp(out);
    ck_assert_msg(strstr(msg, "future_key") && strstr(msg, "p999") && strstr(msg, "extra_ms"), "%s", msg);
    free(msg);
    free(plain);
    free(extra);
    free(plain_md);
    free(extra_md);
    cJSON_Delete(r);
}
END_TEST

/* Wrong types and shapes, every kind the bench could plausibly get wrong. */
START_TEST(test_schema_catches_mistakes)
{
    tree_opts o = defaults();
    cJSON *r = make_report(&o);
    cJSON *phases = (cJSON *)bench_get_obj(r, "phases");
    cJSON *lat = (cJSON *)bench_get_obj(phases, "latency");
    cJSON *row0 = cJSON_GetArrayItem(bench_get(lat, "rows"), 0);
    cJSON_ReplaceItemInObjectCaseSensitive(r, "schema_version", cJSON_CreateNumber(2));
    cJSON_DeleteItemFromObjectCaseSensitive((cJSON *)bench_get_obj(r, "headline"), "ttft_ms");
    cJSON_ReplaceItemInObjectCaseSensitive((cJSON *)bench_get_obj(phases, "memory"), "peak_rss_mb",
                                           cJSON_CreateString("612 MB"));
    cJSON_DeleteItemFromObjectCaseSensitive((cJSON *)bench_get_obj(row0, "itl_ms"), "p95");
    cJSON_ReplaceItemInObjectCaseSensitive((cJSON *)bench_get_obj(r, "settings"), "gemm",
                                           cJSON_CreateString("mkl"));
    cJSON_ReplaceItemInObjectCaseSensitive((cJSON *)bench_get_obj(phases, "validation"), "failures",
                                           cJSON_CreateNumber(1));
    cJSON *ttft1 = (cJSON *)bench_get_obj(cJSON_GetArrayItem(bench_get(lat, "rows"), 1), "ttft_ms");
    cJSON_ReplaceItemInObjectCaseSensitive(ttft1, "min", cJSON_CreateNumber(1e9));
    const char *d = dir_for("broken");
    write_json(r, tu_fmt("%s/report.json", d));
    const char *out = tu_fmt("%s/validate.txt", d);
    ck_assert_int_eq(validate(d, 0, out), 1);
    char *msg = slurp(out);
    static const char *const want[] = {
        "schema_version", "'ttft_ms' is a required property", "peak_rss_mb: '612 MB' is not of type",
        "'p95' is a required property", "settings.gemm: 'mkl' is not one of",
        "phases.validation.failures is 1 but 0 checks", "phases.latency.rows[1].ttft_ms: min (1000000000) > p50",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(msg, want[i]) != NULL, "the validator did not report \"%s\":\n%s", want[i], msg);
    free(msg);
    cJSON_Delete(r);
}
END_TEST

/* The page check is not vacuous: a changed, a removed and an invented figure
 * are each caught. */
START_TEST(test_validator_catches_tampered_html)
{
    tree_opts o = defaults();
    cJSON *r = make_report(&o);
    const char *d = render_all(r, "tampered");
    char *html = slurp(tu_fmt("%s/report.html", d));
    /* 1: a changed figure */
    const char *key = "data-k=\"phases.memory.peak_rss_mb\">612.5<";
    char *p = strstr(html, key);
    ck_assert_ptr_nonnull(p);
    memcpy(p + strlen(key) - 6, "612.6", 5);
    /* 2: a figure left out (its attribute renamed) */
    p = strstr(html, "data-k=\"phases.latency.rows[3].itl_ms.p99\"");
    ck_assert_ptr_nonnull(p);
    memcpy(p, "data-x", 6);
    /* 3: a figure the JSON does not have */
    p = strstr(html, "data-k=\"headline.load_ms\"");
    ck_assert_ptr_nonnull(p);
    memcpy(p + 8, "headline.lood_ms", 16);
    FILE *f = fopen(tu_fmt("%s/report.html", d), "wb");
    fputs(html, f);
    fclose(f);
    const char *out = tu_fmt("%s/validate.txt", d);
    ck_assert_int_eq(validate(d, 1, out), 1);
    char *msg = slurp(out);
    ck_assert_msg(strstr(msg, "phases.memory.peak_rss_mb: the page says '612.6', the JSON '612.5'"), "%s", msg);
    ck_assert_msg(strstr(msg, "missing from the page (no data-k element): phases.latency.rows[3].itl_ms.p99"), "%s", msg);
    ck_assert_msg(strstr(msg, "data-k paths the JSON does not have: headline.lood_ms"), "%s", msg);
    ck_assert_msg(strstr(msg, "missing from the page (no data-k element): headline.load_ms"), "%s", msg);
    free(msg);
    free(html);
    cJSON_Delete(r);
}
END_TEST

/* The k-th node of a pre-order walk (the root is 0) and its parent. */
static cJSON *nth_node(cJSON *node, int *k, cJSON **parent)
{
    cJSON *c;
    cJSON_ArrayForEach(c, node)
    {
        if (--*k == 0) {
            *parent = node;
            return c;
        }
        cJSON *found = nth_node(c, k, parent);
        if (found)
            return found;
    }
    return NULL;
}

static int count_nodes(const cJSON *node)
{
    int n = 1;
    const cJSON *c;
    cJSON_ArrayForEach(c, node) n += count_nodes(c);
    return n;
}

/* Any node of a report replaced by a value of the wrong type: rendering and
 * comparing must still work (or fail with a message), never crash; under
 * -DGPT2C_SANITIZE=ON this also checks for overruns and leaks. */
START_TEST(test_wrong_types_never_crash)
{
    tree_opts o = defaults();
    o.quick = 1; /* a smaller tree: every node is replaced, three ways */
    cJSON *base = make_report(&o);
    const char *d = dir_for("mutations");
    char html[1024], md[1024], old[1024], err[512];
    snprintf(html, sizeof html, "%s/report.html", d);
    snprintf(md, sizeof md, "%s/summary.md", d);
    snprintf(old, sizeof old, "%s/old.json", d);
    int n = count_nodes(base);
    for (int k = 1; k < n; k++) {
        for (int variant = 0; variant < 3; variant++) {
            cJSON *r = cJSON_Duplicate(base, 1);
            int kk = k;
            cJSON *parent = NULL;
            cJSON *node = nth_node(r, &kk, &parent);
            ck_assert_ptr_nonnull(node);
            cJSON *bad = variant == 0   ? cJSON_CreateString("<b>&")
                         : variant == 1 ? cJSON_CreateNumber(-1e300)
                                        : cJSON_Parse("[{\"n\": [1]}, \"x\", null]");
            cJSON_ReplaceItemViaPointer(parent, node, bad);
            ck_assert_msg(bench_write_html(r, html, err, sizeof err) == 0, "node %d: %s", k, err);
            ck_assert_msg(bench_write_summary_md(r, md, err, sizeof err) == 0, "node %d: %s", k, err);
            if (variant == 2) { /* the mutated tree as the OLD report, and as the new one */
                write_json(r, old);
                cJSON *fresh = make_report(&o);
                if (bench_compare(fresh, old, err, sizeof err) == 0)
                    ck_assert_int_eq(bench_write_html(fresh, html, err, sizeof err), 0);
                cJSON_Delete(fresh);
                write_json(base, old);
                if (bench_compare(r, old, err, sizeof err) == 0)
                    ck_assert_int_eq(bench_write_summary_md(r, md, err, sizeof err), 0);
            }
            cJSON_Delete(r);
        }
    }
    cJSON_Delete(base);
}
END_TEST

START_TEST(test_write_errors)
{
    tree_opts o = defaults();
    cJSON *r = make_report(&o);
    char err[512] = "";
    const char *bad = tu_fmt("%s/report/no/such/dir/report.html", tu_data());
    ck_assert_int_eq(bench_write_html(r, bad, err, sizeof err), -1);
    ck_assert_msg(strstr(err, bad) && strstr(err, "No such file"), "%s", err);
    err[0] = '\0';
    ck_assert_int_eq(bench_write_summary_md(r, bad, err, sizeof err), -1);
    ck_assert_msg(strstr(err, bad) != NULL, "%s", err);
    cJSON *arr = cJSON_CreateArray();
    ck_assert_int_eq(bench_write_html(arr, "/tmp/x.html", err, sizeof err), -1);
    ck_assert_int_eq(bench_write_html(NULL, "/tmp/x.html", NULL, 0), -1);
    cJSON_Delete(arr);
    cJSON_Delete(r);
}
END_TEST

/* ---- compare ------------------------------------------------------------- */

static const cJSON *crow(const cJSON *r, const char *name)
{
    const cJSON *row;
    cJSON_ArrayForEach(row, bench_get(bench_get_obj(r, "compare"), "rows"))
    {
        if (!strcmp(bench_get_str(row, "name"), name))
            return row;
    }
    ck_abort_msg("no compare row %s", name);
    return NULL;
}

static double cnum(const cJSON *row, const char *k)
{
    double v;
    ck_assert_msg(bench_get_num(row, k, &v), "%s is not a number", k);
    return v;
}

/* better: 1, 0 (worse) or -1 (null) */
static void expect_row(const cJSON *r, const char *name, int better, int beyond, double change, double band)
{
    const cJSON *row = crow(r, name);
    const cJSON *b = bench_get(row, "better");
    if (better < 0)
        ck_assert_msg(cJSON_IsNull(b), "%s: better should be null", name);
    else
        ck_assert_msg(cJSON_IsBool(b) && cJSON_IsTrue(b) == better, "%s: better should be %d", name, better);
    ck_assert_msg(cJSON_IsTrue(bench_get(row, "beyond_noise")) == beyond, "%s: beyond_noise should be %d", name,
                  beyond);
    if (!isnan(change))
        ck_assert_msg(fabs(cnum(row, "change_pct") - change) < 1e-6, "%s: change %g, want %g", name,
                      cnum(row, "change_pct"), change);
    if (!isnan(band))
        ck_assert_msg(fabs(cnum(row, "noise_pct") - band) < 1e-6, "%s: band %g, want %g", name,
                      cnum(row, "noise_pct"), band);
}

static const char *write_old(const tree_opts *o, const char *name)
{
    cJSON *old = make_report(o);
    const char *p = tu_fmt("%s/old.json", dir_for(name));
    write_json(old, p);
    cJSON_Delete(old);
    return p;
}

/* The CV the comparison must use: the TTFT cv at 32 tokens, the larger of two runs. */
static double row_cv(const cJSON *r, const char *metric)
{
    const cJSON *rows = bench_get(bench_get_obj(bench_get_obj(r, "phases"), "latency"), "rows");
    return cnum(bench_get_obj(cJSON_GetArrayItem(rows, 0), metric), "cv");
}

START_TEST(test_compare_better_worse)
{
    tree_opts o = defaults();
    char old_path[1024];
    snprintf(old_path, sizeof old_path, "%s", write_old(&o, "compare"));
    cJSON *old = make_report(&o);
    tree_opts n = defaults();
    n.ttft_scale = 0.8;   /* 20 % faster: beyond any band here */
    n.rss_scale = 1.08;   /* 8 % more memory: beyond the fixed 5 % */
    n.req_scale = 0.97;   /* 3 % fewer req/s: within 5 % */
    n.leak_slope = 0.9;   /* intervals [-0.198, 0.222] and [0.69, 1.11] do not overlap */
    n.isa = "scalar";
    cJSON *r = make_report(&n);
    char err[512] = "";
    ck_assert_msg(bench_compare(r, old_path, err, sizeof err) == 0, "%s", err);

    double band_ttft = 300.0 * fmax(row_cv(old, "ttft_ms"), row_cv(r, "ttft_ms"));
    double band_dec = 300.0 * fmax(row_cv(old, "decode_tok_s"), row_cv(r, "decode_tok_s"));
    expect_row(r, "ttft_ms", 1, 1, -20, band_ttft);
    expect_row(r, "load_ms", -1, 0, 0, 5);
    expect_row(r, "decode_tok_s", -1, 0, 0, band_dec);
    expect_row(r, "peak_rss_mb", 0, 1, 8, 5);
    expect_row(r, "req_s_c1", 0, 0, -3, 5);
    expect_row(r, "req_s_c4", 0, 0, -3, 5);
    expect_row(r, "scaling_c4", -1, 0, 0, 5);
    expect_row(r, "validation_failures", -1, 0, NAN, 5); /* 0 -> 0: no change, change_pct null */
    ck_assert(cJSON_IsNull(bench_get(crow(r, "validation_failures"), "change_pct")));
    expect_row(r, "leak_mb_per_hour", 0, 1, 100.0 * (0.9 - 0.012) / 0.012, 100.0 * 0.42 / 0.012);

    const cJSON *cmp = bench_get_obj(r, "compare");
    ck_assert_str_eq(bench_get_str(cmp, "old_path"), old_path);
    ck_assert_str_eq(bench_get_str(cmp, "old_created_utc"), "2026-11-28T09:41:07Z");
    ck_assert_str_eq(bench_get_str(cmp, "old_git_commit"), "1218b8a3f0c94e7d5a2b6c1d9e8f7a6b5c4d3e2f");
    /* the ISA changed (settings and environment): said so */
    const cJSON *ec = bench_get(cmp, "environment_changes");
    ck_assert_int_eq(cJSON_GetArraySize(ec), 1);
    ck_assert_str_eq(bench_get_str(cJSON_GetArrayItem(ec, 0), "key"), "environment.isa");
    ck_assert_str_eq(bench_get_str(cJSON_GetArrayItem(ec, 0), "old"), "avx2");
    ck_assert_str_eq(bench_get_str(cJSON_GetArrayItem(ec, 0), "new"), "scalar");

    /* the compare table renders and validates like every other figure */
    const char *d = render_all(r, "compare");
    expect_valid(d);
    char *html = slurp(tu_fmt("%s/report.html", d));
    ck_assert_ptr_nonnull(strstr(html, "BETTER, beyond noise"));
    ck_assert_ptr_nonnull(strstr(html, "WORSE, beyond noise"));
    ck_assert_ptr_nonnull(strstr(html, "The two runs differ in their environment"));
    free(html);
    char *md = slurp(tu_fmt("%s/summary.md", d));
    ck_assert_ptr_nonnull(strstr(md, "| Figure | New | Old | Change | Verdict |"));
    ck_assert_ptr_nonnull(strstr(md, "| -20.0 % | **better**, beyond noise"));
    ck_assert_ptr_nonnull(strstr(md, "| +8.0 % | **worse**, beyond noise (\xc2\xb1" "5.0 %) |"));
    ck_assert_ptr_nonnull(strstr(md, "| -3.0 % | worse, within noise (\xc2\xb1" "5.0 %) |"));
    ck_assert_ptr_nonnull(strstr(md, "**The environment differs**"));
    free(md);

    /* a second compare replaces the first */
    ck_assert_msg(bench_compare(r, old_path, err, sizeof err) == 0, "%s", err);
    int n_cmp = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, r) n_cmp += !strcmp(it->string, "compare");
    ck_assert_int_eq(n_cmp, 1);
    cJSON_Delete(old);
    cJSON_Delete(r);
}
END_TEST

/* TTFT 4 % and 8 % slower, with a CV (band 3 x cv) and without (5 %). */
START_TEST(test_compare_noise_band)
{
    for (int with_cv = 0; with_cv <= 1; with_cv++) {
        for (int step = 0; step < 2; step++) {
            double slower = step == 0 ? 1.04 : 1.08;
            tree_opts o = defaults();
            tree_opts n = defaults();
            n.ttft_scale = slower;
            /* without CV: no latency phase, so no repeats behind the headline */
            cJSON *old = make_report(&o);
            cJSON *r = make_report(&n);
            if (!with_cv) {
                cJSON_ReplaceItemInObjectCaseSensitive((cJSON *)bench_get_obj(old, "phases"), "latency",
                                                       cJSON_CreateNull());
                cJSON_ReplaceItemInObjectCaseSensitive((cJSON *)bench_get_obj(r, "phases"), "latency",
                                                       cJSON_CreateNull());
            } else {
                /* force the cv at the headline's prompt length: 0.02 old, 0.015 new -> band 6 % */
                const cJSON *rows_o = bench_get(bench_get_obj(bench_get_obj(old, "phases"), "latency"), "rows");
                const cJSON *rows_n = bench_get(bench_get_obj(bench_get_obj(r, "phases"), "latency"), "rows");
                cJSON_ReplaceItemInObjectCaseSensitive((cJSON *)bench_get_obj(cJSON_GetArrayItem(rows_o, 0), "ttft_ms"),
                                                       "cv", cJSON_CreateNumber(0.02));
                cJSON_ReplaceItemInObjectCaseSensitive((cJSON *)bench_get_obj(cJSON_GetArrayItem(rows_n, 0), "ttft_ms"),
                                                       "cv", cJSON_CreateNumber(0.015));
                /* a row at another prompt length with a huge cv must not be used */
                cJSON_ReplaceItemInObjectCaseSensitive((cJSON *)bench_get_obj(cJSON_GetArrayItem(rows_n, 3), "ttft_ms"),
                                                       "cv", cJSON_CreateNumber(0.5));
            }
            char old_path[1024];
            snprintf(old_path, sizeof old_path, "%s/old_%d_%d.json", dir_for("noise"), with_cv, step);
            write_json(old, old_path);
            char err[512] = "";
            ck_assert_msg(bench_compare(r, old_path, err, sizeof err) == 0, "%s", err);
            double band = with_cv ? 6.0 : 5.0;
            int beyond = (slower - 1) * 100 > band;
            expect_row(r, "ttft_ms", 0, beyond, (slower - 1) * 100, band);
            cJSON_Delete(old);
            cJSON_Delete(r);
        }
    }
}
END_TEST

START_TEST(test_compare_nulls_and_zero)
{
    tree_opts o = defaults();
    o.leak_hw = -1; /* no interval: the fixed band */
    char old_path[1024];
    snprintf(old_path, sizeof old_path, "%s", write_old(&o, "compare_nulls"));
    tree_opts n = defaults();
    n.failures = 1; /* 0 -> 1 failure: no percentage, but worse and beyond noise */
    n.leak_hw = -1;
    n.leak_slope = 0.0125; /* +4.2 %: within 5 % */
    cJSON *r = make_report(&n);
    cJSON_ReplaceItemInObjectCaseSensitive((cJSON *)bench_get_obj(r, "headline"), "req_s_c4", cJSON_CreateNull());
    char err[512] = "";
    ck_assert_msg(bench_compare(r, old_path, err, sizeof err) == 0, "%s", err);
    expect_row(r, "validation_failures", 0, 1, NAN, 5);
    ck_assert(cJSON_IsNull(bench_get(crow(r, "validation_failures"), "change_pct")));
    expect_row(r, "leak_mb_per_hour", 0, 0, 100.0 * 0.0005 / 0.012, 5);
    const cJSON *row = crow(r, "req_s_c4");
    ck_assert(cJSON_IsNull(bench_get(row, "new")));
    ck_assert(cJSON_IsNull(bench_get(row, "change_pct")));
    ck_assert(cJSON_IsNull(bench_get(row, "better")));
    ck_assert(cJSON_IsFalse(bench_get(row, "beyond_noise")));
    /* the new report with nulls everywhere compares without a crash */
    tree_opts z = defaults();
    z.nulls = 1;
    cJSON *rz = make_report(&z);
    ck_assert_msg(bench_compare(rz, old_path, err, sizeof err) == 0, "%s", err);
    const char *d = render_all(rz, "compare_nulls");
    expect_valid(d);
    cJSON_Delete(rz);
    d = render_all(r, "compare_zero");
    expect_valid(d);
    cJSON_Delete(r);
}
END_TEST

START_TEST(test_compare_errors)
{
    tree_opts o = defaults();
    cJSON *r = make_report(&o);
    char err[512];
    const char *d = dir_for("compare_errors");

    const char *missing = tu_fmt("%s/nope.json", d);
    ck_assert_int_eq(bench_compare(r, missing, err, sizeof err), -1);
    ck_assert_msg(strstr(err, missing) && strstr(err, "cannot open the old report") && strstr(err, "No such file"),
                  "%s", err);

    const char *notjson = tu_fmt("%s/notjson.json", d);
    FILE *f = fopen(notjson, "w");
    fputs("{\"schema\": \"gpt2c-bench-report\", \"schema_version\": 1,\n  oops }", f);
    fclose(f);
    ck_assert_int_eq(bench_compare(r, notjson, err, sizeof err), -1);
    ck_assert_msg(strstr(err, notjson) && strstr(err, "not valid JSON (error near byte"), "%s", err);

    const char *empty = tu_fmt("%s/empty.json", d);
    f = fopen(empty, "w");
    fclose(f);
    ck_assert_int_eq(bench_compare(r, empty, err, sizeof err), -1);
    ck_assert_msg(strstr(err, empty) && strstr(err, "empty"), "%s", err);

    const char *other = tu_fmt("%s/other.json", d);
    f = fopen(other, "w");
    fputs("{\"name\": \"llama-bench\", \"results\": []}", f);
    fclose(f);
    ck_assert_int_eq(bench_compare(r, other, err, sizeof err), -1);
    ck_assert_msg(strstr(err, other) && strstr(err, "not a gpt2c bench report"), "%s", err);

    cJSON *v2 = make_report(&o);
    cJSON_ReplaceItemInObjectCaseSensitive(v2, "schema_version", cJSON_CreateNumber(2));
    const char *newer = tu_fmt("%s/v2.json", d);
    write_json(v2, newer);
    cJSON_Delete(v2);
    ck_assert_int_eq(bench_compare(r, newer, err, sizeof err), -1);
    ck_assert_msg(strstr(err, newer) && strstr(err, "schema_version 2; this gpt2c-bench compares version 1 only"),
                  "%s", err);

    /* after every error the report is as it was */
    ck_assert(cJSON_IsNull(bench_get(r, "compare")));
    cJSON_Delete(r);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("render");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fmt_rule);
    tcase_add_test(tc, test_full_report);
    tcase_add_test(tc, test_quick_report);
    tcase_add_test(tc, test_bw_source_wording);
    tcase_add_test(tc, test_failures_prominent);
    tcase_add_test(tc, test_soak_verdict_shown);
    tcase_add_test(tc, test_phases_null);
    tcase_add_test(tc, test_nulls_everywhere);
    tcase_add_test(tc, test_odd_strings);
    tcase_add_test(tc, test_unknown_keys_ignored);
    tcase_add_test(tc, test_schema_catches_mistakes);
    tcase_add_test(tc, test_validator_catches_tampered_html);
    tcase_add_test(tc, test_write_errors);
    tcase_add_test(tc, test_wrong_types_never_crash);
    suite_add_tcase(s, tc);
    TCase *tcc = tcase_create("compare");
    tcase_set_timeout(tcc, 120);
    tcase_add_test(tcc, test_compare_better_worse);
    tcase_add_test(tcc, test_compare_noise_band);
    tcase_add_test(tcc, test_compare_nulls_and_zero);
    tcase_add_test(tcc, test_compare_errors);
    suite_add_tcase(s, tcc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
