/*
 * topology_parse: the first step of loading (see topology_internal.h):
 * checks the document's shape and keys, merges the configuration and
 * fills the components with their args, inputs and `outputs:` streams.
 * Nothing here looks at classes or libraries. Called by topology.c only.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topology/topology_internal.h"

/* ---- small parsing helpers ---------------------------------------------- */

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
            return topo_fail(ld, map->key_lines[i], "unknown key '%s' in %s (expected: %s)", map->keys[i], what, list);
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
    if (node->kind == YD_MAP) return topo_fail(ld, node->line, "%s: expected a list like [a, b], got a mapping", what);
    if (count > SD_MAX_FIELDS) return topo_fail(ld, node->line, "%s: more than %d names", what, SD_MAX_FIELDS);
    char **v = calloc(count ? count : 1, sizeof *v);
    if (!v) return topo_oom(ld);
    for (size_t i = 0; i < count; i++) {
        const yd_node *it = node->kind == YD_SEQ ? node->items[i] : node;
        if (!topo_is_scalar(it)) {
            topo_free_strv(v, (int)i);
            return topo_fail(ld, it->line, "%s: expected a plain name, got %s", what,
                             it->kind == YD_SCALAR ? "nothing" : yd_kind_name(it));
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(v[j], it->text) == 0) {
                topo_free_strv(v, (int)i);
                return topo_fail(ld, it->line, "%s: '%s' is listed twice", what, it->text);
            }
        if (!(v[i] = strdup(it->text))) {
            topo_free_strv(v, (int)i);
            return topo_oom(ld);
        }
    }
    *out = v;
    *n = (int)count;
    return 0;
}

/* ---- streams declared in the file ---------------------------------------- */

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
        return topo_add_stream(ld, ci, SD_DEFAULT_STREAM, f, nf, false);
    }
    if (out->kind != YD_MAP)
        return topo_fail(ld, out->line, "component '%s': outputs: expected a list of fields or a mapping of streams",
                         id);
    if (out->n > SD_MAX_STREAMS)
        return topo_fail(ld, out->line, "component '%s': outputs: more than %d streams", id, SD_MAX_STREAMS);
    for (size_t i = 0; i < out->n; i++) {
        const char *name = out->keys[i];
        const yd_node *v = out->items[i];
        int line = out->key_lines[i];
        if (!*name || strncmp(name, "__", 2) == 0)
            return topo_fail(ld, line, "component '%s': output stream '%s': names starting with \"__\" are reserved",
                             id, name);
        bool direct = false;
        const yd_node *fields = v;
        if (v->kind == YD_MAP) {
            static const char *const keys[] = {"fields", "direct", NULL};
            if (check_keys(ld, v, keys, "an output stream") != 0) return -1;
            fields = yd_get(v, "fields");
            const yd_node *d = yd_get(v, "direct");
            if (d && !(topo_is_scalar(d) && (strcmp(d->text, "true") == 0 || strcmp(d->text, "false") == 0)))
                return topo_fail(ld, d->line, "component '%s': output stream '%s': direct: expected true or false", id,
                                 name);
            direct = d && strcmp(d->text, "true") == 0;
        }
        char **f;
        int nf;
        snprintf(what, sizeof what, "component '%s': output stream '%s'", id, name);
        if (name_list(ld, fields, what, &f, &nf) != 0) return -1;
        if (topo_add_stream(ld, ci, name, f, nf, direct) != 0) return -1;
    }
    return 0;
}

/* ---- parse: one component ------------------------------------------------ */

