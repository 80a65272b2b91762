/*
 * memstore: store.h in memory (local mode). One thread: the owner's loop
 * thread owns everything here: the key array (sorted by key, so prefix
 * listing is a range), the leases, the watches and the queue of events not
 * yet delivered. Events are delivered from a zero-delay timer so a callback
 * never runs inside the put/delete that caused it (as with etcd).
 */
#include "store/memstore.h"

#include <stdbool.h>
#include <string.h>

#include "base/log.h"

typedef struct mkv {
    char *key, *value;
    int64_t create_rev, mod_rev, lease;
} mkv;

typedef struct mlease {
    int64_t id;
    int ttl_secs;
    uint64_t deadline_ms; /* uv_now() at which it expires */
} mlease;

struct store_watch {
    char *prefix;
    store_watch_cb cb;
    void *arg;
    int64_t from_rev; /* only events after this revision */
    bool cancelled;
    store_watch *next;
};

typedef struct mevent {
    store_event_type type;
    char *key, *value;
    int64_t rev;
    struct mevent *next;
} mevent;

typedef struct memstore {
    store base;
    uv_loop_t *loop;
    mkv *kvs;
    size_t n, cap;
    int64_t rev;
    mlease *leases;
    size_t nleases, lcap;
    int64_t next_lease;
    store_watch *watches;
    mevent *ev_head, *ev_tail;
    uv_timer_t deliver_timer, lease_timer;
    bool delivering;
    int open_handles;
} memstore;

static void *nomem(const char *what) {
    log_error("memstore: out of memory (%s)", what);
    return NULL;
}

/* index of key, or -(insertion point)-1 */
static long find(const memstore *m, const char *key) {
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(m->kvs[mid].key, key);
        if (c == 0) return (long)mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -(long)lo - 1;
}

static size_t lower_bound(const memstore *m, const char *key) {
    long i = find(m, key);
    return i >= 0 ? (size_t)i : (size_t)(-i - 1);
}

