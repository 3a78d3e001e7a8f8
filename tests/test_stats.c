/* The bench's statistics against values computed by hand (and, for the t
 * quantiles, against published tables). */
#include <check.h>
#include <math.h>
#include <stdlib.h>

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

int main(void)
{
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("stats");
    tcase_add_test(tc, test_percentiles);
    tcase_add_test(tc, test_small_samples);
    tcase_add_test(tc, test_linfit_exact_and_noisy);
    tcase_add_test(tc, test_t_quantiles);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
