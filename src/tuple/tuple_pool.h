/*
 * tuple_pool: tuples carved out of 64 KiB slabs instead of one malloc each.
 *
 * A tuple is allocated by one thread (an executor's emit path) and freed by
 * another (the task that consumed it), millions of times a second; with
 * malloc that is a cross-thread free per tuple and glibc's arena locks
 * dominated the profile. A pool belongs to one thread, which bump-allocates
 * from its current slab. Each slab counts the tuples alive in it; the thread
 * that frees the last one hands the slab back to its pool through a lock-free
 * stack, where the owner picks it up for reuse. A slab therefore stays
 * allocated while any tuple in it lives: a tuple a bolt keeps past its
 * callback is therefore copied out of the slab (sd_tuple_keep), so that
 * keeping a sparse sample costs the sample's size, not 64 KiB per tuple.
 *
 * Threads: pool_alloc and pool_close only on the owner thread;
 * tuple_slab_release (via tuple_unref) on any thread.
 */
#ifndef SD_TUPLE_POOL_H
#define SD_TUPLE_POOL_H

#include <stddef.h>

#include <stdatomic.h>

typedef struct tuple_pool tuple_pool;
typedef struct tuple_slab tuple_slab;

/* A pool, visible here only so that the common case of tuple_pool_alloc
 * (room left in the current slab) inlines into the emit path; every field is
 * tuple_pool.c's. */
struct tuple_pool {
    char *next;               /* owner: the next free byte of current */
    char *end;                /* owner: the end of current's payload */
    tuple_slab *current;      /* owner: the slab being carved, or NULL */
    int allocated;            /* owner: tuples carved from current */
    int nspare;               /* owner: slabs on spare */
    tuple_slab *spare;        /* owner: slabs ready for reuse */
    _Atomic(tuple_slab *) returned; /* pushed by any thread, taken by the owner */
    atomic_int nreturned;     /* about how many wait there: beyond the spares kept, freed instead */
    atomic_int slabs;         /* slabs alive + 1 for the owner; frees the pool at 0 */
};

tuple_pool *tuple_pool_new(void); /* NULL on allocation failure */
/* Owner: the uncommon cases of tuple_pool_alloc (a new slab, a big tuple). */
void *tuple_pool_alloc_slow(tuple_pool *p, size_t size, tuple_slab **slab);
/* Owner: memory for one tuple of size bytes (16-byte aligned), and the slab
 * it lives in (*slab, to store in the tuple); NULL when out of memory. Sizes
 * above a quarter of a slab come from malloc with *slab = NULL. */
static inline void *tuple_pool_alloc(tuple_pool *p, size_t size, tuple_slab **slab) {
    size = (size + 15) & ~(size_t)15;
    if (__builtin_expect((size_t)(p->end - p->next) >= size && size <= 16384, 1)) {
        void *mem = p->next;
        p->next += size;
        p->allocated++;
        *slab = p->current;
        return mem;
    }
    return tuple_pool_alloc_slow(p, size, slab);
}
/* Owner: no more allocations. Slabs still holding tuples are freed when their
 * last tuple is; the pool itself once no slab remains. */
void tuple_pool_close(tuple_pool *p);
/* Any thread: one tuple of this slab is gone. */
void tuple_slab_release(tuple_slab *s);
/* Any thread: n tuples of this slab are gone (one atomic operation). */
void tuple_slab_release_n(tuple_slab *s, int n);
/* Any thread: bytes held in slabs by every pool of the process (tuples
 * alive, spare slabs and the slabs being carved). */
size_t tuple_pool_slab_bytes(void);
/* Any thread: bytes of the slabs of every pool of the process that hold a
 * tuple alive, except the one each pool is carving (at most 64 KiB a
 * thread): the memory held by tuples in flight, which the worker's
 * backpressure keeps under a budget. */
size_t tuple_pool_busy_bytes(void);

#endif
