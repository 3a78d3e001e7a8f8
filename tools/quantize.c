/* gpt2c-quantize: rewrites a GPT-2 GGUF model with its weight matrices in
 * Q8_0 and prints what each tensor became and how much error that cost. */
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

#define PROG "gpt2c-quantize"

static void usage(void)
{
    printf(
        "usage: gpt2c-quantize IN.gguf OUT.gguf q8_0 [--embd q8_0|f16|f32] [--output-weight]\n"
        "                      [--force] [-q]\n"
        "\n"
        "Writes OUT.gguf with every weight matrix of IN.gguf (attn_qkv, attn_output,\n"
        "ffn_up, ffn_down) in Q8_0: blocks of 32 int8 values with one fp16 scale\n"
        "max|x|/127, rounded to nearest: the encoding llama.cpp uses.\n"
        "The position embedding, LayerNorm parameters and biases stay f32; the\n"
        "tokenizer and all metadata are copied; per-tensor CRC-32s are written.\n"
        "IN may be f32 or f16; a file already in q8_0 is refused.\n"
        "\n"
        "  --embd T     type of token_embd (the input embedding, which is also the\n"
        "               tied LM head) and of output.weight if present:\n"
        "               q8_0 (default: the LM head is about 31%% of the bytes a 124M\n"
        "               model reads per token, and llama.cpp's Q8_0 files quantize\n"
        "               it too), f16 or f32 (keep the logits closer to the original)\n"
        "  --output-weight  also write the tied LM head as its own output.weight\n"
        "               (same values, type of --embd), as llama.cpp's GPT-2 converter\n"
        "               does: llama.cpp builds that require that tensor then load\n"
        "               the file (it costs the embedding's bytes once more)\n"
        "  --force      overwrite OUT if it exists\n"
        "  -q, --quiet  no table and no progress, only errors and the totals\n"
        "  -h, --help   this help\n"
        "\n"
        "Prints one row per tensor: types and bytes in -> out, the RMS relative error\n"
        "||deq(q(x)) - x|| / ||x|| and the largest absolute error; then the totals.\n"
        "OUT is written under a temporary name and renamed when complete: a failed\n"
        "run (NaN or Inf in a weight, a row length not a multiple of 32, ...) leaves\n"
        "no file (a run killed outright leaves OUT.tmp.PID, which the next run for\n"
        "the same OUT removes). Exit status: 0 done, 1 failed, 2 bad arguments.\n");
}

/* ---- per-tensor table and progress ------------------------------------------ */

typedef struct run {
    int quiet;
    int tty;       /* progress bar on stderr */
    int bar_shown; /* a bar is on screen without its newline */
    int n_tensors;
    double bytes_in, bytes_out;
    double worst_rms;
    char worst_name[128];
} run;

static void draw_bar(run *r, int done, int total, const char *name)
{
    enum { W = 30 };
    char bar[W + 1];
    const int fill = total > 0 ? (int)((long)W * done / total) : W;
    for (int k = 0; k < W; k++)
        bar[k] = k < fill ? '#' : '.';
    bar[W] = 0;
    fprintf(stderr, "\r[%s] %d/%d %.40s\033[K", bar, done, total, name);
    r->bar_shown = 1;
    if (done == total) {
        fputc('\n', stderr);
        r->bar_shown = 0;
    }
    fflush(stderr);
}

static void clear_bar(run *r)
{
    if (r->bar_shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        r->bar_shown = 0;
    }
}

static void on_tensor(const gpt2_quant_tensor *t, int index, int count, void *user)
{
    run *r = user;
    r->n_tensors = count;
    r->bytes_in += (double)t->bytes_in;
    r->bytes_out += (double)t->bytes_out;
    if (t->rms_rel_err > r->worst_rms) {
        r->worst_rms = t->rms_rel_err;
        snprintf(r->worst_name, sizeof r->worst_name, "%s", t->name);
    }
    if (r->quiet)
        return;
    clear_bar(r); /* the bar and the table may share a terminal */
    if (index == 0)
        printf("%-26s %-13s %12s    %-12s %12s %12s\n", "tensor", "type", "bytes in", "bytes out",
               "rms rel err", "max abs err");
    char types[32];
    snprintf(types, sizeof types, "%s -> %s", t->type_in, t->type_out);
    if (!strcmp(t->type_in, t->type_out)) /* copied unchanged: no error to show */
        printf("%-26s %-13s %12zu -> %-12zu %12s %12s\n", t->name, types, t->bytes_in,
               t->bytes_out, "-", "-");
    else
        printf("%-26s %-13s %12zu -> %-12zu %12.3e %12.3e\n", t->name, types, t->bytes_in,
               t->bytes_out, t->rms_rel_err, t->max_abs_err);
    fflush(stdout);
    if (r->tty)
        draw_bar(r, index + 1, count, t->name);
}

