/*
 * streamd public component API.
 *
 * A user library (or streamd itself, for the built-ins) defines spouts and
 * bolts as tables of callbacks and exports each one under a stable symbol:
 *
 *     SD_EXPORT_COMPONENT(my_spout_def);   // symbol: streamd_component_<name>
 *
 * The callbacks of one task run one at a time (on whichever of the worker's
 * executor threads runs the task), so a task's state needs no locking; do not
 * keep it in thread-local storage. A callback that blocks holds one of those
 * few threads: return SD_NEXT_IDLE from next_tuple instead of sleeping. The collector, context and tuples handed to a
 * callback belong to the runtime: never free them; a tuple is valid until the
 * callback that received it returns (copy what you keep, or keep the tuple
 * with sd_tuple_keep / sd_tuple_release to ack it later).
 */
#ifndef STREAMD_COMPONENT_H
#define STREAMD_COMPONENT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The functions streamd exports to component libraries; streamd itself is
 * built with hidden visibility, so nothing else of it is visible to them. */
#define SD_API __attribute__((visibility("default")))

#ifdef __cplusplus
extern "C" {
#endif

#define SD_API_VERSION 1
#define SD_DEFAULT_STREAM "default"
#define SD_MAX_FIELDS 32    /* fields in one tuple */
#define SD_MAX_STREAMS 8    /* output streams of one component */

/* ---- values ----------------------------------------------------------- */
typedef enum {
    SD_NULL = 0,
    SD_BOOL = 1,
    SD_INT = 2,     /* int64 */
    SD_DOUBLE = 3,
    SD_STRING = 4,  /* UTF-8, not necessarily NUL-terminated: use len */
    SD_BYTES = 5,
} sd_type;

typedef struct sd_value {
    sd_type type;
    union {
        bool b;
        int64_t i;
        double d;
        struct { const char *ptr; uint32_t len; } s; /* SD_STRING, SD_BYTES */
    } v;
} sd_value;

static inline sd_value sd_null(void) { sd_value x; x.type = SD_NULL; x.v.i = 0; return x; }
static inline sd_value sd_bool(bool b) { sd_value x; x.type = SD_BOOL; x.v.b = b; return x; }
static inline sd_value sd_int(int64_t i) { sd_value x; x.type = SD_INT; x.v.i = i; return x; }
static inline sd_value sd_double(double d) { sd_value x; x.type = SD_DOUBLE; x.v.d = d; return x; }
static inline sd_value sd_str(const char *p, uint32_t n) { sd_value x; x.type = SD_STRING; x.v.s.ptr = p; x.v.s.len = n; return x; }
static inline sd_value sd_bytes(const void *p, uint32_t n) { sd_value x; x.type = SD_BYTES; x.v.s.ptr = (const char *)p; x.v.s.len = n; return x; }

/* ---- tuples (owned by the runtime) ------------------------------------ */
typedef struct sd_tuple sd_tuple;

SD_API size_t sd_tuple_size(const sd_tuple *t);
/* NULL when i is out of range */
SD_API const sd_value *sd_tuple_get(const sd_tuple *t, size_t i);
/* all sd_tuple_size(t) values in field order (Storm's getValues()), valid
 * as long as t is: a bolt passes them to sd_emit to forward a tuple as is */
SD_API const sd_value *sd_tuple_values(const sd_tuple *t);
/* by declared field name of the tuple's stream; NULL when unknown */
SD_API const sd_value *sd_tuple_field(const sd_tuple *t, const char *name);
/* name of field i of the tuple's stream; NULL when out of range */
SD_API const char *sd_tuple_field_name(const sd_tuple *t, size_t i);
SD_API const char *sd_tuple_stream(const sd_tuple *t);
SD_API const char *sd_tuple_source_component(const sd_tuple *t);
SD_API int sd_tuple_source_task(const sd_tuple *t);
/* tick tuples arrive on stream "__tick" from component "__system" */
SD_API bool sd_tuple_is_tick(const sd_tuple *t);
/* Keeping a tuple past the callback (to ack it later, or in a window):
 * sd_tuple_keep returns the tuple to keep, an exact-size copy of t carrying
 * its acking state (or t itself when t already has its own allocation), so
 * that a kept tuple costs about its own size. From then on ack, fail,
 * anchor to and read the returned tuple, not t, and release it once. NULL
 * when out of memory: t is then still the callback's to ack or fail.
 * sd_tuple_retain keeps t itself at no copy, but t shares a block of up to
 * 64 KiB with the tuples created around it and holds all of it until
 * released: for holding a few tuples briefly. Release either once. Read
 * a kept tuple's values from it after keeping it: a string pointer read
 * before may point into the upstream task's memory (a chained bolt's
 * input, docs/components.md), valid only until the callback returns. */
SD_API sd_tuple *sd_tuple_keep(sd_tuple *t);
SD_API void sd_tuple_retain(sd_tuple *t);
SD_API void sd_tuple_release(sd_tuple *t);

/* ---- task context ----------------------------------------------------- */
typedef struct sd_context sd_context;

SD_API const char *sd_context_component(const sd_context *c);
SD_API const char *sd_context_topology(const sd_context *c);
SD_API int sd_context_task_id(const sd_context *c);      /* topology-wide, >= 1 */
SD_API int sd_context_task_index(const sd_context *c);   /* 0 .. parallelism-1 */
SD_API int sd_context_parallelism(const sd_context *c);
/* task ids of a component, in index order; returns count, fills up to max */
SD_API int sd_context_component_tasks(const sd_context *c, const char *component, int *ids, int max);

/* component `args:` from the topology (scalars, as written); def when absent.
 * Relative paths are the user's business; sd_context_arg_path resolves one
 * against the directory of the topology file. Returned strings live as long
 * as the task. */
SD_API const char *sd_context_arg_string(const sd_context *c, const char *key, const char *def);
SD_API int64_t sd_context_arg_int(const sd_context *c, const char *key, int64_t def);
SD_API double sd_context_arg_double(const sd_context *c, const char *key, double def);
SD_API bool sd_context_arg_bool(const sd_context *c, const char *key, bool def);
SD_API const char *sd_context_arg_path(const sd_context *c, const char *key, const char *def);

/* merged configuration (defaults < --config < topology config < -c) */
SD_API const char *sd_context_conf_string(const sd_context *c, const char *key, const char *def);
SD_API int64_t sd_context_conf_int(const sd_context *c, const char *key, int64_t def);

/* ---- logging (tagged with cluster, host, topology, worker, task) ------ */
typedef enum { SD_LOG_DEBUG = 0, SD_LOG_INFO = 1, SD_LOG_WARN = 2, SD_LOG_ERROR = 3 } sd_log_level;
SD_API void sd_log(const sd_context *c, sd_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- collector -------------------------------------------------------- */
typedef struct sd_collector sd_collector;

/* Spout emit. With has_msg_id the tuple tree is tracked: ack(msg_id) or
 * fail(msg_id) is called back on the spout. stream NULL = "default".
 * Returns 0, or -1 (and logs) on an undeclared stream or wrong field count. */
SD_API int sd_spout_emit(sd_collector *col, const char *stream, const sd_value *values, size_t n,
                  bool has_msg_id, uint64_t msg_id);
SD_API int sd_spout_emit_direct(sd_collector *col, int task, const char *stream,
                         const sd_value *values, size_t n, bool has_msg_id, uint64_t msg_id);

/* The spout will never replay msg_id (e.g. its retry budget ran out): the
 * tuple is counted as lost for good ("failed_final"); local mode's
 * --until-drained then exits non-zero. */
SD_API void sd_spout_gave_up(sd_collector *col, uint64_t msg_id);

/* Bolt emit, anchored to anchors[0..nanchors) (none: unanchored). */
SD_API int sd_emit(sd_collector *col, const char *stream, sd_tuple *const *anchors, size_t nanchors,
            const sd_value *values, size_t n);
SD_API int sd_emit_direct(sd_collector *col, int task, const char *stream, sd_tuple *const *anchors,
                   size_t nanchors, const sd_value *values, size_t n);
/* The task ids the last emit of this task (spout or bolt, returning 0) was
 * sent to: returns their count and fills up to max of them. Costs nothing
 * unless called (Storm's emit returns them; multi-lang children ask). */
SD_API int sd_emit_last_tasks(sd_collector *col, int *tasks, int max);
SD_API void sd_ack(sd_collector *col, sd_tuple *t);
SD_API void sd_fail(sd_collector *col, sd_tuple *t);

/* Logged, counted, and shown with the task's errors. */
SD_API void sd_report_error(sd_collector *col, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- component definitions -------------------------------------------- */
typedef struct sd_stream_decl {
    const char *name;                  /* NULL ends the array */
    const char *fields[SD_MAX_FIELDS]; /* NULL-terminated */
    bool direct;                       /* emitted only with *_emit_direct */
} sd_stream_decl;

typedef enum { SD_SPOUT = 1, SD_BOLT = 2 } sd_component_kind;

/* next_tuple results */
enum {
    SD_NEXT_IDLE = 0,      /* nothing to emit now: the runtime backs off briefly */
    SD_NEXT_EMITTED = 1,   /* emitted something: call again soon */
    SD_NEXT_EXHAUSTED = 2, /* source finished and nothing of its own pending: done */
};

typedef struct sd_component_def {
    int api_version;                   /* SD_API_VERSION */
    const char *name;                  /* the class name used in topologies */
    sd_component_kind kind;
    /* output streams; NULL = no output. A topology's `outputs:` overrides. */
    const sd_stream_decl *streams;

    /* open (spout) / prepare (bolt): returns the task's state, NULL on error
     * (the task then fails to start and the worker reports it). */
    void *(*open)(sd_context *ctx, sd_collector *col);
    /* spouts */
    int (*next_tuple)(void *state, sd_collector *col);
    void (*ack)(void *state, sd_collector *col, uint64_t msg_id);
    void (*fail)(void *state, sd_collector *col, uint64_t msg_id);
    void (*activate)(void *state, sd_collector *col);
    void (*deactivate)(void *state, sd_collector *col);
    /* bolts: must ack or fail each input when acking is on */
    void (*execute)(void *state, sd_collector *col, sd_tuple *input);
    /* both: close (spout) / cleanup (bolt); the state is not used after */
    void (*close)(void *state, sd_collector *col);
} sd_component_def;

#define SD_COMPONENT_SYMBOL_PREFIX "streamd_component_"
/* Exports def (an sd_component_def) under the symbol streamd_component_<cname>,
 * where cname must equal def.name. */
#define SD_EXPORT_COMPONENT(cname, def) \
    __attribute__((visibility("default"))) const sd_component_def *streamd_component_##cname = &(def)

#ifdef __cplusplus
}
#endif
#endif
