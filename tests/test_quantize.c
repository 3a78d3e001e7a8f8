/* The offline quantizer (engine/quantize.c, tools/quantize.c).
 *
 * Block level: the Q8_0 reference encoder's error bound on random and
 * adversarial blocks. File level: small synthetic models (f32 and f16) are
 * quantized and reopened with our reader: types and shapes, metadata equal to
 * the input's key by key, Q8_0 bytes equal to the reference encoding of the
 * input rows, kept tensors exact, CRCs, the per-tensor report, --embd
 * variants, determinism, a copy through reader + writer giving the same bytes,
 * and every refusal (re-quantizing, NaN/Inf, ragged rows, overflow, CRC
 * mismatch, same file) leaving no output. Then the gpt2c-quantize command line.
 * Files go under $GPT2C_TESTDATA, prefixed "quant_". */
#include <check.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdint.h>
#include <sys/wait.h>

#include "gguf.h"
#include "gpt2.h"
#include "kernels.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------ */

/* A copy that outlives tu_fmt's ring of 8. */
static const char *keep(const char *s)
{
    static char ring[64][1024];
    static int next;
    char *b = ring[next++ & 63];
    snprintf(b, sizeof ring[0], "%s", s);
    return b;
}

static const char *dpath(const char *name) { return keep(tu_fmt("%s/quant_%s", tu_data(), name)); }

/* The input models, written once per run by main(). */
static const char *model_in(gpt2_dtype dt)
{
    return dpath(dt == GPT2_DTYPE_F16 ? "in_f16.gguf" : "in_f32.gguf");
}

static gpt2_config test_cfg(void)
{
    gpt2_config c = {.n_vocab = 320, .n_ctx = 64, .n_embd = 64, .n_head = 4, .n_layer = 2,
                     .n_ff = 256, .ln_eps = 1e-5f};
    return c;
}

static int files_equal(const char *a, const char *b)
{
    size_t na, nb;
    void *da = tu_read_file(a, &na), *db = tu_read_file(b, &nb);
    const int eq = na == nb && !memcmp(da, db, na);
    free(da);
    free(db);
    return eq;
}

static gguf_file *open_gguf(const char *path)
{
    gpt2_error err = {0};
    gguf_file *g = gguf_open(path, &err);
    ck_assert_msg(g != NULL, "gguf_open %s: %s", path, err.msg);
    return g;
}

static int run_status(const char *cmd)
{
    const int st = system(cmd);
    ck_assert_msg(st != -1 && WIFEXITED(st), "did not exit normally: %s", cmd);
    return WEXITSTATUS(st);
}

static char *read_text(const char *path)
{
    size_t n;
    char *t = tu_read_file(path, &n);
    t = realloc(t, n + 1);
    t[n] = 0;
    return t;
}

/* Every report, in call order. */
typedef struct rep {
    int n, count;
    char name[200][64];
    gpt2_quant_tensor t[200];
} rep;

static void on_report(const gpt2_quant_tensor *t, int index, int count, void *user)
{
    rep *r = user;
    ck_assert_int_eq(index, r->n); /* once per tensor, in file order */
    ck_assert_int_lt(r->n, 200);
    r->count = count;
    snprintf(r->name[r->n], sizeof r->name[0], "%s", t->name);
    r->t[r->n] = *t;
    r->t[r->n].name = r->name[r->n];
    r->n++;
}

static void quantize_ok(const char *in, const char *out, gpt2_dtype embd, rep *r)
{
    gpt2_error err = {0};
    remove(out);
    const int rc = gpt2_quantize(in, out, GPT2_DTYPE_Q8_0, embd, r ? on_report : NULL, r, &err);
    ck_assert_msg(rc == 0, "gpt2_quantize %s -> %s: %s", in, out, err.msg);
}

/* A run that must fail with code, a message containing each of the needles,
 * and no output. */
static void quantize_fails(const char *in, const char *out, gpt2_dtype embd, int code,
                           const char *needle1, const char *needle2)
{
    gpt2_error err = {0};
    remove(out);
    const int rc = gpt2_quantize(in, out, GPT2_DTYPE_Q8_0, embd, NULL, NULL, &err);
    ck_assert_msg(rc == code, "%s: expected %s, got %d (%s)", in, gpt2_status_name(code), rc,
                  err.msg);
    ck_assert_int_eq(err.code, code);
    ck_assert_msg(!needle1 || strstr(err.msg, needle1), "message lacks '%s': %s", needle1,
                  err.msg);
    ck_assert_msg(!needle2 || strstr(err.msg, needle2), "message lacks '%s': %s", needle2,
                  err.msg);
    tu_assert_no_output(out);
}

/* Tensor element j as float (F32/F16). */
static float tval(const gguf_tensor *t, uint64_t j)
{
    if (t->type == GGML_T_F32) {
        float v;
        memcpy(&v, (const char *)t->data + 4 * j, 4);
        return v;
    }
    uint16_t h;
    memcpy(&h, (const char *)t->data + 2 * j, 2);
    return gpt2k_f16_to_f32(h);
}

static float *tensor_f32(const gguf_tensor *t)
{
    float *x = malloc(t->n_elements * sizeof *x);
    ck_assert(x != NULL);
    for (uint64_t j = 0; j < t->n_elements; j++)
        x[j] = tval(t, j);
    return x;
}

/* What the quantizer must make of each tensor (decided here independently):
 * the four matrices -> q8_0, the embedding / LM head -> --embd, the rest of
 * the gpt2 layout -> f32, tensors it does not know -> unchanged. */
static uint32_t expected_type(const char *name, uint32_t in_type, uint32_t embd)
{
    static const char *const mats[] = {".attn_qkv.weight", ".attn_output.weight",
                                       ".ffn_up.weight", ".ffn_down.weight"};
    static const char *const vecs[] = {".attn_norm.weight", ".attn_norm.bias", ".attn_qkv.bias",
                                       ".attn_output.bias", ".ffn_norm.weight", ".ffn_norm.bias",
                                       ".ffn_up.bias", ".ffn_down.bias"};
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "output.weight"))
        return embd;
    if (!strcmp(name, "position_embd.weight") || !strcmp(name, "output_norm.weight") ||
        !strcmp(name, "output_norm.bias"))
        return GGML_T_F32;
    const size_t n = strlen(name);
    if (strncmp(name, "blk.", 4) != 0)
        return in_type;
    for (int i = 0; i < 4; i++) {
        const size_t m = strlen(mats[i]);
        if (n > m && !strcmp(name + n - m, mats[i]))
            return GGML_T_Q8_0;
    }
    for (int i = 0; i < 8; i++) {
        const size_t m = strlen(vecs[i]);
        if (n > m && !strcmp(name + n - m, vecs[i]))
            return GGML_T_F32;
    }
    return in_type;
}

static uint32_t ggml_of(gpt2_dtype t)
{
    return t == GPT2_DTYPE_Q8_0 ? GGML_T_Q8_0 : t == GPT2_DTYPE_F16 ? GGML_T_F16 : GGML_T_F32;
}

/* ---- metadata, compared generically ------------------------------------------ */

static size_t vt_bytes(uint32_t t)
{
    switch (t) {
    case GGUF_VT_UINT8: case GGUF_VT_INT8: case GGUF_VT_BOOL: return 1;
    case GGUF_VT_UINT16: case GGUF_VT_INT16: return 2;
    case GGUF_VT_UINT32: case GGUF_VT_INT32: case GGUF_VT_FLOAT32: return 4;
    case GGUF_VT_UINT64: case GGUF_VT_INT64: case GGUF_VT_FLOAT64: return 8;
    default: return 0;
    }
}

