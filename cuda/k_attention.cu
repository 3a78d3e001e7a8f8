/* Causal attention over the paged fp16 KV cache (layout in cuda_kernels.h):
 * writing new keys/values, flash-style tiles for prefill rows, split-K
 * flash-decoding for decode rows. Scores, softmax and sums are fp32. */
#include "common.cuh"

/* pointer to the key (kind 0) or value (kind 1) of position t */
__device__ __forceinline__ uint16_t *kv_at(const g2c_kv &kv, const int *table, int t, int kind)
{
    int blk = table[t / kv.bs], i = t % kv.bs;
    return kv.pool + (((size_t)blk * kv.L + kv.layer) * 2 + kind) * kv.bs * kv.C + (size_t)i * kv.C;
}

/* ---- cache write ----------------------------------------------------------- */

__global__ void kv_write_kernel(g2c_kv kv, const float *qkv, int ldq, const int *pos,
                                const int *tab)
{
    const int r = blockIdx.x, C = kv.C;
    const int *table = kv.tables + tab[r];
    uint16_t *k = kv_at(kv, table, pos[r], 0), *v = kv_at(kv, table, pos[r], 1);
    const float *row = qkv + (size_t)r * ldq;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        k[c] = f2h_bits(row[C + c]);
        v[c] = f2h_bits(row[2 * C + c]);
    }
}

extern "C" int g2c_kv_write(cudaStream_t st, const g2c_kv *kv, const float *qkv, int ldq,
                            const int *pos, const int *tab, int R)
{
    if (R <= 0)
        return 0;
    kv_write_kernel<<<R, 256, 0, st>>>(*kv, qkv, ldq, pos, tab);
    return g2c_launch_rc();
}

/* ---- prefill: flash-style tiles --------------------------------------------
 * One block per (tile of up to 64 query rows, head); one thread per query row
 * keeps q and its output accumulator in registers. Key/value tiles of BKV
 * positions are staged in shared memory (fp32) and read by all rows at once
 * (broadcast). Online softmax: the accumulator is rescaled only when a row's
 * running max grows. HDP: head dim rounded up to 16/32/64/128 (zero padded). */
#define PF_ROWS 64

template <int HDP>
__global__ void __launch_bounds__(PF_ROWS)
    attn_prefill_kernel(g2c_kv kv, void *out, g2c_dtype ot, int ldo, const float *q, int ldq,
                        const int *pos, const int *tab, const int *tiles, int HD, float scale)
{
    constexpr int BKV = HDP <= 64 ? 64 : 32;
    __shared__ float Ks[BKV][HDP], Vs[BKV][HDP];
    const int row0 = tiles[2 * blockIdx.x], nq = tiles[2 * blockIdx.x + 1];
    const int h = blockIdx.y, tid = threadIdx.x;
    const int *table = kv.tables + tab[row0];
    const int p_last = pos[row0 + nq - 1]; /* rows of a tile: consecutive positions */
    const bool active = tid < nq;
    const int r = row0 + (active ? tid : 0);
    const int my_pos = pos[r];

    float qr[HDP], acc[HDP];
#pragma unroll
    for (int d = 0; d < HDP; d++) {
        qr[d] = d < HD ? q[(size_t)r * ldq + h * HD + d] * scale : 0.0f;
        acc[d] = 0.0f;
    }
    float mx = -INFINITY, l = 0.0f;

    for (int t0 = 0; t0 <= p_last; t0 += BKV) {
        __syncthreads(); /* the previous tile is consumed */
        for (int e = tid; e < BKV * HDP; e += PF_ROWS) {
            int j = e / HDP, d = e % HDP, t = t0 + j;
            float kvk = 0.0f, kvv = 0.0f;
            if (t <= p_last && d < HD) {
                kvk = h2f_bits(kv_at(kv, table, t, 0)[h * HD + d]);
                kvv = h2f_bits(kv_at(kv, table, t, 1)[h * HD + d]);
            }
            Ks[j][d] = kvk;
            Vs[j][d] = kvv;
        }
        __syncthreads();
        if (active) {
            int jn = my_pos - t0 + 1; /* causal: keys t0 .. my_pos */
            jn = jn < BKV ? jn : BKV;
            for (int j = 0; j < jn; j++) {
                float s = 0.0f;
#pragma unroll
                for (int d = 0; d < HDP; d++)
                    s = fmaf(qr[d], Ks[j][d], s);
                if (s > mx) {
                    float corr = __expf(mx - s); /* 0 when mx = -inf */
                    l *= corr;
#pragma unroll
                    for (int d = 0; d < HDP; d++)
                        acc[d] *= corr;
                    mx = s;
                }
                float p = __expf(s - mx);
                l += p;
#pragma unroll
                for (int d = 0; d < HDP; d++)
                    acc[d] = fmaf(p, Vs[j][d], acc[d]);
            }
        }
    }
    if (!active)
        return;
    const float inv = 1.0f / l;
#pragma unroll
    for (int d = 0; d < HDP; d++) { /* unrolled over HDP: acc stays in registers */
        if (d >= HD)
            break;
        size_t i = (size_t)r * ldo + h * HD + d;
        float v = acc[d] * inv;
        if (ot == G2C_F32)
            ((float *)out)[i] = v;
        else if (ot == G2C_F16)
            ((__half *)out)[i] = __float2half_rn(v);
        else
            ((__nv_bfloat16 *)out)[i] = __float2bfloat16_rn(v);
    }
}

