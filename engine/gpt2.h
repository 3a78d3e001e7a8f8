/* gpt2c public API: the only header the tools include.
 *
 * A gpt2_model is a loaded (mmapped, validated) GGUF file with its tokenizer.
 * A gpt2_ctx is one inference session on a model: KV cache, activation arena,
 * thread pool. Nothing is allocated per token once a context exists.
 *
 * Every function that can fail takes a gpt2_error* (may be NULL) and returns a
 * negative gpt2_status on failure, with a message naming the file, key or
 * tensor and what was expected. The engine never prints and never exits. */
#ifndef GPT2C_GPT2_H
#define GPT2C_GPT2_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GPT2_EOS_TOKEN 50256 /* <|endoftext|> in the GPT-2 vocabulary */

typedef enum {
    GPT2_OK = 0,
    GPT2_ERR_IO = -1,          /* open/read/write/mmap failed */
    GPT2_ERR_FORMAT = -2,      /* malformed file: bad magic, bounds, types */
    GPT2_ERR_INVALID = -3,     /* bad argument or option */
    GPT2_ERR_NOMEM = -4,       /* allocation failed */
    GPT2_ERR_CONTEXT = -5,     /* request longer than the context window */
    GPT2_ERR_UNSUPPORTED = -6, /* valid but not supported (type, backend) */
    GPT2_ERR_CRC = -7,         /* tensor data does not match its CRC-32 */
    GPT2_ERR_TOKENIZE = -8,    /* text cannot be encoded / id out of range */
    GPT2_ERR_BUSY = -9         /* no room (KV pool full) within the wait allowed */
} gpt2_status;

typedef struct gpt2_error {
    int code;       /* a gpt2_status */
    char msg[768];  /* human-readable, names file / key / tensor */
} gpt2_error;

const char *gpt2_status_name(int status);

/* ---- dtypes and model files -------------------------------------------- */

typedef enum { GPT2_DTYPE_F32 = 0, GPT2_DTYPE_F16 = 1, GPT2_DTYPE_Q8_0 = 8 } gpt2_dtype;

const char *gpt2_dtype_name(gpt2_dtype t);
/* parses "f32" | "f16" | "q8_0"; returns -1 if unknown */
int gpt2_dtype_parse(const char *s);

typedef struct gpt2_config {
    int n_vocab;
    int n_ctx;    /* context window (positions) */
    int n_embd;   /* C */
    int n_head;   /* NH; head dim = C / NH */
    int n_layer;  /* L */
    int n_ff;     /* 4 C for GPT-2 */
    float ln_eps; /* 1e-5 for GPT-2 */
} gpt2_config;

/* The four GPT-2 sizes: "124M" "355M" "774M" "1558M". Fills cfg; -1 if unknown. */
int gpt2_config_preset(const char *size, gpt2_config *cfg);

/* Writes a model with GPT-2's initialisation (seeded) and the real GPT-2
 * vocabulary (embedded in the library) to out_path. The vocabulary is cut to
 * cfg->n_vocab tokens when smaller (merges restricted to tokens kept): used for
 * small test configs. Writes to a temporary name and renames on success. */
int gpt2_write_synthetic(const gpt2_config *cfg, uint64_t seed, gpt2_dtype dtype,
                         const char *out_path, int verbose, gpt2_error *err);

/* Converts a Hugging Face GPT-2 checkpoint directory (config.json,
 * model.safetensors, vocab.json, merges.txt) to GGUF. */
int gpt2_convert_hf(const char *hf_dir, gpt2_dtype dtype, const char *out_path,
                    int verbose, gpt2_error *err);

/* Quantizes a model file: every 2-D weight matrix (attn_qkv, attn_output,
 * ffn_up, ffn_down) to `type` (GPT2_DTYPE_Q8_0), the token embedding / LM head
 * to `embd_type` (Q8_0, F16 or F32), everything else (position embedding,
 * LayerNorm parameters, biases) kept in F32; tokenizer and metadata copied;
 * CRCs written. The output appears only when complete (temporary + rename).
 * report (may be NULL) is called once per tensor. */
