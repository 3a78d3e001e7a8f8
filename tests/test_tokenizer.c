/* Tokenizer and vocabulary tests: ids against the independent Python reference
 * (tests/reference/tokenizer_ref.py -> tests/fixtures/tokenizer_expected.txt),
 * round trips on the corpus and on random bytes, buffer contracts, truncated
 * vocabularies, vocabulary parse errors, and a 1 MB word. */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpt2.h"
#include "tokenizer.h"
#include "vocab.h"

/* ---- helpers ------------------------------------------------------------ */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static gpt2_tokenizer *tok_from_vocab(const gpt2_vocab *v, const char *where)
{
    gpt2_error err = {0};
    gpt2_tokenizer *t =
        gpt2_tokenizer_create((const char *const *)v->tokens, v->token_lens, v->n_tokens,
                              (const char *const *)v->merges, v->merge_lens, v->n_merges, where,
                              &err);
    ck_assert_msg(t != NULL, "tokenizer_create: %s", err.msg);
    return t;
}

static gpt2_tokenizer *embedded_tok(void)
{
    gpt2_vocab v;
    gpt2_error err = {0};
    ck_assert_msg(gpt2_vocab_embedded(&v, &err) == GPT2_OK, "vocab_embedded: %s", err.msg);
    gpt2_tokenizer *t = tok_from_vocab(&v, "embedded");
    gpt2_vocab_free(&v);
    return t;
}

/* Encodes into a fresh array (*n ids); fails the test on an error. */
static int *encode_all(const gpt2_tokenizer *t, const char *s, size_t len, int *n)
{
    gpt2_error err = {0};
    int need = gpt2_tokenizer_encode(t, s, len, NULL, 0, &err);
    ck_assert_msg(need >= 0, "encode (count): %s", err.msg);
    int *ids = malloc(((size_t)need + 1) * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    int got = gpt2_tokenizer_encode(t, s, len, ids, need, &err);
    ck_assert_msg(got == need, "encode: %d ids, the count query said %d (%s)", got, need,
                  err.msg);
    *n = need;
    return ids;
}

static void hex_dump(FILE *f, const unsigned char *s, size_t n, size_t max)
{
    for (size_t i = 0; i < n && i < max; i++)
        fprintf(f, "%02x", s[i]);
    if (n > max)
        fprintf(f, "... (%zu bytes)", n);
}

static void print_ids(FILE *f, const char *label, const int *ids, int n, int from)
{
    fprintf(f, "  %s (%d ids, from #%d):", label, n, from);
    for (int i = from; i < n && i < from + 40; i++)
        fprintf(f, " %d", ids[i]);
    fprintf(f, n > from + 40 ? " ...\n" : "\n");
}

/* decode(encode(s)) == s, and every id is in range. */
static void check_round_trip(const gpt2_tokenizer *t, const char *s, size_t len, const char *what)
{
    int n;
    int *ids = encode_all(t, s, len, &n);
    for (int i = 0; i < n; i++)
        ck_assert_msg(ids[i] >= 0 && ids[i] < gpt2_tokenizer_n_vocab(t), "%s: id %d out of range",
                      what, ids[i]);
    char *buf = malloc(len + 1);
    ck_assert_ptr_nonnull(buf);
    gpt2_error err = {0};
    long k = gpt2_tokenizer_decode(t, ids, n, buf, len + 1, &err);
    ck_assert_msg(k == (long)len, "%s: decode gave %ld bytes, expected %zu (%s)", what, k, len,
                  err.msg);
    if (memcmp(buf, s, len) != 0) {
        size_t i = 0;
        while (buf[i] == s[i])
            i++;
        ck_abort_msg("%s: round trip differs at byte %zu of %zu", what, i, len);
    }
    free(buf);
    free(ids);
}

/* ---- the reference cases --------------------------------------------------- */

typedef struct {
    unsigned char *bytes;
    size_t len;
    int *ids;
    int n_ids;
} ref_case;

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static ref_case *load_cases(int *n_cases)
{
    const char *src = getenv("GPT2C_SOURCE_DIR");
    ck_assert_msg(src != NULL, "GPT2C_SOURCE_DIR is not set (run through ctest)");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/tokenizer_expected.txt", src);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ref_case *cases = NULL;
    int n = 0, cap = 0, line_no = 0;
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t got;
    while ((got = getline(&line, &line_cap, f)) >= 0) {
        line_no++;
        if (got == 0 || line[0] == '#')
            continue;
        char *tab = strchr(line, '\t');
        ck_assert_msg(tab != NULL, "%s:%d: expected <hex> TAB <ids>", path, line_no);
        size_t hex_len = (size_t)(tab - line);
        ck_assert_msg(hex_len % 2 == 0, "%s:%d: odd hex length", path, line_no);
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            cases = realloc(cases, (size_t)cap * sizeof *cases);
            ck_assert_ptr_nonnull(cases);
        }
        ref_case *c = &cases[n++];
        c->len = hex_len / 2;
        c->bytes = malloc(c->len + 1);
        ck_assert_ptr_nonnull(c->bytes);
        for (size_t i = 0; i < c->len; i++) {
            int hi = hexval(line[2 * i]), lo = hexval(line[2 * i + 1]);
            ck_assert_msg(hi >= 0 && lo >= 0, "%s:%d: bad hex", path, line_no);
            c->bytes[i] = (unsigned char)(hi << 4 | lo);
        }
        c->ids = malloc(((size_t)got / 2 + 1) * sizeof *c->ids);
        ck_assert_ptr_nonnull(c->ids);
        c->n_ids = 0;
        for (char *p = tab + 1; *p && *p != '\n';) {
            char *end;
            long v = strtol(p, &end, 10);
            ck_assert_msg(end != p, "%s:%d: bad id list", path, line_no);
            c->ids[c->n_ids++] = (int)v;
            p = end;
            while (*p == ' ')
                p++;
        }
    }
    free(line);
    fclose(f);
    ck_assert_msg(n >= 150, "%s: expected at least 150 cases, found %d", path, n);
    *n_cases = n;
    return cases;
}

