/* gpt2c-generate: text generation from the command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "gpt2.h"

static const char *PROG = "gpt2c-generate";

static void usage(void)
{
    printf(
        "usage: gpt2c-generate [--model FILE] [--prompt TEXT] [-n N] [options]\n"
        "\n"
        "Generates text with a GPT-2 GGUF model and streams it to stdout. Without\n"
        "--prompt the prompt is read from stdin. Timings go to stderr.\n"
        "\n"
        "  --model FILE       GGUF model (default " CLI_DEFAULT_MODEL ")\n"
        "  --prompt TEXT      prompt text (empty: start from <|endoftext|>)\n"
        "  -n N               tokens to generate (default 64)\n"
        "  --greedy           argmax decoding (default when no sampling flag is given)\n"
        "  --temp T           sample with temperature T > 0\n"
        "  --top-k K          keep the K most probable tokens (0 = off)\n"
        "  --top-p P          keep the smallest set with probability >= P (1 = off)\n"
        "  --seed S           sampling seed (default 0)\n"
        "  --ignore-eos       do not stop at <|endoftext|> (fixed-length runs)\n"
        "  --threads N        CPU threads (default: all cores)\n"
        "  --isa NAME         auto|scalar|avx2|avx512 (default auto, or $GPT2C_ISA)\n"
        "  --backend NAME     cpu|cuda (default cpu)\n"
        "  --gemm NAME        native|openblas: matmul by our kernels or cblas_sgemm\n"
        "                     (native|cublas with --backend cuda)\n"
        "  --device N         GPU ordinal for --backend cuda (default 0)\n"
        "  --kv-type T        KV cache elements: f16 (default; half the memory) or f32\n"
        "                     (the forward exactly as the fp32 reference; cpu only)\n"
        "  --ids              the prompt is whitespace-separated token ids; print ids\n"
        "  --logits FILE      write float32 logits of every prompt position\n"
        "                     ([T x n_vocab], row-major, little-endian) and exit\n"
        "  --warmup N         run the whole generation N times unmeasured first (default\n"
        "                     0), so the figures are of a warm run, as llama-bench's\n"
        "  --stats-json FILE  write this run's figures as JSON\n"
        "  --profile          time the measured run op by op (cpu backend): where a\n"
        "                     prompt pass and a decode step spend their time, and the\n"
        "                     rate the decode matmuls read their weights at (two clock\n"
        "                     reads per op, ~200 per 124M step)\n"
        "  --no-crc           skip the per-tensor CRC-32 check at load\n"
        "  --quiet            do not print the generated text\n"
        "  -h, --help         this help\n");
}

typedef struct out_state {
    const gpt2_model *m;
    int ids_mode;
    int quiet;
    int first;
} out_state;

static int on_token(int id, void *user)
{
    out_state *o = user;
    if (o->quiet)
        return 0;
    if (o->ids_mode) {
        printf(o->first ? "%d" : " %d", id);
    } else {
        size_t len;
        const char *b = gpt2_token_bytes(o->m, id, &len);
        fwrite(b, 1, len, stdout);
    }
    o->first = 0;
    fflush(stdout);
    return 0;
}

typedef struct logits_out {
    FILE *f;
} logits_out;

static int write_logits(const float *rows, int first_pos, int n_rows, int n_vocab, void *user)
{
    logits_out *lo = user;
    size_t n = (size_t)n_rows * n_vocab;
    return fwrite(rows, sizeof(float), n, lo->f) != n;
}

static void print_profile(const gpt2_ctx *c, const gpt2_op_profile *p)
{
    const gpt2_op_times *t[2] = {&p->prompt, &p->decode};
    double tot[2] = {gpt2_op_total_ms(t[0]), gpt2_op_total_ms(t[1])};
    fprintf(stderr, "%s: op profile (wall time on the calling thread; parallel ops until their "
                    "last thread is done)\n",
            PROG);
    fprintf(stderr, "  %-10s %14s %7s %16s %7s\n", "op", "prompt ms", "%", "decode ms/step", "%");
    for (int k = 0; k <= GPT2_OP_COUNT; k++) {
        const char *name = k < GPT2_OP_COUNT ? gpt2_op_name((gpt2_op_kind)k) : "total";
        double v[2];
        for (int j = 0; j < 2; j++)
            v[j] = k < GPT2_OP_COUNT ? t[j]->ms[k] : tot[j];
        fprintf(stderr, "  %-10s %14.3f %6.1f%% %16.4f %6.1f%%\n", name, v[0],
                tot[0] > 0 ? 100 * v[0] / tot[0] : 0,
                t[1]->passes > 0 ? v[1] / t[1]->passes : 0, tot[1] > 0 ? 100 * v[1] / tot[1] : 0);
    }
    const double gbs = gpt2_ctx_decode_weights_gb_s(c, t[1]);
    if (gbs > 0)
        fprintf(stderr, "  decode steps: %ld; matmul + lm_head read %.1f MB of weights per step "
                        "at %.1f GB/s\n",
                t[1]->passes, gpt2_ctx_weight_bytes(c) / 1e6, gbs);
}

static void json_op_times(FILE *f, const char *name, const gpt2_op_times *t, int last)
{
    fprintf(f, "    \"%s\": {\"passes\": %ld, \"rows\": %ld, \"ms\": {", name, t->passes, t->rows);
    for (int k = 0; k < GPT2_OP_COUNT; k++)
        fprintf(f, "%s\"%s\": %.6f", k ? ", " : "", gpt2_op_name((gpt2_op_kind)k), t->ms[k]);
    fprintf(f, "}, \"total_ms\": %.6f}%s\n", gpt2_op_total_ms(t), last ? "" : ",");
}

static void write_stats(const char *path, const gpt2_model *m, const gpt2_ctx *c,
                        const gpt2_gen_stats *st, const gpt2_op_profile *prof)
{
    FILE *f = fopen(path, "w");
    if (!f)
        cli_die(PROG, "--stats-json %s: cannot open for writing", path);
    fprintf(f, "{\n  \"model\": ");
    cli_json_str(f, gpt2_model_path(m));
    fprintf(f, ",\n  \"dtype\": \"%s\",\n  \"backend\": \"%s\",\n  \"gemm\": \"%s\",\n  \"kv_type\": \"%s\",\n  \"isa\": \"%s\",\n"
               "  \"threads\": %d,\n  \"prompt_tokens\": %d,\n  \"generated_tokens\": %d,\n"
               "  \"load_ms\": %.3f,\n  \"ttft_ms\": %.3f,\n  \"prefill_ms\": %.3f,\n"
               "  \"prefill_tok_s\": %.3f,\n  \"decode_ms\": %.3f,\n  \"decode_tok_s\": %.3f,\n"
               "  \"stopped_at_eos\": %s",
            gpt2_model_dtype(m), gpt2_ctx_backend(c), gpt2_ctx_gemm(c), gpt2_ctx_kv_type(c),
            gpt2_ctx_isa(c), gpt2_ctx_threads(c),
            st->n_prompt, st->n_generated, gpt2_model_load_ms(m), st->ttft_ms, st->prefill_ms,
            st->prefill_tok_s, st->decode_ms, st->decode_tok_s,
            st->stopped_at_eos ? "true" : "false");
    if (prof) {
        /* per op, summed over the passes: divide by passes for one pass */
        fprintf(f, ",\n  \"op_profile\": {\n");
        json_op_times(f, "prompt", &prof->prompt, 0);
        json_op_times(f, "decode", &prof->decode, 0);
        fprintf(f, "    \"decode_weights_gb_s\": %.3f\n  }",
                gpt2_ctx_decode_weights_gb_s(c, &prof->decode));
    }
    fprintf(f, "\n}\n");
    if (fclose(f) != 0)
        cli_die(PROG, "--stats-json %s: write failed", path);
}

