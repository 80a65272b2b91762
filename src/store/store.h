/*
 * store: the cluster's shared state, a key-value store modelled on etcd v3.
 * Keys and values are strings (values are JSON text, so that etcdctl shows
 * readable state). Every change bumps one store-wide revision; each key
 * remembers the revision that created it and the one that last modified it.
 *
 * An ops table, so callers stay the same whether the store is the embedded
 * in-memory one (memstore.h, local mode), etcd (etcd/etcd_store.h) or the
 * fault-injecting wrapper used by tests (faulty_store.h).
 *
 * Asynchronous: a store belongs to one libuv loop and is called only from
 * that loop's thread. Every request returns 0 (submitted: its callback runs
 * exactly once, later, on the loop, never inside the call) or a negative
 * error code (base/err.h; the callback never runs). A slow or absent store
 * never blocks the loop. Strings passed in are copied before the call
 * returns. Results, and the strings in them, are valid during the callback
 * only. Any callback may be NULL: the request is made and no one is told.
 *
 * Key layout below STORE_PREFIX "<cluster>/" (docs/etcd-keys.md):
 *   master/leader  masters/<id>  nodes/<node-id>  topologies/<name>
 *   assignments/<topology-id>  packages/<sha256>/<chunk>
 *   workers/<topology-id>/<node>:<port>
 */
#ifndef SD_STORE_H
#define SD_STORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/err.h"

#define STORE_PREFIX "/streamd/"
/* etcd refuses requests of 1.5 MiB or more: values are kept well below. */
#define STORE_MAX_VALUE (1024 * 1024)

typedef struct store_kv {
    const char *key;
    const char *value;
    size_t value_len; /* values may hold NUL bytes (package chunks) */
    int64_t create_rev;
    int64_t mod_rev;
    int64_t lease; /* 0 = none */
} store_kv;

/* What a request's callback receives. */
typedef struct store_result {
    int err;                /* 0 or a negative code (sd_strerror) */
    int64_t revision;       /* the store revision the request read or made */
    const store_kv *kvs;    /* get: 0 or 1 entries (0 = no such key); list: in key order */
    size_t nkvs;
    bool succeeded;         /* txn: true when every compare held */
    int64_t lease;          /* lease grant / keepalive: the lease id */
    int64_t ttl;            /* lease grant / keepalive: seconds left */
    int64_t deleted;        /* del: how many keys went */
} store_result;

typedef void (*store_cb)(void *arg, const store_result *r);

/* ---- transactions (etcd txn) ------------------------------------------- */
typedef enum { STORE_CMP_VALUE, STORE_CMP_CREATE_REV, STORE_CMP_MOD_REV } store_cmp_target;
typedef enum { STORE_CMP_EQUAL, STORE_CMP_NOT_EQUAL, STORE_CMP_LESS, STORE_CMP_GREATER } store_cmp_op;

typedef struct store_cmp {
    const char *key;
    store_cmp_target target;
    store_cmp_op op;
    const char *value; /* STORE_CMP_VALUE */
    int64_t rev;       /* STORE_CMP_CREATE_REV / MOD_REV (0 = the key does not exist) */
} store_cmp;

typedef enum { STORE_OP_PUT, STORE_OP_DEL, STORE_OP_DEL_PREFIX } store_op_type;

typedef struct store_op {
    store_op_type type;
    const char *key; /* the prefix for STORE_OP_DEL_PREFIX */
    const char *value;
    size_t value_len; /* 0 = strlen(value) */
    int64_t lease;    /* 0 = none */
} store_op;

typedef struct store_txn {
    const store_cmp *cmps;
    size_t ncmps;
    const store_op *then; /* run when every compare holds */
    size_t nthen;
    const store_op *otherwise;
    size_t notherwise;
} store_txn;

/* ---- watches ------------------------------------------------------------- */
typedef enum {
    STORE_EVENT_PUT,
    STORE_EVENT_DELETE,
    /* The watch cannot go on without a gap (its history was compacted, or
     * it could not be resumed): list the prefix again and start a new watch
     * from the listed revision + 1. No further event arrives on this watch;
     * the caller still cancels it to release it. */
    STORE_EVENT_RESYNC,
} store_event_type;

typedef struct store_event {
    store_event_type type;
    const store_kv *kv; /* PUT: the new kv; DELETE: key and mod_rev only; RESYNC: NULL */
    int64_t revision;   /* the revision of the change */
} store_event;

/* Watch callback; the event and its strings are valid during the call only. */
typedef void (*store_watch_cb)(void *arg, const store_event *ev);

typedef struct store store;
typedef struct store_watch store_watch;

