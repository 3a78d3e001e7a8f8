/* The "Kernel roofline" section of report.html, from report["kbench"] (a
 * gpt2c-kbench --json document, tools/kbench/README.md): a log-log chart of
 * arithmetic intensity vs GFLOP/s with the roofs kbench measured and one point
 * per kernel, native GEMM vs OpenBLAS per shape, and every figure in tables
 * (each with its data-k path, as the rest of the page). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif
#define DASH "\xe2\x80\x94"

int bench_kbench_load(const char *path, cJSON **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return bench_report_err(err, errlen, path, "cannot open it");
    bench_sb sb = {0};
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        bench_sb_putn(&sb, buf, n);
    int rerr = ferror(f);
    fclose(f);
    if (rerr || sb.oom) {
        bench_sb_free(&sb);
        return bench_report_err(err, errlen, path, "cannot read it");
    }
    cJSON *d = cJSON_Parse(sb.p ? sb.p : "");
    bench_sb_free(&sb);
    const char *why = NULL;
    if (!cJSON_IsObject(d))
        why = "not a JSON object (expected gpt2c-kbench --json output)";
    else if (!bench_get_str(d, "schema") || strcmp(bench_get_str(d, "schema"), "gpt2c-kbench") != 0)
        why = "\"schema\": expected \"gpt2c-kbench\"";
    else if (!cJSON_IsNumber(bench_get(d, "schema_version")) || bench_get(d, "schema_version")->valuedouble != 1)
        why = "\"schema_version\": expected 1";
    else if (!bench_get_obj(d, "ceilings"))
        why = "\"ceilings\": expected an object";
    else if (!cJSON_IsArray(bench_get(d, "results")))
        why = "\"results\": expected an array";
    if (why) {
        cJSON_Delete(d);
        return bench_report_err(err, errlen, path, "%s", why);
    }
    *out = d;
    return 0;
}

/* ---- small helpers ---- */

static void path_key(char *out, size_t len, const char *parent, const char *key)
{
    snprintf(out, len, "%s.%s", parent, key);
}

static void path_idx(char *out, size_t len, const char *parent, int i)
{
    snprintf(out, len, "%s[%d]", parent, i);
}

static void cell(bench_sb *s, const cJSON *obj, const char *opath, const char *key, const char *cls)
{
    char p[256];
    path_key(p, sizeof p, opath, key);
    bench_html_tagged(s, "td", cls, bench_get(obj, key), p);
}

static int num_of(const cJSON *o, const char *key, double *v) { return bench_get_num(o, key, v); }

/* ---- the chart ---- */

#define RW 760.0
#define RH 440.0
#define PX0 78.0
#define PX1 (RW - 170.0)
#define PY0 (RH - 56.0)
#define PY1 56.0

typedef struct logax {
    double lo, hi; /* powers of ten */
} logax;

static double lx(const logax *a, double v) { return PX0 + (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo)) * (PX1 - PX0); }
static double ly(const logax *a, double v) { return PY0 - (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo)) * (PY0 - PY1); }

static void ax_fit(logax *a, double mn, double mx)
{
    if (!(mn > 0) || !(mx > 0)) {
        mn = 0.1;
        mx = 100;
    }
    a->lo = pow(10, floor(log10(mn)));
    a->hi = pow(10, ceil(log10(mx)));
    if (a->hi <= a->lo)
        a->hi = a->lo * 10;
}

static const char *path_colour(const char *isa, const char *gemm)
{
    if (gemm && !strcmp(gemm, "openblas"))
        return "#ea580c";
    if (!isa)
        return "#6b7280";
    if (!strcmp(isa, "avx512"))
        return "#16a34a";
    if (!strcmp(isa, "avx2"))
        return "#2563eb";
    return "#6b7280"; /* scalar */
}

/* A result's point: circle matmul, square attention, diamond the rest. */
static void point(bench_sb *s, double x, double y, const char *op, const char *colour)
{
    if (op && !strcmp(op, "matmul"))
        bench_sb_printf(s, "<circle class=\"kbpt\" cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\" fill-opacity=\"0.75\">", x, y, colour);
    else if (op && !strcmp(op, "attention"))
        bench_sb_printf(s, "<rect class=\"kbpt\" x=\"%.1f\" y=\"%.1f\" width=\"8\" height=\"8\" fill=\"%s\" fill-opacity=\"0.75\">", x - 4, y - 4, colour);
    else
        bench_sb_printf(s, "<path class=\"kbpt\" d=\"M%.1f %.1fl5 5l-5 5l-5 -5z\" fill=\"%s\" fill-opacity=\"0.75\">", x, y - 5, colour);
}

