/* One case, timed: buffers made outside the clock, one warm-up call, then
 * repeats (as many as fit the case's time target, within min..max), each timed
 * alone; the median is the figure. Ops run through the kernels' parallel
 * drivers on the pool, as the engine calls them.
 *
 * Decode matmuls (M <= 16) read weights that in a real forward step come from
 * memory, not cache: they cycle through copies of W totalling cold_bytes, so
 * a matrix that fits the last-level cache is still measured from DRAM.
 * Decode attention does the same with its KV cache (run_attention).
 *
 * Native decode matmuls also time a plain read of the same weight bytes
 * after each call (kb_read_split: the read-bandwidth loop, on the pool's
 * threads, each a contiguous range as the driver gives it), so the kernel
 * and the fastest read of its weights see the same moment of a machine whose
 * bandwidth moves: vs_read. Calls and reads take turns along the copies, so
 * each of them finds its copy in memory (mm_copy). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "kbench.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* Buffers of 2 MiB and more (weights, KV caches) in 2 MiB pages where the
 * kernel allows, as the engine keeps its packed weights and its KV pool:
 * on 4 KiB pages the TLB misses lower what a stream reads, so the cases
 * would time another memory than the engine's. free() releases either. */
#define HUGE_PAGE ((size_t)2 << 20)
static void *alloc64(size_t bytes)
{
    const size_t n = (bytes + 63) / 64 * 64 + 64;
    if (n < HUGE_PAGE)
        return aligned_alloc(64, n);
    const size_t nh = (n + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    void *p = aligned_alloc(HUGE_PAGE, nh);
#ifdef MADV_HUGEPAGE
    if (p)
        madvise(p, nh, MADV_HUGEPAGE); /* advisory */
#endif
    return p;
}

/* Deterministic values in [-scale, scale] (xorshift): same data every run. */
static void fill(float *x, size_t n, uint32_t seed, float scale)
{
    uint32_t s = seed ? seed : 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        x[i] = ((float)(s >> 8) / 8388608.0f - 1.0f) * scale;
    }
}

/* ---- timing ---- */

typedef struct timed {
    void (*prepare)(void *ctx, int rep); /* untimed, may be NULL */
    void (*call)(void *ctx, int rep);
    void (*ref)(void *ctx, int rep); /* the reference, timed apart right after each call;
                                      * may be NULL */
    void *ctx;
} timed;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v (n >= 1) and returns its median. */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int time_case(const timed *t, const kb_run_opts *o, kb_result *r)
{
    if (t->prepare)
        t->prepare(t->ctx, 0);
    double t0 = now_ms();
    t->call(t->ctx, 0); /* warm-up: first touch, caches, the pool's threads awake */
    if (t->ref)
        t->ref(t->ctx, 0);
    /* a repeat pays for the call and its reference: with one, half as many fit */
    double warm = now_ms() - t0;
    int reps = warm > 0 ? (int)ceil(o->target_s * 1e3 / warm) : o->max_reps;
    if (reps < o->min_reps)
        reps = o->min_reps;
    if (reps > o->max_reps)
        reps = o->max_reps;
    double *ms = malloc(2 * (size_t)reps * sizeof *ms), *ref_ms = ms + reps;
    if (!ms)
        return -1;
    double spent = 0;
    int n = 0;
    for (int i = 0; i < reps; i++) {
        if (t->prepare)
            t->prepare(t->ctx, i + 1);
        double a = now_ms();
        t->call(t->ctx, i + 1);
        ms[n] = now_ms() - a;
        spent += ms[n];
        if (t->ref) {
            a = now_ms();
            t->ref(t->ctx, i + 1);
            ref_ms[n] = now_ms() - a;
            spent += ref_ms[n];
        }
        n++;
        /* the warm-up can mislead the estimate: stop at twice the target */
        if (n >= o->min_reps && spent > 2e3 * o->target_s)
            break;
    }
    r->reps = n;
    r->median_ms = median(ms, n);
    r->min_ms = ms[0];
    r->max_ms = ms[n - 1];
    if (t->ref)
        r->read_median_ms = median(ref_ms, n);
    free(ms);
    return 0;
}

