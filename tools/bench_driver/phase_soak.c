/* The soak (--soak MINUTES): mixed requests through one gpt2_engine for a
 * long time, to find what only time finds: memory or descriptors that grow,
 * a request that fails or gets another's tokens after hours of churn.
 *
 * Client threads come and go (each lives for a few requests; the number
 * alive moves between 1 and SOAK_MAX_CLIENTS in epochs), and each request
 * draws its prompt length, n_new, EOS handling and sampling (greedy, or
 * temperature / top-k / top-p with its own seed). One request in 8 is
 * cancelled after a random delay and one in 32 is freed unfinished without
 * waiting (a client that went away). One finished request in CHECK_ONE_IN is
 * re-run alone on the bench's context by a checker thread, as phase 4 does:
 * a completed request must give the same tokens, a cancelled one a prefix of
 * them. RSS and open file descriptors are sampled every few seconds; the
 * verdict is soak_judge's (soak_judge.c). */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "soak.h"
#include "sysinfo.h"

#define SOAK_MAX_CLIENTS 16
#define SOAK_MAX_PROMPT 300
#define SOAK_MAX_NEW 64
#define CHECK_ONE_IN 4   /* re-running every request alone would double the cost */
#define QUEUE_CAP 32     /* finished requests waiting for the checker */
#define MAX_SAMPLES 8192
#define MAX_PROBLEMS 20
#define GROWTH_THRESHOLD_MB_PER_HOUR 1.0

typedef struct job {
    unsigned long id;
    int prompt[SOAK_MAX_PROMPT];
    int n_prompt;
    gpt2_gen_opts gen;
    int tokens[SOAK_MAX_NEW];
    int n_tokens;
    int state; /* GPT2_REQ_DONE or GPT2_REQ_CANCELLED */
} job;

typedef struct soak {
    bench *b;
    gpt2_engine *e;
    int *text, n_text; /* prompts are windows of the bench's text */
    int max_prompt, max_new;
    pthread_mutex_t lock; /* everything below */
    pthread_cond_t queued;
    soak_counts cnt;
    unsigned long next_id;
    job *queue[QUEUE_CAP];
    int q_head, q_len;
    int stop;         /* clients: finish the current request and leave */
    int checker_stop; /* checker: drain the queue and leave */
    char problems[MAX_PROBLEMS][640];
    int n_problems;
} soak;

typedef struct client {
    soak *sk;
    pthread_t th;
    uint64_t rng;
    int n_requests;
    int used, done; /* done: under sk->lock */
} client;

static uint64_t rng_next(uint64_t *s) /* xorshift64* */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static int rng_below(uint64_t *s, int n) { return (int)(rng_next(s) % (uint64_t)n); }
static double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) / 9007199254740992.0; }

static void sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1e3), (long)(fmod(ms, 1e3) * 1e6)};
    nanosleep(&ts, NULL);
}

/* under sk->lock */
static void problem(soak *sk, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(soak *sk, const char *fmt, ...)
{
    if (sk->n_problems >= MAX_PROBLEMS)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sk->problems[sk->n_problems++], sizeof sk->problems[0], fmt, ap);
    va_end(ap);
}

static void describe(const job *j, char *buf, size_t len)
{
    const gpt2_sampling *s = &j->gen.sampling;
    if (s->greedy)
        snprintf(buf, len, "request %lu (prompt %d, n_new %d, greedy%s)", j->id, j->n_prompt,
                 j->gen.n_new, j->gen.ignore_eos ? ", EOS ignored" : "");
    else
        snprintf(buf, len, "request %lu (prompt %d, n_new %d, temperature %.2f, top-k %d, top-p %.2f, seed %llu%s)",
                 j->id, j->n_prompt, j->gen.n_new, s->temperature, s->top_k, s->top_p,
                 (unsigned long long)s->seed, j->gen.ignore_eos ? ", EOS ignored" : "");
}

/* Prompt length skewed short, as traffic is: half up to 32 tokens, a third
 * up to 128, the rest up to max_prompt. */
