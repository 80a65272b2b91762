/*
 * etcd_store: the store.h operations over etcd's v3 JSON gateway (see
 * etcd_store.h). Each operation encodes its body (etcd_json), submits it
 * (etcd_http, tagged with the caller's arg so store_cancel can find it) and
 * decodes the answer into a store_result for the callback; watches are in
 * etcd_watch. Threads: none; everything runs on the loop given.
 */
#include "store/etcd/etcd_store.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "store/etcd/etcd_http.h"
#include "store/etcd/etcd_json.h"
#include "store/etcd/etcd_watch.h"

typedef struct etcd_store {
    store base;
    uv_loop_t *loop;
    eh_client *c;
    store_watch *watches;
} etcd_store;

typedef enum { OP_GET, OP_LIST, OP_PUT, OP_DEL, OP_TXN, OP_GRANT, OP_KEEPALIVE, OP_REVOKE } op_kind;

typedef struct es_op {
    op_kind kind;
    store_cb cb;
    void *arg;
    int64_t lease; /* keepalive: the lease renewed */
} es_op;

/* Decodes a 200 answer's fields for op into r (kvs: new, the caller frees). */
static int decode_fields(const es_op *op, const json_t *obj, store_result *r, store_kv **kvs, size_t *n) {
    int rc = ej_header_rev(obj, &r->revision);
    if (rc != 0) return rc;
    switch (op->kind) {
    case OP_GET:
    case OP_LIST:
        rc = ej_kvs(obj, kvs, n);
        if (rc != 0) return rc;
        if (op->kind == OP_GET && *n > 1) return SD_EPROTO_STORE;
        r->kvs = *kvs;
        r->nkvs = *n;
        return 0;
    case OP_DEL:
        rc = ej_int64(obj, "deleted", &r->deleted);
        return rc != 0 || r->deleted < 0 ? SD_EPROTO_STORE : 0;
    case OP_TXN: {
        const json_t *v = json_object_get(obj, "succeeded");
        if (v && !json_is_boolean(v)) return SD_EPROTO_STORE;
        r->succeeded = v && json_is_true(v);
        return 0;
    }
    case OP_GRANT:
        if (ej_int64(obj, "ID", &r->lease) != 0 || ej_int64(obj, "TTL", &r->ttl) != 0) return SD_EPROTO_STORE;
        return r->lease > 0 && r->ttl > 0 ? 0 : SD_EPROTO_STORE;
    case OP_KEEPALIVE:
        if (ej_int64(obj, "ID", &r->lease) != 0 || ej_int64(obj, "TTL", &r->ttl) != 0) return SD_EPROTO_STORE;
        if (r->lease != op->lease) return SD_EPROTO_STORE;
        /* etcd answers a lease it no longer has without a TTL */
        return r->ttl > 0 ? 0 : SD_ELEASE_LOST;
    case OP_PUT:
    case OP_REVOKE: return 0;
    }
    return SD_EPROTO_STORE;
}

static int decode(const es_op *op, long status, const char *body, size_t len, store_result *r, json_t **root,
                  store_kv **kvs, size_t *n) {
    int rc = ej_parse(body, len, root);
    if (rc != 0) return rc;
    int code;
    const char *msg;
    if (ej_error(*root, &code, &msg)) return ej_error_code(code, msg);
    if (status != 200) return SD_EPROTO_STORE;
    /* keepalive is a stream on the gateway: its answer comes as {"result": ...} */
    const json_t *obj = op->kind == OP_KEEPALIVE ? ej_unwrap(*root) : *root;
    if (op->kind == OP_KEEPALIVE && ej_error(obj, &code, &msg)) return ej_error_code(code, msg);
    return decode_fields(op, obj, r, kvs, n);
}

static void on_done(void *ud, int err, long status, const char *body, size_t len) {
    es_op *op = ud;
    store_result r;
    memset(&r, 0, sizeof r);
    json_t *root = NULL;
    store_kv *kvs = NULL;
    size_t n = 0;
    if (err == 0) err = decode(op, status, body, len, &r, &root, &kvs, &n);
    if (err != 0) {
        memset(&r, 0, sizeof r);
        r.err = err;
    }
    if (op->cb) op->cb(op->arg, &r);
    ej_kvs_free(kvs, n);
    json_decref(root);
}

/* Submits body (taken) to path; the callback gets the decoded answer. */
static int submit(store *st, op_kind kind, const char *path, char *body, int64_t lease, store_cb cb, void *arg) {
    etcd_store *s = (etcd_store *)st;
    if (!body) return -ENOMEM;
    es_op *op = malloc(sizeof *op);
    if (!op) {
        free(body);
        return -ENOMEM;
    }
    op->kind = kind;
    op->cb = cb;
    op->arg = arg;
    op->lease = lease;
    eh_spec sp = {.path = path, .body = body, .len = strlen(body), .done = on_done, .ud = op, .free_ud = free, .tag = arg};
    int rc = eh_submit(s->c, &sp, NULL);
    if (rc != 0) free(op);
    return rc;
}

static int es_get(store *st, const char *key, store_cb cb, void *arg) {
    if (!key || !*key) return -EINVAL;
    return submit(st, OP_GET, "/v3/kv/range", ej_range_req(key, false), 0, cb, arg);
}

