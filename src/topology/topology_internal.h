/*
 * topology_internal: what the loader's modules share while one file is
 * loaded (the loader state, the error helpers and the stream table). Not
 * for use outside src/topology: everything else sees topology.h only.
 *
 * Loading runs in a fixed order so that a file with several mistakes
 * always reports the same first one (topology.c drives it):
 *   topology_parse.c     document shape, known keys, config: merge,
 *                        components, inputs and outputs: streams;
 *   topology_validate.c  ids, parallelism, groupings (topo_validate_shape);
 *   topology_resolve.c   library, classes, declared streams (errors are
 *                        kept, not reported: the validation reports them
 *                        in order);
 *   topology_validate.c  inputs, classes, spouts (topo_validate_links);
 *   topology.c           the acker, the system streams, the task layout.
 */
#ifndef SD_TOPOLOGY_INTERNAL_H
#define SD_TOPOLOGY_INTERNAL_H

#include <stdbool.h>

#include "base/yaml_doc.h"
#include "topology/topology.h"

#define TOPO_MAX_PARALLELISM 10000
#define TOPO_MAX_NAME 128

/* What the loader remembers about a component beyond topo_component. */
typedef struct comp_src {
    const yd_node *map;       /* the component's mapping in the document */
    char *resolve_err;        /* class/library problem found while resolving (owned) */
    int resolve_line;
} comp_src;

typedef struct loader {
    const char *path;
    unsigned flags;           /* TOPO_* load flags */
    char *err;
    size_t errlen;
    topology *t;
    comp_src *src;            /* parallel to t->components (user components) */
    int nuser;                /* components declared in the file */
    const yd_node *lib_node;  /* library: as written */
    char *lib_err;            /* why the library did not load (owned) */
} loader;

/* Writes "FILE:LINE: message" to the loader's err; returns -1. */
int topo_fail(loader *ld, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int topo_oom(loader *ld); /* "FILE: out of memory"; returns -1 */

const char *topo_kind_word(const topo_component *c); /* "spout" or "bolt" */
bool topo_is_scalar(const yd_node *n);               /* a scalar, not null */
bool topo_has_outputs(const yd_node *map);           /* the component declares outputs: */
void topo_free_strv(char **v, int n);

/* Appends a stream emitted by component comp (-1 = __system) to the
 * topology and to the component's stream list. Takes fields (freed on
 * error too). 0 or -1 (error written). */
int topo_add_stream(loader *ld, int comp, const char *name, char **fields, int nfields, bool direct);
/* Same with fields copied from a NULL-terminated list. */
int topo_add_stream_v(loader *ld, int comp, const char *name, bool direct, const char *const *names);

/* topology_parse.c: header, config (base < config: < workers: <
 * overrides), components with their args, inputs and outputs: streams. */
int topo_parse(loader *ld, const yd_node *root, const conf *base, const conf *overrides);

/* topology_validate.c: checks that need only the parsed file (ids,
 * parallelism, groupings), run before resolving. */
int topo_validate_shape(loader *ld);
/* topology_validate.c: checks that need the resolved classes and streams
 * (inputs, classes, at least one spout), run after resolving. */
int topo_validate_links(loader *ld, const yd_node *root);

/* topology_resolve.c: loads the library (unless TOPO_NO_LIBRARY), resolves
 * each class and declares its streams. Problems are kept in ld for the
 * validation; -1 only when out of memory (written). */
int topo_resolve(loader *ld);

#endif
