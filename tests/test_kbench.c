/* gpt2c-kbench without timing: the bytes and FLOPs of each op, the roofline
 * arithmetic, the case list and its filter, the JSON document written and read
 * back, and the roofline section of report.html (one point per kernel). The
 * speeds themselves are never asserted. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kbench.h"
#include "report.h"
#include "testutil.h"

static kb_shape mm(kb_wtype w, int M, int K, int N)
{
    kb_shape s = {KB_OP_MATMUL, w, M, K, N, 0, 0, 0};
    return s;
}

START_TEST(test_matmul_accounting)
{
    /* 124M qkv at decode: W + in + out + bias, fp32 */
    kb_shape s = mm(KB_W_F32, 1, 768, 2304);
    ck_assert_double_eq(kb_bytes(&s), 2304.0 * 768 * 4 + 768 * 4 + 2304 * 4 + 2304 * 4);
    ck_assert_double_eq(kb_flops(&s), 2.0 * 768 * 2304);
    /* f16 halves the weights; Q8_0 is 34 bytes per 32 weights, plus the
     * quantized activations */
    s.wtype = KB_W_F16;
    ck_assert_double_eq(kb_bytes(&s), 2304.0 * 768 * 2 + 768 * 4 + 2304 * 4 + 2304 * 4);
    s.wtype = KB_W_Q8_0;
    ck_assert_double_eq(kb_bytes(&s), 2304.0 * 24 * 34 + 768 * 4 + 2304 * 4 + 2304 * 4 + 24 * 34);
    ck_assert_double_eq(kb_flops(&s), 2.0 * 768 * 2304);
    /* prefill: 512 rows of the LM head at 1558M */
    kb_shape h = mm(KB_W_F32, 512, 1600, 50257);
    ck_assert_double_eq(kb_flops(&h), 2.0 * 512 * 1600 * 50257);
    ck_assert_double_eq(kb_bytes(&h), 50257.0 * 1600 * 4 + 512.0 * 1600 * 4 + 512.0 * 50257 * 4 + 50257.0 * 4);
}
END_TEST

START_TEST(test_other_accounting)
{
    /* attention: decode reads the whole cache once; a prefill row at position
     * p attends to p + 1 positions (12 heads x 64 = 768 channels) */
    kb_shape a = {KB_OP_ATTENTION, KB_W_F32, 1, 768, 0, 512, 12, 64};
    ck_assert_double_eq(kb_bytes(&a), 2.0 * 512 * 768 * 4 + 2.0 * 768 * 4);
    ck_assert_double_eq(kb_flops(&a), 4.0 * 768 * 512);
    a.M = 512;
    ck_assert_double_eq(kb_flops(&a), 4.0 * 768 * (512.0 * 513 / 2));
    ck_assert_double_eq(kb_bytes(&a), 2.0 * 512 * 768 * 4 + 2.0 * 512 * 768 * 4);
    /* three positions of a 4-position prompt continued: rows at 1, 2, 3 */
    a.M = 3;
    a.ctx = 4;
    ck_assert_double_eq(kb_flops(&a), 4.0 * 768 * (2 + 3 + 4));

    kb_shape ln = {KB_OP_LAYERNORM, KB_W_F32, 128, 0, 768, 0, 0, 0};
    ck_assert_double_eq(kb_bytes(&ln), (2.0 * 128 * 768 + 2 * 768) * 4);
    ck_assert_double_eq(kb_flops(&ln), 7.0 * 128 * 768);
    kb_shape g = {KB_OP_GELU, KB_W_F32, 128, 0, 3072, 0, 0, 0};
    ck_assert_double_eq(kb_bytes(&g), 2.0 * 128 * 3072 * 4);
    ck_assert_double_eq(kb_flops(&g), 9.0 * 128 * 3072);
    kb_shape ad = {KB_OP_ADD, KB_W_F32, 1, 0, 768, 0, 0, 0};
    ck_assert_double_eq(kb_bytes(&ad), 3.0 * 768 * 4);
    ck_assert_double_eq(kb_flops(&ad), 768);
    kb_shape q = {KB_OP_QUANTIZE, KB_W_F32, 2, 0, 768, 0, 0, 0};
    ck_assert_double_eq(kb_bytes(&q), 2.0 * 768 * 4 + 2.0 * 24 * 34);
    ck_assert_double_eq(kb_flops(&q), 3.0 * 2 * 768);
    kb_shape h = {KB_OP_TO_F16, KB_W_F32, 3, 0, 768, 0, 0, 0};
    ck_assert_double_eq(kb_bytes(&h), 3.0 * 768 * (4 + 2));
    ck_assert_double_eq(kb_flops(&h), 3.0 * 768);
    kb_shape am = {KB_OP_ARGMAX, KB_W_F32, 1, 0, 50257, 0, 0, 0};
    ck_assert_double_eq(kb_bytes(&am), 50257.0 * 4);
    ck_assert_double_eq(kb_flops(&am), 50257.0);
}
END_TEST

