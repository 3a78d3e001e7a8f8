/* gpt2c-kbench: the kernel micro-benchmark. What its files share.
 *
 *   ceilings.c        the machine's ceilings: read bandwidth, fp32 FMA and int8 peaks
 *   ceilings_avx2.c   the AVX2 inner loops of those (compiled with -mavx2 -mfma)
 *   ceilings_avx512.c the AVX-512 ones (-mavx512*; VNNI when the CPU has it)
 *   accounting.c      bytes and FLOPs per op, the roofline (no timing: tested)
 *   cases.c           the list of cases (op x ISA x GEMM path x shape) and the filter
 *   ops_bench.c       buffers and timed runs of one case through the parallel drivers
 *   kbench_json.c     the JSON document (tools/kbench/README.md): write and read back
 *   main.c            options, the run, the table on stdout
 *
 * A kernel tool: it calls kernels/kernels.h directly, not the engine. */
#ifndef GPT2C_KBENCH_H
#define GPT2C_KBENCH_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

#define KB_SCHEMA "gpt2c-kbench"
#define KB_SCHEMA_VERSION 1

/* ---- ops and their accounting -------------------------------------------- */

typedef enum {
    KB_OP_MATMUL = 0,
    KB_OP_ATTENTION,
    KB_OP_LAYERNORM,
    KB_OP_GELU,
    KB_OP_ADD,
    KB_OP_QUANTIZE, /* Q8_0 activation quantize */
    KB_OP_TO_F16,   /* fp32 -> fp16, the KV cache's store */
    KB_OP_ARGMAX,   /* the greedy pick over a row of logits */
    KB_OP_COUNT
} kb_op;

typedef enum { KB_W_F32 = 0, KB_W_F16, KB_W_Q8_0, KB_W_COUNT } kb_wtype;
typedef enum { KB_GEMM_NONE = 0, KB_GEMM_NATIVE, KB_GEMM_OPENBLAS } kb_gemm;

const char *kb_op_name(kb_op op);         /* "matmul", "attention", ... */
const char *kb_wtype_name(kb_wtype w);    /* "f32", "f16", "q8_0" */
const char *kb_gemm_name(kb_gemm g);      /* NULL, "native", "openblas" */
int kb_op_parse(const char *s);           /* -1 if unknown */
int kb_wtype_parse(const char *s);
int kb_gemm_parse(const char *s);         /* NULL string -> KB_GEMM_NONE */

/* One measured case. Shape fields that do not apply to an op are 0 (null in JSON):
 *   matmul     M rows x K -> N columns, weights W[N][K] of wtype, with bias
 *   attention  M query rows (1: decode, ctx: prefill of a whole ctx prompt),
 *              ctx positions of cache (elements of wtype), heads x head_dim = K (N = 0)
 *   layernorm, gelu, add, quantize, to_f16, argmax: M rows x N values */
typedef struct kb_shape {
    kb_op op;
    kb_wtype wtype; /* matmul: the weights; attention: the KV cache (f32 | f16); f32 elsewhere */
    int M, K, N;
    int ctx, heads, head_dim; /* attention only */
} kb_shape;

/* Compulsory traffic and work of one call: every operand read once, every
 * result written once (the minimum any implementation must move), and the
 * nominal FLOPs (for q8_0 matmul: integer multiply-adds counted as 2 ops).
 * Documented per op in tools/kbench/README.md. */
double kb_bytes(const kb_shape *s);
double kb_flops(const kb_shape *s);

/* The machine's ceilings, as measured (0 where not measured). */
#define KB_MAX_THREADS 256
typedef struct kb_ceilings {
    int max_threads;                  /* entries 1..max_threads below are filled */
    double bw_gb_s[KB_MAX_THREADS + 1]; /* streaming read, by thread count (GB = 1e9 B) */
    double bw_buffer_mib;
    double fma_gflop_s[GPT2K_ISA_COUNT][2]; /* [isa][0: 1 thread, 1: max_threads] fp32 */
    double int8_gop_s[2];             /* best int8 dot-product path: 1 thread, max_threads */
    char int8_kind[12];               /* "vnni" | "maddubs" | "" (not measured) */
    double pool_run_us;               /* one empty gpt2k_pool_run on max_threads (0: not measured) */
} kb_ceilings;
/* Parallel ops (pool runs) in one decode step of GPT-2 with n_layer layers:
 * per layer 2 LayerNorms, 4 matmuls, attention, GELU; then the final
 * LayerNorm and the LM head. Times pool_run_us, the step's synchronisation. */
