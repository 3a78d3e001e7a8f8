/* GGUF v3 reader/writer: round trips, exact bytes, corrupt files, writer
 * failures. Files go under $GPT2C_TESTDATA (or /tmp) with per-process names. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "errors.h"
#include "gguf.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------ */

static int g_seq;

static const char *test_dir(void)
{
    const char *d = getenv("GPT2C_TESTDATA");
    return d && *d ? d : "/tmp";
}

/* unique per process and call: tests run in forked children */
static void tpath(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "%s/gguf_%ld_%d_%s.gguf", test_dir(), (long)getpid(), g_seq++, tag);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_msg(fp != NULL, "cannot create %s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(p, 1, n, fp), n);
    ck_assert_int_eq(fclose(fp), 0);
}

static uint8_t *read_file(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "cannot open %s: %s", path, strerror(errno));
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *p = malloc(sz > 0 ? (size_t)sz : 1);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(fread(p, 1, (size_t)sz, fp), (size_t)sz);
    fclose(fp);
    *n = (size_t)sz;
    return p;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Entries in path's directory whose names start with "<basename>.tmp." */
static int count_tmp(const char *path)
{
    char dir[1024], pre[512];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    ck_assert_ptr_nonnull(slash);
    *slash = 0;
    snprintf(pre, sizeof pre, "%s.tmp.", slash + 1);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += strncmp(de->d_name, pre, strlen(pre)) == 0;
    closedir(d);
    return n;
}

#define ASSERT_HAS(msg, needle) \
    ck_assert_msg(strstr((msg), (needle)) != NULL, "message \"%s\" lacks \"%s\"", (msg), (needle))

/* Deterministic filler bytes. */
static void fill_bytes(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

static uint32_t zcrc(const void *p, size_t n)
{
    return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)n);
}

/* ---- raw builder: writes GGUF bytes by hand, independent of the writer -- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} raw;

static void r_bytes(raw *r, const void *p, size_t n)
{
    if (r->n + n > r->cap) {
        r->cap = (r->n + n) * 2 + 64;
        r->p = realloc(r->p, r->cap);
        ck_assert_ptr_nonnull(r->p);
    }
    if (n)
        memcpy(r->p + r->n, p, n);
    r->n += n;
}

static void r_u8(raw *r, uint8_t v) { r_bytes(r, &v, 1); }

static void r_u32(raw *r, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    r_bytes(r, b, 4);
}

static void r_u64(raw *r, uint64_t v)
{
    r_u32(r, (uint32_t)v);
    r_u32(r, (uint32_t)(v >> 32));
}

static void r_strn(raw *r, const char *s, size_t n)
{
    r_u64(r, n);
    r_bytes(r, s, n);
}

static void r_str(raw *r, const char *s) { r_strn(r, s, strlen(s)); }

static void r_zeros(raw *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        r_u8(r, 0);
}

static void r_pad(raw *r, size_t a) { r_zeros(r, (a - r->n % a) % a); }

static void r_header(raw *r, uint32_t version, uint64_t n_t, uint64_t n_kv)
{
    r_bytes(r, "GGUF", 4);
    r_u32(r, version);
    r_u64(r, n_t);
    r_u64(r, n_kv);
}

static void r_ti(raw *r, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                 uint64_t off)
{
    r_str(r, name);
    r_u32(r, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        r_u64(r, ne[d]);
    r_u32(r, type);
    r_u64(r, off);
}

typedef struct {
    const char *name;
    uint32_t n_dims;
    uint64_t ne[5];
    uint32_t type;
    uint64_t offset;
} ti_spec;

typedef struct {
    uint32_t version;
    int align_kind; /* 0 none, 1 UINT32 align_val, 2 UINT64 align_val */
    uint32_t align_val;
    int dup_key;
    const ti_spec *ts;
    int nt;
    size_t data_bytes;
} raw_spec;

/* One string kv, optional general.alignment, tensors, padding, data. */
static void build(raw *r, const raw_spec *s)
{
    uint64_t n_kv = 1 + (s->align_kind != 0) + (s->dup_key != 0);
    r_header(r, s->version ? s->version : 3, (uint64_t)s->nt, n_kv);
    r_str(r, "general.architecture");
    r_u32(r, GGUF_VT_STRING);
    r_str(r, "gpt2");
    if (s->align_kind == 1) {
        r_str(r, "general.alignment");
        r_u32(r, GGUF_VT_UINT32);
        r_u32(r, s->align_val);
    } else if (s->align_kind == 2) {
        r_str(r, "general.alignment");
        r_u32(r, GGUF_VT_UINT64);
        r_u64(r, s->align_val);
    }
    if (s->dup_key) {
        r_str(r, "general.architecture");
        r_u32(r, GGUF_VT_UINT8);
        r_u8(r, 1);
    }
    for (int i = 0; i < s->nt; i++)
        r_ti(r, s->ts[i].name, s->ts[i].n_dims, s->ts[i].ne, s->ts[i].type, s->ts[i].offset);
    uint32_t a = s->align_kind == 1 && s->align_val && !(s->align_val & (s->align_val - 1))
                     ? s->align_val
                     : 32;
    r_pad(r, a);
    for (size_t i = 0; i < s->data_bytes; i++)
        r_u8(r, (uint8_t)i);
}

/* Writes the bytes, expects gguf_open to fail with a message naming the file
 * and containing each needle. Returns the status. */
static int expect_fail(const void *p, size_t n, const char *tag, const char *n1, const char *n2)
{
    char path[512];
    tpath(path, sizeof path, tag);
    write_file(path, p, n);
    gpt2_error err = {0};
    gguf_file *f = gguf_open(path, &err);
    unlink(path); /* before any assertion can end the test */
    ck_assert_msg(f == NULL, "%s: corrupt file opened", tag);
    ck_assert_int_lt(err.code, 0);
    if (getenv("GPT2C_TEST_VERBOSE")) /* to read the messages themselves */
        fprintf(stderr, "[%s] %s\n", tag, err.msg);
    ASSERT_HAS(err.msg, path);
    if (n1)
        ASSERT_HAS(err.msg, n1);
    if (n2)
        ASSERT_HAS(err.msg, n2);
    return err.code;
}

static int expect_fail_spec(const raw_spec *s, const char *tag, const char *n1, const char *n2)
{
    raw r = {0};
    build(&r, s);
    int rc = expect_fail(r.p, r.n, tag, n1, n2);
    free(r.p);
    return rc;
}

static const ti_spec two_ok[2] = {
    {"a", 1, {8}, GGML_T_F32, 0},
    {"b", 1, {8}, GGML_T_F32, 32},
};

/* ---- basics ------------------------------------------------------------- */

START_TEST(test_names_and_sizes)
{
    ck_assert_str_eq(gguf_vtype_name(GGUF_VT_UINT32), "UINT32");
    ck_assert_str_eq(gguf_vtype_name(GGUF_VT_FLOAT64), "FLOAT64");
    ck_assert_str_eq(gguf_vtype_name(99), "unknown");
    ck_assert_str_eq(ggml_type_name(GGML_T_Q8_0), "q8_0");
    ck_assert_str_eq(ggml_type_name(2), "unknown");
    ck_assert_int_eq(ggml_block_size(GGML_T_F32), 1);
    ck_assert_int_eq(ggml_block_size(GGML_T_Q8_0), 32);
    ck_assert_int_eq(ggml_block_size(3), 0);
    ck_assert_uint_eq(ggml_row_bytes(GGML_T_F32, 5), 20);
    ck_assert_uint_eq(ggml_row_bytes(GGML_T_F16, 3), 6);
    ck_assert_uint_eq(ggml_row_bytes(GGML_T_Q8_0, 64), 68);
    ck_assert_uint_eq(ggml_row_bytes(GGML_T_Q8_0, 33), 0);
    ck_assert_uint_eq(ggml_row_bytes(7, 32), 0);
    ck_assert_uint_eq(gguf_crc32("123456789", 9), 0xCBF43926u); /* the CRC-32 check value */
    ck_assert_uint_eq(gguf_crc32("", 0), 0);
}
END_TEST

