/* The device sampling rule (engine/sample_row.c) against a brute-force
 * definition written here: sort every token by (probability desc, id asc),
 * keep the shortest prefix that holds top-k tokens or top-p of the mass, and
 * the draw u must land on kept token i exactly when u * kept mass falls in
 * i's interval of the kept tokens laid out in id order. Every kept token is
 * hit by a u aimed at the middle of its interval, random u's never leave the
 * kept set, and tokens of zero probability, NaN logits and V = 1 are covered.
 * gpt2_sampler_next_row must consume the draw gpt2_sampler_sample would. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "gpt2.h"

typedef struct ranked {
    float p;
    int id;
} ranked;

static int by_prob(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->p != y->p)
        return x->p > y->p ? -1 : 1;
    return x->id - y->id;
}

/* the kept set by definition: keep[i] = 1 for kept tokens; returns how many */
static int brute_kept(const float *logits, int V, const gpt2_row_sampling *rs, unsigned char *keep,
                      float *p)
{
    float mx = -INFINITY;
    for (int i = 0; i < V; i++)
        if (logits[i] > mx)
            mx = logits[i];
    double sum = 0.0;
    ranked *r = malloc(sizeof *r * (size_t)V);
    for (int i = 0; i < V; i++) {
        float v = expf((logits[i] - mx) * rs->inv_temp);
        p[i] = v == v ? v : 0.0f;
        sum += p[i];
        r[i] = (ranked){p[i], i};
    }
    qsort(r, (size_t)V, sizeof *r, by_prob);
    int k = rs->top_k > 0 && rs->top_k < V ? rs->top_k : V, n = 0;
    double mass = 0.0;
    memset(keep, 0, (size_t)V);
    while (n < k) {
        keep[r[n].id] = 1;
        mass += r[n].p;
        n++;
        if (rs->top_p < 1.0f && mass >= (double)rs->top_p * sum)
            break;
    }
    free(r);
    return n;
}

static void check_case(const float *logits, int V, gpt2_row_sampling rs, const char *what)
{
    float *p = malloc(sizeof(float) * (size_t)V), *q = malloc(sizeof(float) * (size_t)V);
    unsigned char *keep = malloc((size_t)V);
    const int n = brute_kept(logits, V, &rs, keep, q);
    gpt2_sample_info info;
    rs.u = 0.5;
    gpt2_sample_row(logits, V, &rs, p, &info);
    /* the cut may move by one token only where the masses are within rounding */
    if (info.cut_margin > 1e-9)
        ck_assert_msg(info.kept == n, "%s: kept %d tokens, by definition %d (cut margin %g)", what,
                      info.kept, n, info.cut_margin);
    if (info.kept != n)
        goto out;
    double kept_mass = 0.0;
    for (int i = 0; i < V; i++)
        if (keep[i])
            kept_mass += q[i];
    ck_assert_msg(fabs(kept_mass - info.kept_mass) <= 1e-12 * kept_mass, "%s: kept mass %.17g vs %.17g",
                  what, info.kept_mass, kept_mass);
    /* aim at the middle of kept tokens' intervals (about 30 of them, spread
     * over the ids), where the interval is wide enough for double precision */
    double before = 0.0;
    int aimed = 0, seen = 0;
    const int stride = n / 30 + 1;
    for (int i = 0; i < V; i++) {
        if (!keep[i])
            continue;
        if (seen++ % stride == 0 && q[i] > 1e-9 * kept_mass) {
            rs.u = (before + 0.5 * q[i]) / kept_mass;
            int got = gpt2_sample_row(logits, V, &rs, p, &info);
            ck_assert_msg(got == i, "%s: u = %.17g aims at token %d (p %g), drew %d", what, rs.u, i,
                          (double)q[i], got);
            ck_assert(info.draw_margin > 0.0);
            aimed++;
        }
        before += q[i];
    }
    ck_assert_msg(aimed > 0, "%s: no kept token with probability > 0", what);
    /* random draws stay in the kept set */
    srand(7);
    for (int t = 0; t < 20; t++) {
        rs.u = rand() / (RAND_MAX + 1.0);
        int got = gpt2_sample_row(logits, V, &rs, p, NULL);
        ck_assert_msg(got >= 0 && got < V && keep[got] && q[got] > 0.0f,
                      "%s: u = %g drew token %d, which is not kept", what, rs.u, got);
    }
out:
    free(p);
    free(q);
    free(keep);
}

static void random_logits(float *l, int V, unsigned seed, float scale, int levels)
{
    srand(seed);
    for (int i = 0; i < V; i++) {
        /* sum of uniforms: roughly normal */
        float g = 0.0f;
        for (int j = 0; j < 4; j++)
            g += (float)rand() / RAND_MAX - 0.5f;
        l[i] = g * scale;
        if (levels) /* few distinct values: many ties at the cut */
            l[i] = roundf(l[i] * levels) / levels;
    }
}

