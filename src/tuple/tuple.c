/*
 * tuple: allocation, reference counting, equality and hashing of tuples and
 * values, plus the public sd_tuple_* accessors that need only the tuple.
 *
 * Threads: none of its own. A tuple is immutable once published, so the
 * accessors may run on any thread; only the reference count is shared
 * (atomic). The allocation layout is described in tuple.h.
 */
#include "tuple/tuple.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "topology/topology.h"
#include "tuple/tuple_pool.h"

/* Offsets of the trailing arrays; the header and both arrays are multiples
 * of 8 bytes, so values and anchors stay naturally aligned. */
_Static_assert(sizeof(sd_tuple) % 8 == 0, "tuple header must keep 8-byte alignment");
_Static_assert(sizeof(sd_value) % 8 == 0, "value array must keep 8-byte alignment");
_Static_assert(sizeof(tuple_anchor) % 8 == 0, "anchor array must keep 8-byte alignment");

sd_tuple *tuple_alloc_in_slow(tuple_pool *pool, uint16_t nvalues, uint16_t nanchors, uint32_t data_len) {
    size_t total = tuple_bytes(nvalues, nanchors, data_len);
    tuple_slab *slab = NULL;
    void *mem = pool ? tuple_pool_alloc(pool, total, &slab) : malloc(total);
    if (!mem) {
        log_error("tuple: out of memory allocating %zu bytes", total);
        return NULL;
    }
    /* the arrays are always filled by the caller */
    return tuple_init(mem, slab, nvalues, nanchors, data_len);
}

sd_tuple *tuple_alloc(uint16_t nvalues, uint16_t nanchors, uint32_t data_len) {
    return tuple_alloc_in_slow(NULL, nvalues, nanchors, data_len);
}

sd_tuple *tuple_new(const sd_value *values, size_t n, const tuple_anchor *anchors, size_t nanchors) {
    return tuple_new_in(NULL, values, n, anchors, nanchors);
}

sd_tuple *tuple_new_in(tuple_pool *pool, const sd_value *values, size_t n, const tuple_anchor *anchors,
                       size_t nanchors) {
    if (n > SD_MAX_FIELDS || nanchors > UINT16_MAX) {
        log_error("tuple: %zu values / %zu anchors is too many", n, nanchors);
        return NULL;
    }
    uint32_t strings;
    uint64_t data_len = tuple_data_len(values, n, &strings);
    if (data_len > UINT32_MAX) {
        log_error("tuple: %llu bytes of value data is too much", (unsigned long long)data_len);
        return NULL;
    }
    sd_tuple *t = tuple_alloc_in(pool, (uint16_t)n, (uint16_t)nanchors, (uint32_t)data_len);
    if (t) tuple_fill(t, values, n, strings, anchors, nanchors);
    return t;
}

sd_tuple *tuple_clone(const sd_tuple *t) {
    sd_tuple *c = tuple_new(tuple_values(t), t->nvalues, tuple_anchors(t), t->nanchors);
    if (!c) return NULL;
    c->src_task = t->src_task;
    c->dest_task = t->dest_task;
    c->stream_id = t->stream_id;
    c->flags = t->flags & ~(TUPLE_F_BORROWED | TUPLE_F_SIDE); /* c's data is in c */
    c->stream = t->stream;
    c->ack_xor = t->ack_xor;
    c->recv_ns = t->recv_ns;
    return c;
}

int tuple_view_own(sd_tuple *t) {
    uint32_t strings;
    uint64_t len = tuple_data_len(tuple_values(t), t->nvalues, &strings);
    if (len > UINT32_MAX) return -E2BIG;
    char *block = malloc(len ? (size_t)len : 1);
    if (!block) return -ENOMEM;
    tuple_copy_data(tuple_values(t), tuple_values(t), strings, block);
    *tuple_view_side(t) = block;
    t->flags = (uint16_t)((t->flags & ~TUPLE_F_BORROWED) | TUPLE_F_SIDE);
    return 0;
}

