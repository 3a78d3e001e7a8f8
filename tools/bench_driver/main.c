/* gpt2c-bench: the five benchmark phases (validation, latency, memory,
 * throughput, report) against one model, written as report.json, report.html
 * and summary.md. */
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "build_info.h"
#include "cli.h"
#include "env.h"
#include "progress.h"
#include "report.h"
#include "sysinfo.h"

static const char *PROG = "gpt2c-bench";

static void usage(void)
{
    printf(
        "usage: gpt2c-bench [options]\n"
        "\n"
        "Runs the benchmark phases against one GPT-2 GGUF model and writes\n"
        "report.json, report.html and summary.md.\n"
        "  1 validation   load, determinism, golden reference, quantized agreement\n"
        "  2 latency      TTFT and inter-token latency by prompt length\n"
        "  3 memory       RSS, weights / KV cache / arena bytes, allocations, leak test\n"
        "  4 throughput   concurrent clients: req/s, tokens/s, scaling\n"
        "  5 report       report.html and summary.md (report.json is always written)\n"
        "  soak           (--soak MINUTES) mixed requests through the serving engine: RSS\n"
        "                 and file descriptor growth, failures, a sample of requests checked\n"
        "                 against the same request run alone; PASS or FAIL\n"
        "\n"
        "  --model FILE        GGUF model (default " CLI_DEFAULT_MODEL ")\n"
        "  --reference FILE    fp32 model of the same weights: agreement in phase 1\n"
        "  --backend NAME      cpu|cuda (default cpu)\n"
        "  --threads N         CPU threads (default: all cores)\n"
        "  --isa NAME          auto|scalar|avx2|avx512 (default auto, or $GPT2C_ISA)\n"
        "  --gemm NAME         native|openblas (cublas with --backend cuda)\n"
        "  --device N          GPU ordinal for --backend cuda (default 0)\n"
        "  --kv-type T         KV cache elements: f16 (default; half the memory) or f32\n"
        "                      (the forward exactly as the fp32 reference; cpu only)\n"
        "  --phases LIST       e.g. 1,2,5 (default 1,2,3,4,5; with --soak: 5)\n"
        "  --soak MINUTES      run the soak after the phases (fractions allowed: --soak 0.5)\n"
        "  --quick             everything small: under 3 minutes on 2 cores\n"
        "  --out DIR           report folder (default reports/<UTC timestamp>/)\n"
        "  --compare FILE      an older report.json: show the change of every headline figure\n"
        "  --kbench FILE       a gpt2c-kbench --json file: kept as report[\"kbench\"], drawn as\n"
        "                      the roofline section of report.html\n"
        "  --seed S            seed of the sampled requests (default 0)\n"
        "  --no-crc            skip the CRC-32 check at load\n"
        "  -h, --help          this help\n"
        "\n"
        "Exit status: 0 all phases ran and every check passed; 1 a check failed, a\n"
        "phase could not run, the soak failed or a report file could not be written;\n"
        "2 bad usage; 130 interrupted (the report is written,\n"
        "marked incomplete).\n");
}

static void on_sigint(int sig)
{
    (void)sig;
    bench_interrupted = 1;
    signal(SIGINT, SIG_DFL); /* a second Ctrl-C ends the program at once */
}

static unsigned parse_phases(const char *s)
{
    unsigned bits = 0;
    const char *p = s;
    while (*p) {
        if (*p < '1' || *p > '5' || (p[1] && p[1] != ','))
            cli_usage_error(PROG, "--phases '%s': expected a comma-separated list of 1..5", s);
        bits |= 1u << (*p - '0');
        p += p[1] ? 2 : 1;
    }
    if (!bits)
        cli_usage_error(PROG, "--phases '%s': empty", s);
    return bits;
}

