/* Model converter: presets, the tensor layout, synthetic models (metadata,
 * statistics of GPT-2's init, determinism, F16 = F32 rounded), the
 * safetensors reader (valid and corrupt files written here), Hugging Face
 * directories written here in C (Conv1D weights transposed exactly), error
 * paths that must leave no output, and the gpt2c-convert command line.
 * Files go under $GPT2C_TESTDATA, prefixed "conv_". */
#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdint.h>
#include <sys/wait.h>

#include "errors.h"
#include "gguf.h"
#include "gpt2.h"
#include "hf_config.h"
#include "kernels.h"
#include "model_writer.h"
#include "safetensors.h"
#include "testutil.h"
#include "vocab.h"

/* ---- helpers ------------------------------------------------------------------ */

/* A copy that outlives tu_fmt's ring of 8 (paths held across many calls). */
static const char *keep(const char *s)
{
    static char ring[64][1024];
    static int next;
    char *b = ring[next++ & 63];
    snprintf(b, sizeof ring[0], "%s", s);
    return b;
}

static const char *dpath(const char *name) { return keep(tu_fmt("%s/conv_%s", tu_data(), name)); }

static gpt2_config small_cfg(int L, int C, int NH, int ctx, int V)
{
    gpt2_config c = {.n_vocab = V, .n_ctx = ctx, .n_embd = C, .n_head = NH, .n_layer = L,
                     .n_ff = 4 * C, .ln_eps = 1e-5f};
    return c;
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert(fwrite(data, 1, n, f) == n);
    ck_assert(fclose(f) == 0);
}

static gguf_file *open_gguf(const char *path)
{
    gpt2_error err = {0};
    gguf_file *g = gguf_open(path, &err);
    ck_assert_msg(g != NULL, "gguf_open %s: %s", path, err.msg);
    return g;
}

static uint64_t get_u(const gguf_file *g, const char *key)
{
    gpt2_error err = {0};
    uint64_t v = 0;
    ck_assert_msg(gguf_get_uint(g, key, &v, &err) == 0, "%s", err.msg);
    return v;
}

static void check_str(const gguf_file *g, const char *key, const char *want)
{
    gpt2_error err = {0};
    const char *s;
    size_t n;
    ck_assert_msg(gguf_get_str(g, key, &s, &n, &err) == 0, "%s", err.msg);
    ck_assert_msg(n == strlen(want) && !memcmp(s, want, n), "%s = '%.*s', want '%s'", key,
                  (int)n, s, want);
}

/* Tensor value j as float, for F32 and F16 tensors. */
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

static uint16_t tbits16(const gguf_tensor *t, uint64_t j)
{
    uint16_t h;
    memcpy(&h, (const char *)t->data + 2 * j, 2);
    return h;
}

/* Fills out with the whole synthetic tensor i. */
static float *synth_values(const gpt2_config *cfg, uint64_t seed, int i, gpt2_tensor_info *t)
{
    ck_assert(gpt2_model_tensor_info(cfg, i, t) == 0);
    float *v = malloc(sizeof(float) * t->n_elements);
    ck_assert(v != NULL);
    gpt2_synthetic_src s = {cfg, seed};
    gpt2_error err = {0};
    ck_assert_msg(gpt2_synthetic_tensor(&s, t, 0, t->n_rows, v, &err) == 0, "%s", err.msg);
    return v;
}

static void write_synth(const gpt2_config *cfg, uint64_t seed, gpt2_dtype dt, const char *path)
{
    gpt2_error err = {0};
    remove(path);
    int rc = gpt2_write_synthetic(cfg, seed, dt, path, 0, &err);
    ck_assert_msg(rc == 0, "write_synthetic %s: %s", path, err.msg);
}

/* ---- presets, dtypes, layout ---------------------------------------------- */

START_TEST(test_presets)
{
    const struct { const char *name; int L, C, NH; } want[] = {
        {"124M", 12, 768, 12}, {"355M", 24, 1024, 16}, {"774M", 36, 1280, 20},
        {"1558M", 48, 1600, 25}};
    for (int i = 0; i < 4; i++) {
        gpt2_config c;
        ck_assert_int_eq(gpt2_config_preset(want[i].name, &c), 0);
        ck_assert_int_eq(c.n_layer, want[i].L);
        ck_assert_int_eq(c.n_embd, want[i].C);
        ck_assert_int_eq(c.n_head, want[i].NH);
        ck_assert_int_eq(c.n_ctx, 1024);
        ck_assert_int_eq(c.n_vocab, 50257);
        ck_assert_int_eq(c.n_ff, 4 * want[i].C);
        ck_assert(c.ln_eps == 1e-5f);
        ck_assert_int_eq(gpt2_config_validate(&c, NULL), 0);
    }
    gpt2_config c;
    ck_assert_int_eq(gpt2_config_preset("125M", &c), -1);
    ck_assert_int_eq(gpt2_config_preset("", &c), -1);
    ck_assert_int_eq(gpt2_config_preset(NULL, &c), -1);

    ck_assert_int_eq(gpt2_dtype_parse("f32"), GPT2_DTYPE_F32);
    ck_assert_int_eq(gpt2_dtype_parse("f16"), GPT2_DTYPE_F16);
    ck_assert_int_eq(gpt2_dtype_parse("q8_0"), GPT2_DTYPE_Q8_0);
    ck_assert_int_eq(gpt2_dtype_parse("bf16"), -1);
    ck_assert_int_eq(gpt2_dtype_parse(NULL), -1);
    ck_assert_str_eq(gpt2_dtype_name(GPT2_DTYPE_F32), "f32");
    ck_assert_str_eq(gpt2_dtype_name(GPT2_DTYPE_F16), "f16");
    ck_assert_str_eq(gpt2_dtype_name(GPT2_DTYPE_Q8_0), "q8_0");
}
END_TEST

/* The expected GGUF table of a config, written out independently. */
typedef struct exp_tensor {
    char name[48];
    int n_dims;
    uint64_t ne[2];
} exp_tensor;

static int expected_table(const gpt2_config *c, exp_tensor *e)
{
    const uint64_t C = (uint64_t)c->n_embd, FF = (uint64_t)c->n_ff;
    int n = 0;
#define ADD(nd, a, b, ...)                                                                  \
    do {                                                                                    \
        snprintf(e[n].name, sizeof e[n].name, __VA_ARGS__);                                \
        e[n].n_dims = nd;                                                                   \
        e[n].ne[0] = a;                                                                     \
        e[n].ne[1] = b;                                                                     \
        n++;                                                                                \
    } while (0)
    ADD(2, C, (uint64_t)c->n_vocab, "token_embd.weight");
    ADD(2, C, (uint64_t)c->n_ctx, "position_embd.weight");
    for (int l = 0; l < c->n_layer; l++) {
        ADD(1, C, 1, "blk.%d.attn_norm.weight", l);
        ADD(1, C, 1, "blk.%d.attn_norm.bias", l);
        ADD(2, C, 3 * C, "blk.%d.attn_qkv.weight", l);
        ADD(1, 3 * C, 1, "blk.%d.attn_qkv.bias", l);
        ADD(2, C, C, "blk.%d.attn_output.weight", l);
        ADD(1, C, 1, "blk.%d.attn_output.bias", l);
        ADD(1, C, 1, "blk.%d.ffn_norm.weight", l);
        ADD(1, C, 1, "blk.%d.ffn_norm.bias", l);
        ADD(2, C, FF, "blk.%d.ffn_up.weight", l);
        ADD(1, FF, 1, "blk.%d.ffn_up.bias", l);
        ADD(2, FF, C, "blk.%d.ffn_down.weight", l);
        ADD(1, C, 1, "blk.%d.ffn_down.bias", l);
    }
    ADD(1, C, 1, "output_norm.weight");
    ADD(1, C, 1, "output_norm.bias");
#undef ADD
    return n;
}

START_TEST(test_layout)
{
    gpt2_config c = small_cfg(3, 12, 3, 20, 100);
    c.n_ff = 40; /* not 4 C: the layout must follow n_ff */
    exp_tensor e[64];
    const int n = expected_table(&c, e);
    ck_assert_int_eq(gpt2_model_tensor_count(&c), n);
    for (int i = 0; i < n; i++) {
        gpt2_tensor_info t;
        ck_assert_int_eq(gpt2_model_tensor_info(&c, i, &t), 0);
        ck_assert_str_eq(t.name, e[i].name);
        ck_assert_int_eq(t.index, i);
        ck_assert_int_eq(t.n_dims, e[i].n_dims);
        ck_assert_uint_eq(t.ne[0], e[i].ne[0]);
        ck_assert_uint_eq(t.ne[1], e[i].ne[1]);
        ck_assert_uint_eq(t.n_rows, e[i].ne[1]);
        ck_assert_uint_eq(t.n_elements, e[i].ne[0] * e[i].ne[1]);
        ck_assert_int_eq(t.layer, i >= 2 && i < n - 2 ? (i - 2) / 12 : -1);
    }
    gpt2_tensor_info t;
    ck_assert_int_eq(gpt2_model_tensor_info(&c, n, &t), GPT2_ERR_INVALID);
    ck_assert_int_eq(gpt2_model_tensor_info(&c, -1, &t), GPT2_ERR_INVALID);
}
END_TEST

