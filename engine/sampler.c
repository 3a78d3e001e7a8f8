/* Token sampling: greedy, or temperature -> top-k -> top-p -> draw, with a
 * seeded xoshiro256** generator. The draw walks the kept ids most probable
 * first, or in index order when neither top-k nor top-p cuts any. Buffers
 * are sized once at create, so sampling allocates nothing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "backend.h"
#include "errors.h"
#include "gpt2.h"
#include "kernels.h"

struct gpt2_sampler {
    gpt2_sampling p;
    int n_vocab;
    uint64_t s[4];  /* xoshiro256** state */
    int *heap;      /* candidate ids, a max-heap on prob (NULL when greedy) */
    float *prob;    /* softmax over the vocabulary (NULL when greedy) */
    size_t map_bytes; /* one anonymous mapping holds both */
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(gpt2_sampler *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* uniform in [0, 1) with 53 random bits */
static double next_unit(gpt2_sampler *r) { return (next_u64(r) >> 11) * 0x1.0p-53; }

void gpt2_sampling_default(gpt2_sampling *s)
{
    memset(s, 0, sizeof *s);
    s->temperature = 1.0f;
    s->top_p = 1.0f;
}

gpt2_sampler *gpt2_sampler_create(const gpt2_sampling *p, int n_vocab, gpt2_error *err)
{
    if (n_vocab < 1) {
        gpt2_seterr(err, GPT2_ERR_INVALID, "sampler: n_vocab %d: expected >= 1", n_vocab);
        return NULL;
    }
    if (!p->greedy) {
        if (!(p->temperature > 0.0f) || !isfinite(p->temperature)) {
            gpt2_seterr(err, GPT2_ERR_INVALID, "temperature %g: expected > 0 (use greedy for 0)",
                        (double)p->temperature);
            return NULL;
        }
        if (p->top_k < 0) {
            gpt2_seterr(err, GPT2_ERR_INVALID, "top-k %d: expected >= 0 (0 = off)", p->top_k);
            return NULL;
        }
        if (!(p->top_p > 0.0f && p->top_p <= 1.0f)) {
            gpt2_seterr(err, GPT2_ERR_INVALID, "top-p %g: expected a value in (0, 1]",
                        (double)p->top_p);
            return NULL;
        }
    }
    /* Greedy needs no buffers. The others (~400 KB at GPT-2's vocabulary) come
     * from their own mapping, not malloc: a serving engine creates a sampler
     * on each client's thread, and glibc kept such freed blocks in per-thread
     * arenas once its mmap threshold had risen past their size (a 30-minute
     * soak grew 12.5 MiB/hour that way, levelling off). munmap returns them. */
    gpt2_sampler *s = calloc(1, sizeof *s);
    int mapped = 1;
    if (s && !p->greedy) {
        s->map_bytes = (sizeof(int) + sizeof(float)) * (size_t)n_vocab;
        void *m = mmap(NULL, s->map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        if (m == MAP_FAILED) {
            s->map_bytes = 0;
            mapped = 0;
        } else {
            s->heap = m;
            s->prob = (float *)(s->heap + n_vocab);
        }
    }
    if (!s || !mapped) {
        gpt2_sampler_free(s);
        gpt2_seterr(err, GPT2_ERR_NOMEM, "out of memory for the sampler");
        return NULL;
    }
    s->p = *p;
    s->n_vocab = n_vocab;
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++)
        s->s[i] = splitmix64(&x);
    return s;
}

void gpt2_sampler_free(gpt2_sampler *s)
{
    if (!s)
        return;
    if (s->map_bytes)
        munmap(s->heap, s->map_bytes);
    free(s);
}

int gpt2_argmax(const float *x, int n)
{
    /* the scan of the scalar table (the lowest index wins ties, so greedy is
     * deterministic): one definition for the engine and the kernels */
    return gpt2k_ops_ref()->argmax(x, n);
}

/* max-heap of ids ordered by prob (ties: lower id first, for determinism) */
static int above(const float *prob, int a, int b)
{
    return prob[a] > prob[b] || (prob[a] == prob[b] && a < b);
}

/* Restores heap order below h[i]: a max-heap on `above` (root: the most
 * probable id), or with min the same order upside down (root: the least). */
static void sift(int *h, int n, int i, const float *prob, int min)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && (min ? above(prob, h[m], h[l]) : above(prob, h[l], h[m])))
            m = l;
        if (r < n && (min ? above(prob, h[m], h[r]) : above(prob, h[r], h[m])))
            m = r;
        if (m == i)
            return;
        int t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void sift_down(int *h, int n, int i, const float *prob) { sift(h, n, i, prob, 0); }
static void sift_down_min(int *h, int n, int i, const float *prob) { sift(h, n, i, prob, 1); }

