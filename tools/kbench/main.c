/* gpt2c-kbench: every CPU kernel on GPT-2's shapes, against the ceilings of
 * this machine, measured in the same run. See tools/kbench/README.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "build_info.h"
#include "cli.h"
#include "kbench.h"

static const char *PROG = "gpt2c-kbench";

static void usage(void)
{
    printf("usage: gpt2c-kbench [options]\n"
           "\n"
           "Measures this machine's ceilings (read bandwidth with 1..N threads, fp32 FMA\n"
           "and int8 peaks), then every kernel x ISA path x GEMM path on GPT-2's shapes\n"
           "(all four sizes): median time, GB/s, GFLOP/s, %% of the roofline, native\n"
           "GEMM vs OpenBLAS on the same shape, and for decode matmuls the kernel vs a\n"
           "plain read of the same weight bytes timed in turn with it. Table on stdout,\n"
           "progress on stderr.\n"
           "\n"
           "  --threads N       threads of the pool and of OpenBLAS (default: all cores)\n"
           "  --quick           fewer shapes and repeats: under a minute on 2 cores\n"
           "  --filter LIST     comma-separated substrings of case names; a case runs if\n"
           "                    its name holds any (e.g. matmul/f32,attention)\n"
           "  --list            print the case names (after --filter) and exit\n"
           "  --json FILE       write every figure as JSON (tools/kbench/README.md)\n"
           "  --compare FILE    an older --json file (another commit, ISA build or\n"
           "                    machine): each case's speed-up over it (vsPrev), and both\n"
           "                    runs' ceilings, since a noisy machine moves them too\n"
           "  --bw-mib MIB      bandwidth buffer (default 512, quick 128)\n"
           "  --cold-mib MIB    decode matmuls cycle through copies of the weights\n"
           "                    totalling this, so they come from memory (default 256,\n"
           "                    quick 128; 0: one copy); decode attention cycles\n"
           "                    through copies of its KV cache the same way\n"
           "  --scalar-prefill  also run the scalar path at prefill sizes (slow)\n"
           "  -h, --help        this help\n"
           "\n"
           "Exit status: 0 done; 1 a case could not run; 2 bad usage.\n");
}

static void cpu_model(char *out, size_t len)
{
    out[0] = '\0';
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        char *v = strchr(line, ':');
        if (v) {
            v++;
            while (*v == ' ' || *v == '\t')
                v++;
            v[strcspn(v, "\n")] = '\0';
            snprintf(out, len, "%s", v);
        }
        break;
    }
    fclose(f);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void print_ceilings(const kb_ceilings *c)
{
    printf("ceilings (measured now):\n  read bandwidth:");
    for (int t = 1; t <= c->max_threads; t++)
        if (c->bw_gb_s[t] > 0)
            printf(" %.1f GB/s (%d thr)", c->bw_gb_s[t], t);
    for (int isa = 0; isa < GPT2K_ISA_COUNT; isa++)
        if (c->fma_gflop_s[isa][0] > 0)
            printf("\n  fp32 FMA %-7s %.1f GFLOP/s (1 thr), %.1f (%d thr)", gpt2k_isa_name((gpt2k_isa)isa),
                   c->fma_gflop_s[isa][0], c->fma_gflop_s[isa][1], c->max_threads);
    if (c->int8_gop_s[0] > 0)
        printf("\n  int8 %-11s %.1f GOP/s (1 thr), %.1f (%d thr)", c->int8_kind, c->int8_gop_s[0],
               c->int8_gop_s[1], c->max_threads);
    if (c->pool_run_us > 0)
        printf("\n  pool fork-join  %.2f us per parallel op (%d thr): %.0f us per 124M decode step "
               "(%d ops)",
               c->pool_run_us, c->max_threads, c->pool_run_us * KB_DECODE_POOL_RUNS(12),
               KB_DECODE_POOL_RUNS(12));
    printf("\n\n");
}

/* The best fp32 FMA peak of any ISA path at the ceilings' thread count. */
static double best_fma(const kb_ceilings *c)
{
    double best = 0;
    for (int isa = 0; isa < GPT2K_ISA_COUNT; isa++)
        best = c->fma_gflop_s[isa][1] > best ? c->fma_gflop_s[isa][1] : best;
    return best;
}

static void fmt(char *b, size_t len, const char *f, double v)
{
    if (isfinite(v))
        snprintf(b, len, f, v);
    else
        snprintf(b, len, "-");
}

