/*
 * election: campaign for master/leader and follow who leads (election.h).
 * One store request (the campaign txn or a get of the key) is in flight at
 * a time; a watch on the key runs between requests. A change that makes the
 * request in flight useless (a new lease, the key deleted, a watch resync)
 * bumps a generation and kicks a zero-delay timer: the request's answer,
 * if it comes from an older generation, is dropped and the cycle starts
 * over. Store errors retry after retry_ms.
 */
#include "master/election.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"

struct election {
    uv_loop_t *loop;
    store *st;
    char key[512];
    char *id, *host, *api;
    int retry_ms;
    election_cb cb;
    void *arg;
    int64_t lease;     /* 0 = none: follow, do not campaign */
    uint64_t gen;      /* bumped whenever the request in flight went stale */
    uint64_t req_gen;  /* generation of the request in flight */
    bool busy;         /* a txn or get in flight */
    bool leader;
    int64_t guard;     /* create revision of our key while leader */
    int64_t since;     /* when we won */
    bool failing;      /* store errors in a row: logged once */
    store_watch *watch;
    json_t *known;     /* the leader record seen last, or NULL */
    uv_timer_t timer;  /* restart / retry */
    uv_timer_t notify; /* delivers leadership changes outside election_* calls */
    uint64_t term;     /* wins so far */
    bool told_leader;  /* what cb was told last, and for which term */
    uint64_t told_term;
    int closing;       /* handles still to close */
};

static void submit(election *e);

/* ---- notifications --------------------------------------------------------------- */

static void on_notify(uv_timer_t *t) {
    election *e = t->data;
    /* a loss and a new win within one turn are told as both: the owner's
     * state from the older term is void */
    if (e->told_leader && (!e->leader || e->told_term != e->term)) {
        e->told_leader = false;
        e->cb(e->arg, false);
    }
    if (e->leader && !e->told_leader) {
        e->told_leader = true;
        e->told_term = e->term;
        e->cb(e->arg, true);
    }
}

/* Takes effect at once (election_guard fails from now on after a loss);
 * the owner is told on the next loop turn. */
static void set_leader(election *e, bool leader, int64_t guard) {
    if (leader && !e->leader) e->term++;
    e->leader = leader;
    e->guard = leader ? guard : 0;
    uv_timer_start(&e->notify, on_notify, 0, 0);
}

static void set_known(election *e, const char *value, size_t len) {
    json_decref(e->known);
    e->known = NULL;
    if (!value) return;
    json_t *v = json_loadb(value, len, 0, NULL);
    if (json_is_object(v) && json_is_string(json_object_get(v, "id"))) e->known = v;
    else json_decref(v);
}

/* ---- the request cycle ------------------------------------------------------------ */

static void on_timer(uv_timer_t *t) {
    election *e = t->data;
    if (e->busy) return; /* its answer is stale and starts over */
    store_watch_cancel(e->st, e->watch);
    e->watch = NULL;
    submit(e);
}

/* drop what is in flight and start over on the next loop turn */
static void restart(election *e) {
    e->gen++;
    uv_timer_start(&e->timer, on_timer, 0, 0);
}

static void retry_later(election *e, int err, const char *what) {
    if (!e->failing) log_warn("master election: %s failed: %s; retrying", what, sd_strerror(err));
    e->failing = true;
    uv_timer_start(&e->timer, on_timer, (uint64_t)e->retry_ms, 0);
}

static void on_watch(void *arg, const store_event *ev) {
    election *e = arg;
    if (ev->type == STORE_EVENT_RESYNC) {
        restart(e);
        return;
    }
    if (!ev->kv || strcmp(ev->kv->key, e->key) != 0) return; /* a longer key with the same start */
    if (ev->type == STORE_EVENT_PUT) {
        set_known(e, ev->kv->value, ev->kv->value_len);
        if (e->leader && ev->kv->create_rev != e->guard) set_leader(e, false, 0);
        return;
    }
    set_known(e, NULL, 0);
    if (e->leader) set_leader(e, false, 0);
    if (e->lease > 0) restart(e);
}

static void watch_from(election *e, int64_t rev) {
    int rc = store_watch_prefix(e->st, e->key, rev, on_watch, e, &e->watch);
    if (rc != 0) {
        e->watch = NULL;
        retry_later(e, rc, "watching the leader key");
    }
}

static void on_txn(void *arg, const store_result *r);
static void on_get(void *arg, const store_result *r);

/* A stale answer (gen moved on) is dropped and the cycle starts over. */
static bool answer_stale(election *e) {
    e->busy = false;
    if (e->req_gen == e->gen) return false;
    submit(e);
    return true;
}

