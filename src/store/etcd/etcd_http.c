/*
 * etcd_http: libcurl multi-socket requests on a libuv loop (see
 * etcd_http.h). Every request lives in the client's list from submission
 * until it is released: WAITING for an auth token, ACTIVE in curl's multi
 * handle, or DEAD (aborted while callbacks were being handed out: freed by
 * the sweep once they are done, so no list walk meets freed memory).
 * curl's callbacks only record what happened; eh_after, which runs after
 * each curl_multi_socket_action, hands out stream lines and finished
 * requests, the only place from which the owner's code is called.
 */
#include "store/etcd/etcd_http.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/etcd/etcd_json.h"

typedef enum { RQ_WAITING, RQ_ACTIVE, RQ_DEAD } rq_state;

struct eh_req {
    eh_client *c;
    eh_req *prev, *next;
    CURL *easy;
    struct curl_slist *headers;
    char *path, *body;
    size_t body_len;
    eh_done_fn done;
    eh_line_fn line;
    void *ud;
    void (*free_ud)(void *ud);
    void *tag;
    rq_state state;
    bool in_multi, internal, reauthed, overflow, nomem, fail_pending, got_bytes;
    int endpoint, attempts, last_err;
    int refusals; /* attempts whose connection was refused */
    unsigned token_gen; /* the token generation it was sent with */
    long status;
    char *buf; /* the answer, or a stream's bytes not yet handed out */
    size_t len, cap;
};

typedef struct eh_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    eh_client *c;
    struct eh_sock *prev, *next;
} eh_sock;

struct eh_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    char **endpoints;
    int n, current; /* current: where new requests start (the last that worked) */
    int timeout_ms;
    char *ca, *cert, *key, *user, *password;
    char *token;
    unsigned token_gen;
    eh_req *auth_rq;
    eh_req *head;
    eh_sock *socks;
    int open_handles, depth;
    bool closing;
    void (*on_closed)(void *arg);
    void *closed_arg;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_ALL); }

static void link_req(eh_client *c, eh_req *rq) {
    rq->prev = NULL;
    rq->next = c->head;
    if (c->head) c->head->prev = rq;
    c->head = rq;
}

static void unlink_req(eh_client *c, eh_req *rq) {
    if (rq->prev) rq->prev->next = rq->next;
    else if (c->head == rq) c->head = rq->next;
    if (rq->next) rq->next->prev = rq->prev;
    rq->prev = rq->next = NULL;
}

static void req_free(eh_req *rq) {
    if (rq->in_multi && rq->c->multi) curl_multi_remove_handle(rq->c->multi, rq->easy);
    if (rq->easy) curl_easy_cleanup(rq->easy);
    curl_slist_free_all(rq->headers);
    if (rq->free_ud) rq->free_ud(rq->ud);
    free(rq->path);
    free(rq->body);
    free(rq->buf);
    free(rq);
}

/* ---- curl callbacks: record only ------------------------------------------ */

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud) {
    eh_req *rq = ud;
    size_t n = size * nmemb;
    if (rq->status == 0) curl_easy_getinfo(rq->easy, CURLINFO_RESPONSE_CODE, &rq->status);
    rq->got_bytes = true;
    size_t limit = rq->line && rq->status == 200 ? EH_MAX_LINE : EH_MAX_BODY;
    if (n > limit - rq->len) {
        rq->overflow = true;
        return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
    }
    if (rq->len + n + 1 > rq->cap) {
        size_t cap = rq->cap ? rq->cap : 4096;
        while (cap < rq->len + n + 1) cap *= 2;
        char *b = realloc(rq->buf, cap);
        if (!b) {
            rq->overflow = rq->nomem = true;
            return 0;
        }
        rq->buf = b;
        rq->cap = cap;
    }
    memcpy(rq->buf + rq->len, p, n);
    rq->len += n;
    rq->buf[rq->len] = '\0';
    return n;
}

static void eh_after(eh_client *c);

