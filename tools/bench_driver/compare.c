/* --compare OLD.json: one row per headline figure with its change, whether the
 * change is an improvement, and whether it is beyond the figure's noise band;
 * plus the environment keys that differ between the runs (so a reader sees at
 * once when two reports were not made on the same footing). The rules are in
 * reports/README.md ("Comparing two runs"). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

/* The fixed band for figures measured once, in percent. */
#define NOISE_FIXED_PCT 5.0
/* Figures with repeats: this many coefficients of variation. */
#define NOISE_CV_MULT 3.0

static char *read_text(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        bench_report_err(err, errlen, path, "cannot open the old report: %s", strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        char *bigger = realloc(buf, 2 * cap + 1);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) {
        bench_report_err(err, errlen, path, "out of memory reading the old report");
        return NULL;
    }
    if (bad) {
        free(buf);
        bench_report_err(err, errlen, path, "read error on the old report");
        return NULL;
    }
    buf[n] = '\0';
    if (n == 0) {
        free(buf);
        bench_report_err(err, errlen, path, "the old report is empty");
        return NULL;
    }
    return buf;
}

/* The latency-phase row whose coefficient of variation stands for a headline
 * figure: the row at the validation phase's prompt length, else the row with
 * the shortest prompt. NULL if the latency phase has no rows. */
static const cJSON *headline_latency_row(const cJSON *report)
{
    const cJSON *phases = bench_get_obj(report, "phases");
    const cJSON *rows = bench_get(bench_get_obj(phases, "latency"), "rows");
    if (!cJSON_IsArray(rows))
        return NULL;
    double want;
    int have_want = bench_get_num(bench_get_obj(phases, "validation"), "prompt_tokens", &want);
    const cJSON *best = NULL;
    double best_p = INFINITY;
    const cJSON *row;
    cJSON_ArrayForEach(row, rows)
    {
        double p;
        if (!cJSON_IsObject(row) || !bench_get_num(row, "prompt_tokens", &p))
            continue;
        if (have_want && p == want)
            return row;
        if (p < best_p) {
            best_p = p;
            best = row;
        }
    }
    return best;
}

/* The coefficient of variation of a headline figure with repeats, or -1. */
static double figure_cv(const cJSON *report, const char *key)
{
    const char *stats_key = NULL;
    if (!strcmp(key, "ttft_ms"))
        stats_key = "ttft_ms";
    else if (!strcmp(key, "decode_tok_s"))
        stats_key = "decode_tok_s";
    if (!stats_key)
        return -1;
    double cv;
    if (bench_get_num(bench_get_obj(headline_latency_row(report), stats_key), "cv", &cv) && cv >= 0)
        return cv;
    return -1;
}

/* Half the width of the leak slope's 95 % interval, or -1. */
static double leak_halfwidth(const cJSON *report)
{
    const cJSON *leak = bench_get_obj(
        bench_get_obj(bench_get_obj(report, "phases"), "memory"), "leak");
    const cJSON *ci = bench_get(leak, "ci95_mb_per_hour");
    if (!cJSON_IsArray(ci) || cJSON_GetArraySize(ci) != 2)
        return -1;
    const cJSON *lo = cJSON_GetArrayItem(ci, 0), *hi = cJSON_GetArrayItem(ci, 1);
    if (!cJSON_IsNumber(lo) || !cJSON_IsNumber(hi) || !isfinite(lo->valuedouble) ||
        !isfinite(hi->valuedouble) || hi->valuedouble < lo->valuedouble)
        return -1;
    return 0.5 * (hi->valuedouble - lo->valuedouble);
}

static void add_num_or_null(cJSON *obj, const char *key, int have, double v)
{
    if (have)
        cJSON_AddNumberToObject(obj, key, v);
    else
        cJSON_AddNullToObject(obj, key);
}

