/*
 * topology_validate: the checks of loading (see topology_internal.h), in
 * passes of a fixed order so that a file with several mistakes always
 * reports the same first one. topo_validate_shape runs on the parsed file;
 * topo_validate_links after the classes are resolved, reporting the
 * problems the resolver kept. Also the grouping names. Called by
 * topology.c only (topo_grouping_name is public).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topology/topology_internal.h"

static const char *const grouping_names[] = {
    [GROUP_SHUFFLE] = "shuffle", [GROUP_LOCAL_OR_SHUFFLE] = "local-or-shuffle",
    [GROUP_FIELDS] = "fields",   [GROUP_ALL] = "all",
    [GROUP_GLOBAL] = "global",   [GROUP_DIRECT] = "direct",
    [GROUP_NONE] = "none",       [GROUP_PARTIAL_KEY] = "partial-key",
    [GROUP_FORWARD] = "forward",
};
#define NGROUPINGS (sizeof grouping_names / sizeof grouping_names[0])
#define GROUPING_LIST "shuffle, local-or-shuffle, fields, all, global, direct, none, partial-key, forward"

const char *topo_grouping_name(topo_grouping g) {
    return (unsigned)g < NGROUPINGS ? grouping_names[g] : "?";
}

/* ---- passes on the parsed file ------------------------------------------------ */

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
                return topo_fail(ld, t->components[i].line, "duplicate component id '%s' (first declared on line %d)",
                                 t->components[i].id, t->components[j].line);
    for (int i = 0; i < ld->nuser; i++)
        if (strncmp(t->components[i].id, "__", 2) == 0)
            return topo_fail(ld, t->components[i].line, "%s id '%s': ids starting with \"__\" are reserved",
                             topo_kind_word(&t->components[i]), t->components[i].id);
    return 0;
}

static int check_parallelism(loader *ld) {
    for (int i = 0; i < ld->nuser; i++) {
        topo_component *c = &ld->t->components[i];
        const yd_node *p = yd_get(ld->src[i].map, "parallelism");
        if (!p) continue;
        long v = 0;
        if (p->kind != YD_SCALAR || parse_count(p->text, &v) != 0 || v < 1 || v > TOPO_MAX_PARALLELISM)
            return topo_fail(ld, p->line, "%s '%s': parallelism must be an integer from 1 to %d, got '%s'",
                             topo_kind_word(c), c->id, TOPO_MAX_PARALLELISM,
                             p->kind == YD_SCALAR ? p->text : yd_kind_name(p));
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
            if (!topo_is_scalar(g))
                return topo_fail(ld, g ? g->line : c->inputs[k].line,
                                 "%s '%s': input from '%s' needs a grouping (one of: %s)", topo_kind_word(c), c->id,
                                 c->inputs[k].from, GROUPING_LIST);
            size_t gi = 0;
            while (gi < NGROUPINGS && strcmp(grouping_names[gi], g->text) != 0) gi++;
            if (gi == NGROUPINGS)
                return topo_fail(ld, g->line, "%s '%s': unknown grouping '%s' (valid: %s)", topo_kind_word(c), c->id,
                                 g->text, GROUPING_LIST);
            c->inputs[k].grouping = (topo_grouping)gi;
        }
    }
    return 0;
}