static bool has_prefix(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static void deliver(uv_timer_t *t);

/* Queues an event for the watches; -1 on allocation failure (the change is
 * already made, so the caller only reports it). */
static int queue_event(memstore *m, store_event_type type, const char *key, const char *value, int64_t rev) {
    if (!m->watches) return 0;
    mevent *e = calloc(1, sizeof *e);
    if (!e) return nomem("event"), -1;
    e->type = type;
    e->rev = rev;
    e->key = strdup(key);
    e->value = value ? strdup(value) : NULL;
    if (!e->key || (value && !e->value)) {
        free(e->key);
        free(e->value);
        free(e);
        return nomem("event"), -1;
    }
    if (m->ev_tail) m->ev_tail->next = e;
    else m->ev_head = e;
    m->ev_tail = e;
    if (!uv_is_active((uv_handle_t *)&m->deliver_timer)) uv_timer_start(&m->deliver_timer, deliver, 0, 0);
    return 0;
}

static void free_watch(store_watch *w) {
    free(w->prefix);
    free(w);
}

static void reap_cancelled(memstore *m) {
    for (store_watch **pp = &m->watches; *pp;) {
        store_watch *w = *pp;
        if (w->cancelled) {
            *pp = w->next;
            free_watch(w);
        } else {
            pp = &w->next;
        }
    }
}

static void deliver(uv_timer_t *t) {
    memstore *m = t->data;
    m->delivering = true;
    /* take the queue: events queued by callbacks go to the next round */
    mevent *e = m->ev_head;
    m->ev_head = m->ev_tail = NULL;
    while (e) {
        store_event ev = {.type = e->type, .key = e->key, .value = e->value, .revision = e->rev};
        for (store_watch *w = m->watches; w; w = w->next) {
            if (!w->cancelled && e->rev > w->from_rev && has_prefix(e->key, w->prefix)) w->cb(w->arg, &ev);
        }
        mevent *next = e->next;
        free(e->key);
        free(e->value);
        free(e);
        e = next;
    }
    m->delivering = false;
    reap_cancelled(m);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static int copy_kv(const mkv *src, store_kv *dst) {
    dst->key = strdup(src->key);
    dst->value = dup_or_null(src->value);
    if (!dst->key || !dst->value) {
        store_kv_clear(dst);
        nomem("copy");
        return -1;
    }
    dst->create_rev = src->create_rev;
    dst->mod_rev = src->mod_rev;
    dst->lease = src->lease;
    return 0;
}

static mlease *find_lease(memstore *m, int64_t id) {
    for (size_t i = 0; i < m->nleases; i++)
        if (m->leases[i].id == id) return &m->leases[i];
    return NULL;
}

static int ms_get(store *s, const char *key, store_kv *out) {
    memstore *m = (memstore *)s;
    long i = find(m, key);
    if (i < 0) return STORE_NOT_FOUND;
    return copy_kv(&m->kvs[i], out);
}

/* Writes key (no revision check); the caller checked the lease. */
static int do_put(memstore *m, const char *key, const char *value, int64_t lease, int64_t *rev) {
    char *v = strdup(value);
    if (!v) return nomem("value"), -1;
    long i = find(m, key);
    int64_t r = m->rev + 1;
    if (i >= 0) {
        free(m->kvs[i].value);
        m->kvs[i].value = v;
        m->kvs[i].mod_rev = r;
        m->kvs[i].lease = lease;
    } else {
        if (m->n == m->cap) {
            size_t cap = m->cap ? m->cap * 2 : 64;
            mkv *kvs = realloc(m->kvs, cap * sizeof *kvs);
            if (!kvs) return free(v), nomem("keys"), -1;
            m->kvs = kvs;
            m->cap = cap;
        }
        char *k = strdup(key);
        if (!k) return free(v), nomem("key"), -1;
        size_t at = (size_t)(-i - 1);
        memmove(&m->kvs[at + 1], &m->kvs[at], (m->n - at) * sizeof *m->kvs);
        m->kvs[at] = (mkv){.key = k, .value = v, .create_rev = r, .mod_rev = r, .lease = lease};
        m->n++;
    }
    m->rev = r;
    if (rev) *rev = r;
    queue_event(m, STORE_EVENT_PUT, key, value, r);
    return 0;
}

static int check_lease(memstore *m, int64_t lease) {
    if (lease != 0 && !find_lease(m, lease)) {
        log_error("memstore: lease %lld does not exist", (long long)lease);
        return -1;
    }
    return 0;
}

static int ms_put(store *s, const char *key, const char *value, int64_t lease, int64_t *rev) {
    memstore *m = (memstore *)s;
    if (check_lease(m, lease) != 0) return -1;
    return do_put(m, key, value, lease, rev);
}

static int ms_cas(store *s, const char *key, int64_t expect_mod_rev, const char *value, int64_t lease,
                  int64_t *rev) {
    memstore *m = (memstore *)s;
    long i = find(m, key);
    int64_t cur = i >= 0 ? m->kvs[i].mod_rev : 0;
    if (cur != expect_mod_rev) return STORE_CONFLICT;
    if (check_lease(m, lease) != 0) return -1;
    return do_put(m, key, value, lease, rev);
}

static void remove_at(memstore *m, size_t i, int64_t rev) {
    queue_event(m, STORE_EVENT_DELETE, m->kvs[i].key, NULL, rev);
    free(m->kvs[i].key);
    free(m->kvs[i].value);
    memmove(&m->kvs[i], &m->kvs[i + 1], (m->n - i - 1) * sizeof *m->kvs);
    m->n--;
}

static int ms_del(store *s, const char *key) {
    memstore *m = (memstore *)s;
    long i = find(m, key);
    if (i < 0) return STORE_NOT_FOUND;
    remove_at(m, (size_t)i, ++m->rev);
    return 0;
}

static int ms_del_prefix(store *s, const char *prefix, size_t *ndeleted) {
    memstore *m = (memstore *)s;
    size_t i = lower_bound(m, prefix), count = 0;
    int64_t rev = m->rev + 1; /* one revision for the whole range, as in etcd */
    while (i < m->n && has_prefix(m->kvs[i].key, prefix)) {
        remove_at(m, i, rev);
        count++;
    }
    if (count) m->rev = rev;
    if (ndeleted) *ndeleted = count;
    return 0;
}

static int ms_list_prefix(store *s, const char *prefix, store_kv **out, size_t *n) {
    memstore *m = (memstore *)s;
    size_t first = lower_bound(m, prefix), last = first;
    while (last < m->n && has_prefix(m->kvs[last].key, prefix)) last++;
    *out = NULL;
    *n = 0;
    if (last == first) return 0;
    store_kv *kvs = calloc(last - first, sizeof *kvs);
    if (!kvs) return nomem("list"), -1;
    for (size_t i = first; i < last; i++) {
        if (copy_kv(&m->kvs[i], &kvs[i - first]) != 0) {
            store_kvs_free(kvs, i - first);
            return -1;
        }
    }
    *out = kvs;
    *n = last - first;
    return 0;
}

static void on_lease_timer(uv_timer_t *t);

/* (Re)arms the lease timer for the earliest deadline. */
static void arm_lease_timer(memstore *m) {
    if (m->nleases == 0) {
        uv_timer_stop(&m->lease_timer);
        return;
    }
    uint64_t first = m->leases[0].deadline_ms;
    for (size_t i = 1; i < m->nleases; i++)
        if (m->leases[i].deadline_ms < first) first = m->leases[i].deadline_ms;
    uint64_t now = uv_now(m->loop);
    uv_timer_start(&m->lease_timer, on_lease_timer, first > now ? first - now : 0, 0);
}

/* Drops lease idx and every key attached to it (one revision). */
static void drop_lease(memstore *m, size_t idx) {
    int64_t id = m->leases[idx].id;
    m->leases[idx] = m->leases[--m->nleases];
    int64_t rev = m->rev + 1;
    bool any = false;
    for (size_t i = 0; i < m->n;) {
        if (m->kvs[i].lease == id) {
            remove_at(m, i, rev);
            any = true;
        } else {
            i++;
        }
    }
    if (any) m->rev = rev;
}

static void on_lease_timer(uv_timer_t *t) {
    memstore *m = t->data;
    uint64_t now = uv_now(m->loop);
    for (size_t i = 0; i < m->nleases;) {
        if (m->leases[i].deadline_ms <= now) {
            log_debug("memstore: lease %lld expired", (long long)m->leases[i].id);
            drop_lease(m, i);
        } else {
            i++;
        }
    }
    arm_lease_timer(m);
}

static int ms_lease_grant(store *s, int ttl_secs, int64_t *lease) {
    memstore *m = (memstore *)s;
    if (ttl_secs <= 0) {
        log_error("memstore: lease TTL must be positive, got %d", ttl_secs);
        return -1;
    }
    if (m->nleases == m->lcap) {
        size_t cap = m->lcap ? m->lcap * 2 : 8;
        mlease *l = realloc(m->leases, cap * sizeof *l);
        if (!l) return nomem("lease"), -1;
        m->leases = l;
        m->lcap = cap;
    }
    uv_update_time(m->loop);
    int64_t id = ++m->next_lease;
    m->leases[m->nleases++] = (mlease){.id = id, .ttl_secs = ttl_secs,
                                       .deadline_ms = uv_now(m->loop) + (uint64_t)ttl_secs * 1000};
    *lease = id;
    arm_lease_timer(m);
    return 0;
}

static int ms_lease_keepalive(store *s, int64_t lease) {
    memstore *m = (memstore *)s;
    mlease *l = find_lease(m, lease);
    if (!l) return STORE_NOT_FOUND;
    uv_update_time(m->loop);
    l->deadline_ms = uv_now(m->loop) + (uint64_t)l->ttl_secs * 1000;
    arm_lease_timer(m);
    return 0;
}

static int ms_lease_revoke(store *s, int64_t lease) {
    memstore *m = (memstore *)s;
    for (size_t i = 0; i < m->nleases; i++) {
        if (m->leases[i].id == lease) {
            drop_lease(m, i);
            arm_lease_timer(m);
            return 0;
        }
    }
    return STORE_NOT_FOUND;
}

static store_watch *ms_watch_prefix(store *s, const char *prefix, store_watch_cb cb, void *arg) {
    memstore *m = (memstore *)s;
    store_watch *w = calloc(1, sizeof *w);
    if (!w || !(w->prefix = strdup(prefix))) {
        free(w);
        return nomem("watch");
    }
    w->cb = cb;
    w->arg = arg;
    w->from_rev = m->rev;
    w->next = m->watches;
    m->watches = w;
    return w;
}

static void ms_watch_cancel(store *s, store_watch *w) {
    memstore *m = (memstore *)s;
    if (!w) return;
    w->cancelled = true;
    if (!m->delivering) reap_cancelled(m);
}

static void free_all(memstore *m) {
    for (size_t i = 0; i < m->n; i++) {
        free(m->kvs[i].key);
        free(m->kvs[i].value);
    }
    free(m->kvs);
    free(m->leases);
    while (m->watches) {
        store_watch *w = m->watches;
        m->watches = w->next;
        free_watch(w);
    }
    while (m->ev_head) {
        mevent *e = m->ev_head;
        m->ev_head = e->next;
        free(e->key);
        free(e->value);
        free(e);
    }
    free(m);
}

static void on_closed(uv_handle_t *h) {
    memstore *m = h->data;
    if (--m->open_handles == 0) free_all(m);
}

static void ms_free(store *s) {
    memstore *m = (memstore *)s;
    uv_close((uv_handle_t *)&m->deliver_timer, on_closed);
    uv_close((uv_handle_t *)&m->lease_timer, on_closed);
}

static const store_ops memstore_ops = {
    .get = ms_get,
    .put = ms_put,
    .del = ms_del,
    .del_prefix = ms_del_prefix,
    .list_prefix = ms_list_prefix,
    .cas = ms_cas,
    .lease_grant = ms_lease_grant,
    .lease_keepalive = ms_lease_keepalive,
    .lease_revoke = ms_lease_revoke,
    .watch_prefix = ms_watch_prefix,
    .watch_cancel = ms_watch_cancel,
    .free = ms_free,
};

store *memstore_new(uv_loop_t *loop) {
    memstore *m = calloc(1, sizeof *m);
    if (!m) return nomem("store");
    m->base.ops = &memstore_ops;
    m->loop = loop;
    uv_timer_init(loop, &m->deliver_timer);
    uv_timer_init(loop, &m->lease_timer);
    m->deliver_timer.data = m->lease_timer.data = m;
    m->open_handles = 2;
    return &m->base;
}