/* A hand-built file (no writer involved) reads back as built. */
START_TEST(test_read_handmade)
{
    raw r = {0};
    raw_spec s = {.ts = two_ok, .nt = 2, .data_bytes = 64};
    build(&r, &s);
    char path[512];
    tpath(path, sizeof path, "handmade");
    write_file(path, r.p, r.n);
    gpt2_error err = {0};
    gguf_file *f = gguf_open(path, &err);
    ck_assert_msg(f != NULL, "%s", err.msg);
    ck_assert_uint_eq(gguf_version(f), 3);
    ck_assert_uint_eq(gguf_alignment(f), 32);
    ck_assert_uint_eq(gguf_file_size(f), r.n);
    ck_assert_int_eq(gguf_n_kv(f), 1);
    ck_assert_int_eq(gguf_n_tensors(f), 2);
    const char *s_val;
    size_t len;
    ck_assert_int_eq(gguf_get_str(f, "general.architecture", &s_val, &len, &err), 0);
    ck_assert_uint_eq(len, 4);
    ck_assert(memcmp(s_val, "gpt2", 4) == 0);
    const gguf_tensor *b = gguf_find_tensor(f, "b");
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(gguf_tensor_index(f, "b"), 1);
    ck_assert_ptr_null(gguf_find_tensor(f, "c"));
    ck_assert_int_eq(gguf_tensor_index(f, "c"), -1);
    ck_assert_uint_eq(b->n_bytes, 32);
    ck_assert_uint_eq(((const uint8_t *)b->data)[0], 32); /* data byte i holds i */
    ck_assert_uint_eq(((const uint8_t *)b->data)[31], 63);
    /* data region = everything after the padded tables (64 data bytes) */
    ck_assert_ptr_eq((const uint8_t *)b->data, (const uint8_t *)gguf_tensor_at(f, 0)->data + 32);
    ck_assert_uint_eq((r.n - 64) % 32, 0);
    gguf_close(f);
    unlink(path);
    free(r.p);
}
END_TEST

/* ---- metadata round trip ------------------------------------------------ */

