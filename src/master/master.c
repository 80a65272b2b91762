/*
 * master: the master role's entry (see master.h). One libuv loop runs it
 * all: the etcd store, the lease keeper (masters/<id> lives on the lease),
 * the election, and while leading the leader state (mstate), the
 * reconciler (debounced by sched_timer), kills (lifecycle) and node
 * reports. The HTTP API's own thread only parses HTTP; its requests are
 * answered here (api/routes.c).
 * Stopping (SIGINT/SIGTERM): step down, answer what waits, revoke the
 * lease (so a standby takes over at once, not after the TTL), wait for
 * package checks on the thread pool, then close everything.
 */
#include "master/master.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "master/api/api_server.h"
#include "master/api/routes.h"
#include "master/election.h"
#include "master/gwrite.h"
#include "master/lifecycle.h"
#include "master/master_ctx.h"
#include "master/mstate.h"
#include "master/reconcile.h"
#include "master/records.h"
#include "master/reports.h"
#include "store/etcd/etcd_store.h"
#include "store/lease_keeper.h"

#define SCHED_DELAY_MS 50    /* coalesces a burst of changes into one pass */
#define REGISTER_RETRY_MS 1000
#define REVOKE_WAIT_MS 2000  /* longest a stop waits for the lease revocation */

typedef struct master {
    master_ctx c;
    uv_loop_t loop;
    api_routes *routes;
    uv_signal_t sigint, sigterm;
    uv_timer_t register_timer; /* re-puts masters/<id> after a failure */
    uv_timer_t stop_timer;     /* stop: revocation deadline, then waiting for the thread pool */
    int signals;
    bool revoked;
    int exit_code;
} master;

/* ---- leadership ---------------------------------------------------------------------- */

static void leader_end(master *ms) {
    master_ctx *m = &ms->c;
    if (!m->leading) return;
    m->leading = false;
    m->term++;
    uv_timer_stop(&m->sched_timer);
    mstate_stop(m->state);
    reports_clear(m->reports);
    json_object_clear(m->pending_assign);
    life_term_changed(m->life);
    if (m->stopping) log_info("no longer the leader");
    else log_warn("no longer the leader");
}

static void on_election(void *arg, bool leader) {
    master *ms = arg;
    master_ctx *m = &ms->c;
    if (!leader) {
        leader_end(ms);
        return;
    }
    if (m->stopping || m->leading) return;
    m->leading = true;
    m->term++;
    json_object_clear(m->pending_assign);
    reports_clear(m->reports);
    life_term_changed(m->life);
    log_info("leading the cluster (leader key revision %lld); reading its state", (long long)election_guard_rev(m->el));
    mstate_start(m->state);
}

static void on_sched_timer(uv_timer_t *t) {
    master_ctx *m = t->data;
    recon_run(m);
}

void master_reschedule(master_ctx *m) {
    if (m->leading && !m->stopping && !uv_is_active((uv_handle_t *)&m->sched_timer))
        uv_timer_start(&m->sched_timer, on_sched_timer, SCHED_DELAY_MS, 0);
}

static void on_state_change(void *arg) {
    master *ms = arg;
    if (!mstate_synced(ms->c.state)) return;
    master_reschedule(&ms->c);
    life_state_changed(ms->c.life);
}

/* ---- registration and lease ------------------------------------------------------------ */

static void register_master(master *ms);
static void on_register_timer(uv_timer_t *t);

static void on_registered(void *arg, const store_result *r) {
    master *ms = arg;
    if (r->err == 0) return;
    log_warn("registering masters/%s failed: %s; retrying", ms->c.id, sd_strerror(r->err));
    uv_timer_start(&ms->register_timer, on_register_timer, REGISTER_RETRY_MS, 0);
}

static void on_register_timer(uv_timer_t *t) { register_master(t->data); }

static void register_master(master *ms) {
    master_ctx *m = &ms->c;
    if (m->stopping || m->lease <= 0) return;
    char key[512];
    json_t *v = json_pack("{s:s, s:s, s:s, s:I, s:s}", "id", m->id, "host", m->host, "api", m->api_url, "started",
                          (json_int_t)m->started, "version", STREAMD_VERSION);
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    int rc = text ? store_key(key, sizeof key, m->cluster, "masters/%s", m->id) : -ENOMEM;
    if (rc == 0) rc = store_put(m->st, key, text, m->lease, on_registered, ms);
    free(text);
    if (rc != 0) {
        log_warn("registering masters/%s failed: %s; retrying", m->id, sd_strerror(rc));
        uv_timer_start(&ms->register_timer, on_register_timer, REGISTER_RETRY_MS, 0);
    }
}