static int is_signed(uint32_t t)
{
    return t == GGUF_VT_INT8 || t == GGUF_VT_INT16 || t == GGUF_VT_INT32 || t == GGUF_VT_INT64;
}

/* key in a equals key in b: type and value (FLOAT64 through f32 here; its
 * exact bits are checked in test_metadata_types). */
static void assert_kv_equal(const gguf_file *a, const gguf_file *b, const char *key)
{
    gpt2_error err = {0};
    const int64_t ia = gguf_find_key(a, key), ib = gguf_find_key(b, key);
    ck_assert_msg(ia >= 0 && ib >= 0, "key '%s' missing", key);
    const uint32_t t = gguf_kv_type(a, ia);
    ck_assert_msg(t == gguf_kv_type(b, ib), "key '%s': type %s vs %s", key, gguf_vtype_name(t),
                  gguf_vtype_name(gguf_kv_type(b, ib)));
    if (t == GGUF_VT_STRING) {
        const char *sa, *sb;
        size_t na, nb;
        ck_assert(gguf_get_str(a, key, &sa, &na, &err) == 0 &&
                  gguf_get_str(b, key, &sb, &nb, &err) == 0);
        ck_assert_msg(na == nb && !memcmp(sa, sb, na), "key '%s': '%.*s' vs '%.*s'", key,
                      (int)na, sa, (int)nb, sb);
    } else if (t == GGUF_VT_ARRAY) {
        const uint32_t et = gguf_kv_arr_type(a, ia);
        const uint64_t n = gguf_kv_arr_n(a, ia);
        ck_assert_msg(et == gguf_kv_arr_type(b, ib) && n == gguf_kv_arr_n(b, ib),
                      "key '%s': array type or length differs", key);
        if (et == GGUF_VT_STRING) {
            for (uint64_t j = 0; j < n; j++) {
                size_t la, lb;
                const char *sa = gguf_arr_str(a, key, j, &la), *sb = gguf_arr_str(b, key, j, &lb);
                ck_assert_msg(sa && sb && la == lb && !memcmp(sa, sb, la),
                              "key '%s': element %" PRIu64 " differs", key, j);
            }
        } else if (n > 0) {
            ck_assert_msg(!memcmp(gguf_arr_data(a, key), gguf_arr_data(b, key), n * vt_bytes(et)),
                          "key '%s': array data differs", key);
        }
    } else if (t == GGUF_VT_FLOAT32 || t == GGUF_VT_FLOAT64) {
        float fa, fb;
        ck_assert(gguf_get_f32(a, key, &fa, &err) == 0 && gguf_get_f32(b, key, &fb, &err) == 0);
        ck_assert_msg(!memcmp(&fa, &fb, sizeof fa), "key '%s': %g vs %g", key, fa, fb);
    } else if (t == GGUF_VT_BOOL) {
        int va, vb;
        ck_assert(gguf_get_bool(a, key, &va, &err) == 0 && gguf_get_bool(b, key, &vb, &err) == 0);
        ck_assert_msg(va == vb, "key '%s': %d vs %d", key, va, vb);
    } else if (is_signed(t)) {
        int64_t va, vb;
        ck_assert(gguf_get_int(a, key, &va, &err) == 0 && gguf_get_int(b, key, &vb, &err) == 0);
        ck_assert_msg(va == vb, "key '%s': %" PRId64 " vs %" PRId64, key, va, vb);
    } else {
        uint64_t va, vb;
        ck_assert(gguf_get_uint(a, key, &va, &err) == 0 &&
                  gguf_get_uint(b, key, &vb, &err) == 0);
        ck_assert_msg(va == vb, "key '%s': %" PRIu64 " vs %" PRIu64, key, va, vb);
    }
}

/* out's metadata is in's, key for key and in order, except general.file_type
 * (7, UINT32, in place or appended) and the CRC array (rewritten, last). */
static void assert_meta_copied(const gguf_file *in, const gguf_file *out)
{
    int64_t j = 0;
    const int had_ft = gguf_find_key(in, "general.file_type") >= 0;
    for (int64_t i = 0; i < gguf_n_kv(in); i++) {
        const char *key = gguf_kv_key(in, i);
        if (!strcmp(key, GGUF_KEY_CRC32))
            continue;
        ck_assert_msg(j < gguf_n_kv(out) && !strcmp(gguf_kv_key(out, j), key),
                      "key #%" PRId64 ": expected '%s', found '%s'", j, key,
                      gguf_kv_key(out, j) ? gguf_kv_key(out, j) : "(none)");
        j++;
        if (strcmp(key, "general.file_type") != 0)
            assert_kv_equal(in, out, key);
    }
    if (!had_ft) {
        ck_assert_str_eq(gguf_kv_key(out, j), "general.file_type");
        j++;
    }
    ck_assert_msg(j == gguf_n_kv(out) - 1 && !strcmp(gguf_kv_key(out, j), GGUF_KEY_CRC32),
                  "the CRC array should be the last key");
    gpt2_error err = {0};
    uint64_t ft = 0;
    ck_assert(gguf_get_uint(out, "general.file_type", &ft, &err) == 0);
    ck_assert_uint_eq(ft, 7); /* llama.cpp's MOSTLY_Q8_0 */
    ck_assert_int_eq(gguf_kv_type(out, gguf_find_key(out, "general.file_type")), GGUF_VT_UINT32);
}

/* The CRC array matches the data of every tensor. */
static void assert_crcs(const gguf_file *g)
{
    gpt2_error err = {0};
    uint32_t et;
    uint64_t n;
    ck_assert(gguf_get_arr(g, GGUF_KEY_CRC32, &et, &n, &err) == 0);
    ck_assert(et == GGUF_VT_UINT32 && n == (uint64_t)gguf_n_tensors(g));
    const unsigned char *crcs = gguf_arr_data(g, GGUF_KEY_CRC32);
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        uint32_t want;
        memcpy(&want, crcs + 4 * i, 4);
        ck_assert_msg(gguf_crc32(t->data, t->n_bytes) == want, "tensor '%s': CRC", t->name);
    }
}

/* ---- copying a file through our reader and writer (test-side helper) ---------- */

typedef void (*mutate_fn)(const char *name, uint32_t type, void *data, size_t n_bytes, void *u);