START_TEST(test_metadata_roundtrip)
{
    gguf_writer *w = gguf_writer_create();
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(gguf_set_u8(w, "u8", 250), 0);
    ck_assert_int_eq(gguf_set_i8(w, "i8", -100), 0);
    ck_assert_int_eq(gguf_set_u16(w, "u16", 65000), 0);
    ck_assert_int_eq(gguf_set_i16(w, "i16", -32000), 0);
    ck_assert_int_eq(gguf_set_u32(w, "u32", 4000000000u), 0);
    ck_assert_int_eq(gguf_set_i32(w, "i32", -5), 0);
    ck_assert_int_eq(gguf_set_u64(w, "u64", UINT64_MAX), 0);
    ck_assert_int_eq(gguf_set_i64(w, "i64", INT64_MIN), 0);
    ck_assert_int_eq(gguf_set_f32(w, "f32", 1e-5f), 0);
    ck_assert_int_eq(gguf_set_f64(w, "f64", 3.141592653589793), 0);
    ck_assert_int_eq(gguf_set_bool(w, "bool_t", 7), 0);
    ck_assert_int_eq(gguf_set_bool(w, "bool_f", 0), 0);
    ck_assert_int_eq(gguf_set_str(w, "str", "tab\there\n\xc3\xa9\x01\xff"), 0);
    ck_assert_int_eq(gguf_set_str(w, "str_empty", ""), 0);
    ck_assert_int_eq(gguf_set_u32(w, "replaced", 1), 0); /* replaced below, keeps its place */

    const uint8_t a_u8[] = {0, 1, 255};
    const int8_t a_i8[] = {-128, 0, 127};
    const uint16_t a_u16[] = {0, 65535};
    const int16_t a_i16[] = {-32768, 32767, -1};
    const uint32_t a_u32[] = {0, 0xdeadbeefu, 7};
    const int32_t a_i32[] = {INT32_MIN, INT32_MAX};
    const uint64_t a_u64[] = {UINT64_MAX, 0, 42};
    const int64_t a_i64[] = {INT64_MIN, INT64_MAX};
    const float a_f32[] = {1.5f, -0.0f, INFINITY, 1e-30f};
    const double a_f64[] = {-2.5, 1e300};
    const uint8_t a_bool[] = {1, 0, 1};
    struct {
        const char *key;
        uint32_t t;
        const void *p;
        uint64_t n;
        size_t esz;
    } arrs[] = {
        {"a.u8", GGUF_VT_UINT8, a_u8, 3, 1},     {"a.i8", GGUF_VT_INT8, a_i8, 3, 1},
        {"a.u16", GGUF_VT_UINT16, a_u16, 2, 2},  {"a.i16", GGUF_VT_INT16, a_i16, 3, 2},
        {"a.u32", GGUF_VT_UINT32, a_u32, 3, 4},  {"a.i32", GGUF_VT_INT32, a_i32, 2, 4},
        {"a.u64", GGUF_VT_UINT64, a_u64, 3, 8},  {"a.i64", GGUF_VT_INT64, a_i64, 2, 8},
        {"a.f32", GGUF_VT_FLOAT32, a_f32, 4, 4}, {"a.f64", GGUF_VT_FLOAT64, a_f64, 2, 8},
        {"a.bool", GGUF_VT_BOOL, a_bool, 3, 1},  {"a.empty", GGUF_VT_UINT32, NULL, 0, 4},
    };
    const int n_arrs = (int)(sizeof arrs / sizeof arrs[0]);
    for (int i = 0; i < n_arrs; i++)
        ck_assert_int_eq(gguf_set_arr(w, arrs[i].key, arrs[i].t, arrs[i].p, arrs[i].n), 0);

    const char *strs[] = {"hello", "", "a\0b", "\xff\xfe", "tok\n"};
    const size_t lens[] = {5, 0, 3, 2, 4};
    ck_assert_int_eq(gguf_set_arr_str(w, "a.str", strs, lens, 5), 0);
    const char *strs_nt[] = {"x", "yz"};
    ck_assert_int_eq(gguf_set_arr_str(w, "a.str_nt", strs_nt, NULL, 2), 0);
    ck_assert_int_eq(gguf_set_arr_str(w, "a.str_empty", NULL, NULL, 0), 0);
    ck_assert_int_eq(gguf_set_str(w, "replaced", "new"), 0);

    char path[512];
    tpath(path, sizeof path, "meta");
    gpt2_error err = {0};
    ck_assert_msg(gguf_writer_write(w, path, 0, NULL, NULL, &err) == 0, "%s", err.msg);
    gguf_writer_free(w);

    gguf_file *f = gguf_open(path, &err);
    ck_assert_msg(f != NULL, "%s", err.msg);
    ck_assert_int_eq(gguf_n_tensors(f), 0);
    ck_assert_int_eq(gguf_n_kv(f), 15 + n_arrs + 3);
    ck_assert_ptr_null(gguf_kv_key(f, gguf_n_kv(f)));
    ck_assert_uint_eq(gguf_kv_type(f, -1), GGUF_VT_COUNT);
    /* written in the order set; the replaced key stays where it was */
    ck_assert_str_eq(gguf_kv_key(f, 0), "u8");
    ck_assert_str_eq(gguf_kv_key(f, 14), "replaced");
    ck_assert_uint_eq(gguf_kv_type(f, 14), GGUF_VT_STRING);
    ck_assert_str_eq(gguf_kv_key(f, 15), "a.u8");
    ck_assert_int_eq(gguf_find_key(f, "nope"), -1);

    static const struct {
        const char *k;
        uint32_t t;
    } types[] = {{"u8", GGUF_VT_UINT8},      {"i8", GGUF_VT_INT8},       {"u16", GGUF_VT_UINT16},
                 {"i16", GGUF_VT_INT16},     {"u32", GGUF_VT_UINT32},    {"i32", GGUF_VT_INT32},
                 {"u64", GGUF_VT_UINT64},    {"i64", GGUF_VT_INT64},     {"f32", GGUF_VT_FLOAT32},
                 {"f64", GGUF_VT_FLOAT64},   {"bool_t", GGUF_VT_BOOL},   {"str", GGUF_VT_STRING},
                 {"a.u8", GGUF_VT_ARRAY}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        ck_assert_uint_eq(gguf_kv_type(f, gguf_find_key(f, types[i].k)), types[i].t);

    uint64_t u;
    int64_t s;
    ck_assert_int_eq(gguf_get_uint(f, "u8", &u, &err), 0);
    ck_assert_uint_eq(u, 250);
    ck_assert_int_eq(gguf_get_int(f, "i8", &s, &err), 0);
    ck_assert_int_eq(s, -100);
    ck_assert_int_eq(gguf_get_uint(f, "u16", &u, &err), 0);
    ck_assert_uint_eq(u, 65000);
    ck_assert_int_eq(gguf_get_int(f, "i16", &s, &err), 0);
    ck_assert_int_eq(s, -32000);
    ck_assert_int_eq(gguf_get_uint(f, "u32", &u, &err), 0);
    ck_assert_uint_eq(u, 4000000000u);
    ck_assert_int_eq(gguf_get_int(f, "u32", &s, &err), 0);
    ck_assert_int_eq(s, 4000000000);
    ck_assert_int_eq(gguf_get_int(f, "i32", &s, &err), 0);
    ck_assert_int_eq(s, -5);
    ck_assert_int_eq(gguf_get_uint(f, "u64", &u, &err), 0);
    ck_assert_uint_eq(u, UINT64_MAX);
    ck_assert_int_eq(gguf_get_int(f, "i64", &s, &err), 0);
    ck_assert_int_eq(s, INT64_MIN);
    float fl;
    ck_assert_int_eq(gguf_get_f32(f, "f32", &fl, &err), 0);
    ck_assert(fl == 1e-5f);
    ck_assert_int_eq(gguf_get_f32(f, "f64", &fl, &err), 0); /* FLOAT64 narrows */
    ck_assert(fl == (float)3.141592653589793);
    int bv = -1;
    ck_assert_int_eq(gguf_get_bool(f, "bool_t", &bv, &err), 0);
    ck_assert_int_eq(bv, 1);
    ck_assert_int_eq(gguf_get_bool(f, "bool_f", &bv, &err), 0);
    ck_assert_int_eq(bv, 0);
    const char *sv;
    size_t len;
    ck_assert_int_eq(gguf_get_str(f, "str", &sv, &len, &err), 0);
    ck_assert_uint_eq(len, strlen("tab\there\n\xc3\xa9\x01\xff"));
    ck_assert(memcmp(sv, "tab\there\n\xc3\xa9\x01\xff", len) == 0);
    ck_assert_int_eq(gguf_get_str(f, "str_empty", &sv, &len, &err), 0);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(gguf_get_str(f, "replaced", &sv, &len, &err), 0);
    ck_assert_uint_eq(len, 3);
    ck_assert(memcmp(sv, "new", 3) == 0);

    for (int i = 0; i < n_arrs; i++) {
        uint32_t et;
        uint64_t n;
        ck_assert_int_eq(gguf_get_arr(f, arrs[i].key, &et, &n, &err), 0);
        ck_assert_uint_eq(et, arrs[i].t);
        ck_assert_uint_eq(n, arrs[i].n);
        int64_t ki = gguf_find_key(f, arrs[i].key);
        ck_assert_uint_eq(gguf_kv_arr_n(f, ki), arrs[i].n);
        ck_assert_uint_eq(gguf_kv_arr_type(f, ki), arrs[i].t);
        const void *d = gguf_arr_data(f, arrs[i].key);
        ck_assert_ptr_nonnull(d);
        if (n)
            ck_assert_msg(memcmp(d, arrs[i].p, (size_t)n * arrs[i].esz) == 0, "%s differs",
                          arrs[i].key);
        ck_assert_ptr_null(gguf_arr_str(f, arrs[i].key, 0, &len));
    }

    uint32_t et;
    uint64_t n;
    ck_assert_int_eq(gguf_get_arr(f, "a.str", &et, &n, &err), 0);
    ck_assert_uint_eq(et, GGUF_VT_STRING);
    ck_assert_uint_eq(n, 5);
    ck_assert_ptr_null(gguf_arr_data(f, "a.str"));
    for (uint64_t j = 0; j < 5; j++) {
        const char *e = gguf_arr_str(f, "a.str", j, &len);
        ck_assert_ptr_nonnull(e);
        ck_assert_uint_eq(len, lens[j]);
        ck_assert(memcmp(e, strs[j], len) == 0);
    }
    ck_assert_ptr_null(gguf_arr_str(f, "a.str", 5, &len));
    ck_assert_ptr_nonnull(gguf_arr_str(f, "a.str_nt", 1, &len));
    ck_assert_uint_eq(len, 2);
    ck_assert_int_eq(gguf_get_arr(f, "a.str_empty", &et, &n, &err), 0);
    ck_assert_uint_eq(et, GGUF_VT_STRING);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_null(gguf_arr_str(f, "a.str_empty", 0, &len));
    ck_assert_ptr_null(gguf_arr_str(f, "u32", 0, &len));
    ck_assert_ptr_null(gguf_arr_data(f, "u32"));
    ck_assert_ptr_null(gguf_arr_data(f, "missing"));
    ck_assert_uint_eq(gguf_kv_arr_n(f, gguf_find_key(f, "u32")), 0);

    gguf_close(f);
    unlink(path);
}
END_TEST

START_TEST(test_getter_errors)
{
    gguf_writer *w = gguf_writer_create();
    gguf_set_i32(w, "neg", -5);
    gguf_set_u64(w, "big", UINT64_MAX);
    gguf_set_u32(w, "u32", 3);
    gguf_set_u8(w, "u8", 1);
    gguf_set_str(w, "s", "x");
    const uint32_t a[] = {1, 2};
    gguf_set_arr(w, "arr", GGUF_VT_UINT32, a, 2);
    char path[512];
    tpath(path, sizeof path, "getters");
    gpt2_error err = {0};
    ck_assert_int_eq(gguf_writer_write(w, path, 0, NULL, NULL, &err), 0);
    gguf_writer_free(w);
    gguf_file *f = gguf_open(path, &err);
    ck_assert_msg(f != NULL, "%s", err.msg);

    uint64_t u = 77;
    int64_t s;
    float fl;
    int bv;
    const char *sv;
    size_t len;
    uint32_t et;
    uint64_t n;
    memset(&err, 0, sizeof err);
    ck_assert_int_lt(gguf_get_uint(f, "neg", &u, &err), 0);
    ck_assert_uint_eq(u, 77); /* untouched on failure */
    ASSERT_HAS(err.msg, "'neg'");
    ASSERT_HAS(err.msg, "non-negative");
    ASSERT_HAS(err.msg, path);
    ck_assert_int_lt(gguf_get_int(f, "big", &s, &err), 0);
    ASSERT_HAS(err.msg, "'big'");
    ck_assert_int_lt(gguf_get_str(f, "u32", &sv, &len, &err), 0);
    ASSERT_HAS(err.msg, "key 'u32': expected STRING, found UINT32");
    ck_assert_int_lt(gguf_get_uint(f, "missing.key", &u, &err), 0);
    ASSERT_HAS(err.msg, "'missing.key'");
    ASSERT_HAS(err.msg, "missing");
    ck_assert_int_lt(gguf_get_uint(f, "s", &u, &err), 0);
    ASSERT_HAS(err.msg, "found STRING");
    ck_assert_int_lt(gguf_get_f32(f, "u32", &fl, &err), 0);
    ASSERT_HAS(err.msg, "expected FLOAT32");
    ck_assert_int_lt(gguf_get_bool(f, "u8", &bv, &err), 0);
    ASSERT_HAS(err.msg, "expected BOOL, found UINT8");
    ck_assert_int_lt(gguf_get_arr(f, "s", &et, &n, &err), 0);
    ASSERT_HAS(err.msg, "expected ARRAY, found STRING");
    ck_assert_int_lt(gguf_get_uint(f, "arr", &u, &err), 0);
    ASSERT_HAS(err.msg, "ARRAY of UINT32");
    ck_assert_int_lt(gguf_get_uint(f, "s", &u, NULL), 0); /* err may be NULL */
    ck_assert_int_eq(gguf_get_uint(f, "u8", &u, NULL), 0);
    gguf_close(f);
    unlink(path);
}
END_TEST

/* ---- tensors round trip --------------------------------------------------- */

typedef struct {
    const uint8_t *src;
    int calls;
} fill_ctx;

static int fill_copy(void *buf, size_t n, void *user, gpt2_error *err)
{
    fill_ctx *c = user;
    c->calls++;
    memcpy(buf, c->src, n);
    return 0;
}

typedef struct {
    int calls;
    int64_t last_done, total;
    char names[8][32];
} prog_ctx;

static void on_progress(int64_t done, int64_t total, const char *name, void *user)
{
    prog_ctx *p = user;
    if (p->calls < 8)
        snprintf(p->names[p->calls], sizeof p->names[0], "%s", name);
    p->calls++;
    p->last_done = done;
    p->total = total;
}

static const uint32_t alignments[] = {32, 64, 8, 256};

START_TEST(test_tensor_roundtrip)
{
    const uint32_t align = alignments[_i];
    const struct {
        const char *name;
        uint32_t type;
        int n_dims;
        uint64_t ne[4];
        int use_fill;
    } specs[] = {
        {"f32_1d", GGML_T_F32, 1, {5}, 0},
        {"f16_2d", GGML_T_F16, 2, {3, 7}, 0},
        {"q8_3d", GGML_T_Q8_0, 3, {64, 2, 3}, 0},
        {"f32_4d", GGML_T_F32, 4, {2, 3, 4, 5}, 1},
        {"q8_4d", GGML_T_Q8_0, 4, {32, 1, 2, 2}, 1},
    };
    enum { NT = 5 };
    uint8_t *src[NT];
    size_t nb[NT];
    fill_ctx fc[NT] = {{0}};
    gguf_writer *w = gguf_writer_create();
    if (align != GGUF_DEFAULT_ALIGNMENT)
        ck_assert_int_eq(gguf_set_u32(w, "general.alignment", align), 0);
    ck_assert_int_eq(gguf_set_str(w, "general.architecture", "gpt2"), 0);
    for (int i = 0; i < NT; i++) {
        uint64_t n_el = 1;
        for (int d = 0; d < specs[i].n_dims; d++)
            n_el *= specs[i].ne[d];
        nb[i] = ggml_row_bytes(specs[i].type, specs[i].ne[0]) * (size_t)(n_el / specs[i].ne[0]);
        src[i] = malloc(nb[i]);
        fill_bytes(src[i], nb[i], (uint32_t)i + 1);
        int rc;
        if (specs[i].use_fill) {
            fc[i].src = src[i];
            rc = gguf_add_tensor_fill(w, specs[i].name, specs[i].type, specs[i].n_dims,
                                      specs[i].ne, fill_copy, &fc[i]);
        } else {
            rc = gguf_add_tensor(w, specs[i].name, specs[i].type, specs[i].n_dims, specs[i].ne,
                                 src[i]);
        }
        ck_assert_int_eq(rc, 0);
    }
    char path[512];
    tpath(path, sizeof path, "tensors");
    gpt2_error err = {0};
    prog_ctx pc = {0};
    ck_assert_msg(gguf_writer_write(w, path, 1, on_progress, &pc, &err) == 0, "%s", err.msg);
    gguf_writer_free(w);
    ck_assert_int_eq(pc.calls, NT);
    ck_assert_int_eq(pc.last_done, NT);
    ck_assert_int_eq(pc.total, NT);
    for (int i = 0; i < NT; i++) {
        ck_assert_str_eq(pc.names[i], specs[i].name);
        ck_assert_int_eq(fc[i].calls, specs[i].use_fill ? 1 : 0); /* produced once */
    }
    ck_assert_int_eq(count_tmp(path), 0);

    gguf_file *f = gguf_open(path, &err);
    ck_assert_msg(f != NULL, "%s", err.msg);
    ck_assert_uint_eq(gguf_alignment(f), align);
    ck_assert_int_eq(gguf_n_tensors(f), NT);
    uint64_t expect_off = 0;
    for (int i = 0; i < NT; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        ck_assert_ptr_nonnull(t);
        ck_assert_str_eq(t->name, specs[i].name);
        ck_assert_uint_eq(t->type, specs[i].type);
        ck_assert_int_eq(t->n_dims, specs[i].n_dims);
        uint64_t n_el = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) {
            uint64_t want = d < specs[i].n_dims ? specs[i].ne[d] : 1;
            ck_assert_uint_eq(t->ne[d], want);
            n_el *= want;
        }
        ck_assert_uint_eq(t->n_elements, n_el);
        ck_assert_uint_eq(t->n_bytes, nb[i]);
        ck_assert_uint_eq(t->offset % align, 0);
        ck_assert_uint_eq((uintptr_t)t->data % align, 0); /* mapping is page-aligned */
        /* back to back, each padded: what llama.cpp's loader insists on */
        ck_assert_uint_eq(t->offset, expect_off);
        expect_off += (nb[i] + align - 1) / align * align;
        ck_assert_msg(memcmp(t->data, src[i], nb[i]) == 0, "tensor %s data differs",
                      specs[i].name);
        ck_assert_ptr_eq(gguf_find_tensor(f, specs[i].name), t);
    }
    ck_assert_ptr_null(gguf_tensor_at(f, NT));
    ck_assert_ptr_null(gguf_tensor_at(f, -1));
    /* the data region starts aligned and the file ends with the last padding */
    size_t data_start = gguf_file_size(f) - (size_t)expect_off;
    ck_assert_uint_eq(data_start % align, 0);

    uint32_t et;
    uint64_t n;
    ck_assert_int_eq(gguf_get_arr(f, GGUF_KEY_CRC32, &et, &n, &err), 0);
    ck_assert_uint_eq(et, GGUF_VT_UINT32);
    ck_assert_uint_eq(n, NT);
    const uint8_t *crcs = gguf_arr_data(f, GGUF_KEY_CRC32);
    for (int i = 0; i < NT; i++) {
        uint32_t c;
        memcpy(&c, crcs + 4 * i, 4);
        ck_assert_uint_eq(c, zcrc(src[i], nb[i]));
        ck_assert_uint_eq(c, gguf_crc32(gguf_tensor_at(f, i)->data, nb[i]));
    }
    gguf_close(f);
    unlink(path);
    for (int i = 0; i < NT; i++)
        free(src[i]);
}
END_TEST