static void on_lease(void *arg, int64_t lease, int err) {
    master *ms = arg;
    master_ctx *m = &ms->c;
    if (m->stopping) return;
    if (err == 0 && lease > 0) {
        log_info("holding lease %llx; registered as masters/%s", (unsigned long long)lease, m->id);
        m->lease = lease;
        register_master(ms);
        election_set_lease(m->el, lease);
        return;
    }
    log_warn("lease %llx may be gone (%s): stepping down", (unsigned long long)lease, sd_strerror(err));
    m->lease = 0;
    leader_end(ms); /* at once: the store may already have handed the key on */
    election_set_lease(m->el, 0);
}

/* ---- stopping ---------------------------------------------------------------------------- */

static void close_all(master *ms);

static void on_stop_timer(uv_timer_t *t) {
    master *ms = t->data;
    if (!ms->revoked) {
        log_warn("the lease revocation did not complete; the lease expires by itself");
        ms->revoked = true;
    }
    if (life_busy(ms->c.life) > 0) { /* package checks still running */
        uv_timer_start(&ms->stop_timer, on_stop_timer, 50, 0);
        return;
    }
    close_all(ms);
}

static void on_revoked(void *arg, const store_result *r) {
    master *ms = arg;
    if (r->err == 0) log_info("lease revoked");
    else log_warn("revoking the lease failed: %s", sd_strerror(r->err));
    ms->revoked = true;
    uv_timer_start(&ms->stop_timer, on_stop_timer, 0, 0);
}

static void begin_stop(master *ms, const char *why) {
    master_ctx *m = &ms->c;
    if (m->stopping) return;
    log_info("%s: stopping", why);
    m->stopping = true;
    leader_end(ms);
    gwrite_cancel_all(m);
    life_abort(m->life);
    api_routes_abort(ms->routes);
    uv_timer_stop(&ms->register_timer);
    int64_t lease = m->keeper ? lease_keeper_lease(m->keeper) : 0;
    if (lease > 0 && store_lease_revoke(m->st, lease, on_revoked, ms) == 0) {
        uv_timer_start(&ms->stop_timer, on_stop_timer, REVOKE_WAIT_MS, 0);
    } else {
        ms->revoked = true;
        uv_timer_start(&ms->stop_timer, on_stop_timer, 0, 0);
    }
}

static void on_signal(uv_signal_t *s, int signum) {
    master *ms = s->data;
    if (++ms->signals > 1) {
        log_warn("second signal: stopping without waiting");
        ms->revoked = true;
    }
    begin_stop(ms, signum == SIGINT ? "interrupted" : "terminated");
}

static void close_all(master *ms) {
    master_ctx *m = &ms->c;
    if (m->st) store_cancel(m->st, ms);
    if (m->api) api_server_stop(m->api); /* answers whatever still waits with 503 */
    m->api = NULL;
    if (m->keeper) lease_keeper_stop(m->keeper);
    m->keeper = NULL;
    election_free(m->el);
    m->el = NULL;
    mstate_free(m->state);
    m->state = NULL;
    store_free(m->st); /* no store callback runs after this */
    m->st = NULL;
    life_free(m->life);
    m->life = NULL;
    uv_close((uv_handle_t *)&m->sched_timer, NULL);
    uv_close((uv_handle_t *)&ms->register_timer, NULL);
    uv_close((uv_handle_t *)&ms->stop_timer, NULL);
    uv_close((uv_handle_t *)&ms->sigint, NULL);
    uv_close((uv_handle_t *)&ms->sigterm, NULL);
}

/* ---- setup ----------------------------------------------------------------------------------- */

/* "http://HOST:PORT" for others: a wildcard listen address is replaced by the host name */
static int api_url(master *ms, const char *listen, int port) {
    master_ctx *m = &ms->c;
    char host[300];
    const char *colon = strrchr(listen, ':');
    size_t n = colon ? (size_t)(colon - listen) : 0;
    if (n >= sizeof host) return -ENAMETOOLONG;
    memcpy(host, listen, n);
    host[n] = '\0';
    if (n == 0 || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "[::]") == 0 || strcmp(host, "*") == 0)
        snprintf(host, sizeof host, "%s", m->host);
    int w = snprintf(m->api_url, sizeof m->api_url, "http://%s:%d", host, port);
    return w > 0 && (size_t)w < sizeof m->api_url ? 0 : -ENAMETOOLONG;
}

