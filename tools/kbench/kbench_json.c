/* The gpt2c-kbench JSON document (tools/kbench/README.md; its JSON Schema is
 * $defs/kbench of reports/report.schema.json, since gpt2c-bench carries the
 * same document in report.json): written by the tool, read back by the tests.
 * A figure that could not be measured is null, never 0. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kbench.h"

static cJSON *num_or_null(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }
static cJSON *int_or_null(int v) { return v > 0 ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }
static cJSON *str_or_null(const char *s) { return s && *s ? cJSON_CreateString(s) : cJSON_CreateNull(); }

static cJSON *ceilings_json(const kb_ceilings *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "bw_buffer_mib", num_or_null(c->bw_buffer_mib > 0 ? c->bw_buffer_mib : NAN));
    cJSON *bw = cJSON_AddArrayToObject(o, "read_bw_gb_s");
    for (int t = 1; t <= c->max_threads; t++) {
        if (!(c->bw_gb_s[t] > 0))
            continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "threads", t);
        cJSON_AddNumberToObject(e, "gb_s", c->bw_gb_s[t]);
        cJSON_AddItemToArray(bw, e);
    }
    cJSON *fp = cJSON_AddArrayToObject(o, "fp32_peak_gflop_s");
    for (int isa = 0; isa < GPT2K_ISA_COUNT; isa++)
        for (int k = 0; k < 2; k++) {
            if (!(c->fma_gflop_s[isa][k] > 0))
                continue;
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "isa", gpt2k_isa_name((gpt2k_isa)isa));
            cJSON_AddNumberToObject(e, "threads", k ? c->max_threads : 1);
            cJSON_AddNumberToObject(e, "gflop_s", c->fma_gflop_s[isa][k]);
            cJSON_AddItemToArray(fp, e);
        }
    cJSON_AddItemToObject(o, "pool_run_us", num_or_null(c->pool_run_us > 0 ? c->pool_run_us : NAN));
    cJSON *i8 = cJSON_AddArrayToObject(o, "int8_peak_gop_s");
    for (int k = 0; k < 2; k++) {
        if (!(c->int8_gop_s[k] > 0))
            continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "kind", c->int8_kind);
        cJSON_AddNumberToObject(e, "threads", k ? c->max_threads : 1);
        cJSON_AddNumberToObject(e, "gop_s", c->int8_gop_s[k]);
        cJSON_AddItemToArray(i8, e);
    }
    return o;
}

static cJSON *result_json(const kb_result *r, int with_previous)
{
    const kb_case *c = &r->c;
    const kb_shape *s = &c->shape;
    int is_mm = s->op == KB_OP_MATMUL, is_attn = s->op == KB_OP_ATTENTION;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", c->name);
    cJSON_AddStringToObject(o, "op", kb_op_name(s->op));
    cJSON_AddItemToObject(o, "isa", c->isa >= 0 ? cJSON_CreateString(gpt2k_isa_name((gpt2k_isa)c->isa))
                                                : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "gemm", str_or_null(kb_gemm_name(c->gemm)));
    cJSON_AddItemToObject(o, "wtype", is_mm || is_attn ? cJSON_CreateString(kb_wtype_name(s->wtype)) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "model", str_or_null(c->model));
    cJSON_AddItemToObject(o, "label", str_or_null(c->label));
    cJSON_AddItemToObject(o, "M", int_or_null(s->M));
    cJSON_AddItemToObject(o, "K", int_or_null(s->K));
    cJSON_AddItemToObject(o, "N", int_or_null(s->N));
    cJSON_AddItemToObject(o, "ctx", int_or_null(is_attn ? s->ctx : 0));
    cJSON_AddItemToObject(o, "heads", int_or_null(is_attn ? s->heads : 0));
    cJSON_AddItemToObject(o, "head_dim", int_or_null(is_attn ? s->head_dim : 0));
    cJSON_AddNumberToObject(o, "threads", r->threads);
    cJSON_AddNumberToObject(o, "reps", r->reps);
    cJSON_AddItemToObject(o, "median_ms", num_or_null(r->median_ms));
    cJSON_AddItemToObject(o, "min_ms", num_or_null(r->min_ms));
    cJSON_AddItemToObject(o, "max_ms", num_or_null(r->max_ms));
    cJSON_AddNumberToObject(o, "bytes", r->bytes);
    cJSON_AddNumberToObject(o, "flops", r->flops);
    cJSON_AddItemToObject(o, "gb_s", num_or_null(r->gb_s));
    cJSON_AddItemToObject(o, "gflop_s", num_or_null(r->gflop_s));
    int have_roof = r->roof.roof_gflop_s > 0;
    cJSON_AddItemToObject(o, "intensity", num_or_null(r->bytes > 0 ? r->flops / r->bytes : NAN));
    cJSON_AddItemToObject(o, "bound", have_roof ? cJSON_CreateString(r->roof.compute_bound ? "compute" : "memory")
                                                : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "roof_gflop_s", num_or_null(have_roof ? r->roof.roof_gflop_s : NAN));
    cJSON_AddItemToObject(o, "pct_of_roof", num_or_null(r->pct_of_roof));
    cJSON_AddItemToObject(o, "vs_openblas", num_or_null(r->vs_openblas));
    cJSON_AddItemToObject(o, "read_bytes", num_or_null(r->read_bytes > 0 ? r->read_bytes : NAN));
    cJSON_AddItemToObject(o, "read_median_ms", num_or_null(r->read_median_ms));
    cJSON_AddItemToObject(o, "read_gb_s", num_or_null(r->read_gb_s));
    cJSON_AddItemToObject(o, "vs_read", num_or_null(r->vs_read));
    if (with_previous)
        cJSON_AddItemToObject(o, "vs_previous", num_or_null(r->vs_previous));
    return o;
}

int kb_json_write(const kb_doc *d, const char *path, char *err, size_t errlen)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "schema", KB_SCHEMA);
    cJSON_AddNumberToObject(o, "schema_version", KB_SCHEMA_VERSION);
    cJSON_AddStringToObject(o, "created_utc", d->created_utc);
    cJSON_AddStringToObject(o, "command", d->command);
    cJSON_AddBoolToObject(o, "quick", d->quick);
    cJSON_AddNumberToObject(o, "threads", d->threads);
    cJSON_AddItemToObject(o, "wall_s", num_or_null(d->wall_s));
    cJSON_AddItemToObject(o, "cpu_model", str_or_null(d->cpu_model));
    cJSON_AddItemToObject(o, "git_commit", str_or_null(d->git_commit));
    cJSON_AddItemToObject(o, "openblas", str_or_null(d->openblas));
    cJSON_AddItemToObject(o, "ceilings", ceilings_json(&d->ceil));
    const int cmp = d->compare_path[0] != '\0';
    if (cmp) {
        cJSON *c = cJSON_AddObjectToObject(o, "compare");
        cJSON_AddStringToObject(c, "path", d->compare_path);
        cJSON_AddItemToObject(c, "created_utc", str_or_null(d->compare_created_utc));
        cJSON_AddItemToObject(c, "git_commit", str_or_null(d->compare_git_commit));
        cJSON_AddItemToObject(c, "ceilings", ceilings_json(&d->compare_ceil));
    }
    cJSON *rs = cJSON_AddArrayToObject(o, "results");
    for (int i = 0; i < d->n_results; i++)
        cJSON_AddItemToArray(rs, result_json(&d->results[i], cmp));
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text) {
        snprintf(err, errlen, "%s: out of memory printing the JSON", path);
        return -1;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    int ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0)
        ok = 0;
    free(text);
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: cannot write it: %s", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

/* ---- reading back ---- */

