/* Phase 4, throughput: 1, 2, 4, 8, 16 client threads each issuing requests
 * back to back for a fixed window. Today the engine serves one request at a
 * time per context, so the clients share one context behind a lock: this
 * measures exactly that (the batching scheduler will make it scale). Every
 * request is greedy and checked against the same request run alone. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "progress.h"

#define N_PROMPTS 4
#define MAX_LAT 8192

typedef struct shared {
    bench *b;
    pthread_mutex_t lock;
    int prompts[N_PROMPTS][1024];
    int *expected[N_PROMPTS];
    double t0, window_ms;
    /* results, under lock */
    double lat[MAX_LAT];
    int n_lat, requests, failures, mismatches;
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
    bench_run r;
    if (bench_run_alloc(&r, pl->tput_gen))
        return NULL;
    for (int k = 0; !bench_interrupted; k++) {
        double start = gpt2_now_ms();
        if (start - sh->t0 >= sh->window_ms)
            break;
        int which = (cl->id + k) % N_PROMPTS;
        gpt2_error err = {0};
        pthread_mutex_lock(&sh->lock);
        if (gpt2_now_ms() - sh->t0 >= sh->window_ms) {
            /* the window closed while this client queued: it never started */
            pthread_mutex_unlock(&sh->lock);
            break;
        }
        int rc = bench_generate(sh->b->ctx, sh->prompts[which], pl->tput_prompt, pl->tput_gen, NULL,
                                &r, &err);
        double end = gpt2_now_ms();
        sh->requests++;
        if (rc) {
            sh->failures++;
        } else {
            if (r.n != pl->tput_gen || memcmp(r.ids, sh->expected[which], sizeof(int) * (size_t)r.n))
                sh->mismatches++;
            if (sh->n_lat < MAX_LAT)
                sh->lat[sh->n_lat++] = end - start; /* as the client sees it: queueing included */
        }
        pthread_mutex_unlock(&sh->lock);
    }
    bench_run_free(&r);
    return NULL;
}

int phase_throughput(bench *b)
{
    const bench_plan *pl = &b->plan;
    shared *sh = calloc(1, sizeof *sh);
    if (!sh)
        return -1;
    sh->b = b;
    pthread_mutex_init(&sh->lock, NULL);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(b->phases, "throughput", o);
    cJSON_AddNumberToObject(o, "prompt_tokens", pl->tput_prompt);
    cJSON_AddNumberToObject(o, "generated_tokens", pl->tput_gen);
    cJSON_AddNumberToObject(o, "window_s", pl->tput_window_s);
    cJSON_AddStringToObject(o, "mode", "one context behind a lock (no batching yet)");
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
        gpt2_error err = {0};
        rc = bench_generate(b->ctx, sh->prompts[i], pl->tput_prompt, pl->tput_gen, NULL, &r, &err);
        if (rc)
            fprintf(stderr, "gpt2c-bench: throughput: %s\n", err.msg);
        else
            memcpy(sh->expected[i], r.ids, sizeof(int) * (size_t)pl->tput_gen);
    }
    bench_run_free(&r);

    bench_progress *p = progress_begin("throughput", "concurrent clients", pl->n_concurrency * pl->tput_window_s);
    double base_rps = 0;
    for (int ci = 0; ci < pl->n_concurrency && !bench_interrupted && !rc; ci++) {
        const int C = pl->concurrency[ci];
        sh->n_lat = sh->requests = sh->failures = sh->mismatches = 0;
        sh->window_ms = pl->tput_window_s * 1e3;
        pthread_t th[64];
        client cl[64];
        sh->t0 = gpt2_now_ms();
        int started = 0;
        for (int i = 0; i < C && i < 64; i++) {
            cl[i] = (client){sh, i};
            if (pthread_create(&th[i], NULL, client_main, &cl[i]) == 0)
                started++;
        }
        /* report progress while the clients run */
        while (!bench_interrupted && gpt2_now_ms() - sh->t0 < sh->window_ms) {
            struct timespec ts = {0, 200 * 1000000L};
            nanosleep(&ts, NULL);
            char d[64];
            snprintf(d, sizeof d, "%d clients", C);
            progress_update(p, ci * pl->tput_window_s + (gpt2_now_ms() - sh->t0) / 1e3, d);
        }
        for (int i = 0; i < started; i++)
            pthread_join(th[i], NULL);
        double elapsed_s = (gpt2_now_ms() - sh->t0) / 1e3; /* in-flight requests finish */
        int done = sh->requests - sh->failures;
        double rps = done / elapsed_s;
        if (ci == 0)
            base_rps = rps;
        cJSON *row = cJSON_CreateObject();
        cJSON_AddNumberToObject(row, "concurrency", C);
        cJSON_AddNumberToObject(row, "requests", done);
        cJSON_AddNumberToObject(row, "failures", sh->failures);
        cJSON_AddNumberToObject(row, "mismatches", sh->mismatches);
        cJSON_AddNumberToObject(row, "elapsed_s", elapsed_s);
        cJSON_AddNumberToObject(row, "req_s", rps);
        cJSON_AddNumberToObject(row, "tok_s", rps * pl->tput_gen);
        cJSON_AddItemToObject(row, "latency_ms", bench_stats_of(sh->lat, sh->n_lat));
        cJSON_AddItemToObject(row, "scaling", bench_num(base_rps > 0 ? rps / base_rps : NAN));
        cJSON_AddItemToArray(rows, row);
        if (C == 1)
            cJSON_AddItemToObject(b->headline, "req_s_c1", bench_num(rps));
        if (C == 4) {
            cJSON_AddItemToObject(b->headline, "req_s_c4", bench_num(rps));
            cJSON_AddItemToObject(b->headline, "scaling_c4", bench_num(base_rps > 0 ? rps / base_rps : NAN));
        }
        if (sh->mismatches || sh->failures)
            fprintf(stderr, "gpt2c-bench: throughput: %d clients: %d failed, %d mismatched requests\n",
                    C, sh->failures, sh->mismatches);
    }
    progress_end(p, "%d concurrency levels, %.0f s each", cJSON_GetArraySize(rows), pl->tput_window_s);
    for (int i = 0; i < N_PROMPTS; i++)
        free(sh->expected[i]);
    pthread_mutex_destroy(&sh->lock);
    free(sh);
    return rc;
}