static void point_end(bench_sb *s, const char *op)
{
    bench_sb_put(s, op && !strcmp(op, "matmul") ? "</circle>" : op && !strcmp(op, "attention") ? "</rect>" : "</path>");
}

typedef struct roof {
    double v;
    char label[96];
} roof;

static void chart(bench_sb *s, const cJSON *kb)
{
    const cJSON *ceil = bench_get_obj(kb, "ceilings");
    const cJSON *results = bench_get(kb, "results");
    roof bw[16], pk[16];
    int nbw = 0, npk = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, bench_get(ceil, "read_bw_gb_s"))
    {
        double t, g;
        if (nbw < 16 && num_of(e, "threads", &t) && num_of(e, "gb_s", &g) && g > 0) {
            bw[nbw].v = g;
            snprintf(bw[nbw++].label, sizeof bw[0].label, "read %.0f thr %.3g GB/s", t, g);
        }
    }
    cJSON_ArrayForEach(e, bench_get(ceil, "fp32_peak_gflop_s"))
    {
        double t, g;
        const char *isa = bench_get_str(e, "isa");
        if (npk < 16 && num_of(e, "threads", &t) && num_of(e, "gflop_s", &g) && g > 0) {
            pk[npk].v = g;
            snprintf(pk[npk++].label, sizeof pk[0].label, "fp32 %s %.0f thr %.3g", isa ? isa : "?", t, g);
        }
    }
    cJSON_ArrayForEach(e, bench_get(ceil, "int8_peak_gop_s"))
    {
        double t, g;
        const char *kind = bench_get_str(e, "kind");
        if (npk < 16 && num_of(e, "threads", &t) && num_of(e, "gop_s", &g) && g > 0) {
            pk[npk].v = g;
            snprintf(pk[npk++].label, sizeof pk[0].label, "int8 %s %.0f thr %.3g", kind ? kind : "?", t, g);
        }
    }
    /* ranges: every point, every roof and every ridge on the chart */
    double xmn = INFINITY, xmx = 0, ymn = INFINITY, ymx = 0;
    int npts = 0;
    cJSON_ArrayForEach(e, results)
    {
        double ai, gf;
        if (num_of(e, "intensity", &ai) && num_of(e, "gflop_s", &gf) && ai > 0 && gf > 0) {
            xmn = fmin(xmn, ai), xmx = fmax(xmx, ai), ymn = fmin(ymn, gf), ymx = fmax(ymx, gf);
            npts++;
        }
    }
    for (int i = 0; i < npk; i++) {
        ymx = fmax(ymx, pk[i].v);
        for (int j = 0; j < nbw; j++)
            xmx = fmax(xmx, pk[i].v / bw[j].v), xmn = fmin(xmn, pk[i].v / bw[j].v);
    }
    logax xa, ya;
    ax_fit(&xa, xmn, xmx * 1.5);
    ax_fit(&ya, ymn, ymx * 1.5);

    bench_sb_printf(s, "<figure class=\"chart\" id=\"chart-roofline\"><svg viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
                       "aria-label=\"Kernel roofline\"><text class=\"ct\" x=\"%.1f\" y=\"22\">Kernel roofline: "
                       "achieved GFLOP/s vs arithmetic intensity</text>", RW, RH, PX0 - 60);
    for (double v = xa.lo; v <= xa.hi * 1.0001; v *= 10) {
        double x = lx(&xa, v);
        bench_sb_printf(s, "<line class=\"gridx\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                           "<text class=\"tl\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>",
                        x, PY0, x, PY1, x, PY0 + 18, v);
    }
    for (double v = ya.lo; v <= ya.hi * 1.0001; v *= 10) {
        double y = ly(&ya, v);
        bench_sb_printf(s, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                           "<text class=\"tl\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>",
                        PX0, y, PX1, y, PX0 - 6, y + 4, v);
    }
    bench_sb_printf(s, "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                       "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                       "<text class=\"at\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">arithmetic intensity (FLOP per byte moved)</text>"
                       "<text class=\"at\" text-anchor=\"middle\" transform=\"translate(16 %.1f) rotate(-90)\">GFLOP/s (GOP/s for int8)</text>",
                    PX0, PY0, PX1, PY0, PX0, PY0, PX0, PY1, (PX0 + PX1) / 2, PY0 + 40, (PY0 + PY1) / 2);
    /* roofs: each bandwidth as a diagonal up to the highest peak, each peak flat */
    double top = 0;
    for (int i = 0; i < npk; i++)
        top = fmax(top, pk[i].v);
    if (!(top > 0))
        top = ya.hi;
    for (int j = 0; j < nbw; j++) {
        double x0 = xa.lo, y0 = bw[j].v * x0, x1 = top / bw[j].v;
        if (y0 < ya.lo) /* start where the line enters the plot */
            x0 = ya.lo / bw[j].v, y0 = ya.lo;
        bench_sb_printf(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#dc2626\" stroke-width=\"1.5\" "
                           "stroke-dasharray=\"%s\"><title>",
                        lx(&xa, x0), ly(&ya, y0), lx(&xa, x1), ly(&ya, top), j == nbw - 1 ? "none" : "5 3");
        bench_html_esc(s, bw[j].label);
        /* labels spread along their lines, one 110 px further right for each */
        double px = lx(&xa, x0) + 8 + 110 * j;
        double xd = pow(10, log10(xa.lo) + (px - PX0) / (PX1 - PX0) * (log10(xa.hi) - log10(xa.lo)));
        double py = ly(&ya, bw[j].v * xd) - 6;
        bench_sb_printf(s, "</title></line><text class=\"lg\" x=\"%.1f\" y=\"%.1f\" fill=\"#dc2626\" "
                           "transform=\"rotate(%.1f %.1f %.1f)\">",
                        px, py, atan2(ly(&ya, top) - ly(&ya, y0), lx(&xa, x1) - lx(&xa, x0)) * 180 / M_PI, px, py);
        bench_html_esc(s, bw[j].label);
        bench_sb_put(s, "</text>");
    }
    /* flat roofs, labelled at the right from the highest down, never overlapping */
    for (int a = 1; a < npk; a++)
        for (int b = a; b > 0 && pk[b].v > pk[b - 1].v; b--) {
            roof t = pk[b];
            pk[b] = pk[b - 1];
            pk[b - 1] = t;
        }
    double label_y = 0;
    for (int i = 0; i < npk; i++) {
        double y = ly(&ya, pk[i].v), xr = nbw ? lx(&xa, pk[i].v / bw[nbw - 1].v) : PX0;
        label_y = fmax(y + 4, label_y + 12);
        bench_sb_printf(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#111827\" stroke-width=\"1.5\"/>"
                           "<text class=\"lg\" x=\"%.1f\" y=\"%.1f\">",
                        fmax(xr, PX0), y, PX1, y, PX1 + 4, label_y);
        bench_html_esc(s, pk[i].label);
        bench_sb_put(s, "</text>");
    }
    /* one point per kernel; the label is the point's tooltip, and beside the
     * point when there are few enough to read */
    cJSON_ArrayForEach(e, results)
    {
        double ai, gf, pct = NAN;
        if (!(num_of(e, "intensity", &ai) && num_of(e, "gflop_s", &gf) && ai > 0 && gf > 0))
            continue;
        num_of(e, "pct_of_roof", &pct);
        const char *name = bench_get_str(e, "name"), *op = bench_get_str(e, "op");
        double x = lx(&xa, ai), y = ly(&ya, gf);
        point(s, x, y, op, path_colour(bench_get_str(e, "isa"), bench_get_str(e, "gemm")));
        char b1[BENCH_NUM_BUF], b2[BENCH_NUM_BUF], b3[BENCH_NUM_BUF];
        bench_sb_put(s, "<title>");
        bench_html_esc(s, name ? name : "?");
        bench_sb_printf(s, ": %s FLOP/B, %s GFLOP/s, %s%% of roof</title>", bench_fmt_num(ai, b1, sizeof b1),
                        bench_fmt_num(gf, b2, sizeof b2), bench_fmt_num(pct, b3, sizeof b3));
        point_end(s, op);
        if (npts <= 24) {
            bench_sb_printf(s, "<text class=\"tl\" x=\"%.1f\" y=\"%.1f\">", x + 6, y - 5);
            bench_html_esc(s, name ? name : "?");
            bench_sb_put(s, "</text>");
        }
    }
    /* legend */
    static const struct { const char *c, *t; } LG[] = {
        {"#6b7280", "scalar"}, {"#2563eb", "avx2"}, {"#16a34a", "avx512"}, {"#ea580c", "OpenBLAS"}};
    double lxp = PX0;
    for (int k = 0; k < 4; k++) {
        bench_sb_printf(s, "<circle cx=\"%.1f\" cy=\"42\" r=\"4\" fill=\"%s\"/><text class=\"lg\" x=\"%.1f\" y=\"46\">%s</text>",
                        lxp + 5, LG[k].c, lxp + 13, LG[k].t);
        lxp += 30 + 7.0 * strlen(LG[k].t);
    }
    bench_sb_printf(s, "<text class=\"lg\" x=\"%.1f\" y=\"46\">&#9679; matmul &#9632; attention &#9670; other ops</text>", lxp + 10);
    bench_sb_put(s, "</svg><figcaption>Roofs measured by gpt2c-kbench on this machine: read bandwidth (red, the "
                    "most threads solid) and compute peaks (black). A point under the slanted roof is "
                    "memory-bound, under the flat one compute-bound; hover a point for its case, FLOP/B, "
                    "GFLOP/s and % of roof.</figcaption></figure>\n");
}

