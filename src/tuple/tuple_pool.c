/* tuple_pool: see tuple_pool.h. */
#include "tuple/tuple_pool.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/log.h"

#define SLAB_BYTES (64 * 1024)
#define SPARE_SLABS 16               /* kept for reuse (1 MiB a pool); more are freed */
#define LIVE_BIAS (1 << 30)          /* "still the current slab": no release yet */
#define STACK_CLOSED ((tuple_slab *)1) /* the return stack of a closed pool */

/* live is written by every thread that frees a tuple; nothing the owner
 * writes while carving may share its cache line */
struct tuple_slab {
    _Alignas(64) atomic_int live; /* tuples alive here (+ LIVE_BIAS while current) */
    tuple_pool *pool;
    tuple_slab *next;         /* in the return stack or the spare list */
    _Alignas(64) char mem[];
};

static const size_t payload = SLAB_BYTES - sizeof(tuple_slab);
/* tuples above this come from malloc: they would waste slabs (tuple_pool_alloc
 * tests the same bound) */
_Static_assert(SLAB_BYTES / 4 == 16384, "tuple_pool_alloc's big-tuple bound");
#define BIG_TUPLE (SLAB_BYTES / 4)

/* every pool's slabs, for tuple_pool_slab_bytes (statistics and tests), and
 * those holding tuples (the worker's backpressure budget): busy counts a
 * slab from its retirement as a pool's current slab until its last tuple is
 * released. Spare slabs and slabs waiting in a return stack (whose owner may
 * be a paused spout that does not collect them) never count, nor does the
 * slab each pool is carving: otherwise the pools' current slabs alone, even
 * empty, could keep the count above a low watermark forever. */
static atomic_llong slab_bytes, busy_bytes;

size_t tuple_pool_slab_bytes(void) {
    return (size_t)atomic_load_explicit(&slab_bytes, memory_order_relaxed);
}

size_t tuple_pool_busy_bytes(void) {
    long long b = atomic_load_explicit(&busy_bytes, memory_order_relaxed);
    return b > 0 ? (size_t)b : 0;
}

tuple_pool *tuple_pool_new(void) {
    tuple_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    atomic_init(&p->returned, NULL);
    atomic_init(&p->slabs, 1);
    atomic_init(&p->nreturned, 0);
    return p;
}

static void pool_unref(tuple_pool *p) {
    if (atomic_fetch_sub_explicit(&p->slabs, 1, memory_order_acq_rel) == 1) free(p);
}

static void slab_free(tuple_slab *s) {
    tuple_pool *p = s->pool;
    free(s);
    atomic_fetch_sub_explicit(&slab_bytes, SLAB_BYTES, memory_order_relaxed);
    pool_unref(p);
}

void tuple_slab_release(tuple_slab *s) { tuple_slab_release_n(s, 1); }

void tuple_slab_release_n(tuple_slab *s, int n) {
    if (atomic_fetch_sub_explicit(&s->live, n, memory_order_acq_rel) != n) return;
    atomic_fetch_sub_explicit(&busy_bytes, SLAB_BYTES, memory_order_relaxed);
    tuple_pool *p = s->pool;
    /* an owner that allocates no more (a paused spout) would keep every
     * slab it ever carved: past what it would keep as spares, free them */
    if (atomic_load_explicit(&p->nreturned, memory_order_relaxed) >= SPARE_SLABS) {
        slab_free(s);
        return;
    }
    atomic_fetch_add_explicit(&p->nreturned, 1, memory_order_relaxed);
    tuple_slab *head = atomic_load_explicit(&p->returned, memory_order_acquire);
    do {
        if (head == STACK_CLOSED) {
            slab_free(s);
            return;
        }
        s->next = head;
    } while (!atomic_compare_exchange_weak_explicit(&p->returned, &head, s, memory_order_release,
                                                    memory_order_acquire));
}

/* Stops carving from the current slab: its tuples now release it alone. */
static void retire_current(tuple_pool *p) {
    tuple_slab *s = p->current;
    if (!s) return;
    p->current = NULL;
    p->next = p->end = NULL;
    /* its last release, here or on another thread, takes this back */
    atomic_fetch_add_explicit(&busy_bytes, SLAB_BYTES, memory_order_relaxed);
    int drop = LIVE_BIAS - p->allocated;
    /* the last tuple may already be gone: then the retiring owner releases it */
    if (atomic_fetch_sub_explicit(&s->live, drop, memory_order_acq_rel) == drop) {
        atomic_store_explicit(&s->live, 1, memory_order_relaxed);
        tuple_slab_release(s);
    }
}

static tuple_slab *next_slab(tuple_pool *p) {
    if (!p->spare) {
        /* the only thread that takes from the stack: no ABA */
        tuple_slab *got = atomic_exchange_explicit(&p->returned, NULL, memory_order_acquire);
        int taken = 0;
        for (tuple_slab *g = got; g; g = g->next) taken++;
        atomic_fetch_sub_explicit(&p->nreturned, taken, memory_order_relaxed);
        while (got) {
            tuple_slab *n = got->next;
            if (p->nspare < SPARE_SLABS) {
                got->next = p->spare;
                p->spare = got;
                p->nspare++;
            } else {
                slab_free(got);
            }
            got = n;
        }
    }
    tuple_slab *s = p->spare;
    if (s) {
        p->spare = s->next;
        p->nspare--;
    } else {
        s = aligned_alloc(64, SLAB_BYTES);
        if (!s) {
            log_error("tuple pool: out of memory for a slab");
            return NULL;
        }
        s->pool = p;
        atomic_fetch_add_explicit(&p->slabs, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&slab_bytes, SLAB_BYTES, memory_order_relaxed);
    }
    atomic_init(&s->live, LIVE_BIAS);
    s->next = NULL;
    p->next = s->mem;
    p->end = s->mem + payload;
    p->allocated = 0;
    return s;
}

void *tuple_pool_alloc_slow(tuple_pool *p, size_t size, tuple_slab **slab) {
    size = (size + 15) & ~(size_t)15;
    if (size > BIG_TUPLE) {
        *slab = NULL;
        return malloc(size);
    }
    if (!p->current || (size_t)(p->end - p->next) < size) {
        retire_current(p);
        if (!(p->current = next_slab(p))) return NULL;
    }
    void *mem = p->next;
    p->next += size;
    p->allocated++;
    *slab = p->current;
    return mem;
}

void tuple_pool_close(tuple_pool *p) {
    retire_current(p);
    while (p->spare) {
        tuple_slab *n = p->spare->next;
        slab_free(p->spare);
        p->spare = n;
    }
    tuple_slab *got = atomic_exchange_explicit(&p->returned, STACK_CLOSED, memory_order_acq_rel);
    while (got) {
        tuple_slab *n = got->next;
        slab_free(got);
        got = n;
    }
    pool_unref(p);
}