static int es_list(store *st, const char *prefix, store_cb cb, void *arg) {
    if (!prefix) return -EINVAL;
    return submit(st, OP_LIST, "/v3/kv/range", ej_range_req(prefix, true), 0, cb, arg);
}

static int es_put(store *st, const char *key, const char *value, size_t value_len, int64_t lease, store_cb cb,
                  void *arg) {
    if (!key || !*key || lease < 0) return -EINVAL;
    if (!value) value = "";
    if (value_len == 0) value_len = strlen(value);
    if (value_len > STORE_MAX_VALUE) return -EMSGSIZE;
    return submit(st, OP_PUT, "/v3/kv/put", ej_put_req(key, value, value_len, lease), 0, cb, arg);
}

static int es_del(store *st, const char *key, bool prefix, store_cb cb, void *arg) {
    if (!key || (!prefix && !*key)) return -EINVAL;
    return submit(st, OP_DEL, "/v3/kv/deleterange", ej_delete_req(key, prefix), 0, cb, arg);
}

static int check_ops(const store_op *ops, size_t n) {
    if (n > 0 && !ops) return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!ops[i].key || (ops[i].type != STORE_OP_DEL_PREFIX && !*ops[i].key)) return -EINVAL;
        if (ops[i].type == STORE_OP_PUT) {
            size_t len = ops[i].value_len ? ops[i].value_len : ops[i].value ? strlen(ops[i].value) : 0;
            if (len > STORE_MAX_VALUE) return -EMSGSIZE;
        }
    }
    return 0;
}

static int es_txn(store *st, const store_txn *t, store_cb cb, void *arg) {
    if (!t || (t->ncmps > 0 && !t->cmps)) return -EINVAL;
    for (size_t i = 0; i < t->ncmps; i++)
        if (!t->cmps[i].key || !*t->cmps[i].key) return -EINVAL;
    int rc = check_ops(t->then, t->nthen);
    if (rc == 0) rc = check_ops(t->otherwise, t->notherwise);
    if (rc != 0) return rc;
    char *body = ej_txn_req(t);
    if (!body) return -EINVAL; /* an unknown kind, or no memory */
    return submit(st, OP_TXN, "/v3/kv/txn", body, 0, cb, arg);
}

static int es_lease_grant(store *st, int ttl_secs, store_cb cb, void *arg) {
    if (ttl_secs <= 0) return -EINVAL;
    return submit(st, OP_GRANT, "/v3/lease/grant", ej_lease_grant_req(ttl_secs), 0, cb, arg);
}

static int es_lease_keepalive(store *st, int64_t lease, store_cb cb, void *arg) {
    if (lease <= 0) return -EINVAL;
    return submit(st, OP_KEEPALIVE, "/v3/lease/keepalive", ej_lease_id_req(lease), lease, cb, arg);
}

static int es_lease_revoke(store *st, int64_t lease, store_cb cb, void *arg) {
    if (lease <= 0) return -EINVAL;
    return submit(st, OP_REVOKE, "/v3/lease/revoke", ej_lease_id_req(lease), lease, cb, arg);
}

static int es_watch(store *st, const char *prefix, int64_t start_rev, store_watch_cb cb, void *arg,
                    store_watch **out) {
    etcd_store *s = (etcd_store *)st;
    return ew_start(s->loop, s->c, &s->watches, prefix, start_rev, cb, arg, out);
}

static void es_watch_cancel(store *st, store_watch *w) {
    (void)st;
    ew_cancel(w);
}

static void es_cancel(store *st, void *arg) {
    etcd_store *s = (etcd_store *)st;
    eh_cancel_tag(s->c, arg);
}

static void es_free(store *st) {
    etcd_store *s = (etcd_store *)st;
    ew_cancel_all(&s->watches);
    eh_client_free(s->c, free, s); /* s goes once the client's handles have closed */
}

static const store_ops etcd_ops = {
    .get = es_get,
    .list = es_list,
    .put = es_put,
    .del = es_del,
    .txn = es_txn,
    .lease_grant = es_lease_grant,
    .lease_keepalive = es_lease_keepalive,
    .lease_revoke = es_lease_revoke,
    .watch = es_watch,
    .watch_cancel = es_watch_cancel,
    .cancel = es_cancel,
    .free = es_free,
};

store *etcd_store_new(uv_loop_t *loop, const etcd_options *o) {
    if (!loop || !o) return NULL;
    etcd_store *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->base.ops = &etcd_ops;
    s->loop = loop;
    s->c = eh_client_new(loop, o);
    if (!s->c) {
        free(s);
        return NULL;
    }
    return &s->base;
}

static const char *nonempty(const char *s) { return s && *s ? s : NULL; }

void etcd_options_from_conf(etcd_options *o, const conf *c) {
    memset(o, 0, sizeof *o);
    o->endpoints = conf_str(c, "store.etcd.endpoints");
    int64_t t = conf_int(c, "store.etcd.request.timeout.ms");
    o->request_timeout_ms = t > 0 && t <= INT_MAX ? (int)t : 5000;
    o->tls_ca = nonempty(conf_str(c, "store.etcd.tls.ca"));
    o->tls_cert = nonempty(conf_str(c, "store.etcd.tls.cert"));
    o->tls_key = nonempty(conf_str(c, "store.etcd.tls.key"));
    o->user = nonempty(conf_str(c, "store.etcd.user"));
    o->password = conf_str(c, "store.etcd.password");
}