/* The k most probable ids (k <= V / 2), most probable first, into
 * h[V - 1], h[V - 2], ..., h[V - k]: the ids the max-heap below would pop
 * first, in the same order (`above` is a total order), from one pass with a
 * min-heap of k in h[0 .. k), where most ids cost one comparison with its
 * root, instead of building a heap of all V (1 ms of a 2 ms decode step at
 * GPT-2's vocabulary). */
static void top_k_tail(int *h, int V, int k, const float *prob)
{
    for (int i = 0; i < k; i++)
        h[i] = i;
    for (int i = k / 2 - 1; i >= 0; i--)
        sift_down_min(h, k, i, prob);
    for (int i = k; i < V; i++)
        if (above(prob, i, h[0])) {
            h[0] = i;
            sift_down_min(h, k, 0, prob);
        }
    /* pop the least first: it goes last, at h[V - k] */
    for (int n = k, j = k - 1; n > 0; n--, j--) {
        const int least = h[0];
        h[0] = h[n - 1];
        sift_down_min(h, n - 1, 0, prob);
        h[V - 1 - j] = least;
    }
}

void gpt2_sampler_next_row(gpt2_sampler *s, gpt2_row_sampling *rs)
{
    memset(rs, 0, sizeof *rs);
    if (s->p.greedy)
        return;
    rs->on = 1;
    rs->top_k = s->p.top_k;
    rs->inv_temp = 1.0f / s->p.temperature;
    rs->top_p = s->p.top_p;
    rs->u = next_unit(s);
}

int gpt2_sampler_sample(gpt2_sampler *s, const float *logits)
{
    const int V = s->n_vocab;
    /* gpt2_argmax's answer, by this CPU's vector kernel (38 -> 3 us at
     * GPT-2's vocabulary; test_kernels holds every table to the contract) */
    const int best = gpt2k_ops_for(gpt2k_best_isa())->argmax(logits, V);
    if (s->p.greedy)
        return best;
    /* softmax(logits / T) */
    const float inv_t = 1.0f / s->p.temperature;
    float mx = logits[best];
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        s->prob[i] = expf((logits[i] - mx) * inv_t);
        sum += s->prob[i];
    }
    int k_max = s->p.top_k > 0 && s->p.top_k < V ? s->p.top_k : V;
    if (k_max == V && !(s->p.top_p < 1.0f)) {
        /* Nothing is cut: the draw walks the ids in index order, O(V). In
         * descending order it needed every id sorted, a heap popped V times:
         * 10 ms per token at GPT-2's vocabulary. acc retraces sum's additions,
         * so it ends at sum > u, but for u rounded up to sum itself. */
        double u = next_unit(s) * sum, acc = 0.0;
        int last = 0;
        for (int i = 0; i < V; i++) {
            acc += s->prob[i];
            if (u < acc)
                return i;
            if (s->prob[i] > 0.0f)
                last = i;
        }
        return last;
    }
    double mass_max = s->p.top_p < 1.0f ? s->p.top_p * sum : sum;
    int kept = 0;
    double kept_mass = 0.0;
    /* The first k of the order at the tail, walked until top-p: with top-k,
     * its k; with top-p alone, 64, then 4x as many while the mass falls
     * short (each try a pass over V: a peaked distribution keeps few ids) */
    int k = k_max <= V / 2 ? k_max : 64;
    for (; k <= V / 2; k *= 4) {
        top_k_tail(s->heap, V, k, s->prob);
        kept = 0, kept_mass = 0.0;
        while (kept < k) {
            kept_mass += s->prob[s->heap[V - 1 - kept]];
            kept++;
            if (kept_mass >= mass_max)
                break;
        }
        if (kept_mass >= mass_max || k == k_max)
            break;
    }
    if (k > V / 2) {
        /* Pop candidates in descending probability until top-k is reached or
         * the kept mass reaches top-p: O(V + k log V), never a full sort. */
        kept = 0, kept_mass = 0.0;
        for (int i = 0; i < V; i++)
            s->heap[i] = i;
        for (int i = V / 2 - 1; i >= 0; i--)
            sift_down(s->heap, V, i, s->prob);
        int n = V;
        /* popped ids go to the tail of the heap array: heap[V-1], heap[V-2], ... */
        while (kept < k_max && n > 0) {
            int top = s->heap[0];
            s->heap[0] = s->heap[n - 1];
            s->heap[n - 1] = top;
            n--;
            sift_down(s->heap, n, 0, s->prob);
            kept++;
            kept_mass += s->prob[top];
            if (kept_mass >= mass_max)
                break;
        }
    }
    /* draw among the kept candidates, most probable first */
    double u = next_unit(s) * kept_mass, acc = 0.0;
    for (int j = 0; j < kept; j++) {
        int id = s->heap[V - 1 - j];
        acc += s->prob[id];
        if (u < acc)
            return id;
    }
    return s->heap[V - kept]; /* rounding: the least probable kept one */
}
