#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soak.h"

static void reason(soak_verdict *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reason(soak_verdict *v, const char *fmt, ...)
{
    if (v->n_reasons >= SOAK_MAX_REASONS)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->reasons[v->n_reasons++], SOAK_REASON_LEN, fmt, ap);
    va_end(ap);
}

void soak_judge(const soak_sample *s, int n, double warmup_s, double threshold_mb_per_hour,
                const soak_counts *c, soak_verdict *out)
{
    memset(out, 0, sizeof *out);
    out->slope_mb_per_hour = out->se_mb_per_hour = out->ci95_lo = out->ci95_hi = NAN;
    out->fd_first = out->fd_last = out->fd_max = -1;
    double *x = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    double *y = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    int m = 0;
    for (int i = 0; x && y && i < n; i++) {
        if (s[i].t_s < warmup_s)
            continue;
        x[m] = s[i].t_s;
        y[m] = s[i].rss_mb;
        if (m == 0)
            out->fd_first = s[i].fds;
        out->fd_last = s[i].fds;
        out->fd_max = s[i].fds > out->fd_max ? s[i].fds : out->fd_max;
        m++;
    }
    out->n_fit = m;
    bench_fit f;
    if (m >= 3 && bench_linfit(x, y, m, &f) == 0) {
        out->fit_ok = 1;
        /* samples are in seconds: MiB/s -> MiB/hour */
        out->slope_mb_per_hour = f.slope * 3600.0;
        out->se_mb_per_hour = f.slope_se * 3600.0;
        out->ci95_lo = f.ci95_lo * 3600.0;
        out->ci95_hi = f.ci95_hi * 3600.0;
    }
    free(x);
    free(y);
    out->fd_growth = m > 0 ? out->fd_last - out->fd_first : 0;

    if (c->failures > 0)
        reason(out, "%ld request%s failed", c->failures, c->failures == 1 ? "" : "s");
    if (c->mismatches > 0)
        reason(out, "%ld of %ld checked requests differ from the same request run alone",
               c->mismatches, c->checked);
    if (c->completed + c->cancelled == 0)
        reason(out, "no request finished");
    if (!out->fit_ok)
        reason(out, "%d RSS sample%s after the %.0f s warm-up: too few to fit a slope", m,
               m == 1 ? "" : "s", warmup_s);
    else if (out->slope_mb_per_hour > threshold_mb_per_hour && out->ci95_lo > 0)
        reason(out, "RSS grows %.3g MiB/hour (95%% interval %.3g .. %.3g), above %.3g MiB/hour",
               out->slope_mb_per_hour, out->ci95_lo, out->ci95_hi, threshold_mb_per_hour);
    if (out->fd_growth > 0)
        reason(out, "open file descriptors grew from %d to %d", out->fd_first, out->fd_last);
    out->pass = out->n_reasons == 0;
}
