/*
 * lifecycle: submission, status changes and kills (see lifecycle.h).
 * A submission goes: thread pool (subcheck) -> package chunks into the
 * store -> guarded txn creating topologies/<name> (only if the name is
 * free) -> 201. Status changes and kills are one guarded put of the
 * topology record; the reconciler then rewrites the assignment's "active"
 * flag. One timer fires at the earliest kill deadline.
 */
#include "master/lifecycle.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "master/election.h"
#include "master/gwrite.h"
#include "master/mstate.h"
#include "master/records.h"
#include "master/subcheck.h"
#include "package/package.h"
#include "transport/auth.h"

typedef struct submission {
    life *l;
    api_request *req; /* NULL once answered */
    uv_work_t work;
    const void *body;
    size_t len;
    char *want_hash;
    subcheck chk;
    uint64_t term;
    json_t *rec;     /* the topology record being created */
    bool registered; /* its name is in life.submitting */
    bool storing;    /* package_store_put in flight (its callback pending) */
    struct submission *prev, *next;
} submission;

struct life {
    master_ctx *m;
    uv_timer_t kill_timer;
    json_t *submitting; /* name -> package hash, while a submission of that name is in flight */
    json_t *deleting;   /* name -> true while its deletion txn is in flight */
    submission *subs;   /* submissions past the thread pool */
    int works;          /* submissions on the thread pool */
};

/* a status change or a kill, waiting for its write */
typedef struct change {
    life *l;
    api_request *req;
    char name[REC_MAX_ID + 1];
    json_t *rec;
} change;

static int64_t now_s(void) { return (int64_t)time(NULL); }

/* Not leader (any more): point at the leader if one is known. */
static void answer_not_leader(master_ctx *m, api_request *req) {
    const char *api = election_leader_api(m->el);
    if (api && strcmp(api, m->api_url) != 0) api_redirect(req, api);
    else api_respond_error(req, 503, "this master is not the leader; retry shortly");
}

static int topo_key(master_ctx *m, char *key, size_t cap, const char *name) {
    return store_key(key, cap, m->cluster, "topologies/%s", name);
}

/* ---- submission -------------------------------------------------------------------- */

static void sub_unlink(submission *s) {
    life *l = s->l;
    if (s->prev) s->prev->next = s->next;
    else if (l->subs == s) l->subs = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

static void sub_free(submission *s) {
    if (s->storing) package_store_cancel(s->l->m->st, s);
    sub_unlink(s);
    if (s->registered) json_object_del(s->l->submitting, s->chk.name);
    subcheck_clear(&s->chk);
    json_decref(s->rec);
    free(s->want_hash);
    free(s);
}

static void sub_fail(submission *s, int status, const char *msg) {
    if (s->req) api_respond_error(s->req, status, "%s", msg);
    s->req = NULL;
    sub_free(s);
}

static void on_topology_created(master_ctx *m, void *arg, int err, const store_result *r) {
    submission *s = arg;
    if (err == 0) {
        const char *name = s->chk.name;
        log_info("topology %s submitted as %s (package %s, %d worker(s), %d task(s))", name, rec_str(s->rec, "id"),
                 s->chk.hash, s->chk.workers, s->chk.ntasks);
        api_respond_json(s->req, 201,
                         json_pack("{s:s, s:s, s:s}", "name", name, "id", rec_str(s->rec, "id"), "package", s->chk.hash));
        s->req = NULL;
        mstate_apply(m->state, MSTATE_TOPOLOGIES, name, json_incref(s->rec), r->revision);
        master_reschedule(m);
        sub_free(s);
    } else if (err == -ESTALE && json_object_get(mstate_map(m->state, MSTATE_TOPOLOGIES), s->chk.name)) {
        sub_fail(s, 409, "a topology of that name exists");
    } else if (err == -EPERM || err == -ESTALE) {
        if (s->req) answer_not_leader(m, s->req);
        s->req = NULL;
        sub_free(s);
    } else {
        log_warn("topology %s: cannot create its key: %s", s->chk.name, sd_strerror(err));
        sub_fail(s, 503, err == -ECANCELED ? "the master is stopping" : "the store did not take the topology");
    }
}

static json_t *topology_record(const submission *s) {
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) rnd = (uint32_t)(uv_hrtime() ^ (uint64_t)getpid());
    char id[REC_MAX_ID + 32];
    int64_t now = now_s();
    snprintf(id, sizeof id, "%s-%lld-%08x", s->chk.name, (long long)now, rnd);
    /* the topology's secret: workers prove they hold it to each other (auth.h) */
    char secret[AUTH_KEY_HEX];
    if (auth_key_new(secret) != 0) {
        log_error("topology %s: no random bytes for its secret", s->chk.name);
        return NULL;
    }
    json_t *rec = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:O, s:O, s:I}", "name", s->chk.name, "id", id,
                            "status", "active", "package", s->chk.hash, "secret", secret, "workers", s->chk.workers,
                            "ntasks", s->chk.ntasks, "conf", s->chk.conf, "components", s->chk.components,
                            "submit_time", (json_int_t)now);
    OPENSSL_cleanse(secret, sizeof secret);
    return rec;
}