static void copy_kv_test(const gguf_file *f, gguf_writer *w, int64_t i)
{
    gpt2_error err = {0};
    const char *key = gguf_kv_key(f, i);
    const uint32_t t = gguf_kv_type(f, i);
    int rc;
    if (t == GGUF_VT_STRING) {
        const char *s;
        size_t n;
        ck_assert(gguf_get_str(f, key, &s, &n, &err) == 0);
        char *c = strndup(s, n);
        rc = gguf_set_str(w, key, c);
        free(c);
    } else if (t == GGUF_VT_ARRAY) {
        const uint32_t et = gguf_kv_arr_type(f, i);
        const uint64_t n = gguf_kv_arr_n(f, i);
        if (et == GGUF_VT_STRING) {
            const char **s = malloc((n + 1) * sizeof *s);
            size_t *l = malloc((n + 1) * sizeof *l);
            for (uint64_t j = 0; j < n; j++)
                s[j] = gguf_arr_str(f, key, j, &l[j]);
            rc = gguf_set_arr_str(w, key, s, l, n);
            free(s);
            free(l);
        } else {
            rc = gguf_set_arr(w, key, et, gguf_arr_data(f, key), n);
        }
    } else if (t == GGUF_VT_FLOAT32) {
        float v;
        ck_assert(gguf_get_f32(f, key, &v, &err) == 0);
        rc = gguf_set_f32(w, key, v);
    } else if (t == GGUF_VT_BOOL) {
        int v;
        ck_assert(gguf_get_bool(f, key, &v, &err) == 0);
        rc = gguf_set_bool(w, key, v);
    } else if (t == GGUF_VT_UINT32 || t == GGUF_VT_UINT64 || t == GGUF_VT_INT32) {
        if (t == GGUF_VT_INT32) {
            int64_t v;
            ck_assert(gguf_get_int(f, key, &v, &err) == 0);
            rc = gguf_set_i32(w, key, (int32_t)v);
        } else {
            uint64_t v;
            ck_assert(gguf_get_uint(f, key, &v, &err) == 0);
            rc = t == GGUF_VT_UINT32 ? gguf_set_u32(w, key, (uint32_t)v) : gguf_set_u64(w, key, v);
        }
    } else {
        ck_abort_msg("copy helper: key '%s' has type %s, not handled here", key,
                     gguf_vtype_name(t));
        return;
    }
    ck_assert_msg(rc == 0, "copy helper: setting '%s' failed", key);
}

/* Writes in's metadata (the CRC array recomputed) and tensors to out; mutate,
 * if given, may change each tensor's bytes on the way. */
static void copy_file(const char *in, const char *out, mutate_fn mutate, void *u)
{
    gguf_file *f = open_gguf(in);
    gguf_writer *w = gguf_writer_create();
    for (int64_t i = 0; i < gguf_n_kv(f); i++)
        if (strcmp(gguf_kv_key(f, i), GGUF_KEY_CRC32) != 0)
            copy_kv_test(f, w, i);
    const int64_t n = gguf_n_tensors(f);
    void **bufs = calloc((size_t)n, sizeof *bufs);
    for (int64_t i = 0; i < n; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        const void *data = t->data;
        if (mutate) {
            bufs[i] = malloc(t->n_bytes);
            memcpy(bufs[i], t->data, t->n_bytes);
            mutate(t->name, t->type, bufs[i], t->n_bytes, u);
            data = bufs[i];
        }
        ck_assert(gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, data) == 0);
    }
    gpt2_error err = {0};
    remove(out);
    ck_assert_msg(gguf_writer_write(w, out, 1, NULL, NULL, &err) == 0, "%s", err.msg);
    for (int64_t i = 0; i < n; i++)
        free(bufs[i]);
    free(bufs);
    gguf_writer_free(w);
    gguf_close(f);
}

/* ---- the Q8_0 block bound ------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double urand(void) /* [0, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static double nrand(void)
{
    double u = urand(), v = urand();
    return sqrt(-2 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

enum { N_BLOCK_CASES = 17 };
static const char *const block_case_name[N_BLOCK_CASES] = {
    "gaussian 0.02",        "uniform [-1, 1]",        "wide dynamic range",
    "all zeros",            "one huge outlier",       "negative outlier near the max",
    "all equal positive",   "all equal negative",     "fp16-subnormal scale",
    "deep subnormal scale", "scale flushes to 0",     "halfway values",
    "one nonzero",          "tiny normal f32 values", "f32 denormal values",
    "largest allowed |x|",  "alternating +-amax",
};

/* Fills one block of case c (random cases differ per call). */
static void make_block(int c, float *x)
{
    const int n = GPT2K_QK8_0;
    for (int k = 0; k < n; k++)
        x[k] = 0;
    switch (c) {
    case 0: for (int k = 0; k < n; k++) x[k] = (float)(0.02 * nrand()); break;
    case 1: for (int k = 0; k < n; k++) x[k] = (float)(2 * urand() - 1); break;
    case 2:
        for (int k = 0; k < n; k++)
            x[k] = (float)((urand() < 0.5 ? -1 : 1) * exp(-20 + 25 * urand()));
        break;
    case 3: break;
    case 4:
        for (int k = 0; k < n; k++) x[k] = (float)(1e-3 * nrand());
        x[7] = 1e4f; /* the small values all land on q = 0 */
        break;
    case 5:
        for (int k = 0; k < n; k++) x[k] = (float)nrand();
        x[31] = -5e6f; /* d = 39370, still an fp16 normal */
        break;
    case 6: for (int k = 0; k < n; k++) x[k] = 0.37f; break;
    case 7: for (int k = 0; k < n; k++) x[k] = -1234.5f; break;
    case 8: /* amax 3e-3: d = 2.4e-5, below fp16's smallest normal 6.1e-5 */
        for (int k = 0; k < n; k++) x[k] = (float)(3e-3 * (2 * urand() - 1));
        x[3] = 3e-3f;
        break;
    case 9: /* amax 1e-5: d = 7.9e-8, about one fp16 subnormal step (6e-8) */
        for (int k = 0; k < n; k++) x[k] = (float)(1e-5 * (2 * urand() - 1));
        x[0] = -1e-5f;
        break;
    case 10: /* amax 2e-6: d = 1.6e-8 < 2^-25, so fp16(d) = 0 */
        for (int k = 0; k < n; k++) x[k] = (float)(2e-6 * (2 * urand() - 1));
        x[9] = 2e-6f;
        break;
    case 11: /* d = 2^-7 exactly; x / d lands on k + 0.5 */
        for (int k = 0; k < n - 1; k++) x[k] = (float)((k - 16 + 0.5) / 128.0);
        x[n - 1] = 127.0f / 128.0f;
        break;
    case 12: x[13] = -0.75f; break;
    case 13: for (int k = 0; k < n; k++) x[k] = (float)(1e-30 * nrand()); break;
    case 14: for (int k = 0; k < n; k++) x[k] = (float)(1e-40 * (2 * urand() - 1)); break;
    case 15: /* just below fp16 overflow of the scale: 8.3e6 / 127 = 65354 */
        for (int k = 0; k < n; k++) x[k] = (float)(1e6 * nrand());
        x[20] = 8.3e6f;
        break;
    case 16: for (int k = 0; k < n; k++) x[k] = k & 1 ? 2.5f : -2.5f; break;
    }
}

/*
 * The bound. The encoder takes d = max|x| / 127 (in f32), stores d16 = fp16(d)
 * and q = round(x / d), rounded to nearest (x times 1/d, as llama.cpp does).
 * Decoding gives q * d16, so
 *     deq - x = (q - x/d) * d16 + x * (d16/d - 1)
 *     |deq - x| <= d16/2 + |x - x * (d16/d)|
 * The first term is the rounding of q (half a step), the second the scale's own
 * rounding to fp16: relative 2^-11 for a normal d16, up to 100% when d is an fp16
 * subnormal or below half the smallest one (max|x| < 127 * 2^-25, about 3.8e-6),
 * where d16 = 0 and the whole block decodes to 0: the error is then |x| itself,
 * less than 3.8e-6, which is what llama.cpp's encoding does too. Slack for f32
 * arithmetic: x * (1/d) is rounded (|x/d| <= 127, so |q - x/d| <= 0.5 +
 * 127 * 2^-22) and so is q * d16 (2^-24 relative).
 */
