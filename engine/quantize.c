/* Offline quantizer: a GPT-2 GGUF file (F32/F16) in, the same file with its
 * weight matrices in Q8_0 out.
 *
 * What becomes what:
 *   blk.N.{attn_qkv,attn_output,ffn_up,ffn_down}.weight  -> `type` (Q8_0)
 *   token_embd.weight, output.weight (LM head)           -> `embd_type`
 *   every other gpt2 tensor (position_embd, LayerNorm
 *   parameters, biases)                                  -> F32
 *   tensors outside the gpt2 layout                      -> unchanged
 * A tensor already in the target type is copied byte for byte (no fill, the
 * writer streams it from the input mapping). Metadata is copied key by key,
 * in order, with every value type; general.file_type becomes 7 (llama.cpp's
 * MOSTLY_Q8_0) and the CRC array is rewritten by the writer.
 *
 * Memory: tensors stream through the GGUF writer's fill callbacks one at a
 * time, converted in chunks of CHUNK values, and input pages are dropped once
 * consumed, so the peak is one output tensor (the writer's buffer) plus two
 * chunks, whatever the model size (a tensor copied unchanged is resident while
 * it is written).
 *
 * Every check that can fail before writing (architecture, types, shapes,
 * non-finite values and CRCs of copied tensors) runs first; values of
 * converted tensors are checked as they stream, and a failure there makes the
 * writer delete its temporary, so a failed run never leaves an output. */
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errors.h"
#include "gguf.h"
#include "gpt2.h"
#include "kernels.h"

/* Values converted per step: a multiple of the Q8_0 block (so a chunk never
 * splits a block) small enough that both buffers stay in L2. */
#define CHUNK (256u * GPT2K_QK8_0)
#define Q8_0_BLOCK_BYTES (sizeof(gpt2k_block_q8_0))
/* Input consumed between two drops of its pages (gguf_release_pages): without
 * them the whole input would stay resident, and counted in RSS, by the end. */
#define RELEASE_BYTES (4u << 20)
/* llama.cpp's LLAMA_FTYPE_MOSTLY_Q8_0 */
#define FILE_TYPE_Q8_0 7u
/* magic + version + n_tensors + n_kv: where the first metadata key starts */
#define GGUF_HEADER_BYTES 24u

typedef enum { CLASS_MATRIX, CLASS_EMBD, CLASS_F32, CLASS_OTHER } tclass;

struct qstate;

typedef struct qtensor {
    struct qstate *s;
    int64_t index;
    const gguf_tensor *in;
    tclass cls;
    uint32_t out_type;
    const char *name; /* output name: the input's, or output.weight for a tied head */
    int copy;       /* bytes kept as they are: streamed from the input mapping */
    int finite;     /* 1: NaN/Inf refused (every gpt2 tensor; unknown ones are not ours) */
    size_t bytes_out;
    double rms_rel; /* filled by the conversion */
    double max_abs;
} qtensor;

typedef struct qstate {
    gguf_file *f;
    const char *in_path, *out_path;
    qtensor *t;
    int64_t n_t;
    const unsigned char *crcs; /* the input's CRC-32 array, NULL if it has none */
    float *x, *y;              /* CHUNK floats: input values, round-tripped values */
    gpt2_quant_report_fn report;
    void *user;
    gpt2_error err; /* our own message for a failure inside a fill */
    int failed;
} qstate;

/* ---- classification -------------------------------------------------------- */

static int is_layer_tensor(const char *name, const char *suffix)
{
    if (strncmp(name, "blk.", 4) != 0)
        return 0;
    const char *p = name + 4;
    if (*p < '0' || *p > '9')
        return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    return *p == '.' && strcmp(p + 1, suffix) == 0;
}

