/* The serving engine (continuous batching over a paged KV pool) against the
 * same requests run alone on a context: tokens and the logits they were
 * sampled from must be identical, bit for bit, whatever else shares the
 * batch. Also cancellation, pool exhaustion, handle lifetimes and a random
 * stress run (run it under ThreadSanitizer with tools/test --tsan). */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h" /* the backend sampling rule: gpt2_sample_row */
#include "ctx.h"     /* gpt2_ctx_device_sampling */
#include "gpt2.h"
#include "testutil.h"

/* Small enough to run hundreds of requests in seconds; vocab 512 so the
 * logits rows stay small; n_ff and n_embd multiples of 32 for Q8_0. */
static const gpt2_config CFG = {.n_vocab = 512, .n_ctx = 96, .n_embd = 64, .n_head = 4,
                                .n_layer = 2, .n_ff = 256, .ln_eps = 1e-5f};
static const char *DTYPES[] = {"f32", "f16", "q8_0"};

static const char *model_path(const char *dtype)
{
    return tu_fmt("%s/engine_%s.gguf", tu_data(), dtype);
}

static void make_models(void)
{
    gpt2_error err = {0};
    ck_assert_msg(gpt2_write_synthetic(&CFG, 5, GPT2_DTYPE_F32, model_path("f32"), 0, &err) == 0,
                  "%s", err.msg);
    ck_assert_msg(gpt2_write_synthetic(&CFG, 5, GPT2_DTYPE_F16, model_path("f16"), 0, &err) == 0,
                  "%s", err.msg);
    ck_assert_msg(gpt2_quantize(model_path("f32"), model_path("q8_0"), GPT2_DTYPE_Q8_0,
                                GPT2_DTYPE_Q8_0, NULL, NULL, &err) == 0,
                  "%s", err.msg);
}

static gpt2_model *load(const char *dtype)
{
    gpt2_error err = {0};
    gpt2_model *m = gpt2_model_load(model_path(dtype), NULL, &err);
    ck_assert_msg(m != NULL, "%s", err.msg);
    return m;
}

/* ---- requests and their reference run alone ---------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

typedef struct job {
    int prompt[96];
    int n_prompt;
    gpt2_gen_opts gen;
    /* reference, run alone */
    int ref_tokens[96];
    int n_ref;
    float *ref_logits; /* [n_ref][V] */
    /* engine run */
    float *logits;     /* [n_new][V] */
    gpt2_request *req;
    gpt2_request_result res;
    int cancel_after_ms; /* < 0: never */
    int free_without_wait;
} job;

static void job_random(job *j, uint64_t *s, int max_new)
{
    memset(j, 0, sizeof *j);
    j->n_prompt = 1 + (int)(rng_next(s) % 48);
    for (int i = 0; i < j->n_prompt; i++)
        j->prompt[i] = (int)(rng_next(s) % CFG.n_vocab);
    j->gen.n_new = (int)(rng_next(s) % (unsigned)(max_new + 1));
    j->gen.ignore_eos = 1;
    gpt2_sampling_default(&j->gen.sampling);
    switch (rng_next(s) % 4) {
    case 0: j->gen.sampling.greedy = 1; break;
    case 1: j->gen.sampling.temperature = 0.8f; break;
    case 2: j->gen.sampling.top_k = 20; break;
    default: j->gen.sampling.top_p = 0.9f; j->gen.sampling.temperature = 1.3f; break;
    }
    j->gen.sampling.seed = rng_next(s);
    j->cancel_after_ms = -1;
}

/* What gpt2_generate does, keeping every sampled-from logits row. With
 * backend_rule, each token is drawn as a backend that samples draws it:
 * gpt2_sample_row with the sampler's next draw (argmax for greedy jobs). */
