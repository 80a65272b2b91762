/*
 * conf: the table of known keys and a small ordered list of set values.
 * Values are stored as validated, normalized text (what conf_to_json ships
 * to workers); typed reads parse on demand, which is cheap because the
 * runtime reads its settings once at start-up. No threads of its own; a
 * conf is modified by one thread and then only read.
 */
#include "base/conf.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/yaml_doc.h"

/* ---- the known keys --------------------------------------------------- */

/* Keep in step with etc/streamd.yaml (a unit test checks every key is there). */
static const conf_key_info known[] = {
    {"cluster.name", "string", "default", "name of the cluster; tags every log line and prefixes store keys"},
    {"log.level", "string", "info", "least severe level logged: debug, info, warn or error"},
    {"log.format", "string", "text", "log lines as text or json (one object a line)"},
    {"log.file", "string", "", "node and master: append log lines to this file (rotated like workers' logs) instead of stderr"},
    {"log.rotate.bytes", "int", "104857600", "a worker's log (and log.file) is rotated once it holds this many bytes; 0 = never"},
    {"log.rotate.keep", "int", "5", "rotated worker logs kept (worker-<port>.log.1 is the newest)"},
    {"streamd.local.dir", "string", "/tmp/streamd", "directory for worker logs and state (created if missing)"},
    {"topology.workers", "int", "1", "worker processes a topology runs in (a topology's `workers:` sets it)"},
    {"topology.acker.executors", "int", "1", "acker tasks; 0 turns acking off (tuples are acked on emit)"},
    {"topology.message.timeout.secs", "int", "30", "a tuple tree not completed within this many seconds is failed and replayed"},
    {"topology.max.spout.pending", "int", "1000", "most incomplete tuple trees per spout task; 0 = unlimited"},
    {"topology.tick.tuple.freq.secs", "int", "0", "send every bolt a tick tuple this often; 0 = off"},
    {"topology.subprocess.timeout.secs", "int", "30", "a multi-lang child that does not answer within this many seconds (or dies) is reported and restarted; its pending tuples fail and are replayed"},
    {"topology.shellbolt.max.pending", "int", "100", "most tuples a multi-lang bolt's child holds unacked before it is sent more"},
    {"topology.multilang.heartbeat.secs", "int", "1", "how often a multi-lang bolt's child is sent a heartbeat, busy or idle"},
    {"topology.executor.receive.buffer.size", "int", "16384", "tuples an executor's input queue holds"},
    {"topology.executor.queue.type", "string", "ring", "executor input queue: ring (bounded, backpressure) or unbounded"},
    {"topology.transfer.batch.size", "int", "64", "tuples handed from one task to another in one batch inside a worker"},
    {"topology.spout.idle.sleep.us", "int", "500", "microseconds a spout sleeps when it had nothing to emit"},
    {"topology.backpressure.high.watermark", "int", "65536", "tuples waiting in a worker beyond its full queues that make it ask every spout of the topology to pause"},
    {"topology.backpressure.low.watermark", "int", "16384", "the spouts resume once the tuples waiting fall below this"},
    {"topology.backpressure.high.watermark.bytes", "int", "4194304", "bytes of tuples alive in a worker (received, queued, being handled, emitted and unsent) that make it ask every spout of the topology to pause"},
    {"topology.backpressure.low.watermark.bytes", "int", "2097152", "the spouts resume once the tuples alive in the worker take less than this (and the tuples waiting are under topology.backpressure.low.watermark)"},
    {"topology.debug", "bool", "false", "per-tuple debug logging (accepted and passed to workers; nothing acts on it yet)"},
    {"topology.chaining", "bool", "true", "a bolt whose only input is a forward grouping from a task in the same worker runs in that task's thread, without a queue"},
    {"worker.executor.threads", "int", "0", "threads a worker runs its tasks on; 0 = its share of the CPUs it may use (affinity, divided among the topology's workers on its host, capped by its cgroup quota)"},
    {"worker.executor.slice.tuples", "int", "1024", "most tuples a task handles before the next task's turn on its thread"},
    {"worker.malloc.arenas", "int", "1", "malloc arenas a worker's threads share (glibc); more cost memory (each keeps its own peak), fewer cost some CPU where threads allocate at once; 0 = glibc's default (8 per core)"},
    {"worker.transfer.batch.bytes", "int", "65536", "bytes of tuples batched per destination worker before a send"},
    {"worker.transfer.flush.interval.ms", "int", "1", "longest a partly filled batch waits before it is sent"},
    {"worker.transfer.lz4.threshold.bytes", "int", "0", "compress batches of at least this many bytes with lz4; 0 = off"},
    {"worker.transfer.max.frame.bytes", "int", "16777216", "largest frame accepted from a peer worker"},
    {"worker.transfer.max.buffered.bytes", "int", "1048576", "unsent bytes per peer before senders are held back"},
    {"worker.transfer.socket.buffer.bytes", "int", "1048576", "send and receive buffer the kernel keeps for each connection to a peer worker (Linux doubles it); 0 = the kernel's autotuned size"},
    {"worker.transfer.shared.memory", "bool", "true", "a peer worker on the same host gets this worker's batches through a shared-memory ring of worker.transfer.socket.buffer.bytes (rounded up to a power of two, at least 64 KiB; 1 MiB when that is 0) instead of TCP, which still carries the handshake and liveness; either worker set to false keeps that direction on TCP"},
    {"worker.transfer.handshake.timeout.ms", "int", "5000", "a connection that has not completed the handshake by then is closed"},
    {"worker.transfer.max.unauthenticated", "int", "64", "connections still in their handshake a worker accepts at once; more are closed"},
    {"worker.transfer.heartbeat.interval.ms", "int", "1000", "an idle link to a peer carries a heartbeat this often"},
    {"worker.transfer.peer.timeout.secs", "int", "10", "a peer silent this long is declared down: its connection is closed and re-dialled and what is held for it fails; one down this long is isolated (sends to it fail at once)"},
    {"worker.heartbeat.interval.ms", "int", "1000", "how often a worker reports to its node"},
    {"worker.heartbeat.timeout.secs", "int", "10", "a worker that has heartbeated and then is silent this long is killed and restarted (at least 3 heartbeat intervals)"},
    {"task.cleanup.timeout.sec", "int", "5", "seconds a stopping worker drains before its tasks' cleanup runs"},
    {"topology.worker.cpu.weight", "int", "100", "cpu weight of each worker's cgroup (v2 cpu.weight; v1 cpu.shares = weight x 1024 / 100); a component's limits: cpu.weight overrides it"},
    {"topology.worker.cpu.cores", "double", "0", "cpu limit of each worker's cgroup in cores (1.5 = 150 ms per 100 ms); 0 = none; limits: cpu.cores overrides it"},
    {"topology.worker.memory.mb", "int", "0", "memory limit of each worker's cgroup in MB (the kernel OOM-kills a worker beyond it); 0 = none; limits: memory.mb overrides it"},
    {"supervisor.cgroup.mode", "string", "auto", "worker cgroups: auto (v2 when it offers cpu and memory, else v1), v1, v2 or off"},
    {"supervisor.cgroup.required", "bool", "false", "refuse to run workers when cgroups (cpu and memory) cannot be used, instead of running them without"},
    {"worker.stdout.redirect", "string", "log", "where what user code writes to stdout/stderr goes: log (the worker's log), file (worker-<port>.out beside it) or null"},
    {"worker.user", "string", "", "when the node runs as root: the user (and its group) workers run as, without capabilities and with no_new_privs; empty = the node's user"},
    {"supervisor.slots.ports", "string", "6700,6701,6702,6703", "ports of this node's worker slots, comma separated (a list is accepted too)"},
    {"supervisor.worker.restart.delay.ms", "int", "500", "wait before restarting a worker that died"},
    {"supervisor.worker.start.timeout.secs", "int", "30", "a worker not heard from within this many seconds of start is restarted"},
    {"worker.host", "string", "127.0.0.1", "address or host name workers listen on and advertise to their peers; a name is resolved once at start, and one that does not resolve stops the node"},
    {"store.etcd.endpoints", "string", "http://127.0.0.1:2379", "etcd endpoints (cluster mode), comma separated; requests fail over between them (--etcd sets it)"},
    {"store.etcd.request.timeout.ms", "int", "5000", "longest one etcd request may take before it is retried on the next endpoint or fails"},
    {"store.etcd.tls.ca", "string", "", "PEM file of the CA that signed etcd's certificate; empty = verify with the system's CAs (https endpoints only)"},
    {"store.etcd.tls.cert", "string", "", "PEM client certificate for etcd; empty = none"},
    {"store.etcd.tls.key", "string", "", "PEM private key of store.etcd.tls.cert"},
    {"store.etcd.user", "string", "", "etcd user name; empty = no authentication"},
    {"store.etcd.password", "string", "", "password of store.etcd.user"},
    {"master.id", "string", "", "this master's id in masters/<id>; empty = <host name>-<pid>"},
    {"master.lease.ttl.secs", "int", "5", "TTL of a master's lease; a standby takes over within about this long after the leader dies"},
    {"master.api.listen", "string", "127.0.0.1:6627", "address and port of the master's HTTP API"},
    {"master.api.max.body.bytes", "int", "67108864", "largest HTTP request body the API accepts (a topology package)"},
    {"master.api.max.connections", "int", "64", "most HTTP connections the API serves at once"},
    {"master.api.timeout.secs", "int", "30", "an idle or slow HTTP connection is closed after this many seconds"},
    {"node.id", "string", "", "this node's id in nodes/<id>; empty = the host name (--node-id sets it)"},
    {"node.labels", "string", "", "labels of this node for scheduling, comma separated key=value"},
    {"node.lease.ttl.secs", "int", "10", "TTL of a node's lease; the master reassigns a node's workers once it expires"},
    {"node.report.interval.secs", "int", "3", "how often a node sends its workers' counters to the leader's API"},
    {"client.timeout.secs", "int", "10", "longest a client command (submit, list, kill...) waits for etcd or the master"},
};
#define NKNOWN (sizeof known / sizeof known[0])

