/* Phase 2, latency: for each prompt length, TTFT and inter-token latency over
 * repeated runs (warm-up runs excluded and counted), EOS ignored so every run
 * generates the same number of tokens. On the CPU each decode speed is also
 * put against its memory-bandwidth limit, and each prefill speed against its
 * compute limit (the peak gpt2c-kbench measured).
 *
 * The bandwidth is probed (bwprobe.c) right before a prompt length's
 * measured runs and right after them, and the limit uses the higher of the
 * two: on a machine whose bandwidth moves within minutes (a 2-core VM went
 * from 37 to 80 GB/s and back), one probe taken in a slow moment put decode
 * at 130 % of "its limit". The higher probe keeps the ratio a lower bound
 * wherever the runs saw no faster moment than either probe, and the two
 * probes' spread is reported with it, so a reader sees how loose it is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "progress.h"
#include "report.h"

/* A GPU's DRAM bandwidth as its report gives it (memory clock x bus width,
 * gpt2_ctx_device_info's peak_dram_gbs): 0 where there is none. */
static double device_peak_gbs(const gpt2_ctx *ctx)
{
    char json[4096];
    if (gpt2_ctx_device_info(ctx, json, sizeof json) != 0)
        return 0;
    cJSON *d = cJSON_Parse(json);
    double gbs = 0;
    if (!bench_get_num(d, "peak_dram_gbs", &gbs) || !(gbs > 0))
        gbs = 0;
    cJSON_Delete(d);
    return gbs;
}

/* The compute peak kbench measured for this model's matmuls: the int8 peak
 * for Q8_0 weights, else the fp32 FMA peak of the bench's ISA path; with the
 * bench's thread count (or the most threads below it). 1 and *gops set. */
static int kbench_peak(const cJSON *report, const char *isa, int q8, int threads, double *gops)
{
    const cJSON *c = bench_get_obj(bench_get_obj(report, "kbench"), "ceilings");
    const cJSON *arr = bench_get(c, q8 ? "int8_peak_gop_s" : "fp32_peak_gflop_s");
    const cJSON *e;
    int best = 0;
    cJSON_ArrayForEach(e, arr)
    {
        double t, g;
        const char *ei = bench_get_str(e, "isa");
        if ((q8 || (ei && !strcmp(ei, isa))) && bench_get_num(e, "threads", &t) &&
            bench_get_num(e, q8 ? "gop_s" : "gflop_s", &g) && g > 0 && t <= threads && t > best) {
            best = (int)t;
            *gops = g;
        }
    }
    return best > 0;
}

/* One more run of prompt L with the context's op profile on (not counted in
 * the statistics): ms per decode step and per prompt pass of each op, and
 * the rate the decode matmuls read the weights at, against the probe's
 * bandwidth bw (<= 0: none). NULL where the backend has no profile. */
