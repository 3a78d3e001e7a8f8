/* The bench's statistics against values computed by hand (and, for the t
 * quantiles, against published tables), and the soak's verdict rules. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "soak.h"
#include "stats.h"

#define TOL 1e-9

START_TEST(test_percentiles)
{
    /* 1..10: position p/100 * 9; p90 = 9.1, p50 = 5.5, p99 = 9.91 */
    double x[10] = {7, 3, 10, 1, 5, 9, 2, 8, 4, 6};
    bench_stats s;
    ck_assert_int_eq(bench_stats_compute(x, 10, &s), 0);
    ck_assert_int_eq(s.n, 10);
    ck_assert_double_eq_tol(s.p50, 5.5, TOL);
    ck_assert_double_eq_tol(s.p90, 9.1, TOL);
    ck_assert_double_eq_tol(s.p95, 9.55, TOL);
    ck_assert_double_eq_tol(s.p99, 9.91, TOL);
    ck_assert_double_eq_tol(s.min, 1, TOL);
    ck_assert_double_eq_tol(s.max, 10, TOL);
    ck_assert_double_eq_tol(s.mean, 5.5, TOL);
    /* sample variance of 1..10 = 82.5 / 9 */
    ck_assert_double_eq_tol(s.stddev, sqrt(82.5 / 9), TOL);
    ck_assert_double_eq_tol(s.cv, sqrt(82.5 / 9) / 5.5, TOL);
    ck_assert(x[0] == 7 && x[9] == 6); /* input untouched */
}
END_TEST

START_TEST(test_small_samples)
{
    bench_stats s;
    double one = 4.25;
    bench_stats_compute(&one, 1, &s);
    ck_assert_double_eq_tol(s.p50, 4.25, TOL);
    ck_assert_double_eq_tol(s.p99, 4.25, TOL);
    ck_assert_double_eq_tol(s.stddev, 0, TOL);
    double two[2] = {2, 4};
    bench_stats_compute(two, 2, &s);
    ck_assert_double_eq_tol(s.p90, 3.8, TOL);
    ck_assert_double_eq_tol(s.stddev, sqrt(2.0), TOL);
    bench_stats_compute(NULL, 0, &s);
    ck_assert_int_eq(s.n, 0);
    ck_assert(isnan(s.mean) && isnan(s.p50));
}
END_TEST

START_TEST(test_linfit_exact_and_noisy)
{
    double x[5] = {0, 1, 2, 3, 4}, y[5];
    for (int i = 0; i < 5; i++)
        y[i] = 3 + 2 * x[i];
    bench_fit f;
    ck_assert_int_eq(bench_linfit(x, y, 5, &f), 0);
    ck_assert_double_eq_tol(f.slope, 2, TOL);
    ck_assert_double_eq_tol(f.intercept, 3, TOL);
    ck_assert_double_eq_tol(f.slope_se, 0, TOL);
    ck_assert_double_eq_tol(f.r2, 1, TOL);
    /* y = 1, 3, 2, 5, 4: sxx = 10, sxy = 8 -> slope 0.8, intercept 1.4;
     * residuals -0.4, 0.8, -1, 1.2, -0.6: sse = 3.6; se = sqrt(3.6/3/10) */
    double y2[5] = {1, 3, 2, 5, 4};
    ck_assert_int_eq(bench_linfit(x, y2, 5, &f), 0);
    ck_assert_double_eq_tol(f.slope, 0.8, TOL);
    ck_assert_double_eq_tol(f.intercept, 1.4, TOL);
    ck_assert_double_eq_tol(f.slope_se, sqrt(0.12), TOL);
    ck_assert_double_eq_tol(f.ci95_lo, 0.8 - 3.182 * sqrt(0.12), TOL);
    ck_assert_double_eq_tol(f.ci95_hi, 0.8 + 3.182 * sqrt(0.12), TOL);
    ck_assert_double_eq_tol(f.r2, 1 - 3.6 / 10, TOL);
    /* degenerate inputs are refused */
    double same[4] = {1, 1, 1, 1};
    ck_assert_int_eq(bench_linfit(same, y2, 4, &f), -1);
    ck_assert_int_eq(bench_linfit(x, y2, 2, &f), -1);
}
END_TEST

START_TEST(test_t_quantiles)
{
    ck_assert_double_eq_tol(bench_t975(1), 12.706, 1e-3);
    ck_assert_double_eq_tol(bench_t975(10), 2.228, 1e-3);
    ck_assert_double_eq_tol(bench_t975(30), 2.042, 1e-3);
    ck_assert_double_eq_tol(bench_t975(40), 2.021, 1e-3); /* table values */
    ck_assert_double_eq_tol(bench_t975(60), 2.000, 1e-3);
    ck_assert_double_eq_tol(bench_t975(120), 1.980, 1e-3);
    ck_assert_double_eq_tol(bench_t975(100000), 1.960, 1e-3);
    ck_assert(isnan(bench_t975(0)));
}
END_TEST

