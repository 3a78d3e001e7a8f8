/* GGUF v3 reader (mmap + bounds-checked cursor) and writer (temporary file,
 * one tensor at a time, CRC-32 patched in place). See gguf.h for the layout. */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "errors.h"
#include "pages.h"

/* GGUF is little-endian and tensor data is stored raw, so a big-endian host
 * would read garbage weights even with byte-swapped headers: refuse to build. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gpt2c's GGUF code assumes a little-endian host"
#endif

#define KEY_ALIGNMENT "general.alignment"
#define MAX_NAME 64 /* llama.cpp rejects tensor names of 64 bytes or more */

/* Smallest possible encodings, used to bound header counts by the file size:
 * kv = key length + type + 1-byte value; tensor info = name length + n_dims +
 * one ne + type + offset. */
#define MIN_KV_BYTES (8u + 4u + 1u)
#define MIN_TI_BYTES (8u + 4u + 8u + 4u + 8u)

/* ---- types ------------------------------------------------------------- */

static const char *const vt_names[GGUF_VT_COUNT] = {
    "UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
    "BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64",
};

const char *gguf_vtype_name(uint32_t t)
{
    return t < GGUF_VT_COUNT ? vt_names[t] : "unknown";
}

/* bytes of one scalar value; 0 for STRING/ARRAY/unknown */
static size_t vt_size(uint32_t t)
{
    switch (t) {
    case GGUF_VT_UINT8: case GGUF_VT_INT8: case GGUF_VT_BOOL: return 1;
    case GGUF_VT_UINT16: case GGUF_VT_INT16: return 2;
    case GGUF_VT_UINT32: case GGUF_VT_INT32: case GGUF_VT_FLOAT32: return 4;
    case GGUF_VT_UINT64: case GGUF_VT_INT64: case GGUF_VT_FLOAT64: return 8;
    default: return 0;
    }
}

static int vt_is_int(uint32_t t)
{
    return t <= GGUF_VT_INT32 || t == GGUF_VT_UINT64 || t == GGUF_VT_INT64;
}

const char *ggml_type_name(uint32_t t)
{
    switch (t) {
    case GGML_T_F32: return "f32";
    case GGML_T_F16: return "f16";
    case GGML_T_Q8_0: return "q8_0";
    default: return "unknown";
    }
}

int ggml_block_size(uint32_t type)
{
    switch (type) {
    case GGML_T_F32: case GGML_T_F16: return 1;
    case GGML_T_Q8_0: return QK8_0;
    default: return 0;
    }
}

/* bytes per block: F32 4, F16 2, Q8_0 fp16 scale + 32 int8 */
static size_t block_bytes(uint32_t type)
{
    switch (type) {
    case GGML_T_F32: return 4;
    case GGML_T_F16: return 2;
    case GGML_T_Q8_0: return 2 + QK8_0;
    default: return 0;
    }
}

/* 0 also when the byte count would not fit a size_t, so callers need only one
 * check. */
size_t ggml_row_bytes(uint32_t type, uint64_t n)
{
    int bs = ggml_block_size(type);
    if (bs == 0 || n % (uint64_t)bs != 0)
        return 0;
    uint64_t blocks = n / (uint64_t)bs;
    size_t bb = block_bytes(type);
    if (blocks > SIZE_MAX / bb)
        return 0;
    return (size_t)blocks * bb;
}

uint32_t gguf_crc32(const void *data, size_t n) { return gguf_crc32_update(0, data, n); }

uint32_t gguf_crc32_update(uint32_t crc_in, const void *data, size_t n)
{
    const unsigned char *p = data;
    uLong crc = crc_in;
    /* zlib takes a uInt length: feed buffers over 4 GiB in pieces */
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : n;
        crc = crc32(crc, p, (uInt)chunk);
        p += chunk;
        n -= chunk;
    }
    return (uint32_t)crc;
}

static uint16_t rd16(const uint8_t *b)
{
    uint16_t v;
    memcpy(&v, b, sizeof v);
    return v;
}

static uint32_t rd32(const uint8_t *b)
{
    uint32_t v;
    memcpy(&v, b, sizeof v);
    return v;
}

static uint64_t rd64(const uint8_t *b)
{
    uint64_t v;
    memcpy(&v, b, sizeof v);
    return v;
}

static int is_pow2(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

/* Doubles *cap until need fits; entries are added as they are parsed, so
 * memory follows what the file really contains, not what its header claims. */
static int grow(void **p, size_t *cap, size_t need, size_t esz)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) {
        if (nc > SIZE_MAX / 2 / esz)
            return -1;
        nc *= 2;
    }
    void *q = realloc(*p, nc * esz);
    if (!q)
        return -1;
    *p = q;
    *cap = nc;
    return 0;
}

/* ---- name index (open addressing, FNV-1a) ------------------------------ */

typedef struct {
    int64_t *slot; /* entry index + 1; 0 = empty */
    size_t mask;
} name_index;

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static int index_init(name_index *ix, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    ix->slot = calloc(cap, sizeof *ix->slot);
    ix->mask = cap - 1;
    return ix->slot ? 0 : -1;
}

/* Inserts entry i under name; returns the earlier index if the name is taken,
 * else -1. names(j) gives the name of entry j. */
static int64_t index_put(name_index *ix, const char *name, int64_t i,
                         const char *(*names)(const void *, int64_t), const void *ctx)
{
    size_t h = (size_t)fnv1a(name) & ix->mask;
    while (ix->slot[h]) {
        int64_t j = ix->slot[h] - 1;
        if (strcmp(names(ctx, j), name) == 0)
            return j;
        h = (h + 1) & ix->mask;
    }
    ix->slot[h] = i + 1;
    return -1;
}

static int64_t index_get(const name_index *ix, const char *name,
                         const char *(*names)(const void *, int64_t), const void *ctx)
{
    if (!ix->slot || !name)
        return -1;
    size_t h = (size_t)fnv1a(name) & ix->mask;
    while (ix->slot[h]) {
        int64_t j = ix->slot[h] - 1;
        if (strcmp(names(ctx, j), name) == 0)
            return j;
        h = (h + 1) & ix->mask;
    }
    return -1;
}

/* ---- reader ------------------------------------------------------------ */

typedef struct {
    char *key;         /* NUL-terminated copy */
    uint32_t type;     /* value type */
    uint32_t arr_type; /* ARRAY: element type */
    uint64_t n;        /* ARRAY: element count */
    size_t val;        /* file offset: scalar bytes, string bytes, or first element */
    size_t len;        /* STRING: byte length */
    size_t *str_off;   /* STRING arrays: file offset of each element's length prefix */
} kv_entry;