static tclass classify(const char *name)
{
    static const char *const matrices[] = {"attn_qkv.weight", "attn_output.weight",
                                           "ffn_up.weight", "ffn_down.weight"};
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "output.weight"))
        return CLASS_EMBD;
    for (size_t i = 0; i < sizeof matrices / sizeof matrices[0]; i++)
        if (is_layer_tensor(name, matrices[i]))
            return CLASS_MATRIX;
    /* the rest of the gpt2 layout: vectors and the position table, kept exact */
    static const char *const kept[] = {"attn_norm.weight", "attn_norm.bias", "attn_qkv.bias",
                                       "attn_output.bias", "ffn_norm.weight", "ffn_norm.bias",
                                       "ffn_up.bias", "ffn_down.bias"};
    if (!strcmp(name, "position_embd.weight") || !strcmp(name, "output_norm.weight") ||
        !strcmp(name, "output_norm.bias"))
        return CLASS_F32;
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        if (is_layer_tensor(name, kept[i]))
            return CLASS_F32;
    return CLASS_OTHER;
}

static uint32_t ggml_of(gpt2_dtype t)
{
    switch (t) {
    case GPT2_DTYPE_F32: return GGML_T_F32;
    case GPT2_DTYPE_F16: return GGML_T_F16;
    case GPT2_DTYPE_Q8_0: return GGML_T_Q8_0;
    }
    return GGML_T_F32;
}

/* Element j of a tensor as (row, column), for messages. */
static void row_col(const gguf_tensor *t, uint64_t j, uint64_t *row, uint64_t *col)
{
    *row = j / t->ne[0];
    *col = j % t->ne[0];
}

static int nonfinite_error(qstate *s, const gguf_tensor *t, uint64_t j, float v)
{
    uint64_t r, c;
    row_col(t, j, &r, &c);
    s->failed = 1;
    return gpt2_seterr(&s->err, GPT2_ERR_INVALID,
                       "%s: tensor '%s': element %" PRIu64 " (row %" PRIu64 ", column %" PRIu64
                       ") is %s: weights must be finite; nothing written to %s",
                       s->in_path, t->name, j, r, c, isnan(v) ? "NaN" : "Inf", s->out_path);
}

/* ---- checks on tensors copied unchanged ------------------------------------ */

static int check_crc(qstate *s, const gguf_tensor *t, int64_t i, uint32_t got)
{
    if (!s->crcs)
        return 0;
    uint32_t want;
    memcpy(&want, s->crcs + 4 * i, 4);
    if (got == want)
        return 0;
    s->failed = 1;
    return gpt2_seterr(&s->err, GPT2_ERR_CRC,
                       "%s: tensor '%s': CRC-32 mismatch (stored 0x%08" PRIx32 ", data 0x%08" PRIx32
                       "): the input is corrupt; nothing written to %s",
                       s->in_path, t->name, want, got, s->out_path);
}

/* A copied tensor never passes through a fill, so it is checked here, before
 * the writer starts: finite values (F32/F16) and its CRC. */
static int precheck_copy(qstate *s, qtensor *q)
{
    const gguf_tensor *t = q->in;
    const unsigned char *p = t->data;
    if (q->finite && t->type == GGML_T_F32) {
        for (uint64_t j = 0; j < t->n_elements; j++) {
            float v;
            memcpy(&v, p + 4 * j, 4);
            if (!isfinite(v))
                return nonfinite_error(s, t, j, v);
        }
    } else if (q->finite && t->type == GGML_T_F16) {
        for (uint64_t j = 0; j < t->n_elements; j++) {
            uint16_t h;
            memcpy(&h, p + 2 * j, 2);
            if ((h & 0x7c00) == 0x7c00) /* all-ones exponent: Inf or NaN */
                return nonfinite_error(s, t, j, gpt2k_f16_to_f32(h));
        }
    }
    return check_crc(s, t, q->index, gguf_crc32(t->data, t->n_bytes));
}

/* ---- conversion (the fill callback) ----------------------------------------- */

