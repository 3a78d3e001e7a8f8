/* Writing GPT-2 model files (GGUF, llama.cpp's "gpt2" architecture).
 *
 * One writer serves every producer (synthetic weights, Hugging Face
 * checkpoints): the producer hands over a config, a vocabulary and a tensor
 * source that yields any band of rows of one tensor as fp32, already in GGUF
 * layout. The writer asks for each tensor only while the GGUF writer streams
 * it out, so a model is never held in memory whole (1558M is 6.2 GB in f32).
 *
 * Tensor order (also the order of gpt2_tensor_info indices):
 *   token_embd.weight [C, V], position_embd.weight [C, n_ctx],
 *   per layer i: blk.i.attn_norm.{weight,bias} [C], blk.i.attn_qkv.weight
 *   [C, 3C] .bias [3C], blk.i.attn_output.weight [C, C] .bias [C],
 *   blk.i.ffn_norm.{weight,bias} [C], blk.i.ffn_up.weight [C, FF] .bias [FF],
 *   blk.i.ffn_down.weight [FF, C] .bias [C];
 *   output_norm.{weight,bias} [C].
 * ne[0] is the innermost dimension: a weight matrix W[N][K] has ne = [K, N]
 * and a "row" is ne[0] contiguous values. No output.weight: the LM head is
 * tied to token_embd. With dtype f16 every 2-D tensor is F16 and every 1-D
 * tensor stays F32 (as llama.cpp does). */
#ifndef GPT2C_MODEL_WRITER_H
#define GPT2C_MODEL_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "gpt2.h"
#include "vocab.h"

typedef enum {
    GPT2_T_TOKEN_EMBD = 0,
    GPT2_T_POS_EMBD,
    /* per layer, in file order */
    GPT2_T_ATTN_NORM_W,
    GPT2_T_ATTN_NORM_B,
    GPT2_T_ATTN_QKV_W,
    GPT2_T_ATTN_QKV_B,
    GPT2_T_ATTN_OUT_W,
    GPT2_T_ATTN_OUT_B,
    GPT2_T_FFN_NORM_W,
    GPT2_T_FFN_NORM_B,
    GPT2_T_FFN_UP_W,
    GPT2_T_FFN_UP_B,
    GPT2_T_FFN_DOWN_W,
    GPT2_T_FFN_DOWN_B,
    /* after the layers */
    GPT2_T_OUT_NORM_W,
    GPT2_T_OUT_NORM_B
} gpt2_tensor_kind;

#define GPT2_TENSORS_PER_LAYER 12

typedef struct gpt2_tensor_info {
    int index;             /* position in the file, 0-based */
    gpt2_tensor_kind kind;
    int layer;             /* -1 for tensors outside the blocks */
    char name[48];         /* GGUF name */
    int n_dims;            /* 1 or 2 */
    uint64_t ne[2];        /* ne[1] is 1 for 1-D tensors */
    uint64_t n_rows;       /* ne[1] (1 for 1-D) */
    uint64_t n_elements;
} gpt2_tensor_info;

/* Number of tensors of a model with this config: 2 + 12 L + 2. */
int gpt2_model_tensor_count(const gpt2_config *cfg);
/* Fills info for tensor i (0 <= i < count); GPT2_ERR_INVALID if out of range. */
int gpt2_model_tensor_info(const gpt2_config *cfg, int i, gpt2_tensor_info *info);

/* Checks sizes (all positive, n_embd divisible by n_head, eps finite and
 * positive, every tensor addressable); names the field on error. */
int gpt2_config_validate(const gpt2_config *cfg, gpt2_error *err);

/* Produces rows [row0, row0 + n_rows) of tensor t as fp32 into out
 * (n_rows * t->ne[0] values). Called with any band of rows, tensors in file
 * order. Returns 0 or a negative gpt2_status with err filled. */
typedef int (*gpt2_tensor_src_fn)(void *user, const gpt2_tensor_info *t, uint64_t row0,
                                  uint64_t n_rows, float *out, gpt2_error *err);

typedef struct gpt2_model_meta {
    const char *name;     /* general.name */
    const char *source;   /* gpt2c.source, NULL: not written */
    int has_seed;         /* 1: write gpt2c.synthetic_seed */
    uint64_t seed;
} gpt2_model_meta;

/* Writes the model to path (via a temporary file renamed on success; on
 * failure path is untouched and no temporary is left). vocab->n_tokens must
 * equal cfg->n_vocab. "<|endoftext|>", if in the vocabulary, is the control
 * token and the bos/eos id; otherwise those keys are omitted. CRC-32s are
 * always written. progress (may be NULL) is called after each tensor. */
int gpt2_model_write(const char *path, const gpt2_config *cfg, const gpt2_vocab *vocab,
                     gpt2_dtype dtype, const gpt2_model_meta *meta, gpt2_tensor_src_fn src,
                     void *src_user, gguf_progress_fn progress, void *progress_user,
                     gpt2_error *err);

/* A progress callback that logs "tensor <done>/<total> <name>" with gpt2_log:
 * the line format tools/convert.c reads to draw its progress bar. */
void gpt2_model_log_progress(int64_t done, int64_t total, const char *name, void *user);

/* The synthetic source (engine/synthetic.c), exposed so tests can check the
 * values written against it. user must point to a gpt2_synthetic_src. */
typedef struct gpt2_synthetic_src {
    const gpt2_config *cfg;
    uint64_t seed;
} gpt2_synthetic_src;
int gpt2_synthetic_tensor(void *user, const gpt2_tensor_info *t, uint64_t row0, uint64_t n_rows,
                          float *out, gpt2_error *err);

#endif