static void on_poll(uv_poll_t *p, int status, int events) {
    eh_sock *sk = p->data;
    eh_client *c = sk->c;
    int flags = 0;
    if (status < 0) flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    }
    int running;
    curl_multi_socket_action(c->multi, sk->fd, flags, &running);
    eh_after(c);
}

static void on_timer(uv_timer_t *t) {
    eh_client *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    eh_after(c);
    /* curl does not ask again for a deadline it already gave; when the timer
     * fired a little before curl's clock reached it, arm it again */
    long ms;
    if (!c->closing && !uv_is_active((uv_handle_t *)t) && curl_multi_timeout(c->multi, &ms) == CURLM_OK && ms >= 0)
        uv_timer_start(t, on_timer, ms > 0 ? (uint64_t)ms : 1, 0);
}

static void client_release(eh_client *c) {
    void (*cb)(void *) = c->on_closed;
    void *arg = c->closed_arg;
    for (int i = 0; i < c->n; i++) free(c->endpoints[i]);
    free(c->endpoints);
    free(c->ca);
    free(c->cert);
    free(c->key);
    free(c->user);
    free(c->password);
    free(c->token);
    free(c);
    if (cb) cb(arg);
}

static void on_handle_closed(uv_handle_t *h) {
    eh_client *c;
    if (h->type == UV_POLL) {
        eh_sock *sk = h->data;
        c = sk->c;
        free(sk);
    } else {
        c = h->data;
    }
    if (--c->open_handles == 0 && c->closing) client_release(c);
}

static void sock_close(eh_client *c, eh_sock *sk) {
    if (sk->prev) sk->prev->next = sk->next;
    else c->socks = sk->next;
    if (sk->next) sk->next->prev = sk->prev;
    uv_poll_stop(&sk->poll);
    uv_close((uv_handle_t *)&sk->poll, on_handle_closed);
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp) {
    (void)e;
    eh_client *c = userp;
    eh_sock *sk = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sk) {
            curl_multi_assign(c->multi, fd, NULL);
            sock_close(c, sk);
        }
        return 0;
    }
    if (!sk) {
        sk = calloc(1, sizeof *sk);
        if (!sk) return -1;
        if (uv_poll_init_socket(c->loop, &sk->poll, fd) != 0) {
            free(sk);
            return -1;
        }
        sk->fd = fd;
        sk->c = c;
        sk->poll.data = sk;
        sk->next = c->socks;
        if (c->socks) c->socks->prev = sk;
        c->socks = sk;
        c->open_handles++;
        curl_multi_assign(c->multi, fd, sk);
    }
    int ev = 0;
    if (what & CURL_POLL_IN) ev |= UV_READABLE;
    if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
    return uv_poll_start(&sk->poll, ev, on_poll) == 0 ? 0 : -1;
}

static int on_curl_timer(CURLM *m, long ms, void *userp) {
    (void)m;
    eh_client *c = userp;
    if (c->closing) return 0;
    if (ms < 0) {
        uv_timer_stop(&c->timer);
    } else {
        uv_update_time(c->loop); /* called from outside the loop too: its clock may be stale */
        uv_timer_start(&c->timer, on_timer, (uint64_t)ms, 0);
    }
    return 0;
}

/* ---- requests ------------------------------------------------------------- */

static eh_req *req_new(eh_client *c, const char *path, char *body, size_t len) {
    eh_req *rq = calloc(1, sizeof *rq);
    if (!rq) {
        free(body);
        return NULL;
    }
    rq->c = c;
    rq->body = body;
    rq->body_len = len;
    rq->endpoint = c->current;
    rq->path = strdup(path);
    rq->easy = curl_easy_init();
    if (!rq->path || !rq->easy) {
        req_free(rq);
        return NULL;
    }
    return rq;
}