extern "C" int g2c_attention_prefill(cudaStream_t st, const g2c_kv *kv, void *out, g2c_dtype ot,
                                     int ldo, const float *q, int ldq, const int *pos,
                                     const int *tab, const int *tiles, int n_tiles, int NH, int HD)
{
    if (n_tiles <= 0)
        return 0;
    if (HD > 128 || ot == G2C_Q8_0)
        return (int)cudaErrorInvalidValue;
    dim3 grid(n_tiles, NH), block(PF_ROWS);
    float scale = 1.0f / sqrtf((float)HD);
    if (HD <= 16)
        attn_prefill_kernel<16><<<grid, block, 0, st>>>(*kv, out, ot, ldo, q, ldq, pos, tab, tiles, HD, scale);
    else if (HD <= 32)
        attn_prefill_kernel<32><<<grid, block, 0, st>>>(*kv, out, ot, ldo, q, ldq, pos, tab, tiles, HD, scale);
    else if (HD <= 64)
        attn_prefill_kernel<64><<<grid, block, 0, st>>>(*kv, out, ot, ldo, q, ldq, pos, tab, tiles, HD, scale);
    else
        attn_prefill_kernel<128><<<grid, block, 0, st>>>(*kv, out, ot, ldo, q, ldq, pos, tab, tiles, HD, scale);
    return g2c_launch_rc();
}

/* ---- decode: split-K flash-decoding ------------------------------------------
 * Block (row, head, split) handles positions split*CHUNK .. min(+CHUNK, pos+1)
 * with one thread per key: each thread reads its whole key (128-bit loads when
 * HD % 8 == 0), so a chunk's scores cost one round of independent loads, not
 * one dependent warp reduction per key. Then the block's softmax over its
 * chunk, and p.V with threads over channel pairs (coalesced half2 loads) and
 * groups of threads over keys. It leaves acc (HD floats), its max and its sum;
 * the combine kernel merges the splits with their maxima. */
#define DEC_THREADS 128
#if G2C_DECODE_CHUNK != DEC_THREADS
#error "the decode kernel gives each key of a chunk its own thread"
#endif

/* q (in shared memory, already scaled) . key of HD fp16 values */
__device__ __forceinline__ float dot_key(const float *qs, const uint16_t *k, int HD)
{
    float a = 0.0f;
    if ((HD & 7) == 0) { /* rows and head offsets are then multiples of 16 bytes */
#pragma unroll 4
        for (int d = 0; d < HD; d += 8) {
            const uint4 v = *(const uint4 *)(k + d);
            const __half2 *h = (const __half2 *)&v;
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const float2 f = __half22float2(h[i]);
                a = fmaf(qs[d + 2 * i], f.x, a);
                a = fmaf(qs[d + 2 * i + 1], f.y, a);
            }
        }
    } else {
        for (int d = 0; d < HD; d++)
            a = fmaf(qs[d], h2f_bits(k[d]), a);
    }
    return a;
}

