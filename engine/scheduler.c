/* The serving engine: requests from many threads, one scheduler thread that
 * batches them into forward steps (continuous batching over a paged KV pool).
 *
 * Locking: one mutex (in the hub) guards the queue, the running list, the KV
 * pool, the statistics and every request field marked "locked" below. The
 * scheduler drops it for the forward pass, sampling and token callbacks,
 * which touch only fields that thread alone owns. The hub (mutex + condition
 * variables) is reference-counted by the engine and by each request handle,
 * so a handle stays usable after gpt2_engine_free. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "ctx.h"
#include "errors.h"
#include "kv_pool.h"
#include "model.h"

#define DEFAULT_STEP_TOKENS 256
#define DEFAULT_MAX_SEQS 64
#define DEFAULT_KV_MB 512
#define DEFAULT_QUEUE_TIMEOUT_MS 60000

typedef struct hub {
    pthread_mutex_t mu;
    pthread_cond_t work; /* the scheduler waits here for requests */
    pthread_cond_t done; /* clients wait here for requests to finish */
    int refs;            /* engine + live request handles */
} hub;

struct gpt2_request {
    hub *h;
    gpt2_engine *e;
    struct gpt2_request *next; /* queue link */
    /* fixed at submit */
    int *prompt;
    int n_prompt;
    gpt2_gen_opts gen;
    gpt2_token_fn on_token;
    void *user;
    float *logits_out;
    int need_blocks; /* KV blocks reserved at admission */
    double t_submit;
    /* locked */
    int state;
    int cancel;
    int user_freed;
    int n_tokens; /* tokens published to clients */
    int stopped_at_eos;
    double t_admit, t_first, t_end;
    gpt2_error error;
    /* scheduler thread only (tokens[0 .. n_tokens) is read by clients, locked) */
    int *tokens; /* capacity max(n_new, 1) */
    int n_gen;
    int n_prefilled; /* prompt tokens evaluated */
    int pos;         /* positions in the cache */
    int *blocks;     /* capacity need_blocks (>= 1) */
    int n_blocks;
    gpt2_sampler *smp;
};

struct gpt2_engine {
    hub *h;
    const gpt2_model *m;
    const gpt2_backend_ops *be;
    void *st;
    int step_tokens, max_seqs, queue_timeout_ms, bs;
    size_t kv_bytes_per_token;
    gpt2_kv_type kv_type;
    pthread_t thread;
    int thread_started;
    /* locked */
    int stop;
    gpt2_request *q_head, *q_tail;
    int n_queued;
    gpt2_request **running; /* [max_seqs], admission order */
    int n_running;
    kv_pool pool;
    gpt2_engine_stats stats;
    /* scheduler thread only: the batch being built and run */
    int *ids;                 /* [step_tokens] */
    gpt2_batch_seq *bseqs;    /* [max_seqs] */
    gpt2_request **breqs;     /* [max_seqs] */
    float *logits;            /* [max_seqs][n_vocab] */
    int *argmax;              /* [max_seqs]: each logit row's greedy choice */
    unsigned char *need_logits; /* [max_seqs]: 0 for greedy rows nobody reads */
    gpt2_row_sampling *rsamp; /* [max_seqs]: rows the backend samples (device_sampling) */
    int *sampled;             /* [max_seqs]: their tokens */
    int backend_samples;      /* gpt2_backend_samples(be) */
    int *finish_state;        /* [max_seqs]: what each batch sequence ends as (0: runs on) */
};

static int is_final(int state) { return state >= GPT2_REQ_DONE; }

/* ---- hub and request memory ------------------------------------------------ */

static hub *hub_create(void)
{
    hub *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* timed waits immune to clock changes */
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->work, NULL);
    pthread_cond_init(&h->done, &ca);
    pthread_condattr_destroy(&ca);
    h->refs = 1;
    return h;
}

/* Drops one reference; called with h->mu held, returns with it released. */
static void hub_unref_unlock(hub *h)
{
    int last = --h->refs == 0;
    pthread_mutex_unlock(&h->mu);
    if (last) {
        pthread_mutex_destroy(&h->mu);
        pthread_cond_destroy(&h->work);
        pthread_cond_destroy(&h->done);
        free(h);
    }
}

