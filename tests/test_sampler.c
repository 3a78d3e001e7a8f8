/* Sampler: greedy, temperature, top-k, top-p, seeding, argument errors.
 * Frequencies are compared with the exact distribution the options define,
 * computed here independently; with a fixed seed each check is deterministic,
 * and the bound (0.005 over 200,000 draws, > 5 standard deviations) is loose
 * enough for any correct generator and tight enough to catch a wrong filter
 * or a missing renormalisation (those shift probabilities by >= 0.05). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "gpt2.h"

#define DRAWS 200000

static gpt2_sampler *make(float temp, int top_k, float top_p, uint64_t seed)
{
    gpt2_sampling p;
    gpt2_sampling_default(&p);
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.seed = seed;
    gpt2_error err = {0};
    gpt2_sampler *s = gpt2_sampler_create(&p, 6, &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    return s;
}

/* logits whose softmax is exactly {0.4, 0.25, 0.15, 0.1, 0.06, 0.04} */
static const double P6[6] = {0.4, 0.25, 0.15, 0.1, 0.06, 0.04};
static void logits6(float *l)
{
    for (int i = 0; i < 6; i++)
        l[i] = (float)log(P6[i]) + 3.0f; /* an offset must not matter */
}

static void expect_freqs(gpt2_sampler *s, const float *logits, const double *want, const char *what)
{
    long count[6] = {0};
    for (int i = 0; i < DRAWS; i++) {
        int id = gpt2_sampler_sample(s, logits);
        ck_assert_msg(id >= 0 && id < 6, "%s: id %d out of range", what, id);
        count[id]++;
    }
    for (int i = 0; i < 6; i++) {
        double f = (double)count[i] / DRAWS;
        ck_assert_msg(fabs(f - want[i]) < 0.005 && (want[i] > 0 || count[i] == 0),
                      "%s: token %d drawn with frequency %.4f, expected %.4f", what, i, f, want[i]);
    }
}

START_TEST(test_greedy)
{
    gpt2_sampling p;
    gpt2_sampling_default(&p);
    p.greedy = 1;
    gpt2_sampler *s = gpt2_sampler_create(&p, 5, NULL);
    float l[5] = {0.1f, 2.0f, -1.0f, 2.0f, 1.9f};
    ck_assert_int_eq(gpt2_sampler_sample(s, l), 1); /* the lower index wins a tie */
    l[4] = 2.5f;
    ck_assert_int_eq(gpt2_sampler_sample(s, l), 4);
    /* gpt2_argmax is that choice (backends that find it on a GPU match it) */
    ck_assert_int_eq(gpt2_argmax(l, 5), 4);
    l[4] = NAN; /* a NaN never wins ... */
    ck_assert_int_eq(gpt2_argmax(l, 5), 1);
    ck_assert_int_eq(gpt2_sampler_sample(s, l), 1);
    l[0] = NAN; /* ... except at index 0, where nothing compares above it */
    ck_assert_int_eq(gpt2_argmax(l, 5), 0);
    ck_assert_int_eq(gpt2_sampler_sample(s, l), 0);
    float inf[3] = {-INFINITY, -INFINITY, -INFINITY};
    ck_assert_int_eq(gpt2_argmax(inf, 3), 0);
    gpt2_sampler_free(s);
}
END_TEST

START_TEST(test_plain_softmax)
{
    float l[6];
    logits6(l);
    gpt2_sampler *s = make(1.0f, 0, 1.0f, 1);
    expect_freqs(s, l, P6, "temperature 1");
    gpt2_sampler_free(s);
}
END_TEST

START_TEST(test_temperature)
{
    float l[6];
    logits6(l);
    double want[6], z = 0;
    for (int i = 0; i < 6; i++)
        z += want[i] = P6[i] * P6[i]; /* T = 0.5 squares the probabilities */
    for (int i = 0; i < 6; i++)
        want[i] /= z;
    gpt2_sampler *s = make(0.5f, 0, 1.0f, 2);
    expect_freqs(s, l, want, "temperature 0.5");
    gpt2_sampler_free(s);
}
END_TEST

