/* gpt2c-tokenize: text <-> token ids with a model's GPT-2 tokenizer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gpt2.h"

static const char *PROG = "gpt2c-tokenize";

static void usage(void)
{
    printf("usage: gpt2c-tokenize [--model FILE] [--decode] [--count]\n"
           "\n"
           "Reads stdin. Default: encodes its bytes exactly (no trailing newline is\n"
           "added or removed) and prints the ids separated by spaces.\n"
           "  --model FILE  GGUF model whose vocabulary to use (default " CLI_DEFAULT_MODEL ")\n"
           "  --decode      read whitespace-separated ids, write their exact bytes\n"
           "  --count       print only the number of tokens\n"
           "  --no-crc      skip the per-tensor CRC-32 check at load\n"
           "  -h, --help    this help\n");
}

int main(int argc, char **argv)
{
    const char *model_path = CLI_DEFAULT_MODEL;
    int decode = 0, count = 0;
    gpt2_load_opts lo = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage();
            return 0;
        } else if (!strcmp(argv[i], "--model")) {
            model_path = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(argv[i], "--decode")) {
            decode = 1;
        } else if (!strcmp(argv[i], "--count")) {
            count = 1;
        } else if (!strcmp(argv[i], "--no-crc")) {
            lo.skip_crc = 1;
        } else {
            cli_usage_error(PROG, "unknown option '%s'", argv[i]);
        }
    }
    if (decode && count)
        cli_usage_error(PROG, "--decode and --count cannot be combined");
    gpt2_error err = {0};
    gpt2_model *m = gpt2_model_load(model_path, &lo, &err);
    if (!m)
        cli_die(PROG, "%s", err.msg);
    size_t len;
    char *in = cli_read_all(stdin, &len);
    if (!in)
        cli_die(PROG, "cannot read stdin");
    if (decode) {
        int n;
        int *ids = cli_parse_ids(PROG, "stdin", in, gpt2_model_config(m)->n_vocab, &n);
        for (int i = 0; i < n; i++) {
            size_t bl;
            const char *b = gpt2_token_bytes(m, ids[i], &bl);
            fwrite(b, 1, bl, stdout);
        }
        free(ids);
    } else {
        int need = gpt2_tokenize(m, in, len, NULL, 0, &err);
        if (need < 0)
            cli_die(PROG, "stdin: %s", err.msg);
        int *ids = malloc(sizeof(int) * (size_t)(need + 1));
        if (!ids)
            cli_die(PROG, "out of memory");
        gpt2_tokenize(m, in, len, ids, need, &err);
        if (count) {
            printf("%d\n", need);
        } else {
            for (int i = 0; i < need; i++)
                printf(i ? " %d" : "%d", ids[i]);
            printf("\n");
        }
        free(ids);
    }
    if (fflush(stdout) != 0)
        cli_die(PROG, "write to stdout failed");
    free(in);
    gpt2_model_free(m);
    return 0;
}