static int setup(master *ms) {
    master_ctx *m = &ms->c;
    const conf *c = m->conf;
    if (gethostname(m->host, sizeof m->host - 1) != 0) snprintf(m->host, sizeof m->host, "localhost");
    const char *id = conf_str_or(c, "master.id", "");
    if (*id) snprintf(m->id, sizeof m->id, "%s", id);
    else snprintf(m->id, sizeof m->id, "%.200s-%d", m->host, (int)getpid());
    if (!rec_valid_name(m->id)) {
        log_error("master.id '%s': use letters, digits, '.', '_' and '-'", m->id);
        return -EINVAL;
    }
    etcd_options eo;
    etcd_options_from_conf(&eo, c);
    m->st = etcd_store_new(&ms->loop, &eo);
    m->pending_assign = json_object();
    m->reports = reports_new();
    m->life = life_new(m);
    m->state = m->st ? mstate_new(&ms->loop, m->st, m->cluster, on_state_change, ms) : NULL;
    ms->routes = api_routes_new(m);
    if (!m->st || !m->pending_assign || !m->reports || !m->life || !m->state || !ms->routes) {
        log_error("cannot start: %s", m->st ? "out of memory" : "bad store.etcd.* settings");
        return -EINVAL;
    }
    const char *listen = conf_str_or(c, "master.api.listen", "127.0.0.1:6627");
    api_options ao = {
        .listen = listen,
        .max_body_bytes = (size_t)conf_int(c, "master.api.max.body.bytes"),
        .max_connections = (unsigned)conf_int(c, "master.api.max.connections"),
        .timeout_secs = (unsigned)conf_int(c, "master.api.timeout.secs"),
    };
    int err = 0;
    m->api = api_server_start(&ms->loop, &ao, api_routes_handle, ms->routes, &err);
    if (!m->api) {
        log_error("master.api.listen %s: %s", listen, sd_strerror(err));
        return err ? err : -EINVAL;
    }
    if (api_url(ms, listen, api_server_port(m->api)) != 0) {
        log_error("master.api.listen %s: address too long", listen);
        return -ENAMETOOLONG;
    }
    election_options el = {.cluster = m->cluster, .id = m->id, .host = m->host, .api = m->api_url};
    m->el = election_new(&ms->loop, m->st, &el, on_election, ms);
    int ttl = (int)conf_int(c, "master.lease.ttl.secs");
    /* told a fifth of the TTL before the store would expire the lease */
    m->keeper = m->el ? lease_keeper_start(&ms->loop, m->st, ttl, ttl * 1000 / 5, on_lease, ms) : NULL;
    if (!m->el || !m->keeper) {
        log_error("cannot start: out of memory");
        return -ENOMEM;
    }
    log_info("master %s: API on %s, store %s, lease TTL %d s", m->id, m->api_url, eo.endpoints, ttl);
    return 0;
}

int master_run(const conf *c) {
    master *ms = calloc(1, sizeof *ms);
    if (!ms) return 1;
    master_ctx *m = &ms->c;
    m->conf = c;
    m->cluster = conf_str_or(c, "cluster.name", "default");
    m->started = (int64_t)time(NULL);
    m->loop = &ms->loop;
    if (uv_loop_init(&ms->loop) != 0) {
        free(ms);
        return 1;
    }
    uv_timer_init(&ms->loop, &m->sched_timer);
    uv_timer_init(&ms->loop, &ms->register_timer);
    uv_timer_init(&ms->loop, &ms->stop_timer);
    uv_signal_init(&ms->loop, &ms->sigint);
    uv_signal_init(&ms->loop, &ms->sigterm);
    m->sched_timer.data = m;
    ms->register_timer.data = ms;
    ms->stop_timer.data = ms;
    ms->sigint.data = ms;
    ms->sigterm.data = ms;
    uv_signal_start(&ms->sigint, on_signal, SIGINT);
    uv_signal_start(&ms->sigterm, on_signal, SIGTERM);
    if (setup(ms) != 0) {
        ms->exit_code = 1;
        m->stopping = true;
        close_all(ms);
    }
    uv_run(&ms->loop, UV_RUN_DEFAULT);
    api_routes_free(ms->routes);
    reports_free(m->reports);
    json_decref(m->pending_assign);
    int rc = uv_loop_close(&ms->loop);
    if (rc != 0) log_warn("loop closed with handles open: %s", uv_strerror(rc));
    int code = ms->exit_code;
    free(ms);
    if (code == 0) log_info("stopped");
    return code;
}