typedef struct store_ops {
    int (*get)(store *s, const char *key, store_cb cb, void *arg);
    int (*list)(store *s, const char *prefix, store_cb cb, void *arg);
    int (*put)(store *s, const char *key, const char *value, size_t value_len, int64_t lease, store_cb cb,
               void *arg);
    int (*del)(store *s, const char *key, bool prefix, store_cb cb, void *arg);
    int (*txn)(store *s, const store_txn *t, store_cb cb, void *arg);
    int (*lease_grant)(store *s, int ttl_secs, store_cb cb, void *arg);
    int (*lease_keepalive)(store *s, int64_t lease, store_cb cb, void *arg);
    int (*lease_revoke)(store *s, int64_t lease, store_cb cb, void *arg);
    int (*watch)(store *s, const char *prefix, int64_t start_rev, store_watch_cb cb, void *arg,
                 store_watch **out);
    void (*watch_cancel)(store *s, store_watch *w);
    void (*cancel)(store *s, void *arg);
    void (*free)(store *s);
} store_ops;

struct store {
    const store_ops *ops;
};

/* get: r->nkvs is 0 when the key does not exist (not an error). */
static inline int store_get(store *s, const char *key, store_cb cb, void *arg) {
    return s->ops->get(s, key, cb, arg);
}
/* list every key starting with prefix; r->revision is the revision read at,
 * from which a watch continues without a gap. */
static inline int store_list(store *s, const char *prefix, store_cb cb, void *arg) {
    return s->ops->list(s, prefix, cb, arg);
}
/* put a NUL-terminated value; lease 0 = none; cb may be NULL. */
static inline int store_put(store *s, const char *key, const char *value, int64_t lease, store_cb cb, void *arg) {
    return s->ops->put(s, key, value, 0, lease, cb, arg);
}
/* put value_len bytes (may hold NUL bytes). */
static inline int store_put_bytes(store *s, const char *key, const void *value, size_t value_len, int64_t lease,
                                  store_cb cb, void *arg) {
    return s->ops->put(s, key, (const char *)value, value_len, lease, cb, arg);
}
/* delete key, or every key starting with it when prefix; r->deleted. cb may be NULL. */
static inline int store_del(store *s, const char *key, bool prefix, store_cb cb, void *arg) {
    return s->ops->del(s, key, prefix, cb, arg);
}
/* Runs a transaction: compare-and-swap over several keys; r->succeeded says
 * which branch ran. */
static inline int store_commit(store *s, const store_txn *t, store_cb cb, void *arg) {
    return s->ops->txn(s, t, cb, arg);
}
/* Leases: keys put with a lease are deleted when it expires or is revoked.
 * keepalive on a lease that is gone fails with SD_ELEASE_LOST. */
static inline int store_lease_grant(store *s, int ttl_secs, store_cb cb, void *arg) {
    return s->ops->lease_grant(s, ttl_secs, cb, arg);
}
static inline int store_lease_keepalive(store *s, int64_t lease, store_cb cb, void *arg) {
    return s->ops->lease_keepalive(s, lease, cb, arg);
}
static inline int store_lease_revoke(store *s, int64_t lease, store_cb cb, void *arg) {
    return s->ops->lease_revoke(s, lease, cb, arg);
}
/* Watch every key starting with prefix, from start_rev on (0 = from the next
 * change); events arrive in revision order. After a disconnect the store
 * resumes from the last revision delivered; when it cannot, the watch ends
 * with STORE_EVENT_RESYNC. *out is the handle (store_watch_cancel). */
static inline int store_watch_prefix(store *s, const char *prefix, int64_t start_rev, store_watch_cb cb, void *arg,
                                     store_watch **out) {
    return s->ops->watch(s, prefix, start_rev, cb, arg, out);
}
/* No callback runs for w after this returns; releases w. */
static inline void store_watch_cancel(store *s, store_watch *w) {
    if (w) s->ops->watch_cancel(s, w);
}
/* No request callback whose arg is arg runs after this returns (the requests
 * themselves may still complete). Call before freeing what arg points to. */
static inline void store_cancel(store *s, void *arg) { s->ops->cancel(s, arg); }
/* Releases the store; pending callbacks never run. See the implementation
 * for whether the loop must run once more to release its handles. */
static inline void store_free(store *s) {
    if (s) s->ops->free(s);
}

/* Formats STORE_PREFIX "<cluster>/" + fmt into buf; -ENAMETOOLONG if it does not fit. */
__attribute__((format(printf, 4, 5))) static inline int store_key(char *buf, size_t cap, const char *cluster,
                                                                  const char *fmt, ...) {
    int n = snprintf(buf, cap, STORE_PREFIX "%s/", cluster);
    if (n < 0 || (size_t)n >= cap) return -36; /* -ENAMETOOLONG */
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, cap - (size_t)n, fmt, ap);
    va_end(ap);
    return (m < 0 || (size_t)m >= cap - (size_t)n) ? -36 : 0;
}

#endif