typedef struct rd {
    const char *path;
    char *err;
    size_t errlen;
    int failed;
} rd;

static void bad(rd *r, const char *where, const char *want)
{
    if (!r->failed)
        snprintf(r->err, r->errlen, "%s: %s: expected %s", r->path, where, want);
    r->failed = 1;
}

static const cJSON *get(rd *r, const cJSON *o, const char *key, const char *where)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        char w[160];
        snprintf(w, sizeof w, "%s.%s", where, key);
        bad(r, w, "the key to be present");
    }
    return v;
}

/* number or null (-> NAN) */
static double get_num(rd *r, const cJSON *o, const char *key, const char *where)
{
    const cJSON *v = get(r, o, key, where);
    if (cJSON_IsNumber(v))
        return v->valuedouble;
    if (v && !cJSON_IsNull(v)) {
        char w[160];
        snprintf(w, sizeof w, "%s.%s", where, key);
        bad(r, w, "a number or null");
    }
    return NAN;
}

/* number or null (-> NAN) where files written before the key existed lack it */
static double get_opt_num(rd *r, const cJSON *o, const char *key, const char *where)
{
    return cJSON_GetObjectItemCaseSensitive(o, key) ? get_num(r, o, key, where) : NAN;
}

static int get_int(rd *r, const cJSON *o, const char *key, const char *where)
{
    double v = get_num(r, o, key, where);
    return isfinite(v) ? (int)v : 0;
}

