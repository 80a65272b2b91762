/*
 * memstore: store.h in memory (local mode, and tests of the code above the
 * store). One thread: the owner's loop thread owns everything here: the key
 * array (sorted by key, so prefix listing is a range), the leases, the
 * watches, the completions not yet delivered and a bounded history of
 * changes. A request is carried out at once; its completion and the watch
 * events it causes are delivered from a zero-delay timer, so a callback never
 * runs inside the call that caused it (as with etcd). The history lets a
 * watch start from a past revision; one that asks for a revision older than
 * the history gets STORE_EVENT_RESYNC, as etcd answers a compacted revision.
 */
#include "store/memstore.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define HISTORY_MAX 8192 /* changes kept for watches that start in the past */

typedef struct mkv {
    char *key, *value;
    size_t value_len;
    int64_t create_rev, mod_rev, lease;
} mkv;

typedef struct mlease {
    int64_t id;
    int ttl_secs;
    uint64_t deadline_ms; /* uv_now() at which it expires */
} mlease;

typedef struct mevent { /* one change, in the history ring */
    store_event_type type;
    mkv kv; /* DELETE: key and mod_rev (the delete's revision) only */
    int64_t rev;
} mevent;

struct store_watch {
    char *prefix;
    store_watch_cb cb;
    void *arg;
    uint64_t next_seq; /* the next history entry this watch has not seen */
    bool resync;       /* owes a RESYNC event, then stops */
    bool done;         /* delivered RESYNC: no more events */
    bool cancelled;
    store_watch *next;
};

typedef struct completion {
    store_cb cb;
    void *arg;
    store_result r;
    mkv *kvs; /* owned copies behind r.kvs */
    bool cancelled;
    struct completion *next;
} completion;

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
    mevent *history;      /* ring of HISTORY_MAX */
    uint64_t hist_first;  /* sequence number of the oldest entry kept */
    uint64_t hist_end;    /* sequence number the next change gets */
    completion *done_head, *done_tail;
    uv_timer_t deliver_timer, lease_timer;
    bool delivering;
    int open_handles;
} memstore;

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

static void mkv_clear(mkv *kv) {
    free(kv->key);
    free(kv->value);
    kv->key = kv->value = NULL;
}

/* A NUL-terminated copy of len bytes (values may hold NULs; the NUL makes
 * text values usable as C strings). */
static char *dup_bytes(const char *v, size_t len) {
    char *c = malloc(len + 1);
    if (!c) return NULL;
    if (len) memcpy(c, v, len);
    c[len] = '\0';
    return c;
}

static int mkv_copy(const mkv *src, mkv *dst) {
    *dst = *src;
    dst->key = strdup(src->key);
    dst->value = src->value ? dup_bytes(src->value, src->value_len) : NULL;
    if (!dst->key || (src->value && !dst->value)) {
        mkv_clear(dst);
        return -ENOMEM;
    }
    return 0;
}

static store_kv view(const mkv *kv) {
    return (store_kv){.key = kv->key, .value = kv->value, .value_len = kv->value_len, .create_rev = kv->create_rev,
                      .mod_rev = kv->mod_rev, .lease = kv->lease};
}

/* ---- delivery ------------------------------------------------------------------ */

static void deliver(uv_timer_t *t);

static void kick(memstore *m) {
    if (!m->delivering && !uv_is_active((uv_handle_t *)&m->deliver_timer))
        uv_timer_start(&m->deliver_timer, deliver, 0, 0);
}

static void free_completion(completion *c) {
    if (c->kvs) {
        for (size_t i = 0; i < c->r.nkvs; i++) mkv_clear(&c->kvs[i]);
        free((store_kv *)c->r.kvs);
    }
    free(c->kvs);
    free(c);
}

static bool watch_pending(const memstore *m, const store_watch *w) {
    return !w->cancelled && !w->done && (w->resync || w->next_seq < m->hist_end);
}

