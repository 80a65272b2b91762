/*
 * etcd_store: store.h over etcd's v3 JSON gateway (etcd 3.4: /v3/kv/...,
 * /v3/lease/..., /v3/watch), with libcurl's multi-socket interface driven by
 * the owner's libuv loop, so no request ever blocks the loop. Several
 * endpoints with failover, a timeout on every request, optional TLS and
 * user/password authentication.
 *
 * Requests: each is sent to the endpoint that last worked; one that cannot
 * connect or gets no answer within request_timeout_ms is sent to the next
 * endpoint, at most once per endpoint, then fails with -ECONNREFUSED (every
 * endpoint refused the connection: etcd is down, not cut off from us),
 * -ETIMEDOUT or SD_EUNAVAILABLE. Other errors: SD_EPROTO_STORE (a malformed answer),
 * SD_ELEASE_LOST (keepalive, revoke or put on a lease etcd no longer has),
 * -EMSGSIZE (a value over STORE_MAX_VALUE, or a request etcd finds too
 * large), -EACCES (authentication refused), -EINVAL, -ENOMEM.
 * store_cancel drops the callbacks of the requests made with that arg; the
 * requests themselves still run (a revoke or last put is not lost).
 *
 * Watches: one HTTP stream each, with no overall timeout (TCP keepalive
 * notices a vanished peer); after a disconnect the watch reconnects by
 * itself with backoff and resumes after the last revision delivered.
 *
 * Loop: everything runs on the loop passed in, from its thread; callbacks
 * run from the loop only. A callback must not run the loop itself (no
 * store_sync_wait inside a callback). store_free may be called anywhere,
 * even from a callback; the loop must then run once more (a turn of
 * UV_RUN_NOWAIT is enough) to close the store's handles and free it.
 * Threads: none of its own.
 */
#ifndef SD_ETCD_STORE_H
#define SD_ETCD_STORE_H

#include <uv.h>

#include "base/conf.h"
#include "store/store.h"

typedef struct etcd_options {
    const char *endpoints;  /* "http://127.0.0.1:2379,http://10.0.0.2:2379" */
    int request_timeout_ms; /* each unary request */
    const char *tls_ca;     /* PEM files; NULL = none */
    const char *tls_cert;
    const char *tls_key;
    const char *user; /* NULL = no authentication */
    const char *password;
} etcd_options;

/* Fills o from conf keys store.etcd.endpoints, store.etcd.request.timeout.ms,
 * store.etcd.tls.ca|cert|key, store.etcd.user|password (pointers into c). */
void etcd_options_from_conf(etcd_options *o, const conf *c);

/* Strings in o are copied. NULL on a bad option or allocation failure. */
store *etcd_store_new(uv_loop_t *loop, const etcd_options *o);

#endif