static void on_get(void *arg, const store_result *r) {
    election *e = arg;
    if (answer_stale(e)) return;
    if (r->err) {
        retry_later(e, r->err, "reading the leader key");
        return;
    }
    e->failing = false;
    if (r->nkvs == 0) {
        set_known(e, NULL, 0);
        if (e->lease > 0) {
            submit(e); /* nobody leads: campaign */
            return;
        }
    } else {
        const store_kv *kv = &r->kvs[0];
        set_known(e, kv->value, kv->value_len);
        /* our own key (a campaign whose answer was lost): we lead */
        const char *id = e->known ? json_string_value(json_object_get(e->known, "id")) : NULL;
        if (e->lease > 0 && kv->lease == e->lease && id && strcmp(id, e->id) == 0) set_leader(e, true, kv->create_rev);
    }
    watch_from(e, r->revision + 1);
}

static void on_txn(void *arg, const store_result *r) {
    election *e = arg;
    if (answer_stale(e)) return;
    if (r->err == SD_ELEASE_LOST) { /* follow until the owner has a new lease */
        e->lease = 0;
        submit(e);
        return;
    }
    if (r->err) {
        retry_later(e, r->err, "campaigning");
        return;
    }
    e->failing = false;
    if (!r->succeeded) { /* someone leads: learn who, then watch */
        e->busy = true;
        e->req_gen = e->gen;
        int rc = store_get(e->st, e->key, on_get, e);
        if (rc != 0) {
            e->busy = false;
            retry_later(e, rc, "reading the leader key");
        }
        return;
    }
    json_t *me = json_pack("{s:s, s:s, s:s, s:I}", "id", e->id, "host", e->host, "api", e->api, "since",
                           (json_int_t)e->since);
    json_decref(e->known);
    e->known = me;
    set_leader(e, true, r->revision); /* the txn created the key at this revision */
    watch_from(e, r->revision + 1);
}

static void submit(election *e) {
    int rc;
    e->busy = true;
    e->req_gen = e->gen;
    if (e->lease > 0 && !e->leader) {
        e->since = (int64_t)time(NULL);
        json_t *v = json_pack("{s:s, s:s, s:s, s:I}", "id", e->id, "host", e->host, "api", e->api, "since",
                              (json_int_t)e->since);
        char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
        json_decref(v);
        if (!text) {
            e->busy = false;
            retry_later(e, -ENOMEM, "campaigning");
            return;
        }
        store_cmp cmp = {.key = e->key, .target = STORE_CMP_CREATE_REV, .op = STORE_CMP_EQUAL, .rev = 0};
        store_op put = {.type = STORE_OP_PUT, .key = e->key, .value = text, .lease = e->lease};
        store_txn t = {.cmps = &cmp, .ncmps = 1, .then = &put, .nthen = 1};
        rc = store_commit(e->st, &t, on_txn, e);
        free(text);
    } else {
        rc = store_get(e->st, e->key, on_get, e);
    }
    if (rc != 0) {
        e->busy = false;
        retry_later(e, rc, "campaigning");
    }
}

/* ---- API ------------------------------------------------------------------------------ */

election *election_new(uv_loop_t *loop, store *st, const election_options *o, election_cb cb, void *arg) {
    if (!o->cluster || !o->id || !o->host || !o->api || !cb) return NULL;
    election *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->loop = loop;
    e->st = st;
    e->cb = cb;
    e->arg = arg;
    e->retry_ms = o->retry_ms > 0 ? o->retry_ms : 1000;
    e->id = strdup(o->id);
    e->host = strdup(o->host);
    e->api = strdup(o->api);
    if (!e->id || !e->host || !e->api || store_key(e->key, sizeof e->key, o->cluster, "master/leader") != 0) {
        free(e->id);
        free(e->host);
        free(e->api);
        free(e);
        return NULL;
    }
    uv_timer_init(loop, &e->timer);
    uv_timer_init(loop, &e->notify);
    e->timer.data = e;
    e->notify.data = e;
    uv_timer_start(&e->timer, on_timer, 0, 0);
    return e;
}

void election_set_lease(election *e, int64_t lease) {
    if (lease == e->lease) return;
    e->lease = lease;
    if (e->leader) set_leader(e, false, 0);
    restart(e);
}

bool election_is_leader(const election *e) { return e->leader; }

int64_t election_guard_rev(const election *e) { return e->leader ? e->guard : 0; }

int election_guard(const election *e, store_cmp *cmp) {
    if (!e->leader || e->guard <= 0) return -EPERM;
    *cmp = (store_cmp){.key = e->key, .target = STORE_CMP_CREATE_REV, .op = STORE_CMP_EQUAL, .rev = e->guard};
    return 0;
}

const json_t *election_leader(const election *e) { return e->known; }

const char *election_leader_api(const election *e) {
    return e->known ? json_string_value(json_object_get(e->known, "api")) : NULL;
}

static void on_closed(uv_handle_t *h) {
    election *e = h->data;
    if (--e->closing > 0) return;
    free(e);
}

void election_free(election *e) {
    if (!e) return;
    store_cancel(e->st, e);
    store_watch_cancel(e->st, e->watch);
    json_decref(e->known);
    free(e->id);
    free(e->host);
    free(e->api);
    e->closing = 2;
    uv_close((uv_handle_t *)&e->timer, on_closed);
    uv_close((uv_handle_t *)&e->notify, on_closed);
}