#define KB_DECODE_POOL_RUNS(n_layer) (8 * (n_layer) + 2)

/* The roofline for one case at `threads` threads: bandwidth at that thread
 * count (the nearest measured one below it), compute peak = the best fp32 FMA
 * peak of any ISA (the int8 peak for q8_0 matmul), 1 thread or all. */
typedef struct kb_roof {
    double bw_gb_s, peak_gflop_s;
    double intensity;    /* FLOP per byte */
    double ridge;        /* peak / bw: intensity where the roofs meet */
    double roof_gflop_s; /* min(peak, intensity * bw) */
    int compute_bound;   /* intensity >= ridge */
} kb_roof;
int kb_roofline(const kb_ceilings *c, const kb_shape *s, int threads, kb_roof *out);

/* ---- a case and its result ------------------------------------------------ */

typedef struct kb_case {
    kb_shape shape;
    int isa;             /* gpt2k_isa; -1 for OpenBLAS (its own dispatch) */
    kb_gemm gemm;
    char model[8];       /* "124M" ... or "" */
    char label[12];      /* matmul: "qkv" ...; attention: "decode" | "prefill"; else "" */
    char name[96];       /* "matmul/f32/native/avx2/124M/qkv/M1": what --filter matches */
} kb_case;

typedef struct kb_result {
    kb_case c;
    int threads;
    int reps;            /* timed repetitions (after one warm-up) */
    double median_ms, min_ms, max_ms;
    double bytes, flops;
    double gb_s, gflop_s;
    kb_roof roof;
    double pct_of_roof;  /* 100 * gflop_s / roof_gflop_s */
    double vs_openblas;  /* f32 native matmul: OpenBLAS median / ours (> 1: ours faster); NAN if none */
    double vs_previous;  /* --compare: the older run's median / this one's (> 1: now faster);
                          * NAN without --compare or when it has no case of this name and
                          * thread count */
    /* Native decode matmuls (M <= 16): a plain streaming read of the same
     * weight bytes, timed between the kernel's repeats (kb_read_split), so
     * both see the same moment of a machine whose bandwidth moves. NAN (0
     * bytes) for every other case. */
    double read_bytes;     /* one copy of the weights as the kernel reads them */
    double read_median_ms;
    double read_gb_s;
    double vs_read;        /* read median / kernel median: 1 = as fast as a plain read */
} kb_result;

/* Fills the derived figures (bytes, flops, rates, roof, %) from c, threads,
 * the times and the ceilings. */
void kb_result_finish(kb_result *r, const kb_ceilings *ceil);
/* For every native f32 matmul, the ratio to the OpenBLAS row of the same shape. */
void kb_link_openblas(kb_result *rs, int n);
/* For every result, the ratio to the result of the same name and thread count
 * in an older run (old, n_old): vs_previous. Returns how many matched. */
int kb_link_previous(kb_result *rs, int n, const kb_result *old, int n_old);

/* ---- the case list -------------------------------------------------------- */

typedef struct kb_plan_opts {
    int quick;
    int scalar_prefill; /* include the scalar path at prefill sizes (M >= 128): slow */
    const char *filter; /* comma-separated substrings; a case runs if its name holds any */
} kb_plan_opts;

/* The GPT-2 sizes: name and width C. */
typedef struct kb_model { const char *name; int C; } kb_model;
extern const kb_model kb_models[4];

/* Builds the cases (malloc'd, *n set) for the ISA paths this CPU runs. NULL when
 * out of memory. */
