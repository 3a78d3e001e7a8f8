/* .safetensors reader: mmap, bounded header, cJSON, per-tensor checks. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errors.h"
#include "kernels.h"

struct safetensors_file {
    char *path;
    const unsigned char *map;
    size_t size;
    int owns_map; /* 1: our mmap (safetensors_open); 0: caller's bytes */
    int n;
    safetensors_tensor *t;          /* header order */
    const safetensors_tensor **by_name; /* sorted, for lookup */
};

static const struct {
    const char *name;
    size_t size;
} dtypes[ST_DTYPE_COUNT] = {
    [ST_F32] = {"F32", 4},  [ST_F16] = {"F16", 2},   [ST_BF16] = {"BF16", 2},
    [ST_F64] = {"F64", 8},  [ST_I64] = {"I64", 8},   [ST_I32] = {"I32", 4},
    [ST_I16] = {"I16", 2},  [ST_I8] = {"I8", 1},     [ST_U64] = {"U64", 8},
    [ST_U32] = {"U32", 4},  [ST_U16] = {"U16", 2},   [ST_U8] = {"U8", 1},
    [ST_BOOL] = {"BOOL", 1}, [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *safetensors_dtype_name(st_dtype t)
{
    return (unsigned)t < ST_DTYPE_COUNT ? dtypes[t].name : "unknown";
}

size_t safetensors_dtype_size(st_dtype t)
{
    return (unsigned)t < ST_DTYPE_COUNT ? dtypes[t].size : 0;
}

int safetensors_dtype_convertible(st_dtype t)
{
    return t == ST_F32 || t == ST_F16 || t == ST_BF16;
}

const char *safetensors_path(const safetensors_file *f) { return f->path; }
int safetensors_count(const safetensors_file *f) { return f->n; }

const safetensors_tensor *safetensors_at(const safetensors_file *f, int i)
{
    return i >= 0 && i < f->n ? &f->t[i] : NULL;
}

static int cmp_by_name(const void *a, const void *b)
{
    const safetensors_tensor *x = *(const safetensors_tensor *const *)a;
    const safetensors_tensor *y = *(const safetensors_tensor *const *)b;
    return strcmp(x->name, y->name);
}

const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name)
{
    safetensors_tensor key = {.name = name};
    const safetensors_tensor *kp = &key;
    const safetensors_tensor **hit =
        bsearch(&kp, f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_by_name);
    return hit ? *hit : NULL;
}

void safetensors_shape_str(const safetensors_tensor *t, char *buf, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return;
    buf[0] = 0;
    o += (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < t->n_dims && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%" PRIu64, d ? ", " : "", t->shape[d]);
    if (o < cap)
        snprintf(buf + o, cap - o, "]");
}

void safetensors_close(safetensors_file *f)
{
    if (!f)
        return;
    if (f->map && f->owns_map)
        munmap((void *)f->map, f->size);
    for (int i = 0; i < f->n; i++)
        free((char *)f->t[i].name);
    free(f->t);
    free(f->by_name);
    free(f->path);
    free(f);
}

/* A JSON number that is a whole number in [0, 2^53]. */
static int json_u64(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j))
        return -1;
    const double v = j->valuedouble;
    if (!(v >= 0.0) || v > 9007199254740992.0 || v != (double)(uint64_t)v)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* Fills t from one header entry; err names the tensor. */
static int parse_entry(const safetensors_file *f, const cJSON *e, size_t data_size,
                       safetensors_tensor *t, gpt2_error *err)
{
    const char *nm = e->string;
    if (!cJSON_IsObject(e))
        return gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: tensor '%s': header entry is not an object",
                           f->path, nm);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd))
        return gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: tensor '%s': missing string \"dtype\"",
                           f->path, nm);
    int dt = -1;
    for (int i = 0; i < ST_DTYPE_COUNT; i++)
        if (!strcmp(jd->valuestring, dtypes[i].name))
            dt = i;
    if (dt < 0)
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: tensor '%s': unknown dtype \"%.32s\" (supported: F32, F16, BF16)",
                           f->path, nm, jd->valuestring);
    t->dtype = (st_dtype)dt;

    if (!cJSON_IsArray(js))
        return gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: tensor '%s': missing array \"shape\"",
                           f->path, nm);
    const int nd = cJSON_GetArraySize(js);
    if (nd > SAFETENSORS_MAX_DIMS)
        return gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: tensor '%s': %d dimensions (at most %d)",
                           f->path, nm, nd, SAFETENSORS_MAX_DIMS);
    t->n_dims = nd;
    uint64_t n = 1;
    int d = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, js)
    {
        uint64_t v;
        if (json_u64(x, &v) < 0)
            return gpt2_seterr(err, GPT2_ERR_FORMAT,
                               "%s: tensor '%s': shape[%d] is not a non-negative integer",
                               f->path, nm, d);
        if (v != 0 && n > UINT64_MAX / v)
            return gpt2_seterr(err, GPT2_ERR_FORMAT,
                               "%s: tensor '%s': element count overflows", f->path, nm);
        n *= v;
        t->shape[d++] = v;
    }
    t->n_elements = n;
    const uint64_t esz = dtypes[dt].size;
    if (n > UINT64_MAX / esz)
        return gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: tensor '%s': byte size overflows", f->path,
                           nm);

    uint64_t b, en;
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 ||
        json_u64(cJSON_GetArrayItem(jo, 0), &b) < 0 || json_u64(cJSON_GetArrayItem(jo, 1), &en) < 0)
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: tensor '%s': \"data_offsets\" must be [begin, end] integers",
                           f->path, nm);
    if (b > en || en > data_size)
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                           ") out of range (data area is %zu bytes)",
                           f->path, nm, b, en, data_size);
    if (en - b != n * esz) {
        char sh[128];
        safetensors_shape_str(t, sh, sizeof sh);
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: tensor '%s': %" PRIu64 " bytes of data but shape %s of %s needs %" PRIu64,
                           f->path, nm, en - b, sh, dtypes[dt].name, n * esz);
    }
    t->n_bytes = (size_t)(en - b);
    t->data = f->map + f->size - data_size + b;
    return 0;
}

