/*
 * api_server: the master's HTTP server (see api_server.h).
 *
 * Threads:
 * - libmicrohttpd's polling thread parses HTTP and runs on_access and
 *   on_completed. It owns a request while the request is being received
 *   and again once it has been answered: it copies the method, path,
 *   headers and query arguments into the request, gathers the body (up to
 *   max_body_bytes), suspends the connection, and queues the request for
 *   the loop. After the loop resumes the connection it sends the answer.
 * - The owner's loop thread runs the handler (from the uv_async callback),
 *   every api_respond*, the deadline timer and api_server_stop. It owns a
 *   request from the moment it takes it off the queue until it answers.
 * Shared between them, under mu: the queue, the stopping flag and the count
 * of answered requests still being sent. A request's reference count says
 * when both sides are done with it (a request whose handler missed its
 * deadline is answered 503 at once but kept until the handler answers).
 */
#include "master/api/api_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define STOP_DRAIN_MS 2000 /* longest stop waits for answers to reach their clients */

typedef struct api_kv {
    char *key, *value;
} api_kv;

typedef enum { PH_RECEIVING, PH_WAITING, PH_SENT } req_phase;

struct api_request {
    api_server *srv;
    struct MHD_Connection *conn;
    atomic_int refs; /* the HTTP thread's and, once queued, the loop's */
    req_phase phase; /* HTTP thread only */
    /* Filled by the HTTP thread before the hand-over, read-only afterwards. */
    char *method, *path;
    char peer[INET6_ADDRSTRLEN + 8];
    api_kv *headers, *args;
    size_t nheaders, nargs, kv_cap_h, kv_cap_a;
    char *body;
    size_t len, cap;
    bool too_big;
    bool copy_failed;
    /* The answer: written by the loop thread before it resumes the connection. */
    int status;
    char *ctype, *location;
    void *out;
    size_t out_len;
    bool resumed; /* counted in srv->sending */
    /* Loop thread only. */
    bool expired;     /* answered 503 at the deadline; the handler's answer is dropped */
    uint64_t deadline; /* uv_now() by which the handler must answer */
    api_request *next, *prev; /* the queue (under mu), then the handler or expired list */
};

typedef struct req_list {
    api_request *head, *tail;
} req_list;

struct api_server {
    uv_loop_t *loop;
    api_handler handler;
    void *arg;
    size_t max_body;
    uint64_t deadline_ms;
    struct MHD_Daemon *daemon;
    int port;
    uv_async_t async;
    uv_timer_t timer;
    int open_handles;
    pthread_mutex_t mu;
    pthread_cond_t sent_cond;
    req_list queue;   /* under mu: complete requests for the loop */
    bool stopping;    /* under mu */
    int sending;      /* under mu: answered requests not yet completed by MHD */
    req_list handling; /* loop only: given to the handler, by deadline */
    req_list expired;  /* loop only: answered at the deadline, handler still holds */
};

/* ---- lists and requests ---------------------------------------------------- */

static void list_push(req_list *l, api_request *r) {
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
}

static void list_remove(req_list *l, api_request *r) {
    if (r->prev)
        r->prev->next = r->next;
    else
        l->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        l->tail = r->prev;
    r->next = r->prev = NULL;
}

static void kvs_free(api_kv *kv, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

static void req_unref(api_request *r) {
    if (atomic_fetch_sub(&r->refs, 1) != 1) return;
    free(r->method);
    free(r->path);
    kvs_free(r->headers, r->nheaders);
    kvs_free(r->args, r->nargs);
    free(r->body);
    free(r->ctype);
    free(r->location);
    free(r->out);
    free(r);
}

static int kv_add(api_kv **kv, size_t *n, size_t *cap, const char *key, const char *value) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        api_kv *g = realloc(*kv, nc * sizeof *g);
        if (!g) return -ENOMEM;
        *kv = g;
        *cap = nc;
    }
    char *k = strdup(key ? key : ""), *v = strdup(value ? value : "");
    if (!k || !v) {
        free(k);
        free(v);
        return -ENOMEM;
    }
    (*kv)[*n].key = k;
    (*kv)[*n].value = v;
    (*n)++;
    return 0;
}