__global__ void __launch_bounds__(DEC_THREADS)
    attn_decode_kernel(g2c_kv kv, const float *q, int ldq, const int *pos, const int *tab,
                       const int *rows, int NH, int HD, float scale, int splits, float *part)
{
    __shared__ float qs[128], sc[G2C_DECODE_CHUNK], red[DEC_THREADS / 32], pv[2 * DEC_THREADS];
    const int ri = blockIdx.x, h = blockIdx.y, sp = blockIdx.z;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid & 31;
    const int r = rows[ri], p = pos[r];
    float *pp = part + (((size_t)ri * NH + h) * splits + sp) * (HD + 2);
    const int t0 = sp * G2C_DECODE_CHUNK;
    if (t0 > p) { /* past this row's last position: an empty split */
        if (tid == 0)
            pp[HD] = -INFINITY, pp[HD + 1] = 0.0f;
        return;
    }
    const int n = p + 1 - t0 < G2C_DECODE_CHUNK ? p + 1 - t0 : G2C_DECODE_CHUNK;
    const int *table = kv.tables + tab[r];
    for (int d = tid; d < HD; d += DEC_THREADS)
        qs[d] = q[(size_t)r * ldq + h * HD + d] * scale;
    __syncthreads();

    /* scores: thread j owns key t0 + j */
    float s = -INFINITY;
    if (tid < n)
        s = dot_key(qs, kv_at(kv, table, t0 + tid, 0) + h * HD, HD);

    /* block max, then exp and block sum */
    float m = warp_max(s);
    if (lane == 0)
        red[warp] = m;
    __syncthreads();
    m = red[0];
    for (int w = 1; w < DEC_THREADS / 32; w++)
        m = fmaxf(m, red[w]);
    const float e = tid < n ? __expf(s - m) : 0.0f;
    sc[tid] = e;
    __syncthreads(); /* red is reused below; sc is complete */
    float l = warp_sum(e);
    if (lane == 0)
        red[warp] = l;
    __syncthreads();
    l = 0.0f;
    for (int w = 0; w < DEC_THREADS / 32; w++)
        l += red[w];

    /* p.V: thread (g, c) sums keys g, g+G, ... for channel c (a pair of
     * channels when HD is even); the G groups meet in shared memory */
    if ((HD & 1) == 0) {
        const int P2 = HD / 2, G = DEC_THREADS / P2, g = tid / P2, c = tid % P2;
        float2 a = make_float2(0.0f, 0.0f);
        if (g < G) {
#pragma unroll 4
            for (int j = g; j < n; j += G) {
                const __half2 v = *(const __half2 *)(kv_at(kv, table, t0 + j, 1) + h * HD + 2 * c);
                const float2 f = __half22float2(v);
                a.x = fmaf(sc[j], f.x, a.x);
                a.y = fmaf(sc[j], f.y, a.y);
            }
            pv[g * HD + 2 * c] = a.x;
            pv[g * HD + 2 * c + 1] = a.y;
        }
        __syncthreads();
        if (tid < HD) {
            float acc = 0.0f;
            for (int gg = 0; gg < G; gg++)
                acc += pv[gg * HD + tid];
            pp[tid] = acc;
        }
    } else {
        const int G = DEC_THREADS / HD, g = tid / HD, c = tid % HD;
        float a = 0.0f;
        if (g < G) {
            for (int j = g; j < n; j += G)
                a = fmaf(sc[j], h2f_bits(kv_at(kv, table, t0 + j, 1)[h * HD + c]), a);
            pv[g * HD + c] = a;
        }
        __syncthreads();
        if (tid < HD) {
            float acc = 0.0f;
            for (int gg = 0; gg < G; gg++)
                acc += pv[gg * HD + tid];
            pp[tid] = acc;
        }
    }
    if (tid == 0)
        pp[HD] = m, pp[HD + 1] = l;
}

template <typename OT>
__global__ void attn_combine_kernel(OT *out, int ldo, const int *rows, int NH, int HD, int splits,
                                    const float *part)
{
    const int ri = blockIdx.x, h = blockIdx.y;
    const float *pp = part + ((size_t)ri * NH + h) * splits * (HD + 2);
    float m = -INFINITY;
    for (int s = 0; s < splits; s++)
        m = fmaxf(m, pp[s * (HD + 2) + HD]);
    float den = 0.0f;
    for (int s = 0; s < splits; s++) {
        const float *ps = pp + s * (HD + 2);
        if (ps[HD + 1] > 0.0f)
            den += __expf(ps[HD] - m) * ps[HD + 1];
    }
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
        float num = 0.0f;
        for (int s = 0; s < splits; s++) {
            const float *ps = pp + s * (HD + 2);
            if (ps[HD + 1] > 0.0f)
                num += __expf(ps[HD] - m) * ps[d];
        }
        out[(size_t)rows[ri] * ldo + h * HD + d] = from_f<OT>(num / den);
    }
}

extern "C" int g2c_decode_splits(int n_ctx)
{
    return (n_ctx + G2C_DECODE_CHUNK - 1) / G2C_DECODE_CHUNK;
}

extern "C" int g2c_attention_decode(cudaStream_t st, const g2c_kv *kv, void *out, g2c_dtype ot,
                                    int ldo, const float *q, int ldq, const int *pos,
                                    const int *tab, const int *rows, int n_rows, int NH, int HD,
                                    int n_ctx, float *part)
{
    if (n_rows <= 0)
        return 0;
    if (HD > 128)
        return (int)cudaErrorInvalidValue;
    const int splits = g2c_decode_splits(n_ctx);
    dim3 grid(n_rows, NH, splits);
    attn_decode_kernel<<<grid, DEC_THREADS, 0, st>>>(*kv, q, ldq, pos, tab, rows, NH, HD,
                                                     1.0f / sqrtf((float)HD), splits, part);
    int rc = g2c_launch_rc();
    if (rc)
        return rc;
    dim3 cgrid(n_rows, NH);
    int th = HD <= 32 ? 32 : HD <= 64 ? 64 : 128;
    switch (ot) {
    case G2C_F32: attn_combine_kernel<<<cgrid, th, 0, st>>>((float *)out, ldo, rows, NH, HD, splits, part); break;
    case G2C_F16: attn_combine_kernel<<<cgrid, th, 0, st>>>((__half *)out, ldo, rows, NH, HD, splits, part); break;
    case G2C_BF16:
        attn_combine_kernel<<<cgrid, th, 0, st>>>((__nv_bfloat16 *)out, ldo, rows, NH, HD, splits, part);
        break;
    default: return (int)cudaErrorInvalidValue;
    }
    return g2c_launch_rc();
}
