/* Engine-internal view of a context. */
#ifndef GPT2C_CTX_H
#define GPT2C_CTX_H

#include "gpt2.h"

const gpt2_model *gpt2_ctx_model(const gpt2_ctx *c);

#endif