static int fill_tensor(void *buf, size_t n_bytes, void *user, gpt2_error *err)
{
    qtensor *q = user;
    qstate *s = q->s;
    const gguf_tensor *t = q->in;
    if (n_bytes != q->bytes_out)
        return gpt2_seterr(err, GPT2_ERR_INVALID, "writer asked for %zu bytes, expected %zu",
                           n_bytes, q->bytes_out);
    const size_t esz_in = t->type == GGML_T_F16 ? 2 : 4;
    const unsigned char *src = t->data;
    unsigned char *dst = buf;
    uint32_t crc = 0;
    double sse = 0, ssx = 0, max_abs = 0;
    uint64_t released = 0; /* input elements whose pages were dropped */

    for (uint64_t j0 = 0; j0 < t->n_elements; j0 += CHUNK) {
        const size_t m = (size_t)(t->n_elements - j0 < CHUNK ? t->n_elements - j0 : CHUNK);
        const unsigned char *in = src + j0 * esz_in;
        if ((j0 - released) * esz_in >= RELEASE_BYTES) { /* peak: the output, not the input */
            gguf_release_pages(s->f, src + released * esz_in,
                               (size_t)((j0 - released) * esz_in));
            released = j0;
        }
        crc = gguf_crc32_update(crc, in, m * esz_in);
        if (t->type == GGML_T_F16) {
            for (size_t k = 0; k < m; k++) {
                uint16_t h;
                memcpy(&h, in + 2 * k, 2);
                s->x[k] = gpt2k_f16_to_f32(h);
            }
        } else {
            memcpy(s->x, in, m * 4);
        }
        for (size_t k = 0; k < m; k++)
            if (!isfinite(s->x[k]))
                return nonfinite_error(s, t, j0 + k, s->x[k]);

        if (q->out_type == GGML_T_F32) { /* F16 -> F32 is exact: no error to measure */
            memcpy(dst + j0 * 4, s->x, m * 4);
            continue;
        }
        if (q->out_type == GGML_T_F16) {
            for (size_t k = 0; k < m; k++) {
                const uint16_t h = gpt2k_f32_to_f16(s->x[k]);
                if ((h & 0x7c00) == 0x7c00) {
                    uint64_t r, c;
                    row_col(t, j0 + k, &r, &c);
                    s->failed = 1;
                    return gpt2_seterr(&s->err, GPT2_ERR_INVALID,
                                       "%s: tensor '%s': element %" PRIu64 " (row %" PRIu64
                                       ", column %" PRIu64 ") = %g overflows f16 (max 65504): "
                                       "keep the embedding in f32; nothing written to %s",
                                       s->in_path, t->name, j0 + k, r, c, (double)s->x[k],
                                       s->out_path);
                }
                memcpy(dst + (j0 + k) * 2, &h, 2);
                s->y[k] = gpt2k_f16_to_f32(h);
            }
        } else { /* Q8_0: ne[0] % 32 == 0 was checked, so m is whole blocks */
            unsigned char *qd = dst + (j0 / GPT2K_QK8_0) * Q8_0_BLOCK_BYTES;
            gpt2k_quantize_q8_0_ref(qd, s->x, (int)m);
            for (size_t b = 0; b < m / GPT2K_QK8_0; b++) {
                uint16_t d;
                memcpy(&d, qd + b * Q8_0_BLOCK_BYTES, 2);
                if ((d & 0x7c00) != 0x7c00)
                    continue;
                /* max|x| / 127 does not fit fp16 (max 65504): the block would
                 * dequantize to Inf/NaN */
                float amax = 0;
                for (size_t k = b * GPT2K_QK8_0; k < (b + 1) * GPT2K_QK8_0; k++)
                    amax = fabsf(s->x[k]) > amax ? fabsf(s->x[k]) : amax;
                const char *hint = q->cls == CLASS_EMBD
                                       ? "keep the embedding in f16 or f32"
                                       : "a weight this large suggests a corrupt input";
                uint64_t r, c;
                row_col(t, j0 + b * GPT2K_QK8_0, &r, &c);
                s->failed = 1;
                return gpt2_seterr(&s->err, GPT2_ERR_INVALID,
                                   "%s: tensor '%s': the block at element %" PRIu64
                                   " (row %" PRIu64 ", column %" PRIu64 ") holds |x| = %g, "
                                   "too large for q8_0 (its fp16 scale max|x|/127 must stay "
                                   "below 65504): %s; nothing written to %s",
                                   s->in_path, t->name, j0 + b * GPT2K_QK8_0, r, c,
                                   (double)amax, hint, s->out_path);
            }
            gpt2k_dequantize_q8_0(s->y, qd, (int)m);
        }
        for (size_t k = 0; k < m; k++) {
            const double x = s->x[k], e = fabs((double)s->y[k] - x);
            sse += e * e;
            ssx += x * x;
            if (e > max_abs)
                max_abs = e;
        }
    }
    if (check_crc(s, t, q->index, crc) < 0)
        return s->err.code;
    q->rms_rel = ssx > 0 ? sqrt(sse / ssx) : 0; /* an all-zero tensor round-trips exactly */
    q->max_abs = max_abs;
    return 0;
}

