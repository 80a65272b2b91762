/*
 * ml_component: the spout and bolt adapters for multi-lang children
 * (Apache Storm's multi-lang protocol; see multilang.h and ml_child.h).
 *
 * Bolts: each input is sent as {id, comp, stream, task, tuple} and kept
 * (retained) until the child acks or fails its id. While more input waits
 * in the task's queue (so execute runs again soon), execute only takes
 * what the child has already said and returns: the child works on one
 * input while the next is sent. Otherwise it returns once the child has
 * answered the input: acked or failed it, or answered the heartbeat sent
 * after it (the child handles messages in order, so everything it did for
 * the input has then been read). So nothing the child says waits for
 * input that may not come, and an idle bolt holds no unread acks. A
 * heartbeat also goes out at least every topology.multilang.heartbeat.secs,
 * while tuples flow and (through the bolt loop's idle call,
 * multilang_bolt_idle) while none do. Before an input is sent the child's
 * unacked tuples must be below topology.shellbolt.max.pending.
 *
 * Spouts: next, ack, fail, activate and deactivate are each sent and
 * answered by emits then sync. Some libraries (Storm's storm.js) never
 * answer activate or deactivate: a child silent on one for
 * ML_ACTIVATION_GRACE_NS is not failed for it, and the task sends neither
 * again. A spout emit with an id is tracked under a
 * fresh numeric message id mapped back to the child's own id.
 *
 * A child that dies, answers nothing within topology.subprocess.timeout.secs,
 * or breaks the protocol (invalid JSON, an unknown command, an ack for an
 * unknown id) is reported as an error and killed; a bolt's pending inputs
 * are failed (their spouts replay them) and a new child is started, at most
 * once a second, on the next call. The other tasks are not affected.
 *
 * Thread: every callback runs on the task's executor thread, which owns the
 * adapter's state (ml_task).
 */
#include "multilang/multilang.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "multilang/ml_child.h"
#include "runtime/executor.h"

#define ML_MAX_TASK_IDS 1024
#define ML_ACTIVATION_GRACE_NS 2000000000LL /* at most; less when the subprocess timeout is shorter */

typedef struct ml_pending {
    uint64_t id;
    sd_tuple *t;     /* retained */
} ml_pending;

typedef struct ml_task {
    sd_context *ctx;
    sd_collector *col;
    const topo_component *comp;
    const topology *topo;
    ml_child *child;
    char *pid_dir;
    int64_t timeout_ns, heartbeat_ns, last_heartbeat_ns, last_start_ns;
    int max_pending;
    /* bolt: inputs the child holds */
    ml_pending *pending;
    int npending;
    uint64_t next_id;
    uint64_t waiting_id;  /* the input execute waits for (0: none) */
    int waiting_done;
    int synced;           /* a sync arrived */
    int emitted;          /* spout: emits during this command */
    /* spout: our message id (decimal) -> the child's id */
    json_t *spout_ids;
    bool no_activation;   /* spout: the component's child ignores activate/deactivate */
    uint64_t next_msg_id;
} ml_task;

static int64_t secs_ns(int64_t s) { return s * 1000000000LL; }

/* ---- values ------------------------------------------------------------------ */

/* a string the child can decode: bytes that are not UTF-8 become U+FFFD
 * (a child that cannot read a tuple would die on it at every replay) */
static json_t *string_json(const char *p, size_t n) {
    json_t *j = json_stringn(p, n);
    if (j) return j;
    char *clean = malloc(n * 3 + 1);
    if (!clean) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x80) {
            clean[k++] = (char)c;
        } else {
            memcpy(clean + k, "\xef\xbf\xbd", 3);
            k += 3;
        }
    }
    j = json_stringn(clean, k);
    free(clean);
    return j;
}

static json_t *value_json(const sd_value *v) {
    switch (v->type) {
    case SD_BOOL: return json_boolean(v->v.b);
    case SD_INT: return json_integer(v->v.i);
    case SD_DOUBLE: return isfinite(v->v.d) ? json_real(v->v.d) : json_null(); /* JSON has no NaN */
    case SD_STRING:
    case SD_BYTES: return string_json(v->v.s.ptr, v->v.s.len);
    default: return json_null();
    }
}

