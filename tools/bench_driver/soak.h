/* The soak (gpt2c-bench --soak MINUTES): mixed requests through one serving
 * engine for a long time, with RSS and open file descriptors sampled. This
 * header is the part that needs no engine: what a sample is, what was counted,
 * and the verdict drawn from them (soak_judge.c), so tests can check the
 * arithmetic and the rules without minutes of running. */
#ifndef GPT2C_BENCH_SOAK_H
#define GPT2C_BENCH_SOAK_H

#include "stats.h"

typedef struct soak_sample {
    double t_s;    /* seconds since the soak started */
    double rss_mb; /* resident set, MiB */
    int fds;       /* open file descriptors */
    int clients;   /* client threads alive */
} soak_sample;

typedef struct soak_counts {
    long requests;   /* submitted (or refused at submit) */
    long completed;  /* finished with state DONE */
    long cancelled;  /* finished with state CANCELLED after gpt2_request_cancel */
    long abandoned;  /* freed unfinished, without waiting (a client that went away) */
    long failures;   /* refused at submit or FAILED: never expected in a soak */
    long checked;    /* compared with the same request run alone */
    long mismatches; /* of those, tokens that differ (a cancelled one: not a prefix) */
    long unchecked;  /* picked for the check but not checked (queue full, interrupted) */
    long generated_tokens;
} soak_counts;

#define SOAK_MAX_REASONS 8
#define SOAK_REASON_LEN 200

typedef struct soak_verdict {
    int n_fit;                 /* samples at or after the warm-up */
    int fit_ok;                /* 0: fewer than 3 such samples */
    double slope_mb_per_hour;  /* RSS growth, least squares over those samples */
    double se_mb_per_hour;     /* its standard error */
    double ci95_lo, ci95_hi;   /* slope +- t(0.975, n - 2) * se, MiB/hour */
    int fd_first, fd_last, fd_max, fd_growth; /* over the same samples */
    int pass;
    int n_reasons;
    char reasons[SOAK_MAX_REASONS][SOAK_REASON_LEN];
} soak_verdict;

/* The verdict: FAIL when any request failed or mismatched, when RSS grows
 * faster than threshold_mb_per_hour with a 95% interval that excludes 0,
 * when the open file descriptors at the last sample exceed those at the
 * first one after the warm-up, when nothing completed, or when too few
 * samples follow the warm-up to fit a slope. Samples before warmup_s are
 * excluded from the fit and the fd figures (first use of the KV pool, the
 * allocator's arenas for new threads). */
void soak_judge(const soak_sample *s, int n, double warmup_s, double threshold_mb_per_hour,
                const soak_counts *c, soak_verdict *out);

#endif
