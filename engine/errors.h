/* Error reporting inside the engine: fill a gpt2_error and return its code. */
#ifndef GPT2C_ERRORS_H
#define GPT2C_ERRORS_H

#include "gpt2.h"

#if defined(__GNUC__)
#define GPT2_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define GPT2_PRINTF(a, b)
#endif

/* Formats the message into err (if not NULL) and returns code. */
int gpt2_seterr(gpt2_error *err, int code, const char *fmt, ...) GPT2_PRINTF(3, 4);

/* Prepends "prefix: " to an error already set (e.g. the file name). */
void gpt2_err_prefix(gpt2_error *err, const char *fmt, ...) GPT2_PRINTF(2, 3);

/* Engine notices (not errors), to the callback set with gpt2_set_log. */
void gpt2_log(const char *fmt, ...) GPT2_PRINTF(1, 2);

#endif