/* fills out from a JSON value; composite values become their JSON text,
 * kept in *scratch (the caller frees it after the emit) */
static int json_value(const json_t *j, sd_value *out, char **scratch) {
    switch (json_typeof(j)) {
    case JSON_STRING: *out = sd_str(json_string_value(j), (uint32_t)json_string_length(j)); return 0;
    case JSON_INTEGER: *out = sd_int(json_integer_value(j)); return 0;
    case JSON_REAL: *out = sd_double(json_real_value(j)); return 0;
    case JSON_TRUE: *out = sd_bool(true); return 0;
    case JSON_FALSE: *out = sd_bool(false); return 0;
    case JSON_NULL: *out = sd_null(); return 0;
    default:
        if (!(*scratch = json_dumps(j, JSON_COMPACT))) return -ENOMEM;
        *out = sd_str(*scratch, (uint32_t)strlen(*scratch));
        return 0;
    }
}

/* ---- the child's life ----------------------------------------------------------- */

static json_t *handshake_context(ml_task *st) {
    const topology *t = st->topo;
    json_t *ctx = json_object(), *t2c = json_object(), *streams = json_array(), *outf = json_object();
    json_t *inputs = json_object(), *infields = json_object();
    if (!ctx || !t2c || !streams || !outf || !inputs || !infields) goto oom;
    for (int task = 1; task <= t->ntasks; task++) {
        const topo_component *c = topology_task_component(t, task);
        char key[16];
        snprintf(key, sizeof key, "%d", task);
        if (c && json_object_set_new(t2c, key, json_string(c->id)) != 0) goto oom;
    }
    for (int i = 0; i < st->comp->nstreams; i++) {
        const topo_stream *s = &t->streams[st->comp->stream_ids[i]];
        if (s->system) continue;
        json_t *f = json_array();
        if (!f || json_array_append_new(streams, json_string(s->name)) != 0 ||
            json_object_set_new(outf, s->name, f) != 0)
            goto oom;
        for (int k = 0; k < s->nfields; k++) json_array_append_new(f, json_string(s->fields[k]));
    }
    for (int i = 0; i < st->comp->ninputs; i++) {
        const topo_input *in = &st->comp->inputs[i];
        const topo_stream *s = in->stream_id >= 0 ? &t->streams[in->stream_id] : NULL;
        json_t *by = json_object_get(inputs, in->from), *fby = json_object_get(infields, in->from);
        if (!by) {
            if (!(by = json_object()) || json_object_set_new(inputs, in->from, by) != 0) goto oom;
            if (!(fby = json_object()) || json_object_set_new(infields, in->from, fby) != 0) goto oom;
        }
        json_t *g = json_pack("{ss}", "type", topo_grouping_name(in->grouping));
        if (!g || json_object_set_new(by, in->stream, g) != 0) goto oom;
        json_t *f = json_array();
        if (!f || json_object_set_new(fby, in->stream, f) != 0) goto oom;
        for (int k = 0; s && k < s->nfields; k++) json_array_append_new(f, json_string(s->fields[k]));
    }
    if (json_object_set_new(ctx, "task->component", t2c) != 0 ||
        json_object_set_new(ctx, "taskid", json_integer(sd_context_task_id(st->ctx))) != 0 ||
        json_object_set_new(ctx, "componentid", json_string(st->comp->id)) != 0 ||
        json_object_set_new(ctx, "streams", streams) != 0 ||
        json_object_set_new(ctx, "stream->outputfields", outf) != 0 ||
        json_object_set_new(ctx, "source->stream->grouping", inputs) != 0 ||
        json_object_set_new(ctx, "source->stream->fields", infields) != 0)
        return json_decref(ctx), NULL;
    return ctx;
oom:
    json_decref(ctx);
    json_decref(t2c);
    json_decref(streams);
    json_decref(outf);
    json_decref(inputs);
    json_decref(infields);
    return NULL;
}

