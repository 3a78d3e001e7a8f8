/* Small facts about the library and the machine. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gpt2.h"
#include "kernels.h"

#ifndef GPT2C_VERSION
#define GPT2C_VERSION "0.0.0"
#endif

const char *gpt2_version(void) { return GPT2C_VERSION; }

double gpt2_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char g_isas[64];
static pthread_once_t g_isas_once = PTHREAD_ONCE_INIT;

static void list_isas(void)
{
    for (int i = 0; i < GPT2K_ISA_COUNT; i++)
        if (gpt2k_ops_for((gpt2k_isa)i)) {
            if (g_isas[0])
                strcat(g_isas, " ");
            strcat(g_isas, gpt2k_isa_name((gpt2k_isa)i));
        }
}

const char *gpt2_cpu_isas(void)
{
    pthread_once(&g_isas_once, list_isas);
    return g_isas;
}

const char *gpt2_cpu_best_isa(void) { return gpt2k_isa_name(gpt2k_best_isa()); }

const char *gpt2_op_name(gpt2_op_kind k)
{
    static const char *const names[GPT2_OP_COUNT] = {
        "embed", "layernorm", "matmul", "kv_store", "attention", "gelu", "lm_head", "pick", "other"};
    return (int)k >= 0 && k < GPT2_OP_COUNT ? names[k] : NULL;
}