/* the options that stay the same across tries */
static int req_setup(eh_req *rq) {
    eh_client *c = rq->c;
    CURL *e = rq->easy;
    CURLcode rc = CURLE_OK;
#define OPT(o, v)                                                                                                      \
    if (rc == CURLE_OK) rc = curl_easy_setopt(e, o, v)
    OPT(CURLOPT_PRIVATE, rq);
    OPT(CURLOPT_WRITEFUNCTION, on_write);
    OPT(CURLOPT_WRITEDATA, rq);
    OPT(CURLOPT_NOSIGNAL, 1L);
    OPT(CURLOPT_PROXY, ""); /* etcd is reached directly, whatever http_proxy says */
    OPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    OPT(CURLOPT_POST, 1L);
    OPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
    OPT(CURLOPT_POSTFIELDS, rq->body);
    /* keepalive probes notice a peer that vanished under an idle watch */
    OPT(CURLOPT_TCP_KEEPALIVE, 1L);
    OPT(CURLOPT_TCP_KEEPIDLE, 10L);
    OPT(CURLOPT_TCP_KEEPINTVL, 5L);
    OPT(CURLOPT_CONNECTTIMEOUT_MS, (long)c->timeout_ms);
    /* a stream (watch) lives as long as it is wanted: no overall timeout */
    if (!rq->line) OPT(CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    if (c->ca) OPT(CURLOPT_CAINFO, c->ca);
    if (c->cert) OPT(CURLOPT_SSLCERT, c->cert);
    if (c->key) OPT(CURLOPT_SSLKEY, c->key);
#undef OPT
    return rc == CURLE_OK ? 0 : -EINVAL;
}

/* (Re)sends rq to its endpoint. */
static int req_send(eh_req *rq) {
    eh_client *c = rq->c;
    if (rq->in_multi) {
        curl_multi_remove_handle(c->multi, rq->easy);
        rq->in_multi = false;
    }
    const char *ep = c->endpoints[rq->endpoint];
    size_t ulen = strlen(ep) + strlen(rq->path) + 1;
    char *url = malloc(ulen);
    if (!url) return -ENOMEM;
    snprintf(url, ulen, "%s%s", ep, rq->path);
    CURLcode crc = curl_easy_setopt(rq->easy, CURLOPT_URL, url);
    free(url);
    if (crc != CURLE_OK) return -ENOMEM;
    curl_slist_free_all(rq->headers);
    rq->headers = NULL;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (h) h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
    if (h && c->token && !rq->internal) {
        size_t alen = strlen(c->token) + 32;
        char *a = malloc(alen);
        struct curl_slist *h2 = NULL;
        if (a) {
            snprintf(a, alen, "Authorization: %s", c->token);
            h2 = curl_slist_append(h, a);
            free(a);
        }
        if (!h2) curl_slist_free_all(h);
        h = h2;
    }
    if (!h) return -ENOMEM;
    rq->headers = h;
    rq->token_gen = c->token_gen;
    curl_easy_setopt(rq->easy, CURLOPT_HTTPHEADER, h);
    rq->len = 0;
    rq->status = 0;
    rq->got_bytes = rq->overflow = rq->nomem = false;
    if (curl_multi_add_handle(c->multi, rq->easy) != CURLM_OK) return -ENOMEM;
    rq->in_multi = true;
    rq->state = RQ_ACTIVE;
    return 0;
}

static void auth_done(void *ud, int err, long status, const char *body, size_t len);

static int auth_start(eh_client *c) {
    if (c->auth_rq) return 0;
    char *body = ej_auth_req(c->user, c->password);
    if (!body) return -ENOMEM;
    eh_req *rq = req_new(c, "/v3/auth/authenticate", body, strlen(body));
    if (!rq) return -ENOMEM;
    rq->internal = true;
    rq->done = auth_done;
    rq->ud = c;
    link_req(c, rq);
    int rc = req_setup(rq);
    if (rc == 0) rc = req_send(rq);
    if (rc != 0) {
        unlink_req(c, rq);
        req_free(rq);
        return rc;
    }
    c->auth_rq = rq;
    return 0;
}

/* Sends rq, or parks it until a token arrives. */
static int req_start(eh_req *rq) {
    eh_client *c = rq->c;
    if (c->user && !rq->internal && !c->token) {
        if (rq->in_multi) {
            curl_multi_remove_handle(c->multi, rq->easy);
            rq->in_multi = false;
        }
        rq->state = RQ_WAITING;
        return auth_start(c);
    }
    return req_send(rq);
}

/* Releases rq now, or (while callbacks are being handed out) marks it for
 * the sweep. */
static void req_release(eh_req *rq) {
    eh_client *c = rq->c;
    if (rq->in_multi && c->multi) curl_multi_remove_handle(c->multi, rq->easy);
    rq->in_multi = false;
    rq->state = RQ_DEAD;
    rq->done = NULL;
    rq->line = NULL;
    if (c->auth_rq == rq) c->auth_rq = NULL;
    if (c->depth == 0) {
        unlink_req(c, rq);
        req_free(rq);
    }
}

static void sweep(eh_client *c) {
    eh_req *next;
    for (eh_req *rq = c->head; rq; rq = next) {
        next = rq->next;
        if (rq->state == RQ_DEAD) {
            unlink_req(c, rq);
            req_free(rq);
        }
    }
}

/* The end of rq: its done callback, then release. */
static void complete(eh_req *rq, int err, long status, const char *body, size_t len) {
    eh_client *c = rq->c;
    if (rq->in_multi) {
        curl_multi_remove_handle(c->multi, rq->easy);
        rq->in_multi = false;
    }
    unlink_req(c, rq);
    rq->state = RQ_DEAD;
    eh_done_fn done = rq->done;
    if (done) done(rq->ud, err, status, body, len);
    req_free(rq);
}

/* Fails every request marked fail_pending, one at a time: a callback may
 * cancel or add requests, so the list is searched again after each. */
static void fail_marked(eh_client *c) {
    while (!c->closing) {
        eh_req *rq = c->head;
        while (rq && !(rq->fail_pending && rq->state != RQ_DEAD)) rq = rq->next;
        if (!rq) return;
        rq->fail_pending = false;
        complete(rq, rq->last_err, 0, NULL, 0);
    }
}

/* a token goes into a header line: printable ASCII only */
static bool header_safe(const char *s, size_t len) {
    if (len == 0 || len > 4096) return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) return false;
    return true;
}