/* string or null (-> "") into buf */
static void get_str(rd *r, const cJSON *o, const char *key, const char *where, char *buf, size_t len)
{
    const cJSON *v = get(r, o, key, where);
    buf[0] = '\0';
    if (cJSON_IsString(v))
        snprintf(buf, len, "%s", v->valuestring);
    else if (v && !cJSON_IsNull(v)) {
        char w[160];
        snprintf(w, sizeof w, "%s.%s", where, key);
        bad(r, w, "a string or null");
    }
}

static void read_ceilings(rd *r, const cJSON *c, kb_ceilings *out, int threads)
{
    memset(out, 0, sizeof *out);
    out->max_threads = threads > KB_MAX_THREADS ? KB_MAX_THREADS : threads;
    if (!cJSON_IsObject(c)) {
        bad(r, "ceilings", "an object");
        return;
    }
    double mib = get_num(r, c, "bw_buffer_mib", "ceilings");
    out->bw_buffer_mib = isfinite(mib) ? mib : 0;
    const cJSON *e;
    const cJSON *bw = get(r, c, "read_bw_gb_s", "ceilings");
    cJSON_ArrayForEach(e, bw)
    {
        int t = get_int(r, e, "threads", "ceilings.read_bw_gb_s[]");
        if (t >= 1 && t <= KB_MAX_THREADS)
            out->bw_gb_s[t] = get_num(r, e, "gb_s", "ceilings.read_bw_gb_s[]");
        else
            bad(r, "ceilings.read_bw_gb_s[].threads", "1..256");
    }
    const cJSON *fp = get(r, c, "fp32_peak_gflop_s", "ceilings");
    cJSON_ArrayForEach(e, fp)
    {
        char isa[16];
        get_str(r, e, "isa", "ceilings.fp32_peak_gflop_s[]", isa, sizeof isa);
        int i = gpt2k_isa_parse(isa);
        int t = get_int(r, e, "threads", "ceilings.fp32_peak_gflop_s[]");
        if (i < 0 || !strcmp(isa, "auto"))
            bad(r, "ceilings.fp32_peak_gflop_s[].isa", "scalar, avx2 or avx512");
        else
            out->fma_gflop_s[i][t > 1] = get_num(r, e, "gflop_s", "ceilings.fp32_peak_gflop_s[]");
    }
    /* optional: files written before it was measured lack it */
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(c, "pool_run_us");
    out->pool_run_us = cJSON_IsNumber(pr) && pr->valuedouble > 0 ? pr->valuedouble : 0;
    const cJSON *i8 = get(r, c, "int8_peak_gop_s", "ceilings");
    cJSON_ArrayForEach(e, i8)
    {
        get_str(r, e, "kind", "ceilings.int8_peak_gop_s[]", out->int8_kind, sizeof out->int8_kind);
        int t = get_int(r, e, "threads", "ceilings.int8_peak_gop_s[]");
        out->int8_gop_s[t > 1] = get_num(r, e, "gop_s", "ceilings.int8_peak_gop_s[]");
    }
}

