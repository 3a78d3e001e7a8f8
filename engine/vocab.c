/* GPT-2 vocabulary files: encoder.json (token -> id) and vocab.bpe (merges). */
#include "vocab.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

extern const char gpt2c_vocab_json[], gpt2c_vocab_json_end[];
extern const char gpt2c_vocab_bpe[], gpt2c_vocab_bpe_end[];

/* Longest excerpt of a key or line quoted in an error message. */
#define QUOTE_MAX 60

static int quote_len(size_t n) { return n > QUOTE_MAX ? QUOTE_MAX : (int)n; }

void gpt2_vocab_free(gpt2_vocab *v)
{
    if (!v)
        return;
    if (v->tokens)
        for (int i = 0; i < v->n_tokens; i++)
            free(v->tokens[i]);
    if (v->merges)
        for (int i = 0; i < v->n_merges; i++)
            free(v->merges[i]);
    free(v->tokens);
    free(v->token_lens);
    free(v->merges);
    free(v->merge_lens);
    memset(v, 0, sizeof *v);
}

/* 1-based line and column of byte offset `off` (for JSON syntax errors). */
static void line_col(const char *s, size_t off, size_t *line, size_t *col)
{
    size_t l = 1, c = 1;
    for (size_t i = 0; i < off; i++) {
        if (s[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static char *dup_mem(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static int parse_json(const char *json, size_t json_len, const char *name, gpt2_vocab *out,
                      gpt2_error *err)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, json_len, &end, 0);
    if (!root) {
        size_t off = end && end >= json && end <= json + json_len ? (size_t)(end - json) : 0;
        size_t line, col;
        line_col(json, off, &line, &col);
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: invalid JSON at line %zu, column %zu (byte %zu): expected an "
                           "object of \"token\": id pairs",
                           name, line, col, off);
    }
    int rc = GPT2_OK;
    const cJSON **by_id = NULL;
    const cJSON *high = NULL; /* first key whose id is >= n: there is a gap below n */
    if (!cJSON_IsObject(root)) {
        rc = gpt2_seterr(err, GPT2_ERR_FORMAT,
                         "%s: expected a JSON object of \"token\": id pairs, found another "
                         "JSON value",
                         name);
        goto done;
    }
    int n = cJSON_GetArraySize(root);
    if (n <= 0) {
        rc = gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: expected at least one token, found none",
                         name);
        goto done;
    }
    by_id = calloc((size_t)n, sizeof *by_id);
    out->tokens = calloc((size_t)n, sizeof *out->tokens);
    out->token_lens = calloc((size_t)n, sizeof *out->token_lens);
    if (!by_id || !out->tokens || !out->token_lens) {
        rc = gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory for %d tokens", name, n);
        goto done;
    }
    out->n_tokens = n;
    for (const cJSON *it = root->child; it; it = it->next) {
        const char *key = it->string ? it->string : "";
        size_t klen = strlen(key);
        if (!cJSON_IsNumber(it)) {
            const char *what = cJSON_IsString(it)   ? "a string"
                               : cJSON_IsObject(it) ? "an object"
                               : cJSON_IsArray(it)  ? "an array"
                               : cJSON_IsNull(it)   ? "null"
                                                    : "a boolean";
            rc = gpt2_seterr(err, GPT2_ERR_FORMAT,
                             "%s: key \"%.*s\": expected an integer id, found %s", name,
                             quote_len(klen), key, what);
            goto done;
        }
        double d = it->valuedouble;
        if (!(d >= 0 && d <= INT_MAX) || d != (double)(int)d) {
            rc = gpt2_seterr(err, GPT2_ERR_FORMAT,
                             "%s: key \"%.*s\": expected an integer id in 0..%d, found %g",
                             name, quote_len(klen), key, n - 1, d);
            goto done;
        }
        int id = (int)d;
        if (id >= n) {
            /* n distinct ids cannot all lie in 0..n-1 if one is >= n: name the hole. */
            if (!high)
                high = it;
            continue;
        }
        if (by_id[id]) {
            const char *other = by_id[id]->string;
            rc = gpt2_seterr(err, GPT2_ERR_FORMAT,
                             "%s: key \"%.*s\": duplicate id %d (already used by key \"%.*s\")",
                             name, quote_len(klen), key, id, quote_len(strlen(other)), other);
            goto done;
        }
        by_id[id] = it;
    }
    for (int id = 0; id < n; id++) {
        if (!by_id[id]) {
            const char *hk = high ? high->string : "";
            rc = gpt2_seterr(err, GPT2_ERR_FORMAT,
                             "%s: gap in ids: expected ids 0..%d for %d tokens, found no token "
                             "with id %d (key \"%.*s\" has id %.0f)",
                             name, n - 1, n, id, quote_len(strlen(hk)), hk,
                             high ? high->valuedouble : -1.0);
            goto done;
        }
        size_t len = strlen(by_id[id]->string);
        out->tokens[id] = dup_mem(by_id[id]->string, len);
        out->token_lens[id] = len;
        if (!out->tokens[id]) {
            rc = gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory", name);
            goto done;
        }
    }
done:
    free(by_id);
    cJSON_Delete(root);
    return rc;
}

/* Checks one merge line: exactly two non-empty parts separated by one space. */
static int merge_line_ok(const char *s, size_t n)
{
    const char *sp = memchr(s, ' ', n);
    if (!sp || sp == s || sp == s + n - 1)
        return 0;
    return memchr(sp + 1, ' ', (size_t)(s + n - sp - 1)) == NULL;
}

static int parse_bpe(const char *bpe, size_t bpe_len, const char *name, gpt2_vocab *out,
                     gpt2_error *err)
{
    /* Upper bound on merges: the number of lines. */
    size_t n_lines = 1;
    for (size_t i = 0; i < bpe_len; i++)
        n_lines += bpe[i] == '\n';
    if (n_lines > INT_MAX)
        return gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: too many lines (%zu)", name, n_lines);
    out->merges = calloc(n_lines, sizeof *out->merges);
    out->merge_lens = calloc(n_lines, sizeof *out->merge_lens);
    if (!out->merges || !out->merge_lens)
        return gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory for %zu lines", name,
                           n_lines);
    size_t pos = 0, line_no = 0;
    while (pos < bpe_len) {
        const char *nl = memchr(bpe + pos, '\n', bpe_len - pos);
        size_t end = nl ? (size_t)(nl - bpe) : bpe_len;
        const char *s = bpe + pos;
        size_t n = end - pos;
        pos = end + 1;
        line_no++;
        if (n > 0 && s[n - 1] == '\r')
            n--;
        if (n == 0)
            continue;
        if (line_no == 1 && n >= 8 && memcmp(s, "#version", 8) == 0)
            continue;
        if (!merge_line_ok(s, n))
            return gpt2_seterr(err, GPT2_ERR_FORMAT,
                               "%s: line %zu: expected a merge \"A B\" (two tokens separated "
                               "by one space), found \"%.*s\"%s",
                               name, line_no, quote_len(n), s, n > QUOTE_MAX ? "..." : "");
        char *m = dup_mem(s, n);
        if (!m)
            return gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory", name);
        out->merges[out->n_merges] = m;
        out->merge_lens[out->n_merges] = n;
        out->n_merges++;
    }
    return GPT2_OK;
}