/* Samples every 10 s after a warm-up whose big jump must not count. */
static int soak_samples(soak_sample *s, const double *rss_after, int fds_last)
{
    s[0] = (soak_sample){0, 100, 6, 1};
    s[1] = (soak_sample){5, 150, 9, 4}; /* warm-up: left out of fit and fds */
    for (int i = 0; i < 5; i++)
        s[2 + i] = (soak_sample){10.0 * (i + 1), rss_after[i], i == 4 ? fds_last : 6, 3};
    return 7;
}

START_TEST(test_soak_judge)
{
    soak_sample s[8];
    soak_counts c = {.requests = 10, .completed = 8, .cancelled = 2, .checked = 3};
    soak_verdict v;
    /* t = 10..50 s, RSS = 200 + 0.001 * (1, 3, 2, 5, 4) MiB: as in the linfit
     * test with x scaled by 10 and y by 1e-3: slope 0.8e-3 / 10 = 8e-5 MiB/s
     * = 0.288 MiB/hour; se = sqrt(3.6e-6 / 3 / 1000) MiB/s = sqrt(1.2e-9) *
     * 3600 MiB/hour; t(0.975, 3) = 3.182 */
    double noisy[5] = {200.001, 200.003, 200.002, 200.005, 200.004};
    int n = soak_samples(s, noisy, 6);
    soak_judge(s, n, 10.0, 1.0, &c, &v);
    double se = sqrt(1.2e-9) * 3600;
    ck_assert_int_eq(v.n_fit, 5);
    ck_assert(v.fit_ok);
    ck_assert_double_eq_tol(v.slope_mb_per_hour, 0.288, 1e-9);
    ck_assert_double_eq_tol(v.se_mb_per_hour, se, 1e-9);
    ck_assert_double_eq_tol(v.ci95_lo, 0.288 - 3.182 * se, 1e-9);
    ck_assert_double_eq_tol(v.ci95_hi, 0.288 + 3.182 * se, 1e-9);
    ck_assert_int_eq(v.fd_first, 6);
    ck_assert_int_eq(v.fd_last, 6);
    ck_assert_int_eq(v.fd_max, 6);
    ck_assert_int_eq(v.fd_growth, 0);
    ck_assert_msg(v.pass && v.n_reasons == 0, "%s", v.reasons[0]);
    /* above a threshold of 0.1, but the interval holds 0: not growth */
    soak_judge(s, n, 10.0, 0.1, &c, &v);
    ck_assert(v.pass);

    /* a clean line of 0.0004 MiB/s = 1.44 MiB/hour: se 0, above 1 */
    double line[5] = {200.004, 200.008, 200.012, 200.016, 200.020};
    n = soak_samples(s, line, 6);
    soak_judge(s, n, 10.0, 1.0, &c, &v);
    ck_assert_double_eq_tol(v.slope_mb_per_hour, 1.44, 1e-9);
    ck_assert_double_eq_tol(v.se_mb_per_hour, 0, 1e-6);
    ck_assert(!v.pass);
    ck_assert_int_eq(v.n_reasons, 1);
    ck_assert_msg(strstr(v.reasons[0], "RSS grows 1.44 MiB/hour"), "%s", v.reasons[0]);
    /* the same line is fine under a threshold of 2 */
    soak_judge(s, n, 10.0, 2.0, &c, &v);
    ck_assert(v.pass);

    /* one descriptor more at the end; failures and mismatches: each a reason */
    n = soak_samples(s, noisy, 7);
    c.failures = 2;
    c.mismatches = 1;
    soak_judge(s, n, 10.0, 1.0, &c, &v);
    ck_assert(!v.pass);
    ck_assert_int_eq(v.fd_growth, 1);
    ck_assert_int_eq(v.fd_max, 7);
    ck_assert_int_eq(v.n_reasons, 3);
    ck_assert_str_eq(v.reasons[0], "2 requests failed");
    ck_assert_str_eq(v.reasons[1], "1 of 3 checked requests differ from the same request run alone");
    ck_assert_str_eq(v.reasons[2], "open file descriptors grew from 6 to 7");

    /* a warm-up that leaves two samples: no fit, no pass; nothing finished */
    soak_counts none = {.requests = 3};
    soak_judge(s, n, 40.0, 1.0, &none, &v);
    ck_assert_int_eq(v.n_fit, 2);
    ck_assert(!v.fit_ok && isnan(v.slope_mb_per_hour));
    ck_assert(!v.pass);
    ck_assert_str_eq(v.reasons[0], "no request finished");
    ck_assert_msg(strstr(v.reasons[1], "2 RSS samples after the 40 s warm-up"), "%s", v.reasons[1]);
    /* and no samples at all */
    soak_judge(s, 0, 0.0, 1.0, &c, &v);
    ck_assert_int_eq(v.n_fit, 0);
    ck_assert_int_eq(v.fd_growth, 0);
    ck_assert(!v.pass);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("stats");
    tcase_add_test(tc, test_percentiles);
    tcase_add_test(tc, test_small_samples);
    tcase_add_test(tc, test_linfit_exact_and_noisy);
    tcase_add_test(tc, test_t_quantiles);
    tcase_add_test(tc, test_soak_judge);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
