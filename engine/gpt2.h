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
    GPT2_ERR_TOKENIZE = -8     /* text cannot be encoded / id out of range */
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
    int max_batch;     /* tokens per forward pass (prefill chunk); 0: 512 */
    int device;        /* GPU ordinal for "cuda" (0: the first) */
} gpt2_ctx_opts;

gpt2_ctx *gpt2_ctx_create(const gpt2_model *m, const gpt2_ctx_opts *opts, gpt2_error *err);
void gpt2_ctx_free(gpt2_ctx *c);
int gpt2_ctx_threads(const gpt2_ctx *c);
const char *gpt2_ctx_isa(const gpt2_ctx *c);     /* the ISA path chosen */
const char *gpt2_ctx_backend(const gpt2_ctx *c); /* "cpu" */
const char *gpt2_ctx_gemm(const gpt2_ctx *c);    /* "native" or "openblas" */
/* bytes of KV cache per token and total, and of the activation arena */
size_t gpt2_ctx_kv_bytes_per_token(const gpt2_ctx *c);
size_t gpt2_ctx_kv_bytes(const gpt2_ctx *c);
size_t gpt2_ctx_arena_bytes(const gpt2_ctx *c);
int gpt2_ctx_pos(const gpt2_ctx *c); /* tokens currently in the KV cache */

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