static void deliver_watch(memstore *m, store_watch *w) {
    if (w->next_seq < m->hist_first) w->resync = true; /* fell out of the history */
    if (w->resync) {
        w->resync = false;
        w->done = true;
        store_event ev = {.type = STORE_EVENT_RESYNC, .revision = m->rev};
        w->cb(w->arg, &ev);
        return;
    }
    uint64_t end = m->hist_end; /* changes made by callbacks go to the next round */
    while (w->next_seq < end && !w->cancelled) {
        const mevent *e = &m->history[w->next_seq % HISTORY_MAX];
        w->next_seq++;
        if (!has_prefix(e->kv.key, w->prefix)) continue;
        store_kv kv = view(&e->kv);
        store_event ev = {.type = e->type, .kv = &kv, .revision = e->rev};
        w->cb(w->arg, &ev);
    }
}

static void reap_cancelled(memstore *m) {
    for (store_watch **pp = &m->watches; *pp;) {
        store_watch *w = *pp;
        if (w->cancelled) {
            *pp = w->next;
            free(w->prefix);
            free(w);
        } else {
            pp = &w->next;
        }
    }
}

static void deliver(uv_timer_t *t) {
    memstore *m = t->data;
    m->delivering = true;
    completion *c = m->done_head; /* completions queued by callbacks go to the next round */
    m->done_head = m->done_tail = NULL;
    while (c) {
        completion *next = c->next;
        if (!c->cancelled && c->cb) c->cb(c->arg, &c->r);
        free_completion(c);
        c = next;
    }
    for (store_watch *w = m->watches; w; w = w->next)
        if (watch_pending(m, w)) deliver_watch(m, w);
    m->delivering = false;
    reap_cancelled(m);
    bool more = m->done_head != NULL;
    for (store_watch *w = m->watches; w && !more; w = w->next) more = watch_pending(m, w);
    if (more) kick(m);
}

/* Queues a completion; kvs (may be NULL) becomes the completion's. */
static int complete(memstore *m, store_cb cb, void *arg, const store_result *r, mkv *kvs) {
    completion *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    c->cb = cb;
    c->arg = arg;
    c->r = *r;
    c->kvs = kvs;
    if (kvs) {
        store_kv *views = calloc(r->nkvs ? r->nkvs : 1, sizeof *views);
        if (!views) {
            free(c);
            return -ENOMEM;
        }
        for (size_t i = 0; i < r->nkvs; i++) views[i] = view(&kvs[i]);
        c->r.kvs = views;
    }
    if (m->done_tail) m->done_tail->next = c;
    else m->done_head = c;
    m->done_tail = c;
    kick(m);
    return 0;
}

/* Records a change for the watches. The change is made already, so a copy
 * that cannot be allocated leaves a gap: every watch then resyncs. */
static void record(memstore *m, store_event_type type, const mkv *kv, int64_t rev) {
    mevent *slot = &m->history[m->hist_end % HISTORY_MAX];
    if (m->hist_end - m->hist_first == HISTORY_MAX) {
        mkv_clear(&slot->kv);
        m->hist_first++;
    }
    mkv copy = {0};
    if (type == STORE_EVENT_DELETE) {
        copy.key = strdup(kv->key);
        copy.mod_rev = rev;
    } else if (mkv_copy(kv, &copy) != 0) {
        copy.key = NULL;
    }
    if (!copy.key) {
        for (store_watch *w = m->watches; w; w = w->next) w->resync = true;
        kick(m);
        return;
    }
    *slot = (mevent){.type = type, .kv = copy, .rev = rev};
    m->hist_end++;
    if (m->watches) kick(m);
}

/* ---- leases ----------------------------------------------------------------------- */

static mlease *find_lease(memstore *m, int64_t id) {
    for (size_t i = 0; i < m->nleases; i++)
        if (m->leases[i].id == id) return &m->leases[i];
    return NULL;
}

static void remove_at(memstore *m, size_t i, int64_t rev) {
    record(m, STORE_EVENT_DELETE, &m->kvs[i], rev);
    mkv_clear(&m->kvs[i]);
    memmove(&m->kvs[i], &m->kvs[i + 1], (m->n - i - 1) * sizeof *m->kvs);
    m->n--;
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
        if (m->leases[i].deadline_ms <= now) drop_lease(m, i);
        else i++;
    }
    arm_lease_timer(m);
}