/* Header length, JSON, every entry; f->map and f->size are set. */
static int parse(safetensors_file *f, gpt2_error *err)
{
    const char *path = f->path;
    cJSON *root = NULL;
    int rc = GPT2_ERR_FORMAT;
    if (f->size < 8)
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: file is %zu bytes, too small for a safetensors header", path,
                           f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | f->map[i];
    if (hlen > f->size - 8)
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: header length %" PRIu64 " runs past the end of the file (%zu bytes)",
                           path, hlen, f->size);
    if (hlen > SAFETENSORS_MAX_HEADER)
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: header length %" PRIu64 " exceeds the %u-byte limit", path, hlen,
                           SAFETENSORS_MAX_HEADER);
    const char *hdr = (const char *)f->map + 8;
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        const char *at = cJSON_GetErrorPtr();
        long off = root ? 0 : (at && at >= hdr && at <= hdr + hlen ? (long)(at - hdr) : -1);
        gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: header is not a JSON object (error near byte %ld)",
                    path, off);
        goto done;
    }
    /* only the padding the format allows may follow the JSON */
    for (const char *p = end; p && p < hdr + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != 0) {
            gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: trailing bytes after the JSON header", path);
            goto done;
        }

    const size_t data_size = f->size - 8 - (size_t)hlen;
    /* entries are counted from the parsed JSON, so these follow the header's
     * real size, never a number it claims */
    int cap = cJSON_GetArraySize(root);
    f->t = calloc((size_t)(cap ? cap : 1), sizeof *f->t);
    f->by_name = calloc((size_t)(cap ? cap : 1), sizeof *f->by_name);
    if (!f->t || !f->by_name) {
        rc = gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory (%d tensors)", path, cap);
        goto done;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        if (!e->string || !strcmp(e->string, "__metadata__"))
            continue;
        safetensors_tensor *t = &f->t[f->n];
        if (!(t->name = strdup(e->string))) {
            rc = gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        f->n++; /* counted now so close() frees the name */
        if (parse_entry(f, e, data_size, t, err) < 0)
            goto done;
        f->by_name[f->n - 1] = t;
    }
    qsort(f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_by_name);
    for (int i = 1; i < f->n; i++)
        if (!strcmp(f->by_name[i - 1]->name, f->by_name[i]->name)) {
            gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", path,
                        f->by_name[i]->name);
            goto done;
        }
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

safetensors_file *safetensors_open(const char *path, gpt2_error *err)
{
    safetensors_file *f = calloc(1, sizeof *f);
    int fd = -1;
    if (!f || !(f->path = strdup(path))) {
        gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        gpt2_seterr(err, GPT2_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        gpt2_seterr(err, GPT2_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    if (st.st_size < 8) {
        gpt2_seterr(err, GPT2_ERR_FORMAT,
                    "%s: file is %lld bytes, too small for a safetensors header", path,
                    (long long)st.st_size);
        goto fail;
    }
    f->size = (size_t)st.st_size;
    void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
        gpt2_seterr(err, GPT2_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
        goto fail;
    }
    f->map = m;
    f->owns_map = 1;
    close(fd);
    fd = -1;
    if (parse(f, err) < 0)
        goto fail;
    return f;

fail:
    if (fd >= 0)
        close(fd);
    safetensors_close(f);
    return NULL;
}

safetensors_file *safetensors_open_mem(const void *data, size_t size, const char *name,
                                       gpt2_error *err)
{
    if (!name)
        name = "(memory)";
    safetensors_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(name))) {
        gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory", name);
        free(f);
        return NULL;
    }
    f->map = data;
    f->size = data ? size : 0;
    if (parse(f, err) < 0) {
        safetensors_close(f);
        return NULL;
    }
    return f;
}

int safetensors_to_f32(const safetensors_tensor *t, uint64_t first, uint64_t count, float *out,
                       gpt2_error *err)
{
    if (!safetensors_dtype_convertible(t->dtype))
        return gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                           "tensor '%s': dtype %s is not supported (F32, F16, BF16 are)", t->name,
                           safetensors_dtype_name(t->dtype));
    if (first > t->n_elements || count > t->n_elements - first)
        return gpt2_seterr(err, GPT2_ERR_INVALID,
                           "tensor '%s': elements %" PRIu64 "+%" PRIu64 " past its %" PRIu64,
                           t->name, first, count, t->n_elements);
    const unsigned char *src = t->data;
    switch (t->dtype) {
    case ST_F32:
        memcpy(out, src + first * 4, (size_t)count * 4);
        break;
    case ST_F16:
        src += first * 2;
        for (uint64_t i = 0; i < count; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            out[i] = gpt2k_f16_to_f32(h);
        }
        break;
    case ST_BF16:
        src += first * 2;
        for (uint64_t i = 0; i < count; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            const uint32_t bits = (uint32_t)h << 16; /* bf16 is the top half of an f32 */
            memcpy(&out[i], &bits, 4);
        }
        break;
    default:
        break;
    }
    return 0;
}
