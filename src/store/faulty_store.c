/*
 * faulty_store: a fault-injecting store wrapper for tests (see
 * faulty_store.h). One thread, the loop's, owns everything: the requests
 * sent on to the inner store (each its own item, passed to the inner store
 * as the callback arg, so one request can be cancelled there), the queue of
 * things to deliver (results and watch events, copied, each with the time
 * it is due) and the watches. A timer drains the queue in order; a request
 * that fails before reaching the inner store goes straight to the queue.
 */
#include "store/faulty_store.h"

#include <errno.h>
#include <string.h>

#define NOPS 9 /* bits in FAULTY_OP_ALL */

typedef struct faulty_store faulty_store;

/* A watch handle given out as store_watch *. */
typedef struct fwatch {
    faulty_store *f;
    char *prefix;
    store_watch *inner; /* NULL once ended */
    store_watch_cb cb;
    void *arg;
    int64_t next_rev; /* where a resumed watch starts: 0 = unknown */
    int64_t last_rev; /* revision of the last event received */
    bool done;        /* RESYNC queued: nothing more */
    struct fwatch *next;
} fwatch;

/* A request in flight to the inner store, then a result or event queued. */
typedef struct fitem {
    struct fitem *next;
    faulty_store *f;
    uint64_t seq, due;
    store_cb cb; /* a result (w == NULL) */
    void *arg;
    int64_t lease; /* the request's lease (keepalive, revoke) */
    int fail_err;  /* FAULTY_AFTER: replaces the answer */
    fwatch *w;     /* an event for this watch */
    store_result r;
    store_event ev;
    store_kv *kvs; /* owned copies behind r.kvs / ev.kv */
    size_t nkvs;
} fitem;

struct faulty_store {
    store base;
    uv_loop_t *loop;
    store *inner;
    uv_timer_t timer;
    fitem *inflight;          /* sent on to the inner store, not answered */
    fitem *head, *tail;       /* to deliver, in order */
    uint64_t next_seq;
    bool delivering;
    fwatch *watches;
    unsigned fail_ops, fail_count;
    faulty_mode fail_mode;
    int fail_err;
    unsigned delay_ms;
    bool dropping;
    int64_t known_rev; /* the highest revision seen from the inner store */
    unsigned long counts[NOPS], dropped;
};

/* ---- copies ------------------------------------------------------------------- */

static void free_kvs(store_kv *kvs, size_t n) {
    for (size_t i = 0; kvs && i < n; i++) {
        free((char *)kvs[i].key);
        free((char *)kvs[i].value);
    }
    free(kvs);
}

/* Owned copies of n kvs (values keep a NUL after their bytes); NULL on
 * allocation failure. */
static store_kv *copy_kvs(const store_kv *src, size_t n) {
    store_kv *kvs = calloc(n ? n : 1, sizeof *kvs);
    if (!kvs) return NULL;
    for (size_t i = 0; i < n; i++) {
        kvs[i] = src[i];
        kvs[i].key = src[i].key ? strdup(src[i].key) : NULL;
        char *v = NULL;
        if (src[i].value) {
            v = malloc(src[i].value_len + 1);
            if (v) {
                memcpy(v, src[i].value, src[i].value_len);
                v[src[i].value_len] = '\0';
            }
        }
        kvs[i].value = v;
        if ((src[i].key && !kvs[i].key) || (src[i].value && !v)) {
            free_kvs(kvs, i + 1);
            return NULL;
        }
    }
    return kvs;
}

static void free_item(fitem *it) {
    free_kvs(it->kvs, it->nkvs);
    free(it);
}

/* ---- the delivery queue ---------------------------------------------------------- */

static void on_timer(uv_timer_t *t);

static void arm(faulty_store *f) {
    if (f->delivering) return; /* the round re-arms when it ends */
    if (!f->head) {
        uv_timer_stop(&f->timer);
        return;
    }
    uint64_t now = uv_now(f->loop);
    uv_timer_start(&f->timer, on_timer, f->head->due > now ? f->head->due - now : 0, 0);
}

static void enqueue(faulty_store *f, fitem *it) {
    uv_update_time(f->loop);
    it->due = uv_now(f->loop) + f->delay_ms;
    it->seq = f->next_seq++;
    it->next = NULL;
    if (f->tail) f->tail->next = it;
    else f->head = it;
    f->tail = it;
    if (f->head == it) arm(f);
}

/* Unlinks and frees every queued item matching (arg for results, w for
 * events). */
static void unqueue(faulty_store *f, void *arg, fwatch *w) {
    fitem *prev = NULL;
    for (fitem *it = f->head, *next; it; it = next) {
        next = it->next;
        bool match = w ? it->w == w : (!it->w && it->arg == arg);
        if (!match) {
            prev = it;
            continue;
        }
        if (prev) prev->next = next;
        else f->head = next;
        if (f->tail == it) f->tail = prev;
        free_item(it);
    }
}