START_TEST(test_no_crc_key_without_crc)
{
    gguf_writer *w = gguf_writer_create();
    const float x[4] = {1, 2, 3, 4};
    const uint64_t ne[1] = {4};
    ck_assert_int_eq(gguf_add_tensor(w, "x", GGML_T_F32, 1, ne, x), 0);
    char path[512];
    tpath(path, sizeof path, "nocrc");
    gpt2_error err = {0};
    ck_assert_int_eq(gguf_writer_write(w, path, 0, NULL, NULL, &err), 0);
    gguf_writer_free(w);
    gguf_file *f = gguf_open(path, &err);
    ck_assert_msg(f != NULL, "%s", err.msg);
    ck_assert_int_eq(gguf_find_key(f, GGUF_KEY_CRC32), -1);
    ck_assert_int_eq(gguf_n_kv(f), 0);
    ck_assert(memcmp(gguf_find_tensor(f, "x")->data, x, sizeof x) == 0);
    gguf_close(f);
    unlink(path);
}
END_TEST

/* ---- exact bytes ---------------------------------------------------------- */

/* One UINT32 kv and one 2-element F32 tensor, laid out by hand. */
START_TEST(test_exact_bytes)
{
    static const uint8_t expect[128] = {
        'G', 'G', 'U', 'F',          /* magic */
        3, 0, 0, 0,                  /* version */
        1, 0, 0, 0, 0, 0, 0, 0,      /* n_tensors */
        1, 0, 0, 0, 0, 0, 0, 0,      /* n_kv */
        1, 0, 0, 0, 0, 0, 0, 0, 'a', /* key "a" */
        4, 0, 0, 0,                  /* UINT32 */
        7, 0, 0, 0,                  /* 7 */
        1, 0, 0, 0, 0, 0, 0, 0, 't', /* name "t" (offset 41) */
        1, 0, 0, 0,                  /* n_dims */
        2, 0, 0, 0, 0, 0, 0, 0,      /* ne[0] */
        0, 0, 0, 0,                  /* F32 */
        0, 0, 0, 0, 0, 0, 0, 0,      /* offset 0; ends at 74 */
        /* 74..95: zero padding to the 32-byte aligned data region */
        [96] = 0, 0, 0x80, 0x3f,     /* 1.0f */
        0, 0, 0, 0x40,               /* 2.0f */
        /* 104..127: zero padding after the last tensor */
    };
    gguf_writer *w = gguf_writer_create();
    const float x[2] = {1.0f, 2.0f};
    const uint64_t ne[1] = {2};
    ck_assert_int_eq(gguf_set_u32(w, "a", 7), 0);
    ck_assert_int_eq(gguf_add_tensor(w, "t", GGML_T_F32, 1, ne, x), 0);
    char path[512];
    tpath(path, sizeof path, "exact");
    gpt2_error err = {0};
    ck_assert_int_eq(gguf_writer_write(w, path, 0, NULL, NULL, &err), 0);
    gguf_writer_free(w);
    size_t n;
    uint8_t *got = read_file(path, &n);
    ck_assert_uint_eq(n, sizeof expect);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == expect[i], "byte %zu: got 0x%02x, expected 0x%02x", i, got[i],
                      expect[i]);
    free(got);
    unlink(path);
}
END_TEST