static void request_free_memory(gpt2_request *r)
{
    gpt2_sampler_free(r->smp);
    free(r->prompt);
    free(r->tokens);
    free(r->blocks);
    free(r);
}

/* ---- scheduler (all with the lock held unless said otherwise) ------------------ */

static void queue_remove(gpt2_engine *e, gpt2_request *r)
{
    gpt2_request **pp = &e->q_head, *prev = NULL;
    while (*pp && *pp != r)
        prev = *pp, pp = &(*pp)->next;
    if (!*pp)
        return;
    *pp = r->next;
    if (e->q_tail == r)
        e->q_tail = prev;
    r->next = NULL;
    e->n_queued--;
}

static void running_remove(gpt2_engine *e, gpt2_request *r)
{
    for (int i = 0; i < e->n_running; i++)
        if (e->running[i] == r) {
            memmove(&e->running[i], &e->running[i + 1],
                    sizeof(*e->running) * (size_t)(e->n_running - i - 1));
            e->n_running--;
            return;
        }
}

/* Ends a request: KV blocks back to the pool, clients woken; a handle its
 * owner already released is freed here. */
static void finish(gpt2_engine *e, gpt2_request *r, int state)
{
    if (r->state == GPT2_REQ_RUNNING) {
        kv_pool_release(&e->pool, r->blocks, r->n_blocks, r->need_blocks);
        r->n_blocks = 0;
        running_remove(e, r);
    } else {
        queue_remove(e, r);
    }
    r->state = state;
    r->n_tokens = r->n_gen;
    r->t_end = gpt2_now_ms();
    if (state == GPT2_REQ_DONE)
        e->stats.completed++;
    else if (state == GPT2_REQ_CANCELLED)
        e->stats.cancelled++;
    else
        e->stats.failed++;
    gpt2_sampler_free(r->smp);
    r->smp = NULL;
    pthread_cond_broadcast(&r->h->done);
    if (r->user_freed) {
        r->h->refs--; /* the handle's reference; the engine's keeps the hub alive */
        request_free_memory(r);
    }
}

static void fail(gpt2_engine *e, gpt2_request *r, const gpt2_error *err)
{
    r->error = *err;
    finish(e, r, GPT2_REQ_FAILED);
}

/* Cancellations, admissions (first come, first served: the head of the queue
 * waits for room rather than being overtaken) and queue timeouts. */
static void admit(gpt2_engine *e)
{
    for (int i = e->n_running - 1; i >= 0; i--)
        if (e->running[i]->cancel)
            finish(e, e->running[i], GPT2_REQ_CANCELLED);
    for (gpt2_request *r = e->q_head, *nx; r; r = nx) {
        nx = r->next;
        if (r->cancel)
            finish(e, r, GPT2_REQ_CANCELLED);
    }
    while (e->q_head && e->n_running < e->max_seqs &&
           kv_pool_reserve(&e->pool, e->q_head->need_blocks) == 0) {
        gpt2_request *r = e->q_head;
        queue_remove(e, r);
        r->state = GPT2_REQ_RUNNING;
        r->t_admit = gpt2_now_ms();
        e->running[e->n_running++] = r;
        if (r->gen.n_new == 0)
            finish(e, r, GPT2_REQ_DONE);
    }
    if (e->queue_timeout_ms < 0)
        return;
    double now = gpt2_now_ms();
    for (gpt2_request *r = e->q_head, *nx; r; r = nx) {
        nx = r->next;
        if (now - r->t_submit >= e->queue_timeout_ms) {
            gpt2_error err;
            gpt2_seterr(&err, GPT2_ERR_BUSY,
                        "request waited %.0f ms for %d free KV blocks (%d positions); the pool "
                        "has %d blocks, %d promised to %d running requests (raise kv_tokens / "
                        "--kv-tokens or the queue timeout)",
                        now - r->t_submit, r->need_blocks, r->need_blocks * e->bs,
                        e->pool.n_blocks, e->pool.reserved, e->n_running);
            fail(e, r, &err);
        }
    }
}