START_TEST(test_block_bound)
{
    const int c = _i;
    const int n_blocks = c <= 2 || c == 4 || c == 5 || c == 8 || c == 9 || c == 10 || c == 13 ||
                                 c == 14 || c == 15
                             ? 500
                             : 1;
    const int n = GPT2K_QK8_0;
    ck_assert_uint_eq(gpt2k_q8_0_row_bytes(n), 34);
    for (int b = 0; b < n_blocks; b++) {
        float x[GPT2K_QK8_0], deq[GPT2K_QK8_0];
        gpt2k_block_q8_0 blk[2]; /* [1] is a guard: the encoder writes one block */
        memset(blk, 0xa5, sizeof blk);
        make_block(c, x);
        gpt2k_quantize_q8_0_ref(blk, x, n);
        ck_assert_msg(blk[1].d == 0xa5a5, "%s: wrote past the block", block_case_name[c]);
        gpt2k_dequantize_q8_0(deq, blk, n);

        float amax = 0;
        for (int k = 0; k < n; k++)
            amax = fabsf(x[k]) > amax ? fabsf(x[k]) : amax;
        const float d = amax / 127.0f;
        /* the standard encoding: the scale is fp16(max|x| / 127) */
        ck_assert_msg(blk[0].d == gpt2k_f32_to_f16(d), "%s: scale 0x%04x, expected 0x%04x",
                      block_case_name[c], blk[0].d, gpt2k_f32_to_f16(d));
        const double d16 = gpt2k_f16_to_f32(blk[0].d);
        for (int k = 0; k < n; k++) {
            ck_assert_msg(blk[0].qs[k] >= -127, "%s: q = -128", block_case_name[c]);
            if (d16 > 0) /* q is x / d rounded to nearest */
                ck_assert_msg(fabs(blk[0].qs[k] - (double)x[k] / d) <= 0.5 + 1e-4,
                              "%s: x[%d] = %g, d = %g: q = %d", block_case_name[c], k, x[k], d,
                              blk[0].qs[k]);
            const double ratio = d > 0 ? d16 / d : 1;
            const double bound = d16 * (0.5 + 127 * 0x1p-22) + fabs(x[k] - x[k] * ratio) +
                                 fabs(x[k]) * 0x1p-22;
            const double e = fabs((double)deq[k] - x[k]);
            ck_assert_msg(isfinite(deq[k]) && e <= bound,
                          "%s, block %d: x[%d] = %.9g decodes to %.9g: error %.3g > bound %.3g "
                          "(d = %.6g, d16 = %.6g)",
                          block_case_name[c], b, k, x[k], deq[k], e, bound, d, d16);
        }
        /* cases with a known outcome */
        if (c == 3 || c == 10 || c == 14)
            for (int k = 0; k < n; k++)
                ck_assert_msg(deq[k] == 0, "%s: x[%d] = %g should decode to 0",
                              block_case_name[c], k, x[k]);
        if (c == 6 || c == 7 || c == 16) /* |x| = amax: q = +-127, error from d16 only */
            for (int k = 0; k < n; k++)
                ck_assert_int_eq(abs(blk[0].qs[k]), 127);
        if (c == 11) /* d16 = d exactly: no scale error, deq within half a step */
            ck_assert(d16 == 1.0 / 128);
    }
}
END_TEST

/* A whole row through the reference: blocks are independent. */
START_TEST(test_row_is_blocks)
{
    enum { K = 32 * 9 };
    float x[K];
    for (int k = 0; k < K; k++)
        x[k] = (float)(nrand() * (k < 64 ? 1e-3 : 1.0));
    gpt2k_block_q8_0 row[K / 32], one[1];
    gpt2k_quantize_q8_0_ref(row, x, K);
    for (int b = 0; b < K / 32; b++) {
        gpt2k_quantize_q8_0_ref(one, x + 32 * b, 32);
        ck_assert(!memcmp(&row[b], one, sizeof one));
    }
}
END_TEST

/* ---- the file-level checks ----------------------------------------------------- */

/* Everything about one quantized file against its input. */
static void check_quantized(const char *in_path, const char *out_path, gpt2_dtype embd,
                            const rep *r)
{
    gguf_file *in = open_gguf(in_path), *out = open_gguf(out_path);
    const int64_t n = gguf_n_tensors(in);
    ck_assert_int_eq(gguf_n_tensors(out), n);
    assert_meta_copied(in, out);
    assert_crcs(out);
    if (r) {
        ck_assert_int_eq(r->n, n);
        ck_assert_int_eq(r->count, n);
    }
    for (int64_t i = 0; i < n; i++) {
        const gguf_tensor *a = gguf_tensor_at(in, i), *b = gguf_tensor_at(out, i);
        ck_assert_str_eq(a->name, b->name); /* order kept */
        ck_assert_int_eq(a->n_dims, b->n_dims);
        for (int d = 0; d < GGUF_MAX_DIMS; d++)
            ck_assert_uint_eq(a->ne[d], b->ne[d]);
        const uint32_t want = expected_type(a->name, a->type, ggml_of(embd));
        ck_assert_msg(b->type == want, "tensor '%s': %s, expected %s", b->name,
                      ggml_type_name(b->type), ggml_type_name(want));

        double sse = 0, ssx = 0, max_abs = 0;
        if (a->type == b->type) {
            ck_assert_msg(a->n_bytes == b->n_bytes && !memcmp(a->data, b->data, a->n_bytes),
                          "tensor '%s' (%s) should be copied byte for byte", a->name,
                          ggml_type_name(a->type));
        } else if (b->type == GGML_T_Q8_0) {
            float *x = tensor_f32(a);
            const size_t nb = gpt2k_q8_0_row_bytes(32) * (a->n_elements / 32);
            ck_assert_uint_eq(b->n_bytes, nb);
            void *ref = malloc(nb);
            gpt2k_quantize_q8_0_ref(ref, x, (int)a->n_elements);
            ck_assert_msg(!memcmp(ref, b->data, nb),
                          "tensor '%s': bytes differ from the reference Q8_0 encoding", a->name);
            float *y = malloc(a->n_elements * sizeof *y);
            gpt2k_dequantize_q8_0(y, b->data, (int)a->n_elements);
            for (uint64_t j = 0; j < a->n_elements; j++) {
                const double e = fabs((double)y[j] - x[j]);
                sse += e * e;
                ssx += (double)x[j] * x[j];
                max_abs = e > max_abs ? e : max_abs;
            }
            free(ref);
            free(y);
            free(x);
        } else {
            /* F16 -> F32 is exact; F32 -> F16 is round to nearest even */
            for (uint64_t j = 0; j < a->n_elements; j++) {
                const float x = tval(a, j);
                if (b->type == GGML_T_F32) {
                    ck_assert_msg(tval(b, j) == x, "tensor '%s'[%" PRIu64 "] changed", a->name, j);
                } else {
                    uint16_t h;
                    memcpy(&h, (const char *)b->data + 2 * j, 2);
                    ck_assert_uint_eq(h, gpt2k_f32_to_f16(x));
                    const double e = fabs((double)gpt2k_f16_to_f32(h) - x);
                    sse += e * e;
                    ssx += (double)x * x;
                    max_abs = e > max_abs ? e : max_abs;
                }
            }
        }
        if (!r)
            continue;
        const gpt2_quant_tensor *t = &r->t[i];
        ck_assert_str_eq(t->name, a->name);
        ck_assert_str_eq(t->type_in, ggml_type_name(a->type));
        ck_assert_str_eq(t->type_out, ggml_type_name(b->type));
        ck_assert_uint_eq(t->bytes_in, a->n_bytes);
        ck_assert_uint_eq(t->bytes_out, b->n_bytes);
        const double rms = ssx > 0 ? sqrt(sse / ssx) : 0;
        ck_assert_msg(fabs(t->rms_rel_err - rms) <= 1e-9 + 1e-6 * rms,
                      "tensor '%s': reported rms rel err %.9g, recomputed %.9g", a->name,
                      t->rms_rel_err, rms);
        ck_assert_msg(fabs(t->max_abs_err - max_abs) <= 1e-12 + 1e-6 * max_abs,
                      "tensor '%s': reported max abs err %.9g, recomputed %.9g", a->name,
                      t->max_abs_err, max_abs);
        if (b->type == GGML_T_Q8_0)
            /* Gaussian-like weights: about half a step over sqrt(3), ~0.5% */
            ck_assert_msg(t->rms_rel_err > 1e-4 && t->rms_rel_err < 0.02,
                          "tensor '%s': rms rel err %g is implausible for q8_0", a->name,
                          t->rms_rel_err);
    }
    gguf_close(in);
    gguf_close(out);
}