typedef struct gpt2_quant_tensor {
    const char *name;
    const char *type_in, *type_out; /* "f32" "f16" "q8_0" */
    size_t bytes_in, bytes_out;
    double rms_rel_err; /* ||deq(q(x)) - x|| / ||x||; 0 when copied */
    double max_abs_err;
} gpt2_quant_tensor;
typedef void (*gpt2_quant_report_fn)(const gpt2_quant_tensor *t, int index, int count, void *user);
int gpt2_quantize(const char *in_path, const char *out_path, gpt2_dtype type, gpt2_dtype embd_type,
                  gpt2_quant_report_fn report, void *user, gpt2_error *err);
/* gpt2_quantize with flags:
 *   GPT2_QUANT_OUTPUT_WEIGHT: a file whose LM head is tied to token_embd gets
 *     an explicit output.weight (the same values, in embd_type), as llama.cpp's
 *     own GPT-2 converter writes: llama.cpp builds that require the tensor
 *     load the output. gpt2c reads either form. */
#define GPT2_QUANT_OUTPUT_WEIGHT 1u
int gpt2_quantize_ex(const char *in_path, const char *out_path, gpt2_dtype type,
                     gpt2_dtype embd_type, unsigned flags, gpt2_quant_report_fn report, void *user,
                     gpt2_error *err);

/* ---- loading ------------------------------------------------------------ */

typedef struct gpt2_model gpt2_model;

typedef struct gpt2_load_opts {
    int skip_crc; /* 1: do not verify per-tensor CRC-32 */
    int verbose;  /* 1: notices (e.g. "file has no CRCs") go to the log callback */
} gpt2_load_opts;

/* Optional sink for engine notices (not errors). Default: none. */
typedef void (*gpt2_log_fn)(const char *line, void *user);
void gpt2_set_log(gpt2_log_fn fn, void *user);

gpt2_model *gpt2_model_load(const char *path, const gpt2_load_opts *opts, gpt2_error *err);
void gpt2_model_free(gpt2_model *m);
const gpt2_config *gpt2_model_config(const gpt2_model *m);
/* "f32", "f16", "q8_0" or "mixed" */
const char *gpt2_model_dtype(const gpt2_model *m);
size_t gpt2_model_weight_bytes(const gpt2_model *m);
/* Bytes of the weights' packed copies the CPU kernels read (made at the first
 * CPU context whose ISA path uses them; their file pages are then dropped), 0
 * while the weights are read from the mapped file. */
size_t gpt2_model_packed_bytes(const gpt2_model *m);
double gpt2_model_load_ms(const gpt2_model *m);
const char *gpt2_model_path(const gpt2_model *m);
/* number of tensors in the file that carried a CRC-32 that was verified */
int gpt2_model_crc_checked(const gpt2_model *m);
/* Metadata of the file: a string value (not NUL-terminated; NULL if the key is
 * absent or not a string), an unsigned integer (0 on success). */
const char *gpt2_model_meta_str(const gpt2_model *m, const char *key, size_t *len);
int gpt2_model_meta_u64(const gpt2_model *m, const char *key, uint64_t *out);
/* CRC-32 (zlib) of a whole file, as its identity in reports. */
int gpt2_file_crc32(const char *path, uint32_t *crc, gpt2_error *err);

/* ---- tokenizer ---------------------------------------------------------- */

/* Encodes bytes (any bytes, invalid UTF-8 included) with GPT-2's byte-level BPE.
 * Writes up to max_ids ids; returns the total count needed (may exceed max_ids)
 * or a negative status. */
int gpt2_tokenize(const gpt2_model *m, const char *text, size_t len, int *ids, int max_ids,
                  gpt2_error *err);
/* The exact bytes of one token; NULL if id is out of range. */
const char *gpt2_token_bytes(const gpt2_model *m, int id, size_t *len);
/* Decodes ids into buf (not NUL-terminated); returns the byte count needed
 * (may exceed cap) or a negative status for an out-of-range id. */
long gpt2_detokenize(const gpt2_model *m, const int *ids, int n, char *buf, size_t cap,
                     gpt2_error *err);

/* ---- inference ---------------------------------------------------------- */

typedef struct gpt2_ctx gpt2_ctx;

typedef struct gpt2_ctx_opts {
    int n_threads;     /* 0: all online cores */
    const char *isa;   /* NULL: GPT2C_ISA env or auto; "scalar" "avx2" "avx512" */
    const char *backend; /* NULL or "cpu"; "cuda" when built with CUDA */
    const char *gemm;  /* NULL or "native": our kernels; "openblas": cblas_sgemm (F32 weights) */
    int max_batch;     /* tokens per forward pass (prefill chunk); 0: 256 on the
                        * CPU (as fast as 512, half the activations), 512 on a GPU */
    int device;        /* GPU ordinal for "cuda" (0: the first) */
    const char *kv_type; /* KV cache elements: NULL or "f16" (half the memory and
                          * the bytes attention reads), "f32" (the forward exactly
                          * as the fp32 reference; CPU only) */
} gpt2_ctx_opts;

