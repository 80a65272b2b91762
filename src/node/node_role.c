/*
 * node_role: `streamd --role=node` (see node_role.h): a node (node.h) on
 * etcd, plus what only cluster mode needs: the package cache (packages.c)
 * behind the node's prepare hook, and the periodic report of the workers'
 * heartbeats to the leader's HTTP API (node_report.c).
 * Threads: the loop thread runs everything here; the report's HTTP POST runs
 * on libuv's thread pool (node_report.c), never on the loop.
 */
#include "node/node_role.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "base/log.h"
#include "node/node.h"
#include "node/node_packages.h"
#include "node/node_report.h"
#include "store/etcd/etcd_store.h"

typedef struct role {
    uv_loop_t loop;
    store *st;
    node *nd;
    node_packages *pk;
    node_report *rep;
    uv_signal_t sigint, sigterm;
    int signals;
    bool stopped;
} role;

static void on_closed(uv_handle_t *h) { (void)h; }

static void on_node_stopped(void *arg) {
    role *r = arg;
    r->stopped = true;
    uv_close((uv_handle_t *)&r->sigint, on_closed);
    uv_close((uv_handle_t *)&r->sigterm, on_closed);
    node_report_stop(r->rep);
    r->rep = NULL;
    node_free(r->nd);
    r->nd = NULL;
    node_packages_free(r->pk);
    r->pk = NULL;
    store_free(r->st);
    r->st = NULL;
}

static void on_signal(uv_signal_t *s, int signum) {
    role *r = s->data;
    if (++r->signals == 1) {
        log_info("%s: stopping the node and its workers", signum == SIGINT ? "interrupted" : "terminated");
        node_stop(r->nd, on_node_stopped, r);
    } else {
        log_warn("second signal: killing the workers now");
        node_kill_all(r->nd);
    }
}

static int prepare(void *arg, json_t *assignment) { return node_packages_prepare(arg, assignment); }

static void on_package_ready(void *arg) {
    role *r = arg;
    if (r->nd) node_refresh(r->nd);
}

int node_role_run(const conf *c, const char *exe_path) {
    role *r = calloc(1, sizeof *r);
    if (!r) {
        log_error("out of memory");
        return 1;
    }
    char host[256];
    const char *id = conf_str(c, "node.id");
    if (!id || !*id) {
        if (gethostname(host, sizeof host) != 0) {
            log_error("gethostname: %s", strerror(errno));
            free(r);
            return 1;
        }
        host[sizeof host - 1] = '\0';
        id = host;
    }
    if (strchr(id, '/') || strlen(id) > 128) {
        log_error("node.id '%s': at most 128 characters, no '/'", id);
        free(r);
        return 1;
    }
    log_set_tags(NULL, NULL, id);
    int rc = uv_loop_init(&r->loop);
    if (rc != 0) {
        log_error("uv_loop_init: %s", uv_strerror(rc));
        free(r);
        return 1;
    }
    etcd_options eo;
    etcd_options_from_conf(&eo, c);
    r->st = etcd_store_new(&r->loop, &eo);
    if (!r->st) {
        log_error("store.etcd.*: cannot use the etcd settings (endpoints '%s')", eo.endpoints ? eo.endpoints : "");
        goto fail;
    }
    r->pk = node_packages_new(&r->loop, r->st, c, on_package_ready, r);
    r->nd = r->pk ? node_new(&r->loop, r->st, c, id, exe_path) : NULL;
    if (!r->nd) goto fail;
    node_set_prepare(r->nd, prepare, r->pk);
    r->rep = node_report_start(&r->loop, r->st, r->nd, c, id);
    if (!r->rep) goto fail;
    uv_signal_init(&r->loop, &r->sigint);
    uv_signal_init(&r->loop, &r->sigterm);
    r->sigint.data = r->sigterm.data = r;
    uv_signal_start(&r->sigint, on_signal, SIGINT);
    uv_signal_start(&r->sigterm, on_signal, SIGTERM);
    log_info("node %s starting: etcd %s, cluster %s", id, eo.endpoints, conf_str_or(c, "cluster.name", "default"));
    uv_run(&r->loop, UV_RUN_DEFAULT);
    int result = r->stopped ? 0 : 1;
    uv_run(&r->loop, UV_RUN_DEFAULT); /* close callbacks */
    if (uv_loop_close(&r->loop) != 0) log_warn("some handles were still open at exit");
    free(r);
    return result;
fail:
    if (r->nd) {
        node_stop(r->nd, NULL, NULL);
        node_free(r->nd);
    }
    node_packages_free(r->pk);
    store_free(r->st);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_loop_close(&r->loop);
    free(r);
    return 1;
}
