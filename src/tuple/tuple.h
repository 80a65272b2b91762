/*
 * tuple: the runtime's representation of sd_tuple (public API in
 * streamd/component.h) and its allocation. Used by every module that moves
 * tuples: collector/executor (create, route), codec (serialize), transport.
 *
 * A tuple is one allocation: header, values[], anchors[], then the bytes of
 * its string/bytes values (values[i].v.s.ptr points inside it). Reference
 * counted so that one tuple can sit in several local queues (all grouping)
 * and be retained by a bolt that acks later. Immutable once published.
 */
#ifndef SD_TUPLE_H
#define SD_TUPLE_H

#include <stdatomic.h>
#include <stdint.h>
#include "streamd/component.h"

struct topo_stream;

/* one (root, edge) pair of Storm's XOR acking: the tuple tree `root` and the
 * id of this tuple's edge in it */
typedef struct tuple_anchor {
    uint64_t root;
    uint64_t edge;
} tuple_anchor;

struct sd_tuple {
    atomic_int refs;
    int32_t src_task;          /* 0 for system tuples (ticks) */
    int32_t dest_task;         /* set by the router; travels on the wire */
    uint16_t stream_id;        /* topology-wide stream index (topo_stream_by_id) */
    uint16_t nvalues;
    uint16_t nanchors;
    uint16_t flags;            /* TUPLE_F_* */
    uint32_t data_len;         /* bytes in the trailing data area */
    const struct topo_stream *stream; /* resolved locally, never serialized */
    /* bolt side: XOR of the edge ids of tuples emitted anchored to this one,
     * sent to the acker when it is acked. Touched only by the owning executor. */
    uint64_t ack_xor;
    int64_t recv_ns;           /* when it entered the executor, for latency */
    sd_value *values;          /* points into this allocation */
    tuple_anchor *anchors;     /* points into this allocation */
    char *data;                /* points into this allocation */
    struct tuple_slab *slab;   /* the pool slab it lives in, or NULL (malloc) */
};

#define TUPLE_F_TICK 0x1
#define TUPLE_F_DONE 0x2  /* acked or failed by the bolt holding it */
#define TUPLE_F_UNSENT 0x4 /* dropped by transport_send (a down peer): its sender fails its trees */

/* Allocates a tuple with room for nvalues values, nanchors anchors and
 * data_len bytes of value data; refs = 1. NULL on allocation failure. */
sd_tuple *tuple_alloc(uint16_t nvalues, uint16_t nanchors, uint32_t data_len);

/* Builds a tuple copying values (strings/bytes copied into its data area). */
sd_tuple *tuple_new(const sd_value *values, size_t n, const tuple_anchor *anchors, size_t nanchors);
/* The same, carved from pool (tuple_pool.h; owner thread only); pool may be NULL. */
struct tuple_pool;
sd_tuple *tuple_alloc_in(struct tuple_pool *pool, uint16_t nvalues, uint16_t nanchors, uint32_t data_len);
sd_tuple *tuple_new_in(struct tuple_pool *pool, const sd_value *values, size_t n, const tuple_anchor *anchors,
                       size_t nanchors);

/* Deep copy with refs = 1 (used when a value must be owned separately). */
sd_tuple *tuple_clone(const sd_tuple *t);

static inline void tuple_ref(sd_tuple *t) { atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed); }
void tuple_unref(sd_tuple *t);  /* frees at zero */

/* A consumer dropping many tuples in a row (a batch it executed): tuples
 * of one slab are counted here and released together, one atomic operation
 * for a run instead of one per tuple. Flush before blocking or exiting. */
typedef struct tuple_releaser {
    struct tuple_slab *slab;
    int n;
} tuple_releaser;
void tuple_unref_deferred(sd_tuple *t, tuple_releaser *r);
void tuple_releaser_flush(tuple_releaser *r);

/* Field-wise equality of values (type and content); for tests and grouping. */
int value_equal(const sd_value *a, const sd_value *b);
/* Stable 64-bit hash of a value (fields and partial-key groupings): the same
 * value hashes the same in every worker and every run. */
uint64_t value_hash(const sd_value *v, uint64_t seed);

#endif
