/*
 * topology: YAML file -> validated topology. Loading runs in three steps:
 * parse (shape of the document: kinds of nodes, known keys), resolve
 * (library, classes, declared streams, silently: errors are kept), then
 * validation passes in a fixed order so that a file with several mistakes
 * always reports the same first one. Finally tasks are laid out.
 * No threads; the result is read-only and may be shared.
 */
#include "topology/topology.h"

#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/yaml_doc.h"

#define TOPO_MAX_PARALLELISM 10000
#define TOPO_MAX_NAME 128
#define TOPO_MAX_TASKS 100000

static const char *const grouping_names[] = {
    [GROUP_SHUFFLE] = "shuffle", [GROUP_LOCAL_OR_SHUFFLE] = "local-or-shuffle",
    [GROUP_FIELDS] = "fields",   [GROUP_ALL] = "all",
    [GROUP_GLOBAL] = "global",   [GROUP_DIRECT] = "direct",
    [GROUP_NONE] = "none",       [GROUP_PARTIAL_KEY] = "partial-key",
};
#define NGROUPINGS (sizeof grouping_names / sizeof grouping_names[0])
#define GROUPING_LIST "shuffle, local-or-shuffle, fields, all, global, direct, none, partial-key"

const char *topo_grouping_name(topo_grouping g) {
    return (unsigned)g < NGROUPINGS ? grouping_names[g] : "?";
}

/* What the loader remembers about a component beyond topo_component. */
typedef struct comp_src {
    const yd_node *map;       /* the component's mapping in the document */
    char *resolve_err;        /* class/library problem found while resolving */
    int resolve_line;
} comp_src;

typedef struct loader {
    const char *path;
    char *err;
    size_t errlen;
    topology *t;
    comp_src *src;            /* parallel to t->components (user components) */
    int nuser;                /* components declared in the file */
    const yd_node *lib_node;  /* library: as written */
    char *lib_err;            /* why the library did not load */
} loader;