static kb_ceilings test_ceilings(void)
{
    kb_ceilings c;
    memset(&c, 0, sizeof c);
    c.max_threads = 2;
    c.bw_gb_s[1] = 10;
    c.bw_gb_s[2] = 20;
    c.fma_gflop_s[GPT2K_ISA_AVX2][0] = 50;
    c.fma_gflop_s[GPT2K_ISA_AVX2][1] = 100;
    c.fma_gflop_s[GPT2K_ISA_AVX512][0] = 80;
    c.fma_gflop_s[GPT2K_ISA_AVX512][1] = 160;
    c.int8_gop_s[0] = 300;
    c.int8_gop_s[1] = 600;
    snprintf(c.int8_kind, sizeof c.int8_kind, "vnni");
    c.bw_buffer_mib = 512;
    return c;
}

START_TEST(test_roofline)
{
    kb_ceilings c = test_ceilings();
    kb_roof r;
    /* decode GEMV: ~0.5 FLOP/B, under the 2-thread bandwidth roof */
    kb_shape s = mm(KB_W_F32, 1, 768, 2304);
    ck_assert_int_eq(kb_roofline(&c, &s, 2, &r), 0);
    ck_assert_double_eq(r.bw_gb_s, 20);
    ck_assert_double_eq(r.peak_gflop_s, 160); /* the best ISA's peak is the machine's */
    ck_assert_double_eq_tol(r.intensity, kb_flops(&s) / kb_bytes(&s), 1e-12);
    ck_assert_double_eq_tol(r.roof_gflop_s, r.intensity * 20, 1e-9);
    ck_assert_double_eq(r.ridge, 8);
    ck_assert_int_eq(r.compute_bound, 0);
    /* prefill: compute-bound, roof = peak; 1 thread uses the 1-thread figures */
    kb_shape p = mm(KB_W_F32, 512, 768, 2304);
    ck_assert_int_eq(kb_roofline(&c, &p, 1, &r), 0);
    ck_assert_double_eq(r.bw_gb_s, 10);
    ck_assert_double_eq(r.roof_gflop_s, 80);
    ck_assert_int_eq(r.compute_bound, 1);
    /* Q8_0 is held to the int8 peak */
    p.wtype = KB_W_Q8_0;
    ck_assert_int_eq(kb_roofline(&c, &p, 2, &r), 0);
    ck_assert_double_eq(r.peak_gflop_s, 600);
    /* more threads than measured: the most measured */
    ck_assert_int_eq(kb_roofline(&c, &s, 8, &r), 0);
    ck_assert_double_eq(r.bw_gb_s, 20);
    /* nothing measured: no roof */
    kb_ceilings none;
    memset(&none, 0, sizeof none);
    ck_assert_int_eq(kb_roofline(&none, &s, 1, &r), -1);

    kb_result res;
    memset(&res, 0, sizeof res);
    res.c.shape = s;
    res.threads = 2;
    res.median_ms = 1.0;
    kb_result_finish(&res, &c);
    ck_assert_double_eq_tol(res.gflop_s, kb_flops(&s) / 1e-3 / 1e9, 1e-9);
    ck_assert_double_eq_tol(res.gb_s, kb_bytes(&s) / 1e-3 / 1e9, 1e-9);
    ck_assert_double_eq_tol(res.pct_of_roof, 100 * res.gflop_s / res.roof.roof_gflop_s, 1e-9);
}
END_TEST

