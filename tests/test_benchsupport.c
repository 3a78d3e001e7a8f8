/* Bench support modules: process/machine facts (sysinfo), the environment
 * object of a report (env), build facts (generated build_info.h) and progress
 * lines on stderr (progress). Memory figures are checked against a 50 MiB
 * buffer the test touches itself; the bounds allow for allocator and page-table
 * overhead (and ASan shadow memory, 1/8 of the buffer) but not for a unit
 * error (KiB vs MiB, pages vs bytes), which would be off by 256x or more. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "build_info.h"
#include "bench.h"
#include "env.h"
#include "gpt2.h"
#include "progress.h"
#include "sysinfo.h"
#include "testutil.h"

#define BUF_MB 50
#define SLACK_LO 5.0  /* MiB below BUF_MB: only lazily counted pages (kernel RSS counters) */
#define SLACK_HI 15.0 /* MiB above BUF_MB: allocator, page tables, ASan shadow (6.25) */

/* ---- sysinfo -------------------------------------------------------------- */

START_TEST(test_sysinfo_sane)
{
    double rss = rss_mb(), peak = peak_rss_mb();
    ck_assert_msg(rss > 0 && rss < 1e6, "rss_mb() = %g", rss);
    ck_assert_msg(peak >= rss - 0.01, "peak_rss_mb() = %g < rss_mb() = %g", peak, rss);
    int fds = open_fds();
    ck_assert_msg(fds >= 3, "open_fds() = %d", fds);
    int fd = open("/dev/null", O_RDONLY);
    ck_assert(fd >= 0);
    ck_assert_int_eq(open_fds(), fds + 1);
    close(fd);
    ck_assert_int_eq(open_fds(), fds);
    double mem = mem_total_mb();
    ck_assert_msg(mem > 16 && mem > rss, "mem_total_mb() = %g", mem);
    ck_assert_int_ge(cores_online(), 1);
    ck_assert_int_eq(cores_online(), (int)sysconf(_SC_NPROCESSORS_ONLN));
}
END_TEST

/* The bandwidth probe runs in a child: it reports a plausible rate for 1 and
 * 2 threads, and its 256 MiB never show in this process's RSS peak. */
START_TEST(test_bw_probe)
{
    int can_reset = reset_peak_rss();
    double peak0 = peak_rss_mb();
    for (int t = 1; t <= 2; t++) {
        double gbs = bench_probe_read_bw(t);
        ck_assert_msg(gbs > 0.1 && gbs < 10000.0, "probe with %d threads: %g GB/s", t, gbs);
    }
    if (can_reset)
        ck_assert_msg(peak_rss_mb() - peak0 < 16.0, "peak RSS grew %.1f MiB across the probes",
                      peak_rss_mb() - peak0);
}
END_TEST

