/*
 * topology_resolve: the second step of loading (see topology_internal.h):
 * opens the topology's library (dlopen, unless TOPO_NO_LIBRARY), resolves
 * each component's class (a `command:` to the multi-lang adapter, a class
 * built in first, then the library's exported symbol) and declares the
 * streams the class declares. Problems are kept in the loader, not
 * reported: the validation reports them in its fixed order. Called by
 * topology.c only.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "multilang/multilang.h"
#include "topology/topology_internal.h"

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
        if (asprintf(&ld->lib_err, "library '%s': cannot load: %s", ld->lib_node->text, why ? why : "unknown error") <
            0)
            ld->lib_err = NULL;
    }
}

static void resolve_class(loader *ld, int ci) {
    topo_component *c = &ld->t->components[ci];
    const yd_node *cls = yd_get(ld->src[ci].map, "class");
    if (c->command) {
        /* the child cannot declare streams: they come from `outputs:` */
        c->def = multilang_component(c->kind);
        return;
    }
    if (!c->class_name) {
        resolve_err(ld, ci, c->line, "%s '%s': needs a class (or a command)", topo_kind_word(c), c->id);
        return;
    }
    c->def = builtin_component(c->class_name);
    if (c->def) return;
    if (!ld->lib_node) {
        resolve_err(ld, ci, cls->line,
                    "%s '%s': no component class '%s' (not built in, and the topology names no library)",
                    topo_kind_word(c), c->id, c->class_name);
        return;
    }
    /* not opened: its error is reported for it, or under TOPO_NO_LIBRARY
     * the class stays unresolved on purpose (no user code runs) */
    if (!ld->t->dl_handle) return;
    char sym[512];
    snprintf(sym, sizeof sym, "%s%s", SD_COMPONENT_SYMBOL_PREFIX, c->class_name);
    /* the exported symbol is a pointer variable: dlsym gives its address */
    const sd_component_def *const *slot = dlsym(ld->t->dl_handle, sym);
    if (slot && *slot) {
        c->def = *slot;
        return;
    }
    resolve_err(ld, ci, cls->line, "%s '%s': no component class '%s' (not built in, not in %s)", topo_kind_word(c),
                c->id, c->class_name, ld->lib_node->text);
}

static int declare_streams(loader *ld, int ci) {
    topo_component *c = &ld->t->components[ci];
    if (!topo_has_outputs(ld->src[ci].map) && c->def && c->def->streams) {
        for (int i = 0; i < SD_MAX_STREAMS && c->def->streams[i].name; i++) {
            const sd_stream_decl *d = &c->def->streams[i];
            if (strncmp(d->name, "__", 2) == 0) {
                resolve_err(ld, ci, c->line, "%s '%s': class '%s' declares reserved stream '%s'", topo_kind_word(c),
                            c->id, c->class_name, d->name);
                continue;
            }
            if (topo_add_stream_v(ld, ci, d->name, d->direct, d->fields) != 0) return -1;
        }
    }
    /* acking packets (topology.h) */
    static const char *const records[] = {"records", NULL};
    if (c->kind == SD_SPOUT) return topo_add_stream_v(ld, ci, TOPO_STREAM_ACK_INIT, false, records);
    if (topo_add_stream_v(ld, ci, TOPO_STREAM_ACK_ACK, false, records) != 0) return -1;
    return topo_add_stream_v(ld, ci, TOPO_STREAM_ACK_FAIL, false, records);
}

int topo_resolve(loader *ld) {
    if (ld->t->library && !(ld->flags & TOPO_NO_LIBRARY)) load_library(ld);
    for (int i = 0; i < ld->nuser; i++) {
        resolve_class(ld, i);
        if (declare_streams(ld, i) != 0) return -1;
    }
    return 0;
}