/* ---- passes after resolving --------------------------------------------------- */

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
                        return topo_fail(ld, input_line(ld, i, k, "from"), "%s '%s': input from unknown component '%s'",
                                         topo_kind_word(c), c->id, in->from);
                    break;
                case 1: /* it declares the stream */
                    /* streams unknown: the class error is reported later, or
                     * under TOPO_NO_LIBRARY any stream name is accepted */
                    if (from->def == NULL && !topo_has_outputs(ld->src[in->from_component].map))
                        break;
                    s = topology_stream(t, in->from_component, in->stream);
                    if (!s)
                        return topo_fail(ld, input_line(ld, i, k, "stream"), "%s '%s': '%s' has no stream '%s'",
                                         topo_kind_word(c), c->id, in->from, in->stream);
                    if (s->system)
                        return topo_fail(ld, input_line(ld, i, k, "stream"),
                                         "%s '%s': stream '%s' is a system stream; the runtime routes it",
                                         topo_kind_word(c), c->id, in->stream);
                    in->stream_id = s->id;
                    break;
                case 2: /* fields go with fields and partial-key groupings only */
                    if (keyed && in->nfields == 0)
                        return topo_fail(ld, input_line(ld, i, k, "grouping"),
                                         "%s '%s': grouping '%s' from '%s' needs fields: [...]", topo_kind_word(c),
                                         c->id, topo_grouping_name(in->grouping), in->from);
                    if (!keyed && in->nfields > 0)
                        return topo_fail(ld, input_line(ld, i, k, "fields"),
                                         "%s '%s': fields apply only to the fields and partial-key groupings "
                                         "(input from '%s' uses '%s')",
                                         topo_kind_word(c), c->id, in->from, topo_grouping_name(in->grouping));
                    break;
                case 3: /* the fields exist on the stream */
                    if (!s || in->nfields == 0) break;
                    if (!(in->field_index = calloc((size_t)in->nfields, sizeof(int)))) return topo_oom(ld);
                    for (int f = 0; f < in->nfields; f++) {
                        in->field_index[f] = topology_stream_field(s, in->fields[f]);
                        if (in->field_index[f] >= 0) continue;
                        char has[512] = "";
                        size_t used = 0;
                        for (int h = 0; h < s->nfields && used < sizeof has; h++)
                            used +=
                                (size_t)snprintf(has + used, sizeof has - used, "%s%s", h ? ", " : "", s->fields[h]);
                        return topo_fail(ld, input_line(ld, i, k, "fields"),
                                         "%s '%s': stream '%s' of '%s' declares no field '%s' (has: %s)",
                                         topo_kind_word(c), c->id, s->name, in->from, in->fields[f],
                                         s->nfields ? has : "no fields");
                    }
                    break;
                case 4: /* direct streams and direct grouping go together; forward pairs tasks */
                    if (in->grouping == GROUP_FORWARD && from && from->parallelism != c->parallelism)
                        return topo_fail(ld, input_line(ld, i, k, "grouping"),
                                         "%s '%s': grouping 'forward' pairs task i with task i: '%s' has %d tasks, "
                                         "'%s' has %d",
                                         topo_kind_word(c), c->id, in->from, from->parallelism, c->id, c->parallelism);
                    if (!s) break;
                    if (in->grouping == GROUP_DIRECT && !s->direct)
                        return topo_fail(
                            ld, input_line(ld, i, k, "grouping"),
                            "%s '%s': grouping 'direct' needs a direct stream; stream '%s' of '%s' is not direct",
                            topo_kind_word(c), c->id, s->name, in->from);
                    if (in->grouping != GROUP_DIRECT && s->direct)
                        return topo_fail(ld, input_line(ld, i, k, "grouping"),
                                         "%s '%s': stream '%s' of '%s' is direct: subscribe with grouping: direct",
                                         topo_kind_word(c), c->id, s->name, in->from);
                    break;
                }
            }
        }
    }
    for (int i = 0; i < ld->nuser; i++)
        if (t->components[i].kind == SD_SPOUT && t->components[i].ninputs > 0)
            return topo_fail(ld, t->components[i].inputs[0].line, "spout '%s': spouts take no inputs",
                             t->components[i].id);
    return 0;
}

/* Cycles are refused: a bounded queue on a back edge could fill while its
 * consumer waits to emit into the cycle, and the cycle would deadlock.
 * Depth-first along inputs (to the producers); state per component:
 * 0 unseen, 1 on the path, 2 done. Reports the input that closes a cycle,
 * with the cycle from that input's producer back to it. */