static void make_job(soak *sk, uint64_t *rng, job *j)
{
    int roll = rng_below(rng, 100), cap = sk->max_prompt;
    int hi = roll < 50 ? 32 : roll < 85 ? 128 : cap;
    hi = hi < cap ? hi : cap;
    j->n_prompt = 1 + rng_below(rng, hi);
    int off = rng_below(rng, sk->n_text - j->n_prompt + 1);
    memcpy(j->prompt, sk->text + off, sizeof(int) * (size_t)j->n_prompt);
    j->gen.n_new = 1 + rng_below(rng, sk->max_new);
    j->gen.ignore_eos = rng_below(rng, 2);
    gpt2_sampling_default(&j->gen.sampling);
    if (rng_below(rng, 3) == 0) {
        j->gen.sampling.greedy = 1;
    } else {
        static const float temps[] = {0.7f, 1.0f, 1.3f}, top_ps[] = {1.0f, 0.9f, 0.5f};
        static const int top_ks[] = {0, 1, 40};
        j->gen.sampling.temperature = temps[rng_below(rng, 3)];
        j->gen.sampling.top_k = top_ks[rng_below(rng, 3)];
        j->gen.sampling.top_p = top_ps[rng_below(rng, 3)];
        j->gen.sampling.seed = rng_next(rng);
    }
    j->n_tokens = 0;
}

static void *client_main(void *arg)
{
    client *cl = arg;
    soak *sk = cl->sk;
    job j;
    for (int k = 0; k < cl->n_requests; k++) {
        pthread_mutex_lock(&sk->lock);
        int stop = sk->stop || bench_interrupted;
        j.id = sk->next_id++;
        sk->cnt.requests += !stop;
        pthread_mutex_unlock(&sk->lock);
        if (stop)
            break;
        make_job(sk, &cl->rng, &j);
        int action = rng_below(&cl->rng, 32); /* 0: abandon; 1..4: cancel */
        gpt2_request_opts o = {.prompt = j.prompt, .n_prompt = j.n_prompt, .gen = j.gen};
        gpt2_error err = {0};
        gpt2_request *r = gpt2_submit(sk->e, &o, &err);
        char what[256];
        if (!r) {
            describe(&j, what, sizeof what);
            pthread_mutex_lock(&sk->lock);
            sk->cnt.failures++;
            problem(sk, "%s: refused: %s", what, err.msg);
            pthread_mutex_unlock(&sk->lock);
            continue;
        }
        if (action == 0) {
            sleep_ms(rng_unit(&cl->rng) * 50);
            gpt2_request_free(r);
            pthread_mutex_lock(&sk->lock);
            sk->cnt.abandoned++;
            pthread_mutex_unlock(&sk->lock);
            continue;
        }
        if (action <= 4) { /* anywhere: queued, prefilling, decoding or finished */
            gpt2_request_wait(r, 1 + rng_below(&cl->rng, 1000), NULL);
            gpt2_request_cancel(r);
        }
        gpt2_request_result res;
        int state;
        while ((state = gpt2_request_wait(r, 200, &res)) == GPT2_REQ_QUEUED || state == GPT2_REQ_RUNNING)
            if (bench_interrupted)
                gpt2_request_cancel(r);
        int check = 0;
        pthread_mutex_lock(&sk->lock);
        if (state == GPT2_REQ_DONE || state == GPT2_REQ_CANCELLED) {
            if (state == GPT2_REQ_DONE)
                sk->cnt.completed++;
            else
                sk->cnt.cancelled++;
            sk->cnt.generated_tokens += res.n_tokens;
            check = rng_below(&cl->rng, CHECK_ONE_IN) == 0;
        } else {
            describe(&j, what, sizeof what);
            sk->cnt.failures++;
            problem(sk, "%s: failed: %s", what, res.error.msg);
        }
        pthread_mutex_unlock(&sk->lock);
        job *c = NULL;
        if (check && res.n_tokens <= SOAK_MAX_NEW && (c = malloc(sizeof *c))) {
            *c = j;
            c->state = state;
            c->n_tokens = res.n_tokens;
            memcpy(c->tokens, res.tokens, sizeof(int) * (size_t)res.n_tokens);
        }
        gpt2_request_free(r);
        if (check) {
            pthread_mutex_lock(&sk->lock);
            if (c && sk->q_len < QUEUE_CAP) {
                sk->queue[(sk->q_head + sk->q_len++) % QUEUE_CAP] = c;
                pthread_cond_signal(&sk->queued);
                c = NULL;
            } else {
                sk->cnt.unchecked++;
            }
            pthread_mutex_unlock(&sk->lock);
            free(c);
        }
    }
    pthread_mutex_lock(&sk->lock);
    cl->done = 1;
    pthread_mutex_unlock(&sk->lock);
    return NULL;
}