static enum MHD_Result copy_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    api_request *r = cls;
    if (kv_add(&r->headers, &r->nheaders, &r->kv_cap_h, key, value) != 0) r->copy_failed = true;
    return r->copy_failed ? MHD_NO : MHD_YES;
}

static enum MHD_Result copy_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    api_request *r = cls;
    if (kv_add(&r->args, &r->nargs, &r->kv_cap_a, key, value) != 0) r->copy_failed = true;
    return r->copy_failed ? MHD_NO : MHD_YES;
}

static void format_peer(struct MHD_Connection *c, char *buf, size_t cap) {
    snprintf(buf, cap, "?");
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr) return;
    char host[INET6_ADDRSTRLEN];
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &in->sin_addr, host, sizeof host))
            snprintf(buf, cap, "%s:%u", host, (unsigned)ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host))
            snprintf(buf, cap, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
    }
}

/* ---- the HTTP thread ------------------------------------------------------- */

/* {"error": msg} as a malloc'ed string, or NULL. */
static char *error_json(const char *msg, size_t *len) {
    json_t *o = json_pack("{s:s}", "error", msg);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (s) *len = strlen(s);
    return s;
}

static enum MHD_Result send_now(struct MHD_Connection *c, unsigned status, const char *msg) {
    size_t len = 0;
    char *body = error_json(msg, &len);
    if (!body) return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result rc = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result send_answer(api_request *r) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(r->out_len, r->out, MHD_RESPMEM_MUST_FREE);
    if (!resp) return MHD_NO;
    r->out = NULL; /* the response owns it now */
    if (r->ctype) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype);
    if (r->location) MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, r->location);
    enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static bool content_length_over(struct MHD_Connection *c, size_t max) {
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl) return false;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(cl, &end, 10);
    /* a malformed length is MHD's to reject; only a well-formed large one is ours */
    return end != cl && errno != ERANGE ? n > max : errno == ERANGE;
}

static int body_append(api_request *r, const char *data, size_t n, size_t max) {
    if (n > max - r->len) return -EFBIG;
    if (r->len + n > r->cap) {
        size_t nc = r->cap ? r->cap : 64 * 1024;
        while (nc < r->len + n) nc = nc > max / 2 ? max : nc * 2;
        char *g = realloc(r->body, nc + 1);
        if (!g) return -ENOMEM;
        r->body = g;
        r->cap = nc;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    return 0;
}

/* The request is complete: hand it to the loop and suspend the connection. */
static enum MHD_Result hand_over(api_server *s, api_request *r) {
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, copy_header, r);
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, copy_arg, r);
    if (r->copy_failed) return send_now(r->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    if (!r->body && !(r->body = malloc(1))) return send_now(r->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    r->body[r->len] = '\0'; /* room kept by body_append: text bodies can be read as strings */
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        return send_now(r->conn, MHD_HTTP_SERVICE_UNAVAILABLE, "the server is stopping");
    }
    /* Suspended before the loop can see it, so a quick answer never resumes
     * a connection that is not yet suspended. */
    MHD_suspend_connection(r->conn);
    r->phase = PH_WAITING;
    atomic_fetch_add(&r->refs, 1);
    list_push(&s->queue, r);
    uv_async_send(&s->async);
    pthread_mutex_unlock(&s->mu);
    return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    api_server *s = cls;
    api_request *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        atomic_init(&r->refs, 1);
        r->srv = s;
        r->conn = c;
        r->method = strdup(method);
        r->path = strdup(url);
        *con_cls = r; /* released by on_completed */
        if (!r->method || !r->path) return MHD_NO;
        format_peer(c, r->peer, sizeof r->peer);
        if (content_length_over(c, s->max_body)) {
            r->too_big = true;
            return send_now(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large");
        }
        return MHD_YES;
    }
    switch (r->phase) {
    case PH_RECEIVING:
        if (*upload_size) {
            if (!r->too_big) {
                int rc = body_append(r, upload, *upload_size, s->max_body);
                if (rc == -ENOMEM) return MHD_NO;
                if (rc != 0) {
                    r->too_big = true;
                    free(r->body);
                    r->body = NULL;
                    r->len = r->cap = 0;
                }
            }
            *upload_size = 0; /* consumed (or dropped when too big) */
            return MHD_YES;
        }
        if (r->too_big) return send_now(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large");
        return hand_over(s, r);
    case PH_WAITING:
        /* Called again after the loop resumed the connection with the answer. */
        r->phase = PH_SENT;
        return send_answer(r);
    case PH_SENT: break;
    }
    return MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)c;
    (void)toe;
    api_server *s = cls;
    api_request *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    if (r->resumed) {
        pthread_mutex_lock(&s->mu);
        if (--s->sending == 0) pthread_cond_broadcast(&s->sent_cond);
        pthread_mutex_unlock(&s->mu);
    }
    req_unref(r);
}

