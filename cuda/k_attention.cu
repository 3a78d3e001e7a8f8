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
 * A tile (up to 64 consecutive query rows of one sequence) is split over
 * gridDim.z = 4 blocks of 16 rows; each row has 8 threads, each holding HDP/8
 * of the head's dims of q and of the output accumulator in registers (scores
 * meet by 3 shuffles inside the row's 8 lanes). Key/value tiles of BKV
 * positions are staged in shared memory (fp32) and read by all rows at once.
 * Online softmax: the accumulator is rescaled only when a row's running max
 * grows. HDP: head dim rounded up to 16/32/64/128 (zero padded). */
#define PF_ROWS 64 /* rows per tile (the backend's tiles) */
#define PF_SUB 16  /* rows per block */
#define PF_TPR 8   /* threads per row */

template <int HDP>
__global__ void __launch_bounds__(PF_SUB * PF_TPR)
    attn_prefill_kernel(g2c_kv kv, void *out, g2c_dtype ot, int ldo, const float *q, int ldq,
                        const int *pos, const int *tab, const int *tiles, int HD, float scale)
{
    constexpr int BKV = HDP <= 64 ? 64 : 32, DPT = HDP / PF_TPR, NT = PF_SUB * PF_TPR;
    __shared__ float Ks[BKV][HDP], Vs[BKV][HDP];
    const int row0 = tiles[2 * blockIdx.x], nq = tiles[2 * blockIdx.x + 1];
    const int sub0 = blockIdx.z * PF_SUB;
    if (sub0 >= nq) /* the tile is shorter than this block's rows */
        return;
    const int nsub = nq - sub0 < PF_SUB ? nq - sub0 : PF_SUB;
    const int h = blockIdx.y, tid = threadIdx.x, rl = tid / PF_TPR, d0 = (tid % PF_TPR) * DPT;
    /* the row's 8 lanes: shuffles stay inside them, whatever other rows do */
    const unsigned group = 0xffu << ((tid & 31) & ~(PF_TPR - 1));
    const int *table = kv.tables + tab[row0];
    const int p_last = pos[row0 + sub0 + nsub - 1]; /* rows of a tile: consecutive positions */
    const bool active = rl < nsub;
    const int r = row0 + sub0 + (active ? rl : 0);
    const int my_pos = pos[r];

    float qr[DPT], acc[DPT];
#pragma unroll
    for (int i = 0; i < DPT; i++) {
        qr[i] = d0 + i < HD ? q[(size_t)r * ldq + h * HD + d0 + i] * scale : 0.0f;
        acc[i] = 0.0f;
    }
    float mx = -INFINITY, l = 0.0f;

    for (int t0 = 0; t0 <= p_last; t0 += BKV) {
        __syncthreads(); /* the previous tile is consumed */
        for (int e = tid; e < BKV * HDP; e += NT) {
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
                for (int i = 0; i < DPT; i++)
                    s = fmaf(qr[i], Ks[j][d0 + i], s);
                /* butterfly: every lane of the row ends with the same sum */
                s += __shfl_xor_sync(group, s, 4);
                s += __shfl_xor_sync(group, s, 2);
                s += __shfl_xor_sync(group, s, 1);
                if (s > mx) {
                    float corr = __expf(mx - s); /* 0 when mx = -inf */
                    l *= corr;
#pragma unroll
                    for (int i = 0; i < DPT; i++)
                        acc[i] *= corr;
                    mx = s;
                }
                float p = __expf(s - mx);
                l += p;
#pragma unroll
                for (int i = 0; i < DPT; i++)
                    acc[i] = fmaf(p, Vs[j][d0 + i], acc[i]);
            }
        }
    }
    if (!active)
        return;
    const float inv = 1.0f / l;
#pragma unroll
    for (int i = 0; i < DPT; i++) { /* unrolled: acc stays in registers */
        if (d0 + i >= HD)
            break;
        size_t o = (size_t)r * ldo + h * HD + d0 + i;
        float v = acc[i] * inv;
        if (ot == G2C_F32)
            ((float *)out)[o] = v;
        else if (ot == G2C_F16)
            ((__half *)out)[o] = __float2half_rn(v);
        else
            ((__nv_bfloat16 *)out)[o] = __float2bfloat16_rn(v);
    }
}

/* What both attention kernels assume of their arguments: a head dim of 1..128,
 * the cache's channels = NH * HD, an fp/bf output type, and a pool aligned
 * for their 16-byte loads (cudaMalloc gives 256). */
static bool shape_ok(const g2c_kv *kv, g2c_dtype ot, int NH, int HD)
{
    return HD >= 1 && HD <= 128 && ot != G2C_Q8_0 && kv->C == NH * HD &&
           ((uintptr_t)kv->pool & 15) == 0;
}