static void run_alone_as(gpt2_ctx *c, job *j, int backend_rule)
{
    gpt2_error err = {0};
    const int V = CFG.n_vocab;
    float p[512];
    free(j->ref_logits);
    j->ref_logits = malloc(sizeof(float) * (size_t)(j->gen.n_new > 0 ? j->gen.n_new : 1) * V);
    gpt2_sampler *smp = gpt2_sampler_create(&j->gen.sampling, V, &err);
    ck_assert_msg(smp != NULL, "%s", err.msg);
    gpt2_ctx_reset(c);
    const float *lg;
    ck_assert_msg(gpt2_eval(c, j->prompt, j->n_prompt, &lg, &err) == 0, "%s", err.msg);
    j->n_ref = 0;
    for (int i = 0; i < j->gen.n_new; i++) {
        memcpy(j->ref_logits + (size_t)i * V, lg, sizeof(float) * V);
        int id;
        if (backend_rule) {
            gpt2_row_sampling rs;
            gpt2_sampler_next_row(smp, &rs);
            id = rs.on ? gpt2_sample_row(lg, V, &rs, p, NULL) : gpt2_argmax(lg, V);
        } else {
            id = gpt2_sampler_sample(smp, lg);
        }
        j->ref_tokens[j->n_ref++] = id;
        if (i + 1 < j->gen.n_new)
            ck_assert_msg(gpt2_eval(c, &id, 1, &lg, &err) == 0, "%s", err.msg);
    }
    gpt2_sampler_free(smp);
}

static void run_alone(gpt2_ctx *c, job *j) { run_alone_as(c, j, 0); }

static void submit_job(gpt2_engine *e, job *j)
{
    gpt2_error err = {0};
    free(j->logits);
    j->logits = malloc(sizeof(float) * (size_t)(j->gen.n_new > 0 ? j->gen.n_new : 1) * CFG.n_vocab);
    gpt2_request_opts o = {.prompt = j->prompt, .n_prompt = j->n_prompt, .gen = j->gen,
                           .logits = j->logits};
    j->req = gpt2_submit(e, &o, &err);
    ck_assert_msg(j->req != NULL, "submit: %s", err.msg);
}

/* The engine's tokens (n of them) and logits rows equal the reference's first n. */
static void expect_same(const job *j, const char *what, int idx)
{
    const gpt2_request_result *r = &j->res;
    ck_assert_msg(r->n_tokens <= j->n_ref, "%s #%d: %d tokens, alone %d", what, idx, r->n_tokens,
                  j->n_ref);
    for (int i = 0; i < r->n_tokens; i++) {
        ck_assert_msg(r->tokens[i] == j->ref_tokens[i],
                      "%s #%d (prompt %d, n_new %d): token %d is %d, alone %d", what, idx,
                      j->n_prompt, j->gen.n_new, i, r->tokens[i], j->ref_tokens[i]);
        const float *a = j->logits + (size_t)i * CFG.n_vocab;
        const float *b = j->ref_logits + (size_t)i * CFG.n_vocab;
        for (int v = 0; v < CFG.n_vocab; v++)
            ck_assert_msg(memcmp(&a[v], &b[v], sizeof(float)) == 0,
                          "%s #%d: token %d logit %d is %.9g, alone %.9g (not bit-identical)", what,
                          idx, i, v, a[v], b[v]);
    }
}

static void job_free(job *j)
{
    free(j->ref_logits), free(j->logits);
    j->ref_logits = j->logits = NULL;
}

static gpt2_engine *engine_kv(const gpt2_model *m, const char *isa, int step_tokens,
                              int max_seqs, int kv_tokens, int timeout_ms, const char *kv)
{
    gpt2_engine_opts o = {.ctx = {.n_threads = 2, .isa = isa, .max_batch = step_tokens,
                                  .kv_type = kv},
                          .max_seqs = max_seqs, .kv_tokens = kv_tokens,
                          .queue_timeout_ms = timeout_ms};
    gpt2_error err = {0};
    gpt2_engine *e = gpt2_engine_create(m, &o, &err);
    ck_assert_msg(e != NULL, "engine: %s", err.msg);
    ck_assert_str_eq(gpt2_engine_kv_type(e), kv ? kv : "f16");
    return e;
}

static gpt2_engine *engine(const gpt2_model *m, const char *isa, int step_tokens, int max_seqs,
                           int kv_tokens, int timeout_ms)
{
    return engine_kv(m, isa, step_tokens, max_seqs, kv_tokens, timeout_ms, NULL);
}