typedef struct collect {
    int ids[SOAK_MAX_NEW];
    int n;
} collect;

static int collect_token(int id, void *user)
{
    collect *c = user;
    if (c->n < SOAK_MAX_NEW)
        c->ids[c->n++] = id;
    return 0;
}

/* The request run alone on the bench's context; rc of gpt2_generate. */
static int run_alone(soak *sk, const job *j, collect *alone, gpt2_error *err)
{
    alone->n = 0;
    return gpt2_generate(sk->b->ctx, j->prompt, j->n_prompt, &j->gen, collect_token, alone, NULL, err);
}

/* Compares a finished request with its run alone (rc, alone, err). */
static void compare_job(soak *sk, const job *j, int rc, const collect *alone_, const gpt2_error *errp)
{
    const collect alone = *alone_;
    const gpt2_error err = *errp;
    char what[256], detail[320] = "";
    int bad = rc != 0;
    if (rc != 0) {
        snprintf(detail, sizeof detail, "the run alone failed: %.280s", err.msg);
    } else {
        /* a cancelled request keeps the tokens it had: a prefix */
        int want_all = j->state == GPT2_REQ_DONE;
        int n = j->n_tokens < alone.n ? j->n_tokens : alone.n;
        for (int i = 0; i < n && !bad; i++)
            if (j->tokens[i] != alone.ids[i]) {
                bad = 1;
                snprintf(detail, sizeof detail, "token %d: %d in the engine, %d alone", i, j->tokens[i],
                         alone.ids[i]);
            }
        if (!bad && (j->n_tokens > alone.n || (want_all && j->n_tokens != alone.n))) {
            bad = 1;
            snprintf(detail, sizeof detail, "%d tokens in the engine, %d alone", j->n_tokens, alone.n);
        }
    }
    pthread_mutex_lock(&sk->lock);
    sk->cnt.checked++;
    if (bad) {
        describe(j, what, sizeof what);
        sk->cnt.mismatches++;
        problem(sk, "%s%s: %s", what, j->state == GPT2_REQ_CANCELLED ? " (cancelled)" : "", detail);
    }
    pthread_mutex_unlock(&sk->lock);
}

static void check_job(soak *sk, const job *j)
{
    collect alone;
    gpt2_error err = {0};
    int rc = run_alone(sk, j, &alone, &err);
    compare_job(sk, j, rc, &alone, &err);
}

static void *checker_main(void *arg)
{
    soak *sk = arg;
    for (;;) {
        pthread_mutex_lock(&sk->lock);
        while (sk->q_len == 0 && !sk->checker_stop)
            pthread_cond_wait(&sk->queued, &sk->lock);
        if (sk->q_len == 0) {
            pthread_mutex_unlock(&sk->lock);
            return NULL;
        }
        job *j = sk->queue[sk->q_head];
        sk->q_head = (sk->q_head + 1) % QUEUE_CAP;
        sk->q_len--;
        if (bench_interrupted) /* leave quickly; say what was not checked */
            sk->cnt.unchecked++;
        pthread_mutex_unlock(&sk->lock);
        if (!bench_interrupted)
            check_job(sk, j);
        free(j);
    }
}

/* Touches, before the clock starts, all the memory the soak can ever use:
 * every KV block of the engine's pool at once (the pool holds exactly
 * SOAK_MAX_CLIENTS of the longest requests) and the longest request on the
 * checker's context. Otherwise each new high-water mark of concurrent long
 * requests would add resident pages, growth that stops but would look like a
 * leak for as long as the soak runs. The burst is checked like any request. */
