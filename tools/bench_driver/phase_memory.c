/* Phase 3, memory: RSS after load and at peak, what the weights, KV cache and
 * arena take, allocations per generated token, and a leak test: requests back
 * to back over a fixed window with RSS sampled and its growth fitted. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "progress.h"
#include "sysinfo.h"

#define MAX_SAMPLES 4096

/* Engine allocations per decoded token: the difference between a long and a
 * short generation, so per-request setup (the sampler) cancels out. */
static double allocs_per_token(bench *b, const int *prompt, int P)
{
    if (bench_alloc_count() < 0)
        return NAN;
    const int n1 = 8, n2 = 40;
    bench_run r;
    if (bench_run_alloc(&r, n2))
        return NAN;
    gpt2_error err = {0};
    bench_generate(b->ctx, prompt, P, n1, NULL, &r, &err); /* warm */
    long a0 = bench_alloc_count();
    int rc = bench_generate(b->ctx, prompt, P, n1, NULL, &r, &err);
    long a1 = bench_alloc_count();
    rc |= bench_generate(b->ctx, prompt, P, n2, NULL, &r, &err);
    long a2 = bench_alloc_count();
    bench_run_free(&r);
    if (rc)
        return NAN;
    return (double)((a2 - a1) - (a1 - a0)) / (n2 - n1);
}

