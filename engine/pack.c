/* Packed copies of a model's matmul weights for the CPU kernels that read
 * them so (gpt2k_ops.matmul_packed for F32 / F16, matmul_q8_0_packed for
 * Q8_0; see kernels.h for the layouts), made once per model under its lock,
 * whichever context asks first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "kernels.h"
#include "model.h"
#include "pages.h"

static int is_fp(const gpt2_wmat *w) { return w->type == GGML_T_F32 || w->type == GGML_T_F16; }

/* To be packed: fp matrices, and Q8_0 ones when q8. */
static int wanted(const gpt2_wmat *w, int q8) { return is_fp(w) || (q8 && w->type == GGML_T_Q8_0); }

/* Rows per panel, bytes of the packed copy, of one source row. */
static int panel_rows(const gpt2_wmat *w)
{
    return w->type == GGML_T_Q8_0 ? gpt2k_q8_0_panel_rows(w->q8_layout) : GPT2K_PANEL;
}

static size_t packed_size(const gpt2_wmat *w)
{
    return w->type == GGML_T_Q8_0 ? gpt2k_q8_0_packed_bytes(w->q8_layout, w->N, w->K)
                                  : gpt2k_packed_bytes(gpt2_wmat_wtype(w), w->N, w->K);
}

static size_t source_row_bytes(const gpt2_wmat *w)
{
    return w->type == GGML_T_Q8_0 ? gpt2k_q8_0_row_bytes(w->K)
                                  : (w->type == GGML_T_F16 ? 2 : 4) * (size_t)w->K;
}

typedef struct {
    void *dst;
    const gpt2_wmat *w;
    int p0, p1; /* the panels of this round */
} pack_job;

static void pack_task(void *arg, int ith, int nth)
{
    const pack_job *j = arg;
    const gpt2_wmat *w = j->w;
    const int64_t n = j->p1 - j->p0;
    const int a = j->p0 + (int)(n * ith / nth), b = j->p0 + (int)(n * (ith + 1) / nth);
    if (w->type == GGML_T_Q8_0)
        gpt2k_q8_0_pack_panels(w->q8_layout, j->dst, w->data, w->N, w->K, a, b);
    else
        gpt2k_pack_panels(j->dst, w->data, gpt2_wmat_wtype(w), w->N, w->K, a, b);
}

/* Panels per round: the source rows of a round are dropped before the next,
 * so the peak stays near one copy even for the LM head (154 MB at 124M f32). */
#define PANELS_PER_ROUND 256

/* The matrices to pack: every wanted matmul weight, the LM head once. */
static int list_matrices(gpt2_model *m, int q8, gpt2_wmat **out)
{
    int n = 0;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        gpt2_layer *ly = &m->layers[l];
        gpt2_wmat *ws[4] = {&ly->qkv, &ly->proj, &ly->up, &ly->down};
        for (int i = 0; i < 4; i++)
            if (wanted(ws[i], q8))
                out[n++] = ws[i];
    }
    if (wanted(&m->lm_head, q8))
        out[n++] = &m->lm_head;
    return n;
}

int gpt2_model_pack(const gpt2_model *cm, gpt2k_pool *pool, int q8, gpt2k_q8_layout q8_layout,
                    gpt2_error *err)
{
    /* The model is shared and read-only to its users; packing is the one
     * late addition to it, made once under its lock. */
    gpt2_model *m = (gpt2_model *)cm;
    int rc = 0;
    gpt2_wmat **mats = NULL;
    pthread_mutex_lock(&m->pack_lock);
    if (m->pack_state == 1)
        goto out;
    const double t0 = gpt2_now_ms();
    mats = malloc(sizeof *mats * ((size_t)4 * m->cfg.n_layer + 1));
    if (!mats) {
        rc = gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory packing weights", m->path);
        goto out;
    }
    const int n = list_matrices(m, q8, mats);
    for (int i = 0; i < n; i++)
        mats[i]->q8_layout = q8_layout;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += (packed_size(mats[i]) + 63) & ~(size_t)63;
    if (n > 0) {
        /* One mapping in huge pages (pages.h: decode streams every weight
         * once per token, 120,000 TLB misses per token at 124M f32 on 4 KiB
         * pages; fewer faults while packing too), not one per matrix: each
         * would round up to whole 2 MiB pages (about 45 MB more resident). */
        char *base = gpt2_map_huge(total, &m->pack_len);
        if (!base) {
            rc = gpt2_seterr(err, GPT2_ERR_NOMEM,
                             "%s: out of memory: %.1f MB for the packed weights of the CPU kernels",
                             m->path, total / 1e6);
            goto out;
        }
        m->pack_mem = base;
        m->pack_bytes = total;
        for (int i = 0; i < n; i++) {
            gpt2_wmat *w = mats[i];
            const size_t row = source_row_bytes(w);
            const int pr = panel_rows(w), panels = (w->N + pr - 1) / pr;
            for (int p0 = 0; p0 < panels; p0 += PANELS_PER_ROUND) {
                pack_job j = {base, w, p0,
                              panels - p0 < PANELS_PER_ROUND ? panels : p0 + PANELS_PER_ROUND};
                gpt2k_pool_run(pool, pack_task, &j);
                /* done with these source rows: drop them as we go */
                const size_t r0 = (size_t)p0 * pr;
                const size_t r1 = (size_t)j.p1 * pr < (size_t)w->N ? (size_t)j.p1 * pr : (size_t)w->N;
                gguf_release_pages(m->file, (const char *)w->data + r0 * row, (r1 - r0) * row);
            }
            w->packed = base;
            base += (packed_size(w) + 63) & ~(size_t)63;
        }
        /* and the pages a tensor shares with its neighbours (the file may be
         * mapped in 2 MiB pages, which drop only whole): nothing reads the
         * file after this (the vectors and positions have copies of their
         * own, model.c). Not when some matmul weights stay in the file (Q8_0
         * without its packed kernel): they would fault back in at the first
         * step, and RSS after load would not say so. */
        if (n == 4 * m->cfg.n_layer + 1)
            gguf_release_pages(m->file, NULL, (size_t)-1);
    }
    /* a tied token embedding is looked up from the head's packed copy */
    if (m->tok_embd.data == m->lm_head.data) {
        m->tok_embd.packed = m->lm_head.packed;
        m->tok_embd.q8_layout = m->lm_head.q8_layout;
    }
    m->q8_packed = q8;
    m->q8_layout = q8_layout;
    m->pack_state = 1;
    m->load_ms += gpt2_now_ms() - t0;
out:
    pthread_mutex_unlock(&m->pack_lock);
    free(mats);
    return rc;
}

size_t gpt2_model_packed_bytes(const gpt2_model *cm)
{
    gpt2_model *m = (gpt2_model *)cm; /* the lock only */
    pthread_mutex_lock(&m->pack_lock);
    const size_t b = m->pack_bytes;
    pthread_mutex_unlock(&m->pack_lock);
    return b;
}
