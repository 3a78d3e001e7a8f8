/* GPT-2 GGUF writer: layout, metadata, and the streaming fill that turns a
 * tensor source's fp32 rows into F32 or F16 tensor data. */
#include "model_writer.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "kernels.h"

/* fp32 values converted per source call on the chunked (F16) path: small
 * enough to stay in L2, large enough that call overhead vanishes. */
#define CHUNK_FLOATS (16u * 1024u)
/* Bands of at least this many rows, so a transposing source reads whole
 * cache lines of its input even when rows are long. */
#define MIN_BAND_ROWS 16u
/* Refuse absurd tensors (4 Ti elements) before any size arithmetic can wrap. */
#define MAX_TENSOR_ELEMS (UINT64_C(1) << 42)

static const char *const EOT_TOKEN = "<|endoftext|>";

const char *gpt2_dtype_name(gpt2_dtype t)
{
    switch (t) {
    case GPT2_DTYPE_F32: return "f32";
    case GPT2_DTYPE_F16: return "f16";
    case GPT2_DTYPE_Q8_0: return "q8_0";
    }
    return "unknown";
}

int gpt2_dtype_parse(const char *s)
{
    if (!s)
        return -1;
    if (!strcmp(s, "f32"))
        return GPT2_DTYPE_F32;
    if (!strcmp(s, "f16"))
        return GPT2_DTYPE_F16;
    if (!strcmp(s, "q8_0"))
        return GPT2_DTYPE_Q8_0;
    return -1;
}

/* ---- layout -------------------------------------------------------------- */

int gpt2_model_tensor_count(const gpt2_config *cfg)
{
    return 2 + GPT2_TENSORS_PER_LAYER * cfg->n_layer + 2;
}

static const char *const layer_suffix[GPT2_TENSORS_PER_LAYER] = {
    "attn_norm.weight", "attn_norm.bias",  "attn_qkv.weight", "attn_qkv.bias",
    "attn_output.weight", "attn_output.bias", "ffn_norm.weight", "ffn_norm.bias",
    "ffn_up.weight",    "ffn_up.bias",     "ffn_down.weight", "ffn_down.bias",
};

int gpt2_model_tensor_info(const gpt2_config *cfg, int i, gpt2_tensor_info *t)
{
    const int n = gpt2_model_tensor_count(cfg);
    if (i < 0 || i >= n)
        return GPT2_ERR_INVALID;
    const uint64_t C = (uint64_t)cfg->n_embd, FF = (uint64_t)cfg->n_ff;
    memset(t, 0, sizeof *t);
    t->index = i;
    t->layer = -1;
    uint64_t ne0 = C, ne1 = 1;
    if (i == 0) {
        t->kind = GPT2_T_TOKEN_EMBD;
        snprintf(t->name, sizeof t->name, "token_embd.weight");
        ne1 = (uint64_t)cfg->n_vocab;
    } else if (i == 1) {
        t->kind = GPT2_T_POS_EMBD;
        snprintf(t->name, sizeof t->name, "position_embd.weight");
        ne1 = (uint64_t)cfg->n_ctx;
    } else if (i >= n - 2) {
        t->kind = i == n - 2 ? GPT2_T_OUT_NORM_W : GPT2_T_OUT_NORM_B;
        snprintf(t->name, sizeof t->name, "output_norm.%s", i == n - 2 ? "weight" : "bias");
    } else {
        const int j = (i - 2) % GPT2_TENSORS_PER_LAYER;
        t->layer = (i - 2) / GPT2_TENSORS_PER_LAYER;
        t->kind = (gpt2_tensor_kind)(GPT2_T_ATTN_NORM_W + j);
        snprintf(t->name, sizeof t->name, "blk.%d.%s", t->layer, layer_suffix[j]);
        switch (t->kind) {
        case GPT2_T_ATTN_QKV_W: ne1 = 3 * C; break;
        case GPT2_T_ATTN_QKV_B: ne0 = 3 * C; break;
        case GPT2_T_ATTN_OUT_W: ne1 = C; break;
        case GPT2_T_FFN_UP_W: ne1 = FF; break;
        case GPT2_T_FFN_UP_B: ne0 = FF; break;
        case GPT2_T_FFN_DOWN_W: ne0 = FF; ne1 = C; break;
        default: break; /* norms and C-sized biases: [C] */
        }
    }
    const int is_matrix = t->kind == GPT2_T_TOKEN_EMBD || t->kind == GPT2_T_POS_EMBD ||
                          t->kind == GPT2_T_ATTN_QKV_W || t->kind == GPT2_T_ATTN_OUT_W ||
                          t->kind == GPT2_T_FFN_UP_W || t->kind == GPT2_T_FFN_DOWN_W;
    t->n_dims = is_matrix ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->n_rows = ne1;
    t->n_elements = ne0 * ne1;
    return 0;
}