/* kv: the KV cache's element type (NULL: the default, f16) */
static gpt2_ctx *context_kv(const gpt2_model *m, const char *isa, const char *kv)
{
    gpt2_ctx_opts o = {.n_threads = 2, .isa = isa, .kv_type = kv};
    gpt2_error err = {0};
    gpt2_ctx *c = gpt2_ctx_create(m, &o, &err);
    ck_assert_msg(c != NULL, "ctx: %s", err.msg);
    return c;
}

static gpt2_ctx *context(const gpt2_model *m, const char *isa) { return context_kv(m, isa, NULL); }

static void expect_pool_empty(gpt2_engine *e, const char *what)
{
    gpt2_engine_stats st;
    gpt2_engine_get_stats(e, &st);
    ck_assert_msg(st.kv_blocks_used == 0 && st.kv_blocks_reserved == 0 && st.running == 0 &&
                      st.queued == 0,
                  "%s: after all requests: %d blocks used, %d reserved, %d running, %d queued", what,
                  st.kv_blocks_used, st.kv_blocks_reserved, st.running, st.queued);
}

/* ---- many clients, each request equal to itself alone ------------------------------ */

#define N_CLIENTS 6
#define JOBS_PER_CLIENT 4

typedef struct client {
    gpt2_engine *e;
    job *jobs;
    int n;
} client;

static void *client_main(void *arg)
{
    client *cl = arg;
    /* half submit everything then wait; half go one at a time */
    int burst = cl->jobs[0].gen.sampling.seed & 1;
    for (int i = 0; i < cl->n; i++) {
        submit_job(cl->e, &cl->jobs[i]);
        if (!burst)
            gpt2_request_wait(cl->jobs[i].req, -1, &cl->jobs[i].res);
    }
    for (int i = 0; i < cl->n; i++)
        gpt2_request_wait(cl->jobs[i].req, -1, &cl->jobs[i].res);
    return NULL;
}

/* _i: dtype x isa (auto, scalar) x (step budget 64 with the default fp16 KV
 * cache | step 7, prompts cut into chunks, with an fp32 cache) */
START_TEST(test_batched_equals_alone)
{
    const char *dtype = DTYPES[_i % 3];
    const char *isa = (_i / 3) % 2 ? "scalar" : NULL;
    const int step = _i / 6 ? 7 : 64;
    const char *kv = _i / 6 ? "f32" : NULL;
    gpt2_model *m = load(dtype);
    gpt2_ctx *c = context_kv(m, isa, kv);
    job jobs[N_CLIENTS * JOBS_PER_CLIENT];
    uint64_t s = 0x9e3779b97f4a7c15ull + (uint64_t)_i;
    for (int i = 0; i < N_CLIENTS * JOBS_PER_CLIENT; i++) {
        job_random(&jobs[i], &s, 40);
        if (jobs[i].n_prompt + jobs[i].gen.n_new > CFG.n_ctx)
            jobs[i].gen.n_new = CFG.n_ctx - jobs[i].n_prompt;
        run_alone(c, &jobs[i]);
    }
    gpt2_engine *e = engine_kv(m, isa, step, 8, 0, 0, kv);
    pthread_t th[N_CLIENTS];
    client cl[N_CLIENTS];
    for (int k = 0; k < N_CLIENTS; k++) {
        cl[k] = (client){e, jobs + k * JOBS_PER_CLIENT, JOBS_PER_CLIENT};
        ck_assert_int_eq(pthread_create(&th[k], NULL, client_main, &cl[k]), 0);
    }
    for (int k = 0; k < N_CLIENTS; k++)
        pthread_join(th[k], NULL);
    const char *what = tu_fmt("%s isa=%s step=%d kv=%s", dtype, isa ? isa : "auto", step,
                              kv ? kv : "f16");
    for (int i = 0; i < N_CLIENTS * JOBS_PER_CLIENT; i++) {
        ck_assert_msg(jobs[i].res.state == GPT2_REQ_DONE, "%s #%d: state %d (%s)", what, i,
                      jobs[i].res.state, jobs[i].res.error.msg);
        ck_assert_int_eq(jobs[i].res.n_tokens, jobs[i].n_ref);
        expect_same(&jobs[i], what, i);
    }
    gpt2_engine_stats st;
    gpt2_engine_get_stats(e, &st);
    /* the point of the engine: sequences shared steps */
    ck_assert_msg(st.seq_steps > st.steps, "%s: %llu sequence-steps in %llu steps: nothing batched",
                  what, (unsigned long long)st.seq_steps, (unsigned long long)st.steps);
    ck_assert_uint_eq(st.completed, N_CLIENTS * JOBS_PER_CLIENT);
    expect_pool_empty(e, what);
    for (int i = 0; i < N_CLIENTS * JOBS_PER_CLIENT; i++) {
        gpt2_request_free(jobs[i].req);
        job_free(&jobs[i]);
    }
    gpt2_engine_free(e);
    gpt2_ctx_free(c);
    gpt2_model_free(m);
}
END_TEST