gpt2_ctx *gpt2_ctx_create(const gpt2_model *m, const gpt2_ctx_opts *opts, gpt2_error *err);
void gpt2_ctx_free(gpt2_ctx *c);
int gpt2_ctx_threads(const gpt2_ctx *c);
const char *gpt2_ctx_isa(const gpt2_ctx *c);     /* the ISA path chosen */
const char *gpt2_ctx_backend(const gpt2_ctx *c); /* "cpu" */
const char *gpt2_ctx_gemm(const gpt2_ctx *c);    /* "native" or "openblas" */
const char *gpt2_ctx_kv_type(const gpt2_ctx *c); /* "f16" or "f32" */
/* bytes of KV cache per token and total, and of the activation arena */
size_t gpt2_ctx_kv_bytes_per_token(const gpt2_ctx *c);
size_t gpt2_ctx_kv_bytes(const gpt2_ctx *c);
size_t gpt2_ctx_arena_bytes(const gpt2_ctx *c);
/* Bytes of weights one decode step reads on this context's backend (a GPU's
 * device copies, in their device type): each matrix once, one position row. */
size_t gpt2_ctx_weight_bytes(const gpt2_ctx *c);
int gpt2_ctx_pos(const gpt2_ctx *c); /* tokens currently in the KV cache */
/* The device a "cuda" context runs on, as one JSON object (name, compute
 * capability, SMs, memory, clocks, driver and runtime versions, peak
 * bandwidth) for reports. -1 (json = "null") for the CPU backend. */
int gpt2_ctx_device_info(const gpt2_ctx *c, char *json, size_t cap);

/* Where a context's forward passes spend their time, op by op: wall time on
 * the calling thread, so a parallel op counts until its slowest thread is
 * done, synchronisation included. Decode passes (one row per sequence) and
 * the others (prompts) are summed apart. Off by default: while on, each op
 * reads the clock twice (about 200 reads in a 124M decode step). */
typedef enum gpt2_op_kind {
    GPT2_OP_EMBED,     /* token + position embeddings */
    GPT2_OP_LAYERNORM, /* the blocks' two and the final one */
    GPT2_OP_MATMUL,    /* qkv, attention output, MLP up and down (with their
                        * bias and residual; Q8_0: the activations' quantizing) */
    GPT2_OP_KV_STORE,  /* the pass's keys and values into the cache */
    GPT2_OP_ATTENTION,
    GPT2_OP_GELU,
    GPT2_OP_LM_HEAD,   /* the LM head matmul, for the rows that want logits */
    GPT2_OP_PICK,      /* the backend's argmax or sampled token */
    GPT2_OP_OTHER,     /* between the ops: bookkeeping, gathering the head's rows */
    GPT2_OP_COUNT
} gpt2_op_kind;
const char *gpt2_op_name(gpt2_op_kind k); /* "embed", "layernorm", ...; NULL if out of range */

typedef struct gpt2_op_times {
    double ms[GPT2_OP_COUNT]; /* their sum is the passes' whole time */
    long passes, rows;
} gpt2_op_times;

typedef struct gpt2_op_profile {
    gpt2_op_times decode; /* passes whose sequences have one row each */
    gpt2_op_times prompt; /* the others */
} gpt2_op_profile;

/* The figures tools derive from a profile: its passes' whole time (the sum
 * of ms[]), and for decode passes the rate their matmuls and LM head read
 * the weights at (gpt2_ctx_weight_bytes per pass over that time; GB =
 * 1e9 B), 0 when there were none. */
double gpt2_op_total_ms(const gpt2_op_times *t);
double gpt2_ctx_decode_weights_gb_s(const gpt2_ctx *c, const gpt2_op_times *decode);

/* Starts collecting from zero (on = 1) or stops (on = 0), then copies the sums
 * so far to *out when out is not NULL. GPT2_ERR_UNSUPPORTED (err set) on a
 * backend without it (the CUDA one: its ops run asynchronously). */