/* Ranges and choices beyond the type. Every integer key has one. Upper
 * bounds keep the runtime's "seconds * 1e9" and int casts from overflowing,
 * and keys that size memory (rings, tables, buffers, frames) from making a
 * worker, node or master allocate absurd amounts, up front or from a peer. */
typedef struct key_rule {
    const char *key;
    int64_t min, max;
    const char *const *choices; /* NULL-terminated */
} key_rule;

static const char *const level_choices[] = {"debug", "info", "warn", "error", NULL};
static const char *const format_choices[] = {"text", "json", NULL};
static const char *const redirect_choices[] = {"log", "file", "null", NULL};
static const char *const cgroup_choices[] = {"auto", "v1", "v2", "off", NULL};
static const char *const queue_choices[] = {"ring", "unbounded", NULL};
#define SECS_MAX 1000000 /* ~11 days */

static const key_rule rules[] = {
    {"log.level", 0, 0, level_choices},
    {"log.format", 0, 0, format_choices},
    {"log.rotate.bytes", 0, INT64_MAX, NULL},
    {"log.rotate.keep", 1, 1000, NULL},
    {"topology.executor.queue.type", 0, 0, queue_choices},
    {"supervisor.cgroup.mode", 0, 0, cgroup_choices},
    {"worker.stdout.redirect", 0, 0, redirect_choices},
    {"topology.worker.cpu.weight", 1, 10000, NULL},
    {"topology.worker.memory.mb", 0, INT32_MAX, NULL},
    {"topology.workers", 1, 65535, NULL},
    {"topology.acker.executors", 0, 65535, NULL},
    {"topology.message.timeout.secs", 1, SECS_MAX, NULL},
    {"topology.max.spout.pending", 0, 16777216, NULL},          /* pending table grows to it */
    {"topology.tick.tuple.freq.secs", 0, SECS_MAX, NULL},
    {"topology.subprocess.timeout.secs", 1, SECS_MAX, NULL},
    {"topology.shellbolt.max.pending", 1, 1000000, NULL},       /* allocated up front */
    {"topology.multilang.heartbeat.secs", 1, SECS_MAX, NULL},
    {"topology.executor.receive.buffer.size", 1, 1048576, NULL}, /* each bolt's ring, up front */
    {"topology.transfer.batch.size", 1, 8192, NULL},            /* x4 per remote worker per executor */
    {"topology.spout.idle.sleep.us", 0, SECS_MAX, NULL},
    {"topology.backpressure.high.watermark", 1, INT32_MAX, NULL},
    {"topology.backpressure.low.watermark", 0, INT32_MAX, NULL},
    {"topology.backpressure.high.watermark.bytes", 65536, INT32_MAX, NULL},
    {"topology.backpressure.low.watermark.bytes", 0, INT32_MAX, NULL},
    {"worker.executor.threads", 0, 4096, NULL},
    {"worker.executor.slice.tuples", 1, INT32_MAX, NULL},
    {"worker.malloc.arenas", 0, 1024, NULL},
    {"worker.transfer.batch.bytes", 1, 67108864, NULL},        /* a peer's send buffer */
    {"worker.transfer.flush.interval.ms", 1, SECS_MAX, NULL},
    {"worker.transfer.lz4.threshold.bytes", 0, INT32_MAX, NULL},
    {"worker.transfer.max.frame.bytes", 8192, 268435456, NULL}, /* a frame (and lz4 room); an acking packet of 256 records fits in 8 KiB */
    {"worker.transfer.max.buffered.bytes", 1, 1073741824, NULL}, /* per peer */
    {"worker.transfer.socket.buffer.bytes", 0, 268435456, NULL},
    {"worker.transfer.handshake.timeout.ms", 100, 600000, NULL},
    {"worker.transfer.max.unauthenticated", 1, 65536, NULL},
    {"worker.transfer.heartbeat.interval.ms", 10, 600000, NULL},
    {"worker.transfer.peer.timeout.secs", 1, 3600, NULL},
    {"worker.heartbeat.interval.ms", 1, SECS_MAX, NULL},
    {"worker.heartbeat.timeout.secs", 1, SECS_MAX, NULL},
    {"task.cleanup.timeout.sec", 0, SECS_MAX, NULL},
    {"supervisor.worker.restart.delay.ms", 0, SECS_MAX, NULL},
    {"supervisor.worker.start.timeout.secs", 1, SECS_MAX, NULL},
    {"store.etcd.request.timeout.ms", 100, SECS_MAX, NULL},
    {"master.lease.ttl.secs", 2, 3600, NULL},
    {"master.api.max.body.bytes", 1024, 1073741824, NULL},    /* held in memory per request */
    {"master.api.max.connections", 1, 65535, NULL},
    {"master.api.timeout.secs", 1, 3600, NULL},
    {"node.lease.ttl.secs", 2, 3600, NULL},
    {"node.report.interval.secs", 1, 3600, NULL},
    {"client.timeout.secs", 1, 3600, NULL},
};

