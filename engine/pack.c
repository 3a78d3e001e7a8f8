/* Packed copies of a model's fp matmul weights for the CPU kernels that read
 * them so (gpt2k_ops.matmul_packed; see kernels.h for the layout), made once
 * per model under its lock, whichever context asks first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>

#include "errors.h"
#include "kernels.h"
#include "model.h"

static int is_fp(const gpt2_wmat *w) { return w->type == GGML_T_F32 || w->type == GGML_T_F16; }

/* Anonymous memory for one packed matrix, in 2 MiB pages where the kernel
 * allows (transparent huge pages on madvise): decode streams every weight
 * once per token, and with 4 KiB pages that is a TLB miss per 4 KiB
 * (120,000 per token at 124M f32); fewer page faults while packing, too. */
static void *alloc_packed(size_t bytes, size_t *mapped)
{
    const size_t huge = (size_t)2 << 20;
    size_t len = (bytes + huge - 1) & ~(huge - 1);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, len, MADV_HUGEPAGE); /* advisory */
#endif
    *mapped = len;
    return p;
}

typedef struct {
    void *dst;
    const void *src;
    gpt2k_wtype t;
    int N, K;
} pack_job;

static void pack_task(void *arg, int ith, int nth)
{
    const pack_job *j = arg;
    const int64_t panels = (j->N + GPT2K_PANEL - 1) / GPT2K_PANEL;
    gpt2k_pack_panels(j->dst, j->src, j->t, j->N, j->K, (int)(panels * ith / nth),
                      (int)(panels * (ith + 1) / nth));
}

/* Packs w (unless it is not fp or already packed) into a new mapping
 * recorded in m->pack_mem, then drops its source pages. */
static int pack_one(gpt2_model *m, gpt2k_pool *pool, gpt2_wmat *w, const char *what,
                    gpt2_error *err)
{
    if (!is_fp(w) || w->packed)
        return 0;
    const gpt2k_wtype t = w->type == GGML_T_F16 ? GPT2K_W_F16 : GPT2K_W_F32;
    const size_t bytes = gpt2k_packed_bytes(t, w->N, w->K);
    size_t mapped = 0;
    void *dst = alloc_packed(bytes, &mapped);
    if (!dst)
        return gpt2_seterr(err, GPT2_ERR_NOMEM,
                           "%s: out of memory packing %s (%d x %d, %.1f MB) for the CPU kernels",
                           m->path, what, w->N, w->K, bytes / 1e6);
    pack_job j = {dst, w->data, t, w->N, w->K};
    gpt2k_pool_run(pool, pack_task, &j);
    m->pack_mem[m->n_pack_mem] = dst;
    m->pack_len[m->n_pack_mem++] = mapped;
    w->packed = dst;
    gguf_release_pages(m->file, w->data, (t == GPT2K_W_F16 ? 2 : 4) * (size_t)w->N * w->K);
    return 0;
}

int gpt2_model_pack(const gpt2_model *cm, gpt2k_pool *pool, gpt2_error *err)
{
    /* The model is shared and read-only to its users; packing is the one
     * late addition to it, made once under its lock. */
    gpt2_model *m = (gpt2_model *)cm;
    int rc = 0;
    pthread_mutex_lock(&m->pack_lock);
    if (m->pack_state == 1)
        goto out;
    double t0 = gpt2_now_ms();
    const int L = m->cfg.n_layer;
    if (!m->pack_mem && (!(m->pack_mem = calloc((size_t)4 * L + 1, sizeof(void *))) ||
                         !(m->pack_len = calloc((size_t)4 * L + 1, sizeof(size_t))))) {
        rc = gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory packing weights", m->path);
        goto out;
    }
    char what[64];
    for (int l = 0; l < L && !rc; l++) {
        gpt2_layer *ly = &m->layers[l];
        gpt2_wmat *ws[4] = {&ly->qkv, &ly->proj, &ly->up, &ly->down};
        static const char *names[4] = {"attn_qkv", "attn_output", "ffn_up", "ffn_down"};
        for (int i = 0; i < 4 && !rc; i++) {
            snprintf(what, sizeof what, "blk.%d.%s", l, names[i]);
            rc = pack_one(m, pool, ws[i], what, err);
        }
    }
    if (!rc)
        rc = pack_one(m, pool, &m->lm_head, "the LM head", err);
    /* a tied token embedding is looked up from the head's packed copy */
    if (!rc && m->tok_embd.data == m->lm_head.data)
        m->tok_embd.packed = m->lm_head.packed;
    if (!rc) {
        m->pack_state = 1;
        m->load_ms += gpt2_now_ms() - t0;
    }
    /* on failure what was packed stays (freed with the model); a later call retries the rest */
out:
    pthread_mutex_unlock(&m->pack_lock);
    return rc;
}
