/* The seam between the engine and a compute backend (CPU, CUDA).
 *
 * A backend owns everything a forward pass touches besides the mmapped file:
 * its copy or view of the weights, the KV cache, activations and scratch. The
 * engine owns positions, batching and the host logits buffer (ctx.c for one
 * sequence, scheduler.c for many).
 *
 * KV cache: a pool of kv_blocks fixed-size blocks, kv_block_tokens positions
 * each, every block holding those positions' K and V for all layers. Which
 * blocks a sequence uses is the engine's business (kv_pool.c): a forward call
 * receives each sequence's block table. */
#ifndef GPT2C_BACKEND_H
#define GPT2C_BACKEND_H

#include <stddef.h>

#include "gpt2.h"

/* Positions per KV block, for every context and engine. 16 keeps the tail a
 * sequence wastes small (< 16 positions) and a block's rows long enough that
 * attention streams them (16 x 3 KiB per layer at GPT-2 124M). */
#define GPT2_KV_BLOCK_TOKENS 16

/* Element type of the KV cache. fp16 halves its memory and the bytes decode
 * attention reads; fp32 keeps the forward exactly the fp32 reference's. */
typedef enum { GPT2_KV_F32 = 0, GPT2_KV_F16 = 1 } gpt2_kv_type;
#define GPT2_KV_DEFAULT GPT2_KV_F16
static inline int gpt2_kv_elem_bytes(gpt2_kv_type t) { return t == GPT2_KV_F16 ? 2 : 4; }
static inline const char *gpt2_kv_type_name(gpt2_kv_type t) { return t == GPT2_KV_F16 ? "f16" : "f32"; }

typedef struct gpt2_backend_opts {
    int n_threads;       /* >= 1 */
    const char *isa;     /* NULL: GPT2C_ISA env or auto */
    int max_batch;       /* rows (tokens of all sequences) per forward call */
    int max_logit_rows;  /* rows of logits per forward call */
    const char *gemm;    /* NULL / "native", "openblas" (cpu), "cublas" (cuda) */
    int kv_blocks;       /* blocks in the KV pool (>= 1) */
    int kv_block_tokens; /* positions per block (a multiple of 4, >= 4) */
    int device;          /* GPU ordinal (cuda) */
    gpt2_kv_type kv_type; /* the KV cache's elements; a backend without kv_f32
                           * (below) keeps fp16 whatever this says: callers
                           * check with gpt2_resolve_kv_type */
} gpt2_backend_opts;

/* One sequence's part of a batch: rows n_rows consecutive rows of the batch,
 * at positions pos0 .. pos0+n_rows-1 of that sequence (its cache already holds
 * 0 .. pos0-1). blocks[j] is the pool block holding positions
 * j*kv_block_tokens .. (j+1)*kv_block_tokens-1; the table covers pos0+n_rows.
 * Rows first_logit .. n_rows-1 want logits (first_logit == n_rows: none). */
typedef struct gpt2_batch_seq {
    int n_rows;
    int pos0;
    int first_logit;
    const int *blocks;
} gpt2_batch_seq;

/* A forward call's input: ids of all rows, sequence after sequence. Logits
 * come out packed in the same order ([n_logit_rows][n_vocab]). */
typedef struct gpt2_batch {
    const int *ids;
    int n_rows;             /* 1 .. max_batch, the sum of seqs[].n_rows */
    const gpt2_batch_seq *seqs;
    int n_seqs;
    int n_logit_rows;       /* sum of (n_rows - first_logit), <= max_logit_rows */
    /* Optional, n_logit_rows entries each, for greedy decoding without the
     * logits (a GPU then copies back one int per row instead of n_vocab floats):
     *   argmax: filled with each logit row's gpt2_argmax.
     *   need_logits: 0 where the caller uses only argmax, so that row of the
     *     logits buffer may be left unwritten. NULL: every row is needed. */
    int *argmax;
    const unsigned char *need_logits;
    /* Optional, n_logit_rows entries each, on a backend with device_sampling:
     * rows whose sampling[k].on is set get their token drawn by the backend
     * (gpt2_sample_row's rule) into sampled[k]; their logits are copied back
     * only where need_logits asks. NULL: no row is sampled there. */
    const struct gpt2_row_sampling *sampling;
    int *sampled;
} gpt2_batch;

/* One logit row's draw, for a backend that samples (a GPU): the request's
 * parameters and its sampler's next uniform draw (gpt2_sampler_next_row). */