/* With the CRC key: compared with bytes built by the test's own encoder. */
START_TEST(test_exact_bytes_crc)
{
    const uint16_t h[3] = {0x3c00, 0x4000, 0xbc00};
    const uint64_t ne[2] = {3, 1};
    gguf_writer *w = gguf_writer_create();
    ck_assert_int_eq(gguf_set_u32(w, "general.alignment", 16), 0);
    ck_assert_int_eq(gguf_add_tensor(w, "h", GGML_T_F16, 2, ne, h), 0);
    char path[512];
    tpath(path, sizeof path, "exactcrc");
    gpt2_error err = {0};
    ck_assert_int_eq(gguf_writer_write(w, path, 1, NULL, NULL, &err), 0);
    gguf_writer_free(w);

    raw r = {0};
    r_header(&r, 3, 1, 2);
    r_str(&r, "general.alignment");
    r_u32(&r, GGUF_VT_UINT32);
    r_u32(&r, 16);
    r_str(&r, GGUF_KEY_CRC32);
    r_u32(&r, GGUF_VT_ARRAY);
    r_u32(&r, GGUF_VT_UINT32);
    r_u64(&r, 1);
    r_u32(&r, zcrc(h, sizeof h));
    r_ti(&r, "h", 2, ne, GGML_T_F16, 0);
    r_pad(&r, 16);
    r_bytes(&r, h, sizeof h);
    r_pad(&r, 16);

    size_t n;
    uint8_t *got = read_file(path, &n);
    ck_assert_uint_eq(n, r.n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == r.p[i], "byte %zu: got 0x%02x, expected 0x%02x", i, got[i],
                      r.p[i]);
    free(got);
    free(r.p);
    unlink(path);
}
END_TEST

/* ---- corrupt files -------------------------------------------------------- */

/* A writer-made file whose last tensor ends exactly at the end of the file,
 * so every strict prefix is invalid. */
static char *make_small_file(char *path, size_t cap)
{
    gguf_writer *w = gguf_writer_create();
    gguf_set_str(w, "general.architecture", "gpt2");
    gguf_set_u32(w, "gpt2.context_length", 16);
    gguf_set_f32(w, "gpt2.eps", 1e-5f);
    const char *toks[] = {"!", "\"", "ab", ""};
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 4);
    const int32_t ids[] = {1, 2, 3};
    gguf_set_arr(w, "ids", GGUF_VT_INT32, ids, 3);
    static uint8_t q[34 * 2], hf[2 * 3 * 2];
    static float v[8];
    fill_bytes(q, sizeof q, 9);
    fill_bytes(hf, sizeof hf, 10);
    const uint64_t ne_q[2] = {32, 2}, ne_h[2] = {3, 2}, ne_v[1] = {8};
    ck_assert_int_eq(gguf_add_tensor(w, "blk.0.q", GGML_T_Q8_0, 2, ne_q, q), 0);
    ck_assert_int_eq(gguf_add_tensor(w, "blk.0.h", GGML_T_F16, 2, ne_h, hf), 0);
    ck_assert_int_eq(gguf_add_tensor(w, "out", GGML_T_F32, 1, ne_v, v), 0); /* 32 bytes */
    tpath(path, cap, "small");
    gpt2_error err = {0};
    ck_assert_msg(gguf_writer_write(w, path, 1, NULL, NULL, &err) == 0, "%s", err.msg);
    gguf_writer_free(w);
    return path;
}

START_TEST(test_truncated_every_prefix)
{
    char src[512], path[512];
    make_small_file(src, sizeof src);
    size_t n;
    uint8_t *bytes = read_file(src, &n);
    gpt2_error err = {0};
    gguf_file *f = gguf_open(src, &err);
    ck_assert_msg(f != NULL, "%s", err.msg);
    gguf_close(f);
    tpath(path, sizeof path, "prefix");
    for (size_t cut = 0; cut < n; cut++) {
        write_file(path, bytes, cut);
        memset(&err, 0, sizeof err);
        f = gguf_open(path, &err);
        ck_assert_msg(f == NULL, "prefix of %zu/%zu bytes opened", cut, n);
        ck_assert_msg(err.code < 0 && err.msg[0], "prefix %zu: no error message", cut);
        if (getenv("GPT2C_TEST_VERBOSE") && cut % 23 == 0)
            fprintf(stderr, "[cut %zu/%zu] %s\n", cut, n, err.msg);
        ASSERT_HAS(err.msg, path);
    }
    /* a cut inside the tensor data names the tensor and the file size */
    write_file(path, bytes, n - 1);
    f = gguf_open(path, &err);
    ck_assert_ptr_null(f);
    ASSERT_HAS(err.msg, "tensor 'out'");
    ASSERT_HAS(err.msg, "extends past end of file");
    unlink(path);
    unlink(src);
    free(bytes);
}
END_TEST

/* Single-byte mutations of the header and tables: never a crash; a file that
 * still opens must be safe to walk completely. */
START_TEST(test_mutations_never_crash)
{
    char src[512], path[512];
    make_small_file(src, sizeof src);
    size_t n;
    uint8_t *bytes = read_file(src, &n);
    gpt2_error err = {0};
    gguf_file *f;
    tpath(path, sizeof path, "mut");
    uint8_t *m = malloc(n);
    uint32_t x = 12345;
    int opened = 0;
    const uint8_t vals[] = {0x00, 0xff, 0x01, 0x80, 0x7f, 0x20};
    for (int it = 0; it < 3000; it++) {
        memcpy(m, bytes, n);
        x = x * 1664525u + 1013904223u;
        size_t pos = (x >> 8) % (n > 320 ? 320 : n); /* header and tables */
        m[pos] = (it & 1) ? (uint8_t)(x >> 24) : vals[(x >> 4) % sizeof vals];
        write_file(path, m, n);
        f = gguf_open(path, &err);
        if (!f) {
            ck_assert(err.msg[0] != 0);
            continue;
        }
        opened++;
        for (int64_t i = 0; i < gguf_n_kv(f); i++) {
            const char *k = gguf_kv_key(f, i);
            uint32_t et;
            uint64_t cnt;
            if (gguf_get_arr(f, k, &et, &cnt, NULL) == 0 && et == GGUF_VT_STRING) {
                for (uint64_t j = 0; j < cnt; j++) {
                    size_t len;
                    const char *s = gguf_arr_str(f, k, j, &len);
                    volatile char sink = len ? s[len - 1] : 0;
                    (void)sink;
                }
            }
        }
        for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
            const gguf_tensor *t = gguf_tensor_at(f, i);
            volatile uint8_t sink = ((const uint8_t *)t->data)[t->n_bytes - 1];
            (void)sink;
        }
        gguf_close(f);
    }
    if (getenv("GPT2C_TEST_VERBOSE"))
        fprintf(stderr, "mutations: %d of 3000 still opened\n", opened);
    free(m);
    free(bytes);
    unlink(path);
    unlink(src);
}
END_TEST

START_TEST(test_bad_magic)
{
    raw r = {0};
    raw_spec s = {.ts = two_ok, .nt = 2, .data_bytes = 64};
    build(&r, &s);
    memcpy(r.p, "\x7f" "ELF", 4);
    expect_fail(r.p, r.n, "magic", "bad magic", "expected GGUF");
    expect_fail(r.p, 2, "magic2", "too small", NULL);
    expect_fail(r.p, 0, "empty", "empty", NULL);
    free(r.p);
}
END_TEST

START_TEST(test_bad_version)
{
    const uint32_t versions[] = {1, 2, 4, 0x03000000u};
    const char *needles[] = {"version 1", "version 2", "version 4", "big-endian"};
    for (int i = 0; i < 4; i++) {
        raw_spec s = {.version = versions[i], .ts = two_ok, .nt = 2, .data_bytes = 64};
        expect_fail_spec(&s, "version", needles[i], "expected 3");
    }
}
END_TEST

START_TEST(test_offset_out_of_bounds)
{
    ti_spec ts[2] = {two_ok[0], two_ok[1]};
    ts[1].offset = 4096;
    raw_spec s = {.ts = ts, .nt = 2, .data_bytes = 64};
    expect_fail_spec(&s, "oob", "tensor 'b'", "extends past end of file");
    ts[1].offset = UINT64_MAX - 31; /* aligned, and offset + size wraps */
    expect_fail_spec(&s, "oobwrap", "tensor 'b'", "past end of file");
    ts[1].offset = 32;
    s.data_bytes = 63; /* last byte missing */
    expect_fail_spec(&s, "short", "tensor 'b'", "extends past end of file");
}
END_TEST