static void on_package_stored(void *arg, int err) {
    submission *s = arg;
    master_ctx *m = s->l->m;
    s->storing = false;
    if (err == -EPERM) {
        answer_not_leader(m, s->req);
        s->req = NULL;
        sub_free(s);
        return;
    }
    if (err != 0) {
        log_warn("topology %s: storing package %s failed: %s", s->chk.name, s->chk.hash, sd_strerror(err));
        sub_fail(s, 503, "the store did not take the package");
        return;
    }
    if (m->stopping || !m->leading || s->term != m->term) {
        if (s->req) answer_not_leader(m, s->req);
        s->req = NULL;
        sub_free(s);
        return;
    }
    char key[512];
    s->rec = topology_record(s);
    char *text = s->rec ? json_dumps(s->rec, JSON_COMPACT) : NULL;
    int rc = text ? topo_key(m, key, sizeof key, s->chk.name) : -ENOMEM;
    if (rc == 0) {
        store_cmp free_name = {.key = key, .target = STORE_CMP_CREATE_REV, .op = STORE_CMP_EQUAL, .rev = 0};
        store_op put = {.type = STORE_OP_PUT, .key = key, .value = text};
        rc = gwrite_txn(m, &free_name, 1, &put, 1, on_topology_created, s);
    }
    free(text);
    if (rc == -EPERM) {
        answer_not_leader(m, s->req);
        s->req = NULL;
        sub_free(s);
    } else if (rc != 0) {
        sub_fail(s, 503, sd_strerror(rc));
    }
}

static void check_work(uv_work_t *w) {
    submission *s = w->data;
    subcheck_run(s->body, s->len, s->want_hash, NULL, &s->chk);
}

static void check_done(uv_work_t *w, int status) {
    submission *s = w->data;
    life *l = s->l;
    master_ctx *m = l->m;
    l->works--;
    s->next = l->subs; /* from now on in the list */
    if (l->subs) l->subs->prev = s;
    l->subs = s;
    if (status != 0 || m->stopping) {
        sub_fail(s, 503, "the master is stopping");
        return;
    }
    if (s->chk.status != 0) {
        sub_fail(s, s->chk.status, s->chk.err);
        return;
    }
    if (!m->leading || s->term != m->term) {
        answer_not_leader(m, s->req);
        s->req = NULL;
        sub_free(s);
        return;
    }
    const char *name = s->chk.name;
    if (json_object_get(mstate_map(m->state, MSTATE_TOPOLOGIES), name) || json_object_get(l->submitting, name)) {
        sub_fail(s, 409, "a topology of that name exists");
        return;
    }
    json_object_set_new(l->submitting, name, json_string(s->chk.hash));
    s->registered = true;
    store_cmp guard;
    int rc = election_guard(m->el, &guard);
    if (rc == 0) rc = package_store_put(m->st, m->cluster, s->chk.hash, s->body, s->len, &guard, on_package_stored, s);
    s->storing = rc == 0;
    if (rc == -EPERM) {
        answer_not_leader(m, s->req);
        s->req = NULL;
        sub_free(s);
    } else if (rc != 0) {
        log_warn("topology %s: storing package %s failed: %s", name, s->chk.hash, sd_strerror(rc));
        sub_fail(s, 503, "the store did not take the package");
    }
}