/* ---- the loop thread --------------------------------------------------------- */

/* Gives r's answer to the HTTP thread and resumes the connection. Takes
 * ctype, location and out. */
static void resume_with(api_request *r, int status, char *ctype, char *location, void *out, size_t out_len) {
    api_server *s = r->srv;
    r->status = status;
    r->ctype = ctype;
    r->location = location;
    r->out = out;
    r->out_len = out_len;
    r->resumed = true;
    pthread_mutex_lock(&s->mu);
    s->sending++;
    pthread_mutex_unlock(&s->mu);
    MHD_resume_connection(r->conn);
}

static void resume_error(api_request *r, int status, const char *msg) {
    size_t len = 0;
    char *body = error_json(msg, &len);
    char *ctype = strdup("application/json");
    if (!body || !ctype) {
        free(body);
        free(ctype);
        body = NULL;
        ctype = NULL;
        len = 0;
    }
    resume_with(r, status, ctype, NULL, body, len);
}

static void on_deadline(uv_timer_t *t);

static void rearm(api_server *s) {
    if (!s->handling.head) {
        uv_timer_stop(&s->timer);
        return;
    }
    uint64_t now = uv_now(s->loop), d = s->handling.head->deadline;
    uv_timer_start(&s->timer, on_deadline, d > now ? d - now : 0, 0);
}

static void on_deadline(uv_timer_t *t) {
    api_server *s = t->data;
    uint64_t now = uv_now(s->loop);
    while (s->handling.head && s->handling.head->deadline <= now) {
        api_request *r = s->handling.head;
        list_remove(&s->handling, r);
        r->expired = true;
        list_push(&s->expired, r);
        resume_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "the master did not answer in time");
    }
    rearm(s);
}

static void on_async(uv_async_t *a) {
    api_server *s = a->data;
    pthread_mutex_lock(&s->mu);
    req_list q = s->queue;
    s->queue.head = s->queue.tail = NULL;
    pthread_mutex_unlock(&s->mu);
    bool was_idle = !s->handling.head;
    for (api_request *r = q.head, *next; r; r = next) {
        next = r->next;
        r->deadline = uv_now(s->loop) + s->deadline_ms;
        list_push(&s->handling, r);
    }
    if (was_idle) rearm(s);
    /* The handler may answer (and so release) r at once: its successor in
     * the batch is read first. */
    for (api_request *r = q.head; r;) {
        api_request *next = r->next;
        bool last = r == q.tail;
        s->handler(s->arg, r);
        if (last) break;
        r = next;
    }
}

/* Unlinks r from the loop's lists; false when r had expired (answer dropped). */
static bool take_answer(api_request *r) {
    api_server *s = r->srv;
    if (r->expired) {
        list_remove(&s->expired, r);
        req_unref(r);
        return false;
    }
    bool was_head = s->handling.head == r;
    list_remove(&s->handling, r);
    if (was_head) rearm(s);
    return true;
}

/* ---- answers ----------------------------------------------------------------- */

void api_respond(api_request *r, int status, const char *content_type, const void *body, size_t len) {
    if (!take_answer(r)) return;
    char *ctype = content_type ? strdup(content_type) : NULL;
    void *out = len ? malloc(len) : NULL;
    if ((content_type && !ctype) || (len && !out)) {
        free(ctype);
        free(out);
        resume_with(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, NULL, 0);
    } else {
        if (len) memcpy(out, body, len);
        resume_with(r, status, ctype, NULL, out, len);
    }
    req_unref(r);
}

void api_respond_json(api_request *r, int status, json_t *body) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        api_respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot encode the answer");
        return;
    }
    api_respond(r, status, "application/json", text, strlen(text));
    free(text);
}

