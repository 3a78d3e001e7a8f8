/* GPT-2 byte-level BPE, as OpenAI's encoder.py, over raw bytes.
 *
 * Tokens are kept as raw bytes (the byte<->unicode form is undone at create),
 * merges as a hash map (left id, right id) -> (rank, result id). Encoding
 * splits the text with a hand-written matcher for GPT-2's pattern, then runs
 * BPE on each piece with a linked list and a heap, so a huge word costs
 * O(n log n) instead of the original's O(n^2). The tokenizer is read-only
 * after create: every encode call has its own scratch memory. */
#include "tokenizer.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "errors.h"

struct gpt2_tokenizer {
    int n_tokens;
    char *blob;          /* all token bytes, back to back */
    size_t *off;         /* token i is blob[off[i] .. off[i + 1]) */
    int byte_tok[256];   /* id of the one-byte token for each byte, -1 if none */
    /* merge map, open addressing; key (left << 32 | right), MERGE_EMPTY = free */
    uint64_t *mkey;
    int32_t *mrank;
    int32_t *mres;
    size_t mmask;
};

#define MERGE_EMPTY UINT64_MAX

/* ---- byte <-> unicode ------------------------------------------------------ */

/* Printable Latin-1 bytes ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) stand for
 * themselves; the other 68 bytes, in increasing order, map to U+0100..U+0143. */
unsigned gpt2_byte_to_unicode(unsigned char b)
{
    if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae)
        return b;
    if (b <= 0x20)
        return 0x100u + b;
    if (b <= 0xa0)
        return 0x100u + 33 + (b - 0x7fu);
    return 0x100u + 33 + 34; /* 0xAD */
}

/* Inverse of gpt2_byte_to_unicode; -1 for a code point outside the table. */
static int unicode_to_byte(uint32_t cp)
{
    if ((cp >= 0x21 && cp <= 0x7e) || (cp >= 0xa1 && cp <= 0xac) || (cp >= 0xae && cp <= 0xff))
        return (int)cp;
    if (cp < 0x100 || cp > 0x143)
        return -1;
    uint32_t k = cp - 0x100;
    if (k <= 0x20)
        return (int)k;
    if (k < 33 + 34)
        return (int)(0x7f + k - 33);
    return 0xad;
}

/* ---- UTF-8 ----------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[i] (1..4) and its code point, or 0
 * if the byte at i does not start one. Strict as Python's decoder: no
 * overlongs, no surrogates, nothing above U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t len, size_t i, uint32_t *cp)
{
    unsigned b0 = s[i];
    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    }
    size_t left = len - i;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
        if (left < 2 || (s[i + 1] & 0xc0) != 0x80)
            return 0;
        *cp = ((b0 & 0x1fu) << 6) | (s[i + 1] & 0x3fu);
        return 2;
    }
    if (b0 >= 0xe0 && b0 <= 0xef) {
        unsigned lo = b0 == 0xe0 ? 0xa0 : 0x80, hi = b0 == 0xed ? 0x9f : 0xbf;
        if (left < 3 || s[i + 1] < lo || s[i + 1] > hi || (s[i + 2] & 0xc0) != 0x80)
            return 0;
        *cp = ((b0 & 0x0fu) << 12) | ((s[i + 1] & 0x3fu) << 6) | (s[i + 2] & 0x3fu);
        return 3;
    }
    if (b0 >= 0xf0 && b0 <= 0xf4) {
        unsigned lo = b0 == 0xf0 ? 0x90 : 0x80, hi = b0 == 0xf4 ? 0x8f : 0xbf;
        if (left < 4 || s[i + 1] < lo || s[i + 1] > hi || (s[i + 2] & 0xc0) != 0x80 ||
            (s[i + 3] & 0xc0) != 0x80)
            return 0;
        *cp = ((b0 & 0x07u) << 18) | ((s[i + 1] & 0x3fu) << 12) | ((s[i + 2] & 0x3fu) << 6) |
              (s[i + 3] & 0x3fu);
        return 4;
    }
    return 0;
}

/* ---- pre-tokenizer ------------------------------------------------------------ */

