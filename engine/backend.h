/* The seam between the engine and a compute backend (CPU now, CUDA later).
 *
 * A backend owns everything a forward pass touches besides the mmapped file:
 * its copy or view of the weights, the KV cache, activations and scratch. The
 * engine (ctx.c) owns positions, chunking and the host logits buffer. */
#ifndef GPT2C_BACKEND_H
#define GPT2C_BACKEND_H

#include <stddef.h>

#include "gpt2.h"

typedef struct gpt2_backend_opts {
    int n_threads;      /* >= 1 */
    const char *isa;    /* NULL: GPT2C_ISA env or auto */
    int max_batch;      /* tokens per forward call */
    int max_logit_rows; /* rows of logits per forward call */
    const char *gemm;   /* NULL / "native" or "openblas" */
} gpt2_backend_opts;

typedef struct gpt2_backend_ops {
    const char *name;
    /* Creates the per-context state: KV cache for n_ctx positions, activations
     * for max_batch tokens. All memory a forward pass needs is allocated here. */
    void *(*create)(const gpt2_model *m, const gpt2_backend_opts *o, gpt2_error *err);
    void (*destroy)(void *st);
    /* Evaluates T tokens (1 <= T <= max_batch) at positions pos0 .. pos0+T-1
     * (pos0 + T <= n_ctx; the cache holds 0 .. pos0-1). Writes the logits of rows
     * first_logit .. T-1 to logits ([T - first_logit][n_vocab], at most
     * max_logit_rows rows; first_logit == T: none). */
    int (*forward)(void *st, const int *ids, int T, int pos0, int first_logit, float *logits,
                   gpt2_error *err);
    const char *(*isa_name)(const void *st);
    const char *(*gemm_name)(const void *st);
    int (*threads)(const void *st);
    size_t (*kv_bytes)(const void *st);    /* whole KV cache */
    size_t (*arena_bytes)(const void *st); /* activations + scratch */
} gpt2_backend_ops;

extern const gpt2_backend_ops gpt2_backend_cpu;

#endif
