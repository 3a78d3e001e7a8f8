/* Synthetic GPT-2 models: the four preset configs and GPT-2's initialisation
 * from a seed, with the real (embedded) GPT-2 vocabulary.
 *
 * Initialisation (as GPT-2 / Hugging Face's GPT2PreTrainedModel):
 *   every weight matrix and both embeddings ~ N(0, 0.02);
 *   attn_output and ffn_down weights ~ N(0, 0.02 / sqrt(2 n_layer)) (residual
 *   projections, scaled so the residual stream's variance does not grow with
 *   depth); LayerNorm weight 1, bias 0; linear biases 0.
 *
 * Random numbers are counter-based so any tensor, and any range of it, can be
 * generated independently and in any order, with the same bits every time:
 *   mix64     = splitmix64's finaliser (Stafford variant 13)
 *   key_t     = mix64(mix64(seed) + (t + 1) * PHI)      t = tensor index
 *   u_t(n)    = mix64(key_t + (n + 1) * PHI)             (splitmix64's n-th
 *               output from state key_t), PHI = 0x9E3779B97F4A7C15
 *   element j of tensor t (GGUF order) uses the pair p = j / 2:
 *     u1 = 1 - (u_t(2p) >> 11) 2^-53  in (0, 1],  u2 = (u_t(2p+1) >> 11) 2^-53
 *     r = sqrt(-2 ln u1);  z = r cos(2 pi u2) for even j, r sin(2 pi u2) for odd j
 *   (Box-Muller in double, value = std * z rounded to float). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "errors.h"
#include "model_writer.h"
#include "vocab.h"

#define PHI UINT64_C(0x9E3779B97F4A7C15)
#define INIT_STD 0.02

static const struct {
    const char *name;
    int n_layer, n_embd, n_head;
} presets[] = {
    {"124M", 12, 768, 12},
    {"355M", 24, 1024, 16},
    {"774M", 36, 1280, 20},
    {"1558M", 48, 1600, 25},
};

int gpt2_config_preset(const char *size, gpt2_config *cfg)
{
    if (!size || !cfg)
        return -1;
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        if (strcasecmp(size, presets[i].name) != 0)
            continue;
        cfg->n_vocab = 50257;
        cfg->n_ctx = 1024;
        cfg->n_embd = presets[i].n_embd;
        cfg->n_head = presets[i].n_head;
        cfg->n_layer = presets[i].n_layer;
        cfg->n_ff = 4 * presets[i].n_embd;
        cfg->ln_eps = 1e-5f;
        return 0;
    }
    return -1;
}

/* The preset name this config is, or NULL. */
static const char *preset_of(const gpt2_config *cfg)
{
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        gpt2_config p;
        gpt2_config_preset(presets[i].name, &p);
        if (p.n_vocab == cfg->n_vocab && p.n_ctx == cfg->n_ctx && p.n_embd == cfg->n_embd &&
            p.n_head == cfg->n_head && p.n_layer == cfg->n_layer && p.n_ff == cfg->n_ff &&
            p.ln_eps == cfg->ln_eps)
            return presets[i].name;
    }
    return NULL;
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Normal values std * z_j for j in [first, first + count) of the stream key. */
static void gen_normal(uint64_t key, uint64_t first, size_t count, double std, float *out)
{
    const double two_pi = 6.283185307179586476925;
    const double inv53 = 1.0 / 9007199254740992.0; /* 2^-53 */
    uint64_t j = first;
    size_t o = 0;
    while (o < count) {
        const uint64_t p = j >> 1;
        const double u1 = 1.0 - (double)(mix64(key + (2 * p + 1) * PHI) >> 11) * inv53;
        const double u2 = (double)(mix64(key + (2 * p + 2) * PHI) >> 11) * inv53;
        const double r = sqrt(-2.0 * log(u1));
        const double th = two_pi * u2;
        if ((j & 1) == 0) {
            out[o++] = (float)(std * r * cos(th));
            j++;
            if (o == count)
                break;
        }
        out[o++] = (float)(std * r * sin(th));
        j++;
    }
}