static void auth_done(void *ud, int err, long status, const char *body, size_t len) {
    eh_client *c = ud;
    c->auth_rq = NULL;
    if (err == 0) {
        json_t *root = NULL;
        int code;
        const char *msg;
        err = SD_EPROTO_STORE;
        if (ej_parse(body, len, &root) == 0) {
            const json_t *t = json_object_get(root, "token");
            if (ej_error(root, &code, &msg)) err = ej_error_code(code, msg);
            else if (status == 200 && json_is_string(t) && header_safe(json_string_value(t), json_string_length(t))) {
                free(c->token);
                c->token = strdup(json_string_value(t));
                c->token_gen++;
                err = c->token ? 0 : -ENOMEM;
            }
            json_decref(root);
        }
    }
    for (eh_req *rq = c->head; rq; rq = rq->next) {
        if (rq->state != RQ_WAITING) continue;
        int rc = err == 0 ? req_send(rq) : err;
        if (rc != 0) {
            rq->last_err = rc;
            rq->fail_pending = true;
        }
    }
    fail_marked(c);
}

/* Tries the next endpoint, or fails rq when each has been tried. */
static void retry(eh_req *rq) {
    eh_client *c = rq->c;
    if (++rq->attempts >= c->n) {
        /* every endpoint refused: etcd is down (not cut off from us), which
         * the lease keeper treats differently from silence */
        complete(rq, rq->refusals >= c->n ? -ECONNREFUSED : rq->last_err, 0, NULL, 0);
        return;
    }
    int old = rq->endpoint;
    rq->endpoint = (old + 1) % c->n;
    if (c->current == old) c->current = rq->endpoint;
    int rc = req_start(rq);
    if (rc != 0) complete(rq, rc, 0, NULL, 0);
}

/* Hands out the complete lines of a stream; at the end (final) also what
 * follows the last newline. */