/* The writer calls this after each tensor: the report goes out in file order. */
static void on_written(int64_t done, int64_t total, const char *name, void *user)
{
    qstate *s = user;
    (void)name;
    if (done < 1 || done > s->n_t)
        return;
    const qtensor *q = &s->t[done - 1];
    gguf_release_pages(s->f, q->in->data, q->in->n_bytes);
    if (!s->report)
        return;
    const gpt2_quant_tensor r = {
        .name = q->name,
        .type_in = ggml_type_name(q->in->type),
        .type_out = ggml_type_name(q->out_type),
        .bytes_in = q->in->n_bytes,
        .bytes_out = q->bytes_out,
        .rms_rel_err = q->rms_rel,
        .max_abs_err = q->max_abs,
    };
    s->report(&r, (int)(done - 1), (int)total, s->user);
}

/* ---- metadata ----------------------------------------------------------------- */

/* Size of the value of key i as stored after its type field. */
static int kv_value_size(const gguf_file *f, int64_t i, uint64_t *size)
{
    static const uint8_t scalar[GGUF_VT_COUNT] = {
        [GGUF_VT_UINT8] = 1, [GGUF_VT_INT8] = 1,    [GGUF_VT_UINT16] = 2, [GGUF_VT_INT16] = 2,
        [GGUF_VT_UINT32] = 4, [GGUF_VT_INT32] = 4,  [GGUF_VT_FLOAT32] = 4, [GGUF_VT_BOOL] = 1,
        [GGUF_VT_UINT64] = 8, [GGUF_VT_INT64] = 8,  [GGUF_VT_FLOAT64] = 8,
    };
    const char *key = gguf_kv_key(f, i);
    const uint32_t type = gguf_kv_type(f, i);
    if (type == GGUF_VT_STRING) {
        const char *str;
        size_t len;
        if (gguf_get_str(f, key, &str, &len, NULL) < 0)
            return -1;
        *size = 8 + (uint64_t)len;
        return 0;
    }
    if (type != GGUF_VT_ARRAY)
        return type < GGUF_VT_COUNT && scalar[type] ? (*size = scalar[type], 0) : -1;
    const uint32_t et = gguf_kv_arr_type(f, i);
    const uint64_t n = gguf_kv_arr_n(f, i);
    uint64_t sz = 12; /* element type + count */
    if (et != GGUF_VT_STRING) {
        if (et >= GGUF_VT_COUNT || !scalar[et])
            return -1;
        *size = sz + n * scalar[et];
        return 0;
    }
    for (uint64_t j = 0; j < n; j++) {
        size_t len;
        if (!gguf_arr_str(f, key, j, &len))
            return -1;
        sz += 8 + (uint64_t)len;
    }
    *size = sz;
    return 0;
}

/* File offset of key i's value (after its type field), from the validated
 * lengths of everything before it. */
static int kv_value_offset(const gguf_file *f, int64_t target, uint64_t *off)
{
    uint64_t pos = GGUF_HEADER_BYTES;
    for (int64_t i = 0; i < target; i++) {
        uint64_t vs;
        if (kv_value_size(f, i, &vs) < 0)
            return -1;
        pos += 8 + strlen(gguf_kv_key(f, i)) + 4 + vs;
    }
    *off = pos + 8 + strlen(gguf_kv_key(f, target)) + 4;
    return 0;
}

