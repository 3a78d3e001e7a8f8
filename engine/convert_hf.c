/* Hugging Face GPT-2 checkpoint -> GGUF.
 *
 * Everything is checked before the output is opened (config, vocabulary,
 * every tensor's presence, dtype and shape, no unknown tensors, tied LM
 * head), so a bad checkpoint never leaves a file behind. Tensors are then
 * streamed from the mmapped safetensors file into the GGUF writer.
 *
 * HF stores the attention and MLP projections as Conv1D weights [in, out]
 * (x @ W); GGUF / our kernels want W[out][in] (one output's weights
 * contiguous), so those four are transposed, in square tiles so that both
 * the reads and the writes stay within a few cache lines. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "errors.h"
#include "hf_config.h"
#include "model_writer.h"
#include "pages.h"
#include "safetensors.h"
#include "vocab.h"

#define CONFIG_MAX_BYTES (16u << 20)
#define TILE 64 /* transpose tile: 64 x 64 floats = 16 KiB */

/* dir + "/" + name, in a caller buffer; -1 if it does not fit */
static int join(char *buf, size_t cap, const char *dir, const char *name)
{
    const int n = snprintf(buf, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Whole file, NUL-terminated; *len without the NUL. */
static char *read_small_file(const char *path, size_t cap, size_t *len, gpt2_error *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        gpt2_seterr(err, GPT2_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, size = 0;
    for (;;) {
        if (n == size) {
            if (size >= cap) {
                gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: larger than %zu bytes", path, cap);
                goto fail;
            }
            size = size ? 2 * size : 4096;
            char *nb = realloc(buf, size + 1);
            if (!nb) {
                gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory", path);
                goto fail;
            }
            buf = nb;
        }
        const size_t got = fread(buf + n, 1, size - n, fp);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(fp)) {
        gpt2_seterr(err, GPT2_ERR_IO, "%s: read error", path);
        goto fail;
    }
    fclose(fp);
    buf[n] = 0;
    *len = n;
    return buf;
fail:
    fclose(fp);
    free(buf);
    return NULL;
}

/* ---- config.json ------------------------------------------------------------ */

static int parse_config(const char *path, gpt2_config *cfg, gpt2_error *err)
{
    size_t len;
    char *text = read_small_file(path, CONFIG_MAX_BYTES, &len, err);
    if (!text)
        return err ? err->code : GPT2_ERR_IO;
    int rc = gpt2_hf_config_parse(text, len, path, cfg, err);
    free(text);
    return rc;
}

/* ---- tensor mapping ------------------------------------------------------- */

static int is_conv1d(gpt2_tensor_kind k)
{
    return k == GPT2_T_ATTN_QKV_W || k == GPT2_T_ATTN_OUT_W || k == GPT2_T_FFN_UP_W ||
           k == GPT2_T_FFN_DOWN_W;
}

/* The HF name (without prefix) of a GGUF tensor. */
static void hf_name(const gpt2_tensor_info *t, const char *prefix, char *buf, size_t cap)
{
    static const char *const layer_part[GPT2_TENSORS_PER_LAYER] = {
        "ln_1.weight",      "ln_1.bias",      "attn.c_attn.weight", "attn.c_attn.bias",
        "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight",      "ln_2.bias",
        "mlp.c_fc.weight",  "mlp.c_fc.bias",  "mlp.c_proj.weight", "mlp.c_proj.bias",
    };
    switch (t->kind) {
    case GPT2_T_TOKEN_EMBD: snprintf(buf, cap, "%swte.weight", prefix); return;
    case GPT2_T_POS_EMBD: snprintf(buf, cap, "%swpe.weight", prefix); return;
    case GPT2_T_OUT_NORM_W: snprintf(buf, cap, "%sln_f.weight", prefix); return;
    case GPT2_T_OUT_NORM_B: snprintf(buf, cap, "%sln_f.bias", prefix); return;
    default:
        snprintf(buf, cap, "%sh.%d.%s", prefix, t->layer,
                 layer_part[t->kind - GPT2_T_ATTN_NORM_W]);
    }
}

/* HF shape of a GGUF tensor (outermost first). */
static int hf_shape(const gpt2_tensor_info *t, uint64_t *shape)
{
    if (t->n_dims == 1) {
        shape[0] = t->ne[0];
        return 1;
    }
    if (is_conv1d(t->kind)) { /* Conv1D [in, out] = [K, N] */
        shape[0] = t->ne[0];
        shape[1] = t->ne[1];
    } else { /* embeddings: [rows, C], the GGUF layout already */
        shape[0] = t->ne[1];
        shape[1] = t->ne[0];
    }
    return 2;
}

/* Causal-mask buffers some checkpoints carry: h.<n>.attn.bias / .masked_bias. */
static int is_mask_buffer(const char *name, const char *prefix)
{
    const size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl) != 0 || strncmp(name + pl, "h.", 2) != 0)
        return 0;
    const char *p = name + pl + 2;
    if (*p < '0' || *p > '9')
        return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    return !strcmp(p, ".attn.bias") || !strcmp(p, ".attn.masked_bias");
}

typedef struct hf_src {
    const safetensors_tensor **map; /* per GGUF tensor index */
} hf_src;

/* Drops the pages of a tensor already converted from the mapping of the
 * checkpoint. They are clean file pages the kernel could reclaim anyway, but
 * until then they count in the resident set: without this a conversion's RSS
 * climbs to the whole checkpoint (6.2 GB for 1558M in f32). A later read
 * would fault them in again from the file. Only whole pages inside the
 * tensor are dropped; best effort. */
static void drop_source_pages(const safetensors_tensor *st)
{
    gpt2_drop_file_pages(st->data, st->n_bytes);
}

static int hf_tensor_rows(const hf_src *s, const gpt2_tensor_info *t, uint64_t row0,
                          uint64_t n_rows, float *out, gpt2_error *err);

static int hf_tensor(void *user, const gpt2_tensor_info *t, uint64_t row0, uint64_t n_rows,
                     float *out, gpt2_error *err)
{
    const hf_src *s = user;
    int rc = hf_tensor_rows(s, t, row0, n_rows, out, err);
    if (rc == 0 && row0 + n_rows == t->n_rows) /* the last band: done with it */
        drop_source_pages(s->map[t->index]);
    return rc;
}

static int hf_tensor_rows(const hf_src *s, const gpt2_tensor_info *t, uint64_t row0,
                          uint64_t n_rows, float *out, gpt2_error *err)
{
    const safetensors_tensor *st = s->map[t->index];
    const uint64_t K = t->ne[0];
    if (!is_conv1d(t->kind))
        return safetensors_to_f32(st, row0 * K, n_rows * K, out, err);

    /* out[r][k] = W[row0 + r][k] = conv[k][row0 + r], conv is [K][N] */
    const uint64_t N = t->ne[1];
    float tile[TILE * TILE];
    for (uint64_t k0 = 0; k0 < K; k0 += TILE) {
        const uint64_t kb = K - k0 < TILE ? K - k0 : TILE;
        for (uint64_t r0 = 0; r0 < n_rows; r0 += TILE) {
            const uint64_t rb = n_rows - r0 < TILE ? n_rows - r0 : TILE;
            for (uint64_t kk = 0; kk < kb; kk++) {
                int rc = safetensors_to_f32(st, (k0 + kk) * N + row0 + r0, rb, tile + kk * TILE,
                                            err);
                if (rc < 0)
                    return rc;
            }
            for (uint64_t rr = 0; rr < rb; rr++) {
                float *o = out + (r0 + rr) * K + k0;
                for (uint64_t kk = 0; kk < kb; kk++)
                    o[kk] = tile[kk * TILE + rr];
            }
        }
    }
    return 0;
}

/* The checkpoint tensor for GGUF tensor i, its shape and dtype checked;
 * NULL with err naming the file and tensor otherwise. */
static const safetensors_tensor *hf_find_checked(const safetensors_file *sf,
                                                 const gpt2_config *cfg, int i,
                                                 const char *prefix, gpt2_error *err)
{
    const char *p_st = safetensors_path(sf);
    gpt2_tensor_info t;
    gpt2_model_tensor_info(cfg, i, &t);
    char name[160];
    hf_name(&t, prefix, name, sizeof name);
    const safetensors_tensor *s = safetensors_find(sf, name);
    if (!s) {
        gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: missing tensor '%s' (for %s)", p_st, name, t.name);
        return NULL;
    }
    uint64_t want[2];
    const int nd = hf_shape(&t, want);
    if (s->n_dims != nd || s->shape[0] != want[0] || (nd == 2 && s->shape[1] != want[1])) {
        char found[128], expect[64];
        safetensors_shape_str(s, found, sizeof found);
        if (nd == 2)
            snprintf(expect, sizeof expect, "[%" PRIu64 ", %" PRIu64 "]", want[0], want[1]);
        else
            snprintf(expect, sizeof expect, "[%" PRIu64 "]", want[0]);
        gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: tensor '%s': expected shape %s, found %s", p_st,
                    name, expect, found);
        return NULL;
    }
    if (!safetensors_dtype_convertible(s->dtype)) {
        gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                    "%s: tensor '%s': dtype %s is not supported (F32, F16, BF16 are)", p_st, name,
                    safetensors_dtype_name(s->dtype));
        return NULL;
    }
    return s;
}