/* f32 and f16 inputs, default --embd q8_0 */
START_TEST(test_quantize_model)
{
    const gpt2_dtype dt = _i ? GPT2_DTYPE_F16 : GPT2_DTYPE_F32;
    const char *out = dpath(_i ? "q_f16.gguf" : "q_f32.gguf");
    static rep r;
    memset(&r, 0, sizeof r);
    quantize_ok(model_in(dt), out, GPT2_DTYPE_Q8_0, &r);
    check_quantized(model_in(dt), out, GPT2_DTYPE_Q8_0, &r);
    /* the model's own layout: 2 + 12 L + 2 tensors, 4 L + 1 of them Q8_0 */
    gguf_file *g = open_gguf(out);
    int n_q = 0;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++)
        n_q += gguf_tensor_at(g, i)->type == GGML_T_Q8_0;
    ck_assert_int_eq(gguf_n_tensors(g), 2 + 12 * 2 + 2);
    ck_assert_int_eq(n_q, 4 * 2 + 1);
    ck_assert_int_eq(gguf_find_tensor(g, "position_embd.weight")->type, GGML_T_F32);
    /* the tokenizer came along (also checked key by key above) */
    uint32_t et;
    uint64_t nv;
    gpt2_error err = {0};
    ck_assert(gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &nv, &err) == 0);
    ck_assert_uint_eq(nv, 320);
    gguf_close(g);
    /* loading with gpt2_model_load is not tested here: it needs the engine's
     * Q8_0 matmuls, wired in separately */
}
END_TEST

/* --embd f16 / f32 (and q8_0 done above), from f32 and f16 inputs */
START_TEST(test_embd_variants)
{
    const gpt2_dtype in_dt = _i & 1 ? GPT2_DTYPE_F16 : GPT2_DTYPE_F32;
    const gpt2_dtype embd = _i & 2 ? GPT2_DTYPE_F32 : GPT2_DTYPE_F16;
    const char *out = dpath(tu_fmt("embd_%d.gguf", _i));
    static rep r;
    memset(&r, 0, sizeof r);
    quantize_ok(model_in(in_dt), out, embd, &r);
    check_quantized(model_in(in_dt), out, embd, &r);
    gguf_file *g = open_gguf(out);
    ck_assert_int_eq(gguf_find_tensor(g, "token_embd.weight")->type, ggml_of(embd));
    ck_assert_int_eq(gguf_find_tensor(g, "blk.1.ffn_down.weight")->type, GGML_T_Q8_0);
    gguf_close(g);
}
END_TEST

/* --output-weight: the tied LM head written again as output.weight, the same
 * bytes as token_embd in the same type; every other tensor as without it. */
START_TEST(test_output_weight)
{
    const char *plain = dpath("ow_plain.gguf"), *out = dpath("ow.gguf");
    quantize_ok(model_in(GPT2_DTYPE_F32), plain, GPT2_DTYPE_Q8_0, NULL);
    gpt2_error err = {0};
    remove(out);
    ck_assert_msg(gpt2_quantize_ex(model_in(GPT2_DTYPE_F32), out, GPT2_DTYPE_Q8_0, GPT2_DTYPE_F16,
                                   GPT2_QUANT_OUTPUT_WEIGHT, NULL, NULL, &err) == 0,
                  "%s", err.msg);
    gguf_file *g = open_gguf(out), *p = open_gguf(plain);
    ck_assert_int_eq(gguf_n_tensors(g), gguf_n_tensors(p) + 1);
    const gguf_tensor *te = gguf_find_tensor(g, "token_embd.weight");
    const gguf_tensor *ow = gguf_find_tensor(g, "output.weight");
    ck_assert_ptr_nonnull(ow);
    ck_assert_int_eq(ow->type, GGML_T_F16);
    ck_assert_int_eq(te->type, GGML_T_F16);
    ck_assert_int_eq(ow->n_dims, 2);
    ck_assert(ow->ne[0] == te->ne[0] && ow->ne[1] == te->ne[1]);
    ck_assert(ow->n_bytes == te->n_bytes);
    ck_assert_msg(memcmp(ow->data, te->data, te->n_bytes) == 0, "output.weight differs from token_embd");
    /* the matrices are those of the plain run */
    const gguf_tensor *a = gguf_find_tensor(g, "blk.1.ffn_down.weight");
    const gguf_tensor *b = gguf_find_tensor(p, "blk.1.ffn_down.weight");
    ck_assert(a->n_bytes == b->n_bytes && memcmp(a->data, b->data, a->n_bytes) == 0);
    gguf_close(g);
    gguf_close(p);
}
END_TEST

START_TEST(test_determinism)
{
    quantize_ok(model_in(GPT2_DTYPE_F32), dpath("det_a.gguf"), GPT2_DTYPE_Q8_0, NULL);
    quantize_ok(model_in(GPT2_DTYPE_F32), dpath("det_b.gguf"), GPT2_DTYPE_Q8_0, NULL);
    ck_assert_msg(files_equal(dpath("det_a.gguf"), dpath("det_b.gguf")),
                  "same input, different output bytes");
}
END_TEST

/* "Round-trips through our reader with identical bytes": the quantized file,
 * read and written again by our reader and writer, is the same file; and
 * quantizing it again is refused. */
START_TEST(test_roundtrip)
{
    const char *q = dpath("rt_q.gguf"), *copy = dpath("rt_copy.gguf");
    quantize_ok(model_in(GPT2_DTYPE_F32), q, GPT2_DTYPE_Q8_0, NULL);
    copy_file(q, copy, NULL, NULL);
    ck_assert_msg(files_equal(q, copy), "the quantized file does not survive reader + writer");
    quantize_fails(q, dpath("rt_qq.gguf"), GPT2_DTYPE_Q8_0, GPT2_ERR_INVALID, "already quantized",
                   "blk.0.attn_qkv.weight");
    /* with the matrices quantized, a q8_0 embedding cannot become f16 either */
    quantize_fails(q, dpath("rt_qq.gguf"), GPT2_DTYPE_F16, GPT2_ERR_INVALID, "already quantized",
                   NULL);
}
END_TEST