START_TEST(test_config_validate)
{
    gpt2_error err = {0};
    gpt2_config c = small_cfg(2, 64, 4, 32, 300);
    ck_assert_int_eq(gpt2_config_validate(&c, &err), 0);
    c.n_head = 5;
    ck_assert_int_eq(gpt2_config_validate(&c, &err), GPT2_ERR_INVALID);
    ck_assert_msg(strstr(err.msg, "n_head") != NULL, "%s", err.msg);
    c = small_cfg(2, 64, 4, 32, 300);
    c.n_ff = 0;
    ck_assert_int_eq(gpt2_config_validate(&c, &err), GPT2_ERR_INVALID);
    ck_assert_msg(strstr(err.msg, "n_ff") != NULL, "%s", err.msg);
    c = small_cfg(2, 64, 4, 32, 300);
    c.n_layer = -1;
    ck_assert_int_eq(gpt2_config_validate(&c, &err), GPT2_ERR_INVALID);
    ck_assert_msg(strstr(err.msg, "n_layer") != NULL, "%s", err.msg);
    c = small_cfg(2, 64, 4, 32, 300);
    c.ln_eps = 0;
    ck_assert_int_eq(gpt2_config_validate(&c, &err), GPT2_ERR_INVALID);
    c = small_cfg(2, 1 << 30, 1, 32, 1 << 30);
    c.n_ff = 1;
    ck_assert_int_eq(gpt2_config_validate(&c, &err), GPT2_ERR_INVALID);
    ck_assert_msg(strstr(err.msg, "too large") != NULL, "%s", err.msg);

    /* the synthetic writer refuses bad configs, q8_0 and oversize vocabularies */
    const char *out = dpath("bad_synth.gguf");
    remove(out);
    c = small_cfg(2, 64, 5, 32, 300);
    ck_assert_int_lt(gpt2_write_synthetic(&c, 1, GPT2_DTYPE_F32, out, 0, &err), 0);
    tu_assert_no_output(out);
    c = small_cfg(2, 64, 4, 32, 300);
    ck_assert_int_eq(gpt2_write_synthetic(&c, 1, GPT2_DTYPE_Q8_0, out, 0, &err),
                     GPT2_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(err.msg, "gpt2c-quantize") != NULL, "%s", err.msg);
    c.n_vocab = 50258;
    ck_assert_int_lt(gpt2_write_synthetic(&c, 1, GPT2_DTYPE_F32, out, 0, &err), 0);
    ck_assert_msg(strstr(err.msg, "50257") != NULL, "%s", err.msg);
    tu_assert_no_output(out);
}
END_TEST

/* ---- synthetic files ---------------------------------------------------------- */

/* Every key, tensor name, type and shape of a small synthetic file, and its
 * values against the synthetic source (F32 exact, F16 = round-to-half). */
static void check_synthetic_file(const char *path, const gpt2_config *c, uint64_t seed,
                                 gpt2_dtype dt)
{
    gguf_file *g = open_gguf(path);
    gpt2_error err = {0};
    check_str(g, "general.architecture", "gpt2");
    check_str(g, "general.name", "gpt2-custom-synthetic");
    ck_assert_uint_eq(get_u(g, "general.file_type"), dt == GPT2_DTYPE_F16 ? 1 : 0);
    ck_assert_uint_eq(get_u(g, "gpt2.context_length"), (uint64_t)c->n_ctx);
    ck_assert_uint_eq(get_u(g, "gpt2.embedding_length"), (uint64_t)c->n_embd);
    ck_assert_uint_eq(get_u(g, "gpt2.feed_forward_length"), (uint64_t)c->n_ff);
    ck_assert_uint_eq(get_u(g, "gpt2.block_count"), (uint64_t)c->n_layer);
    ck_assert_uint_eq(get_u(g, "gpt2.attention.head_count"), (uint64_t)c->n_head);
    ck_assert_uint_eq(get_u(g, "gpt2c.synthetic_seed"), seed);
    float eps = 0;
    ck_assert_msg(gguf_get_f32(g, "gpt2.attention.layer_norm_epsilon", &eps, &err) == 0, "%s",
                  err.msg);
    ck_assert(eps == c->ln_eps);
    check_str(g, "tokenizer.ggml.model", "gpt2");
    check_str(g, "tokenizer.ggml.pre", "gpt-2");
    check_str(g, "gpt2c.source",
              tu_fmt("synthetic custom L%d C%d NH%d FF%d ctx%d V%d", c->n_layer, c->n_embd,
                     c->n_head, c->n_ff, c->n_ctx, c->n_vocab));
    /* every u32 key really is u32 (llama.cpp reads them as such) */
    const char *u32_keys[] = {"general.file_type", "gpt2.context_length",
                              "gpt2.embedding_length", "gpt2.feed_forward_length",
                              "gpt2.block_count", "gpt2.attention.head_count"};
    for (int i = 0; i < 6; i++)
        ck_assert_uint_eq(gguf_kv_type(g, gguf_find_key(g, u32_keys[i])), GGUF_VT_UINT32);
    ck_assert_int_ge(gguf_find_key(g, GGUF_KEY_CRC32), 0);

    /* vocabulary: the embedded one cut to n_vocab */
    gpt2_vocab v;
    memset(&v, 0, sizeof v);
    ck_assert(gpt2_vocab_embedded(&v, &err) == 0);
    ck_assert(gpt2_vocab_truncate(&v, c->n_vocab, &err) == 0);
    uint32_t et;
    uint64_t n;
    ck_assert(gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &err) == 0);
    ck_assert_uint_eq(et, GGUF_VT_STRING);
    ck_assert_uint_eq(n, (uint64_t)c->n_vocab);
    for (int i = 0; i < c->n_vocab; i++) {
        size_t len;
        const char *s = gguf_arr_str(g, "tokenizer.ggml.tokens", (uint64_t)i, &len);
        ck_assert(s != NULL);
        ck_assert_msg(len == v.token_lens[i] && !memcmp(s, v.tokens[i], len), "token %d", i);
    }
    ck_assert(gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &n, &err) == 0);
    ck_assert_uint_eq(et, GGUF_VT_INT32);
    ck_assert_uint_eq(n, (uint64_t)c->n_vocab);
    const char *tt = gguf_arr_data(g, "tokenizer.ggml.token_type");
    for (int i = 0; i < c->n_vocab; i++) {
        int32_t x;
        memcpy(&x, tt + 4 * i, 4);
        ck_assert_int_eq(x, 1); /* <|endoftext|> (50256) is cut off */
    }
    ck_assert(gguf_get_arr(g, "tokenizer.ggml.merges", &et, &n, &err) == 0);
    ck_assert_uint_eq(et, GGUF_VT_STRING);
    ck_assert_uint_eq(n, (uint64_t)v.n_merges);
    ck_assert_int_gt(v.n_merges, 0);
    for (int i = 0; i < v.n_merges; i++) {
        size_t len;
        const char *s = gguf_arr_str(g, "tokenizer.ggml.merges", (uint64_t)i, &len);
        ck_assert_msg(len == v.merge_lens[i] && !memcmp(s, v.merges[i], len), "merge %d", i);
    }
    ck_assert_int_lt(gguf_find_key(g, "tokenizer.ggml.bos_token_id"), 0);
    ck_assert_int_lt(gguf_find_key(g, "tokenizer.ggml.eos_token_id"), 0);
    gpt2_vocab_free(&v);

    /* tensors */
    exp_tensor e[128];
    const int nt = expected_table(c, e);
    ck_assert_int_eq(gguf_n_tensors(g), nt);
    ck_assert_ptr_null(gguf_find_tensor(g, "output.weight"));
    for (int i = 0; i < nt; i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        ck_assert_str_eq(t->name, e[i].name);
        ck_assert_int_eq(t->n_dims, e[i].n_dims);
        ck_assert_uint_eq(t->ne[0], e[i].ne[0]);
        if (e[i].n_dims == 2)
            ck_assert_uint_eq(t->ne[1], e[i].ne[1]);
        const uint32_t want_type =
            dt == GPT2_DTYPE_F16 && e[i].n_dims == 2 ? GGML_T_F16 : GGML_T_F32;
        ck_assert_msg(t->type == want_type, "%s: type %u", t->name, t->type);
        gpt2_tensor_info info;
        float *ref = synth_values(c, seed, i, &info);
        ck_assert_uint_eq(t->n_elements, info.n_elements);
        for (uint64_t j = 0; j < info.n_elements; j++) {
            if (t->type == GGML_T_F32)
                ck_assert_msg(tval(t, j) == ref[j], "%s[%" PRIu64 "]: %g != %g", t->name, j,
                              (double)tval(t, j), (double)ref[j]);
            else
                ck_assert_msg(tbits16(t, j) == gpt2k_f32_to_f16(ref[j]),
                              "%s[%" PRIu64 "]: f16 %04x, want %04x", t->name, j, tbits16(t, j),
                              gpt2k_f32_to_f16(ref[j]));
        }
        free(ref);
    }
    gguf_close(g);
}