START_TEST(test_unaligned_offset)
{
    ti_spec ts[2] = {two_ok[0], two_ok[1]};
    ts[1].offset = 36;
    raw_spec s = {.ts = ts, .nt = 2, .data_bytes = 128};
    expect_fail_spec(&s, "unaligned", "tensor 'b'", "not aligned");
}
END_TEST

START_TEST(test_overlap)
{
    ti_spec ts[2] = {{"a", 1, {16}, GGML_T_F32, 0}, {"b", 1, {8}, GGML_T_F32, 32}};
    raw_spec s = {.ts = ts, .nt = 2, .data_bytes = 128};
    expect_fail_spec(&s, "overlap", "'a'", "'b'");
    expect_fail_spec(&s, "overlap2", "overlap", NULL);
    ts[1].offset = 0; /* identical ranges, listed in either order */
    expect_fail_spec(&s, "overlap3", "overlap", NULL);
}
END_TEST

START_TEST(test_bad_tensor_type)
{
    ti_spec ts[2] = {two_ok[0], two_ok[1]};
    ts[1].type = 2; /* Q4_0: a real ggml type we do not read */
    raw_spec s = {.ts = ts, .nt = 2, .data_bytes = 64};
    ck_assert_int_eq(expect_fail_spec(&s, "type2", "tensor 'b'", "ggml type 2"),
                     GPT2_ERR_UNSUPPORTED);
    ts[1].type = 1000;
    expect_fail_spec(&s, "type1000", "tensor 'b'", "type 1000");
    ts[1] = (ti_spec){"q", 1, {33}, GGML_T_Q8_0, 32};
    expect_fail_spec(&s, "q8ragged", "tensor 'q'", "block size");
}
END_TEST

START_TEST(test_bad_dims)
{
    ti_spec ts[2] = {two_ok[0], two_ok[1]};
    raw_spec s = {.ts = ts, .nt = 2, .data_bytes = 64};
    ts[1].n_dims = 0;
    expect_fail_spec(&s, "ndims0", "tensor 'b'", "n_dims is 0");
    ts[1] = (ti_spec){"b", 5, {2, 2, 2, 1, 1}, GGML_T_F32, 32};
    expect_fail_spec(&s, "ndims5", "tensor 'b'", "n_dims is 5");
    ts[1] = (ti_spec){"b", 2, {8, 0}, GGML_T_F32, 32};
    expect_fail_spec(&s, "ne0", "tensor 'b'", "ne[1] is 0");
    ts[1] = (ti_spec){"b", 3, {1ull << 32, 1ull << 32, 4}, GGML_T_F32, 32};
    expect_fail_spec(&s, "neovf", "tensor 'b'", "overflow");
}
END_TEST

START_TEST(test_duplicates)
{
    raw_spec s = {.ts = two_ok, .nt = 2, .data_bytes = 64, .dup_key = 1};
    expect_fail_spec(&s, "dupkey", "'general.architecture'", "duplicate key");
    ti_spec ts[2] = {two_ok[0], two_ok[1]};
    ts[1].name = "a";
    raw_spec s2 = {.ts = ts, .nt = 2, .data_bytes = 64};
    expect_fail_spec(&s2, "dupname", "tensor 'a'", "duplicate tensor name");
}
END_TEST

START_TEST(test_bad_alignment)
{
    raw_spec s = {.ts = two_ok, .nt = 2, .data_bytes = 64, .align_kind = 1, .align_val = 48};
    expect_fail_spec(&s, "align48", "general.alignment", "power of two, found 48");
    s.align_val = 0;
    expect_fail_spec(&s, "align0", "general.alignment", "power of two, found 0");
    s.align_kind = 2;
    s.align_val = 32;
    expect_fail_spec(&s, "align64", "general.alignment", "expected UINT32, found UINT64");
    /* a valid custom alignment is honoured by the reader */
    ti_spec ts[2] = {two_ok[0], {"b", 1, {8}, GGML_T_F32, 32}};
    raw_spec ok = {.ts = ts, .nt = 2, .data_bytes = 96, .align_kind = 1, .align_val = 64};
    expect_fail_spec(&ok, "align64unaligned", "tensor 'b'", "multiple of 64");
}
END_TEST

/* Header fields that claim far more than the file holds are refused before
 * anything is sized from them. Without ASan (which reserves huge address
 * space) an address-space limit of 1 GiB above what the process uses turns an
 * attempted giant allocation into a NOMEM that the status checks would catch. */
START_TEST(test_absurd_counts)
{
    struct rlimit old;
    tu_limit_memory(1ull << 30, &old);
    raw r = {0};
    r_header(&r, 3, 1ull << 62, 0);
    r_zeros(&r, 64);
    ck_assert_int_eq(expect_fail(r.p, r.n, "ntensors", "n_tensors = 4611686018427387904", NULL),
                     GPT2_ERR_FORMAT);
    r.n = 0;
    r_header(&r, 3, 0, 1ull << 62);
    r_zeros(&r, 64);
    ck_assert_int_eq(expect_fail(r.p, r.n, "nkv", "n_kv", NULL), GPT2_ERR_FORMAT);

    r.n = 0; /* key length 2^63 */
    r_header(&r, 3, 0, 1);
    r_u64(&r, 1ull << 63);
    r_zeros(&r, 16);
    ck_assert_int_eq(expect_fail(r.p, r.n, "keylen", "key #0", "9223372036854775808 bytes"),
                     GPT2_ERR_FORMAT);

    r.n = 0; /* string value length 2^63 */
    r_header(&r, 3, 0, 1);
    r_str(&r, "k");
    r_u32(&r, GGUF_VT_STRING);
    r_u64(&r, 1ull << 63);
    r_zeros(&r, 16);
    ck_assert_int_eq(expect_fail(r.p, r.n, "strlen", "key 'k'", "9223372036854775808 bytes"),
                     GPT2_ERR_FORMAT);

    const struct {
        uint32_t et;
        uint64_t n;
    } arrs[] = {{GGUF_VT_UINT8, 1ull << 50}, {GGUF_VT_UINT64, 1ull << 61},
                {GGUF_VT_STRING, 1ull << 40}, {GGUF_VT_STRING, 1ull << 32},
                {GGUF_VT_STRING, UINT64_MAX}};
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) {
        r.n = 0;
        r_header(&r, 3, 0, 1);
        r_str(&r, "arr");
        r_u32(&r, GGUF_VT_ARRAY);
        r_u32(&r, arrs[i].et);
        r_u64(&r, arrs[i].n);
        r_zeros(&r, 64);
        ck_assert_int_eq(expect_fail(r.p, r.n, "arrn", "key 'arr'", "array of"), GPT2_ERR_FORMAT);
    }

    r.n = 0; /* tensor name length 2^63 */
    r_header(&r, 3, 1, 0);
    r_u64(&r, 1ull << 63);
    r_zeros(&r, 40);
    ck_assert_int_eq(expect_fail(r.p, r.n, "namelen", "tensor #0", "9223372036854775808 bytes"),
                     GPT2_ERR_FORMAT);
    free(r.p);
    tu_unlimit_memory(&old);
}
END_TEST

/* A model whose gpt2.block_count claims 2^24 blocks (12 tensors each) but
 * whose table holds only the 4 tensors outside the blocks: refused from the
 * tensor count before anything is sized from the claim (the per-layer table
 * alone would be gigabytes: under the address-space cap, "out of memory").
 * Dimensions whose product fits 64 bits but not the file are refused by the
 * reader. */