int gpt2_config_validate(const gpt2_config *cfg, gpt2_error *err)
{
    const struct { const char *name; int v; } f[] = {
        {"n_vocab", cfg->n_vocab}, {"n_ctx", cfg->n_ctx},     {"n_embd", cfg->n_embd},
        {"n_head", cfg->n_head},   {"n_layer", cfg->n_layer}, {"n_ff", cfg->n_ff},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v <= 0)
            return gpt2_seterr(err, GPT2_ERR_INVALID, "config: %s must be positive, got %d",
                               f[i].name, f[i].v);
    if (cfg->n_embd % cfg->n_head != 0)
        return gpt2_seterr(err, GPT2_ERR_INVALID,
                           "config: n_embd (%d) must be a multiple of n_head (%d)", cfg->n_embd,
                           cfg->n_head);
    if (!(cfg->ln_eps > 0.0f) || !isfinite(cfg->ln_eps))
        return gpt2_seterr(err, GPT2_ERR_INVALID,
                           "config: ln_eps must be a positive finite number, got %g",
                           (double)cfg->ln_eps);
    /* the tensor count (2 + 12 L + 2) must fit an int */
    if (cfg->n_layer > (INT32_MAX - 4) / GPT2_TENSORS_PER_LAYER)
        return gpt2_seterr(err, GPT2_ERR_INVALID, "config: n_layer %d is too large",
                           cfg->n_layer);
    const uint64_t C = (uint64_t)cfg->n_embd;
    const uint64_t big[][2] = {{C, (uint64_t)cfg->n_vocab}, {C, (uint64_t)cfg->n_ctx},
                               {C, 3 * C}, {C, (uint64_t)cfg->n_ff}};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
        if (big[i][0] * big[i][1] > MAX_TENSOR_ELEMS)
            return gpt2_seterr(err, GPT2_ERR_INVALID,
                               "config: a %" PRIu64 " x %" PRIu64
                               " tensor is too large (limit %" PRIu64 " elements)",
                               big[i][1], big[i][0], MAX_TENSOR_ELEMS);
    return 0;
}

/* ---- streaming fill --------------------------------------------------------- */

typedef struct write_state {
    gpt2_tensor_src_fn src;
    void *src_user;
    int f16;              /* 2-D tensors as F16 */
    gpt2_tensor_info *infos;
    float *tmp;           /* chunk buffer for the converting path */
} write_state;

typedef struct fill_arg {
    write_state *ws;
    int i;
} fill_arg;

static uint64_t band_rows(const gpt2_tensor_info *t)
{
    uint64_t band = CHUNK_FLOATS / t->ne[0];
    if (band < MIN_BAND_ROWS)
        band = MIN_BAND_ROWS;
    return band < t->n_rows ? band : t->n_rows;
}