/* The reader has no accessor for a FLOAT64 scalar's exact bits (gguf_get_f32
 * narrows it), so it is read from the file; the key and type stored just
 * before the computed offset must match before the value is trusted. */
static int read_f64(qstate *s, int64_t i, double *out, gpt2_error *err)
{
    const char *key = gguf_kv_key(s->f, i);
    const size_t kl = strlen(key);
    const size_t n = 8 + kl + 4 + 8; /* key length, key, type, value */
    uint64_t off;
    unsigned char *b = malloc(n);
    if (!b)
        return gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory", s->in_path);
    int ok = kv_value_offset(s->f, i, &off) == 0 && off >= n - 8;
    if (ok) {
        const int fd = open(s->in_path, O_RDONLY | O_CLOEXEC);
        ok = fd >= 0 && pread(fd, b, n, (off_t)(off - (n - 8))) == (ssize_t)n;
        if (fd >= 0)
            close(fd);
    }
    if (ok) {
        uint64_t klen;
        uint32_t type;
        memcpy(&klen, b, 8);
        memcpy(&type, b + 8 + kl, 4);
        ok = klen == kl && !memcmp(b + 8, key, kl) && type == GGUF_VT_FLOAT64;
        memcpy(out, b + 8 + kl + 4, 8);
    }
    free(b);
    if (!ok)
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: key '%s': cannot locate its FLOAT64 value in the file",
                           s->in_path, key);
    return 0;
}

static int is_signed_int(uint32_t t)
{
    return t == GGUF_VT_INT8 || t == GGUF_VT_INT16 || t == GGUF_VT_INT32 || t == GGUF_VT_INT64;
}

/* Integers: read at full width, written back at the width they had. */
static int copy_int(const gguf_file *f, gguf_writer *w, const char *key, uint32_t type,
                    gpt2_error *err)
{
    uint64_t u = 0;
    int64_t v = 0;
    int rc = is_signed_int(type) ? gguf_get_int(f, key, &v, err) : gguf_get_uint(f, key, &u, err);
    if (rc)
        return rc;
    switch (type) {
    case GGUF_VT_UINT8: return gguf_set_u8(w, key, (uint8_t)u);
    case GGUF_VT_UINT16: return gguf_set_u16(w, key, (uint16_t)u);
    case GGUF_VT_UINT32: return gguf_set_u32(w, key, (uint32_t)u);
    case GGUF_VT_UINT64: return gguf_set_u64(w, key, u);
    case GGUF_VT_INT8: return gguf_set_i8(w, key, (int8_t)v);
    case GGUF_VT_INT16: return gguf_set_i16(w, key, (int16_t)v);
    case GGUF_VT_INT32: return gguf_set_i32(w, key, (int32_t)v);
    default: return gguf_set_i64(w, key, v);
    }
}

static int copy_str(qstate *s, gguf_writer *w, const char *key, gpt2_error *err)
{
    const char *str;
    size_t len;
    int rc = gguf_get_str(s->f, key, &str, &len, err);
    if (rc)
        return rc;
    /* gguf_set_str takes a C string */
    if (memchr(str, 0, len))
        return gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                           "%s: key '%s': a string value with a NUL byte cannot be copied",
                           s->in_path, key);
    char *c = malloc(len + 1);
    if (!c)
        return gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory", s->in_path);
    memcpy(c, str, len);
    c[len] = 0;
    rc = gguf_set_str(w, key, c);
    free(c);
    return rc;
}