START_TEST(test_absurd_model_claims)
{
    struct rlimit old;
    tu_limit_memory(1ull << 30, &old);
    raw r = {0};
    r_header(&r, 3, 4, 5);
    r_str(&r, "general.architecture");
    r_u32(&r, GGUF_VT_STRING);
    r_str(&r, "gpt2");
    const char *keys[] = {"gpt2.block_count", "gpt2.embedding_length",
                          "gpt2.attention.head_count", "gpt2.context_length"};
    const uint32_t vals[] = {1u << 24, 4, 1, 4};
    for (int i = 0; i < 4; i++) {
        r_str(&r, keys[i]);
        r_u32(&r, GGUF_VT_UINT32);
        r_u32(&r, vals[i]);
    }
    const ti_spec ts0[4] = {{"token_embd.weight", 2, {4, 8}, GGML_T_F32, 0},
                            {"position_embd.weight", 2, {4, 4}, GGML_T_F32, 128},
                            {"output_norm.weight", 1, {4}, GGML_T_F32, 192},
                            {"output_norm.bias", 1, {4}, GGML_T_F32, 224}};
    for (int i = 0; i < 4; i++)
        r_ti(&r, ts0[i].name, ts0[i].n_dims, ts0[i].ne, ts0[i].type, ts0[i].offset);
    r_pad(&r, 32);
    r_zeros(&r, 256);
    char path[512];
    tpath(path, sizeof path, "blocks");
    write_file(path, r.p, r.n);
    free(r.p);
    gpt2_error err = {0};
    gpt2_model *m = gpt2_model_load(path, NULL, &err);
    unlink(path);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(err.code, GPT2_ERR_FORMAT);
    ASSERT_HAS(err.msg, path);
    ASSERT_HAS(err.msg, "key 'gpt2.block_count': 16777216 blocks need 201326592 tensors, but "
                        "the file has 4");

    ti_spec ts[2] = {two_ok[0], {"b", 2, {1ull << 20, 1ull << 20}, GGML_T_F32, 32}};
    raw_spec sp = {.ts = ts, .nt = 2, .data_bytes = 64};
    expect_fail_spec(&sp, "dims4t", "tensor 'b'", "extends past end of file");
    tu_unlimit_memory(&old);
}
END_TEST

/* gguf_open_mem reads the same bytes the same way, naming the name it is
 * given, and leaves the caller's buffer alone. */
START_TEST(test_open_mem)
{
    raw r = {0};
    raw_spec ok = {.ts = two_ok, .nt = 2, .data_bytes = 64};
    build(&r, &ok);
    gpt2_error err = {0};
    gguf_file *f = gguf_open_mem(r.p, r.n, "mem.gguf", &err);
    ck_assert_msg(f != NULL, "%s", err.msg);
    ck_assert_str_eq(gguf_path(f), "mem.gguf");
    ck_assert_int_eq(gguf_n_tensors(f), 2);
    const gguf_tensor *b = gguf_find_tensor(f, "b");
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_eq(b->data, r.p + r.n - 32); /* into the caller's bytes */
    gguf_close(f);
    free(r.p);

    ti_spec ts[2] = {two_ok[0], two_ok[1]};
    ts[1].offset = 4096;
    raw_spec bad = {.ts = ts, .nt = 2, .data_bytes = 64};
    r = (raw){0};
    build(&r, &bad);
    ck_assert_ptr_null(gguf_open_mem(r.p, r.n, "mem.gguf", &err));
    ck_assert_int_eq(err.code, GPT2_ERR_FORMAT);
    ASSERT_HAS(err.msg, "mem.gguf: tensor 'b'");
    ASSERT_HAS(err.msg, "extends past end of file");
    ck_assert_ptr_null(gguf_open_mem(r.p, 0, "mem.gguf", &err));
    ASSERT_HAS(err.msg, "mem.gguf: file is empty");
    ck_assert_ptr_null(gguf_open_mem(r.p, 3, NULL, &err));
    ASSERT_HAS(err.msg, "(memory): file is 3 bytes");
    free(r.p);
}
END_TEST

START_TEST(test_bad_values)
{
    raw r = {0};
    r_header(&r, 3, 0, 1); /* unknown value type */
    r_str(&r, "k");
    r_u32(&r, 13);
    r_zeros(&r, 16);
    expect_fail(r.p, r.n, "vt13", "key 'k'", "unknown value type 13");

    r.n = 0; /* nested array */
    r_header(&r, 3, 0, 1);
    r_str(&r, "nest");
    r_u32(&r, GGUF_VT_ARRAY);
    r_u32(&r, GGUF_VT_ARRAY);
    r_u64(&r, 1);
    r_u32(&r, GGUF_VT_UINT8);
    r_u64(&r, 1);
    r_u8(&r, 0);
    expect_fail(r.p, r.n, "nested", "key 'nest'", "nested");

    r.n = 0; /* unknown array element type */
    r_header(&r, 3, 0, 1);
    r_str(&r, "arr");
    r_u32(&r, GGUF_VT_ARRAY);
    r_u32(&r, 77);
    r_u64(&r, 0);
    expect_fail(r.p, r.n, "elem77", "key 'arr'", "element type 77");

    r.n = 0; /* key with an embedded NUL could never be looked up */
    r_header(&r, 3, 0, 1);
    r_strn(&r, "a\0b", 3);
    r_u32(&r, GGUF_VT_UINT8);
    r_u8(&r, 0);
    expect_fail(r.p, r.n, "nulkey", "key #0", "NUL");

    r.n = 0; /* a string array whose third element runs off the end */
    r_header(&r, 3, 0, 1);
    r_str(&r, "tokenizer.ggml.tokens");
    r_u32(&r, GGUF_VT_ARRAY);
    r_u32(&r, GGUF_VT_STRING);
    r_u64(&r, 3);
    r_str(&r, "a");
    r_str(&r, "b");
    r_u64(&r, 100);
    r_bytes(&r, "cc", 2);
    expect_fail(r.p, r.n, "strarr", "key 'tokenizer.ggml.tokens'", "array element 2");
    free(r.p);
}
END_TEST

START_TEST(test_open_errors)
{
    gpt2_error err = {0};
    char path[512];
    tpath(path, sizeof path, "nonexistent");
    ck_assert_ptr_null(gguf_open(path, &err));
    ck_assert_int_eq(err.code, GPT2_ERR_IO);
    ASSERT_HAS(err.msg, path);
    ck_assert_ptr_null(gguf_open(test_dir(), &err)); /* a directory */
    ASSERT_HAS(err.msg, "not a regular file");
    ck_assert_ptr_null(gguf_open(NULL, NULL));
}
END_TEST

/* ---- writer argument checks and failures -------------------------------- */

START_TEST(test_writer_rejects)
{
    gguf_writer *w = gguf_writer_create();
    const float x[64] = {0};
    const uint64_t ne[5] = {32, 2, 1, 1, 1}, ne0[2] = {32, 0}, ne33[1] = {33};
    ck_assert_int_eq(gguf_add_tensor(w, "t", 2, 1, ne, x), GPT2_ERR_INVALID);
    ck_assert_int_eq(gguf_add_tensor(w, "t", GGML_T_F32, 0, ne, x), GPT2_ERR_INVALID);
    ck_assert_int_eq(gguf_add_tensor(w, "t", GGML_T_F32, 5, ne, x), GPT2_ERR_INVALID);
    ck_assert_int_eq(gguf_add_tensor(w, "t", GGML_T_F32, 2, ne0, x), GPT2_ERR_INVALID);
    ck_assert_int_eq(gguf_add_tensor(w, "t", GGML_T_Q8_0, 1, ne33, x), GPT2_ERR_INVALID);
    ck_assert_int_eq(gguf_add_tensor(w, "t", GGML_T_F32, 1, ne, NULL), GPT2_ERR_INVALID);
    ck_assert_int_eq(gguf_add_tensor_fill(w, "t", GGML_T_F32, 1, ne, NULL, NULL),
                     GPT2_ERR_INVALID);
    ck_assert_int_eq(gguf_add_tensor(w, "", GGML_T_F32, 1, ne, x), GPT2_ERR_INVALID);
    char longname[80];
    memset(longname, 'n', 64);
    longname[64] = 0; /* llama.cpp refuses names of 64 bytes or more */
    ck_assert_int_eq(gguf_add_tensor(w, longname, GGML_T_F32, 1, ne, x), GPT2_ERR_INVALID);
    longname[63] = 0;
    ck_assert_int_eq(gguf_add_tensor(w, longname, GGML_T_F32, 1, ne, x), 0);
    ck_assert_int_eq(gguf_add_tensor(w, "t", GGML_T_F32, 2, ne, x), 0);
    ck_assert_int_eq(gguf_add_tensor(w, "t", GGML_T_F32, 1, ne, x), GPT2_ERR_INVALID); /* dup */
    ck_assert_int_eq(gguf_set_u32(w, "general.alignment", 48), GPT2_ERR_INVALID);
    ck_assert_int_eq(gguf_set_u32(w, "general.alignment", 0), GPT2_ERR_INVALID);
    ck_assert_int_eq(gguf_set_u64(w, "general.alignment", 64), GPT2_ERR_INVALID);
    ck_assert_int_eq(gguf_set_arr(w, "a", GGUF_VT_STRING, x, 1), GPT2_ERR_INVALID);
    ck_assert_int_eq(gguf_set_arr(w, "a", GGUF_VT_ARRAY, x, 1), GPT2_ERR_INVALID);
    ck_assert_int_eq(gguf_set_arr(w, "a", 99, x, 1), GPT2_ERR_INVALID);
    ck_assert_int_eq(gguf_set_arr(w, "a", GGUF_VT_UINT8, NULL, 1), GPT2_ERR_INVALID);
    ck_assert_int_eq(gguf_set_str(w, "a", NULL), GPT2_ERR_INVALID);
    ck_assert_int_eq(gguf_set_u8(w, NULL, 1), GPT2_ERR_INVALID);
    gguf_writer_free(w);
    gguf_writer_free(NULL);
}
END_TEST