enum { CLS_LETTER, CLS_NUMBER, CLS_SPACE, CLS_OTHER };

/* \s of the pattern: the Unicode White_Space property (U+001C..U+001F and
 * U+180E are not in it). */
static int is_white_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

static int cp_class(uint32_t cp)
{
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z')
            return CLS_LETTER;
        if (cp >= '0' && cp <= '9')
            return CLS_NUMBER;
        return is_white_space(cp) ? CLS_SPACE : CLS_OTHER;
    }
    if (is_white_space(cp))
        return CLS_SPACE;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: return CLS_LETTER;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO: return CLS_NUMBER;
    default: return CLS_OTHER;
    }
}

/* Class of the code point at s[i] and its byte length; an invalid byte is one
 * code point of class "other" (Python's surrogateescape does the same). */
static int class_at(const unsigned char *s, size_t len, size_t i, size_t *n)
{
    uint32_t cp;
    int k = utf8_valid(s, len, i, &cp);
    if (k == 0) {
        *n = 1;
        return CLS_OTHER;
    }
    *n = (size_t)k;
    return cp_class(cp);
}

/* End of the run of class `cls` that starts at byte j. */
static size_t run_end(const unsigned char *s, size_t len, size_t j, int cls)
{
    while (j < len) {
        size_t n;
        if (class_at(s, len, j, &n) != cls)
            break;
        j += n;
    }
    return j;
}

/* End of the pre-token starting at i (i < len), matching, as the regex does,
 * the first alternative of
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t pretoken_end(const unsigned char *s, size_t len, size_t i)
{
    /* contractions: ASCII apostrophe, lower case only */
    if (s[i] == '\'' && i + 1 < len) {
        unsigned char a = s[i + 1];
        if (a == 's' || a == 't' || a == 'm' || a == 'd')
            return i + 2;
        if (i + 2 < len) {
            unsigned char b = s[i + 2];
            if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
                return i + 3;
        }
    }
    size_t n;
    int cls = class_at(s, len, i, &n);
    size_t j = i + n;
    /* " ?X+": an optional U+0020 (only that space) glued to a run of X */
    if (s[i] == ' ' && j < len) {
        size_t n1;
        int c1 = class_at(s, len, j, &n1);
        if (c1 != CLS_SPACE)
            return run_end(s, len, j + n1, c1);
    }
    if (cls != CLS_SPACE)
        return run_end(s, len, j, cls);
    /* \s+(?!\S): the whole run at the end of the text; before a non-space the
     * regex backtracks one code point, leaving the last one to the next
     * pre-token (" word" if it is U+0020, a lone "\s+" match otherwise). */
    size_t last = i;
    while (j < len) {
        size_t k;
        if (class_at(s, len, j, &k) != CLS_SPACE)
            break;
        last = j;
        j += k;
    }
    if (j < len && last > i)
        return last;
    return j; /* end of text, or one whitespace char before a non-space: \s+ */
}

/* ---- merge map ------------------------------------------------------------ */

static size_t merge_slot(const gpt2_tokenizer *t, uint64_t key)
{
    return (size_t)((key * 0x9e3779b97f4a7c15ull) >> 20) & t->mmask;
}

/* Rank of merging ids (a, b) and its result, or -1 if there is no such merge. */
static int merge_find(const gpt2_tokenizer *t, int a, int b, int *res)
{
    if (a < 0 || b < 0)
        return -1;
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (size_t i = merge_slot(t, key);; i = (i + 1) & t->mmask) {
        if (t->mkey[i] == key) {
            *res = t->mres[i];
            return t->mrank[i];
        }
        if (t->mkey[i] == MERGE_EMPTY)
            return -1;
    }
}

/* ---- create / free ------------------------------------------------------------ */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* Token bytes -> id, used only while building the merge map. */
typedef struct {
    int *slot; /* -1 = empty */
    size_t mask;
    const gpt2_tokenizer *t;
} tok_map;