static void print_table(const kb_result *rs, int n, int with_previous)
{
    printf("%-46s %5s %10s %8s %8s %7s %-7s %6s %7s %7s %6s%s\n", "case", "reps", "median_ms",
           "GB/s", "GFLOP/s", "FLOP/B", "bound", "%roof", "vsBLAS", "rdGB/s", "vsRead",
           with_previous ? "  vsPrev" : "");
    for (int i = 0; i < n; i++) {
        const kb_result *r = &rs[i];
        char ms[24], gb[24], gf[24], ai[24], pct[24], vs[24], rg[24], vr[24], vp[24];
        fmt(ms, sizeof ms, "%.4f", r->median_ms);
        fmt(gb, sizeof gb, "%.2f", r->gb_s);
        fmt(gf, sizeof gf, "%.2f", r->gflop_s);
        fmt(ai, sizeof ai, "%.2f", r->bytes > 0 ? r->flops / r->bytes : NAN);
        fmt(pct, sizeof pct, "%.1f", r->pct_of_roof);
        fmt(vs, sizeof vs, "%.2fx", r->vs_openblas);
        fmt(rg, sizeof rg, "%.2f", r->read_gb_s);
        fmt(vr, sizeof vr, "%.2f", r->vs_read);
        fmt(vp, sizeof vp, "%.2fx", r->vs_previous);
        printf("%-46s %5d %10s %8s %8s %7s %-7s %6s %7s %7s %6s", r->c.name, r->reps, ms, gb, gf,
               ai, r->roof.roof_gflop_s > 0 ? (r->roof.compute_bound ? "compute" : "memory") : "-",
               pct, vs, rg, vr);
        if (with_previous)
            printf(" %7s", vp);
        printf("\n");
    }
}