/* ---- refusals ------------------------------------------------------------------- */

typedef struct poke {
    const char *tensor;
    uint64_t index;
    float value;
} poke;

static void poke_value(const char *name, uint32_t type, void *data, size_t n_bytes, void *u)
{
    const poke *p = u;
    if (strcmp(name, p->tensor) != 0)
        return;
    if (type == GGML_T_F32) {
        ck_assert(4 * (p->index + 1) <= n_bytes);
        memcpy((char *)data + 4 * p->index, &p->value, 4);
    } else {
        ck_assert(type == GGML_T_F16 && 2 * (p->index + 1) <= n_bytes);
        const uint16_t h = gpt2k_f32_to_f16(p->value);
        memcpy((char *)data + 2 * p->index, &h, 2);
    }
}

/* NaN / Inf anywhere in a weight: refused, naming the tensor and the element. */
START_TEST(test_nonfinite)
{
    static const struct {
        gpt2_dtype in;
        const char *tensor;
        uint64_t index;
        int kind; /* 0 NaN, 1 +Inf, 2 -Inf */
        gpt2_dtype embd;
    } cases[] = {
        {GPT2_DTYPE_F32, "blk.1.ffn_up.weight", 4321, 0, GPT2_DTYPE_Q8_0},  /* quantized */
        {GPT2_DTYPE_F32, "blk.0.attn_qkv.bias", 17, 1, GPT2_DTYPE_Q8_0},    /* kept f32 */
        {GPT2_DTYPE_F32, "token_embd.weight", 20479, 2, GPT2_DTYPE_F16},    /* to f16 */
        {GPT2_DTYPE_F32, "token_embd.weight", 5, 0, GPT2_DTYPE_F32},        /* copied */
        {GPT2_DTYPE_F16, "blk.0.ffn_down.weight", 0, 1, GPT2_DTYPE_Q8_0},   /* f16 input */
        {GPT2_DTYPE_F16, "position_embd.weight", 100, 0, GPT2_DTYPE_Q8_0},  /* f16 -> f32 */
    };
    const int c = _i;
    const float v = cases[c].kind == 0 ? NAN : cases[c].kind == 1 ? INFINITY : -INFINITY;
    poke p = {cases[c].tensor, cases[c].index, v};
    const char *bad = dpath(tu_fmt("nf_in_%d.gguf", c));
    copy_file(model_in(cases[c].in), bad, poke_value, &p);
    quantize_fails(bad, dpath(tu_fmt("nf_out_%d.gguf", c)), cases[c].embd, GPT2_ERR_INVALID,
                   tu_fmt("'%s'", cases[c].tensor),
                   tu_fmt("element %" PRIu64 " ", cases[c].index));
    gpt2_error err = {0};
    gpt2_quantize(bad, dpath("nf_out.gguf"), GPT2_DTYPE_Q8_0, cases[c].embd, NULL, NULL, &err);
    ck_assert_msg(strstr(err.msg, cases[c].kind ? "Inf" : "NaN"), "%s", err.msg);
}
END_TEST

/* Values the formats cannot hold: |x| whose Q8_0 scale overflows fp16, and
 * f32 values beyond f16's range when --embd f16. */
START_TEST(test_overflow)
{
    poke p = {"blk.0.attn_output.weight", 70, 9e6f}; /* 9e6 / 127 > 65504 */
    copy_file(model_in(GPT2_DTYPE_F32), dpath("ovf_in.gguf"), poke_value, &p);
    quantize_fails(dpath("ovf_in.gguf"), dpath("ovf_out.gguf"), GPT2_DTYPE_Q8_0, GPT2_ERR_INVALID,
                   "'blk.0.attn_output.weight'", "too large for q8_0");
    /* just below the limit is fine */
    poke ok = {"blk.0.attn_output.weight", 70, 8e6f};
    copy_file(model_in(GPT2_DTYPE_F32), dpath("ovf_ok.gguf"), poke_value, &ok);
    quantize_ok(dpath("ovf_ok.gguf"), dpath("ovf_ok_q.gguf"), GPT2_DTYPE_Q8_0, NULL);
    check_quantized(dpath("ovf_ok.gguf"), dpath("ovf_ok_q.gguf"), GPT2_DTYPE_Q8_0, NULL);

    poke big = {"token_embd.weight", 640, 1e5f};
    copy_file(model_in(GPT2_DTYPE_F32), dpath("ovf16_in.gguf"), poke_value, &big);
    quantize_fails(dpath("ovf16_in.gguf"), dpath("ovf16_out.gguf"), GPT2_DTYPE_F16,
                   GPT2_ERR_INVALID, "'token_embd.weight'", "overflows f16");
    quantize_ok(dpath("ovf16_in.gguf"), dpath("ovf16_q.gguf"), GPT2_DTYPE_Q8_0, NULL);
}
END_TEST

/* A minimal gpt2-architecture file written with the GGUF writer directly. */
static void write_small(const char *path, const char *arch, uint64_t ne0)
{
    gguf_writer *w = gguf_writer_create();
    ck_assert(gguf_set_str(w, "general.architecture", arch) == 0);
    const uint64_t ne[2] = {ne0, 6}, nb[1] = {6};
    float *x = malloc(ne0 * 6 * sizeof *x);
    for (uint64_t j = 0; j < ne0 * 6; j++)
        x[j] = (float)(0.1 * nrand());
    static const float bias[6] = {1, 2, 3, 4, 5, 6};
    ck_assert(gguf_add_tensor(w, "blk.0.attn_qkv.weight", GGML_T_F32, 2, ne, x) == 0);
    ck_assert(gguf_add_tensor(w, "blk.0.attn_qkv.bias", GGML_T_F32, 1, nb, bias) == 0);
    gpt2_error err = {0};
    remove(path);
    ck_assert_msg(gguf_writer_write(w, path, 1, NULL, NULL, &err) == 0, "%s", err.msg);
    gguf_writer_free(w);
    free(x);
}