/* lm_head.weight, if present, must hold the same values as wte. */
static int check_tied(const safetensors_file *f, const safetensors_tensor *lm,
                      const safetensors_tensor *wte, gpt2_error *err)
{
    const char *path = safetensors_path(f);
    int same_shape = lm->n_dims == 2 && lm->shape[0] == wte->shape[0] &&
                     lm->shape[1] == wte->shape[1];
    if (!same_shape)
        goto untied;
    if (lm->dtype == wte->dtype) {
        if (memcmp(lm->data, wte->data, wte->n_bytes) != 0)
            goto untied;
        return 0;
    }
    if (!safetensors_dtype_convertible(lm->dtype))
        goto untied;
    enum { CH = 4096 };
    float *a = malloc(2 * CH * sizeof *a);
    if (!a)
        return gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory", path);
    int rc = 0;
    for (uint64_t i = 0; i < wte->n_elements && rc == 0; i += CH) {
        const uint64_t n = wte->n_elements - i < CH ? wte->n_elements - i : CH;
        safetensors_to_f32(lm, i, n, a, NULL);
        safetensors_to_f32(wte, i, n, a + CH, NULL);
        if (memcmp(a, a + CH, n * sizeof *a) != 0)
            rc = -1;
    }
    free(a);
    if (rc == 0)
        return 0;
untied:
    return gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                       "%s: '%s' differs from '%s': untied LM head not supported", path,
                       lm->name, wte->name);
}

