/* Engine-internal view of a context. */
#ifndef GPT2C_CTX_H
#define GPT2C_CTX_H

#include "gpt2.h"

const gpt2_model *gpt2_ctx_model(const gpt2_ctx *c);

struct gpt2_backend_ops;
/* "cpu" (or NULL), "cuda" when built with it; NULL with err set otherwise. */
const struct gpt2_backend_ops *gpt2_find_backend(const char *name, gpt2_error *err);
/* 0: all online cores. */
int gpt2_resolve_threads(int n_threads);

struct gpt2_row_sampling;
/* gpt2_eval of n tokens whose last row returns only the backend's pick of the
 * next token: its argmax, or, when rs->on (a backend with device_sampling),
 * its draw by gpt2_sample_row's rule. The logits stay on the backend. */
int gpt2_eval_pick(gpt2_ctx *c, const int *ids, int n, const struct gpt2_row_sampling *rs,
                   int *next, gpt2_error *err);
/* 1 if the context's backend draws sampled tokens itself (gpt2_batch.sampling). */
int gpt2_ctx_device_sampling(const gpt2_ctx *c);

#endif
