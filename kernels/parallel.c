/* Parallel drivers: split one op over the pool's threads. Every thread gets
 * contiguous ranges of its own (one, or for decode matmuls a static one and
 * chunks of the tail), so outputs are disjoint and no locking is needed. */
#include "kernels.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>

/* [lo, hi) of n units for thread ith of nth, as even as integers allow. */
static void split_even(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi)
{
    *lo = n * ith / nth;
    *hi = n * (ith + 1) / nth;
}

/* ---- matmul -------------------------------------------------------------- */

/* Columns go out in blocks of this many (nblock: MATMUL_NBLOCK, or a packed
 * fp16 matrix's group of two panels, so that one thread reads a group's
 * whole line per k), so each thread's n0 stays aligned (vector tiles in the
 * slice kernels start at n0) and no two threads write the same cache line
 * of a row when ldo keeps rows 64-byte aligned. */
#define MATMUL_NBLOCK GPT2K_PANEL

/* Thread ith's contiguous range of the N output columns, in blocks of
 * nblock so each thread streams its own run of weight rows. */
static void column_range(int N, int nblock, int ith, int nth, int *n0, int *n1)
{
    int64_t nb = (N + nblock - 1) / nblock, b0, b1;
    split_even(nb, ith, nth, &b0, &b1);
    *n0 = (int)(b0 * nblock);
    *n1 = (int)(b1 * nblock) < N ? (int)(b1 * nblock) : N;
}

/* Decode (M <= GUIDED_ROWS rows): each thread first streams its own static
 * range of the first GUIDED_PCT % of the columns, then the rest goes out in
 * chunks from a shared counter, so a thread that reads memory faster takes
 * more of the tail instead of waiting at the barrier. On a 2-core Zen 4 VM
 * whose cores' bandwidth differs from moment to moment: F16 decode +8 %,
 * Q8_0 +2 % (medians of six alternating rounds), f32 within noise; all of
 * the columns from the counter (chunks of 64) was 3-8 % slower. A column's
 * result does not depend on the thread or range that computes it. */
#define GUIDED_ROWS 4
#define GUIDED_PCT 80

/* Thread ith's next range of columns [n0, n1) (multiples of nblock);
 * 0 when it has none left. next: the op's shared counter, from 0; first: 1
 * until the thread's static range is taken. */
static int next_range(atomic_int *next, int M, int N, int nblock, int ith, int nth, int *n0,
                      int *n1, int *first)
{
    if (M > GUIDED_ROWS || nth == 1) {
        if (!*first)
            return 0;
        *first = 0;
        column_range(N, nblock, ith, nth, n0, n1);
        return *n0 < *n1;
    }
    const int nb = (N + nblock - 1) / nblock;
    const int per = (int)((int64_t)nb * GUIDED_PCT / 100 / nth), tail0 = per * nth;
    if (*first) {
        *first = 0;
        if (per > 0) {
            *n0 = ith * per * nblock;
            *n1 = (ith + 1) * per * nblock;
            return 1;
        }
    }
    /* about 4 chunks per thread, at least 64 columns each */
    int chunk = (nb - tail0) / (nth * 4);
    if (chunk < 64 / nblock)
        chunk = 64 / nblock;
    const int c = atomic_fetch_add_explicit(next, chunk, memory_order_relaxed);
    const int b0 = tail0 + c;
    if (b0 >= nb)
        return 0;
    *n0 = b0 * nblock;
    *n1 = (b0 + chunk) * nblock < N ? (b0 + chunk) * nblock : N;
    return 1;
}

typedef struct {
    const gpt2k_ops *ops;
    float *out;
    const float *in;
    const void *w;
    const float *bias;
    int ldo, ldi, M, K, N, accumulate;
    gpt2k_wtype wtype;
    int packed;
    atomic_int next;
} matmul_args;