/* The directory's last path component, for general.name. */
static void dir_basename(const char *dir, char *buf, size_t cap)
{
    char *real = realpath(dir, NULL);
    const char *p = real ? real : dir;
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        n--;
    size_t b = n;
    while (b > 0 && p[b - 1] != '/')
        b--;
    snprintf(buf, cap, "%.*s", (int)(n - b), p + b);
    if (!buf[0])
        snprintf(buf, cap, "gpt2");
    free(real);
}

int gpt2_convert_hf(const char *hf_dir, gpt2_dtype dtype, const char *out_path, int verbose,
                    gpt2_error *err)
{
    if (!hf_dir || !out_path)
        return gpt2_seterr(err, GPT2_ERR_INVALID, "gpt2_convert_hf: NULL argument");
    if (dtype == GPT2_DTYPE_Q8_0)
        return gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                           "convert: dtype q8_0 is not written directly; convert to f32 or f16, "
                           "then use gpt2c-quantize");
    if (dtype != GPT2_DTYPE_F32 && dtype != GPT2_DTYPE_F16)
        return gpt2_seterr(err, GPT2_ERR_INVALID, "convert: unknown dtype %d", (int)dtype);
    struct stat st;
    if (stat(hf_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return gpt2_seterr(err, GPT2_ERR_IO, "%s: not a directory", hf_dir);

    char p_cfg[4096], p_json[4096], p_merges[4096], p_st[4096], p_idx[4096];
    if (join(p_cfg, sizeof p_cfg, hf_dir, "config.json") < 0 ||
        join(p_json, sizeof p_json, hf_dir, "vocab.json") < 0 ||
        join(p_merges, sizeof p_merges, hf_dir, "merges.txt") < 0 ||
        join(p_st, sizeof p_st, hf_dir, "model.safetensors") < 0 ||
        join(p_idx, sizeof p_idx, hf_dir, "model.safetensors.index.json") < 0)
        return gpt2_seterr(err, GPT2_ERR_INVALID, "%s: path too long", hf_dir);

    gpt2_config cfg;
    int rc = parse_config(p_cfg, &cfg, err);
    if (rc < 0)
        return rc;

    gpt2_vocab vocab;
    memset(&vocab, 0, sizeof vocab);
    safetensors_file *sf = NULL;
    const safetensors_tensor **map = NULL;
    char *used = NULL;
    if ((rc = gpt2_vocab_load(p_json, p_merges, &vocab, err)) < 0)
        goto done;
    if (vocab.n_tokens != cfg.n_vocab) {
        rc = gpt2_seterr(err, GPT2_ERR_FORMAT,
                         "%s: %d tokens, but %s says vocab_size = %d (%s tokens)", p_json,
                         vocab.n_tokens, p_cfg, cfg.n_vocab,
                         vocab.n_tokens > cfg.n_vocab ? "too many" : "too few");
        goto done;
    }

    if (!file_exists(p_st) && file_exists(p_idx)) {
        rc = gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                         "%s: sharded checkpoints are not supported (need one model.safetensors)",
                         hf_dir);
        goto done;
    }
    if (!(sf = safetensors_open(p_st, err))) {
        rc = err ? err->code : GPT2_ERR_IO;
        goto done;
    }

    const char *prefix = safetensors_find(sf, "transformer.wte.weight") ? "transformer." : "";
    const int n_t = gpt2_model_tensor_count(&cfg);
    const int n_hf = safetensors_count(sf);
    /* config.json's sizes are claims: the first pass allocates nothing from
     * them, and a count the file cannot hold stops at its first missing tensor
     * (the names are distinct, so that is within n_hf + 1 lookups) */
    used = calloc((size_t)(n_hf ? n_hf : 1), 1);
    if (!used) {
        rc = gpt2_seterr(err, GPT2_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < n_t; i++) {
        const safetensors_tensor *s = hf_find_checked(sf, &cfg, i, prefix, err);
        if (!s) {
            rc = err ? err->code : GPT2_ERR_FORMAT;
            goto done;
        }
        used[s - safetensors_at(sf, 0)] = 1;
    }
    map = calloc((size_t)(n_t > 0 ? n_t : 1), sizeof *map); /* n_t <= n_hf now */
    if (!map) {
        rc = gpt2_seterr(err, GPT2_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < n_t; i++)
        map[i] = hf_find_checked(sf, &cfg, i, prefix, NULL);
    for (int j = 0; j < n_hf; j++) {
        const safetensors_tensor *s = safetensors_at(sf, j);
        if (used[j] || is_mask_buffer(s->name, prefix))
            continue;
        if (!strcmp(s->name, "lm_head.weight")) {
            if ((rc = check_tied(sf, s, map[0], err)) < 0)
                goto done;
            continue;
        }
        int n_unknown = 0;
        for (int k = j; k < n_hf; k++) {
            const safetensors_tensor *u = safetensors_at(sf, k);
            n_unknown += !used[k] && !is_mask_buffer(u->name, prefix) &&
                         strcmp(u->name, "lm_head.weight") != 0;
        }
        rc = gpt2_seterr(err, GPT2_ERR_FORMAT,
                         "%s: unexpected tensor '%s' (%d unknown tensor%s; is this a GPT-2 "
                         "checkpoint with n_layer = %d?)",
                         p_st, s->name, n_unknown, n_unknown == 1 ? "" : "s", cfg.n_layer);
        goto done;
    }

    char base[256], source[300];
    dir_basename(hf_dir, base, sizeof base);
    snprintf(source, sizeof source, "hf:%s", base);
    if (verbose)
        gpt2_log("%s: L%d C%d NH%d ctx %d vocab %d, %d tensors (%s%s), %s -> %s", hf_dir,
                 cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.n_ctx, cfg.n_vocab, n_hf,
                 safetensors_dtype_name(map[0]->dtype), prefix[0] ? ", transformer. prefix" : "",
                 gpt2_dtype_name(dtype), out_path);
    hf_src src = {.map = map};
    gpt2_model_meta meta = {.name = base, .source = source};
    rc = gpt2_model_write(out_path, &cfg, &vocab, dtype, &meta, hf_tensor, &src,
                          verbose ? gpt2_model_log_progress : NULL, NULL, err);
done:
    free(map);
    free(used);
    safetensors_close(sf);
    gpt2_vocab_free(&vocab);
    return rc < 0 ? rc : 0;
}
