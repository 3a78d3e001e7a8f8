/* Process and machine facts for the bench, read from /proc and sysconf.
 * The per-process readers (rss_mb, peak_rss_mb, reset_peak_rss, open_fds) are
 * cheap, allocation-free and use only a stack buffer, so the memory phase may
 * call them between requests without disturbing what it measures. Every
 * function returns a negative value (-1) when the fact is unavailable.
 * Sizes are MiB (2^20 bytes). */
#ifndef GPT2C_BENCH_SYSINFO_H
#define GPT2C_BENCH_SYSINFO_H

/* Current resident set of this process (/proc/self/statm, resident pages). */
double rss_mb(void);

/* Peak resident set of this process (VmHWM in /proc/self/status). */
double peak_rss_mb(void);

/* Resets the peak resident set to the current one (writes "5" to
 * /proc/self/clear_refs, Linux >= 4.0). Returns 1 if it worked, 0 if not
 * (then peak_rss_mb keeps counting from process start). */
int reset_peak_rss(void);

/* Number of open file descriptors of this process (entries of /proc/self/fd,
 * not counting the one used to read it). */
int open_fds(void);

/* Physical memory of the machine. */
double mem_total_mb(void);

/* Processors online (sysconf(_SC_NPROCESSORS_ONLN)). */
int cores_online(void);

#endif