static int parse_inputs(loader *ld, topo_component *c, const yd_node *in) {
    if (!in || yd_is_null(in)) return 0;
    if (in->kind != YD_SEQ)
        return topo_fail(ld, in->line, "%s '%s': inputs: expected a list like [{from: x, grouping: shuffle}]",
                         topo_kind_word(c), c->id);
    c->inputs = calloc(in->n ? in->n : 1, sizeof *c->inputs);
    if (!c->inputs) return topo_oom(ld);
    for (size_t i = 0; i < in->n; i++) {
        const yd_node *m = in->items[i];
        topo_input *ti = &c->inputs[c->ninputs++];
        ti->line = m->line;
        ti->from_component = -1;
        ti->stream_id = -1;
        if (m->kind != YD_MAP)
            return topo_fail(ld, m->line, "%s '%s': each input is a mapping {from: ..., grouping: ...}",
                             topo_kind_word(c), c->id);
        static const char *const keys[] = {"from", "stream", "grouping", "fields", NULL};
        if (check_keys(ld, m, keys, "an input") != 0) return -1;
        const yd_node *from = yd_get(m, "from"), *stream = yd_get(m, "stream");
        if (!topo_is_scalar(from))
            return topo_fail(ld, m->line, "%s '%s': input without 'from'", topo_kind_word(c), c->id);
        if (stream && !topo_is_scalar(stream))
            return topo_fail(ld, stream->line, "%s '%s': input stream: expected a stream name", topo_kind_word(c),
                             c->id);
        ti->from = strdup(from->text);
        ti->stream = strdup(stream ? stream->text : SD_DEFAULT_STREAM);
        if (!ti->from || !ti->stream) return topo_oom(ld);
        char what[256];
        snprintf(what, sizeof what, "%s '%s': input fields", topo_kind_word(c), c->id);
        if (name_list(ld, yd_get(m, "fields"), what, &ti->fields, &ti->nfields) != 0) return -1;
    }
    return 0;
}