int phase_memory(bench *b)
{
    const bench_plan *pl = &b->plan;
    const gpt2_config *cfg = gpt2_model_config(b->model);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(b->phases, "memory", o);
    cJSON_AddItemToObject(o, "rss_after_load_mb", bench_num(b->rss_after_load_mb));

    bench_progress *p = progress_begin("memory", "peak RSS, allocations, leak test", pl->leak_window_s + 2);
    /* peak: the longest request this context allows, a prompt that fills the
     * window but for the tokens it then generates (every KV position used) */
    int P = cfg->n_ctx - pl->latency_gen;
    int *prompt = malloc(sizeof(int) * (size_t)P);
    bench_run r;
    if (!prompt || bench_text_ids(b->model, P, prompt) || bench_run_alloc(&r, pl->latency_gen)) {
        fprintf(stderr, "gpt2c-bench: memory: out of memory\n");
        return -1;
    }
    int reset = reset_peak_rss();
    gpt2_error err = {0};
    bench_generate(b->ctx, prompt, P, pl->latency_gen, NULL, &r, &err);
    double peak = peak_rss_mb();
    cJSON_AddItemToObject(o, "peak_rss_mb", bench_num(peak));
    cJSON_AddBoolToObject(o, "peak_reset", reset == 1);
    cJSON_AddItemToObject(b->headline, "peak_rss_mb", bench_num(peak));
    progress_update(p, 1, "peak RSS");

    cJSON_AddNumberToObject(o, "weights_bytes", (double)gpt2_model_weight_bytes(b->model));
    /* read in place from the mapped file, or packed into anonymous memory */
    const size_t packed = gpt2_model_packed_bytes(b->model);
    cJSON_AddBoolToObject(o, "weights_mapped", packed == 0);
    cJSON_AddNumberToObject(o, "weights_packed_bytes", (double)packed);
    cJSON_AddNumberToObject(o, "kv_bytes_per_token", (double)gpt2_ctx_kv_bytes_per_token(b->ctx));
    cJSON_AddNumberToObject(o, "kv_bytes_total", (double)gpt2_ctx_kv_bytes(b->ctx));
    cJSON_AddNumberToObject(o, "arena_bytes", (double)gpt2_ctx_arena_bytes(b->ctx));

    double apt = allocs_per_token(b, prompt, 32 < P ? 32 : P);
    cJSON_AddItemToObject(o, "allocs_per_token", bench_num(apt));
    progress_update(p, 2, "allocations per token");

    /* leak test: mixed sampled requests back to back, RSS after each */
    static double ts[MAX_SAMPLES], rss[MAX_SAMPLES];
    /* Touch every page of the sample arrays now: filled as the window runs,
     * their fresh pages (8 KiB per 512 samples) were the 16 KiB "growth"
     * this test used to measure in itself. */
    for (int i = 0; i < MAX_SAMPLES; i++)
        ts[i] = rss[i] = NAN;
    int n = 0, requests = 0;
    const int LP = pl->leak_prompt < P ? pl->leak_prompt : P;
    bench_run lr;
    bench_run_alloc(&lr, pl->leak_gen);
    /* mixed sampled requests; one before sampling starts, so first-touch of
     * the cache and the sampler's buffers is not counted as growth */
    gpt2_sampling s;
    gpt2_sampling_default(&s);
    s.temperature = 0.9f;
    s.top_k = 40;
    s.top_p = 0.95f;
    s.seed = b->set.seed;
    bench_generate(b->ctx, prompt, LP, pl->leak_gen, &s, &lr, &err);
    double t0 = gpt2_now_ms();
    ts[n] = 0;
    rss[n++] = rss_mb();
    while (!bench_interrupted) {
        double el = (gpt2_now_ms() - t0) / 1e3;
        if (el >= pl->leak_window_s)
            break;
        s.seed = b->set.seed + (uint64_t)requests;
        /* vary the prompt length so different cache extents are touched */
        int len = 1 + (requests * 7) % LP;
        if (bench_generate(b->ctx, prompt, len, pl->leak_gen, &s, &lr, &err) != 0) {
            fprintf(stderr, "gpt2c-bench: leak test: %s\n", err.msg);
            break;
        }
        requests++;
        if (n < MAX_SAMPLES) {
            ts[n] = (gpt2_now_ms() - t0) / 1e3;
            rss[n++] = rss_mb();
        }
        progress_update(p, 2 + el, "leak test");
    }
    bench_run_free(&lr);
    double window = (gpt2_now_ms() - t0) / 1e3;
    cJSON *leak = cJSON_AddObjectToObject(o, "leak");
    cJSON_AddNumberToObject(leak, "window_s", window);
    cJSON_AddNumberToObject(leak, "requests", requests);
    cJSON *samples = cJSON_AddArrayToObject(leak, "samples");
    for (int i = 0; i < n; i++) {
        cJSON *pt = cJSON_CreateArray();
        cJSON_AddItemToArray(pt, cJSON_CreateNumber(ts[i]));
        cJSON_AddItemToArray(pt, cJSON_CreateNumber(rss[i]));
        cJSON_AddItemToArray(samples, pt);
    }
    bench_fit f;
    double slope = NAN, lo = NAN, hi = NAN;
    const char *verdict = "too few samples to fit";
    if (bench_linfit(ts, rss, n, &f) == 0) {
        slope = f.slope * 3600.0;
        lo = f.ci95_lo * 3600.0;
        hi = f.ci95_hi * 3600.0;
        /* growth only when the whole 95% interval is above zero, the rise over
         * the window is more than noise of one page, and RSS still rises in
         * the second half: a single step early in the window (a first touch
         * of some pages, 60 KiB in one F16 run, flat for the other 59 s) fits
         * a line with a tight interval, but a leak goes on */
        int mid = 0;
        while (mid < n - 1 && ts[mid] < ts[n - 1] / 2)
            mid++;
        const int still_rising = rss[n - 1] > rss[mid];
        verdict = lo > 0 && (rss[n - 1] - rss[0]) > 0.01 && still_rising ? "growth detected"
                                                                         : "no growth detected";
    }
    cJSON_AddItemToObject(leak, "slope_mb_per_hour", bench_num(slope));
    if (isfinite(lo) && isfinite(hi)) {
        cJSON *ci = cJSON_AddArrayToObject(leak, "ci95_mb_per_hour");
        cJSON_AddItemToArray(ci, cJSON_CreateNumber(lo));
        cJSON_AddItemToArray(ci, cJSON_CreateNumber(hi));
    } else { /* too few samples (an interrupted run): no interval, not [null, null] */
        cJSON_AddNullToObject(leak, "ci95_mb_per_hour");
    }
    cJSON_AddStringToObject(leak, "verdict", verdict);
    cJSON_AddItemToObject(b->headline, "leak_mb_per_hour", bench_num(slope));
    progress_end(p, "peak %.1f MiB, %.2f allocations/token, leak %.3f MiB/hour (%s, %d requests)",
                 peak, apt, slope, verdict, requests);
    free(prompt);
    bench_run_free(&r);
    return 0;
}
