/* Packed fp weight layout (see kernels.h): column groups of one 64-byte line
 * per k, each stored k-major. Plain C: packing runs once per model load. */
#include "kernels.h"

#include <string.h>

size_t gpt2k_packed_bytes(gpt2k_wtype t, int N, int K)
{
    const size_t G = GPT2K_PACK_COLS(t);
    const size_t groups = ((size_t)N + G - 1) / G;
    return groups * G * (size_t)K * (t == GPT2K_W_F16 ? 2 : 4);
}

void gpt2k_pack_weights(void *dst, const void *w, gpt2k_wtype t, int N, int K)
{
    gpt2k_pack_panels(dst, w, t, N, K, 0, (N + GPT2K_PANEL - 1) / GPT2K_PANEL);
}

/* Element offset of (n, k = 0) in a packed matrix: row n's k-th weight lies
 * k * GPT2K_PACK_COLS(t) elements further. */
static size_t packed_at(gpt2k_wtype t, int K, int n)
{
    const size_t G = GPT2K_PACK_COLS(t);
    return (size_t)n / G * G * (size_t)K + (size_t)n % G;
}

/* Each panel writes only its own 16 columns of its group (panels may be
 * packed by different threads), and the last panel also the group's columns
 * past it, which no panel owns. */
void gpt2k_pack_panels(void *dst, const void *w, gpt2k_wtype t, int N, int K, int p0, int p1)
{
    const size_t esz = t == GPT2K_W_F16 ? 2 : 4, G = GPT2K_PACK_COLS(t);
    for (int p = p0; p < p1 && (size_t)p * GPT2K_PANEL < (size_t)N; p++) {
        const int n0 = p * GPT2K_PANEL, nr = N - n0 < GPT2K_PANEL ? N - n0 : GPT2K_PANEL;
        int nz = GPT2K_PANEL; /* columns of this panel's stretch, zeros past nr */
        if (n0 + GPT2K_PANEL >= N)
            nz = (int)(((size_t)n0 / G + 1) * G - (size_t)n0);
        /* one source row at a time: reads stream, writes stride G elements */
        for (int r = 0; r < nz; r++) {
            const char *s = r < nr ? (const char *)w + ((size_t)(n0 + r) * K) * esz : NULL;
            if (esz == 4) {
                float *df = (float *)dst + packed_at(t, K, n0 + r);
                for (int k = 0; k < K; k++)
                    df[(size_t)k * G] = s ? ((const float *)s)[k] : 0.0f;
            } else {
                uint16_t *dh = (uint16_t *)dst + packed_at(t, K, n0 + r);
                for (int k = 0; k < K; k++)
                    dh[(size_t)k * G] = s ? ((const uint16_t *)s)[k] : 0;
            }
        }
    }
}

void gpt2k_packed_row(float *out, const void *wp, gpt2k_wtype t, int K, int n)
{
    const size_t base = packed_at(t, K, n), G = GPT2K_PACK_COLS(t);
    if (t == GPT2K_W_F16) {
        const uint16_t *h = (const uint16_t *)wp + base;
        for (int k = 0; k < K; k++)
            out[k] = gpt2k_f16_to_f32(h[(size_t)k * G]);
    } else {
        const float *f = (const float *)wp + base;
        for (int k = 0; k < K; k++)
            out[k] = f[(size_t)k * G];
    }
}

/* ---- Q8_0 ---------------------------------------------------------------- */

int gpt2k_q8_0_panel_rows(gpt2k_q8_layout l)
{
    return l == GPT2K_Q8_COLS16 ? GPT2K_Q8_COLS : GPT2K_Q8_PANEL;
}

size_t gpt2k_q8_0_packed_bytes(gpt2k_q8_layout l, int N, int K)
{
    const size_t pr = (size_t)gpt2k_q8_0_panel_rows(l);
    const size_t panels = ((size_t)N + pr - 1) / pr;
    return panels * pr * (size_t)(K / GPT2K_QK8_0) * sizeof(gpt2k_block_q8_0);
}

void gpt2k_q8_0_cols_set(gpt2k_q8_0_cols *g, int r, const gpt2k_block_q8_0 *b)
{
    g->d[r] = b->d;
    for (int j = 0; j < GPT2K_QK8_0 / 4; j++) { /* 4 values at a time, + 128 as unsigned */
        uint32_t v;
        memcpy(&v, b->qs + 4 * j, sizeof v);
        v ^= 0x80808080u;
        memcpy(g->q[j][r], &v, sizeof v);
    }
}

/* Block b of source row n (zero values and scale for the padding rows). */
static gpt2k_block_q8_0 source_block(const gpt2k_block_q8_0 *src, int N, size_t nb, size_t n,
                                     size_t b)
{
    gpt2k_block_q8_0 blk;
    if (n < (size_t)N)
        blk = src[n * nb + b];
    else
        memset(&blk, 0, sizeof blk);
    return blk;
}

void gpt2k_q8_0_pack_panels(gpt2k_q8_layout l, void *dst, const void *w, int N, int K, int p0,
                            int p1)
{
    const size_t nb = (size_t)(K / GPT2K_QK8_0);
    const int pr = gpt2k_q8_0_panel_rows(l);
    const gpt2k_block_q8_0 *src = w;
    for (int p = p0; p < p1 && (size_t)p * pr < (size_t)N; p++)
        for (size_t b = 0; b < nb; b++)
            for (int r = 0; r < pr; r++) {
                const gpt2k_block_q8_0 blk = source_block(src, N, nb, (size_t)p * pr + r, b);
                if (l == GPT2K_Q8_COLS16) {
                    gpt2k_q8_0_cols_set((gpt2k_q8_0_cols *)dst + (size_t)p * nb + b, r, &blk);
                } else {
                    gpt2k_q8_0_group *g = (gpt2k_q8_0_group *)dst + (size_t)p * nb + b;
                    g->d[r] = blk.d;
                    memcpy(g->qs[r], blk.qs, GPT2K_QK8_0);
                }
            }
}

void gpt2k_q8_0_pack_weights(gpt2k_q8_layout l, void *dst, const void *w, int N, int K)
{
    const int pr = gpt2k_q8_0_panel_rows(l);
    gpt2k_q8_0_pack_panels(l, dst, w, N, K, 0, (N + pr - 1) / pr);
}

void gpt2k_q8_0_packed_row(gpt2k_q8_layout l, float *out, const void *wp, int K, int n)
{
    const size_t nb = (size_t)(K / GPT2K_QK8_0);
    const int pr = gpt2k_q8_0_panel_rows(l), r = n % pr;
    for (size_t b = 0; b < nb; b++) {
        gpt2k_block_q8_0 blk;
        if (l == GPT2K_Q8_COLS16) {
            const gpt2k_q8_0_cols *g = (const gpt2k_q8_0_cols *)wp + (size_t)(n / pr) * nb + b;
            blk.d = g->d[r];
            for (int k = 0; k < GPT2K_QK8_0; k++)
                blk.qs[k] = (int8_t)(uint8_t)(g->q[k / 4][r][k % 4] ^ 0x80u);
        } else {
            const gpt2k_q8_0_group *g = (const gpt2k_q8_0_group *)wp + (size_t)(n / pr) * nb + b;
            blk.d = g->d[r];
            memcpy(blk.qs, g->qs[r], GPT2K_QK8_0);
        }
        gpt2k_dequantize_q8_0(out + b * GPT2K_QK8_0, &blk, GPT2K_QK8_0);
    }
}
