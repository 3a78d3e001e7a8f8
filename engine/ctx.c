/* Inference context: one sequence on a backend. Its KV pool holds exactly
 * n_ctx positions (block j is the sequence's j-th block); it keeps the
 * position and the host logits buffer and splits long inputs into max_batch
 * chunks. (Many sequences at once: scheduler.c.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend.h"
#include "ctx.h"
#include "errors.h"
#include "model.h"
#ifdef GPT2C_HAVE_CUDA
#include "gpt2_cuda.h"
#endif

#define LOGIT_ROWS 32 /* rows per call when every position's logits are wanted */

struct gpt2_ctx {
    const gpt2_model *m;
    const gpt2_backend_ops *be;
    void *st;
    int pos;
    int max_batch;
    float *logits; /* [LOGIT_ROWS][n_vocab], its own mapping (see below) */
    size_t logits_mapped;
    int *blocks;   /* identity block table */
    int device;
    gpt2_kv_type kv_type;
};

const gpt2_backend_ops *gpt2_find_backend(const char *name, gpt2_error *err)
{
    if (!name || !*name || strcmp(name, "cpu") == 0)
        return &gpt2_backend_cpu;
    if (strcmp(name, "cuda") == 0) {
#ifdef GPT2C_HAVE_CUDA
        return &gpt2_backend_cuda;
#else
        gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                    "backend 'cuda': this build of gpt2c has no CUDA backend (use --backend cpu)");
        return NULL;
#endif
    }
    else
        gpt2_seterr(err, GPT2_ERR_INVALID, "backend '%s': expected cpu or cuda", name);
    return NULL;
}

int gpt2_resolve_kv_type(const char *name, const gpt2_backend_ops *be, gpt2_kv_type *out,
                         gpt2_error *err)
{
    if (!name || !*name)
        *out = GPT2_KV_DEFAULT;
    else if (strcmp(name, "f16") == 0)
        *out = GPT2_KV_F16;
    else if (strcmp(name, "f32") == 0)
        *out = GPT2_KV_F32;
    else
        return gpt2_seterr(err, GPT2_ERR_INVALID, "kv type '%s': expected f16 or f32", name);
    if (*out == GPT2_KV_F32 && !be->kv_f32)
        return gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                           "kv type f32: the %s backend keeps its KV cache in fp16 (use f16)",
                           be->name);
    return 0;
}