int gpt2_synthetic_tensor(void *user, const gpt2_tensor_info *t, uint64_t row0, uint64_t n_rows,
                          float *out, gpt2_error *err)
{
    const gpt2_synthetic_src *s = user;
    if (row0 > t->n_rows || n_rows > t->n_rows - row0)
        return gpt2_seterr(err, GPT2_ERR_INVALID,
                           "synthetic: tensor '%s': rows %" PRIu64 "+%" PRIu64
                           " out of range (%" PRIu64 " rows)",
                           t->name, row0, n_rows, t->n_rows);
    const size_t n = (size_t)(n_rows * t->ne[0]);
    double std = INIT_STD;
    switch (t->kind) {
    case GPT2_T_ATTN_NORM_W:
    case GPT2_T_FFN_NORM_W:
    case GPT2_T_OUT_NORM_W:
        for (size_t i = 0; i < n; i++)
            out[i] = 1.0f;
        return 0;
    case GPT2_T_ATTN_NORM_B:
    case GPT2_T_FFN_NORM_B:
    case GPT2_T_OUT_NORM_B:
    case GPT2_T_ATTN_QKV_B:
    case GPT2_T_ATTN_OUT_B:
    case GPT2_T_FFN_UP_B:
    case GPT2_T_FFN_DOWN_B:
        memset(out, 0, n * sizeof *out);
        return 0;
    case GPT2_T_ATTN_OUT_W:
    case GPT2_T_FFN_DOWN_W:
        std = INIT_STD / sqrt(2.0 * s->cfg->n_layer);
        break;
    case GPT2_T_TOKEN_EMBD:
    case GPT2_T_POS_EMBD:
    case GPT2_T_ATTN_QKV_W:
    case GPT2_T_FFN_UP_W:
        break;
    }
    const uint64_t key = mix64(mix64(s->seed) + (uint64_t)(t->index + 1) * PHI);
    gen_normal(key, row0 * t->ne[0], n, std, out);
    return 0;
}

int gpt2_write_synthetic(const gpt2_config *cfg, uint64_t seed, gpt2_dtype dtype,
                         const char *out_path, int verbose, gpt2_error *err)
{
    if (!cfg || !out_path)
        return gpt2_seterr(err, GPT2_ERR_INVALID, "gpt2_write_synthetic: NULL argument");
    if (dtype == GPT2_DTYPE_Q8_0)
        return gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                           "synthetic: dtype q8_0 is not written directly; write f32 or f16, "
                           "then use gpt2c-quantize");
    if (dtype != GPT2_DTYPE_F32 && dtype != GPT2_DTYPE_F16)
        return gpt2_seterr(err, GPT2_ERR_INVALID, "synthetic: unknown dtype %d", (int)dtype);
    int rc = gpt2_config_validate(cfg, err);
    if (rc < 0) {
        gpt2_err_prefix(err, "synthetic");
        return rc;
    }

    gpt2_vocab vocab;
    memset(&vocab, 0, sizeof vocab);
    rc = gpt2_vocab_embedded(&vocab, err);
    if (rc < 0)
        return rc;
    if (cfg->n_vocab > vocab.n_tokens) {
        rc = gpt2_seterr(err, GPT2_ERR_INVALID,
                         "synthetic: n_vocab %d is larger than the GPT-2 vocabulary (%d tokens)",
                         cfg->n_vocab, vocab.n_tokens);
        goto done;
    }
    if (cfg->n_vocab < vocab.n_tokens && (rc = gpt2_vocab_truncate(&vocab, cfg->n_vocab, err)) < 0)
        goto done;

    const char *preset = preset_of(cfg);
    char name[64], source[128];
    if (preset) {
        snprintf(name, sizeof name, "gpt2-%s-synthetic", preset);
        snprintf(source, sizeof source, "synthetic %s", preset);
    } else {
        snprintf(name, sizeof name, "gpt2-custom-synthetic");
        snprintf(source, sizeof source, "synthetic custom L%d C%d NH%d FF%d ctx%d V%d",
                 cfg->n_layer, cfg->n_embd, cfg->n_head, cfg->n_ff, cfg->n_ctx, cfg->n_vocab);
    }
    if (verbose)
        gpt2_log("%s: L%d C%d NH%d ctx %d vocab %d, seed %" PRIu64 ", %s -> %s", source,
                 cfg->n_layer, cfg->n_embd, cfg->n_head, cfg->n_ctx, cfg->n_vocab, seed,
                 gpt2_dtype_name(dtype), out_path);

    gpt2_synthetic_src src = {.cfg = cfg, .seed = seed};
    gpt2_model_meta meta = {.name = name, .source = source, .has_seed = 1, .seed = seed};
    rc = gpt2_model_write(out_path, cfg, &vocab, dtype, &meta, gpt2_synthetic_tensor, &src,
                          verbose ? gpt2_model_log_progress : NULL, NULL, err);
done:
    gpt2_vocab_free(&vocab);
    return rc < 0 ? rc : 0;
}
