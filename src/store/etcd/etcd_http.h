/*
 * etcd_http: HTTP POSTs to etcd's JSON gateway over libcurl's multi-socket
 * interface, driven by a libuv loop (a uv_poll_t per socket, one uv_timer_t
 * for curl's timeouts), so nothing ever blocks the loop.
 *
 * Endpoints and failover: a request starts on the endpoint that last
 * worked; when it cannot connect, breaks before an answer, times out
 * (request_timeout_ms; streams only while connecting) or the member says it
 * is unavailable, it is sent again to the next endpoint, at most once per
 * endpoint, then fails with -ETIMEDOUT (the last try timed out) or
 * SD_EUNAVAILABLE. Authentication: with a user set, a token is fetched from
 * /v3/auth/authenticate before the first request, sent as the Authorization
 * header, and fetched again when etcd calls it invalid (once per request).
 *
 * Callbacks never run inside curl's callbacks nor inside the call that
 * submitted the request: answers are gathered while curl runs and handed
 * out after it returns, from the loop. Called by etcd_store and etcd_watch.
 * Threads: none; everything runs on the loop's thread.
 */
#ifndef SD_ETCD_HTTP_H
#define SD_ETCD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "store/etcd/etcd_store.h"

/* The largest answer kept (a listed prefix of package chunks can be big);
 * a larger one fails with -EMSGSIZE. */
#define EH_MAX_BODY ((size_t)256 * 1024 * 1024)
/* The longest line of a stream (one watch answer). */
#define EH_MAX_LINE ((size_t)64 * 1024 * 1024)

typedef struct eh_client eh_client;
typedef struct eh_req eh_req;

/* A request's end: err 0 with the HTTP status and body (NULL, 0 for a
 * stream), or a negative code. Runs at most once, never after eh_abort. */
typedef void (*eh_done_fn)(void *ud, int err, long status, const char *body, size_t len);
/* A stream's data: one call per newline-terminated line of a 200 answer. */
typedef void (*eh_line_fn)(void *ud, const char *line, size_t len);

typedef struct eh_spec {
    const char *path; /* "/v3/kv/range" */
    char *body;       /* malloc'ed JSON; eh_submit takes it, even when it fails */
    size_t len;
    eh_done_fn done;
    eh_line_fn line;    /* non-NULL: a stream (no overall timeout) */
    void *ud;           /* passed to done and line */
    void (*free_ud)(void *ud); /* when the request is released (may be NULL) */
    void *tag;          /* eh_cancel_tag matches it (streams are never matched) */
} eh_spec;

/* Strings in o are copied. NULL on a bad option or no memory. */
eh_client *eh_client_new(uv_loop_t *loop, const etcd_options *o);
/* Releases every request (no callback runs again) and closes the handles;
 * on_closed(arg) runs from the loop once they are closed and c is freed. */
void eh_client_free(eh_client *c, void (*on_closed)(void *arg), void *arg);
int eh_timeout_ms(const eh_client *c);

/* Submits a POST; *out (may be NULL) is the handle for eh_abort. 0 or
 * -ENOMEM / -EINVAL; on failure free_ud is not called. */
int eh_submit(eh_client *c, const eh_spec *sp, eh_req **out);
/* Neither done nor line runs for rq again; its ud is released. */
void eh_abort(eh_req *rq);
/* Drops the done callback of every request (not stream) submitted with
 * tag; the requests themselves go on. */
void eh_cancel_tag(eh_client *c, void *tag);

/* The endpoint rq was last sent to; after it proved useless (a stream that
 * never answered), new requests start on the next one. */
int eh_req_endpoint(const eh_req *rq);
void eh_endpoint_failed(eh_client *c, int endpoint);
/* Drops the auth token (a stream was refused with it): the next request
 * authenticates again. */
void eh_token_invalid(eh_client *c);

#endif
