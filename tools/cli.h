/* Helpers shared by the command-line programs: strict number parsing, reading
 * input, error exits. Uses only the public API. */
#ifndef GPT2C_CLI_H
#define GPT2C_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gpt2.h"

#define CLI_DEFAULT_MODEL "weights/gpt2-124M-synthetic-f32.gguf"

/* Prints "<prog>: <message>" to stderr and exits with status 1 (2 for usage). */
void cli_die(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
void cli_usage_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* The value of an option that takes one (argv[++*i]), or a usage error. */
const char *cli_value(const char *prog, int argc, char **argv, int *i);

/* Whole-string numbers within [lo, hi]; a usage error naming the flag otherwise. */
long cli_long(const char *prog, const char *flag, const char *s, long lo, long hi);
double cli_double(const char *prog, const char *flag, const char *s, double lo, double hi);
uint64_t cli_u64(const char *prog, const char *flag, const char *s);

/* Reads a whole stream; *len set; NUL-terminated. NULL on error (errno set). */
char *cli_read_all(FILE *f, size_t *len);

/* Parses token ids separated by whitespace or commas, each in [0, n_vocab),
 * from a NUL-terminated text. 0: *ids (malloc'd) and *n set. -1: msg says
 * which token (by position) and what was expected, prefixed by `what`. */
int cli_ids_parse(const char *what, const char *text, int n_vocab, int **ids, int *n, char *msg,
                  size_t msg_cap);
/* The same, dying with "<prog>: <msg>" on bad input. */
int *cli_parse_ids(const char *prog, const char *what, const char *text, int n_vocab, int *n);

/* While a model file is written to OUT, the GGUF writer uses "OUT.tmp.<pid>":
 * on SIGINT, SIGTERM or SIGHUP that temporary is removed before the program
 * dies, so an interrupted run leaves nothing behind. */
void cli_remove_tmp_on_signal(const char *out_path);

/* Writes s as a JSON string literal (quotes and escapes). */
void cli_json_str(FILE *f, const char *s);

#endif