START_TEST(test_sysinfo_tracks_allocation)
{
    int can_reset = reset_peak_rss();
    double rss0 = rss_mb(), peak0 = peak_rss_mb();
    size_t n = (size_t)BUF_MB << 20;
    volatile char *buf = malloc(n);
    ck_assert(buf != NULL);
    memset((char *)buf, 1, n); /* touch every page */
    double rss1 = rss_mb(), peak1 = peak_rss_mb();
    ck_assert_msg(rss1 - rss0 >= BUF_MB - SLACK_LO && rss1 - rss0 <= BUF_MB + SLACK_HI,
                  "rss grew %.2f MiB (%.2f -> %.2f) after touching %d MiB", rss1 - rss0, rss0, rss1,
                  BUF_MB);
    ck_assert_msg(peak1 >= rss1 - 0.01, "peak %.2f < rss %.2f", peak1, rss1);
    if (can_reset)
        ck_assert_msg(peak1 - peak0 >= BUF_MB - SLACK_LO && peak1 - peak0 <= BUF_MB + SLACK_HI,
                      "peak grew %.2f MiB (%.2f -> %.2f) after touching %d MiB", peak1 - peak0,
                      peak0, peak1, BUF_MB);
    else
        ck_assert_msg(peak1 >= peak0 + BUF_MB - SLACK_LO || peak0 >= rss1 - 0.01,
                      "peak %.2f -> %.2f after touching %d MiB", peak0, peak1, BUF_MB);
    free((char *)buf); /* 50 MiB is above glibc's mmap threshold: given back */

    double rss2 = rss_mb();
    if (!reset_peak_rss()) {
        fprintf(stderr, "test_benchsupport: /proc/self/clear_refs not writable; reset_peak_rss "
                        "unsupported here, its check skipped\n");
        return;
    }
    double peak2 = peak_rss_mb(), rss3 = rss_mb();
    /* the peak restarts from the current resident set (a free under ASan may
     * keep the buffer in quarantine: then current and peak both stay high) */
    ck_assert_msg(peak2 <= (rss2 > rss3 ? rss2 : rss3) + 2.0 && peak2 >= rss3 - 0.01,
                  "after reset: peak %.2f, rss %.2f (before reset %.2f, peak %.2f)", peak2, rss3,
                  rss2, peak1);
    if (rss2 < rss1 - (BUF_MB - SLACK_LO))
        ck_assert_msg(peak2 < peak1 - (BUF_MB - SLACK_LO), "peak did not drop: %.2f -> %.2f",
                      peak1, peak2);
}
END_TEST

/* ---- build_info.h --------------------------------------------------------- */

START_TEST(test_build_info)
{
    const char *s[] = {GPT2C_GIT_COMMIT, GPT2C_BUILD_TYPE, GPT2C_COMPILER, GPT2C_VERSION_STRING};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        ck_assert_msg(s[i] && *s[i], "build_info.h macro %zu is empty", i);
    ck_assert_msg(GPT2C_GIT_DIRTY == 0 || GPT2C_GIT_DIRTY == 1 || GPT2C_GIT_DIRTY == -1,
                  "GPT2C_GIT_DIRTY = %d", GPT2C_GIT_DIRTY);
    /* the flags of a built type are never empty (Release: -O3 -DNDEBUG) */
    ck_assert_msg(*GPT2C_C_FLAGS, "GPT2C_C_FLAGS is empty");
    /* a commit id is 40 (SHA-1) or 64 (SHA-256) hex digits, or "unknown" */
    size_t n = strlen(GPT2C_GIT_COMMIT);
    if (strcmp(GPT2C_GIT_COMMIT, "unknown") != 0) {
        ck_assert_msg(n == 40 || n == 64, "GPT2C_GIT_COMMIT = %s", GPT2C_GIT_COMMIT);
        ck_assert_uint_eq(strspn(GPT2C_GIT_COMMIT, "0123456789abcdef"), n);
        ck_assert_msg(GPT2C_GIT_DIRTY >= 0, "commit known but dirty state not");
    }
    /* the version the build recorded is the library's */
    ck_assert_str_eq(GPT2C_VERSION_STRING, gpt2_version());
}
END_TEST

/* ---- env ------------------------------------------------------------------- */

enum { T_STR = 1, T_NUM = 2, T_BOOL = 4, T_ARR = 8, T_OBJ = 16, T_NULL = 32 };

static int json_type_ok(const cJSON *v, int types)
{
    return ((types & T_STR) && cJSON_IsString(v)) || ((types & T_NUM) && cJSON_IsNumber(v))
        || ((types & T_BOOL) && cJSON_IsBool(v)) || ((types & T_ARR) && cJSON_IsArray(v))
        || ((types & T_OBJ) && cJSON_IsObject(v)) || ((types & T_NULL) && cJSON_IsNull(v));
}