START_TEST(test_plan_and_filter)
{
    ck_assert(kb_filter_match(NULL, "anything"));
    ck_assert(kb_filter_match("gelu,attention", "attention/avx2/decode/ctx128"));
    ck_assert(!kb_filter_match("gelu,attention", "matmul/f32/native/avx2/124M/qkv/M1"));
    ck_assert(!kb_filter_match(",", "x"));

    kb_plan_opts o = {1, 0, NULL};
    int n = 0;
    kb_case *c = kb_plan(&o, &n);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_gt(n, 50);
    int blas = 0, scalar_prefill = 0, models[4] = {0};
    for (int i = 0; i < n; i++) {
        const kb_shape *s = &c[i].shape;
        if (s->op == KB_OP_MATMUL) {
            ck_assert_msg(s->K % 32 == 0, "%s: K %% 32 != 0", c[i].name);
            blas += c[i].gemm == KB_GEMM_OPENBLAS;
            scalar_prefill += c[i].isa == GPT2K_ISA_SCALAR && s->M >= 128;
            for (int m = 0; m < 4; m++)
                models[m] += !strcmp(c[i].model, kb_models[m].name);
            ck_assert(c[i].gemm != KB_GEMM_OPENBLAS || s->wtype == KB_W_F32);
        }
        for (int j = 0; j < i; j++)
            ck_assert_msg(strcmp(c[i].name, c[j].name) != 0, "duplicate case %s", c[i].name);
    }
    ck_assert_int_gt(blas, 0);
    ck_assert_int_eq(scalar_prefill, 0);
    for (int m = 0; m < 4; m++)
        ck_assert_int_gt(models[m], 0); /* every GPT-2 size, even in quick mode */
    free(c);

    o.filter = "matmul/f32/openblas/124M";
    c = kb_plan(&o, &n);
    ck_assert_int_eq(n, 10); /* 5 matrices x M = 1, 128 */
    for (int i = 0; i < n; i++)
        ck_assert(strstr(c[i].name, "openblas/124M"));
    free(c);
}
END_TEST

static kb_doc sample_doc(void)
{
    kb_doc d;
    memset(&d, 0, sizeof d);
    snprintf(d.created_utc, sizeof d.created_utc, "2026-11-28T00:00:00Z");
    snprintf(d.command, sizeof d.command, "gpt2c-kbench --quick --json \"x y\"");
    d.quick = 1;
    d.threads = 2;
    d.wall_s = 12.5;
    snprintf(d.cpu_model, sizeof d.cpu_model, "Test CPU <1>");
    snprintf(d.git_commit, sizeof d.git_commit, "0123456789abcdef");
    d.ceil = test_ceilings();
    d.n_results = 4;
    d.results = calloc(4, sizeof *d.results);
    kb_case *c;
    c = &d.results[0].c; /* native f32 GEMM */
    c->shape = mm(KB_W_F32, 128, 768, 2304);
    c->isa = GPT2K_ISA_AVX2;
    c->gemm = KB_GEMM_NATIVE;
    snprintf(c->model, sizeof c->model, "124M");
    snprintf(c->label, sizeof c->label, "qkv");
    c = &d.results[1].c; /* the same shape on OpenBLAS */
    *c = d.results[0].c;
    c->isa = -1;
    c->gemm = KB_GEMM_OPENBLAS;
    c = &d.results[2].c;
    c->shape = (kb_shape){KB_OP_ATTENTION, KB_W_F32, 1, 768, 0, 512, 12, 64};
    c->isa = GPT2K_ISA_SCALAR;
    snprintf(c->label, sizeof c->label, "decode");
    c = &d.results[3].c; /* not timed: figures null */
    c->shape = (kb_shape){KB_OP_GELU, KB_W_F32, 1, 0, 3072, 0, 0, 0};
    c->isa = GPT2K_ISA_AVX512;
    double ms[4] = {2.0, 1.6, 0.25, NAN};
    for (int i = 0; i < 4; i++) {
        kb_case_name(&d.results[i].c);
        d.results[i].threads = 2;
        d.results[i].reps = 5 + i;
        d.results[i].median_ms = ms[i];
        d.results[i].min_ms = ms[i] * 0.9;
        d.results[i].max_ms = ms[i] * 1.2;
        kb_result_finish(&d.results[i], &d.ceil);
    }
    kb_link_openblas(d.results, 4);
    return d;
}