static void on_timer(uv_timer_t *t) {
    faulty_store *f = t->data;
    uv_update_time(f->loop);
    uint64_t now = uv_now(f->loop), end = f->next_seq; /* what callbacks queue waits for the next round */
    f->delivering = true;
    while (f->head && f->head->seq < end && f->head->due <= now) {
        fitem *it = f->head;
        f->head = it->next;
        if (!f->head) f->tail = NULL;
        if (it->w) it->w->cb(it->w->arg, &it->ev); /* the callback may cancel the watch: it is not used after */
        else if (it->cb) it->cb(it->arg, &it->r);
        free_item(it);
    }
    f->delivering = false;
    arm(f);
}

/* ---- requests -------------------------------------------------------------------- */

static void note_rev(faulty_store *f, int64_t rev) {
    if (rev > f->known_rev) f->known_rev = rev;
}

/* The inner store answered request it. */
static void on_inner_result(void *arg, const store_result *r) {
    fitem *it = arg;
    faulty_store *f = it->f;
    for (fitem **pp = &f->inflight; *pp; pp = &(*pp)->next) {
        if (*pp == it) {
            *pp = it->next;
            break;
        }
    }
    note_rev(f, r->revision);
    if (it->fail_err) {
        it->r = (store_result){.err = it->fail_err, .lease = it->lease};
    } else {
        it->r = *r;
        it->r.kvs = NULL;
        if (r->nkvs) {
            it->kvs = copy_kvs(r->kvs, r->nkvs);
            if (it->kvs) {
                it->nkvs = r->nkvs;
                it->r.kvs = it->kvs;
            } else {
                it->r = (store_result){.err = -ENOMEM, .revision = r->revision, .lease = r->lease};
            }
        }
    }
    enqueue(f, it);
}

static unsigned op_index(unsigned op) { return (unsigned)__builtin_ctz(op); }

/* Whether a request of op fails now, and how; consumes one from the count. */
static bool take_failure(faulty_store *f, unsigned op, faulty_mode *mode, int *err) {
    f->counts[op_index(op)]++;
    if (!(f->fail_ops & op) || f->fail_count == 0 || f->fail_err == 0) return false;
    if (f->fail_count != FAULTY_ALWAYS) f->fail_count--;
    *mode = f->fail_mode;
    *err = f->fail_err;
    return true;
}

/* Starts a request: returns < 0 (the call fails with it), 0 (answered
 * already: a failure is queued) or 1 (*out is to be sent to the inner
 * store with on_inner_result, then passed to sent()). */
static int start(faulty_store *f, unsigned op, int64_t lease, store_cb cb, void *arg, fitem **out) {
    faulty_mode mode = FAULTY_BEFORE;
    int err = 0;
    bool fail = take_failure(f, op, &mode, &err);
    if (fail && mode == FAULTY_AT_CALL) return err;
    fitem *it = calloc(1, sizeof *it);
    if (!it) return -ENOMEM;
    it->f = f;
    it->cb = cb;
    it->arg = arg;
    it->lease = lease;
    if (fail && mode == FAULTY_BEFORE) {
        it->r = (store_result){.err = err, .lease = lease};
        enqueue(f, it);
        return 0;
    }
    if (fail) it->fail_err = err; /* FAULTY_AFTER */
    it->next = f->inflight;
    f->inflight = it;
    *out = it;
    return 1;
}

/* The inner store's answer to the call that sent it. */
static int sent(faulty_store *f, fitem *it, int rc) {
    if (rc == 0) return 0;
    for (fitem **pp = &f->inflight; *pp; pp = &(*pp)->next) {
        if (*pp == it) {
            *pp = it->next;
            break;
        }
    }
    free_item(it);
    return rc;
}

#define FORWARD(f, op, lease, cb, arg, call)                                                                          \
    do {                                                                                                              \
        fitem *it_ = NULL;                                                                                            \
        int rc_ = start(f, op, lease, cb, arg, &it_);                                                                 \
        if (rc_ <= 0) return rc_;                                                                                     \
        void *a_ = it_;                                                                                               \
        return sent(f, it_, (call));                                                                                  \
    } while (0)

static int fs_get(store *s, const char *key, store_cb cb, void *arg) {
    faulty_store *f = (faulty_store *)s;
    FORWARD(f, FAULTY_OP_GET, 0, cb, arg, store_get(f->inner, key, on_inner_result, a_));
}

static int fs_list(store *s, const char *prefix, store_cb cb, void *arg) {
    faulty_store *f = (faulty_store *)s;
    FORWARD(f, FAULTY_OP_LIST, 0, cb, arg, store_list(f->inner, prefix, on_inner_result, a_));
}

