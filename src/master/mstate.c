/*
 * mstate: three feeds (nodes, topologies, assignments), each a cycle of
 * list -> watch from the listed revision + 1 -> (RESYNC) -> list again.
 * A feed's map holds the checked records; its revs map holds the store
 * revision last known per key (deleted keys included), so that an event
 * older than the leader's own write is not applied over it. Restarts and
 * retries go through one timer, since a watch cannot be cancelled inside
 * its own callback.
 */
#include "master/mstate.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "master/records.h"

#define MSTATE_RETRY_MS 1000

typedef struct feed {
    mstate *m;
    mstate_feed kind;
    char prefix[512];
    json_t *map;  /* name -> record */
    json_t *revs; /* name -> revision last known */
    store_watch *watch;
    bool listed;
    bool busy;         /* a list in flight */
    bool want_restart; /* list again at the next timer */
    uint64_t gen, req_gen;
} feed;

struct mstate {
    uv_loop_t *loop;
    store *st;
    mstate_cb on_change;
    void *arg;
    bool running;
    feed feeds[MSTATE_NFEEDS];
    json_t *by_id; /* topology id -> record; NULL = to rebuild */
    uv_timer_t timer;
};

static const char *feed_names[MSTATE_NFEEDS] = {"nodes", "topologies", "assignments"};

static void list_feed(feed *f);

static json_t *check(mstate_feed kind, const char *name, const char *value, size_t len, char *err, size_t errlen) {
    switch (kind) {
    case MSTATE_NODES: return rec_node(name, value, len, err, errlen);
    case MSTATE_TOPOLOGIES: return rec_topology(name, value, len, err, errlen);
    default: return rec_assignment(name, value, len, err, errlen);
    }
}

/* the key's name below the feed's prefix, or NULL (a deeper key) */
static const char *name_of(const feed *f, const char *key) {
    size_t n = strlen(f->prefix);
    if (strncmp(key, f->prefix, n) != 0 || !key[n] || strchr(key + n, '/')) return NULL;
    return key + n;
}

static void changed(mstate *m, feed *f) {
    if (f->kind == MSTATE_TOPOLOGIES) {
        json_decref(m->by_id);
        m->by_id = NULL;
    }
    m->on_change(m->arg);
}

/* ---- the cycle ----------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t) {
    mstate *m = t->data;
    if (!m->running) return;
    for (int i = 0; i < MSTATE_NFEEDS; i++) {
        feed *f = &m->feeds[i];
        if (!f->want_restart || f->busy) continue;
        f->want_restart = false;
        store_watch_cancel(m->st, f->watch);
        f->watch = NULL;
        list_feed(f);
    }
}

static void restart_later(feed *f, uint64_t ms) {
    f->want_restart = true;
    f->gen++;
    uv_timer_start(&f->m->timer, on_timer, ms, 0);
}

static void on_event(void *arg, const store_event *ev) {
    feed *f = arg;
    mstate *m = f->m;
    if (ev->type == STORE_EVENT_RESYNC) {
        restart_later(f, 0);
        return;
    }
    const char *name = ev->kv ? name_of(f, ev->kv->key) : NULL;
    if (!name) return;
    json_t *known = json_object_get(f->revs, name);
    if (known && json_integer_value(known) >= ev->revision) return; /* we know newer */
    json_object_set_new(f->revs, name, json_integer(ev->revision));
    json_t *rec = NULL;
    if (ev->type == STORE_EVENT_PUT) {
        char err[256];
        rec = check(f->kind, name, ev->kv->value, ev->kv->value_len, err, sizeof err);
        if (!rec) log_warn("ignoring %s%s: %s", f->prefix, name, err);
    }
    if (rec) json_object_set_new(f->map, name, rec);
    else json_object_del(f->map, name);
    changed(m, f);
}

static void on_list(void *arg, const store_result *r) {
    feed *f = arg;
    mstate *m = f->m;
    f->busy = false;
    if (f->req_gen != f->gen) { /* stale: the timer lists again */
        uv_timer_start(&m->timer, on_timer, 0, 0);
        return;
    }
    if (r->err) {
        log_warn("listing %s failed: %s; retrying", f->prefix, sd_strerror(r->err));
        restart_later(f, MSTATE_RETRY_MS);
        return;
    }
    json_t *map = json_object(), *revs = json_object();
    if (!map || !revs) {
        json_decref(map);
        json_decref(revs);
        restart_later(f, MSTATE_RETRY_MS);
        return;
    }
    for (size_t i = 0; i < r->nkvs; i++) {
        const char *name = name_of(f, r->kvs[i].key);
        if (!name) continue;
        char err[256];
        json_t *rec = check(f->kind, name, r->kvs[i].value, r->kvs[i].value_len, err, sizeof err);
        if (!rec) log_warn("ignoring %s: %s", r->kvs[i].key, err);
        else json_object_set_new(map, name, rec);
        json_object_set_new(revs, name, json_integer(r->kvs[i].mod_rev));
    }
    json_decref(f->map);
    json_decref(f->revs);
    f->map = map;
    f->revs = revs;
    int rc = store_watch_prefix(m->st, f->prefix, r->revision + 1, on_event, f, &f->watch);
    if (rc != 0) {
        f->watch = NULL;
        log_warn("watching %s failed: %s; retrying", f->prefix, sd_strerror(rc));
        restart_later(f, MSTATE_RETRY_MS);
        return;
    }
    f->listed = true;
    changed(m, f);
}

