/* Fuzz target: the GGUF reader and the model loader. Bytes go through
 * gguf_open_mem (header, metadata, tensor table, data bounds), every getter on
 * every key and a touch of every tensor's first and last byte, then
 * gpt2_model_from_gguf (config, shapes against it, CRCs, tokenizer) and a
 * tokenizer round trip on a model that loads.
 * Invariants: a refusal is an error status with a message naming the file;
 * tensor data lies inside the input; decode(encode(x)) == x. */
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "gguf.h"
#include "model.h"

#define NAME "fuzz.gguf"

static void check_refusal(const gpt2_error *err)
{
    FUZZ_CHECK(err->code < 0, "code %d", err->code);
    FUZZ_CHECK(strstr(err->msg, NAME) != NULL, "message does not name the file: %s", err->msg);
}

static void touch_kvs(const gguf_file *f)
{
    gpt2_error err;
    for (int64_t i = 0; i < gguf_n_kv(f); i++) {
        const char *key = gguf_kv_key(f, i);
        FUZZ_CHECK(key != NULL, "key %lld", (long long)i);
        FUZZ_CHECK(gguf_find_key(f, key) == i, "key '%s' found elsewhere", key);
        uint64_t u;
        int64_t s;
        float x;
        int b;
        const char *str;
        size_t len;
        uint32_t et;
        uint64_t n;
        /* each getter either succeeds or explains itself */
        if (gguf_get_uint(f, key, &u, &err))
            check_refusal(&err);
        if (gguf_get_int(f, key, &s, &err))
            check_refusal(&err);
        if (gguf_get_f32(f, key, &x, &err))
            check_refusal(&err);
        if (gguf_get_bool(f, key, &b, &err))
            check_refusal(&err);
        if (gguf_get_str(f, key, &str, &len, &err) == 0) {
            volatile char sink = len ? (char)(str[0] ^ str[len - 1]) : 0;
            (void)sink;
        } else {
            check_refusal(&err);
        }
        if (gguf_get_arr(f, key, &et, &n, &err) != 0) {
            check_refusal(&err);
            continue;
        }
        FUZZ_CHECK(n == gguf_kv_arr_n(f, i) && et == gguf_kv_arr_type(f, i), "array of '%s'", key);
        if (et == GGUF_VT_STRING) {
            uint64_t pick[3] = {0, n / 2, n - 1};
            for (int k = 0; k < 3 && n > 0; k++) {
                const char *e = gguf_arr_str(f, key, pick[k], &len);
                FUZZ_CHECK(e != NULL, "element %llu of '%s'", (unsigned long long)pick[k], key);
                volatile char sink = len ? (char)(e[0] ^ e[len - 1]) : 0;
                (void)sink;
            }
            FUZZ_CHECK(gguf_arr_str(f, key, n, &len) == NULL, "element past the end of '%s'", key);
        } else if (n > 0) {
            const unsigned char *d = gguf_arr_data(f, key);
            FUZZ_CHECK(d != NULL, "data of '%s'", key);
            volatile unsigned char sink = (unsigned char)(d[0] ^ d[n - 1]);
            (void)sink;
        }
    }
}

static void touch_tensors(const gguf_file *f, const uint8_t *data, size_t size)
{
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        FUZZ_CHECK(gguf_find_tensor(f, t->name) == t, "tensor '%s' found elsewhere", t->name);
        const uint8_t *p = t->data;
        FUZZ_CHECK(p >= data && t->n_bytes <= size && (size_t)(p - data) <= size - t->n_bytes,
                   "tensor '%s' outside the input", t->name);
        if (t->n_bytes) {
            volatile uint8_t sink = (uint8_t)(p[0] ^ p[t->n_bytes - 1]);
            (void)sink;
        }
    }
}

static void round_trip(const gpt2_model *m, const uint8_t *data, size_t size)
{
    gpt2_error err;
    size_t len = size < 64 ? size : 64; /* some of the input as text */
    const char *text = (const char *)data;
    int ids[256];
    int n = gpt2_tokenize(m, text, len, ids, 256, &err);
    if (n < 0) { /* a vocabulary may lack a byte's token: the text is refused, not the file */
        FUZZ_CHECK(n == GPT2_ERR_TOKENIZE && err.msg[0], "encode status %d: %s", n, err.msg);
        return;
    }
    FUZZ_CHECK(n <= 256 && (size_t)n <= len, "%d ids for %zu bytes", n, len);
    char back[64];
    long got = gpt2_detokenize(m, ids, n, back, sizeof back, &err);
    FUZZ_CHECK(got == (long)len && memcmp(back, text, len) == 0, "round trip: %ld of %zu bytes",
               got, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gpt2_error err;
    gguf_file *f = gguf_open_mem(data, size, NAME, &err);
    if (!f) {
        check_refusal(&err);
        return 0;
    }
    touch_kvs(f);
    touch_tensors(f, data, size);
    gpt2_load_opts opts = {0};
    gpt2_model *m = gpt2_model_from_gguf(f, &opts, &err); /* owns f from here */
    if (!m) {
        check_refusal(&err);
        return 0;
    }
    round_trip(m, data, size);
    gpt2_model_free(m);
    return 0;
}
