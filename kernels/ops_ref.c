/* Plain C reference kernels: the definition of each op. No intrinsics, no
 * cleverness; the SIMD variants are tested against these. Sums over K run in
 * index order in float (what a naive engine does); statistics and the
 * transcendental parts use double so the reference is the accurate side. */
#include "kernels.h"
#include "kv_view_internal.h"
#include "q8_0_internal.h"

#include <math.h>

static void matmul_f32_ref(float *out, int ldo, const float *in, int ldi, const float *w,
                           const float *bias, int M, int K, int n0, int n1, int accumulate)
{
    for (int m = 0; m < M; m++) {
        const float *x = in + (size_t)m * ldi;
        float *o = out + (size_t)m * ldo;
        for (int n = n0; n < n1; n++) {
            const float *wn = w + (size_t)n * K;
            float s = 0.0f;
            for (int k = 0; k < K; k++)
                s += x[k] * wn[k];
            if (bias)
                s += bias[n];
            o[n] = accumulate ? o[n] + s : s;
        }
    }
}

static void matmul_f16_ref(float *out, int ldo, const float *in, int ldi, const uint16_t *w,
                           const float *bias, int M, int K, int n0, int n1, int accumulate)
{
    for (int m = 0; m < M; m++) {
        const float *x = in + (size_t)m * ldi;
        float *o = out + (size_t)m * ldo;
        for (int n = n0; n < n1; n++) {
            const uint16_t *wn = w + (size_t)n * K;
            float s = 0.0f;
            for (int k = 0; k < K; k++)
                s += x[k] * gpt2k_f16_to_f32(wn[k]);
            if (bias)
                s += bias[n];
            o[n] = accumulate ? o[n] + s : s;
        }
    }
}

static void layernorm_ref(float *out, const float *x, const float *g, const float *b, int C,
                          float eps)
{
    /* Two passes in double: no cancellation from E[x^2] - E[x]^2. */
    double mean = 0.0;
    for (int i = 0; i < C; i++)
        mean += x[i];
    mean /= C;
    double var = 0.0;
    for (int i = 0; i < C; i++) {
        double d = x[i] - mean;
        var += d * d;
    }
    var /= C;
    double rstd = 1.0 / sqrt(var + eps);
    for (int i = 0; i < C; i++)
        out[i] = (float)((x[i] - mean) * rstd * g[i] + b[i]);
}

static void gelu_ref(float *x, int n)
{
    const double c = 0.79788456080286535588; /* sqrt(2/pi) */
    for (int i = 0; i < n; i++) {
        double v = x[i];
        x[i] = (float)(0.5 * v * (1.0 + tanh(c * (v + 0.044715 * v * v * v))));
    }
}

static void add_ref(float *out, const float *a, const float *b, int n)
{
    for (int i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

static int argmax_ref(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* Element i of a cache array of type elem, as fp32. */
static float kv_elem(const void *base, size_t i, gpt2k_wtype elem)
{
    return elem == GPT2K_W_F16 ? gpt2k_f16_to_f32(((const uint16_t *)base)[i])
                               : ((const float *)base)[i];
}

static void attention_head_ref(float *out, const float *q, const gpt2k_kv_view *kv, int col,
                               int n_kv, int HD, float scale, float *scratch)
{
    size_t off, koff;
    float mx = -INFINITY;
    for (int t = 0; t < n_kv; t++) {
        /* key channel i at koff + i * kstep */
        size_t kstep = 1;
        if (kv->keys_t) {
            gpt2k_kv_span_t(kv, col, t, n_kv, &koff, &off);
            kstep = (size_t)kv->bs;
        } else {
            gpt2k_kv_span_off(kv, col, t, n_kv, &off);
            koff = off;
        }
        float s = 0.0f;
        for (int i = 0; i < HD; i++)
            s += q[i] * kv_elem(kv->k, koff + (size_t)i * kstep, kv->elem);
        scratch[t] = s * scale;
        if (scratch[t] > mx)
            mx = scratch[t];
    }
    /* Subtracting the max keeps exp() <= 1: no overflow, same softmax. */
    double sum = 0.0;
    for (int t = 0; t < n_kv; t++) {
        scratch[t] = (float)exp((double)scratch[t] - mx);
        sum += scratch[t];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < HD; i++)
        out[i] = 0.0f;
    for (int t = 0; t < n_kv; t++) {
        gpt2k_kv_span_off(kv, col, t, n_kv, &off);
        float p = scratch[t] * inv;
        for (int i = 0; i < HD; i++)
            out[i] += p * kv_elem(kv->v, off + (size_t)i, kv->elem);
    }
}

/* Row by row: the definition attention_rows must match bit for bit. */
static void attention_rows_ref(float *out, int ldo, const float *q, int ldq,
                               const gpt2k_kv_view *kv, int col, int n0, int rows, int HD,
                               float scale, float *scratch)
{
    for (int r = 0; r < rows; r++)
        attention_head_ref(out + (size_t)r * ldo, q + (size_t)r * ldq, kv, col, n0 + r, HD, scale,
                           scratch);
}

static void to_f16_ref(uint16_t *dst, const float *x, int n)
{
    for (int i = 0; i < n; i++)
        dst[i] = gpt2k_f32_to_f16(x[i]);
}

static const gpt2k_ops ops_ref = {
    .isa = GPT2K_ISA_SCALAR,
    .matmul_f32 = matmul_f32_ref,
    .matmul_f16 = matmul_f16_ref,
    .layernorm = layernorm_ref,
    .gelu = gelu_ref,
    .add = add_ref,
    .argmax = argmax_ref,
    .attention_head = attention_head_ref,
    .attention_rows = attention_rows_ref,
    .to_f16 = to_f16_ref,
    .quantize_q8_0 = gpt2k_quantize_q8_0_ref,
    .matmul_q8_0 = gpt2k_matmul_q8_0_ref,
};

const gpt2k_ops *gpt2k_ops_ref(void) { return &ops_ref; }