int gpt2_vocab_parse(const char *json, size_t json_len, const char *json_name, const char *bpe,
                     size_t bpe_len, const char *bpe_name, gpt2_vocab *out, gpt2_error *err)
{
    if (!out)
        return gpt2_seterr(err, GPT2_ERR_INVALID, "gpt2_vocab_parse: out is NULL");
    memset(out, 0, sizeof *out);
    if (!json || !bpe)
        return gpt2_seterr(err, GPT2_ERR_INVALID, "gpt2_vocab_parse: NULL input");
    json_name = json_name ? json_name : "vocab.json";
    bpe_name = bpe_name ? bpe_name : "merges.txt";
    int rc = parse_json(json, json_len, json_name, out, err);
    if (rc == GPT2_OK)
        rc = parse_bpe(bpe, bpe_len, bpe_name, out, err);
    if (rc != GPT2_OK)
        gpt2_vocab_free(out);
    return rc;
}

static int read_file(const char *path, char **data, size_t *len, gpt2_error *err)
{
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return gpt2_seterr(err, GPT2_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            return gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory", path);
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        cap *= 2;
        char *nb = realloc(buf, cap);
        if (!nb)
            free(buf);
        buf = nb;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return gpt2_seterr(err, GPT2_ERR_IO, "%s: read error", path);
    }
    *data = buf;
    *len = n;
    return GPT2_OK;
}

