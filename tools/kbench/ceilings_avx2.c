/* AVX2 inner loops of the ceilings (compiled with -mavx2 -mfma; called only
 * when the CPU runs AVX2). Each returns a value that depends on all its work,
 * so the compiler keeps it. */
#include <immintrin.h>

#include "kbench.h"

/* Sums n floats (n % 256 == 0, p 32-byte aligned) as four interleaved
 * streams, two loads each per step: several streams keep more of the hardware
 * prefetchers busy than one, as a GEMV reading many weight rows does. */
double kb_read_avx2(const float *p, size_t n)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    size_t q = n / 4;
    const float *p0 = p, *p1 = p + q, *p2 = p + 2 * q, *p3 = p + 3 * q;
    for (size_t i = 0; i < q; i += 16) {
        a0 = _mm256_add_ps(a0, _mm256_load_ps(p0 + i));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(p0 + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(p1 + i));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(p1 + i + 8));
        a4 = _mm256_add_ps(a4, _mm256_load_ps(p2 + i));
        a5 = _mm256_add_ps(a5, _mm256_load_ps(p2 + i + 8));
        a6 = _mm256_add_ps(a6, _mm256_load_ps(p3 + i));
        a7 = _mm256_add_ps(a7, _mm256_load_ps(p3 + i + 8));
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    float f[8];
    _mm256_storeu_ps(f, s);
    return (double)f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7];
}

/* 12 independent FMA chains: covers 2 FMA ports x up to 6 cycles of latency.
 * x * m + a with m slightly below 1 converges, never overflows or denormalises. */
double kb_fma_avx2(long iters, double *flops)
{
    __m256 m = _mm256_set1_ps(0.999f), a = _mm256_set1_ps(0.001f);
    __m256 c0 = _mm256_set1_ps(1.0f), c1 = _mm256_set1_ps(1.1f), c2 = _mm256_set1_ps(1.2f),
           c3 = _mm256_set1_ps(1.3f), c4 = _mm256_set1_ps(1.4f), c5 = _mm256_set1_ps(1.5f),
           c6 = _mm256_set1_ps(1.6f), c7 = _mm256_set1_ps(1.7f), c8 = _mm256_set1_ps(1.8f),
           c9 = _mm256_set1_ps(1.9f), c10 = _mm256_set1_ps(2.0f), c11 = _mm256_set1_ps(2.1f);
    for (long i = 0; i < iters; i++) {
        c0 = _mm256_fmadd_ps(c0, m, a);
        c1 = _mm256_fmadd_ps(c1, m, a);
        c2 = _mm256_fmadd_ps(c2, m, a);
        c3 = _mm256_fmadd_ps(c3, m, a);
        c4 = _mm256_fmadd_ps(c4, m, a);
        c5 = _mm256_fmadd_ps(c5, m, a);
        c6 = _mm256_fmadd_ps(c6, m, a);
        c7 = _mm256_fmadd_ps(c7, m, a);
        c8 = _mm256_fmadd_ps(c8, m, a);
        c9 = _mm256_fmadd_ps(c9, m, a);
        c10 = _mm256_fmadd_ps(c10, m, a);
        c11 = _mm256_fmadd_ps(c11, m, a);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                             _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
    *flops = (double)iters * 12 * 8 * 2;
    float f[8];
    _mm256_storeu_ps(f, s);
    return (double)f[0] + f[7];
}

/* The Q8_0 kernels' AVX2 step: maddubs (u8 x s8 -> pairs of i16), madd with
 * ones (-> i32), add: 32 byte products (64 ops) per step, 6 steps per
 * iteration on 6 operands that an empty asm statement "changes" each time,
 * so the compiler must redo every step. Small operands: nothing saturates. */
double kb_int8_avx2(long iters, double *ops)
{
    __m256i x0 = _mm256_set1_epi8(1), x1 = _mm256_set1_epi8(2), x2 = _mm256_set1_epi8(3),
            x3 = _mm256_set1_epi8(4), x4 = _mm256_set1_epi8(5), x5 = _mm256_set1_epi8(6);
    __m256i y = _mm256_set1_epi8(-2), ones = _mm256_set1_epi16(1);
    __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    for (long i = 0; i < iters; i++) {
        __asm__ volatile("" : "+x"(x0), "+x"(x1), "+x"(x2), "+x"(x3), "+x"(x4), "+x"(x5));
#define STEP(c, x) c = _mm256_add_epi32(c, _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), ones))
        STEP(c0, x0); STEP(c1, x1); STEP(c2, x2); STEP(c3, x3); STEP(c4, x4); STEP(c5, x5);
#undef STEP
    }
    *ops = (double)iters * 6 * 32 * 2;
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),
                                 _mm256_add_epi32(c4, c5));
    int v[8];
    _mm256_storeu_si256((__m256i *)v, s);
    return (double)v[0];
}