/* Tells the checker thread to finish and waits for it (checker: NULL when it
 * could not be started). */
static void stop_checker(soak *sk, pthread_t *checker)
{
    pthread_mutex_lock(&sk->lock);
    sk->checker_stop = 1;
    pthread_cond_signal(&sk->queued);
    pthread_mutex_unlock(&sk->lock);
    if (checker)
        pthread_join(*checker, NULL);
}

static int prefill_everything(soak *sk)
{
    job *j = calloc(1, sizeof *j);
    gpt2_request *r[SOAK_MAX_CLIENTS] = {0};
    if (!j)
        return -1;
    j->n_prompt = sk->max_prompt;
    memcpy(j->prompt, sk->text, sizeof(int) * (size_t)j->n_prompt);
    j->gen.n_new = sk->max_new;
    j->gen.ignore_eos = 1;
    gpt2_sampling_default(&j->gen.sampling);
    j->gen.sampling.greedy = 1;
    gpt2_request_opts o = {.prompt = j->prompt, .n_prompt = j->n_prompt, .gen = j->gen};
    gpt2_error err = {0}, alone_err = {0};
    int rc = 0;
    for (int i = 0; i < SOAK_MAX_CLIENTS && !rc; i++)
        if (!(r[i] = gpt2_submit(sk->e, &o, &err))) {
            fprintf(stderr, "gpt2c-bench: soak: the warm-up burst: %s\n", err.msg);
            rc = -1;
        }
    /* all the same request: one run alone for them all, while they run */
    collect alone;
    int alone_rc = run_alone(sk, j, &alone, &alone_err);
    for (int i = 0; i < SOAK_MAX_CLIENTS && r[i]; i++) {
        gpt2_request_result res;
        int state;
        while ((state = gpt2_request_wait(r[i], 200, &res)) == GPT2_REQ_QUEUED || state == GPT2_REQ_RUNNING)
            if (bench_interrupted)
                gpt2_request_cancel(r[i]);
        if (state == GPT2_REQ_DONE || state == GPT2_REQ_CANCELLED) {
            j->id = (unsigned long)i;
            j->state = state;
            j->n_tokens = res.n_tokens <= SOAK_MAX_NEW ? res.n_tokens : SOAK_MAX_NEW;
            memcpy(j->tokens, res.tokens, sizeof(int) * (size_t)j->n_tokens);
            if (!bench_interrupted)
                compare_job(sk, j, alone_rc, &alone, &alone_err);
        } else {
            fprintf(stderr, "gpt2c-bench: soak: the warm-up burst: %s\n", res.error.msg);
            rc = -1;
        }
        gpt2_request_free(r[i]);
    }
    free(j);
    return rc;
}

/* "m:ss" */
static const char *clock_str(double s, char *buf, size_t len)
{
    long t = (long)(s + 0.5);
    snprintf(buf, len, "%ld:%02ld", t / 60, t % 60);
    return buf;
}

static cJSON *reasons_json(const soak_verdict *v)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < v->n_reasons; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(v->reasons[i]));
    return a;
}