static int tok_find(const tok_map *m, const char *s, size_t n)
{
    const gpt2_tokenizer *t = m->t;
    for (size_t i = hash_bytes(s, n) & m->mask;; i = (i + 1) & m->mask) {
        int id = m->slot[i];
        if (id < 0)
            return -1;
        if (t->off[id + 1] - t->off[id] == n && memcmp(t->blob + t->off[id], s, n) == 0)
            return id;
    }
}

/* Undoes the byte<->unicode form of s into out (at least n bytes); returns the
 * byte count or -1, with the offending code point in *bad. */
static long unicode_to_bytes(const char *s, size_t n, char *out, uint32_t *bad)
{
    const unsigned char *u = (const unsigned char *)s;
    long k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int len = utf8_valid(u, n, i, &cp);
        if (len == 0) {
            *bad = UINT32_MAX; /* not UTF-8 at all */
            return -1;
        }
        int b = unicode_to_byte(cp);
        if (b < 0) {
            *bad = cp;
            return -1;
        }
        out[k++] = (char)b;
        i += (size_t)len;
    }
    return k;
}

/* "U+XXXX", or "invalid UTF-8" for the marker unicode_to_bytes leaves. */
static const char *cp_name(uint32_t cp, char buf[16])
{
    if (cp == UINT32_MAX)
        return "invalid UTF-8";
    snprintf(buf, 16, "U+%04X", (unsigned)cp);
    return buf;
}

void gpt2_tokenizer_free(gpt2_tokenizer *t)
{
    if (!t)
        return;
    free(t->blob);
    free(t->off);
    free(t->mkey);
    free(t->mrank);
    free(t->mres);
    free(t);
}

static int create_tokens(gpt2_tokenizer *t, const char *const *tokens, const size_t *token_lens,
                         int n_tokens, const char *where, gpt2_error *err)
{
    size_t total = 0;
    for (int i = 0; i < n_tokens; i++) {
        if (!tokens[i])
            return gpt2_seterr(err, GPT2_ERR_INVALID, "%s: token %d is NULL", where, i);
        total += token_lens[i]; /* bytes never outnumber UTF-8 bytes */
    }
    t->blob = malloc(total ? total : 1);
    t->off = malloc(((size_t)n_tokens + 1) * sizeof *t->off);
    if (!t->blob || !t->off)
        return gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory for %d tokens", where,
                           n_tokens);
    size_t pos = 0;
    for (int i = 0; i < n_tokens; i++) {
        uint32_t bad = 0;
        char name[16];
        t->off[i] = pos;
        long k = unicode_to_bytes(tokens[i], token_lens[i], t->blob + pos, &bad);
        if (k < 0)
            return gpt2_seterr(err, GPT2_ERR_FORMAT,
                               "%s: token %d (\"%.*s\"): expected characters of GPT-2's "
                               "byte<->unicode table, found %s",
                               where, i, token_lens[i] > 60 ? 60 : (int)token_lens[i],
                               tokens[i], cp_name(bad, name));
        pos += (size_t)k;
    }
    t->off[n_tokens] = pos;
    return GPT2_OK;
}