struct gguf_file {
    char *path;
    const uint8_t *map;
    size_t size;
    int owns_map; /* 1: map is our mmap (gguf_open); 0: caller's bytes (gguf_open_mem) */
    uint32_t version;
    uint32_t alignment;
    size_t data_start;
    kv_entry *kv;
    int64_t n_kv;
    size_t kv_cap;
    gguf_tensor *t;
    int64_t n_t;
    size_t t_cap;
    name_index kv_ix, t_ix;
};

static const char *kv_name(const void *ctx, int64_t i)
{
    return ((const gguf_file *)ctx)->kv[i].key;
}

static const char *t_name(const void *ctx, int64_t i)
{
    return ((const gguf_file *)ctx)->t[i].name;
}

/* Bounds-checked cursor over the mapping. `where` names what is being read
 * ("header", "key 'x'", "tensor 'y'") for error messages. */
typedef struct {
    const uint8_t *p;
    size_t size, pos;
    const char *path;
    gpt2_error *err;
    char where[200];
} cursor;

static size_t cur_left(const cursor *c) { return c->size - c->pos; }

static int cur_need(cursor *c, uint64_t n, const char *what)
{
    if (n <= cur_left(c))
        return 0;
    return gpt2_seterr(c->err, GPT2_ERR_FORMAT,
                       "%s: %s: %s at offset %zu needs %" PRIu64 " bytes, only %zu remain "
                       "(file size %zu; truncated?)",
                       c->path, c->where, what, c->pos, n, cur_left(c), c->size);
}

static int cur_u32(cursor *c, uint32_t *v, const char *what)
{
    int rc = cur_need(c, 4, what);
    if (rc)
        return rc;
    *v = rd32(c->p + c->pos);
    c->pos += 4;
    return 0;
}

static int cur_u64(cursor *c, uint64_t *v, const char *what)
{
    int rc = cur_need(c, 8, what);
    if (rc)
        return rc;
    *v = rd64(c->p + c->pos);
    c->pos += 8;
    return 0;
}

/* A string: u64 length checked against the bytes left, then the bytes. */
static int cur_str(cursor *c, size_t *off, size_t *len, const char *what)
{
    char lw[96];
    snprintf(lw, sizeof lw, "length of %s", what);
    uint64_t n;
    int rc = cur_u64(c, &n, lw);
    if (rc)
        return rc;
    if (n > cur_left(c))
        return gpt2_seterr(c->err, GPT2_ERR_FORMAT,
                           "%s: %s: %s of %" PRIu64 " bytes (length at offset %zu) exceeds the "
                           "%zu bytes remaining (file size %zu)",
                           c->path, c->where, what, n, c->pos - 8, cur_left(c), c->size);
    *off = c->pos;
    *len = (size_t)n;
    c->pos += (size_t)n;
    return 0;
}

/* Keys and tensor names are looked up as C strings, so an embedded NUL would
 * make them unreachable: refuse it. */
static int copy_name(cursor *c, size_t off, size_t len, const char *what, char **out)
{
    if (memchr(c->p + off, 0, len))
        return gpt2_seterr(c->err, GPT2_ERR_FORMAT, "%s: %s: %s at offset %zu contains a NUL byte",
                           c->path, c->where, what, off);
    char *s = malloc(len + 1);
    if (!s)
        return gpt2_seterr(c->err, GPT2_ERR_NOMEM, "%s: %s: out of memory copying %s", c->path,
                           c->where, what);
    memcpy(s, c->p + off, len);
    s[len] = 0;
    *out = s;
    return 0;
}

static int parse_value(cursor *c, kv_entry *e)
{
    int rc = cur_u32(c, &e->type, "value type");
    if (rc)
        return rc;
    e->n = 1;
    if (e->type >= GGUF_VT_COUNT)
        return gpt2_seterr(c->err, GPT2_ERR_FORMAT,
                           "%s: %s: unknown value type %" PRIu32 " (expected 0..%d)", c->path,
                           c->where, e->type, GGUF_VT_COUNT - 1);
    if (e->type == GGUF_VT_STRING)
        return cur_str(c, &e->val, &e->len, "string value");
    if (e->type != GGUF_VT_ARRAY) {
        size_t sz = vt_size(e->type);
        if ((rc = cur_need(c, sz, gguf_vtype_name(e->type))))
            return rc;
        e->val = c->pos;
        c->pos += sz;
        return 0;
    }

    if ((rc = cur_u32(c, &e->arr_type, "array element type")) ||
        (rc = cur_u64(c, &e->n, "array length")))
        return rc;
    if (e->arr_type == GGUF_VT_ARRAY)
        return gpt2_seterr(c->err, GPT2_ERR_FORMAT,
                           "%s: %s: nested arrays are not supported (array of ARRAY)", c->path,
                           c->where);
    if (e->arr_type >= GGUF_VT_COUNT)
        return gpt2_seterr(c->err, GPT2_ERR_FORMAT,
                           "%s: %s: unknown array element type %" PRIu32 " (expected 0..%d)",
                           c->path, c->where, e->arr_type, GGUF_VT_COUNT - 1);
    e->val = c->pos;
    if (e->arr_type != GGUF_VT_STRING) {
        size_t sz = vt_size(e->arr_type);
        if (e->n > cur_left(c) / sz)
            return gpt2_seterr(c->err, GPT2_ERR_FORMAT,
                               "%s: %s: array of %" PRIu64 " %s elements exceeds the %zu bytes "
                               "remaining (file size %zu)",
                               c->path, c->where, e->n, gguf_vtype_name(e->arr_type),
                               cur_left(c), c->size);
        c->pos += (size_t)e->n * sz;
        return 0;
    }
    /* every string needs at least its 8-byte length */
    if (e->n > cur_left(c) / 8)
        return gpt2_seterr(c->err, GPT2_ERR_FORMAT,
                           "%s: %s: array of %" PRIu64 " strings (8 bytes each at least) "
                           "exceeds the %zu bytes remaining (file size %zu)",
                           c->path, c->where, e->n, cur_left(c), c->size);
    size_t cap = 0;
    for (uint64_t j = 0; j < e->n; j++) {
        if (grow((void **)&e->str_off, &cap, (size_t)j + 1, sizeof *e->str_off))
            return gpt2_seterr(c->err, GPT2_ERR_NOMEM, "%s: %s: out of memory", c->path,
                               c->where);
        e->str_off[j] = c->pos;
        char what[64];
        snprintf(what, sizeof what, "array element %" PRIu64, j);
        size_t off, len;
        if ((rc = cur_str(c, &off, &len, what)))
            return rc;
    }
    return 0;
}