static int fill_fail(void *buf, size_t n, void *user, gpt2_error *err)
{
    int *calls = user;
    (*calls)++;
    if (*calls == 1) /* the first tensor is fine; the second fails */
        return memset(buf, 0, n), 0;
    return gpt2_seterr(err, GPT2_ERR_IO, "safetensors shard truncated");
}

static int fill_fail_silent(void *buf, size_t n, void *user, gpt2_error *err)
{
    return GPT2_ERR_NOMEM;
}

static gguf_writer *two_tensor_writer(gguf_fill_fn fill, void *user)
{
    gguf_writer *w = gguf_writer_create();
    const uint64_t ne[1] = {64};
    gguf_set_str(w, "general.architecture", "gpt2");
    ck_assert_int_eq(gguf_add_tensor_fill(w, "first", GGML_T_F32, 1, ne, fill, user), 0);
    ck_assert_int_eq(gguf_add_tensor_fill(w, "second", GGML_T_F32, 1, ne, fill, user), 0);
    return w;
}

START_TEST(test_writer_fill_error)
{
    char path[512];
    tpath(path, sizeof path, "fillerr");
    int calls = 0;
    prog_ctx pc = {0};
    gguf_writer *w = two_tensor_writer(fill_fail, &calls);
    gpt2_error err = {0};
    ck_assert_int_eq(gguf_writer_write(w, path, 1, on_progress, &pc, &err), GPT2_ERR_IO);
    ASSERT_HAS(err.msg, path);
    ASSERT_HAS(err.msg, "'second'");
    ASSERT_HAS(err.msg, "safetensors shard truncated");
    ck_assert_int_eq(pc.calls, 1);
    ck_assert(!file_exists(path));
    ck_assert_int_eq(count_tmp(path), 0);
    gguf_writer_free(w);

    /* an existing file is left exactly as it was */
    write_file(path, "previous", 8);
    w = two_tensor_writer(fill_fail_silent, NULL);
    ck_assert_int_eq(gguf_writer_write(w, path, 1, NULL, NULL, &err), GPT2_ERR_NOMEM);
    ASSERT_HAS(err.msg, path);
    ASSERT_HAS(err.msg, "'first'");
    gguf_writer_free(w);
    size_t n;
    uint8_t *got = read_file(path, &n);
    ck_assert_uint_eq(n, 8);
    ck_assert(memcmp(got, "previous", 8) == 0);
    free(got);
    ck_assert_int_eq(count_tmp(path), 0);
    unlink(path);
}
END_TEST

START_TEST(test_writer_bad_directory)
{
    char file[512], path[600];
    tpath(file, sizeof file, "notadir");
    write_file(file, "x", 1);
    snprintf(path, sizeof path, "%s/model.gguf", file); /* parent is a regular file */
    gguf_writer *w = gguf_writer_create();
    gguf_set_u32(w, "k", 1);
    gpt2_error err = {0};
    ck_assert_int_eq(gguf_writer_write(w, path, 1, NULL, NULL, &err), GPT2_ERR_IO);
    ASSERT_HAS(err.msg, path);
    unlink(file);

    snprintf(path, sizeof path, "%s/no_such_dir_%ld/model.gguf", test_dir(), (long)getpid());
    ck_assert_int_eq(gguf_writer_write(w, path, 1, NULL, NULL, &err), GPT2_ERR_IO);
    ASSERT_HAS(err.msg, path);

    /* read-only directory with an existing target (root ignores the mode) */
    if (geteuid() != 0) {
        char dir[512];
        tpath(dir, sizeof dir, "rodir");
        ck_assert_int_eq(mkdir(dir, 0755), 0);
        snprintf(path, sizeof path, "%s/model.gguf", dir);
        write_file(path, "old", 3);
        ck_assert_int_eq(chmod(dir, 0555), 0);
        ck_assert_int_eq(gguf_writer_write(w, path, 1, NULL, NULL, &err), GPT2_ERR_IO);
        ASSERT_HAS(err.msg, path);
        size_t n;
        uint8_t *got = read_file(path, &n);
        ck_assert(n == 3 && memcmp(got, "old", 3) == 0);
        free(got);
        ck_assert_int_eq(count_tmp(path), 0);
        chmod(dir, 0755);
        unlink(path);
        rmdir(dir);
    }
    gguf_writer_free(w);
}
END_TEST

/* A write that fails part-way (EFBIG from a file-size limit stands in for a
 * full disk): error naming the path, old file intact, no temporary left. */
START_TEST(test_writer_short_write)
{
    char path[512];
    tpath(path, sizeof path, "efbig");
    write_file(path, "keep me", 7);
    static float big[1 << 16];
    const uint64_t ne[1] = {1 << 16};
    gguf_writer *w = gguf_writer_create();
    ck_assert_int_eq(gguf_add_tensor(w, "big", GGML_T_F32, 1, ne, big), 0);

    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 64 * 1024;
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    gpt2_error err = {0};
    int rc = gguf_writer_write(w, path, 1, NULL, NULL, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_DFL);

    ck_assert_int_eq(rc, GPT2_ERR_IO);
    ASSERT_HAS(err.msg, path);
    ASSERT_HAS(err.msg, strerror(EFBIG));
    size_t n;
    uint8_t *got = read_file(path, &n);
    ck_assert(n == 7 && memcmp(got, "keep me", 7) == 0);
    free(got);
    ck_assert_int_eq(count_tmp(path), 0);

    /* and with room again the same writer succeeds and replaces the file */
    ck_assert_msg(gguf_writer_write(w, path, 1, NULL, NULL, &err) == 0, "%s", err.msg);
    gguf_file *f = gguf_open(path, &err);
    ck_assert_msg(f != NULL, "%s", err.msg);
    ck_assert_uint_eq(gguf_find_tensor(f, "big")->n_bytes, sizeof big);
    gguf_close(f);
    gguf_writer_free(w);
    unlink(path);
}
END_TEST

static Suite *gguf_suite(void)
{
    Suite *s = suite_create("gguf");
    TCase *tc = tcase_create("roundtrip");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_names_and_sizes);
    tcase_add_test(tc, test_read_handmade);
    tcase_add_test(tc, test_metadata_roundtrip);
    tcase_add_test(tc, test_getter_errors);
    tcase_add_loop_test(tc, test_tensor_roundtrip, 0,
                        (int)(sizeof alignments / sizeof alignments[0]));
    tcase_add_test(tc, test_no_crc_key_without_crc);
    tcase_add_test(tc, test_exact_bytes);
    tcase_add_test(tc, test_exact_bytes_crc);
    suite_add_tcase(s, tc);

    tc = tcase_create("corrupt");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_truncated_every_prefix);
    tcase_add_test(tc, test_mutations_never_crash);
    tcase_add_test(tc, test_bad_magic);
    tcase_add_test(tc, test_bad_version);
    tcase_add_test(tc, test_offset_out_of_bounds);
    tcase_add_test(tc, test_unaligned_offset);
    tcase_add_test(tc, test_overlap);
    tcase_add_test(tc, test_bad_tensor_type);
    tcase_add_test(tc, test_bad_dims);
    tcase_add_test(tc, test_duplicates);
    tcase_add_test(tc, test_bad_alignment);
    tcase_add_test(tc, test_absurd_counts);
    tcase_add_test(tc, test_absurd_model_claims);
    tcase_add_test(tc, test_open_mem);
    tcase_add_test(tc, test_bad_values);
    tcase_add_test(tc, test_open_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("writer");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_writer_rejects);
    tcase_add_test(tc, test_writer_fill_error);
    tcase_add_test(tc, test_writer_bad_directory);
    tcase_add_test(tc, test_writer_short_write);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(gguf_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