START_TEST(test_synthetic_small)
{
    const gpt2_dtype dt = _i ? GPT2_DTYPE_F16 : GPT2_DTYPE_F32;
    const gpt2_config c = small_cfg(2, 64, 4, 32, 300);
    const char *path = dpath(_i ? "small_f16.gguf" : "small_f32.gguf");
    write_synth(&c, 42, dt, path);
    check_synthetic_file(path, &c, 42, dt);
    /* and through the model loader */
    gpt2_error err = {0};
    gpt2_model *m = gpt2_model_load(path, NULL, &err);
    ck_assert_msg(m != NULL, "load: %s", err.msg);
    ck_assert_int_eq(gpt2_model_config(m)->n_layer, 2);
    ck_assert_int_eq(gpt2_model_crc_checked(m), gpt2_model_tensor_count(&c));
    gpt2_model_free(m);
}
END_TEST

START_TEST(test_synthetic_full_vocab)
{
    /* the whole vocabulary: <|endoftext|> is the control token and bos/eos */
    const gpt2_config c = small_cfg(1, 8, 2, 8, 50257);
    const char *path = dpath("fullvocab.gguf");
    write_synth(&c, 7, GPT2_DTYPE_F32, path);
    gguf_file *g = open_gguf(path);
    ck_assert_uint_eq(get_u(g, "tokenizer.ggml.bos_token_id"), 50256);
    ck_assert_uint_eq(get_u(g, "tokenizer.ggml.eos_token_id"), 50256);
    ck_assert_uint_eq(gguf_kv_type(g, gguf_find_key(g, "tokenizer.ggml.eos_token_id")),
                      GGUF_VT_UINT32);
    uint32_t et;
    uint64_t n;
    gpt2_error err = {0};
    ck_assert(gguf_get_arr(g, "tokenizer.ggml.merges", &et, &n, &err) == 0);
    ck_assert_uint_eq(n, 50000);
    ck_assert(gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &n, &err) == 0);
    ck_assert_uint_eq(n, 50257);
    const char *tt = gguf_arr_data(g, "tokenizer.ggml.token_type");
    int n_control = 0;
    for (uint64_t i = 0; i < n; i++) {
        int32_t x;
        memcpy(&x, tt + 4 * i, 4);
        ck_assert(x == 1 || x == 3);
        if (x == 3) {
            ck_assert_uint_eq(i, 50256);
            n_control++;
        }
    }
    ck_assert_int_eq(n_control, 1);
    size_t len;
    const char *s = gguf_arr_str(g, "tokenizer.ggml.tokens", 50256, &len);
    ck_assert(len == 13 && !memcmp(s, "<|endoftext|>", 13));
    s = gguf_arr_str(g, "tokenizer.ggml.tokens", 256, &len); /* first merge result */
    ck_assert(len == 3 && !memcmp(s, "\xc4\xa0t", 3));       /* "Ġt" */
    gguf_close(g);
}
END_TEST

/* mean, std and the fraction within one std of values */
static void stats(const float *v, uint64_t n, double *mean, double *sd, double *frac1)
{
    double s = 0, s2 = 0;
    for (uint64_t i = 0; i < n; i++)
        s += v[i];
    *mean = s / (double)n;
    for (uint64_t i = 0; i < n; i++)
        s2 += (v[i] - *mean) * (v[i] - *mean);
    *sd = sqrt(s2 / (double)n);
    uint64_t in = 0;
    for (uint64_t i = 0; i < n; i++)
        in += fabs(v[i] - *mean) < *sd;
    *frac1 = (double)in / (double)n;
}

START_TEST(test_synthetic_stats)
{
    const gpt2_config c = small_cfg(4, 128, 4, 64, 512);
    const double scaled = 0.02 / sqrt(2.0 * c.n_layer);
    const int nt = gpt2_model_tensor_count(&c);
    float first_vals[64][4];
    int n_first = 0;
    for (int i = 0; i < nt; i++) {
        gpt2_tensor_info t;
        float *v = synth_values(&c, 1234, i, &t);
        switch (t.kind) {
        case GPT2_T_ATTN_NORM_W:
        case GPT2_T_FFN_NORM_W:
        case GPT2_T_OUT_NORM_W:
            for (uint64_t j = 0; j < t.n_elements; j++)
                ck_assert_msg(v[j] == 1.0f, "%s[%" PRIu64 "] = %g", t.name, j, (double)v[j]);
            break;
        case GPT2_T_TOKEN_EMBD:
        case GPT2_T_POS_EMBD:
        case GPT2_T_ATTN_QKV_W:
        case GPT2_T_ATTN_OUT_W:
        case GPT2_T_FFN_UP_W:
        case GPT2_T_FFN_DOWN_W: {
            const double want = t.kind == GPT2_T_ATTN_OUT_W || t.kind == GPT2_T_FFN_DOWN_W
                                    ? scaled
                                    : 0.02;
            double mean, sd, f1;
            stats(v, t.n_elements, &mean, &sd, &f1);
            const double n = (double)t.n_elements;
            /* 5 standard errors: mean se = sd/sqrt(n); sd rel. se = 1/sqrt(2n) (<0.5% at
             * n >= 8192, so 3% is loose but catches a wrong scale); N(0,1) has 68.27%
             * within one sd (se = sqrt(.68 .32 / n) < 0.52%) */
            ck_assert_msg(fabs(mean) < 5 * want / sqrt(n), "%s: mean %g (std %g, n %g)",
                          t.name, mean, want, n);
            ck_assert_msg(fabs(sd / want - 1) < 0.03, "%s: std %g, want %g", t.name, sd, want);
            ck_assert_msg(fabs(f1 - 0.6827) < 0.026, "%s: %.4f within 1 sd (normal: 0.6827)",
                          t.name, f1);
            for (int k = 0; k < 4; k++)
                first_vals[n_first][k] = v[k];
            n_first++;
            break;
        }
        default: /* every bias */
            for (uint64_t j = 0; j < t.n_elements; j++)
                ck_assert_msg(v[j] == 0.0f, "%s[%" PRIu64 "] = %g", t.name, j, (double)v[j]);
        }
        free(v);
    }
    /* each tensor has its own stream */
    for (int a = 0; a < n_first; a++)
        for (int b = a + 1; b < n_first; b++)
            ck_assert_msg(memcmp(first_vals[a], first_vals[b], sizeof first_vals[a]) != 0,
                          "matrices %d and %d start with the same values", a, b);
}
END_TEST

START_TEST(test_synthetic_random_access)
{
    /* odd row length: bands start at odd element indices (second of a Box-Muller pair) */
    const gpt2_config c = small_cfg(2, 9, 3, 7, 300);
    gpt2_synthetic_src s = {&c, 99};
    gpt2_error err = {0};
    const int nt = gpt2_model_tensor_count(&c);
    /* generate in reverse tensor order, band by band, and compare with whole tensors */
    for (int i = nt - 1; i >= 0; i--) {
        gpt2_tensor_info t;
        float *full = synth_values(&c, 99, i, &t);
        float *part = malloc(sizeof(float) * t.n_elements);
        for (uint64_t band = 1; band <= 4; band++)
            for (uint64_t r0 = 0; r0 < t.n_rows; r0 += band) {
                const uint64_t nr = band < t.n_rows - r0 ? band : t.n_rows - r0;
                ck_assert(gpt2_synthetic_tensor(&s, &t, r0, nr, part + r0 * t.ne[0], &err) == 0);
            }
        ck_assert_msg(!memcmp(full, part, sizeof(float) * t.n_elements), "%s", t.name);
        free(full);
        free(part);
    }
    gpt2_tensor_info t;
    gpt2_model_tensor_info(&c, 0, &t);
    float x[9];
    ck_assert_int_lt(gpt2_synthetic_tensor(&s, &t, t.n_rows, 1, x, &err), 0);
}
END_TEST

static int files_equal(const char *a, const char *b)
{
    size_t na, nb;
    void *da = tu_read_file(a, &na), *db = tu_read_file(b, &nb);
    const int eq = na == nb && !memcmp(da, db, na);
    free(da);
    free(db);
    return eq;
}