const conf_key_info *conf_known_keys(size_t *n) {
    if (n) *n = NKNOWN;
    return known;
}

static const conf_key_info *known_key(const char *key) {
    for (size_t i = 0; i < NKNOWN; i++)
        if (strcmp(known[i].key, key) == 0) return &known[i];
    return NULL;
}

static const key_rule *key_rule_of(const char *key) {
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (strcmp(rules[i].key, key) == 0) return &rules[i];
    return NULL;
}

/* ---- storage ---------------------------------------------------------- */

typedef struct conf_entry {
    char *key;
    char *value;
} conf_entry;

struct conf {
    conf_entry *v;
    size_t n, cap;
};

conf *conf_new(void) {
    conf *c = calloc(1, sizeof *c);
    if (!c) log_error("conf: out of memory");
    return c;
}

void conf_free(conf *c) {
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].key);
        free(c->v[i].value);
    }
    free(c->v);
    free(c);
}

static conf_entry *find(const conf *c, const char *key) {
    if (!c) return NULL;
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->v[i].key, key) == 0) return &c->v[i];
    return NULL;
}

/* Stores a copy of value under key (replacing). 0 or -1 on OOM. */
static int put(conf *c, const char *key, const char *value) {
    char *v = strdup(value);
    if (!v) return -1;
    conf_entry *e = find(c, key);
    if (e) {
        free(e->value);
        e->value = v;
        return 0;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        conf_entry *grown = realloc(c->v, cap * sizeof *grown);
        if (!grown) {
            free(v);
            return -1;
        }
        c->v = grown;
        c->cap = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(v);
        return -1;
    }
    c->v[c->n].key = k;
    c->v[c->n].value = v;
    c->n++;
    return 0;
}