static int parse_kvs(gguf_file *f, cursor *c, uint64_t n_kv)
{
    for (uint64_t i = 0; i < n_kv; i++) {
        if (grow((void **)&f->kv, &f->kv_cap, (size_t)i + 1, sizeof *f->kv))
            return gpt2_seterr(c->err, GPT2_ERR_NOMEM, "%s: out of memory reading metadata",
                               c->path);
        kv_entry *e = &f->kv[i];
        memset(e, 0, sizeof *e);
        f->n_kv = (int64_t)i + 1; /* so gguf_close frees the partial entry */
        snprintf(c->where, sizeof c->where, "key #%" PRIu64, i);
        size_t off, len;
        int rc = cur_str(c, &off, &len, "key");
        if (rc)
            return rc;
        if ((rc = copy_name(c, off, len, "key", &e->key)))
            return rc;
        snprintf(c->where, sizeof c->where, "key '%.120s'", e->key);
        if ((rc = parse_value(c, e)))
            return rc;
    }
    if (index_init(&f->kv_ix, (size_t)f->n_kv))
        return gpt2_seterr(c->err, GPT2_ERR_NOMEM, "%s: out of memory", c->path);
    for (int64_t i = 0; i < f->n_kv; i++) {
        int64_t j = index_put(&f->kv_ix, f->kv[i].key, i, kv_name, f);
        if (j >= 0)
            return gpt2_seterr(c->err, GPT2_ERR_FORMAT,
                               "%s: key '%s': duplicate key (entries #%" PRId64 " and #%" PRId64
                               ")",
                               c->path, f->kv[i].key, j, i);
    }
    return 0;
}

static int parse_alignment(gguf_file *f, gpt2_error *err)
{
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t i = gguf_find_key(f, KEY_ALIGNMENT);
    if (i < 0)
        return 0;
    const kv_entry *e = &f->kv[i];
    if (e->type != GGUF_VT_UINT32)
        return gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: key '%s': expected UINT32, found %s",
                           f->path, KEY_ALIGNMENT, gguf_vtype_name(e->type));
    uint32_t a = rd32(f->map + e->val);
    if (!is_pow2(a))
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: key '%s': expected a power of two, found %" PRIu32, f->path,
                           KEY_ALIGNMENT, a);
    f->alignment = a;
    return 0;
}

static int parse_tensor_info(gguf_file *f, cursor *c, gguf_tensor *t)
{
    uint32_t nd;
    int rc = cur_u32(c, &nd, "n_dims");
    if (rc)
        return rc;
    if (nd < 1 || nd > GGUF_MAX_DIMS)
        return gpt2_seterr(c->err, GPT2_ERR_FORMAT, "%s: %s: n_dims is %" PRIu32
                           ", expected 1..%d", c->path, c->where, nd, GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    uint64_t n_el = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= t->n_dims)
            continue;
        char what[16];
        snprintf(what, sizeof what, "ne[%d]", d);
        if ((rc = cur_u64(c, &t->ne[d], what)))
            return rc;
        if (t->ne[d] == 0)
            return gpt2_seterr(c->err, GPT2_ERR_FORMAT, "%s: %s: ne[%d] is 0, expected >= 1",
                               c->path, c->where, d);
        /* ggml keeps shapes in int64 */
        if (t->ne[d] > (uint64_t)INT64_MAX / n_el)
            return gpt2_seterr(c->err, GPT2_ERR_FORMAT,
                               "%s: %s: element count overflows (ne[%d] = %" PRIu64
                               " after %" PRIu64 " elements)",
                               c->path, c->where, d, t->ne[d], n_el);
        n_el *= t->ne[d];
    }
    t->n_elements = n_el;
    if ((rc = cur_u32(c, &t->type, "ggml type")))
        return rc;
    int bs = ggml_block_size(t->type);
    if (bs == 0)
        return gpt2_seterr(c->err, GPT2_ERR_UNSUPPORTED,
                           "%s: %s: unknown or unsupported ggml type %" PRIu32
                           " (expected f32 (0), f16 (1) or q8_0 (8))",
                           c->path, c->where, t->type);
    if (t->ne[0] % (uint64_t)bs != 0)
        return gpt2_seterr(c->err, GPT2_ERR_FORMAT,
                           "%s: %s: ne[0] = %" PRIu64 " is not a multiple of the %s block size %d",
                           c->path, c->where, t->ne[0], ggml_type_name(t->type), bs);
    size_t row = ggml_row_bytes(t->type, t->ne[0]);
    uint64_t rows = n_el / t->ne[0];
    if (row == 0 || rows > SIZE_MAX / row)
        return gpt2_seterr(c->err, GPT2_ERR_FORMAT, "%s: %s: byte size overflows (%" PRIu64
                           " elements of %s)", c->path, c->where, n_el, ggml_type_name(t->type));
    t->n_bytes = row * (size_t)rows;
    return cur_u64(c, &t->offset, "data offset");
}

static int parse_tensors(gguf_file *f, cursor *c, uint64_t n_t)
{
    for (uint64_t i = 0; i < n_t; i++) {
        if (grow((void **)&f->t, &f->t_cap, (size_t)i + 1, sizeof *f->t))
            return gpt2_seterr(c->err, GPT2_ERR_NOMEM, "%s: out of memory reading tensor infos",
                               c->path);
        gguf_tensor *t = &f->t[i];
        memset(t, 0, sizeof *t);
        f->n_t = (int64_t)i + 1;
        snprintf(c->where, sizeof c->where, "tensor #%" PRIu64, i);
        size_t off, len;
        int rc = cur_str(c, &off, &len, "name");
        if (rc)
            return rc;
        char *nm = NULL;
        if ((rc = copy_name(c, off, len, "name", &nm)))
            return rc;
        t->name = nm;
        snprintf(c->where, sizeof c->where, "tensor '%.120s'", t->name);
        if ((rc = parse_tensor_info(f, c, t)))
            return rc;
    }
    if (index_init(&f->t_ix, (size_t)f->n_t))
        return gpt2_seterr(c->err, GPT2_ERR_NOMEM, "%s: out of memory", c->path);
    for (int64_t i = 0; i < f->n_t; i++) {
        int64_t j = index_put(&f->t_ix, f->t[i].name, i, t_name, f);
        if (j >= 0)
            return gpt2_seterr(c->err, GPT2_ERR_FORMAT,
                               "%s: tensor '%s': duplicate tensor name (entries #%" PRId64
                               " and #%" PRId64 ")",
                               c->path, f->t[i].name, j, i);
    }
    return 0;
}

typedef struct {
    uint64_t offset;
    int64_t i;
} t_span;

static int cmp_span(const void *a, const void *b)
{
    uint64_t x = ((const t_span *)a)->offset, y = ((const t_span *)b)->offset;
    return x < y ? -1 : x > y;
}