void api_respond_error(api_request *r, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
    va_end(ap);
    size_t len = 0;
    char *body = error_json(msg ? msg : "out of memory", &len);
    free(msg);
    if (!body) {
        api_respond(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL, 0);
        return;
    }
    api_respond(r, status, "application/json", body, len);
    free(body);
}

/* Appends s to b percent-encoded (keep: characters left as they are besides
 * the unreserved ones). */
static void encode(char **b, size_t *n, size_t *cap, const char *s, const char *keep, bool *fail) {
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p && !*fail; p++) {
        if (*n + 4 > *cap) {
            size_t nc = *cap * 2 + 64;
            char *g = realloc(*b, nc);
            if (!g) {
                *fail = true;
                return;
            }
            *b = g;
            *cap = nc;
        }
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                     strchr("-._~", *p) || (keep && strchr(keep, *p));
        if (plain) {
            (*b)[(*n)++] = (char)*p;
        } else {
            (*b)[(*n)++] = '%';
            (*b)[(*n)++] = hex[*p >> 4];
            (*b)[(*n)++] = hex[*p & 15];
        }
        (*b)[*n] = '\0';
    }
}

void api_redirect(api_request *r, const char *base_url) {
    size_t blen = strlen(base_url);
    while (blen && base_url[blen - 1] == '/') blen--;
    size_t cap = blen + 64, n = blen;
    char *loc = malloc(cap);
    bool fail = !loc;
    if (loc) {
        memcpy(loc, base_url, blen);
        loc[n] = '\0';
        encode(&loc, &n, &cap, r->path, "/", &fail);
        for (size_t i = 0; i < r->nargs && !fail; i++) {
            encode(&loc, &n, &cap, i ? "&" : "?", "?&", &fail);
            encode(&loc, &n, &cap, r->args[i].key, NULL, &fail);
            if (r->args[i].value[0]) {
                encode(&loc, &n, &cap, "=", "=", &fail);
                encode(&loc, &n, &cap, r->args[i].value, NULL, &fail);
            }
        }
    }
    json_t *o = fail ? NULL : json_pack("{s:s, s:s%}", "error", "not the leader", "leader", base_url, blen);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    char *ctype = strdup("application/json");
    if (fail || !body || !ctype) {
        free(loc);
        free(body);
        free(ctype);
        api_respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    if (!take_answer(r)) {
        free(loc);
        free(body);
        free(ctype);
        return;
    }
    resume_with(r, MHD_HTTP_TEMPORARY_REDIRECT, ctype, loc, body, strlen(body));
    req_unref(r);
}

/* ---- accessors ----------------------------------------------------------------- */

const char *api_method(const api_request *r) { return r->method; }
const char *api_path(const api_request *r) { return r->path; }
const char *api_peer(const api_request *r) { return r->peer; }

const char *api_query(const api_request *r, const char *name) {
    for (size_t i = 0; i < r->nargs; i++)
        if (strcmp(r->args[i].key, name) == 0) return r->args[i].value;
    return NULL;
}

const char *api_header(const api_request *r, const char *name) {
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].key, name) == 0) return r->headers[i].value;
    return NULL;
}

const void *api_body(const api_request *r, size_t *len) {
    if (len) *len = r->len;
    return r->body;
}

int api_split_path(const char *path, char *buf, size_t cap, char **segs, int max) {
    static const char prefix[] = "/api/v1";
    size_t pl = sizeof prefix - 1;
    if (!path || strncmp(path, prefix, pl) != 0 || (path[pl] != '\0' && path[pl] != '/')) return -1;
    const char *rest = path + pl;
    size_t len = strlen(rest);
    if (len >= cap) return -1;
    memcpy(buf, rest, len + 1);
    int n = 0;
    for (char *p = buf; *p;) {
        while (*p == '/') *p++ = '\0';
        if (!*p) break;
        if (n == max) return -1;
        segs[n++] = p;
        while (*p && *p != '/') p++;
    }
    return n;
}

/* ---- start and stop --------------------------------------------------------------- */