static void deliver_lines(eh_req *rq, bool final) {
    eh_client *c = rq->c;
    size_t off = 0;
    while (rq->state != RQ_DEAD && !c->closing && off < rq->len) {
        char *nl = memchr(rq->buf + off, '\n', rq->len - off);
        if (!nl && !final) break;
        size_t end = nl ? (size_t)(nl - rq->buf) : rq->len;
        size_t s = off;
        while (s < end && (rq->buf[s] == ' ' || rq->buf[s] == '\r')) s++;
        if (s < end) rq->line(rq->ud, rq->buf + s, end - s);
        off = end + (nl ? 1 : 0);
    }
    if (rq->state == RQ_DEAD || c->closing) return;
    memmove(rq->buf, rq->buf + off, rq->len - off);
    rq->len -= off;
}

static void finish(eh_req *rq, CURLcode res) {
    eh_client *c = rq->c;
    curl_multi_remove_handle(c->multi, rq->easy);
    rq->in_multi = false;
    long status = 0;
    curl_easy_getinfo(rq->easy, CURLINFO_RESPONSE_CODE, &status);
    if (res == CURLE_OK && rq->line && status == 200) {
        deliver_lines(rq, true);
        if (rq->state == RQ_DEAD || c->closing) return;
        c->current = rq->endpoint;
        complete(rq, 0, status, NULL, 0); /* the stream ended */
        return;
    }
    if (res == CURLE_OK) {
        json_t *root = NULL;
        int code = 0;
        const char *msg = "";
        bool is_err = status != 200 && ej_parse(rq->buf ? rq->buf : "", rq->len, &root) == 0 &&
                      ej_error(root, &code, &msg);
        bool bad_token = is_err && ej_error_is_bad_token(code, msg);
        bool unavailable = status == 502 || status == 503 || status == 504 ||
                           (is_err && ej_error_is_unavailable(code, msg));
        json_decref(root);
        if (bad_token && c->user && !rq->internal && !rq->reauthed) {
            rq->reauthed = true;
            if (rq->token_gen == c->token_gen) eh_token_invalid(c);
            int rc = req_start(rq);
            if (rc != 0) complete(rq, rc, 0, NULL, 0);
            return;
        }
        if (!unavailable) {
            c->current = rq->endpoint;
            complete(rq, 0, status, rq->buf ? rq->buf : "", rq->len);
            return;
        }
        rq->last_err = SD_EUNAVAILABLE;
    } else if (rq->overflow) {
        complete(rq, rq->nomem ? -ENOMEM : -EMSGSIZE, 0, NULL, 0);
        return;
    } else {
        rq->last_err = res == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : SD_EUNAVAILABLE;
        long os_err = 0;
        if (res == CURLE_COULDNT_CONNECT && curl_easy_getinfo(rq->easy, CURLINFO_OS_ERRNO, &os_err) == CURLE_OK &&
            os_err == ECONNREFUSED)
            rq->refusals++;
        /* a stream that broke after it was answered is over: its owner resumes it */
        if (rq->line && rq->got_bytes) {
            complete(rq, rq->last_err, 0, NULL, 0);
            return;
        }
    }
    retry(rq);
}

static void eh_after(eh_client *c) {
    c->depth++;
    for (eh_req *rq = c->head; rq && !c->closing; rq = rq->next)
        if (rq->state == RQ_ACTIVE && rq->line && rq->status == 200 && rq->len > 0) deliver_lines(rq, false);
    CURLMsg *m;
    int left;
    while (!c->closing && (m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        CURLcode res = m->data.result;
        char *priv = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        eh_req *rq = (eh_req *)priv;
        if (rq && rq->state == RQ_ACTIVE) finish(rq, res);
    }
    if (--c->depth == 0) sweep(c);
}

/* ---- the client ------------------------------------------------------------ */

static char *dup_opt(const char *s, bool *ok) {
    if (!s || !*s) return NULL;
    char *d = strdup(s);
    if (!d) *ok = false;
    return d;
}

/* Splits "url,url" into c->endpoints (trimmed, without a trailing slash). */
static int parse_endpoints(eh_client *c, const char *list) {
    if (!list) return -EINVAL;
    size_t cap = 1;
    for (const char *p = list; *p; p++)
        if (*p == ',') cap++;
    c->endpoints = calloc(cap, sizeof *c->endpoints);
    if (!c->endpoints) return -ENOMEM;
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        const char *s = p, *e = end;
        while (s < e && (*s == ' ' || *s == '\t')) s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '/')) e--;
        if (e > s) {
            size_t n = (size_t)(e - s);
            if (!((n > 7 && strncmp(s, "http://", 7) == 0) || (n > 8 && strncmp(s, "https://", 8) == 0)))
                return -EINVAL;
            char *ep = strndup(s, n);
            if (!ep) return -ENOMEM;
            c->endpoints[c->n++] = ep;
        }
        p = *end ? end + 1 : end;
    }
    return c->n > 0 ? 0 : -EINVAL;
}

