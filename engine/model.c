/* Model loading: GGUF -> validated gpt2_model. Nothing of the file is used
 * before its header, table, types and shapes have been checked. */
#include "model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "errors.h"
#include "kernels.h"
#include "model_writer.h" /* GPT2_TENSORS_PER_LAYER */

void gpt2_embd_row(const gpt2_wmat *w, int r, float *out, int use_packed)
{
    if (use_packed && w->packed && w->type == GGML_T_Q8_0) {
        gpt2k_q8_0_packed_row(w->q8_layout, out, w->packed, w->K, r);
    } else if (use_packed && w->packed) {
        gpt2k_packed_row(out, w->packed, gpt2_wmat_wtype(w), w->K, r);
    } else if (w->type == GGML_T_F32) {
        memcpy(out, (const float *)w->data + (size_t)r * w->K, sizeof(float) * w->K);
    } else if (w->type == GGML_T_Q8_0) {
        const char *row = (const char *)w->data + (size_t)r * gpt2k_q8_0_row_bytes(w->K);
        gpt2k_dequantize_q8_0(out, row, w->K);
    } else { /* F16, checked at load */
        const uint16_t *h = (const uint16_t *)w->data + (size_t)r * w->K;
        for (int k = 0; k < w->K; k++)
            out[k] = gpt2k_f16_to_f32(h[k]);
    }
}

static int get_dim(const gguf_file *f, const char *key, int *out, gpt2_error *err)
{
    uint64_t v;
    int rc = gguf_get_uint(f, key, &v, err);
    if (rc)
        return rc;
    if (v < 1 || v > (1u << 24))
        return gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: key '%s': expected 1..%u, found %llu",
                           gguf_path(f), key, 1u << 24, (unsigned long long)v);
    *out = (int)v;
    return 0;
}

static void shape_str(const gguf_tensor *t, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "[");
    for (int d = 0; d < t->n_dims && n < (int)cap; d++)
        n += snprintf(buf + n, cap - n, "%s%llu", d ? ", " : "", (unsigned long long)t->ne[d]);
    if (n < (int)cap)
        snprintf(buf + n, cap - n, "]");
}

/* Finds a tensor and checks its shape: ne0 (and ne1 when a matrix) and its
 * type: vectors F32; matrices (allow_narrow) F32, F16 or Q8_0. */
static const gguf_tensor *want(const gguf_file *f, const char *name, int ne0, int ne1,
                               int allow_narrow, gpt2_error *err)
{
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) {
        gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: tensor '%s' is missing", gguf_path(f), name);
        return NULL;
    }
    int n_dims = ne1 > 0 ? 2 : 1;
    if (t->n_dims != n_dims || t->ne[0] != (uint64_t)ne0 || (ne1 > 0 && t->ne[1] != (uint64_t)ne1)) {
        char found[96];
        shape_str(t, found, sizeof found);
        if (ne1 > 0)
            gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: tensor '%s': expected shape [%d, %d] from the config, found %s",
                        gguf_path(f), name, ne0, ne1, found);
        else
            gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: tensor '%s': expected shape [%d] from the config, found %s",
                        gguf_path(f), name, ne0, found);
        return NULL;
    }
    if (t->type == GGML_T_F32 ||
        (allow_narrow && (t->type == GGML_T_F16 || t->type == GGML_T_Q8_0)))
        return t;
    gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: tensor '%s': expected type %s, found %s",
                gguf_path(f), name, allow_narrow ? "F32, F16 or Q8_0" : "F32",
                ggml_type_name(t->type));
    return NULL;
}

static int want_vec(const gguf_file *f, const char *name, int n, const float **out, gpt2_error *err)
{
    const gguf_tensor *t = want(f, name, n, 0, 0, err);
    if (!t)
        return err ? err->code : GPT2_ERR_FORMAT;
    *out = (const float *)t->data;
    return 0;
}

static int want_mat(const gguf_file *f, const char *name, int K, int N, gpt2_wmat *out,
                    gpt2_error *err)
{
    const gguf_tensor *t = want(f, name, K, N, 1, err);
    if (!t)
        return err ? err->code : GPT2_ERR_FORMAT;
    out->data = t->data;
    out->type = t->type;
    out->K = K;
    out->N = N;
    return 0;
}