/* Offsets aligned, data inside the file, no two tensors sharing bytes. */
static int check_tensor_data(gguf_file *f, gpt2_error *err)
{
    size_t data_size = f->size > f->data_start ? f->size - f->data_start : 0;
    for (int64_t i = 0; i < f->n_t; i++) {
        gguf_tensor *t = &f->t[i];
        if (t->offset % f->alignment != 0)
            return gpt2_seterr(err, GPT2_ERR_FORMAT,
                               "%s: tensor '%s': offset %" PRIu64
                               " is not aligned (expected a multiple of %" PRIu32 ")",
                               f->path, t->name, t->offset, f->alignment);
        if (t->offset > data_size || t->n_bytes > data_size - t->offset) {
            if (t->n_bytes > UINT64_MAX - f->data_start ||
                t->offset > UINT64_MAX - f->data_start - t->n_bytes) /* absurd offset */
                return gpt2_seterr(err, GPT2_ERR_FORMAT,
                                   "%s: tensor '%s': data offset %" PRIu64 " (data region at %zu)"
                                   " extends past end of file (size %zu)",
                                   f->path, t->name, t->offset, f->data_start, f->size);
            uint64_t lo = f->data_start + t->offset;
            return gpt2_seterr(err, GPT2_ERR_FORMAT,
                               "%s: tensor '%s': data [%" PRIu64 ", %" PRIu64
                               ") extends past end of file (size %zu)",
                               f->path, t->name, lo, lo + t->n_bytes, f->size);
        }
        t->data = f->map + f->data_start + t->offset;
    }
    if (f->n_t < 2)
        return 0;
    t_span *ord = malloc((size_t)f->n_t * sizeof *ord);
    if (!ord)
        return gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory", f->path);
    for (int64_t i = 0; i < f->n_t; i++)
        ord[i] = (t_span){f->t[i].offset, i};
    qsort(ord, (size_t)f->n_t, sizeof *ord, cmp_span);
    int rc = 0;
    for (int64_t k = 1; k < f->n_t && !rc; k++) {
        const gguf_tensor *a = &f->t[ord[k - 1].i], *b = &f->t[ord[k].i];
        if (a->offset + a->n_bytes > b->offset)
            rc = gpt2_seterr(err, GPT2_ERR_FORMAT,
                             "%s: tensors '%s' (data offset %" PRIu64 ", %zu bytes) and '%s' "
                             "(data offset %" PRIu64 ") overlap",
                             f->path, a->name, a->offset, a->n_bytes, b->name, b->offset);
    }
    free(ord);
    return rc;
}

static int parse(gguf_file *f, gpt2_error *err)
{
    cursor c = {.p = f->map, .size = f->size, .path = f->path, .err = err, .where = "header"};
    uint32_t magic, version;
    uint64_t n_t, n_kv;
    int rc;
    if (f->size < 4)
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: file is %zu bytes, too small for a GGUF header (24 bytes)",
                           f->path, f->size);
    magic = rd32(f->map);
    if (magic != GGUF_MAGIC) {
        char shown[5];
        for (int i = 0; i < 4; i++)
            shown[i] = (f->map[i] >= 0x20 && f->map[i] < 0x7f) ? (char)f->map[i] : '?';
        shown[4] = 0;
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: bad magic: expected GGUF, found 0x%02x%02x%02x%02x (\"%s\"); "
                           "not a GGUF file",
                           f->path, f->map[0], f->map[1], f->map[2], f->map[3], shown);
    }
    c.pos = 4;
    if ((rc = cur_u32(&c, &version, "version")))
        return rc;
    f->version = version;
    if (version != GGUF_VERSION) {
        const char *hint = "";
        if (version == 1 || version == 2)
            hint = " (an old GGUF; re-convert the model with a current converter)";
        else if ((version & 0xFFFFu) == 0)
            hint = " (a big-endian file?)";
        return gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                           "%s: GGUF version %" PRIu32 " is not supported: expected %u%s",
                           f->path, version, GGUF_VERSION, hint);
    }
    if ((rc = cur_u64(&c, &n_t, "n_tensors")) || (rc = cur_u64(&c, &n_kv, "n_kv")))
        return rc;
    /* Counts are bounded by the smallest encoding of each entry before
     * anything is sized from them. */
    size_t left = cur_left(&c);
    if (n_kv > left / MIN_KV_BYTES)
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: header: n_kv = %" PRIu64 ", but the %zu bytes after the header "
                           "hold at most %zu key/value pairs (truncated or corrupt?)",
                           f->path, n_kv, left, left / MIN_KV_BYTES);
    if (n_t > (left - n_kv * MIN_KV_BYTES) / MIN_TI_BYTES)
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: header: n_tensors = %" PRIu64 ", but the %zu bytes after the "
                           "header hold at most %zu tensor infos besides %" PRIu64 " key/value "
                           "pairs (truncated or corrupt?)",
                           f->path, n_t, left, (size_t)(left - n_kv * MIN_KV_BYTES) / MIN_TI_BYTES,
                           n_kv);
    if ((rc = parse_kvs(f, &c, n_kv)) || (rc = parse_alignment(f, err)) ||
        (rc = parse_tensors(f, &c, n_t)))
        return rc;
    /* c.pos <= size, alignment <= 2^31: no overflow on 64-bit size_t */
    f->data_start = (size_t)align_up(c.pos, f->alignment);
    return check_tensor_data(f, err);
}