/* ---- sampling by the backend (as on a GPU), forced here on the CPU ----------------- */

typedef struct collected {
    int ids[96];
    int n;
} collected;

static int collect(int id, void *user)
{
    collected *c = user;
    c->ids[c->n++] = id;
    return 0;
}

/* GPT2C_BACKEND_SAMPLING=1 routes sampled rows through gpt2_batch.sampling
 * on the CPU backend: gpt2_generate and the engine (with and without the
 * logits asked for) must give exactly the rule's tokens, and the rule must
 * differ from the host sampler somewhere, or this test checks nothing. */
START_TEST(test_backend_sampling)
{
    gpt2_model *m = load(DTYPES[_i]);
    gpt2_ctx *c = context(m, NULL);
    /* the CPU's default is the host sampler; only "0" and "1" override it */
    static const struct { const char *v; int want; } env[] = {{"", 0}, {"yes", 0}, {"2", 0}, {"0", 0}, {"1", 1}};
    for (int k = 0; k < 5; k++) {
        setenv("GPT2C_BACKEND_SAMPLING", env[k].v, 1);
        ck_assert_msg(gpt2_ctx_device_sampling(c) == env[k].want, "GPT2C_BACKEND_SAMPLING='%s': %d",
                      env[k].v, gpt2_ctx_device_sampling(c));
    }
    enum { N = 16 };
    job jobs[N];
    uint64_t s = 0x51ed27ull + (uint64_t)_i;
    int differ = 0;
    for (int i = 0; i < N; i++) {
        job_random(&jobs[i], &s, 30);
        if (jobs[i].gen.sampling.greedy) /* the point here is the draws */
            gpt2_sampling_default(&jobs[i].gen.sampling), jobs[i].gen.sampling.seed = (uint64_t)i;
        if (jobs[i].gen.n_new < 2)
            jobs[i].gen.n_new = 2;
        run_alone(c, &jobs[i]); /* the host sampler's tokens */
        int host[96], n_host = jobs[i].n_ref;
        memcpy(host, jobs[i].ref_tokens, sizeof(int) * (size_t)n_host);
        run_alone_as(c, &jobs[i], 1); /* the backend rule's tokens */
        differ += memcmp(host, jobs[i].ref_tokens, sizeof(int) * (size_t)n_host) != 0;
        collected got = {0};
        gpt2_error err = {0};
        ck_assert_msg(gpt2_generate(c, jobs[i].prompt, jobs[i].n_prompt, &jobs[i].gen, collect, &got,
                                    NULL, &err) == 0,
                      "%s", err.msg);
        ck_assert_int_eq(got.n, jobs[i].n_ref);
        for (int t = 0; t < got.n; t++)
            ck_assert_msg(got.ids[t] == jobs[i].ref_tokens[t],
                          "%s job %d: gpt2_generate token %d is %d, the rule gives %d", DTYPES[_i], i,
                          t, got.ids[t], jobs[i].ref_tokens[t]);
    }
    ck_assert_msg(differ > 0, "the backend rule drew exactly the host sampler's tokens in all %d jobs",
                  N);
    gpt2_engine *e = engine(m, NULL, 64, 8, 0, 0);
    for (int i = 0; i < N; i++) {
        if (i % 2) { /* no logits asked: the sampled rows' logits are not needed */
            gpt2_error err = {0};
            gpt2_request_opts o = {.prompt = jobs[i].prompt, .n_prompt = jobs[i].n_prompt,
                                   .gen = jobs[i].gen};
            jobs[i].req = gpt2_submit(e, &o, &err);
            ck_assert_msg(jobs[i].req != NULL, "submit: %s", err.msg);
        } else {
            submit_job(e, &jobs[i]);
        }
    }
    for (int i = 0; i < N; i++) {
        gpt2_request_wait(jobs[i].req, -1, &jobs[i].res);
        ck_assert_msg(jobs[i].res.state == GPT2_REQ_DONE, "#%d: %s", i, jobs[i].res.error.msg);
        ck_assert_int_eq(jobs[i].res.n_tokens, jobs[i].n_ref);
        if (i % 2 == 0) {
            expect_same(&jobs[i], "backend sampling", i);
        } else {
            for (int t = 0; t < jobs[i].n_ref; t++)
                ck_assert_msg(jobs[i].res.tokens[t] == jobs[i].ref_tokens[t],
                              "engine job %d token %d: %d, the rule gives %d", i, t,
                              jobs[i].res.tokens[t], jobs[i].ref_tokens[t]);
        }
        gpt2_request_free(jobs[i].req);
        job_free(&jobs[i]);
    }
    gpt2_engine_free(e);
    gpt2_ctx_free(c);
    gpt2_model_free(m);
    unsetenv("GPT2C_BACKEND_SAMPLING");
}
END_TEST

