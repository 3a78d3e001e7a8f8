/* Progress of long measurements, on stderr.
 *
 * On a terminal: progress_begin prints "[phase] what", progress_update redraws
 * that one line with a bar, percentage, elapsed time, ETA and a detail (at most
 * ~10 times a second), and progress_end replaces it with the final line.
 * Otherwise (stderr not a tty, TERM=dumb, or progress_set_quiet(1)): only
 * progress_end prints, exactly one line. The final line is always
 *     [phase] what: summary (12.3 s)
 * Allocation happens in begin and end only; update is allocation-free. Not
 * thread-safe: call a handle's functions from one thread at a time. */
#ifndef GPT2C_BENCH_PROGRESS_H
#define GPT2C_BENCH_PROGRESS_H

typedef struct bench_progress bench_progress;

/* 1: never draw the live line, whatever stderr is (0: decide by isatty). */
void progress_set_quiet(int quiet);

/* Starts a measurement of total units (runs, requests, seconds...); total <= 0
 * means unknown (no bar, percentage or ETA). NULL only when out of memory; the
 * other functions accept NULL and do nothing. */
bench_progress *progress_begin(const char *phase, const char *what, double total);

/* done units so far; detail (may be NULL) is shown after the figures, cut to
 * the terminal's width. */
void progress_update(bench_progress *p, double done, const char *detail);

/* Prints the final line (summary_fmt may be NULL or "") and frees p. */
void progress_end(bench_progress *p, const char *summary_fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