/* The next step's batch: one row for every decoding sequence, then prompt
 * chunks in admission order while the step's token budget lasts. Takes the
 * KV blocks the new positions reach. Returns the number of sequences. */
static int build_batch(gpt2_engine *e, int *n_rows, int *n_logit_rows, int *n_decode)
{
    int ns = 0, nr = 0, nl = 0, nd = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < e->n_running && nr < e->step_tokens; i++) {
            gpt2_request *r = e->running[i];
            int decoding = r->n_prefilled == r->n_prompt;
            if (decoding != (pass == 0))
                continue;
            gpt2_batch_seq *q = &e->bseqs[ns];
            q->pos0 = r->pos;
            q->blocks = r->blocks;
            if (decoding) {
                nd++;
                e->ids[nr] = r->tokens[r->n_gen - 1];
                q->n_rows = 1;
                q->first_logit = 0;
            } else {
                int left = r->n_prompt - r->n_prefilled, room = e->step_tokens - nr;
                q->n_rows = left < room ? left : room;
                memcpy(e->ids + nr, r->prompt + r->n_prefilled, sizeof(int) * (size_t)q->n_rows);
                q->first_logit = q->n_rows == left ? q->n_rows - 1 : q->n_rows;
            }
            if (q->first_logit < q->n_rows) { /* one logit row at most per sequence */
                /* a backend that samples draws the token itself (as gpt2_generate
                 * lets it): the logits come back only for logits_out */
                e->rsamp[nl].on = 0;
                if (e->backend_samples)
                    gpt2_sampler_next_row(r->smp, &e->rsamp[nl]);
                e->need_logits[nl] = r->logits_out ||
                                     !(r->gen.sampling.greedy || e->rsamp[nl].on);
            }
            int need = (q->pos0 + q->n_rows + e->bs - 1) / e->bs;
            while (r->n_blocks < need)
                r->blocks[r->n_blocks++] = kv_pool_take(&e->pool);
            e->breqs[ns++] = r;
            nr += q->n_rows;
            nl += q->n_rows - q->first_logit;
        }
    *n_rows = nr;
    *n_logit_rows = nl;
    *n_decode = nd;
    return ns;
}

/* After a forward pass (lock not held): positions advance, sequences with
 * logits sample their next token and stream it. Returns through finish_state
 * (per batch sequence) GPT2_REQ_DONE when the request is complete, else 0. */
static void after_forward(gpt2_engine *e, int ns, int *finish_state)
{
    const int V = e->m->cfg.n_vocab;
    const float *lg = e->logits;
    int k = 0; /* logit row */
    for (int i = 0; i < ns; i++) {
        gpt2_request *r = e->breqs[i];
        const gpt2_batch_seq *q = &e->bseqs[i];
        finish_state[i] = 0;
        r->pos += q->n_rows;
        if (r->n_prefilled < r->n_prompt)
            r->n_prefilled += q->n_rows;
        if (q->first_logit == q->n_rows)
            continue;
        if (r->logits_out)
            memcpy(r->logits_out + (size_t)r->n_gen * V, lg, sizeof(float) * (size_t)V);
        /* rows sampled by the backend take its draw; greedy rows its argmax
         * (their logits may not be there); the others sample here */
        int id = e->rsamp[k].on ? e->sampled[k]
                 : r->gen.sampling.greedy ? e->argmax[k]
                                          : gpt2_sampler_sample(r->smp, lg);
        lg += V;
        k++;
        r->tokens[r->n_gen++] = id;
        /* the order of gpt2_generate: count, callback, then EOS */
        if (r->on_token && r->on_token(id, r->user))
            finish_state[i] = GPT2_REQ_DONE;
        else if (id == GPT2_EOS_TOKEN && !r->gen.ignore_eos) {
            r->stopped_at_eos = 1;
            finish_state[i] = GPT2_REQ_DONE;
        } else if (r->n_gen == r->gen.n_new)
            finish_state[i] = GPT2_REQ_DONE;
    }
}