void life_submit(life *l, api_request *req) {
    master_ctx *m = l->m;
    submission *s = calloc(1, sizeof *s);
    const char *hash = api_header(req, "X-Streamd-Package-Sha256");
    if (!s || (hash && !(s->want_hash = strdup(hash)))) {
        free(s);
        api_respond_error(req, 500, "out of memory");
        return;
    }
    s->l = l;
    s->req = req;
    s->term = m->term;
    s->body = api_body(req, &s->len);
    s->work.data = s;
    if (!s->body || s->len == 0) {
        sub_free(s);
        api_respond_error(req, 400, "the body must be a topology package");
        return;
    }
    int rc = uv_queue_work(m->loop, &s->work, check_work, check_done);
    if (rc != 0) {
        sub_free(s);
        api_respond_error(req, 500, "cannot check the package: %s", uv_strerror(rc));
        return;
    }
    l->works++;
}

/* ---- status changes and kills ------------------------------------------------------- */

static void on_changed(master_ctx *m, void *arg, int err, const store_result *r) {
    change *c = arg;
    if (err == 0) {
        const char *status = rec_str(c->rec, "status");
        log_info("topology %s: %s", c->name, status);
        api_respond_json(c->req, 200, json_pack("{s:s, s:s, s:s?}", "name", c->name, "status", status, "log_level",
                                                rec_str(c->rec, "log_level")));
        mstate_apply(m->state, MSTATE_TOPOLOGIES, c->name, json_incref(c->rec), r->revision);
        master_reschedule(m);
    } else if (err == -EPERM || err == -ESTALE) {
        answer_not_leader(m, c->req);
    } else {
        log_warn("topology %s: cannot write its status: %s", c->name, sd_strerror(err));
        api_respond_error(c->req, 503, "%s", err == -ECANCELED ? "the master is stopping" : "the store failed");
        if (err != -ECANCELED) mstate_resync(m->state);
    }
    json_decref(c->rec);
    free(c);
}

/* Writes rec (reference taken) as topologies/<name>; answers req. */
static void write_topology(life *l, api_request *req, const char *name, json_t *rec) {
    master_ctx *m = l->m;
    change *c = calloc(1, sizeof *c);
    char key[512];
    char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    int rc = (!c || !text) ? -ENOMEM : topo_key(m, key, sizeof key, name);
    if (rc == 0) {
        *c = (change){.l = l, .req = req, .rec = rec};
        snprintf(c->name, sizeof c->name, "%s", name);
        store_op put = {.type = STORE_OP_PUT, .key = key, .value = text};
        rc = gwrite_txn(m, NULL, 0, &put, 1, on_changed, c);
    }
    free(text);
    if (rc == 0) return;
    json_decref(rec);
    free(c);
    if (rc == -EPERM) answer_not_leader(m, req);
    else api_respond_error(req, 503, "%s", sd_strerror(rc));
}

/* the record of name, or NULL after answering 404 / 409 */
static json_t *changeable(life *l, api_request *req, const char *name) {
    json_t *rec = json_object_get(mstate_map(l->m->state, MSTATE_TOPOLOGIES), name);
    if (!rec) {
        api_respond_error(req, 404, "no topology '%s'", name);
        return NULL;
    }
    if (json_object_get(l->deleting, name)) {
        api_respond_error(req, 409, "topology '%s' is being removed", name);
        return NULL;
    }
    return rec;
}

