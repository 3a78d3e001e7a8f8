#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

volatile sig_atomic_t bench_interrupted;

/* Public-domain style English text (written for this project) used for prompts. */
static const char TEXT[] =
    "The history of computing is a story of machines that learned to follow ever longer "
    "lists of instructions, faster and with less energy each year. Early calculators "
    "filled rooms and needed teams of operators; their memories held a few thousand "
    "numbers, and a single fault could stop a week of work. Engineers answered with "
    "transistors, then integrated circuits, then whole processors on a sliver of silicon. "
    "Each step made the next one possible: cheaper logic invited bigger programs, and "
    "bigger programs demanded faster memory. Today a laptop performs more arithmetic in a "
    "second than those first machines did in their lifetimes, yet the basic questions "
    "remain. How quickly can data reach the units that compute with it? How much work can "
    "be done on each byte before it must be fetched again? Language models make these "
    "questions concrete. Generating one word means reading every weight of the network "
    "once, so the speed of memory sets the pace; reading a whole prompt at once turns the "
    "same weights into dense matrix products, where arithmetic becomes the limit. A good "
    "engine knows which regime it is in and measures how close it comes to the machine's "
    "ceilings. ";

int bench_text_ids(const gpt2_model *m, int n, int *out)
{
    /* encode once, repeat the ids as needed */
    gpt2_error err = {0};
    int need = gpt2_tokenize(m, TEXT, sizeof TEXT - 1, NULL, 0, &err);
    if (need <= 0) {
        fprintf(stderr, "gpt2c-bench: cannot tokenize the prompt text: %s\n", err.msg);
        return -1;
    }
    int *ids = malloc(sizeof(int) * (size_t)need);
    if (!ids)
        return -1;
    gpt2_tokenize(m, TEXT, sizeof TEXT - 1, ids, need, &err);
    for (int i = 0; i < n; i++)
        out[i] = ids[i % need];
    free(ids);
    return 0;
}


cJSON *bench_num(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

cJSON *bench_stats_json(const bench_stats *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", s->n);
    cJSON_AddItemToObject(o, "mean", bench_num(s->mean));
    cJSON_AddItemToObject(o, "stddev", bench_num(s->stddev));
    cJSON_AddItemToObject(o, "cv", bench_num(s->cv));
    cJSON_AddItemToObject(o, "min", bench_num(s->min));
    cJSON_AddItemToObject(o, "p50", bench_num(s->p50));
    cJSON_AddItemToObject(o, "p90", bench_num(s->p90));
    cJSON_AddItemToObject(o, "p95", bench_num(s->p95));
    cJSON_AddItemToObject(o, "p99", bench_num(s->p99));
    cJSON_AddItemToObject(o, "max", bench_num(s->max));
    return o;
}

cJSON *bench_stats_of(const double *x, int n)
{
    bench_stats s;
    bench_stats_compute(x, n, &s);
    return bench_stats_json(&s);
}

int bench_check(cJSON *checks, const char *name, int ok, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "name", name);
    cJSON_AddBoolToObject(c, "ok", ok);
    cJSON_AddStringToObject(c, "detail", detail);
    cJSON_AddItemToArray(checks, c);
    if (!ok)
        fprintf(stderr, "gpt2c-bench: check failed: %s: %s\n", name, detail);
    return ok;
}

int bench_run_alloc(bench_run *r, int n_new)
{
    memset(r, 0, sizeof *r);
    r->ids = malloc(sizeof(int) * (size_t)(n_new > 0 ? n_new : 1));
    r->t_ms = malloc(sizeof(double) * (size_t)(n_new > 0 ? n_new : 1));
    return r->ids && r->t_ms ? 0 : -1;
}

void bench_run_free(bench_run *r)
{
    free(r->ids);
    free(r->t_ms);
    memset(r, 0, sizeof *r);
}

typedef struct run_cb {
    bench_run *r;
    double t0;
    int cap;
} run_cb;

static int on_token(int id, void *user)
{
    run_cb *k = user;
    if (k->r->n < k->cap) {
        k->r->ids[k->r->n] = id;
        k->r->t_ms[k->r->n] = gpt2_now_ms() - k->t0;
        k->r->n++;
    }
    return 0;
}

int bench_generate(gpt2_ctx *c, const int *prompt, int n_prompt, int n_new,
                   const gpt2_sampling *s, bench_run *r, gpt2_error *err)
{
    gpt2_gen_opts go = {.n_new = n_new, .ignore_eos = 1};
    if (s)
        go.sampling = *s;
    else {
        gpt2_sampling_default(&go.sampling);
        go.sampling.greedy = 1;
    }
    r->n = 0;
    run_cb k = {r, gpt2_now_ms(), n_new};
    return gpt2_generate(c, prompt, n_prompt, &go, on_token, &k, &r->st, err);
}

/* Replaced by alloc_count.c in gpt2c-bench; programs without it cannot count. */
__attribute__((weak)) long bench_alloc_count(void) { return -1; }
