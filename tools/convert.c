/* gpt2c-convert: writes GPT-2 GGUF model files, from a Hugging Face checkpoint
 * directory or as a seeded synthetic model with GPT-2's initialisation. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "out_file.h"
#include "gpt2.h"

#define PROG "gpt2c-convert"

static void usage(void)
{
    printf(
        "usage: gpt2c-convert --hf DIR --out FILE [--dtype f32|f16] [--force]\n"
        "       gpt2c-convert --synthetic SIZE [--seed S] [--out FILE] [--dtype f32|f16] [--force]\n"
        "       gpt2c-convert --synthetic custom --layers L --embd C --heads H --ctx N --vocab V\n"
        "                     [--ff F] [--seed S] [--out FILE] [--dtype f32|f16] [--force]\n"
        "\n"
        "Writes a GPT-2 model as GGUF (llama.cpp's gpt2 layout, with per-tensor CRC-32s).\n"
        "\n"
        "  --hf DIR          Hugging Face checkpoint: config.json, model.safetensors,\n"
        "                    vocab.json, merges.txt\n"
        "  --synthetic SIZE  124M | 355M | 774M | 1558M | custom: GPT-2's initialisation\n"
        "                    from --seed, with the real GPT-2 vocabulary\n"
        "  --seed S          synthetic seed (default 1); same seed, same bytes\n"
        "  --layers, --embd, --heads, --ctx, --vocab, --ff\n"
        "                    sizes of a custom synthetic model (--ff defaults to 4 x embd;\n"
        "                    --vocab at most 50257: the GPT-2 vocabulary is cut to it)\n"
        "  --out FILE        output file; for --synthetic the default is\n"
        "                    weights/gpt2-<size>-synthetic-<dtype>.gguf\n"
        "  --dtype f32|f16   f16: every matrix in half precision, vectors stay f32\n"
        "                    (default f32; for q8_0 use gpt2c-quantize on the result)\n"
        "  --force           overwrite an existing output file\n"
        "  -q, --quiet       no progress, only errors and the summary\n"
        "  -h, --help        this help\n"
        "\n"
        "The file is written under a temporary name (FILE.tmp.PID) and renamed when\n"
        "complete, so FILE is never left half-written; a run killed outright leaves its\n"
        "temporary, which the next run for the same FILE removes.\n");
}

/* ---- progress ------------------------------------------------------------- */

typedef struct progress {
    int quiet;       /* count tensors, print nothing */
    int tty;
    int bar_shown;   /* a bar line is on screen without its newline */
    int last_quarter;
    int n_tensors;
} progress;

/* Engine notices arrive here; "tensor i/N name" lines become the progress. */
static void on_log(const char *line, void *user)
{
    progress *p = user;
    int i, n, off = 0;
    if (sscanf(line, "tensor %d/%d %n", &i, &n, &off) == 2 && off > 0 && n > 0) {
        p->n_tensors = n;
        if (p->quiet)
            return;
        if (p->tty) {
            enum { W = 30 };
            char bar[W + 1];
            const int fill = (int)((long)W * i / n);
            for (int k = 0; k < W; k++)
                bar[k] = k < fill ? '#' : '.';
            bar[W] = 0;
            fprintf(stderr, "\r[%s] %d/%d %.40s\033[K", bar, i, n, line + off);
            p->bar_shown = 1;
            if (i == n) {
                fputc('\n', stderr);
                p->bar_shown = 0;
            }
        } else {
            const int q = (int)(4L * i / n); /* a line at the first tensor and each quarter */
            if (i == 1 || q > p->last_quarter) {
                fprintf(stderr, "  tensor %d/%d %s\n", i, n, line + off);
                p->last_quarter = q;
            }
        }
        fflush(stderr);
        return;
    }
    if (p->quiet)
        return;
    if (p->bar_shown) {
        fputc('\n', stderr);
        p->bar_shown = 0;
    }
    fprintf(stderr, "%s\n", line);
}

/* ---- interruption: remove the writer's temporary ------------------------ */

/* engine/gguf.c writes "<out>.tmp.<pid>" and renames it at the end */
static double now_s(void) { return gpt2_now_ms() / 1e3; }