static int fs_put(store *s, const char *key, const char *value, size_t len, int64_t lease, store_cb cb, void *arg) {
    faulty_store *f = (faulty_store *)s;
    FORWARD(f, FAULTY_OP_PUT, 0, cb, arg, f->inner->ops->put(f->inner, key, value, len, lease, on_inner_result, a_));
}

static int fs_del(store *s, const char *key, bool prefix, store_cb cb, void *arg) {
    faulty_store *f = (faulty_store *)s;
    FORWARD(f, FAULTY_OP_DEL, 0, cb, arg, store_del(f->inner, key, prefix, on_inner_result, a_));
}

static int fs_txn(store *s, const store_txn *t, store_cb cb, void *arg) {
    faulty_store *f = (faulty_store *)s;
    FORWARD(f, FAULTY_OP_TXN, 0, cb, arg, store_commit(f->inner, t, on_inner_result, a_));
}

static int fs_lease_grant(store *s, int ttl_secs, store_cb cb, void *arg) {
    faulty_store *f = (faulty_store *)s;
    FORWARD(f, FAULTY_OP_LEASE_GRANT, 0, cb, arg, store_lease_grant(f->inner, ttl_secs, on_inner_result, a_));
}

static int fs_lease_keepalive(store *s, int64_t lease, store_cb cb, void *arg) {
    faulty_store *f = (faulty_store *)s;
    FORWARD(f, FAULTY_OP_LEASE_KEEPALIVE, lease, cb, arg, store_lease_keepalive(f->inner, lease, on_inner_result, a_));
}

static int fs_lease_revoke(store *s, int64_t lease, store_cb cb, void *arg) {
    faulty_store *f = (faulty_store *)s;
    FORWARD(f, FAULTY_OP_LEASE_REVOKE, lease, cb, arg, store_lease_revoke(f->inner, lease, on_inner_result, a_));
}

static void fs_cancel(store *s, void *arg) {
    faulty_store *f = (faulty_store *)s;
    for (fitem **pp = &f->inflight; *pp;) {
        fitem *it = *pp;
        if (it->arg == arg) {
            *pp = it->next;
            store_cancel(f->inner, it); /* the inner store calls back for it no more */
            free_item(it);
        } else {
            pp = &it->next;
        }
    }
    unqueue(f, arg, NULL);
}

/* ---- watches ------------------------------------------------------------------- */

/* Queues RESYNC for w and ends it: nothing more is delivered for it. */
static void end_watch(faulty_store *f, fwatch *w) {
    if (w->done) return;
    w->done = true;
    fitem *it = calloc(1, sizeof *it);
    if (it) {
        it->f = f;
        it->w = w;
        it->ev = (store_event){.type = STORE_EVENT_RESYNC, .revision = f->known_rev};
        enqueue(f, it);
    }
    /* without memory the watch just ends silently: tests run with memory */
}

static void on_inner_event(void *arg, const store_event *ev) {
    fwatch *w = arg;
    faulty_store *f = w->f;
    if (w->done) return;
    /* while disconnected nothing arrives, not even the end of the watch:
     * resuming finds out whether it can go on */
    if (f->dropping && (ev->type == STORE_EVENT_RESYNC || ev->revision != w->last_rev)) {
        f->dropped++;
        return;
    }
    if (ev->type == STORE_EVENT_RESYNC) {
        end_watch(f, w);
        return;
    }
    note_rev(f, ev->revision);
    fitem *it = calloc(1, sizeof *it);
    store_kv *kv = it && ev->kv ? copy_kvs(ev->kv, 1) : NULL;
    if (!it || (ev->kv && !kv)) {
        free(it);
        end_watch(f, w); /* a gap: the watcher must list again */
        return;
    }
    it->f = f;
    it->w = w;
    it->ev = *ev;
    it->ev.kv = kv;
    it->kvs = kv;
    it->nkvs = kv ? 1 : 0;
    w->last_rev = ev->revision;
    w->next_rev = ev->revision + 1;
    enqueue(f, it);
}

static int fs_watch(store *s, const char *prefix, int64_t start_rev, store_watch_cb cb, void *arg,
                    store_watch **out) {
    faulty_store *f = (faulty_store *)s;
    faulty_mode mode = FAULTY_BEFORE;
    int err = 0;
    bool fail = take_failure(f, FAULTY_OP_WATCH, &mode, &err);
    if (fail && mode == FAULTY_AT_CALL) return err;
    fwatch *w = calloc(1, sizeof *w);
    if (!w || !(w->prefix = strdup(prefix))) {
        free(w);
        return -ENOMEM;
    }
    w->f = f;
    w->cb = cb;
    w->arg = arg;
    w->next_rev = start_rev > 0 ? start_rev : 0;
    if (fail) {
        end_watch(f, w);
    } else {
        int rc = store_watch_prefix(f->inner, prefix, start_rev, on_inner_event, w, &w->inner);
        if (rc != 0) {
            free(w->prefix);
            free(w);
            return rc;
        }
    }
    w->next = f->watches;
    f->watches = w;
    *out = (store_watch *)w;
    return 0;
}