static int fail(loader *ld, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(loader *ld, int line, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(ld->err, ld->errlen, "%s:%d: %s", ld->path, line, msg);
    return -1;
}

static int oom(loader *ld) {
    snprintf(ld->err, ld->errlen, "%s: out of memory", ld->path);
    return -1;
}

static const char *kind_word(const topo_component *c) { return c->kind == SD_SPOUT ? "spout" : "bolt"; }

/* ---- freeing ------------------------------------------------------------ */

static void free_strv(char **v, int n) {
    if (!v) return;
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

void topology_free(topology *t) {
    if (!t) return;
    for (int c = 0; c < t->ncomponents; c++) {
        topo_component *comp = &t->components[c];
        free(comp->id);
        free(comp->class_name);
        if (comp->command)
            for (char **a = comp->command; *a; a++) free(*a);
        free(comp->command);
        for (int i = 0; i < comp->nargs; i++) {
            free(comp->args[i].key);
            free(comp->args[i].value);
        }
        free(comp->args);
        for (int i = 0; i < comp->ninputs; i++) {
            free(comp->inputs[i].from);
            free(comp->inputs[i].stream);
            free_strv(comp->inputs[i].fields, comp->inputs[i].nfields);
            free(comp->inputs[i].field_index);
        }
        free(comp->inputs);
        free(comp->stream_ids);
    }
    free(t->components);
    for (int s = 0; s < t->nstreams; s++) {
        free(t->streams[s].name);
        free_strv(t->streams[s].fields, t->streams[s].nfields);
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

/* ---- small parsing helpers ---------------------------------------------- */

static bool is_scalar(const yd_node *n) { return n && n->kind == YD_SCALAR && !yd_is_null(n); }

static bool has_outputs(const yd_node *map) {
    const yd_node *out = yd_get(map, "outputs");
    return out && !yd_is_null(out);
}

/* Rejects keys of map not in allowed (NULL-terminated). */
static int check_keys(loader *ld, const yd_node *map, const char *const *allowed, const char *what) {
    for (size_t i = 0; i < map->n; i++) {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++) ok = strcmp(*a, map->keys[i]) == 0;
        if (!ok) {
            char list[256] = "";
            size_t used = 0;
            for (const char *const *a = allowed; *a && used < sizeof list; a++)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", *a);
            return fail(ld, map->key_lines[i], "unknown key '%s' in %s (expected: %s)", map->keys[i], what, list);
        }
    }
    return 0;
}

/* A list of names: a sequence of scalars (or one scalar). Fills out and n. */
static int name_list(loader *ld, const yd_node *node, const char *what, char ***out, int *n) {
    *out = NULL;
    *n = 0;
    if (!node || yd_is_null(node)) return 0;
    size_t count = node->kind == YD_SEQ ? node->n : 1;
    if (node->kind == YD_MAP) return fail(ld, node->line, "%s: expected a list like [a, b], got a mapping", what);
    if (count > SD_MAX_FIELDS) return fail(ld, node->line, "%s: more than %d names", what, SD_MAX_FIELDS);
    char **v = calloc(count ? count : 1, sizeof *v);
    if (!v) return oom(ld);
    for (size_t i = 0; i < count; i++) {
        const yd_node *it = node->kind == YD_SEQ ? node->items[i] : node;
        if (!is_scalar(it)) {
            free_strv(v, (int)i);
            return fail(ld, it->line, "%s: expected a plain name, got %s", what,
                        it->kind == YD_SCALAR ? "nothing" : yd_kind_name(it));
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(v[j], it->text) == 0) {
                free_strv(v, (int)i);
                return fail(ld, it->line, "%s: '%s' is listed twice", what, it->text);
            }
        if (!(v[i] = strdup(it->text))) {
            free_strv(v, (int)i);
            return oom(ld);
        }
    }
    *out = v;
    *n = (int)count;
    return 0;
}

/* ---- streams ------------------------------------------------------------ */

/* Appends a stream emitted by component comp (-1 = __system). Takes fields. */
static int add_stream(loader *ld, int comp, const char *name, char **fields, int nfields, bool direct) {
    topology *t = ld->t;
    topo_stream *grown = realloc(t->streams, (size_t)(t->nstreams + 1) * sizeof *grown);
    if (!grown) {
        free_strv(fields, nfields);
        return oom(ld);
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
        free_strv(fields, nfields);
        return oom(ld);
    }
    t->nstreams++;
    if (comp >= 0) {
        topo_component *c = &t->components[comp];
        int *ids = realloc(c->stream_ids, (size_t)(c->nstreams + 1) * sizeof *ids);
        if (!ids) return oom(ld);
        c->stream_ids = ids;
        ids[c->nstreams++] = s->id;
    }
    return 0;
}

static int add_stream_v(loader *ld, int comp, const char *name, bool direct, const char *const *names) {
    int n = 0;
    while (names[n] && n < SD_MAX_FIELDS) n++;
    char **fields = calloc((size_t)n + 1, sizeof *fields);
    if (!fields) return oom(ld);
    for (int i = 0; i < n; i++)
        if (!(fields[i] = strdup(names[i]))) {
            free_strv(fields, i);
            return oom(ld);
        }
    return add_stream(ld, comp, name, fields, n, direct);
}

/* `outputs:` either [f1, f2] (the default stream) or {stream: [fields]} or
 * {stream: {fields: [..], direct: true}}. Streams are added right away. */
static int parse_outputs(loader *ld, int ci, const yd_node *out) {
    const char *id = ld->t->components[ci].id;
    char what[256];
    if (out->kind == YD_SEQ) {
        char **f;
        int nf;
        snprintf(what, sizeof what, "component '%s': outputs", id);
        if (name_list(ld, out, what, &f, &nf) != 0) return -1;
        return add_stream(ld, ci, SD_DEFAULT_STREAM, f, nf, false);
    }
    if (out->kind != YD_MAP)
        return fail(ld, out->line, "component '%s': outputs: expected a list of fields or a mapping of streams", id);
    if (out->n > SD_MAX_STREAMS)
        return fail(ld, out->line, "component '%s': outputs: more than %d streams", id, SD_MAX_STREAMS);
    for (size_t i = 0; i < out->n; i++) {
        const char *name = out->keys[i];
        const yd_node *v = out->items[i];
        int line = out->key_lines[i];
        if (!*name || strncmp(name, "__", 2) == 0)
            return fail(ld, line, "component '%s': output stream '%s': names starting with \"__\" are reserved", id, name);
        bool direct = false;
        const yd_node *fields = v;
        if (v->kind == YD_MAP) {
            static const char *const keys[] = {"fields", "direct", NULL};
            if (check_keys(ld, v, keys, "an output stream") != 0) return -1;
            fields = yd_get(v, "fields");
            const yd_node *d = yd_get(v, "direct");
            if (d && !(is_scalar(d) && (strcmp(d->text, "true") == 0 || strcmp(d->text, "false") == 0)))
                return fail(ld, d->line, "component '%s': output stream '%s': direct: expected true or false", id, name);
            direct = d && strcmp(d->text, "true") == 0;
        }
        char **f;
        int nf;
        snprintf(what, sizeof what, "component '%s': output stream '%s'", id, name);
        if (name_list(ld, fields, what, &f, &nf) != 0) return -1;
        if (add_stream(ld, ci, name, f, nf, direct) != 0) return -1;
    }
    return 0;
}

/* ---- parse: one component ------------------------------------------------ */

static int parse_inputs(loader *ld, topo_component *c, const yd_node *in) {
    if (!in || yd_is_null(in)) return 0;
    if (in->kind != YD_SEQ)
        return fail(ld, in->line, "%s '%s': inputs: expected a list like [{from: x, grouping: shuffle}]",
                    kind_word(c), c->id);
    c->inputs = calloc(in->n ? in->n : 1, sizeof *c->inputs);
    if (!c->inputs) return oom(ld);
    for (size_t i = 0; i < in->n; i++) {
        const yd_node *m = in->items[i];
        topo_input *ti = &c->inputs[c->ninputs++];
        ti->line = m->line;
        ti->from_component = -1;
        ti->stream_id = -1;
        if (m->kind != YD_MAP)
            return fail(ld, m->line, "%s '%s': each input is a mapping {from: ..., grouping: ...}", kind_word(c), c->id);
        static const char *const keys[] = {"from", "stream", "grouping", "fields", NULL};
        if (check_keys(ld, m, keys, "an input") != 0) return -1;
        const yd_node *from = yd_get(m, "from"), *stream = yd_get(m, "stream");
        if (!is_scalar(from)) return fail(ld, m->line, "%s '%s': input without 'from'", kind_word(c), c->id);
        if (stream && !is_scalar(stream))
            return fail(ld, stream->line, "%s '%s': input stream: expected a stream name", kind_word(c), c->id);
        ti->from = strdup(from->text);
        ti->stream = strdup(stream ? stream->text : SD_DEFAULT_STREAM);
        if (!ti->from || !ti->stream) return oom(ld);
        char what[256];
        snprintf(what, sizeof what, "%s '%s': input fields", kind_word(c), c->id);
        if (name_list(ld, yd_get(m, "fields"), what, &ti->fields, &ti->nfields) != 0) return -1;
    }
    return 0;
}

static int parse_component(loader *ld, int ci, const yd_node *m, sd_component_kind section) {
    topo_component *c = &ld->t->components[ci];
    c->index = ci;
    c->kind = section;
    c->line = m->line;
    c->parallelism = 1;
    ld->src[ci].map = m;
    const char *sec = section == SD_SPOUT ? "spouts" : "bolts";
    if (m->kind != YD_MAP) return fail(ld, m->line, "%s: each entry is a mapping (id:, class:, ...)", sec);
    static const char *const keys[] = {"id", "class", "command", "parallelism", "args", "inputs", "outputs", NULL};
    if (check_keys(ld, m, keys, section == SD_SPOUT ? "a spout" : "a bolt") != 0) return -1;
    const yd_node *id = yd_get(m, "id");
    if (!is_scalar(id)) return fail(ld, m->line, "%s: entry without an 'id'", sec);
    if (!(c->id = strdup(id->text))) return oom(ld);

    const yd_node *cls = yd_get(m, "class"), *cmd = yd_get(m, "command");
    if (cls && !is_scalar(cls)) return fail(ld, cls->line, "%s '%s': class: expected a name", kind_word(c), c->id);
    if (cls && !(c->class_name = strdup(cls->text))) return oom(ld);
    if (cls && cmd) return fail(ld, cmd->line, "%s '%s': give either class or command, not both", kind_word(c), c->id);
    if (cmd) {
        if (cmd->kind != YD_SEQ || cmd->n == 0)
            return fail(ld, cmd->line, "%s '%s': command: expected a list like [python3, count.py]", kind_word(c), c->id);
        if (!(c->command = calloc(cmd->n + 1, sizeof *c->command))) return oom(ld);
        for (size_t i = 0; i < cmd->n; i++) {
            if (cmd->items[i]->kind != YD_SCALAR)
                return fail(ld, cmd->items[i]->line, "%s '%s': command: expected plain words", kind_word(c), c->id);
            if (!(c->command[i] = strdup(cmd->items[i]->text))) return oom(ld);
        }
    }

    const yd_node *args = yd_get(m, "args");
    if (args && !yd_is_null(args)) {
        if (args->kind != YD_MAP) return fail(ld, args->line, "%s '%s': args: expected a mapping", kind_word(c), c->id);
        if (!(c->args = calloc(args->n ? args->n : 1, sizeof *c->args))) return oom(ld);
        for (size_t i = 0; i < args->n; i++) {
            if (args->items[i]->kind != YD_SCALAR)
                return fail(ld, args->key_lines[i], "%s '%s': args: '%s' must be a plain value, got %s", kind_word(c),
                            c->id, args->keys[i], yd_kind_name(args->items[i]));
            topo_arg *a = &c->args[c->nargs++];
            a->key = strdup(args->keys[i]);
            a->value = strdup(args->items[i]->text);
            if (!a->key || !a->value) return oom(ld);
        }
    }
    if (parse_inputs(ld, c, yd_get(m, "inputs")) != 0) return -1;
    const yd_node *out = yd_get(m, "outputs");
    if (out && !yd_is_null(out) && parse_outputs(ld, ci, out) != 0) return -1;
    return 0;
}

static int parse_section(loader *ld, const yd_node *root, const char *key, sd_component_kind kind) {
    const yd_node *sec = yd_get(root, key);
    if (!sec || yd_is_null(sec)) return 0;
    if (sec->kind != YD_SEQ) return fail(ld, sec->line, "%s: expected a list of components (- id: ...)", key);
    for (size_t i = 0; i < sec->n; i++) {
        int ci = ld->nuser++;
        ld->t->ncomponents = ld->nuser; /* so topology_free sees what was filled */
        if (parse_component(ld, ci, sec->items[i], kind) != 0) return -1;
    }
    return 0;
}

/* ---- resolve: library, classes, streams ----------------------------------- */

static void resolve_err(loader *ld, int ci, int line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void resolve_err(loader *ld, int ci, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
    va_end(ap);
    free(ld->src[ci].resolve_err);
    ld->src[ci].resolve_err = msg ? msg : strdup("out of memory");
    ld->src[ci].resolve_line = line;
}

static void load_library(loader *ld) {
    topology *t = ld->t;
    struct stat st;
    if (stat(t->library, &st) != 0) {
        if (asprintf(&ld->lib_err, "library '%s': %s (looked for %s)", ld->lib_node->text, strerror(errno),
                     t->library) < 0)
            ld->lib_err = NULL;
        return;
    }
    t->dl_handle = dlopen(t->library, RTLD_NOW | RTLD_LOCAL);
    if (!t->dl_handle) {
        const char *why = dlerror();
        if (asprintf(&ld->lib_err, "library '%s': cannot load: %s", ld->lib_node->text, why ? why : "unknown error") < 0)
            ld->lib_err = NULL;
    }
}

static void resolve_class(loader *ld, int ci) {
    topo_component *c = &ld->t->components[ci];
    const yd_node *cls = yd_get(ld->src[ci].map, "class");
    if (c->command) {
        resolve_err(ld, ci, yd_get(ld->src[ci].map, "command")->line,
                    "%s '%s': multi-lang components are not supported yet", kind_word(c), c->id);
        return;
    }
    if (!c->class_name) {
        resolve_err(ld, ci, c->line, "%s '%s': needs a class (or a command)", kind_word(c), c->id);
        return;
    }
    c->def = builtin_component(c->class_name);
    if (c->def) return;
    if (!ld->lib_node) {
        resolve_err(ld, ci, cls->line, "%s '%s': no component class '%s' (not built in, and the topology names no library)",
                    kind_word(c), c->id, c->class_name);
        return;
    }
    if (!ld->t->dl_handle) return; /* the library error is reported for it */
    char sym[512];
    snprintf(sym, sizeof sym, "%s%s", SD_COMPONENT_SYMBOL_PREFIX, c->class_name);
    /* the exported symbol is a pointer variable: dlsym gives its address */
    const sd_component_def *const *slot = dlsym(ld->t->dl_handle, sym);
    if (slot && *slot) {
        c->def = *slot;
        return;
    }
    resolve_err(ld, ci, cls->line, "%s '%s': no component class '%s' (not built in, not in %s)", kind_word(c), c->id,
                c->class_name, ld->lib_node->text);
}

static int declare_streams(loader *ld, int ci) {
    topo_component *c = &ld->t->components[ci];
    if (!has_outputs(ld->src[ci].map) && c->def && c->def->streams) {
        for (int i = 0; i < SD_MAX_STREAMS && c->def->streams[i].name; i++) {
            const sd_stream_decl *d = &c->def->streams[i];
            if (strncmp(d->name, "__", 2) == 0) {
                resolve_err(ld, ci, c->line, "%s '%s': class '%s' declares reserved stream '%s'", kind_word(c), c->id,
                            c->class_name, d->name);
                continue;
            }
            if (add_stream_v(ld, ci, d->name, d->direct, d->fields) != 0) return -1;
        }
    }
    static const char *const ack_init[] = {"root", "xor", "task", NULL};
    static const char *const ack_ack[] = {"root", "xor", NULL};
    static const char *const ack_fail[] = {"root", NULL};
    if (c->kind == SD_SPOUT) return add_stream_v(ld, ci, TOPO_STREAM_ACK_INIT, false, ack_init);
    if (add_stream_v(ld, ci, TOPO_STREAM_ACK_ACK, false, ack_ack) != 0) return -1;
    return add_stream_v(ld, ci, TOPO_STREAM_ACK_FAIL, false, ack_fail);
}

/* ---- validation passes ------------------------------------------------------ */

static int parse_count(const char *s, long *out) {
    char *end;
    errno = 0;
    if (!(*s >= '0' && *s <= '9') && !(*s == '-' && s[1] >= '0' && s[1] <= '9')) return -1;
    long v = strtol(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

static int check_ids(loader *ld) {
    topology *t = ld->t;
    for (int i = 0; i < ld->nuser; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(t->components[i].id, t->components[j].id) == 0)
                return fail(ld, t->components[i].line, "duplicate component id '%s' (first declared on line %d)",
                            t->components[i].id, t->components[j].line);
    for (int i = 0; i < ld->nuser; i++)
        if (strncmp(t->components[i].id, "__", 2) == 0)
            return fail(ld, t->components[i].line, "%s id '%s': ids starting with \"__\" are reserved",
                        kind_word(&t->components[i]), t->components[i].id);
    return 0;
}

static int check_parallelism(loader *ld) {
    for (int i = 0; i < ld->nuser; i++) {
        topo_component *c = &ld->t->components[i];
        const yd_node *p = yd_get(ld->src[i].map, "parallelism");
        if (!p) continue;
        long v = 0;
        if (p->kind != YD_SCALAR || parse_count(p->text, &v) != 0 || v < 1 || v > TOPO_MAX_PARALLELISM)
            return fail(ld, p->line, "%s '%s': parallelism must be an integer from 1 to %d, got '%s'", kind_word(c),
                        c->id, TOPO_MAX_PARALLELISM, p->kind == YD_SCALAR ? p->text : yd_kind_name(p));
        c->parallelism = (int)v;
    }
    return 0;
}

static const yd_node *input_node(loader *ld, int ci, int k) {
    return yd_get(ld->src[ci].map, "inputs")->items[k];
}

static int check_groupings(loader *ld) {
    for (int i = 0; i < ld->nuser; i++) {
        topo_component *c = &ld->t->components[i];
        for (int k = 0; k < c->ninputs; k++) {
            const yd_node *g = yd_get(input_node(ld, i, k), "grouping");
            if (!is_scalar(g))
                return fail(ld, g ? g->line : c->inputs[k].line, "%s '%s': input from '%s' needs a grouping (one of: %s)",
                            kind_word(c), c->id, c->inputs[k].from, GROUPING_LIST);
            size_t gi = 0;
            while (gi < NGROUPINGS && strcmp(grouping_names[gi], g->text) != 0) gi++;
            if (gi == NGROUPINGS)
                return fail(ld, g->line, "%s '%s': unknown grouping '%s' (valid: %s)", kind_word(c), c->id, g->text,
                            GROUPING_LIST);
            c->inputs[k].grouping = (topo_grouping)gi;
        }
    }
    return 0;
}

/* Line of an input's key if present (more precise), else of the input. */
static int input_line(loader *ld, int ci, int k, const char *key) {
    const yd_node *n = yd_get(input_node(ld, ci, k), key);
    return n ? n->line : ld->t->components[ci].inputs[k].line;
}

static int check_inputs(loader *ld) {
    topology *t = ld->t;
    /* each check is one pass over all inputs: the first kind of mistake wins */
    for (int pass = 0; pass < 5; pass++) {
        for (int i = 0; i < ld->nuser; i++) {
            topo_component *c = &t->components[i];
            for (int k = 0; k < c->ninputs; k++) {
                topo_input *in = &c->inputs[k];
                const topo_component *from = in->from_component >= 0 ? &t->components[in->from_component] : NULL;
                const topo_stream *s = in->stream_id >= 0 ? &t->streams[in->stream_id] : NULL;
                bool keyed = in->grouping == GROUP_FIELDS || in->grouping == GROUP_PARTIAL_KEY;
                switch (pass) {
                case 0: /* the source component exists */
                    for (int j = 0; j < ld->nuser && in->from_component < 0; j++)
                        if (strcmp(t->components[j].id, in->from) == 0) in->from_component = j;
                    if (in->from_component < 0)
                        return fail(ld, input_line(ld, i, k, "from"), "%s '%s': input from unknown component '%s'",
                                    kind_word(c), c->id, in->from);
                    break;
                case 1: /* it declares the stream */
                    if (from->def == NULL && !has_outputs(ld->src[in->from_component].map))
                        break; /* streams unknown: the class error is reported later */
                    s = topology_stream(t, in->from_component, in->stream);
                    if (!s)
                        return fail(ld, input_line(ld, i, k, "stream"), "%s '%s': '%s' has no stream '%s'",
                                    kind_word(c), c->id, in->from, in->stream);
                    if (s->system)
                        return fail(ld, input_line(ld, i, k, "stream"),
                                    "%s '%s': stream '%s' is a system stream; the runtime routes it", kind_word(c),
                                    c->id, in->stream);
                    in->stream_id = s->id;
                    break;
                case 2: /* fields go with fields and partial-key groupings only */
                    if (keyed && in->nfields == 0)
                        return fail(ld, input_line(ld, i, k, "grouping"),
                                    "%s '%s': grouping '%s' from '%s' needs fields: [...]", kind_word(c), c->id,
                                    topo_grouping_name(in->grouping), in->from);
                    if (!keyed && in->nfields > 0)
                        return fail(ld, input_line(ld, i, k, "fields"),
                                    "%s '%s': fields apply only to the fields and partial-key groupings (input from '%s' uses '%s')",
                                    kind_word(c), c->id, in->from, topo_grouping_name(in->grouping));
                    break;
                case 3: /* the fields exist on the stream */
                    if (!s || in->nfields == 0) break;
                    if (!(in->field_index = calloc((size_t)in->nfields, sizeof(int)))) return oom(ld);
                    for (int f = 0; f < in->nfields; f++) {
                        in->field_index[f] = topology_stream_field(s, in->fields[f]);
                        if (in->field_index[f] >= 0) continue;
                        char has[512] = "";
                        size_t used = 0;
                        for (int h = 0; h < s->nfields && used < sizeof has; h++)
                            used += (size_t)snprintf(has + used, sizeof has - used, "%s%s", h ? ", " : "", s->fields[h]);
                        return fail(ld, input_line(ld, i, k, "fields"),
                                    "%s '%s': stream '%s' of '%s' declares no field '%s' (has: %s)", kind_word(c),
                                    c->id, s->name, in->from, in->fields[f], s->nfields ? has : "no fields");
                    }
                    break;
                case 4: /* direct streams and direct grouping go together */
                    if (!s) break;
                    if (in->grouping == GROUP_DIRECT && !s->direct)
                        return fail(ld, input_line(ld, i, k, "grouping"),
                                    "%s '%s': grouping 'direct' needs a direct stream; stream '%s' of '%s' is not direct",
                                    kind_word(c), c->id, s->name, in->from);
                    if (in->grouping != GROUP_DIRECT && s->direct)
                        return fail(ld, input_line(ld, i, k, "grouping"),
                                    "%s '%s': stream '%s' of '%s' is direct: subscribe with grouping: direct",
                                    kind_word(c), c->id, s->name, in->from);
                    break;
                }
            }
        }
    }
    for (int i = 0; i < ld->nuser; i++)
        if (t->components[i].kind == SD_SPOUT && t->components[i].ninputs > 0)
            return fail(ld, t->components[i].inputs[0].line, "spout '%s': spouts take no inputs", t->components[i].id);
    return 0;
}

static int check_classes(loader *ld) {
    topology *t = ld->t;
    for (int i = 0; i < ld->nuser; i++) {
        topo_component *c = &t->components[i];
        if (ld->src[i].resolve_err) return fail(ld, ld->src[i].resolve_line, "%s", ld->src[i].resolve_err);
        if (!c->def && ld->lib_err) return fail(ld, ld->lib_node->line, "%s", ld->lib_err);
    }
    if (ld->lib_err) return fail(ld, ld->lib_node->line, "%s", ld->lib_err);
    for (int i = 0; i < ld->nuser; i++) {
        topo_component *c = &t->components[i];
        if (!c->def) return fail(ld, c->line, "%s '%s': class did not resolve", kind_word(c), c->id);
        int line = yd_get(ld->src[i].map, "class")->line;
        if (c->def->kind != c->kind)
            return fail(ld, line, "%s '%s': class '%s' is a %s; declare it under %s", kind_word(c), c->id, c->class_name,
                        c->def->kind == SD_SPOUT ? "spout" : "bolt", c->def->kind == SD_SPOUT ? "spouts:" : "bolts:");
        if (c->def->api_version != SD_API_VERSION)
            return fail(ld, line, "%s '%s': class '%s' was built for component API version %d; this streamd has %d",
                        kind_word(c), c->id, c->class_name, c->def->api_version, SD_API_VERSION);
    }
    return 0;
}

/* ---- top level ---------------------------------------------------------------- */

static int load_conf(loader *ld, const yd_node *root, const conf *base, const conf *overrides) {
    topology *t = ld->t;
    t->conf = base ? conf_copy(base) : conf_new();
    if (!t->conf) return oom(ld);
    const yd_node *cfg = yd_get(root, "config");
    if (cfg && !yd_is_null(cfg)) {
        if (cfg->kind != YD_MAP) return fail(ld, cfg->line, "config: expected a mapping of dotted keys");
        for (size_t i = 0; i < cfg->n; i++) {
            const yd_node *v = cfg->items[i];
            if (v->kind != YD_SCALAR)
                return fail(ld, cfg->key_lines[i], "key '%s': expected a single value, got %s", cfg->keys[i],
                            yd_kind_name(v));
            if (conf_set_text(t->conf, cfg->keys[i], v->text, ld->path, cfg->key_lines[i], ld->err, ld->errlen) != 0)
                return -1;
        }
    }
    /* `workers:` is the short spelling of topology.workers and wins over config: */
    int wi = yd_index(root, "workers");
    if (wi >= 0) {
        const yd_node *w = root->items[wi];
        if (w->kind != YD_SCALAR)
            return fail(ld, root->key_lines[wi], "key 'workers': expected an integer, got %s", yd_kind_name(w));
        if (conf_set_text_as(t->conf, "topology.workers", "workers", w->text, ld->path, root->key_lines[wi], ld->err,
                             ld->errlen) != 0)
            return -1;
    }
    if (overrides) conf_merge(t->conf, overrides);
    int64_t workers = conf_int(t->conf, "topology.workers");
    if (workers < 1 || workers > 65535)
        return fail(ld, wi >= 0 ? root->key_lines[wi] : root->line, "topology.workers must be from 1 to 65535, got %lld",
                    (long long)workers);
    t->workers = (int)workers;
    return 0;
}

static int load_header(loader *ld, const yd_node *root) {
    topology *t = ld->t;
    static const char *const keys[] = {"name", "library", "workers", "config", "spouts", "bolts", NULL};
    if (check_keys(ld, root, keys, "a topology") != 0) return -1;
    const yd_node *name = yd_get(root, "name");
    if (!name || yd_is_null(name)) return fail(ld, name ? name->line : root->line, "missing 'name' (the topology's name)");
    if (name->kind != YD_SCALAR) return fail(ld, name->line, "name: expected a plain name, got %s", yd_kind_name(name));
    size_t len = strlen(name->text);
    if (len > TOPO_MAX_NAME || strspn(name->text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != len)
        return fail(ld, name->line, "name '%s': use at most %d letters, digits, '.', '_' and '-'", name->text,
                    TOPO_MAX_NAME);
    if (!(t->name = strdup(name->text))) return oom(ld);
    char *real = realpath(ld->path, NULL);
    if (!real) return fail(ld, 1, "cannot resolve the file's directory: %s", strerror(errno));
    t->dir = strdup(dirname(real));
    free(real);
    if (!t->dir) return oom(ld);
    const yd_node *lib = yd_get(root, "library");
    if (lib && !yd_is_null(lib)) {
        if (!is_scalar(lib)) return fail(ld, lib->line, "library: expected a file name");
        ld->lib_node = lib;
        int rc = lib->text[0] == '/' ? ((t->library = strdup(lib->text)) ? 0 : -1)
                                     : asprintf(&t->library, "%s/%s", t->dir, lib->text);
        if (rc < 0) {
            t->library = NULL;
            return oom(ld);
        }
    }
    return 0;
}

static int count_components(loader *ld, const yd_node *root) {
    int n = 0;
    const char *secs[] = {"spouts", "bolts"};
    for (int s = 0; s < 2; s++) {
        const yd_node *sec = yd_get(root, secs[s]);
        if (sec && sec->kind == YD_SEQ) n += (int)sec->n;
    }
    if (n > TOPO_MAX_PARALLELISM) return fail(ld, root->line, "more than %d components", TOPO_MAX_PARALLELISM);
    return n;
}

static int build(loader *ld, const yd_node *root, const conf *base, const conf *overrides) {
    topology *t = ld->t;
    if (root->kind != YD_MAP && !yd_is_null(root))
        return fail(ld, root->line, "a topology is a mapping (name:, spouts:, bolts:), got %s", yd_kind_name(root));
    if (root->kind != YD_MAP) return fail(ld, root->line, "missing 'name' (the topology's name)");
    if (load_header(ld, root) != 0 || load_conf(ld, root, base, overrides) != 0) return -1;
    int n = count_components(ld, root);
    if (n < 0) return -1;
    /* one spare slot for the acker */
    t->components = calloc((size_t)n + 1, sizeof *t->components);
    ld->src = calloc((size_t)n + 1, sizeof *ld->src);
    if (!t->components || !ld->src) return oom(ld);
    if (parse_section(ld, root, "spouts", SD_SPOUT) != 0 || parse_section(ld, root, "bolts", SD_BOLT) != 0) return -1;
    if (check_ids(ld) != 0 || check_parallelism(ld) != 0 || check_groupings(ld) != 0) return -1;

    if (t->library) load_library(ld);
    for (int i = 0; i < ld->nuser; i++) {
        resolve_class(ld, i);
        if (declare_streams(ld, i) != 0) return -1;
    }
    if (check_inputs(ld) != 0 || check_classes(ld) != 0) return -1;
    bool has_spout = false;
    for (int i = 0; i < ld->nuser; i++) has_spout = has_spout || t->components[i].kind == SD_SPOUT;
    if (!has_spout) return fail(ld, root->line, "topology '%s' has no spouts", t->name);

    int64_t ackers = conf_int(t->conf, "topology.acker.executors");
    if (ackers > TOPO_MAX_PARALLELISM) return fail(ld, root->line, "topology.acker.executors: at most %d", TOPO_MAX_PARALLELISM);
    if (ackers > 0) {
        int ai = t->ncomponents++;
        topo_component *a = &t->components[ai];
        a->index = ai;
        a->line = 0;
        a->kind = SD_BOLT;
        a->is_acker = true;
        a->parallelism = (int)ackers;
        if (!(a->id = strdup(TOPO_ACKER_ID))) return oom(ld);
        static const char *const done[] = {"root", "ok", NULL};
        if (add_stream_v(ld, ai, TOPO_STREAM_ACK_DONE, false, done) != 0) return -1;
    }
    static const char *const none[] = {NULL};
    if (add_stream_v(ld, -1, TOPO_STREAM_TICK, false, none) != 0) return -1;

    int next = 1;
    for (int i = 0; i < t->ncomponents; i++) {
        t->components[i].first_task = next;
        next += t->components[i].parallelism;
    }
    t->ntasks = next - 1;
    if (t->ntasks > TOPO_MAX_TASKS) return fail(ld, root->line, "%d tasks in all; at most %d", t->ntasks, TOPO_MAX_TASKS);
    return 0;
}

topology *topology_load(const char *path, const conf *base, const conf *overrides, char *err, size_t errlen) {
    loader ld = {.path = path, .err = err, .errlen = errlen};
    yd_node *root = yd_load_file(path, err, errlen);
    if (!root) return NULL;
    topology *t = ld.t = calloc(1, sizeof *t);
    int rc = t && (t->path = strdup(path)) ? build(&ld, root, base, overrides) : oom(&ld);
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