/* limits: {cpu.weight: 1..10000, cpu.cores: >= 0, memory.mb: >= 0} */
static int parse_limits(loader *ld, topo_component *c, const yd_node *r) {
    if (!r || yd_is_null(r)) return 0;
    if (r->kind != YD_MAP)
        return topo_fail(ld, r->line, "%s '%s': limits: expected a mapping (cpu.weight, cpu.cores, memory.mb)",
                         topo_kind_word(c), c->id);
    static const char *const keys[] = {"cpu.weight", "cpu.cores", "memory.mb", NULL};
    char what[300];
    snprintf(what, sizeof what, "%s '%s': limits", topo_kind_word(c), c->id);
    if (check_keys(ld, r, keys, what) != 0) return -1;
    topo_limits *res = &c->limits;
    for (size_t i = 0; i < r->n; i++) {
        const yd_node *v = r->items[i];
        const char *k = r->keys[i];
        char *end = NULL;
        double d = topo_is_scalar(v) ? strtod(v->text, &end) : -1;
        bool ok = end && end != v->text && *end == '\0' && d >= 0 && d <= 1e9;
        if (ok && strcmp(k, "cpu.weight") == 0 && d >= 1 && d <= 10000 && d == (int64_t)d) {
            res->has_weight = true;
            res->cpu_weight = (int64_t)d;
        } else if (ok && strcmp(k, "cpu.cores") == 0) {
            res->has_cores = true;
            res->cpu_cores = d;
        } else if (ok && strcmp(k, "memory.mb") == 0 && d == (int64_t)d) {
            res->has_memory = true;
            res->memory_mb = (int64_t)d;
        } else {
            return topo_fail(ld, r->key_lines[i], "%s: %s: expected %s", what, k,
                             strcmp(k, "cpu.weight") == 0  ? "a whole number from 1 to 10000"
                             : strcmp(k, "cpu.cores") == 0 ? "a number of cores >= 0"
                                                           : "a whole number of megabytes >= 0");
        }
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
    if (m->kind != YD_MAP) return topo_fail(ld, m->line, "%s: each entry is a mapping (id:, class:, ...)", sec);
    static const char *const keys[] = {"id",   "class",   "command", "resources", "limits", "parallelism",
                                       "args", "inputs", "outputs",  NULL};
    if (check_keys(ld, m, keys, section == SD_SPOUT ? "a spout" : "a bolt") != 0) return -1;
    const yd_node *id = yd_get(m, "id");
    if (!topo_is_scalar(id)) return topo_fail(ld, m->line, "%s: entry without an 'id'", sec);
    if (!(c->id = strdup(id->text))) return topo_oom(ld);

    const yd_node *cls = yd_get(m, "class"), *cmd = yd_get(m, "command");
    if (cls && !topo_is_scalar(cls))
        return topo_fail(ld, cls->line, "%s '%s': class: expected a name", topo_kind_word(c), c->id);
    if (cls && !(c->class_name = strdup(cls->text))) return topo_oom(ld);
    if (cls && cmd)
        return topo_fail(ld, cmd->line, "%s '%s': give either class or command, not both", topo_kind_word(c), c->id);
    if (cmd) {
        if (cmd->kind != YD_SEQ || cmd->n == 0)
            return topo_fail(ld, cmd->line, "%s '%s': command: expected a list like [python3, count.py]",
                             topo_kind_word(c), c->id);
        if (!(c->command = calloc(cmd->n + 1, sizeof *c->command))) return topo_oom(ld);
        for (size_t i = 0; i < cmd->n; i++) {
            if (cmd->items[i]->kind != YD_SCALAR)
                return topo_fail(ld, cmd->items[i]->line, "%s '%s': command: expected plain words", topo_kind_word(c),
                                 c->id);
            if (!(c->command[i] = strdup(cmd->items[i]->text))) return topo_oom(ld);
        }
    }
    const yd_node *res = yd_get(m, "resources");
    if (res && !yd_is_null(res)) {
        if (!cmd)
            return topo_fail(ld, res->line, "%s '%s': resources: only a command component has them",
                             topo_kind_word(c), c->id);
        if (!topo_is_scalar(res))
            return topo_fail(ld, res->line, "%s '%s': resources: expected a directory", topo_kind_word(c), c->id);
        /* relative to the topology file, like args paths */
        int rc = res->text[0] == '/' ? asprintf(&c->resources, "%s", res->text)
                                     : asprintf(&c->resources, "%s/%s", ld->t->dir, res->text);
        if (rc < 0) {
            c->resources = NULL;
            return topo_oom(ld);
        }
    }

    const yd_node *args = yd_get(m, "args");
    if (args && !yd_is_null(args)) {
        if (args->kind != YD_MAP)
            return topo_fail(ld, args->line, "%s '%s': args: expected a mapping", topo_kind_word(c), c->id);
        if (!(c->args = calloc(args->n ? args->n : 1, sizeof *c->args))) return topo_oom(ld);
        for (size_t i = 0; i < args->n; i++) {
            if (args->items[i]->kind != YD_SCALAR)
                return topo_fail(ld, args->key_lines[i], "%s '%s': args: '%s' must be a plain value, got %s",
                                 topo_kind_word(c), c->id, args->keys[i], yd_kind_name(args->items[i]));
            topo_arg *a = &c->args[c->nargs++];
            a->key = strdup(args->keys[i]);
            a->value = strdup(args->items[i]->text);
            if (!a->key || !a->value) return topo_oom(ld);
        }
    }
    if (parse_limits(ld, c, yd_get(m, "limits")) != 0) return -1;
    if (parse_inputs(ld, c, yd_get(m, "inputs")) != 0) return -1;
    const yd_node *out = yd_get(m, "outputs");
    if (out && !yd_is_null(out) && parse_outputs(ld, ci, out) != 0) return -1;
    return 0;
}

static int parse_section(loader *ld, const yd_node *root, const char *key, sd_component_kind kind) {
    const yd_node *sec = yd_get(root, key);
    if (!sec || yd_is_null(sec)) return 0;
    if (sec->kind != YD_SEQ) return topo_fail(ld, sec->line, "%s: expected a list of components (- id: ...)", key);
    for (size_t i = 0; i < sec->n; i++) {
        int ci = ld->nuser++;
        ld->t->ncomponents = ld->nuser; /* so topology_free sees what was filled */
        if (parse_component(ld, ci, sec->items[i], kind) != 0) return -1;
    }
    return 0;
}

/* ---- header and configuration ------------------------------------------- */

static int load_conf(loader *ld, const yd_node *root, const conf *base, const conf *overrides) {
    topology *t = ld->t;
    t->conf = base ? conf_copy(base) : conf_new();
    if (!t->conf) return topo_oom(ld);
    const yd_node *cfg = yd_get(root, "config");
    if (cfg && !yd_is_null(cfg)) {
        if (cfg->kind != YD_MAP) return topo_fail(ld, cfg->line, "config: expected a mapping of dotted keys");
        for (size_t i = 0; i < cfg->n; i++) {
            const yd_node *v = cfg->items[i];
            if (v->kind != YD_SCALAR)
                return topo_fail(ld, cfg->key_lines[i], "key '%s': expected a single value, got %s", cfg->keys[i],
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
            return topo_fail(ld, root->key_lines[wi], "key 'workers': expected an integer, got %s", yd_kind_name(w));
        if (conf_set_text_as(t->conf, "topology.workers", "workers", w->text, ld->path, root->key_lines[wi], ld->err,
                             ld->errlen) != 0)
            return -1;
    }
    if (overrides) conf_merge(t->conf, overrides);
    int64_t workers = conf_int(t->conf, "topology.workers");
    if (workers < 1 || workers > 65535)
        return topo_fail(ld, wi >= 0 ? root->key_lines[wi] : root->line,
                         "topology.workers must be from 1 to 65535, got %lld", (long long)workers);
    t->workers = (int)workers;
    return 0;
}

static int load_header(loader *ld, const yd_node *root) {
    topology *t = ld->t;
    static const char *const keys[] = {"name", "library", "files", "workers", "config", "spouts", "bolts", NULL};
    if (check_keys(ld, root, keys, "a topology") != 0) return -1;
    const yd_node *name = yd_get(root, "name");
    if (!name || yd_is_null(name))
        return topo_fail(ld, name ? name->line : root->line, "missing 'name' (the topology's name)");
    if (name->kind != YD_SCALAR)
        return topo_fail(ld, name->line, "name: expected a plain name, got %s", yd_kind_name(name));
    size_t len = strlen(name->text);
    if (len > TOPO_MAX_NAME ||
        strspn(name->text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != len)
        return topo_fail(ld, name->line, "name '%s': use at most %d letters, digits, '.', '_' and '-'", name->text,
                         TOPO_MAX_NAME);
    if (!(t->name = strdup(name->text))) return topo_oom(ld);
    char *real = realpath(ld->path, NULL);
    if (!real) return topo_fail(ld, 1, "cannot resolve the file's directory: %s", strerror(errno));
    t->dir = strdup(dirname(real));
    free(real);
    if (!t->dir) return topo_oom(ld);
    /* files: shipped in the package next to the topology (cluster mode);
     * relative args paths then resolve to them on the node */
    const yd_node *files = yd_get(root, "files");
    if (files && !yd_is_null(files)) {
        if (files->kind != YD_SEQ) return topo_fail(ld, files->line, "files: expected a list of relative paths");
        for (size_t i = 0; i < files->n; i++) {
            const yd_node *f = files->items[i];
            if (!topo_is_scalar(f) || !*f->text)
                return topo_fail(ld, f->line, "files: expected a relative path, got %s", yd_kind_name(f));
            if (f->text[0] == '/' || strstr(f->text, ".."))
                return topo_fail(ld, f->line, "files: '%s': use a path below the topology's directory, without '..'",
                                 f->text);
        }
    }
    const yd_node *lib = yd_get(root, "library");
    if (lib && !yd_is_null(lib)) {
        if (!topo_is_scalar(lib)) return topo_fail(ld, lib->line, "library: expected a file name");
        ld->lib_node = lib;
        int rc = lib->text[0] == '/' ? ((t->library = strdup(lib->text)) ? 0 : -1)
                                     : asprintf(&t->library, "%s/%s", t->dir, lib->text);
        if (rc < 0) {
            t->library = NULL;
            return topo_oom(ld);
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
    if (n > TOPO_MAX_PARALLELISM) return topo_fail(ld, root->line, "more than %d components", TOPO_MAX_PARALLELISM);
    return n;
}

int topo_parse(loader *ld, const yd_node *root, const conf *base, const conf *overrides) {
    topology *t = ld->t;
    if (root->kind != YD_MAP && !yd_is_null(root))
        return topo_fail(ld, root->line, "a topology is a mapping (name:, spouts:, bolts:), got %s",
                         yd_kind_name(root));
    if (root->kind != YD_MAP) return topo_fail(ld, root->line, "missing 'name' (the topology's name)");
    if (load_header(ld, root) != 0 || load_conf(ld, root, base, overrides) != 0) return -1;
    int n = count_components(ld, root);
    if (n < 0) return -1;
    /* one spare slot for the acker */
    t->components = calloc((size_t)n + 1, sizeof *t->components);
    ld->src = calloc((size_t)n + 1, sizeof *ld->src);
    if (!t->components || !ld->src) return topo_oom(ld);
    return parse_section(ld, root, "spouts", SD_SPOUT) != 0 || parse_section(ld, root, "bolts", SD_BOLT) != 0 ? -1 : 0;
}