/* "host:port", "[v6]:port" or ":port" into addr. */
static int parse_listen(const char *listen, struct sockaddr_storage *addr, socklen_t *alen) {
    char host[256];
    const char *port;
    if (!listen) return -EINVAL;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':' || (size_t)(close - listen - 1) >= sizeof host) return -EINVAL;
        memcpy(host, listen + 1, (size_t)(close - listen - 1));
        host[close - listen - 1] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(listen, ':');
        if (!colon || (size_t)(colon - listen) >= sizeof host) return -EINVAL;
        memcpy(host, listen, (size_t)(colon - listen));
        host[colon - listen] = '\0';
        port = colon + 1;
    }
    size_t pl = strlen(port);
    if (pl == 0 || pl > 5 || strspn(port, "0123456789") != pl || atoi(port) > 65535) return -EINVAL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE}, *res = NULL;
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0 || !res) return rc == EAI_MEMORY ? -ENOMEM : -EADDRNOTAVAIL;
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *alen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

api_server *api_server_start(uv_loop_t *loop, const api_options *o, api_handler handler, void *arg, int *err_out) {
    int dummy;
    if (!err_out) err_out = &dummy;
    *err_out = -EINVAL;
    if (!loop || !o || !handler || o->max_body_bytes == 0) return NULL;
    struct sockaddr_storage addr;
    socklen_t alen;
    int rc = parse_listen(o->listen, &addr, &alen);
    if (rc != 0) {
        *err_out = rc;
        return NULL;
    }
    api_server *s = calloc(1, sizeof *s);
    if (!s) {
        *err_out = -ENOMEM;
        return NULL;
    }
    s->loop = loop;
    s->handler = handler;
    s->arg = arg;
    s->max_body = o->max_body_bytes;
    s->deadline_ms = (o->timeout_secs ? o->timeout_secs : 30) * 1000ULL;
    pthread_condattr_t ca;
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        *err_out = -ENOMEM;
        return NULL;
    }
    if (pthread_condattr_init(&ca) != 0 || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&s->sent_cond, &ca) != 0) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        *err_out = -ENOMEM;
        return NULL;
    }
    pthread_condattr_destroy(&ca);
    /* Held until the uv handles exist: a request that arrives first waits in hand_over. */
    pthread_mutex_lock(&s->mu);
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME;
    if (addr.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    errno = 0;
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_access, s,
                                 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)(o->max_connections ? o->max_connections : 64),
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->timeout_secs,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_STRICT_FOR_CLIENT, 1, /* e.g. HTTP/1.1 without Host: 400 */
                                 MHD_OPTION_END);
    if (!s->daemon) {
        /* errno is bind's or listen's (EADDRINUSE, EACCES, ...) */
        *err_out = errno > 0 ? -errno : -EADDRNOTAVAIL;
        pthread_mutex_unlock(&s->mu);
        pthread_cond_destroy(&s->sent_cond);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    /* uv handle init on a valid loop cannot fail */
    uv_async_init(loop, &s->async, on_async);
    uv_timer_init(loop, &s->timer);
    s->async.data = s->timer.data = s;
    s->open_handles = 2;
    pthread_mutex_unlock(&s->mu);
    *err_out = 0;
    return s;
}

int api_server_port(const api_server *s) { return s->port; }

static void on_closed(uv_handle_t *h) {
    api_server *s = h->data;
    if (--s->open_handles > 0) return;
    pthread_cond_destroy(&s->sent_cond);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void api_server_stop(api_server *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    req_list q = s->queue;
    s->queue.head = s->queue.tail = NULL;
    pthread_mutex_unlock(&s->mu);
    for (api_request *r = q.head, *next; r; r = next) {
        next = r->next;
        resume_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "the master is stopping");
        req_unref(r);
    }
    for (api_request *r; (r = s->handling.head);) {
        list_remove(&s->handling, r);
        resume_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "the master is stopping");
        req_unref(r);
    }
    for (api_request *r; (r = s->expired.head);) {
        list_remove(&s->expired, r);
        req_unref(r);
    }
    uv_timer_stop(&s->timer);
    /* Let the answers reach their clients before the daemon closes every connection. */
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += STOP_DRAIN_MS / 1000;
    pthread_mutex_lock(&s->mu);
    while (s->sending > 0)
        if (pthread_cond_timedwait(&s->sent_cond, &s->mu, &until) == ETIMEDOUT) break;
    pthread_mutex_unlock(&s->mu);
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    uv_close((uv_handle_t *)&s->async, on_closed);
    uv_close((uv_handle_t *)&s->timer, on_closed);
}
