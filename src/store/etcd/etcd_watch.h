/*
 * etcd_watch: store watches as etcd v3 watch streams (POST /v3/watch, one
 * JSON answer per line). A watch remembers the next revision it owes its
 * owner; when the stream ends or breaks, or its creation is not confirmed
 * within the request timeout, it reconnects (any endpoint, with backoff)
 * from that revision, and drops events it already delivered, so none is
 * lost or repeated. When that revision was compacted it delivers one
 * STORE_EVENT_RESYNC and stops. Called by etcd_store.
 * Threads: none; runs on the store's loop.
 */
#ifndef SD_ETCD_WATCH_H
#define SD_ETCD_WATCH_H

#include <uv.h>

#include "store/etcd/etcd_http.h"
#include "store/store.h"

/* Starts a watch and links it into *list. 0 or a negative code. */
int ew_start(uv_loop_t *loop, eh_client *c, store_watch **list, const char *prefix, int64_t start_rev,
             store_watch_cb cb, void *arg, store_watch **out);
/* No callback runs after this; the memory goes when its timer has closed. */
void ew_cancel(store_watch *w);
/* ew_cancel on every watch in *list. */
void ew_cancel_all(store_watch **list);

#endif
