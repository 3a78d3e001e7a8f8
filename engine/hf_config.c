/* Hugging Face GPT-2 config.json -> gpt2_config: required sizes present and
 * positive, options that change the forward pass refused, the result
 * validated by gpt2_config_validate. */
#include "hf_config.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "errors.h"
#include "model_writer.h" /* gpt2_config_validate */

/* Positive integer key. present=0 and *out untouched when absent or null. */
static int cfg_int(const cJSON *root, const char *key, int *out, int *present, const char *path,
                   gpt2_error *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    *present = 0;
    if (!j || cJSON_IsNull(j))
        return 0;
    const double v = cJSON_IsNumber(j) ? j->valuedouble : -1.0;
    if (!cJSON_IsNumber(j) || !(v >= 1.0) || v > (double)INT_MAX || v != floor(v))
        return gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: \"%s\" must be a positive integer", path,
                           key);
    *out = (int)v;
    *present = 1;
    return 0;
}

int gpt2_hf_config_parse(const char *text, size_t len, const char *path, gpt2_config *cfg,
                         gpt2_error *err)
{
    cJSON *root = text ? cJSON_ParseWithLength(text, len) : NULL;
    int rc = 0;
    if (!cJSON_IsObject(root)) {
        rc = gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: not a JSON object", path);
        goto done;
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (mt && (!cJSON_IsString(mt) || strcmp(mt->valuestring, "gpt2") != 0)) {
        rc = gpt2_seterr(err, GPT2_ERR_UNSUPPORTED, "%s: model_type %s%s%s is not \"gpt2\"", path,
                         cJSON_IsString(mt) ? "\"" : "",
                         cJSON_IsString(mt) ? mt->valuestring : "(not a string)",
                         cJSON_IsString(mt) ? "\"" : "");
        goto done;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "activation_function");
    if (act && !cJSON_IsNull(act) &&
        (!cJSON_IsString(act) || (strcmp(act->valuestring, "gelu_new") != 0 &&
                                  strcmp(act->valuestring, "gelu_pytorch_tanh") != 0))) {
        rc = gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                         "%s: activation_function %s is not supported (gelu_new or "
                         "gelu_pytorch_tanh, the tanh GELU)",
                         path, cJSON_IsString(act) ? act->valuestring : "(not a string)");
        goto done;
    }
    /* options that change the math of the forward pass */
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "scale_attn_by_inverse_layer_idx");
    if (cJSON_IsTrue(o)) {
        rc = gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                         "%s: scale_attn_by_inverse_layer_idx = true is not supported", path);
        goto done;
    }
    o = cJSON_GetObjectItemCaseSensitive(root, "scale_attn_weights");
    if (cJSON_IsFalse(o)) {
        rc = gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                         "%s: scale_attn_weights = false is not supported", path);
        goto done;
    }

    memset(cfg, 0, sizeof *cfg);
    const struct { const char *key; int *dst; } req[] = {
        {"n_embd", &cfg->n_embd}, {"n_head", &cfg->n_head}, {"n_layer", &cfg->n_layer},
        {"vocab_size", &cfg->n_vocab},
    };
    int present;
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++) {
        if ((rc = cfg_int(root, req[i].key, req[i].dst, &present, path, err)) < 0)
            goto done;
        if (!present) {
            rc = gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: missing \"%s\"", path, req[i].key);
            goto done;
        }
    }
    if ((rc = cfg_int(root, "n_positions", &cfg->n_ctx, &present, path, err)) < 0)
        goto done;
    if (!present) {
        if ((rc = cfg_int(root, "n_ctx", &cfg->n_ctx, &present, path, err)) < 0)
            goto done;
        if (!present) {
            rc = gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: missing \"n_positions\" (or \"n_ctx\")",
                             path);
            goto done;
        }
    }
    if ((rc = cfg_int(root, "n_inner", &cfg->n_ff, &present, path, err)) < 0)
        goto done;
    if (!present) {
        if (cfg->n_embd > INT_MAX / 4) {
            rc = gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: n_embd %d is too large", path,
                             cfg->n_embd);
            goto done;
        }
        cfg->n_ff = 4 * cfg->n_embd;
    }
    cfg->ln_eps = 1e-5f;
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_epsilon");
    if (eps && !cJSON_IsNull(eps)) {
        if (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0.0) || eps->valuedouble > 1.0) {
            rc = gpt2_seterr(err, GPT2_ERR_FORMAT,
                             "%s: \"layer_norm_epsilon\" must be a number in (0, 1]", path);
            goto done;
        }
        cfg->ln_eps = (float)eps->valuedouble;
    }
    if ((rc = gpt2_config_validate(cfg, err)) < 0)
        gpt2_err_prefix(err, "%s", path);
done:
    cJSON_Delete(root);
    return rc;
}