/* ---- matmul: weights made once per shape ---- */

/* `copies` back-to-back copies of one matrix, each wbytes (64-byte aligned). */
typedef struct {
    char *w;
    int copies;
    size_t wbytes;
} wcopies;

static struct {
    int K, N;
    float *f32;                   /* the matrix, N x K */
    wcopies plain[KB_W_COUNT];    /* as stored in a file, by type */
    wcopies packed[KB_W_COUNT];   /* in the packed layout of each type */
    wcopies q8_cols;              /* Q8_0 in the column layout (GPT2K_Q8_COLS16) */
} g_w;

static void weights_free(void)
{
    free(g_w.f32);
    for (int t = 0; t < KB_W_COUNT; t++) {
        free(g_w.plain[t].w);
        free(g_w.packed[t].w);
    }
    free(g_w.q8_cols.w);
    memset(&g_w, 0, sizeof g_w);
}

/* Room for `copies` copies of bytes each in c (what it held is freed); the
 * caller fills the first, then spread() repeats it. NULL if out of memory. */
static char *copies_alloc(wcopies *c, size_t bytes, int copies)
{
    free(c->w);
    memset(c, 0, sizeof *c);
    const size_t wb = (bytes + 63) / 64 * 64;
    char *w = alloc64(wb * (size_t)copies);
    if (w)
        *c = (wcopies){w, copies, wb};
    return w;
}

static const char *spread(const wcopies *c, size_t *wbytes, int *ncopies)
{
    for (int i = 1; i < c->copies; i++)
        memcpy(c->w + c->wbytes * (size_t)i, c->w, c->wbytes);
    *wbytes = c->wbytes;
    *ncopies = c->copies;
    return c->w;
}

/* Copies of W in type t (at least `copies`), converted from the f32 matrix. */
static const char *weights(int K, int N, kb_wtype t, int copies, size_t *wbytes, int *ncopies)
{
    if (g_w.K != K || g_w.N != N) {
        weights_free();
        g_w.f32 = alloc64((size_t)N * K * sizeof(float));
        if (!g_w.f32)
            return NULL;
        fill(g_w.f32, (size_t)N * K, 0x9e3779b9u ^ (uint32_t)(K * 31 + N), 0.05f);
        g_w.K = K;
        g_w.N = N;
    }
    wcopies *c = &g_w.plain[t];
    if (c->copies >= copies) {
        *wbytes = c->wbytes;
        *ncopies = c->copies;
        return c->w;
    }
    const size_t nk = (size_t)N * K;
    char *w = copies_alloc(c, t == KB_W_F32   ? nk * 4
                              : t == KB_W_F16 ? nk * 2
                                              : (size_t)N * gpt2k_q8_0_row_bytes(K),
                           copies);
    if (!w)
        return NULL;
    if (t == KB_W_F32) {
        memcpy(w, g_w.f32, nk * 4);
    } else if (t == KB_W_F16) {
        uint16_t *h = (uint16_t *)w;
        for (size_t i = 0; i < nk; i++)
            h[i] = gpt2k_f32_to_f16(g_w.f32[i]);
    } else {
        gpt2k_quantize_q8_0_ref(w, g_w.f32, (int)nk); /* rows are whole blocks: K % 32 == 0 */
    }
    return spread(c, wbytes, ncopies);
}

/* Copies of W in the packed layout the engine gives kernels that have a
 * packed entry point (gpt2k_pack_weights, gpt2k_q8_0_pack_weights in the
 * table's Q8_0 layout lay). */
