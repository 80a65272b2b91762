/*
 * store: the cluster's shared state, a key-value store modelled on etcd v3
 * Keys and values are strings (values JSON text).
 * Every change bumps one store-wide revision; each key remembers the
 * revision that created it and the one that last modified it.
 *
 * An ops table, so callers stay the same whether the store is the embedded
 * in-memory one (memstore.h, local mode) or etcd (later). A store belongs to
 * one libuv loop: call it only from that loop's thread; watch callbacks and
 * lease expiry run on that loop, never inside the call that caused them.
 *
 * Key layout below STORE_PREFIX "<cluster>/":
 *   topologies/<name>  assignments/<topology-id>
 *   workers/<topology-id>/<node>:<port>  nodes/<node-id>
 */
#ifndef SD_STORE_H
#define SD_STORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define STORE_PREFIX "/streamd/"

/* return codes besides 0 (ok) and -1 (error, logged by the store) */
#define STORE_NOT_FOUND 1 /* get / delete / keepalive on a missing key or lease */
#define STORE_CONFLICT 2  /* compare-and-put: the key's mod revision differs */

typedef struct store_kv {
    char *key;
    char *value;
    int64_t create_rev;
    int64_t mod_rev;
    int64_t lease; /* 0 = none */
} store_kv;

typedef enum { STORE_EVENT_PUT, STORE_EVENT_DELETE } store_event_type;

typedef struct store_event {
    store_event_type type;
    const char *key;
    const char *value; /* NULL for a delete */
    int64_t revision;  /* the revision of the change */
} store_event;

/* Watch callback; the event and its strings are valid during the call only. */
typedef void (*store_watch_cb)(void *arg, const store_event *ev);

typedef struct store store;
typedef struct store_watch store_watch;

typedef struct store_ops {
    int (*get)(store *s, const char *key, store_kv *out);
    int (*put)(store *s, const char *key, const char *value, int64_t lease, int64_t *rev);
    int (*del)(store *s, const char *key);
    int (*del_prefix)(store *s, const char *prefix, size_t *ndeleted);
    int (*list_prefix)(store *s, const char *prefix, store_kv **out, size_t *n);
    int (*cas)(store *s, const char *key, int64_t expect_mod_rev, const char *value, int64_t lease,
               int64_t *rev);
    int (*lease_grant)(store *s, int ttl_secs, int64_t *lease);
    int (*lease_keepalive)(store *s, int64_t lease);
    int (*lease_revoke)(store *s, int64_t lease);
    store_watch *(*watch_prefix)(store *s, const char *prefix, store_watch_cb cb, void *arg);
    void (*watch_cancel)(store *s, store_watch *w);
    void (*free)(store *s);
} store_ops;

struct store {
    const store_ops *ops;
};

/* get: 0 and *out filled (free with store_kv_clear), STORE_NOT_FOUND, or -1. */
static inline int store_get(store *s, const char *key, store_kv *out) { return s->ops->get(s, key, out); }
/* put: lease 0 = none; *rev (may be NULL) gets the new revision. */
static inline int store_put(store *s, const char *key, const char *value, int64_t lease, int64_t *rev) {
    return s->ops->put(s, key, value, lease, rev);
}
/* del: 0, STORE_NOT_FOUND or -1. */
static inline int store_del(store *s, const char *key) { return s->ops->del(s, key); }
static inline int store_del_prefix(store *s, const char *prefix, size_t *ndeleted) {
    return s->ops->del_prefix(s, prefix, ndeleted);
}
/* list: *out is an array of *n entries in key order (store_kvs_free). */
static inline int store_list_prefix(store *s, const char *prefix, store_kv **out, size_t *n) {
    return s->ops->list_prefix(s, prefix, out, n);
}
/* Compare-and-put (etcd txn on mod_revision): writes only when the key's
 * mod revision equals expect_mod_rev (0 = the key must not exist); else
 * STORE_CONFLICT. */
static inline int store_cas(store *s, const char *key, int64_t expect_mod_rev, const char *value,
                            int64_t lease, int64_t *rev) {
    return s->ops->cas(s, key, expect_mod_rev, value, lease, rev);
}
/* Leases: keys put with a lease are deleted when it expires or is revoked. */
static inline int store_lease_grant(store *s, int ttl_secs, int64_t *lease) {
    return s->ops->lease_grant(s, ttl_secs, lease);
}
static inline int store_lease_keepalive(store *s, int64_t lease) { return s->ops->lease_keepalive(s, lease); }
static inline int store_lease_revoke(store *s, int64_t lease) { return s->ops->lease_revoke(s, lease); }
/* Watch every key starting with prefix, from the next change on; events
 * arrive in revision order. NULL on error. */
static inline store_watch *store_watch_prefix(store *s, const char *prefix, store_watch_cb cb, void *arg) {
    return s->ops->watch_prefix(s, prefix, cb, arg);
}
/* No callback runs for w after this returns. */
static inline void store_watch_cancel(store *s, store_watch *w) { s->ops->watch_cancel(s, w); }
/* Releases the store; see the implementation for loop requirements. */
static inline void store_free(store *s) {
    if (s) s->ops->free(s);
}

static inline void store_kv_clear(store_kv *kv) {
    free(kv->key);
    free(kv->value);
    kv->key = kv->value = NULL;
}
static inline void store_kvs_free(store_kv *kvs, size_t n) {
    for (size_t i = 0; i < n; i++) store_kv_clear(&kvs[i]);
    free(kvs);
}

/* Formats STORE_PREFIX "<cluster>/" + fmt into buf; -1 if it does not fit. */
__attribute__((format(printf, 4, 5))) static inline int store_key(char *buf, size_t cap, const char *cluster,
                                                                  const char *fmt, ...) {
    int n = snprintf(buf, cap, STORE_PREFIX "%s/", cluster);
    if (n < 0 || (size_t)n >= cap) return -1;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, cap - (size_t)n, fmt, ap);
    va_end(ap);
    return (m < 0 || (size_t)m >= cap - (size_t)n) ? -1 : 0;
}

#endif