static int create_merges(gpt2_tokenizer *t, const tok_map *tm, const char *const *merges,
                         const size_t *merge_lens, int n_merges, const char *where,
                         gpt2_error *err)
{
    size_t cap = 16;
    while (cap < 2 * (size_t)n_merges)
        cap *= 2;
    t->mkey = malloc(cap * sizeof *t->mkey);
    t->mrank = malloc(cap * sizeof *t->mrank);
    t->mres = malloc(cap * sizeof *t->mres);
    t->mmask = cap - 1;
    if (!t->mkey || !t->mrank || !t->mres)
        return gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory for %d merges", where,
                           n_merges);
    for (size_t i = 0; i < cap; i++)
        t->mkey[i] = MERGE_EMPTY;
    char *buf = NULL; /* "A" bytes then "B" bytes: AB in one piece */
    size_t buf_cap = 0;
    int rc = GPT2_OK;
    for (int r = 0; r < n_merges && rc == GPT2_OK; r++) {
        const char *s = merges[r];
        size_t n = merge_lens[r];
        int q = n > 60 ? 60 : (int)n;
        const char *sp = s ? memchr(s, ' ', n) : NULL;
        if (!sp || sp == s || sp == s + n - 1 || memchr(sp + 1, ' ', (size_t)(s + n - sp - 1))) {
            rc = gpt2_seterr(err, GPT2_ERR_FORMAT,
                             "%s: merge %d: expected \"A B\" (two tokens separated by one "
                             "space), found \"%.*s\"",
                             where, r, s ? q : 0, s ? s : "");
            break;
        }
        if (n > buf_cap) {
            free(buf);
            buf_cap = 2 * n;
            buf = malloc(buf_cap);
            if (!buf) {
                rc = gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory", where);
                break;
            }
        }
        size_t la = (size_t)(sp - s);
        uint32_t bad = 0;
        char name[16];
        long ka = unicode_to_bytes(s, la, buf, &bad);
        long kb = ka < 0 ? -1 : unicode_to_bytes(sp + 1, n - la - 1, buf + ka, &bad);
        if (kb < 0) {
            rc = gpt2_seterr(err, GPT2_ERR_FORMAT,
                             "%s: merge %d (\"%.*s\"): expected characters of GPT-2's "
                             "byte<->unicode table, found %s",
                             where, r, q, s, cp_name(bad, name));
            break;
        }
        int a = tok_find(tm, buf, (size_t)ka), b = tok_find(tm, buf + ka, (size_t)kb);
        int ab = tok_find(tm, buf, (size_t)(ka + kb));
        if (a < 0 || b < 0 || ab < 0) {
            const char *what = a < 0 ? "its left part" : b < 0 ? "its right part" : "its result";
            rc = gpt2_seterr(err, GPT2_ERR_FORMAT,
                             "%s: merge %d (\"%.*s\"): expected its parts and result to be "
                             "tokens, found %s missing from the vocabulary",
                             where, r, q, s, what);
            break;
        }
        uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
        size_t i = merge_slot(t, key);
        while (t->mkey[i] != MERGE_EMPTY && t->mkey[i] != key)
            i = (i + 1) & t->mmask;
        /* a repeated merge keeps its last rank, as the original's dict does */
        t->mkey[i] = key;
        t->mrank[i] = r;
        t->mres[i] = ab;
    }
    free(buf);
    return rc;
}

gpt2_tokenizer *gpt2_tokenizer_create(const char *const *tokens, const size_t *token_lens,
                                      int n_tokens, const char *const *merges,
                                      const size_t *merge_lens, int n_merges, const char *where,
                                      gpt2_error *err)
{
    where = where ? where : "tokenizer";
    if (!tokens || !token_lens || n_tokens <= 0 || n_merges < 0 ||
        (n_merges > 0 && (!merges || !merge_lens))) {
        gpt2_seterr(err, GPT2_ERR_INVALID,
                    "%s: expected at least one token and valid arrays (n_tokens %d, n_merges "
                    "%d)",
                    where, n_tokens, n_merges);
        return NULL;
    }
    gpt2_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory", where);
        return NULL;
    }
    t->n_tokens = n_tokens;
    tok_map tm = {0};
    int rc = create_tokens(t, tokens, token_lens, n_tokens, where, err);
    if (rc == GPT2_OK) {
        size_t cap = 16;
        while (cap < 2 * (size_t)n_tokens)
            cap *= 2;
        tm.slot = malloc(cap * sizeof *tm.slot);
        tm.mask = cap - 1;
        tm.t = t;
        if (!tm.slot)
            rc = gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory", where);
    }
    if (rc == GPT2_OK) {
        memset(tm.slot, 0xff, (tm.mask + 1) * sizeof *tm.slot);
        for (int id = 0; id < n_tokens; id++) {
            const char *s = t->blob + t->off[id];
            size_t n = t->off[id + 1] - t->off[id];
            if (n == 0 || tok_find(&tm, s, n) >= 0)
                continue; /* an empty token never matches; a repeated one: lowest id */
            size_t i = hash_bytes(s, n) & tm.mask;
            while (tm.slot[i] >= 0)
                i = (i + 1) & tm.mask;
            tm.slot[i] = id;
        }
        for (int b = 0; b < 256; b++) {
            char c = (char)b;
            t->byte_tok[b] = tok_find(&tm, &c, 1);
        }
        rc = create_merges(t, &tm, merges, merge_lens, n_merges, where, err);
    }
    free(tm.slot);
    if (rc != GPT2_OK) {
        gpt2_tokenizer_free(t);
        return NULL;
    }
    return t;
}

