/* CPU feature detection (cpuid + xgetbv), read once, and the ISA table lookup.
 *
 * An ISA path counts as supported only when the CPU has the instructions AND
 * the OS saves the register state (XCR0): a kernel without YMM/ZMM context
 * switching would corrupt the upper halves between threads. */
#include "kernels.h"
#include "q8_0_internal.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define GPT2K_X86 1
#endif

typedef struct {
    int avx2;   /* AVX + AVX2 + FMA + F16C, OS saves YMM */
    int avx512; /* AVX-512 F/BW/VL/DQ, OS saves ZMM + opmask */
    int vnni;   /* AVX512_VNNI (vpdpbusd), on top of avx512: picks the Q8_0 matmul */
} cpu_caps;

static cpu_caps g_caps;
static pthread_once_t g_caps_once = PTHREAD_ONCE_INIT;

#ifdef GPT2K_X86
static unsigned long long read_xcr0(void)
{
    unsigned eax, edx;
    /* Raw opcode name works without -mxsave; only called when OSXSAVE is set. */
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}
#endif

static void detect(void)
{
    memset(&g_caps, 0, sizeof g_caps);
#ifdef GPT2K_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1,
        f16c = (c >> 29) & 1;
    if (!osxsave || !avx)
        return;
    unsigned long long xcr0 = read_xcr0();
    int os_ymm = (xcr0 & 0x6) == 0x6;   /* SSE + AVX state */
    int os_zmm = (xcr0 & 0xe6) == 0xe6; /* + opmask, ZMM_Hi256, Hi16_ZMM */

    if (__get_cpuid_max(0, NULL) < 7)
        return;
    __cpuid_count(7, 0, a, b, c, d);
    int avx2 = (b >> 5) & 1;
    int f512 = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    int vnni = (c >> 11) & 1;

    g_caps.avx2 = avx2 && fma && f16c && os_ymm;
    g_caps.avx512 = g_caps.avx2 && f512 && bw && vl && dq && os_zmm;
    g_caps.vnni = g_caps.avx512 && vnni;
#endif
}

static const cpu_caps *caps(void)
{
    pthread_once(&g_caps_once, detect);
    return &g_caps;
}

const char *gpt2k_isa_name(gpt2k_isa isa)
{
    switch (isa) {
    case GPT2K_ISA_SCALAR: return "scalar";
    case GPT2K_ISA_AVX2: return "avx2";
    case GPT2K_ISA_AVX512: return "avx512";
    }
    return "unknown";
}

int gpt2k_isa_parse(const char *s)
{
    if (!s)
        return -1;
    if (!strcmp(s, "auto"))
        return (int)gpt2k_best_isa();
    for (int i = 0; i < GPT2K_ISA_COUNT; i++)
        if (!strcmp(s, gpt2k_isa_name((gpt2k_isa)i)))
            return i;
    return -1;
}

int gpt2k_cpu_has_vnni(void)
{
    return caps()->vnni;
}

int gpt2k_cpu_supports(gpt2k_isa isa)
{
    switch (isa) {
    case GPT2K_ISA_SCALAR: return 1;
    case GPT2K_ISA_AVX2: return caps()->avx2;
    case GPT2K_ISA_AVX512: return caps()->avx512;
    }
    return 0;
}

gpt2k_isa gpt2k_best_isa(void)
{
    /* Walk down from the widest: supported by the CPU and compiled in. */
    for (int i = GPT2K_ISA_COUNT - 1; i > 0; i--)
        if (gpt2k_ops_for((gpt2k_isa)i))
            return (gpt2k_isa)i;
    return GPT2K_ISA_SCALAR;
}

const gpt2k_ops *gpt2k_ops_for(gpt2k_isa isa)
{
    if (!gpt2k_cpu_supports(isa))
        return NULL;
    switch (isa) {
    case GPT2K_ISA_SCALAR: return gpt2k_ops_ref();
    case GPT2K_ISA_AVX2: return gpt2k_ops_avx2();
    case GPT2K_ISA_AVX512: return gpt2k_ops_avx512();
    }
    return NULL;
}
