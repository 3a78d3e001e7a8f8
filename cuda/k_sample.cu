/* Temperature / top-k / top-p sampling of logit rows on the device, so that a
 * sampled decode step copies back one int per row instead of n_vocab floats.
 * The rule is gpt2_sample_row's (engine/sample_row.c), step for step:
 *   1. p = exp((x - max) / T), NaN -> 0, and their total;
 *   2. the kept set: bisection on the bit patterns of p (for p >= 0 they sort
 *      as the values) for the largest t with count(p >= t) >= top_k or
 *      mass(p >= t) >= top_p * total; every p above t is kept, and of the ties
 *      at t as few as reach the count or the mass, lowest ids first;
 *   3. the draw: u * kept mass, walked over the kept tokens in id order.
 * One block per row. Every reduction has a fixed shape (strided per-thread
 * sums, then a fixed tree; the scan is sequential), so a row's token depends
 * on its logits and u alone: batched or alone, graph or not, run after run. */
#include "common.cuh"

#define SAMPLE_THREADS 1024
#define SAMPLE_WARPS (SAMPLE_THREADS / 32)

/* Block-wide sums and max, the same tree every time. `red` holds one slot per
 * warp; every thread gets the result. */
__device__ double block_sum_d(double v, double *red)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x / 32;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads(); /* red may still be read by the previous call */
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    double t = 0.0;
    for (int w = 0; w < SAMPLE_WARPS; w++)
        t += red[w];
    return t;
}

__device__ long long block_sum_ll(long long v, long long *red)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x / 32;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    long long t = 0;
    for (int w = 0; w < SAMPLE_WARPS; w++)
        t += red[w];
    return t;
}

__device__ float block_max_f(float v, float *red)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x / 32;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads();
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    float t = -INFINITY;
    for (int w = 0; w < SAMPLE_WARPS; w++)
        t = fmaxf(t, red[w]);
    return t;
}

/* a[0..n) becomes its exclusive prefix sums, in index order (one thread);
 * returns the total. */
template <typename T> __device__ T exclusive_scan(T *a, int n)
{
    T t = 0;
    for (int k = 0; k < n; k++) {
        const T c = a[k];
        a[k] = t;
        t += c;
    }
    return t;
}

/* gpt2_sample_row's is_kept: above the cut, or one of the first `take` ties
 * at it in id order (tie: the ties seen so far); every token when keep_all. */
__device__ __forceinline__ bool is_kept(unsigned bits, unsigned cut, long long take, bool keep_all,
                                        int &tie)
{
    return keep_all || bits > cut || (bits == cut && tie++ < take);
}

