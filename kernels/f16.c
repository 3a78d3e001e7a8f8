/* IEEE binary16 <-> binary32 in plain C (no F16C), bit exact.
 * half: 1 sign, 5 exponent (bias 15), 10 mantissa bits. */
#include "kernels.h"

#include <string.h>

static float bits_to_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

float gpt2k_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0x1f) /* inf / nan: payload moves to the top of the f32 mantissa */
        return bits_to_f32(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {
        if (mant == 0)
            return bits_to_f32(sign);
        /* Subnormal: normalise so the leading 1 reaches bit 10. */
        int e = -1;
        do {
            mant <<= 1;
            e++;
        } while (!(mant & 0x400));
        mant &= 0x3ff;
        return bits_to_f32(sign | (uint32_t)(112 - e) << 23 | (mant << 13));
    }
    return bits_to_f32(sign | (exp + 112) << 23 | (mant << 13)); /* rebias 15 -> 127 */
}

uint16_t gpt2k_f32_to_f16(float f)
{
    uint32_t x = f32_to_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t a = x & 0x7fffffffu;

    if (a > 0x7f800000u) /* nan: keep the top payload bits, force quiet so it stays nan */
        return (uint16_t)(sign | 0x7e00 | (a >> 13 & 0x3ff));
    /* 65520 is halfway between 65504 (max half) and 65536; the tie goes to the
     * even side, which is the overflow to inf. */
    if (a >= 0x477ff000u)
        return (uint16_t)(sign | 0x7c00);
    if (a >= 0x38800000u) { /* normal half range: >= 2^-14 */
        uint32_t h = (a - 0x38000000u) >> 13; /* rebias 127 -> 15, drop 13 bits */
        uint32_t rem = a & 0x1fff;
        /* A carry out of the mantissa correctly bumps the exponent. */
        if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
            h++;
        return (uint16_t)(sign | h);
    }
    /* Subnormal half (or zero): value / 2^-24, rounded to an integer. */
    uint32_t e = a >> 23;
    if (e < 102) /* < 2^-25: rounds to zero (2^-25 exactly is a tie to even 0) */
        return sign;
    uint32_t mant = (a & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e; /* 14..24 */
    uint32_t q = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (q & 1)))
        q++; /* may reach 0x400: the smallest normal, encoded correctly */
    return (uint16_t)(sign | q);
}
