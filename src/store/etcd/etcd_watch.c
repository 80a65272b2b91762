/*
 * etcd_watch: resumable watch streams (see etcd_watch.h). Each watch owns
 * one stream request at a time and one timer, used either as the deadline
 * for etcd to confirm the watch ("created") or as the backoff before the
 * next connection.
 */
#include "store/etcd/etcd_watch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/etcd/etcd_json.h"

#define EW_BACKOFF_MIN_MS 100
#define EW_BACKOFF_MAX_MS 3000

struct store_watch {
    eh_client *c;
    store_watch **list;
    store_watch *prev, *next;
    char *prefix;
    store_watch_cb cb;
    void *arg;
    /* the first revision not yet delivered; 0 until etcd has told the
     * current revision of a watch started "from the next change" */
    int64_t next_rev;
    eh_req *rq; /* the stream, NULL between connections */
    uv_timer_t timer;
    int backoff_ms;
    bool created, ended, cancelled;
};

static void connect_stream(store_watch *w);

static void on_closed(uv_handle_t *h) {
    store_watch *w = h->data;
    free(w->prefix);
    free(w);
}

static void on_timer(uv_timer_t *t) {
    store_watch *w = t->data;
    if (w->rq) {
        /* etcd accepted the connection but never confirmed the watch */
        eh_endpoint_failed(w->c, eh_req_endpoint(w->rq));
        eh_abort(w->rq);
        w->rq = NULL;
    }
    connect_stream(w);
}

/* Drops the stream and connects again after the backoff. */
static void reconnect_later(store_watch *w) {
    if (w->rq) {
        eh_abort(w->rq);
        w->rq = NULL;
    }
    if (w->cancelled || w->ended) return;
    w->created = false;
    w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : EW_BACKOFF_MIN_MS;
    if (w->backoff_ms > EW_BACKOFF_MAX_MS) w->backoff_ms = EW_BACKOFF_MAX_MS;
    uv_timer_start(&w->timer, on_timer, (uint64_t)w->backoff_ms, 0);
}

/* The history from next_rev is gone: tell the owner once and stop. */
static void resync(store_watch *w, int64_t compact_rev) {
    if (w->rq) {
        eh_abort(w->rq);
        w->rq = NULL;
    }
    uv_timer_stop(&w->timer);
    w->ended = true;
    store_event ev = {.type = STORE_EVENT_RESYNC, .kv = NULL, .revision = compact_rev};
    w->cb(w->arg, &ev);
}

static void deliver(store_watch *w, const ej_watch_msg *m) {
    int64_t floor = w->next_rev; /* events below it were delivered before a reconnect */
    for (size_t i = 0; i < m->nevents && !w->cancelled; i++) {
        const store_event *ev = &m->events[i];
        if (floor > 0 && ev->revision < floor) continue;
        if (ev->revision + 1 > w->next_rev) w->next_rev = ev->revision + 1;
        w->cb(w->arg, ev);
    }
}

static void on_line(void *ud, const char *line, size_t len) {
    store_watch *w = ud;
    if (w->cancelled || w->ended) return;
    json_t *root = NULL;
    ej_watch_msg m;
    if (ej_parse(line, len, &root) != 0 || ej_watch_msg_decode(root, &m) != 0) {
        /* cannot tell what was sent: start again from the last revision delivered */
        json_decref(root);
        reconnect_later(w);
        return;
    }
    if (m.is_error || m.canceled) {
        if (m.compact_rev > 0) {
            resync(w, m.compact_rev);
        } else {
            if (ej_error_is_bad_token(m.err_code, m.cancel_reason)) eh_token_invalid(w->c);
            reconnect_later(w);
        }
    } else {
        if (m.created && !w->created) {
            w->created = true;
            w->backoff_ms = 0;
            uv_timer_stop(&w->timer);
            if (w->next_rev == 0 && m.header_rev > 0) w->next_rev = m.header_rev + 1;
        }
        deliver(w, &m);
    }
    ej_watch_msg_clear(&m);
    json_decref(root);
}

static void on_done(void *ud, int err, long status, const char *body, size_t len) {
    (void)err;
    store_watch *w = ud;
    w->rq = NULL;
    json_t *root = NULL;
    int code;
    const char *msg;
    if (status != 200 && body && ej_parse(body, len, &root) == 0 && ej_error(root, &code, &msg) &&
        ej_error_is_bad_token(code, msg))
        eh_token_invalid(w->c);
    json_decref(root);
    reconnect_later(w);
}

static int submit(store_watch *w) {
    char *body = ej_watch_req(w->prefix, w->next_rev);
    if (!body) return -ENOMEM;
    eh_spec sp = {
        .path = "/v3/watch", .body = body, .len = strlen(body), .done = on_done, .line = on_line, .ud = w};
    int rc = eh_submit(w->c, &sp, &w->rq);
    if (rc != 0) {
        w->rq = NULL;
        return rc;
    }
    /* the deadline for "created" */
    uv_timer_start(&w->timer, on_timer, (uint64_t)eh_timeout_ms(w->c), 0);
    return 0;
}

static void connect_stream(store_watch *w) {
    if (w->cancelled || w->ended) return;
    w->created = false;
    if (submit(w) != 0) reconnect_later(w);
}

int ew_start(uv_loop_t *loop, eh_client *c, store_watch **list, const char *prefix, int64_t start_rev,
             store_watch_cb cb, void *arg, store_watch **out) {
    if (!prefix || !cb || !out || start_rev < 0) return -EINVAL;
    store_watch *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    w->prefix = strdup(prefix);
    if (!w->prefix || uv_timer_init(loop, &w->timer) != 0) {
        free(w->prefix);
        free(w);
        return -ENOMEM;
    }
    w->timer.data = w;
    w->c = c;
    w->cb = cb;
    w->arg = arg;
    w->next_rev = start_rev;
    int rc = submit(w);
    if (rc != 0) {
        uv_close((uv_handle_t *)&w->timer, on_closed);
        return rc;
    }
    w->list = list;
    w->next = *list;
    if (*list) (*list)->prev = w;
    *list = w;
    *out = w;
    return 0;
}

void ew_cancel(store_watch *w) {
    if (!w || w->cancelled) return;
    w->cancelled = true;
    if (w->prev) w->prev->next = w->next;
    else *w->list = w->next;
    if (w->next) w->next->prev = w->prev;
    if (w->rq) eh_abort(w->rq);
    w->rq = NULL;
    uv_timer_stop(&w->timer);
    /* freed from the loop: a callback of this watch may be on the stack */
    uv_close((uv_handle_t *)&w->timer, on_closed);
}

void ew_cancel_all(store_watch **list) {
    while (*list) ew_cancel(*list);
}
