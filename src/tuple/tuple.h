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
#include <stdlib.h>
#include <string.h>

#include "streamd/component.h"
#include "tuple/tuple_pool.h"

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
    struct tuple_slab *slab;   /* the pool slab it lives in, or NULL (malloc) */
    /* then values[nvalues], anchors[nanchors] and the data area: found from
     * the counts (tuple_values and the next two), not stored, so that a
     * tuple spans fewer cache lines */
};

/* The trailing arrays of t (see the header comment). */
static inline sd_value *tuple_values(const sd_tuple *t) { return (sd_value *)(t + 1); }
static inline tuple_anchor *tuple_anchors(const sd_tuple *t) {
    return (tuple_anchor *)(tuple_values(t) + t->nvalues);
}
static inline char *tuple_data(const sd_tuple *t) { return (char *)(tuple_anchors(t) + t->nanchors); }

#define TUPLE_F_TICK 0x1
#define TUPLE_F_DONE 0x2  /* acked or failed by the bolt holding it */
#define TUPLE_F_UNSENT 0x4 /* dropped by transport_send (a down peer): its sender fails its trees */
/* A view (emit.c's calls of chained tasks): a header and values of its
 * own, in memory of its own (slab NULL, no data area), whose string and
 * bytes values point into the emitter's values, valid while the call
 * that handed it over runs. Keeping it gives it data of its own first
 * (sd_tuple_keep copies it; sd_tuple_retain, tuple_view_own). */
#define TUPLE_F_BORROWED 0x8
/* A view given data of its own: one block, its pointer stored at
 * tuple_data (tuple_view_side), freed with the tuple. */
#define TUPLE_F_SIDE 0x10
/* a holder's own state: never encoded, cleared when decoding */
#define TUPLE_F_LOCAL (TUPLE_F_DONE | TUPLE_F_UNSENT | TUPLE_F_BORROWED | TUPLE_F_SIDE)

/* Allocates a tuple with room for nvalues values, nanchors anchors and
 * data_len bytes of value data; refs = 1. NULL on allocation failure. */
sd_tuple *tuple_alloc(uint16_t nvalues, uint16_t nanchors, uint32_t data_len);

/* Builds a tuple copying values (strings/bytes copied into its data area). */
sd_tuple *tuple_new(const sd_value *values, size_t n, const tuple_anchor *anchors, size_t nanchors);
struct tuple_pool;
/* tuple_alloc_in off its inline path: without a pool (malloc), or when the
 * pool is out of memory (logged). */
sd_tuple *tuple_alloc_in_slow(struct tuple_pool *pool, uint16_t nvalues, uint16_t nanchors, uint32_t data_len);
sd_tuple *tuple_new_in(struct tuple_pool *pool, const sd_value *values, size_t n, const tuple_anchor *anchors,
                       size_t nanchors);

/* Sets up the header of a tuple at mem (of slab, NULL for malloc) sized for
 * nvalues values (<= SD_MAX_FIELDS), nanchors anchors (<= UINT16_MAX) and
 * data_len bytes; refs = 1, every other field zero or NULL. */
static inline sd_tuple *tuple_init(void *mem, struct tuple_slab *slab, size_t nvalues, size_t nanchors,
                                   uint32_t data_len) {
    sd_tuple *t = mem;
    atomic_init(&t->refs, 1);
    t->src_task = 0;
    t->dest_task = 0;
    t->stream_id = 0;
    t->nvalues = (uint16_t)nvalues;
    t->nanchors = (uint16_t)nanchors;
    t->flags = 0;
    t->data_len = data_len;
    t->stream = NULL;
    t->ack_xor = 0;
    t->recv_ns = 0;
    t->slab = slab;
    return t;
}

/* The bytes of a tuple with these counts: header, arrays and data area. */
static inline size_t tuple_bytes(size_t nvalues, size_t nanchors, uint32_t data_len) {
    return sizeof(sd_tuple) + nvalues * sizeof(sd_value) + nanchors * sizeof(tuple_anchor) + (size_t)data_len;
}

/* tuple_alloc, carved from pool (tuple_pool.h; owner thread only); pool
 * may be NULL. Inline: once per tuple a connection decodes. */
static inline sd_tuple *tuple_alloc_in(struct tuple_pool *pool, uint16_t nvalues, uint16_t nanchors,
                                       uint32_t data_len) {
    if (pool) {
        size_t size = tuple_bytes(nvalues, nanchors, data_len);
        struct tuple_slab *slab;
        void *mem = tuple_pool_alloc(pool, size, &slab);
        if (__builtin_expect(mem != NULL, 1)) return tuple_init(mem, slab, nvalues, nanchors, data_len);
    }
    return tuple_alloc_in_slow(pool, nvalues, nanchors, data_len);
}

/* Bytes of string and bytes data in values (n <= SD_MAX_FIELDS), and in
 * *strings a bit per such value: what tuple_fill copies. */
static inline uint64_t tuple_data_len(const sd_value *values, size_t n, uint32_t *strings) {
    _Static_assert(SD_MAX_FIELDS <= 32, "a bit per field");
    uint64_t len = 0;
    uint32_t mask = 0;
    for (size_t i = 0; i < n; i++)
        if (values[i].type == SD_STRING || values[i].type == SD_BYTES) {
            len += values[i].v.s.len;
            mask |= 1u << i;
        }
    *strings = mask;
    return len;
}