/* ---- tables ---- */

static void ours_vs_openblas(bench_sb *s, const cJSON *results)
{
    bench_sb_put(s, "<h3>Native GEMM vs OpenBLAS (f32, same shape, same threads)</h3>\n"
                    "<table><thead><tr><th>model</th><th>matrix</th><th class=\"num\">M</th><th class=\"num\">K</th>"
                    "<th class=\"num\">N</th><th>ISA</th><th class=\"num\">ours GFLOP/s</th><th class=\"num\">OpenBLAS GFLOP/s</th>"
                    "<th class=\"num\">ours / OpenBLAS</th><th class=\"num\">ours % of roof</th></tr></thead><tbody>\n");
    int rows = 0, i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, results)
    {
        double vs;
        const char *gemm = bench_get_str(e, "gemm"), *op = bench_get_str(e, "op");
        if (!op || strcmp(op, "matmul") || !gemm || strcmp(gemm, "native") || !num_of(e, "vs_openblas", &vs)) {
            i++;
            continue;
        }
        char rp[64];
        path_idx(rp, sizeof rp, "kbench.results", i);
        /* the OpenBLAS row of the same shape */
        int j = 0, found = -1;
        const cJSON *o, *blas = NULL;
        cJSON_ArrayForEach(o, results)
        {
            const char *g = bench_get_str(o, "gemm"), *w1 = bench_get_str(o, "wtype"), *w2 = bench_get_str(e, "wtype");
            double a1, a2, b1, b2, c1, c2;
            if (found < 0 && g && !strcmp(g, "openblas") && w1 && w2 && !strcmp(w1, w2) &&
                num_of(o, "M", &a1) && num_of(e, "M", &a2) && a1 == a2 && num_of(o, "K", &b1) &&
                num_of(e, "K", &b2) && b1 == b2 && num_of(o, "N", &c1) && num_of(e, "N", &c2) && c1 == c2) {
                found = j;
                blas = o;
            }
            j++;
        }
        bench_sb_put(s, "<tr>");
        cell(s, e, rp, "model", "");
        cell(s, e, rp, "label", "");
        cell(s, e, rp, "M", "num");
        cell(s, e, rp, "K", "num");
        cell(s, e, rp, "N", "num");
        cell(s, e, rp, "isa", "");
        cell(s, e, rp, "gflop_s", "num");
        if (blas) {
            char bp[64];
            path_idx(bp, sizeof bp, "kbench.results", found);
            cell(s, blas, bp, "gflop_s", "num");
        } else {
            bench_sb_put(s, "<td class=\"num\">" DASH "</td>");
        }
        cell(s, e, rp, "vs_openblas", vs >= 1 ? "num hl better" : "num hl worse");
        cell(s, e, rp, "pct_of_roof", "num");
        bench_sb_put(s, "</tr>\n");
        rows++;
        i++;
    }
    if (!rows)
        bench_sb_put(s, "<tr><td colspan=\"10\" class=\"muted\">no native f32 matmul with an OpenBLAS row of the same shape</td></tr>\n");
    bench_sb_put(s, "</tbody></table>\n");
}