int gpt2_tokenizer_n_vocab(const gpt2_tokenizer *t) { return t ? t->n_tokens : 0; }

/* ---- BPE ------------------------------------------------------------------------ */

/* A candidate merge of adjacent symbols; stale once either symbol changed. */
typedef struct {
    int32_t rank, left, right, id_left, id_right, result;
} pair_ent;

typedef struct {
    int32_t *id, *next, *prev; /* symbols of the word, a linked list by byte position */
    pair_ent *heap;
    size_t cap; /* bytes of word the arrays hold */
} bpe_scratch;

static int scratch_reserve(bpe_scratch *w, size_t n)
{
    if (n <= w->cap)
        return 1;
    size_t cap = w->cap ? w->cap : 64;
    while (cap < n)
        cap *= 2;
    free(w->id);
    free(w->next);
    free(w->prev);
    free(w->heap);
    w->id = malloc(cap * sizeof *w->id);
    w->next = malloc(cap * sizeof *w->next);
    w->prev = malloc(cap * sizeof *w->prev);
    /* live entries <= pushes - pops <= (n - 1 + 2 merges) - merges < 2n */
    w->heap = malloc(2 * cap * sizeof *w->heap);
    w->cap = cap;
    if (!w->id || !w->next || !w->prev || !w->heap) {
        w->cap = 0;
        return 0;
    }
    return 1;
}

/* Lower rank first; at equal rank (the same pair) the leftmost, which is how
 * the original merges every occurrence of a pair left to right. */
static int ent_less(const pair_ent *a, const pair_ent *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(pair_ent *h, size_t *n, pair_ent e)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ent_less(&e, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static pair_ent heap_pop(pair_ent *h, size_t *n)
{
    pair_ent top = h[0], e = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m)
            break;
        if (c + 1 < m && ent_less(&h[c + 1], &h[c]))
            c++;
        if (!ent_less(&h[c], &e))
            break;
        h[i] = h[c];
        i = c;
    }
    if (m > 0)
        h[i] = e;
    return top;
}

static void push_pair(const gpt2_tokenizer *t, bpe_scratch *w, size_t *hn, int32_t l)
{
    int32_t r = w->next[l];
    int res;
    if (r < 0)
        return;
    int rank = merge_find(t, w->id[l], w->id[r], &res);
    if (rank >= 0)
        heap_push(w->heap, hn, (pair_ent){rank, l, r, w->id[l], w->id[r], res});
}

/* BPE of one pre-token; the symbols left are read from w->id via w->next
 * starting at 0. */
static void bpe_word(const gpt2_tokenizer *t, bpe_scratch *w, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        w->id[i] = t->byte_tok[s[i]];
        w->next[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        w->prev[i] = (int32_t)i - 1;
    }
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++)
        push_pair(t, w, &hn, (int32_t)i);
    while (hn > 0) {
        pair_ent e = heap_pop(w->heap, &hn);
        int32_t l = e.left, r = e.right;
        if (w->next[l] != r || w->id[l] != e.id_left || w->id[r] != e.id_right)
            continue; /* stale: a neighbour merged since this was pushed */
        w->id[l] = e.result;
        w->next[l] = w->next[r];
        if (w->next[r] >= 0)
            w->prev[w->next[r]] = l;
        w->next[r] = -2; /* dead: no entry with left == r can match again */
        if (w->prev[l] >= 0)
            push_pair(t, w, &hn, w->prev[l]);
        push_pair(t, w, &hn, l);
    }
}

