/* Fuzz target: the vocabulary files of a Hugging Face checkpoint
 * (vocab.json + merges.txt, gpt2_vocab_parse) and the tokenizer built from
 * what they hold. The input is vocab.json, a NUL byte, then merges.txt (no
 * NUL: all of it is vocab.json and merges.txt is empty). A tokenizer that
 * builds encodes part of the input.
 * Invariants: a refusal is an error status with a message naming a file;
 * decode(encode(x)) == x whenever encode succeeds. */
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "tokenizer.h"
#include "vocab.h"

static void check_refusal(const gpt2_error *err)
{
    FUZZ_CHECK(err->code < 0, "code %d", err->code);
    FUZZ_CHECK(strstr(err->msg, "vocab.json") || strstr(err->msg, "merges.txt"),
               "message names no file: %s", err->msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *json = (const char *)data;
    const char *nul = memchr(json, 0, size);
    const size_t json_len = nul ? (size_t)(nul - json) : size;
    const char *bpe = nul ? nul + 1 : json + size;
    const size_t bpe_len = size - json_len - (nul ? 1 : 0);
    gpt2_vocab v;
    gpt2_error err;
    if (gpt2_vocab_parse(json, json_len, "vocab.json", bpe, bpe_len, "merges.txt", &v, &err) < 0) {
        check_refusal(&err);
        return 0;
    }
    gpt2_tokenizer *t = gpt2_tokenizer_create((const char *const *)v.tokens, v.token_lens,
                                              v.n_tokens, (const char *const *)v.merges,
                                              v.merge_lens, v.n_merges, "vocab.json", &err);
    gpt2_vocab_free(&v);
    if (!t) {
        check_refusal(&err);
        return 0;
    }
    const size_t len = bpe_len < 64 ? bpe_len : 64; /* some bytes as text */
    int ids[64];
    int n = gpt2_tokenizer_encode(t, bpe, len, ids, 64, &err);
    if (n >= 0) {
        FUZZ_CHECK((size_t)n <= len, "%d ids for %zu bytes", n, len);
        char back[64];
        long got = gpt2_tokenizer_decode(t, ids, n, back, sizeof back, &err);
        FUZZ_CHECK(got == (long)len && memcmp(back, bpe, len) == 0, "round trip: %ld of %zu",
                   got, len);
    } else {
        FUZZ_CHECK(n == GPT2_ERR_TOKENIZE, "encode status %d: %s", n, err.msg);
    }
    gpt2_tokenizer_free(t);
    return 0;
}