extern "C" int g2c_attention_prefill(cudaStream_t st, const g2c_kv *kv, void *out, g2c_dtype ot,
                                     int ldo, const float *q, int ldq, const int *pos,
                                     const int *tab, const int *tiles, int n_tiles, int NH, int HD)
{
    if (n_tiles <= 0)
        return 0;
    if (!shape_ok(kv, ot, NH, HD))
        return (int)cudaErrorInvalidValue;
    dim3 grid(n_tiles, NH, PF_ROWS / PF_SUB), block(PF_SUB * PF_TPR);
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
 * groups of threads over keys.
 * A row whose positions fit one chunk writes its output at once. Otherwise each
 * split leaves acc (HD floats), its max and its sum in part, and the last split
 * to finish (a counter per row and head) merges them: no second launch.
 * Splits past the row's position exit at once, so the grid depends only on the
 * row count (graph-friendly). */
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

__device__ __forceinline__ void store_out(void *out, g2c_dtype ot, size_t i, float v)
{
    if (ot == G2C_F32)
        ((float *)out)[i] = v;
    else if (ot == G2C_F16)
        ((__half *)out)[i] = __float2half_rn(v);
    else
        ((__nv_bfloat16 *)out)[i] = __float2bfloat16_rn(v);
}

__global__ void __launch_bounds__(DEC_THREADS)
    attn_decode_kernel(g2c_kv kv, void *out, g2c_dtype ot, int ldo, const float *q, int ldq,
                       const int *pos, const int *tab, const int *rows, int NH, int HD,
                       float scale, int splits, float *part, int *counters, int write_kv)
{
    __shared__ float qs[128], sc[G2C_DECODE_CHUNK], red[DEC_THREADS / 32], pv[2 * DEC_THREADS];
    __shared__ int is_last;
    const int ri = blockIdx.x, h = blockIdx.y, sp = blockIdx.z;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid & 31;
    const int r = rows[ri], p = pos[r], C = kv.C;
    const int t0 = sp * G2C_DECODE_CHUNK;
    if (t0 > p) /* past this row's last position: nothing to do */
        return;
    const int n = p + 1 - t0 < G2C_DECODE_CHUNK ? p + 1 - t0 : G2C_DECODE_CHUNK;
    /* splits with positions for this row; the launcher's grid has `splits` of
     * them, enough for pos < n_ctx (gpt2_batch_check): a position past that
     * is a broken precondition, and clamping keeps the counter protocol whole */
    const int n_split = min(p / G2C_DECODE_CHUNK + 1, splits);
    const int *table = kv.tables + tab[r];
    const float *qrow = q + (size_t)r * ldq;
    if (write_kv && p < t0 + G2C_DECODE_CHUNK) {
        /* this row's own key and value (qkv columns C.., 2C..) into the cache;
         * read back below by this block only, after the barrier */
        uint16_t *k = kv_at(kv, table, p, 0) + h * HD, *v = kv_at(kv, table, p, 1) + h * HD;
        for (int d = tid; d < HD; d += DEC_THREADS) {
            k[d] = f2h_bits(qrow[C + h * HD + d]);
            v[d] = f2h_bits(qrow[2 * C + h * HD + d]);
        }
    }
    for (int d = tid; d < HD; d += DEC_THREADS)
        qs[d] = qrow[h * HD + d] * scale;
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
    int G;
    if ((HD & 1) == 0) {
        const int P2 = HD / 2, g = tid / P2, c = tid % P2;
        G = DEC_THREADS / P2;
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
    } else {
        const int g = tid / HD, c = tid % HD;
        G = DEC_THREADS / HD;
        float a = 0.0f;
        if (g < G) {
            for (int j = g; j < n; j += G)
                a = fmaf(sc[j], h2f_bits(kv_at(kv, table, t0 + j, 1)[h * HD + c]), a);
            pv[g * HD + c] = a;
        }
    }
    __syncthreads();
    float acc = 0.0f;
    if (tid < HD)
        for (int gg = 0; gg < G; gg++)
            acc += pv[gg * HD + tid];
    const size_t o = (size_t)r * ldo + h * HD;
    if (n_split == 1) { /* the whole row in this block */
        if (tid < HD)
            store_out(out, ot, o + tid, acc / l);
        return;
    }

    /* leave this split's part; the last split of (row, head) merges them all */
    float *base = part + ((size_t)ri * NH + h) * splits * (HD + 2), *pp = base + sp * (HD + 2);
    if (tid < HD)
        pp[tid] = acc;
    if (tid == 0)
        pp[HD] = m, pp[HD + 1] = l;
    __threadfence(); /* the part is visible to every block before it is counted */
    __syncthreads();
    int *cnt = counters + (size_t)ri * NH + h;
    if (tid == 0)
        is_last = atomicAdd(cnt, 1) == n_split - 1;
    __syncthreads();
    if (!is_last)
        return;
    __threadfence();
    float mall = -INFINITY;
    for (int k = 0; k < n_split; k++)
        mall = fmaxf(mall, __ldcg(base + k * (HD + 2) + HD));
    if (tid < HD) {
        float num = 0.0f, den = 0.0f;
        for (int k = 0; k < n_split; k++) {
            const float *ps = base + k * (HD + 2);
            const float w = __expf(__ldcg(ps + HD) - mall);
            den = fmaf(w, __ldcg(ps + HD + 1), den);
            num = fmaf(w, __ldcg(ps + tid), num);
        }
        store_out(out, ot, o + tid, num / den);
    }
    if (tid == 0)
        *cnt = 0; /* ready for the next launch (and graph replay) */
}

extern "C" int g2c_decode_splits(int n_ctx)
{
    return (n_ctx + G2C_DECODE_CHUNK - 1) / G2C_DECODE_CHUNK;
}

extern "C" int g2c_attention_decode(cudaStream_t st, const g2c_kv *kv, void *out, g2c_dtype ot,
                                    int ldo, const float *q, int ldq, const int *pos,
                                    const int *tab, const int *rows, int n_rows, int NH, int HD,
                                    int n_ctx, float *part, int *counters, int write_kv)
{
    if (n_rows <= 0)
        return 0;
    if (!shape_ok(kv, ot, NH, HD))
        return (int)cudaErrorInvalidValue;
    const int splits = g2c_decode_splits(n_ctx);
    dim3 grid(n_rows, NH, splits);
    attn_decode_kernel<<<grid, DEC_THREADS, 0, st>>>(*kv, out, ot, ldo, q, ldq, pos, tab, rows, NH,
                                                     HD, 1.0f / sqrtf((float)HD), splits, part,
                                                     counters, write_kv);
    return g2c_launch_rc();
}