static void matmul_task(void *arg, int ith, int nth)
{
    matmul_args *a = arg;
    int n0, n1, first = 1;
    const int nblock = a->packed && a->wtype == GPT2K_W_F16 ? GPT2K_PACK_COLS_F16 : MATMUL_NBLOCK;
    while (next_range(&a->next, a->M, a->N, nblock, ith, nth, &n0, &n1, &first)) {
        if (a->packed)
            a->ops->matmul_packed(a->out, a->ldo, a->in, a->ldi, a->w, a->wtype, a->bias, a->M,
                                  a->K, n0, n1, a->accumulate);
        else if (a->wtype == GPT2K_W_F16)
            a->ops->matmul_f16(a->out, a->ldo, a->in, a->ldi, a->w, a->bias, a->M, a->K, n0, n1,
                               a->accumulate);
        else
            a->ops->matmul_f32(a->out, a->ldo, a->in, a->ldi, a->w, a->bias, a->M, a->K, n0, n1,
                               a->accumulate);
    }
}

void gpt2k_matmul(gpt2k_pool *p, const gpt2k_ops *ops, float *out, int ldo, const float *in,
                  int ldi, const void *w, gpt2k_wtype wtype, const float *bias, int M, int K,
                  int N, int accumulate)
{
    if (M <= 0 || N <= 0)
        return;
    matmul_args a = {ops, out, in, w, bias, ldo, ldi, M, K, N, accumulate, wtype, 0, 0};
    gpt2k_pool_run(p, matmul_task, &a);
}

void gpt2k_matmul_packed(gpt2k_pool *p, const gpt2k_ops *ops, float *out, int ldo,
                         const float *in, int ldi, const void *wp, gpt2k_wtype wtype,
                         const float *bias, int M, int K, int N, int accumulate)
{
    if (M <= 0 || N <= 0)
        return;
    /* ranges are multiples of GPT2K_PANEL (fp16: of a group of two), so
     * every thread starts on a panel boundary */
    matmul_args a = {ops, out, in, wp, bias, ldo, ldi, M, K, N, accumulate, wtype, 1, 0};
    gpt2k_pool_run(p, matmul_task, &a);
}

/* ---- Q8_0 matmul ------------------------------------------------------------ */

typedef struct {
    const gpt2k_ops *ops;
    float *out;
    const float *in;
    const void *w;
    const float *bias;
    char *qbuf;
    size_t qrow; /* bytes per quantized row */
    int ldo, ldi, M, K, N, accumulate;
    int packed; /* w in the packed layout */
    atomic_int next;
} matmul_q8_args;

static void quantize_rows_task(void *arg, int ith, int nth)
{
    const matmul_q8_args *a = arg;
    int64_t r0, r1;
    split_even(a->M, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++)
        a->ops->quantize_q8_0(a->qbuf + r * a->qrow, a->in + r * a->ldi, a->K);
}

static void matmul_q8_task(void *arg, int ith, int nth)
{
    matmul_q8_args *a = arg;
    int n0, n1, first = 1;
    while (next_range(&a->next, a->M, a->N, MATMUL_NBLOCK, ith, nth, &n0, &n1, &first)) {
        /* ranges are multiples of GPT2K_PANEL, a multiple of either Q8_0
         * layout's panel: every range starts on a packed panel */
        if (a->packed)
            a->ops->matmul_q8_0_packed(a->out, a->ldo, a->qbuf, a->w, a->bias, a->M, a->K, n0, n1,
                                       a->accumulate);
        else
            a->ops->matmul_q8_0(a->out, a->ldo, a->qbuf, a->w, a->bias, a->M, a->K, n0, n1,
                                a->accumulate);
    }
}
_Static_assert(GPT2K_PANEL % GPT2K_Q8_PANEL == 0 && GPT2K_PANEL % GPT2K_Q8_COLS == 0,
               "thread ranges must start on a Q8_0 panel");

/* Rows quantized below this count are done by the caller alone: a decode
 * step's one row takes well under a microsecond, less than waking the pool. */
