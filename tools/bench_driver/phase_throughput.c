/* Phase 4, throughput: 1, 2, 4, 8, 16 (32, 64 on a GPU) client threads, each
 * issuing requests back to back for a fixed window to one gpt2_engine, which
 * batches them (continuous batching). Every request is greedy and checked
 * against the same request run alone on the bench's context; per level the
 * engine's own counters give the batch size it achieved, and its KV pool use
 * is sampled while the clients run. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "progress.h"

#define N_PROMPTS 4
#define MAX_LAT 16384
#define MAX_CLIENTS 64

typedef struct shared {
    bench *b;
    gpt2_engine *e;
    pthread_mutex_t lock;
    int prompts[N_PROMPTS][1024];
    int *expected[N_PROMPTS];
    double t0, window_ms;
    /* results, under lock */
    double lat[MAX_LAT], ttft[MAX_LAT], tpot[MAX_LAT];
    int n_lat, requests, failures, mismatches;
    char first_error[768];
} shared;

typedef struct client {
    shared *sh;
    int id;
} client;

static void *client_main(void *arg)
{
    client *cl = arg;
    shared *sh = cl->sh;
    const bench_plan *pl = &sh->b->plan;
    for (int k = 0; !bench_interrupted; k++) {
        if (gpt2_now_ms() - sh->t0 >= sh->window_ms)
            break;
        int which = (cl->id + k) % N_PROMPTS;
        gpt2_request_opts o = {.prompt = sh->prompts[which], .n_prompt = pl->tput_prompt,
                               .gen = {.n_new = pl->tput_gen, .ignore_eos = 1}};
        gpt2_sampling_default(&o.gen.sampling);
        o.gen.sampling.greedy = 1;
        gpt2_error err = {0};
        gpt2_request *r = gpt2_submit(sh->e, &o, &err);
        gpt2_request_result res = {0};
        int state = r ? gpt2_request_wait(r, -1, &res) : GPT2_REQ_FAILED;
        pthread_mutex_lock(&sh->lock);
        sh->requests++;
        if (state != GPT2_REQ_DONE) {
            sh->failures++;
            if (!sh->first_error[0])
                snprintf(sh->first_error, sizeof sh->first_error, "%s",
                         r ? res.error.msg : err.msg);
        } else {
            if (res.n_tokens != pl->tput_gen ||
                memcmp(res.tokens, sh->expected[which], sizeof(int) * (size_t)res.n_tokens))
                sh->mismatches++;
            if (sh->n_lat < MAX_LAT) {
                /* as the client sees it: queueing included */
                sh->lat[sh->n_lat] = res.total_ms;
                sh->ttft[sh->n_lat] = res.ttft_ms;
                sh->tpot[sh->n_lat] =
                    res.n_tokens > 1 ? (res.total_ms - res.ttft_ms) / (res.n_tokens - 1) : NAN;
                sh->n_lat++;
            }
        }
        pthread_mutex_unlock(&sh->lock);
        gpt2_request_free(r);
    }
    return NULL;
}

static gpt2_engine *make_engine(bench *b, int max_clients, gpt2_error *err)
{
    gpt2_engine_opts o = {
        .ctx = {.n_threads = b->set.threads, .isa = b->set.isa, .backend = b->set.backend,
                .gemm = b->set.gemm, .device = b->set.device, .kv_type = b->set.kv_type},
        .max_seqs = max_clients,
    };
    return gpt2_engine_create(b->model, &o, err);
}