typedef struct gpt2_row_sampling {
    int on;         /* 0: this row is not sampled by the backend */
    int top_k;      /* 0: off */
    float inv_temp; /* 1 / temperature */
    float top_p;    /* >= 1: off */
    double u;       /* uniform in [0, 1) */
} gpt2_row_sampling;

/* What gpt2_sample_row found, for tests: the kept set's size and mass, the
 * softmax total, and how close the draw and the top-p cut were to choosing
 * differently (fractions of the kept mass / total; INFINITY: no top-p cut). A
 * device that rounds exp() differently may differ only where these are tiny. */
typedef struct gpt2_sample_info {
    int kept;
    double kept_mass, sum, draw_margin, cut_margin;
} gpt2_sample_info;

/* Fills rs for the next token of s: off for a greedy sampler; else its
 * parameters and one uniform draw, the one gpt2_sampler_sample would use. */
void gpt2_sampler_next_row(gpt2_sampler *s, gpt2_row_sampling *rs);

/* The device sampling rule in C (engine/sample_row.c): the token for one row
 * of V logits; p: V floats of scratch (left holding the probabilities);
 * info may be NULL. */
int gpt2_sample_row(const float *logits, int V, const gpt2_row_sampling *rs, float *p,
                    gpt2_sample_info *info);

typedef struct gpt2_backend_ops {
    const char *name;
    int kv_f32; /* 1 if it can keep an fp32 KV cache (every backend keeps fp16) */
    /* 1: contexts and engines on it let it draw sampled tokens by default
     * (gpt2_batch.sampling; a GPU, whose logits then stay on it). Every
     * backend honours gpt2_batch.sampling when asked. */
    int device_sampling;
    /* Creates the per-context state: the KV pool, activations for max_batch
     * rows. All memory a forward pass needs is allocated here. */
    void *(*create)(const gpt2_model *m, const gpt2_backend_opts *o, gpt2_error *err);
    void (*destroy)(void *st);
    /* Evaluates one batch; writes the logits rows asked for to logits (host). */
    int (*forward)(void *st, const gpt2_batch *b, float *logits, gpt2_error *err);
    const char *(*isa_name)(const void *st);  /* "avx2", "sm_90", ... */
    const char *(*gemm_name)(const void *st); /* "native", "openblas", "cublas" */
    int (*threads)(const void *st);
    size_t (*kv_bytes)(const void *st);    /* the whole KV pool */
    size_t (*arena_bytes)(const void *st); /* activations + scratch */
    /* Bytes of weights one decode step reads, as this backend holds them (a
     * GPU's device copies: fp16, bf16, fp32 or Q8_0 by option), each matrix
     * once and one row of the position embeddings. */
    size_t (*weight_bytes)(const void *st);
    /* gpt2_ctx_profile's collection: on = 1 starts it from zero, 0 stops it;
     * then the sums so far into *out when out is not NULL. NULL where the
     * backend cannot time its ops. */
    void (*profile)(void *st, int on, gpt2_op_profile *out);
} gpt2_backend_ops;

/* Whether contexts and engines on be let it sample (gpt2_batch.sampling):
 * be->device_sampling, unless GPT2C_BACKEND_SAMPLING=0 or 1 says otherwise
 * (to compare the two rules on one backend, and to test the path on a CPU). */
int gpt2_backend_samples(const gpt2_backend_ops *be);

extern const gpt2_backend_ops gpt2_backend_cpu;
#ifdef GPT2C_HAVE_CUDA
extern const gpt2_backend_ops gpt2_backend_cuda; /* cuda/backend_cuda.c */
#endif

/* The greedy choice over n logits, as gpt2_sampler_sample makes it: the
 * lowest index of the largest value; NaNs are never chosen, except that a NaN
 * at index 0 gives 0 (engine/sampler.c). Backends that compute argmax
 * elsewhere must give the same answer. */
int gpt2_argmax(const float *x, int n);

/* The KV element type asked for ("f32", "f16"; NULL or "": GPT2_KV_DEFAULT)
 * on backend be: 0, or GPT2_ERR_INVALID / GPT2_ERR_UNSUPPORTED with err set. */
int gpt2_resolve_kv_type(const char *name, const gpt2_backend_ops *be, gpt2_kv_type *out,
                         gpt2_error *err);

/* Checks a batch against the limits every backend shares (row counts, positions
 * inside n_ctx, ids inside the vocabulary, block tables inside the pool), so a
 * bad batch is an error, never a stray write. */
int gpt2_batch_check(const gpt2_batch *b, const gpt2_config *c, int max_batch,
                     int max_logit_rows, int kv_blocks, int kv_block_tokens, gpt2_error *err);

#endif