/* ---- the operations, carried out at once --------------------------------------- */

/* Writes key at revision rev (the caller bumps m->rev once per request). */
static int do_put(memstore *m, const char *key, const char *value, size_t len, int64_t lease, int64_t rev) {
    if (lease != 0 && !find_lease(m, lease)) return SD_ELEASE_LOST;
    if (len > STORE_MAX_VALUE) return -E2BIG;
    char *v = dup_bytes(value, len);
    if (!v) return -ENOMEM;
    long i = find(m, key);
    if (i >= 0) {
        free(m->kvs[i].value);
        m->kvs[i].value = v;
        m->kvs[i].value_len = len;
        m->kvs[i].mod_rev = rev;
        m->kvs[i].lease = lease;
    } else {
        if (m->n == m->cap) {
            size_t cap = m->cap ? m->cap * 2 : 64;
            mkv *kvs = realloc(m->kvs, cap * sizeof *kvs);
            if (!kvs) return free(v), -ENOMEM;
            m->kvs = kvs;
            m->cap = cap;
        }
        char *k = strdup(key);
        if (!k) return free(v), -ENOMEM;
        i = -i - 1;
        memmove(&m->kvs[i + 1], &m->kvs[i], (m->n - (size_t)i) * sizeof *m->kvs);
        m->kvs[i] = (mkv){.key = k, .value = v, .value_len = len, .create_rev = rev, .mod_rev = rev, .lease = lease};
        m->n++;
    }
    record(m, STORE_EVENT_PUT, &m->kvs[i], rev);
    return 0;
}

/* Deletes key (or the prefix range) at revision rev; returns the count. */
static int64_t do_del(memstore *m, const char *key, bool prefix, int64_t rev) {
    if (!prefix) {
        long i = find(m, key);
        if (i < 0) return 0;
        remove_at(m, (size_t)i, rev);
        return 1;
    }
    size_t i = lower_bound(m, key);
    int64_t count = 0;
    while (i < m->n && has_prefix(m->kvs[i].key, key)) {
        remove_at(m, i, rev);
        count++;
    }
    return count;
}

/* Copies the range [first, last) of keys for a result. */
static int copy_range(memstore *m, size_t first, size_t last, mkv **out) {
    *out = calloc(last > first ? last - first : 1, sizeof **out);
    if (!*out) return -ENOMEM;
    for (size_t i = first; i < last; i++) {
        if (mkv_copy(&m->kvs[i], &(*out)[i - first]) != 0) {
            for (size_t k = first; k < i; k++) mkv_clear(&(*out)[k - first]);
            free(*out);
            *out = NULL;
            return -ENOMEM;
        }
    }
    return 0;
}

static int ms_read(memstore *m, const char *key, bool prefix, store_cb cb, void *arg) {
    size_t first = lower_bound(m, key), last = first;
    if (prefix) {
        while (last < m->n && has_prefix(m->kvs[last].key, key)) last++;
    } else if (first < m->n && strcmp(m->kvs[first].key, key) == 0) {
        last = first + 1;
    }
    mkv *kvs;
    int rc = copy_range(m, first, last, &kvs);
    if (rc != 0) return rc;
    store_result r = {.revision = m->rev, .nkvs = last - first};
    rc = complete(m, cb, arg, &r, kvs);
    if (rc != 0) {
        for (size_t i = 0; i < last - first; i++) mkv_clear(&kvs[i]);
        free(kvs);
    }
    return rc;
}

static int ms_get(store *s, const char *key, store_cb cb, void *arg) {
    return ms_read((memstore *)s, key, false, cb, arg);
}

static int ms_list(store *s, const char *prefix, store_cb cb, void *arg) {
    return ms_read((memstore *)s, prefix, true, cb, arg);
}

static int ms_put(store *s, const char *key, const char *value, size_t len, int64_t lease, store_cb cb, void *arg) {
    memstore *m = (memstore *)s;
    if (len == 0 && value) len = strlen(value);
    int rc = do_put(m, key, value ? value : "", len, lease, m->rev + 1);
    store_result r = {.err = rc};
    if (rc == 0) r.revision = ++m->rev;
    else r.revision = m->rev;
    return complete(m, cb, arg, &r, NULL);
}