int gpt2_tokenizer_encode(const gpt2_tokenizer *t, const char *text, size_t len, int *ids,
                          int max_ids, gpt2_error *err)
{
    if (!t || (!text && len > 0) || max_ids < 0 || (!ids && max_ids > 0))
        return gpt2_seterr(err, GPT2_ERR_INVALID, "gpt2_tokenizer_encode: invalid argument");
    if (len > (size_t)INT_MAX)
        return gpt2_seterr(err, GPT2_ERR_INVALID,
                           "gpt2_tokenizer_encode: expected at most %d bytes, found %zu",
                           INT_MAX, len);
    const unsigned char *s = (const unsigned char *)text;
    bpe_scratch w = {0};
    int count = 0, rc = GPT2_OK;
    for (size_t i = 0; i < len;) {
        size_t end = pretoken_end(s, len, i), n = end - i;
        if (n == 1) { /* common case: no merge possible */
            int id = t->byte_tok[s[i]];
            if (id < 0) {
                rc = gpt2_seterr(err, GPT2_ERR_TOKENIZE,
                                 "gpt2_tokenizer_encode: byte 0x%02X at offset %zu has no "
                                 "token in this vocabulary (%d tokens)",
                                 s[i], i, t->n_tokens);
                break;
            }
            if (count < max_ids)
                ids[count] = id;
            count++;
            i = end;
            continue;
        }
        if (!scratch_reserve(&w, n)) {
            rc = gpt2_seterr(err, GPT2_ERR_NOMEM,
                             "gpt2_tokenizer_encode: out of memory for a %zu-byte word", n);
            break;
        }
        bpe_word(t, &w, s + i, n);
        for (int32_t k = 0; k >= 0; k = w.next[k]) {
            if (w.id[k] < 0) {
                rc = gpt2_seterr(err, GPT2_ERR_TOKENIZE,
                                 "gpt2_tokenizer_encode: byte 0x%02X at offset %zu has no "
                                 "token in this vocabulary (%d tokens)",
                                 s[i + (size_t)k], i + (size_t)k, t->n_tokens);
                break;
            }
            if (count < max_ids)
                ids[count] = w.id[k];
            count++;
        }
        if (rc != GPT2_OK)
            break;
        i = end;
    }
    free(w.id);
    free(w.next);
    free(w.prev);
    free(w.heap);
    return rc != GPT2_OK ? rc : count;
}

const char *gpt2_tokenizer_token_bytes(const gpt2_tokenizer *t, int id, size_t *len)
{
    if (!t || id < 0 || id >= t->n_tokens)
        return NULL;
    if (len)
        *len = t->off[id + 1] - t->off[id];
    return t->blob + t->off[id];
}

long gpt2_tokenizer_decode(const gpt2_tokenizer *t, const int *ids, int n, char *buf, size_t cap,
                           gpt2_error *err)
{
    if (!t || n < 0 || (!ids && n > 0) || (!buf && cap > 0))
        return gpt2_seterr(err, GPT2_ERR_INVALID, "gpt2_tokenizer_decode: invalid argument");
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_tokens)
            return gpt2_seterr(err, GPT2_ERR_TOKENIZE,
                               "gpt2_tokenizer_decode: id %d at position %d: expected an id "
                               "in 0..%d",
                               ids[i], i, t->n_tokens - 1);
        total += t->off[ids[i] + 1] - t->off[ids[i]];
    }
    if (total > (size_t)LONG_MAX)
        return gpt2_seterr(err, GPT2_ERR_INVALID, "gpt2_tokenizer_decode: output too large");
    size_t pos = 0;
    for (int i = 0; i < n && pos < cap; i++) {
        size_t k = t->off[ids[i] + 1] - t->off[ids[i]];
        if (k > cap - pos)
            k = cap - pos;
        memcpy(buf + pos, t->blob + t->off[ids[i]], k);
        pos += k;
    }
    return (long)total;
}
