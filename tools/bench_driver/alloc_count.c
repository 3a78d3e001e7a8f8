/* Counts heap allocations made by gpt2c code (the engine library and the
 * bench), so phase 3 can report allocations per generated token. gpt2c-bench
 * is linked with -Wl,--wrap=malloc,... : every call from our own objects
 * reaches these wrappers; allocations inside shared libraries (libc's own,
 * cJSON's) are not ours and are not counted. */
#include <stdatomic.h>
#include <stdlib.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
int __real_posix_memalign(void **p, size_t align, size_t n);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);
int __wrap_posix_memalign(void **p, size_t align, size_t n);

static atomic_long g_allocs;

void *__wrap_malloc(size_t n)
{
    atomic_fetch_add_explicit(&g_allocs, 1, memory_order_relaxed);
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    atomic_fetch_add_explicit(&g_allocs, 1, memory_order_relaxed);
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    atomic_fetch_add_explicit(&g_allocs, 1, memory_order_relaxed);
    return __real_realloc(p, n);
}

void *__wrap_aligned_alloc(size_t align, size_t n)
{
    atomic_fetch_add_explicit(&g_allocs, 1, memory_order_relaxed);
    return __real_aligned_alloc(align, n);
}

int __wrap_posix_memalign(void **p, size_t align, size_t n)
{
    atomic_fetch_add_explicit(&g_allocs, 1, memory_order_relaxed);
    return __real_posix_memalign(p, align, n);
}

long bench_alloc_count(void) { return atomic_load(&g_allocs); }