static int fill_tensor(void *buf, size_t n_bytes, void *user, gpt2_error *err)
{
    const fill_arg *a = user;
    write_state *ws = a->ws;
    const gpt2_tensor_info *t = &ws->infos[a->i];
    const int to_f16 = ws->f16 && t->n_dims == 2;
    const size_t esz = to_f16 ? 2 : 4;
    if (n_bytes != t->n_elements * esz)
        return gpt2_seterr(err, GPT2_ERR_INVALID,
                           "tensor '%s': writer asked for %zu bytes, expected %" PRIu64, t->name,
                           n_bytes, t->n_elements * esz);
    /* F32: the source writes the file's bytes directly, no copy */
    if (!to_f16 && (uintptr_t)buf % sizeof(float) == 0)
        return ws->src(ws->src_user, t, 0, t->n_rows, buf, err);

    const uint64_t K = t->ne[0], band = band_rows(t);
    unsigned char *dst = buf;
    for (uint64_t r0 = 0; r0 < t->n_rows; r0 += band) {
        const uint64_t nr = band < t->n_rows - r0 ? band : t->n_rows - r0;
        int rc = ws->src(ws->src_user, t, r0, nr, ws->tmp, err);
        if (rc < 0)
            return rc;
        const size_t n = (size_t)(nr * K);
        if (to_f16) {
            for (size_t j = 0; j < n; j++) {
                const uint16_t h = gpt2k_f32_to_f16(ws->tmp[j]);
                memcpy(dst + 2 * j, &h, 2);
            }
        } else {
            memcpy(dst, ws->tmp, n * sizeof(float));
        }
        dst += n * esz;
    }
    return 0;
}

void gpt2_model_log_progress(int64_t done, int64_t total, const char *name, void *user)
{
    (void)user;
    gpt2_log("tensor %" PRId64 "/%" PRId64 " %s", done, total, name ? name : "");
}

/* ---- metadata --------------------------------------------------------------- */

/* gguf_set_* fail only on allocation (or a bad key, which would be our bug). */
#define SET(call, key)                                                                      \
    do {                                                                                    \
        int rc_ = (call);                                                                   \
        if (rc_ < 0) {                                                                      \
            rc = gpt2_seterr(err, rc_, "%s: cannot set metadata key '%s' (%s)", path, key,   \
                             gpt2_status_name(rc_));                                        \
            goto done;                                                                      \
        }                                                                                   \
    } while (0)