static int copy_arr(qstate *s, gguf_writer *w, int64_t i, gpt2_error *err)
{
    const char *key = gguf_kv_key(s->f, i);
    const uint32_t et = gguf_kv_arr_type(s->f, i);
    const uint64_t n = gguf_kv_arr_n(s->f, i);
    if (et != GGUF_VT_STRING)
        return gguf_set_arr(w, key, et, gguf_arr_data(s->f, key), n);
    if (n > SIZE_MAX / sizeof(size_t))
        return gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory", s->in_path);
    const char **strs = malloc((n ? (size_t)n : 1) * sizeof *strs);
    size_t *lens = malloc((n ? (size_t)n : 1) * sizeof *lens);
    int rc;
    if (!strs || !lens) {
        rc = gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory", s->in_path);
    } else {
        for (uint64_t j = 0; j < n; j++)
            strs[j] = gguf_arr_str(s->f, key, j, &lens[j]);
        rc = gguf_set_arr_str(w, key, strs, lens, n);
    }
    free(strs);
    free(lens);
    return rc;
}

/* Copies metadata entry i with its type and exact value. */
static int copy_kv(qstate *s, gguf_writer *w, int64_t i, gpt2_error *err_out)
{
    const char *key = gguf_kv_key(s->f, i);
    const uint32_t type = gguf_kv_type(s->f, i);
    gpt2_error e = {0}, *err = &e; /* readers fill it, the gguf_set_* calls do not */
    int rc;
    switch (type) {
    case GGUF_VT_UINT8: case GGUF_VT_UINT16: case GGUF_VT_UINT32: case GGUF_VT_UINT64:
    case GGUF_VT_INT8: case GGUF_VT_INT16: case GGUF_VT_INT32: case GGUF_VT_INT64:
        rc = copy_int(s->f, w, key, type, err);
        break;
    case GGUF_VT_FLOAT32: {
        float v = 0;
        rc = gguf_get_f32(s->f, key, &v, err);
        if (!rc)
            rc = gguf_set_f32(w, key, v);
        break;
    }
    case GGUF_VT_FLOAT64: {
        double v = 0;
        rc = read_f64(s, i, &v, err);
        if (!rc)
            rc = gguf_set_f64(w, key, v);
        break;
    }
    case GGUF_VT_BOOL: {
        int v = 0;
        rc = gguf_get_bool(s->f, key, &v, err);
        if (!rc)
            rc = gguf_set_bool(w, key, v);
        break;
    }
    case GGUF_VT_STRING: rc = copy_str(s, w, key, err); break;
    case GGUF_VT_ARRAY: rc = copy_arr(s, w, i, err); break;
    default:
        rc = gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: key '%s': unknown value type %" PRIu32,
                         s->in_path, key, type);
    }
    if (rc < 0 && !e.msg[0]) /* a bare code from gguf_set_*: name the key */
        gpt2_seterr(err, rc, "%s: key '%s' (%s): cannot copy it (%s)", s->in_path, key,
                    gguf_vtype_name(type), gpt2_status_name(rc));
    if (rc < 0 && err_out)
        *err_out = e;
    return rc;
}

/* ---- the whole run ------------------------------------------------------------- */

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    char *ra = realpath(a, NULL), *rb = realpath(b, NULL);
    const int same = ra && rb && !strcmp(ra, rb);
    free(ra);
    free(rb);
    return same || !strcmp(a, b);
}

