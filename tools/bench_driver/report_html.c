/* report.html: one self-contained page made from report.json alone. Inline CSS,
 * inline SVG charts drawn here (no script, no network), then tables of every
 * figure of every phase, the environment and the settings, and the --compare
 * table when there is one.
 *
 * Every value of report.json is shown in an element that carries its JSON path
 * in a data-k attribute (data-k="phases.latency.rows[0].ttft_ms.p50"), written
 * with one rule (bench_fmt_num for numbers, "yes"/"no" for booleans, "—" for
 * null, strings as they are); tests/reference/validate_report.py checks every
 * leaf of the JSON against it. This file also holds the helpers the other
 * report files share (number rule, string buffer, atomic write, lookups). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "report.h"

#define DASH "\xe2\x80\x94" /* "—": not measured, phase not run */

/* ==== shared helpers ===================================================== */

const bench_headline_fig bench_headline_figs[] = {
    {"load_ms", "Model load", "ms", 0},
    {"ttft_ms", "Time to first token", "ms", 0},
    {"decode_tok_s", "Decode speed", "tokens/s", 1},
    {"peak_rss_mb", "Peak RSS", "MiB", 0},
    {"leak_mb_per_hour", "Memory growth", "MiB/hour", 0},
    {"req_s_c1", "Throughput, 1 client", "req/s", 1},
    {"req_s_c4", "Throughput, 4 clients", "req/s", 1},
    {"scaling_c4", "Scaling at 4 clients", "\xc3\x97 one client", 1},
    {"validation_failures", "Validation failures", "", 0},
};
const int bench_n_headline_figs = (int)(sizeof bench_headline_figs / sizeof bench_headline_figs[0]);

const char *bench_fmt_num(double v, char *buf, size_t len)
{
    if (!isfinite(v))
        snprintf(buf, len, "%s", DASH);
    else if (fabs(v) < 1e15 && v == floor(v))
        snprintf(buf, len, "%.0f", v == 0 ? 0.0 : v); /* never "-0" */
    else
        snprintf(buf, len, "%.6g", v);
    return buf;
}

void bench_sb_putn(bench_sb *s, const char *text, size_t n)
{
    if (s->oom)
        return;
    if (s->n + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 1 << 14;
        while (cap < s->n + n + 1)
            cap *= 2;
        char *p = realloc(s->p, cap);
        if (!p) {
            s->oom = 1;
            return;
        }
        s->p = p;
        s->cap = cap;
    }
    memcpy(s->p + s->n, text, n);
    s->n += n;
    s->p[s->n] = '\0';
}

void bench_sb_put(bench_sb *s, const char *text) { bench_sb_putn(s, text, strlen(text)); }

void bench_sb_vprintf(bench_sb *s, const char *fmt, va_list ap)
{
    char small[512];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n < 0) {
        va_end(ap2);
        return;
    }
    if ((size_t)n < sizeof small) {
        bench_sb_putn(s, small, (size_t)n);
    } else {
        char *big = malloc((size_t)n + 1);
        if (big) {
            vsnprintf(big, (size_t)n + 1, fmt, ap2);
            bench_sb_putn(s, big, (size_t)n);
            free(big);
        } else {
            s->oom = 1;
        }
    }
    va_end(ap2);
}

void bench_sb_printf(bench_sb *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bench_sb_vprintf(s, fmt, ap);
    va_end(ap);
}

void bench_sb_free(bench_sb *s)
{
    free(s->p);
    s->p = NULL;
    s->n = s->cap = 0;
}