/* a tuple of its own allocation (slab NULL), at its last reference */
static void tuple_free_unpooled(sd_tuple *t) {
    if (t->flags & TUPLE_F_SIDE) free(*tuple_view_side(t));
    free(t);
}

void tuple_unref(sd_tuple *t) {
    if (!t) return;
    /* acq_rel: the freeing thread must see every other holder's last use */
    /* the sole holder needs no locked decrement: nobody else can add a
     * reference to a tuple they do not hold */
    if (atomic_load_explicit(&t->refs, memory_order_acquire) != 1 &&
        atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (t->slab) tuple_slab_release(t->slab);
    else tuple_free_unpooled(t);
}

void tuple_releaser_flush(tuple_releaser *r) {
    if (r->n) tuple_slab_release_n(r->slab, r->n);
    r->slab = NULL;
    r->n = 0;
}

void tuple_unref_deferred_slow(sd_tuple *t, tuple_releaser *r) {
    if (atomic_load_explicit(&t->refs, memory_order_acquire) != 1 &&
        atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (!t->slab) {
        tuple_free_unpooled(t);
        return;
    }
    tuple_releaser_flush(r);
    r->slab = t->slab;
    r->n = 1;
}

int value_equal(const sd_value *a, const sd_value *b) {
    if (a->type != b->type) return 0;
    switch (a->type) {
    case SD_NULL: return 1;
    case SD_BOOL: return a->v.b == b->v.b;
    case SD_INT: return a->v.i == b->v.i;
    /* bitwise, so that equality agrees with value_hash (NaN == NaN, 0.0 != -0.0) */
    case SD_DOUBLE: return memcmp(&a->v.d, &b->v.d, sizeof a->v.d) == 0;
    case SD_STRING:
    case SD_BYTES:
        return a->v.s.len == b->v.s.len && (a->v.s.len == 0 || memcmp(a->v.s.ptr, b->v.s.ptr, a->v.s.len) == 0);
    }
    return 0;
}

/* ---- hashing -------------------------------------------------------------
 * The 64-bit round/merge/avalanche structure of xxHash64 (public domain
 * algorithm description), written from that description. Bytes are read
 * explicitly little-endian so every process and machine agrees. */

#define HP1 0x9E3779B185EBCA87ULL
#define HP2 0xC2B2AE3D27D4EB4FULL
#define HP3 0x165667B19E3779F9ULL
#define HP4 0x85EBCA77C2B2AE63ULL
#define HP5 0x27D4EB2F165667C5ULL

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t load64le(const uint8_t *p) {
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}
static inline uint32_t load32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t hround(uint64_t acc, uint64_t in) {
    acc += in * HP2;
    acc = rotl64(acc, 31);
    return acc * HP1;
}
static inline uint64_t hmerge(uint64_t acc, uint64_t v) {
    acc ^= hround(0, v);
    return acc * HP1 + HP4;
}

static uint64_t hash_bytes(const uint8_t *p, size_t len, uint64_t seed) {
    const uint8_t *end = p + len;
    uint64_t h;
    if (len >= 32) {
        uint64_t v1 = seed + HP1 + HP2, v2 = seed + HP2, v3 = seed, v4 = seed - HP1;
        const uint8_t *limit = end - 32;
        do {
            v1 = hround(v1, load64le(p));
            v2 = hround(v2, load64le(p + 8));
            v3 = hround(v3, load64le(p + 16));
            v4 = hround(v4, load64le(p + 24));
            p += 32;
        } while (p <= limit);
        h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
        h = hmerge(h, v1);
        h = hmerge(h, v2);
        h = hmerge(h, v3);
        h = hmerge(h, v4);
    } else {
        h = seed + HP5;
    }
    h += (uint64_t)len;
    for (; p + 8 <= end; p += 8) {
        h ^= hround(0, load64le(p));
        h = rotl64(h, 27) * HP1 + HP4;
    }
    if (p + 4 <= end) {
        h ^= (uint64_t)load32le(p) * HP1;
        h = rotl64(h, 23) * HP2 + HP3;
        p += 4;
    }
    for (; p < end; p++) {
        h ^= (uint64_t)*p * HP5;
        h = rotl64(h, 11) * HP1;
    }
    h ^= h >> 33;
    h *= HP2;
    h ^= h >> 29;
    h *= HP3;
    h ^= h >> 32;
    return h;
}

uint64_t value_hash(const sd_value *v, uint64_t seed) {
    /* the type byte leads, so that e.g. the string "" and null differ */
    uint8_t buf[9];
    buf[0] = (uint8_t)v->type;
    switch (v->type) {
    case SD_NULL: return hash_bytes(buf, 1, seed);
    case SD_BOOL:
        buf[1] = v->v.b ? 1 : 0;
        return hash_bytes(buf, 2, seed);
    case SD_INT:
    case SD_DOUBLE: {
        uint64_t bits;
        if (v->type == SD_INT) bits = (uint64_t)v->v.i;
        else memcpy(&bits, &v->v.d, sizeof bits);
        for (int i = 0; i < 8; i++) buf[1 + i] = (uint8_t)(bits >> (8 * i));
        return hash_bytes(buf, 9, seed);
    }
    case SD_STRING:
    case SD_BYTES:
        /* chain: hash of the type byte seeds the hash of the content */
        return hash_bytes((const uint8_t *)v->v.s.ptr, v->v.s.len, hash_bytes(buf, 1, seed));
    }
    return hash_bytes(buf, 1, seed);
}

/* ---- public accessors (streamd/component.h) ------------------------------ */

size_t sd_tuple_size(const sd_tuple *t) { return t->nvalues; }

const sd_value *sd_tuple_get(const sd_tuple *t, size_t i) {
    return i < t->nvalues ? &tuple_values(t)[i] : NULL;
}

const sd_value *sd_tuple_values(const sd_tuple *t) { return tuple_values(t); }

const sd_value *sd_tuple_field(const sd_tuple *t, const char *name) {
    if (!t->stream || !name) return NULL;
    /* a linear scan: at most SD_MAX_FIELDS short names */
    for (int i = 0; i < t->stream->nfields; i++)
        if (strcmp(t->stream->fields[i], name) == 0) return sd_tuple_get(t, (size_t)i);
    return NULL;
}

const char *sd_tuple_field_name(const sd_tuple *t, size_t i) {
    if (!t->stream || i >= (size_t)t->stream->nfields) return NULL;
    return t->stream->fields[i];
}

const char *sd_tuple_stream(const sd_tuple *t) {
    return t->stream ? t->stream->name : SD_DEFAULT_STREAM;
}

int sd_tuple_source_task(const sd_tuple *t) { return t->src_task; }

bool sd_tuple_is_tick(const sd_tuple *t) { return (t->flags & TUPLE_F_TICK) != 0; }

sd_tuple *sd_tuple_keep(sd_tuple *t) {
    if (!t->slab && !(t->flags & TUPLE_F_BORROWED)) { /* already an allocation of its own, data included */
        tuple_ref(t);
        return t;
    }
    /* out of the slab, which then goes back to its pool with its other tuples */
    return tuple_clone(t);
}

void sd_tuple_retain(sd_tuple *t) {
    /* a chained task's view: its data is the emitter's, gone after the call */
    if (t->flags & TUPLE_F_BORROWED) {
        int rc = tuple_view_own(t);
        if (rc != 0) {
            /* the caller keeps t and has no error to look at */
            log_error("cannot keep a tuple: %s", sd_strerror(rc));
            abort();
        }
    }
    tuple_ref(t);
}

void sd_tuple_release(sd_tuple *t) { tuple_unref(t); }