/* An array of flat objects as a table, every member a column (from the first). */
static void object_rows(bench_sb *s, const cJSON *arr, const char *apath)
{
    const cJSON *first = cJSON_GetArrayItem(arr, 0);
    if (!cJSON_IsObject(first)) {
        bench_sb_put(s, "<p class=\"muted\">(none)</p>\n");
        return;
    }
    bench_sb_put(s, "<table><thead><tr>");
    const cJSON *k;
    cJSON_ArrayForEach(k, first)
    {
        bench_sb_put(s, "<th>");
        bench_html_esc(s, k->string);
        bench_sb_put(s, "</th>");
    }
    bench_sb_put(s, "</tr></thead><tbody>\n");
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        char rp[64];
        path_idx(rp, sizeof rp, apath, i++);
        bench_sb_put(s, "<tr>");
        const cJSON *cols = cJSON_IsObject(e) ? e : first;
        cJSON_ArrayForEach(k, cols)
        {
            if (!cJSON_IsObject(e)) {
                bench_sb_put(s, "<td>" DASH "</td>");
                continue;
            }
            cell(s, e, rp, k->string, cJSON_IsNumber(bench_get(e, k->string)) ? "num" : "nw");
        }
        bench_sb_put(s, "</tr>\n");
    }
    bench_sb_put(s, "</tbody></table>\n");
}

