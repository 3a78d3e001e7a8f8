/* The KV block allocator: which of the backend's kv_blocks blocks are free.
 * Bookkeeping only (the blocks' memory belongs to the backend). Not thread
 * safe: the scheduler calls it under its lock.
 *
 * A request reserves, when admitted, every block it can ever need (prompt +
 * new tokens), so a running sequence never waits for or loses a block; the
 * blocks themselves are taken one by one as its positions reach them, so
 * "used" follows the tokens actually held. */
#ifndef GPT2C_KV_POOL_H
#define GPT2C_KV_POOL_H

typedef struct kv_pool {
    int n_blocks;
    int n_free;   /* blocks on the free stack */
    int reserved; /* blocks promised to admitted sequences, taken or not */
    int peak_used;
    int *free_stack; /* LIFO: a freed block is reused first, its pages still resident */
} kv_pool;

int kv_pool_init(kv_pool *p, int n_blocks); /* 0 or -1 (no memory) */
void kv_pool_destroy(kv_pool *p);
static inline int kv_pool_used(const kv_pool *p) { return p->n_blocks - p->n_free; }
/* Promises n blocks; 0 on success, -1 when fewer than n are unpromised. */
int kv_pool_reserve(kv_pool *p, int n);
/* Takes one promised block (the caller reserved it): never fails. */
int kv_pool_take(kv_pool *p);
/* Returns the n blocks of a table and the caller's whole reservation. */
void kv_pool_release(kv_pool *p, const int *blocks, int n, int reservation);

#endif