gguf_file *gguf_open(const char *path, gpt2_error *err)
{
    if (!path) {
        gpt2_seterr(err, GPT2_ERR_INVALID, "gguf_open: path is NULL");
        return NULL;
    }
    gguf_file *f = calloc(1, sizeof *f);
    if (f)
        f->path = strdup(path);
    if (!f || !f->path) {
        gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory", path);
        free(f);
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        gpt2_seterr(err, GPT2_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        gguf_close(f);
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        gpt2_seterr(err, GPT2_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto fail_fd;
    }
    if (!S_ISREG(st.st_mode)) {
        gpt2_seterr(err, GPT2_ERR_IO, "%s: not a regular file", path);
        goto fail_fd;
    }
    if (st.st_size == 0) {
        gpt2_seterr(err, GPT2_ERR_FORMAT,
                    "%s: file is empty (0 bytes), expected a GGUF header (24 bytes)", path);
        goto fail_fd;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        gpt2_seterr(err, GPT2_ERR_IO, "%s: file too large to map", path);
        goto fail_fd;
    }
    f->size = (size_t)st.st_size;
    void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
        gpt2_seterr(err, GPT2_ERR_IO, "%s: cannot mmap %zu bytes: %s", path, f->size,
                    strerror(errno));
        goto fail_fd;
    }
    close(fd); /* the mapping keeps the file */
    f->map = m;
    f->owns_map = 1;
    if (parse(f, err) != 0) {
        gguf_close(f);
        return NULL;
    }
    return f;

fail_fd:
    close(fd);
    gguf_close(f);
    return NULL;
}

gguf_file *gguf_open_mem(const void *data, size_t size, const char *name, gpt2_error *err)
{
    if (!data && size > 0) {
        gpt2_seterr(err, GPT2_ERR_INVALID, "gguf_open_mem: data is NULL");
        return NULL;
    }
    if (!name)
        name = "(memory)";
    gguf_file *f = calloc(1, sizeof *f);
    if (f)
        f->path = strdup(name);
    if (!f || !f->path) {
        gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory", name);
        free(f);
        return NULL;
    }
    if (size == 0) {
        gpt2_seterr(err, GPT2_ERR_FORMAT,
                    "%s: file is empty (0 bytes), expected a GGUF header (24 bytes)", name);
        gguf_close(f);
        return NULL;
    }
    f->map = data;
    f->size = size;
    if (parse(f, err) != 0) {
        gguf_close(f);
        return NULL;
    }
    return f;
}

void gguf_close(gguf_file *f)
{
    if (!f)
        return;
    if (f->map && f->owns_map)
        munmap((void *)f->map, f->size);
    for (int64_t i = 0; i < f->n_kv; i++) {
        free(f->kv[i].key);
        free(f->kv[i].str_off);
    }
    for (int64_t i = 0; i < f->n_t; i++)
        free((void *)f->t[i].name);
    free(f->kv);
    free(f->t);
    free(f->kv_ix.slot);
    free(f->t_ix.slot);
    free(f->path);
    free(f);
}

void gguf_release_pages(const gguf_file *f, const void *p, size_t n)
{
    if (!f || !f->owns_map) /* the caller's bytes: not ours to drop */
        return;
    const uintptr_t lo = (uintptr_t)f->map, hi = lo + f->size;
    if (!p) { /* the whole mapping */
        p = f->map;
        n = f->size;
    }
    /* clamped to the mapping (n may be SIZE_MAX: "to the end") */
    uintptr_t b = (uintptr_t)p, e = n > UINTPTR_MAX - b ? UINTPTR_MAX : b + n;
    if (b < lo)
        b = lo;
    if (e > hi)
        e = hi;
    if (e > b)
        gpt2_drop_file_pages((const void *)b, e - b);
}

const char *gguf_path(const gguf_file *f) { return f->path; }
uint32_t gguf_version(const gguf_file *f) { return f->version; }
uint32_t gguf_alignment(const gguf_file *f) { return f->alignment; }
size_t gguf_file_size(const gguf_file *f) { return f->size; }
int64_t gguf_n_kv(const gguf_file *f) { return f->n_kv; }
int64_t gguf_n_tensors(const gguf_file *f) { return f->n_t; }

const char *gguf_kv_key(const gguf_file *f, int64_t i)
{
    return i >= 0 && i < f->n_kv ? f->kv[i].key : NULL;
}

uint32_t gguf_kv_type(const gguf_file *f, int64_t i)
{
    return i >= 0 && i < f->n_kv ? f->kv[i].type : GGUF_VT_COUNT;
}

int64_t gguf_find_key(const gguf_file *f, const char *key)
{
    return index_get(&f->kv_ix, key, kv_name, f);
}

uint64_t gguf_kv_arr_n(const gguf_file *f, int64_t i)
{
    return i >= 0 && i < f->n_kv && f->kv[i].type == GGUF_VT_ARRAY ? f->kv[i].n : 0;
}

uint32_t gguf_kv_arr_type(const gguf_file *f, int64_t i)
{
    return i >= 0 && i < f->n_kv && f->kv[i].type == GGUF_VT_ARRAY ? f->kv[i].arr_type
                                                                     : GGUF_VT_COUNT;
}

/* Looks key up; on failure fills err naming the key and what was expected. */
static const kv_entry *get_kv(const gguf_file *f, const char *key, const char *expected,
                              gpt2_error *err)
{
    int64_t i = gguf_find_key(f, key);
    if (i < 0) {
        gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: key '%s': missing (expected %s)", f->path,
                    key ? key : "(null)", expected);
        return NULL;
    }
    return &f->kv[i];
}

static int wrong_type(const gguf_file *f, const kv_entry *e, const char *expected,
                      gpt2_error *err)
{
    if (e->type == GGUF_VT_ARRAY)
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: key '%s': expected %s, found ARRAY of %s", f->path, e->key,
                           expected, gguf_vtype_name(e->arr_type));
    return gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: key '%s': expected %s, found %s", f->path,
                       e->key, expected, gguf_vtype_name(e->type));
}

/* Reads an integer value of any width into *u (0 if negative) and *s
 * (INT64_MAX if too big); *neg tells which one is exact. */
static void read_int(const uint8_t *p, uint32_t type, uint64_t *u, int64_t *s, int *neg)
{
    *neg = 0;
    switch (type) {
    case GGUF_VT_UINT8: *u = p[0]; break;
    case GGUF_VT_UINT16: *u = rd16(p); break;
    case GGUF_VT_UINT32: *u = rd32(p); break;
    case GGUF_VT_UINT64: *u = rd64(p); break;
    case GGUF_VT_INT8: *s = (int8_t)p[0]; goto sgn;
    case GGUF_VT_INT16: *s = (int16_t)rd16(p); goto sgn;
    case GGUF_VT_INT32: *s = (int32_t)rd32(p); goto sgn;
    default: *s = (int64_t)rd64(p); goto sgn;
    }
    *s = *u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)*u;
    return;
sgn:
    *neg = *s < 0;
    *u = *neg ? 0 : (uint64_t)*s;
}

int gguf_get_uint(const gguf_file *f, const char *key, uint64_t *out, gpt2_error *err)
{
    const kv_entry *e = get_kv(f, key, "unsigned integer", err);
    if (!e)
        return GPT2_ERR_FORMAT;
    if (!vt_is_int(e->type))
        return wrong_type(f, e, "unsigned integer", err);
    uint64_t u;
    int64_t s;
    int neg;
    read_int(f->map + e->val, e->type, &u, &s, &neg);
    if (neg)
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: key '%s': expected non-negative integer, found %s %" PRId64,
                           f->path, e->key, gguf_vtype_name(e->type), s);
    *out = u;
    return 0;
}

