#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_percentile_sorted(const double *sorted, int n, double p)
{
    if (n <= 0)
        return NAN;
    double pos = p / 100.0 * (n - 1);
    int lo = (int)floor(pos);
    if (lo >= n - 1)
        return sorted[n - 1];
    if (lo < 0)
        return sorted[0];
    double frac = pos - lo;
    return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

int bench_stats_compute(const double *x, int n, bench_stats *out)
{
    memset(out, 0, sizeof *out);
    out->n = n > 0 ? n : 0;
    if (n <= 0) {
        out->mean = out->stddev = out->cv = out->min = out->p50 = out->p90 = out->p95 =
            out->p99 = out->max = NAN;
        return 0;
    }
    double *s = malloc(sizeof(double) * (size_t)n);
    if (!s)
        return -1;
    memcpy(s, x, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += s[i];
    double mean = sum / n, ss = 0;
    for (int i = 0; i < n; i++)
        ss += (s[i] - mean) * (s[i] - mean);
    out->mean = mean;
    out->stddev = n > 1 ? sqrt(ss / (n - 1)) : 0.0;
    out->cv = mean != 0 ? out->stddev / fabs(mean) : NAN;
    out->min = s[0];
    out->max = s[n - 1];
    out->p50 = bench_percentile_sorted(s, n, 50);
    out->p90 = bench_percentile_sorted(s, n, 90);
    out->p95 = bench_percentile_sorted(s, n, 95);
    out->p99 = bench_percentile_sorted(s, n, 99);
    free(s);
    return 0;
}

double bench_t975(int dof)
{
    /* exact table for small dof, then the Cornish-Fisher expansion around the
     * normal quantile (error < 1e-4 for dof > 30) */
    static const double t[31] = {NAN,    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365,
                                 2.306,  2.262,  2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
                                 2.120,  2.110,  2.101, 2.093, 2.086, 2.080, 2.074, 2.069,
                                 2.064,  2.060,  2.056, 2.052, 2.048, 2.045, 2.042};
    if (dof < 1)
        return NAN;
    if (dof <= 30)
        return t[dof];
    const double z = 1.959964, v = dof;
    double z3 = z * z * z, z5 = z3 * z * z;
    return z + (z3 + z) / (4 * v) + (5 * z5 + 16 * z3 + 3 * z) / (96 * v * v);
}

int bench_linfit(const double *x, const double *y, int n, bench_fit *out)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    if (n < 3)
        return -1;
    double mx = 0, my = 0;
    for (int i = 0; i < n; i++) {
        mx += x[i];
        my += y[i];
    }
    mx /= n;
    my /= n;
    double sxx = 0, sxy = 0, syy = 0;
    for (int i = 0; i < n; i++) {
        sxx += (x[i] - mx) * (x[i] - mx);
        sxy += (x[i] - mx) * (y[i] - my);
        syy += (y[i] - my) * (y[i] - my);
    }
    if (sxx == 0)
        return -1;
    out->slope = sxy / sxx;
    out->intercept = my - out->slope * mx;
    double sse = 0;
    for (int i = 0; i < n; i++) {
        double r = y[i] - (out->intercept + out->slope * x[i]);
        sse += r * r;
    }
    out->slope_se = sqrt(sse / (n - 2) / sxx);
    double h = bench_t975(n - 2) * out->slope_se;
    out->ci95_lo = out->slope - h;
    out->ci95_hi = out->slope + h;
    out->r2 = syy > 0 ? 1.0 - sse / syy : 1.0;
    return 0;
}