static void log_notice(const char *line, void *user) { fprintf(stderr, "%s: %s\n", PROG, line); }

int main(int argc, char **argv)
{
    const char *model_path = CLI_DEFAULT_MODEL, *prompt = NULL, *logits_path = NULL;
    const char *stats_path = NULL, *isa = NULL, *backend = NULL, *gemm = NULL, *kv_type = NULL;
    int device = 0;
    int n_new = 64, threads = 0, ids_mode = 0, quiet = 0, sampled = 0, warmup = 0, profile = 0;
    gpt2_load_opts lo = {0};
    gpt2_gen_opts go = {0};
    gpt2_sampling_default(&go.sampling);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        } else if (!strcmp(a, "--model")) {
            model_path = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--prompt")) {
            prompt = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "-n")) {
            n_new = (int)cli_long(PROG, a, cli_value(PROG, argc, argv, &i), 0, 1 << 20);
        } else if (!strcmp(a, "--greedy")) {
            go.sampling.greedy = 1;
        } else if (!strcmp(a, "--temp")) {
            go.sampling.temperature = (float)cli_double(PROG, a, cli_value(PROG, argc, argv, &i), 1e-6, 1e6);
            sampled = 1;
        } else if (!strcmp(a, "--top-k")) {
            go.sampling.top_k = (int)cli_long(PROG, a, cli_value(PROG, argc, argv, &i), 0, 1 << 24);
            sampled = 1;
        } else if (!strcmp(a, "--top-p")) {
            go.sampling.top_p = (float)cli_double(PROG, a, cli_value(PROG, argc, argv, &i), 1e-6, 1.0);
            sampled = 1;
        } else if (!strcmp(a, "--seed")) {
            go.sampling.seed = cli_u64(PROG, a, cli_value(PROG, argc, argv, &i));
        } else if (!strcmp(a, "--ignore-eos")) {
            go.ignore_eos = 1;
        } else if (!strcmp(a, "--threads")) {
            threads = (int)cli_long(PROG, a, cli_value(PROG, argc, argv, &i), 1, 1024);
        } else if (!strcmp(a, "--isa")) {
            isa = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--backend")) {
            backend = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--gemm")) {
            gemm = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--kv-type")) {
            kv_type = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--device")) {
            device = (int)cli_long(PROG, a, cli_value(PROG, argc, argv, &i), 0, 1023);
        } else if (!strcmp(a, "--ids")) {
            ids_mode = 1;
        } else if (!strcmp(a, "--logits")) {
            logits_path = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--warmup")) {
            warmup = (int)cli_long(PROG, a, cli_value(PROG, argc, argv, &i), 0, 1000);
        } else if (!strcmp(a, "--stats-json")) {
            stats_path = cli_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--no-crc")) {
            lo.skip_crc = 1;
        } else if (!strcmp(a, "--profile")) {
            profile = 1;
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
        } else {
            cli_usage_error(PROG, "unknown option '%s'", a);
        }
    }
    if (go.sampling.greedy && sampled)
        cli_usage_error(PROG, "--greedy cannot be combined with --temp/--top-k/--top-p");
    if (warmup && logits_path)
        cli_usage_error(PROG, "--warmup times generation; --logits evaluates the prompt once");
    if (profile && logits_path)
        cli_usage_error(PROG, "--profile times generation; --logits evaluates the prompt once");
    if (!sampled)
        go.sampling.greedy = 1;
    go.n_new = n_new;

    gpt2_set_log(log_notice, NULL);
    gpt2_error err = {0};
    if (access(model_path, F_OK) != 0 && !strcmp(model_path, CLI_DEFAULT_MODEL))
        cli_die(PROG, "%s: not found; create it with: build/bin/gpt2c-convert --synthetic 124M "
                      "--seed 1 (or run tools/bench once)", model_path);
    gpt2_model *m = gpt2_model_load(model_path, &lo, &err);
    if (!m)
        cli_die(PROG, "%s", err.msg);
    const gpt2_config *cfg = gpt2_model_config(m);

    /* the prompt: --prompt, else stdin */
    char *owned = NULL;
    size_t plen;
    if (!prompt) {
        owned = cli_read_all(stdin, &plen);
        if (!owned)
            cli_die(PROG, "cannot read the prompt from stdin");
        prompt = owned;
    } else {
        plen = strlen(prompt);
    }
    int n_prompt = 0, *ids;
    if (ids_mode) {
        ids = cli_parse_ids(PROG, "prompt ids", prompt, cfg->n_vocab, &n_prompt);
    } else {
        int need = gpt2_tokenize(m, prompt, plen, NULL, 0, &err);
        if (need < 0)
            cli_die(PROG, "prompt: %s", err.msg);
        ids = malloc(sizeof(int) * (size_t)(need + 1));
        if (!ids)
            cli_die(PROG, "out of memory");
        n_prompt = gpt2_tokenize(m, prompt, plen, ids, need, &err);
    }
    if (n_prompt == 0) {
        if (cfg->n_vocab <= GPT2_EOS_TOKEN)
            cli_die(PROG, "empty prompt, and this vocabulary has no <|endoftext|> to start from");
        ids[0] = GPT2_EOS_TOKEN;
        n_prompt = 1;
        fprintf(stderr, "%s: empty prompt: starting from <|endoftext|>\n", PROG);
    }
    if (!logits_path && n_prompt + n_new > cfg->n_ctx)
        cli_die(PROG, "prompt of %d tokens + %d new tokens (-n) exceeds the context window of %d "
                      "positions; shorten the prompt or lower -n", n_prompt, n_new, cfg->n_ctx);
    if (logits_path && n_prompt > cfg->n_ctx)
        cli_die(PROG, "prompt of %d tokens exceeds the context window of %d positions",
                n_prompt, cfg->n_ctx);

    gpt2_ctx_opts co = {.n_threads = threads, .isa = isa, .backend = backend, .gemm = gemm,
                        .device = device, .kv_type = kv_type};
    gpt2_ctx *c = gpt2_ctx_create(m, &co, &err);
    if (!c)
        cli_die(PROG, "%s", err.msg);
    fprintf(stderr, "%s: %s (%s, %d layers, n_embd %d) | backend %s | isa %s | gemm %s | kv %s | threads %d | load %.1f ms\n",
            PROG, gpt2_model_path(m), gpt2_model_dtype(m), cfg->n_layer, cfg->n_embd,
            gpt2_ctx_backend(c), gpt2_ctx_isa(c), gpt2_ctx_gemm(c), gpt2_ctx_kv_type(c), gpt2_ctx_threads(c),
            gpt2_model_load_ms(m));

    int rc = 0;
    if (logits_path) {
        logits_out lout = {fopen(logits_path, "wb")};
        if (!lout.f)
            cli_die(PROG, "--logits %s: cannot open for writing", logits_path);
        rc = gpt2_eval_all_logits(c, ids, n_prompt, write_logits, &lout, &err);
        if (fclose(lout.f) != 0 && rc == 0) {
            rc = GPT2_ERR_IO;
            snprintf(err.msg, sizeof err.msg, "write failed (disk full?)");
        }
        if (rc) {
            remove(logits_path);
            cli_die(PROG, "--logits %s: %s", logits_path, err.msg);
        }
        fprintf(stderr, "%s: wrote %d x %d float32 logits to %s\n", PROG, n_prompt, cfg->n_vocab,
                logits_path);
    } else {
        out_state os = {.m = m, .ids_mode = ids_mode, .quiet = quiet, .first = 1};
        out_state silent = {.m = m, .quiet = 1};
        gpt2_gen_stats st;
        /* same prompt, same options, same seed: the measured run repeats these */
        for (int w = 0; w < warmup && rc == 0; w++)
            rc = gpt2_generate(c, ids, n_prompt, &go, on_token, &silent, &st, &err);
        if (rc)
            cli_die(PROG, "warm-up run: %s", err.msg);
        gpt2_op_profile prof;
        if (profile && gpt2_ctx_profile(c, 1, NULL, &err) != 0)
            cli_die(PROG, "--profile: %s", err.msg);
        rc = gpt2_generate(c, ids, n_prompt, &go, on_token, &os, &st, &err);
        if (profile)
            gpt2_ctx_profile(c, 0, &prof, NULL);
        if (!quiet)
            printf("\n");
        fflush(stdout);
        if (rc)
            cli_die(PROG, "%s", err.msg);
        fprintf(stderr, "%s: prompt %d tokens, generated %d | TTFT %.1f ms | prefill %.1f tok/s | "
                        "decode %.2f tok/s%s\n",
                PROG, st.n_prompt, st.n_generated, st.ttft_ms, st.prefill_tok_s, st.decode_tok_s,
                st.stopped_at_eos ? " | stopped at <|endoftext|>" : "");
        if (profile)
            print_profile(c, &prof);
        if (stats_path)
            write_stats(stats_path, m, c, &st, profile ? &prof : NULL);
    }
    free(ids);
    free(owned);
    gpt2_ctx_free(c);
    gpt2_model_free(m);
    return 0;
}
