/* gpt2c-bench: what the phases share. Each phase is one file (phase_*.c)
 * that measures with the public API and adds its object to the report. */
#ifndef GPT2C_BENCH_H
#define GPT2C_BENCH_H

#include <cjson/cJSON.h>
#include <signal.h>

#include "gpt2.h"
#include "stats.h"

typedef struct bench_settings {
    const char *model_path;
    const char *reference_path; /* --reference: fp32 model for agreement */
    const char *backend, *isa, *gemm;
    const char *kv_type; /* --kv-type: NULL for the default (f16) */
    int threads;
    int device; /* --device: GPU ordinal */
    int quick;
    unsigned phases; /* bit (1 << n) for phase n */
    uint64_t seed;
    const char *out_dir;
    const char *compare_path;
    double soak_minutes; /* --soak: 0 when not asked for */
} bench_settings;

/* Sizes of the work, derived once from --quick and the model. */
typedef struct bench_plan {
    int latency_lengths[8], n_latency_lengths;
    int latency_gen, latency_repeats, latency_warmup;
    int validation_gen;
    double leak_window_s;
    int leak_prompt, leak_gen;
    int concurrency[8], n_concurrency;
    double tput_window_s;
    int tput_prompt, tput_gen;
    int agreement_tokens;
} bench_plan;

typedef struct bench {
    bench_settings set;
    bench_plan plan;
    gpt2_model *model;
    gpt2_ctx *ctx;
    double rss_after_load_mb;
    int soak_failed; /* the soak's verdict is FAIL */
    cJSON *report;   /* the whole report.json tree */
    cJSON *phases;   /* report["phases"] */
    cJSON *headline; /* report["headline"] */
} bench;

/* Set by SIGINT: phases stop at the next safe point; the report is written
 * and marked incomplete. */
extern volatile sig_atomic_t bench_interrupted;

int phase_validation(bench *b);
int phase_latency(bench *b);
int phase_memory(bench *b);
int phase_throughput(bench *b);
/* --soak (phase_soak.c): fills phases.soak and soak_failed. */
int phase_soak(bench *b);

/* ---- helpers (bench_util.c) --------------------------------------------- */

/* Exactly n tokens (n >= 1) of a fixed English text, repeated as needed: the
 * prompts and the agreement text. Returns 0 or -1 (message on stderr). */
int bench_text_ids(const gpt2_model *m, int n, int *out);

/* A stats object {n, mean, ...}; NaN fields become null. */
cJSON *bench_stats_json(const bench_stats *s);
cJSON *bench_stats_of(const double *x, int n);
/* A number, or null when not finite. */
cJSON *bench_num(double v);
/* Adds {"name", "ok", "detail"} to checks and returns ok. */
int bench_check(cJSON *checks, const char *name, int ok, const char *detail_fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The read bandwidth (GB/s) with `threads` threads over a 256 MiB buffer,
 * measured now in a child process (bwprobe.c); -1 if it could not run. */
double bench_probe_read_bw(int threads);

/* Greedy (or sampled) generation of n_new tokens with EOS ignored, recording
 * token ids and per-token timestamps (ms since the call). */
typedef struct bench_run {
    int *ids;        /* n_new */
    double *t_ms;    /* time of each token since the start */
    int n;
    gpt2_gen_stats st;
} bench_run;
int bench_run_alloc(bench_run *r, int n_new);
void bench_run_free(bench_run *r);
int bench_generate(gpt2_ctx *c, const int *prompt, int n_prompt, int n_new,
                   const gpt2_sampling *s, bench_run *r, gpt2_error *err);

/* Engine allocations so far (counted by alloc_count.c in gpt2c-bench; -1 when
 * the program was linked without counting). */
long bench_alloc_count(void);

#endif
