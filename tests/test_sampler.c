/* Sampler: greedy, temperature, top-k, top-p, seeding, argument errors.
 * Frequencies are compared with the exact distribution the options define,
 * computed here independently; with a fixed seed each check is deterministic,
 * and the bound (0.005 over 200,000 draws, > 5 standard deviations) is loose
 * enough for any correct generator and tight enough to catch a wrong filter
 * or a missing renormalisation (those shift probabilities by >= 0.05). */
#include <check.h>
#include <math.h>
#include <stdint.h>
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

/* ---- draw for draw against the rule, written out here ------------------- */

/* The documented generator: xoshiro256** seeded by splitmix64, 53-bit units. */
typedef struct { uint64_t s[4]; } ref_rng;

static uint64_t ref_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t ref_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static double ref_unit(ref_rng *r)
{
    uint64_t *s = r->s, out = ref_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t;
    s[3] = ref_rotl(s[3], 45);
    return (out >> 11) * 0x1.0p-53;
}

static const float *g_prob;
static int by_prob_then_id(const void *a, const void *b)
{
    const int i = *(const int *)a, j = *(const int *)b;
    if (g_prob[i] != g_prob[j])
        return g_prob[i] > g_prob[j] ? -1 : 1;
    return i < j ? -1 : 1;
}

/* The rule: p = exp((l - max) / T) (float), summed in double; every id in
 * descending p (ties: lower id first), kept until top-k or until the kept
 * mass reaches top-p of the sum; u in [0, kept mass); the first kept id
 * whose running mass passes u (the last kept one if rounding leaves none).
 * With neither top-k nor top-p, every id in index order instead. */
static int ref_sample(const float *l, int V, float temp, int top_k, float top_p, ref_rng *r,
                      float *prob, int *ids)
{
    float mx = l[0];
    for (int i = 1; i < V; i++)
        mx = l[i] > mx ? l[i] : mx;
    double sum = 0;
    for (int i = 0; i < V; i++) {
        prob[i] = expf((l[i] - mx) * (1.0f / temp));
        sum += prob[i];
        ids[i] = i;
    }
    if (!(top_k > 0 && top_k < V) && !(top_p < 1.0f)) {
        double u = ref_unit(r) * sum, acc = 0;
        for (int i = 0; i < V; i++)
            if (u < (acc += prob[i]))
                return i;
        return V - 1;
    }
    g_prob = prob;
    qsort(ids, (size_t)V, sizeof *ids, by_prob_then_id);
    const int k_max = top_k > 0 && top_k < V ? top_k : V;
    const double mass_max = top_p < 1.0f ? top_p * sum : sum;
    int kept = 0;
    double mass = 0;
    while (kept < k_max) {
        mass += prob[ids[kept++]];
        if (mass >= mass_max)
            break;
    }
    double u = ref_unit(r) * mass, acc = 0;
    for (int j = 0; j < kept; j++)
        if (u < (acc += prob[ids[j]]))
            return ids[j];
    return ids[kept - 1];
}

START_TEST(test_matches_rule)
{
    enum { V = 3001 };
    static float l[V], prob[V];
    static int ids[V];
    /* logits on a coarse grid: many ties, so the id order matters */
    uint64_t x = 12345;
    for (int i = 0; i < V; i++)
        l[i] = (float)(ref_splitmix(&x) % 400) * 0.05f - 10.0f;
    static const struct { float t; int k; float p; } cfg[] = {
        {1.0f, 40, 1.0f},  {0.7f, 40, 0.5f},   {1.3f, 1, 1.0f},   {1.0f, 2, 0.95f},
        {1.0f, 1500, 1.0f}, {1.0f, 1501, 0.9f}, {1.0f, 0, 0.3f},   {2.0f, 0, 1.0f},
        {0.3f, 0, 0.5f},   {0.5f, 0, 0.9f},    {1.0f, 0, 0.95f},  {50.0f, 0, 0.95f},
    }; /* k 1500 = V / 2: the last top-k pass; 1501: the heap of all ids; top-p
        * alone: passes of 64, 256, 1024 ids, then (T 50: nearly flat, ~2850
        * ids needed) the heap, as the mass needs */
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        gpt2_sampling p;
        gpt2_sampling_default(&p);
        p.temperature = cfg[c].t, p.top_k = cfg[c].k, p.top_p = cfg[c].p, p.seed = 77 + c;
        gpt2_error err = {0};
        gpt2_sampler *s = gpt2_sampler_create(&p, V, &err);
        ck_assert_msg(s != NULL, "%s", err.msg);
        ref_rng r;
        uint64_t sx = p.seed;
        for (int i = 0; i < 4; i++)
            r.s[i] = ref_splitmix(&sx);
        const int draws = 300;
        for (int d = 0; d < draws; d++) {
            const int want = ref_sample(l, V, cfg[c].t, cfg[c].k, cfg[c].p, &r, prob, ids);
            const int got = gpt2_sampler_sample(s, l);
            ck_assert_msg(got == want, "T %g top-k %d top-p %g, draw %d: got %d, the rule %d",
                          (double)cfg[c].t, cfg[c].k, (double)cfg[c].p, d, got, want);
        }
        gpt2_sampler_free(s);
    }
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
    tcase_add_test(tc, test_matches_rule);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