#define Q8_SERIAL_ROWS 4

static void matmul_q8_0_run(gpt2k_pool *p, const gpt2k_ops *ops, float *out, int ldo,
                            const float *in, int ldi, const void *w, int packed,
                            const float *bias, int M, int K, int N, int accumulate, void *qbuf)
{
    if (M <= 0 || N <= 0)
        return;
    matmul_q8_args a = {ops, out, in, w, bias, qbuf, gpt2k_q8_0_row_bytes(K),
                        ldo, ldi, M, K, N, accumulate, packed, 0};
    /* All rows must be quantized before any thread reads them: the end of a
     * pool run is the barrier. */
    if (M <= Q8_SERIAL_ROWS)
        quantize_rows_task(&a, 0, 1);
    else
        gpt2k_pool_run(p, quantize_rows_task, &a);
    gpt2k_pool_run(p, matmul_q8_task, &a);
}

void gpt2k_matmul_q8_0(gpt2k_pool *p, const gpt2k_ops *ops, float *out, int ldo, const float *in,
                       int ldi, const void *w, const float *bias, int M, int K, int N,
                       int accumulate, void *qbuf)
{
    matmul_q8_0_run(p, ops, out, ldo, in, ldi, w, 0, bias, M, K, N, accumulate, qbuf);
}

void gpt2k_matmul_q8_0_packed(gpt2k_pool *p, const gpt2k_ops *ops, float *out, int ldo,
                              const float *in, int ldi, const void *wp, const float *bias, int M,
                              int K, int N, int accumulate, void *qbuf)
{
    matmul_q8_0_run(p, ops, out, ldo, in, ldi, wp, 1, bias, M, K, N, accumulate, qbuf);
}

/* ---- layernorm ------------------------------------------------------------- */

typedef struct {
    const gpt2k_ops *ops;
    float *out;
    const float *x, *g, *b;
    int ldo, ldx, rows, C;
    float eps;
} layernorm_args;

static void layernorm_task(void *arg, int ith, int nth)
{
    const layernorm_args *a = arg;
    int64_t r0, r1;
    split_even(a->rows, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++)
        a->ops->layernorm(a->out + r * a->ldo, a->x + r * a->ldx, a->g, a->b, a->C, a->eps);
}

/* Rows normalised by the caller alone: a decode step's row takes a fraction
 * of a microsecond, waking a worker for it 1-2 us on a 2-core VM (where it
 * cost 25 of them per token; F16 decode +1-2 % without, in-process A/B). */
#define LN_SERIAL_ROWS 2

void gpt2k_layernorm_rows(gpt2k_pool *p, const gpt2k_ops *ops, float *out, int ldo,
                          const float *x, int ldx, const float *g, const float *b, int rows,
                          int C, float eps)
{
    if (rows <= 0)
        return;
    layernorm_args a = {ops, out, x, g, b, ldo, ldx, rows, C, eps};
    if (rows <= LN_SERIAL_ROWS)
        layernorm_task(&a, 0, 1);
    else
        gpt2k_pool_run(p, layernorm_task, &a);
}

/* ---- gelu -------------------------------------------------------------------- */

typedef struct {
    const gpt2k_ops *ops;
    float *x;
    int ld, rows, n;
} gelu_args;

static void gelu_task(void *arg, int ith, int nth)
{
    const gelu_args *a = arg;
    /* With fewer rows than threads (decode: one row) each row is cut into
     * pieces so every thread still gets work; pieces are 16-aligned. */
    int pieces = a->rows >= nth ? 1 : (nth + a->rows - 1) / a->rows;
    int64_t width = ((int64_t)a->n + pieces - 1) / pieces;
    width = (width + 15) / 16 * 16;
    int64_t u0, u1;
    split_even((int64_t)a->rows * pieces, ith, nth, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
        int64_t r = u / pieces, c0 = u % pieces * width, c1 = c0 + width;
        if (c1 > a->n)
            c1 = a->n;
        if (c0 < c1)
            a->ops->gelu(a->x + r * a->ld + c0, (int)(c1 - c0));
    }
}