static cJSON *profiled_run(bench *b, const int *prompt, int L, int N, double bw, bench_run *r)
{
    gpt2_error err = {0};
    if (gpt2_ctx_profile(b->ctx, 1, NULL, &err) != 0)
        return NULL;
    gpt2_op_profile prof;
    const int rc = bench_generate(b->ctx, prompt, L, N, NULL, r, &err);
    gpt2_ctx_profile(b->ctx, 0, &prof, NULL);
    if (rc != 0) {
        fprintf(stderr, "gpt2c-bench: latency: profiled run, prompt %d: %s\n", L, err.msg);
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    const gpt2_op_times *t[2] = {&prof.decode, &prof.prompt};
    static const char *const names[2][2] = {{"decode_ms_per_step", "decode_step_ms"},
                                            {"prompt_ms", "prompt_pass_ms"}};
    for (int j = 0; j < 2; j++) {
        const double per = t[j]->passes > 0 ? (double)t[j]->passes : 1;
        cJSON *ops = cJSON_AddObjectToObject(o, names[j][0]);
        for (int k = 0; k < GPT2_OP_COUNT; k++)
            cJSON_AddNumberToObject(ops, gpt2_op_name((gpt2_op_kind)k), t[j]->ms[k] / per);
        cJSON_AddNumberToObject(o, names[j][1], gpt2_op_total_ms(t[j]) / per);
    }
    cJSON_AddNumberToObject(o, "decode_steps", (double)prof.decode.passes);
    const double gbs = gpt2_ctx_decode_weights_gb_s(b->ctx, &prof.decode);
    cJSON_AddItemToObject(o, "decode_weights_gb_s",
                          gbs > 0 ? cJSON_CreateNumber(gbs) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "decode_weights_pct_of_read_bw",
                          gbs > 0 && bw > 0 ? cJSON_CreateNumber(100 * gbs / bw)
                                            : cJSON_CreateNull());
    return o;
}

int phase_latency(bench *b)
{
    const bench_plan *pl = &b->plan;
    const int N = pl->latency_gen, R = pl->latency_repeats, W = pl->latency_warmup;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(b->phases, "latency", o);
    cJSON_AddNumberToObject(o, "generated_tokens", N);
    cJSON_AddNumberToObject(o, "warmup_runs", W);
    cJSON_AddNumberToObject(o, "repeats", R);
    cJSON *rows = cJSON_AddArrayToObject(o, "rows");

    /* + 1 run per length with the op profile on */
    int total = pl->n_latency_lengths * (R + W + 1), done = 0;
    bench_progress *p = progress_begin("latency", "TTFT and inter-token latency by prompt length", total);
    int max_len = pl->latency_lengths[pl->n_latency_lengths - 1];
    int *prompt = malloc(sizeof(int) * (size_t)max_len);
    double *ttft = malloc(sizeof(double) * R), *dec = malloc(sizeof(double) * R);
    double *pre = malloc(sizeof(double) * R);
    double *itl = malloc(sizeof(double) * (size_t)R * (N > 1 ? N - 1 : 1));
    double *bws = malloc(sizeof(double) * (size_t)pl->n_latency_lengths); /* the probes' */
    bench_run r;
    if (!prompt || !ttft || !dec || !pre || !itl || !bws || bench_run_alloc(&r, N) ||
        bench_text_ids(b->model, max_len, prompt)) {
        fprintf(stderr, "gpt2c-bench: latency: out of memory\n");
        return -1;
    }
    /* Decode reads every weight once per token and the cache so far: bytes
     * per token at a prompt of L are the weight bytes as the backend holds
     * them (gpt2_ctx_weight_bytes: one row of each embedding table unless the
     * table is the LM head) + the KV bytes of the mean cache length over the
     * N tokens generated, L + (N - 1) / 2. */
    const int on_cpu = !strcmp(gpt2_ctx_backend(b->ctx), "cpu");
    const int bw_threads = gpt2_ctx_threads(b->ctx);
    int n_bw = 0;
    /* The bandwidth limit: on the CPU the read bandwidth probed right before
     * each prompt length's runs; on a GPU its DRAM peak (not measured). */
    const double dev_gbs = on_cpu ? 0 : device_peak_gbs(b->ctx);
    cJSON_AddNullToObject(o, "read_bw_gb_s"); /* the rows' median, set below */
    cJSON_AddItemToObject(o, "read_bw_threads", on_cpu ? cJSON_CreateNumber(bw_threads) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "read_bw_source",
                          on_cpu ? cJSON_CreateString("probe")
                                 : dev_gbs > 0 ? cJSON_CreateString("device_peak") : cJSON_CreateNull());
    /* Prefill is compute: the matmuls of every layer (2 FLOP per weight per
     * token; the LM head runs for the last position only) and attention over
     * the mean causal length, (L + 1) / 2 keys and values per query. */
    double peak = 0;
    const int q8 = !strcmp(gpt2_model_dtype(b->model), "q8_0");
    const int have_peak = on_cpu && kbench_peak(b->report, gpt2_ctx_isa(b->ctx), q8, bw_threads, &peak);
    cJSON_AddItemToObject(o, "compute_peak_gflop_s", have_peak ? cJSON_CreateNumber(peak) : cJSON_CreateNull());
    const gpt2_config *cfg = gpt2_model_config(b->model);
    const double C = cfg->n_embd, FF = cfg->n_ff, NL = cfg->n_layer;
    const double wbytes = (double)gpt2_ctx_weight_bytes(b->ctx);
    const double kv_tok = (double)gpt2_ctx_kv_bytes_per_token(b->ctx);
    int rc = 0;
    for (int li = 0; li < pl->n_latency_lengths && !bench_interrupted && !rc; li++) {
        const int L = pl->latency_lengths[li];
        int runs = 0, n_itl = 0;
        double bw = -1;
        for (int k = 0; k < W + R && !bench_interrupted; k++) {
            if (k == W && on_cpu) /* the ceiling as it is now, not minutes ago */
                bw = bench_probe_read_bw(bw_threads);
            else if (k == W && dev_gbs > 0)
                bw = dev_gbs;
            gpt2_error err = {0};
            if (bench_generate(b->ctx, prompt, L, N, NULL, &r, &err) != 0) {
                fprintf(stderr, "gpt2c-bench: latency: prompt %d: %s\n", L, err.msg);
                rc = -1;
                break;
            }
            char detail[64];
            snprintf(detail, sizeof detail, "prompt %d, run %d/%d%s", L, k + 1, W + R,
                     k < W ? " (warm-up)" : "");
            progress_update(p, ++done, detail);
            if (k < W)
                continue;
            ttft[runs] = r.st.ttft_ms;
            dec[runs] = r.st.decode_tok_s;
            pre[runs] = r.st.prefill_tok_s;
            for (int t = 1; t < r.n; t++)
                itl[n_itl++] = r.t_ms[t] - r.t_ms[t - 1];
            runs++;
        }
        if (runs == 0)
            break;
        /* the second probe, right after the runs: the limit is the higher */
        const double bw_before = bw;
        const double bw_after =
            on_cpu && !bench_interrupted && !rc ? bench_probe_read_bw(bw_threads) : -1;
        if (bw_after > bw)
            bw = bw_after;
        cJSON *prof = bench_interrupted || rc ? NULL : profiled_run(b, prompt, L, N, bw, &r);
        char what[64];
        snprintf(what, sizeof what, "prompt %d, op profile", L);
        progress_update(p, ++done, what);
        cJSON *row = cJSON_CreateObject();
        cJSON_AddNumberToObject(row, "prompt_tokens", L);
        cJSON_AddNumberToObject(row, "runs", runs);
        cJSON_AddNumberToObject(row, "warmup", W);
        cJSON_AddItemToObject(row, "ttft_ms", bench_stats_of(ttft, runs));
        cJSON_AddItemToObject(row, "itl_ms", bench_stats_of(itl, n_itl));
        cJSON_AddItemToObject(row, "decode_tok_s", bench_stats_of(dec, runs));
        cJSON_AddItemToObject(row, "prefill_tok_s", bench_stats_of(pre, runs));
        const double bytes = wbytes + kv_tok * (L + (N - 1) / 2.0);
        cJSON_AddNumberToObject(row, "bytes_per_token", bytes);
        double p50 = 0;
        const int have_p50 = N > 1 && bench_get_num(bench_get_obj(row, "decode_tok_s"), "p50", &p50);
        const int have_bw = bw > 0;
        if (have_bw)
            bws[n_bw++] = bw;
        const double limit = have_bw ? bw * 1e9 / bytes : 0;
        cJSON_AddItemToObject(row, "read_bw_gb_s", have_bw ? cJSON_CreateNumber(bw) : cJSON_CreateNull());
        if (on_cpu) { /* both probes, and how far the lower lies below the higher */
            cJSON *pr = cJSON_AddArrayToObject(row, "read_bw_probes_gb_s");
            const double lo = bw_before < bw_after ? bw_before : bw_after;
            cJSON_AddItemToArray(pr, bw_before > 0 ? cJSON_CreateNumber(bw_before) : cJSON_CreateNull());
            cJSON_AddItemToArray(pr, bw_after > 0 ? cJSON_CreateNumber(bw_after) : cJSON_CreateNull());
            cJSON_AddItemToObject(row, "read_bw_spread_pct",
                                  lo > 0 ? cJSON_CreateNumber(100.0 * (bw - lo) / bw) : cJSON_CreateNull());
        }
        cJSON_AddItemToObject(row, "bw_limit_tok_s", have_bw ? cJSON_CreateNumber(limit) : cJSON_CreateNull());
        cJSON_AddItemToObject(row, "decode_pct_of_bw_limit",
                              have_bw && have_p50 ? cJSON_CreateNumber(100.0 * p50 / limit)
                                                  : cJSON_CreateNull());
        const double flop = NL * (2.0 * (3 * C * C + C * C + 2 * C * FF) + 4.0 * C * (L + 1) / 2.0);
        cJSON_AddNumberToObject(row, "prefill_flop_per_token", flop);
        double pre50 = 0;
        const int have_pre = bench_get_num(bench_get_obj(row, "prefill_tok_s"), "p50", &pre50);
        const double climit = have_peak ? peak * 1e9 / flop : 0;
        cJSON_AddItemToObject(row, "compute_limit_tok_s", have_peak ? cJSON_CreateNumber(climit) : cJSON_CreateNull());
        cJSON_AddItemToObject(row, "prefill_pct_of_compute_limit",
                              have_peak && have_pre ? cJSON_CreateNumber(100.0 * pre50 / climit)
                                                    : cJSON_CreateNull());
        cJSON_AddItemToObject(row, "op_profile", prof ? prof : cJSON_CreateNull());
        cJSON_AddItemToArray(rows, row);
    }
    bench_stats st;
    if (n_bw > 0 && bench_stats_compute(bws, n_bw, &st) == 0)
        cJSON_ReplaceItemInObjectCaseSensitive(o, "read_bw_gb_s", cJSON_CreateNumber(st.p50));
    else /* no probe ran or none worked: no source either */
        cJSON_ReplaceItemInObjectCaseSensitive(o, "read_bw_source", cJSON_CreateNull());
    free(bws);
    progress_end(p, "%d prompt lengths x %d runs (+%d warm-up), %d tokens each",
                 cJSON_GetArraySize(rows), R, W, N);
    bench_run_free(&r);
    free(prompt);
    free(ttft);
    free(dec);
    free(pre);
    free(itl);
    return rc;
}
