/* Helpers shared by the kernel suites (test_kernels.c, test_q8_0.c): a cheap
 * assertion for tight loops, a seeded generator, guarded allocations. */
#ifndef GPT2C_KERNEL_TESTUTIL_H
#define GPT2C_KERNEL_TESTUTIL_H

#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#define GUARD 16
#define SENTINEL (-7.25e30f) /* written around outputs; no kernel produces it */

/* Like ck_assert_msg, but free when it passes: Check's own assertions write a
 * checkpoint to a pipe each time, which dominates tight loops. */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

static uint64_t g_rng = 0x243f6a8885a308d3ull;

static inline uint64_t rand_u64(void)
{
    /* splitmix64: deterministic, so a failure reproduces */
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline float urand(float lo, float hi)
{
    return lo + (hi - lo) * (float)((rand_u64() >> 40) * (1.0 / 16777216.0));
}

static inline void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    CHECK(p != NULL, "out of memory (%zu bytes)", n);
    return p;
}

#endif