void life_set_status(life *l, api_request *req, const char *name, bool active) {
    json_t *rec = changeable(l, req, name);
    if (!rec) return;
    const char *status = rec_str(rec, "status"), *want = active ? "active" : "inactive";
    if (strcmp(status, "killing") == 0) {
        api_respond_error(req, 409, "topology '%s' is being killed", name);
        return;
    }
    if (strcmp(status, want) == 0) {
        api_respond_json(req, 200, json_pack("{s:s, s:s}", "name", name, "status", status));
        return;
    }
    json_t *next = json_deep_copy(rec);
    if (next) json_object_set_new(next, "status", json_string(want));
    write_topology(l, req, name, next);
}

void life_set_log_level(life *l, api_request *req, const char *name, const char *level) {
    json_t *rec = changeable(l, req, name);
    if (!rec) return;
    const char *now = rec_str(rec, "log_level");
    if ((!now && !level) || (now && level && strcmp(now, level) == 0)) {
        api_respond_json(req, 200, json_pack("{s:s, s:s?}", "name", name, "log_level", level));
        return;
    }
    json_t *next = json_deep_copy(rec);
    if (next && level) json_object_set_new(next, "log_level", json_string(level));
    else if (next) json_object_del(next, "log_level");
    write_topology(l, req, name, next);
}

void life_kill(life *l, api_request *req, const char *name, int wait_secs) {
    json_t *rec = changeable(l, req, name);
    if (!rec) return;
    int64_t deadline = now_s() + wait_secs;
    json_t *old = json_object_get(rec, "kill_deadline");
    if (strcmp(rec_str(rec, "status"), "killing") == 0 && old && json_integer_value(old) <= deadline) {
        api_respond_json(req, 200, json_pack("{s:s, s:s}", "name", name, "status", "killing"));
        return;
    }
    json_t *next = json_deep_copy(rec);
    if (next) {
        json_object_set_new(next, "status", json_string("killing"));
        json_object_set_new(next, "kill_deadline", json_integer(deadline));
    }
    write_topology(l, req, name, next);
}

/* ---- finishing kills --------------------------------------------------------------- */

typedef struct removal {
    life *l;
    char name[REC_MAX_ID + 1];
    char tid[REC_MAX_ID + 1];
    char package[PACKAGE_HASH_HEX];
} removal;

static void on_package_deleted(void *arg, int err) {
    (void)arg;
    if (err != 0 && err != -ENOENT && err != -EPERM) log_warn("deleting an unused package failed: %s", sd_strerror(err));
}

static bool package_in_use(life *l, const char *hash) {
    const char *k;
    json_t *v;
    json_object_foreach(mstate_map(l->m->state, MSTATE_TOPOLOGIES), k, v) {
        if (strcmp(rec_str(v, "package"), hash) == 0) return true;
    }
    json_object_foreach(l->submitting, k, v) {
        if (strcmp(json_string_value(v), hash) == 0) return true;
    }
    return false;
}

static void on_removed(master_ctx *m, void *arg, int err, const store_result *r) {
    removal *x = arg;
    life *l = x->l;
    json_object_del(l->deleting, x->name);
    if (err == 0) {
        log_info("topology %s (%s) killed", x->name, x->tid);
        mstate_apply(m->state, MSTATE_ASSIGNMENTS, x->tid, NULL, r->revision);
        mstate_apply(m->state, MSTATE_TOPOLOGIES, x->name, NULL, r->revision);
        store_cmp guard;
        if (!package_in_use(l, x->package) && election_guard(m->el, &guard) == 0) {
            int rc = package_store_delete(m->st, m->cluster, x->package, &guard, on_package_deleted, NULL);
            if (rc != 0) log_warn("deleting package %s failed: %s", x->package, sd_strerror(rc));
        }
    } else if (err != -EPERM && err != -ECANCELED) {
        log_warn("topology %s: removal failed: %s", x->name, sd_strerror(err));
        mstate_resync(m->state);
    }
    free(x);
}