int gpt2_resolve_threads(int n_threads)
{
    if (n_threads > 0)
        return n_threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

gpt2_ctx *gpt2_ctx_create(const gpt2_model *m, const gpt2_ctx_opts *opts, gpt2_error *err)
{
    gpt2_ctx_opts defaults = {0};
    if (!opts)
        opts = &defaults;
    if (opts->n_threads < 0 || opts->n_threads > 1024) {
        gpt2_seterr(err, GPT2_ERR_INVALID, "threads %d: expected 0 (all cores) .. 1024",
                    opts->n_threads);
        return NULL;
    }
    if (opts->max_batch < 0) {
        gpt2_seterr(err, GPT2_ERR_INVALID, "max_batch %d: expected >= 0", opts->max_batch);
        return NULL;
    }
    const gpt2_backend_ops *be = gpt2_find_backend(opts->backend, err);
    if (!be)
        return NULL;
    gpt2_kv_type kv_type;
    if (gpt2_resolve_kv_type(opts->kv_type, be, &kv_type, err))
        return NULL;
    gpt2_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        gpt2_seterr(err, GPT2_ERR_NOMEM, "out of memory creating a context");
        return NULL;
    }
    c->m = m;
    c->be = be;
    /* CPU: prefill in chunks of 256 runs as fast as 512 (the matmul tiles
     * block rows anyway) with half the activation memory; a GPU wants the
     * bigger launches */
    c->max_batch = opts->max_batch ? opts->max_batch : be == &gpt2_backend_cpu ? 256 : 512;
    c->device = opts->device;
    c->kv_type = kv_type;
    if (c->max_batch > m->cfg.n_ctx)
        c->max_batch = m->cfg.n_ctx;
    int threads = gpt2_resolve_threads(opts->n_threads);
    const int bs = GPT2_KV_BLOCK_TOKENS;
    const int n_blocks = (m->cfg.n_ctx + bs - 1) / bs;
    gpt2_backend_opts bo = {
        .n_threads = threads,
        .isa = opts->isa,
        .max_batch = c->max_batch,
        .max_logit_rows = LOGIT_ROWS < c->max_batch ? LOGIT_ROWS : c->max_batch,
        .gemm = opts->gemm,
        .kv_blocks = n_blocks,
        .kv_block_tokens = bs,
        .device = opts->device,
        .kv_type = kv_type,
    };
    c->logits_mapped = sizeof(float) * (size_t)LOGIT_ROWS * m->cfg.n_vocab;
    c->logits = mmap(NULL, c->logits_mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
    if (c->logits == MAP_FAILED)
        c->logits = NULL;
    c->blocks = malloc(sizeof(int) * (size_t)n_blocks);
    if (!c->logits || !c->blocks) {
        gpt2_seterr(err, GPT2_ERR_NOMEM, "out of memory for the logits buffer");
        gpt2_ctx_free(c);
        return NULL;
    }
    for (int j = 0; j < n_blocks; j++)
        c->blocks[j] = j;
    c->st = be->create(m, &bo, err);
    if (!c->st) {
        gpt2_ctx_free(c);
        return NULL;
    }
    return c;
}

void gpt2_ctx_free(gpt2_ctx *c)
{
    if (!c)
        return;
    if (c->st)
        c->be->destroy(c->st);
    if (c->logits)
        munmap(c->logits, c->logits_mapped);
    free(c->blocks);
    free(c);
}

int gpt2_ctx_threads(const gpt2_ctx *c) { return c->be->threads(c->st); }
const char *gpt2_ctx_isa(const gpt2_ctx *c) { return c->be->isa_name(c->st); }
const char *gpt2_ctx_backend(const gpt2_ctx *c) { return c->be->name; }
const char *gpt2_ctx_gemm(const gpt2_ctx *c) { return c->be->gemm_name(c->st); }
const char *gpt2_ctx_kv_type(const gpt2_ctx *c) { return gpt2_kv_type_name(c->kv_type); }
int gpt2_ctx_device_info(const gpt2_ctx *c, char *json, size_t cap)
{
#ifdef GPT2C_HAVE_CUDA
    if (c->be == &gpt2_backend_cuda)
        return gpt2_cuda_device_info(c->device, json, cap);
#endif
    if (cap > 0)
        snprintf(json, cap, "null");
    return -1;
}

size_t gpt2_ctx_kv_bytes(const gpt2_ctx *c) { return c->be->kv_bytes(c->st); }
size_t gpt2_ctx_weight_bytes(const gpt2_ctx *c) { return c->be->weight_bytes(c->st); }

double gpt2_op_total_ms(const gpt2_op_times *t)
{
    double s = 0;
    for (int k = 0; k < GPT2_OP_COUNT; k++)
        s += t->ms[k];
    return s;
}

double gpt2_ctx_decode_weights_gb_s(const gpt2_ctx *c, const gpt2_op_times *d)
{
    const double ms = d->ms[GPT2_OP_MATMUL] + d->ms[GPT2_OP_LM_HEAD];
    if (d->passes <= 0 || !(ms > 0))
        return 0;
    return (double)gpt2_ctx_weight_bytes(c) * (double)d->passes / (ms * 1e6);
}

int gpt2_ctx_profile(gpt2_ctx *c, int on, gpt2_op_profile *out, gpt2_error *err)
{
    if (!c->be->profile)
        return gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                           "op profile: the %s backend cannot time its ops (cpu can)", c->be->name);
    c->be->profile(c->st, on, out);
    return 0;
}
size_t gpt2_ctx_kv_bytes_per_token(const gpt2_ctx *c)
{
    const int bs = GPT2_KV_BLOCK_TOKENS;
    return c->be->kv_bytes(c->st) / ((size_t)(c->m->cfg.n_ctx + bs - 1) / bs * bs);
}
size_t gpt2_ctx_arena_bytes(const gpt2_ctx *c)
{
    return c->be->arena_bytes(c->st) + sizeof(float) * (size_t)LOGIT_ROWS * c->m->cfg.n_vocab;
}
int gpt2_ctx_pos(const gpt2_ctx *c) { return c->pos; }
const gpt2_model *gpt2_ctx_model(const gpt2_ctx *c) { return c->m; }
void gpt2_ctx_reset(gpt2_ctx *c) { c->pos = 0; }