conf *conf_copy(const conf *c) {
    conf *d = conf_new();
    if (!d || !c) return d;
    for (size_t i = 0; i < c->n; i++)
        if (put(d, c->v[i].key, c->v[i].value) != 0) {
            log_error("conf: out of memory");
            conf_free(d);
            return NULL;
        }
    return d;
}

void conf_merge(conf *dst, const conf *src) {
    if (!dst || !src) return;
    for (size_t i = 0; i < src->n; i++)
        if (put(dst, src->v[i].key, src->v[i].value) != 0) {
            log_error("conf: out of memory merging '%s'", src->v[i].key);
            return;
        }
}

/* ---- parsing and checking --------------------------------------------- */

static bool parse_int(const char *s, int64_t *out) {
    if (!((*s >= '0' && *s <= '9') || ((*s == '-' || *s == '+') && s[1] >= '0' && s[1] <= '9')))
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0') return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double *out) {
    if (*s == '\0' || *s == ' ' || *s == '\t') return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v)) return false;
    *out = v;
    return true;
}

/* Checks that s is well-formed UTF-8: values travel to workers as JSON. */
static bool utf8_ok(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int extra;
        uint32_t cp;
        if (*p < 0x80) { p++; continue; }
        if ((*p & 0xE0) == 0xC0) { extra = 1; cp = *p & 0x1F; }
        else if ((*p & 0xF0) == 0xE0) { extra = 2; cp = *p & 0x0F; }
        else if ((*p & 0xF8) == 0xF0) { extra = 3; cp = *p & 0x07; }
        else return false;
        p++;
        for (int i = 0; i < extra; i++, p++) {
            if ((*p & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (*p & 0x3F);
        }
        if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
    }
    return true;
}

static void where(char *buf, size_t len, const char *file, int line) {
    if (file && line > 0) snprintf(buf, len, "%s:%d: ", file, line);
    else if (file) snprintf(buf, len, "%s: ", file);
    else buf[0] = '\0';
}

static int bad(char *err, size_t errlen, const char *file, int line, const char *shown, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int bad(char *err, size_t errlen, const char *file, int line, const char *shown, const char *fmt, ...) {
    char pre[512], msg[512];
    where(pre, sizeof pre, file, line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (err && errlen) snprintf(err, errlen, "%skey '%s': %s", pre, shown, msg);
    return -1;
}

static bool key_ok(const char *key) {
    if (!*key) return false;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        if (*p <= ' ' || *p == '=' || *p == 0x7F) return false;
    return true;
}

int conf_set_text_as(conf *c, const char *key, const char *shown, const char *value, const char *file,
                     int line, char *err, size_t errlen) {
    if (!shown) shown = key;
    if (!key_ok(key)) {
        char pre[512];
        where(pre, sizeof pre, file, line);
        if (err && errlen) snprintf(err, errlen, "%sbad key '%s': keys are dotted words without spaces", pre, key);
        return -1;
    }
    if (!value) value = "";
    if (!utf8_ok(value)) return bad(err, errlen, file, line, shown, "value is not valid UTF-8");
    const conf_key_info *k = known_key(key);
    const key_rule *r = key_rule_of(key);
    char norm[32];
    const char *store = value;
    if (k && strcmp(k->type, "int") == 0) {
        int64_t v;
        if (!parse_int(value, &v)) return bad(err, errlen, file, line, shown, "expected an integer, got '%s'", value);
        if (r && (v < r->min || v > r->max)) {
            if (r->max == INT32_MAX || r->max == INT64_MAX)
                return bad(err, errlen, file, line, shown, "expected an integer >= %" PRId64 ", got '%s'", r->min, value);
            return bad(err, errlen, file, line, shown, "expected an integer from %" PRId64 " to %" PRId64 ", got '%s'",
                       r->min, r->max, value);
        }
        snprintf(norm, sizeof norm, "%" PRId64, v);
        store = norm;
    } else if (k && strcmp(k->type, "double") == 0) {
        double d;
        if (!parse_double(value, &d)) return bad(err, errlen, file, line, shown, "expected a number, got '%s'", value);
    } else if (k && strcmp(k->type, "bool") == 0) {
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
            return bad(err, errlen, file, line, shown, "expected true or false, got '%s'", value);
    } else if (r && r->choices) {
        bool found = false;
        for (const char *const *ch = r->choices; *ch; ch++) found = found || strcmp(*ch, value) == 0;
        if (!found) {
            char list[256] = "";
            size_t used = 0;
            for (const char *const *ch = r->choices; *ch && used < sizeof list; ch++)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", *ch);
            return bad(err, errlen, file, line, shown, "expected one of %s, got '%s'", list, value);
        }
    }
    if (put(c, key, store) != 0) {
        log_error("conf: out of memory setting '%s'", key);
        return bad(err, errlen, file, line, shown, "out of memory");
    }
    return 0;
}

int conf_set_text(conf *c, const char *key, const char *value, const char *file, int line, char *err,
                  size_t errlen) {
    return conf_set_text_as(c, key, key, value, file, line, err, errlen);
}

int conf_set_kv(conf *c, const char *kv, char *err, size_t errlen) {
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        if (err && errlen) snprintf(err, errlen, "-c: expected KEY=VALUE, got '%s'", kv);
        return -1;
    }
    char *key = strndup(kv, (size_t)(eq - kv));
    if (!key) {
        log_error("conf: out of memory");
        if (err && errlen) snprintf(err, errlen, "-c: out of memory");
        return -1;
    }
    int rc = conf_set_text(c, key, eq + 1, "-c", 0, err, errlen);
    free(key);
    return rc;
}

/* Joins a sequence of scalars with commas (for list-valued string keys
 * such as supervisor.slots.ports). NULL if an item is not a scalar. */
static char *join_seq(const yd_node *seq) {
    size_t len = 1;
    for (size_t i = 0; i < seq->n; i++) {
        if (seq->items[i]->kind != YD_SCALAR) return NULL;
        len += strlen(seq->items[i]->text) + 1;
    }
    char *out = malloc(len);
    if (!out) return NULL;
    out[0] = '\0';
    for (size_t i = 0; i < seq->n; i++) {
        if (i) strcat(out, ",");
        strcat(out, seq->items[i]->text);
    }
    return out;
}

int conf_load_file(conf *c, const char *path, char *err, size_t errlen) {
    yd_node *root = yd_load_file(path, err, errlen);
    if (!root) return -1;
    int rc = -1;
    conf *tmp = NULL;
    if (yd_is_null(root)) { /* a file of comments only */
        rc = 0;
        goto out;
    }
    if (root->kind != YD_MAP) {
        snprintf(err, errlen, "%s:%d: expected a mapping of configuration keys (key: value), got %s", path,
                 root->line, yd_kind_name(root));
        goto out;
    }
    /* apply to a copy so that c is unchanged on error */
    tmp = conf_copy(c);
    if (!tmp) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    for (size_t i = 0; i < root->n; i++) {
        const char *key = root->keys[i];
        const yd_node *v = root->items[i];
        int line = root->key_lines[i];
        const conf_key_info *k = known_key(key);
        if (v->kind == YD_SCALAR) {
            if (conf_set_text(tmp, key, v->text, path, line, err, errlen) != 0) goto out;
        } else if (v->kind == YD_SEQ && (!k || strcmp(k->type, "string") == 0)) {
            char *joined = join_seq(v);
            if (!joined) {
                bad(err, errlen, path, line, key, "expected a list of plain values");
                goto out;
            }
            int set = conf_set_text(tmp, key, joined, path, line, err, errlen);
            free(joined);
            if (set != 0) goto out;
        } else {
            bad(err, errlen, path, line, key, "expected a single value, got %s%s", yd_kind_name(v),
                v->kind == YD_MAP ? " (write the full dotted key instead, e.g. topology.workers: 2)" : "");
            goto out;
        }
    }
    /* success: take over tmp's entries */
    {
        conf swap = *c;
        *c = *tmp;
        *tmp = swap;
    }
    rc = 0;
out:
    conf_free(tmp);
    yd_free(root);
    return rc;
}

/* ---- reads ------------------------------------------------------------ */

static const char *lookup(const conf *c, const char *key) {
    const conf_entry *e = find(c, key);
    if (e) return e->value;
    const conf_key_info *k = known_key(key);
    return k ? k->def : NULL;
}

int64_t conf_int_or(const conf *c, const char *key, int64_t def) {
    const char *s = lookup(c, key);
    int64_t v;
    return s && parse_int(s, &v) ? v : def;
}

int64_t conf_int(const conf *c, const char *key) { return conf_int_or(c, key, 0); }

double conf_double(const conf *c, const char *key) {
    const char *s = lookup(c, key);
    double d;
    return s && parse_double(s, &d) ? d : 0.0;
}

bool conf_bool(const conf *c, const char *key) {
    const char *s = lookup(c, key);
    return s && strcmp(s, "true") == 0;
}

const char *conf_str(const conf *c, const char *key) { return lookup(c, key); }

const char *conf_str_or(const conf *c, const char *key, const char *def) {
    const char *s = lookup(c, key);
    return s ? s : def;
}

bool conf_is_set(const conf *c, const char *key) { return find(c, key) != NULL; }

/* ---- JSON ------------------------------------------------------------- */

json_t *conf_to_json(const conf *c) {
    json_t *obj = json_object();
    if (!obj) goto oom;
    for (size_t i = 0; c && i < c->n; i++)
        if (json_object_set_new(obj, c->v[i].key, json_string(c->v[i].value)) != 0) goto oom;
    return obj;
oom:
    log_error("conf: out of memory building JSON");
    json_decref(obj);
    return NULL;
}

conf *conf_from_json(const json_t *obj) {
    if (!json_is_object(obj)) {
        log_error("conf: expected a JSON object of strings");
        return NULL;
    }
    conf *c = conf_new();
    if (!c) return NULL;
    const char *key;
    json_t *v;
    char err[512];
    json_object_foreach((json_t *)obj, key, v) {
        if (!json_is_string(v)) {
            log_error("conf: key '%s' in JSON is not a string", key);
            goto fail;
        }
        if (conf_set_text(c, key, json_string_value(v), "conf", 0, err, sizeof err) != 0) {
            log_error("%s", err);
            goto fail;
        }
    }
    return c;
fail:
    conf_free(c);
    return NULL;
}
