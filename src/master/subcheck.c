/* subcheck: a submitted package checked in a private directory (see subcheck.h). */
#include "master/subcheck.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "topology/topology.h"

__attribute__((format(printf, 3, 4))) static void refuse(subcheck *c, int status, const char *fmt, ...) {
    c->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path); /* best effort: what stays is in a private directory */
    return 0;
}

/* Removes every "dir/" from msg, so errors name files as the client wrote
 * them ("topology.yaml:12: ...") and not the temporary directory. */
static void strip_dir(char *msg, const char *dir) {
    char prefix[PATH_MAX + 2];
    int n = snprintf(prefix, sizeof prefix, "%s/", dir);
    if (n <= 0 || (size_t)n >= sizeof prefix) return;
    for (char *p; (p = strstr(msg, prefix));) memmove(p, p + n, strlen(p + n) + 1);
}

static json_t *components_json(const topology *t) {
    json_t *a = json_array();
    for (int i = 0; a && i < t->ncomponents; i++) {
        const topo_component *c = &t->components[i];
        const char *kind = c->is_acker ? "acker" : c->kind == SD_SPOUT ? "spout" : "bolt";
        json_t *e = json_pack("{s:s, s:s, s:i, s:i}", "id", c->id, "kind", kind, "parallelism", c->parallelism,
                              "first_task", c->first_task);
        if (!e || json_array_append_new(a, e) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static void check_topology(const char *dir, subcheck *c) {
    char path[PATH_MAX + sizeof PACKAGE_TOPOLOGY_NAME + 1], err[1024];
    snprintf(path, sizeof path, "%s/%s", dir, PACKAGE_TOPOLOGY_NAME);
    /* validation only: user libraries are not opened (their code is not run here) */
    topology *t = topology_load_opts(path, NULL, NULL, TOPO_NO_LIBRARY, err, sizeof err);
    if (!t) {
        strip_dir(err, dir);
        refuse(c, 400, "%s", err);
        return;
    }
    if (!rec_valid_name(t->name)) {
        refuse(c, 400, "%s: topology name '%s': use letters, digits, '.', '_' and '-' (at most %d)",
               PACKAGE_TOPOLOGY_NAME, t->name, REC_MAX_ID);
    } else if (t->ntasks > REC_MAX_TASKS) {
        refuse(c, 400, "%s: %d tasks; at most %d", PACKAGE_TOPOLOGY_NAME, t->ntasks, REC_MAX_TASKS);
    } else {
        snprintf(c->name, sizeof c->name, "%s", t->name);
        c->workers = t->workers > 0 ? t->workers : 1;
        if (c->workers > REC_MAX_WORKERS) c->workers = REC_MAX_WORKERS;
        c->ntasks = t->ntasks;
        c->conf = conf_to_json(t->conf);
        c->components = components_json(t);
        if (!c->conf || !c->components) refuse(c, 500, "out of memory");
    }
    topology_free(t);
}

void subcheck_run(const void *body, size_t len, const char *want_hash, const char *tmp_parent, subcheck *c) {
    memset(c, 0, sizeof *c);
    if (!want_hash) {
        refuse(c, 400, "missing header X-Streamd-Package-Sha256");
        return;
    }
    package_hash(body, len, c->hash);
    if (strcasecmp(want_hash, c->hash) != 0) {
        refuse(c, 400, "the package's SHA-256 is %s, not %s as announced", c->hash, want_hash);
        return;
    }
    if (!tmp_parent) tmp_parent = getenv("TMPDIR");
    if (!tmp_parent || !*tmp_parent) tmp_parent = "/tmp";
    char dir[PATH_MAX], err[512];
    if (snprintf(dir, sizeof dir, "%s/streamd-submit-XXXXXX", tmp_parent) >= (int)sizeof dir || !mkdtemp(dir)) {
        refuse(c, 500, "cannot make a temporary directory in %s: %s", tmp_parent, strerror(errno));
        return;
    }
    if (package_unpack(body, len, dir, err, sizeof err) != 0) {
        strip_dir(err, dir);
        refuse(c, 400, "bad package: %s", err);
    } else {
        check_topology(dir, c);
    }
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void subcheck_clear(subcheck *c) {
    json_decref(c->conf);
    json_decref(c->components);
    c->conf = c->components = NULL;
}