int bench_report_err(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
    if (err && errlen) {
        int n = snprintf(err, errlen, "%s: ", path ? path : "(no path)");
        if (n >= 0 && (size_t)n < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

int bench_write_file_atomic(const char *path, const char *data, size_t len, char *err,
                            size_t errlen)
{
    if (!path || !*path)
        return bench_report_err(err, errlen, path, "no output path");
    size_t plen = strlen(path) + 32;
    char *tmp = malloc(plen);
    if (!tmp)
        return bench_report_err(err, errlen, path, "out of memory");
    snprintf(tmp, plen, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        bench_report_err(err, errlen, path, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    int bad = fwrite(data, 1, len, f) != len;
    int e = errno;
    if (fflush(f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (bad) {
        bench_report_err(err, errlen, path, "write failed: %s", strerror(e));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        bench_report_err(err, errlen, path, "cannot rename %s into place: %s", tmp, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

const cJSON *bench_get(const cJSON *obj, const char *key)
{
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

int bench_get_num(const cJSON *obj, const char *key, double *out)
{
    const cJSON *v = bench_get(obj, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return 0;
    *out = v->valuedouble;
    return 1;
}

const char *bench_get_str(const cJSON *obj, const char *key)
{
    const cJSON *v = bench_get(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

const cJSON *bench_get_obj(const cJSON *obj, const char *key)
{
    const cJSON *v = bench_get(obj, key);
    return cJSON_IsObject(v) ? v : NULL;
}

double bench_max_bw_spread(const cJSON *rows)
{
    double spread = 0, v;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows)
    {
        if (bench_get_num(row, "read_bw_spread_pct", &v) && v > spread)
            spread = v;
    }
    return spread;
}

/* ==== HTML basics ======================================================== */

/* Text and attribute values: & < > " ' become character references. */
static void esc(bench_sb *s, const char *t)
{
    if (!t)
        return;
    const char *run = t;
    for (; *t; t++) {
        const char *rep = NULL;
        switch (*t) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: break;
        }
        if (rep) {
            bench_sb_putn(s, run, (size_t)(t - run));
            bench_sb_put(s, rep);
            run = t + 1;
        }
    }
    bench_sb_putn(s, run, (size_t)(t - run));
}

/* A JSON path: parent + "." + key, or parent + "[i]". */
typedef struct jpath {
    char s[256];
} jpath;

/* Appends text to a path, truncating (paths here are far shorter than the buffer). */
static void jp_cat(jpath *p, const char *t)
{
    size_t n = strlen(p->s), k = strlen(t);
    if (k > sizeof p->s - 1 - n)
        k = sizeof p->s - 1 - n;
    memcpy(p->s + n, t, k);
    p->s[n + k] = '\0';
}

static jpath jp_key(const char *parent, const char *key)
{
    jpath p;
    p.s[0] = '\0';
    if (parent && *parent) {
        jp_cat(&p, parent);
        jp_cat(&p, ".");
    }
    jp_cat(&p, key);
    return p;
}

static jpath jp_idx(const char *parent, int i)
{
    jpath p;
    char b[24];
    p.s[0] = '\0';
    jp_cat(&p, parent);
    snprintf(b, sizeof b, "[%d]", i);
    jp_cat(&p, b);
    return p;
}

/* The display text of a scalar JSON value (the data-k rule). */
static void put_scalar(bench_sb *s, const cJSON *v)
{
    char b[BENCH_NUM_BUF];
    if (cJSON_IsNumber(v))
        bench_sb_put(s, bench_fmt_num(v->valuedouble, b, sizeof b));
    else if (cJSON_IsString(v))
        esc(s, v->valuestring);
    else if (cJSON_IsTrue(v))
        bench_sb_put(s, "yes");
    else if (cJSON_IsFalse(v))
        bench_sb_put(s, "no");
    else
        bench_sb_put(s, DASH);
}

/* <tag data-k="path" class="cls">value</tag>; without data-k when the key is
 * absent from the JSON (nothing to check then). Arrays and objects where a
 * scalar belongs show "—" without data-k. */
static void tagged(bench_sb *s, const char *tag, const char *cls, const cJSON *v, const char *path)
{
    bench_sb_printf(s, "<%s", tag);
    if (cls && *cls)
        bench_sb_printf(s, " class=\"%s\"", cls);
    if (v && !cJSON_IsArray(v) && !cJSON_IsObject(v)) {
        bench_sb_put(s, " data-k=\"");
        esc(s, path);
        bench_sb_put(s, "\">");
        put_scalar(s, v);
    } else {
        bench_sb_printf(s, ">%s", DASH);
    }
    bench_sb_printf(s, "</%s>", tag);
}

void bench_html_esc(bench_sb *s, const char *text) { esc(s, text); }
void bench_html_tagged(bench_sb *s, const char *tag, const char *cls, const cJSON *v, const char *path)
{
    tagged(s, tag, cls, v, path);
}

/* parent[key] in a tag, with the path derived. */
static void tagged_key(bench_sb *s, const char *tag, const char *cls, const cJSON *parent,
                       const char *ppath, const char *key)
{
    jpath p = jp_key(ppath, key);
    tagged(s, tag, cls, bench_get(parent, key), p.s);
}

/* An array of scalars as spans ("a, b, c"); null as a tagged "—". */
static void put_list(bench_sb *s, const cJSON *v, const char *path, const char *sep,
                     const cJSON *highlight_against)
{
    if (!v) {
        bench_sb_put(s, DASH);
        return;
    }
    if (!cJSON_IsArray(v)) {
        tagged(s, "span", "", v, path);
        return;
    }
    int i = 0;
    const cJSON *e;
    if (cJSON_GetArraySize(v) == 0)
        bench_sb_put(s, "<span class=\"muted\">(empty)</span>");
    cJSON_ArrayForEach(e, v)
    {
        if (i)
            bench_sb_put(s, sep);
        const char *cls = "";
        if (highlight_against) {
            const cJSON *o = cJSON_GetArrayItem(highlight_against, i);
            if (!o || !cJSON_IsNumber(o) || !cJSON_IsNumber(e) || o->valuedouble != e->valuedouble)
                cls = "diff";
        }
        jpath p = jp_idx(path, i);
        tagged(s, "span", cls, e, p.s);
        i++;
    }
}

/* ---- key/value tables ---- */

enum { F_PLAIN = 0, F_BYTES = 1, F_LIST = 2, F_CODE = 3, F_MIB = 4 };

typedef struct field {
    const char *key;
    const char *label;
    const char *unit;
    int kind;
} field;

static void kv_row(bench_sb *s, const cJSON *obj, const char *path, const field *f)
{
    const cJSON *v = bench_get(obj, f->key);
    jpath p = jp_key(path, f->key);
    bench_sb_put(s, "<tr><th>");
    esc(s, f->label);
    bench_sb_printf(s, "</th><td class=\"%s\">",
                    f->kind == F_LIST ? "list" : f->kind == F_CODE ? "code" : "v");
    if (f->kind == F_LIST)
        put_list(s, v, p.s, " ", NULL);
    else
        tagged(s, "span", "", v, p.s);
    int present = v && !cJSON_IsNull(v);
    if (present && f->unit && *f->unit) {
        bench_sb_put(s, " <span class=\"unit\">");
        esc(s, f->unit);
        bench_sb_put(s, "</span>");
    }
    if (cJSON_IsNumber(v) && f->kind == F_BYTES && v->valuedouble >= 1024)
        bench_sb_printf(s, " <span class=\"aux\">(%.1f MiB)</span>", v->valuedouble / 1048576.0);
    if (cJSON_IsNumber(v) && f->kind == F_MIB && v->valuedouble >= 1024)
        bench_sb_printf(s, " <span class=\"aux\">(%.2f GiB)</span>", v->valuedouble / 1024.0);
    bench_sb_put(s, "</td></tr>\n");
}

static void kv_table(bench_sb *s, const cJSON *obj, const char *path, const field *fields, int n)
{
    bench_sb_put(s, "<table class=\"kv\"><tbody>\n");
    for (int i = 0; i < n; i++)
        kv_row(s, obj, path, &fields[i]);
    bench_sb_put(s, "</tbody></table>\n");
}

#define NFIELDS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- stats tables ---- */

static const char *const STAT_KEYS[] = {"n", "mean", "stddev", "cv", "min", "p50", "p90", "p95", "p99", "max"};
#define N_STAT_KEYS 10

static void stats_head(bench_sb *s, const char *first, const char *extra)
{
    bench_sb_printf(s, "<thead><tr><th>%s</th>%s", first, extra ? extra : "");
    for (int k = 0; k < N_STAT_KEYS; k++)
        bench_sb_printf(s, "<th class=\"num\">%s</th>", STAT_KEYS[k]);
    bench_sb_put(s, "</tr></thead>\n");
}

/* The ten cells of a stats object (or one "—" cell spanning them). */
static void stats_cells(bench_sb *s, const cJSON *row, const char *rowpath, const char *key)
{
    const cJSON *st = bench_get(row, key);
    jpath p = jp_key(rowpath, key);
    if (!cJSON_IsObject(st)) {
        bench_sb_printf(s, "<td class=\"num\" colspan=\"%d\">", N_STAT_KEYS);
        if (st)
            tagged(s, "span", "", st, p.s);
        else
            bench_sb_put(s, DASH);
        bench_sb_put(s, "</td>");
        return;
    }
    for (int k = 0; k < N_STAT_KEYS; k++) {
        const char *cls = !strcmp(STAT_KEYS[k], "p50") ? "num hl" : "num";
        tagged_key(s, "td", cls, st, p.s, STAT_KEYS[k]);
    }
}

/* ==== SVG charts ========================================================= */

#define CW 600.0 /* chart viewBox */
#define CH 350.0

static const char *const COL_BLUE = "#2563eb";
static const char *const COL_ORANGE = "#ea580c";
static const char *const COL_RED = "#dc2626";
static const char *const COL_GREEN = "#16a34a";
static const char *const COL_GREY = "#6b7280";
static const char *const COL_ITL[3] = {"#93c5fd", "#3b82f6", "#1e3a8a"};

typedef struct axis {
    double lo, hi;
    int log2;
    double ticks[40];
    int nt;
    int decimals; /* for tick labels */
} axis;

static double nice_step(double range, int target)
{
    double raw = range / target;
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    double st = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
    return st * mag;
}

static void axis_linear(axis *a, double mn, double mx, int from_zero)
{
    memset(a, 0, sizeof *a);
    if (from_zero && mn > 0)
        mn = 0;
    if (from_zero && mx < 0)
        mx = 0;
    if (!(mx > mn)) {
        double pad = mn == 0 ? 1 : fabs(mn) * 0.1;
        if (!from_zero || mn != 0)
            mn -= pad;
        mx += pad;
    }
    double step = nice_step(mx - mn, 5);
    a->lo = floor(mn / step + 1e-9) * step;
    a->hi = ceil(mx / step - 1e-9) * step;
    if (a->hi <= a->lo)
        a->hi = a->lo + step;
    for (double t = a->lo; t <= a->hi + step * 1e-6 && a->nt < 40; t += step)
        a->ticks[a->nt++] = fabs(t) < step * 1e-9 ? 0 : t;
    /* as many decimals as the step needs: 250 -> 0, 2.5 -> 1, 0.25 -> 2 */
    a->decimals = 0;
    while (a->decimals < 9) {
        double sc = step * pow(10, a->decimals);
        if (fabs(sc - round(sc)) < 1e-6 * sc)
            break;
        a->decimals++;
    }
}

static double ax_frac(const axis *a, double v)
{
    if (a->log2)
        return (log2(v) - log2(a->lo)) / (log2(a->hi) - log2(a->lo));
    return (v - a->lo) / (a->hi - a->lo);
}

typedef struct chart {
    bench_sb *s;
    double x0, x1, y0, y1; /* plot area: x0 left, x1 right, y0 bottom, y1 top (pixels) */
    axis xa, ya, ya2;
    int has_y2;
    int ncat; /* > 0: categorical x with ncat slots */
} chart;

static double cx(const chart *c, double v)
{
    return c->x0 + ax_frac(&c->xa, v) * (c->x1 - c->x0);
}
static double cat_x(const chart *c, int i)
{
    return c->x0 + (i + 0.5) * (c->x1 - c->x0) / c->ncat;
}
static double cy(const chart *c, double v) { return c->y0 - ax_frac(&c->ya, v) * (c->y0 - c->y1); }
static double cy2(const chart *c, double v) { return c->y0 - ax_frac(&c->ya2, v) * (c->y0 - c->y1); }

static void tick_label(char *b, size_t len, const axis *a, double v)
{
    if (a->decimals < 0)
        bench_fmt_num(v, b, len);
    else
        snprintf(b, len, "%.*f", a->decimals, v);
}

static void chart_begin(chart *c, bench_sb *s, const char *id, const char *title, int has_y2)
{
    memset(c, 0, sizeof *c);
    c->s = s;
    c->has_y2 = has_y2;
    c->x0 = 70;
    c->x1 = CW - (has_y2 ? 70 : 22);
    c->y1 = 62;
    c->y0 = CH - 52;
    bench_sb_printf(s, "<figure class=\"chart\" id=\"%s\"><svg viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"",
                    id, CW, CH);
    esc(s, title);
    bench_sb_put(s, "\">");
    bench_sb_printf(s, "<text class=\"ct\" x=\"%.1f\" y=\"22\">", c->x0 - 56);
    esc(s, title);
    bench_sb_put(s, "</text>");
}

static void chart_end(chart *c, const char *caption)
{
    bench_sb_put(c->s, "</svg>");
    if (caption && *caption) {
        bench_sb_put(c->s, "<figcaption>");
        esc(c->s, caption);
        bench_sb_put(c->s, "</figcaption>");
    }
    bench_sb_put(c->s, "</figure>\n");
}

static void chart_empty(chart *c, const char *msg)
{
    bench_sb_printf(c->s,
                    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"empty\"/>"
                    "<text class=\"emptyt\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
                    c->x0, c->y1, c->x1 - c->x0, c->y0 - c->y1, (c->x0 + c->x1) / 2,
                    (c->y0 + c->y1) / 2);
    esc(c->s, msg);
    bench_sb_put(c->s, "</text>");
}

/* Grid, axes, ticks, tick labels and axis titles. cat_labels: categorical x. */
static void chart_axes(chart *c, const char *xlabel, const char *ylabel, const char *y2label,
                       const char *const *cat_labels, const char *y2colour)
{
    bench_sb *s = c->s;
    char b[64];
    /* horizontal grid + y ticks */
    for (int i = 0; i < c->ya.nt; i++) {
        double y = cy(c, c->ya.ticks[i]);
        bench_sb_printf(s, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>",
                        c->x0, y, c->x1, y);
        tick_label(b, sizeof b, &c->ya, c->ya.ticks[i]);
        bench_sb_printf(s, "<text class=\"tl\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>",
                        c->x0 - 7, y + 4, b);
    }
    if (c->has_y2)
        for (int i = 0; i < c->ya2.nt; i++) {
            double y = cy2(c, c->ya2.ticks[i]);
            tick_label(b, sizeof b, &c->ya2, c->ya2.ticks[i]);
            bench_sb_printf(s,
                            "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                            "<text class=\"tl\" x=\"%.1f\" y=\"%.1f\" fill=\"%s\">%s</text>",
                            c->x1, y, c->x1 + 5, y, c->x1 + 8, y + 4, y2colour, b);
        }
    /* x ticks */
    if (c->ncat > 0) {
        for (int i = 0; i < c->ncat; i++) {
            double x = cat_x(c, i);
            bench_sb_printf(s,
                            "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                            "<text class=\"tl\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
                            x, c->y0, x, c->y0 + 5, x, c->y0 + 19);
            esc(s, cat_labels[i]);
            bench_sb_put(s, "</text>");
        }
    } else {
        for (int i = 0; i < c->xa.nt; i++) {
            double x = cx(c, c->xa.ticks[i]);
            tick_label(b, sizeof b, &c->xa, c->xa.ticks[i]);
            bench_sb_printf(s,
                            "<line class=\"gridx\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                            "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                            "<text class=\"tl\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>",
                            x, c->y0, x, c->y1, x, c->y0, x, c->y0 + 5, x, c->y0 + 19, b);
        }
    }
    /* axis lines */
    bench_sb_printf(s,
                    "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                    "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>",
                    c->x0, c->y0, c->x1, c->y0, c->x0, c->y0, c->x0, c->y1);
    if (c->has_y2)
        bench_sb_printf(s, "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>",
                        c->x1, c->y0, c->x1, c->y1);
    /* titles */
    bench_sb_printf(s, "<text class=\"at\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
                    (c->x0 + c->x1) / 2, c->y0 + 40);
    esc(s, xlabel);
    bench_sb_printf(s,
                    "</text><text class=\"at\" text-anchor=\"middle\" transform=\"translate(16 %.1f) rotate(-90)\">",
                    (c->y0 + c->y1) / 2);
    esc(s, ylabel);
    bench_sb_put(s, "</text>");
    if (c->has_y2) {
        bench_sb_printf(s,
                        "<text class=\"at\" text-anchor=\"middle\" fill=\"%s\" transform=\"translate(%.1f %.1f) rotate(90)\">",
                        y2colour, CW - 14, (c->y0 + c->y1) / 2);
        esc(s, y2label);
        bench_sb_put(s, "</text>");
    }
}

/* Legend entries, laid out left to right under the title. */
enum { LG_LINE, LG_DASH, LG_BAR, LG_TICK, LG_OPEN, LG_DOT, LG_WHISKER };
typedef struct legend_item {
    int kind;
    const char *colour;
    const char *text;
} legend_item;

static void chart_legend(chart *c, const legend_item *items, int n)
{
    bench_sb *s = c->s;
    double x = c->x0, y = 44;
    for (int i = 0; i < n; i++) {
        const legend_item *it = &items[i];
        switch (it->kind) {
        case LG_LINE:
            bench_sb_printf(s,
                            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>"
                            "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>",
                            x, y, x + 22, y, it->colour, x + 11, y, it->colour);
            break;
        case LG_DASH:
            bench_sb_printf(s,
                            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>",
                            x, y, x + 22, y, it->colour);
            break;
        case LG_BAR:
            bench_sb_printf(s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"10\" fill=\"%s\"/>",
                            x + 4, y - 5, it->colour);
            break;
        case LG_TICK:
            bench_sb_printf(s,
                            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>",
                            x + 5, y, x + 17, y, it->colour);
            break;
        case LG_OPEN:
            bench_sb_printf(s,
                            "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"#fff\" stroke=\"%s\" stroke-width=\"1.5\"/>",
                            x + 11, y, it->colour);
            break;
        case LG_DOT:
            bench_sb_printf(s, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\" fill-opacity=\"0.6\"/>",
                            x + 11, y, it->colour);
            break;
        case LG_WHISKER:
            bench_sb_printf(s,
                            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1.5\"/>"
                            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1.5\"/>"
                            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1.5\"/>",
                            x + 11, y - 6, x + 11, y + 6, it->colour, x + 7, y - 6, x + 15, y - 6,
                            it->colour, x + 7, y + 6, x + 15, y + 6, it->colour);
            break;
        default: break;
        }
        bench_sb_printf(s, "<text class=\"lg\" x=\"%.1f\" y=\"%.1f\">", x + 27, y + 4);
        esc(s, it->text);
        bench_sb_put(s, "</text>");
        x += 27 + 6.6 * (double)strlen(it->text) + 16;
    }
}

/* A polyline through the points with v_ok, broken at gaps, with markers. */
static void series_line(chart *c, const double *xs, const double *ys, const int *ok, int n,
                        const char *colour, int y2, int dashed, int markers, const char *unit,
                        const char *xunit)
{
    bench_sb *s = c->s;
    int open = 0;
    for (int i = 0; i <= n; i++) {
        if (i < n && ok[i]) {
            double x = cx(c, xs[i]), y = y2 ? cy2(c, ys[i]) : cy(c, ys[i]);
            if (!open) {
                bench_sb_printf(s, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"",
                                colour, dashed ? " stroke-dasharray=\"6 4\"" : "");
                open = 1;
            }
            bench_sb_printf(s, "%.1f,%.1f ", x, y);
        } else if (open) {
            bench_sb_put(s, "\"/>");
            open = 0;
        }
    }
    if (!markers)
        return;
    for (int i = 0; i < n; i++) {
        if (!ok[i])
            continue;
        double x = cx(c, xs[i]), y = y2 ? cy2(c, ys[i]) : cy(c, ys[i]);
        char bx[BENCH_NUM_BUF], by[BENCH_NUM_BUF];
        bench_sb_printf(s, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"><title>%s %s: %s %s</title></circle>",
                        x, y, colour, bench_fmt_num(xs[i], bx, sizeof bx), xunit,
                        bench_fmt_num(ys[i], by, sizeof by), unit);
    }
}

/* ---- the latency rows as arrays ---- */

#define MAXPTS 64

/* The rows with a numeric x key; returns their count (<= MAXPTS) and fills the
 * index list so the charts skip rows without one. */
static int rows_with_x(const cJSON *rows, const char *xkey, const cJSON **out, double *xs)
{
    int n = 0;
    const cJSON *row;
    if (!cJSON_IsArray(rows))
        return 0;
    cJSON_ArrayForEach(row, rows)
    {
        double x;
        if (n < MAXPTS && bench_get_num(row, xkey, &x)) {
            out[n] = row;
            xs[n] = x;
            n++;
        }
    }
    return n;
}

static int cmp_double(const void *pa, const void *pb)
{
    double x = *(const double *)pa, y = *(const double *)pb;
    return x < y ? -1 : x > y;
}

/* An x axis for discrete settings (prompt lengths, client counts): log2 when
 * every value is positive, with a margin so that no point sits on the frame,
 * and a tick at each distinct value (powers of two when there are many). */
static void axis_x_data(axis *a, const double *xs, int n)
{
    double mn = INFINITY, mx = -INFINITY;
    for (int i = 0; i < n; i++) {
        mn = fmin(mn, xs[i]);
        mx = fmax(mx, xs[i]);
    }
    if (!(mn > 0)) {
        axis_linear(a, mn, mx, 0);
        return;
    }
    memset(a, 0, sizeof *a);
    a->log2 = 1;
    a->decimals = -1;
    double l = log2(mn), h = log2(mx);
    if (h - l < 1e-9) {
        l -= 1;
        h += 1;
    }
    double pad = fmax(0.3, 0.06 * (h - l));
    a->lo = exp2(l - pad);
    a->hi = exp2(h + pad);
    double d[MAXPTS];
    int nd = 0;
    for (int i = 0; i < n && i < MAXPTS; i++)
        d[nd++] = xs[i];
    qsort(d, (size_t)nd, sizeof d[0], cmp_double);
    int u = 0;
    for (int i = 0; i < nd; i++)
        if (u == 0 || d[i] != d[u - 1])
            d[u++] = d[i];
    if (u <= 12) {
        for (int i = 0; i < u; i++)
            a->ticks[a->nt++] = d[i];
        return;
    }
    int every = (int)ceil((floor(h) - ceil(l) + 1) / 12.0);
    for (double e = ceil(l); e <= floor(h) && a->nt < 40; e += every)
        a->ticks[a->nt++] = exp2(e);
}

static double stat_of(const cJSON *row, const char *metric, const char *key, int *ok)
{
    double v = 0;
    *ok = bench_get_num(bench_get_obj(row, metric), key, &v);
    return v;
}

static void range_update(double *mn, double *mx, double v)
{
    if (v < *mn)
        *mn = v;
    if (v > *mx)
        *mx = v;
}

static void max_update(double *mx, double v)
{
    if (v > *mx)
        *mx = v;
}

/* (1) TTFT p50 with p90/p99 whiskers vs prompt length. */
static void chart_ttft(bench_sb *s, const cJSON *latency)
{
    chart c;
    chart_begin(&c, s, "chart-ttft", "Time to first token vs prompt length", 0);
    const cJSON *rows[MAXPTS];
    double xs[MAXPTS], p50[MAXPTS], p90[MAXPTS], p99[MAXPTS];
    int o50[MAXPTS], o90[MAXPTS], o99[MAXPTS];
    int n = rows_with_x(bench_get(latency, "rows"), "prompt_tokens", rows, xs);
    double xmn = INFINITY, xmx = -INFINITY, ymx = -INFINITY;
    int any = 0;
    for (int i = 0; i < n; i++) {
        p50[i] = stat_of(rows[i], "ttft_ms", "p50", &o50[i]);
        p90[i] = stat_of(rows[i], "ttft_ms", "p90", &o90[i]);
        p99[i] = stat_of(rows[i], "ttft_ms", "p99", &o99[i]);
        if (o50[i] || o90[i] || o99[i]) {
            any = 1;
            range_update(&xmn, &xmx, xs[i]);
        }
        if (o50[i]) max_update(&ymx, p50[i]);
        if (o90[i]) max_update(&ymx, p90[i]);
        if (o99[i]) max_update(&ymx, p99[i]);
    }
    if (!any) {
        chart_empty(&c, latency ? "no TTFT figures" : "phase 2 (latency) did not run");
        chart_end(&c, NULL);
        return;
    }
    axis_x_data(&c.xa, xs, n);
    axis_linear(&c.ya, 0, ymx, 1);
    chart_axes(&c, "prompt length (tokens)", "time to first token (ms)", NULL, NULL, NULL);
    legend_item lg[] = {{LG_LINE, COL_BLUE, "p50"},
                        {LG_TICK, COL_BLUE, "p90"},
                        {LG_OPEN, COL_BLUE, "p99 (whisker p50\xe2\x80\x93p99)"}};
    chart_legend(&c, lg, 3);
    for (int i = 0; i < n; i++) {
        double x = cx(&c, xs[i]);
        double top = o99[i] ? p99[i] : (o90[i] ? p90[i] : NAN);
        if (o50[i] && isfinite(top))
            bench_sb_printf(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1.5\"/>",
                            x, cy(&c, p50[i]), x, cy(&c, top), COL_BLUE);
        char b[BENCH_NUM_BUF], bx[BENCH_NUM_BUF];
        if (o90[i])
            bench_sb_printf(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"><title>%s tokens: p90 %s ms</title></line>",
                            x - 7, cy(&c, p90[i]), x + 7, cy(&c, p90[i]), COL_BLUE,
                            bench_fmt_num(xs[i], bx, sizeof bx), bench_fmt_num(p90[i], b, sizeof b));
        if (o99[i])
            bench_sb_printf(s, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"#fff\" stroke=\"%s\" stroke-width=\"1.5\"><title>%s tokens: p99 %s ms</title></circle>",
                            x, cy(&c, p99[i]), COL_BLUE, bench_fmt_num(xs[i], bx, sizeof bx),
                            bench_fmt_num(p99[i], b, sizeof b));
    }
    series_line(&c, xs, p50, o50, n, COL_BLUE, 0, 0, 1, "ms p50", "tokens");
    chart_end(&c, "Median (p50) over the repeats at each prompt length; whiskers reach p99, the tick marks p90.");
}

/* (2) decode tokens/s vs prompt length (p50, min-max range). */
static void chart_decode(bench_sb *s, const cJSON *latency)
{
    chart c;
    chart_begin(&c, s, "chart-decode", "Decode speed vs prompt length", 0);
    const cJSON *rows[MAXPTS];
    double xs[MAXPTS], p50[MAXPTS], lo[MAXPTS], hi[MAXPTS], lim[MAXPTS];
    int o50[MAXPTS], olo[MAXPTS], ohi[MAXPTS], olim[MAXPTS];
    int n = rows_with_x(bench_get(latency, "rows"), "prompt_tokens", rows, xs);
    double xmn = INFINITY, xmx = -INFINITY, ymx = -INFINITY;
    int any = 0, any_lim = 0;
    for (int i = 0; i < n; i++) {
        olim[i] = bench_get_num(rows[i], "bw_limit_tok_s", &lim[i]);
        if (olim[i]) {
            any_lim = 1;
            max_update(&ymx, lim[i]);
        }
        p50[i] = stat_of(rows[i], "decode_tok_s", "p50", &o50[i]);
        lo[i] = stat_of(rows[i], "decode_tok_s", "min", &olo[i]);
        hi[i] = stat_of(rows[i], "decode_tok_s", "max", &ohi[i]);
        if (o50[i] || ohi[i]) {
            any = 1;
            range_update(&xmn, &xmx, xs[i]);
        }
        if (o50[i]) max_update(&ymx, p50[i]);
        if (ohi[i]) max_update(&ymx, hi[i]);
    }
    if (!any) {
        chart_empty(&c, latency ? "no decode-speed figures" : "phase 2 (latency) did not run");
        chart_end(&c, NULL);
        return;
    }
    axis_x_data(&c.xa, xs, n);
    axis_linear(&c.ya, 0, ymx, 1);
    chart_axes(&c, "prompt length (tokens)", "decode speed (tokens/s)", NULL, NULL, NULL);
    legend_item lg[] = {{LG_LINE, COL_GREEN, "p50"}, {LG_WHISKER, COL_GREEN, "min\xe2\x80\x93max over repeats"},
                        {LG_DASH, COL_RED, "memory-bandwidth limit"}};
    chart_legend(&c, lg, any_lim ? 3 : 2);
    if (any_lim)
        series_line(&c, xs, lim, olim, n, COL_RED, 0, 1, 0, "tokens/s limit", "tokens");
    for (int i = 0; i < n; i++) {
        if (!olo[i] || !ohi[i])
            continue;
        double x = cx(&c, xs[i]);
        double a = cy(&c, lo[i]), b = cy(&c, hi[i]);
        bench_sb_printf(s,
                        "<g stroke=\"%s\" stroke-width=\"1.5\"><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/></g>",
                        COL_GREEN, x, a, x, b, x - 5, a, x + 5, a, x - 5, b, x + 5, b);
    }
    series_line(&c, xs, p50, o50, n, COL_GREEN, 0, 0, 1, "tokens/s p50", "tokens");
    chart_end(&c, "Tokens generated per second after the first token; median over the repeats, bars from slowest to fastest run. "
                  "Dashed: the read bandwidth measured before each prompt length (on a GPU: its DRAM peak) divided by the bytes a decode step reads (weights + KV cache).");
}

/* (3) inter-token latency percentiles per prompt length (grouped bars). */
static void chart_itl(bench_sb *s, const cJSON *latency)
{
    chart c;
    chart_begin(&c, s, "chart-itl", "Inter-token latency percentiles per prompt length", 0);
    const cJSON *rows[MAXPTS];
    double xs[MAXPTS];
    static const char *const PK[3] = {"p50", "p90", "p99"};
    double v[3][MAXPTS];
    int ok[3][MAXPTS];
    int n = rows_with_x(bench_get(latency, "rows"), "prompt_tokens", rows, xs);
    double ymx = -INFINITY;
    int any = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 3; k++) {
            v[k][i] = stat_of(rows[i], "itl_ms", PK[k], &ok[k][i]);
            if (ok[k][i]) {
                any = 1;
                max_update(&ymx, v[k][i]);
            }
        }
    if (!any) {
        chart_empty(&c, latency ? "no inter-token latency figures" : "phase 2 (latency) did not run");
        chart_end(&c, NULL);
        return;
    }
    char labels[MAXPTS][BENCH_NUM_BUF];
    const char *lp[MAXPTS];
    for (int i = 0; i < n; i++) {
        bench_fmt_num(xs[i], labels[i], sizeof labels[i]);
        lp[i] = labels[i];
    }
    c.ncat = n;
    axis_linear(&c.ya, 0, ymx, 1);
    chart_axes(&c, "prompt length (tokens)", "inter-token latency (ms)", NULL, lp, NULL);
    legend_item lg[] = {{LG_BAR, COL_ITL[0], "p50"}, {LG_BAR, COL_ITL[1], "p90"}, {LG_BAR, COL_ITL[2], "p99"}};
    chart_legend(&c, lg, 3);
    double slot = (c.x1 - c.x0) / n;
    double bw = slot * 0.8 / 3;
    if (bw > 22)
        bw = 22;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 3; k++) {
            if (!ok[k][i])
                continue;
            double x = cat_x(&c, i) + (k - 1.5) * bw;
            double y = cy(&c, v[k][i]);
            char b[BENCH_NUM_BUF];
            bench_sb_printf(s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%s tokens: %s %s ms</title></rect>",
                            x, y, bw - 1, c.y0 - y, COL_ITL[k], labels[i], PK[k],
                            bench_fmt_num(v[k][i], b, sizeof b));
        }
    chart_end(&c, "Time between consecutive generated tokens, over all tokens of all repeats at each prompt length.");
}

/* (4a) throughput: req/s (bars, left) and tokens/s (line, right) vs concurrency. */
static void chart_throughput(bench_sb *s, const cJSON *tp)
{
    chart c;
    chart_begin(&c, s, "chart-throughput", "Throughput vs concurrency", 1);
    const cJSON *rows[MAXPTS];
    double xs[MAXPTS], rq[MAXPTS], tk[MAXPTS];
    int orq[MAXPTS], otk[MAXPTS];
    int n = rows_with_x(bench_get(tp, "rows"), "concurrency", rows, xs);
    double xmn = INFINITY, xmx = -INFINITY, r_mx = -INFINITY, t_mx = -INFINITY;
    int any = 0;
    for (int i = 0; i < n; i++) {
        orq[i] = bench_get_num(rows[i], "req_s", &rq[i]);
        otk[i] = bench_get_num(rows[i], "tok_s", &tk[i]);
        if (orq[i] || otk[i]) {
            any = 1;
            range_update(&xmn, &xmx, xs[i]);
        }
        if (orq[i]) max_update(&r_mx, rq[i]);
        if (otk[i]) max_update(&t_mx, tk[i]);
    }
    if (!any) {
        chart_empty(&c, tp ? "no throughput figures" : "phase 4 (throughput) did not run");
        chart_end(&c, NULL);
        return;
    }
    axis_x_data(&c.xa, xs, n);
    axis_linear(&c.ya, 0, isfinite(r_mx) ? r_mx : 1, 1);
    axis_linear(&c.ya2, 0, isfinite(t_mx) ? t_mx : 1, 1);
    chart_axes(&c, "concurrent clients", "requests per second", "tokens per second", NULL, COL_ORANGE);
    legend_item lg[] = {{LG_BAR, COL_BLUE, "req/s (left axis)"}, {LG_LINE, COL_ORANGE, "tokens/s (right axis)"}};
    chart_legend(&c, lg, 2);
    for (int i = 0; i < n; i++) {
        if (!orq[i])
            continue;
        double x = cx(&c, xs[i]), y = cy(&c, rq[i]);
        char b[BENCH_NUM_BUF], bx[BENCH_NUM_BUF];
        bench_sb_printf(s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"26\" height=\"%.1f\" fill=\"%s\" fill-opacity=\"0.85\"><title>%s clients: %s req/s</title></rect>",
                        x - 13, y, c.y0 - y, COL_BLUE, bench_fmt_num(xs[i], bx, sizeof bx),
                        bench_fmt_num(rq[i], b, sizeof b));
    }
    series_line(&c, xs, tk, otk, n, COL_ORANGE, 1, 0, 1, "tokens/s", "clients");
    chart_end(&c, "Completed requests and generated tokens per second, all clients together, over the measurement window.");
}

/* (4b) scaling vs one client, with the ideal (linear) line. */
static void chart_scaling(bench_sb *s, const cJSON *tp)
{
    chart c;
    chart_begin(&c, s, "chart-scaling", "Scaling vs concurrency", 0);
    const cJSON *rows[MAXPTS];
    double xs[MAXPTS], sc[MAXPTS];
    int osc[MAXPTS], all[MAXPTS];
    int n = rows_with_x(bench_get(tp, "rows"), "concurrency", rows, xs);
    double xmn = INFINITY, xmx = -INFINITY, smx = 1;
    int any = 0;
    for (int i = 0; i < n; i++) {
        osc[i] = bench_get_num(rows[i], "scaling", &sc[i]);
        all[i] = xs[i] > 0;
        range_update(&xmn, &xmx, xs[i]);
        if (osc[i]) {
            any = 1;
            max_update(&smx, sc[i]);
        }
    }
    if (!any) {
        chart_empty(&c, tp ? "no scaling figures" : "phase 4 (throughput) did not run");
        chart_end(&c, NULL);
        return;
    }
    /* The y range follows the measured values (with room above them); the
     * ideal line may leave the top of the plot, where it is clipped and its
     * end value written. */
    double ymx = fmax(smx * 1.6, 2.0);
    if (xmx <= ymx)
        ymx = fmax(xmx, smx) * 1.1;
    axis_x_data(&c.xa, xs, n);
    axis_linear(&c.ya, 0, ymx, 1);
    chart_axes(&c, "concurrent clients", "throughput \xc3\x97 one client", NULL, NULL, NULL);
    legend_item lg[] = {{LG_LINE, COL_BLUE, "measured"}, {LG_DASH, COL_GREY, "ideal (linear)"}};
    chart_legend(&c, lg, 2);
    bench_sb_printf(s, "<clipPath id=\"clip-scaling\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath>"
                       "<g clip-path=\"url(#clip-scaling)\">",
                    c.x0, c.y1, c.x1 - c.x0, c.y0 - c.y1);
    series_line(&c, xs, xs, all, n, COL_GREY, 0, 1, 0, "", "clients");
    bench_sb_put(s, "</g>");
    if (xmx > c.ya.hi) {
        char b[BENCH_NUM_BUF];
        bench_sb_printf(s, "<text class=\"tl\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">ideal reaches %s\xc3\x97 at %s clients \xe2\x86\x97</text>",
                        c.x1 - 4, c.y1 + 14, bench_fmt_num(xmx, b, sizeof b), b);
    }
    series_line(&c, xs, sc, osc, n, COL_BLUE, 0, 0, 1, "\xc3\x97", "clients");
    for (int i = 0; i < n; i++)
        if (osc[i])
            bench_sb_printf(s, "<text class=\"vl\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.2f\xc3\x97</text>",
                            cx(&c, xs[i]), cy(&c, sc[i]) + 18, sc[i]);
    chart_end(&c, "req/s at each concurrency divided by req/s with one client; the dashed line is perfect scaling.");
}

/* RSS samples [t, rss, ...] of obj with the fitted slope (obj[slope_key],
 * MiB/hour) drawn through the centroid of the samples at or after fit_from
 * seconds (where the least-squares line passes). */
typedef struct rss_chart {
    const char *id, *title, *slope_key, *not_run, *xlabel, *caption;
    double fit_from;
} rss_chart;

static void chart_rss_samples(bench_sb *s, const cJSON *obj, int phase_ran, const rss_chart *rc)
{
    chart c;
    chart_begin(&c, s, rc->id, rc->title, 0);
    const cJSON *leak = obj;
    const cJSON *samples = bench_get(leak, "samples");
    int n = cJSON_IsArray(samples) ? cJSON_GetArraySize(samples) : 0;
    double *xs = calloc((size_t)(n > 0 ? n : 1), sizeof *xs);
    double *ys = calloc((size_t)(n > 0 ? n : 1), sizeof *ys);
    int *ok = calloc((size_t)(n > 0 ? n : 1), sizeof *ok);
    if (!xs || !ys || !ok) {
        s->oom = 1;
        free(xs);
        free(ys);
        free(ok);
        chart_end(&c, NULL);
        return;
    }
    double xmn = INFINITY, xmx = -INFINITY, ymn = INFINITY, ymx = -INFINITY, sx = 0, sy = 0;
    double fmn = INFINITY, fmx = -INFINITY;
    int m = 0, mf = 0, i = 0;
    const cJSON *pt;
    cJSON_ArrayForEach(pt, samples)
    {
        const cJSON *a = cJSON_GetArrayItem(pt, 0), *b = cJSON_GetArrayItem(pt, 1);
        if (cJSON_IsArray(pt) && cJSON_IsNumber(a) && cJSON_IsNumber(b) && isfinite(a->valuedouble) &&
            isfinite(b->valuedouble)) {
            xs[i] = a->valuedouble;
            ys[i] = b->valuedouble;
            ok[i] = 1;
            range_update(&xmn, &xmx, xs[i]);
            range_update(&ymn, &ymx, ys[i]);
            if (xs[i] >= rc->fit_from) {
                range_update(&fmn, &fmx, xs[i]);
                sx += xs[i];
                sy += ys[i];
                mf++;
            }
            m++;
        }
        i++;
    }
    if (m == 0) {
        chart_empty(&c, !phase_ran ? rc->not_run : "no RSS samples");
        chart_end(&c, NULL);
        free(xs);
        free(ys);
        free(ok);
        return;
    }
    double slope;
    int have_slope = bench_get_num(leak, rc->slope_key, &slope) && mf > 0;
    /* The fitted line: the report's slope through the fitted samples'
     * centroid (where a least-squares line passes), over their time range. */
    double mx_ = mf ? sx / mf : 0, my_ = mf ? sy / mf : 0;
    double f0 = 0, f1 = 0;
    if (have_slope) {
        f0 = my_ + slope / 3600.0 * (fmn - mx_);
        f1 = my_ + slope / 3600.0 * (fmx - mx_);
        range_update(&ymn, &ymx, f0);
        range_update(&ymn, &ymx, f1);
    }
    double pad = (ymx - ymn) * 0.15;
    if (pad < 0.5)
        pad = 0.5;
    axis_linear(&c.xa, xmn < 0 ? xmn : 0, xmx, 1);
    /* time: the axis ends where the samples end, ticks stay round */
    if (xmx > c.xa.lo) {
        c.xa.hi = xmx;
        while (c.xa.nt > 0 && c.xa.ticks[c.xa.nt - 1] > xmx * (1 + 1e-9))
            c.xa.nt--;
    }
    axis_linear(&c.ya, ymn - pad, ymx + pad, 0);
    chart_axes(&c, rc->xlabel, "RSS (MiB)", NULL, NULL, NULL);
    char lgfit[160] = "fitted slope";
    if (have_slope) {
        char b[BENCH_NUM_BUF];
        snprintf(lgfit, sizeof lgfit, "fit: %s MiB/hour", bench_fmt_num(slope, b, sizeof b));
    }
    legend_item lg[] = {{m > 300 ? LG_LINE : LG_DOT, COL_BLUE, "RSS samples"}, {LG_DASH, COL_RED, lgfit}};
    chart_legend(&c, lg, have_slope ? 2 : 1);
    if (m > 300) {
        series_line(&c, xs, ys, ok, n, COL_BLUE, 0, 0, 0, "MiB", "s");
    } else {
        for (int k = 0; k < n; k++) {
            if (!ok[k])
                continue;
            char bx[BENCH_NUM_BUF], by[BENCH_NUM_BUF];
            bench_sb_printf(s, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.8\" fill=\"%s\" fill-opacity=\"0.6\"><title>%s s: %s MiB</title></circle>",
                            cx(&c, xs[k]), cy(&c, ys[k]), COL_BLUE, bench_fmt_num(xs[k], bx, sizeof bx),
                            bench_fmt_num(ys[k], by, sizeof by));
        }
    }
    if (have_slope)
        bench_sb_printf(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>",
                        cx(&c, fmn), cy(&c, f0), cx(&c, fmx), cy(&c, f1), COL_RED);
    chart_end(&c, rc->caption);
    free(xs);
    free(ys);
    free(ok);
}

/* (5) RSS over time with the fitted slope line. */
static void chart_rss(bench_sb *s, const cJSON *memory)
{
    static const rss_chart rc = {
        "chart-rss", "Resident memory over repeated requests", "slope_mb_per_hour",
        "phase 3 (memory) did not run", "time since the first request (s)",
        "Process RSS sampled while the same requests repeat; the line has the reported slope, through the samples' mean.",
        -INFINITY};
    chart_rss_samples(s, bench_get_obj(memory, "leak"), memory != NULL, &rc);
}

/* The soak's RSS; the line over the samples after the warm-up, which it fits. */
static void chart_soak(bench_sb *s, const cJSON *soak)
{
    rss_chart rc = {
        "chart-soak", "Resident memory during the soak", "rss_slope_mb_per_hour", "no soak (--soak MINUTES)",
        "time since the soak started (s)",
        "Process RSS sampled during the soak; the line has the reported slope, fitted to the samples after the warm-up.",
        0};
    double w;
    if (bench_get_num(soak, "warmup_s", &w))
        rc.fit_from = w;
    chart_rss_samples(s, soak, soak != NULL, &rc);
}

/* ==== page sections ====================================================== */

static const char CSS[] =
    ":root{--fg:#1f2328;--muted:#656d76;--line:#d0d7de;--bg2:#f6f8fa;--good:#1a7f37;--bad:#cf222e;--warn:#9a6700}"
    "*{box-sizing:border-box}"
    "body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;color:var(--fg);background:#fff}"
    "main{max-width:1240px;margin:0 auto;padding:24px 28px 48px}"
    "h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:36px 0 10px;padding-bottom:6px;border-bottom:1px solid var(--line)}"
    "h3{font-size:15px;margin:20px 0 8px}"
    ".sub{color:var(--muted);margin:2px 0}.sub b{color:var(--fg);font-weight:600}"
    "code,.code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,'DejaVu Sans Mono',monospace;font-size:12.5px}"
    ".banner{border-radius:6px;padding:10px 14px;margin:14px 0;font-weight:600}"
    ".banner.bad{background:#ffebe9;border:1px solid #ff8182;color:var(--bad)}"
    ".banner.warn{background:#fff8c5;border:1px solid #d4a72c;color:var(--warn)}"
    ".banner.ok{background:#dafbe1;border:1px solid #4ac26b;color:var(--good)}"
    ".cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:12px;margin:16px 0}"
    ".card{border:1px solid var(--line);border-radius:8px;padding:12px 14px;background:#fff}"
    ".card .l{color:var(--muted);font-size:12.5px}.card .v{font-size:24px;font-weight:650;font-variant-numeric:tabular-nums}"
    ".card .u{color:var(--muted);font-size:13px;margin-left:4px}.card .d{font-size:12.5px;margin-top:2px}"
    ".card.bad{border-color:#ff8182;background:#fff5f5}.card.bad .v{color:var(--bad)}"
    ".charts{display:grid;grid-template-columns:1fr 1fr;gap:18px}"
    "figure.chart{margin:0;border:1px solid var(--line);border-radius:8px;padding:8px 8px 10px;background:#fff}"
    "figure.chart svg{width:100%;height:auto;display:block;font-family:inherit}"
    "figcaption{color:var(--muted);font-size:12px;padding:0 8px}"
    "svg .ct{font-size:15px;font-weight:600;fill:#1f2328}svg .tl{font-size:11.5px;fill:#57606a}"
    "svg .at{font-size:12.5px;fill:#1f2328}svg .lg{font-size:12px;fill:#1f2328}svg .vl{font-size:11px;fill:#1e40af;font-weight:600}"
    "svg .grid{stroke:#e5e7eb;stroke-width:1}svg .gridx{stroke:#f1f3f5;stroke-width:1}svg .axis{stroke:#57606a;stroke-width:1}"
    "svg .empty{fill:#f6f8fa;stroke:#d0d7de;stroke-dasharray:4 4}svg .emptyt{font-size:14px;fill:#656d76}"
    "table{border-collapse:collapse;margin:6px 0 12px;font-variant-numeric:tabular-nums}"
    "th,td{padding:4px 10px;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}"
    "thead th{background:var(--bg2);border-bottom:1px solid var(--line);font-weight:600;white-space:nowrap}"
    "tbody tr:nth-child(even){background:#f8fafc}"
    "td.num,th.num{text-align:right;white-space:nowrap}td.nw{white-space:nowrap}td.hl{font-weight:600}"
    "table.kv th{font-weight:500;color:#424a53;width:250px}table.kv td{min-width:300px}"
    ".unit{color:var(--muted)}td.list{max-width:860px;line-height:1.7}"
    ".aux{color:var(--muted);font-size:12px}.muted{color:var(--muted)}"
    ".flags span{display:inline-block;font-family:ui-monospace,Menlo,Consolas,'DejaVu Sans Mono',monospace;font-size:11.5px;background:var(--bg2);border:1px solid #eaeef2;border-radius:4px;padding:0 4px;margin:1px 2px}"
    "span.diff{background:#ffebe9;color:var(--bad);font-weight:600}"
    ".pass{color:var(--good);font-weight:600}.fail{color:#fff;background:var(--bad);font-weight:700;border-radius:4px;padding:1px 6px}"
    "tr.failrow td{background:#fff5f5!important}"
    ".better{color:var(--good)}.worse{color:var(--bad)}.same{color:var(--muted)}"
    ".beyond{font-weight:700}.badge{display:inline-block;white-space:nowrap;border-radius:10px;padding:0 8px;font-size:12px;font-weight:600}"
    ".badge.better{background:#dafbe1}.badge.worse{background:#ffebe9}.badge.same{background:var(--bg2)}"
    ".notrun{color:var(--muted);font-style:italic}"
    ".cols{display:grid;grid-template-columns:1fr 1fr;gap:24px}"
    "nav{margin:10px 0 0;font-size:13px}nav a{color:#0969da;text-decoration:none;margin-right:14px}nav a:hover{text-decoration:underline}"
    "details{margin:8px 0}summary{cursor:pointer;color:#0969da}"
    "footer{margin-top:40px;color:var(--muted);font-size:12.5px;border-top:1px solid var(--line);padding-top:10px}"
    "@media (max-width:900px){.charts,.cols{grid-template-columns:1fr}}"
    "@media print{.charts{grid-template-columns:1fr 1fr}figure.chart{break-inside:avoid}}";

static const char *headline_label(const char *key)
{
    for (int i = 0; i < bench_n_headline_figs; i++)
        if (!strcmp(bench_headline_figs[i].key, key))
            return bench_headline_figs[i].label;
    return key;
}

static const char *headline_unit(const char *key)
{
    for (int i = 0; i < bench_n_headline_figs; i++)
        if (!strcmp(bench_headline_figs[i].key, key))
            return bench_headline_figs[i].unit;
    return "";
}

/* "better" / "worse" / "same" verdict text and class for a compare row. */
static void verdict(const cJSON *row, const char **cls, const char **text)
{
    const cJSON *b = bench_get(row, "better");
    int beyond = cJSON_IsTrue(bench_get(row, "beyond_noise"));
    double o, n;
    if (!bench_get_num(row, "old", &o) || !bench_get_num(row, "new", &n)) {
        *cls = "same";
        *text = "not comparable";
    } else if (!cJSON_IsBool(b)) {
        *cls = "same";
        *text = "unchanged";
    } else if (!beyond) {
        *cls = "same";
        *text = cJSON_IsTrue(b) ? "better, within noise" : "worse, within noise";
    } else if (cJSON_IsTrue(b)) {
        *cls = "better beyond";
        *text = "BETTER, beyond noise";
    } else {
        *cls = "worse beyond";
        *text = "WORSE, beyond noise";
    }
}

/* The failed checks and the count. */
static int failed_checks(const cJSON *validation)
{
    int n = 0;
    const cJSON *c;
    const cJSON *checks = bench_get(validation, "checks");
    if (!cJSON_IsArray(checks))
        return 0;
    cJSON_ArrayForEach(c, checks) if (cJSON_IsFalse(bench_get(c, "ok"))) n++;
    return n;
}

static void section_header(bench_sb *s, const cJSON *r)
{
    const cJSON *env = bench_get_obj(r, "environment");
    const cJSON *model = bench_get_obj(env, "model");
    const cJSON *phases = bench_get_obj(r, "phases");
    char b[BENCH_NUM_BUF];
    bench_sb_put(s, "<header><h1>gpt2c benchmark report</h1>\n<p class=\"sub\">");
    const char *created = bench_get_str(r, "created_utc");
    esc(s, created ? created : "(no date)");
    const char *cmd = bench_get_str(r, "command");
    if (cmd) {
        bench_sb_put(s, " &middot; <code>");
        esc(s, cmd);
        bench_sb_put(s, "</code>");
    }
    double w;
    if (bench_get_num(r, "wall_s", &w))
        bench_sb_printf(s, " &middot; %.1f s in all", w);
    bench_sb_put(s, "</p>\n<p class=\"sub\"><b>Model</b> ");
    const char *fn = bench_get_str(model, "file_name");
    const char *mp = bench_get_str(bench_get_obj(r, "settings"), "model");
    esc(s, fn ? fn : (mp ? mp : DASH));
    const char *dt = bench_get_str(model, "dtype");
    double params;
    if (dt || bench_get_num(model, "params", &params)) {
        bench_sb_put(s, " (");
        if (dt)
            esc(s, dt);
        if (bench_get_num(model, "params", &params))
            bench_sb_printf(s, "%s%.1f M parameters", dt ? ", " : "", params / 1e6);
        bench_sb_put(s, ")");
    }
    bench_sb_put(s, " &middot; <b>Machine</b> ");
    const char *cpu = bench_get_str(env, "cpu_model");
    esc(s, cpu ? cpu : "unknown CPU");
    double cores;
    if (bench_get_num(env, "cores_online", &cores))
        bench_sb_printf(s, ", %s cores", bench_fmt_num(cores, b, sizeof b));
    const cJSON *gpu = bench_get_obj(env, "gpu");
    if (bench_get_str(gpu, "name")) {
        bench_sb_put(s, ", GPU ");
        esc(s, bench_get_str(gpu, "name"));
    }
    bench_sb_put(s, " &middot; <b>Path</b> ");
    const char *backend = bench_get_str(bench_get_obj(r, "settings"), "backend");
    const char *isa = bench_get_str(env, "isa"), *gemm = bench_get_str(env, "gemm");
    double thr;
    esc(s, backend ? backend : "cpu");
    if (isa) {
        bench_sb_put(s, ", ");
        esc(s, isa);
    }
    if (gemm) {
        bench_sb_put(s, ", GEMM ");
        esc(s, gemm);
    }
    const char *kv = bench_get_str(env, "kv_type");
    if (kv) {
        bench_sb_put(s, ", KV cache ");
        esc(s, kv);
    }
    if (bench_get_num(env, "threads_used", &thr))
        bench_sb_printf(s, ", %s threads", bench_fmt_num(thr, b, sizeof b));
    const char *commit = bench_get_str(env, "git_commit");
    if (commit) {
        bench_sb_put(s, " &middot; <b>Commit</b> <code>");
        char shortc[13];
        snprintf(shortc, sizeof shortc, "%s", commit);
        esc(s, shortc);
        bench_sb_put(s, "</code>");
        if (cJSON_IsTrue(bench_get(env, "git_dirty")))
            bench_sb_put(s, " (dirty)");
    }
    bench_sb_put(s, "</p>\n<nav><a href=\"#headline\">Headline</a><a href=\"#charts\">Charts</a>"
                    "<a href=\"#validation\">Validation</a><a href=\"#latency\">Latency</a><a href=\"#memory\">Memory</a>"
                    "<a href=\"#throughput\">Throughput</a><a href=\"#soak\">Soak</a><a href=\"#roofline\">Kernels</a><a href=\"#environment\">Environment</a>"
                    "<a href=\"#settings\">Settings</a>");
    if (cJSON_IsObject(bench_get(r, "compare")))
        bench_sb_put(s, "<a href=\"#compare\">Comparison</a>");
    bench_sb_put(s, "</nav></header>\n");

    /* banners */
    if (!cJSON_IsTrue(bench_get(r, "complete")))
        bench_sb_put(s, "<div class=\"banner warn\">Incomplete run: the bench was interrupted or a phase aborted; missing figures show as &mdash;.</div>\n");
    const cJSON *val = bench_get_obj(phases, "validation");
    double failures;
    int nf = failed_checks(val);
    int have_f = bench_get_num(val, "failures", &failures);
    if (val) {
        if (nf > 0 || (have_f && failures > 0)) {
            bench_sb_printf(s, "<div class=\"banner bad\">%d validation check%s FAILED", nf > 0 ? nf : (int)failures,
                            (nf > 0 ? nf : (int)failures) == 1 ? "" : "s");
            const cJSON *c;
            int k = 0;
            cJSON_ArrayForEach(c, bench_get(val, "checks")) if (cJSON_IsFalse(bench_get(c, "ok")))
            {
                bench_sb_put(s, k++ ? ", " : ": ");
                esc(s, bench_get_str(c, "name") ? bench_get_str(c, "name") : "(unnamed)");
            }
            bench_sb_put(s, ". The figures below may not mean what they say.</div>\n");
        } else if (cJSON_IsArray(bench_get(val, "checks")) && cJSON_GetArraySize(bench_get(val, "checks")) > 0) {
            bench_sb_printf(s, "<div class=\"banner ok\">All %d validation checks passed.</div>\n",
                            cJSON_GetArraySize(bench_get(val, "checks")));
        }
        if (have_f && failures != nf)
            bench_sb_printf(s, "<div class=\"banner warn\">The report says %s validation failures but %d checks have ok = false.</div>\n",
                            bench_fmt_num(failures, b, sizeof b), nf);
    }
}

static void section_headline(bench_sb *s, const cJSON *r)
{
    const cJSON *h = bench_get_obj(r, "headline");
    const cJSON *cmp = bench_get_obj(r, "compare");
    bench_sb_put(s, "<h2 id=\"headline\">Headline</h2>\n<div class=\"cards\">\n");
    for (int i = 0; i < bench_n_headline_figs; i++) {
        const bench_headline_fig *f = &bench_headline_figs[i];
        const cJSON *v = bench_get(h, f->key);
        int bad = !strcmp(f->key, "validation_failures") && cJSON_IsNumber(v) && v->valuedouble > 0;
        bench_sb_printf(s, "<div class=\"card%s\"><div class=\"l\">%s</div><div>", bad ? " bad" : "", f->label);
        jpath p = jp_key("headline", f->key);
        tagged(s, "span", "v", h ? v : NULL, p.s);
        if (*f->unit && cJSON_IsNumber(v))
            bench_sb_printf(s, "<span class=\"u\">%s</span>", f->unit);
        bench_sb_put(s, "</div>");
        const cJSON *row = bench_compare_row(cmp, f->key);
        if (row) {
            const char *cls, *text;
            verdict(row, &cls, &text);
            double ch, o;
            char b[BENCH_NUM_BUF];
            bench_sb_printf(s, "<div class=\"d %s\">", cls);
            if (bench_get_num(row, "change_pct", &ch))
                bench_sb_printf(s, "%+.1f %% &middot; ", ch);
            if (bench_get_num(row, "old", &o))
                bench_sb_printf(s, "was %s &middot; ", bench_fmt_num(o, b, sizeof b));
            esc(s, text);
            bench_sb_put(s, "</div>");
        }
        bench_sb_put(s, "</div>\n");
    }
    bench_sb_put(s, "</div>\n");
}

static void section_compare(bench_sb *s, const cJSON *r)
{
    const cJSON *cmp = bench_get(r, "compare");
    if (!cJSON_IsObject(cmp))
        return; /* a null compare is not shown (it is the normal case) */
    bench_sb_put(s, "<h2 id=\"compare\">Compared with an earlier run</h2>\n");
    static const field F[] = {
        {"old_path", "Old report", "", F_CODE},
        {"old_created_utc", "Old report created (UTC)", "", F_PLAIN},
        {"old_git_commit", "Old git commit", "", F_CODE},
    };
    kv_table(s, cmp, "compare", F, NFIELDS(F));
    bench_sb_put(s, "<table><thead><tr><th>figure</th><th>key</th><th class=\"num\">old</th><th class=\"num\">new</th>"
                    "<th>unit</th><th class=\"num\">change %</th><th class=\"num\">noise band \xc2\xb1%</th>"
                    "<th>better</th><th>beyond noise</th><th>verdict</th></tr></thead><tbody>\n");
    const cJSON *rows = bench_get(cmp, "rows");
    int i = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows)
    {
        jpath rp = jp_idx("compare.rows", i++);
        if (!cJSON_IsObject(row))
            continue;
        const char *name = bench_get_str(row, "name");
        const char *cls, *text;
        verdict(row, &cls, &text);
        bench_sb_put(s, "<tr><td class=\"nw\">");
        esc(s, name ? headline_label(name) : DASH);
        bench_sb_put(s, "</td>");
        tagged_key(s, "td", "code", row, rp.s, "name");
        tagged_key(s, "td", "num", row, rp.s, "old");
        tagged_key(s, "td", "num hl", row, rp.s, "new");
        bench_sb_put(s, "<td class=\"muted\">");
        esc(s, name ? headline_unit(name) : "");
        bench_sb_put(s, "</td>");
        char c2[64];
        snprintf(c2, sizeof c2, "num %s", cls);
        tagged_key(s, "td", c2, row, rp.s, "change_pct");
        tagged_key(s, "td", "num", row, rp.s, "noise_pct");
        tagged_key(s, "td", "", row, rp.s, "better");
        tagged_key(s, "td", "", row, rp.s, "beyond_noise");
        bench_sb_printf(s, "<td><span class=\"badge %s\">", cls);
        esc(s, text);
        bench_sb_put(s, "</span></td></tr>\n");
    }
    bench_sb_put(s, "</tbody></table>\n");
    const cJSON *ec = bench_get(cmp, "environment_changes");
    if (cJSON_IsArray(ec)) {
        if (cJSON_GetArraySize(ec) == 0) {
            bench_sb_put(s, "<p class=\"muted\">Same machine, build and model as the old run (every recorded environment key that matters is equal).</p>\n");
        } else {
            bench_sb_put(s, "<div class=\"banner warn\">The two runs differ in their environment: compare with care.</div>\n"
                            "<table><thead><tr><th>key</th><th>old</th><th>new</th></tr></thead><tbody>\n");
            int k = 0;
            cJSON_ArrayForEach(row, ec)
            {
                jpath rp = jp_idx("compare.environment_changes", k++);
                bench_sb_put(s, "<tr>");
                tagged_key(s, "td", "code", row, rp.s, "key");
                tagged_key(s, "td", "", row, rp.s, "old");
                tagged_key(s, "td", "", row, rp.s, "new");
                bench_sb_put(s, "</tr>\n");
            }
            bench_sb_put(s, "</tbody></table>\n");
        }
    }
    bench_sb_put(s, "<p class=\"muted\">Change = (new &minus; old) / |old|. Noise band: 3 &times; the larger coefficient of variation of the two runs for figures with repeats (TTFT, decode speed), the two 95&nbsp;% intervals for memory growth, else 5&nbsp;%.</p>\n");
}

static void phase_not_run(bench_sb *s, const cJSON *phase, const char *path)
{
    bench_sb_put(s, "<p class=\"notrun\">");
    tagged(s, "span", "", phase, path);
    bench_sb_put(s, " This phase did not run.</p>\n");
}

static void section_validation(bench_sb *s, const cJSON *phases)
{
    const cJSON *v = bench_get(phases, "validation");
    bench_sb_put(s, "<h2 id=\"validation\">Phase 1 &middot; Validation</h2>\n");
    if (!cJSON_IsObject(v)) {
        phase_not_run(s, v, "phases.validation");
        return;
    }
    const char *P = "phases.validation";
    int nf = failed_checks(v);
    const cJSON *checks = bench_get(v, "checks");
    int nc = cJSON_IsArray(checks) ? cJSON_GetArraySize(checks) : 0;
    bench_sb_printf(s, "<h3>Checks: %d of %d passed</h3>\n", nc - nf, nc);
    if (nf)
        bench_sb_printf(s, "<div class=\"banner bad\">%d FAILED</div>\n", nf);
    bench_sb_put(s, "<table><thead><tr><th>#</th><th>check</th><th>result</th><th>passed</th><th>detail</th></tr></thead><tbody>\n");
    int i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, checks)
    {
        jpath rp = jp_idx("phases.validation.checks", i);
        int fail = cJSON_IsFalse(bench_get(c, "ok"));
        int pass = cJSON_IsTrue(bench_get(c, "ok"));
        bench_sb_printf(s, "<tr%s><td class=\"num\">%d</td>", fail ? " class=\"failrow\"" : "", ++i);
        tagged_key(s, "td", "", c, rp.s, "name");
        bench_sb_printf(s, "<td><span class=\"%s\">%s</span></td>", fail ? "fail" : pass ? "pass" : "muted",
                        fail ? "FAIL" : pass ? "pass" : DASH);
        tagged_key(s, "td", "", c, rp.s, "ok");
        tagged_key(s, "td", "", c, rp.s, "detail");
        bench_sb_put(s, "</tr>\n");
    }
    if (!nc)
        bench_sb_put(s, "<tr><td colspan=\"5\" class=\"muted\">no checks recorded</td></tr>\n");
    bench_sb_put(s, "</tbody></table>\n");

    static const field F[] = {
        {"load_ms", "Model load", "ms", F_PLAIN},
        {"rss_after_load_mb", "RSS after load", "MiB", F_MIB},
        {"deterministic", "Greedy output deterministic", "", F_PLAIN},
        {"prompt_tokens", "Prompt", "tokens", F_PLAIN},
        {"generated_tokens", "Generated", "tokens", F_PLAIN},
        {"ttft_ms", "Time to first token", "ms", F_PLAIN},
        {"decode_tok_s", "Decode speed", "tokens/s", F_PLAIN},
        {"failures", "Failures", "checks", F_PLAIN},
    };
    bench_sb_put(s, "<h3>Figures</h3>\n");
    kv_table(s, v, P, F, NFIELDS(F));

    const cJSON *g = bench_get(v, "golden");
    bench_sb_put(s, "<h3>Golden output (greedy tokens vs the reference)</h3>\n");
    if (!cJSON_IsObject(g)) {
        bench_sb_put(s, "<p class=\"notrun\">");
        tagged(s, "span", "", g, "phases.validation.golden");
        bench_sb_put(s, " no golden comparison.</p>\n");
    } else {
        bench_sb_put(s, "<table class=\"kv\"><tbody>\n");
        static const field G[] = {{"applicable", "Applicable to this model", "", F_PLAIN},
                                  {"kv_type", "Fixture row (KV cache)", "", F_PLAIN},
                                  {"reason", "Why not", "", F_PLAIN},
                                  {"match", "Tokens match", "", F_PLAIN},
                                  {"max_abs_logit_diff", "Max |logit difference| over the top logits", "", F_PLAIN}};
        for (int k = 0; k < NFIELDS(G); k++) /* reason and the logit difference: one or the other */
            if (k == 0 || k == 3 || bench_get(g, G[k].key))
                kv_row(s, g, "phases.validation.golden", &G[k]);
        static const char *const L[3][2] = {{"prompt_ids", "Prompt ids"}, {"expected", "Expected"}, {"got", "Got"}};
        for (int k = 0; k < 3; k++) {
            jpath p = jp_key("phases.validation.golden", L[k][0]);
            bench_sb_printf(s, "<tr><th>%s <span class=\"unit\">(token ids)</span></th><td class=\"list code\">", L[k][1]);
            put_list(s, bench_get(g, L[k][0]), p.s, ", ",
                     k == 2 && cJSON_IsArray(bench_get(g, "expected")) ? bench_get(g, "expected") : NULL);
            bench_sb_put(s, "</td></tr>\n");
        }
        bench_sb_put(s, "</tbody></table>\n");
    }

    const cJSON *ref = bench_get(v, "reference");
    bench_sb_put(s, "<h3>Agreement with a reference model</h3>\n");
    if (!cJSON_IsObject(ref)) {
        bench_sb_put(s, "<p class=\"notrun\">");
        tagged(s, "span", "", ref, "phases.validation.reference");
        bench_sb_put(s, " no reference model given.</p>\n");
    } else {
        static const field R[] = {
            {"path", "Reference model", "", F_CODE},
            {"kv_type", "Reference KV cache", "", F_PLAIN},
            {"tokens", "Positions compared", "tokens", F_PLAIN},
            {"top1_agreement", "Top-1 agreement", "fraction", F_PLAIN},
            {"max_abs_logit_diff", "Max |logit difference|", "", F_PLAIN},
            {"mean_abs_logit_diff", "Mean |logit difference|", "", F_PLAIN},
            {"mean_kl", "Mean KL divergence", "nats", F_PLAIN},
            {"rms_rel_logit_err", "RMS relative logit error", "", F_PLAIN},
            {"greedy_agreement_tokens", "Greedy continuation agreement", "tokens", F_PLAIN},
            {"greedy_compared_tokens", "Greedy tokens compared", "tokens", F_PLAIN},
        };
        kv_table(s, ref, "phases.validation.reference", R, NFIELDS(R));
    }
}

/* One row per prompt length: what a token costs (cost_key), the speed that
 * cost allows at the measured ceiling (limit_key), the measured p50 of
 * speed_key and the percentage (pct_key). */
static void limit_table(bench_sb *s, const cJSON *rows, const char *title, const char *cost_label,
                        const char *what, const char *cost_key, const char *ceil_label,
                        const char *ceil_key, const char *limit_key, const char *speed_key,
                        const char *pct_key)
{
    bench_sb_printf(s, "<h3>%s</h3>\n<table><thead><tr><th class=\"num\">prompt tokens</th>"
                       "<th class=\"num\">%s</th>",
                    title, cost_label);
    /* the read bandwidth's two probes around the runs and their spread */
    const int probes = ceil_key && !strcmp(ceil_key, "read_bw_gb_s");
    if (ceil_key)
        bench_sb_printf(s, "<th class=\"num\">%s</th>", ceil_label);
    if (probes)
        bench_sb_put(s, "<th class=\"num\">probes before, after (GB/s)</th>"
                        "<th class=\"num\">spread (%)</th>");
    bench_sb_printf(s, "<th class=\"num\">limit (tokens/s)</th><th class=\"num\">%s p50 (tokens/s)</th>"
                       "<th class=\"num\">%% of the limit</th></tr></thead><tbody>\n",
                    what);
    int i = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows)
    {
        jpath rp = jp_idx("phases.latency.rows", i++);
        jpath sp = jp_key(rp.s, speed_key);
        double pt;
        char b[BENCH_NUM_BUF];
        bench_sb_printf(s, "<tr><td class=\"num hl\">%s</td>",
                        bench_get_num(row, "prompt_tokens", &pt) ? bench_fmt_num(pt, b, sizeof b) : DASH);
        tagged_key(s, "td", "num", row, rp.s, cost_key);
        if (ceil_key)
            tagged_key(s, "td", "num", row, rp.s, ceil_key);
        if (probes) {
            jpath pp = jp_key(rp.s, "read_bw_probes_gb_s");
            bench_sb_put(s, "<td class=\"num\">");
            put_list(s, bench_get(row, "read_bw_probes_gb_s"), pp.s, ", ", NULL);
            bench_sb_put(s, "</td>");
            tagged_key(s, "td", "num", row, rp.s, "read_bw_spread_pct");
        }
        tagged_key(s, "td", "num", row, rp.s, limit_key);
        tagged_key(s, "td", "num", bench_get(row, speed_key), sp.s, "p50");
        tagged_key(s, "td", "num", row, rp.s, pct_key);
        bench_sb_put(s, "</tr>\n");
    }
    bench_sb_put(s, "</tbody></table>\n");
}

/* The profiled run of each prompt length, one column per prompt length: ms
 * of each op (as the first profiled row names them) per decode step
 * (ops_key "decode_ms_per_step") or per prompt pass, then the rows of the
 * extra keys (total first). */
static void op_profile_table(bench_sb *s, const cJSON *rows, const char *title,
                             const char *ops_key, const char *const (*extra)[2], int n_extra)
{
    const cJSON *row, *names = NULL;
    cJSON_ArrayForEach(row, rows)
    {
        names = bench_get(bench_get(row, "op_profile"), ops_key);
        if (cJSON_IsObject(names))
            break;
        names = NULL;
    }
    bench_sb_printf(s, "<h3>%s</h3>\n", title);
    if (!names) {
        bench_sb_put(s, "<p class=\"notrun\">no op profile: the backend cannot time its ops "
                        "(CUDA), or phase 2 stopped early.</p>\n");
        return;
    }
    bench_sb_put(s, "<table><thead><tr><th>op</th>");
    cJSON_ArrayForEach(row, rows)
    {
        double pt;
        char b[BENCH_NUM_BUF];
        bench_sb_printf(s, "<th class=\"num\">prompt %s</th>",
                        bench_get_num(row, "prompt_tokens", &pt) ? bench_fmt_num(pt, b, sizeof b) : DASH);
    }
    bench_sb_put(s, "</tr></thead><tbody>\n");
    const int n_ops = cJSON_GetArraySize(names);
    const cJSON *op = names->child;
    for (int k = 0; k < n_ops + n_extra; k++, op = op ? op->next : NULL) {
        const char *key = k < n_ops ? op->string : extra[k - n_ops][0];
        bench_sb_put(s, "<tr><th>");
        esc(s, k < n_ops ? key : extra[k - n_ops][1]);
        bench_sb_put(s, "</th>");
        int i = 0;
        cJSON_ArrayForEach(row, rows)
        {
            jpath rp = jp_idx("phases.latency.rows", i++);
            jpath pp = jp_key(rp.s, "op_profile");
            const cJSON *prof = bench_get(row, "op_profile");
            if (k < n_ops) {
                jpath dp = jp_key(pp.s, ops_key);
                tagged_key(s, "td", "num", bench_get(prof, ops_key), dp.s, key);
            } else {
                tagged_key(s, "td", k == n_ops ? "num hl" : "num", prof, pp.s, key);
            }
        }
        bench_sb_put(s, "</tr>\n");
    }
    bench_sb_put(s, "</tbody></table>\n");
}

static void op_profile_tables(bench_sb *s, const cJSON *rows)
{
    /* rows whose op_profile is null (a backend without one) show it here */
    int i = 0, nulls = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows)
    {
        jpath rp = jp_idx("phases.latency.rows", i++);
        const cJSON *prof = bench_get(row, "op_profile");
        if (!cJSON_IsNull(prof))
            continue;
        double pt;
        char b[BENCH_NUM_BUF];
        bench_sb_printf(s, "%s prompt %s: ", nulls++ ? "," : "<p class=\"notrun\">Op profile not taken (the backend cannot time its ops):",
                        bench_get_num(row, "prompt_tokens", &pt) ? bench_fmt_num(pt, b, sizeof b) : DASH);
        tagged_key(s, "span", "", row, rp.s, "op_profile");
    }
    if (nulls)
        bench_sb_put(s, ".</p>\n");
    static const char *const dec[4][2] = {
        {"decode_step_ms", "whole step"},
        {"decode_weights_gb_s", "matmuls' weight reads (GB/s)"},
        {"decode_weights_pct_of_read_bw", "% of the read bandwidth"},
        {"decode_steps", "steps profiled"}};
    static const char *const pro[1][2] = {{"prompt_pass_ms", "whole pass"}};
    op_profile_table(s, rows, "Decode step by op (ms per step)", "decode_ms_per_step", dec, 4);
    op_profile_table(s, rows, "Prompt pass by op (ms per pass)", "prompt_ms", pro, 1);
    bench_sb_put(s, "<p class=\"muted\">One more run per prompt length with the engine's op "
                    "profile on (<code>gpt2_ctx_profile</code>; not counted in the figures above): "
                    "wall time on the calling thread, so a parallel op counts until its slowest "
                    "thread is done, synchronisation included. A prompt pass is one chunk of up "
                    "to the context's batch of tokens. The weight reads: the bytes of weights per "
                    "token over the time of the matmuls and the LM head, against the read "
                    "bandwidth probed before that prompt length's runs.</p>\n");
}

static void section_latency(bench_sb *s, const cJSON *phases)
{
    const cJSON *l = bench_get(phases, "latency");
    bench_sb_put(s, "<h2 id=\"latency\">Phase 2 &middot; Latency</h2>\n");
    if (!cJSON_IsObject(l)) {
        phase_not_run(s, l, "phases.latency");
        return;
    }
    static const field F[] = {
        {"generated_tokens", "Generated per request", "tokens", F_PLAIN},
        {"warmup_runs", "Warm-up runs (not counted)", "", F_PLAIN},
        {"repeats", "Measured repeats", "", F_PLAIN},
        {"read_bw_gb_s", "Read bandwidth (median over prompt lengths of the higher probe, before or after its runs; a GPU's DRAM peak)", "GB/s", F_PLAIN},
        {"read_bw_threads", "Read bandwidth measured with", "threads", F_PLAIN},
        {"read_bw_source", "Read bandwidth from", "", F_PLAIN},
        {"compute_peak_gflop_s", "Compute peak of the matmuls (gpt2c-kbench)", "GFLOP/s", F_PLAIN},
    };
    kv_table(s, l, "phases.latency", F, NFIELDS(F));
    static const char *const M[4][3] = {
        {"ttft_ms", "Time to first token", "ms"},
        {"itl_ms", "Inter-token latency", "ms"},
        {"decode_tok_s", "Decode speed", "tokens/s"},
        {"prefill_tok_s", "Prefill speed", "tokens/s"},
    };
    const cJSON *rows = bench_get(l, "rows");
    for (int m = 0; m < 4; m++) {
        bench_sb_printf(s, "<h3>%s (%s)</h3>\n<table>", M[m][1], M[m][2]);
        stats_head(s, "prompt tokens", m == 0 ? "<th class=\"num\">runs</th><th class=\"num\">warm-up</th>" : NULL);
        bench_sb_put(s, "<tbody>\n");
        int i = 0;
        const cJSON *row;
        cJSON_ArrayForEach(row, rows)
        {
            jpath rp = jp_idx("phases.latency.rows", i++);
            bench_sb_put(s, "<tr>");
            if (m == 0) {
                tagged_key(s, "td", "num hl", row, rp.s, "prompt_tokens");
                tagged_key(s, "td", "num", row, rp.s, "runs");
                tagged_key(s, "td", "num", row, rp.s, "warmup");
            } else {
                double pt;
                char b[BENCH_NUM_BUF];
                bench_sb_printf(s, "<td class=\"num hl\">%s</td>",
                                bench_get_num(row, "prompt_tokens", &pt) ? bench_fmt_num(pt, b, sizeof b) : DASH);
            }
            stats_cells(s, row, rp.s, M[m][0]);
            bench_sb_put(s, "</tr>\n");
        }
        if (!cJSON_IsArray(rows) || cJSON_GetArraySize(rows) == 0)
            bench_sb_put(s, "<tr><td colspan=\"13\" class=\"muted\">no rows</td></tr>\n");
        bench_sb_put(s, "</tbody></table>\n");
    }
    limit_table(s, rows, "Decode vs the memory-bandwidth limit", "bytes read per token", "decode",
                "bytes_per_token", "read bandwidth (GB/s)", "read_bw_gb_s",
                "bw_limit_tok_s", "decode_tok_s", "decode_pct_of_bw_limit");
    /* a bandwidth that moved around the runs makes those ratios loose: say so */
    const double spread = bench_max_bw_spread(rows);
    if (spread >= BENCH_BW_SPREAD_NOTED_PCT)
        bench_sb_printf(s,
                        "<p class=\"banner warn\">The read bandwidth moved by up to %.0f %% between the "
                        "probes before and after one prompt length's runs: these ratios are loose "
                        "(each divides by the higher probe).</p>\n",
                        spread);
    limit_table(s, rows, "Prefill vs the compute limit", "FLOP per token", "prefill",
                "prefill_flop_per_token", NULL, NULL, "compute_limit_tok_s", "prefill_tok_s",
                "prefill_pct_of_compute_limit");
    op_profile_tables(s, rows);
    bench_sb_put(s, "<p class=\"muted\">Bytes read per token: the weights as the backend "
                    "holds them (every matrix is streamed once per token, one row of each embedding "
                    "table) plus the KV cache at the mean "
                    "length over the generated tokens. The limit is the higher of the read bandwidths the "
                    "bench measured right before and right after that prompt length's runs (a 256 MiB "
                    "buffer, the same threads; their spread is read_bw_spread_pct in report.json; on a GPU "
                    "its DRAM peak from memory clock and bus width, which no kernel fully reaches) divided "
                    "by those bytes: a decode step that did nothing but stream them (the cache, tens of "
                    "MB at most, may partly come from the last-level cache). FLOP per prompt token: every layer's matmuls (2 per weight) and "
                    "attention over the mean causal length; the limit is the compute peak gpt2c-kbench "
                    "measured (int8 for Q8_0 weights, else fp32 FMA of this ISA path) divided by them. "
                    "The prefill limit is not computed without kbench figures or on a GPU.</p>\n");
}

static void section_memory(bench_sb *s, const cJSON *phases)
{
    const cJSON *m = bench_get(phases, "memory");
    bench_sb_put(s, "<h2 id=\"memory\">Phase 3 &middot; Memory</h2>\n");
    if (!cJSON_IsObject(m)) {
        phase_not_run(s, m, "phases.memory");
        return;
    }
    static const field F[] = {
        {"rss_after_load_mb", "RSS after load", "MiB", F_MIB},
        {"peak_rss_mb", "Peak RSS", "MiB", F_MIB},
        {"peak_reset", "Peak counter reset after load", "", F_PLAIN},
        {"weights_bytes", "Weights", "bytes", F_BYTES},
        {"weights_mapped", "Weights read from the mapped file", "", F_PLAIN},
        {"weights_packed_bytes", "Weights packed for the CPU kernels", "bytes", F_BYTES},
        {"kv_bytes_per_token", "KV cache per token", "bytes", F_BYTES},
        {"kv_bytes_total", "KV cache in all", "bytes", F_BYTES},
        {"arena_bytes", "Activation arena", "bytes", F_BYTES},
        {"allocs_per_token", "Engine allocations per decoded token", "", F_PLAIN},
    };
    bench_sb_put(s, "<div class=\"cols\"><div><h3>Footprint</h3>\n");
    kv_table(s, m, "phases.memory", F, NFIELDS(F));
    const cJSON *pool = bench_get(m, "kv_pool");
    if (cJSON_IsObject(pool)) {
        static const field P[] = {
            {"block_tokens", "Positions per block", "", F_PLAIN},
            {"blocks", "Blocks in the pool", "", F_PLAIN},
            {"bytes_per_token", "KV per token", "bytes", F_BYTES},
            {"pool_mb", "Pool (reserved address space)", "MiB", F_MIB},
            {"peak_blocks_used", "Most blocks held at once (phase 4)", "", F_PLAIN},
            {"peak_used_mb", "Most KV memory held at once", "MiB", F_MIB},
        };
        bench_sb_put(s, "<h3>Serving engine's paged KV pool</h3>\n");
        kv_table(s, pool, "phases.memory.kv_pool", P, NFIELDS(P));
    }
    bench_sb_put(s, "</div><div><h3>Growth over repeated requests</h3>\n");
    const cJSON *leak = bench_get(m, "leak");
    if (!cJSON_IsObject(leak)) {
        bench_sb_put(s, "<p class=\"notrun\">");
        tagged(s, "span", "", leak, "phases.memory.leak");
        bench_sb_put(s, " not measured.</p></div></div>\n");
        return;
    }
    static const field L[] = {
        {"window_s", "Window", "s", F_PLAIN},
        {"requests", "Requests", "", F_PLAIN},
        {"slope_mb_per_hour", "Fitted slope", "MiB/hour", F_PLAIN},
        {"ci95_mb_per_hour", "95 % interval of the slope", "MiB/hour", F_LIST},
        {"verdict", "Verdict", "", F_PLAIN},
    };
    kv_table(s, leak, "phases.memory.leak", L, NFIELDS(L));
    const cJSON *samples = bench_get(leak, "samples");
    int n = cJSON_IsArray(samples) ? cJSON_GetArraySize(samples) : 0;
    bench_sb_printf(s, "<details><summary>RSS samples (%d)</summary>\n<table><thead><tr><th class=\"num\">#</th>"
                       "<th class=\"num\">time (s)</th><th class=\"num\">RSS (MiB)</th></tr></thead><tbody>\n",
                    n);
    if (samples && !cJSON_IsArray(samples)) {
        bench_sb_put(s, "<tr><td colspan=\"3\">");
        tagged(s, "span", "", samples, "phases.memory.leak.samples");
        bench_sb_put(s, "</td></tr>\n");
    }
    int i = 0;
    const cJSON *pt;
    cJSON_ArrayForEach(pt, samples)
    {
        jpath rp = jp_idx("phases.memory.leak.samples", i);
        bench_sb_printf(s, "<tr><td class=\"num muted\">%d</td>", i++);
        if (cJSON_IsArray(pt)) {
            for (int k = 0; k < 2; k++) {
                jpath ep = jp_idx(rp.s, k);
                tagged(s, "td", "num", cJSON_GetArrayItem(pt, k), ep.s);
            }
        } else {
            bench_sb_put(s, "<td colspan=\"2\">");
            tagged(s, "span", "", pt, rp.s);
            bench_sb_put(s, "</td>");
        }
        bench_sb_put(s, "</tr>\n");
    }
    bench_sb_put(s, "</tbody></table></details></div></div>\n");
}

static void section_throughput(bench_sb *s, const cJSON *phases)
{
    const cJSON *t = bench_get(phases, "throughput");
    bench_sb_put(s, "<h2 id=\"throughput\">Phase 4 &middot; Throughput</h2>\n");
    if (!cJSON_IsObject(t)) {
        phase_not_run(s, t, "phases.throughput");
        return;
    }
    static const field F[] = {
        {"prompt_tokens", "Prompt per request", "tokens", F_PLAIN},
        {"generated_tokens", "Generated per request", "tokens", F_PLAIN},
        {"window_s", "Window per concurrency", "s", F_PLAIN},
        {"mode", "Serving mode", "", F_PLAIN},
        {"max_seqs", "Sequences per step at most", "", F_PLAIN},
    };
    kv_table(s, t, "phases.throughput", F, NFIELDS(F));
    const cJSON *rows = bench_get(t, "rows");
    bench_sb_put(s, "<h3>Rates</h3>\n<table><thead><tr><th class=\"num\">clients</th><th class=\"num\">requests</th>"
                    "<th class=\"num\">failures</th><th class=\"num\">mismatches</th><th class=\"num\">window (s)</th><th class=\"num\">req/s</th>"
                    "<th class=\"num\">tokens/s</th><th class=\"num\">scaling (\xc3\x97 one client)</th>"
                    "<th class=\"num\">mean batch (tokens)</th><th class=\"num\">mean batch (sequences)</th>"
                    "<th class=\"num\">TPOT p50 (\xc3\x97 one client)</th><th class=\"num\">forward steps</th>"
                    "<th class=\"num\">KV blocks (peak)</th></tr></thead><tbody>\n");
    int i = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows)
    {
        jpath rp = jp_idx("phases.throughput.rows", i++);
        double fl = 0, mm = 0;
        int bad = (bench_get_num(row, "failures", &fl) && fl > 0) || (bench_get_num(row, "mismatches", &mm) && mm > 0);
        bench_sb_printf(s, "<tr%s>", bad ? " class=\"failrow\"" : "");
        tagged_key(s, "td", "num hl", row, rp.s, "concurrency");
        tagged_key(s, "td", "num", row, rp.s, "requests");
        tagged_key(s, "td", fl > 0 ? "num worse" : "num", row, rp.s, "failures");
        tagged_key(s, "td", mm > 0 ? "num worse" : "num", row, rp.s, "mismatches");
        tagged_key(s, "td", "num", row, rp.s, "elapsed_s");
        tagged_key(s, "td", "num hl", row, rp.s, "req_s");
        tagged_key(s, "td", "num", row, rp.s, "tok_s");
        tagged_key(s, "td", "num", row, rp.s, "scaling");
        tagged_key(s, "td", "num", row, rp.s, "mean_batch_rows");
        tagged_key(s, "td", "num", row, rp.s, "mean_batch_seqs");
        tagged_key(s, "td", "num", row, rp.s, "tpot_p50_vs_one_client");
        tagged_key(s, "td", "num", row, rp.s, "steps");
        tagged_key(s, "td", "num", row, rp.s, "kv_peak_blocks");
        bench_sb_put(s, "</tr>\n");
    }
    if (!cJSON_IsArray(rows) || cJSON_GetArraySize(rows) == 0)
        bench_sb_put(s, "<tr><td colspan=\"13\" class=\"muted\">no rows</td></tr>\n");
    bench_sb_put(s, "</tbody></table>\n");
    static const struct {
        const char *key, *title;
    } lat[] = {{"latency_ms", "Request latency, submit to last token (ms)"},
               {"ttft_ms", "Time to first token, queueing included (ms)"},
               {"tpot_ms", "Time per output token after the first (ms)"}};
    for (size_t k = 0; k < sizeof lat / sizeof lat[0]; k++) {
        bench_sb_printf(s, "<h3>%s</h3>\n<table>", lat[k].title);
        stats_head(s, "clients", NULL);
        bench_sb_put(s, "<tbody>\n");
        i = 0;
        cJSON_ArrayForEach(row, rows)
        {
            jpath rp = jp_idx("phases.throughput.rows", i++);
            double cc;
            char b[BENCH_NUM_BUF];
            bench_sb_printf(s, "<tr><td class=\"num hl\">%s</td>",
                            bench_get_num(row, "concurrency", &cc) ? bench_fmt_num(cc, b, sizeof b) : DASH);
            stats_cells(s, row, rp.s, lat[k].key);
            bench_sb_put(s, "</tr>\n");
        }
        bench_sb_put(s, "</tbody></table>\n");
    }
}

/* An array of strings as a list, each item tagged; an empty one says so. */
static void string_items(bench_sb *s, const cJSON *arr, const char *path, const char *empty)
{
    if (!cJSON_IsArray(arr)) {
        bench_sb_put(s, "<p>");
        tagged(s, "span", "", arr, path);
        bench_sb_put(s, "</p>\n");
        return;
    }
    if (cJSON_GetArraySize(arr) == 0) {
        bench_sb_printf(s, "<p class=\"muted\">%s</p>\n", empty);
        return;
    }
    bench_sb_put(s, "<ul>\n");
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        jpath p = jp_idx(path, i++);
        tagged(s, "li", "", e, p.s);
    }
    bench_sb_put(s, "</ul>\n");
}

static void section_soak(bench_sb *s, const cJSON *phases)
{
    const cJSON *k = bench_get(phases, "soak");
    bench_sb_put(s, "<h2 id=\"soak\">Soak</h2>\n");
    if (!cJSON_IsObject(k)) {
        phase_not_run(s, k, "phases.soak");
        return;
    }
    const char *v = bench_get_str(k, "verdict");
    int pass = v && !strcmp(v, "PASS");
    bench_sb_printf(s, "<div class=\"banner %s\">Soak verdict: ", pass ? "ok" : "bad");
    tagged_key(s, "span", "", k, "phases.soak", "verdict");
    if (cJSON_IsFalse(bench_get(k, "complete")))
        bench_sb_put(s, " (interrupted before its time was up)");
    bench_sb_put(s, "</div>\n");
    string_items(s, bench_get(k, "reasons"), "phases.soak.reasons", "No reason to fail.");
    static const field RUN[] = {
        {"minutes", "Asked for", "minutes", F_PLAIN},
        {"duration_s", "Ran", "s", F_PLAIN},
        {"complete", "Ran its whole time", "", F_PLAIN},
        {"max_clients", "Client threads at most", "", F_PLAIN},
        {"max_prompt_tokens", "Prompt at most", "tokens", F_PLAIN},
        {"max_new_tokens", "New tokens at most", "", F_PLAIN},
        {"check_one_in", "One request in this many checked alone", "", F_PLAIN},
        {"requests", "Requests", "", F_PLAIN},
        {"completed", "Completed", "", F_PLAIN},
        {"cancelled", "Cancelled", "", F_PLAIN},
        {"abandoned", "Freed unfinished (client gone)", "", F_PLAIN},
        {"failures", "Failed", "", F_PLAIN},
        {"checked", "Checked against the request run alone", "", F_PLAIN},
        {"mismatches", "Mismatches", "", F_PLAIN},
        {"unchecked", "Picked for the check, not checked", "", F_PLAIN},
        {"generated_tokens", "Tokens generated", "", F_PLAIN},
    };
    static const field GROW[] = {
        {"sample_interval_s", "Sampled every", "s", F_PLAIN},
        {"warmup_s", "Warm-up left out of the fit", "s", F_PLAIN},
        {"fit_samples", "Samples fitted", "", F_PLAIN},
        {"rss_slope_mb_per_hour", "RSS growth (least squares)", "MiB/hour", F_PLAIN},
        {"rss_slope_se_mb_per_hour", "Its standard error", "MiB/hour", F_PLAIN},
        {"rss_ci95_mb_per_hour", "95 % interval", "MiB/hour", F_LIST},
        {"growth_threshold_mb_per_hour", "Fails above (interval excluding 0)", "MiB/hour", F_PLAIN},
        {"fds_first", "Open fds, first sample after the warm-up", "", F_PLAIN},
        {"fds_last", "Open fds, last sample", "", F_PLAIN},
        {"fds_max", "Open fds, most", "", F_PLAIN},
        {"fd_growth", "Open fd growth", "", F_PLAIN},
    };
    bench_sb_put(s, "<div class=\"cols\"><div><h3>Requests</h3>\n");
    kv_table(s, k, "phases.soak", RUN, NFIELDS(RUN));
    bench_sb_put(s, "</div><div><h3>Growth</h3>\n");
    kv_table(s, k, "phases.soak", GROW, NFIELDS(GROW));
    bench_sb_put(s, "<h3>Failed or mismatched requests (the first 20)</h3>\n");
    string_items(s, bench_get(k, "problems"), "phases.soak.problems", "None.");
    const cJSON *samples = bench_get(k, "samples");
    int n = cJSON_IsArray(samples) ? cJSON_GetArraySize(samples) : 0;
    bench_sb_printf(s, "<details><summary>Samples (%d)</summary>\n<table><thead><tr><th class=\"num\">#</th>"
                       "<th class=\"num\">time (s)</th><th class=\"num\">RSS (MiB)</th><th class=\"num\">open fds</th>"
                       "<th class=\"num\">clients</th></tr></thead><tbody>\n",
                    n);
    if (samples && !cJSON_IsArray(samples)) {
        bench_sb_put(s, "<tr><td colspan=\"5\">");
        tagged(s, "span", "", samples, "phases.soak.samples");
        bench_sb_put(s, "</td></tr>\n");
    }
    int i = 0;
    const cJSON *pt;
    cJSON_ArrayForEach(pt, samples)
    {
        jpath rp = jp_idx("phases.soak.samples", i);
        bench_sb_printf(s, "<tr><td class=\"num muted\">%d</td>", i++);
        if (cJSON_IsArray(pt)) {
            int m = cJSON_GetArraySize(pt);
            for (int c = 0; c < m; c++) {
                jpath ep = jp_idx(rp.s, c);
                tagged(s, "td", "num", cJSON_GetArrayItem(pt, c), ep.s);
            }
        } else {
            bench_sb_put(s, "<td colspan=\"4\">");
            tagged(s, "span", "", pt, rp.s);
            bench_sb_put(s, "</td>");
        }
        bench_sb_put(s, "</tr>\n");
    }
    bench_sb_put(s, "</tbody></table></details></div></div>\n");
}

static void section_environment(bench_sb *s, const cJSON *r)
{
    const cJSON *env = bench_get(r, "environment");
    bench_sb_put(s, "<h2 id=\"environment\">Environment</h2>\n");
    if (!cJSON_IsObject(env)) {
        phase_not_run(s, env, "environment");
        return;
    }
    static const field F[] = {
        {"backend", "Backend", "", F_PLAIN},
        {"cpu_model", "CPU", "", F_PLAIN},
        {"cores_online", "Cores online", "", F_PLAIN},
        {"threads_used", "Threads used", "", F_PLAIN},
        {"isa", "ISA path used", "", F_PLAIN},
        {"isa_available", "ISA paths available", "", F_LIST},
        {"gemm", "GEMM path", "", F_PLAIN},
        {"kv_type", "KV cache elements", "", F_PLAIN},
        {"memory_total_mb", "Memory", "MiB", F_MIB},
        {"os", "OS", "", F_PLAIN},
        {"kernel", "Kernel", "", F_PLAIN},
        {"compiler", "Compiler", "", F_PLAIN},
        {"cflags", "C flags", "", F_CODE},
        {"build_type", "Build type", "", F_PLAIN},
        {"git_commit", "Git commit", "", F_CODE},
        {"git_dirty", "Uncommitted changes", "", F_PLAIN},
        {"gpt2c_version", "gpt2c version", "", F_PLAIN},
        {"hostname", "Host", "", F_PLAIN},
    };
    bench_sb_put(s, "<div class=\"cols\"><div><h3>Machine and build</h3>\n");
    kv_table(s, env, "environment", F, NFIELDS(F));
    bench_sb_put(s, "</div><div><h3>Model</h3>\n");
    const cJSON *model = bench_get(env, "model");
    if (!cJSON_IsObject(model)) {
        bench_sb_put(s, "<p class=\"notrun\">");
        tagged(s, "span", "", model, "environment.model");
        bench_sb_put(s, " not recorded.</p>\n");
    } else {
        static const field M[] = {
            {"path", "Path", "", F_CODE},
            {"file_name", "File", "", F_CODE},
            {"size_bytes", "Size", "bytes", F_BYTES},
            {"dtype", "Weight type", "", F_PLAIN},
            {"crc32", "CRC-32 of the file", "", F_CODE},
            {"n_layer", "Layers", "", F_PLAIN},
            {"n_embd", "Embedding width", "", F_PLAIN},
            {"n_head", "Heads", "", F_PLAIN},
            {"n_ctx", "Context", "tokens", F_PLAIN},
            {"n_vocab", "Vocabulary", "tokens", F_PLAIN},
            {"params", "Parameters", "", F_PLAIN},
            {"source", "Source", "", F_PLAIN},
        };
        kv_table(s, model, "environment.model", M, NFIELDS(M));
    }
    bench_sb_put(s, "<h3>GPU</h3>\n");
    const cJSON *gpu = bench_get(env, "gpu");
    if (!cJSON_IsObject(gpu)) {
        bench_sb_put(s, "<p class=\"notrun\">");
        tagged(s, "span", "", gpu, "environment.gpu");
        bench_sb_put(s, " none used (a CPU run).</p>\n");
    } else {
        static const field G[] = {
            {"name", "GPU", "", F_PLAIN},
            {"memory_mb", "Memory", "MiB", F_MIB},
            {"driver", "Driver", "", F_PLAIN},
        };
        bench_sb_put(s, "<table class=\"kv\"><tbody>\n");
        for (int i = 0; i < NFIELDS(G); i++)
            kv_row(s, gpu, "environment.gpu", &G[i]);
        const cJSON *clk = bench_get(gpu, "clocks_mhz");
        if (cJSON_IsObject(clk)) {
            static const field C[] = {{"sm", "SM clock", "MHz", F_PLAIN}, {"memory", "Memory clock", "MHz", F_PLAIN}};
            for (int i = 0; i < NFIELDS(C); i++)
                kv_row(s, clk, "environment.gpu.clocks_mhz", &C[i]);
        } else {
            static const field C1 = {"clocks_mhz", "Clocks", "MHz", F_PLAIN};
            kv_row(s, gpu, "environment.gpu", &C1);
        }
        bench_sb_put(s, "</tbody></table>\n");
    }
    /* what the CUDA runtime says of the device that ran (a cuda run only) */
    const cJSON *cd = bench_get(env, "cuda_device");
    if (cJSON_IsObject(cd)) {
        bench_sb_put(s, "<h3>CUDA device</h3>\n<table class=\"kv\"><tbody>\n");
        const cJSON *it;
        cJSON_ArrayForEach(it, cd)
        {
            bench_sb_put(s, "<tr><th>");
            esc(s, it->string);
            bench_sb_put(s, "</th>");
            tagged_key(s, "td", "num", cd, "environment.cuda_device", it->string);
            bench_sb_put(s, "</tr>\n");
        }
        bench_sb_put(s, "</tbody></table>\n");
    } else {
        bench_sb_put(s, "<p class=\"notrun\">CUDA device: ");
        tagged(s, "span", "", cd, "environment.cuda_device");
        bench_sb_put(s, " (not a CUDA run).</p>\n");
    }
    bench_sb_put(s, "</div></div>\n<h3>CPU flags</h3>\n<div class=\"flags\">");
    put_list(s, bench_get(env, "cpu_flags"), "environment.cpu_flags", " ", NULL);
    bench_sb_put(s, "</div>\n");
}

static void section_settings(bench_sb *s, const cJSON *r)
{
    bench_sb_put(s, "<h2 id=\"settings\">Settings and run</h2>\n<div class=\"cols\"><div><h3>Settings</h3>\n");
    const cJSON *st = bench_get(r, "settings");
    if (!cJSON_IsObject(st)) {
        phase_not_run(s, st, "settings");
    } else {
        static const field F[] = {
            {"model", "Model", "", F_CODE},
            {"reference", "Reference model", "", F_CODE},
            {"backend", "Backend", "", F_PLAIN},
            {"threads", "Threads", "", F_PLAIN},
            {"isa", "ISA asked for", "", F_PLAIN},
            {"gemm", "GEMM asked for", "", F_PLAIN},
            {"kv_type", "KV cache asked for", "", F_PLAIN},
            {"phases", "Phases", "", F_LIST},
            {"quick", "Quick mode", "", F_PLAIN},
            {"seed", "Seed", "", F_PLAIN},
            {"soak_minutes", "Soak", "minutes", F_PLAIN},
        };
        kv_table(s, st, "settings", F, NFIELDS(F));
    }
    bench_sb_put(s, "</div><div><h3>Run</h3>\n");
    static const field R[] = {
        {"schema", "Schema", "", F_CODE},
        {"schema_version", "Schema version", "", F_PLAIN},
        {"complete", "Complete", "", F_PLAIN},
        {"created_utc", "Created (UTC)", "", F_PLAIN},
        {"command", "Command", "", F_CODE},
        {"wall_s", "Wall time", "s", F_PLAIN},
    };
    bench_sb_put(s, "<table class=\"kv\"><tbody>\n");
    for (int i = 0; i < NFIELDS(R); i++)
        kv_row(s, r, "", &R[i]);
    const cJSON *cmp = bench_get(r, "compare");
    bench_sb_put(s, "<tr><th>Compared with an earlier run</th><td class=\"str\">");
    if (cJSON_IsObject(cmp))
        bench_sb_put(s, "<a href=\"#compare\">yes, see above</a>");
    else
        tagged(s, "span", "", cmp, "compare");
    bench_sb_put(s, "</td></tr>\n</tbody></table>\n</div></div>\n");
}

int bench_write_html(const cJSON *report, const char *path, char *err, size_t errlen)
{
    if (!cJSON_IsObject(report))
        return bench_report_err(err, errlen, path, "no report to render (not a JSON object)");
    bench_sb sb = {0};
    bench_sb *s = &sb;
    const char *created = bench_get_str(report, "created_utc");
    bench_sb_put(s, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                    "<meta name=\"generator\" content=\"gpt2c-bench\"><title>gpt2c benchmark ");
    esc(s, created ? created : "");
    bench_sb_printf(s, "</title><style>%s</style></head>\n<body><main>\n", CSS);

    const cJSON *phases = bench_get_obj(report, "phases");
    section_header(s, report);
    section_headline(s, report);
    section_compare(s, report);

    bench_sb_put(s, "<h2 id=\"charts\">Charts</h2>\n<div class=\"charts\">\n");
    const cJSON *lat = bench_get_obj(phases, "latency");
    const cJSON *tp = bench_get_obj(phases, "throughput");
    chart_ttft(s, lat);
    chart_decode(s, lat);
    chart_itl(s, lat);
    chart_rss(s, bench_get_obj(phases, "memory"));
    chart_throughput(s, tp);
    chart_scaling(s, tp);
    chart_soak(s, bench_get_obj(phases, "soak"));
    bench_sb_put(s, "</div>\n");

    section_validation(s, phases);
    section_latency(s, phases);
    section_memory(s, phases);
    section_throughput(s, phases);
    section_soak(s, phases);
    bench_html_roofline(s, report);
    section_environment(s, report);
    section_settings(s, report);

    bench_sb_put(s, "<footer>Made by gpt2c-bench from report.json alone. Times in milliseconds unless marked, "
                    "MiB = 2<sup>20</sup> bytes. Numbers: integral values in full, others to 6 significant "
                    "digits (printf %.6g); &mdash; means not measured. Each figure's cell carries its JSON "
                    "path in a data-k attribute.</footer>\n</main></body></html>\n");
    if (sb.oom) {
        bench_sb_free(&sb);
        return bench_report_err(err, errlen, path, "out of memory rendering the report");
    }
    int rc = bench_write_file_atomic(path, sb.p, sb.n, err, errlen);
    bench_sb_free(&sb);
    return rc;
}