static int load_config(gpt2_model *m, gpt2_error *err)
{
    const gguf_file *f = m->file;
    const char *arch;
    size_t arch_len;
    int rc = gguf_get_str(f, "general.architecture", &arch, &arch_len, err);
    if (rc)
        return rc;
    if (arch_len != 4 || memcmp(arch, "gpt2", 4) != 0)
        return gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                           "%s: key 'general.architecture': expected \"gpt2\", found \"%.*s\"",
                           gguf_path(f), (int)(arch_len > 64 ? 64 : arch_len), arch);
    gpt2_config *c = &m->cfg;
    if ((rc = get_dim(f, "gpt2.block_count", &c->n_layer, err)) ||
        (rc = get_dim(f, "gpt2.embedding_length", &c->n_embd, err)) ||
        (rc = get_dim(f, "gpt2.attention.head_count", &c->n_head, err)) ||
        (rc = get_dim(f, "gpt2.context_length", &c->n_ctx, err)))
        return rc;
    /* block_count is only a claim: each block needs its tensors in the file,
     * so a count the tensor table cannot hold is refused before it sizes
     * anything */
    if ((int64_t)c->n_layer > gguf_n_tensors(f) / GPT2_TENSORS_PER_LAYER)
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: key 'gpt2.block_count': %d blocks need %lld tensors, but the "
                           "file has %lld",
                           gguf_path(f), c->n_layer, (long long)GPT2_TENSORS_PER_LAYER * c->n_layer,
                           (long long)gguf_n_tensors(f));
    if (gguf_find_key(f, "gpt2.feed_forward_length") >= 0) {
        if ((rc = get_dim(f, "gpt2.feed_forward_length", &c->n_ff, err)))
            return rc;
    } else {
        c->n_ff = 4 * c->n_embd;
    }
    c->ln_eps = 1e-5f;
    if (gguf_find_key(f, "gpt2.attention.layer_norm_epsilon") >= 0) {
        if ((rc = gguf_get_f32(f, "gpt2.attention.layer_norm_epsilon", &c->ln_eps, err)))
            return rc;
        if (!(c->ln_eps > 0.0f && c->ln_eps < 1.0f))
            return gpt2_seterr(err, GPT2_ERR_FORMAT,
                               "%s: key 'gpt2.attention.layer_norm_epsilon': expected a value in (0, 1), found %g",
                               gguf_path(f), (double)c->ln_eps);
    } else {
        gpt2_log("%s: no gpt2.attention.layer_norm_epsilon; using 1e-5", gguf_path(f));
    }
    if (c->n_embd % c->n_head != 0)
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: embedding_length %d is not a multiple of head_count %d",
                           gguf_path(f), c->n_embd, c->n_head);
    /* n_vocab comes from the embedding; the tokenizer must agree */
    const gguf_tensor *te = gguf_find_tensor(f, "token_embd.weight");
    if (!te)
        return gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: tensor 'token_embd.weight' is missing",
                           gguf_path(f));
    if (te->n_dims != 2 || te->ne[1] > (1u << 24))
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: tensor 'token_embd.weight': expected 2 dims [n_embd, n_vocab]",
                           gguf_path(f));
    c->n_vocab = (int)te->ne[1];
    return 0;
}

static int load_weights(gpt2_model *m, gpt2_error *err)
{
    const gguf_file *f = m->file;
    const gpt2_config *c = &m->cfg;
    const int C = c->n_embd, FF = c->n_ff;
    int rc;
    if ((rc = want_mat(f, "token_embd.weight", C, c->n_vocab, &m->tok_embd, err)) ||
        (rc = want_mat(f, "position_embd.weight", C, c->n_ctx, &m->pos_embd, err)) ||
        (rc = want_vec(f, "output_norm.weight", C, &m->lnf_g, err)) ||
        (rc = want_vec(f, "output_norm.bias", C, &m->lnf_b, err)))
        return rc;
    m->lm_head = m->tok_embd;
    if (gguf_find_tensor(f, "output.weight") &&
        (rc = want_mat(f, "output.weight", C, c->n_vocab, &m->lm_head, err)))
        return rc;

    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers)
        return gpt2_seterr(err, GPT2_ERR_NOMEM, "out of memory for %d layers", c->n_layer);
    for (int i = 0; i < c->n_layer; i++) {
        gpt2_layer *L = &m->layers[i];
        char n[96];
#define NAME(s) (snprintf(n, sizeof n, "blk.%d.%s", i, s), n)
        if ((rc = want_vec(f, NAME("attn_norm.weight"), C, &L->ln1_g, err)) ||
            (rc = want_vec(f, NAME("attn_norm.bias"), C, &L->ln1_b, err)) ||
            (rc = want_mat(f, NAME("attn_qkv.weight"), C, 3 * C, &L->qkv, err)) ||
            (rc = want_vec(f, NAME("attn_qkv.bias"), 3 * C, &L->qkv_b, err)) ||
            (rc = want_mat(f, NAME("attn_output.weight"), C, C, &L->proj, err)) ||
            (rc = want_vec(f, NAME("attn_output.bias"), C, &L->proj_b, err)) ||
            (rc = want_vec(f, NAME("ffn_norm.weight"), C, &L->ln2_g, err)) ||
            (rc = want_vec(f, NAME("ffn_norm.bias"), C, &L->ln2_b, err)) ||
            (rc = want_mat(f, NAME("ffn_up.weight"), C, FF, &L->up, err)) ||
            (rc = want_vec(f, NAME("ffn_up.bias"), FF, &L->up_b, err)) ||
            (rc = want_mat(f, NAME("ffn_down.weight"), FF, C, &L->down, err)) ||
            (rc = want_vec(f, NAME("ffn_down.bias"), C, &L->down_b, err)))
            return rc;
#undef NAME
    }
    return 0;
}

