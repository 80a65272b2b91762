/*
 * topology: loads a topology file (YAML -> validated topology) by driving
 * the steps of topology_parse.c, topology_validate.c and
 * topology_resolve.c in their fixed order (see topology_internal.h), then
 * adds the acker and the system streams and lays out the tasks. Also the
 * loader's shared helpers, freeing and the lookups. No threads; the result
 * is read-only and may be shared.
 */
#include "topology/topology.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topology/topology_internal.h"

/* ---- loader helpers ------------------------------------------------------ */

int topo_fail(loader *ld, int line, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(ld->err, ld->errlen, "%s:%d: %s", ld->path, line, msg);
    return -1;
}

int topo_oom(loader *ld) {
    snprintf(ld->err, ld->errlen, "%s: out of memory", ld->path);
    return -1;
}

const char *topo_kind_word(const topo_component *c) { return c->kind == SD_SPOUT ? "spout" : "bolt"; }

bool topo_is_scalar(const yd_node *n) { return n && n->kind == YD_SCALAR && !yd_is_null(n); }

bool topo_has_outputs(const yd_node *map) {
    const yd_node *out = yd_get(map, "outputs");
    return out && !yd_is_null(out);
}

void topo_free_strv(char **v, int n) {
    if (!v) return;
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* ---- streams ------------------------------------------------------------ */

int topo_add_stream(loader *ld, int comp, const char *name, char **fields, int nfields, bool direct) {
    topology *t = ld->t;
    topo_stream *grown = realloc(t->streams, (size_t)(t->nstreams + 1) * sizeof *grown);
    if (!grown) {
        topo_free_strv(fields, nfields);
        return topo_oom(ld);
    }
    t->streams = grown;
    topo_stream *s = &t->streams[t->nstreams];
    memset(s, 0, sizeof *s);
    s->id = t->nstreams;
    s->component = comp;
    s->fields = fields;
    s->nfields = nfields;
    s->direct = direct;
    s->system = strncmp(name, "__", 2) == 0;
    if (!(s->name = strdup(name))) {
        topo_free_strv(fields, nfields);
        return topo_oom(ld);
    }
    t->nstreams++;
    if (comp >= 0) {
        topo_component *c = &t->components[comp];
        int *ids = realloc(c->stream_ids, (size_t)(c->nstreams + 1) * sizeof *ids);
        if (!ids) return topo_oom(ld);
        c->stream_ids = ids;
        ids[c->nstreams++] = s->id;
    }
    return 0;
}

int topo_add_stream_v(loader *ld, int comp, const char *name, bool direct, const char *const *names) {
    int n = 0;
    while (names[n] && n < SD_MAX_FIELDS) n++;
    char **fields = calloc((size_t)n + 1, sizeof *fields);
    if (!fields) return topo_oom(ld);
    for (int i = 0; i < n; i++)
        if (!(fields[i] = strdup(names[i]))) {
            topo_free_strv(fields, i);
            return topo_oom(ld);
        }
    return topo_add_stream(ld, comp, name, fields, n, direct);
}

/* ---- freeing ------------------------------------------------------------ */

void topology_free(topology *t) {
    if (!t) return;
    for (int c = 0; c < t->ncomponents; c++) {
        topo_component *comp = &t->components[c];
        free(comp->id);
        free(comp->class_name);
        if (comp->command)
            for (char **a = comp->command; *a; a++) free(*a);
        free(comp->command);
        free(comp->resources);
        for (int i = 0; i < comp->nargs; i++) {
            free(comp->args[i].key);
            free(comp->args[i].value);
        }
        free(comp->args);
        for (int i = 0; i < comp->ninputs; i++) {
            free(comp->inputs[i].from);
            free(comp->inputs[i].stream);
            topo_free_strv(comp->inputs[i].fields, comp->inputs[i].nfields);
            free(comp->inputs[i].field_index);
        }
        free(comp->inputs);
        free(comp->stream_ids);
    }
    free(t->components);
    for (int s = 0; s < t->nstreams; s++) {
        free(t->streams[s].name);
        topo_free_strv(t->streams[s].fields, t->streams[s].nfields);
    }
    free(t->streams);
    conf_free(t->conf);
    /* after the defs: they point into the library */
    if (t->dl_handle) dlclose(t->dl_handle);
    free(t->path);
    free(t->dir);
    free(t->name);
    free(t->library);
    free(t);
}

/* ---- layout ----------------------------------------------------------------------- */

/* The acker (when acking is on), the __system tick stream, task ids. */
static int layout(loader *ld, int line) {
    topology *t = ld->t;
    int64_t ackers = conf_int(t->conf, "topology.acker.executors");
    if (ackers > TOPO_MAX_PARALLELISM)
        return topo_fail(ld, line, "topology.acker.executors: at most %d", TOPO_MAX_PARALLELISM);
    if (ackers > 0) {
        int ai = t->ncomponents++;
        topo_component *a = &t->components[ai];
        a->index = ai;
        a->line = 0;
        a->kind = SD_BOLT;
        a->is_acker = true;
        a->parallelism = (int)ackers;
        if (!(a->id = strdup(TOPO_ACKER_ID))) return topo_oom(ld);
        static const char *const records[] = {"records", NULL}; /* acking packets (topology.h) */
        if (topo_add_stream_v(ld, ai, TOPO_STREAM_ACK_DONE, false, records) != 0) return -1;
    }
    static const char *const none[] = {NULL};
    if (topo_add_stream_v(ld, -1, TOPO_STREAM_TICK, false, none) != 0) return -1;

    /* bounded so a worker's heartbeat always fits the control channel
     * (see proto/task_columns.h) */
    int next = 1;
    for (int i = 0; i < t->ncomponents; i++) {
        topo_component *c = &t->components[i];
        c->first_task = next;
        next += c->parallelism;
        if (next - 1 > TOPO_MAX_TASKS)
            return topo_fail(ld, c->line > 0 ? c->line : line,
                             "%s '%s': its %d tasks make %d tasks so far; a topology has at most %d",
                             c->is_acker ? "the acker" : topo_kind_word(c), c->id, c->parallelism,
                             next - 1, TOPO_MAX_TASKS);
    }
    t->ntasks = next - 1;
    return 0;
}

/* ---- top level ---------------------------------------------------------------- */

static int build(loader *ld, const yd_node *root, const conf *base, const conf *overrides) {
    if (topo_parse(ld, root, base, overrides) != 0 || topo_validate_shape(ld) != 0) return -1;
    if (topo_resolve(ld) != 0 || topo_validate_links(ld, root) != 0) return -1;
    return layout(ld, root->line);
}

topology *topology_load_opts(const char *path, const conf *base, const conf *overrides, unsigned flags,
                             char *err, size_t errlen) {
    loader ld = {.path = path, .flags = flags, .err = err, .errlen = errlen};
    yd_node *root = yd_load_file(path, err, errlen);
    if (!root) return NULL;
    topology *t = ld.t = calloc(1, sizeof *t);
    int rc = t && (t->path = strdup(path)) ? build(&ld, root, base, overrides) : topo_oom(&ld);
    if (ld.src)
        for (int i = 0; i < ld.nuser; i++) free(ld.src[i].resolve_err);
    free(ld.src);
    free(ld.lib_err);
    yd_free(root);
    if (rc != 0) {
        topology_free(t);
        return NULL;
    }
    return t;
}

topology *topology_load(const char *path, const conf *base, const conf *overrides, char *err, size_t errlen) {
    return topology_load_opts(path, base, overrides, 0, err, errlen);
}

/* ---- lookups ---------------------------------------------------------------------- */

const topo_component *topology_component(const topology *t, const char *id) {
    for (int i = 0; i < t->ncomponents; i++)
        if (strcmp(t->components[i].id, id) == 0) return &t->components[i];
    return NULL;
}

const topo_component *topology_task_component(const topology *t, int task) {
    /* components hold consecutive task ranges in order: binary search */
    int lo = 0, hi = t->ncomponents - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const topo_component *c = &t->components[mid];
        if (task < c->first_task) hi = mid - 1;
        else if (task >= c->first_task + c->parallelism) lo = mid + 1;
        else return c;
    }
    return NULL;
}

const topo_stream *topology_stream(const topology *t, int component, const char *name) {
    for (int s = 0; s < t->nstreams; s++)
        if (t->streams[s].component == component && strcmp(t->streams[s].name, name) == 0) return &t->streams[s];
    return NULL;
}

int topology_stream_field(const topo_stream *s, const char *name) {
    for (int f = 0; f < s->nfields; f++)
        if (strcmp(s->fields[f], name) == 0) return f;
    return -1;
}