static void list_feed(feed *f) {
    f->busy = true;
    f->req_gen = f->gen;
    int rc = store_list(f->m->st, f->prefix, on_list, f);
    if (rc != 0) {
        f->busy = false;
        log_warn("listing %s failed: %s; retrying", f->prefix, sd_strerror(rc));
        restart_later(f, MSTATE_RETRY_MS);
    }
}

/* ---- API ------------------------------------------------------------------------------- */

mstate *mstate_new(uv_loop_t *loop, store *st, const char *cluster, mstate_cb on_change, void *arg) {
    mstate *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->loop = loop;
    m->st = st;
    m->on_change = on_change;
    m->arg = arg;
    for (int i = 0; i < MSTATE_NFEEDS; i++) {
        feed *f = &m->feeds[i];
        f->m = m;
        f->kind = (mstate_feed)i;
        f->map = json_object();
        f->revs = json_object();
        if (!f->map || !f->revs || store_key(f->prefix, sizeof f->prefix, cluster, "%s/", feed_names[i]) != 0) {
            for (int j = 0; j <= i; j++) {
                json_decref(m->feeds[j].map);
                json_decref(m->feeds[j].revs);
            }
            free(m);
            return NULL;
        }
    }
    uv_timer_init(loop, &m->timer);
    m->timer.data = m;
    return m;
}

void mstate_stop(mstate *m) {
    m->running = false;
    uv_timer_stop(&m->timer);
    for (int i = 0; i < MSTATE_NFEEDS; i++) {
        feed *f = &m->feeds[i];
        store_cancel(m->st, f);
        store_watch_cancel(m->st, f->watch);
        f->watch = NULL;
        f->listed = f->busy = f->want_restart = false;
        f->gen++;
        json_object_clear(f->map);
        json_object_clear(f->revs);
    }
    json_decref(m->by_id);
    m->by_id = NULL;
}

void mstate_start(mstate *m) {
    mstate_stop(m);
    m->running = true;
    for (int i = 0; i < MSTATE_NFEEDS; i++) list_feed(&m->feeds[i]);
}

bool mstate_synced(const mstate *m) {
    for (int i = 0; i < MSTATE_NFEEDS; i++)
        if (!m->feeds[i].listed) return false;
    return m->running;
}

json_t *mstate_map(const mstate *m, mstate_feed f) { return m->feeds[f].map; }

json_t *mstate_topology_by_id(mstate *m, const char *tid) {
    if (!m->by_id) {
        m->by_id = json_object();
        const char *name;
        json_t *rec;
        json_object_foreach(m->feeds[MSTATE_TOPOLOGIES].map, name, rec) {
            if (m->by_id) json_object_set(m->by_id, rec_str(rec, "id"), rec);
        }
        if (!m->by_id) return NULL;
    }
    return json_object_get(m->by_id, tid);
}

void mstate_apply(mstate *m, mstate_feed kind, const char *name, json_t *rec, int64_t rev) {
    feed *f = &m->feeds[kind];
    if (!m->running) {
        json_decref(rec);
        return;
    }
    json_t *known = json_object_get(f->revs, name);
    if (known && json_integer_value(known) > rev) { /* an event already told us something newer */
        json_decref(rec);
        return;
    }
    json_object_set_new(f->revs, name, json_integer(rev));
    if (rec) json_object_set_new(f->map, name, rec);
    else json_object_del(f->map, name);
    changed(m, f);
}

void mstate_resync(mstate *m) {
    if (!m->running) return;
    for (int i = 0; i < MSTATE_NFEEDS; i++) restart_later(&m->feeds[i], 0);
}

static void on_closed(uv_handle_t *h) {
    mstate *m = h->data;
    for (int i = 0; i < MSTATE_NFEEDS; i++) {
        json_decref(m->feeds[i].map);
        json_decref(m->feeds[i].revs);
    }
    free(m);
}

void mstate_free(mstate *m) {
    if (!m) return;
    mstate_stop(m);
    uv_close((uv_handle_t *)&m->timer, on_closed);
}