/* ---- cancellation ---------------------------------------------------------------------- */

static int wait_tokens(gpt2_request *r, int n)
{
    gpt2_request_result res;
    for (int tries = 0; tries < 20000; tries++) {
        int st = gpt2_request_wait(r, 1, &res);
        if (res.n_tokens >= n || st >= GPT2_REQ_DONE) {
            return res.n_tokens;
        }
    }
    return -1;
}

static int slow_token(int id, void *user)
{
    (void)id;
    int ms = *(const int *)user;
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
    return 0;
}

START_TEST(test_cancel_frees_blocks)
{
    gpt2_model *m = load("f32");
    gpt2_ctx *c = context(m, NULL);
    gpt2_engine *e = engine(m, NULL, 32, 8, 0, 0);
    enum { N = 10 };
    job jobs[N];
    uint64_t s = 42;
    int delay = 2;
    for (int i = 0; i < N; i++) {
        job_random(&jobs[i], &s, 0);
        jobs[i].n_prompt = 10 + i;
        jobs[i].gen.n_new = 60;
        run_alone(c, &jobs[i]);
    }
    /* all references first: submitted together, the requests overlap */
    for (int i = 0; i < N; i++) {
        jobs[i].logits = malloc(sizeof(float) * 60 * CFG.n_vocab);
        gpt2_error err = {0};
        /* slowed down by the callback so cancellation lands mid-generation */
        gpt2_request_opts o = {.prompt = jobs[i].prompt, .n_prompt = jobs[i].n_prompt,
                               .gen = jobs[i].gen, .logits = jobs[i].logits,
                               .on_token = slow_token, .user = &delay};
        jobs[i].req = gpt2_submit(e, &o, &err);
        ck_assert_msg(jobs[i].req != NULL, "%s", err.msg);
    }
    /* even ones: cancel after a few tokens; 1 and 3: freed unfinished, no wait */
    for (int i = 0; i < N; i += 2) {
        ck_assert_int_ge(wait_tokens(jobs[i].req, 3), 3);
        gpt2_request_cancel(jobs[i].req);
    }
    gpt2_request_free(jobs[1].req);
    gpt2_request_free(jobs[3].req);
    for (int i = 0; i < N; i++) {
        if (i == 1 || i == 3)
            continue;
        int st = gpt2_request_wait(jobs[i].req, -1, &jobs[i].res);
        if (i % 2 == 0) {
            ck_assert_msg(st == GPT2_REQ_CANCELLED, "#%d: state %d, expected cancelled", i, st);
            ck_assert_int_lt(jobs[i].res.n_tokens, 60);
        } else {
            ck_assert_int_eq(st, GPT2_REQ_DONE);
            ck_assert_int_eq(jobs[i].res.n_tokens, 60);
        }
        expect_same(&jobs[i], "cancel", i); /* the tokens it did make are right */
    }
    expect_pool_empty(e, "after cancellations");
    gpt2_engine_stats st;
    gpt2_engine_get_stats(e, &st);
    ck_assert_uint_eq(st.cancelled, N / 2 + 2);
    ck_assert_uint_eq(st.completed, N / 2 - 2);
    ck_assert_msg(st.kv_blocks_peak > 0, "the pool was never used");
    for (int i = 0; i < N; i++) {
        if (i != 1 && i != 3)
            gpt2_request_free(jobs[i].req);
        job_free(&jobs[i]);
    }
    gpt2_engine_free(e);
    gpt2_ctx_free(c);
    gpt2_model_free(m);
}
END_TEST