START_TEST(test_rule_matches_definition)
{
    static const int Vs[] = {7, 1000, 50257};
    static const int ks[] = {0, 1, 5, 40, 1000};
    static const float ps[] = {1.0f, 0.95f, 0.5f, 0.01f};
    static const float temps[] = {0.7f, 1.0f, 1.8f};
    for (unsigned vi = 0; vi < 3; vi++) {
        const int V = Vs[vi];
        float *l = malloc(sizeof(float) * (size_t)V);
        for (int tie = 0; tie < 2; tie++) {
            random_logits(l, V, 11 + vi + 3 * tie, V > 10 ? 8.0f : 2.0f, tie ? 2 : 0);
            for (unsigned ki = 0; ki < 5; ki++)
                for (unsigned pi = 0; pi < 4; pi++)
                    for (unsigned ti = 0; ti < 3; ti += V > 1000 ? 2 : 1) {
                        gpt2_row_sampling rs = {1, ks[ki], 1.0f / temps[ti], ps[pi], 0.0};
                        char what[128];
                        snprintf(what, sizeof what, "V=%d ties=%d top_k=%d top_p=%g T=%g", V, tie,
                                 ks[ki], (double)ps[pi], (double)temps[ti]);
                        check_case(l, V, rs, what);
                    }
        }
        free(l);
    }
}
END_TEST

/* equal logits: every token ties, so top-k keeps the lowest ids */
START_TEST(test_all_equal)
{
    float l[100], p[100];
    for (int i = 0; i < 100; i++)
        l[i] = 1.5f;
    gpt2_row_sampling rs = {1, 10, 1.0f, 1.0f, 0.0};
    gpt2_sample_info info;
    for (int t = 0; t < 50; t++) {
        rs.u = t / 50.0;
        int got = gpt2_sample_row(l, 100, &rs, p, &info);
        ck_assert_int_eq(info.kept, 10);
        ck_assert_int_eq(got, t / 5); /* 10 equal intervals, in id order */
    }
    rs.top_k = 0;
    rs.top_p = 0.25f; /* 25 of 100 equal tokens */
    gpt2_sample_row(l, 100, &rs, p, &info);
    ck_assert_int_eq(info.kept, 25);
    check_case(l, 100, rs, "all equal, top_p 0.25");
}
END_TEST

START_TEST(test_edges)
{
    float p[8];
    gpt2_row_sampling rs = {1, 0, 1.0f, 1.0f, 0.999999};
    float one[1] = {-3.0f};
    ck_assert_int_eq(gpt2_sample_row(one, 1, &rs, p, NULL), 0);
    /* -inf logits weigh nothing and are never drawn */
    float l[8] = {-INFINITY, 0.0f, -INFINITY, 0.0f, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    for (int t = 0; t < 20; t++) {
        rs.u = t / 20.0;
        int got = gpt2_sample_row(l, 8, &rs, p, NULL);
        ck_assert_msg(got == (t < 10 ? 1 : 3), "u %g: drew %d", rs.u, got);
    }
    /* a NaN logit is never drawn */
    float n[4] = {NAN, 1.0f, NAN, 1.0f};
    for (int t = 0; t < 20; t++) {
        rs.u = t / 20.0;
        int got = gpt2_sample_row(n, 4, &rs, p, NULL);
        ck_assert_msg(got == 1 || got == 3, "u %g: drew %d", rs.u, got);
    }
    /* all NaN: token 0, as gpt2_argmax */
    float all_nan[3] = {NAN, NAN, NAN};
    ck_assert_int_eq(gpt2_sample_row(all_nan, 3, &rs, p, NULL), 0);
    /* u just below 1: the last kept token, even after rounding */
    float two[2] = {0.0f, 0.0f};
    rs.u = 1.0 - 0x1p-53;
    ck_assert_int_eq(gpt2_sample_row(two, 2, &rs, p, NULL), 1);
}
END_TEST

/* next_row takes exactly the draw sample() would: the streams stay in step */
START_TEST(test_next_row_draw)
{
    gpt2_sampling sp;
    gpt2_sampling_default(&sp);
    sp.temperature = 0.8f;
    sp.top_k = 40;
    sp.top_p = 0.9f;
    sp.seed = 99;
    gpt2_error err = {0};
    gpt2_sampler *a = gpt2_sampler_create(&sp, 16, &err), *b = gpt2_sampler_create(&sp, 16, &err);
    ck_assert(a && b);
    float l[16];
    random_logits(l, 16, 5, 3.0f, 0);
    gpt2_row_sampling ra, rb;
    gpt2_sampler_next_row(a, &ra);
    ck_assert_int_eq(ra.on, 1);
    ck_assert_int_eq(ra.top_k, 40);
    ck_assert(ra.inv_temp == 1.0f / 0.8f && ra.top_p == 0.9f);
    ck_assert(ra.u >= 0.0 && ra.u < 1.0);
    gpt2_sampler_sample(b, l); /* one draw */
    gpt2_sampler_next_row(a, &ra);
    gpt2_sampler_next_row(b, &rb);
    ck_assert_msg(ra.u == rb.u, "draws out of step: %.17g vs %.17g", ra.u, rb.u);
    gpt2_sampler_free(a);
    gpt2_sampler_free(b);
    /* greedy: off, and no draw taken */
    sp.greedy = 1;
    gpt2_sampler *g = gpt2_sampler_create(&sp, 16, &err);
    gpt2_sampler_next_row(g, &ra);
    ck_assert_int_eq(ra.on, 0);
    gpt2_sampler_free(g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sample_row");
    TCase *tc = tcase_create("sample_row");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_rule_matches_definition);
    tcase_add_test(tc, test_all_equal);
    tcase_add_test(tc, test_edges);
    tcase_add_test(tc, test_next_row_draw);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