static void free_cases(ref_case *c, int n)
{
    for (int i = 0; i < n; i++) {
        free(c[i].bytes);
        free(c[i].ids);
    }
    free(c);
}

/* Compares every case; returns the index of the first mismatch or -1. */
static int compare_cases(const gpt2_tokenizer *t, const ref_case *cases, int n, long *n_tokens,
                         int verbose)
{
    long tokens = 0;
    for (int k = 0; k < n; k++) {
        const ref_case *c = &cases[k];
        int m;
        int *ids = encode_all(t, (const char *)c->bytes, c->len, &m);
        int same = m == c->n_ids && memcmp(ids, c->ids, (size_t)m * sizeof *ids) == 0;
        if (!same) {
            if (verbose) {
                int first = 0;
                while (first < m && first < c->n_ids && ids[first] == c->ids[first])
                    first++;
                fprintf(stderr,
                        "tokenizer: case %d differs from the reference at id #%d\n  input: ",
                        k + 1, first);
                hex_dump(stderr, c->bytes, c->len, 200);
                fprintf(stderr, "\n");
                print_ids(stderr, "expected", c->ids, c->n_ids, first > 5 ? first - 5 : 0);
                print_ids(stderr, "got     ", ids, m, first > 5 ? first - 5 : 0);
            }
            free(ids);
            return k;
        }
        tokens += m;
        free(ids);
    }
    *n_tokens = tokens;
    return -1;
}

START_TEST(test_reference_ids)
{
    gpt2_tokenizer *t = embedded_tok();
    int n;
    ref_case *cases = load_cases(&n);
    long tokens = 0;
    int bad = compare_cases(t, cases, n, &tokens, 1);
    ck_assert_msg(bad < 0, "case %d differs from the reference (details on stderr)", bad + 1);
    printf("tokenizer: %d strings, %ld tokens agree with the Python reference\n", n, tokens);
    fflush(stdout);
    free_cases(cases, n);
    gpt2_tokenizer_free(t);
}
END_TEST

