/*
 * topology: loads a topology YAML file, validates it
 * before anything starts, and lays out its tasks. Pure data: called by the
 * local/master code (validation, assignment) and by each worker (to build its
 * tasks from the same file). Not thread-aware; a loaded topology is
 * read-only and may be shared by threads.
 *
 * The public header of src/topology: topology.c (loading, layout, lookups)
 * drives topology_parse.c, topology_resolve.c and topology_validate.c
 * through topology_internal.h, which nothing outside the folder includes.
 */
#ifndef SD_TOPOLOGY_H
#define SD_TOPOLOGY_H

#include <stdbool.h>
#include "streamd/component.h"
#include "base/conf.h"

/* Tasks of a topology, in all: at this count, a worker's heartbeat with
 * every counter at its largest still fits the control channel
 * (CONTROL_MAX_MSG; test/unit/test_task_columns.c checks it). */
#define TOPO_MAX_TASKS 50000
#define TOPO_ACKER_ID "__acker"
#define TOPO_SYSTEM_ID "__system"
/* system streams: declared on every spout/bolt/acker by the loader. The
 * acking streams carry packets: one bytes field, "records", of 24-byte
 * acking records (src/tuple/ackpkt.h) of the kinds named here */
#define TOPO_STREAM_TICK "__tick"         /* __system -> bolts: [] */
#define TOPO_STREAM_ACK_INIT "__ack_init" /* spout -> acker: init records (root, xor, spout task) */
#define TOPO_STREAM_ACK_ACK "__ack_ack"   /* bolt -> acker: ack records (root, xor) */
#define TOPO_STREAM_ACK_FAIL "__ack_fail" /* bolt -> acker: fail records (root) */
#define TOPO_STREAM_ACK_DONE "__ack_done" /* acker -> spout: verdict records (root, ok or failed) */

typedef enum {
    GROUP_SHUFFLE, GROUP_LOCAL_OR_SHUFFLE, GROUP_FIELDS, GROUP_ALL, GROUP_GLOBAL,
    GROUP_DIRECT, GROUP_NONE, GROUP_PARTIAL_KEY,
    GROUP_FORWARD, /* task i of the source to task i of the target (equal parallelism) */
} topo_grouping;

typedef struct topo_stream {
    int id;                  /* topology-wide index: topo->streams[id] == this */
    int component;           /* index of the emitting component */
    char *name;
    int nfields;
    char **fields;
    bool direct;
    bool system;             /* name starts with "__" */
} topo_stream;

typedef struct topo_input {
    int line;                /* line in the topology file */
    char *from;              /* component id */
    char *stream;            /* stream name (default "default") */
    topo_grouping grouping;
    int nfields;             /* fields / partial-key */
    char **fields;
    /* resolved by validation */
    int from_component;
    int stream_id;
    int *field_index;        /* nfields indexes into the stream's fields */
} topo_input;

typedef struct topo_arg {
    char *key;
    char *value;             /* scalar as written */
} topo_arg;

/* A component's `limits:` (cgroup settings of the workers that hold it,
 * over the topology's topology.worker.* keys; the largest wins). */
typedef struct topo_limits {
    bool has_weight, has_cores, has_memory;
    int64_t cpu_weight;      /* cpu.weight: 1..10000 */
    double cpu_cores;        /* cpu.cores: 0 = no limit */
    int64_t memory_mb;       /* memory.mb: 0 = no limit */
} topo_limits;

typedef struct topo_component {
    int index;               /* in topo->components */
    int line;
    char *id;
    sd_component_kind kind;  /* the acker is a bolt */
    bool is_acker;
    char *class_name;        /* built-in or library symbol suffix */
    char **command;          /* multi-lang: argv, NULL-terminated (run by src/multilang) */
    char *resources;         /* multi-lang: the child's working directory (absolute) or NULL */
    int parallelism;
    int first_task;          /* task ids first_task .. first_task+parallelism-1 */
    int nargs;
    topo_arg *args;
    topo_limits limits;
    int ninputs;
    topo_input *inputs;
    int nstreams;
    int *stream_ids;         /* the component's output streams (incl. system) */
    const sd_component_def *def; /* resolved: built-in or from the library; NULL for the
                                  * acker and for library classes under TOPO_NO_LIBRARY */
} topo_component;

typedef struct topology {
    char *path;              /* the file, as given */
    char *dir;               /* its directory (absolute) */
    char *name;
    char *library;           /* absolute path or NULL */
    void *dl_handle;         /* dlopen handle of library, or NULL */
    int workers;             /* topology.workers after merging */
    conf *conf;              /* merged: base conf < topology config: section */
    int ncomponents;
    topo_component *components; /* spouts in file order, bolts, then __acker if any */
    int nstreams;
    topo_stream *streams;
    int ntasks;              /* task ids are 1..ntasks */
} topology;

/*
 * Loads and validates path. base is the configuration the topology's own
 * `config:` is merged over (not consumed; may be NULL for defaults), and
 * overrides (may be NULL) is applied last (-c key=value on the command line).
 * On error: writes one line "FILE:LINE: message" (naming the key) to err
 * (errlen bytes) and returns NULL. Same as topology_load_opts(..., 0, ...).
 */
topology *topology_load(const char *path, const conf *base, const conf *overrides,
                        char *err, size_t errlen);

/*
 * Load flags.
 * TOPO_NO_LIBRARY: validate without running user code (the master checks a
 *   submitted topology this way): the library is neither opened nor looked
 *   for (t->library is still set, t->dl_handle stays NULL). Built-in classes
 *   resolve as usual; a class that is not built in is accepted unresolved
 *   (def NULL) when the file names a library. Its streams are then only
 *   those its `outputs:` declares: inputs from it are checked against them,
 *   and a component with neither a built-in class nor `outputs:` accepts
 *   any input stream name (and any fields on it). Whether such a class
 *   exists, is of the right kind and matches the component API is checked
 *   when a worker loads the file. Every other check is the same, with the
 *   same messages. A topology loaded this way must not be run.
 */
#define TOPO_NO_LIBRARY 0x1u

topology *topology_load_opts(const char *path, const conf *base, const conf *overrides, unsigned flags,
                             char *err, size_t errlen);
void topology_free(topology *t);

const topo_component *topology_component(const topology *t, const char *id);
const topo_component *topology_task_component(const topology *t, int task);
const topo_stream *topology_stream(const topology *t, int component, const char *name);
/* index of field name in stream, -1 if absent */
int topology_stream_field(const topo_stream *s, const char *name);
const char *topo_grouping_name(topo_grouping g);

/* Looks up a built-in component by class name (registered in builtins.c). */
const sd_component_def *builtin_component(const char *class_name);

#endif
