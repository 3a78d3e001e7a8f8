/* The config.json of a Hugging Face GPT-2 checkpoint.
 *
 * Keys read: n_embd, n_head, n_layer, vocab_size (required), n_positions (or
 * n_ctx), n_inner (null: 4 n_embd), layer_norm_epsilon (default 1e-5);
 * model_type must be "gpt2" when present; activation_function gelu_new or
 * gelu_pytorch_tanh; scale_attn_by_inverse_layer_idx = true and
 * scale_attn_weights = false are refused (they change the math). */
#ifndef GPT2C_HF_CONFIG_H
#define GPT2C_HF_CONFIG_H

#include <stddef.h>

#include "gpt2.h"

/* Parses len bytes of JSON (need not be NUL-terminated) into cfg. Errors
 * name `path` (the file the text came from) and the key. */
int gpt2_hf_config_parse(const char *text, size_t len, const char *path, gpt2_config *cfg,
                         gpt2_error *err);

#endif