/* Copies the strings and bytes of the values marked in strings (see
 * tuple_data_len) to p, one after another, and points out's values
 * there (out may be values). */
static inline void tuple_copy_data(sd_value *out, const sd_value *values, uint32_t strings, char *p) {
    for (; strings; strings &= strings - 1) {
        int i = __builtin_ctz(strings);
        uint32_t len = values[i].v.s.len;
        if (len) memcpy(p, values[i].v.s.ptr, len);
        out[i].v.s.ptr = p;
        p += len;
    }
}

/* Copies values (the strings and bytes that tuple_data_len found into t's
 * data area) and anchors into t, allocated for them. */
static inline void tuple_fill(sd_tuple *t, const sd_value *values, size_t n, uint32_t strings,
                              const tuple_anchor *anchors, size_t nanchors) {
    sd_value *out = tuple_values(t);
    for (size_t i = 0; i < n; i++) out[i] = values[i];
    tuple_copy_data(out, values, strings, tuple_data(t));
    tuple_anchor *anc = tuple_anchors(t);
    for (size_t i = 0; i < nanchors; i++) anc[i] = anchors[i];
}

/* tuple_new_in for the emit path, inline (always: the compiler would not
 * in a caller with two calls, and the call costs a tenth of an emit): the
 * caller has checked n <= SD_MAX_FIELDS and nanchors <= UINT16_MAX, and
 * data_len = tuple_data_len(values, n, &strings) <= UINT32_MAX. NULL when
 * out of memory (not logged). */
static inline __attribute__((always_inline)) sd_tuple *
tuple_build_in(struct tuple_pool *pool, const sd_value *values, size_t n, uint32_t data_len, uint32_t strings,
               const tuple_anchor *anchors, size_t nanchors) {
    size_t size = tuple_bytes(n, nanchors, data_len);
    struct tuple_slab *slab;
    void *mem = tuple_pool_alloc(pool, size, &slab);
    if (!mem) return NULL;
    sd_tuple *t = tuple_init(mem, slab, n, nanchors, data_len);
    tuple_fill(t, values, n, strings, anchors, nanchors);
    return t;
}

/* The most anchors a view has room for (an emit with more builds its tuple). */
#define TUPLE_VIEW_ANCHORS 8
/* A view's memory: room for the header, SD_MAX_FIELDS values,
 * TUPLE_VIEW_ANCHORS anchors and the side block's pointer; NULL when out
 * of memory. Freed with free() while the caller still holds it alone,
 * else by tuple_unref. */
static inline sd_tuple *tuple_view_new(void) {
    return malloc(tuple_bytes(SD_MAX_FIELDS, TUPLE_VIEW_ANCHORS, sizeof(void *)));
}
/* Makes t (from tuple_view_new) a view of values (n <= SD_MAX_FIELDS)
 * with anchors (na <= TUPLE_VIEW_ANCHORS), refs = 1; the caller sets its
 * source, destination and stream. Inline: once per call of a chained task. */
static inline void tuple_view_set(sd_tuple *t, const sd_value *values, size_t n, const tuple_anchor *anchors,
                                  size_t na) {
    atomic_store_explicit(&t->refs, 1, memory_order_relaxed);
    t->nvalues = (uint16_t)n;
    t->nanchors = (uint16_t)na;
    t->flags = TUPLE_F_BORROWED;
    t->data_len = 0;
    t->ack_xor = 0;
    t->recv_ns = 0;
    t->slab = NULL;
    sd_value *out = tuple_values(t);
    for (size_t i = 0; i < n; i++) out[i] = values[i];
    tuple_anchor *anc = tuple_anchors(t);
    for (size_t i = 0; i < na; i++) anc[i] = anchors[i];
}
/* Where a view given data of its own keeps that block's pointer. */
static inline void **tuple_view_side(const sd_tuple *t) { return (void **)tuple_data(t); }
/* Gives a view (TUPLE_F_BORROWED) its string and bytes data in a block of
 * its own and points its values there: 0, -ENOMEM, or -E2BIG above 4 GiB
 * (the view is then unchanged). */
int tuple_view_own(sd_tuple *t);

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
void tuple_unref_deferred_slow(sd_tuple *t, tuple_releaser *r); /* what tuple_unref_deferred does not count */
/* Inline: once per tuple executed. The common case, a tuple held only here
 * from the slab of the run, counts it; the rest is tuple_unref_deferred_slow. */
static inline void tuple_unref_deferred(sd_tuple *t, tuple_releaser *r) {
    if (t->slab == r->slab && t->slab && atomic_load_explicit(&t->refs, memory_order_acquire) == 1) r->n++;
    else tuple_unref_deferred_slow(t, r);
}
void tuple_releaser_flush(tuple_releaser *r);

/* Field-wise equality of values (type and content); for tests and grouping. */
int value_equal(const sd_value *a, const sd_value *b);
/* Stable 64-bit hash of a value (fields and partial-key groupings): the same
 * value hashes the same in every worker and every run. */
uint64_t value_hash(const sd_value *v, uint64_t seed);

#endif