static const float *dup_vec(float **at, const float *src, size_t n)
{
    float *d = *at;
    memcpy(d, src, n * sizeof *d);
    *at += n;
    return d;
}

/* The LayerNorm vectors, biases and position embeddings are read at every
 * step. Read in place, they fault back in the file pages that packing
 * dropped, and some kernels map the page cache's large folios whole: each
 * vector then brought back 2 MiB or more of the matmul weights around it
 * (Q8_0 124M, a full-context request: 17-21 MiB of the file resident). A
 * copy of their own (about 3.5 MB at 124M) keeps the file out of the
 * resident set once the weights are packed. */
static int copy_small_tensors(gpt2_model *m, gpt2_error *err)
{
    const gpt2_config *c = &m->cfg;
    const size_t C = (size_t)c->n_embd, FF = (size_t)c->n_ff;
    const gguf_tensor *pt = gguf_find_tensor(m->file, "position_embd.weight");
    const size_t nvec = 2 * C + (size_t)c->n_layer * (9 * C + FF);
    const size_t bytes = (nvec * sizeof(float) + pt->n_bytes + 63) & ~(size_t)63;
    float *at = aligned_alloc(64, bytes);
    if (!at)
        return gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory: %zu bytes for the vectors",
                           m->path, bytes);
    m->small = at;
    m->lnf_g = dup_vec(&at, m->lnf_g, C);
    m->lnf_b = dup_vec(&at, m->lnf_b, C);
    for (int i = 0; i < c->n_layer; i++) {
        gpt2_layer *L = &m->layers[i];
        L->ln1_g = dup_vec(&at, L->ln1_g, C);
        L->ln1_b = dup_vec(&at, L->ln1_b, C);
        L->qkv_b = dup_vec(&at, L->qkv_b, 3 * C);
        L->proj_b = dup_vec(&at, L->proj_b, C);
        L->ln2_g = dup_vec(&at, L->ln2_g, C);
        L->ln2_b = dup_vec(&at, L->ln2_b, C);
        L->up_b = dup_vec(&at, L->up_b, FF);
        L->down_b = dup_vec(&at, L->down_b, C);
    }
    memcpy(at, m->pos_embd.data, pt->n_bytes);
    m->pos_embd.data = at;
    return 0;
}

/* Verifies the per-tensor CRC-32 array written by our writer, if present. */
static int check_crcs(gpt2_model *m, int skip, gpt2_error *err)
{
    const gguf_file *f = m->file;
    int64_t nt = gguf_n_tensors(f);
    if (gguf_find_key(f, GGUF_KEY_CRC32) < 0) {
        gpt2_log("%s: no %s key (file from another writer): tensor data not checksummed",
                 gguf_path(f), GGUF_KEY_CRC32);
        return 0;
    }
    uint32_t et;
    uint64_t n;
    int rc = gguf_get_arr(f, GGUF_KEY_CRC32, &et, &n, err);
    if (rc)
        return rc;
    if (et != GGUF_VT_UINT32 || n != (uint64_t)nt)
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: key '%s': expected an array of %lld UINT32, found %llu x %s",
                           gguf_path(f), GGUF_KEY_CRC32, (long long)nt, (unsigned long long)n,
                           gguf_vtype_name(et));
    if (skip)
        return 0;
    const unsigned char *crcs = gguf_arr_data(f, GGUF_KEY_CRC32);
    for (int64_t i = 0; i < nt; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        uint32_t want_crc;
        memcpy(&want_crc, crcs + 4 * i, 4);
        uint32_t got = gguf_crc32(t->data, t->n_bytes);
        if (got != want_crc)
            return gpt2_seterr(err, GPT2_ERR_CRC,
                               "%s: tensor '%s': CRC-32 mismatch (stored 0x%08x, data 0x%08x): "
                               "the file is corrupt (use --no-crc to load anyway)",
                               gguf_path(f), t->name, want_crc, got);
        m->crc_checked++;
    }
    return 0;
}