static const char *weights_packed(int K, int N, kb_wtype t, gpt2k_q8_layout lay, int copies,
                                  size_t *wbytes, int *ncopies)
{
    size_t plain_b;
    int plain_n;
    const char *plain = weights(K, N, t, 1, &plain_b, &plain_n);
    if (!plain)
        return NULL;
    wcopies *c = t == KB_W_Q8_0 && lay == GPT2K_Q8_COLS16 ? &g_w.q8_cols : &g_w.packed[t];
    if (c->copies >= copies) {
        *wbytes = c->wbytes;
        *ncopies = c->copies;
        return c->w;
    }
    if (t == KB_W_Q8_0) {
        char *w = copies_alloc(c, gpt2k_q8_0_packed_bytes(lay, N, K), copies);
        if (!w)
            return NULL;
        gpt2k_q8_0_pack_weights(lay, w, plain, N, K);
        return spread(c, wbytes, ncopies);
    }
    const gpt2k_wtype wt = t == KB_W_F16 ? GPT2K_W_F16 : GPT2K_W_F32;
    char *w = copies_alloc(c, gpt2k_packed_bytes(wt, N, K), copies);
    if (!w)
        return NULL;
    gpt2k_pack_weights(w, plain, wt, N, K);
    return spread(c, wbytes, ncopies);
}

typedef struct mm_ctx {
    gpt2k_pool *pool;
    const gpt2k_ops *ops;
    const kb_case *c;
    const char *w;
    size_t wstride;
    int ncopies;
    float *in, *out, *bias;
    void *qbuf;
    int packed; /* w is in the packed layout: ops->matmul_packed / matmul_q8_0_packed */
    int step;   /* 2 when reads of the weights take turns with the calls (mm_read), else 1 */
    double sink; /* what the reads summed: kept, so no read is dropped */
} mm_ctx;

/* The copy that access k of a case reads: call rep r is access r * step, its
 * read access 2r + 1. Accesses walk the copies in turn, so a copy comes back
 * only after all the others (--cold-mib less one copy) have been read: a call
 * never finds its weights in cache from the read before it, nor a read from
 * the call. (With an even number of copies the calls take the even ones and
 * the reads the odd ones; adding a copy to make it odd would cost more setup
 * time than the reads themselves.) */
static const char *mm_copy(const mm_ctx *m, int k)
{
    return m->w + m->wstride * (size_t)(k % m->ncopies);
}

static void mm_read(void *arg, int rep)
{
    mm_ctx *m = arg;
    m->sink += kb_read_split(m->pool, mm_copy(m, 2 * rep + 1), m->wstride);
}

static void mm_call(void *arg, int rep)
{
    mm_ctx *m = arg;
    const kb_shape *s = &m->c->shape;
    const void *w = mm_copy(m, rep * m->step);
    if (m->c->gemm == KB_GEMM_OPENBLAS)
        gpt2k_matmul_openblas(m->out, s->N, m->in, s->K, w, m->bias, s->M, s->K, s->N, 0);
    else if (s->wtype == KB_W_Q8_0 && m->packed)
        gpt2k_matmul_q8_0_packed(m->pool, m->ops, m->out, s->N, m->in, s->K, w, m->bias, s->M,
                                 s->K, s->N, 0, m->qbuf);
    else if (s->wtype == KB_W_Q8_0)
        gpt2k_matmul_q8_0(m->pool, m->ops, m->out, s->N, m->in, s->K, w, m->bias, s->M, s->K, s->N,
                          0, m->qbuf);
    else if (m->packed)
        gpt2k_matmul_packed(m->pool, m->ops, m->out, s->N, m->in, s->K, w,
                            s->wtype == KB_W_F16 ? GPT2K_W_F16 : GPT2K_W_F32, m->bias, s->M, s->K,
                            s->N, 0);
    else
        gpt2k_matmul(m->pool, m->ops, m->out, s->N, m->in, s->K, w,
                     s->wtype == KB_W_F16 ? GPT2K_W_F16 : GPT2K_W_F32, m->bias, s->M, s->K, s->N, 0);
}

