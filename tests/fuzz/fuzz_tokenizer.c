/* Fuzz target: the byte-level BPE tokenizer with the embedded GPT-2
 * vocabulary. The input is encoded as text (any bytes: invalid UTF-8,
 * NULs, "<|endoftext|>"), and read again as little-endian int32 ids to
 * decode (any values: negative, past the vocabulary).
 * Invariants: decode(encode(x)) == x; encode into a short buffer reports the
 * same count; decode refuses exactly the ids out of range and reports the
 * full length when the buffer is short. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "tokenizer.h"
#include "vocab.h"

static gpt2_tokenizer *g_tok; /* built once: the vocabulary is 50,257 tokens */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    gpt2_vocab v;
    gpt2_error err;
    FUZZ_CHECK(gpt2_vocab_embedded(&v, &err) == 0, "%s", err.msg);
    g_tok = gpt2_tokenizer_create((const char *const *)v.tokens, v.token_lens, v.n_tokens,
                                  (const char *const *)v.merges, v.merge_lens, v.n_merges,
                                  "embedded vocabulary", &err);
    FUZZ_CHECK(g_tok != NULL, "%s", err.msg);
    gpt2_vocab_free(&v);
    return 0;
}

static void encode_round_trip(const char *text, size_t len)
{
    gpt2_error err;
    int small[4];
    int need = gpt2_tokenizer_encode(g_tok, text, len, small, 4, &err);
    FUZZ_CHECK(need >= 0 && (size_t)need <= len, "%d ids for %zu bytes: %s", need, len, err.msg);
    int *ids = malloc(sizeof(int) * (size_t)(need ? need : 1));
    char *back = malloc(len ? len : 1);
    FUZZ_CHECK(ids && back, "out of memory");
    int n = gpt2_tokenizer_encode(g_tok, text, len, ids, need, &err);
    FUZZ_CHECK(n == need, "%d ids, then %d", need, n);
    for (int i = 0; i < n && i < 4; i++)
        FUZZ_CHECK(ids[i] == small[i], "id %d: %d vs %d", i, ids[i], small[i]);
    long got = gpt2_tokenizer_decode(g_tok, ids, n, back, len, &err);
    FUZZ_CHECK(got == (long)len && memcmp(back, text, len) == 0, "round trip: %ld of %zu bytes",
               got, len);
    free(ids);
    free(back);
}

static void decode_ids(const uint8_t *data, size_t size)
{
    gpt2_error err;
    const int n = (int)(size / 4);
    int *ids = malloc(sizeof(int) * (size_t)(n ? n : 1));
    FUZZ_CHECK(ids != NULL, "out of memory");
    memcpy(ids, data, (size_t)n * 4);
    int bad = 0;
    long want = 0;
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        const char *b = gpt2_tokenizer_token_bytes(g_tok, ids[i], &len);
        if (!b)
            bad = 1;
        want += (long)len;
    }
    char buf[64];
    long got = gpt2_tokenizer_decode(g_tok, ids, n, buf, sizeof buf, &err);
    if (bad)
        FUZZ_CHECK(got == GPT2_ERR_TOKENIZE, "out-of-range id decoded: %ld", got);
    else
        FUZZ_CHECK(got == want, "decode says %ld bytes, the tokens hold %ld", got, want);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_tok)
        LLVMFuzzerInitialize(NULL, NULL);
    encode_round_trip((const char *)data, size);
    decode_ids(data, size);
    return 0;
}