int gpt2_ctx_profile(gpt2_ctx *c, int on, gpt2_op_profile *out, gpt2_error *err);

/* Forgets the KV cache (position 0). */
void gpt2_ctx_reset(gpt2_ctx *c);

/* Appends n tokens at the current position (prefill if n > 1, decode if 1),
 * in chunks of max_batch. On success *logits points to the n_vocab logits of
 * the last token (valid until the next call). GPT2_ERR_CONTEXT if the
 * cache would overflow (nothing is evaluated then). */
int gpt2_eval(gpt2_ctx *c, const int *ids, int n, const float **logits, gpt2_error *err);

/* Evaluates ids from the current position and hands the logits of every
 * position to cb in order (rows of n_vocab floats, [n_rows][n_vocab]). */
typedef int (*gpt2_logits_fn)(const float *rows, int first_pos, int n_rows, int n_vocab,
                              void *user);
int gpt2_eval_all_logits(gpt2_ctx *c, const int *ids, int n, gpt2_logits_fn cb, void *user,
                         gpt2_error *err);

/* ---- sampling and generation ------------------------------------------- */

typedef struct gpt2_sampling {
    int greedy;        /* 1: argmax, other fields ignored */
    float temperature; /* > 0 */
    int top_k;         /* 0: off */
    float top_p;       /* 1.0: off */
    uint64_t seed;
} gpt2_sampling;

void gpt2_sampling_default(gpt2_sampling *s); /* temp 1, top_k 0, top_p 1, seed 0 */

typedef struct gpt2_sampler gpt2_sampler;
gpt2_sampler *gpt2_sampler_create(const gpt2_sampling *s, int n_vocab, gpt2_error *err);
void gpt2_sampler_free(gpt2_sampler *s);
/* Picks a token from logits (not modified). Allocation-free. */
int gpt2_sampler_sample(gpt2_sampler *s, const float *logits);

typedef struct gpt2_gen_opts {
    int n_new;         /* tokens to generate at most */
    int ignore_eos;    /* 1: keep going past <|endoftext|> */
    gpt2_sampling sampling;
} gpt2_gen_opts;

typedef struct gpt2_gen_stats {
    int n_prompt;
    int n_generated;
    double ttft_ms;        /* prompt submitted -> first token sampled */
    double prefill_ms;
    double decode_ms;      /* after the first token */
    double prefill_tok_s;  /* n_prompt / prefill time */
    double decode_tok_s;   /* (n_generated - 1) / decode_ms */
    int stopped_at_eos;
} gpt2_gen_stats;

/* Called for each generated token; return non-zero to stop. */
typedef int (*gpt2_token_fn)(int id, void *user);

/* Resets the context, evaluates the prompt, samples up to n_new tokens. */
int gpt2_generate(gpt2_ctx *c, const int *prompt, int n_prompt, const gpt2_gen_opts *opts,
                  gpt2_token_fn cb, void *user, gpt2_gen_stats *stats, gpt2_error *err);

/* ---- serving: many requests batched into one forward step ---------------- */
/* A gpt2_engine owns a backend, a paged KV pool and a scheduler thread.
 * Requests are submitted from any number of threads; every step the
 * scheduler runs one forward pass over the next token of every decoding
 * sequence plus chunks of waiting prompts (continuous batching), so each
 * weight is read once per step for all of them. A request's tokens are the
 * ones gpt2_generate would give it alone on a context of the same backend
 * (greedy or sampled with its seed) with the native GEMM; "openblas" keeps no
 * such promise (its sums depend on the batch). */

typedef struct gpt2_engine gpt2_engine;
typedef struct gpt2_request gpt2_request;

typedef struct gpt2_engine_opts {
    gpt2_ctx_opts ctx;    /* threads, isa, backend, gemm, device; ctx.max_batch:
                           * tokens per step, decode and prefill together (0: 256) */
    int max_seqs;         /* sequences running at once (0: 64; <= tokens per step) */
    int kv_tokens;        /* KV pool in positions (0: from kv_mem_mb) */
    int kv_mem_mb;        /* KV pool in MB when kv_tokens is 0 (0: 512), at the
                           * cache's element size (ctx.kv_type: fp16 by default,
                           * CPU fp32 by option); at least one full context */
    int queue_timeout_ms; /* a request waiting longer than this for KV room fails
                           * with GPT2_ERR_BUSY (0: 60000; < 0: wait forever) */
} gpt2_engine_opts;