static int run_matmul(gpt2k_pool *pool, const gpt2k_ops *ops, const kb_case *c, const kb_run_opts *o,
                      kb_result *r)
{
    const kb_shape *s = &c->shape;
    size_t one = s->wtype == KB_W_F32 ? (size_t)s->N * s->K * 4
               : s->wtype == KB_W_F16 ? (size_t)s->N * s->K * 2
                                      : (size_t)s->N * gpt2k_q8_0_row_bytes(s->K);
    int copies = 1;
    if (s->M <= 16 && o->cold_bytes > one)
        copies = (int)ceil(o->cold_bytes / (double)one);
    if (copies > 64)
        copies = 64;
    /* the same-bytes read: decode on the native path, every ISA and weight type */
    const int reads = s->M <= 16 && c->gemm == KB_GEMM_NATIVE;
    mm_ctx m = {pool, ops, c, NULL, 0, 1, NULL, NULL, NULL, NULL, 0, reads ? 2 : 1, 0};
    /* native matmuls run on the layout the engine gives them */
    m.packed = c->gemm == KB_GEMM_NATIVE &&
               (s->wtype == KB_W_Q8_0 ? ops->matmul_q8_0_packed != NULL : ops->matmul_packed != NULL);
    m.w = m.packed ? weights_packed(s->K, s->N, s->wtype, ops->q8_layout, copies, &m.wstride,
                                    &m.ncopies)
                   : weights(s->K, s->N, s->wtype, copies, &m.wstride, &m.ncopies);
    m.in = alloc64((size_t)s->M * s->K * sizeof(float));
    m.out = alloc64((size_t)s->M * s->N * sizeof(float));
    m.bias = alloc64((size_t)s->N * sizeof(float));
    m.qbuf = alloc64((size_t)s->M * gpt2k_q8_0_row_bytes(s->K));
    int rc = -1;
    if (m.w && m.in && m.out && m.bias && m.qbuf) {
        fill(m.in, (size_t)s->M * s->K, 7, 1.0f);
        fill(m.bias, (size_t)s->N, 11, 0.1f);
        memset(m.out, 0, (size_t)s->M * s->N * sizeof(float));
        timed t = {NULL, mm_call, reads ? mm_read : NULL, &m};
        rc = time_case(&t, o, r);
        r->read_bytes = reads ? (double)m.wstride : 0;
    }
    free(m.in);
    free(m.out);
    free(m.bias);
    free(m.qbuf);
    return rc;
}

/* ---- attention: a paged cache of 16-position blocks, in reverse order ---- */

#define KV_BLOCK 16

typedef struct attn_ctx {
    gpt2k_pool *pool;
    const gpt2k_ops *ops;
    const kb_shape *s;
    float *q, *out, *scratch;
    gpt2k_kv_view *views; /* one per copy of the cache, all on the same block table */
    int ncopies;
    int *seq, *pos;
    int64_t *cost;
} attn_ctx;

static void attn_call(void *arg, int rep)
{
    attn_ctx *a = arg;
    const kb_shape *s = a->s;
    gpt2k_attention(a->pool, a->ops, a->out, s->K, a->q, s->K, &a->views[rep % a->ncopies], a->seq,
                    a->pos, s->M, s->heads, s->head_dim, a->scratch, GPT2K_ATT_ROWS * s->ctx,
                    a->cost);
}

/* Decode (M <= 16) cycles through copies of the cache totalling cold_bytes, as
 * the decode matmuls do with their weights: a decode step reads a layer's
 * cache once, after every layer's weights went through the caches, so it
 * comes from memory. A prompt's row tiles do re-read their cache: prefill
 * keeps one copy. */
