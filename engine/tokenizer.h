/* GPT-2 byte-level BPE tokenizer.
 *
 * Encoding, as OpenAI's original encoder:
 *   1. split the input into pre-tokens with the pattern
 *        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *      where \p{L} / \p{N} are Unicode letter / number general categories and
 *      \s is the Unicode White_Space property;
 *   2. map each byte of a pre-token to its printable stand-in (byte<->unicode table);
 *   3. apply merges by rank (lowest first) until none applies; look up ids.
 * Bytes that are not valid UTF-8 each count as one code point of the "other"
 * class (neither letter, number nor space), so any byte string encodes and
 * decode(encode(x)) == x. "<|endoftext|>" in the input is ordinary text.
 *
 * The vocabulary comes from the GGUF keys tokenizer.ggml.tokens (strings in
 * the byte<->unicode form) and tokenizer.ggml.merges ("left right"). */
#ifndef GPT2C_TOKENIZER_H
#define GPT2C_TOKENIZER_H

#include <stddef.h>

#include "gpt2.h"

typedef struct gpt2_tokenizer gpt2_tokenizer;

/* tokens[i] (length token_lens[i]) is the token with id i; merges[r] is the
 * merge of rank r. Strings need not be NUL-terminated. `where` names the
 * source (file path) in error messages. Every token must decode to bytes via
 * the byte<->unicode table; every merge must be "A B" with A, B and AB tokens
 * (merges whose parts or result are not in the vocabulary are an error). */
gpt2_tokenizer *gpt2_tokenizer_create(const char *const *tokens, const size_t *token_lens,
                                      int n_tokens, const char *const *merges,
                                      const size_t *merge_lens, int n_merges, const char *where,
                                      gpt2_error *err);
void gpt2_tokenizer_free(gpt2_tokenizer *t);
int gpt2_tokenizer_n_vocab(const gpt2_tokenizer *t);

/* Writes up to max_ids ids; returns the number of ids the text needs (can be
 * larger than max_ids: call again with a bigger buffer) or a negative status
 * (GPT2_ERR_TOKENIZE when a byte has no token in a cut-down vocabulary). */
int gpt2_tokenizer_encode(const gpt2_tokenizer *t, const char *text, size_t len, int *ids,
                          int max_ids, gpt2_error *err);
/* Raw bytes of a token; NULL if out of range. */
const char *gpt2_tokenizer_token_bytes(const gpt2_tokenizer *t, int id, size_t *len);
/* Bytes of ids concatenated into buf (up to cap); returns the full byte count,
 * or GPT2_ERR_TOKENIZE for an id out of range. */
long gpt2_tokenizer_decode(const gpt2_tokenizer *t, const int *ids, int n, char *buf, size_t cap,
                           gpt2_error *err);

/* The byte<->unicode table of GPT-2: code point that stands for byte b. */
unsigned gpt2_byte_to_unicode(unsigned char b);

#endif
