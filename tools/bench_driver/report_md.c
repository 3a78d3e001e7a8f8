/* summary.md: the headline table, like the original benchmark's summary, with
 * one line saying which model on which machine; with --compare, the old value,
 * the change and whether it is beyond noise. Numbers here are for people
 * (thousands separators, a few decimals); report.html and report.json carry
 * every digit. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report.h"

#define DASH "\xe2\x80\x94"

/* Grouped integer part: 1397.4 -> "1,397". */
static void group_int(char *out, size_t len, double v)
{
    char digits[64];
    snprintf(digits, sizeof digits, "%.0f", fabs(v));
    size_t nd = strlen(digits), o = 0;
    if (v < 0 && o + 1 < len)
        out[o++] = '-';
    for (size_t i = 0; i < nd && o + 2 < len; i++) {
        if (i > 0 && (nd - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
}

/* For people: integers and values >= 100 as grouped integers, then 1, 2 or 3
 * significant decimals as the value gets smaller. */
static const char *human(double v, char *b, size_t len)
{
    double a = fabs(v);
    if (!isfinite(v))
        snprintf(b, len, DASH);
    else if (a >= 100 || v == floor(v))
        group_int(b, len, round(v) == 0 ? 0 : round(v));
    else if (a >= 10)
        snprintf(b, len, "%.1f", v);
    else if (a >= 1)
        snprintf(b, len, "%.2f", v);
    else if (a == 0)
        snprintf(b, len, "0");
    else
        snprintf(b, len, "%.2g", v);
    return b;
}

/* Markdown text: characters with a meaning in a table or inline are escaped. */
static void md_esc(bench_sb *s, const char *t)
{
    for (; t && *t; t++) {
        if (strchr("\\`*_[]<>|#", *t)) {
            char e[3] = {'\\', *t, 0};
            bench_sb_put(s, e);
        } else if (*t == '\n' || *t == '\r' || *t == '\t') {
            bench_sb_put(s, " ");
        } else {
            bench_sb_putn(s, t, 1);
        }
    }
}

static void model_machine_line(bench_sb *s, const cJSON *r)
{
    const cJSON *env = bench_get_obj(r, "environment");
    const cJSON *model = bench_get_obj(env, "model");
    const cJSON *settings = bench_get_obj(r, "settings");
    char b[64];
    double v;
    bench_sb_put(s, "**Model** ");
    const char *fn = bench_get_str(model, "file_name");
    if (!fn)
        fn = bench_get_str(settings, "model");
    md_esc(s, fn ? fn : "unknown");
    const char *dt = bench_get_str(model, "dtype");
    int hp = bench_get_num(model, "params", &v);
    if (dt || hp) {
        bench_sb_put(s, " (");
        if (dt)
            md_esc(s, dt);
        if (hp)
            bench_sb_printf(s, "%s%.1f M parameters", dt ? ", " : "", v / 1e6);
        bench_sb_put(s, ")");
    }
    bench_sb_put(s, " · **Machine** ");
    const char *cpu = bench_get_str(env, "cpu_model");
    md_esc(s, cpu ? cpu : "unknown CPU");
    if (bench_get_num(env, "cores_online", &v))
        bench_sb_printf(s, ", %s cores", human(v, b, sizeof b));
    if (bench_get_num(env, "memory_total_mb", &v))
        bench_sb_printf(s, ", %.1f GiB", v / 1024);
    const char *gpu = bench_get_str(bench_get_obj(env, "gpu"), "name");
    if (gpu) {
        bench_sb_put(s, ", GPU ");
        md_esc(s, gpu);
    }
    bench_sb_put(s, " · **Path** ");
    const char *backend = bench_get_str(settings, "backend");
    md_esc(s, backend ? backend : "cpu");
    const char *isa = bench_get_str(env, "isa"), *gemm = bench_get_str(env, "gemm");
    if (isa) {
        bench_sb_put(s, ", ");
        md_esc(s, isa);
    }
    if (gemm) {
        bench_sb_put(s, ", GEMM ");
        md_esc(s, gemm);
    }
    const char *kv = bench_get_str(env, "kv_type");
    if (kv) {
        bench_sb_put(s, ", KV cache ");
        md_esc(s, kv);
    }
    if (bench_get_num(env, "threads_used", &v))
        bench_sb_printf(s, ", %s threads", human(v, b, sizeof b));
    const char *commit = bench_get_str(env, "git_commit");
    if (commit) {
        char c12[13];
        snprintf(c12, sizeof c12, "%s", commit);
        bench_sb_put(s, " · **Commit** ");
        md_esc(s, c12);
        if (cJSON_IsTrue(bench_get(env, "git_dirty")))
            bench_sb_put(s, " (dirty)");
    }
    const char *created = bench_get_str(r, "created_utc");
    if (created) {
        bench_sb_put(s, " · ");
        md_esc(s, created);
    }
    bench_sb_put(s, "\n\n");
}

/* The value cell of a headline figure: number, unit and a little context. */
static void value_cell(bench_sb *s, const cJSON *r, const bench_headline_fig *f, double v)
{
    char b[64], b2[64], b3[64], b4[64];
    const cJSON *phases = bench_get_obj(r, "phases");
    if (!strcmp(f->key, "scaling_c4")) {
        bench_sb_printf(s, "%.2f\xc3\x97 one client", v);
        return;
    }
    bench_sb_put(s, human(v, b, sizeof b));
    if (*f->unit)
        bench_sb_printf(s, " %s", f->unit);
    if (!strcmp(f->key, "ttft_ms")) {
        double pt;
        if (bench_get_num(bench_get_obj(phases, "validation"), "prompt_tokens", &pt))
            bench_sb_printf(s, " (%s-token prompt)", human(pt, b2, sizeof b2));
    } else if (!strcmp(f->key, "decode_tok_s")) {
        /* the range of the median decode speed over the latency phase's prompts */
        const cJSON *rows = bench_get(bench_get_obj(phases, "latency"), "rows");
        if (!cJSON_IsArray(rows))
            rows = NULL;
        double lo = INFINITY, hi = -INFINITY, plo = INFINITY, phi = -INFINITY;
        const cJSON *row;
        cJSON_ArrayForEach(row, rows)
        {
            double d, p;
            if (bench_get_num(bench_get_obj(row, "decode_tok_s"), "p50", &d)) {
                lo = fmin(lo, d);
                hi = fmax(hi, d);
                if (bench_get_num(row, "prompt_tokens", &p)) {
                    plo = fmin(plo, p);
                    phi = fmax(phi, p);
                }
            }
        }
        if (hi > lo && isfinite(plo))
            bench_sb_printf(s, " (%s\xe2\x80\x93%s over prompts of %s\xe2\x80\x93%s tokens)",
                            human(lo, b2, sizeof b2), human(hi, b3, sizeof b3), human(plo, b4, sizeof b4),
                            human(phi, b, sizeof b));
    } else if (!strcmp(f->key, "leak_mb_per_hour")) {
        const char *verdict = bench_get_str(
            bench_get_obj(bench_get_obj(phases, "memory"), "leak"), "verdict");
        if (verdict) {
            bench_sb_put(s, " (");
            md_esc(s, verdict);
            bench_sb_put(s, ")");
        }
    } else if (!strcmp(f->key, "validation_failures") && v > 0) {
        bench_sb_put(s, " **FAILED**");
    }
}

static void compare_cells(bench_sb *s, const cJSON *row)
{
    char b[64];
    double o, ch, band;
    bench_sb_printf(s, " %s |", bench_get_num(row, "old", &o) ? human(o, b, sizeof b) : DASH);
    if (bench_get_num(row, "change_pct", &ch))
        bench_sb_printf(s, " %+.1f %% |", ch);
    else
        bench_sb_put(s, " " DASH " |");
    const cJSON *better = bench_get(row, "better");
    int beyond = cJSON_IsTrue(bench_get(row, "beyond_noise"));
    int have_band = bench_get_num(row, "noise_pct", &band);
    if (!cJSON_IsBool(better)) {
        double n;
        bench_sb_put(s, bench_get_num(row, "old", &o) && bench_get_num(row, "new", &n) ? " unchanged |"
                                                                                         : " not comparable |");
        return;
    }
    const char *word = cJSON_IsTrue(better) ? "better" : "worse";
    if (beyond)
        bench_sb_printf(s, " **%s**, beyond noise", word);
    else
        bench_sb_printf(s, " %s, within noise", word);
    if (have_band)
        bench_sb_printf(s, " (\xc2\xb1%.1f %%)", band);
    bench_sb_put(s, " |");
}

/* Decode against the memory-bandwidth limit, shortest and longest prompt. */
static void bw_line(bench_sb *s, const cJSON *latency)
{
    const cJSON *rows = bench_get(latency, "rows");
    const int n = cJSON_IsArray(rows) ? cJSON_GetArraySize(rows) : 0;
    double bw, first, last, p0, p1;
    if (n == 0 || !bench_get_num(latency, "read_bw_gb_s", &bw) ||
        !bench_get_num(cJSON_GetArrayItem(rows, 0), "decode_pct_of_bw_limit", &first) ||
        !bench_get_num(cJSON_GetArrayItem(rows, n - 1), "decode_pct_of_bw_limit", &last) ||
        !bench_get_num(cJSON_GetArrayItem(rows, 0), "prompt_tokens", &p0) ||
        !bench_get_num(cJSON_GetArrayItem(rows, n - 1), "prompt_tokens", &p1))
        return;
    bench_sb_printf(s, "\nDecode runs at %.0f %% of the memory-bandwidth limit after a %.0f-token prompt",
                    first, p0);
    if (n > 1)
        bench_sb_printf(s, ", %.0f %% after %.0f tokens", last, p1);
    const char *src = bench_get_str(latency, "read_bw_source");
    if (src && !strcmp(src, "device_peak"))
        bench_sb_printf(s, " (weights and KV cache read per token, at the device's DRAM peak of "
                           "%.0f GB/s, from its memory clock and bus width).\n",
                        bw);
    else {
        bench_sb_printf(s, " (weights and KV cache read per token, at the read bandwidth measured "
                           "just before and just after: median %.1f GB/s",
                        bw);
        /* the probes around one prompt length disagreed: say by how much,
         * since the ratios are only as firm as the bandwidth they divide by */
        const double spread = bench_max_bw_spread(rows);
        if (spread >= BENCH_BW_SPREAD_NOTED_PCT)
            bench_sb_printf(s, "; the bandwidth moved by up to %.0f %% between the probes around "
                               "one prompt length, so these ratios are loose",
                            spread);
        bench_sb_put(s, ").\n");
    }
    double peak, pf0, pf1;
    if (bench_get_num(latency, "compute_peak_gflop_s", &peak) &&
        bench_get_num(cJSON_GetArrayItem(rows, 0), "prefill_pct_of_compute_limit", &pf0) &&
        bench_get_num(cJSON_GetArrayItem(rows, n - 1), "prefill_pct_of_compute_limit", &pf1))
        bench_sb_printf(s, "Prefill runs at %.0f %% of the compute limit with a %.0f-token prompt, %.0f %% "
                           "with %.0f tokens (FLOP per token at the %.0f GFLOP/s peak gpt2c-kbench "
                           "measured).\n",
                        pf0, p0, pf1, p1, peak);
    /* where the first prompt length's decode step went (its profiled run) */
    const cJSON *prof = bench_get(cJSON_GetArrayItem(rows, 0), "op_profile");
    const cJSON *ops = bench_get(prof, "decode_ms_per_step");
    double step, mm, head, gbs, pct;
    if (bench_get_num(prof, "decode_step_ms", &step) && step > 0 &&
        bench_get_num(ops, "matmul", &mm) && bench_get_num(ops, "lm_head", &head)) {
        bench_sb_printf(s, "Its decode step (%.0f-token prompt): %.2f ms, of which the matmuls and "
                           "the LM head %.0f %%",
                        p0, step, 100 * (mm + head) / step);
        if (bench_get_num(prof, "decode_weights_gb_s", &gbs))
            bench_sb_printf(s, ", reading the weights at %.1f GB/s", gbs);
        if (bench_get_num(prof, "decode_weights_pct_of_read_bw", &pct))
            bench_sb_printf(s, " (%.0f %% of the read bandwidth)", pct);
        double v;
        const cJSON *op;
        bench_sb_put(s, "; the rest:");
        int first_op = 1;
        cJSON_ArrayForEach(op, ops)
        {
            if (!op->string || !strcmp(op->string, "matmul") || !strcmp(op->string, "lm_head") ||
                !bench_get_num(ops, op->string, &v) || 100 * v / step < 0.5)
                continue;
            bench_sb_printf(s, "%s %s %.1f %%", first_op ? "" : ",", op->string, 100 * v / step);
            first_op = 0;
        }
        bench_sb_put(s, first_op ? " none above 0.5 %.\n" : ".\n");
    }
}

/* The soak in a few lines: verdict and why, requests, growth. */
static void soak_lines(bench_sb *s, const cJSON *k)
{
    if (!cJSON_IsObject(k))
        return;
    const char *v = bench_get_str(k, "verdict");
    double d, req, cx, ck, mm, fl, sl, fd, lo, hi;
    char b[64], b2[64], b3[64];
    bench_sb_put(s, "\n## Soak: **");
    md_esc(s, v ? v : "?");
    bench_sb_put(s, "**");
    if (cJSON_IsFalse(bench_get(k, "complete")))
        bench_sb_put(s, " (interrupted)");
    bench_sb_put(s, "\n\n");
    const cJSON *reasons = bench_get(k, "reasons"), *e;
    cJSON_ArrayForEach(e, reasons)
    {
        if (!cJSON_IsString(e))
            continue;
        bench_sb_put(s, "- ");
        md_esc(s, e->valuestring);
        bench_sb_put(s, "\n");
    }
    bench_sb_printf(s, "%s%s s, %s requests (%s cancelled), %s checked against the request run alone: "
                       "%s mismatches, %s failures. ",
                    cJSON_GetArraySize(reasons) > 0 ? "\n" : "",
                    bench_get_num(k, "duration_s", &d) ? human(d, b, sizeof b) : DASH,
                    bench_get_num(k, "requests", &req) ? human(req, b2, sizeof b2) : DASH,
                    bench_get_num(k, "cancelled", &cx) ? human(cx, b3, sizeof b3) : DASH,
                    bench_get_num(k, "checked", &ck) ? human(ck, (char[64]){0}, 64) : DASH,
                    bench_get_num(k, "mismatches", &mm) ? human(mm, (char[64]){0}, 64) : DASH,
                    bench_get_num(k, "failures", &fl) ? human(fl, (char[64]){0}, 64) : DASH);
    const cJSON *ci = bench_get(k, "rss_ci95_mb_per_hour");
    if (bench_get_num(k, "rss_slope_mb_per_hour", &sl) && cJSON_GetArraySize(ci) == 2 &&
        cJSON_IsNumber(cJSON_GetArrayItem(ci, 0)) && cJSON_IsNumber(cJSON_GetArrayItem(ci, 1))) {
        lo = cJSON_GetArrayItem(ci, 0)->valuedouble;
        hi = cJSON_GetArrayItem(ci, 1)->valuedouble;
        bench_sb_printf(s, "RSS growth %.3g MiB/hour (95 %% interval %.3g to %.3g)", sl, lo, hi);
    } else {
        bench_sb_put(s, "RSS growth " DASH);
    }
    if (bench_get_num(k, "fd_growth", &fd))
        bench_sb_printf(s, ", open file descriptors %+.0f", fd);
    bench_sb_put(s, ".\n");
}

int bench_write_summary_md(const cJSON *report, const char *path, char *err, size_t errlen)
{
    if (!cJSON_IsObject(report))
        return bench_report_err(err, errlen, path, "no report to summarise (not a JSON object)");
    bench_sb sb = {0};
    bench_sb *s = &sb;
    const cJSON *h = bench_get_obj(report, "headline");
    const cJSON *cmp = bench_get_obj(report, "compare");
    bench_sb_put(s, "# gpt2c benchmark summary\n\n");
    model_machine_line(s, report);
    if (!cJSON_IsTrue(bench_get(report, "complete")))
        bench_sb_put(s, "> **Incomplete run**: the bench was interrupted or a phase aborted; missing figures show as " DASH ".\n\n");
    double nf;
    if (bench_get_num(h, "validation_failures", &nf) && nf > 0)
        bench_sb_printf(s, "> **%s validation check%s FAILED**: see report.html before trusting any figure.\n\n",
                        human(nf, (char[64]){0}, 64), nf == 1 ? "" : "s");

    if (cmp) {
        bench_sb_put(s, "| Figure | New | Old | Change | Verdict |\n|---|---:|---:|---:|---|\n");
    } else {
        bench_sb_put(s, "| Figure | Value |\n|---|---|\n");
    }
    for (int i = 0; i < bench_n_headline_figs; i++) {
        const bench_headline_fig *f = &bench_headline_figs[i];
        double v;
        bench_sb_printf(s, "| %s | ", f->label);
        if (bench_get_num(h, f->key, &v))
            value_cell(s, report, f, v);
        else
            bench_sb_put(s, DASH);
        bench_sb_put(s, " |");
        if (cmp) {
            const cJSON *row = bench_compare_row(cmp, f->key);
            if (row)
                compare_cells(s, row);
            else
                bench_sb_put(s, " " DASH " | " DASH " | " DASH " |");
        }
        bench_sb_put(s, "\n");
    }
    if (cmp) {
        bench_sb_put(s, "\nWith `--compare`: the old report is ");
        const char *op = bench_get_str(cmp, "old_path");
        md_esc(s, op ? op : "?");
        const char *oc = bench_get_str(cmp, "old_created_utc");
        const char *og = bench_get_str(cmp, "old_git_commit");
        if (oc) {
            bench_sb_put(s, " (");
            md_esc(s, oc);
            if (og) {
                char c12[13];
                snprintf(c12, sizeof c12, "%s", og);
                bench_sb_put(s, ", commit ");
                md_esc(s, c12);
            }
            bench_sb_put(s, ")");
        }
        bench_sb_put(s, ". Noise band: 3 \xc3\x97 the larger coefficient of variation of the two runs "
                        "(TTFT, decode speed), the two 95 % intervals (memory growth), else 5 %.\n");
        const cJSON *ec = bench_get(cmp, "environment_changes");
        if (cJSON_IsArray(ec) && cJSON_GetArraySize(ec) > 0) {
            bench_sb_put(s, "\n**The environment differs** between the runs:");
            const cJSON *c;
            int k = 0;
            cJSON_ArrayForEach(c, ec)
            {
                const char *key = bench_get_str(c, "key"), *o = bench_get_str(c, "old"),
                           *n = bench_get_str(c, "new");
                bench_sb_put(s, k++ ? "; " : " ");
                md_esc(s, key ? key : "?");
                bench_sb_put(s, " ");
                md_esc(s, o ? o : DASH);
                bench_sb_put(s, " \xe2\x86\x92 ");
                md_esc(s, n ? n : DASH);
            }
            bench_sb_put(s, ".\n");
        }
    }
    soak_lines(s, bench_get(bench_get_obj(report, "phases"), "soak"));
    bw_line(s, bench_get_obj(bench_get_obj(report, "phases"), "latency"));
    bench_sb_put(s, "\nEvery figure, chart and the full environment: `report.html`; the data: `report.json`.\n");
    if (sb.oom) {
        bench_sb_free(&sb);
        return bench_report_err(err, errlen, path, "out of memory writing the summary");
    }
    int rc = bench_write_file_atomic(path, sb.p, sb.n, err, errlen);
    bench_sb_free(&sb);
    return rc;
}