static void *scheduler_main(void *arg)
{
    gpt2_engine *e = arg;
    hub *h = e->h;
    int *finish_state = e->finish_state;
    pthread_mutex_lock(&h->mu);
    while (!e->stop) {
        admit(e);
        if (e->n_running == 0) {
            if (e->q_head && e->queue_timeout_ms >= 0) {
                /* wake for the head's deadline: nothing else frees room */
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                long ms = e->queue_timeout_ms / 4 + 1;
                ts.tv_sec += ms / 1000;
                ts.tv_nsec += (ms % 1000) * 1000000L;
                if (ts.tv_nsec >= 1000000000L)
                    ts.tv_sec++, ts.tv_nsec -= 1000000000L;
                pthread_cond_timedwait(&h->work, &h->mu, &ts);
            } else {
                pthread_cond_wait(&h->work, &h->mu);
            }
            continue;
        }
        int n_rows, n_logit, n_decode;
        int ns = build_batch(e, &n_rows, &n_logit, &n_decode);
        gpt2_batch b = {.ids = e->ids, .n_rows = n_rows, .seqs = e->bseqs, .n_seqs = ns,
                        .n_logit_rows = n_logit, .argmax = e->argmax,
                        .need_logits = e->need_logits, .sampling = e->rsamp,
                        .sampled = e->sampled};
        pthread_mutex_unlock(&h->mu);

        gpt2_error err = {0};
        double t0 = gpt2_now_ms();
        int rc = e->be->forward(e->st, &b, e->logits, &err);
        double t1 = gpt2_now_ms();
        if (rc == 0)
            after_forward(e, ns, finish_state);

        pthread_mutex_lock(&h->mu);
        e->stats.steps++;
        e->stats.rows += (uint64_t)n_rows;
        e->stats.seq_steps += (uint64_t)ns;
        e->stats.decode_rows += (uint64_t)n_decode;
        e->stats.forward_ms += t1 - t0;
        for (int i = 0; i < ns; i++) {
            gpt2_request *r = e->breqs[i];
            if (rc) {
                fail(e, r, &err);
                continue;
            }
            if (r->n_gen > 0 && r->t_first == 0)
                r->t_first = gpt2_now_ms();
            r->n_tokens = r->n_gen;
            if (finish_state[i])
                finish(e, r, finish_state[i]);
        }
    }
    /* stopping: whatever is left ends as cancelled */
    gpt2_error stopped;
    gpt2_seterr(&stopped, GPT2_ERR_BUSY, "the engine was stopped before the request finished");
    while (e->n_running)
        e->running[0]->error = stopped, finish(e, e->running[0], GPT2_REQ_CANCELLED);
    while (e->q_head)
        e->q_head->error = stopped, finish(e, e->q_head, GPT2_REQ_CANCELLED);
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* ---- public API -------------------------------------------------------------- */

gpt2_engine *gpt2_engine_create(const gpt2_model *m, const gpt2_engine_opts *opts,
                                gpt2_error *err)
{
    gpt2_engine_opts o = {0};
    if (opts)
        o = *opts;
    const gpt2_config *c = &m->cfg;
    if (o.ctx.n_threads < 0 || o.ctx.n_threads > 1024 || o.ctx.max_batch < 0 || o.max_seqs < 0 ||
        o.kv_tokens < 0 || o.kv_mem_mb < 0) {
        gpt2_seterr(err, GPT2_ERR_INVALID,
                    "engine: threads %d, tokens per step %d, max_seqs %d, kv_tokens %d, kv_mem_mb "
                    "%d: expected threads 0..1024 and the rest >= 0 (0: default)",
                    o.ctx.n_threads, o.ctx.max_batch, o.max_seqs, o.kv_tokens, o.kv_mem_mb);
        return NULL;
    }
    const gpt2_backend_ops *be = gpt2_find_backend(o.ctx.backend, err);
    if (!be)
        return NULL;
    gpt2_kv_type kv_type;
    if (gpt2_resolve_kv_type(o.ctx.kv_type, be, &kv_type, err))
        return NULL;
    gpt2_engine *e = calloc(1, sizeof *e);
    if (!e || !(e->h = hub_create())) {
        free(e);
        gpt2_seterr(err, GPT2_ERR_NOMEM, "out of memory creating the engine");
        return NULL;
    }
    e->m = m;
    e->be = be;
    e->backend_samples = gpt2_backend_samples(be);
    e->bs = GPT2_KV_BLOCK_TOKENS;
    e->step_tokens = o.ctx.max_batch ? o.ctx.max_batch : DEFAULT_STEP_TOKENS;
    e->max_seqs = o.max_seqs ? o.max_seqs : DEFAULT_MAX_SEQS;
    if (e->max_seqs > e->step_tokens)
        e->max_seqs = e->step_tokens; /* every running sequence gets its row each step */
    e->queue_timeout_ms = o.queue_timeout_ms ? o.queue_timeout_ms : DEFAULT_QUEUE_TIMEOUT_MS;
    /* kv_mem_mb buys twice the positions with an fp16 cache */
    e->kv_type = kv_type;
    e->kv_bytes_per_token = (size_t)c->n_layer * 2 * (size_t)c->n_embd *
                            (size_t)gpt2_kv_elem_bytes(kv_type);
    long long kv_tokens = o.kv_tokens;
    if (!kv_tokens)
        kv_tokens = (long long)(o.kv_mem_mb ? o.kv_mem_mb : DEFAULT_KV_MB) * 1000000 /
                    (long long)e->kv_bytes_per_token;
    if (kv_tokens < c->n_ctx)
        kv_tokens = c->n_ctx; /* one full-context request must always fit */
    int kv_blocks = (int)((kv_tokens + e->bs - 1) / e->bs);

    gpt2_backend_opts bo = {
        .n_threads = gpt2_resolve_threads(o.ctx.n_threads),
        .isa = o.ctx.isa,
        .max_batch = e->step_tokens,
        .max_logit_rows = e->max_seqs,
        .gemm = o.ctx.gemm,
        .kv_blocks = kv_blocks,
        .kv_block_tokens = e->bs,
        .device = o.ctx.device,
        .kv_type = kv_type,
    };
    e->running = calloc((size_t)e->max_seqs, sizeof *e->running);
    e->ids = calloc((size_t)e->step_tokens, sizeof *e->ids);
    e->bseqs = calloc((size_t)e->max_seqs, sizeof *e->bseqs);
    e->breqs = calloc((size_t)e->max_seqs, sizeof *e->breqs);
    e->logits = malloc(sizeof(float) * (size_t)e->max_seqs * c->n_vocab);
    e->finish_state = calloc((size_t)e->max_seqs, sizeof *e->finish_state);
    e->argmax = calloc((size_t)e->max_seqs, sizeof *e->argmax);
    e->need_logits = calloc((size_t)e->max_seqs, sizeof *e->need_logits);
    e->rsamp = calloc((size_t)e->max_seqs, sizeof *e->rsamp);
    e->sampled = calloc((size_t)e->max_seqs, sizeof *e->sampled);
    if (!e->running || !e->ids || !e->bseqs || !e->breqs || !e->logits || !e->finish_state ||
        !e->argmax || !e->need_logits || !e->rsamp || !e->sampled ||
        kv_pool_init(&e->pool, kv_blocks)) {
        gpt2_seterr(err, GPT2_ERR_NOMEM, "out of memory for the engine's batch buffers");
        gpt2_engine_free(e);
        return NULL;
    }
    e->st = be->create(m, &bo, err);
    if (!e->st) {
        gpt2_engine_free(e);
        return NULL;
    }
    if (pthread_create(&e->thread, NULL, scheduler_main, e) != 0) {
        gpt2_seterr(err, GPT2_ERR_NOMEM, "cannot start the scheduler thread");
        gpt2_engine_free(e);
        return NULL;
    }
    e->thread_started = 1;
    return e;
}

void gpt2_engine_free(gpt2_engine *e)
{
    if (!e)
        return;
    hub *h = e->h;
    if (e->thread_started) {
        pthread_mutex_lock(&h->mu);
        e->stop = 1;
        pthread_cond_signal(&h->work);
        pthread_mutex_unlock(&h->mu);
        pthread_join(e->thread, NULL);
    }
    if (e->st)
        e->be->destroy(e->st);
    kv_pool_destroy(&e->pool);
    free(e->running);
    free(e->ids);
    free(e->bseqs);
    free(e->breqs);
    free(e->logits);
    free(e->argmax);
    free(e->need_logits);
    free(e->rsamp);
    free(e->sampled);
    free(e->finish_state);
    free(e);
    pthread_mutex_lock(&h->mu);
    hub_unref_unlock(h);
}

gpt2_request *gpt2_submit(gpt2_engine *e, const gpt2_request_opts *o, gpt2_error *err)
{
    const gpt2_config *c = &e->m->cfg;
    if (!o) {
        gpt2_seterr(err, GPT2_ERR_INVALID, "submit: no request options");
        return NULL;
    }
    gpt2_request *r = calloc(1, sizeof *r);
    if (!r) {
        gpt2_seterr(err, GPT2_ERR_NOMEM, "out of memory for a request");
        return NULL;
    }
    r->gen = o->gen;
    r->on_token = o->on_token;
    r->user = o->user;
    r->logits_out = o->logits;
    if (o->prompt) {
        r->n_prompt = o->n_prompt;
        if (r->n_prompt < 1) {
            gpt2_seterr(err, GPT2_ERR_INVALID,
                        "submit: prompt of %d ids: expected at least 1 (start from <|endoftext|> "
                        "for unconditional text)", o->n_prompt);
            goto fail;
        }
        r->prompt = malloc(sizeof(int) * (size_t)r->n_prompt);
        if (r->prompt)
            memcpy(r->prompt, o->prompt, sizeof(int) * (size_t)r->n_prompt);
    } else if (o->text && *o->text) {
        size_t len = strlen(o->text);
        int n = gpt2_tokenize(e->m, o->text, len, NULL, 0, err);
        if (n < 0)
            goto fail;
        r->n_prompt = n;
        r->prompt = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
        if (r->prompt && gpt2_tokenize(e->m, o->text, len, r->prompt, n, err) < 0)
            goto fail;
    } else {
        r->n_prompt = 1;
        r->prompt = malloc(sizeof(int));
        if (r->prompt)
            r->prompt[0] = GPT2_EOS_TOKEN < c->n_vocab ? GPT2_EOS_TOKEN : c->n_vocab - 1;
    }
    if (!r->prompt) {
        gpt2_seterr(err, GPT2_ERR_NOMEM, "out of memory for a prompt of %d tokens", r->n_prompt);
        goto fail;
    }
    for (int i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= c->n_vocab) {
            gpt2_seterr(err, GPT2_ERR_TOKENIZE, "submit: prompt id %d at position %d: expected 0..%d",
                        r->prompt[i], i, c->n_vocab - 1);
            goto fail;
        }
    if (r->gen.n_new < 0 || (long)r->n_prompt + r->gen.n_new > c->n_ctx) {
        gpt2_seterr(err, r->gen.n_new < 0 ? GPT2_ERR_INVALID : GPT2_ERR_CONTEXT,
                    "submit: prompt of %d tokens + %d new tokens: expected n_new >= 0 and a total "
                    "within the context window of %d", r->n_prompt, r->gen.n_new, c->n_ctx);
        goto fail;
    }
    /* positions ever written: the prompt and every token but the last */
    int positions = r->n_prompt + (r->gen.n_new > 0 ? r->gen.n_new - 1 : 0);
    r->need_blocks = (positions + e->bs - 1) / e->bs;
    if (r->need_blocks > e->pool.n_blocks) {
        gpt2_seterr(err, GPT2_ERR_CONTEXT,
                    "submit: request needs %d KV positions; the whole pool holds %d (raise kv_tokens)",
                    positions, e->pool.n_blocks * e->bs);
        goto fail;
    }
    r->smp = gpt2_sampler_create(&r->gen.sampling, c->n_vocab, err);
    r->tokens = malloc(sizeof(int) * (size_t)(r->gen.n_new > 0 ? r->gen.n_new : 1));
    r->blocks = malloc(sizeof(int) * (size_t)(r->need_blocks > 0 ? r->need_blocks : 1));
    if (!r->smp)
        goto fail;
    if (!r->tokens || !r->blocks) {
        gpt2_seterr(err, GPT2_ERR_NOMEM, "out of memory for a request of %d tokens", r->gen.n_new);
        goto fail;
    }
    r->e = e;
    r->h = e->h;
    r->t_submit = gpt2_now_ms();
    pthread_mutex_lock(&e->h->mu);
    if (e->stop) {
        pthread_mutex_unlock(&e->h->mu);
        gpt2_seterr(err, GPT2_ERR_BUSY, "submit: the engine is stopping");
        goto fail;
    }
    r->state = GPT2_REQ_QUEUED;
    if (e->q_tail)
        e->q_tail->next = r;
    else
        e->q_head = r;
    e->q_tail = r;
    e->n_queued++;
    e->stats.submitted++;
    e->h->refs++;
    pthread_cond_signal(&e->h->work);
    pthread_mutex_unlock(&e->h->mu);
    return r;
fail:
    request_free_memory(r);
    return NULL;
}

void gpt2_request_cancel(gpt2_request *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->h->mu);
    if (!is_final(r->state)) {
        r->cancel = 1;
        pthread_cond_signal(&r->h->work);
    }
    pthread_mutex_unlock(&r->h->mu);
}

