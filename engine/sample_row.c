/* The sampling rule of backends that draw tokens themselves (a GPU: the
 * logits never leave the device), in plain C: the definition the CUDA kernel
 * (cuda/k_sample.cu) is tested against.
 *
 * Same distribution as gpt2_sampler_sample (engine/sampler.c): softmax of
 * logits / T; keep the most probable tokens (ties: lower id first) until top-k
 * of them or, when top_p < 1, a kept mass >= top_p of the total; draw one in
 * proportion to probability. Two differences, both for a parallel device:
 *   - the kept set is found by bisection on the probabilities' bit patterns
 *     (counts and masses of "p >= t"), not by popping a heap;
 *   - the draw walks the kept tokens in id order, not most probable first.
 * So for the same logits and draw u, the two rules keep the same tokens (up
 * to rounding at the cut) but may return different ones: each is a correct
 * sample, and a seeded run is reproducible on its own backend. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend.h"

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* count and mass of the tokens with bits(p) >= t */
static void above(const float *p, int V, uint32_t t, int *count, double *mass)
{
    int c = 0;
    double m = 0.0;
    for (int i = 0; i < V; i++)
        if (bits_of(p[i]) >= t) {
            c++;
            m += p[i];
        }
    *count = c;
    *mass = m;
}

/* Walking the tokens in id order: kept if above the cut, or one of the first
 * `take` ties at it (*tie counts the ties seen so far). */
static int is_kept(uint32_t bits, uint32_t cut, int take, int *tie)
{
    return bits > cut || (bits == cut && (*tie)++ < take);
}

int gpt2_sample_row(const float *logits, int V, const gpt2_row_sampling *rs, float *p,
                    gpt2_sample_info *info)
{
    gpt2_sample_info in = {0};
    /* the largest logit; NaNs never count (all NaN: token 0) */
    float mx = -INFINITY;
    for (int i = 0; i < V; i++)
        if (logits[i] > mx)
            mx = logits[i];
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        float v = expf((logits[i] - mx) * rs->inv_temp);
        p[i] = v == v ? v : 0.0f; /* NaN (or -inf - -inf) weighs nothing */
        sum += p[i];
    }
    if (!(sum > 0.0)) {
        if (info)
            *info = in;
        return 0;
    }
    const int k_max = rs->top_k > 0 && rs->top_k < V ? rs->top_k : V;
    const double target = rs->top_p < 1.0f ? (double)rs->top_p * sum : INFINITY;

    /* t* = the largest t whose set {p >= t} is enough (k_max tokens or the
     * mass); every p is in [0, 1], so bits(p) <= bits(1.0f) */
    uint32_t lo = 0, hi = bits_of(1.0f) + 1;
    int c_lo = V, c_hi = 0; /* every p >= +0 */
    double m_hi = 0.0;
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c;
        double m;
        above(p, V, mid, &c, &m);
        if (c >= k_max || m >= target) {
            lo = mid;
            c_lo = c;
        } else {
            hi = mid;
            c_hi = c;
            m_hi = m;
        }
    }
    /* kept: every p > t*, then ties (p == t*) in id order, as few as reach the
     * count or the mass */
    const float pt = float_of(lo);
    const int n_ties = c_lo - c_hi;
    int take = k_max - c_hi;
    if (pt > 0.0f && target < INFINITY) {
        double need = (target - m_hi) / pt;
        int j = need <= 1.0 ? 1 : (int)ceil(need);
        while (j > 1 && m_hi + (double)(j - 1) * pt >= target)
            j--;
        while (j < n_ties && m_hi + (double)j * pt < target)
            j++;
        if (j < take)
            take = j;
    }
    if (take > n_ties)
        take = n_ties;
    if (take < 1)
        take = 1;

    /* draw in id order over the kept tokens */
    double kept_mass = 0.0;
    int tie = 0, last = 0, kept = 0;
    for (int i = 0; i < V; i++) {
        if (is_kept(bits_of(p[i]), lo, take, &tie)) {
            kept_mass += p[i];
            last = i;
            kept++;
        }
    }
    const double r = rs->u * kept_mass;
    double acc = 0.0, margin = 0.0;
    int token = last; /* rounding left r at the end: the last kept token */
    tie = 0;
    for (int i = 0; i < V; i++) {
        if (!is_kept(bits_of(p[i]), lo, take, &tie))
            continue;
        double before = acc;
        acc += p[i];
        if (r < acc) {
            token = i;
            margin = fmin(r - before, acc - r); /* how far r is from another token */
            break;
        }
    }
    if (info) {
        in.kept = kept;
        in.kept_mass = kept_mass;
        in.sum = sum;
        in.draw_margin = margin / kept_mass;
        /* how far the cut is from moving: the mass test at the cut's two sides */
        in.cut_margin = target < INFINITY
                            ? fmin(fabs(kept_mass - target), fabs(kept_mass - pt - target)) / sum
                            : INFINITY;
        *info = in;
    }
    return token;
}
