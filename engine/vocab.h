/* GPT-2 vocabulary files: encoder.json / vocab.json (token string -> id) and
 * vocab.bpe / merges.txt (one merge "A B" per line after a "#version" line).
 * Token and merge strings are kept in GPT-2's byte<->unicode form, exactly as
 * GGUF stores them in tokenizer.ggml.tokens / tokenizer.ggml.merges. */
#ifndef GPT2C_VOCAB_H
#define GPT2C_VOCAB_H

#include <stddef.h>

#include "gpt2.h"

typedef struct gpt2_vocab {
    int n_tokens;
    char **tokens;      /* tokens[id], NUL-terminated UTF-8 */
    size_t *token_lens;
    int n_merges;
    char **merges;      /* merges[rank], "A B" */
    size_t *merge_lens;
} gpt2_vocab;

/* Parses the two files' contents. Ids must be 0..n-1 without gaps or
 * duplicates. Errors name json_name / bpe_name, the line or key, and what was
 * expected. */
int gpt2_vocab_parse(const char *json, size_t json_len, const char *json_name, const char *bpe,
                     size_t bpe_len, const char *bpe_name, gpt2_vocab *out, gpt2_error *err);
/* Reads and parses two files. */
int gpt2_vocab_load(const char *json_path, const char *bpe_path, gpt2_vocab *out,
                    gpt2_error *err);
/* The GPT-2 vocabulary embedded in the library (50,257 tokens, 50,000 merges). */
int gpt2_vocab_embedded(gpt2_vocab *out, gpt2_error *err);
/* Keeps tokens with id < n_vocab and the merges whose two parts and result
 * are all kept (for small test models). No-op if n_vocab >= n_tokens. */
int gpt2_vocab_truncate(gpt2_vocab *v, int n_vocab, gpt2_error *err);
void gpt2_vocab_free(gpt2_vocab *v);

#endif