int gguf_get_int(const gguf_file *f, const char *key, int64_t *out, gpt2_error *err)
{
    const kv_entry *e = get_kv(f, key, "integer", err);
    if (!e)
        return GPT2_ERR_FORMAT;
    if (!vt_is_int(e->type))
        return wrong_type(f, e, "integer", err);
    uint64_t u;
    int64_t s;
    int neg;
    read_int(f->map + e->val, e->type, &u, &s, &neg);
    if (!neg && u > (uint64_t)INT64_MAX)
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: key '%s': expected integer within int64, found UINT64 %" PRIu64,
                           f->path, e->key, u);
    *out = s;
    return 0;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out, gpt2_error *err)
{
    const kv_entry *e = get_kv(f, key, "FLOAT32", err);
    if (!e)
        return GPT2_ERR_FORMAT;
    if (e->type == GGUF_VT_FLOAT32) {
        memcpy(out, f->map + e->val, sizeof *out);
        return 0;
    }
    if (e->type == GGUF_VT_FLOAT64) {
        double d;
        memcpy(&d, f->map + e->val, sizeof d);
        *out = (float)d;
        return 0;
    }
    return wrong_type(f, e, "FLOAT32", err);
}

int gguf_get_bool(const gguf_file *f, const char *key, int *out, gpt2_error *err)
{
    const kv_entry *e = get_kv(f, key, "BOOL", err);
    if (!e)
        return GPT2_ERR_FORMAT;
    if (e->type != GGUF_VT_BOOL)
        return wrong_type(f, e, "BOOL", err);
    *out = f->map[e->val] != 0;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, const char **s, size_t *len,
                 gpt2_error *err)
{
    const kv_entry *e = get_kv(f, key, "STRING", err);
    if (!e)
        return GPT2_ERR_FORMAT;
    if (e->type != GGUF_VT_STRING)
        return wrong_type(f, e, "STRING", err);
    *s = (const char *)f->map + e->val;
    *len = e->len;
    return 0;
}

int gguf_get_arr(const gguf_file *f, const char *key, uint32_t *elem_type, uint64_t *n,
                 gpt2_error *err)
{
    const kv_entry *e = get_kv(f, key, "ARRAY", err);
    if (!e)
        return GPT2_ERR_FORMAT;
    if (e->type != GGUF_VT_ARRAY)
        return wrong_type(f, e, "ARRAY", err);
    *elem_type = e->arr_type;
    *n = e->n;
    return 0;
}

const void *gguf_arr_data(const gguf_file *f, const char *key)
{
    int64_t i = gguf_find_key(f, key);
    if (i < 0 || f->kv[i].type != GGUF_VT_ARRAY || f->kv[i].arr_type == GGUF_VT_STRING)
        return NULL;
    return f->map + f->kv[i].val;
}

const char *gguf_arr_str(const gguf_file *f, const char *key, uint64_t j, size_t *len)
{
    int64_t i = gguf_find_key(f, key);
    if (i < 0 || f->kv[i].type != GGUF_VT_ARRAY || f->kv[i].arr_type != GGUF_VT_STRING ||
        j >= f->kv[i].n)
        return NULL;
    size_t off = f->kv[i].str_off[j];
    if (len)
        *len = (size_t)rd64(f->map + off);
    return (const char *)f->map + off + 8;
}

const gguf_tensor *gguf_tensor_at(const gguf_file *f, int64_t i)
{
    return i >= 0 && i < f->n_t ? &f->t[i] : NULL;
}

int64_t gguf_tensor_index(const gguf_file *f, const char *name)
{
    return index_get(&f->t_ix, name, t_name, f);
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name)
{
    int64_t i = gguf_tensor_index(f, name);
    return i >= 0 ? &f->t[i] : NULL;
}

/* ---- writer ------------------------------------------------------------ */

typedef struct {
    char *key;
    uint32_t type;
    uint8_t *val; /* the value exactly as written after the type field */
    size_t val_len;
} wkv;

typedef struct {
    char *name;
    uint32_t type;
    int n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    size_t n_bytes;
    const void *data;
    gguf_fill_fn fill;
    void *user;
    uint64_t offset;
} wtensor;

struct gguf_writer {
    wkv *kv;
    size_t n_kv, kv_cap;
    wtensor *t;
    size_t n_t, t_cap;
};

gguf_writer *gguf_writer_create(void) { return calloc(1, sizeof(gguf_writer)); }

void gguf_writer_free(gguf_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++)
        free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

/* Takes ownership of val (also on failure). */
static int w_set(gguf_writer *w, const char *key, uint32_t type, uint8_t *val, size_t len)
{
    if (!w || !key || !val) {
        free(val);
        return !w || !key ? GPT2_ERR_INVALID : GPT2_ERR_NOMEM;
    }
    /* a bad alignment would make the file unreadable: refuse it here */
    if (strcmp(key, KEY_ALIGNMENT) == 0 && (type != GGUF_VT_UINT32 || !is_pow2(rd32(val)))) {
        free(val);
        return GPT2_ERR_INVALID;
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, key) == 0) { /* replace, keeping its place */
            free(w->kv[i].val);
            w->kv[i].type = type;
            w->kv[i].val = val;
            w->kv[i].val_len = len;
            return 0;
        }
    }
    char *k = strdup(key);
    if (!k || grow((void **)&w->kv, &w->kv_cap, w->n_kv + 1, sizeof *w->kv)) {
        free(k);
        free(val);
        return GPT2_ERR_NOMEM;
    }
    w->kv[w->n_kv++] = (wkv){.key = k, .type = type, .val = val, .val_len = len};
    return 0;
}

static int w_scalar(gguf_writer *w, const char *key, uint32_t type, const void *v)
{
    size_t n = vt_size(type);
    uint8_t *b = malloc(n);
    if (b)
        memcpy(b, v, n);
    return w_set(w, key, type, b, n);
}

int gguf_set_u8(gguf_writer *w, const char *key, uint8_t v)
{
    return w_scalar(w, key, GGUF_VT_UINT8, &v);
}

int gguf_set_i8(gguf_writer *w, const char *key, int8_t v)
{
    return w_scalar(w, key, GGUF_VT_INT8, &v);
}

int gguf_set_u16(gguf_writer *w, const char *key, uint16_t v)
{
    return w_scalar(w, key, GGUF_VT_UINT16, &v);
}

int gguf_set_i16(gguf_writer *w, const char *key, int16_t v)
{
    return w_scalar(w, key, GGUF_VT_INT16, &v);
}

int gguf_set_u32(gguf_writer *w, const char *key, uint32_t v)
{
    return w_scalar(w, key, GGUF_VT_UINT32, &v);
}

int gguf_set_i32(gguf_writer *w, const char *key, int32_t v)
{
    return w_scalar(w, key, GGUF_VT_INT32, &v);
}

int gguf_set_u64(gguf_writer *w, const char *key, uint64_t v)
{
    return w_scalar(w, key, GGUF_VT_UINT64, &v);
}

int gguf_set_i64(gguf_writer *w, const char *key, int64_t v)
{
    return w_scalar(w, key, GGUF_VT_INT64, &v);
}