static int check_room(const gpt2_ctx *c, int n, gpt2_error *err)
{
    if (n < 1)
        return gpt2_seterr(err, GPT2_ERR_INVALID, "eval: %d tokens: expected at least 1", n);
    if (n > c->m->cfg.n_ctx - c->pos)
        return gpt2_seterr(err, GPT2_ERR_CONTEXT,
                           "%d tokens at position %d exceed the context window of %d positions",
                           n, c->pos, c->m->cfg.n_ctx);
    return 0;
}

/* T tokens at the current position as a batch of one sequence. With pick,
 * the last row's next token is chosen by the backend (argmax, or a draw when
 * rs->on) into *next and its logits are not asked for. */
static int forward1(gpt2_ctx *c, const int *ids, int T, int first_logit,
                    const gpt2_row_sampling *rs, int *next, gpt2_error *err)
{
    gpt2_batch_seq q = {.n_rows = T, .pos0 = c->pos, .first_logit = first_logit,
                        .blocks = c->blocks};
    gpt2_batch b = {.ids = ids, .n_rows = T, .seqs = &q, .n_seqs = 1,
                    .n_logit_rows = T - first_logit};
    const unsigned char no_logits = 0;
    int sampled = -1;
    if (next) {
        b.argmax = next;
        b.need_logits = &no_logits;
        if (rs && rs->on) {
            b.sampling = rs;
            b.sampled = &sampled;
        }
    }
    int rc = c->be->forward(c->st, &b, c->logits, err);
    if (rc == 0 && next && rs && rs->on)
        *next = sampled;
    return rc;
}

/* n tokens in chunks of max_batch; the last row gives logits, or with next
 * the backend's pick (forward1) */
static int eval_chunks(gpt2_ctx *c, const int *ids, int n, const gpt2_row_sampling *rs,
                       int *next, gpt2_error *err)
{
    int rc = check_room(c, n, err);
    if (rc)
        return rc;
    for (int done = 0; done < n;) {
        int T = n - done < c->max_batch ? n - done : c->max_batch;
        int last = done + T == n;
        rc = forward1(c, ids + done, T, last ? T - 1 : T, rs, last ? next : NULL, err);
        if (rc)
            return rc;
        c->pos += T;
        done += T;
    }
    return 0;
}

int gpt2_eval(gpt2_ctx *c, const int *ids, int n, const float **logits, gpt2_error *err)
{
    int rc = eval_chunks(c, ids, n, NULL, NULL, err);
    if (rc == 0 && logits)
        *logits = c->logits;
    return rc;
}

int gpt2_eval_pick(gpt2_ctx *c, const int *ids, int n, const gpt2_row_sampling *rs, int *next,
                   gpt2_error *err)
{
    return eval_chunks(c, ids, n, rs, next, err);
}

int gpt2_backend_samples(const gpt2_backend_ops *be)
{
    const char *v = getenv("GPT2C_BACKEND_SAMPLING");
    if (v && (!strcmp(v, "0") || !strcmp(v, "1")))
        return v[0] == '1';
    return be->device_sampling;
}

int gpt2_ctx_device_sampling(const gpt2_ctx *c) { return gpt2_backend_samples(c->be); }

int gpt2_eval_all_logits(gpt2_ctx *c, const int *ids, int n, gpt2_logits_fn cb, void *user,
                         gpt2_error *err)
{
    int rc = check_room(c, n, err);
    if (rc)
        return rc;
    const int rows = LOGIT_ROWS < c->max_batch ? LOGIT_ROWS : c->max_batch;
    for (int done = 0; done < n;) {
        int T = n - done < rows ? n - done : rows;
        rc = forward1(c, ids + done, T, 0, NULL, NULL, err);
        if (rc)
            return rc;
        if (cb && cb(c->logits, c->pos, T, c->m->cfg.n_vocab, user))
            return gpt2_seterr(err, GPT2_ERR_IO, "eval_all_logits: the consumer stopped at position %d",
                               c->pos);
        c->pos += T;
        done += T;
    }
    /* Only here are rows past the first written: give their pages back, so
     * an accuracy pass over a text (bench phase 1) does not leave 6 MB of
     * logits resident for the generation that follows (read back as zeros
     * if ever touched again; the next call rewrites them first). */
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t keep = (sizeof(float) * (size_t)c->m->cfg.n_vocab + page - 1) / page * page;
    if (c->logits_mapped > keep)
        madvise((char *)c->logits + keep, c->logits_mapped - keep, MADV_DONTNEED);
    return 0;
}