START_TEST(test_bad_inputs)
{
    const char *out = dpath("bad_out.gguf");
    /* rows that are not whole Q8_0 blocks */
    write_small(dpath("ragged.gguf"), "gpt2", 40);
    quantize_fails(dpath("ragged.gguf"), out, GPT2_DTYPE_Q8_0, GPT2_ERR_UNSUPPORTED,
                   "'blk.0.attn_qkv.weight'", "rows of 40 values");
    write_small(dpath("whole.gguf"), "gpt2", 64);
    quantize_ok(dpath("whole.gguf"), out, GPT2_DTYPE_Q8_0, NULL);
    check_quantized(dpath("whole.gguf"), out, GPT2_DTYPE_Q8_0, NULL);
    /* not a gpt2 model */
    write_small(dpath("llama.gguf"), "llama", 64);
    quantize_fails(dpath("llama.gguf"), out, GPT2_DTYPE_Q8_0, GPT2_ERR_UNSUPPORTED,
                   "general.architecture", "'llama'");
    /* missing, and not GGUF at all */
    quantize_fails(dpath("no_such_file.gguf"), out, GPT2_DTYPE_Q8_0, GPT2_ERR_IO,
                   "no_such_file.gguf", NULL);
    FILE *f = fopen(dpath("junk.gguf"), "wb");
    fputs("this is not a gguf file, just text padding it out to a size\n", f);
    fclose(f);
    quantize_fails(dpath("junk.gguf"), out, GPT2_DTYPE_Q8_0, GPT2_ERR_FORMAT, "junk.gguf", NULL);
    /* the output is the input: by name, and by another name for the same file */
    const char *in = model_in(GPT2_DTYPE_F32);
    gpt2_error err = {0};
    ck_assert_int_eq(gpt2_quantize(in, in, GPT2_DTYPE_Q8_0, GPT2_DTYPE_Q8_0, NULL, NULL, &err),
                     GPT2_ERR_INVALID);
    ck_assert_msg(strstr(err.msg, "the input"), "%s", err.msg);
    const char *dotted = keep(tu_fmt("%s/./quant_in_f32.gguf", tu_data()));
    ck_assert_int_eq(gpt2_quantize(in, dotted, GPT2_DTYPE_Q8_0, GPT2_DTYPE_Q8_0, NULL, NULL, &err),
                     GPT2_ERR_INVALID);
    const char *link = dpath("link.gguf");
    remove(link);
    ck_assert(symlink(in, link) == 0);
    ck_assert_int_eq(gpt2_quantize(in, link, GPT2_DTYPE_Q8_0, GPT2_DTYPE_Q8_0, NULL, NULL, &err),
                     GPT2_ERR_INVALID);
    remove(link);
    /* bad types */
    ck_assert_int_eq(gpt2_quantize(in, out, GPT2_DTYPE_F16, GPT2_DTYPE_Q8_0, NULL, NULL, &err),
                     GPT2_ERR_UNSUPPORTED);
    ck_assert_int_eq(gpt2_quantize(in, out, GPT2_DTYPE_Q8_0, (gpt2_dtype)5, NULL, NULL, &err),
                     GPT2_ERR_INVALID);
    ck_assert_int_eq(gpt2_quantize(NULL, out, GPT2_DTYPE_Q8_0, GPT2_DTYPE_Q8_0, NULL, NULL, &err),
                     GPT2_ERR_INVALID);
    tu_assert_no_output(out);
    /* a corrupt input (CRC mismatch) in a tensor that is converted and in one
     * that is copied */
    static const char *const victims[2] = {"blk.0.ffn_up.weight", "output_norm.bias"};
    for (int v = 0; v < 2; v++) {
        size_t n;
        unsigned char *bytes = tu_read_file(in, &n);
        gguf_file *g = open_gguf(in);
        const gguf_tensor *last = gguf_tensor_at(g, gguf_n_tensors(g) - 1);
        const uint64_t a = gguf_alignment(g);
        /* every tensor is padded to the alignment, the last one too */
        const uint64_t data_start = n - last->offset - ((last->n_bytes + a - 1) / a * a);
        const gguf_tensor *t = gguf_find_tensor(g, victims[v]);
        bytes[data_start + t->offset + 4] ^= 1; /* low mantissa bit of element 1 */
        gguf_close(g);
        const char *corrupt = dpath(tu_fmt("crc_%d.gguf", v));
        FILE *cf = fopen(corrupt, "wb");
        ck_assert(fwrite(bytes, 1, n, cf) == n);
        fclose(cf);
        free(bytes);
        quantize_fails(corrupt, out, GPT2_DTYPE_Q8_0, GPT2_ERR_CRC, victims[v], "CRC-32");
    }
}
END_TEST

/* Every metadata value type is copied exactly, FLOAT64 bits included; an
 * unknown tensor is copied unchanged, whatever its type. */
START_TEST(test_metadata_types)
{
    const char *in = dpath("zoo.gguf"), *out = dpath("zoo_q.gguf");
    gguf_writer *w = gguf_writer_create();
    const double f64 = 0.1 + 1e-17 * 3; /* not representable as a float */
    ck_assert(gguf_set_str(w, "general.architecture", "gpt2") == 0);
    ck_assert(gguf_set_u8(w, "z.u8", 250) == 0);
    ck_assert(gguf_set_i8(w, "z.i8", -7) == 0);
    ck_assert(gguf_set_u16(w, "z.u16", 65000) == 0);
    ck_assert(gguf_set_i16(w, "z.i16", -30000) == 0);
    ck_assert(gguf_set_u32(w, "z.u32", 4000000000u) == 0);
    ck_assert(gguf_set_i32(w, "z.i32", -2000000000) == 0);
    ck_assert(gguf_set_u64(w, "z.u64", UINT64_MAX - 5) == 0);
    ck_assert(gguf_set_i64(w, "z.i64", INT64_MIN + 3) == 0);
    ck_assert(gguf_set_f32(w, "z.f32", -1.25e-30f) == 0);
    ck_assert(gguf_set_f64(w, "z.f64", f64) == 0);
    ck_assert(gguf_set_bool(w, "z.bool", 1) == 0);
    ck_assert(gguf_set_str(w, "z.str", "h\xc3\xa9llo \xf0\x9f\x98\x80") == 0);
    ck_assert(gguf_set_str(w, "z.empty", "") == 0);
    const int16_t a16[3] = {-1, 2, -3};
    const double a64[2] = {1.0 / 3, -2.5e300};
    const uint8_t ab[4] = {1, 0, 1, 1};
    ck_assert(gguf_set_arr(w, "z.arr_i16", GGUF_VT_INT16, a16, 3) == 0);
    ck_assert(gguf_set_arr(w, "z.arr_f64", GGUF_VT_FLOAT64, a64, 2) == 0);
    ck_assert(gguf_set_arr(w, "z.arr_bool", GGUF_VT_BOOL, ab, 4) == 0);
    ck_assert(gguf_set_arr(w, "z.arr_empty", GGUF_VT_UINT32, NULL, 0) == 0);
    const char *strs[4] = {"a", "", "\xe2\x82\xac", "with\nnewline"};
    ck_assert(gguf_set_arr_str(w, "z.arr_str", strs, NULL, 4) == 0);
    ck_assert(gguf_set_arr_str(w, "z.arr_str_empty", NULL, NULL, 0) == 0);
    ck_assert(gguf_set_u32(w, "general.alignment", 64) == 0);
    ck_assert(gguf_set_f64(w, "z.f64_last", -f64) == 0);
    const uint64_t ne[2] = {64, 3}, ne_x[1] = {3};
    float m[192];
    for (int j = 0; j < 192; j++)
        m[j] = (float)nrand();
    const uint16_t extra[3] = {0x3c00, 0x7c00, 0xfe00}; /* 1, Inf, NaN: not ours to judge */
    ck_assert(gguf_add_tensor(w, "blk.0.ffn_up.weight", GGML_T_F32, 2, ne, m) == 0);
    ck_assert(gguf_add_tensor(w, "extra.weight", GGML_T_F16, 1, ne_x, extra) == 0);
    gpt2_error err = {0};
    remove(in);
    ck_assert_msg(gguf_writer_write(w, in, 0, NULL, NULL, &err) == 0, "%s", err.msg); /* no CRCs */
    gguf_writer_free(w);

    quantize_ok(in, out, GPT2_DTYPE_Q8_0, NULL);
    check_quantized(in, out, GPT2_DTYPE_Q8_0, NULL);
    gguf_file *g = open_gguf(out);
    ck_assert_uint_eq(gguf_alignment(g), 64);
    const gguf_tensor *x = gguf_find_tensor(g, "extra.weight");
    ck_assert(x && x->type == GGML_T_F16 && !memcmp(x->data, extra, sizeof extra));
    gguf_close(g);

    /* the exact FLOAT64 bits: look for key, type and value in the output bytes */
    size_t n;
    unsigned char *bytes = tu_read_file(out, &n);
    const double vals[2] = {f64, -f64};
    const char *keys[2] = {"z.f64", "z.f64_last"};
    for (int k = 0; k < 2; k++) {
        unsigned char pat[64];
        const uint64_t kl = strlen(keys[k]);
        const uint32_t ty = GGUF_VT_FLOAT64;
        memcpy(pat, &kl, 8);
        memcpy(pat + 8, keys[k], kl);
        memcpy(pat + 8 + kl, &ty, 4);
        memcpy(pat + 12 + kl, &vals[k], 8);
        ck_assert_msg(memmem(bytes, n, pat, 20 + kl) != NULL, "%s: FLOAT64 value not exact",
                      keys[k]);
    }
    free(bytes);
}
END_TEST

