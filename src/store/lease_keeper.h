/*
 * lease_keeper: holds one store lease for its owner (a node's or a master's
 * registration). Grants a lease of ttl_secs, renews it every ttl/3, and
 * tells the owner as soon as the lease may be gone: the store said so
 * (SD_ELEASE_LOST), or no renewal succeeded for ttl - margin seconds, so the
 * owner can stop acting on it (a node stops its workers) before the store
 * expires it and others move its work. Works on any store (store.h).
 * Threads: none; runs on the store's loop.
 */
#ifndef SD_LEASE_KEEPER_H
#define SD_LEASE_KEEPER_H

#include <uv.h>

#include "store/store.h"

typedef struct lease_keeper lease_keeper;

/* Called on the loop: granted (lease > 0, err 0), or lost (lease is the old
 * id, err SD_ELEASE_LOST or the last store error). After a loss the keeper
 * grants a new lease by itself, retrying with backoff, and calls
 * on_change again when it has one. */
typedef void (*lease_keeper_cb)(void *arg, int64_t lease, int err);

/* margin_ms: how long before the TTL the owner is told (at most ttl/2).
 * NULL on allocation failure. */
lease_keeper *lease_keeper_start(uv_loop_t *loop, store *st, int ttl_secs, int margin_ms, lease_keeper_cb on_change,
                                 void *arg);
/* The lease held now, 0 while none. */
int64_t lease_keeper_lease(const lease_keeper *k);
/* Revokes the lease (best effort) and releases the keeper once its timer
 * has closed (run the loop once more). No callback runs after this. */
void lease_keeper_stop(lease_keeper *k);

#endif