int gguf_set_f32(gguf_writer *w, const char *key, float v)
{
    return w_scalar(w, key, GGUF_VT_FLOAT32, &v);
}

int gguf_set_f64(gguf_writer *w, const char *key, double v)
{
    return w_scalar(w, key, GGUF_VT_FLOAT64, &v);
}

int gguf_set_bool(gguf_writer *w, const char *key, int v)
{
    uint8_t b = v ? 1 : 0; /* GGUF bools are one byte, 0 or 1 */
    return w_scalar(w, key, GGUF_VT_BOOL, &b);
}

int gguf_set_str(gguf_writer *w, const char *key, const char *v)
{
    if (!v)
        return GPT2_ERR_INVALID;
    uint64_t n = strlen(v);
    uint8_t *b = malloc(8 + n);
    if (b) {
        memcpy(b, &n, 8);
        memcpy(b + 8, v, n);
    }
    return w_set(w, key, GGUF_VT_STRING, b, 8 + n);
}

int gguf_set_arr(gguf_writer *w, const char *key, uint32_t elem_type, const void *data, uint64_t n)
{
    size_t sz = vt_size(elem_type);
    if (sz == 0 || (n > 0 && !data))
        return GPT2_ERR_INVALID;
    if (n > (SIZE_MAX - 12) / sz)
        return GPT2_ERR_NOMEM;
    size_t len = 12 + (size_t)n * sz;
    uint8_t *b = malloc(len);
    if (b) {
        memcpy(b, &elem_type, 4);
        memcpy(b + 4, &n, 8);
        if (n)
            memcpy(b + 12, data, (size_t)n * sz);
    }
    return w_set(w, key, GGUF_VT_ARRAY, b, len);
}

int gguf_set_arr_str(gguf_writer *w, const char *key, const char *const *strs,
                     const size_t *lens, uint64_t n)
{
    if (n > 0 && !strs)
        return GPT2_ERR_INVALID;
    if (n > SIZE_MAX / 8)
        return GPT2_ERR_NOMEM;
    size_t len = 12;
    for (uint64_t j = 0; j < n; j++) {
        if (!strs[j] && (!lens || lens[j] != 0))
            return GPT2_ERR_INVALID;
        size_t sl = lens ? lens[j] : strlen(strs[j]);
        if (sl > SIZE_MAX - 8 - len)
            return GPT2_ERR_NOMEM;
        len += 8 + sl;
    }
    uint8_t *b = malloc(len);
    if (b) {
        uint32_t et = GGUF_VT_STRING;
        memcpy(b, &et, 4);
        memcpy(b + 4, &n, 8);
        size_t p = 12;
        for (uint64_t j = 0; j < n; j++) {
            uint64_t sl = lens ? lens[j] : strlen(strs[j]);
            memcpy(b + p, &sl, 8);
            if (sl)
                memcpy(b + p + 8, strs[j], (size_t)sl);
            p += 8 + (size_t)sl;
        }
    }
    return w_set(w, key, GGUF_VT_ARRAY, b, len);
}

static int w_tensor(gguf_writer *w, const char *name, uint32_t type, int n_dims,
                    const uint64_t *ne, const void *data, gguf_fill_fn fill, void *user)
{
    if (!w || !name || !ne || (!data && !fill) || n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return GPT2_ERR_INVALID;
    size_t nl = strlen(name);
    if (nl == 0 || nl >= MAX_NAME || ggml_block_size(type) == 0)
        return GPT2_ERR_INVALID;
    uint64_t n_el = 1;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] == 0 || ne[d] > (uint64_t)INT64_MAX / n_el)
            return GPT2_ERR_INVALID;
        n_el *= ne[d];
    }
    size_t row = ggml_row_bytes(type, ne[0]);
    uint64_t rows = n_el / ne[0];
    if (row == 0 || rows > SIZE_MAX / row)
        return GPT2_ERR_INVALID;
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return GPT2_ERR_INVALID;
    char *nm = strdup(name);
    if (!nm || grow((void **)&w->t, &w->t_cap, w->n_t + 1, sizeof *w->t)) {
        free(nm);
        return GPT2_ERR_NOMEM;
    }
    wtensor *t = &w->t[w->n_t++];
    *t = (wtensor){.name = nm, .type = type, .n_dims = n_dims, .n_bytes = row * (size_t)rows,
                   .data = data, .fill = fill, .user = user};
    for (int d = 0; d < GGUF_MAX_DIMS; d++)
        t->ne[d] = d < n_dims ? ne[d] : 1;
    return 0;
}

int gguf_add_tensor(gguf_writer *w, const char *name, uint32_t type, int n_dims,
                    const uint64_t *ne, const void *data)
{
    if (!data)
        return GPT2_ERR_INVALID;
    return w_tensor(w, name, type, n_dims, ne, data, NULL, NULL);
}

int gguf_add_tensor_fill(gguf_writer *w, const char *name, uint32_t type, int n_dims,
                         const uint64_t *ne, gguf_fill_fn fill, void *user)
{
    if (!fill)
        return GPT2_ERR_INVALID;
    return w_tensor(w, name, type, n_dims, ne, NULL, fill, user);
}

/* Buffered writes to a file descriptor, with the file position tracked for
 * the CRC patch and the first errno kept for the message. */
typedef struct {
    int fd;
    uint8_t *buf;
    size_t len, cap;
    uint64_t pos; /* bytes handed to wb_put so far */
    int err_no;
} wbuf;

static int write_all(int fd, const uint8_t *p, size_t n, int *err_no)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            *err_no = k < 0 ? errno : ENOSPC; /* a 0-byte write means no room */
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int wb_flush(wbuf *b)
{
    if (b->len && write_all(b->fd, b->buf, b->len, &b->err_no))
        return -1;
    b->len = 0;
    return 0;
}

static int wb_put(wbuf *b, const void *p, size_t n)
{
    b->pos += n;
    if (n > b->cap - b->len) {
        if (wb_flush(b))
            return -1;
        if (n >= b->cap) /* big tensor data goes straight to the file */
            return write_all(b->fd, p, n, &b->err_no);
    }
    memcpy(b->buf + b->len, p, n);
    b->len += n;
    return 0;
}

static int wb_zeros(wbuf *b, size_t n)
{
    static const uint8_t z[256];
    while (n > 0) {
        size_t k = n < sizeof z ? n : sizeof z;
        if (wb_put(b, z, k))
            return -1;
        n -= k;
    }
    return 0;
}

static int wb_u32(wbuf *b, uint32_t v) { return wb_put(b, &v, 4); }
static int wb_u64(wbuf *b, uint64_t v) { return wb_put(b, &v, 8); }

static int wb_str(wbuf *b, const char *s)
{
    uint64_t n = strlen(s);
    return wb_u64(b, n) || wb_put(b, s, (size_t)n);
}

