/* gpt2_batch_check: the shape rules of a forward batch, shared by backends. */
#include <math.h>

#include "backend.h"
#include "errors.h"

int gpt2_batch_check(const gpt2_batch *b, const gpt2_config *c, int max_batch,
                     int max_logit_rows, int kv_blocks, int kv_block_tokens, gpt2_error *err)
{
    if (!b || !b->ids || !b->seqs || b->n_seqs < 1 || b->n_rows < 1 || b->n_rows > max_batch)
        return gpt2_seterr(err, GPT2_ERR_INVALID,
                           "forward: batch of %d rows in %d sequences: expected 1 .. %d rows",
                           b ? b->n_rows : 0, b ? b->n_seqs : 0, max_batch);
    int rows = 0, logit_rows = 0;
    for (int i = 0; i < b->n_seqs; i++) {
        const gpt2_batch_seq *q = &b->seqs[i];
        if (q->n_rows < 1 || q->pos0 < 0 || q->pos0 > c->n_ctx - q->n_rows ||
            q->first_logit < 0 || q->first_logit > q->n_rows || !q->blocks)
            return gpt2_seterr(err, GPT2_ERR_INVALID,
                               "forward: sequence %d: %d rows at position %d, logits from row %d: "
                               "expected >= 1 rows inside the context window of %d and a block table",
                               i, q->n_rows, q->pos0, q->first_logit, c->n_ctx);
        int used = (q->pos0 + q->n_rows + kv_block_tokens - 1) / kv_block_tokens;
        for (int j = 0; j < used; j++)
            if (q->blocks[j] < 0 || q->blocks[j] >= kv_blocks)
                return gpt2_seterr(err, GPT2_ERR_INVALID,
                                   "forward: sequence %d: block table entry %d is %d: expected 0 .. %d",
                                   i, j, q->blocks[j], kv_blocks - 1);
        for (int j = 0; j < q->n_rows; j++) {
            int id = b->ids[rows + j];
            if (id < 0 || id >= c->n_vocab)
                return gpt2_seterr(err, GPT2_ERR_TOKENIZE,
                                   "token id %d at position %d: expected 0..%d", id, q->pos0 + j,
                                   c->n_vocab - 1);
        }
        rows += q->n_rows;
        logit_rows += q->n_rows - q->first_logit;
    }
    if (rows != b->n_rows || logit_rows != b->n_logit_rows || logit_rows > max_logit_rows)
        return gpt2_seterr(err, GPT2_ERR_INVALID,
                           "forward: sequences hold %d rows (%d with logits); the batch says %d (%d); "
                           "at most %d logit rows",
                           rows, logit_rows, b->n_rows, b->n_logit_rows, max_logit_rows);
    for (int k = 0; b->sampling && k < b->n_logit_rows; k++) {
        const gpt2_row_sampling *r = &b->sampling[k];
        if (!r->on)
            continue;
        if (!b->sampled || r->top_k < 0 || !(r->inv_temp > 0.0f) || isinf(r->inv_temp) ||
            !(r->top_p > 0.0f) || !(r->u >= 0.0 && r->u < 1.0))
            return gpt2_seterr(err, GPT2_ERR_INVALID,
                               "forward: logit row %d: sampling top_k %d, 1/T %g, top_p %g, u %g%s: "
                               "expected top_k >= 0, 0 < 1/T < inf, top_p > 0, 0 <= u < 1",
                               k, r->top_k, (double)r->inv_temp, (double)r->top_p, r->u,
                               b->sampled ? "" : " and no output array (sampled)");
    }
    return 0;
}