static void report(bench *b, const soak *sk, double minutes, double elapsed_s, int complete,
                   double interval_s, double warmup_s, const soak_sample *smp, int n)
{
    soak_verdict v;
    soak_judge(smp, n, warmup_s, GROWTH_THRESHOLD_MB_PER_HOUR, &sk->cnt, &v);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(b->phases, "soak", o);
    cJSON_AddNumberToObject(o, "minutes", minutes);
    cJSON_AddNumberToObject(o, "duration_s", elapsed_s);
    cJSON_AddBoolToObject(o, "complete", complete);
    cJSON_AddNumberToObject(o, "sample_interval_s", interval_s);
    cJSON_AddNumberToObject(o, "warmup_s", warmup_s);
    cJSON_AddNumberToObject(o, "max_clients", SOAK_MAX_CLIENTS);
    cJSON_AddNumberToObject(o, "max_prompt_tokens", sk->max_prompt);
    cJSON_AddNumberToObject(o, "max_new_tokens", sk->max_new);
    cJSON_AddNumberToObject(o, "check_one_in", CHECK_ONE_IN);
    cJSON_AddNumberToObject(o, "growth_threshold_mb_per_hour", GROWTH_THRESHOLD_MB_PER_HOUR);
    const soak_counts *c = &sk->cnt;
    cJSON_AddNumberToObject(o, "requests", (double)c->requests);
    cJSON_AddNumberToObject(o, "completed", (double)c->completed);
    cJSON_AddNumberToObject(o, "cancelled", (double)c->cancelled);
    cJSON_AddNumberToObject(o, "abandoned", (double)c->abandoned);
    cJSON_AddNumberToObject(o, "failures", (double)c->failures);
    cJSON_AddNumberToObject(o, "checked", (double)c->checked);
    cJSON_AddNumberToObject(o, "mismatches", (double)c->mismatches);
    cJSON_AddNumberToObject(o, "unchecked", (double)c->unchecked);
    cJSON_AddNumberToObject(o, "generated_tokens", (double)c->generated_tokens);
    cJSON *samples = cJSON_AddArrayToObject(o, "samples");
    for (int i = 0; i < n; i++) {
        double pt[4] = {smp[i].t_s, smp[i].rss_mb, smp[i].fds, smp[i].clients};
        cJSON_AddItemToArray(samples, cJSON_CreateDoubleArray(pt, 4));
    }
    cJSON_AddNumberToObject(o, "fit_samples", v.n_fit);
    cJSON_AddItemToObject(o, "rss_slope_mb_per_hour", bench_num(v.slope_mb_per_hour));
    cJSON_AddItemToObject(o, "rss_slope_se_mb_per_hour", bench_num(v.se_mb_per_hour));
    if (v.fit_ok) {
        double ci[2] = {v.ci95_lo, v.ci95_hi};
        cJSON_AddItemToObject(o, "rss_ci95_mb_per_hour", cJSON_CreateDoubleArray(ci, 2));
    } else {
        cJSON_AddNullToObject(o, "rss_ci95_mb_per_hour");
    }
    cJSON_AddItemToObject(o, "fds_first", bench_num(v.n_fit ? v.fd_first : NAN));
    cJSON_AddItemToObject(o, "fds_last", bench_num(v.n_fit ? v.fd_last : NAN));
    cJSON_AddItemToObject(o, "fds_max", bench_num(v.n_fit ? v.fd_max : NAN));
    cJSON_AddItemToObject(o, "fd_growth", bench_num(v.n_fit ? v.fd_growth : NAN));
    cJSON *pr = cJSON_AddArrayToObject(o, "problems");
    for (int i = 0; i < sk->n_problems; i++)
        cJSON_AddItemToArray(pr, cJSON_CreateString(sk->problems[i]));
    cJSON_AddStringToObject(o, "verdict", v.pass ? "PASS" : "FAIL");
    cJSON_AddItemToObject(o, "reasons", reasons_json(&v));
    b->soak_failed = !v.pass;

    char el[48];
    fprintf(stderr, "gpt2c-bench: soak %s%s: %ld requests (%ld completed, %ld cancelled, %ld abandoned), "
                    "%ld checked alone, %ld mismatches, %ld failures\n",
            clock_str(elapsed_s, el, sizeof el), complete ? "" : " (interrupted)", c->requests,
            c->completed, c->cancelled, c->abandoned, c->checked, c->mismatches, c->failures);
    if (v.fit_ok)
        fprintf(stderr, "gpt2c-bench: soak: RSS %+.3f MiB/hour (95%% interval %.3f .. %.3f, %d samples after "
                        "the %.0f s warm-up); open fds %d -> %d\n",
                v.slope_mb_per_hour, v.ci95_lo, v.ci95_hi, v.n_fit, warmup_s, v.fd_first, v.fd_last);
    for (int i = 0; i < sk->n_problems; i++)
        fprintf(stderr, "gpt2c-bench: soak: %s\n", sk->problems[i]);
    if (v.pass)
        fprintf(stderr, "gpt2c-bench: soak: PASS\n");
    else
        for (int i = 0; i < v.n_reasons; i++)
            fprintf(stderr, "gpt2c-bench: soak: FAIL: %s\n", v.reasons[i]);
}