static int cycle_from(loader *ld, int ci, uint8_t *state, int *path, int depth) {
    topology *t = ld->t;
    topo_component *c = &t->components[ci];
    state[ci] = 1;
    path[depth] = ci;
    for (int k = 0; k < c->ninputs; k++) {
        int from = c->inputs[k].from_component;
        if (from < 0 || from >= ld->nuser) continue;
        if (state[from] == 1) {
            char cyc[512];
            size_t n = 0;
            int start = depth;
            while (start > 0 && path[start] != from) start--;
            /* the path runs consumer-ward from `from` down to ci; print it producer first */
            for (int d = start; d <= depth && n < sizeof cyc; d++)
                n += (size_t)snprintf(cyc + n, sizeof cyc - n, "%s <- ", t->components[path[d]].id);
            if (n < sizeof cyc) snprintf(cyc + n, sizeof cyc - n, "%s", t->components[from].id);
            return topo_fail(ld, input_line(ld, ci, k, "from"),
                             "%s '%s': input from '%s' closes a cycle (%s); cycles are not supported", topo_kind_word(c),
                             c->id, t->components[from].id, cyc);
        }
        if (state[from] == 0 && cycle_from(ld, from, state, path, depth + 1) != 0) return -1;
    }
    state[ci] = 2;
    return 0;
}

static int check_cycles(loader *ld) {
    uint8_t *state = calloc((size_t)ld->nuser + 1, 1);
    int *path = calloc((size_t)ld->nuser + 1, sizeof *path);
    int rc = state && path ? 0 : topo_fail(ld, 0, "out of memory checking for cycles");
    for (int i = 0; i < ld->nuser && rc == 0; i++)
        if (state[i] == 0) rc = cycle_from(ld, i, state, path, 0);
    free(state);
    free(path);
    return rc;
}

static int check_classes(loader *ld) {
    topology *t = ld->t;
    for (int i = 0; i < ld->nuser; i++) {
        topo_component *c = &t->components[i];
        if (ld->src[i].resolve_err) return topo_fail(ld, ld->src[i].resolve_line, "%s", ld->src[i].resolve_err);
        if (!c->def && ld->lib_err) return topo_fail(ld, ld->lib_node->line, "%s", ld->lib_err);
    }
    if (ld->lib_err) return topo_fail(ld, ld->lib_node->line, "%s", ld->lib_err);
    for (int i = 0; i < ld->nuser; i++) {
        topo_component *c = &t->components[i];
        if (!c->def && (ld->flags & TOPO_NO_LIBRARY)) continue; /* a library class, not looked up */
        if (!c->def) return topo_fail(ld, c->line, "%s '%s': class did not resolve", topo_kind_word(c), c->id);
        if (c->command) continue; /* the multi-lang adapter of its kind */
        int line = yd_get(ld->src[i].map, "class")->line;
        if (c->def->kind != c->kind)
            return topo_fail(ld, line, "%s '%s': class '%s' is a %s; declare it under %s", topo_kind_word(c), c->id,
                             c->class_name, c->def->kind == SD_SPOUT ? "spout" : "bolt",
                             c->def->kind == SD_SPOUT ? "spouts:" : "bolts:");
        if (c->def->api_version != SD_API_VERSION)
            return topo_fail(ld, line,
                             "%s '%s': class '%s' was built for component API version %d; this streamd has %d",
                             topo_kind_word(c), c->id, c->class_name, c->def->api_version, SD_API_VERSION);
    }
    return 0;
}

int topo_validate_shape(loader *ld) {
    return check_ids(ld) != 0 || check_parallelism(ld) != 0 || check_groupings(ld) != 0 ? -1 : 0;
}

int topo_validate_links(loader *ld, const yd_node *root) {
    if (check_inputs(ld) != 0 || check_cycles(ld) != 0 || check_classes(ld) != 0) return -1;
    bool has_spout = false;
    for (int i = 0; i < ld->nuser; i++) has_spout = has_spout || ld->t->components[i].kind == SD_SPOUT;
    if (!has_spout) return topo_fail(ld, root->line, "topology '%s' has no spouts", ld->t->name);
    return 0;
}