/* The pool's shape and what the busiest level held, into phases.memory. */
static void record_pool(bench *b, const gpt2_engine_stats *st, int peak_blocks)
{
    cJSON *mem = cJSON_GetObjectItemCaseSensitive(b->phases, "memory");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "block_tokens", st->kv_block_tokens);
    cJSON_AddNumberToObject(o, "blocks", st->kv_blocks);
    cJSON_AddNumberToObject(o, "bytes_per_token", (double)st->kv_bytes_per_token);
    cJSON_AddNumberToObject(o, "pool_mb", st->kv_pool_bytes / 1048576.0);
    cJSON_AddNumberToObject(o, "peak_blocks_used", peak_blocks);
    cJSON_AddNumberToObject(o, "peak_used_mb",
                            (double)peak_blocks * st->kv_block_tokens * st->kv_bytes_per_token /
                                1048576.0);
    if (cJSON_IsObject(mem))
        cJSON_AddItemToObject(mem, "kv_pool", o);
    else
        cJSON_Delete(o);
}

int phase_throughput(bench *b)
{
    const bench_plan *pl = &b->plan;
    shared *sh = calloc(1, sizeof *sh);
    if (!sh)
        return -1;
    sh->b = b;
    pthread_mutex_init(&sh->lock, NULL);
    int max_c = 1;
    for (int ci = 0; ci < pl->n_concurrency; ci++)
        max_c = pl->concurrency[ci] > max_c ? pl->concurrency[ci] : max_c;
    gpt2_error err = {0};
    sh->e = make_engine(b, max_c, &err);
    if (!sh->e) {
        fprintf(stderr, "gpt2c-bench: throughput: %s\n", err.msg);
        pthread_mutex_destroy(&sh->lock);
        free(sh);
        return -1;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(b->phases, "throughput", o);
    cJSON_AddNumberToObject(o, "prompt_tokens", pl->tput_prompt);
    cJSON_AddNumberToObject(o, "generated_tokens", pl->tput_gen);
    cJSON_AddNumberToObject(o, "window_s", pl->tput_window_s);
    cJSON_AddStringToObject(o, "mode", "continuous batching: one engine, every client's tokens in "
                                       "each forward step");
    cJSON *rows = cJSON_AddArrayToObject(o, "rows");

    /* distinct prompts and what each gives when run alone */
    int text[1024 + 3 * 17];
    bench_text_ids(b->model, pl->tput_prompt + 3 * 17, text);
    bench_run r;
    bench_run_alloc(&r, pl->tput_gen);
    int rc = 0;
    for (int i = 0; i < N_PROMPTS && !rc; i++) {
        memcpy(sh->prompts[i], text + 17 * i, sizeof(int) * (size_t)pl->tput_prompt);
        sh->expected[i] = malloc(sizeof(int) * (size_t)pl->tput_gen);
        rc = bench_generate(b->ctx, sh->prompts[i], pl->tput_prompt, pl->tput_gen, NULL, &r, &err);
        if (rc)
            fprintf(stderr, "gpt2c-bench: throughput: %s\n", err.msg);
        else
            memcpy(sh->expected[i], r.ids, sizeof(int) * (size_t)pl->tput_gen);
    }
    bench_run_free(&r);

    bench_progress *p = progress_begin("throughput", "concurrent clients", pl->n_concurrency * pl->tput_window_s);
    double base_rps = 0, base_tpot = NAN;
    int peak_all = 0;
    gpt2_engine_stats st0, st1;
    for (int ci = 0; ci < pl->n_concurrency && !bench_interrupted && !rc; ci++) {
        const int C = pl->concurrency[ci] < MAX_CLIENTS ? pl->concurrency[ci] : MAX_CLIENTS;
        sh->n_lat = sh->requests = sh->failures = sh->mismatches = 0;
        sh->window_ms = pl->tput_window_s * 1e3;
        pthread_t th[MAX_CLIENTS];
        client cl[MAX_CLIENTS];
        gpt2_engine_get_stats(sh->e, &st0);
        sh->t0 = gpt2_now_ms();
        int started = 0, peak = 0;
        for (int i = 0; i < C; i++) {
            cl[i] = (client){sh, i};
            if (pthread_create(&th[i], NULL, client_main, &cl[i]) == 0)
                started++;
        }
        /* progress and KV pool use while the clients run */
        while (!bench_interrupted && gpt2_now_ms() - sh->t0 < sh->window_ms) {
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
            gpt2_engine_get_stats(sh->e, &st1);
            peak = st1.kv_blocks_used > peak ? st1.kv_blocks_used : peak;
            char d[64];
            snprintf(d, sizeof d, "%d clients", C);
            progress_update(p, ci * pl->tput_window_s + (gpt2_now_ms() - sh->t0) / 1e3, d);
        }
        for (int i = 0; i < started; i++)
            pthread_join(th[i], NULL);
        double elapsed_s = (gpt2_now_ms() - sh->t0) / 1e3; /* in-flight requests finish */
        gpt2_engine_get_stats(sh->e, &st1);
        peak_all = peak > peak_all ? peak : peak_all;
        int done = sh->requests - sh->failures;
        double rps = done / elapsed_s;
        double steps = (double)(st1.steps - st0.steps);
        bench_stats tp;
        bench_stats_compute(sh->tpot, sh->n_lat, &tp);
        if (ci == 0) {
            base_rps = rps;
            base_tpot = tp.p50;
        }
        cJSON *row = cJSON_CreateObject();
        cJSON_AddNumberToObject(row, "concurrency", C);
        cJSON_AddNumberToObject(row, "requests", done);
        cJSON_AddNumberToObject(row, "failures", sh->failures);
        cJSON_AddNumberToObject(row, "mismatches", sh->mismatches);
        cJSON_AddNumberToObject(row, "elapsed_s", elapsed_s);
        cJSON_AddNumberToObject(row, "req_s", rps);
        cJSON_AddNumberToObject(row, "tok_s", rps * pl->tput_gen);
        cJSON_AddItemToObject(row, "latency_ms", bench_stats_of(sh->lat, sh->n_lat));
        cJSON_AddItemToObject(row, "ttft_ms", bench_stats_of(sh->ttft, sh->n_lat));
        cJSON_AddItemToObject(row, "tpot_ms", bench_stats_json(&tp));
        cJSON_AddItemToObject(row, "tpot_p50_vs_one_client",
                              bench_num(base_tpot > 0 ? tp.p50 / base_tpot : NAN));
        cJSON_AddItemToObject(row, "scaling", bench_num(base_rps > 0 ? rps / base_rps : NAN));
        cJSON_AddNumberToObject(row, "steps", steps);
        cJSON_AddItemToObject(row, "mean_batch_rows",
                              bench_num(steps > 0 ? (double)(st1.rows - st0.rows) / steps : NAN));
        cJSON_AddItemToObject(row, "mean_batch_seqs",
                              bench_num(steps > 0 ? (double)(st1.seq_steps - st0.seq_steps) / steps
                                                  : NAN));
        cJSON_AddNumberToObject(row, "kv_peak_blocks", peak);
        cJSON_AddItemToArray(rows, row);
        if (C == 1)
            cJSON_AddItemToObject(b->headline, "req_s_c1", bench_num(rps));
        if (C == 4) {
            cJSON_AddItemToObject(b->headline, "req_s_c4", bench_num(rps));
            cJSON_AddItemToObject(b->headline, "scaling_c4", bench_num(base_rps > 0 ? rps / base_rps : NAN));
        }
        if (sh->mismatches || sh->failures)
            fprintf(stderr, "gpt2c-bench: throughput: %d clients: %d failed, %d mismatched requests%s%s\n",
                    C, sh->failures, sh->mismatches, sh->first_error[0] ? ": " : "",
                    sh->first_error);
    }
    progress_end(p, "%d concurrency levels, %.0f s each", cJSON_GetArraySize(rows), pl->tput_window_s);
    gpt2_engine_get_stats(sh->e, &st1);
    cJSON_AddNumberToObject(o, "max_seqs", max_c);
    record_pool(b, &st1, peak_all);
    gpt2_engine_free(sh->e);
    for (int i = 0; i < N_PROMPTS; i++)
        free(sh->expected[i]);
    pthread_mutex_destroy(&sh->lock);
    free(sh);
    return rc;
}