eh_client *eh_client_new(uv_loop_t *loop, const etcd_options *o) {
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) return NULL;
    eh_client *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->loop = loop;
    c->timeout_ms = o->request_timeout_ms > 0 ? o->request_timeout_ms : 5000;
    bool ok = parse_endpoints(c, o->endpoints) == 0;
    c->ca = dup_opt(o->tls_ca, &ok);
    c->cert = dup_opt(o->tls_cert, &ok);
    c->key = dup_opt(o->tls_key, &ok);
    c->user = dup_opt(o->user, &ok);
    c->password = dup_opt(o->password ? o->password : "", &ok);
    if (ok) c->multi = curl_multi_init();
    if (!ok || !c->multi || uv_timer_init(loop, &c->timer) != 0) {
        if (c->multi) curl_multi_cleanup(c->multi);
        client_release(c);
        return NULL;
    }
    c->timer.data = c;
    c->open_handles = 1;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    return c;
}

void eh_client_free(eh_client *c, void (*on_closed)(void *arg), void *arg) {
    if (!c || c->closing) return;
    c->closing = true;
    c->on_closed = on_closed;
    c->closed_arg = arg;
    for (eh_req *rq = c->head; rq; rq = rq->next) {
        if (rq->in_multi) curl_multi_remove_handle(c->multi, rq->easy);
        rq->in_multi = false;
        rq->state = RQ_DEAD;
    }
    c->auth_rq = NULL;
    if (c->depth == 0) sweep(c);
    curl_multi_cleanup(c->multi); /* may report sockets removed: their polls close */
    c->multi = NULL;
    while (c->socks) sock_close(c, c->socks);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

int eh_timeout_ms(const eh_client *c) { return c->timeout_ms; }

int eh_submit(eh_client *c, const eh_spec *sp, eh_req **out) {
    if (c->closing || !sp->body) {
        free(sp->body);
        return -EINVAL;
    }
    eh_req *rq = req_new(c, sp->path, sp->body, sp->len);
    if (!rq) return -ENOMEM;
    rq->done = sp->done;
    rq->line = sp->line;
    rq->ud = sp->ud;
    rq->tag = sp->tag;
    link_req(c, rq);
    int rc = req_setup(rq);
    if (rc == 0) rc = req_start(rq);
    if (rc != 0) {
        unlink_req(c, rq);
        req_free(rq);
        return rc;
    }
    rq->free_ud = sp->free_ud;
    if (out) *out = rq;
    return 0;
}

void eh_abort(eh_req *rq) {
    if (rq && rq->state != RQ_DEAD) req_release(rq);
}

void eh_cancel_tag(eh_client *c, void *tag) {
    /* the requests go on (a revoke or a last put still happens); only
     * their callbacks are dropped */
    for (eh_req *rq = c->head; rq; rq = rq->next)
        if (!rq->internal && !rq->line && rq->tag == tag) rq->done = NULL;
}

int eh_req_endpoint(const eh_req *rq) { return rq->endpoint; }

void eh_endpoint_failed(eh_client *c, int endpoint) {
    if (c->current == endpoint) c->current = (endpoint + 1) % c->n;
}

void eh_token_invalid(eh_client *c) {
    if (!c->token) return;
    free(c->token);
    c->token = NULL;
    c->token_gen++;
}
