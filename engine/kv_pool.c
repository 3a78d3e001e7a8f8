/* KV block allocator (see kv_pool.h). */
#include <stdlib.h>

#include "kv_pool.h"

int kv_pool_init(kv_pool *p, int n_blocks)
{
    p->n_blocks = n_blocks;
    p->reserved = 0;
    p->peak_used = 0;
    p->free_stack = malloc(sizeof(int) * (size_t)(n_blocks > 0 ? n_blocks : 1));
    if (!p->free_stack)
        return -1;
    /* block 0 on top, so a lone sequence uses blocks 0, 1, 2, ... */
    for (int i = 0; i < n_blocks; i++)
        p->free_stack[i] = n_blocks - 1 - i;
    p->n_free = n_blocks;
    return 0;
}

void kv_pool_destroy(kv_pool *p)
{
    free(p->free_stack);
    p->free_stack = NULL;
}

int kv_pool_reserve(kv_pool *p, int n)
{
    if (n < 0 || n > p->n_blocks - p->reserved)
        return -1;
    p->reserved += n;
    return 0;
}

int kv_pool_take(kv_pool *p)
{
    /* reservations never exceed n_blocks, so a reserved block is always free */
    int b = p->free_stack[--p->n_free];
    if (kv_pool_used(p) > p->peak_used)
        p->peak_used = kv_pool_used(p);
    return b;
}

void kv_pool_release(kv_pool *p, const int *blocks, int n, int reservation)
{
    for (int i = 0; i < n; i++)
        p->free_stack[p->n_free++] = blocks[i];
    p->reserved -= reservation;
}
