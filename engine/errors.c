#include "errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static gpt2_log_fn g_log_fn;
static void *g_log_user;

void gpt2_set_log(gpt2_log_fn fn, void *user)
{
    g_log_fn = fn;
    g_log_user = user;
}

void gpt2_log(const char *fmt, ...)
{
    if (!g_log_fn)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    g_log_fn(line, g_log_user);
}

int gpt2_seterr(gpt2_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

void gpt2_err_prefix(gpt2_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    char pre[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(pre);
    if (n > sizeof err->msg - 3)
        n = sizeof err->msg - 3;
    memcpy(err->msg, pre, n);
    memcpy(err->msg + n, ": ", 2);
    /* the old message, cut to fit */
    size_t room = sizeof err->msg - n - 3;
    size_t ol = strnlen(old, sizeof old);
    if (ol > room)
        ol = room;
    memcpy(err->msg + n + 2, old, ol);
    err->msg[n + 2 + ol] = '\0';
}

const char *gpt2_status_name(int status)
{
    switch (status) {
    case GPT2_OK: return "ok";
    case GPT2_ERR_IO: return "I/O error";
    case GPT2_ERR_FORMAT: return "format error";
    case GPT2_ERR_INVALID: return "invalid argument";
    case GPT2_ERR_NOMEM: return "out of memory";
    case GPT2_ERR_CONTEXT: return "context overflow";
    case GPT2_ERR_UNSUPPORTED: return "unsupported";
    case GPT2_ERR_CRC: return "CRC mismatch";
    case GPT2_ERR_TOKENIZE: return "tokenizer error";
    case GPT2_ERR_BUSY: return "busy";
    default: return "unknown error";
    }
}