START_TEST(test_synthetic_determinism)
{
    const gpt2_config c = small_cfg(2, 64, 4, 32, 300);
    write_synth(&c, 5, GPT2_DTYPE_F32, dpath("det_a.gguf"));
    write_synth(&c, 5, GPT2_DTYPE_F32, dpath("det_b.gguf"));
    write_synth(&c, 6, GPT2_DTYPE_F32, dpath("det_c.gguf"));
    ck_assert_msg(files_equal(dpath("det_a.gguf"), dpath("det_b.gguf")),
                  "same seed, different bytes");
    ck_assert_msg(!files_equal(dpath("det_a.gguf"), dpath("det_c.gguf")),
                  "different seeds, same bytes");
    /* and the weights themselves differ, not only the seed key */
    gguf_file *a = open_gguf(dpath("det_a.gguf")), *b = open_gguf(dpath("det_c.gguf"));
    const gguf_tensor *ta = gguf_find_tensor(a, "blk.1.ffn_up.weight");
    const gguf_tensor *tb = gguf_find_tensor(b, "blk.1.ffn_up.weight");
    ck_assert(ta && tb && ta->n_bytes == tb->n_bytes);
    long same = 0;
    for (uint64_t j = 0; j < ta->n_elements; j++)
        same += tval(ta, j) == tval(tb, j);
    ck_assert_msg(same < 10, "%ld of %" PRIu64 " values equal across seeds", same,
                  ta->n_elements);
    gguf_close(a);
    gguf_close(b);
    /* pinned bits: a change to the generator (documented in engine/synthetic.c)
     * silently changes every synthetic model, so it must show up here */
    const struct { int tensor; uint32_t bits[4]; } pinned[] = {
        {0, {0x3c931d31, 0xbb01de21, 0xbc92d4ee, 0x3b522b61}}, /* token_embd, seed 1 */
        {6, {0x3b7b9f46, 0x3beeea67, 0x3c15309c, 0x3bf65df5}}, /* blk.0.attn_output */
    };
    for (int p = 0; p < 2; p++) {
        gpt2_tensor_info t;
        float *v = synth_values(&c, 1, pinned[p].tensor, &t);
        for (int j = 0; j < 4; j++) {
            uint32_t bits;
            memcpy(&bits, &v[j], 4);
            ck_assert_msg(bits == pinned[p].bits[j], "%s[%d]: bits %08x, pinned %08x", t.name, j,
                          bits, pinned[p].bits[j]);
        }
        free(v);
    }
}
END_TEST

START_TEST(test_f16_is_rounded_f32)
{
    const gpt2_config c = small_cfg(2, 64, 4, 32, 300);
    write_synth(&c, 77, GPT2_DTYPE_F32, dpath("r_f32.gguf"));
    write_synth(&c, 77, GPT2_DTYPE_F16, dpath("r_f16.gguf"));
    gguf_file *a = open_gguf(dpath("r_f32.gguf")), *b = open_gguf(dpath("r_f16.gguf"));
    ck_assert_int_eq(gguf_n_tensors(a), gguf_n_tensors(b));
    for (int64_t i = 0; i < gguf_n_tensors(a); i++) {
        const gguf_tensor *x = gguf_tensor_at(a, i), *y = gguf_tensor_at(b, i);
        ck_assert_str_eq(x->name, y->name);
        ck_assert_uint_eq(x->type, GGML_T_F32);
        if (x->n_dims == 1) {
            ck_assert_uint_eq(y->type, GGML_T_F32);
            ck_assert(x->n_bytes == y->n_bytes && !memcmp(x->data, y->data, x->n_bytes));
            continue;
        }
        ck_assert_uint_eq(y->type, GGML_T_F16);
        ck_assert_uint_eq(y->n_bytes, x->n_elements * 2);
        for (uint64_t j = 0; j < x->n_elements; j++)
            ck_assert_msg(tbits16(y, j) == gpt2k_f32_to_f16(tval(x, j)), "%s[%" PRIu64 "]",
                          x->name, j);
    }
    gguf_close(a);
    gguf_close(b);
}
END_TEST

/* ---- the writer itself: progress, vocab size, a failing source ------------- */

typedef struct prog_count {
    int64_t calls, last_done, total;
} prog_count;

static void count_progress(int64_t done, int64_t total, const char *name, void *user)
{
    prog_count *p = user;
    ck_assert_int_eq(done, p->last_done + 1);
    ck_assert(name != NULL);
    p->calls++;
    p->last_done = done;
    p->total = total;
}

static int failing_src(void *user, const gpt2_tensor_info *t, uint64_t row0, uint64_t n_rows,
                       float *out, gpt2_error *err)
{
    if (t->index == 5)
        return gpt2_seterr(err, GPT2_ERR_IO, "source broke at '%s'", t->name);
    return gpt2_synthetic_tensor(user, t, row0, n_rows, out, err);
}

START_TEST(test_writer)
{
    const gpt2_config c = small_cfg(2, 16, 2, 8, 300);
    gpt2_vocab v;
    memset(&v, 0, sizeof v);
    gpt2_error err = {0};
    ck_assert(gpt2_vocab_embedded(&v, &err) == 0);
    ck_assert(gpt2_vocab_truncate(&v, 300, &err) == 0);
    gpt2_synthetic_src s = {&c, 3};
    gpt2_model_meta meta = {.name = "writer-test"};
    const char *out = dpath("writer.gguf");
    remove(out);

    prog_count p = {0, 0, 0};
    ck_assert_msg(gpt2_model_write(out, &c, &v, GPT2_DTYPE_F16, &meta, gpt2_synthetic_tensor, &s,
                                   count_progress, &p, &err) == 0,
                  "%s", err.msg);
    ck_assert_int_eq(p.calls, gpt2_model_tensor_count(&c));
    ck_assert_int_eq(p.total, gpt2_model_tensor_count(&c));
    gguf_file *g = open_gguf(out);
    check_str(g, "general.name", "writer-test");
    ck_assert_int_lt(gguf_find_key(g, "gpt2c.source"), 0);
    ck_assert_int_lt(gguf_find_key(g, "gpt2c.synthetic_seed"), 0);
    gguf_close(g);
    remove(out);

    /* vocabulary size must match */
    gpt2_config c2 = c;
    c2.n_vocab = 301;
    ck_assert_int_eq(gpt2_model_write(out, &c2, &v, GPT2_DTYPE_F32, &meta, gpt2_synthetic_tensor,
                                      &s, NULL, NULL, &err),
                     GPT2_ERR_INVALID);
    ck_assert_msg(strstr(err.msg, "300") && strstr(err.msg, "301"), "%s", err.msg);
    tu_assert_no_output(out);

    /* a source failing halfway: its error comes back, nothing is left behind */
    ck_assert_int_lt(gpt2_model_write(out, &c, &v, GPT2_DTYPE_F32, &meta, failing_src, &s, NULL,
                                      NULL, &err),
                     0);
    ck_assert_msg(strstr(err.msg, "source broke at 'blk.0.attn_qkv.bias'"), "%s", err.msg);
    tu_assert_no_output(out);

    ck_assert_int_eq(gpt2_model_write(out, &c, &v, GPT2_DTYPE_Q8_0, &meta, gpt2_synthetic_tensor,
                                      &s, NULL, NULL, &err),
                     GPT2_ERR_UNSUPPORTED);
    tu_assert_no_output(out);
    gpt2_vocab_free(&v);
}
END_TEST

/* ---- safetensors ------------------------------------------------------------- */

/* A hand-made safetensors file: u64 header length, header (padded to 8 with
 * spaces unless hlen_override), data. */
static void write_st_raw(const char *path, const char *header, const void *data, size_t n_data,
                         int64_t hlen_override)
{
    size_t hl = strlen(header), padded = (hl + 7) & ~(size_t)7;
    unsigned char *buf = malloc(8 + padded + n_data);
    uint64_t len = hlen_override >= 0 ? (uint64_t)hlen_override : padded;
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(len >> (8 * i));
    memcpy(buf + 8, header, hl);
    memset(buf + 8 + hl, ' ', padded - hl);
    if (n_data)
        memcpy(buf + 8 + padded, data, n_data);
    write_file(path, buf, 8 + padded + n_data);
    free(buf);
}

static uint16_t to_bf16(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return (uint16_t)(b >> 16); /* exact for the values used here */
}

