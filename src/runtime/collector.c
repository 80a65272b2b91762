/*
 * collector: the public API a component calls (streamd/component.h):
 * context accessors, emit/ack/fail and logging. Every function runs on the
 * pool thread running the calling task's slice and touches only that
 * executor (and that thread's outgoing buffers).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/emit.h"
#include "base/log.h"

/* ---- context ---------------------------------------------------------- */

const char *sd_context_component(const sd_context *c) { return c->ex->comp->id; }
const char *sd_context_topology(const sd_context *c) { return c->ex->rt->topo->name; }
int sd_context_task_id(const sd_context *c) { return c->ex->task; }
int sd_context_task_index(const sd_context *c) { return c->ex->task_index; }
int sd_context_parallelism(const sd_context *c) { return c->ex->comp->parallelism; }

int sd_context_component_tasks(const sd_context *c, const char *component, int *ids, int max) {
    const topo_component *comp = topology_component(c->ex->rt->topo, component);
    if (!comp) return 0;
    for (int k = 0; k < comp->parallelism && k < max; k++) ids[k] = comp->first_task + k;
    return comp->parallelism;
}

static const char *arg_lookup(const sd_context *c, const char *key) {
    const topo_component *comp = c->ex->comp;
    for (int i = 0; i < comp->nargs; i++)
        if (strcmp(comp->args[i].key, key) == 0) return comp->args[i].value;
    return NULL;
}

const char *sd_context_arg_string(const sd_context *c, const char *key, const char *def) {
    const char *v = arg_lookup(c, key);
    return v ? v : def;
}

int64_t sd_context_arg_int(const sd_context *c, const char *key, int64_t def) {
    const char *v = arg_lookup(c, key);
    if (!v) return def;
    char *end;
    long long x = strtoll(v, &end, 0);
    if (*v == '\0' || *end != '\0') {
        log_task(SD_LOG_WARN, c->ex->task, "arg %s: '%s' is not an integer, using %lld", key, v,
                 (long long)def);
        return def;
    }
    return x;
}

double sd_context_arg_double(const sd_context *c, const char *key, double def) {
    const char *v = arg_lookup(c, key);
    if (!v) return def;
    char *end;
    double x = strtod(v, &end);
    if (*v == '\0' || *end != '\0') {
        log_task(SD_LOG_WARN, c->ex->task, "arg %s: '%s' is not a number, using %g", key, v, def);
        return def;
    }
    return x;
}

bool sd_context_arg_bool(const sd_context *c, const char *key, bool def) {
    const char *v = arg_lookup(c, key);
    if (!v) return def;
    if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1")) return true;
    if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0")) return false;
    log_task(SD_LOG_WARN, c->ex->task, "arg %s: '%s' is not a boolean", key, v);
    return def;
}

/* Keeps s (taken over) until the task ends. A string already kept is
 * returned instead, so that a component asking for the same path on every
 * tuple holds one copy, not one per call. */
static const char *keep_string(executor *ex, char *s) {
    for (int i = 0; i < ex->nowned; i++)
        if (strcmp(ex->owned[i], s) == 0) {
            free(s);
            return ex->owned[i];
        }
    char **grown = realloc(ex->owned, (size_t)(ex->nowned + 1) * sizeof *grown);
    if (!grown) {
        free(s);
        return NULL;
    }
    ex->owned = grown;
    ex->owned[ex->nowned++] = s;
    return s;
}

const char *sd_context_arg_path(const sd_context *c, const char *key, const char *def) {
    const char *v = sd_context_arg_string(c, key, def);
    if (!v || v[0] == '/') return v;
    char *full;
    if (asprintf(&full, "%s/%s", c->ex->rt->topo->dir, v) < 0) return NULL;
    return keep_string(c->ex, full);
}

const char *sd_context_conf_string(const sd_context *c, const char *key, const char *def) {
    return conf_str_or(c->ex->rt->conf, key, def);
}

int64_t sd_context_conf_int(const sd_context *c, const char *key, int64_t def) {
    return conf_int_or(c->ex->rt->conf, key, def);
}

void sd_log(const sd_context *c, sd_log_level level, const char *fmt, ...) {
    int task = c ? c->ex->task : 0;
    if (!fmt) return;
    if (!log_level_valid((int)level)) {
        /* user code: say so, and keep its message rather than dropping it */
        log_task(SD_LOG_ERROR, task, "sd_log called with level %d (not SD_LOG_DEBUG..SD_LOG_ERROR); logged as an error",
                 (int)level);
        level = SD_LOG_ERROR;
    }
    va_list ap;
    va_start(ap, fmt);
    log_taskv(level, task, fmt, ap);
    va_end(ap);
}

/* ---- tuples that need the topology ------------------------------------ */

static const topology *process_topology; /* one topology per worker process */

void collector_set_topology(const topology *t);
void collector_set_topology(const topology *t) { process_topology = t; }

const char *sd_tuple_source_component(const sd_tuple *t) {
    if (!t->stream || t->stream->component < 0 || !process_topology) return TOPO_SYSTEM_ID;
    return process_topology->components[t->stream->component].id;
}

/* ---- emit --------------------------------------------------------------- */