START_TEST(test_top_k)
{
    float l[6];
    logits6(l);
    double want[6] = {0.4 / 0.8, 0.25 / 0.8, 0.15 / 0.8, 0, 0, 0};
    gpt2_sampler *s = make(1.0f, 3, 1.0f, 3);
    expect_freqs(s, l, want, "top-k 3");
    gpt2_sampler_free(s);
    s = make(1.7f, 1, 1.0f, 4); /* top-k 1 is greedy whatever the temperature */
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(gpt2_sampler_sample(s, l), 0);
    gpt2_sampler_free(s);
}
END_TEST

START_TEST(test_top_p)
{
    float l[6];
    logits6(l);
    /* top-p 0.7: 0.4 < 0.7, 0.65 < 0.7, 0.8 >= 0.7 -> keep the first three */
    double want[6] = {0.4 / 0.8, 0.25 / 0.8, 0.15 / 0.8, 0, 0, 0};
    gpt2_sampler *s = make(1.0f, 0, 0.7f, 5);
    expect_freqs(s, l, want, "top-p 0.7");
    gpt2_sampler_free(s);
    /* top-k and top-p together: the smaller set wins */
    double want2[6] = {0.4 / 0.65, 0.25 / 0.65, 0, 0, 0, 0};
    s = make(1.0f, 2, 0.9f, 6);
    expect_freqs(s, l, want2, "top-k 2 + top-p 0.9");
    gpt2_sampler_free(s);
    s = make(1.0f, 0, 1e-6f, 7); /* a tiny top-p is greedy */
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(gpt2_sampler_sample(s, l), 0);
    gpt2_sampler_free(s);
}
END_TEST

START_TEST(test_seed_repeats)
{
    float l[6];
    logits6(l);
    gpt2_sampler *a = make(1.0f, 0, 1.0f, 99), *b = make(1.0f, 0, 1.0f, 99), *c = make(1.0f, 0, 1.0f, 100);
    int same = 1, differs = 0;
    for (int i = 0; i < 1000; i++) {
        int x = gpt2_sampler_sample(a, l), y = gpt2_sampler_sample(b, l), z = gpt2_sampler_sample(c, l);
        same &= x == y;
        differs |= x != z;
    }
    ck_assert_msg(same, "the same seed gave different draws");
    ck_assert_msg(differs, "seeds 99 and 100 gave identical draws");
    gpt2_sampler_free(a);
    gpt2_sampler_free(b);
    gpt2_sampler_free(c);
}
END_TEST

START_TEST(test_bad_params)
{
    struct { float t; int k; float p; const char *needle; } bad[] = {
        {0.0f, 0, 1.0f, "temperature"}, {-1.0f, 0, 1.0f, "temperature"},
        {NAN, 0, 1.0f, "temperature"},  {1.0f, -1, 1.0f, "top-k"},
        {1.0f, 0, 0.0f, "top-p"},       {1.0f, 0, 1.5f, "top-p"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gpt2_sampling p;
        gpt2_sampling_default(&p);
        p.temperature = bad[i].t;
        p.top_k = bad[i].k;
        p.top_p = bad[i].p;
        gpt2_error err = {0};
        ck_assert(gpt2_sampler_create(&p, 10, &err) == NULL);
        ck_assert_int_eq(err.code, GPT2_ERR_INVALID);
        ck_assert_msg(strstr(err.msg, bad[i].needle) != NULL, "case %zu: %s", i, err.msg);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sampler");
    TCase *tc = tcase_create("sampler");
    tcase_add_test(tc, test_greedy);
    tcase_add_test(tc, test_plain_softmax);
    tcase_add_test(tc, test_temperature);
    tcase_add_test(tc, test_top_k);
    tcase_add_test(tc, test_top_p);
    tcase_add_test(tc, test_seed_repeats);
    tcase_add_test(tc, test_bad_params);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