START_TEST(test_corpus_round_trip)
{
    gpt2_tokenizer *t = embedded_tok();
    int n;
    ref_case *cases = load_cases(&n);
    for (int k = 0; k < n; k++) {
        char what[64];
        snprintf(what, sizeof what, "corpus case %d", k + 1);
        check_round_trip(t, (const char *)cases[k].bytes, cases[k].len, what);
    }
    free_cases(cases, n);
    gpt2_tokenizer_free(t);
}
END_TEST

/* ---- several threads encode at once ---------------------------------------- */

typedef struct {
    const gpt2_tokenizer *t;
    const ref_case *cases;
    int n;
    int bad;
} thread_arg;

static void *thread_main(void *p)
{
    thread_arg *a = p;
    long tokens;
    for (int rep = 0; rep < 3 && a->bad < 0; rep++)
        a->bad = compare_cases(a->t, a->cases, a->n, &tokens, 0);
    return NULL;
}

START_TEST(test_threads)
{
    gpt2_tokenizer *t = embedded_tok();
    int n;
    ref_case *cases = load_cases(&n);
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){t, cases, n, -1};
        ck_assert_int_eq(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(args[i].bad < 0, "thread %d: case %d differs", i, args[i].bad + 1);
    }
    free_cases(cases, n);
    gpt2_tokenizer_free(t);
}
END_TEST