/* Decides each tensor's output type; refuses what cannot be done. */
static int plan(qstate *s, gpt2_dtype type, gpt2_dtype embd_type, gpt2_error *err)
{
    for (int64_t i = 0; i < s->n_t; i++) {
        const gguf_tensor *t = gguf_tensor_at(s->f, i);
        if (t->type == GGML_T_Q8_0 && classify(t->name) == CLASS_MATRIX)
            return gpt2_seterr(err, GPT2_ERR_INVALID,
                               "%s: tensor '%s' is already quantized (q8_0): quantize the f32 "
                               "or f16 original instead",
                               s->in_path, t->name);
    }
    for (int64_t i = 0; i < s->n_t; i++) {
        qtensor *q = &s->t[i];
        const gguf_tensor *t = gguf_tensor_at(s->f, i);
        const tclass cls = classify(t->name);
        q->s = s;
        q->index = i;
        q->in = t;
        q->name = t->name;
        q->cls = cls;
        switch (cls) {
        case CLASS_MATRIX: q->out_type = ggml_of(type); break;
        case CLASS_EMBD: q->out_type = ggml_of(embd_type); break;
        case CLASS_F32: q->out_type = GGML_T_F32; break;
        case CLASS_OTHER: q->out_type = t->type; break; /* not ours to change */
        }
        if (t->type == GGML_T_Q8_0 && q->out_type != GGML_T_Q8_0)
            return gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                               "%s: tensor '%s' is already quantized (q8_0) and would become "
                               "%s: dequantizing is not supported; start from the f32 or f16 "
                               "original",
                               s->in_path, t->name, ggml_type_name(q->out_type));
        q->copy = t->type == q->out_type;
        q->finite = cls != CLASS_OTHER;
        if (q->out_type == GGML_T_Q8_0 && t->ne[0] % GPT2K_QK8_0 != 0)
            return gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                               "%s: tensor '%s': rows of %" PRIu64 " values cannot be q8_0 "
                               "(blocks of %d along ne[0])",
                               s->in_path, t->name, t->ne[0], GPT2K_QK8_0);
        const size_t row = ggml_row_bytes(q->out_type, t->ne[0]);
        const uint64_t rows = t->n_elements / t->ne[0];
        if (row == 0 || rows > SIZE_MAX / row)
            return gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: tensor '%s': size overflows",
                               s->in_path, t->name);
        q->bytes_out = row * (size_t)rows;
    }
    return 0;
}

static int check_input_crcs(qstate *s, gpt2_error *err)
{
    if (gguf_find_key(s->f, GGUF_KEY_CRC32) < 0)
        return 0; /* another writer's file: nothing to verify against */
    uint32_t et;
    uint64_t n;
    int rc = gguf_get_arr(s->f, GGUF_KEY_CRC32, &et, &n, err);
    if (rc)
        return rc;
    if (et != GGUF_VT_UINT32 || n != (uint64_t)s->n_t)
        return gpt2_seterr(err, GPT2_ERR_FORMAT,
                           "%s: key '%s': expected an array of %" PRId64 " UINT32, found %" PRIu64
                           " x %s",
                           s->in_path, GGUF_KEY_CRC32, s->n_t, n, gguf_vtype_name(et));
    s->crcs = gguf_arr_data(s->f, GGUF_KEY_CRC32);
    return 0;
}

/* The tied LM head as a tensor of its own: a second entry for token_embd,
 * written under the name output.weight (same type, same conversion). */
static int add_output_weight(qstate *s, gpt2_error *err)
{
    int64_t te = -1;
    for (int64_t i = 0; i < s->n_t; i++) {
        if (!strcmp(s->t[i].in->name, "output.weight"))
            return 0; /* already explicit */
        if (!strcmp(s->t[i].in->name, "token_embd.weight"))
            te = i;
    }
    if (te < 0)
        return gpt2_seterr(err, GPT2_ERR_FORMAT, "%s: tensor 'token_embd.weight' is missing",
                           s->in_path);
    s->t[s->n_t] = s->t[te];
    s->t[s->n_t].name = "output.weight";
    s->n_t++;
    return 0;
}

int gpt2_quantize(const char *in_path, const char *out_path, gpt2_dtype type, gpt2_dtype embd_type,
                  gpt2_quant_report_fn report, void *user, gpt2_error *err)
{
    return gpt2_quantize_ex(in_path, out_path, type, embd_type, 0, report, user, err);
}