static int ms_del(store *s, const char *key, bool prefix, store_cb cb, void *arg) {
    memstore *m = (memstore *)s;
    int64_t n = do_del(m, key, prefix, m->rev + 1);
    if (n > 0) m->rev++; /* one revision for the whole range, as in etcd */
    store_result r = {.revision = m->rev, .deleted = n};
    return complete(m, cb, arg, &r, NULL);
}

static bool cmp_holds(memstore *m, const store_cmp *c) {
    long i = find(m, c->key);
    const mkv *kv = i >= 0 ? &m->kvs[i] : NULL;
    int d;
    if (c->target == STORE_CMP_VALUE) {
        if (!kv) return false; /* etcd: a value compare on a missing key fails */
        d = strcmp(kv->value, c->value ? c->value : "");
    } else {
        int64_t have = !kv ? 0 : c->target == STORE_CMP_CREATE_REV ? kv->create_rev : kv->mod_rev;
        d = have < c->rev ? -1 : have > c->rev;
    }
    switch (c->op) {
    case STORE_CMP_EQUAL: return d == 0;
    case STORE_CMP_NOT_EQUAL: return d != 0;
    case STORE_CMP_LESS: return d < 0;
    case STORE_CMP_GREATER: return d > 0;
    }
    return false;
}

static int ms_txn(store *s, const store_txn *t, store_cb cb, void *arg) {
    memstore *m = (memstore *)s;
    bool ok = true;
    for (size_t i = 0; i < t->ncmps && ok; i++) ok = cmp_holds(m, &t->cmps[i]);
    const store_op *ops = ok ? t->then : t->otherwise;
    size_t nops = ok ? t->nthen : t->notherwise;
    /* every op of a txn is checked first, so a txn applies whole or not at all */
    for (size_t i = 0; i < nops; i++) {
        if (ops[i].type != STORE_OP_PUT) continue;
        if (ops[i].lease != 0 && !find_lease(m, ops[i].lease)) {
            store_result r = {.err = SD_ELEASE_LOST, .revision = m->rev};
            return complete(m, cb, arg, &r, NULL);
        }
    }
    int64_t rev = m->rev + 1, deleted = 0;
    bool changed = false;
    int err = 0;
    for (size_t i = 0; i < nops && err == 0; i++) {
        const store_op *op = &ops[i];
        if (op->type == STORE_OP_PUT) {
            size_t len = op->value_len ? op->value_len : op->value ? strlen(op->value) : 0;
            err = do_put(m, op->key, op->value ? op->value : "", len, op->lease, rev);
            changed |= err == 0;
        } else {
            int64_t n = do_del(m, op->key, op->type == STORE_OP_DEL_PREFIX, rev);
            deleted += n;
            changed |= n > 0;
        }
    }
    if (changed) m->rev = rev;
    store_result r = {.err = err, .revision = m->rev, .succeeded = ok, .deleted = deleted};
    return complete(m, cb, arg, &r, NULL);
}

static int ms_lease_grant(store *s, int ttl_secs, store_cb cb, void *arg) {
    memstore *m = (memstore *)s;
    if (ttl_secs <= 0) return -EINVAL;
    if (m->nleases == m->lcap) {
        size_t cap = m->lcap ? m->lcap * 2 : 8;
        mlease *l = realloc(m->leases, cap * sizeof *l);
        if (!l) return -ENOMEM;
        m->leases = l;
        m->lcap = cap;
    }
    uv_update_time(m->loop);
    int64_t id = ++m->next_lease;
    m->leases[m->nleases++] =
        (mlease){.id = id, .ttl_secs = ttl_secs, .deadline_ms = uv_now(m->loop) + (uint64_t)ttl_secs * 1000};
    arm_lease_timer(m);
    store_result r = {.revision = m->rev, .lease = id, .ttl = ttl_secs};
    return complete(m, cb, arg, &r, NULL);
}