__global__ void __launch_bounds__(SAMPLE_THREADS)
    sample_kernel(int *out, float *pbuf, int ldp, const float *x, int ldx,
                  const g2c_sample_params *prm, int N)
{
    __shared__ double red_d[SAMPLE_WARPS];
    __shared__ long long red_i[SAMPLE_WARPS];
    __shared__ float red_f[SAMPLE_WARPS];
    __shared__ double base_d[SAMPLE_THREADS + 1]; /* exclusive scan of kept mass */
    __shared__ int base_t[SAMPLE_THREADS];        /* exclusive scan of ties */
    __shared__ int last_kept;
    const g2c_sample_params P = prm[blockIdx.x];
    if (!P.on)
        return;
    const float *row = x + (size_t)blockIdx.x * ldx;
    float *p = pbuf + (size_t)blockIdx.x * ldp;
    const int tid = threadIdx.x;

    /* 1. probabilities (NaN logits never count towards the max) */
    float mx = -INFINITY;
    for (int i = tid; i < N; i += SAMPLE_THREADS) {
        const float v = row[i];
        if (v > mx)
            mx = v;
    }
    mx = block_max_f(mx, red_f);
    double s = 0.0;
    for (int i = tid; i < N; i += SAMPLE_THREADS) {
        float v = expf((row[i] - mx) * P.inv_temp);
        v = v == v ? v : 0.0f;
        p[i] = v;
        s += v;
    }
    const double sum = block_sum_d(s, red_d);
    if (!(sum > 0.0)) {
        if (tid == 0)
            out[blockIdx.x] = 0;
        return;
    }
    const int k_max = P.top_k > 0 && P.top_k < N ? P.top_k : N;
    const double target = P.top_p < 1.0f ? (double)P.top_p * sum : INFINITY;

    /* 2. the cut: t* = lo; counts and masses of p >= lo and p >= hi. Without
     * top-k or top-p every token is kept: no search. */
    const bool keep_all = !(k_max < N || target < INFINITY);
    unsigned lo = 0, hi = __float_as_uint(1.0f) + 1;
    long long c_lo = N, c_hi = 0;
    double m_hi = 0.0;
    if (!keep_all) {
        while (hi - lo > 1) {
            const unsigned mid = lo + (hi - lo) / 2;
            long long c = 0;
            double m = 0.0;
            for (int i = tid; i < N; i += SAMPLE_THREADS) {
                const float v = p[i];
                if (__float_as_uint(v) >= mid)
                    c++, m += v;
            }
            c = block_sum_ll(c, red_i);
            m = block_sum_d(m, red_d);
            if (c >= k_max || m >= target) {
                lo = mid;
                c_lo = c;
            } else {
                hi = mid;
                c_hi = c;
                m_hi = m;
            }
        }
    }
    const float pt = __uint_as_float(lo);
    const long long n_ties = c_lo - c_hi;
    long long take = k_max - c_hi;
    if (pt > 0.0f && target < INFINITY) {
        const double need = (target - m_hi) / pt;
        long long j = need <= 1.0 ? 1 : (long long)ceil(need);
        while (j > 1 && m_hi + (double)(j - 1) * pt >= target)
            j--;
        while (j < n_ties && m_hi + (double)j * pt < target)
            j++;
        if (j < take)
            take = j;
    }
    if (take > n_ties)
        take = n_ties;
    if (take < 1)
        take = 1;

    /* 3. the draw, over contiguous chunks in id order */
    const int chunk = (N + SAMPLE_THREADS - 1) / SAMPLE_THREADS;
    const int i0 = min(N, tid * chunk), i1 = min(N, i0 + chunk);
    int ties = 0;
    for (int i = i0; i < i1; i++)
        ties += __float_as_uint(p[i]) == lo;
    base_t[tid] = ties;
    __syncthreads();
    if (tid == 0)
        exclusive_scan(base_t, SAMPLE_THREADS);
    __syncthreads();
    /* this chunk's kept mass, in id order; the last kept id */
    double m = 0.0;
    int tie = base_t[tid], last = -1;
    for (int i = i0; i < i1; i++) {
        if (is_kept(__float_as_uint(p[i]), lo, take, keep_all, tie)) {
            m += p[i];
            last = i;
        }
    }
    base_d[tid] = m;
    if (tid == 0)
        last_kept = -1;
    __syncthreads();
    if (last >= 0)
        atomicMax(&last_kept, last); /* a max: the same whatever the order */
    if (tid == 0)
        base_d[SAMPLE_THREADS] = exclusive_scan(base_d, SAMPLE_THREADS);
    __syncthreads();
    const double kept_mass = base_d[SAMPLE_THREADS];
    const double r = P.u * kept_mass;
    /* chunk tid owns [base_d[tid], base_d[tid + 1]): a partition of [0, total) */
    if (r >= base_d[tid] && r < base_d[tid + 1]) {
        double acc = base_d[tid];
        int token = -1, lastc = -1;
        tie = base_t[tid];
        for (int i = i0; i < i1; i++) {
            if (!is_kept(__float_as_uint(p[i]), lo, take, keep_all, tie))
                continue;
            acc += p[i];
            if (p[i] > 0.0f) /* a weightless token is never drawn, even by rounding */
                lastc = i;
            if (r < acc) {
                token = i;
                break;
            }
        }
        out[blockIdx.x] = token >= 0 ? token : lastc; /* rounding: the chunk's last kept */
    }
    if (tid == 0 && !(r < kept_mass))
        out[blockIdx.x] = last_kept; /* rounding left r at the end: the last kept token */
}

extern "C" int g2c_sample(cudaStream_t st, int *out, float *p, int ldp, const float *x, int ldx,
                          const g2c_sample_params *prm, int R, int N)
{
    if (R <= 0)
        return 0;
    if (N <= 0 || ldp < N || ldx < N)
        return (int)cudaErrorInvalidValue;
    sample_kernel<<<R, SAMPLE_THREADS, 0, st>>>(out, p, ldp, x, ldx, prm, N);
    return g2c_launch_rc();
}