static int run_attention(gpt2k_pool *pool, const gpt2k_ops *ops, const kb_case *c,
                         const kb_run_opts *o, kb_result *r)
{
    const kb_shape *s = &c->shape;
    int C = s->K, nblk = (s->ctx + KV_BLOCK - 1) / KV_BLOCK, nth = gpt2k_pool_size(pool);
    size_t kv = (size_t)nblk * KV_BLOCK * C;
    const int f16 = s->wtype == KB_W_F16;
    /* one copy: K then V, each in whole 64-byte lines */
    const size_t half = (kv * (f16 ? sizeof(uint16_t) : sizeof(float)) + 63) / 64 * 64;
    const size_t one = 2 * half;
    int copies = 1;
    if (s->M <= 16 && o->cold_bytes > one)
        copies = (int)ceil(o->cold_bytes / (double)one);
    /* the matmul cases ran before (kb_plan's order): their weights would only
     * add up with these copies; weights() makes them again if asked */
    weights_free();
    attn_ctx a = {pool, ops, s, NULL, NULL, NULL, NULL, copies, NULL, NULL, NULL};
    char *cache = alloc64(one * (size_t)copies);
    /* fp16: the values made in fp32, then rounded into the first copy */
    float *k = f16 ? alloc64(kv * sizeof(float)) : NULL;
    float *v = f16 ? alloc64(kv * sizeof(float)) : NULL;
    int *blocks = malloc((size_t)nblk * sizeof(int));
    a.views = malloc((size_t)copies * sizeof *a.views);
    a.q = alloc64((size_t)s->M * C * sizeof(float));
    a.out = alloc64((size_t)s->M * C * sizeof(float));
    a.scratch = alloc64((size_t)nth * GPT2K_ATT_ROWS * s->ctx * sizeof(float));
    a.seq = calloc((size_t)s->M, sizeof(int));
    a.pos = malloc((size_t)s->M * sizeof(int));
    a.cost = malloc(((size_t)s->M + 1) * sizeof(int64_t));
    int rc = -1;
    if (cache && (!f16 || (k && v)) && blocks && a.views && a.q && a.out && a.scratch && a.seq &&
        a.pos && a.cost) {
        if (f16) {
            fill(k, kv, 3, 1.0f);
            fill(v, kv, 5, 1.0f);
            ops->to_f16((uint16_t *)cache, k, (int)kv);
            ops->to_f16((uint16_t *)(cache + half), v, (int)kv);
        } else {
            fill((float *)cache, kv, 3, 1.0f);
            fill((float *)(cache + half), kv, 5, 1.0f);
        }
        for (int i = 1; i < copies; i++)
            memcpy(cache + one * (size_t)i, cache, one);
        fill(a.q, (size_t)s->M * C, 13, 1.0f);
        for (int b = 0; b < nblk; b++)
            blocks[b] = nblk - 1 - b; /* not contiguous, as in a shared pool */
        for (int i = 0; i < s->M; i++)
            a.pos[i] = s->ctx - s->M + i;
        /* each head's positions together in a block, keys transposed, as the
         * CPU backend keeps them (the values are random either way) */
        for (int i = 0; i < copies; i++)
            a.views[i] = (gpt2k_kv_view){cache + one * (size_t)i,
                                         cache + one * (size_t)i + half,
                                         blocks,
                                         (size_t)KV_BLOCK * C,
                                         KV_BLOCK,
                                         s->head_dim,
                                         s->head_dim,
                                         (size_t)KV_BLOCK * s->head_dim,
                                         f16 ? GPT2K_W_F16 : GPT2K_W_F32,
                                         1};
        timed t = {NULL, attn_call, NULL, &a};
        rc = time_case(&t, o, r);
    }
    free(cache);
    free(k);
    free(v);
    free(blocks);
    free(a.views);
    free(a.q);
    free(a.out);
    free(a.scratch);
    free(a.seq);
    free(a.pos);
    free(a.cost);
    return rc;
}

/* ---- the elementwise ops ---- */

typedef struct ew_ctx {
    gpt2k_pool *pool;
    const gpt2k_ops *ops;
    const kb_shape *s;
    float *x, *x0, *y, *out, *g, *b;
    char *q;
    uint16_t *h; /* to_f16's output */
    int picks[KB_MAX_THREADS]; /* argmax's answers, kept so the calls are not dropped */
} ew_ctx;

/* add, quantize, to_f16 and argmax have no parallel driver: split rows as parallel.c does for
 * the Q8_0 activations (a few rows are done by the caller alone) */
#define SERIAL_ROWS 4

static void ew_rows(void *arg, int ith, int nth)
{
    ew_ctx *e = arg;
    const kb_shape *s = e->s;
    int r0 = (int)((int64_t)s->M * ith / nth), r1 = (int)((int64_t)s->M * (ith + 1) / nth);
    size_t qrow = gpt2k_q8_0_row_bytes(s->N);
    for (int r = r0; r < r1; r++) {
        size_t o = (size_t)r * s->N;
        if (s->op == KB_OP_ADD)
            e->ops->add(e->out + o, e->x + o, e->y + o, s->N);
        else if (s->op == KB_OP_TO_F16)
            e->ops->to_f16(e->h + o, e->x + o, s->N);
        else if (s->op == KB_OP_ARGMAX)
            e->picks[ith] += e->ops->argmax(e->x + o, s->N);
        else
            e->ops->quantize_q8_0(e->q + qrow * r, e->x + o, s->N);
    }
}