static int load_tokenizer(gpt2_model *m, gpt2_error *err)
{
    const gguf_file *f = m->file;
    const char *model_name;
    size_t len;
    int rc = gguf_get_str(f, "tokenizer.ggml.model", &model_name, &len, err);
    if (rc)
        return rc;
    if (len != 4 || memcmp(model_name, "gpt2", 4) != 0)
        return gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                           "%s: key 'tokenizer.ggml.model': expected \"gpt2\", found \"%.*s\"",
                           gguf_path(f), (int)(len > 64 ? 64 : len), model_name);
    uint32_t et;
    uint64_t n_tok, n_merge;
    if ((rc = gguf_get_arr(f, "tokenizer.ggml.tokens", &et, &n_tok, err)))
        return rc;
    if (et != GGUF_VT_STRING)
        return gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: key 'tokenizer.ggml.tokens': expected an array of STRING, found %s",
                           gguf_path(f), gguf_vtype_name(et));
    if (n_tok != (uint64_t)m->cfg.n_vocab)
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: key 'tokenizer.ggml.tokens': expected %d tokens (rows of token_embd.weight), found %llu",
                           gguf_path(f), m->cfg.n_vocab, (unsigned long long)n_tok);
    if ((rc = gguf_get_arr(f, "tokenizer.ggml.merges", &et, &n_merge, err)))
        return rc;
    if (et != GGUF_VT_STRING)
        return gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: key 'tokenizer.ggml.merges': expected an array of STRING, found %s",
                           gguf_path(f), gguf_vtype_name(et));
    if (n_merge > (uint64_t)n_tok * 4)
        return gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: key 'tokenizer.ggml.merges': %llu merges for %llu tokens",
                           gguf_path(f), (unsigned long long)n_merge, (unsigned long long)n_tok);

    const char **strs = malloc(sizeof(char *) * (n_tok + n_merge + 1));
    size_t *lens = malloc(sizeof(size_t) * (n_tok + n_merge + 1));
    if (!strs || !lens) {
        free(strs);
        free(lens);
        return gpt2_seterr(err, GPT2_ERR_NOMEM, "out of memory for the vocabulary");
    }
    for (uint64_t i = 0; i < n_tok; i++)
        strs[i] = gguf_arr_str(f, "tokenizer.ggml.tokens", i, &lens[i]);
    for (uint64_t i = 0; i < n_merge; i++)
        strs[n_tok + i] = gguf_arr_str(f, "tokenizer.ggml.merges", i, &lens[n_tok + i]);
    m->tok = gpt2_tokenizer_create(strs, lens, (int)n_tok, strs + n_tok, lens + n_tok,
                                   (int)n_merge, gguf_path(f), err);
    free(strs);
    free(lens);
    return m->tok ? 0 : (err ? err->code : GPT2_ERR_FORMAT);
}

/* The weights' type as one word: that of every matrix multiplied in the
 * forward pass (blocks and LM head; the small position table does not count). */
static void set_dtype(gpt2_model *m)
{
    uint32_t seen = 1u << m->lm_head.type; /* bit per type */
    for (int i = 0; i < m->cfg.n_layer; i++) {
        const gpt2_layer *L = &m->layers[i];
        seen |= 1u << L->qkv.type | 1u << L->proj.type | 1u << L->up.type | 1u << L->down.type;
    }
    const char *name = "mixed";
    if (seen == 1u << GGML_T_F32)
        name = "f32";
    else if (seen == 1u << GGML_T_F16)
        name = "f16";
    else if (seen == 1u << GGML_T_Q8_0)
        name = "q8_0";
    snprintf(m->dtype, sizeof m->dtype, "%s", name);
}