static const struct {
    const char *key;
    int types;
} ENV_KEYS[] = {
    {"cpu_model", T_STR | T_NULL},  {"cpu_flags", T_ARR | T_NULL},     {"cores_online", T_NUM | T_NULL},
    {"memory_total_mb", T_NUM | T_NULL}, {"os", T_STR | T_NULL},      {"kernel", T_STR | T_NULL},
    {"hostname", T_STR | T_NULL},   {"compiler", T_STR | T_NULL},      {"cflags", T_STR},
    {"build_type", T_STR | T_NULL}, {"git_commit", T_STR | T_NULL},    {"git_dirty", T_BOOL | T_NULL},
    {"gpt2c_version", T_STR | T_NULL}, {"gpu", T_OBJ | T_NULL},
};

static void check_gpu_object(const cJSON *gpu)
{
    ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(gpu, "name")));
    ck_assert(json_type_ok(cJSON_GetObjectItemCaseSensitive(gpu, "memory_mb"), T_NUM | T_NULL));
    ck_assert(json_type_ok(cJSON_GetObjectItemCaseSensitive(gpu, "driver"), T_STR | T_NULL));
    ck_assert(json_type_ok(cJSON_GetObjectItemCaseSensitive(gpu, "clocks_mhz"), T_NUM | T_NULL));
    ck_assert_int_eq(cJSON_GetArraySize(gpu), 4);
}

START_TEST(test_env_keys)
{
    cJSON *env = bench_env_collect();
    ck_assert(env != NULL);
    char *text = cJSON_Print(env);
    ck_assert(text != NULL);
    for (size_t i = 0; i < sizeof ENV_KEYS / sizeof ENV_KEYS[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(env, ENV_KEYS[i].key);
        ck_assert_msg(v != NULL, "environment has no \"%s\":\n%s", ENV_KEYS[i].key, text);
        ck_assert_msg(json_type_ok(v, ENV_KEYS[i].types), "environment \"%s\" has the wrong type:\n%s",
                      ENV_KEYS[i].key, text);
    }
    ck_assert_int_eq(cJSON_GetArraySize(env), (int)(sizeof ENV_KEYS / sizeof ENV_KEYS[0]));

#ifdef __linux__
    const cJSON *flags = cJSON_GetObjectItemCaseSensitive(env, "cpu_flags");
    ck_assert_msg(cJSON_IsArray(flags) && cJSON_GetArraySize(flags) > 0, "no cpu_flags:\n%s", text);
    const cJSON *f;
    cJSON_ArrayForEach(f, flags)
    {
        ck_assert(cJSON_IsString(f) && *f->valuestring);
        ck_assert_ptr_null(strpbrk(f->valuestring, " \t\n"));
    }
#if defined(__x86_64__)
    int has_sse2 = 0;
    cJSON_ArrayForEach(f, flags) has_sse2 |= strcmp(f->valuestring, "sse2") == 0;
    ck_assert_msg(has_sse2, "x86-64 without sse2 in cpu_flags:\n%s", text);
#endif
    ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(env, "kernel")));
#endif
    ck_assert_int_eq((int)cJSON_GetObjectItemCaseSensitive(env, "cores_online")->valuedouble, cores_online());
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(env, "build_type")->valuestring, GPT2C_BUILD_TYPE);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(env, "cflags")->valuestring, GPT2C_C_FLAGS);
    const cJSON *gpu = cJSON_GetObjectItemCaseSensitive(env, "gpu");
    if (cJSON_IsObject(gpu))
        check_gpu_object(gpu);
    fprintf(stderr, "test_benchsupport: environment:\n%s\n", text);
    free(text);
    cJSON_Delete(env);
}
END_TEST

/* Without nvidia-smi on PATH, gpu is null and nothing is run. */
START_TEST(test_env_no_gpu)
{
    setenv("PATH", "/nonexistent", 1);
    cJSON *env = bench_env_collect();
    ck_assert(env != NULL);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(env, "gpu")));
    cJSON_Delete(env);
}
END_TEST

/* A fake nvidia-smi: a line is parsed; a hang is cut off; a failure is null. */
static void fake_smi(const char *dir, const char *body)
{
    mkdir(dir, 0755);
    const char *path = tu_fmt("%s/nvidia-smi", dir);
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fprintf(f, "#!/bin/sh\n%s\n", body);
    ck_assert(fclose(f) == 0);
    ck_assert(chmod(path, 0755) == 0);
}