static void release_watch(faulty_store *f, fwatch *w) {
    unqueue(f, NULL, w);
    if (w->inner) store_watch_cancel(f->inner, w->inner);
    free(w->prefix);
    free(w);
}

static void fs_watch_cancel(store *s, store_watch *sw) {
    faulty_store *f = (faulty_store *)s;
    fwatch *w = (fwatch *)sw;
    for (fwatch **pp = &f->watches; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    release_watch(f, w);
}

/* ---- controls -------------------------------------------------------------------- */

static faulty_store *of(store *s) { return (faulty_store *)s; }

void faulty_store_fail_ops(store *s, unsigned ops, faulty_mode mode, int err, unsigned count) {
    faulty_store *f = of(s);
    f->fail_ops = ops & FAULTY_OP_ALL;
    f->fail_mode = mode;
    f->fail_err = err;
    f->fail_count = err ? count : 0;
}

void faulty_store_fail(store *s, int err, unsigned count) {
    faulty_store_fail_ops(s, FAULTY_OP_REQUESTS, FAULTY_BEFORE, err, count);
}

void faulty_store_delay(store *s, unsigned ms) { of(s)->delay_ms = ms; }

void faulty_store_lose_watches(store *s) {
    faulty_store *f = of(s);
    for (fwatch *w = f->watches; w; w = w->next) {
        end_watch(f, w);
        if (w->inner) {
            store_watch_cancel(f->inner, w->inner);
            w->inner = NULL;
        }
    }
}

void faulty_store_resume_watches(store *s) {
    faulty_store *f = of(s);
    if (!f->dropping) return;
    f->dropping = false;
    for (fwatch *w = f->watches; w; w = w->next) {
        if (w->done) continue;
        if (w->inner) store_watch_cancel(f->inner, w->inner);
        w->inner = NULL;
        if (w->next_rev <= 0 ||
            store_watch_prefix(f->inner, w->prefix, w->next_rev, on_inner_event, w, &w->inner) != 0) {
            w->inner = NULL;
            end_watch(f, w);
        }
    }
}

void faulty_store_drop_watch_events(store *s, bool on) {
    if (on) of(s)->dropping = true;
    else faulty_store_resume_watches(s);
}

void faulty_store_heal(store *s) {
    faulty_store_fail(s, 0, 0);
    faulty_store_delay(s, 0);
    faulty_store_resume_watches(s);
}

unsigned long faulty_store_count(store *s, unsigned ops) {
    unsigned long n = 0;
    for (unsigned i = 0; i < NOPS; i++)
        if (ops & (1u << i)) n += of(s)->counts[i];
    return n;
}

void faulty_store_reset_counts(store *s) { memset(of(s)->counts, 0, sizeof of(s)->counts); }

unsigned long faulty_store_dropped_events(store *s) { return of(s)->dropped; }

/* ---- life ------------------------------------------------------------------------ */

static void on_closed(uv_handle_t *h) { free(h->data); }

static void fs_free(store *s) {
    faulty_store *f = (faulty_store *)s;
    while (f->inflight) {
        fitem *it = f->inflight;
        f->inflight = it->next;
        store_cancel(f->inner, it);
        free_item(it);
    }
    while (f->head) {
        fitem *it = f->head;
        f->head = it->next;
        free_item(it);
    }
    f->tail = NULL;
    while (f->watches) {
        fwatch *w = f->watches;
        f->watches = w->next;
        release_watch(f, w);
    }
    uv_close((uv_handle_t *)&f->timer, on_closed);
}

static const store_ops faulty_ops = {
    .get = fs_get,
    .list = fs_list,
    .put = fs_put,
    .del = fs_del,
    .txn = fs_txn,
    .lease_grant = fs_lease_grant,
    .lease_keepalive = fs_lease_keepalive,
    .lease_revoke = fs_lease_revoke,
    .watch = fs_watch,
    .watch_cancel = fs_watch_cancel,
    .cancel = fs_cancel,
    .free = fs_free,
};

store *faulty_store_new(uv_loop_t *loop, store *inner) {
    if (!inner) return NULL;
    faulty_store *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    if (uv_timer_init(loop, &f->timer) != 0) {
        free(f);
        return NULL;
    }
    f->base.ops = &faulty_ops;
    f->loop = loop;
    f->inner = inner;
    f->timer.data = f;
    return &f->base;
}