START_TEST(test_safetensors_valid)
{
    /* a [2,3] F32, a [4] F16, a [3] BF16, a scalar F32, an I64 and metadata */
    unsigned char data[256];
    size_t o = 0;
    const float a[6] = {1.5f, -2, 3.25f, 4, 5, -6.125f};
    memcpy(data + o, a, sizeof a);
    o += sizeof a; /* 24 */
    const float hv[4] = {0.5f, -1, 65504, 0x1p-14f}; /* 2^-14: smallest normal half */
    for (int i = 0; i < 4; i++) {
        uint16_t h = gpt2k_f32_to_f16(hv[i]);
        memcpy(data + o + 2 * i, &h, 2);
    }
    o += 8; /* 32 */
    const float bv[3] = {1, -3.5f, 1e30f};
    for (int i = 0; i < 3; i++) {
        uint16_t h = to_bf16(bv[i]);
        memcpy(data + o + 2 * i, &h, 2);
    }
    o += 6; /* 38 */
    const float sc = 7;
    memcpy(data + o, &sc, 4); /* unaligned on purpose */
    o += 4;                   /* 42 */
    memset(data + o, 0, 16);
    o += 16; /* 58 */
    const char *hdr =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]},"
        "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[32,38]},"
        "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[38,42]},"
        "\"i\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[42,58]},"
        "\"e\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[58,58]}}";
    const char *path = dpath("valid.safetensors");
    write_st_raw(path, hdr, data, o, -1);

    gpt2_error err = {0};
    safetensors_file *f = safetensors_open(path, &err);
    ck_assert_msg(f != NULL, "%s", err.msg);
    ck_assert_int_eq(safetensors_count(f), 6);
    ck_assert_str_eq(safetensors_at(f, 0)->name, "a"); /* header order */
    ck_assert_str_eq(safetensors_at(f, 5)->name, "e");
    ck_assert_ptr_null(safetensors_find(f, "__metadata__"));
    ck_assert_ptr_null(safetensors_find(f, "zz"));

    float out[8];
    const safetensors_tensor *t = safetensors_find(f, "a");
    ck_assert(t && t->dtype == ST_F32 && t->n_dims == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    ck_assert_uint_eq(t->n_elements, 6);
    ck_assert(safetensors_to_f32(t, 0, 6, out, &err) == 0);
    ck_assert(!memcmp(out, a, sizeof a));
    ck_assert(safetensors_to_f32(t, 4, 2, out, &err) == 0);
    ck_assert(out[0] == 5 && out[1] == -6.125f);
    ck_assert_int_eq(safetensors_to_f32(t, 5, 2, out, &err), GPT2_ERR_INVALID);
    char sh[64];
    safetensors_shape_str(t, sh, sizeof sh);
    ck_assert_str_eq(sh, "[2, 3]");

    t = safetensors_find(f, "h");
    ck_assert(t && t->dtype == ST_F16 && t->n_bytes == 8);
    ck_assert(safetensors_to_f32(t, 0, 4, out, &err) == 0);
    for (int i = 0; i < 4; i++)
        ck_assert(out[i] == hv[i]);
    t = safetensors_find(f, "b");
    ck_assert(t && t->dtype == ST_BF16);
    ck_assert(safetensors_to_f32(t, 1, 2, out, &err) == 0);
    const uint32_t big_bits = (uint32_t)to_bf16(1e30f) << 16; /* 1e30 truncated to bf16 */
    float big;
    memcpy(&big, &big_bits, 4);
    ck_assert(out[0] == -3.5f && out[1] == big && fabsf(big / 1e30f - 1) < 0.01f);
    t = safetensors_find(f, "s");
    ck_assert(t && t->n_dims == 0 && t->n_elements == 1);
    ck_assert(safetensors_to_f32(t, 0, 1, out, &err) == 0 && out[0] == 7);
    t = safetensors_find(f, "i");
    ck_assert(t && t->dtype == ST_I64);
    ck_assert_int_eq(safetensors_to_f32(t, 0, 1, out, &err), GPT2_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(err.msg, "'i'") && strstr(err.msg, "I64"), "%s", err.msg);
    t = safetensors_find(f, "e");
    ck_assert(t && t->n_elements == 0 && t->n_bytes == 0);
    safetensors_close(f);
}
END_TEST

/* Each corrupt file fails to open, with the file and (where there is one) the
 * tensor named. */