START_TEST(test_env_fake_gpu)
{
    const char *dir = tu_fmt("%s/benchsupport-smi-%d", tu_data(), (int)getpid());
    fake_smi(dir, "echo \"NVIDIA H100 80GB HBM3, 81559, 550.54.15, 1980\"");
    setenv("PATH", dir, 1);
    cJSON *env = bench_env_collect();
    const cJSON *gpu = cJSON_GetObjectItemCaseSensitive(env, "gpu");
    ck_assert_msg(cJSON_IsObject(gpu), "fake nvidia-smi not used");
    check_gpu_object(gpu);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(gpu, "name")->valuestring, "NVIDIA H100 80GB HBM3");
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(gpu, "memory_mb")->valuedouble, 81559);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(gpu, "driver")->valuestring, "550.54.15");
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(gpu, "clocks_mhz")->valuedouble, 1980);
    cJSON_Delete(env);

    /* a driver that does not answer: null, after the timeout, not a hang */
    fake_smi(dir, "exec /bin/sleep 60");
    double t0 = (double)time(NULL);
    env = bench_env_collect();
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(env, "gpu")));
    ck_assert_msg((double)time(NULL) - t0 < 20, "nvidia-smi timeout not enforced");
    cJSON_Delete(env);

    /* an error exit: null */
    fake_smi(dir, "echo \"NVIDIA-SMI has failed\"; exit 9");
    env = bench_env_collect();
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(env, "gpu")));
    cJSON_Delete(env);
    unlink(tu_fmt("%s/nvidia-smi", dir));
    rmdir(dir);
}
END_TEST

START_TEST(test_env_parse_gpu_csv)
{
    cJSON *g = bench_env_parse_gpu_csv("Tesla T4, 15360, 535.104.05, [N/A]\n");
    ck_assert(g != NULL);
    check_gpu_object(g);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(g, "name")->valuestring, "Tesla T4");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(g, "clocks_mhz")));
    cJSON_Delete(g);

    g = bench_env_parse_gpu_csv("Odd, Name, [Not Supported], 470.1, 1500");
    ck_assert(g != NULL);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(g, "name")->valuestring, "Odd, Name");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(g, "memory_mb")));
    ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(g, "clocks_mhz")->valuedouble, 1500);
    cJSON_Delete(g);

    ck_assert_ptr_null(bench_env_parse_gpu_csv(""));
    ck_assert_ptr_null(bench_env_parse_gpu_csv("No devices were found"));
    ck_assert_ptr_null(bench_env_parse_gpu_csv("a, b, c"));
    ck_assert_ptr_null(bench_env_parse_gpu_csv(", 1, 2, 3"));
    ck_assert_ptr_null(bench_env_parse_gpu_csv(NULL));
}
END_TEST

/* ---- progress --------------------------------------------------------------- */

