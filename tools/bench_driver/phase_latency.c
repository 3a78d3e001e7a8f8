/* Phase 2, latency: for each prompt length, TTFT and inter-token latency over
 * repeated runs (warm-up runs excluded and counted), EOS ignored so every run
 * generates the same number of tokens. */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "progress.h"

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

    int total = pl->n_latency_lengths * (R + W), done = 0;
    bench_progress *p = progress_begin("latency", "TTFT and inter-token latency by prompt length", total);
    int max_len = pl->latency_lengths[pl->n_latency_lengths - 1];
    int *prompt = malloc(sizeof(int) * (size_t)max_len);
    double *ttft = malloc(sizeof(double) * R), *dec = malloc(sizeof(double) * R);
    double *pre = malloc(sizeof(double) * R);
    double *itl = malloc(sizeof(double) * (size_t)R * (N > 1 ? N - 1 : 1));
    bench_run r;
    if (!prompt || !ttft || !dec || !pre || !itl || bench_run_alloc(&r, N) ||
        bench_text_ids(b->model, max_len, prompt)) {
        fprintf(stderr, "gpt2c-bench: latency: out of memory\n");
        return -1;
    }
    int rc = 0;
    for (int li = 0; li < pl->n_latency_lengths && !bench_interrupted && !rc; li++) {
        const int L = pl->latency_lengths[li];
        int runs = 0, n_itl = 0;
        for (int k = 0; k < W + R && !bench_interrupted; k++) {
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
        cJSON *row = cJSON_CreateObject();
        cJSON_AddNumberToObject(row, "prompt_tokens", L);
        cJSON_AddNumberToObject(row, "runs", runs);
        cJSON_AddNumberToObject(row, "warmup", W);
        cJSON_AddItemToObject(row, "ttft_ms", bench_stats_of(ttft, runs));
        cJSON_AddItemToObject(row, "itl_ms", bench_stats_of(itl, n_itl));
        cJSON_AddItemToObject(row, "decode_tok_s", bench_stats_of(dec, runs));
        cJSON_AddItemToObject(row, "prefill_tok_s", bench_stats_of(pre, runs));
        cJSON_AddItemToArray(rows, row);
    }
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