static int ms_lease_keepalive(store *s, int64_t lease, store_cb cb, void *arg) {
    memstore *m = (memstore *)s;
    mlease *l = find_lease(m, lease);
    store_result r = {.revision = m->rev, .lease = lease};
    if (!l) {
        r.err = SD_ELEASE_LOST;
    } else {
        uv_update_time(m->loop);
        l->deadline_ms = uv_now(m->loop) + (uint64_t)l->ttl_secs * 1000;
        r.ttl = l->ttl_secs;
        arm_lease_timer(m);
    }
    return complete(m, cb, arg, &r, NULL);
}

static int ms_lease_revoke(store *s, int64_t lease, store_cb cb, void *arg) {
    memstore *m = (memstore *)s;
    store_result r = {.err = SD_ELEASE_LOST, .lease = lease};
    for (size_t i = 0; i < m->nleases; i++) {
        if (m->leases[i].id == lease) {
            drop_lease(m, i);
            arm_lease_timer(m);
            r.err = 0;
            break;
        }
    }
    r.revision = m->rev;
    return complete(m, cb, arg, &r, NULL);
}

static int ms_watch(store *s, const char *prefix, int64_t start_rev, store_watch_cb cb, void *arg,
                    store_watch **out) {
    memstore *m = (memstore *)s;
    store_watch *w = calloc(1, sizeof *w);
    if (!w || !(w->prefix = strdup(prefix))) {
        free(w);
        return -ENOMEM;
    }
    w->cb = cb;
    w->arg = arg;
    w->next_seq = m->hist_end;
    if (start_rev > 0 && start_rev <= m->rev) {
        /* walk back to the first kept change at or after start_rev */
        uint64_t seq = m->hist_end;
        while (seq > m->hist_first && m->history[(seq - 1) % HISTORY_MAX].rev >= start_rev) seq--;
        w->next_seq = seq;
        /* changes before the oldest kept one are gone: like a compacted revision */
        if (seq == m->hist_first && m->hist_first > 0 && m->history[seq % HISTORY_MAX].rev > start_rev)
            w->resync = true;
    }
    w->next = m->watches;
    m->watches = w;
    if (watch_pending(m, w)) kick(m);
    *out = w;
    return 0;
}

static void ms_watch_cancel(store *s, store_watch *w) {
    memstore *m = (memstore *)s;
    w->cancelled = true;
    if (!m->delivering) reap_cancelled(m);
}

static void ms_cancel(store *s, void *arg) {
    memstore *m = (memstore *)s;
    for (completion *c = m->done_head; c; c = c->next)
        if (c->arg == arg) c->cancelled = true;
}

static void free_all(memstore *m) {
    for (size_t i = 0; i < m->n; i++) mkv_clear(&m->kvs[i]);
    free(m->kvs);
    free(m->leases);
    while (m->watches) {
        store_watch *w = m->watches;
        m->watches = w->next;
        free(w->prefix);
        free(w);
    }
    while (m->done_head) {
        completion *c = m->done_head;
        m->done_head = c->next;
        free_completion(c);
    }
    for (uint64_t q = m->hist_first; q < m->hist_end; q++) mkv_clear(&m->history[q % HISTORY_MAX].kv);
    free(m->history);
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
    .list = ms_list,
    .put = ms_put,
    .del = ms_del,
    .txn = ms_txn,
    .lease_grant = ms_lease_grant,
    .lease_keepalive = ms_lease_keepalive,
    .lease_revoke = ms_lease_revoke,
    .watch = ms_watch,
    .watch_cancel = ms_watch_cancel,
    .cancel = ms_cancel,
    .free = ms_free,
};

store *memstore_new(uv_loop_t *loop) {
    memstore *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->history = calloc(HISTORY_MAX, sizeof *m->history);
    if (!m->history) {
        free(m);
        return NULL;
    }
    m->base.ops = &memstore_ops;
    m->loop = loop;
    uv_timer_init(loop, &m->deliver_timer);
    uv_timer_init(loop, &m->lease_timer);
    m->deliver_timer.data = m->lease_timer.data = m;
    m->open_handles = 2;
    return &m->base;
}