static cJSON *compare_row(const cJSON *report, const cJSON *old, const bench_headline_fig *fig)
{
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "name", fig->key);
    double o = 0, n = 0;
    int have_o = bench_get_num(bench_get_obj(old, "headline"), fig->key, &o);
    int have_n = bench_get_num(bench_get_obj(report, "headline"), fig->key, &n);
    add_num_or_null(row, "old", have_o, o);
    add_num_or_null(row, "new", have_n, n);

    /* The noise band, in percent of the old value (null if it cannot be said). */
    int have_band = 0;
    double band_pct = NOISE_FIXED_PCT;
    double leak_hw_sum = -1;
    if (!strcmp(fig->key, "leak_mb_per_hour")) {
        double hw_o = leak_halfwidth(old), hw_n = leak_halfwidth(report);
        if (hw_o >= 0 && hw_n >= 0) {
            leak_hw_sum = hw_o + hw_n;
            if (have_o && o != 0) {
                band_pct = 100.0 * leak_hw_sum / fabs(o);
                have_band = 1;
            }
        } else {
            have_band = 1; /* fixed band */
        }
    } else {
        double cv_o = figure_cv(old, fig->key), cv_n = figure_cv(report, fig->key);
        double cv = cv_o > cv_n ? cv_o : cv_n;
        if (cv >= 0)
            band_pct = NOISE_CV_MULT * cv * 100.0;
        have_band = 1;
    }

    if (!have_o || !have_n) {
        cJSON_AddNullToObject(row, "change_pct");
        cJSON_AddNullToObject(row, "better");
        cJSON_AddFalseToObject(row, "beyond_noise");
        add_num_or_null(row, "noise_pct", have_band, band_pct);
        return row;
    }
    double diff = n - o;
    int have_change = o != 0;
    double change = have_change ? 100.0 * diff / fabs(o) : 0;
    add_num_or_null(row, "change_pct", have_change, change);
    if (diff == 0)
        cJSON_AddNullToObject(row, "better");
    else
        cJSON_AddBoolToObject(row, "better", fig->higher_better ? diff > 0 : diff < 0);

    int beyond;
    if (leak_hw_sum >= 0)
        beyond = fabs(diff) > leak_hw_sum; /* the two 95 % intervals do not overlap */
    else if (!have_change)
        beyond = diff != 0; /* from 0 to anything else: an unbounded relative change */
    else
        beyond = fabs(change) > band_pct;
    cJSON_AddBoolToObject(row, "beyond_noise", beyond);
    add_num_or_null(row, "noise_pct", have_band, band_pct);
    return row;
}

/* The value at a dotted path ("environment.model.crc32") as a string for the
 * environment comparison; NULL when absent or null. Returns buf or the string. */
static const char *env_value(const cJSON *report, const char *path, char *buf, size_t len)
{
    const cJSON *v = report;
    char part[64];
    const char *p = path;
    while (*p && v) {
        size_t k = strcspn(p, ".");
        if (k >= sizeof part)
            return NULL;
        memcpy(part, p, k);
        part[k] = '\0';
        v = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, part) : NULL;
        p += k;
        if (*p == '.')
            p++;
    }
    if (!v || cJSON_IsNull(v))
        return NULL;
    if (cJSON_IsString(v))
        return v->valuestring;
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v) ? "true" : "false";
    if (cJSON_IsNumber(v))
        return bench_fmt_num(v->valuedouble, buf, len);
    if (cJSON_IsArray(v)) { /* a list of strings: space-separated */
        size_t used = 0;
        buf[0] = '\0';
        const cJSON *e;
        cJSON_ArrayForEach(e, v)
        {
            if (!cJSON_IsString(e))
                continue;
            int w = snprintf(buf + used, len - used, "%s%s", used ? " " : "", e->valuestring);
            if (w < 0 || (size_t)w >= len - used)
                break;
            used += (size_t)w;
        }
        return buf;
    }
    return NULL;
}

/* Environment and settings keys that change what a figure means. The git
 * commit is not here: it is in old_git_commit, and usually the point. */
static const char *const ENV_KEYS[] = {
    "environment.backend", "environment.cpu_model", "environment.cores_online",
    "environment.threads_used", "environment.isa", "environment.gemm",
    "environment.memory_total_mb", "environment.os", "environment.kernel",
    "environment.compiler", "environment.cflags", "environment.build_type",
    "environment.hostname", "environment.model.file_name", "environment.model.dtype",
    "environment.model.crc32", "environment.model.params", "environment.gpu.name",
    "environment.gpu.driver", "settings.quick", "settings.reference",
};