START_TEST(test_safetensors_errors)
{
    const unsigned char data[64] = {0};
    const struct {
        const char *what, *hdr;
        size_t n_data;
        int64_t hlen;
        const char *must; /* in the message besides the path */
    } cases[] = {
        {"hlen_eof", "{}", 0, 1000, "past the end"},
        {"hlen_huge", "{}", 0, INT64_C(1) << 40, "past the end"},
        {"offsets_out", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, -1,
         "'w'"},
        {"offsets_rev", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8, -1,
         "'w'"},
        {"size_mismatch",
         "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 24, -1, "'w'"},
        {"f16_size", "{\"w\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,12]}}", 24, -1,
         "'w'"},
        {"bad_json", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2], \"data_offsets\":[0,8]", 8, -1,
         "JSON"},
        {"not_object", "[1,2,3]", 0, -1, "JSON"},
        {"unknown_dtype",
         "{\"w\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, -1, "F33"},
        {"neg_shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, -1,
         "'w'"},
        {"frac_shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8,
         -1, "'w'"},
        {"overflow",
         "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
         "\"data_offsets\":[0,8]}}",
         8, -1, "'w'"},
        {"no_offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, -1, "'w'"},
        {"no_dtype", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, -1, "'w'"},
        {"dup", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
         16, -1, "'w'"},
        {"trailing", "{}    x", 0, -1, "trailing"},
        /* 4 TiB claimed by a file of a few bytes */
        {"huge_claim",
         "{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776],"
         "\"data_offsets\":[0,4398046511104]}}",
         8, -1, "out of range (data area is 8 bytes)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = dpath(tu_fmt("bad_%s.safetensors", cases[i].what));
        write_st_raw(path, cases[i].hdr, data, cases[i].n_data, cases[i].hlen);
        gpt2_error err = {0};
        safetensors_file *f = safetensors_open(path, &err);
        ck_assert_msg(f == NULL, "%s: opened", cases[i].what);
        ck_assert_msg(err.code < 0, "%s: no code", cases[i].what);
        ck_assert_msg(strstr(err.msg, path) != NULL, "%s: file not named: %s", cases[i].what,
                      err.msg);
        ck_assert_msg(strstr(err.msg, cases[i].must) != NULL, "%s: '%s' not in: %s",
                      cases[i].what, cases[i].must, err.msg);
    }
    /* too short for a header, and missing */
    const char *path = dpath("short.safetensors");
    write_file(path, "abc", 3);
    gpt2_error err = {0};
    ck_assert_ptr_null(safetensors_open(path, &err));
    ck_assert_msg(strstr(err.msg, "too small"), "%s", err.msg);
    ck_assert_ptr_null(safetensors_open(dpath("nonexistent.safetensors"), &err));
    ck_assert_int_eq(err.code, GPT2_ERR_IO);
}
END_TEST

/* ---- Hugging Face directories ------------------------------------------------ */

/* HF tensor list of a config (independent of the engine's mapping). */
typedef struct hf_t {
    char name[96];
    char gguf[48];
    int n_dims;
    uint64_t shape[2];
    int conv1d; /* stored [in, out]: GGUF holds the transpose */
} hf_t;

static int hf_table(const gpt2_config *c, hf_t *h)
{
    const uint64_t C = (uint64_t)c->n_embd, F = (uint64_t)c->n_ff;
    int n = 0;
#define H(nd, a, b, conv, gg, ...)                                                         \
    do {                                                                                    \
        snprintf(h[n].name, sizeof h[n].name, __VA_ARGS__);                                \
        snprintf(h[n].gguf, sizeof h[n].gguf, "%s", gg);                                   \
        h[n].n_dims = nd;                                                                   \
        h[n].shape[0] = a;                                                                  \
        h[n].shape[1] = b;                                                                  \
        h[n].conv1d = conv;                                                                 \
        n++;                                                                                \
    } while (0)
    H(2, (uint64_t)c->n_vocab, C, 0, "token_embd.weight", "wte.weight");
    H(2, (uint64_t)c->n_ctx, C, 0, "position_embd.weight", "wpe.weight");
    for (int l = 0; l < c->n_layer; l++) {
        H(1, C, 0, 0, tu_fmt("blk.%d.attn_norm.weight", l), "h.%d.ln_1.weight", l);
        H(1, C, 0, 0, tu_fmt("blk.%d.attn_norm.bias", l), "h.%d.ln_1.bias", l);
        H(2, C, 3 * C, 1, tu_fmt("blk.%d.attn_qkv.weight", l), "h.%d.attn.c_attn.weight", l);
        H(1, 3 * C, 0, 0, tu_fmt("blk.%d.attn_qkv.bias", l), "h.%d.attn.c_attn.bias", l);
        H(2, C, C, 1, tu_fmt("blk.%d.attn_output.weight", l), "h.%d.attn.c_proj.weight", l);
        H(1, C, 0, 0, tu_fmt("blk.%d.attn_output.bias", l), "h.%d.attn.c_proj.bias", l);
        H(1, C, 0, 0, tu_fmt("blk.%d.ffn_norm.weight", l), "h.%d.ln_2.weight", l);
        H(1, C, 0, 0, tu_fmt("blk.%d.ffn_norm.bias", l), "h.%d.ln_2.bias", l);
        H(2, C, F, 1, tu_fmt("blk.%d.ffn_up.weight", l), "h.%d.mlp.c_fc.weight", l);
        H(1, F, 0, 0, tu_fmt("blk.%d.ffn_up.bias", l), "h.%d.mlp.c_fc.bias", l);
        H(2, F, C, 1, tu_fmt("blk.%d.ffn_down.weight", l), "h.%d.mlp.c_proj.weight", l);
        H(1, C, 0, 0, tu_fmt("blk.%d.ffn_down.bias", l), "h.%d.mlp.c_proj.bias", l);
    }
    H(1, C, 0, 0, "output_norm.weight", "ln_f.weight");
    H(1, C, 0, 0, "output_norm.bias", "ln_f.bias");
#undef H
    return n;
}

static uint64_t hf_numel(const hf_t *h) { return h->shape[0] * (h->n_dims == 2 ? h->shape[1] : 1); }

/* Distinct, exactly representable values: F32 sources hold (ti 1e5 + j) / 1024,
 * 16-bit sources small integers (exact in F16 and BF16). */
static float hf_value(st_dtype dt, int ti, uint64_t j)
{
    if (dt == ST_F32)
        return (float)((double)ti * 100000.0 + (double)j) / 1024.0f;
    return (float)((int)((ti * 7 + (int)j) % 256) - 128);
}

typedef struct hf_opts {
    st_dtype dtype;
    const char *prefix;    /* "" or "transformer." */
    int lm_head;           /* 0 none, 1 a tied copy (F32), 2 different values */
    int masks;             /* h.i.attn.bias and .masked_bias buffers */
    const char *omit;      /* HF name (without prefix) to leave out */
    const char *bad_shape; /* HF name to store with its two dims swapped / one longer */
    const char *extra;     /* an unexpected tensor */
    const char *i64;       /* HF name stored as I64 */
    int vocab_delta;       /* config vocab_size = n_vocab + delta */
    int no_config, no_vocab;
    const char *activation;
    int n_layer_claim;     /* config n_layer when not 0 (the tensors follow the gpt2_config) */
} hf_opts;

static void write_vocab_files(const char *dir, int n_vocab)
{
    gpt2_vocab v;
    memset(&v, 0, sizeof v);
    gpt2_error err = {0};
    ck_assert(gpt2_vocab_embedded(&v, &err) == 0);
    ck_assert(gpt2_vocab_truncate(&v, n_vocab, &err) == 0);
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < v.n_tokens; i++)
        cJSON_AddNumberToObject(o, v.tokens[i], i);
    char *js = cJSON_PrintUnformatted(o);
    write_file(tu_fmt("%s/vocab.json", dir), js, strlen(js));
    free(js);
    cJSON_Delete(o);
    FILE *f = fopen(tu_fmt("%s/merges.txt", dir), "wb");
    ck_assert(f != NULL);
    fputs("#version: 0.2\n", f);
    for (int i = 0; i < v.n_merges; i++)
        fprintf(f, "%s\n", v.merges[i]);
    fclose(f);
    gpt2_vocab_free(&v);
}

static void make_hf_dir(const char *dir, const gpt2_config *c, const hf_opts *o)
{
    tu_run(tu_fmt("rm -rf '%s' && mkdir -p '%s'", dir, dir));
    if (!o->no_config) {
        char cfg[1024];
        snprintf(cfg, sizeof cfg,
                 "{\"activation_function\": \"%s\", \"architectures\": [\"GPT2LMHeadModel\"],\n"
                 " \"layer_norm_epsilon\": 1e-05, \"model_type\": \"gpt2\", \"n_ctx\": %d,\n"
                 " \"n_embd\": %d, \"n_head\": %d, \"n_inner\": null, \"n_layer\": %d,\n"
                 " \"n_positions\": %d, \"vocab_size\": %d, \"scale_attn_weights\": true}\n",
                 o->activation ? o->activation : "gelu_new", c->n_ctx, c->n_embd, c->n_head,
                 o->n_layer_claim ? o->n_layer_claim : c->n_layer, c->n_ctx,
                 c->n_vocab + o->vocab_delta);
        write_file(tu_fmt("%s/config.json", dir), cfg, strlen(cfg));
    }
    if (!o->no_vocab)
        write_vocab_files(dir, c->n_vocab);

    hf_t h[128];
    const int n = hf_table(c, h);
    size_t cap = 4 << 20, used = 0, hcap = 1 << 16, hl = 0;
    unsigned char *data = malloc(cap);
    char *hdr = malloc(hcap);
    hl += (size_t)snprintf(hdr + hl, hcap - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    const size_t esz = o->dtype == ST_F32 ? 4 : 2;
    const char *dname = o->dtype == ST_F32 ? "F32" : o->dtype == ST_F16 ? "F16" : "BF16";
#define ENTRY(nm, dn, shp, nbytes)                                                          \
    hl += (size_t)snprintf(hdr + hl, hcap - hl,                                           \
                           ",\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%zu,%zu]}", \
                           nm, dn, shp, used, used + (nbytes))
    for (int ti = 0; ti < n; ti++) {
        if (o->omit && !strcmp(h[ti].name, o->omit))
            continue;
        const uint64_t ne = hf_numel(&h[ti]);
        char shp[64];
        uint64_t s0 = h[ti].shape[0], s1 = h[ti].shape[1];
        if (o->bad_shape && !strcmp(h[ti].name, o->bad_shape)) {
            if (h[ti].n_dims == 2) { /* stored as W[out][in]: the usual mistake */
                const uint64_t x = s0;
                s0 = s1;
                s1 = x;
            }
        }
        if (h[ti].n_dims == 2)
            snprintf(shp, sizeof shp, "[%" PRIu64 ",%" PRIu64 "]", s0, s1);
        else
            snprintf(shp, sizeof shp, "[%" PRIu64 "]", s0);
        const char *name = tu_fmt("%s%s", o->prefix ? o->prefix : "", h[ti].name);
        if (o->i64 && !strcmp(h[ti].name, o->i64)) {
            ENTRY(name, "I64", shp, ne * 8);
            memset(data + used, 0, ne * 8);
            used += ne * 8;
            continue;
        }
        ENTRY(name, dname, shp, ne * esz);
        for (uint64_t j = 0; j < ne; j++) {
            const float v = hf_value(o->dtype, ti, j);
            if (o->dtype == ST_F32)
                memcpy(data + used + 4 * j, &v, 4);
            else {
                const uint16_t b = o->dtype == ST_F16 ? gpt2k_f32_to_f16(v) : to_bf16(v);
                memcpy(data + used + 2 * j, &b, 2);
            }
        }
        used += ne * esz;
    }
    if (o->masks)
        for (int l = 0; l < c->n_layer; l++) {
            const size_t nb = (size_t)c->n_ctx * c->n_ctx * 4;
            const char *name = tu_fmt("%sh.%d.attn.bias", o->prefix ? o->prefix : "", l);
            ENTRY(name, "F32", tu_fmt("[1,1,%d,%d]", c->n_ctx, c->n_ctx), nb);
            memset(data + used, 0, nb);
            used += nb;
            name = tu_fmt("%sh.%d.attn.masked_bias", o->prefix ? o->prefix : "", l);
            ENTRY(name, "F32", "[]", (size_t)4);
            memset(data + used, 0, 4);
            used += 4;
        }
    if (o->lm_head) {
        /* F32 copy of wte's values (the same numbers in another dtype still count as tied) */
        const uint64_t ne = hf_numel(&h[0]);
        ENTRY("lm_head.weight", "F32", tu_fmt("[%d,%d]", c->n_vocab, c->n_embd), ne * 4);
        for (uint64_t j = 0; j < ne; j++) {
            const float v = hf_value(o->dtype, 0, j) + (o->lm_head == 2 && j == ne - 1);
            memcpy(data + used + 4 * j, &v, 4);
        }
        used += ne * 4;
    }
    if (o->extra) {
        ENTRY(o->extra, "F32", "[2]", (size_t)8);
        memset(data + used, 0, 8);
        used += 8;
    }
#undef ENTRY
    hl += (size_t)snprintf(hdr + hl, hcap - hl, "}");
    ck_assert(hl < hcap && used <= cap);
    write_st_raw(tu_fmt("%s/model.safetensors", dir), hdr, data, used, -1);
    free(hdr);
    free(data);
}

/* Every GGUF tensor equals the HF values, Conv1D weights transposed. */
static void check_hf_gguf(const char *path, const gpt2_config *c, st_dtype src, gpt2_dtype dt,
                          const char *name)
{
    gguf_file *g = open_gguf(path);
    check_str(g, "general.architecture", "gpt2");
    check_str(g, "general.name", name);
    check_str(g, "gpt2c.source", tu_fmt("hf:%s", name));
    ck_assert_int_lt(gguf_find_key(g, "gpt2c.synthetic_seed"), 0);
    ck_assert_uint_eq(get_u(g, "general.file_type"), dt == GPT2_DTYPE_F16 ? 1 : 0);
    ck_assert_uint_eq(get_u(g, "gpt2.block_count"), (uint64_t)c->n_layer);
    ck_assert_uint_eq(get_u(g, "gpt2.embedding_length"), (uint64_t)c->n_embd);
    ck_assert_uint_eq(get_u(g, "gpt2.context_length"), (uint64_t)c->n_ctx);
    ck_assert_uint_eq(get_u(g, "gpt2.feed_forward_length"), (uint64_t)c->n_ff);
    ck_assert_uint_eq(get_u(g, "gpt2.attention.head_count"), (uint64_t)c->n_head);
    uint32_t et;
    uint64_t n;
    gpt2_error err = {0};
    ck_assert(gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &err) == 0);
    ck_assert_uint_eq(n, (uint64_t)c->n_vocab);

    hf_t h[128];
    const int nh = hf_table(c, h);
    ck_assert_int_eq(gguf_n_tensors(g), nh);
    for (int ti = 0; ti < nh; ti++) {
        const gguf_tensor *t = gguf_find_tensor(g, h[ti].gguf);
        ck_assert_msg(t != NULL, "%s missing", h[ti].gguf);
        ck_assert_int_eq(t->n_dims, h[ti].n_dims);
        ck_assert_uint_eq(t->type,
                          dt == GPT2_DTYPE_F16 && h[ti].n_dims == 2 ? GGML_T_F16 : GGML_T_F32);
        const uint64_t ne = hf_numel(&h[ti]);
        ck_assert_uint_eq(t->n_elements, ne);
        if (h[ti].n_dims == 2) {
            /* GGUF ne = [K, N]: [C, V] for wte [V, C]; [in, out] for Conv1D [in, out] */
            ck_assert_uint_eq(t->ne[0], h[ti].conv1d ? h[ti].shape[0] : h[ti].shape[1]);
            ck_assert_uint_eq(t->ne[1], h[ti].conv1d ? h[ti].shape[1] : h[ti].shape[0]);
        }
        const uint64_t K = t->ne[0], N = h[ti].n_dims == 2 ? t->ne[1] : 1;
        for (uint64_t r = 0; r < N; r++)
            for (uint64_t k = 0; k < K; k++) {
                /* W[r][k] = conv[k][r] */
                const uint64_t hj = h[ti].conv1d ? k * N + r : r * K + k;
                const float want = hf_value(src, ti, hj);
                const uint64_t gj = r * K + k;
                if (t->type == GGML_T_F32)
                    ck_assert_msg(tval(t, gj) == want, "%s[%" PRIu64 "][%" PRIu64 "] = %g, want %g",
                                  t->name, r, k, (double)tval(t, gj), (double)want);
                else
                    ck_assert_msg(tbits16(t, gj) == gpt2k_f32_to_f16(want),
                                  "%s[%" PRIu64 "][%" PRIu64 "]", t->name, r, k);
            }
    }
    gguf_close(g);
}

/* _i: source dtype (F32, F16, BF16) x output (f32, f16); variants ride along */
START_TEST(test_hf_convert)
{
    const st_dtype src = (st_dtype)(_i / 2);
    const gpt2_dtype dt = _i % 2 ? GPT2_DTYPE_F16 : GPT2_DTYPE_F32;
    /* C = 72 > one 64-wide transpose tile, HD = 24; n_ff 288 */
    const gpt2_config c = small_cfg(2, 72, 3, 16, 300);
    hf_opts o = {.dtype = src, .masks = 1};
    if (src == ST_F16)
        o.prefix = "transformer.";
    if (src == ST_BF16 || (src == ST_F32 && dt == GPT2_DTYPE_F32))
        o.lm_head = 1;
    const char *name = keep(tu_fmt("hf_%d", (int)_i));
    const char *dir = dpath(name);
    make_hf_dir(dir, &c, &o);
    const char *out = dpath(tu_fmt("hf_%d.gguf", (int)_i));
    remove(out);
    gpt2_error err = {0};
    int rc = gpt2_convert_hf(dir, dt, out, 0, &err);
    ck_assert_msg(rc == 0, "convert: %s", err.msg);
    check_hf_gguf(out, &c, src, dt, tu_fmt("conv_%s", name));
    /* the engine loads it */
    gpt2_model *m = gpt2_model_load(out, NULL, &err);
    ck_assert_msg(m != NULL, "load: %s", err.msg);
    gpt2_model_free(m);
}
END_TEST

/* Sizes that are no multiple of the 64-wide transpose tile (C = 130, FF = 520,
 * HD = 26, V = 261, ctx = 7), in both output dtypes. */
START_TEST(test_hf_odd_sizes)
{
    gpt2_config c = small_cfg(1, 130, 5, 7, 261);
    c.n_ff = 4 * 130;
    hf_opts o = {.dtype = ST_F32};
    const char *dir = dpath("hf_odd");
    make_hf_dir(dir, &c, &o);
    for (int d = 0; d < 2; d++) {
        const gpt2_dtype dt = d ? GPT2_DTYPE_F16 : GPT2_DTYPE_F32;
        const char *out = dpath(tu_fmt("hf_odd_%d.gguf", d));
        remove(out);
        gpt2_error err = {0};
        ck_assert_msg(gpt2_convert_hf(dir, dt, out, 0, &err) == 0, "%s", err.msg);
        check_hf_gguf(out, &c, ST_F32, dt, "conv_hf_odd");
    }
}
END_TEST

static void expect_hf_error(const char *tag, const hf_opts *o, const char *must1,
                            const char *must2)
{
    const gpt2_config c = small_cfg(2, 8, 2, 16, 300);
    const char *dir = dpath(tu_fmt("hferr_%s", tag));
    make_hf_dir(dir, &c, o);
    const char *out = dpath(tu_fmt("hferr_%s.gguf", tag));
    remove(out);
    gpt2_error err = {0};
    const int rc = gpt2_convert_hf(dir, GPT2_DTYPE_F32, out, 0, &err);
    ck_assert_msg(rc < 0, "%s: converted", tag);
    ck_assert_int_eq(err.code, rc);
    ck_assert_msg(strstr(err.msg, must1) != NULL, "%s: '%s' not in: %s", tag, must1, err.msg);
    if (must2)
        ck_assert_msg(strstr(err.msg, must2) != NULL, "%s: '%s' not in: %s", tag, must2,
                      err.msg);
    tu_assert_no_output(out);
}

START_TEST(test_hf_errors)
{
    hf_opts o = {.dtype = ST_F32};
    o.omit = "h.1.mlp.c_fc.bias";
    expect_hf_error("missing", &o, "missing tensor 'h.1.mlp.c_fc.bias'", NULL);
    o = (hf_opts){.dtype = ST_F32, .prefix = "transformer.", .omit = "ln_f.weight"};
    expect_hf_error("missing_prefixed", &o, "'transformer.ln_f.weight'", NULL);
    o = (hf_opts){.dtype = ST_F32, .bad_shape = "h.0.attn.c_attn.weight"};
    expect_hf_error("shape", &o, "'h.0.attn.c_attn.weight'", "expected shape [8, 24], found [24, 8]");
    o = (hf_opts){.dtype = ST_F32, .no_config = 1};
    expect_hf_error("no_config", &o, "config.json", "cannot open");
    o = (hf_opts){.dtype = ST_F32, .vocab_delta = 1};
    expect_hf_error("vocab_few", &o, "vocab.json", "vocab_size = 301");
    o = (hf_opts){.dtype = ST_F32, .vocab_delta = -1};
    expect_hf_error("vocab_many", &o, "vocab.json", "vocab_size = 299");
    o = (hf_opts){.dtype = ST_F32, .no_vocab = 1};
    expect_hf_error("no_vocab", &o, "vocab.json", NULL);
    o = (hf_opts){.dtype = ST_F32, .extra = "h.0.attn.q_norm.weight"};
    expect_hf_error("extra", &o, "unexpected tensor 'h.0.attn.q_norm.weight'", NULL);
    o = (hf_opts){.dtype = ST_F32, .lm_head = 2};
    expect_hf_error("untied", &o, "untied LM head not supported", NULL);
    o = (hf_opts){.dtype = ST_F32, .activation = "relu"};
    expect_hf_error("relu", &o, "activation_function relu", NULL);
    o = (hf_opts){.dtype = ST_F32, .i64 = "ln_f.bias"};
    expect_hf_error("i64", &o, "'ln_f.bias'", "I64");

    /* not a directory; no safetensors */
    gpt2_error err = {0};
    const char *out = dpath("hferr_nodir.gguf");
    ck_assert_int_lt(gpt2_convert_hf(dpath("no_such_dir"), GPT2_DTYPE_F32, out, 0, &err), 0);
    ck_assert_msg(strstr(err.msg, "no_such_dir"), "%s", err.msg);
    tu_assert_no_output(out);
    const gpt2_config c = small_cfg(2, 8, 2, 16, 300);
    o = (hf_opts){.dtype = ST_F32};
    const char *dir = dpath("hferr_nost");
    make_hf_dir(dir, &c, &o);
    remove(tu_fmt("%s/model.safetensors", dir));
    out = dpath("hferr_nost.gguf");
    ck_assert_int_lt(gpt2_convert_hf(dir, GPT2_DTYPE_F32, out, 0, &err), 0);
    ck_assert_msg(strstr(err.msg, "model.safetensors"), "%s", err.msg);
    tu_assert_no_output(out);
    /* q8_0 is the quantizer's job */
    make_hf_dir(dir, &c, &o);
    ck_assert_int_eq(gpt2_convert_hf(dir, GPT2_DTYPE_Q8_0, out, 0, &err), GPT2_ERR_UNSUPPORTED);
    tu_assert_no_output(out);
}
END_TEST

/* config.json's sizes are claims the checkpoint must back: n_layer = 10^8
 * (1.2 billion tensors, within every per-field limit) over a 2-layer file is
 * refused at its first missing tensor, before anything is sized from the
 * claim; under a 1 GiB address-space cap a table sized from it would fail as
 * "out of memory" instead. The config reader itself names the file. */
START_TEST(test_hf_absurd_claims)
{
    struct rlimit old;
    tu_limit_memory(1ull << 30, &old);
    hf_opts o = {.dtype = ST_F32, .n_layer_claim = 100000000};
    expect_hf_error("nlayer1e8", &o, "model.safetensors: missing tensor 'h.2.ln_1.weight'", NULL);
    tu_unlimit_memory(&old);

    gpt2_config cfg;
    gpt2_error err = {0};
    const char *js = "{\"n_embd\": 8, \"n_head\": 2, \"n_layer\": 2147483647, "
                     "\"vocab_size\": 300, \"n_ctx\": 16}";
    ck_assert_int_lt(gpt2_hf_config_parse(js, strlen(js), "dir/config.json", &cfg, &err), 0);
    ck_assert_msg(strstr(err.msg, "dir/config.json") && strstr(err.msg, "n_layer 2147483647"),
                  "%s", err.msg);
    js = "{\"n_embd\": 8, \"n_head\": 2, \"n_layer\": 2, \"vocab_size\": 300, \"n_ctx\": 16}";
    ck_assert_msg(gpt2_hf_config_parse(js, strlen(js), "dir/config.json", &cfg, &err) == 0, "%s",
                  err.msg);
    ck_assert_int_eq(cfg.n_layer, 2);
    ck_assert_int_eq(cfg.n_ff, 32);
    ck_assert_int_lt(gpt2_hf_config_parse(js, 10, "dir/config.json", &cfg, &err), 0);
    ck_assert_msg(strstr(err.msg, "dir/config.json: not a JSON object"), "%s", err.msg);
}
END_TEST

/* safetensors_open_mem reads bytes in memory as safetensors_open reads the
 * file, naming the name it is given. */
START_TEST(test_safetensors_mem)
{
    const char *hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    const float vals[2] = {1.5f, -2.0f};
    const char *path = dpath("mem.safetensors");
    write_st_raw(path, hdr, vals, sizeof vals, -1);
    size_t n = 0;
    unsigned char *bytes = tu_read_file(path, &n);
    ck_assert_ptr_nonnull(bytes);
    gpt2_error err = {0};
    safetensors_file *f = safetensors_open_mem(bytes, n, "mem.safetensors", &err);
    ck_assert_msg(f != NULL, "%s", err.msg);
    ck_assert_str_eq(safetensors_path(f), "mem.safetensors");
    const safetensors_tensor *t = safetensors_find(f, "w");
    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_eq(t->data, bytes + n - 8); /* into the caller's bytes */
    float got[2];
    ck_assert_int_eq(safetensors_to_f32(t, 0, 2, got, &err), 0);
    ck_assert(got[0] == 1.5f && got[1] == -2.0f);
    safetensors_close(f);
    ck_assert_ptr_null(safetensors_open_mem(bytes, n - 1, "mem.safetensors", &err));
    ck_assert_msg(strstr(err.msg, "mem.safetensors: tensor 'w'"), "%s", err.msg);
    ck_assert_ptr_null(safetensors_open_mem(bytes, 5, NULL, &err));
    ck_assert_msg(strstr(err.msg, "(memory): file is 5 bytes"), "%s", err.msg);
    free(bytes);
}
END_TEST

/* ---- gpt2c-convert ------------------------------------------------------------- */

static int run_status(const char *cmd)
{
    const int st = system(cmd);
    ck_assert_msg(st != -1 && WIFEXITED(st), "did not exit normally: %s", cmd);
    return WEXITSTATUS(st);
}

START_TEST(test_cli)
{
    const char *bin = keep(tu_fmt("%s/gpt2c-convert", tu_env("GPT2C_BIN", "build/bin")));
    ck_assert_msg(access(bin, X_OK) == 0, "%s not built", bin);
    const char *log = dpath("cli.log");
    const char *out = dpath("cli.gguf");
    remove(out);
    const char *small = "--synthetic custom --layers 1 --embd 8 --heads 2 --ctx 8 --vocab 300";

    ck_assert_int_eq(run_status(tu_fmt("%s --help > %s 2>&1", bin, log)), 0);
    ck_assert_int_ne(run_status(tu_fmt("%s > %s 2>&1", bin, log)), 0);
    ck_assert_int_ne(run_status(tu_fmt("%s --bogus > %s 2>&1", bin, log)), 0);
    ck_assert_int_ne(run_status(tu_fmt("%s --synthetic 999M --out %s > %s 2>&1", bin, out, log)), 0);
    ck_assert_int_ne(run_status(tu_fmt("%s %s --dtype q8_0 --out %s > %s 2>&1", bin, small, out, log)), 0);
    ck_assert_int_ne(run_status(tu_fmt("%s %s --dtype f64 --out %s > %s 2>&1", bin, small, out, log)), 0);
    ck_assert_int_ne(run_status(tu_fmt("%s %s --seed -1 --out %s > %s 2>&1", bin, small, out, log)), 0);
    ck_assert_int_ne(run_status(tu_fmt("%s --synthetic custom --layers 1 --embd 10 --heads 3 "
                                       "--ctx 8 --vocab 300 --out %s > %s 2>&1", bin, out, log)), 0);
    ck_assert_int_ne(run_status(tu_fmt("%s --synthetic custom --layers 1 --out %s > %s 2>&1", bin,
                                       out, log)), 0);
    ck_assert_int_ne(run_status(tu_fmt("%s --synthetic 124M --layers 2 --out %s > %s 2>&1", bin,
                                       out, log)), 0);
    ck_assert_int_ne(run_status(tu_fmt("%s --hf %s --out %s > %s 2>&1", bin,
                                       dpath("no_such_dir"), out, log)), 0);
    ck_assert_int_ne(run_status(tu_fmt("%s --hf %s > %s 2>&1", bin, tu_data(), log)), 0);
    ck_assert_int_ne(run_status(tu_fmt("%s --out %s > %s 2>&1", bin, out, log)), 0);
    tu_assert_no_output(out);

    ck_assert_int_eq(run_status(tu_fmt("%s %s --seed 3 --out %s 2> %s", bin, small, out, log)), 0);
    size_t n;
    char *text = tu_read_file(log, &n);
    text = realloc(text, n + 1);
    text[n] = 0;
    ck_assert_msg(strstr(text, "16 tensors") && strstr(text, "wrote"), "summary: %s", text);
    free(text);
    gguf_file *g = open_gguf(out);
    ck_assert_uint_eq(get_u(g, "gpt2c.synthetic_seed"), 3);
    gguf_close(g);
    /* the library writes the same bytes */
    const gpt2_config c = small_cfg(1, 8, 2, 8, 300);
    write_synth(&c, 3, GPT2_DTYPE_F32, dpath("cli_lib.gguf"));
    ck_assert(files_equal(out, dpath("cli_lib.gguf")));

    /* no overwrite without --force; the file is untouched */
    ck_assert_int_ne(run_status(tu_fmt("%s %s --seed 4 --out %s > %s 2>&1", bin, small, out, log)), 0);
    ck_assert(files_equal(out, dpath("cli_lib.gguf")));
    ck_assert_int_eq(run_status(tu_fmt("%s %s --seed 4 --force -q --out %s 2> %s", bin, small, out,
                                       log)), 0);
    g = open_gguf(out);
    ck_assert_uint_eq(get_u(g, "gpt2c.synthetic_seed"), 4);
    gguf_close(g);

    /* HF conversion through the tool, f16 */
    const gpt2_config hc = small_cfg(2, 8, 2, 16, 300);
    hf_opts o = {.dtype = ST_F32, .masks = 1};
    make_hf_dir(dpath("cli_hf"), &hc, &o);
    const char *hout = dpath("cli_hf.gguf");
    remove(hout);
    ck_assert_int_eq(run_status(tu_fmt("%s --hf %s --out %s --dtype f16 2> %s", bin,
                                       dpath("cli_hf"), hout, log)), 0);
    check_hf_gguf(hout, &hc, ST_F32, GPT2_DTYPE_F16, "conv_cli_hf");
    /* a broken checkpoint: non-zero exit, no file */
    remove(hout);
    remove(tu_fmt("%s/merges.txt", dpath("cli_hf")));
    ck_assert_int_ne(run_status(tu_fmt("%s --hf %s --out %s 2> %s", bin, dpath("cli_hf"), hout,
                                       log)), 0);
    tu_assert_no_output(hout);
}
END_TEST

static Suite *convert_suite(void)
{
    Suite *s = suite_create("convert");
    TCase *t = tcase_create("layout");
    tcase_add_test(t, test_presets);
    tcase_add_test(t, test_layout);
    tcase_add_test(t, test_config_validate);
    suite_add_tcase(s, t);

    t = tcase_create("synthetic");
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, test_synthetic_small, 0, 2);
    tcase_add_test(t, test_synthetic_full_vocab);
    tcase_add_test(t, test_synthetic_stats);
    tcase_add_test(t, test_synthetic_random_access);
    tcase_add_test(t, test_synthetic_determinism);
    tcase_add_test(t, test_f16_is_rounded_f32);
    tcase_add_test(t, test_writer);
    suite_add_tcase(s, t);

    t = tcase_create("safetensors");
    tcase_add_test(t, test_safetensors_valid);
    tcase_add_test(t, test_safetensors_errors);
    tcase_add_test(t, test_safetensors_mem);
    suite_add_tcase(s, t);

    t = tcase_create("hf");
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, test_hf_convert, 0, 6);
    tcase_add_test(t, test_hf_odd_sizes);
    tcase_add_test(t, test_hf_errors);
    tcase_add_test(t, test_hf_absurd_claims);
    suite_add_tcase(s, t);

    t = tcase_create("cli");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_cli);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(convert_suite());
    srunner_run_all(r, CK_NORMAL);
    const int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