static void remove_topology(life *l, const char *name, const json_t *rec) {
    master_ctx *m = l->m;
    removal *x = calloc(1, sizeof *x);
    char tkey[512], akey[512];
    if (!x || topo_key(m, tkey, sizeof tkey, name) != 0 ||
        store_key(akey, sizeof akey, m->cluster, "assignments/%s", rec_str(rec, "id")) != 0) {
        free(x);
        return;
    }
    x->l = l;
    snprintf(x->name, sizeof x->name, "%s", name);
    snprintf(x->tid, sizeof x->tid, "%s", rec_str(rec, "id"));
    snprintf(x->package, sizeof x->package, "%s", rec_str(rec, "package"));
    /* the assignment first (workers stop), the topology with it */
    store_op ops[2] = {{.type = STORE_OP_DEL, .key = akey}, {.type = STORE_OP_DEL, .key = tkey}};
    int rc = gwrite_txn(m, NULL, 0, ops, 2, on_removed, x);
    if (rc != 0) {
        if (rc != -EPERM) log_warn("topology %s: removal failed: %s", name, sd_strerror(rc));
        free(x);
        return;
    }
    json_object_set_new(l->deleting, name, json_true());
}

static void on_kill_timer(uv_timer_t *t) {
    life *l = t->data;
    master_ctx *m = l->m;
    if (!m->leading || m->stopping || !mstate_synced(m->state)) return;
    int64_t now = now_s();
    json_t *due = json_object();
    const char *name;
    json_t *rec;
    json_object_foreach(mstate_map(m->state, MSTATE_TOPOLOGIES), name, rec) {
        if (due && strcmp(rec_str(rec, "status"), "killing") == 0 && rec_int(rec, "kill_deadline") <= now &&
            !json_object_get(l->deleting, name))
            json_object_set(due, name, rec);
    }
    json_object_foreach(due, name, rec) remove_topology(l, name, rec); /* the map changes only later */
    json_decref(due);
    life_state_changed(l);
}

void life_state_changed(life *l) {
    master_ctx *m = l->m;
    if (!m->leading || m->stopping || !mstate_synced(m->state)) {
        uv_timer_stop(&l->kill_timer);
        return;
    }
    int64_t first = INT64_MAX;
    const char *name;
    json_t *rec;
    json_object_foreach(mstate_map(m->state, MSTATE_TOPOLOGIES), name, rec) {
        if (strcmp(rec_str(rec, "status"), "killing") == 0 && !json_object_get(l->deleting, name) &&
            rec_int(rec, "kill_deadline") < first)
            first = rec_int(rec, "kill_deadline");
    }
    if (first == INT64_MAX) {
        uv_timer_stop(&l->kill_timer);
        return;
    }
    int64_t wait = first - now_s();
    uv_timer_start(&l->kill_timer, on_kill_timer, wait > 0 ? (uint64_t)wait * 1000 : 0, 0);
}

void life_term_changed(life *l) {
    json_object_clear(l->deleting);
    life_state_changed(l);
}

/* ---- setup and shutdown -------------------------------------------------------------- */

life *life_new(master_ctx *m) {
    life *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->m = m;
    l->submitting = json_object();
    l->deleting = json_object();
    if (!l->submitting || !l->deleting) {
        json_decref(l->submitting);
        json_decref(l->deleting);
        free(l);
        return NULL;
    }
    uv_timer_init(m->loop, &l->kill_timer);
    l->kill_timer.data = l;
    return l;
}

int life_busy(const life *l) { return l->works; }

void life_abort(life *l) {
    while (l->subs) sub_fail(l->subs, 503, "the master is stopping");
    uv_timer_stop(&l->kill_timer);
}

static void on_life_closed(uv_handle_t *h) {
    life *l = h->data;
    while (l->subs) sub_free(l->subs);
    json_decref(l->submitting);
    json_decref(l->deleting);
    free(l);
}

void life_free(life *l) {
    if (!l) return;
    uv_close((uv_handle_t *)&l->kill_timer, on_life_closed);
}