int gpt2_vocab_load(const char *json_path, const char *bpe_path, gpt2_vocab *out,
                    gpt2_error *err)
{
    if (!out || !json_path || !bpe_path)
        return gpt2_seterr(err, GPT2_ERR_INVALID, "gpt2_vocab_load: NULL argument");
    memset(out, 0, sizeof *out);
    char *json = NULL, *bpe = NULL;
    size_t json_len = 0, bpe_len = 0;
    int rc = read_file(json_path, &json, &json_len, err);
    if (rc == GPT2_OK)
        rc = read_file(bpe_path, &bpe, &bpe_len, err);
    if (rc == GPT2_OK)
        rc = gpt2_vocab_parse(json, json_len, json_path, bpe, bpe_len, bpe_path, out, err);
    free(json);
    free(bpe);
    return rc;
}

int gpt2_vocab_embedded(gpt2_vocab *out, gpt2_error *err)
{
    return gpt2_vocab_parse(gpt2c_vocab_json, (size_t)(gpt2c_vocab_json_end - gpt2c_vocab_json),
                            "encoder.json (embedded)", gpt2c_vocab_bpe,
                            (size_t)(gpt2c_vocab_bpe_end - gpt2c_vocab_bpe),
                            "vocab.bpe (embedded)", out, err);
}

/* ---- truncation: token string -> id lookup -------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* Open-addressing table of token ids keyed by their strings; -1 = empty. */
typedef struct {
    int *slot;
    size_t mask;
    const gpt2_vocab *v;
} str_map;

static int map_find(const str_map *m, const char *s, size_t n)
{
    for (size_t i = hash_bytes(s, n) & m->mask;; i = (i + 1) & m->mask) {
        int id = m->slot[i];
        if (id < 0)
            return -1;
        if (m->v->token_lens[id] == n && memcmp(m->v->tokens[id], s, n) == 0)
            return id;
    }
}

int gpt2_vocab_truncate(gpt2_vocab *v, int n_vocab, gpt2_error *err)
{
    if (!v || n_vocab <= 0)
        return gpt2_seterr(err, GPT2_ERR_INVALID,
                           "gpt2_vocab_truncate: expected n_vocab > 0, found %d", n_vocab);
    if (n_vocab >= v->n_tokens)
        return GPT2_OK;
    str_map m = {0};
    size_t cap = 16;
    while (cap < 2 * (size_t)n_vocab)
        cap *= 2;
    m.slot = malloc(cap * sizeof *m.slot);
    m.mask = cap - 1;
    m.v = v;
    char *cat = NULL;
    size_t cat_cap = 0;
    if (!m.slot)
        return gpt2_seterr(err, GPT2_ERR_NOMEM, "gpt2_vocab_truncate: out of memory");
    memset(m.slot, 0xff, cap * sizeof *m.slot);
    /* Only kept tokens go in, so any lookup that succeeds is a kept token. */
    for (int id = 0; id < n_vocab; id++) {
        if (map_find(&m, v->tokens[id], v->token_lens[id]) >= 0)
            continue; /* duplicate string: the lower id wins */
        size_t i = hash_bytes(v->tokens[id], v->token_lens[id]) & m.mask;
        while (m.slot[i] >= 0)
            i = (i + 1) & m.mask;
        m.slot[i] = id;
    }
    int kept = 0;
    for (int r = 0; r < v->n_merges; r++) {
        const char *s = v->merges[r];
        size_t n = v->merge_lens[r];
        const char *sp = memchr(s, ' ', n);
        int keep = 0;
        if (sp) {
            size_t la = (size_t)(sp - s), lb = n - la - 1;
            if (la + lb > cat_cap) {
                cat_cap = 2 * (la + lb);
                free(cat);
                cat = malloc(cat_cap);
                if (!cat) {
                    free(m.slot);
                    return gpt2_seterr(err, GPT2_ERR_NOMEM,
                                       "gpt2_vocab_truncate: out of memory");
                }
            }
            memcpy(cat, s, la);
            memcpy(cat + la, sp + 1, lb);
            keep = map_find(&m, s, la) >= 0 && map_find(&m, sp + 1, lb) >= 0 &&
                   map_find(&m, cat, la + lb) >= 0;
        }
        if (keep) {
            v->merges[kept] = v->merges[r];
            v->merge_lens[kept] = v->merge_lens[r];
            kept++;
        } else {
            free(v->merges[r]);
        }
    }
    v->n_merges = kept;
    for (int id = n_vocab; id < v->n_tokens; id++)
        free(v->tokens[id]);
    v->n_tokens = n_vocab;
    free(cat);
    free(m.slot);
    return GPT2_OK;
}