static uint32_t writer_alignment(const gguf_writer *w)
{
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, KEY_ALIGNMENT) == 0)
            return rd32(w->kv[i].val); /* type and value checked in w_set */
    return GGUF_DEFAULT_ALIGNMENT;
}

/* Header, metadata and tensor infos, then padding up to the data region.
 * *crc_pos receives the file offset of the CRC array's first element. */
static int write_head(const gguf_writer *w, wbuf *b, int with_crc, uint32_t align,
                      uint64_t *crc_pos)
{
    uint64_t n_kv = 0;
    for (size_t i = 0; i < w->n_kv; i++)
        if (!with_crc || strcmp(w->kv[i].key, GGUF_KEY_CRC32) != 0)
            n_kv++;
    if (with_crc)
        n_kv++;
    if (wb_u32(b, GGUF_MAGIC) || wb_u32(b, GGUF_VERSION) || wb_u64(b, w->n_t) || wb_u64(b, n_kv))
        return -1;
    for (size_t i = 0; i < w->n_kv; i++) {
        const wkv *e = &w->kv[i];
        if (with_crc && strcmp(e->key, GGUF_KEY_CRC32) == 0)
            continue; /* replaced by the real CRCs below */
        if (wb_str(b, e->key) || wb_u32(b, e->type) || wb_put(b, e->val, e->val_len))
            return -1;
    }
    if (with_crc) {
        /* placeholder, patched once the data (and so the CRCs) are written */
        if (wb_str(b, GGUF_KEY_CRC32) || wb_u32(b, GGUF_VT_ARRAY) || wb_u32(b, GGUF_VT_UINT32) ||
            wb_u64(b, w->n_t))
            return -1;
        *crc_pos = b->pos;
        if (wb_zeros(b, w->n_t * 4))
            return -1;
    }
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        if (wb_str(b, t->name) || wb_u32(b, (uint32_t)t->n_dims))
            return -1;
        for (int d = 0; d < t->n_dims; d++)
            if (wb_u64(b, t->ne[d]))
                return -1;
        if (wb_u32(b, t->type) || wb_u64(b, t->offset))
            return -1;
    }
    return wb_zeros(b, (size_t)(align_up(b->pos, align) - b->pos));
}

static void fsync_dir_of(const char *path)
{
    /* best effort: makes the rename itself durable */
    char *dir = strdup(path);
    if (!dir)
        return;
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash) {
        slash[slash == dir ? 1 : 0] = 0;
        d = dir;
    }
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

int gguf_writer_write(gguf_writer *w, const char *path, int with_crc, gguf_progress_fn progress,
                      void *user, gpt2_error *err)
{
    if (!w || !path)
        return gpt2_seterr(err, GPT2_ERR_INVALID, "gguf_writer_write: %s is NULL",
                           !w ? "writer" : "path");
    uint32_t align = writer_alignment(w);

    /* llama.cpp requires each tensor to start right after the previous one's
     * padded end, so offsets are laid out back to back. */
    uint64_t off = 0;
    size_t max_fill = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        w->t[i].offset = off;
        off += align_up(w->t[i].n_bytes, align);
        if (w->t[i].fill && w->t[i].n_bytes > max_fill)
            max_fill = w->t[i].n_bytes;
    }

    size_t tl = strlen(path) + 32;
    char *tmp = malloc(tl);
    uint32_t *crcs = calloc(w->n_t ? w->n_t : 1, sizeof *crcs);
    wbuf b = {.fd = -1, .cap = 1u << 20};
    b.buf = malloc(b.cap);
    uint8_t *fbuf = max_fill ? malloc(max_fill) : NULL;
    int rc = 0;
    if (!tmp || !crcs || !b.buf || (max_fill && !fbuf)) {
        rc = gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory preparing the write", path);
        goto out;
    }
    snprintf(tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    b.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (b.fd < 0) {
        rc = gpt2_seterr(err, GPT2_ERR_IO, "%s: cannot create temporary file '%s': %s", path, tmp,
                         strerror(errno));
        goto out;
    }

    uint64_t crc_pos = 0;
    if (write_head(w, &b, with_crc, align, &crc_pos))
        goto io_fail;
    for (size_t i = 0; i < w->n_t; i++) {
        wtensor *t = &w->t[i];
        const void *src = t->data;
        if (t->fill) {
            gpt2_error ferr = {0};
            int frc = t->fill(fbuf, t->n_bytes, t->user, &ferr);
            if (frc != 0) {
                rc = frc < 0 ? frc : GPT2_ERR_INVALID;
                if (ferr.msg[0])
                    gpt2_seterr(err, rc, "%s: tensor '%s': %s", path, t->name, ferr.msg);
                else
                    gpt2_seterr(err, rc, "%s: tensor '%s': producing the data failed (%s)", path,
                                t->name, gpt2_status_name(rc));
                goto out;
            }
            src = fbuf;
        }
        crcs[i] = gguf_crc32(src, t->n_bytes);
        if (wb_put(&b, src, t->n_bytes) ||
            wb_zeros(&b, (size_t)(align_up(t->n_bytes, align) - t->n_bytes)))
            goto io_fail;
        if (progress)
            progress((int64_t)i + 1, (int64_t)w->n_t, t->name, user);
    }
    if (wb_flush(&b))
        goto io_fail;
    if (with_crc && w->n_t) {
        size_t n = w->n_t * 4;
        errno = 0;
        if (pwrite(b.fd, crcs, n, (off_t)crc_pos) != (ssize_t)n) {
            b.err_no = errno ? errno : ENOSPC;
            goto io_fail;
        }
    }
    if (fsync(b.fd) != 0) {
        b.err_no = errno;
        goto io_fail;
    }
    int fd = b.fd;
    b.fd = -1;
    if (close(fd) != 0) {
        b.err_no = errno;
        goto io_fail;
    }
    if (rename(tmp, path) != 0) {
        rc = gpt2_seterr(err, GPT2_ERR_IO, "%s: cannot rename '%s' over it: %s", path, tmp,
                         strerror(errno));
        goto out;
    }
    fsync_dir_of(path);
    free(tmp);
    tmp = NULL; /* renamed: nothing to remove */
    goto out;

io_fail:
    rc = gpt2_seterr(err, GPT2_ERR_IO, "%s: writing '%s' failed near offset %" PRIu64 ": %s", path,
                     tmp, b.pos, strerror(b.err_no ? b.err_no : EIO));
out:
    if (b.fd >= 0)
        close(b.fd);
    if (rc != 0 && tmp)
        unlink(tmp);
    free(tmp);
    free(crcs);
    free(b.buf);
    free(fbuf);
    return rc;
}