/* Runs body with stderr redirected to a temporary file; returns its content. */
static char *capture_stderr(void (*body)(void))
{
    char path[] = "/tmp/benchsupport-stderr-XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    ck_assert(saved >= 0);
    ck_assert(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
    body();
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t n = lseek(fd, 0, SEEK_END);
    char *text = malloc((size_t)n + 1);
    ck_assert(text != NULL);
    ck_assert(pread(fd, text, (size_t)n, 0) == n);
    text[n] = '\0';
    close(fd);
    return text;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void two_phases(void)
{
    bench_progress *p = progress_begin("latency", "prompt 32", 5);
    ck_assert(p != NULL);
    for (int i = 0; i <= 5; i++)
        progress_update(p, i, "ttft 12.0 ms");
    progress_end(p, "ttft p50 %.1f ms, %d runs", 12.25, 5);

    p = progress_begin("memory", "leak window", 0); /* unknown total */
    progress_update(p, 1.5, NULL);
    progress_end(p, NULL);
}

START_TEST(test_progress_not_a_tty)
{
    char *out = capture_stderr(two_phases);
    ck_assert_msg(count_lines(out) == 2, "expected 2 lines, got:\n%s", out);
    ck_assert_ptr_null(strchr(out, '\r'));
    ck_assert_ptr_null(strchr(out, '\033'));
    const char *l2 = strchr(out, '\n') + 1;
    ck_assert_msg(strncmp(out, "[latency] prompt 32: ttft p50 12.2 ms, 5 runs (", 47) == 0
                      || strncmp(out, "[latency] prompt 32: ttft p50 12.3 ms, 5 runs (", 47) == 0,
                  "first line: %s", out);
    ck_assert_msg(strstr(out, " s)\n") != NULL, "no elapsed time: %s", out);
    ck_assert_msg(strncmp(l2, "[memory] leak window (", 22) == 0, "second line: %s", l2);
    free(out);
}
END_TEST

/* progress_set_quiet(1) is quiet even on a terminal; on a terminal otherwise
 * the live line is drawn with "\r" and the final line still ends the phase. */
static int open_pty(void)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    ck_assert(m >= 0);
    ck_assert(grantpt(m) == 0 && unlockpt(m) == 0);
    return m;
}

static char *run_on_pty(void (*body)(void))
{
    int m = open_pty();
    int s = open(ptsname(m), O_RDWR | O_NOCTTY);
    ck_assert(s >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    ck_assert(dup2(s, STDERR_FILENO) == STDERR_FILENO);
    setenv("TERM", "xterm", 1);
    body();
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(s);
    static char buf[8192];
    size_t len = 0;
    int fl = fcntl(m, F_GETFL);
    fcntl(m, F_SETFL, fl | O_NONBLOCK);
    for (;;) {
        ssize_t r = read(m, buf + len, sizeof buf - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    close(m);
    return buf;
}

START_TEST(test_progress_tty)
{
    progress_set_quiet(0);
    char *out = run_on_pty(two_phases);
    ck_assert_msg(strstr(out, "\r[latency] prompt 32 [") != NULL && strstr(out, "\033[K") != NULL,
                  "no live line on a terminal: %s", out);
    ck_assert_msg(strstr(out, "%") != NULL && strstr(out, "ETA") != NULL, "no bar figures: %s", out);
    ck_assert_msg(strstr(out, "ttft 12.0 ms") != NULL, "no detail: %s", out);
    ck_assert_msg(strstr(out, "[latency] prompt 32: ttft p50 ") != NULL, "no final line: %s", out);
    ck_assert_msg(strstr(out, "[memory] leak window (") != NULL, "no final line: %s", out);
    ck_assert_int_eq(count_lines(out), 2); /* the live line is redrawn, never a new line */

    progress_set_quiet(1);
    out = run_on_pty(two_phases);
    ck_assert_msg(strchr(out, '\033') == NULL && count_lines(out) == 2, "quiet on a tty: %s", out);
    progress_set_quiet(0);
}
END_TEST

START_TEST(test_progress_null_safe)
{
    progress_update(NULL, 1, "x");
    progress_end(NULL, "nothing %d", 1);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("benchsupport");
    TCase *tc = tcase_create("sysinfo");
    tcase_add_test(tc, test_sysinfo_sane);
    tcase_add_test(tc, test_sysinfo_tracks_allocation);
    tcase_add_test(tc, test_bw_probe);
    suite_add_tcase(s, tc);
    tc = tcase_create("build_info");
    tcase_add_test(tc, test_build_info);
    suite_add_tcase(s, tc);
    tc = tcase_create("env");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_env_keys);
    tcase_add_test(tc, test_env_no_gpu);
    tcase_add_test(tc, test_env_fake_gpu);
    tcase_add_test(tc, test_env_parse_gpu_csv);
    suite_add_tcase(s, tc);
    tc = tcase_create("progress");
    tcase_add_test(tc, test_progress_not_a_tty);
    tcase_add_test(tc, test_progress_tty);
    tcase_add_test(tc, test_progress_null_safe);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