/* The sizes of every phase, from --quick and the model's window. */
static void make_plan(bench_plan *pl, int quick, int n_ctx, int gpu)
{
    memset(pl, 0, sizeof *pl);
    pl->latency_gen = quick ? 16 : 64;
    pl->latency_repeats = quick ? 3 : 5;
    pl->latency_warmup = 1;
    pl->validation_gen = 32;
    static const int full[] = {32, 64, 128, 256, 512}, fast[] = {32, 128, 512};
    const int *lens = quick ? fast : full;
    int n = quick ? 3 : 5, max_len = n_ctx - pl->latency_gen;
    for (int i = 0; i < n; i++)
        if (lens[i] < max_len)
            pl->latency_lengths[pl->n_latency_lengths++] = lens[i];
    if (!quick || pl->n_latency_lengths < 3) /* and the longest the window allows */
        pl->latency_lengths[pl->n_latency_lengths++] = max_len;
    if (pl->validation_gen > n_ctx - 32)
        pl->validation_gen = n_ctx - 32 > 1 ? n_ctx - 32 : 1;
    pl->leak_window_s = quick ? 15 : 60;
    pl->leak_prompt = 32 < n_ctx / 2 ? 32 : n_ctx / 2;
    pl->leak_gen = quick ? 8 : 16;
    /* a GPU has room for many more sequences per step */
    static const int conc[] = {1, 2, 4, 8, 16, 32, 64};
    memcpy(pl->concurrency, conc, sizeof conc);
    pl->n_concurrency = gpu ? 7 : 5;
    pl->tput_window_s = quick ? 4 : 15;
    pl->tput_gen = quick ? 16 : 64;
    pl->tput_prompt = 32 < n_ctx - pl->tput_gen ? 32 : n_ctx - pl->tput_gen;
    pl->agreement_tokens = 512 < n_ctx ? 512 : n_ctx;
}

static double param_count(const gpt2_config *c)
{
    double C = c->n_embd, FF = c->n_ff;
    double layer = 2 * C + 3 * C * C + 3 * C + C * C + C + 2 * C + C * FF + FF + FF * C + C;
    return (double)c->n_vocab * C + (double)c->n_ctx * C + c->n_layer * layer + 2 * C;
}

static cJSON *model_json(const bench *b)
{
    const gpt2_config *c = gpt2_model_config(b->model);
    cJSON *m = cJSON_CreateObject();
    const char *path = b->set.model_path;
    cJSON_AddStringToObject(m, "path", path);
    const char *slash = strrchr(path, '/');
    cJSON_AddStringToObject(m, "file_name", slash ? slash + 1 : path);
    struct stat st;
    cJSON_AddItemToObject(m, "size_bytes", bench_num(stat(path, &st) == 0 ? (double)st.st_size : NAN));
    cJSON_AddStringToObject(m, "dtype", gpt2_model_dtype(b->model));
    uint32_t crc;
    char hex[16];
    gpt2_error err = {0};
    if (gpt2_file_crc32(path, &crc, &err) == 0) {
        snprintf(hex, sizeof hex, "0x%08x", crc);
        cJSON_AddStringToObject(m, "crc32", hex);
    } else {
        cJSON_AddNullToObject(m, "crc32");
    }
    cJSON_AddNumberToObject(m, "n_layer", c->n_layer);
    cJSON_AddNumberToObject(m, "n_embd", c->n_embd);
    cJSON_AddNumberToObject(m, "n_head", c->n_head);
    cJSON_AddNumberToObject(m, "n_ctx", c->n_ctx);
    cJSON_AddNumberToObject(m, "n_vocab", c->n_vocab);
    cJSON_AddNumberToObject(m, "params", param_count(c));
    size_t len;
    const char *src = gpt2_model_meta_str(b->model, "gpt2c.source", &len);
    if (src) {
        char buf[256];
        snprintf(buf, sizeof buf, "%.*s", (int)(len < 255 ? len : 255), src);
        cJSON_AddStringToObject(m, "source", buf);
    } else {
        cJSON_AddNullToObject(m, "source");
    }
    return m;
}

static cJSON *environment_json(const bench *b)
{
    cJSON *e = bench_env_collect();
    cJSON_AddNumberToObject(e, "threads_used", gpt2_ctx_threads(b->ctx));
    cJSON_AddStringToObject(e, "isa", gpt2_ctx_isa(b->ctx));
    cJSON *avail = cJSON_AddArrayToObject(e, "isa_available");
    char isas[64];
    snprintf(isas, sizeof isas, "%s", gpt2_cpu_isas());
    for (char *save = NULL, *t = strtok_r(isas, " ", &save); t; t = strtok_r(NULL, " ", &save))
        cJSON_AddItemToArray(avail, cJSON_CreateString(t));
    cJSON_AddStringToObject(e, "gemm", gpt2_ctx_gemm(b->ctx));
    cJSON_AddStringToObject(e, "kv_type", gpt2_ctx_kv_type(b->ctx));
    cJSON_AddStringToObject(e, "backend", gpt2_ctx_backend(b->ctx));
    char dev[4096];
    cJSON *cd = gpt2_ctx_device_info(b->ctx, dev, sizeof dev) == 0 ? cJSON_Parse(dev) : NULL;
    if (cJSON_IsObject(cd))
        cJSON_AddItemToObject(e, "cuda_device", cd);
    else {
        cJSON_Delete(cd);
        cJSON_AddNullToObject(e, "cuda_device");
    }
    cJSON_AddItemToObject(e, "model", model_json(b));
    return e;
}