int gpt2_model_write(const char *path, const gpt2_config *cfg, const gpt2_vocab *vocab,
                     gpt2_dtype dtype, const gpt2_model_meta *meta, gpt2_tensor_src_fn src,
                     void *src_user, gguf_progress_fn progress, void *progress_user,
                     gpt2_error *err)
{
    if (!path || !cfg || !vocab || !src)
        return gpt2_seterr(err, GPT2_ERR_INVALID, "gpt2_model_write: NULL argument");
    if (dtype == GPT2_DTYPE_Q8_0)
        return gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                           "%s: dtype q8_0 is not written by the converter; convert to f32 or "
                           "f16, then use gpt2c-quantize",
                           path);
    if (dtype != GPT2_DTYPE_F32 && dtype != GPT2_DTYPE_F16)
        return gpt2_seterr(err, GPT2_ERR_INVALID, "%s: unknown dtype %d", path, (int)dtype);
    int rc = gpt2_config_validate(cfg, err);
    if (rc < 0) {
        gpt2_err_prefix(err, "%s", path);
        return rc;
    }
    if (vocab->n_tokens != cfg->n_vocab)
        return gpt2_seterr(err, GPT2_ERR_INVALID,
                           "%s: vocabulary has %d tokens but the config says n_vocab = %d", path,
                           vocab->n_tokens, cfg->n_vocab);

    const int n_t = gpt2_model_tensor_count(cfg);
    gguf_writer *w = gguf_writer_create();
    write_state ws = {.src = src, .src_user = src_user, .f16 = dtype == GPT2_DTYPE_F16};
    ws.infos = calloc((size_t)n_t, sizeof *ws.infos);
    fill_arg *args = calloc((size_t)n_t, sizeof *args);
    int32_t *ttype = malloc((size_t)vocab->n_tokens * sizeof *ttype);
    rc = 0;
    if (!w || !ws.infos || !args || !ttype) {
        rc = gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }

    /* the chunk buffer serves the largest band any tensor will ask for */
    size_t tmp_floats = 0;
    for (int i = 0; i < n_t; i++) {
        gpt2_model_tensor_info(cfg, i, &ws.infos[i]);
        const size_t need = (size_t)(band_rows(&ws.infos[i]) * ws.infos[i].ne[0]);
        if (need > tmp_floats)
            tmp_floats = need;
    }
    ws.tmp = malloc(tmp_floats * sizeof(float));
    if (!ws.tmp) {
        rc = gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory (%zu floats)", path, tmp_floats);
        goto done;
    }

    int eot = -1;
    for (int i = 0; i < vocab->n_tokens; i++) {
        const int is_eot = !strcmp(vocab->tokens[i], EOT_TOKEN);
        if (is_eot && eot < 0)
            eot = i;
        ttype[i] = is_eot ? 3 : 1; /* llama.cpp: 1 normal, 3 control */
    }

    SET(gguf_set_str(w, "general.architecture", "gpt2"), "general.architecture");
    SET(gguf_set_str(w, "general.name", meta && meta->name ? meta->name : "gpt2"),
        "general.name");
    SET(gguf_set_u32(w, "general.file_type", dtype == GPT2_DTYPE_F16 ? 1u : 0u),
        "general.file_type");
    SET(gguf_set_u32(w, "gpt2.context_length", (uint32_t)cfg->n_ctx), "gpt2.context_length");
    SET(gguf_set_u32(w, "gpt2.embedding_length", (uint32_t)cfg->n_embd),
        "gpt2.embedding_length");
    SET(gguf_set_u32(w, "gpt2.feed_forward_length", (uint32_t)cfg->n_ff),
        "gpt2.feed_forward_length");
    SET(gguf_set_u32(w, "gpt2.block_count", (uint32_t)cfg->n_layer), "gpt2.block_count");
    SET(gguf_set_u32(w, "gpt2.attention.head_count", (uint32_t)cfg->n_head),
        "gpt2.attention.head_count");
    SET(gguf_set_f32(w, "gpt2.attention.layer_norm_epsilon", cfg->ln_eps),
        "gpt2.attention.layer_norm_epsilon");
    SET(gguf_set_str(w, "tokenizer.ggml.model", "gpt2"), "tokenizer.ggml.model");
    SET(gguf_set_str(w, "tokenizer.ggml.pre", "gpt-2"), "tokenizer.ggml.pre");
    SET(gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)vocab->tokens,
                         vocab->token_lens, (uint64_t)vocab->n_tokens),
        "tokenizer.ggml.tokens");
    SET(gguf_set_arr(w, "tokenizer.ggml.token_type", GGUF_VT_INT32, ttype,
                     (uint64_t)vocab->n_tokens),
        "tokenizer.ggml.token_type");
    SET(gguf_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)vocab->merges,
                         vocab->merge_lens, (uint64_t)vocab->n_merges),
        "tokenizer.ggml.merges");
    if (eot >= 0) {
        SET(gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)eot),
            "tokenizer.ggml.bos_token_id");
        SET(gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eot),
            "tokenizer.ggml.eos_token_id");
    }
    if (meta && meta->has_seed)
        SET(gguf_set_u64(w, "gpt2c.synthetic_seed", meta->seed), "gpt2c.synthetic_seed");
    if (meta && meta->source)
        SET(gguf_set_str(w, "gpt2c.source", meta->source), "gpt2c.source");

    for (int i = 0; i < n_t; i++) {
        const gpt2_tensor_info *t = &ws.infos[i];
        const uint32_t type = ws.f16 && t->n_dims == 2 ? GGML_T_F16 : GGML_T_F32;
        args[i].ws = &ws;
        args[i].i = i;
        int rc_ = gguf_add_tensor_fill(w, t->name, type, t->n_dims, t->ne, fill_tensor, &args[i]);
        if (rc_ < 0) {
            rc = gpt2_seterr(err, rc_, "%s: cannot add tensor '%s' (%s)", path, t->name,
                             gpt2_status_name(rc_));
            goto done;
        }
    }

    rc = gguf_writer_write(w, path, 1, progress, progress_user, err);

done:
    if (w)
        gguf_writer_free(w);
    free(ws.tmp);
    free(ws.infos);
    free(args);
    free(ttype);
    return rc < 0 ? rc : 0;
}