int gpt2_quantize_ex(const char *in_path, const char *out_path, gpt2_dtype type,
                     gpt2_dtype embd_type, unsigned flags, gpt2_quant_report_fn report, void *user,
                     gpt2_error *err)
{
    if (!in_path || !out_path)
        return gpt2_seterr(err, GPT2_ERR_INVALID, "gpt2_quantize: %s path is NULL",
                           !in_path ? "input" : "output");
    if (type != GPT2_DTYPE_Q8_0)
        return gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                           "gpt2_quantize: type %s: only q8_0 is supported (for f16 use "
                           "gpt2c-convert --dtype f16)",
                           gpt2_dtype_name(type));
    if (embd_type != GPT2_DTYPE_Q8_0 && embd_type != GPT2_DTYPE_F16 &&
        embd_type != GPT2_DTYPE_F32)
        return gpt2_seterr(err, GPT2_ERR_INVALID,
                           "gpt2_quantize: embedding type %d: expected q8_0, f16 or f32",
                           (int)embd_type);
    if (same_file(in_path, out_path))
        return gpt2_seterr(err, GPT2_ERR_INVALID,
                           "%s: the output is the input file; write to another path",
                           out_path);

    qstate s = {.in_path = in_path, .out_path = out_path, .report = report, .user = user};
    gguf_writer *w = NULL;
    int rc = 0;
    s.f = gguf_open(in_path, err);
    if (!s.f)
        return err ? err->code : GPT2_ERR_IO;

    const char *arch;
    size_t alen;
    if ((rc = gguf_get_str(s.f, "general.architecture", &arch, &alen, err)))
        goto done;
    if (alen != 4 || memcmp(arch, "gpt2", 4) != 0) {
        rc = gpt2_seterr(err, GPT2_ERR_UNSUPPORTED,
                         "%s: key 'general.architecture': expected 'gpt2', found '%.*s'",
                         in_path, (int)(alen > 64 ? 64 : alen), arch);
        goto done;
    }

    s.n_t = gguf_n_tensors(s.f);
    s.t = calloc((size_t)s.n_t + 1, sizeof *s.t); /* + a tied LM head made explicit */
    s.x = malloc(CHUNK * sizeof(float));
    s.y = malloc(CHUNK * sizeof(float));
    w = gguf_writer_create();
    if (!s.t || !s.x || !s.y || !w) {
        rc = gpt2_seterr(err, GPT2_ERR_NOMEM, "%s: out of memory", in_path);
        goto done;
    }
    if ((rc = check_input_crcs(&s, err)) || (rc = plan(&s, type, embd_type, err)))
        goto done;
    if ((flags & GPT2_QUANT_OUTPUT_WEIGHT) && (rc = add_output_weight(&s, err)))
        goto done;
    for (int64_t i = 0; i < s.n_t; i++)
        if (s.t[i].copy && (rc = precheck_copy(&s, &s.t[i])) < 0)
            goto fill_failed;

    for (int64_t i = 0; i < gguf_n_kv(s.f); i++) {
        if (!strcmp(gguf_kv_key(s.f, i), GGUF_KEY_CRC32))
            continue; /* the writer computes new ones */
        if ((rc = copy_kv(&s, w, i, err)) < 0)
            goto done;
    }
    if ((rc = gguf_set_u32(w, "general.file_type", FILE_TYPE_Q8_0)) < 0) {
        rc = gpt2_seterr(err, rc, "%s: cannot set general.file_type (%s)", out_path,
                         gpt2_status_name(rc));
        goto done;
    }

    for (int64_t i = 0; i < s.n_t; i++) {
        qtensor *q = &s.t[i];
        const gguf_tensor *t = q->in;
        rc = q->copy ? gguf_add_tensor(w, q->name, t->type, t->n_dims, t->ne, t->data)
                     : gguf_add_tensor_fill(w, q->name, q->out_type, t->n_dims, t->ne,
                                            fill_tensor, q);
        if (rc < 0) {
            rc = gpt2_seterr(err, rc, "%s: tensor '%s': cannot add it to the output (%s)",
                             in_path, q->name, gpt2_status_name(rc));
            goto done;
        }
    }
    rc = gguf_writer_write(w, out_path, 1, on_written, &s, err);
fill_failed:
    if (rc < 0 && s.failed && err)
        *err = s.err; /* our message names the input, the tensor and the element */

done:
    gguf_writer_free(w);
    gguf_close(s.f);
    free(s.t);
    free(s.x);
    free(s.y);
    return rc < 0 ? rc : 0;
}