typedef enum {
    GPT2_REQ_QUEUED = 0,    /* waiting for KV room or a sequence slot */
    GPT2_REQ_RUNNING = 1,   /* prefilling or decoding */
    GPT2_REQ_DONE = 2,      /* n_new tokens, EOS, or the callback stopped it */
    GPT2_REQ_CANCELLED = 3, /* gpt2_request_cancel (tokens so far are kept) */
    GPT2_REQ_FAILED = 4     /* see the result's error */
} gpt2_req_state;

typedef struct gpt2_request_opts {
    const int *prompt;      /* token ids (copied), or NULL: tokenize text */
    int n_prompt;
    const char *text;       /* used when prompt is NULL; NULL or "": <|endoftext|> */
    gpt2_gen_opts gen;      /* n_new, ignore_eos, sampling (its own seed) */
    gpt2_token_fn on_token; /* may be NULL; called on the scheduler thread for each
                             * token, must be quick; non-zero stops the request */
    void *user;
    float *logits;          /* may be NULL: [n_new][n_vocab], row i receives the logits
                             * token i was sampled from (checks, accuracy studies) */
} gpt2_request_opts;

typedef struct gpt2_request_result {
    int state;              /* gpt2_req_state */
    const int *tokens;      /* generated so far; valid until gpt2_request_free */
    int n_tokens;
    int n_prompt;
    int stopped_at_eos;
    double queue_ms;        /* submitted -> admitted (KV room reserved) */
    double ttft_ms;         /* submitted -> first token (0 before it) */
    double total_ms;        /* submitted -> finished (0 before it) */
    gpt2_error error;       /* state GPT2_REQ_FAILED */
} gpt2_request_result;

typedef struct gpt2_engine_stats {
    uint64_t steps;         /* forward passes */
    uint64_t rows;          /* tokens they held (decode + prefill) */
    uint64_t decode_rows;
    uint64_t seq_steps;     /* sum over steps of the sequences in the step */
    uint64_t submitted, completed, cancelled, failed;
    int running, queued;
    int kv_blocks, kv_block_tokens;
    int kv_blocks_used, kv_blocks_peak, kv_blocks_reserved;
    size_t kv_bytes_per_token;
    size_t kv_pool_bytes;
    double forward_ms;      /* time inside forward passes */
} gpt2_engine_stats;

gpt2_engine *gpt2_engine_create(const gpt2_model *m, const gpt2_engine_opts *opts,
                                gpt2_error *err);
/* Cancels what is unfinished and stops the scheduler. Requests not yet freed
 * stay readable (state CANCELLED if they had not finished) until
 * gpt2_request_free. */
void gpt2_engine_free(gpt2_engine *e);
/* Validates and queues a request; NULL with err set if it can never run
 * (empty or too long for the context, larger than the whole KV pool, bad
 * sampling parameters, engine stopping). Thread-safe. */
gpt2_request *gpt2_submit(gpt2_engine *e, const gpt2_request_opts *opts, gpt2_error *err);
/* Asks the scheduler to stop the request at the next step; its KV blocks
 * return to the pool then. Thread-safe; no effect once it has finished. */
void gpt2_request_cancel(gpt2_request *r);
/* Waits up to timeout_ms (< 0: forever) for the request to finish and fills
 * out (may be NULL) with its state and tokens so far. Returns the state. */
int gpt2_request_wait(gpt2_request *r, int timeout_ms, gpt2_request_result *out);
/* Releases the handle; an unfinished request is cancelled first. */
void gpt2_request_free(gpt2_request *r);
void gpt2_engine_get_stats(gpt2_engine *e, gpt2_engine_stats *out);
const char *gpt2_engine_isa(const gpt2_engine *e);
const char *gpt2_engine_gemm(const gpt2_engine *e);
const char *gpt2_engine_kv_type(const gpt2_engine *e); /* "f16" or "f32" */
int gpt2_engine_threads(const gpt2_engine *e);

/* ---- misc --------------------------------------------------------------- */

/* ISA paths this CPU can run, e.g. "scalar avx2"; and the auto choice. */
const char *gpt2_cpu_isas(void);
const char *gpt2_cpu_best_isa(void);
const char *gpt2_version(void);
double gpt2_now_ms(void); /* monotonic clock */

#ifdef __cplusplus
}
#endif
#endif