gpt2_model *gpt2_model_load(const char *path, const gpt2_load_opts *opts, gpt2_error *err)
{
    if (!path) {
        gpt2_seterr(err, GPT2_ERR_INVALID, "gpt2_model_load: no path given");
        return NULL;
    }
    double t0 = gpt2_now_ms();
    gguf_file *f = gguf_open(path, err);
    if (!f)
        return NULL;
    gpt2_model *m = gpt2_model_from_gguf(f, opts, err);
    if (m)
        m->load_ms = gpt2_now_ms() - t0;
    return m;
}

gpt2_model *gpt2_model_from_gguf(gguf_file *file, const gpt2_load_opts *opts, gpt2_error *err)
{
    gpt2_load_opts defaults = {0};
    if (!opts)
        opts = &defaults;
    double t0 = gpt2_now_ms();
    gpt2_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(gguf_path(file)))) {
        gpt2_seterr(err, GPT2_ERR_NOMEM, "out of memory loading %s", gguf_path(file));
        free(m);
        gguf_close(file);
        return NULL;
    }
    m->file = file;
    pthread_mutex_init(&m->pack_lock, NULL);
    int rc = load_config(m, err);
    if (!rc)
        rc = load_weights(m, err);
    if (!rc)
        rc = check_crcs(m, opts->skip_crc, err);
    if (!rc)
        rc = copy_small_tensors(m, err);
    if (!rc)
        rc = load_tokenizer(m, err);
    if (rc) {
        gpt2_model_free(m);
        return NULL;
    }
    for (int64_t i = 0; i < gguf_n_tensors(m->file); i++)
        m->weight_bytes += gguf_tensor_at(m->file, i)->n_bytes;
    set_dtype(m);
    m->load_ms = gpt2_now_ms() - t0;
    return m;
}

void gpt2_model_free(gpt2_model *m)
{
    if (!m)
        return;
    gpt2_tokenizer_free(m->tok);
    free(m->layers);
    free(m->small);
    if (m->pack_mem)
        munmap(m->pack_mem, m->pack_len);
    pthread_mutex_destroy(&m->pack_lock);
    if (m->file)
        gguf_close(m->file);
    free(m->path);
    free(m);
}

const gpt2_config *gpt2_model_config(const gpt2_model *m) { return &m->cfg; }
const char *gpt2_model_dtype(const gpt2_model *m) { return m->dtype; }
size_t gpt2_model_weight_bytes(const gpt2_model *m) { return m->weight_bytes; }
double gpt2_model_load_ms(const gpt2_model *m) { return m->load_ms; }
const char *gpt2_model_path(const gpt2_model *m) { return m->path; }
int gpt2_model_crc_checked(const gpt2_model *m) { return m->crc_checked; }

const char *gpt2_model_meta_str(const gpt2_model *m, const char *key, size_t *len)
{
    const char *s;
    size_t n;
    if (gguf_find_key(m->file, key) < 0 || gguf_get_str(m->file, key, &s, &n, NULL) != 0)
        return NULL;
    if (len)
        *len = n;
    return s;
}

int gpt2_model_meta_u64(const gpt2_model *m, const char *key, uint64_t *out)
{
    if (gguf_find_key(m->file, key) < 0)
        return GPT2_ERR_INVALID;
    return gguf_get_uint(m->file, key, out, NULL);
}

int gpt2_file_crc32(const char *path, uint32_t *crc, gpt2_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return gpt2_seterr(err, GPT2_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    static const size_t CHUNK = 1 << 20;
    unsigned char *buf = malloc(CHUNK);
    if (!buf) {
        fclose(f);
        return gpt2_seterr(err, GPT2_ERR_NOMEM, "out of memory");
    }
    uint32_t c = 0;
    size_t n;
    while ((n = fread(buf, 1, CHUNK, f)) > 0)
        c = gguf_crc32_update(c, buf, n);
    int bad = ferror(f);
    free(buf);
    fclose(f);
    if (bad)
        return gpt2_seterr(err, GPT2_ERR_IO, "%s: read error", path);
    *crc = c;
    return 0;
}

int gpt2_tokenize(const gpt2_model *m, const char *text, size_t len, int *ids, int max_ids,
                  gpt2_error *err)
{
    return gpt2_tokenizer_encode(m->tok, text, len, ids, max_ids, err);
}

const char *gpt2_token_bytes(const gpt2_model *m, int id, size_t *len)
{
    return gpt2_tokenizer_token_bytes(m->tok, id, len);
}

long gpt2_detokenize(const gpt2_model *m, const int *ids, int n, char *buf, size_t cap,
                     gpt2_error *err)
{
    return gpt2_tokenizer_decode(m->tok, ids, n, buf, cap, err);
}
