/* Statistics for benchmark figures: summaries of repeated measurements and a
 * least-squares line with the confidence interval of its slope. */
#ifndef GPT2C_BENCH_STATS_H
#define GPT2C_BENCH_STATS_H

typedef struct bench_stats {
    int n;
    double mean, stddev, cv; /* stddev: sample (n - 1); cv = stddev / mean */
    double min, p50, p90, p95, p99, max;
} bench_stats;

/* Percentile p in [0, 100] of sorted[0..n-1] by linear interpolation between
 * order statistics (position p/100 * (n - 1)). */
double bench_percentile_sorted(const double *sorted, int n, double p);

/* Summary of x[0..n-1] (x is not modified). n == 0 gives n = 0 and NaNs;
 * n == 1 gives stddev 0. Returns 0, or -1 if out of memory. */
int bench_stats_compute(const double *x, int n, bench_stats *out);

typedef struct bench_fit {
    int n;
    double slope, intercept;
    double slope_se;       /* standard error of the slope */
    double ci95_lo, ci95_hi; /* slope +- t(0.975, n - 2) * se */
    double r2;
} bench_fit;

/* Ordinary least squares y = intercept + slope * x. Needs n >= 3 and x not
 * all equal; returns -1 otherwise. */
int bench_linfit(const double *x, const double *y, int n, bench_fit *out);

/* Two-sided 95% quantile of Student's t with dof degrees of freedom. */
double bench_t975(int dof);

#endif