static void fill_result(const gpt2_request *r, gpt2_request_result *out)
{
    memset(out, 0, sizeof *out);
    out->state = r->state;
    out->tokens = r->tokens;
    out->n_tokens = r->n_tokens;
    out->n_prompt = r->n_prompt;
    out->stopped_at_eos = r->stopped_at_eos;
    if (r->state != GPT2_REQ_QUEUED && r->t_admit > 0)
        out->queue_ms = r->t_admit - r->t_submit;
    if (r->t_first > 0)
        out->ttft_ms = r->t_first - r->t_submit;
    if (r->t_end > 0)
        out->total_ms = r->t_end - r->t_submit;
    out->error = r->error;
}

int gpt2_request_wait(gpt2_request *r, int timeout_ms, gpt2_request_result *out)
{
    hub *h = r->h;
    pthread_mutex_lock(&h->mu);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (timeout_ms > 0) {
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L)
            ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    }
    while (!is_final(r->state) && timeout_ms != 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&h->done, &h->mu);
        else if (pthread_cond_timedwait(&h->done, &h->mu, &ts) == ETIMEDOUT)
            break;
    }
    int state = r->state;
    if (out)
        fill_result(r, out);
    pthread_mutex_unlock(&h->mu);
    return state;
}

void gpt2_request_free(gpt2_request *r)
{
    if (!r)
        return;
    hub *h = r->h;
    pthread_mutex_lock(&h->mu);
    if (!is_final(r->state)) {
        /* the scheduler frees it when it has let go of it */
        r->cancel = 1;
        r->user_freed = 1;
        pthread_cond_signal(&h->work);
        pthread_mutex_unlock(&h->mu);
        return;
    }
    request_free_memory(r);
    hub_unref_unlock(h);
}

void gpt2_engine_get_stats(gpt2_engine *e, gpt2_engine_stats *out)
{
    pthread_mutex_lock(&e->h->mu);
    *out = e->stats;
    out->running = e->n_running;
    out->queued = e->n_queued;
    out->kv_blocks = e->pool.n_blocks;
    out->kv_block_tokens = e->bs;
    out->kv_blocks_used = kv_pool_used(&e->pool);
    out->kv_blocks_peak = e->pool.peak_used;
    out->kv_blocks_reserved = e->pool.reserved;
    out->kv_bytes_per_token = e->be->kv_bytes(e->st) / ((size_t)e->pool.n_blocks * e->bs);
    out->kv_pool_bytes = e->be->kv_bytes(e->st);
    pthread_mutex_unlock(&e->h->mu);
}

const char *gpt2_engine_isa(const gpt2_engine *e) { return e->be->isa_name(e->st); }
const char *gpt2_engine_gemm(const gpt2_engine *e) { return e->be->gemm_name(e->st); }
const char *gpt2_engine_kv_type(const gpt2_engine *e) { return gpt2_kv_type_name(e->kv_type); }
int gpt2_engine_threads(const gpt2_engine *e) { return e->be->threads(e->st); }