/* A request stopped by its own callback ends DONE with the tokens so far. */
static int stop_at_3(int id, void *user)
{
    (void)id;
    return ++*(int *)user >= 3;
}

START_TEST(test_callback_stops)
{
    gpt2_model *m = load("f32");
    gpt2_engine *e = engine(m, NULL, 0, 0, 0, 0);
    int seen = 0;
    gpt2_request_opts o = {.text = "Hello", .gen = {.n_new = 20, .ignore_eos = 1},
                           .on_token = stop_at_3, .user = &seen};
    gpt2_sampling_default(&o.gen.sampling);
    o.gen.sampling.greedy = 1;
    gpt2_error err = {0};
    gpt2_request *r = gpt2_submit(e, &o, &err);
    ck_assert_msg(r != NULL, "%s", err.msg);
    gpt2_request_result res;
    ck_assert_int_eq(gpt2_request_wait(r, -1, &res), GPT2_REQ_DONE);
    ck_assert_int_eq(res.n_tokens, 3);
    ck_assert_int_eq(seen, 3);
    ck_assert_msg(res.ttft_ms > 0 && res.total_ms >= res.ttft_ms, "timings %g %g", res.ttft_ms,
                  res.total_ms);
    gpt2_request_free(r);
    expect_pool_empty(e, "callback stop");
    gpt2_engine_free(e);
    gpt2_model_free(m);
}
END_TEST

/* ---- a full pool: wait, or fail after the timeout ------------------------------------------ */

START_TEST(test_pool_full)
{
    const int timeout = _i ? -1 : 40;
    gpt2_model *m = load("f32");
    gpt2_ctx *c = context(m, NULL);
    /* the smallest pool: one full context (96 positions = 6 blocks) */
    gpt2_engine *e = engine(m, NULL, 32, 8, 1, timeout);
    gpt2_engine_stats st;
    gpt2_engine_get_stats(e, &st);
    ck_assert_int_eq(st.kv_blocks * st.kv_block_tokens, CFG.n_ctx);
    job a, b;
    uint64_t s = 7;
    job_random(&a, &s, 0);
    job_random(&b, &s, 0);
    a.n_prompt = 40, a.gen.n_new = 56; /* 95 positions: the whole pool */
    b.n_prompt = 5, b.gen.n_new = 4;
    run_alone(c, &a);
    run_alone(c, &b);
    int delay = 4; /* a runs >= 220 ms */
    a.logits = malloc(sizeof(float) * 56 * CFG.n_vocab);
    gpt2_request_opts oa = {.prompt = a.prompt, .n_prompt = a.n_prompt, .gen = a.gen,
                            .logits = a.logits, .on_token = slow_token, .user = &delay};
    gpt2_error err = {0};
    a.req = gpt2_submit(e, &oa, &err);
    ck_assert_msg(a.req != NULL, "%s", err.msg);
    ck_assert_int_ge(wait_tokens(a.req, 1), 1); /* a holds the pool */
    submit_job(e, &b);
    gpt2_request_wait(a.req, -1, &a.res);
    gpt2_request_wait(b.req, -1, &b.res);
    ck_assert_int_eq(a.res.state, GPT2_REQ_DONE);
    expect_same(&a, "pool holder", 0);
    if (timeout > 0) {
        ck_assert_msg(b.res.state == GPT2_REQ_FAILED && b.res.error.code == GPT2_ERR_BUSY,
                      "waiting request: state %d code %d, expected failed/busy", b.res.state,
                      b.res.error.code);
        ck_assert_msg(strstr(b.res.error.msg, "KV blocks") != NULL, "message: %s", b.res.error.msg);
    } else {
        ck_assert_int_eq(b.res.state, GPT2_REQ_DONE);
        ck_assert_msg(b.res.queue_ms > 100, "waited only %.1f ms for the pool", b.res.queue_ms);
        expect_same(&b, "waiter", 1);
    }
    expect_pool_empty(e, "pool full");
    gpt2_request_free(a.req);
    gpt2_request_free(b.req);
    job_free(&a), job_free(&b);
    gpt2_engine_free(e);
    gpt2_ctx_free(c);
    gpt2_model_free(m);
}
END_TEST

