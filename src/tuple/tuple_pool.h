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

typedef struct tuple_pool tuple_pool;
typedef struct tuple_slab tuple_slab;

tuple_pool *tuple_pool_new(void); /* NULL on allocation failure */
/* Owner: memory for one tuple of size bytes (16-byte aligned), and the slab
 * it lives in (*slab, to store in the tuple); NULL when out of memory. Sizes
 * above a slab's payload come from malloc with *slab = NULL. */
void *tuple_pool_alloc(tuple_pool *p, size_t size, tuple_slab **slab);
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