void bench_html_roofline(bench_sb *s, const cJSON *report)
{
    const cJSON *kb = bench_get(report, "kbench");
    bench_sb_put(s, "<h2 id=\"roofline\">Kernel roofline</h2>\n");
    if (!cJSON_IsObject(kb)) {
        bench_sb_put(s, "<p class=\"notrun\">");
        if (kb)
            bench_html_tagged(s, "span", "", kb, "kbench");
        bench_sb_put(s, " Kernels not measured in this run (tools/bench runs gpt2c-kbench first; "
                        "gpt2c-bench --kbench FILE reads its --json output).</p>\n");
        return;
    }
    chart(s, kb);
    const cJSON *results = bench_get(kb, "results");
    ours_vs_openblas(s, results);

    bench_sb_put(s, "<div class=\"cols\"><div><h3>The kbench run</h3>\n<table class=\"kv\"><tbody>\n");
    const cJSON *k;
    cJSON_ArrayForEach(k, kb)
    {
        if (cJSON_IsObject(k) || cJSON_IsArray(k))
            continue;
        char p[128];
        path_key(p, sizeof p, "kbench", k->string);
        bench_sb_put(s, "<tr><th>");
        bench_html_esc(s, k->string);
        bench_sb_put(s, "</th>");
        bench_html_tagged(s, "td", "v", k, p);
        bench_sb_put(s, "</tr>\n");
    }
    bench_sb_put(s, "</tbody></table></div><div><h3>Ceilings (measured)</h3>\n");
    const cJSON *ceil = bench_get_obj(kb, "ceilings");
    bench_sb_put(s, "<table class=\"kv\"><tbody><tr><th>bandwidth buffer (MiB)</th>");
    bench_html_tagged(s, "td", "v", bench_get(ceil, "bw_buffer_mib"), "kbench.ceilings.bw_buffer_mib");
    bench_sb_put(s, "</tr>");
    if (bench_get(ceil, "pool_run_us")) {
        bench_sb_put(s, "<tr><th>thread pool fork-join, one empty parallel op (&micro;s)</th>");
        bench_html_tagged(s, "td", "v", bench_get(ceil, "pool_run_us"), "kbench.ceilings.pool_run_us");
        bench_sb_put(s, "</tr>");
    }
    bench_sb_put(s, "</tbody></table>\n");
    static const char *const ARR[] = {"read_bw_gb_s", "fp32_peak_gflop_s", "int8_peak_gop_s"};
    for (int a = 0; a < 3; a++) {
        char p[128];
        path_key(p, sizeof p, "kbench.ceilings", ARR[a]);
        bench_sb_printf(s, "<h3>%s</h3>\n", ARR[a]);
        object_rows(s, bench_get(ceil, ARR[a]), p);
    }
    bench_sb_put(s, "</div></div>\n<details><summary>Every kernel result (");
    char b[BENCH_NUM_BUF];
    bench_sb_put(s, bench_fmt_num(cJSON_GetArraySize(results), b, sizeof b));
    bench_sb_put(s, " rows)</summary>\n");
    object_rows(s, results, "kbench.results");
    bench_sb_put(s, "</details>\n");
}
