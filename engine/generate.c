/* gpt2_generate: prompt prefill, then sample / decode one token at a time. */
#include <stdlib.h>

#include "backend.h"
#include "ctx.h"
#include "errors.h"
#include "model.h"

int gpt2_generate(gpt2_ctx *c, const int *prompt, int n_prompt, const gpt2_gen_opts *o,
                  gpt2_token_fn cb, void *user, gpt2_gen_stats *stats, gpt2_error *err)
{
    gpt2_gen_stats st = {0};
    if (stats)
        *stats = st;
    if (n_prompt < 1)
        return gpt2_seterr(err, GPT2_ERR_INVALID,
                           "generate: empty prompt (start from <|endoftext|> for unconditional text)");
    if (o->n_new < 0)
        return gpt2_seterr(err, GPT2_ERR_INVALID, "generate: n_new %d: expected >= 0", o->n_new);
    const gpt2_config *cfg = &gpt2_ctx_model(c)->cfg;
    if ((long)n_prompt + o->n_new > cfg->n_ctx)
        return gpt2_seterr(err, GPT2_ERR_CONTEXT,
                           "prompt of %d tokens + %d new tokens exceeds the context window of %d",
                           n_prompt, o->n_new, cfg->n_ctx);
    gpt2_sampler *smp = gpt2_sampler_create(&o->sampling, cfg->n_vocab, err);
    if (!smp)
        return err ? err->code : GPT2_ERR_INVALID;

    gpt2_ctx_reset(c);
    st.n_prompt = n_prompt;
    /* Greedy runs, and sampled runs on a backend that samples itself (a GPU),
     * ask the backend for the next token alone: its logits stay where they
     * are. The serving engine makes the same choice, so a request gives the
     * same tokens there and here. Otherwise the host sampler reads the logits. */
    const int pick = o->sampling.greedy || gpt2_ctx_device_sampling(c);
    gpt2_row_sampling rs;
    const float *logits = NULL;
    int next = 0;
    double t0 = gpt2_now_ms();
    int rc;
    if (pick) {
        gpt2_sampler_next_row(smp, &rs);
        rc = gpt2_eval_pick(c, prompt, n_prompt, &rs, &next, err);
    } else {
        rc = gpt2_eval(c, prompt, n_prompt, &logits, err);
    }
    double t_prefill = gpt2_now_ms();
    st.prefill_ms = t_prefill - t0;
    double t_first = t_prefill;
    for (int i = 0; rc == 0 && i < o->n_new; i++) {
        int id = pick ? next : gpt2_sampler_sample(smp, logits);
        if (i == 0) {
            t_first = gpt2_now_ms();
            st.ttft_ms = t_first - t0;
        }
        st.n_generated++;
        if (cb && cb(id, user))
            break;
        if (id == GPT2_EOS_TOKEN && !o->ignore_eos) {
            st.stopped_at_eos = 1;
            break;
        }
        if (i + 1 < o->n_new) {
            if (pick) {
                gpt2_sampler_next_row(smp, &rs);
                rc = gpt2_eval_pick(c, &id, 1, &rs, &next, err);
            } else {
                rc = gpt2_eval(c, &id, 1, &logits, err);
            }
        }
    }
    double t_end = gpt2_now_ms();
    gpt2_sampler_free(smp);
    if (st.n_generated > 0)
        st.decode_ms = t_end - t_first;
    if (st.prefill_ms > 0)
        st.prefill_tok_s = n_prompt / (st.prefill_ms / 1e3);
    if (st.n_generated > 1 && st.decode_ms > 0)
        st.decode_tok_s = (st.n_generated - 1) / (st.decode_ms / 1e3);
    if (stats)
        *stats = st;
    return rc;
}