int main(int argc, char **argv)
{
    const char *hf = NULL, *synth = NULL, *out = NULL, *dtype_s = "f32";
    uint64_t seed = 1;
    int force = 0, quiet = 0, seed_set = 0;
    long layers = 0, embd = 0, heads = 0, ctx = 0, vocab = 0, ff = 0;
    int n_custom_flags = 0;

    if (argc == 1) {
        usage();
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (!strcmp(a, "--hf")) {
            hf = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--synthetic")) {
            synth = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--out") || !strcmp(a, "-o")) {
            out = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--dtype")) {
            dtype_s = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--seed")) {
            seed = cli_u64(PROG, a, cli_value(PROG, argc, argv, &i));
            seed_set = 1;
        } else if (!strcmp(a, "--force") || !strcmp(a, "-f")) {
            force = 1;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            quiet = 1;
        } else if (!strcmp(a, "--layers")) {
            layers = cli_long(PROG, a, cli_value(PROG, argc, argv, &i), 1, 10000);
            n_custom_flags++;
        } else if (!strcmp(a, "--embd")) {
            embd = cli_long(PROG, a, cli_value(PROG, argc, argv, &i), 1, 1 << 20);
            n_custom_flags++;
        } else if (!strcmp(a, "--heads")) {
            heads = cli_long(PROG, a, cli_value(PROG, argc, argv, &i), 1, 1 << 16);
            n_custom_flags++;
        } else if (!strcmp(a, "--ctx")) {
            ctx = cli_long(PROG, a, cli_value(PROG, argc, argv, &i), 1, 1 << 24);
            n_custom_flags++;
        } else if (!strcmp(a, "--vocab")) {
            vocab = cli_long(PROG, a, cli_value(PROG, argc, argv, &i), 1, GPT2_EOS_TOKEN + 1);
            n_custom_flags++;
        } else if (!strcmp(a, "--ff")) {
            ff = cli_long(PROG, a, cli_value(PROG, argc, argv, &i), 1, 1 << 22);
            n_custom_flags++;
        } else {
            cli_usage_error(PROG, "unknown option '%s'", a);
        }
    }

    if (!hf == !synth)
        cli_usage_error(PROG, "give exactly one of --hf DIR or --synthetic SIZE");
    const int dt = gpt2_dtype_parse(dtype_s);
    if (dt == GPT2_DTYPE_Q8_0)
        cli_usage_error(PROG, "--dtype q8_0: write f32 or f16 here, then run gpt2c-quantize");
    if (dt != GPT2_DTYPE_F32 && dt != GPT2_DTYPE_F16)
        cli_usage_error(PROG, "--dtype '%s': expected f32 or f16", dtype_s);

    gpt2_config cfg;
    int custom = 0;
    if (hf) {
        if (seed_set || n_custom_flags)
            cli_usage_error(PROG, "--seed and the custom size flags go with --synthetic only");
        if (!out)
            cli_usage_error(PROG, "--hf needs --out FILE");
    } else if (!strcmp(synth, "custom")) {
        custom = 1;
        if (!layers || !embd || !heads || !ctx || !vocab)
            cli_usage_error(PROG, "--synthetic custom needs --layers, --embd, --heads, --ctx "
                                  "and --vocab");
        if (embd % heads)
            cli_usage_error(PROG, "--embd %ld is not a multiple of --heads %ld", embd, heads);
        cfg = (gpt2_config){.n_vocab = (int)vocab, .n_ctx = (int)ctx, .n_embd = (int)embd,
                            .n_head = (int)heads, .n_layer = (int)layers,
                            .n_ff = (int)(ff ? ff : 4 * embd), .ln_eps = 1e-5f};
    } else {
        if (gpt2_config_preset(synth, &cfg) < 0)
            cli_usage_error(PROG, "--synthetic '%s': expected 124M, 355M, 774M, 1558M or custom",
                            synth);
        if (n_custom_flags)
            cli_usage_error(PROG, "--layers/--embd/--heads/--ctx/--vocab/--ff need "
                                  "--synthetic custom");
    }

    char default_out[256];
    if (!out) {
        snprintf(default_out, sizeof default_out, "weights/gpt2-%s-synthetic-%s.gguf",
                 custom ? "custom" : synth, dtype_s);
        out = default_out;
        if (mkdir("weights", 0777) != 0 && errno != EEXIST)
            cli_die(PROG, "cannot create directory 'weights': %s", strerror(errno));
    }
    struct stat st;
    if (stat(out, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            cli_die(PROG, "%s: is a directory; --out needs a file name", out);
        if (!force)
            cli_die(PROG, "%s: already exists (use --force to overwrite it)", out);
    }
    if (hf && (stat(hf, &st) != 0 || !S_ISDIR(st.st_mode)))
        cli_die(PROG, "--hf %s: not a directory", hf);

    out_file_prepare(PROG, out);

    progress prog = {.quiet = quiet, .tty = isatty(STDERR_FILENO)};
    gpt2_set_log(on_log, &prog);

    gpt2_error err = {0};
    const double t0 = now_s();
    int rc;
    if (hf)
        rc = gpt2_convert_hf(hf, (gpt2_dtype)dt, out, 1, &err);
    else
        rc = gpt2_write_synthetic(&cfg, seed, (gpt2_dtype)dt, out, 1, &err);
    const double secs = now_s() - t0;
    gpt2_set_log(NULL, NULL);
    if (prog.bar_shown)
        fputc('\n', stderr);
    if (rc < 0)
        cli_die(PROG, "%s (%s)", err.msg, gpt2_status_name(rc));

    const int n_tensors = prog.n_tensors;
    long long bytes = stat(out, &st) == 0 ? (long long)st.st_size : -1;
    if (n_tensors > 0)
        fprintf(stderr, "%s: wrote %s: %d tensors, %lld bytes (%.1f MiB), %s, %.2f s\n", PROG,
                out, n_tensors, bytes, bytes / 1048576.0, dtype_s, secs);
    else
        fprintf(stderr, "%s: wrote %s: %lld bytes (%.1f MiB), %s, %.2f s\n", PROG, out, bytes,
                bytes / 1048576.0, dtype_s, secs);
    return 0;
}