kb_case *kb_plan(const kb_plan_opts *o, int *n);
int kb_filter_match(const char *filter, const char *name);
void kb_case_name(kb_case *c);

/* ---- ceilings (ceilings.c) ------------------------------------------------ */

typedef struct kb_ceil_opts {
    int threads;
    double bw_mib;
    int quick;
} kb_ceil_opts;
/* Measures everything; progress lines on stderr. 0, or -1 with a message on stderr. */
int kb_measure_ceilings(gpt2k_pool *pool, const kb_ceil_opts *o, kb_ceilings *out);
/* Streaming read bandwidth (GB/s, 1e9 B) of buf (n floats, n % (256 *
 * threads) == 0, touched beforehand), split evenly over `threads` (<= the
 * pool's size, <= KB_MAX_THREADS) threads of pool: the best of `passes`
 * reads, with the widest SIMD loads this CPU has; -1 if out of memory. Also
 * what gpt2c-bench probes before each prompt length (bwprobe.c). */
double kb_read_bw(gpt2k_pool *pool, const float *buf, size_t n, int threads, int passes);
/* One read of p[0, bytes) (p 64-byte aligned, bytes % 64 == 0) on every thread
 * of pool (<= KB_MAX_THREADS threads), thread ith of nth taking the 64-byte
 * lines [ith*L/nth, (ith+1)*L/nth) of L, with the loop of kb_read_bw: the same
 * bytes a matmul driver hands out, read as fast as this CPU reads. Returns a
 * sum of what was read (keep it). */
double kb_read_split(gpt2k_pool *pool, const void *p, size_t bytes);

/* per-ISA inner loops (ceilings_avx2.c, ceilings_avx512.c); each returns a
 * value that depends on all the work so the compiler cannot drop it */
double kb_read_avx2(const float *p, size_t n); /* n % 256 == 0 */
double kb_fma_avx2(long iters, double *flops);  /* *flops: the work done */
double kb_int8_avx2(long iters, double *ops);    /* maddubs steps; *ops: 2 per byte product */
int kb_avx512_compiled(void);
double kb_read_avx512(const float *p, size_t n);
double kb_fma_avx512(long iters, double *flops);
double kb_int8_avx512(long iters, int vnni, double *ops); /* vpdpbusd, or maddubs without VNNI */
int kb_cpu_has_vnni(void);

/* ---- timing one case (ops_bench.c) ------------------------------------------ */

typedef struct kb_run_opts {
    double target_s; /* time to spend per case, roughly */
    int min_reps, max_reps;
    double cold_bytes; /* decode matmuls (attention) cycle through copies of W (the KV
                        * cache) totalling this */
} kb_run_opts;
/* Runs one case (warm-up + adaptive repeats), filling times and threads of r.
 * 0, or -1 with a message on stderr (out of memory). */
int kb_run_case(gpt2k_pool *pool, const kb_case *c, const kb_run_opts *o, kb_result *r);
/* Frees the weights kept from one case to the next (same shape, other paths). */
void kb_release_buffers(void);

/* ---- the document (kbench_json.c) ----------------------------------------- */

typedef struct kb_doc {
    char created_utc[32];
    char command[1024];
    int quick;
    int threads;
    char cpu_model[128];
    char git_commit[48];
    char openblas[160];
    kb_ceilings ceil;
    kb_result *results;
    int n_results;
    double wall_s;
    /* --compare: the older run (path empty without it) */
    char compare_path[512];
    char compare_created_utc[32];
    char compare_git_commit[48];
    kb_ceilings compare_ceil;
} kb_doc;

/* Writes the document to path (path.tmp.<pid> then rename). 0, or -1 with a
 * message naming the file in err. */
int kb_json_write(const kb_doc *d, const char *path, char *err, size_t errlen);
/* Reads a document written by kb_json_write. results malloc'd (free with
 * kb_doc_free). 0, or -1 with a message naming the file and field. */
int kb_json_read(const char *path, kb_doc *d, char *err, size_t errlen);
void kb_doc_free(kb_doc *d);

#endif