/* ---- random round trips ------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64: seeded, the same on every machine */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t put_utf8(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A code point from the interesting ranges: ASCII, whitespace, Latin, CJK,
 * emoji, combining marks, and anything at all (surrogates included). */
static uint32_t random_cp(uint64_t *s)
{
    static const uint32_t spaces[] = {0x20, 0x20, 0x09, 0x0a, 0x0d, 0x0b, 0x85, 0xa0,
                                      0x1c, 0x1680, 0x2003, 0x2028, 0x3000, 0x200b};
    uint64_t r = rng_next(s);
    switch (r % 8) {
    case 0:
    case 1: return 0x20 + (uint32_t)(r >> 8) % 95;
    case 2: return spaces[(r >> 8) % (sizeof spaces / sizeof spaces[0])];
    case 3: return 0xa0 + (uint32_t)(r >> 8) % 0x200;
    case 4: return 0x4e00 + (uint32_t)(r >> 8) % 0x100;
    case 5: return 0x1f300 + (uint32_t)(r >> 8) % 0x300;
    case 6: return 0x300 + (uint32_t)(r >> 8) % 0x70;
    default: return (uint32_t)(r >> 8) % 0x110000;
    }
}

START_TEST(test_random_round_trip)
{
    gpt2_tokenizer *t = embedded_tok();
    uint64_t seed = 12345;
    char buf[1024];
    for (int k = 0; k < 4000; k++) {
        size_t len = 0, want = rng_next(&seed) % 200;
        int mode = k % 4;
        while (len < want) {
            uint64_t r = rng_next(&seed);
            int m = mode == 3 ? (int)(r % 3) : mode;
            if (m == 0) { /* any byte */
                buf[len++] = (char)(r >> 8);
            } else if (m == 1) { /* valid UTF-8 (surrogates give ED A0..BF xx) */
                len += put_utf8(random_cp(&seed), buf + len);
            } else { /* words and spaces */
                static const char *parts[] = {"the", " ", "  ", "'s", "'T", "\n", "42", "don't",
                                              " !", "\t", "\xc3\xa9", "\xe2\x80\xa8", "x"};
                const char *p = parts[(r >> 8) % (sizeof parts / sizeof parts[0])];
                memcpy(buf + len, p, strlen(p));
                len += strlen(p);
            }
        }
        char what[64];
        snprintf(what, sizeof what, "random string %d (mode %d)", k, mode);
        check_round_trip(t, buf, len, what);
    }
    gpt2_tokenizer_free(t);
}
END_TEST

/* ---- buffer contracts ------------------------------------------------------------ */

START_TEST(test_small_buffer)
{
    gpt2_tokenizer *t = embedded_tok();
    const char *s = "Hello world, this is a small test of the buffer contract.";
    gpt2_error err = {0};
    int need = gpt2_tokenizer_encode(t, s, strlen(s), NULL, 0, &err);
    ck_assert_int_gt(need, 5);
    int ids[64];
    for (int i = 0; i < 64; i++)
        ids[i] = -7;
    int got = gpt2_tokenizer_encode(t, s, strlen(s), ids, 3, &err);
    ck_assert_int_eq(got, need);
    ck_assert_int_eq(ids[0], 15496); /* "Hello" */
    ck_assert_int_eq(ids[1], 995);   /* " world" */
    for (int i = 3; i < 64; i++)
        ck_assert_int_eq(ids[i], -7); /* nothing written past max_ids */
    ck_assert_int_eq(gpt2_tokenizer_encode(t, s, strlen(s), ids, need, &err), need);
    ck_assert_int_eq(gpt2_tokenizer_encode(t, "", 0, ids, 64, &err), 0);

    /* decode: the full count, at most cap bytes written */
    char out[16];
    memset(out, '#', sizeof out);
    long k = gpt2_tokenizer_decode(t, ids, need, out, 4, &err);
    ck_assert_int_eq(k, (long)strlen(s));
    ck_assert_int_eq(memcmp(out, "Hell", 4), 0);
    for (int i = 4; i < 16; i++)
        ck_assert_int_eq(out[i], '#');
    ck_assert_int_eq(gpt2_tokenizer_decode(t, ids, need, NULL, 0, &err), (long)strlen(s));

    size_t len = 0;
    const char *b = gpt2_tokenizer_token_bytes(t, 995, &len);
    ck_assert_int_eq(len, 6);
    ck_assert_int_eq(memcmp(b, " world", 6), 0);
    b = gpt2_tokenizer_token_bytes(t, GPT2_EOS_TOKEN, &len);
    ck_assert_int_eq(len, 13);
    ck_assert_int_eq(memcmp(b, "<|endoftext|>", 13), 0);
    ck_assert_ptr_null(gpt2_tokenizer_token_bytes(t, -1, &len));
    ck_assert_ptr_null(gpt2_tokenizer_token_bytes(t, 50257, &len));
    ck_assert_int_eq(gpt2_tokenizer_n_vocab(t), 50257);
    gpt2_tokenizer_free(t);
}
END_TEST

START_TEST(test_decode_out_of_range)
{
    gpt2_tokenizer *t = embedded_tok();
    char out[64];
    gpt2_error err = {0};
    int bad1[] = {15496, 50257};
    ck_assert_int_eq(gpt2_tokenizer_decode(t, bad1, 2, out, sizeof out, &err),
                     GPT2_ERR_TOKENIZE);
    ck_assert_msg(strstr(err.msg, "50257") && strstr(err.msg, "position 1"), "msg: %s",
                  err.msg);
    int bad2[] = {-1};
    ck_assert_int_eq(gpt2_tokenizer_decode(t, bad2, 1, out, sizeof out, &err),
                     GPT2_ERR_TOKENIZE);
    int eos[] = {GPT2_EOS_TOKEN};
    ck_assert_int_eq(gpt2_tokenizer_decode(t, eos, 1, out, sizeof out, &err), 13);
    gpt2_tokenizer_free(t);
}
END_TEST

/* ---- byte <-> unicode table and the embedded vocabulary ---------------------------- */

START_TEST(test_byte_table)
{
    unsigned seen[0x144] = {0};
    for (int b = 0; b < 256; b++) {
        unsigned u = gpt2_byte_to_unicode((unsigned char)b);
        ck_assert_uint_lt(u, 0x144);
        ck_assert_uint_eq(seen[u], 0);
        seen[u] = 1;
    }
    ck_assert_uint_eq(gpt2_byte_to_unicode(' '), 0x120); /* 'Ġ' */
    ck_assert_uint_eq(gpt2_byte_to_unicode('\n'), 0x10a);
    ck_assert_uint_eq(gpt2_byte_to_unicode('A'), 'A');
    ck_assert_uint_eq(gpt2_byte_to_unicode(0xad), 0x143);

    gpt2_tokenizer *t = embedded_tok();
    gpt2_error err = {0};
    for (int b = 0; b < 256; b++) { /* every byte is a token of its own */
        char c = (char)b;
        int id;
        ck_assert_int_eq(gpt2_tokenizer_encode(t, &c, 1, &id, 1, &err), 1);
        size_t len;
        const char *p = gpt2_tokenizer_token_bytes(t, id, &len);
        ck_assert(len == 1 && p[0] == c);
    }
    gpt2_tokenizer_free(t);
}
END_TEST

START_TEST(test_embedded_matches_files)
{
    const char *src = getenv("GPT2C_SOURCE_DIR");
    ck_assert_ptr_nonnull(src);
    char jp[4096], bp[4096];
    snprintf(jp, sizeof jp, "%s/weights/vocab/encoder.json", src);
    snprintf(bp, sizeof bp, "%s/weights/vocab/vocab.bpe", src);
    gpt2_vocab a, b;
    gpt2_error err = {0};
    ck_assert_msg(gpt2_vocab_embedded(&a, &err) == GPT2_OK, "%s", err.msg);
    ck_assert_msg(gpt2_vocab_load(jp, bp, &b, &err) == GPT2_OK, "%s", err.msg);
    ck_assert_int_eq(a.n_tokens, 50257);
    ck_assert_int_eq(a.n_merges, 50000);
    ck_assert_int_eq(b.n_tokens, a.n_tokens);
    ck_assert_int_eq(b.n_merges, a.n_merges);
    for (int i = 0; i < a.n_tokens; i++)
        ck_assert(a.token_lens[i] == b.token_lens[i] && strcmp(a.tokens[i], b.tokens[i]) == 0);
    for (int i = 0; i < a.n_merges; i++)
        ck_assert(a.merge_lens[i] == b.merge_lens[i] && strcmp(a.merges[i], b.merges[i]) == 0);
    ck_assert_str_eq(a.tokens[GPT2_EOS_TOKEN], "<|endoftext|>");
    ck_assert_str_eq(a.merges[0], "\xc4\xa0 t"); /* "Ġ t" */
    gpt2_vocab_free(&a);
    gpt2_vocab_free(&b);
}
END_TEST

/* ---- truncated vocabularies ----------------------------------------------------- */

START_TEST(test_truncated_vocab)
{
    gpt2_vocab full, v;
    gpt2_error err = {0};
    ck_assert(gpt2_vocab_embedded(&full, &err) == GPT2_OK);
    ck_assert(gpt2_vocab_embedded(&v, &err) == GPT2_OK);
    ck_assert_int_eq(gpt2_vocab_truncate(&v, 300, &err), GPT2_OK);
    ck_assert_int_eq(v.n_tokens, 300);
    ck_assert_int_gt(v.n_merges, 0);
    ck_assert_int_lt(v.n_merges, 300);
    /* the kept merges are a subsequence of the full list, in rank order */
    int r = 0;
    for (int i = 0; i < v.n_merges; i++) {
        while (r < full.n_merges && strcmp(full.merges[r], v.merges[i]) != 0)
            r++;
        ck_assert_msg(r < full.n_merges, "merge \"%s\" out of order", v.merges[i]);
        r++;
    }
    gpt2_tokenizer *t = tok_from_vocab(&v, "truncated 300");
    ck_assert_int_eq(gpt2_tokenizer_n_vocab(t), 300);
    /* all 256 bytes are among the first 256 ids: anything encodes */
    const char *s = "Hello world! The tokenizer, cut to 300 tokens, round-trips \xff\xc3\xa9.";
    check_round_trip(t, s, strlen(s), "truncated 300");
    int n;
    int *ids = encode_all(t, "the the", 7, &n);
    ck_assert_int_lt(n, 7); /* some merges survived */
    free(ids);
    gpt2_tokenizer_free(t);

    ck_assert_int_eq(gpt2_vocab_truncate(&v, 100, &err), GPT2_OK);
    ck_assert_int_eq(v.n_tokens, 100);
    ck_assert_int_eq(v.n_merges, 0);
    t = tok_from_vocab(&v, "truncated 100");
    int id[16];
    ck_assert_int_eq(gpt2_tokenizer_encode(t, "hello", 5, id, 16, &err), 5);
    err.msg[0] = 0;
    ck_assert_int_eq(gpt2_tokenizer_encode(t, "hello world", 11, id, 16, &err),
                     GPT2_ERR_TOKENIZE);
    ck_assert_msg(strstr(err.msg, "0x20") && strstr(err.msg, "offset 5"), "msg: %s", err.msg);
    ck_assert_int_eq(gpt2_tokenizer_encode(t, "caf\xc3\xa9", 5, id, 16, &err),
                     GPT2_ERR_TOKENIZE);
    ck_assert_msg(strstr(err.msg, "0xC3"), "msg: %s", err.msg);
    gpt2_tokenizer_free(t);

    /* n_vocab >= n_tokens is a no-op */
    ck_assert_int_eq(gpt2_vocab_truncate(&full, 60000, &err), GPT2_OK);
    ck_assert_int_eq(full.n_tokens, 50257);
    ck_assert_int_eq(full.n_merges, 50000);
    gpt2_vocab_free(&v);
    gpt2_vocab_free(&full);
}
END_TEST

/* ---- vocabulary parse errors -------------------------------------------------- */

static void expect_parse_error(const char *json, const char *bpe, const char *needle1,
                               const char *needle2)
{
    gpt2_vocab v;
    gpt2_error err = {0};
    int rc = gpt2_vocab_parse(json, strlen(json), "bad.json", bpe, strlen(bpe), "bad.bpe", &v,
                              &err);
    ck_assert_msg(rc == GPT2_ERR_FORMAT, "expected a format error for %s / %s, got %d", json,
                  bpe, rc);
    ck_assert_msg(strstr(err.msg, needle1) && strstr(err.msg, needle2),
                  "message \"%s\" should contain \"%s\" and \"%s\"", err.msg, needle1, needle2);
    ck_assert_ptr_null(v.tokens);
}

START_TEST(test_vocab_errors)
{
    const char *ok_bpe = "#version: 0.2\na b\n";
    expect_parse_error("{\"a\": 0, \"b\": }", ok_bpe, "bad.json", "line 1");
    expect_parse_error("{\n\"a\": 0,\n\"b\" 1\n}", ok_bpe, "bad.json", "line 3");
    expect_parse_error("[1, 2]", ok_bpe, "bad.json", "object");
    expect_parse_error("{\"a\": 0, \"b\": 2}", ok_bpe, "bad.json", "no token with id 1");
    expect_parse_error("{\"a\": 0, \"b\": 0}", ok_bpe, "key \"b\"", "duplicate id 0");
    expect_parse_error("{\"a\": 0, \"b\": 1.5}", ok_bpe, "key \"b\"", "integer");
    expect_parse_error("{\"a\": 0, \"b\": \"1\"}", ok_bpe, "key \"b\"", "string");
    expect_parse_error("{\"a\": 0, \"b\": -1}", ok_bpe, "key \"b\"", "-1");
    expect_parse_error("{\"a\": 0}", "#version: 0.2\na b\nab\n", "bad.bpe", "line 3");
    expect_parse_error("{\"a\": 0}", "a b c\n", "bad.bpe", "line 1");
    expect_parse_error("{\"a\": 0}", "a b\n\n a\n", "bad.bpe", "line 3");
    expect_parse_error("{\"a\": 0}", "a  b\n", "bad.bpe", "found \"a  b\"");

    /* CRLF, blank lines, a missing final newline and no #version line are fine */
    gpt2_vocab v;
    gpt2_error err = {0};
    const char *json = "{\"a\": 1, \"b\": 0, \"ab\": 2}";
    const char *bpe = "#version: 0.2\r\na b\r\n\r\n\nb a";
    ck_assert_msg(gpt2_vocab_parse(json, strlen(json), "j", bpe, strlen(bpe), "m", &v, &err) ==
                      GPT2_OK,
                  "%s", err.msg);
    ck_assert_int_eq(v.n_tokens, 3);
    ck_assert_str_eq(v.tokens[0], "b");
    ck_assert_str_eq(v.tokens[2], "ab");
    ck_assert_int_eq(v.n_merges, 2);
    ck_assert_str_eq(v.merges[0], "a b");
    ck_assert_str_eq(v.merges[1], "b a");
    ck_assert_int_eq(v.merge_lens[1], 3);
    gpt2_vocab_free(&v);

    ck_assert_int_eq(gpt2_vocab_load("/nonexistent/vocab.json", "/nonexistent/m.txt", &v, &err),
                     GPT2_ERR_IO);
    ck_assert_msg(strstr(err.msg, "/nonexistent/vocab.json"), "msg: %s", err.msg);
}
END_TEST

START_TEST(test_tokenizer_create_errors)
{
    gpt2_error err = {0};
    const char *toks[] = {"a", "b", "ab", "\xe4\xb8\x80"};
    size_t lens[] = {1, 1, 2, 3};
    const char *merges[] = {"a b", "b a"};
    size_t mlens[] = {3, 3};
    /* a merge whose result is not a token */
    ck_assert_ptr_null(gpt2_tokenizer_create(toks, lens, 3, merges, mlens, 2, "tiny", &err));
    ck_assert_msg(strstr(err.msg, "tiny") && strstr(err.msg, "merge 1"), "msg: %s", err.msg);
    /* a token outside the byte<->unicode table (U+4E00) */
    ck_assert_ptr_null(gpt2_tokenizer_create(toks, lens, 4, merges, mlens, 1, "tiny", &err));
    ck_assert_msg(strstr(err.msg, "token 3") && strstr(err.msg, "U+4E00"), "msg: %s", err.msg);
    /* a well-formed tiny vocabulary works; bytes it lacks are rejected */
    gpt2_tokenizer *t = gpt2_tokenizer_create(toks, lens, 3, merges, mlens, 1, "tiny", &err);
    ck_assert_msg(t != NULL, "%s", err.msg);
    int ids[8];
    ck_assert_int_eq(gpt2_tokenizer_encode(t, "abba", 4, ids, 8, &err), 3);
    ck_assert_int_eq(ids[0], 2);
    ck_assert_int_eq(ids[1], 1);
    ck_assert_int_eq(ids[2], 0);
    ck_assert_int_eq(gpt2_tokenizer_encode(t, "abc", 3, ids, 8, &err), GPT2_ERR_TOKENIZE);
    gpt2_tokenizer_free(t);
}
END_TEST

/* ---- huge words ------------------------------------------------------------------- */

START_TEST(test_huge_word)
{
    gpt2_tokenizer *t = embedded_tok();
    size_t len = 1 << 20;
    char *s = malloc(len);
    ck_assert_ptr_nonnull(s);
    uint64_t seed = 7;
    for (size_t i = 0; i < len; i++) /* one 1 MB word of random letters */
        s[i] = (char)('a' + rng_next(&seed) % 26);
    double t0 = now_ms();
    check_round_trip(t, s, len, "1 MB random letters");
    double t1 = now_ms();
    memset(s, 'a', len);
    check_round_trip(t, s, len, "1 MB of 'a'");
    double t2 = now_ms();
    memset(s, ' ', len);
    check_round_trip(t, s, len, "1 MB of spaces");
    printf("tokenizer: 1 MB word: random letters %.0f ms, 'a' * 2^20 %.0f ms\n", t1 - t0,
           t2 - t1);
    fflush(stdout);
    free(s);
    gpt2_tokenizer_free(t);
}
END_TEST

static Suite *tokenizer_suite(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("tokenizer");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_corpus_round_trip);
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_random_round_trip);
    tcase_add_test(tc, test_small_buffer);
    tcase_add_test(tc, test_decode_out_of_range);
    tcase_add_test(tc, test_byte_table);
    tcase_add_test(tc, test_embedded_matches_files);
    tcase_add_test(tc, test_truncated_vocab);
    tcase_add_test(tc, test_vocab_errors);
    tcase_add_test(tc, test_tokenizer_create_errors);
    tcase_add_test(tc, test_huge_word);
    tcase_add_test(tc, test_reference_ids); /* last: its count line ends the output */
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tokenizer_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