void gpt2k_gelu_rows(gpt2k_pool *p, const gpt2k_ops *ops, float *x, int ld, int rows, int n)
{
    if (rows <= 0 || n <= 0)
        return;
    gelu_args a = {ops, x, ld, rows, n};
    gpt2k_pool_run(p, gelu_task, &a);
}

/* ---- attention --------------------------------------------------------------- */

typedef struct {
    const gpt2k_ops *ops;
    float *out;
    const float *q;
    const gpt2k_kv_view *views;
    const int *seq, *pos;
    float *scratch;
    int64_t *cost; /* cost[r]: summed cost of rows 0 .. r-1 (one head) */
    int ldo, ldq, R, NH, HD, scratch_stride;
    float scale;
} attn_args;

/* Work unit u = h*R + r (head-major: a thread's range mostly shares one head's
 * K/V rows). A unit's cost is the keys it reads, pos[r] + 1, plus a fixed part
 * for q/out; this is the summed cost of units [0, u). */
static int64_t attn_cost_prefix(const attn_args *a, int64_t u)
{
    int64_t h = u / a->R, r = u % a->R;
    return h * a->cost[a->R] + a->cost[r];
}

/* First unit whose prefix cost reaches target (prefix is increasing). */
static int64_t attn_cost_split(const attn_args *a, int64_t target)
{
    int64_t lo = 0, hi = (int64_t)a->R * a->NH;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (attn_cost_prefix(a, mid) < target)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void attn_task(void *arg, int ith, int nth)
{
    const attn_args *a = arg;
    int64_t units = (int64_t)a->R * a->NH;
    int64_t total = attn_cost_prefix(a, units);
    /* Balance by cost, not count: under the causal mask late queries read more. */
    int64_t u0 = attn_cost_split(a, total * ith / nth);
    int64_t u1 = ith == nth - 1 ? units : attn_cost_split(a, total * (ith + 1) / nth);
    float *scratch = a->scratch + (int64_t)ith * a->scratch_stride;
    /* Runs of units of one head whose rows are consecutive positions of one
     * sequence (a prompt's rows) go out as tiles: they share their keys and
     * values, and each row's result is the one it gets alone. */
    for (int64_t u = u0, n; u < u1; u += n) {
        const int64_t h = u / a->R, r = u % a->R;
        const int64_t n_kv = a->pos[r] + 1;
        n = 1;
        while (n < GPT2K_ATT_ROWS && u + n < u1 && r + n < a->R && a->seq[r + n] == a->seq[r] &&
               a->pos[r + n] == a->pos[r] + n && (n + 1) * (n_kv + n) <= a->scratch_stride)
            n++;
        a->ops->attention_rows(a->out + r * a->ldo + h * a->HD, a->ldo,
                               a->q + r * a->ldq + h * a->HD, a->ldq, &a->views[a->seq[r]],
                               (int)(h * a->HD), (int)n_kv, (int)n, a->HD, a->scale, scratch);
    }
}

void gpt2k_attention(gpt2k_pool *p, const gpt2k_ops *ops, float *out, int ldo, const float *q,
                     int ldq, const gpt2k_kv_view *views, const int *seq, const int *pos, int R,
                     int NH, int HD, float *scratch, int scratch_stride, int64_t *cost)
{
    if (R <= 0 || NH <= 0)
        return;
    cost[0] = 0;
    for (int r = 0; r < R; r++)
        cost[r + 1] = cost[r] + pos[r] + 1 + HD / 8;
    attn_args a = {ops, out, q, views, seq, pos, scratch, cost, ldo, ldq, R, NH, HD,
                   scratch_stride, 1.0f / sqrtf((float)HD)};
    gpt2k_pool_run(p, attn_task, &a);
}