static int mkdir_p(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* The headline table on stdout, with the labels and units of the report. */
static void print_headline(const cJSON *h)
{
    printf("\n");
    for (int i = 0; i < bench_n_headline_figs; i++) {
        const bench_headline_fig *f = &bench_headline_figs[i];
        double v;
        char buf[BENCH_NUM_BUF];
        if (bench_get_num(h, f->key, &v))
            printf("%-26s %s %s\n", f->label, bench_fmt_num(v, buf, sizeof buf), f->unit);
        else
            printf("%-26s -\n", f->label);
    }
}

static void log_notice(const char *line, void *user) { fprintf(stderr, "%s: %s\n", PROG, line); }

int main(int argc, char **argv)
{
    bench b;
    memset(&b, 0, sizeof b);
    b.set.model_path = CLI_DEFAULT_MODEL;
    b.set.phases = 0x3e; /* 1..5 */
    gpt2_load_opts lo = {0};
    const char *kbench_path = NULL;
    int phases_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (!strcmp(a, "--model")) {
            b.set.model_path = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--reference")) {
            b.set.reference_path = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--backend")) {
            b.set.backend = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--threads")) {
            b.set.threads = (int)cli_long(PROG, a, cli_value(PROG, argc, argv, &i), 1, 1024);
        } else if (!strcmp(a, "--isa")) {
            b.set.isa = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--gemm")) {
            b.set.gemm = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--kv-type")) {
            b.set.kv_type = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--device")) {
            b.set.device = (int)cli_long(PROG, a, cli_value(PROG, argc, argv, &i), 0, 1023);
        } else if (!strcmp(a, "--phases")) {
            b.set.phases = parse_phases(cli_value(PROG, argc, argv, &i));
            phases_given = 1;
        } else if (!strcmp(a, "--soak")) {
            b.set.soak_minutes = cli_double(PROG, a, cli_value(PROG, argc, argv, &i), 0.001, 1e6);
        } else if (!strcmp(a, "--quick")) {
            b.set.quick = 1;
        } else if (!strcmp(a, "--out")) {
            b.set.out_dir = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--compare")) {
            b.set.compare_path = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--kbench")) {
            kbench_path = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--seed")) {
            b.set.seed = cli_u64(PROG, a, cli_value(PROG, argc, argv, &i));
        } else if (!strcmp(a, "--no-crc")) {
            lo.skip_crc = 1;
        } else {
            cli_usage_error(PROG, "unknown option '%s'", a);
        }
    }
    if (b.set.soak_minutes > 0 && !phases_given)
        b.set.phases = 1u << 5; /* a soak on its own, with its report */
    if (!isatty(STDERR_FILENO))
        progress_set_quiet(1);
    gpt2_set_log(log_notice, NULL);
    if (b.set.compare_path && access(b.set.compare_path, R_OK) != 0)
        cli_die(PROG, "--compare %s: cannot read it", b.set.compare_path);
    /* read before the run: a bad kernel file should not cost the phases */
    cJSON *kbench = NULL;
    char kerr[512];
    if (kbench_path && bench_kbench_load(kbench_path, &kbench, kerr, sizeof kerr) != 0)
        cli_die(PROG, "--kbench %s", kerr);

    /* the report folder first: a run that cannot write its report should not start */
    char out_dir[4096];
    if (b.set.out_dir) {
        snprintf(out_dir, sizeof out_dir, "%s", b.set.out_dir);
    } else {
        time_t now = time(NULL);
        struct tm tmv;
        gmtime_r(&now, &tmv);
        strftime(out_dir, sizeof out_dir, "reports/%Y%m%dT%H%M%SZ", &tmv);
    }
    if (mkdir_p(out_dir) != 0)
        cli_die(PROG, "--out %s: cannot create the folder: %s", out_dir, strerror(errno));

    /* from here on Ctrl-C still writes a report (marked incomplete) */
    signal(SIGINT, on_sigint);
    double t_start = gpt2_now_ms();
    gpt2_error err = {0};
    b.model = gpt2_model_load(b.set.model_path, &lo, &err);
    if (!b.model)
        cli_die(PROG, "%s", err.msg);
    b.rss_after_load_mb = rss_mb();
    const gpt2_config *cfg = gpt2_model_config(b.model);
    gpt2_ctx_opts co = {.device = b.set.device, .n_threads = b.set.threads, .isa = b.set.isa,
                        .backend = b.set.backend, .gemm = b.set.gemm, .kv_type = b.set.kv_type};
    b.ctx = gpt2_ctx_create(b.model, &co, &err);
    if (!b.ctx)
        cli_die(PROG, "%s", err.msg);
    make_plan(&b.plan, b.set.quick, cfg->n_ctx, !strcmp(gpt2_ctx_backend(b.ctx), "cuda"));
    fprintf(stderr, "%s: %s (%s, %d layers) | %s | isa %s | gemm %s | kv %s | %d threads | %s run -> %s/\n",
            PROG, b.set.model_path, gpt2_model_dtype(b.model), cfg->n_layer, gpt2_ctx_backend(b.ctx),
            gpt2_ctx_isa(b.ctx), gpt2_ctx_gemm(b.ctx), gpt2_ctx_kv_type(b.ctx), gpt2_ctx_threads(b.ctx),
            b.set.quick ? "quick" : "full", out_dir);

    /* the report skeleton */
    b.report = cJSON_CreateObject();
    cJSON *r = b.report;
    cJSON_AddStringToObject(r, "schema", "gpt2c-bench-report");
    cJSON_AddNumberToObject(r, "schema_version", 1);
    cJSON_AddTrueToObject(r, "complete");
    char stamp[32];
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    cJSON_AddStringToObject(r, "created_utc", stamp);
    char cmd[4096] = "";
    for (int i = 0; i < argc; i++) {
        size_t l = strlen(cmd);
        snprintf(cmd + l, sizeof cmd - l, "%s%s", i ? " " : "", i ? argv[i] : PROG);
    }
    cJSON_AddStringToObject(r, "command", cmd);
    cJSON *wall = cJSON_AddNumberToObject(r, "wall_s", 0);
    cJSON *s = cJSON_AddObjectToObject(r, "settings");
    cJSON_AddStringToObject(s, "model", b.set.model_path);
    if (b.set.reference_path)
        cJSON_AddStringToObject(s, "reference", b.set.reference_path);
    else
        cJSON_AddNullToObject(s, "reference");
    cJSON_AddStringToObject(s, "backend", gpt2_ctx_backend(b.ctx));
    cJSON_AddNumberToObject(s, "threads", gpt2_ctx_threads(b.ctx));
    cJSON_AddStringToObject(s, "isa", gpt2_ctx_isa(b.ctx));
    cJSON_AddStringToObject(s, "gemm", gpt2_ctx_gemm(b.ctx));
    cJSON_AddItemToObject(s, "kv_type", b.set.kv_type && *b.set.kv_type
                                            ? cJSON_CreateString(b.set.kv_type)
                                            : cJSON_CreateNull());
    cJSON *ph = cJSON_AddArrayToObject(s, "phases");
    for (int i = 1; i <= 5; i++)
        if (b.set.phases & (1u << i))
            cJSON_AddItemToArray(ph, cJSON_CreateNumber(i));
    cJSON_AddBoolToObject(s, "quick", b.set.quick);
    cJSON_AddNumberToObject(s, "seed", (double)b.set.seed);
    cJSON_AddItemToObject(s, "soak_minutes", b.set.soak_minutes > 0 ? cJSON_CreateNumber(b.set.soak_minutes)
                                                                     : cJSON_CreateNull());
    cJSON_AddItemToObject(r, "environment", environment_json(&b));
    b.phases = cJSON_AddObjectToObject(r, "phases");
    b.headline = cJSON_AddObjectToObject(r, "headline");
    cJSON_AddNumberToObject(b.headline, "load_ms", gpt2_model_load_ms(b.model));
    cJSON_AddNullToObject(r, "compare");
    cJSON_AddItemToObject(r, "kbench", kbench ? kbench : cJSON_CreateNull());

    typedef int (*phase_fn)(bench *);
    static const struct { phase_fn fn; const char *name; } PH[] = {
        {NULL, NULL}, {phase_validation, "validation"}, {phase_latency, "latency"},
        {phase_memory, "memory"}, {phase_throughput, "throughput"},
    };
    int failed_phases = 0;
    for (int i = 1; i <= 4; i++) {
        if (!(b.set.phases & (1u << i)) || bench_interrupted) {
            cJSON_AddNullToObject(b.phases, PH[i].name);
            continue;
        }
        if (PH[i].fn(&b) != 0) {
            fprintf(stderr, "%s: phase %d (%s) could not complete\n", PROG, i, PH[i].name);
            failed_phases++;
        }
    }
    if (b.set.soak_minutes > 0 && !bench_interrupted && phase_soak(&b) != 0) {
        fprintf(stderr, "%s: the soak could not run\n", PROG);
        failed_phases++;
    }
    /* the order of keys in "phases" is the phase order, whatever ran */
    static const char *KEYS[] = {"validation", "latency", "memory", "throughput", "soak"};
    cJSON *ordered = cJSON_CreateObject();
    for (int i = 0; i < 5; i++) {
        cJSON *it = cJSON_DetachItemFromObject(b.phases, KEYS[i]);
        cJSON_AddItemToObject(ordered, KEYS[i], it ? it : cJSON_CreateNull());
    }
    cJSON_ReplaceItemInObject(r, "phases", ordered);
    b.phases = ordered;
    /* headline figures a phase did not produce are null */
    for (int i = 0; i < bench_n_headline_figs; i++)
        if (!cJSON_GetObjectItem(b.headline, bench_headline_figs[i].key))
            cJSON_AddNullToObject(b.headline, bench_headline_figs[i].key);

    if (bench_interrupted || failed_phases)
        cJSON_ReplaceItemInObject(r, "complete", cJSON_CreateFalse());
    cJSON_SetNumberValue(wall, (gpt2_now_ms() - t_start) / 1e3);

    char path[4200], errbuf[512];
    int report_failed = 0;
    if (b.set.compare_path && bench_compare(r, b.set.compare_path, errbuf, sizeof errbuf) != 0) {
        fprintf(stderr, "%s: --compare: %s\n", PROG, errbuf);
        report_failed = 1;
    }
    snprintf(path, sizeof path, "%s/report.json", out_dir);
    char *json = cJSON_Print(r);
    if (!json || bench_write_file_atomic(path, json, strlen(json), errbuf, sizeof errbuf) != 0) {
        fprintf(stderr, "%s: %s\n", PROG, json ? errbuf : "out of memory printing report.json");
        report_failed = 1;
    }
    free(json);
    if (b.set.phases & (1u << 5)) {
        bench_progress *p = progress_begin("report", "report.html and summary.md", 2);
        snprintf(path, sizeof path, "%s/report.html", out_dir);
        if (bench_write_html(r, path, errbuf, sizeof errbuf) != 0) {
            fprintf(stderr, "%s: %s\n", PROG, errbuf);
            report_failed = 1;
        }
        snprintf(path, sizeof path, "%s/summary.md", out_dir);
        if (bench_write_summary_md(r, path, errbuf, sizeof errbuf) != 0) {
            fprintf(stderr, "%s: %s\n", PROG, errbuf);
            report_failed = 1;
        }
        progress_end(p, "written");
    }
    print_headline(b.headline);
    printf("\nreport: %s/%s\n", out_dir, b.set.phases & (1u << 5) ? "report.html" : "report.json");
    if (bench_interrupted)
        printf("(interrupted: the report holds what was measured so far, marked incomplete)\n");

    cJSON *vf = cJSON_GetObjectItem(b.headline, "validation_failures");
    int failures = cJSON_IsNumber(vf) ? vf->valueint : 0;
    cJSON_Delete(r);
    gpt2_ctx_free(b.ctx);
    gpt2_model_free(b.model);
    if (bench_interrupted)
        return 130;
    return failures || failed_phases || report_failed || b.soak_failed ? 1 : 0;
}