/* ---- the command line -------------------------------------------------------- */

START_TEST(test_cli)
{
    const char *bin = keep(tu_fmt("%s/gpt2c-quantize", tu_env("GPT2C_BIN", "build/bin")));
    ck_assert_msg(access(bin, X_OK) == 0, "%s not built", bin);
    const char *in = model_in(GPT2_DTYPE_F32);
    const char *out = dpath("cli.gguf"), *log = dpath("cli.log");
    remove(out);

    ck_assert_int_eq(run_status(tu_fmt("%s --help > %s 2>&1", bin, log)), 0);
    char *text = read_text(log);
    ck_assert_msg(strstr(text, "--embd") && strstr(text, "q8_0"), "help: %s", text);
    free(text);
    ck_assert_int_eq(run_status(tu_fmt("%s > %s 2>&1", bin, log)), 2);
    ck_assert_int_eq(run_status(tu_fmt("%s %s %s > %s 2>&1", bin, in, out, log)), 2);
    ck_assert_int_eq(run_status(tu_fmt("%s %s %s q4_0 > %s 2>&1", bin, in, out, log)), 2);
    ck_assert_int_eq(run_status(tu_fmt("%s %s %s f16 > %s 2>&1", bin, in, out, log)), 2);
    ck_assert_int_eq(run_status(tu_fmt("%s %s %s q8_0 extra > %s 2>&1", bin, in, out, log)), 2);
    ck_assert_int_eq(run_status(tu_fmt("%s %s %s q8_0 --embd f8 > %s 2>&1", bin, in, out, log)), 2);
    ck_assert_int_eq(run_status(tu_fmt("%s %s %s q8_0 --embd > %s 2>&1", bin, in, out, log)), 2);
    ck_assert_int_eq(run_status(tu_fmt("%s %s %s q8_0 --bogus > %s 2>&1", bin, in, out, log)), 2);
    ck_assert_int_eq(run_status(tu_fmt("%s %s %s q8_0 > %s 2>&1", bin, dpath("nope.gguf"), out,
                                       log)), 1);
    text = read_text(log);
    ck_assert_msg(strstr(text, "nope.gguf"), "error should name the file: %s", text);
    free(text);
    tu_assert_no_output(out);

    /* success: the table, the totals, and the library's bytes */
    ck_assert_int_eq(run_status(tu_fmt("%s %s %s q8_0 > %s 2>&1", bin, in, out, log)), 0);
    text = read_text(log);
    ck_assert_msg(strstr(text, "total: 28 tensors") && strstr(text, "smaller") &&
                      strstr(text, " s\n"),
                  "totals line missing: %s", text);
    ck_assert_msg(strstr(text, "blk.1.ffn_down.weight") && strstr(text, "f32 -> q8_0") &&
                      strstr(text, "rms rel err"),
                  "table missing: %s", text);
    free(text);
    quantize_ok(in, dpath("cli_lib.gguf"), GPT2_DTYPE_Q8_0, NULL);
    ck_assert(files_equal(out, dpath("cli_lib.gguf")));

    /* no overwrite without --force; the file stays as it was */
    ck_assert_int_eq(
        run_status(tu_fmt("%s %s %s q8_0 --embd f32 > %s 2>&1", bin, in, out, log)), 1);
    text = read_text(log);
    ck_assert_msg(strstr(text, "--force"), "%s", text);
    free(text);
    ck_assert(files_equal(out, dpath("cli_lib.gguf")));
    ck_assert_int_eq(run_status(tu_fmt("%s -q %s --force %s q8_0 --embd f32 > %s 2>&1", bin, in,
                                       out, log)), 0);
    text = read_text(log);
    ck_assert_msg(strstr(text, "total:") && !strstr(text, "f32 -> "), "-q output: %s", text);
    free(text);
    gguf_file *g = open_gguf(out);
    ck_assert_int_eq(gguf_find_tensor(g, "token_embd.weight")->type, GGML_T_F32);
    gguf_close(g);

    /* the input as output, even with --force */
    ck_assert_int_eq(run_status(tu_fmt("%s %s %s q8_0 --force > %s 2>&1", bin, in, in, log)), 1);
    /* an engine failure: exit 1, its message, no output */
    poke p = {"blk.0.ffn_up.weight", 3, NAN};
    copy_file(in, dpath("cli_nan.gguf"), poke_value, &p);
    remove(dpath("cli_nan_q.gguf"));
    ck_assert_int_eq(run_status(tu_fmt("%s %s %s q8_0 > %s 2>&1", bin, dpath("cli_nan.gguf"),
                                       dpath("cli_nan_q.gguf"), log)), 1);
    text = read_text(log);
    ck_assert_msg(strstr(text, "blk.0.ffn_up.weight") && strstr(text, "NaN"), "%s", text);
    free(text);
    tu_assert_no_output(dpath("cli_nan_q.gguf"));
}
END_TEST

static Suite *quantize_suite(void)
{
    Suite *s = suite_create("quantize");
    TCase *t = tcase_create("block");
    tcase_add_loop_test(t, test_block_bound, 0, N_BLOCK_CASES);
    tcase_add_test(t, test_row_is_blocks);
    suite_add_tcase(s, t);

    t = tcase_create("file");
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, test_quantize_model, 0, 2);
    tcase_add_loop_test(t, test_embd_variants, 0, 4);
    tcase_add_test(t, test_determinism);
    tcase_add_test(t, test_output_weight);
    tcase_add_test(t, test_roundtrip);
    tcase_add_test(t, test_metadata_types);
    suite_add_tcase(s, t);

    t = tcase_create("refusals");
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, test_nonfinite, 0, 6);
    tcase_add_test(t, test_overflow);
    tcase_add_test(t, test_bad_inputs);
    suite_add_tcase(s, t);

    t = tcase_create("cli");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_cli);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    /* the inputs, fresh each run (the synthetic writer may change) */
    const gpt2_config cfg = test_cfg();
    for (int i = 0; i < 2; i++) {
        const gpt2_dtype dt = i ? GPT2_DTYPE_F16 : GPT2_DTYPE_F32;
        gpt2_error err = {0};
        if (gpt2_write_synthetic(&cfg, 7, dt, model_in(dt), 0, &err) < 0) {
            fprintf(stderr, "test_quantize: cannot write %s: %s\n", model_in(dt), err.msg);
            return 1;
        }
    }
    SRunner *r = srunner_create(quantize_suite());
    srunner_run_all(r, CK_NORMAL);
    const int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
