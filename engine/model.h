/* A loaded GPT-2 model: config, pointers to the weights inside the mmapped
 * GGUF file, and the tokenizer. Everything is validated at load: names,
 * types, shapes against the config, and (unless skipped) CRC-32s. */
#ifndef GPT2C_MODEL_H
#define GPT2C_MODEL_H

#include <pthread.h>
#include <stddef.h>

#include "gguf.h"
#include "gpt2.h"
#include "kernels.h"
#include "tokenizer.h"

/* A weight matrix W[N][K] (GGUF ne = [K, N]) as stored in the file. */
typedef struct gpt2_wmat {
    const void *data;
    uint32_t type; /* ggml_type: F32, F16, Q8_0 */
    int K, N;
    /* Matmul weights in the kernels' packed layout (gpt2k_pack_weights for F32 /
     * F16, gpt2k_q8_0_pack_weights for Q8_0), once gpt2_model_pack has run;
     * NULL before, and for other tensors. Read only by a caller of
     * gpt2_model_pack (which orders it after the write). */
    const void *packed;
    gpt2k_q8_layout q8_layout; /* a packed Q8_0 matrix's layout */
} gpt2_wmat;

typedef struct gpt2_layer {
    const float *ln1_g, *ln1_b;  /* attn_norm */
    gpt2_wmat qkv;               /* attn_qkv: [3C][C] */
    const float *qkv_b;
    gpt2_wmat proj;              /* attn_output: [C][C] */
    const float *proj_b;
    const float *ln2_g, *ln2_b;  /* ffn_norm */
    gpt2_wmat up;                /* ffn_up: [FF][C] */
    const float *up_b;
    gpt2_wmat down;              /* ffn_down: [C][FF] */
    const float *down_b;
} gpt2_layer;

struct gpt2_model {
    char *path;
    gguf_file *file;
    gpt2_config cfg;
    gpt2_wmat tok_embd;  /* [V][C] */
    gpt2_wmat pos_embd;  /* [n_ctx][C] */
    gpt2_wmat lm_head;   /* output.weight if present, else tok_embd */
    const float *lnf_g, *lnf_b;
    gpt2_layer *layers;  /* n_layer */
    void *small;         /* the copies of the vectors and positions (model.c) */
    gpt2_tokenizer *tok;
    size_t weight_bytes; /* bytes of all tensors in the file */
    double load_ms;
    int crc_checked;     /* tensors whose CRC-32 was verified */
    char dtype[8];       /* "f32" "f16" "q8_0" "mixed" */
    /* packed weights (pack.c), made once for all contexts */
    pthread_mutex_t pack_lock;
    int pack_state;      /* 0 not yet, 1 done */
    void *pack_mem;      /* the one mapping of them (pack_len bytes), unmapped with the model */
    size_t pack_len;
    size_t pack_bytes;   /* of packed matrices in it */
    int q8_packed;       /* Q8_0 matrices packed too, in layout q8_layout */
    gpt2k_q8_layout q8_layout;
};

/* Validates an opened GGUF file as a GPT-2 model (config, shapes, CRCs,
 * tokenizer) and takes ownership of it: gpt2_model_free closes it, and so does
 * a failure here. gpt2_model_load is gguf_open + this; the fuzz target uses it
 * with gguf_open_mem. */
gpt2_model *gpt2_model_from_gguf(gguf_file *file, const gpt2_load_opts *opts, gpt2_error *err);

/* The kernels' element type of an F32 / F16 matrix. */
static inline gpt2k_wtype gpt2_wmat_wtype(const gpt2_wmat *w)
{
    return w->type == GGML_T_F16 ? GPT2K_W_F16 : GPT2K_W_F32;
}

/* Row r of an embedding matrix as fp32 (converting F16 rows); from the packed
 * copy when use_packed and there is one (the token embedding tied to the LM head). */
void gpt2_embd_row(const gpt2_wmat *w, int r, float *out, int use_packed);

/* Makes packed copies of every F32 / F16 matmul weight, and with q8 of every
 * Q8_0 one (and the tied token embedding), for the CPU kernels that read them
 * so (gpt2k_ops.matmul_packed, matmul_q8_0_packed), once per model whoever
 * asks first (its q8 and q8_layout decide: a later context whose table reads
 * another Q8_0 layout keeps the plain rows, see m->q8_layout); thread-safe.
 * The file pages they came from are dropped from the resident set (re-read
 * from the file if anything reads the plain layout again), so memory stays
 * about one copy. The work is split over pool's threads; the time is added
 * to the model's load time. */
int gpt2_model_pack(const gpt2_model *m, gpt2k_pool *pool, int q8, gpt2k_q8_layout q8_layout,
                    gpt2_error *err);

#endif
