/* The report side of gpt2c-bench: report.json (built by the bench) becomes
 * report.html and summary.md; --compare fills report["compare"] from an older
 * report.json. The structure is reports/README.md (schema version 1), whose
 * JSON Schema is reports/report.schema.json.
 *
 * Every function returns 0, or -1 with a message naming the file and the
 * problem in err (if err is not NULL). Files are written to a temporary name
 * beside the target and renamed into place, so a reader never sees half a file.
 * Any phase and any figure may be null (rendered "—"); unknown keys are ignored. */
#ifndef GPT2C_BENCH_REPORT_H
#define GPT2C_BENCH_REPORT_H

#include <stdarg.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* The "schema" and "schema_version" values this code reads and writes. */
#define BENCH_REPORT_SCHEMA "gpt2c-bench-report"
#define BENCH_REPORT_SCHEMA_VERSION 1

int bench_write_html(const cJSON *report, const char *path, char *err, size_t errlen);
int bench_write_summary_md(const cJSON *report, const char *path, char *err, size_t errlen);

/* Reads OLD report.json, fills report["compare"] per reports/README.md
 * (replacing any compare already there). On error report is unchanged. */
int bench_compare(cJSON *report, const char *old_path, char *err, size_t errlen);
/* The row of report["compare"] for a headline key, or NULL. */
const cJSON *bench_compare_row(const cJSON *cmp, const char *key);

/* ---- helpers shared by the report files (report_html.c defines them) ---- */

/* The number rule of report.html (reports/README.md, "Numbers in report.html"):
 * an integral value with |v| < 1e15 is printed as an integer ("%.0f", -0 as 0),
 * any other finite value with "%.6g"; non-finite values as "—". Returns buf.
 * tests/reference/validate_report.py implements the same rule. */
#define BENCH_NUM_BUF 48
const char *bench_fmt_num(double v, char *buf, size_t len);

/* A growing string. On allocation failure it stops growing and sets oom. */
typedef struct bench_sb {
    char *p;
    size_t n, cap;
    int oom;
} bench_sb;

void bench_sb_put(bench_sb *s, const char *text);
void bench_sb_putn(bench_sb *s, const char *text, size_t n);
void bench_sb_printf(bench_sb *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Phase 2's bandwidth probes around one prompt length that differ by this
 * much (read_bw_spread_pct) or more are named in summary.md and report.html:
 * the ratios to the bandwidth limit are then loose. */
#define BENCH_BW_SPREAD_NOTED_PCT 10.0
void bench_sb_vprintf(bench_sb *s, const char *fmt, va_list ap);
void bench_sb_free(bench_sb *s);

/* Writes len bytes to path via path.tmp.<pid> + rename. */
int bench_write_file_atomic(const char *path, const char *data, size_t len, char *err,
                            size_t errlen);

/* Lookups that tolerate NULL parents and missing keys. */
const cJSON *bench_get(const cJSON *obj, const char *key);
/* 1 and *out set when obj[key] is a finite number, else 0. */
int bench_get_num(const cJSON *obj, const char *key, double *out);
/* The string obj[key], or NULL. */
const char *bench_get_str(const cJSON *obj, const char *key);
/* An object member that is an object (a phase, a sub-object), or NULL. */
const cJSON *bench_get_obj(const cJSON *obj, const char *key);
/* The largest read_bw_spread_pct over phase 2's rows (0 where none has one). */
double bench_max_bw_spread(const cJSON *rows);

/* Reports an error as "<path>: <message>" into err. Always returns -1. */
int bench_report_err(char *err, size_t errlen, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- the kernel roofline (report_roofline.c) ------------------------------ */

/* Reads a gpt2c-kbench --json file for report["kbench"]: it must be a JSON
 * object with "schema": "gpt2c-kbench", "schema_version": 1, a "ceilings"
 * object and a "results" array (tools/kbench/README.md). *out owned by the
 * caller. */
int bench_kbench_load(const char *path, cJSON **out, char *err, size_t errlen);
/* The "Kernel roofline" section of report.html from report["kbench"]: a
 * log-log SVG (#chart-roofline) with the measured roofs and one point per
 * kernel, native GEMM vs OpenBLAS per shape, and every figure in tables. A
 * null or missing kbench gives a one-line note and no chart. */
void bench_html_roofline(bench_sb *s, const cJSON *report);

/* report_html.c's writers, shared with report_roofline.c: text and attribute
 * escaping, and <tag data-k="path">value</tag> by the number rule. */
void bench_html_esc(bench_sb *s, const char *text);
void bench_html_tagged(bench_sb *s, const char *tag, const char *cls, const cJSON *v, const char *path);

/* The headline figures, in summary order: key, label, unit, 1 if higher is
 * better. Shared by the HTML, summary.md and compare. */
typedef struct bench_headline_fig {
    const char *key;
    const char *label;
    const char *unit;
    int higher_better;
} bench_headline_fig;

extern const bench_headline_fig bench_headline_figs[];
extern const int bench_n_headline_figs;

#endif