/* ---- bad requests are refused at submit -------------------------------------------------------- */

START_TEST(test_submit_errors)
{
    gpt2_model *m = load("f32");
    gpt2_engine *e = engine(m, NULL, 0, 0, 0, 0);
    gpt2_error err = {0};
    int ids[100] = {0};
    gpt2_request_opts o = {.prompt = ids, .n_prompt = 0, .gen = {.n_new = 4}};
    gpt2_sampling_default(&o.gen.sampling);
    ck_assert_ptr_null(gpt2_submit(e, &o, &err));
    ck_assert_int_eq(err.code, GPT2_ERR_INVALID);
    o.n_prompt = 90, o.gen.n_new = 7; /* 97 > 96 */
    ck_assert_ptr_null(gpt2_submit(e, &o, &err));
    ck_assert_int_eq(err.code, GPT2_ERR_CONTEXT);
    o.n_prompt = 3, o.gen.n_new = 2, ids[1] = CFG.n_vocab;
    ck_assert_ptr_null(gpt2_submit(e, &o, &err));
    ck_assert_int_eq(err.code, GPT2_ERR_TOKENIZE);
    ids[1] = 1, o.gen.sampling.temperature = -1;
    ck_assert_ptr_null(gpt2_submit(e, &o, &err));
    ck_assert_int_eq(err.code, GPT2_ERR_INVALID);
    /* n_new 0: done at once with no tokens */
    gpt2_sampling_default(&o.gen.sampling);
    o.gen.n_new = 0;
    gpt2_request *r = gpt2_submit(e, &o, &err);
    ck_assert_msg(r != NULL, "%s", err.msg);
    gpt2_request_result res;
    ck_assert_int_eq(gpt2_request_wait(r, -1, &res), GPT2_REQ_DONE);
    ck_assert_int_eq(res.n_tokens, 0);
    gpt2_request_free(r);
    /* text is tokenized like gpt2_tokenize */
    int want[16];
    int n = gpt2_tokenize(m, "abc def", 7, want, 16, &err);
    ck_assert_int_gt(n, 0);
    gpt2_request_opts ot = {.text = "abc def", .gen = {.n_new = 1}};
    gpt2_sampling_default(&ot.gen.sampling);
    r = gpt2_submit(e, &ot, &err);
    ck_assert_msg(r != NULL, "%s", err.msg);
    gpt2_request_wait(r, -1, &res);
    ck_assert_int_eq(res.n_prompt, n);
    gpt2_request_free(r);
    gpt2_engine_free(e);
    gpt2_model_free(m);
}
END_TEST

/* Freeing the engine with requests in flight: they end cancelled and the
 * handles stay readable until freed (ASan: nothing leaks). */
START_TEST(test_engine_free_in_flight)
{
    gpt2_model *m = load("f32");
    gpt2_engine *e = engine(m, NULL, 16, 2, 0, -1);
    gpt2_request *r[6];
    int delay = 2;
    for (int i = 0; i < 6; i++) {
        gpt2_request_opts o = {.text = "in flight", .gen = {.n_new = 50, .ignore_eos = 1},
                               .on_token = slow_token, .user = &delay};
        gpt2_sampling_default(&o.gen.sampling);
        gpt2_error err = {0};
        r[i] = gpt2_submit(e, &o, &err);
        ck_assert_msg(r[i] != NULL, "%s", err.msg);
    }
    wait_tokens(r[0], 2);
    gpt2_request_free(r[5]); /* released before the engine goes */
    gpt2_engine_free(e);
    for (int i = 0; i < 5; i++) {
        gpt2_request_result res;
        int st = gpt2_request_wait(r[i], -1, &res);
        ck_assert_msg(st == GPT2_REQ_CANCELLED || st == GPT2_REQ_DONE, "#%d: state %d", i, st);
        gpt2_request_free(r[i]);
    }
    gpt2_model_free(m);
}
END_TEST

