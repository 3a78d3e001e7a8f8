/* Persistent thread pool. A decode step calls gpt2k_pool_run ~100 times per
 * token, each a few microseconds of work, so workers first spin on a
 * generation counter (no syscall on the fast path) and only after a while
 * sleep on a condvar so an idle engine does not burn CPU. */
#include "kernels.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

/* Spin iterations before sleeping: at tens of cycles per pause, a few hundred
 * microseconds, enough to cover the gap between two ops of one token. */
#define POOL_SPIN 20000
/* Spinners yield this often, so a worker that finished early hands its core to
 * one that has not started when threads outnumber cores. */
#define POOL_YIELD_EVERY 256
/* Caller's pure spins before it starts yielding while it waits for workers
 * (yielding matters when threads outnumber cores). */
#define POOL_WAIT_SPIN 4000

typedef struct {
    gpt2k_pool *pool;
    int ith;
} pool_worker;

struct gpt2k_pool {
    int n;
    pthread_t *threads;
    pool_worker *workers;

    void (*fn)(void *arg, int ith, int nth);
    void *arg;

    atomic_uint gen;     /* bumped once per run (and at shutdown) */
    atomic_int pending;  /* workers that have not finished the current run */
    atomic_int sleeping; /* workers blocked (or about to block) on wake */
    atomic_int quit;

    pthread_mutex_t mu;
    pthread_cond_t wake;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ volatile("pause" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* Waits until gen differs from seen; returns the new value. */
static unsigned wait_gen(gpt2k_pool *p, unsigned seen)
{
    for (int i = 0; i < POOL_SPIN; i++) {
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen)
            return g;
        if (i % POOL_YIELD_EVERY == POOL_YIELD_EVERY - 1)
            sched_yield();
        else
            cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    /* seq_cst pairs with the caller's seq_cst bump of gen then read of
     * sleeping: either we see the new gen here or the caller sees us asleep
     * and broadcasts under the mutex, so no wake-up is lost. */
    atomic_fetch_add(&p->sleeping, 1);
    unsigned g;
    while ((g = atomic_load(&p->gen)) == seen)
        pthread_cond_wait(&p->wake, &p->mu);
    atomic_fetch_sub(&p->sleeping, 1);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *worker_main(void *arg)
{
    pool_worker *w = arg;
    gpt2k_pool *p = w->pool;
    /* gen is 0 at creation and only runs (after create returns) bump it; reading
     * it here instead could miss a run that started before this thread did. */
    unsigned seen = 0;
    for (;;) {
        seen = wait_gen(p, seen);
        if (atomic_load_explicit(&p->quit, memory_order_acquire))
            break;
        p->fn(p->arg, w->ith, p->n);
        /* release: the caller's acquire load of pending sees our writes. */
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
    return NULL;
}

static void bump_gen(gpt2k_pool *p)
{
    atomic_fetch_add(&p->gen, 1); /* seq_cst, see wait_gen */
    if (atomic_load(&p->sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
}

static void stop_workers(gpt2k_pool *p, int started)
{
    atomic_store(&p->quit, 1);
    bump_gen(p);
    for (int i = 0; i < started; i++)
        pthread_join(p->threads[i], NULL);
}

gpt2k_pool *gpt2k_pool_create(int n_threads)
{
    if (n_threads < 1)
        return NULL;
    gpt2k_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->n = n_threads;
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->sleeping, 0);
    atomic_init(&p->quit, 0);
    if (pthread_mutex_init(&p->mu, NULL)) {
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->wake, NULL)) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    int nw = n_threads - 1;
    if (nw > 0) {
        p->threads = calloc((size_t)nw, sizeof *p->threads);
        p->workers = calloc((size_t)nw, sizeof *p->workers);
        if (!p->threads || !p->workers) {
            p->n = 1; /* no thread started */
            gpt2k_pool_free(p);
            return NULL;
        }
        for (int i = 0; i < nw; i++) {
            p->workers[i].pool = p;
            p->workers[i].ith = i + 1;
            if (pthread_create(&p->threads[i], NULL, worker_main, &p->workers[i])) {
                stop_workers(p, i);
                p->n = 1; /* nothing left to join in free */
                gpt2k_pool_free(p);
                return NULL;
            }
        }
    }
    return p;
}

void gpt2k_pool_free(gpt2k_pool *p)
{
    if (!p)
        return;
    if (p->n > 1 && p->threads)
        stop_workers(p, p->n - 1);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p->workers);
    free(p);
}

int gpt2k_pool_size(const gpt2k_pool *p) { return p ? p->n : 1; }

void gpt2k_pool_run(gpt2k_pool *p, void (*fn)(void *arg, int ith, int nth), void *arg)
{
    if (!p || p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    bump_gen(p); /* publishes fn, arg and pending */
    fn(arg, 0, p->n);
    for (int i = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++) {
        if (i < POOL_WAIT_SPIN)
            cpu_relax();
        else
            sched_yield();
    }
}
