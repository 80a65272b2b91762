/*
 * etcd_store: store.h over etcd's v3 JSON gateway (etcd 3.4: /v3/kv/...,
 * /v3/lease/..., /v3/watch), with libcurl's multi-socket interface driven by
 * the owner's libuv loop, so no request ever blocks the loop. Several
 * endpoints with failover, a timeout on every request, optional TLS and
 * user/password authentication.
 * Threads: none of its own; everything runs on the loop passed in.
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
/* store_free() cancels every request and watch; the loop must run once more
 * so the store's handles close and its memory is released. */

#endif