/* every known key with its value in effect, typed as Storm's conf is */
static json_t *handshake_conf(const conf *c) {
    size_t n;
    const conf_key_info *k = conf_known_keys(&n);
    json_t *o = json_object();
    for (size_t i = 0; o && i < n; i++) {
        json_t *v;
        if (!strcmp(k[i].type, "int")) v = json_integer(conf_int(c, k[i].key));
        else if (!strcmp(k[i].type, "double")) v = json_real(conf_double(c, k[i].key));
        else if (!strcmp(k[i].type, "bool")) v = json_boolean(conf_bool(c, k[i].key));
        else v = conf_str(c, k[i].key) ? json_string(conf_str(c, k[i].key)) : json_null();
        if (json_object_set_new(o, k[i].key, v) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static void remove_pid_dir(ml_task *st) {
    if (!st->pid_dir) return;
    char path[4096];
    if (st->child) {
        snprintf(path, sizeof path, "%s/%d", st->pid_dir, (int)ml_child_pid(st->child));
        unlink(path);
    }
    rmdir(st->pid_dir);
    free(st->pid_dir);
    st->pid_dir = NULL;
}

static void stop_child(ml_task *st) {
    if (!st->child) return;
    remove_pid_dir(st);
    ml_child_stop(st->child, NULL);
    st->child = NULL;
}

/* Kills the child after a failure (logged here: this decides), fails what
 * it held so the spouts replay it. */
static void child_failed(ml_task *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void child_failed(ml_task *st, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pid_t pid = st->child ? ml_child_pid(st->child) : 0;
    sd_report_error(st->col, "multi-lang %s '%s' (child %d): %s; restarting it, %d pending tuple(s) failed",
                    st->comp->kind == SD_SPOUT ? "spout" : "bolt", st->comp->id, (int)pid, msg, st->npending);
    stop_child(st);
    for (int i = 0; i < st->npending; i++) {
        sd_fail(st->col, st->pending[i].t);
        sd_tuple_release(st->pending[i].t);
    }
    st->npending = 0;
    if (st->spout_ids) json_object_clear(st->spout_ids); /* the new child knows none of them */
}

static const char *err_name(int rc) {
    if (rc == -ETIMEDOUT) return "no answer within topology.subprocess.timeout.secs";
    if (rc == -EPIPE) return "the child exited or closed its stdout";
    if (rc == -EMSGSIZE) return "a message beyond 64 MiB";
    return strerror(-rc);
}

/* where streamd_multilang.py is: next to the binary in a build tree
 * (<builddir>/python), else where it is installed; NULL if neither */
static char py_dir[4096];
static pthread_once_t py_once = PTHREAD_ONCE_INIT;

static void find_python_dir(void) {
    char *dir = py_dir;
    size_t dlen = sizeof py_dir;
    char exe[4000];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    struct stat sb;
    char probe[4096 + 32];
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        snprintf(dir, dlen, "%s/python", exe);
        snprintf(probe, sizeof probe, "%s/streamd_multilang.py", dir);
        if (stat(probe, &sb) == 0) return;
    }
    snprintf(dir, dlen, "%s", STREAMD_PYTHON_DIR);
    snprintf(probe, sizeof probe, "%s/streamd_multilang.py", dir);
    if (stat(probe, &sb) != 0) dir[0] = '\0';
}

static const char *python_dir(void) {
    pthread_once(&py_once, find_python_dir);
    return py_dir[0] ? py_dir : NULL;
}

static int start_child(ml_task *st) {
    st->last_start_ns = ml_now_ns();
    char tmpl[] = "/tmp/streamd-multilang-XXXXXX";
    if (!mkdtemp(tmpl)) {
        sd_report_error(st->col, "multi-lang '%s': cannot make a pid directory: %s", st->comp->id, strerror(errno));
        return -errno;
    }
    if (!(st->pid_dir = strdup(tmpl))) {
        rmdir(tmpl);
        return -ENOMEM;
    }
    int err = 0;
    st->child = ml_child_start(st->comp->command, st->comp->resources, python_dir(), sd_context_task_id(st->ctx), &err);
    if (!st->child) {
        sd_report_error(st->col, "multi-lang '%s': cannot start %s: %s", st->comp->id, st->comp->command[0],
                        strerror(-err));
        remove_pid_dir(st);
        return err;
    }
    json_t *ctx = handshake_context(st);
    json_t *conf = handshake_conf(st->topo->conf);
    json_t *msg = ctx && conf ? json_pack("{sssOsO}", "pidDir", st->pid_dir, "conf", conf, "context", ctx) : NULL;
    json_decref(ctx);
    json_decref(conf);
    if (!msg) {
        child_failed(st, "out of memory building the handshake");
        return -ENOMEM;
    }
    int64_t deadline = ml_now_ns() + st->timeout_ns;
    int rc = ml_child_send(st->child, msg, deadline);
    json_decref(msg);
    json_t *ans = NULL;
    char why[200] = "";
    if (rc == 0) rc = ml_child_recv(st->child, deadline, &ans, why, sizeof why);
    if (rc != 0) {
        child_failed(st, "handshake: %s%s%s", err_name(rc), why[0] ? ": " : "", why);
        return rc;
    }
    json_t *pid = json_object_get(ans, "pid");
    if (!json_is_integer(pid) || json_integer_value(pid) <= 0) {
        json_decref(ans);
        child_failed(st, "handshake: the answer has no pid");
        return -EPROTO;
    }
    if (json_integer_value(pid) != ml_child_pid(st->child))
        sd_log(st->ctx, SD_LOG_INFO, "multi-lang '%s': child %d reports pid %" PRId64 " (a wrapper runs it)",
               st->comp->id, (int)ml_child_pid(st->child), (int64_t)json_integer_value(pid));
    json_decref(ans);
    st->last_heartbeat_ns = ml_now_ns();
    sd_log(st->ctx, SD_LOG_INFO, "multi-lang '%s': child %d started", st->comp->id, (int)ml_child_pid(st->child));
    return 0;
}

/* a child, starting one at most once a second after a failure */
static int ensure_child(ml_task *st) {
    if (st->child) return 0;
    if (ml_now_ns() - st->last_start_ns < 1000000000LL) return -EAGAIN;
    return start_child(st);
}

/* ---- messages from the child --------------------------------------------------- */

static int find_pending(const ml_task *st, uint64_t id) {
    for (int i = 0; i < st->npending; i++)
        if (st->pending[i].id == id) return i;
    return -1;
}

/* tick tuples are sent with ids "tick-N": nothing to ack, never pending,
 * so a child may ack them (as Storm's BasicBolt does) or not */
static bool is_tick_id(const json_t *j) {
    return json_is_string(j) && strncmp(json_string_value(j), "tick-", 5) == 0;
}

/* a bolt tuple id as the child sends it back: our decimal string (or a
 * number, which some libraries produce) */
static int parse_id(const json_t *j, uint64_t *out) {
    if (json_is_integer(j) && json_integer_value(j) > 0) {
        *out = (uint64_t)json_integer_value(j);
        return 0;
    }
    if (!json_is_string(j)) return -1;
    const char *s = json_string_value(j);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || v == 0) return -1;
    *out = v;
    return 0;
}

static int do_emit(ml_task *st, const json_t *m) {
    const json_t *tup = json_object_get(m, "tuple"), *jstream = json_object_get(m, "stream");
    const json_t *jtask = json_object_get(m, "task"), *need = json_object_get(m, "need_task_ids");
    if (!json_is_array(tup)) return child_failed(st, "emit without a tuple list"), -EPROTO;
    if (json_array_size(tup) > SD_MAX_FIELDS)
        return child_failed(st, "emit of more than %d values", SD_MAX_FIELDS), -EPROTO;
    if (jstream && !json_is_null(jstream) && !json_is_string(jstream))
        return child_failed(st, "emit: stream is not a string"), -EPROTO;
    if (jtask && !json_is_null(jtask) && (!json_is_integer(jtask) || json_integer_value(jtask) <= 0 ||
                                          json_integer_value(jtask) > st->topo->ntasks))
        return child_failed(st, "emit: task is not a task id of the topology"), -EPROTO;
    const char *stream = json_is_string(jstream) ? json_string_value(jstream) : NULL;
    int task = json_is_integer(jtask) ? (int)json_integer_value(jtask) : 0;
    sd_value vals[SD_MAX_FIELDS];
    char *scratch[SD_MAX_FIELDS] = {0};
    size_t n = json_array_size(tup);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) rc = json_value(json_array_get(tup, i), &vals[i], &scratch[i]);
    if (rc == 0 && st->comp->kind == SD_BOLT) {
        const json_t *janc = json_object_get(m, "anchors");
        sd_tuple *anchors[64];
        size_t nanc = 0;
        if (janc && !json_is_null(janc) && !json_is_array(janc)) rc = -EPROTO;
        for (size_t i = 0; rc == 0 && i < json_array_size(janc); i++) {
            uint64_t id;
            int k;
            if (is_tick_id(json_array_get(janc, i))) continue;
            if (parse_id(json_array_get(janc, i), &id) != 0 || (k = find_pending(st, id)) < 0) rc = -ENOENT;
            else if (nanc == 64) rc = -E2BIG;
            else anchors[nanc++] = st->pending[k].t;
        }
        if (rc == 0) {
            rc = task ? sd_emit_direct(st->col, task, stream, anchors, nanc, vals, n)
                      : sd_emit(st->col, stream, anchors, nanc, vals, n);
            if (rc != 0) rc = -EINVAL;
        }
    } else if (rc == 0) {
        const json_t *jid = json_object_get(m, "id");
        bool tracked = jid && !json_is_null(jid);
        uint64_t msg_id = tracked ? ++st->next_msg_id : 0;
        rc = task ? sd_spout_emit_direct(st->col, task, stream, vals, n, tracked, msg_id)
                  : sd_spout_emit(st->col, stream, vals, n, tracked, msg_id);
        if (rc != 0) {
            rc = -EINVAL;
        } else if (tracked) {
            char key[24];
            snprintf(key, sizeof key, "%" PRIu64, msg_id);
            if (json_object_set(st->spout_ids, key, (json_t *)jid) != 0) rc = -ENOMEM;
        }
        st->emitted++;
    }
    for (size_t i = 0; i < n; i++) free(scratch[i]);
    if (rc == -EPROTO) return child_failed(st, "emit: anchors is not a list"), rc;
    if (rc == -ENOENT) return child_failed(st, "emit anchored to an unknown tuple id"), rc;
    if (rc == -E2BIG) return child_failed(st, "emit anchored to more than 64 tuples"), rc;
    if (rc == -ENOMEM) return child_failed(st, "out of memory"), rc;
    /* -EINVAL: the emit was refused (undeclared stream, wrong field count),
     * already logged: the child still gets its answer */
    /* as Storm: a direct emit is never answered (its task is known), a
     * plain one with the task ids unless need_task_ids is false */
    if (task || (need && json_is_false(need))) return 0;
    int ids[ML_MAX_TASK_IDS];
    int nids = rc == 0 ? sd_emit_last_tasks(st->col, ids, ML_MAX_TASK_IDS) : 0;
    json_t *arr = json_array();
    for (int i = 0; arr && i < nids && i < ML_MAX_TASK_IDS; i++) json_array_append_new(arr, json_integer(ids[i]));
    int src = arr ? ml_child_send(st->child, arr, ml_now_ns() + st->timeout_ns) : -ENOMEM;
    json_decref(arr);
    if (src != 0) return child_failed(st, "answering an emit: %s", err_name(src)), src;
    return 0;
}

static int do_ack(ml_task *st, const json_t *m, bool ack) {
    uint64_t id;
    int k;
    if (st->comp->kind != SD_BOLT) return child_failed(st, "a spout sent %s", ack ? "ack" : "fail"), -EPROTO;
    if (is_tick_id(json_object_get(m, "id"))) return 0;
    if (parse_id(json_object_get(m, "id"), &id) != 0 || (k = find_pending(st, id)) < 0)
        return child_failed(st, "%s for an unknown tuple id", ack ? "ack" : "fail"), -EPROTO;
    sd_tuple *t = st->pending[k].t;
    st->pending[k] = st->pending[--st->npending];
    if (id == st->waiting_id) st->waiting_done = 1;
    if (ack) sd_ack(st->col, t);
    else sd_fail(st->col, t);
    sd_tuple_release(t);
    return 0;
}

static void do_log(ml_task *st, const json_t *m) {
    const char *msg = json_string_value(json_object_get(m, "msg"));
    json_int_t lv = json_integer_value(json_object_get(m, "level"));
    /* Storm's levels: 0 trace, 1 debug, 2 info (also when absent), 3 warn, 4 error */
    sd_log_level level = !json_object_get(m, "level") ? SD_LOG_INFO
                         : lv <= 1                    ? SD_LOG_DEBUG
                         : lv == 2                    ? SD_LOG_INFO
                         : lv == 3                    ? SD_LOG_WARN
                                                      : SD_LOG_ERROR;
    sd_log(st->ctx, level, "%s: %s", st->comp->id, msg ? msg : "(log without msg)");
}

/* handles one message; 0, or negative after the child was failed */
static int handle(ml_task *st, json_t *m) {
    if (json_is_array(m)) return child_failed(st, "unexpected list (task ids are ours to send)"), -EPROTO;
    const char *cmd = json_string_value(json_object_get(m, "command"));
    if (!cmd) return child_failed(st, "a message without a command"), -EPROTO;
    if (!strcmp(cmd, "emit")) return do_emit(st, m);
    if (!strcmp(cmd, "ack")) return do_ack(st, m, true);
    if (!strcmp(cmd, "fail")) return do_ack(st, m, false);
    if (!strcmp(cmd, "sync")) {
        st->synced = 1;
        return 0;
    }
    if (!strcmp(cmd, "log")) {
        do_log(st, m);
        return 0;
    }
    if (!strcmp(cmd, "error")) {
        const char *msg = json_string_value(json_object_get(m, "msg"));
        sd_report_error(st->col, "%s: %s", st->comp->id, msg ? msg : "(error without msg)");
        return 0;
    }
    if (!strcmp(cmd, "metrics")) {
        const char *name = json_string_value(json_object_get(m, "name"));
        sd_log(st->ctx, SD_LOG_DEBUG, "%s: metric %s", st->comp->id, name ? name : "?");
        return 0;
    }
    char shown[64];
    snprintf(shown, sizeof shown, "%s", cmd);
    return child_failed(st, "unknown command '%s'", shown), -EPROTO;
}

enum { UNTIL_SYNC, UNTIL_WAITING, UNTIL_ROOM };

static bool reached(const ml_task *st, int until) {
    if (until == UNTIL_SYNC) return st->synced;
    if (until == UNTIL_WAITING) return st->waiting_done;
    return st->npending < st->max_pending;
}

/* reads and handles messages until the condition holds. 0, -ETIMEDOUT
 * (the child is kept: the caller decides), or negative after the child
 * was failed */
static int pump(ml_task *st, int until, int64_t deadline_ns) {
    while (!reached(st, until)) {
        json_t *m = NULL;
        char why[200] = "";
        int rc = ml_child_recv(st->child, deadline_ns, &m, why, sizeof why);
        if (rc == -ETIMEDOUT) return rc;
        if (rc != 0) return child_failed(st, "%s%s%s", err_name(rc), why[0] ? ": " : "", why), rc;
        rc = handle(st, m);
        json_decref(m);
        if (rc != 0) return rc;
    }
    return 0;
}

static int send_or_fail(ml_task *st, json_t *msg) {
    if (!msg) return child_failed(st, "out of memory"), -ENOMEM;
    int rc = ml_child_send(st->child, msg, ml_now_ns() + st->timeout_ns);
    json_decref(msg);
    if (rc != 0) return child_failed(st, "%s", err_name(rc)), rc;
    return 0;
}

/* sends a command (spout) or a heartbeat (bolt) and reads until its sync */
static int round_trip(ml_task *st, json_t *msg) {
    st->synced = 0;
    int rc = send_or_fail(st, msg);
    if (rc != 0) return rc;
    rc = pump(st, UNTIL_SYNC, ml_now_ns() + st->timeout_ns);
    if (rc == -ETIMEDOUT) child_failed(st, "%s", err_name(rc));
    return rc;
}

static int heartbeat(ml_task *st) {
    st->last_heartbeat_ns = ml_now_ns();
    return round_trip(st, json_pack("{sssss[]sisn}", "id", "-1", "stream", "__heartbeat", "tuple", "task", -1,
                                    "comp"));
}

/* ---- open / close ------------------------------------------------------------- */

static void *ml_open(sd_context *ctx, sd_collector *col) {
    ml_task *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->ctx = ctx;
    st->col = col;
    st->comp = ctx->ex->comp;
    st->topo = ctx->ex->rt->topo;
    st->timeout_ns = secs_ns(sd_context_conf_int(ctx, "topology.subprocess.timeout.secs", 30));
    st->heartbeat_ns = secs_ns(sd_context_conf_int(ctx, "topology.multilang.heartbeat.secs", 1));
    st->max_pending = (int)sd_context_conf_int(ctx, "topology.shellbolt.max.pending", 100);
    if (st->max_pending < 1) st->max_pending = 1;
    st->pending = calloc((size_t)st->max_pending + 1, sizeof *st->pending);
    st->spout_ids = json_object();
    if (!st->comp->command || !st->pending || !st->spout_ids || start_child(st) != 0) {
        stop_child(st);
        free(st->pending);
        json_decref(st->spout_ids);
        free(st);
        return NULL;
    }
    return st;
}

static void ml_close(void *state, sd_collector *col) {
    (void)col;
    ml_task *st = state;
    if (!st) return;
    stop_child(st);
    for (int i = 0; i < st->npending; i++) sd_tuple_release(st->pending[i].t); /* stopping: their trees time out */
    free(st->pending);
    json_decref(st->spout_ids);
    free(st);
}

/* ---- bolt ------------------------------------------------------------------------ */

static void ml_execute(void *state, sd_collector *col, sd_tuple *input) {
    ml_task *st = state;
    bool tick = sd_tuple_is_tick(input);
    if (ensure_child(st) != 0) {
        if (!tick) sd_fail(col, input); /* replayed once a child runs again */
        return;
    }
    if (st->npending >= st->max_pending) {
        int rc = pump(st, UNTIL_ROOM, ml_now_ns() + st->timeout_ns);
        if (rc == -ETIMEDOUT) child_failed(st, "%d tuples unacked for topology.subprocess.timeout.secs", st->npending);
        if (rc != 0) {
            if (!tick) sd_fail(col, input);
            return;
        }
    }
    json_t *vals = json_array();
    for (size_t i = 0; vals && i < sd_tuple_size(input); i++)
        json_array_append_new(vals, value_json(sd_tuple_get(input, i)));
    uint64_t id = ++st->next_id;
    char ids[32];
    snprintf(ids, sizeof ids, "%s%" PRIu64, tick ? "tick-" : "", id);
    json_t *msg = vals ? json_pack("{sssssssiso}", "id", ids, "comp", sd_tuple_source_component(input), "stream",
                                   sd_tuple_stream(input), "task", tick ? -1 : sd_tuple_source_task(input), "tuple",
                                   vals)
                       : NULL;
    if (!msg) {
        if (!tick) sd_fail(col, input);
        return;
    }
    if (tick) {
        /* what the child does on a tick (e.g. emit a window) is read now */
        if (send_or_fail(st, msg) == 0) heartbeat(st);
        return;
    }
    /* held until the child answers: a copy, so the slab it came in is not pinned */
    sd_tuple *kept = sd_tuple_keep(input);
    if (!kept) {
        json_decref(msg);
        sd_fail(col, input);
        return;
    }
    st->pending[st->npending++] = (ml_pending){.id = id, .t = kept};
    if (send_or_fail(st, msg) != 0) return; /* failed with the rest */
    if (queue_depth(st->ctx->ex->inq) > 0 && st->npending < st->max_pending &&
        ml_now_ns() - st->last_heartbeat_ns < st->heartbeat_ns) {
        /* more input is waiting, so execute runs again soon: take what the
         * child already said and let it work on the next input meanwhile */
        st->synced = 0;
        pump(st, UNTIL_SYNC, ml_now_ns()); /* -ETIMEDOUT: nothing more for now; a failure is handled inside */
        return;
    }
    st->waiting_id = id;
    st->waiting_done = 0;
    /* most children answer an input at once: wait briefly for that, then
     * make sure with a heartbeat that all it did for the input is read */
    int rc = pump(st, UNTIL_WAITING, ml_now_ns() + 2000000);
    st->waiting_id = 0;
    if (rc == -ETIMEDOUT || (rc == 0 && ml_now_ns() - st->last_heartbeat_ns >= st->heartbeat_ns)) heartbeat(st);
}

/* Called by the bolt loop about once a second whether or not input flows
 * (multilang.h): an idle child gets its heartbeat too, so one that hangs
 * without input is found within topology.subprocess.timeout.secs, killed
 * and started again (its pending inputs failed, so replayed), instead of
 * at the next input. */
void multilang_bolt_idle(void *state, sd_collector *col) {
    (void)col;
    ml_task *st = state;
    if (!st || ensure_child(st) != 0) return;
    if (ml_now_ns() - st->last_heartbeat_ns < st->heartbeat_ns) return; /* input flows: execute sent one */
    heartbeat(st); /* a failure is reported and handled inside */
}

/* ---- spout ----------------------------------------------------------------------- */

static int spout_command(ml_task *st, json_t *msg) {
    if (ensure_child(st) != 0) {
        json_decref(msg);
        return -EAGAIN;
    }
    return round_trip(st, msg);
}

static int ml_next(void *state, sd_collector *col) {
    (void)col;
    ml_task *st = state;
    st->emitted = 0;
    if (spout_command(st, json_pack("{ss}", "command", "next")) != 0) return SD_NEXT_IDLE;
    return st->emitted ? SD_NEXT_EMITTED : SD_NEXT_IDLE;
}

static void spout_ack(ml_task *st, uint64_t msg_id, const char *cmd) {
    char key[24];
    snprintf(key, sizeof key, "%" PRIu64, msg_id);
    json_t *id = json_object_get(st->spout_ids, key);
    if (!id) return; /* emitted by an earlier child: the new one does not know it */
    json_t *msg = json_pack("{sssO}", "command", cmd, "id", id);
    json_object_del(st->spout_ids, key);
    spout_command(st, msg);
}

static void ml_spout_ack(void *state, sd_collector *col, uint64_t msg_id) {
    (void)col;
    spout_ack(state, msg_id, "ack");
}

static void ml_spout_fail(void *state, sd_collector *col, uint64_t msg_id) {
    (void)col;
    spout_ack(state, msg_id, "fail");
}

/* activate or deactivate: answered like any command by most children;
 * one that stays silent for the grace period is taken to ignore both (the
 * protocol lists them, but Storm's storm.js answers only next, ack and
 * fail), so it is neither failed nor sent them again. A child that answers
 * later than the grace period is read one sync behind from then on, which
 * delays but loses nothing. */
static void activation(ml_task *st, const char *cmd) {
    if (st->no_activation || ensure_child(st) != 0) return;
    st->synced = 0;
    if (send_or_fail(st, json_pack("{ss}", "command", cmd)) != 0) return;
    int64_t grace = st->timeout_ns < ML_ACTIVATION_GRACE_NS ? st->timeout_ns : ML_ACTIVATION_GRACE_NS;
    if (pump(st, UNTIL_SYNC, ml_now_ns() + grace) != -ETIMEDOUT) return; /* answered, or failed inside */
    st->no_activation = true;
    sd_log(st->ctx, SD_LOG_INFO,
           "multi-lang spout '%s' (child %d) did not answer '%s' within %lld ms; it is taken to ignore activate "
           "and deactivate, which are not sent to it again",
           st->comp->id, (int)ml_child_pid(st->child), cmd, (long long)(grace / 1000000));
}

static void ml_activate(void *state, sd_collector *col) {
    (void)col;
    activation(state, "activate");
}

static void ml_deactivate(void *state, sd_collector *col) {
    (void)col;
    activation(state, "deactivate");
}

static const sd_component_def ml_bolt_def = {
    .api_version = SD_API_VERSION,
    .name = "multilang_bolt",
    .kind = SD_BOLT,
    .open = ml_open,
    .execute = ml_execute,
    .close = ml_close,
};

static const sd_component_def ml_spout_def = {
    .api_version = SD_API_VERSION,
    .name = "multilang_spout",
    .kind = SD_SPOUT,
    .open = ml_open,
    .next_tuple = ml_next,
    .ack = ml_spout_ack,
    .fail = ml_spout_fail,
    .activate = ml_activate,
    .deactivate = ml_deactivate,
    .close = ml_close,
};

const sd_component_def *multilang_component(sd_component_kind kind) {
    return kind == SD_SPOUT ? &ml_spout_def : &ml_bolt_def;
}