START_TEST(test_json_round_trip)
{
    kb_doc d = sample_doc();
    ck_assert_double_eq_tol(d.results[0].vs_openblas, 0.8, 1e-12);
    ck_assert(isnan(d.results[1].vs_openblas));
    const char *path = tu_fmt("%s/kbench_rt.json", tu_data());
    char err[512] = "";
    ck_assert_msg(kb_json_write(&d, path, err, sizeof err) == 0, "%s", err);
    kb_doc r;
    ck_assert_msg(kb_json_read(path, &r, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(r.created_utc, d.created_utc);
    ck_assert_str_eq(r.command, d.command);
    ck_assert_str_eq(r.cpu_model, d.cpu_model);
    ck_assert_str_eq(r.git_commit, d.git_commit);
    ck_assert_int_eq(r.quick, 1);
    ck_assert_int_eq(r.threads, 2);
    ck_assert_double_eq(r.wall_s, 12.5);
    ck_assert_double_eq(r.ceil.bw_gb_s[1], 10);
    ck_assert_double_eq(r.ceil.bw_gb_s[2], 20);
    ck_assert_double_eq(r.ceil.fma_gflop_s[GPT2K_ISA_AVX512][1], 160);
    ck_assert_double_eq(r.ceil.int8_gop_s[1], 600);
    ck_assert_str_eq(r.ceil.int8_kind, "vnni");
    ck_assert_double_eq(r.ceil.bw_buffer_mib, 512);
    ck_assert_int_eq(r.n_results, 4);
    for (int i = 0; i < 4; i++) {
        const kb_result *a = &d.results[i], *b = &r.results[i];
        ck_assert_str_eq(b->c.name, a->c.name);
        ck_assert_int_eq(b->c.shape.op, a->c.shape.op);
        ck_assert_int_eq(b->c.isa, a->c.isa);
        ck_assert_int_eq(b->c.gemm, a->c.gemm);
        ck_assert_int_eq(b->c.shape.wtype, a->c.shape.wtype);
        ck_assert_str_eq(b->c.model, a->c.model);
        ck_assert_str_eq(b->c.label, a->c.label);
        ck_assert_int_eq(b->c.shape.M, a->c.shape.M);
        ck_assert_int_eq(b->c.shape.K, a->c.shape.K);
        ck_assert_int_eq(b->c.shape.N, a->c.shape.N);
        ck_assert_int_eq(b->c.shape.ctx, a->c.shape.op == KB_OP_ATTENTION ? a->c.shape.ctx : 0);
        ck_assert_int_eq(b->reps, a->reps);
        ck_assert_double_eq(b->bytes, a->bytes);
        ck_assert_double_eq(b->flops, a->flops);
        /* numbers to 15 significant digits (cJSON's printing), NaN as null and back */
        const double x[] = {a->median_ms, a->gb_s, a->gflop_s, a->pct_of_roof, a->vs_openblas};
        const double y[] = {b->median_ms, b->gb_s, b->gflop_s, b->pct_of_roof, b->vs_openblas};
        for (int k = 0; k < 5; k++)
            ck_assert_msg(isnan(x[k]) ? isnan(y[k]) : fabs(x[k] - y[k]) <= 1e-14 * fabs(x[k]),
                          "result %d field %d: %.17g vs %.17g", i, k, x[k], y[k]);
        ck_assert_int_eq(b->roof.compute_bound, a->roof.compute_bound);
    }
    kb_doc_free(&r);

    /* the schema accepts the document (the same $defs/kbench as report.json's) */
    tu_python_ref("validate_report.py", path);

    /* errors name the file and what was expected */
    const char *bad = tu_fmt("%s/kbench_bad.json", tu_data());
    FILE *f = fopen(bad, "w");
    fputs("{\"schema\": \"gpt2c-bench-report\", \"schema_version\": 1}", f);
    fclose(f);
    ck_assert_int_eq(kb_json_read(bad, &r, err, sizeof err), -1);
    ck_assert_msg(strstr(err, bad) && strstr(err, "schema"), "%s", err);
    cJSON *doc = NULL;
    ck_assert_int_eq(bench_kbench_load(bad, &doc, err, sizeof err), -1);
    ck_assert_msg(strstr(err, bad) && strstr(err, "gpt2c-kbench"), "%s", err);
    ck_assert_int_eq(bench_kbench_load(tu_fmt("%s/no-such.json", tu_data()), &doc, err, sizeof err), -1);
    free(d.results);
}
END_TEST

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

START_TEST(test_roofline_section)
{
    kb_doc d = sample_doc();
    const char *path = tu_fmt("%s/kbench_html.json", tu_data());
    char err[512] = "";
    ck_assert_msg(kb_json_write(&d, path, err, sizeof err) == 0, "%s", err);
    cJSON *kb = NULL;
    ck_assert_msg(bench_kbench_load(path, &kb, err, sizeof err) == 0, "%s", err);
    cJSON *report = cJSON_CreateObject();
    cJSON_AddItemToObject(report, "kbench", kb);
    bench_sb s = {0};
    bench_html_roofline(&s, report);
    ck_assert(!s.oom);
    /* one point per timed kernel (the untimed GELU has none), one chart */
    ck_assert_int_eq(count(s.p, "class=\"kbpt\""), 3);
    ck_assert_int_eq(count(s.p, "id=\"chart-roofline\""), 1);
    /* the roofs: two bandwidths, four fp32 peaks and two int8 */
    ck_assert_int_eq(count(s.p, "stroke=\"#dc2626\""), 2);
    ck_assert_int_eq(count(s.p, "stroke=\"#111827\""), 6);
    /* ours vs OpenBLAS: the native row with the OpenBLAS rate beside it */
    ck_assert(strstr(s.p, "data-k=\"kbench.results[0].vs_openblas\">0.8<"));
    ck_assert(strstr(s.p, "data-k=\"kbench.results[1].gflop_s\""));
    ck_assert(strstr(s.p, "Test CPU &lt;1&gt;"));
    bench_sb_free(&s);

    /* without kbench data: a note, no chart */
    cJSON_ReplaceItemInObject(report, "kbench", cJSON_CreateNull());
    memset(&s, 0, sizeof s);
    bench_html_roofline(&s, report);
    ck_assert_int_eq(count(s.p, "<svg"), 0);
    ck_assert(strstr(s.p, "data-k=\"kbench\""));
    bench_sb_free(&s);
    cJSON_Delete(report);
    free(d.results);
}
END_TEST

/* A whole file as a NUL-terminated string. */
static char *read_text(const char *path)
{
    size_t len;
    char *t = tu_read_file(path, &len);
    t = realloc(t, len + 1);
    ck_assert(t != NULL);
    t[len] = '\0';
    return t;
}

/* --compare: each result against the older one of the same name and thread
 * count; none without a match, a different thread count or an untimed case;
 * and the JSON carries the ratios and the older run only then. */
START_TEST(test_link_previous)
{
    kb_doc now = sample_doc(), old = sample_doc();
    old.results[0].median_ms = 3.0; /* now 2.0: 1.5x faster */
    old.results[1].threads = 4;     /* other thread count: no match */
    snprintf(old.results[2].c.name, sizeof old.results[2].c.name, "attention/renamed");
    ck_assert_int_eq(kb_link_previous(now.results, 4, old.results, 4), 1);
    ck_assert_double_eq_tol(now.results[0].vs_previous, 1.5, 1e-12);
    ck_assert(isnan(now.results[1].vs_previous));
    ck_assert(isnan(now.results[2].vs_previous));
    ck_assert(isnan(now.results[3].vs_previous)); /* untimed on both sides */
    char err[512] = "";
    const char *path = tu_fmt("%s/kbench_cmp.json", tu_data());
    ck_assert_msg(kb_json_write(&now, path, err, sizeof err) == 0, "%s", err);
    char *text = read_text(path);
    ck_assert_msg(strstr(text, "vs_previous") == NULL && strstr(text, "\"compare\"") == NULL,
                  "ratios written without --compare");
    free(text);
    snprintf(now.compare_path, sizeof now.compare_path, "old.json");
    snprintf(now.compare_git_commit, sizeof now.compare_git_commit, "abcdef0");
    now.compare_ceil = old.ceil;
    ck_assert_msg(kb_json_write(&now, path, err, sizeof err) == 0, "%s", err);
    text = read_text(path);
    ck_assert_msg(strstr(text, "\"vs_previous\":\t1.5") && strstr(text, "\"compare\""),
                  "the ratios or the older run are missing: %.400s", text);
    free(text);
    kb_doc_free(&now);
    kb_doc_free(&old);
}
END_TEST

static Suite *kbench_suite(void)
{
    Suite *s = suite_create("kbench");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_matmul_accounting);
    tcase_add_test(tc, test_other_accounting);
    tcase_add_test(tc, test_roofline);
    tcase_add_test(tc, test_plan_and_filter);
    tcase_add_test(tc, test_json_round_trip);
    tcase_add_test(tc, test_link_previous);
    tcase_add_test(tc, test_roofline_section);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(kbench_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
