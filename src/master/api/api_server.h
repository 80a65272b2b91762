/*
 * api_server: the master's HTTP server (libmicrohttpd), with requests handed
 * to the owner's libuv loop. libmicrohttpd parses HTTP on its own thread;
 * each complete request (method, path, query, body within the size limit)
 * is passed by message (a queue and uv_async) to the loop thread, where the
 * handler runs with the master's state and answers, at once or later (after
 * an etcd write), with api_respond*. The HTTP thread only waits for that
 * answer; it never touches the master's state.
 * Limits: body size, connection count, per-connection timeout; malformed
 * HTTP and oversized bodies get a 4xx without reaching the handler.
 */
#ifndef SD_API_SERVER_H
#define SD_API_SERVER_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

typedef struct api_server api_server;
typedef struct api_request api_request;

/* Runs on the loop thread. Must answer req exactly once (now or later) with
 * api_respond / api_respond_json / api_respond_error / api_redirect. A
 * request not answered within timeout_secs gets a 503 sent for it; the
 * handler still answers it later (that answer is dropped). */
typedef void (*api_handler)(void *arg, api_request *req);

typedef struct api_options {
    const char *listen;     /* "127.0.0.1:6627"; port 0 = any (api_server_port) */
    size_t max_body_bytes;
    unsigned max_connections;
    unsigned timeout_secs;
} api_options;

/* NULL on error (*err_out: negative code; the address is in use, ...). */
api_server *api_server_start(uv_loop_t *loop, const api_options *o, api_handler handler, void *arg, int *err_out);
/* The port actually bound. */
int api_server_port(const api_server *s);
/* Stops accepting, answers requests not yet answered with 503, joins the
 * HTTP threads; releases s once its uv_async has closed (run the loop once more).
 * Requests the handler still held are released here: it must not answer them
 * afterwards (cancel what would). Not to be called from the handler. */
void api_server_stop(api_server *s);

/* Request accessors (valid until answered). */
const char *api_method(const api_request *r);                 /* "GET", "POST", ... */
const char *api_path(const api_request *r);                   /* "/api/v1/topologies/wc/kill" */
const char *api_query(const api_request *r, const char *name); /* NULL if absent */
const char *api_header(const api_request *r, const char *name); /* NULL if absent */
const void *api_body(const api_request *r, size_t *len);
const char *api_peer(const api_request *r);                   /* "127.0.0.1:51234" */

/* Answers (each releases req). */
void api_respond(api_request *r, int status, const char *content_type, const void *body, size_t len);
/* Takes the reference to body; dumps it compactly. */
void api_respond_json(api_request *r, int status, json_t *body);
/* {"error": message} with status (4xx/5xx). */
void api_respond_error(api_request *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* 307 to url + this request's path and query (a standby pointing at the leader). */
void api_redirect(api_request *r, const char *base_url);

/* Splits path into at most max segments after "/api/v1/" (in place in buf).
 * Returns the count, or -1 when path is not under /api/v1/, has more than
 * max segments or does not fit in buf (cap bytes). */
int api_split_path(const char *path, char *buf, size_t cap, char **segs, int max);

#endif
