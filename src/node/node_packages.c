/*
 * node_packages: see node_packages.h. One fetch per package at a time; a
 * failed fetch is retried when the node next reads its assignments, at most
 * every FETCH_RETRY_MS, so a corrupted package in the store does not make
 * the node hammer etcd.
 */
#include "node/node_packages.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "package/package.h"

#define FETCH_RETRY_MS 2000

typedef struct fetch {
    struct node_packages *owner;
    char hash[PACKAGE_HASH_HEX];
    bool in_flight;
    uint64_t failed_at; /* uv_now() of the last failure, 0 = none */
    struct fetch *next;
} fetch;

struct node_packages {
    uv_loop_t *loop;
    store *st;
    char *cluster;
    char dir[PATH_MAX - 256]; /* <streamd.local.dir>/packages, leaving room for a hash */
    void (*ready)(void *arg);
    void *arg;
    fetch *fetches;
    uv_timer_t retry; /* reads the assignments again after a failed fetch */
};

static int mkdir_p(const char *path) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -ENAMETOOLONG;
    for (char *s = buf + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -errno;
            if (!c) break;
            *s = c;
        }
    }
    return 0;
}

static bool is_hash(const char *h) {
    if (!h || strlen(h) != PACKAGE_HASH_HEX - 1) return false;
    for (const char *c = h; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'))) return false;
    return true;
}

node_packages *node_packages_new(uv_loop_t *loop, store *st, const conf *c, void (*ready)(void *arg), void *arg) {
    node_packages *p = calloc(1, sizeof *p);
    if (!p || !(p->cluster = strdup(conf_str_or(c, "cluster.name", "default")))) {
        free(p);
        log_error("out of memory");
        return NULL;
    }
    p->loop = loop;
    p->st = st;
    p->ready = ready;
    p->arg = arg;
    const char *local = conf_str_or(c, "streamd.local.dir", "/tmp/streamd");
    int rc = snprintf(p->dir, sizeof p->dir, "%s/packages", local) >= (int)sizeof p->dir ? -ENAMETOOLONG
                                                                                          : mkdir_p(p->dir);
    if (rc != 0) {
        log_error("cannot create the package cache %s/packages: %s", local, sd_strerror(rc));
        free(p->cluster);
        free(p);
        return NULL;
    }
    uv_timer_init(loop, &p->retry);
    p->retry.data = p;
    return p;
}

static fetch *find_fetch(node_packages *p, const char *hash) {
    for (fetch *f = p->fetches; f; f = f->next)
        if (strcmp(f->hash, hash) == 0) return f;
    return NULL;
}

static void on_retry(uv_timer_t *t) {
    node_packages *p = t->data;
    p->ready(p->arg);
}

static void on_fetched(void *arg, int err, const void *data, size_t len) {
    fetch *f = arg;
    node_packages *p = f->owner;
    f->in_flight = false;
    char final[PATH_MAX], tmp[PATH_MAX], msg[512] = "";
    snprintf(final, sizeof final, "%s/%s", p->dir, f->hash);
    int n = snprintf(tmp, sizeof tmp, "%s/.%s.%d", p->dir, f->hash, (int)getpid());
    if (err == 0 && n >= (int)sizeof tmp) err = -ENAMETOOLONG;
    if (err == 0) {
        char rm[PATH_MAX + 16];
        snprintf(rm, sizeof rm, "rm -rf '%s'", tmp); /* a leftover of an earlier attempt */
        if (system(rm) != 0) log_warn("cannot remove %s", tmp);
        err = package_unpack(data, len, tmp, msg, sizeof msg);
        if (err == 0 && rename(tmp, final) != 0 && errno != EEXIST && errno != ENOTEMPTY) err = -errno;
    }
    if (err == 0) {
        log_info("package %.12s ready in %s", f->hash, final);
        f->failed_at = 0;
    } else {
        log_error("package %.12s: %s%s%s", f->hash, sd_strerror(err), *msg ? ": " : "", msg);
        f->failed_at = uv_now(p->loop);
        if (f->failed_at == 0) f->failed_at = 1;
        uv_timer_start(&p->retry, on_retry, FETCH_RETRY_MS, 0);
        return;
    }
    p->ready(p->arg);
}

int node_packages_prepare(node_packages *p, json_t *assignment) {
    const char *hash = json_string_value(json_object_get(assignment, "package"));
    const char *file = json_string_value(json_object_get(assignment, "topology_path"));
    if (!is_hash(hash)) return -EINVAL; /* untrusted: becomes a directory name */
    if (!file || !*file || file[0] == '/' || strstr(file, "..")) return -EINVAL;
    char dir[PATH_MAX], path[PATH_MAX * 2];
    snprintf(dir, sizeof dir, "%s/%s", p->dir, hash);
    struct stat sb;
    if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(path, sizeof path, "%s/%s", dir, file);
        json_object_set_new(assignment, "topology_path", json_string(path));
        return 0;
    }
    fetch *f = find_fetch(p, hash);
    if (!f) {
        if (!(f = calloc(1, sizeof *f))) return -ENOMEM;
        f->owner = p;
        snprintf(f->hash, sizeof f->hash, "%s", hash);
        f->next = p->fetches;
        p->fetches = f;
    }
    if (f->in_flight) return -EAGAIN;
    if (f->failed_at && uv_now(p->loop) - f->failed_at < FETCH_RETRY_MS) return -EAGAIN; /* the retry timer calls back */
    int rc = package_store_fetch(p->st, p->cluster, hash, on_fetched, f);
    if (rc != 0) return rc;
    f->in_flight = true;
    log_info("fetching package %.12s", hash);
    return -EAGAIN;
}

static void on_closed(uv_handle_t *h) {
    node_packages *p = h->data;
    free(p->cluster);
    free(p);
}

void node_packages_free(node_packages *p) {
    if (!p) return;
    for (fetch *f = p->fetches, *next; f; f = next) {
        next = f->next;
        package_store_cancel(p->st, f);
        free(f);
    }
    uv_close((uv_handle_t *)&p->retry, on_closed);
}
