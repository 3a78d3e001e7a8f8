#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

void cli_die(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void cli_usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see %s --help)\n", prog);
    va_end(ap);
    exit(2);
}

const char *cli_value(const char *prog, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc)
        cli_usage_error(prog, "option %s needs a value", argv[*i]);
    return argv[++*i];
}

long cli_long(const char *prog, const char *flag, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        cli_usage_error(prog, "%s '%s': expected an integer in %ld..%ld", flag, s, lo, hi);
    return v;
}

double cli_double(const char *prog, const char *flag, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !(v >= lo && v <= hi))
        cli_usage_error(prog, "%s '%s': expected a number in [%g, %g]", flag, s, lo, hi);
    return v;
}

uint64_t cli_u64(const char *prog, const char *flag, const char *s)
{
    char *end;
    errno = 0;
    if (*s == '-')
        cli_usage_error(prog, "%s '%s': expected a non-negative integer", flag, s);
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end != '\0')
        cli_usage_error(prog, "%s '%s': expected a non-negative integer", flag, s);
    return (uint64_t)v;
}

char *cli_read_all(FILE *f, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                free(buf);
                return NULL;
            }
            break;
        }
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

int cli_ids_parse(const char *what, const char *text, int n_vocab, int **out, int *n, char *msg,
                  size_t msg_cap)
{
    size_t cap = 256;
    int count = 0;
    int *ids = malloc(sizeof(int) * cap);
    if (!ids)
        goto nomem;
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',')
            p++;
        if (!*p)
            break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || (*end && !strchr(" \t\r\n,", *end))) {
            snprintf(msg, msg_cap, "%s: token %d ('%.20s'): expected a token id", what, count + 1,
                     p);
            free(ids);
            return -1;
        }
        if (v < 0 || v >= n_vocab) {
            snprintf(msg, msg_cap, "%s: token %d is %ld: expected an id in 0..%d", what,
                     count + 1, v, n_vocab - 1);
            free(ids);
            return -1;
        }
        if ((size_t)count == cap) {
            int *nb = realloc(ids, sizeof(int) * (cap *= 2));
            if (!nb)
                goto nomem;
            ids = nb;
        }
        ids[count++] = (int)v;
        p = end;
    }
    *out = ids;
    *n = count;
    return 0;
nomem:
    free(ids);
    snprintf(msg, msg_cap, "%s: out of memory", what);
    return -1;
}

int *cli_parse_ids(const char *prog, const char *what, const char *text, int n_vocab, int *n)
{
    int *ids;
    char msg[256];
    if (cli_ids_parse(what, text, n_vocab, &ids, n, msg, sizeof msg) < 0)
        cli_die(prog, "%s", msg);
    return ids;
}

void cli_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static char g_tmp_path[4200];

static void remove_tmp(int sig)
{
    if (g_tmp_path[0])
        unlink(g_tmp_path);
    signal(sig, SIG_DFL);
    raise(sig);
}

void cli_remove_tmp_on_signal(const char *out_path)
{
    snprintf(g_tmp_path, sizeof g_tmp_path, "%s.tmp.%ld", out_path, (long)getpid());
    signal(SIGINT, remove_tmp);
    signal(SIGTERM, remove_tmp);
    signal(SIGHUP, remove_tmp);
}
