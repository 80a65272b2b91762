/* client_leader: see client_leader.h. */
#include "client/client_leader.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "store/etcd/etcd_store.h"
#include "store/store.h"
#include "store/store_sync.h"

typedef struct lookup {
    bool done;
    int err;
    bool found;
    char url[CLIENT_URL_MAX];
    char why[128];
} lookup;

/* The "api" of a master/leader value: an http(s) URL that fits. */
static void read_leader(lookup *l, const store_kv *kv) {
    json_t *v = kv->value ? json_loadb(kv->value, kv->value_len, 0, NULL) : NULL;
    const char *api = json_string_value(json_object_get(v, "api"));
    if (!api || strlen(api) >= CLIENT_URL_MAX || strpbrk(api, " \t\r\n") ||
        (strncmp(api, "http://", 7) != 0 && strncmp(api, "https://", 8) != 0)) {
        l->err = SD_EPROTO_STORE;
        snprintf(l->why, sizeof l->why, "its \"api\" is not an http:// or https:// URL");
    } else {
        snprintf(l->url, sizeof l->url, "%s", api);
        l->found = true;
    }
    json_decref(v);
}

static void on_get(void *arg, const store_result *r) {
    lookup *l = arg;
    l->done = true;
    l->err = r->err;
    if (r->err == 0 && r->nkvs == 1) read_leader(l, &r->kvs[0]);
}

int client_find_leader(const conf *c, int timeout_ms, char url[CLIENT_URL_MAX], char *err, size_t errlen) {
    const char *cluster = conf_str_or(c, "cluster.name", "default");
    etcd_options eo;
    etcd_options_from_conf(&eo, c);
    const char *where = eo.endpoints ? eo.endpoints : "?";
    /* the store gives up on its own before the command's deadline, with its reason */
    if (eo.request_timeout_ms <= 0 || eo.request_timeout_ms > timeout_ms) eo.request_timeout_ms = timeout_ms;
    char key[512];
    if (store_key(key, sizeof key, cluster, "master/leader") != 0) {
        snprintf(err, errlen, "cluster name '%s' is too long", cluster);
        return -ENAMETOOLONG;
    }
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        snprintf(err, errlen, "cannot start an event loop");
        return -ENOMEM;
    }
    lookup l = {0};
    int rc = 0;
    store *st = etcd_store_new(&loop, &eo);
    if (!st) {
        snprintf(err, errlen, "bad etcd options (store.etcd.*) for %s", where);
        rc = -EINVAL;
    } else if ((rc = store_get(st, key, on_get, &l)) != 0) {
        snprintf(err, errlen, "cannot reach etcd at %s: %s", where, sd_strerror(rc));
    } else if ((rc = store_sync_wait(&loop, &l.done, timeout_ms)) != 0) {
        snprintf(err, errlen, "cannot reach etcd at %s: no answer within %d ms", where, timeout_ms);
    } else if (l.err != 0 && !l.why[0]) {
        rc = l.err;
        snprintf(err, errlen, "cannot reach etcd at %s: %s", where, sd_strerror(rc));
    } else if (l.err != 0) {
        rc = l.err;
        snprintf(err, errlen, "bad leader key %s in etcd at %s: %s", key, where, l.why);
    } else if (!l.found) {
        rc = -ENOENT;
        snprintf(err, errlen, "no master leads cluster '%s' (no %s in etcd at %s)", cluster, key, where);
    } else {
        snprintf(url, CLIENT_URL_MAX, "%s", l.url);
    }
    if (st) {
        store_cancel(st, &l);
        store_free(st);
    }
    uv_run(&loop, UV_RUN_DEFAULT); /* the store's handles close */
    uv_loop_close(&loop);
    return rc;
}
