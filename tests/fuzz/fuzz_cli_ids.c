/* Fuzz target: the token-id parser of the command-line programs
 * (cli_ids_parse: gpt2c-generate --ids, gpt2c-tokenize --decode), over the
 * GPT-2 vocabulary size.
 * Invariants: accepted ids are all in range, and there are no more of them
 * than the text could hold; a refusal says why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fuzz_check.h"

#define N_VOCAB 50257

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1); /* the parser takes a C string, as argv and stdin give */
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    int *ids = NULL, n = -1;
    char msg[256] = "";
    if (cli_ids_parse("prompt ids", text, N_VOCAB, &ids, &n, msg, sizeof msg) < 0) {
        FUZZ_CHECK(strncmp(msg, "prompt ids: ", 12) == 0, "message: %s", msg);
    } else {
        FUZZ_CHECK(n >= 0 && (size_t)n <= (size + 1) / 2, "%d ids from %zu bytes", n, size);
        for (int i = 0; i < n; i++)
            FUZZ_CHECK(ids[i] >= 0 && ids[i] < N_VOCAB, "id %d at %d", ids[i], i);
        free(ids);
    }
    free(text);
    return 0;
}