static void read_result(rd *r, const cJSON *o, kb_result *res)
{
    const char *W = "results[]";
    memset(res, 0, sizeof *res);
    kb_case *c = &res->c;
    char buf[32];
    get_str(r, o, "name", W, c->name, sizeof c->name);
    get_str(r, o, "op", W, buf, sizeof buf);
    int op = kb_op_parse(buf);
    if (op < 0)
        bad(r, "results[].op", "matmul, attention, layernorm, gelu, add, quantize or to_f16");
    c->shape.op = op < 0 ? KB_OP_MATMUL : (kb_op)op;
    get_str(r, o, "isa", W, buf, sizeof buf);
    c->isa = buf[0] ? gpt2k_isa_parse(buf) : -1;
    get_str(r, o, "gemm", W, buf, sizeof buf);
    int g = kb_gemm_parse(buf[0] ? buf : NULL);
    if (g < 0)
        bad(r, "results[].gemm", "native, openblas or null");
    c->gemm = g < 0 ? KB_GEMM_NONE : (kb_gemm)g;
    get_str(r, o, "wtype", W, buf, sizeof buf);
    int w = buf[0] ? kb_wtype_parse(buf) : KB_W_F32;
    if (w < 0)
        bad(r, "results[].wtype", "f32, f16, q8_0 or null");
    c->shape.wtype = w < 0 ? KB_W_F32 : (kb_wtype)w;
    get_str(r, o, "model", W, c->model, sizeof c->model);
    get_str(r, o, "label", W, c->label, sizeof c->label);
    c->shape.M = get_int(r, o, "M", W);
    c->shape.K = get_int(r, o, "K", W);
    c->shape.N = get_int(r, o, "N", W);
    c->shape.ctx = get_int(r, o, "ctx", W);
    c->shape.heads = get_int(r, o, "heads", W);
    c->shape.head_dim = get_int(r, o, "head_dim", W);
    res->threads = get_int(r, o, "threads", W);
    res->reps = get_int(r, o, "reps", W);
    res->median_ms = get_num(r, o, "median_ms", W);
    res->min_ms = get_num(r, o, "min_ms", W);
    res->max_ms = get_num(r, o, "max_ms", W);
    res->bytes = get_num(r, o, "bytes", W);
    res->flops = get_num(r, o, "flops", W);
    res->gb_s = get_num(r, o, "gb_s", W);
    res->gflop_s = get_num(r, o, "gflop_s", W);
    res->roof.intensity = get_num(r, o, "intensity", W);
    get_str(r, o, "bound", W, buf, sizeof buf);
    res->roof.compute_bound = !strcmp(buf, "compute");
    res->roof.roof_gflop_s = get_num(r, o, "roof_gflop_s", W);
    res->pct_of_roof = get_num(r, o, "pct_of_roof", W);
    res->vs_openblas = get_num(r, o, "vs_openblas", W);
    const double rb = get_opt_num(r, o, "read_bytes", W);
    res->read_bytes = isfinite(rb) ? rb : 0;
    res->read_median_ms = get_opt_num(r, o, "read_median_ms", W);
    res->read_gb_s = get_opt_num(r, o, "read_gb_s", W);
    res->vs_read = get_opt_num(r, o, "vs_read", W);
}

int kb_json_read(const char *path, kb_doc *d, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    rd r = {path, err, errlen, 0};
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open it: %s", path, strerror(errno));
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = n >= 0 ? malloc((size_t)n + 1) : NULL;
    size_t got = text ? fread(text, 1, (size_t)n, f) : 0;
    fclose(f);
    if (!text || got != (size_t)n) {
        free(text);
        snprintf(err, errlen, "%s: cannot read it", path);
        return -1;
    }
    text[n] = '\0';
    cJSON *o = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        snprintf(err, errlen, "%s: not a JSON object", path);
        return -1;
    }
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(o, "schema");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(o, "schema_version");
    if (!cJSON_IsString(schema) || strcmp(schema->valuestring, KB_SCHEMA) != 0)
        bad(&r, "schema", "\"" KB_SCHEMA "\" (a gpt2c-kbench --json file)");
    else if (!cJSON_IsNumber(ver) || ver->valuedouble != KB_SCHEMA_VERSION)
        bad(&r, "schema_version", "1");
    if (!r.failed) {
        get_str(&r, o, "created_utc", "(top)", d->created_utc, sizeof d->created_utc);
        get_str(&r, o, "command", "(top)", d->command, sizeof d->command);
        const cJSON *q = get(&r, o, "quick", "(top)");
        d->quick = cJSON_IsTrue(q);
        d->threads = get_int(&r, o, "threads", "(top)");
        d->wall_s = get_num(&r, o, "wall_s", "(top)");
        get_str(&r, o, "cpu_model", "(top)", d->cpu_model, sizeof d->cpu_model);
        get_str(&r, o, "git_commit", "(top)", d->git_commit, sizeof d->git_commit);
        get_str(&r, o, "openblas", "(top)", d->openblas, sizeof d->openblas);
        read_ceilings(&r, cJSON_GetObjectItemCaseSensitive(o, "ceilings"), &d->ceil, d->threads);
        const cJSON *rs = get(&r, o, "results", "(top)");
        if (!cJSON_IsArray(rs)) {
            bad(&r, "results", "an array");
        } else {
            int cnt = cJSON_GetArraySize(rs);
            d->results = calloc(cnt > 0 ? (size_t)cnt : 1, sizeof *d->results);
            if (!d->results) {
                bad(&r, "results", "memory to hold them");
            } else {
                const cJSON *e;
                cJSON_ArrayForEach(e, rs)
                read_result(&r, e, &d->results[d->n_results++]);
            }
        }
    }
    cJSON_Delete(o);
    if (r.failed) {
        kb_doc_free(d);
        return -1;
    }
    return 0;
}

void kb_doc_free(kb_doc *d)
{
    free(d->results);
    d->results = NULL;
    d->n_results = 0;
}