static void gelu_prepare(void *arg, int rep)
{
    ew_ctx *e = arg; /* in place: start from the same values every time */
    memcpy(e->x, e->x0, (size_t)e->s->M * e->s->N * sizeof(float));
}

static void ew_call(void *arg, int rep)
{
    ew_ctx *e = arg;
    const kb_shape *s = e->s;
    switch (s->op) {
    case KB_OP_LAYERNORM:
        gpt2k_layernorm_rows(e->pool, e->ops, e->out, s->N, e->x, s->N, e->g, e->b, s->M, s->N, 1e-5f);
        break;
    case KB_OP_GELU: gpt2k_gelu_rows(e->pool, e->ops, e->x, s->N, s->M, s->N); break;
    default:
        if (s->M <= SERIAL_ROWS)
            ew_rows(e, 0, 1);
        else
            gpt2k_pool_run(e->pool, ew_rows, e);
        break;
    }
}

static int run_elementwise(gpt2k_pool *pool, const gpt2k_ops *ops, const kb_case *c,
                           const kb_run_opts *o, kb_result *r)
{
    const kb_shape *s = &c->shape;
    size_t n = (size_t)s->M * s->N;
    ew_ctx e = {pool, ops, s, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, {0}};
    e.x = alloc64(n * sizeof(float));
    e.x0 = alloc64(n * sizeof(float));
    e.y = alloc64(n * sizeof(float));
    e.out = alloc64(n * sizeof(float));
    e.g = alloc64((size_t)s->N * sizeof(float));
    e.b = alloc64((size_t)s->N * sizeof(float));
    e.q = alloc64((size_t)s->M * gpt2k_q8_0_row_bytes(s->N));
    e.h = alloc64(n * sizeof(uint16_t));
    int rc = -1;
    if (e.x && e.x0 && e.y && e.out && e.g && e.b && e.q && e.h) {
        fill(e.x0, n, 17, 2.0f);
        memcpy(e.x, e.x0, n * sizeof(float));
        fill(e.y, n, 19, 2.0f);
        fill(e.g, (size_t)s->N, 23, 1.0f);
        fill(e.b, (size_t)s->N, 29, 0.1f);
        timed t = {s->op == KB_OP_GELU ? gelu_prepare : NULL, ew_call, NULL, &e};
        rc = time_case(&t, o, r);
    }
    free(e.x);
    free(e.x0);
    free(e.y);
    free(e.out);
    free(e.g);
    free(e.b);
    free(e.q);
    free(e.h);
    return rc;
}

int kb_run_case(gpt2k_pool *pool, const kb_case *c, const kb_run_opts *o, kb_result *r)
{
    memset(r, 0, sizeof *r);
    r->c = *c;
    r->threads = gpt2k_pool_size(pool);
    const gpt2k_ops *ops = c->isa >= 0 ? gpt2k_ops_for((gpt2k_isa)c->isa) : NULL;
    if (c->gemm != KB_GEMM_OPENBLAS && !ops) {
        fprintf(stderr, "gpt2c-kbench: %s: this CPU cannot run the %s path\n", c->name,
                gpt2k_isa_name((gpt2k_isa)c->isa));
        return -1;
    }
    int rc;
    switch (c->shape.op) {
    case KB_OP_MATMUL: rc = run_matmul(pool, ops, c, o, r); break;
    case KB_OP_ATTENTION: rc = run_attention(pool, ops, c, o, r); break;
    default: rc = run_elementwise(pool, ops, c, o, r); break;
    }
    if (rc != 0)
        fprintf(stderr, "gpt2c-kbench: %s: out of memory for its buffers\n", c->name);
    return rc;
}

void kb_release_buffers(void) { weights_free(); }