int phase_soak(bench *b)
{
    const gpt2_config *cfg = gpt2_model_config(b->model);
    const double minutes = b->set.soak_minutes, total_s = minutes * 60.0;
    /* ~60 samples for a short soak, one every 5 s for a long one */
    double interval_s = total_s / 60.0;
    interval_s = interval_s < 0.25 ? 0.25 : interval_s > 5.0 ? 5.0 : interval_s;
    if (total_s / interval_s > MAX_SAMPLES - 1)
        interval_s = total_s / (MAX_SAMPLES - 1);
    /* the first touch of KV blocks, sampler buffers and per-thread malloc
     * arenas is growth that stops: not counted */
    const double warmup_s = total_s * 0.2 < 120.0 ? total_s * 0.2 : 120.0;
    /* clients come and go in epochs of a few seconds to half a minute */
    const double epoch_s = total_s / 12.0 < 20.0 ? total_s / 12.0 : 20.0;

    soak *sk = calloc(1, sizeof *sk);
    soak_sample *smp = calloc(MAX_SAMPLES, sizeof *smp);
    client *cl = calloc(SOAK_MAX_CLIENTS, sizeof *cl);
    if (!sk || !smp || !cl) {
        fprintf(stderr, "gpt2c-bench: soak: out of memory\n");
        free(sk), free(smp), free(cl);
        return -1;
    }
    sk->b = b;
    sk->max_new = SOAK_MAX_NEW < cfg->n_ctx / 4 ? SOAK_MAX_NEW : cfg->n_ctx / 4;
    sk->max_new = sk->max_new > 0 ? sk->max_new : 1;
    sk->max_prompt = SOAK_MAX_PROMPT < cfg->n_ctx - sk->max_new ? SOAK_MAX_PROMPT : cfg->n_ctx - sk->max_new;
    sk->n_text = sk->max_prompt + 512;
    sk->text = malloc(sizeof(int) * (size_t)sk->n_text);
    gpt2_error err = {0};
    gpt2_engine_opts eo = {
        .ctx = {.n_threads = b->set.threads, .isa = b->set.isa, .backend = b->set.backend,
                .gemm = b->set.gemm, .device = b->set.device, .kv_type = b->set.kv_type},
        .max_seqs = SOAK_MAX_CLIENTS,
        /* room for every client's longest request (+ a block each for rounding) */
        .kv_tokens = SOAK_MAX_CLIENTS * (sk->max_prompt + sk->max_new + 16),
    };
    if (!sk->text || bench_text_ids(b->model, sk->n_text, sk->text) != 0 ||
        !(sk->e = gpt2_engine_create(b->model, &eo, &err))) {
        fprintf(stderr, "gpt2c-bench: soak: %s\n", err.msg[0] ? err.msg : "cannot make the prompts");
        free(sk->text), free(sk), free(smp), free(cl);
        return -1;
    }
    pthread_mutex_init(&sk->lock, NULL);
    pthread_cond_init(&sk->queued, NULL);
    pthread_t checker;
    int have_checker = pthread_create(&checker, NULL, checker_main, sk) == 0;

    fprintf(stderr, "gpt2c-bench: soak for %.4g minutes: 1..%d clients, prompts 1..%d tokens, 1..%d new; "
                    "RSS and fds every %.3g s, warm-up %.0f s\n",
            minutes, SOAK_MAX_CLIENTS, sk->max_prompt, sk->max_new, interval_s, warmup_s);
    double tb = gpt2_now_ms();
    int burst = prefill_everything(sk);
    fprintf(stderr, "gpt2c-bench: soak: warm-up burst of %d requests (%d + %d tokens each) in %.1f s\n",
            SOAK_MAX_CLIENTS, sk->max_prompt, sk->max_new, (gpt2_now_ms() - tb) / 1e3);
    if (burst != 0 && !bench_interrupted) {
        stop_checker(sk, have_checker ? &checker : NULL);
        gpt2_engine_free(sk->e);
        pthread_cond_destroy(&sk->queued);
        pthread_mutex_destroy(&sk->lock);
        free(sk->text), free(sk), free(smp), free(cl);
        return -1;
    }
    uint64_t rng = b->set.seed * 0x9E3779B97F4A7C15ULL + 0x5eed;
    rng = rng ? rng : 1;
    double t0 = gpt2_now_ms(), next_sample = 0, next_epoch = 0, next_line = 0;
    int n = 0, target = 1, alive = 0;
    for (;;) {
        double now = (gpt2_now_ms() - t0) / 1e3;
        if (bench_interrupted || now >= total_s)
            break;
        if (now >= next_epoch) {
            target = 1 + rng_below(&rng, SOAK_MAX_CLIENTS);
            next_epoch = now + epoch_s * (0.5 + rng_unit(&rng));
        }
        /* clients that left, then new ones up to the target */
        pthread_mutex_lock(&sk->lock);
        for (int i = 0; i < SOAK_MAX_CLIENTS; i++)
            if (cl[i].used && cl[i].done) {
                pthread_mutex_unlock(&sk->lock);
                pthread_join(cl[i].th, NULL);
                pthread_mutex_lock(&sk->lock);
                cl[i].used = 0;
                alive--;
            }
        pthread_mutex_unlock(&sk->lock);
        for (int i = 0; i < SOAK_MAX_CLIENTS && alive < target; i++)
            if (!cl[i].used) {
                cl[i] = (client){.sk = sk, .rng = rng_next(&rng) | 1, .n_requests = 1 + rng_below(&rng, 8)};
                if (pthread_create(&cl[i].th, NULL, client_main, &cl[i]) != 0)
                    break;
                cl[i].used = 1;
                alive++;
            }
        if (now >= next_sample && n < MAX_SAMPLES) {
            smp[n] = (soak_sample){now, rss_mb(), open_fds(), alive};
            next_sample += interval_s;
            if (now >= next_line) { /* one progress line per sample, at most one per 5 s */
                char el[48], tot[48];
                pthread_mutex_lock(&sk->lock);
                soak_counts c = sk->cnt;
                pthread_mutex_unlock(&sk->lock);
                fprintf(stderr, "[soak] %s / %s  rss %.1f MiB  fds %d  clients %d  requests %ld "
                                "(cancelled or abandoned %ld, checked %ld, mismatches %ld, failures %ld)\n",
                        clock_str(now, el, sizeof el), clock_str(total_s, tot, sizeof tot), smp[n].rss_mb,
                        smp[n].fds, alive, c.requests, c.cancelled + c.abandoned, c.checked,
                        c.mismatches, c.failures);
                next_line = now + 5.0 - interval_s / 2;
            }
            n++;
        }
        sleep_ms(20);
    }
    double elapsed_s = (gpt2_now_ms() - t0) / 1e3;
    int complete = !bench_interrupted;

    pthread_mutex_lock(&sk->lock);
    sk->stop = 1;
    pthread_mutex_unlock(&sk->lock);
    for (int i = 0; i < SOAK_MAX_CLIENTS; i++)
        if (cl[i].used)
            pthread_join(cl[i].th, NULL);
    stop_checker(sk, have_checker ? &checker : NULL);
    for (; sk->q_len > 0; sk->q_len--, sk->q_head = (sk->q_head + 1) % QUEUE_CAP) {
        free(sk->queue[sk->q_head]); /* only without a checker thread */
        sk->cnt.unchecked++;
    }
    gpt2_engine_free(sk->e);

    report(b, sk, minutes, elapsed_s, complete, interval_s, warmup_s, smp, n);
    pthread_cond_destroy(&sk->queued);
    pthread_mutex_destroy(&sk->lock);
    free(sk->text);
    free(sk);
    free(smp);
    free(cl);
    return 0;
}