/* ---- interruption: remove the writer's temporary ------------------------ */

/* engine/gguf.c writes "<out>.tmp.<pid>" and renames it at the end */
static double now_s(void) { return gpt2_now_ms() / 1e3; }

/* "812.0 KiB", "474.7 MiB": binary units, one decimal */
static const char *size_str(double bytes, char *buf, size_t cap)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", bytes, unit[u]);
    return buf;
}

int main(int argc, char **argv)
{
    const char *pos[3] = {NULL, NULL, NULL};
    const char *embd_s = "q8_0";
    int n_pos = 0, force = 0, quiet = 0, output_weight = 0;

    if (argc == 1) {
        usage();
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (!strcmp(a, "--embd")) {
            embd_s = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--output-weight")) {
            output_weight = 1;
        } else if (!strcmp(a, "--force") || !strcmp(a, "-f")) {
            force = 1;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            quiet = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            cli_usage_error(PROG, "unknown option '%s'", a);
        } else {
            if (n_pos == 3)
                cli_usage_error(PROG, "unexpected argument '%s': give IN.gguf OUT.gguf q8_0", a);
            pos[n_pos++] = a;
        }
    }
    if (n_pos < 3)
        cli_usage_error(PROG, "missing %s: give IN.gguf OUT.gguf q8_0",
                        n_pos == 0 ? "IN.gguf" : n_pos == 1 ? "OUT.gguf" : "the type (q8_0)");
    const char *in = pos[0], *out = pos[1];
    const int type = gpt2_dtype_parse(pos[2]);
    if (type == GPT2_DTYPE_F32 || type == GPT2_DTYPE_F16)
        cli_usage_error(PROG, "type '%s': only q8_0 here (for f16 use gpt2c-convert --dtype f16)",
                        pos[2]);
    if (type != GPT2_DTYPE_Q8_0)
        cli_usage_error(PROG, "type '%s': expected q8_0", pos[2]);
    const int embd = gpt2_dtype_parse(embd_s);
    if (embd < 0)
        cli_usage_error(PROG, "--embd '%s': expected q8_0, f16 or f32", embd_s);

    struct stat st_in, st;
    if (stat(in, &st_in) != 0)
        cli_die(PROG, "%s: cannot read the input: %s", in, strerror(errno));
    if (S_ISDIR(st_in.st_mode))
        cli_die(PROG, "%s: is a directory; give a .gguf file", in);
    if (stat(out, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            cli_die(PROG, "%s: is a directory; give an output file name", out);
        if (st.st_dev == st_in.st_dev && st.st_ino == st_in.st_ino)
            cli_die(PROG, "%s: the output is the input file; write to another path", out);
        if (!force)
            cli_die(PROG, "%s: already exists (use --force to overwrite it)", out);
    }

    out_file_prepare(PROG, out);

    run r = {.quiet = quiet, .tty = !quiet && isatty(STDERR_FILENO)};
    gpt2_error err = {0};
    const double t0 = now_s();
    const int rc = gpt2_quantize_ex(in, out, (gpt2_dtype)type, (gpt2_dtype)embd,
                                    output_weight ? GPT2_QUANT_OUTPUT_WEIGHT : 0, on_tensor, &r,
                                    &err);
    const double secs = now_s() - t0;
    clear_bar(&r);
    if (rc < 0)
        cli_die(PROG, "%s (%s)", err.msg, gpt2_status_name(rc));

    const double file_out = stat(out, &st) == 0 ? (double)st.st_size : 0;
    const double file_in = (double)st_in.st_size;
    char b[4][32];
    printf("total: %d tensors, %s -> %s of tensor data; file %s -> %s (%.2fx smaller), "
           "%s with --embd %s, %.2f s\n",
           r.n_tensors, size_str(r.bytes_in, b[0], sizeof b[0]),
           size_str(r.bytes_out, b[1], sizeof b[1]), size_str(file_in, b[2], sizeof b[2]),
           size_str(file_out, b[3], sizeof b[3]), file_out > 0 ? file_in / file_out : 0.0,
           pos[2], embd_s, secs);
    if (r.worst_name[0])
        printf("largest rms rel err: %.3e (%s)\n", r.worst_rms, r.worst_name);
    printf("wrote %s\n", out);
    return 0;
}