static cJSON *env_changes(const cJSON *report, const cJSON *old)
{
    cJSON *list = cJSON_CreateArray();
    for (size_t i = 0; i < sizeof ENV_KEYS / sizeof ENV_KEYS[0]; i++) {
        char bo[512], bn[512];
        const char *vo = env_value(old, ENV_KEYS[i], bo, sizeof bo);
        const char *vn = env_value(report, ENV_KEYS[i], bn, sizeof bn);
        if ((!vo && !vn) || (vo && vn && !strcmp(vo, vn)))
            continue;
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "key", ENV_KEYS[i]);
        if (vo)
            cJSON_AddStringToObject(c, "old", vo);
        else
            cJSON_AddNullToObject(c, "old");
        if (vn)
            cJSON_AddStringToObject(c, "new", vn);
        else
            cJSON_AddNullToObject(c, "new");
        cJSON_AddItemToArray(list, c);
    }
    return list;
}

int bench_compare(cJSON *report, const char *old_path, char *err, size_t errlen)
{
    if (!report || !old_path)
        return bench_report_err(err, errlen, old_path ? old_path : "(null)",
                                "bench_compare: no report or no old path");
    char *text = read_text(old_path, err, errlen);
    if (!text)
        return -1;
    const char *end = NULL;
    cJSON *old = cJSON_ParseWithOpts(text, &end, 1);
    if (!old) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        free(text);
        return bench_report_err(err, errlen, old_path,
                                "the old report is not valid JSON (error near byte %zu)", at);
    }
    free(text);
    int rc = -1;
    const char *schema = bench_get_str(old, "schema");
    const cJSON *ver = bench_get(old, "schema_version");
    if (!cJSON_IsObject(old) || !schema || strcmp(schema, BENCH_REPORT_SCHEMA) != 0) {
        bench_report_err(err, errlen, old_path,
                         "not a gpt2c bench report (\"schema\" is not \"%s\")", BENCH_REPORT_SCHEMA);
        goto done;
    }
    if (!cJSON_IsNumber(ver) || ver->valuedouble != BENCH_REPORT_SCHEMA_VERSION) {
        char b[BENCH_NUM_BUF];
        bench_report_err(err, errlen, old_path,
                         "schema_version %s; this gpt2c-bench compares version %d only",
                         cJSON_IsNumber(ver) ? bench_fmt_num(ver->valuedouble, b, sizeof b)
                                             : "(missing)",
                         BENCH_REPORT_SCHEMA_VERSION);
        goto done;
    }

    cJSON *cmp = cJSON_CreateObject();
    cJSON_AddStringToObject(cmp, "old_path", old_path);
    const char *s = bench_get_str(old, "created_utc");
    if (s)
        cJSON_AddStringToObject(cmp, "old_created_utc", s);
    else
        cJSON_AddNullToObject(cmp, "old_created_utc");
    s = bench_get_str(bench_get_obj(old, "environment"), "git_commit");
    if (s)
        cJSON_AddStringToObject(cmp, "old_git_commit", s);
    else
        cJSON_AddNullToObject(cmp, "old_git_commit");
    cJSON *rows = cJSON_AddArrayToObject(cmp, "rows");
    for (int i = 0; i < bench_n_headline_figs; i++)
        cJSON_AddItemToArray(rows, compare_row(report, old, &bench_headline_figs[i]));
    cJSON_AddItemToObject(cmp, "environment_changes", env_changes(report, old));

    if (cJSON_GetObjectItemCaseSensitive(report, "compare"))
        cJSON_ReplaceItemInObjectCaseSensitive(report, "compare", cmp);
    else
        cJSON_AddItemToObject(report, "compare", cmp);
    rc = 0;
done:
    cJSON_Delete(old);
    return rc;
}

const cJSON *bench_compare_row(const cJSON *cmp, const char *key)
{
    const cJSON *row;
    const cJSON *rows = bench_get(cmp, "rows");
    if (!cJSON_IsArray(rows))
        return NULL;
    cJSON_ArrayForEach(row, rows)
    {
        const char *n = bench_get_str(row, "name");
        if (n && !strcmp(n, key))
            return row;
    }
    return NULL;
}
