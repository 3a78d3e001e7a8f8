/* AVX-512 inner loops of the ceilings (compiled with -mavx512*; called only
 * when the CPU runs the AVX-512 path). Same shape as ceilings_avx2.c. */
#include <immintrin.h>
#include <stdint.h>

#include "kbench.h"

int kb_avx512_compiled(void) { return 1; }

/* cpuid leaf 7: AVX512_VNNI is ECX bit 11 (the OS check is gpt2k_cpu_supports) */
int kb_cpu_has_vnni(void) { return __builtin_cpu_supports("avx512vnni"); }

/* four interleaved streams, as kb_read_avx2 (n % 256 == 0) */
double kb_read_avx512(const float *p, size_t n)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    size_t q = n / 4;
    const float *p0 = p, *p1 = p + q, *p2 = p + 2 * q, *p3 = p + 3 * q;
    for (size_t i = 0; i < q; i += 32) {
        a0 = _mm512_add_ps(a0, _mm512_load_ps(p0 + i));
        a1 = _mm512_add_ps(a1, _mm512_load_ps(p0 + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_load_ps(p1 + i));
        a3 = _mm512_add_ps(a3, _mm512_load_ps(p1 + i + 16));
        a4 = _mm512_add_ps(a4, _mm512_load_ps(p2 + i));
        a5 = _mm512_add_ps(a5, _mm512_load_ps(p2 + i + 16));
        a6 = _mm512_add_ps(a6, _mm512_load_ps(p3 + i));
        a7 = _mm512_add_ps(a7, _mm512_load_ps(p3 + i + 16));
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    return _mm512_reduce_add_ps(s);
}

double kb_fma_avx512(long iters, double *flops)
{
    __m512 m = _mm512_set1_ps(0.999f), a = _mm512_set1_ps(0.001f);
    __m512 c[12];
    for (int k = 0; k < 12; k++)
        c[k] = _mm512_set1_ps(1.0f + 0.1f * k);
    for (long i = 0; i < iters; i++) {
        c[0] = _mm512_fmadd_ps(c[0], m, a);
        c[1] = _mm512_fmadd_ps(c[1], m, a);
        c[2] = _mm512_fmadd_ps(c[2], m, a);
        c[3] = _mm512_fmadd_ps(c[3], m, a);
        c[4] = _mm512_fmadd_ps(c[4], m, a);
        c[5] = _mm512_fmadd_ps(c[5], m, a);
        c[6] = _mm512_fmadd_ps(c[6], m, a);
        c[7] = _mm512_fmadd_ps(c[7], m, a);
        c[8] = _mm512_fmadd_ps(c[8], m, a);
        c[9] = _mm512_fmadd_ps(c[9], m, a);
        c[10] = _mm512_fmadd_ps(c[10], m, a);
        c[11] = _mm512_fmadd_ps(c[11], m, a);
    }
    *flops = (double)iters * 12 * 16 * 2;
    __m512 s = c[0];
    for (int k = 1; k < 12; k++)
        s = _mm512_add_ps(s, c[k]);
    return _mm512_reduce_add_ps(s);
}

/* The lanes wrap after long runs; summing them as doubles keeps the sink
 * free of signed overflow (which _mm512_reduce_add_epi32 would hit). */
static double sum_lanes(__m512i v)
{
    int32_t l[16];
    _mm512_storeu_si512(l, v);
    double s = 0;
    for (int i = 0; i < 16; i++)
        s += l[i];
    return s;
}

/* VNNI: vpdpbusd accumulates 64 byte products per instruction into its own
 * accumulator, so 12 chains need no operand tricks. Without VNNI: the
 * maddubs + madd + add step of the AVX2 loop, on 64 bytes. */
double kb_int8_avx512(long iters, int vnni, double *ops)
{
    __m512i y = _mm512_set1_epi8(-2);
    if (vnni) {
        __m512i x = _mm512_set1_epi8(3), c[12];
        for (int k = 0; k < 12; k++)
            c[k] = _mm512_setzero_si512();
        for (long i = 0; i < iters; i++)
            for (int k = 0; k < 12; k++)
                c[k] = _mm512_dpbusd_epi32(c[k], x, y);
        *ops = (double)iters * 12 * 64 * 2;
        __m512i s = c[0];
        for (int k = 1; k < 12; k++)
            s = _mm512_add_epi32(s, c[k]);
        return sum_lanes(s);
    }
    __m512i x0 = _mm512_set1_epi8(1), x1 = _mm512_set1_epi8(2), x2 = _mm512_set1_epi8(3),
            x3 = _mm512_set1_epi8(4), x4 = _mm512_set1_epi8(5), x5 = _mm512_set1_epi8(6);
    __m512i ones = _mm512_set1_epi16(1);
    __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    for (long i = 0; i < iters; i++) {
        __asm__ volatile("" : "+v"(x0), "+v"(x1), "+v"(x2), "+v"(x3), "+v"(x4), "+v"(x5));
#define STEP(c, x) c = _mm512_add_epi32(c, _mm512_madd_epi16(_mm512_maddubs_epi16(x, y), ones))
        STEP(c0, x0); STEP(c1, x1); STEP(c2, x2); STEP(c3, x3); STEP(c4, x4); STEP(c5, x5);
#undef STEP
    }
    *ops = (double)iters * 6 * 64 * 2;
    __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)),
                                 _mm512_add_epi32(c4, c5));
    return sum_lanes(s);
}