/* ---- stress: many short random requests, random cancels and frees ---------------------------------- */

#define STRESS_CLIENTS 8
#define STRESS_JOBS 40

static void *stress_main(void *arg)
{
    client *cl = arg;
    for (int i = 0; i < cl->n; i++) {
        job *j = &cl->jobs[i];
        submit_job(cl->e, j);
        if (j->cancel_after_ms >= 0) {
            gpt2_request_wait(j->req, j->cancel_after_ms, NULL);
            gpt2_request_cancel(j->req);
        }
        if (j->free_without_wait) {
            gpt2_request_free(j->req);
            j->req = NULL;
            continue;
        }
        gpt2_request_wait(j->req, -1, &j->res);
    }
    return NULL;
}

START_TEST(test_stress)
{
    gpt2_model *m = load(_i ? "q8_0" : "f32");
    gpt2_ctx *c = context(m, NULL);
    static job jobs[STRESS_CLIENTS][STRESS_JOBS];
    uint64_t s = 1234 + (uint64_t)_i;
    for (int k = 0; k < STRESS_CLIENTS; k++)
        for (int i = 0; i < STRESS_JOBS; i++) {
            job *j = &jobs[k][i];
            job_random(j, &s, 12);
            if (rng_next(&s) % 4 == 0)
                j->cancel_after_ms = (int)(rng_next(&s) % 5);
            j->free_without_wait = rng_next(&s) % 8 == 0;
            run_alone(c, j);
        }
    /* a small pool (3 full contexts) so requests also wait for room */
    gpt2_engine *e = engine(m, NULL, 24, 6, 3 * CFG.n_ctx, -1);
    pthread_t th[STRESS_CLIENTS];
    client cl[STRESS_CLIENTS];
    for (int k = 0; k < STRESS_CLIENTS; k++) {
        cl[k] = (client){e, jobs[k], STRESS_JOBS};
        ck_assert_int_eq(pthread_create(&th[k], NULL, stress_main, &cl[k]), 0);
    }
    for (int k = 0; k < STRESS_CLIENTS; k++)
        pthread_join(th[k], NULL);
    int done = 0, cancelled = 0;
    for (int k = 0; k < STRESS_CLIENTS; k++)
        for (int i = 0; i < STRESS_JOBS; i++) {
            job *j = &jobs[k][i];
            if (j->req) {
                ck_assert_msg(j->res.state == GPT2_REQ_DONE || j->res.state == GPT2_REQ_CANCELLED,
                              "client %d job %d: state %d (%s)", k, i, j->res.state,
                              j->res.error.msg);
                if (j->res.state == GPT2_REQ_DONE) {
                    ck_assert_int_eq(j->res.n_tokens, j->n_ref);
                    done++;
                } else {
                    cancelled++;
                }
                expect_same(j, "stress", k * STRESS_JOBS + i);
                gpt2_request_free(j->req);
            }
            job_free(j);
        }
    gpt2_engine_stats st;
    gpt2_engine_get_stats(e, &st);
    ck_assert_uint_eq(st.submitted, STRESS_CLIENTS * STRESS_JOBS);
    ck_assert_uint_eq(st.completed + st.cancelled, st.submitted);
    ck_assert_uint_eq(st.failed, 0);
    ck_assert_msg(done > 0, "no request completed");
    expect_pool_empty(e, "stress");
    gpt2_engine_free(e);
    gpt2_ctx_free(c);
    gpt2_model_free(m);
}
END_TEST

static Suite *engine_suite(void)
{
    Suite *s = suite_create("engine");
    TCase *tc = tcase_create("engine");
    tcase_set_timeout(tc, 600);
    tcase_add_unchecked_fixture(tc, make_models, NULL);
    tcase_add_loop_test(tc, test_batched_equals_alone, 0, 12);
    tcase_add_loop_test(tc, test_backend_sampling, 0, 3);
    tcase_add_test(tc, test_cancel_frees_blocks);
    tcase_add_test(tc, test_callback_stops);
    tcase_add_loop_test(tc, test_pool_full, 0, 2);
    tcase_add_test(tc, test_submit_errors);
    tcase_add_test(tc, test_engine_free_in_flight);
    tcase_add_loop_test(tc, test_stress, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(engine_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