int main(int argc, char **argv)
{
    int threads = 0, quick = 0, list = 0, scalar_prefill = 0;
    const char *filter = NULL, *json_path = NULL, *compare_path = NULL;
    double bw_mib = -1, cold_mib = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (!strcmp(a, "--threads")) {
            threads = (int)cli_long(PROG, a, cli_value(PROG, argc, argv, &i), 1, KB_MAX_THREADS);
        } else if (!strcmp(a, "--quick")) {
            quick = 1;
        } else if (!strcmp(a, "--filter")) {
            filter = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--list")) {
            list = 1;
        } else if (!strcmp(a, "--json")) {
            json_path = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--compare")) {
            compare_path = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--bw-mib")) {
            bw_mib = cli_double(PROG, a, cli_value(PROG, argc, argv, &i), 1, 65536);
        } else if (!strcmp(a, "--cold-mib")) {
            cold_mib = cli_double(PROG, a, cli_value(PROG, argc, argv, &i), 0, 65536);
        } else if (!strcmp(a, "--scalar-prefill")) {
            scalar_prefill = 1;
        } else {
            cli_usage_error(PROG, "unknown option '%s'", a);
        }
    }
    if (bw_mib < 0)
        bw_mib = quick ? 128 : 512;
    if (cold_mib < 0)
        cold_mib = quick ? 128 : 256;
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n < 1 ? 1 : n > KB_MAX_THREADS ? KB_MAX_THREADS : (int)n;
    }

    kb_plan_opts po = {quick, scalar_prefill, filter};
    int n_cases = 0;
    kb_case *cases = kb_plan(&po, &n_cases);
    if (!cases)
        cli_die(PROG, "out of memory listing the cases");
    if (list) {
        for (int i = 0; i < n_cases; i++)
            printf("%s\n", cases[i].name);
        free(cases);
        return 0;
    }
    if (n_cases == 0)
        cli_usage_error(PROG, "--filter '%s' selects no case (see --list)", filter ? filter : "");
    /* a JSON file that cannot be written should fail before minutes of measuring */
    if (json_path) {
        int existed = access(json_path, F_OK) == 0;
        FILE *f = fopen(json_path, "a");
        if (!f)
            cli_die(PROG, "--json %s: cannot write there", json_path);
        fclose(f);
        if (!existed)
            remove(json_path);
    }

    /* and so should an older run that cannot be read */
    kb_doc prev;
    memset(&prev, 0, sizeof prev);
    if (compare_path) {
        char err[512];
        if (kb_json_read(compare_path, &prev, err, sizeof err) != 0)
            cli_die(PROG, "--compare: %s", err);
    }

    double t_start = now_s();
    gpt2k_pool *pool = gpt2k_pool_create(threads);
    if (!pool)
        cli_die(PROG, "cannot start %d threads", threads);
    gpt2k_openblas_set_threads(threads);

    kb_doc d;
    memset(&d, 0, sizeof d);
    d.quick = quick;
    d.threads = threads;
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(d.created_utc, sizeof d.created_utc, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    for (int i = 0; i < argc; i++) {
        size_t l = strlen(d.command);
        snprintf(d.command + l, sizeof d.command - l, "%s%s", i ? " " : "", i ? argv[i] : PROG);
    }
    cpu_model(d.cpu_model, sizeof d.cpu_model);
    snprintf(d.git_commit, sizeof d.git_commit, "%s", strcmp(GPT2C_GIT_COMMIT, "unknown") ? GPT2C_GIT_COMMIT : "");
    snprintf(d.openblas, sizeof d.openblas, "%s", gpt2k_openblas_config());

    fprintf(stderr, "%s: %d cases, %d threads%s\n", PROG, n_cases, threads, quick ? ", quick" : "");
    kb_ceil_opts co = {threads, bw_mib, quick};
    if (kb_measure_ceilings(pool, &co, &d.ceil) != 0)
        return 1;

    d.results = calloc((size_t)n_cases, sizeof *d.results);
    if (!d.results)
        cli_die(PROG, "out of memory");
    kb_run_opts ro = {quick ? 0.05 : 0.3, quick ? 3 : 5, quick ? 100 : 1000, cold_mib * 1048576.0};
    int failed = 0;
    for (int i = 0; i < n_cases; i++) {
        kb_result *r = &d.results[d.n_results];
        if (kb_run_case(pool, &cases[i], &ro, r) != 0) {
            failed++;
            continue;
        }
        kb_result_finish(r, &d.ceil);
        d.n_results++;
        fprintf(stderr, "[%d/%d] %-46s %9.4f ms\n", i + 1, n_cases, r->c.name, r->median_ms);
    }
    kb_release_buffers();
    kb_link_openblas(d.results, d.n_results);
    int matched = 0;
    if (compare_path) {
        matched = kb_link_previous(d.results, d.n_results, prev.results, prev.n_results);
        snprintf(d.compare_path, sizeof d.compare_path, "%s", compare_path);
        snprintf(d.compare_created_utc, sizeof d.compare_created_utc, "%s", prev.created_utc);
        snprintf(d.compare_git_commit, sizeof d.compare_git_commit, "%s", prev.git_commit);
        d.compare_ceil = prev.ceil;
    }
    d.wall_s = now_s() - t_start;

    print_ceilings(&d.ceil);
    if (compare_path) {
        /* the machine itself may have moved between the runs */
        const int t = threads <= prev.ceil.max_threads ? threads : prev.ceil.max_threads;
        printf("compared with %s (%s, commit %s): read bandwidth %.1f -> %.1f GB/s (%d thr), "
               "best fp32 FMA peak %.1f -> %.1f GFLOP/s; %d of %d cases matched by name and "
               "threads\n\n",
               compare_path, prev.created_utc[0] ? prev.created_utc : "?",
               prev.git_commit[0] ? prev.git_commit : "?", prev.ceil.bw_gb_s[t],
               d.ceil.bw_gb_s[t], t, best_fma(&prev.ceil), best_fma(&d.ceil), matched,
               d.n_results);
    }
    print_table(d.results, d.n_results, compare_path != NULL);
    printf("\n%d cases in %.1f s on %d threads; %%roof is of min(peak, FLOP/B x bandwidth); "
           "vsBLAS = OpenBLAS time / ours (> 1: ours faster); rdGB/s, vsRead = a plain read "
           "of the same weight bytes, timed in turn with the kernel (native decode matmuls): "
           "its rate, and its time / the kernel's (1: as fast as the read)%s\n",
           d.n_results, d.wall_s, threads,
           compare_path ? "; vsPrev = the older run's time / this one's (> 1: now faster)" : "");
    int rc = failed ? 1 : 0;
    if (json_path) {
        char err[512];
        if (kb_json_write(&d, json_path, err, sizeof err) != 0) {
            fprintf(stderr, "%s: %s\n", PROG, err);
            rc = 1;
        } else {
            fprintf(stderr, "%s: wrote %s\n", PROG, json_path);
        }
    }
    kb_doc_free(&d);
    kb_doc_free(&prev);
    free(cases);
    gpt2k_pool_free(pool);
    return rc;
}