/* stream_of's lookup by name; cold: components mostly emit on one stream */
static __attribute__((noinline, cold)) int stream_lookup(executor *ex, const char *name) {
    if (!name) name = SD_DEFAULT_STREAM; /* a component without a default stream */
    if (ex->last_stream_id >= 0 && strcmp(ex->rt->topo->streams[ex->last_stream_id].name, name) == 0)
        return ex->last_stream_id;
    const topo_component *comp = ex->comp;
    for (int i = 0; i < comp->nstreams; i++) {
        const topo_stream *s = &ex->rt->topo->streams[comp->stream_ids[i]];
        if (!s->system && strcmp(s->name, name) == 0) {
            ex->last_stream_id = s->id;
            return s->id;
        }
    }
    log_task(SD_LOG_ERROR, ex->task, "emit on undeclared stream '%s' of %s", name, comp->id);
    STAT_ADD(ex->errors, 1);
    return -1;
}

/* The default stream (NULL) is resolved once, at setup; a named one is
 * looked up, the last one first (by name, not pointer: a caller may reuse
 * a buffer). */
static inline int stream_of(executor *ex, const char *name) {
    if (!name && ex->default_stream_id >= 0) return ex->default_stream_id;
    return stream_lookup(ex, name);
}

/* inline: a hint that lets the components built into the binary take
 * the two emits below in line (link-time optimisation); still exported */
inline int sd_spout_emit(sd_collector *col, const char *stream, const sd_value *values, size_t n,
                         bool has_msg_id, uint64_t msg_id) {
    int sid = stream_of(col->ex, stream);
    if (sid < 0) return -1;
    return emit_tuple(col->ex, sid, 0, values, n, NULL, 0, has_msg_id, msg_id);
}

int sd_spout_emit_direct(sd_collector *col, int task, const char *stream, const sd_value *values,
                         size_t n, bool has_msg_id, uint64_t msg_id) {
    int sid = stream_of(col->ex, stream);
    if (sid < 0) return -1;
    return emit_tuple(col->ex, sid, task, values, n, NULL, 0, has_msg_id, msg_id);
}

inline int sd_emit(sd_collector *col, const char *stream, sd_tuple *const *anchors, size_t nanchors,
                   const sd_value *values, size_t n) {
    int sid = stream_of(col->ex, stream);
    if (sid < 0) return -1;
    return emit_tuple(col->ex, sid, 0, values, n, anchors, nanchors, 0, 0);
}

int sd_emit_direct(sd_collector *col, int task, const char *stream, sd_tuple *const *anchors,
                   size_t nanchors, const sd_value *values, size_t n) {
    int sid = stream_of(col->ex, stream);
    if (sid < 0) return -1;
    return emit_tuple(col->ex, sid, task, values, n, anchors, nanchors, 0, 0);
}

int sd_emit_last_tasks(sd_collector *col, int *tasks, int max) {
    const executor *ex = col->ex;
    for (int i = 0; ex->th && i < ex->last_ndest && i < max; i++) tasks[i] = ex->th->dests[i];
    return ex->last_ndest;
}

/* ---- ack / fail --------------------------------------------------------- */

/* one acking record per distinct root of t, for that root's acker */
static void send_to_ackers(executor *ex, sd_tuple *t, int stream_id, uint32_t kind) {
    for (uint16_t i = 0; i < t->nanchors; i++) {
        uint64_t root = tuple_anchors(t)[i].root;
        uint64_t xor = kind == ACKREC_ACK ? tuple_anchors(t)[i].edge ^ t->ack_xor : 0;
        emit_ack_record(ex, stream_id, emit_acker_task(ex->rt, root), kind, root, xor, 0);
    }
}

/* a second ack (or an ack after a fail) would XOR the edge back in and
 * leave the tree to time out: refuse it, as a user error */
static int already_done(executor *ex, sd_tuple *t, const char *what) {
    if (t->flags & TUPLE_F_DONE) {
        log_task(SD_LOG_WARN, ex->task, "%s of a tuple already acked or failed: ignored", what);
        STAT_ADD(ex->errors, 1);
        return 1;
    }
    t->flags |= TUPLE_F_DONE;
    return 0;
}

void sd_ack(sd_collector *col, sd_tuple *t) {
    executor *ex = col->ex;
    if (already_done(ex, t, "ack")) return;
    STAT_ADD(ex->acked, 1);
    if (!ex->rt->acker || t->nanchors == 0) return;
    send_to_ackers(ex, t, ex->sid_ack_ack, ACKREC_ACK);
}

void sd_fail(sd_collector *col, sd_tuple *t) {
    executor *ex = col->ex;
    if (already_done(ex, t, "fail")) return;
    STAT_ADD(ex->failed, 1);
    if (!ex->rt->acker || t->nanchors == 0) return;
    send_to_ackers(ex, t, ex->sid_ack_fail, ACKREC_FAIL);
}

void sd_spout_gave_up(sd_collector *col, uint64_t msg_id) {
    executor *ex = col->ex;
    STAT_ADD(ex->failed_final, 1);
    log_task(SD_LOG_WARN, ex->task, "spout gave up on message %llu", (unsigned long long)msg_id);
}

void sd_report_error(sd_collector *col, const char *fmt, ...) {
    executor *ex = col->ex;
    STAT_ADD(ex->errors, 1);
    va_list ap;
    va_start(ap, fmt);
    log_taskv(SD_LOG_ERROR, ex->task, fmt, ap);
    va_end(ap);
}
