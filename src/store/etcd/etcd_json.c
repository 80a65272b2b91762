/*
 * etcd_json: request bodies and answer decoding for etcd's v3 JSON gateway
 * (see etcd_json.h). The gateway follows protobuf's JSON mapping: bytes are
 * base64, int64 are strings, and fields holding their zero value are left
 * out, so an absent member means 0, false or empty.
 */
#include "store/etcd/etcd_json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- base64 -------------------------------------------------------------- */

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t ej_b64_len(size_t n) { return (n + 2) / 3 * 4; }

void ej_b64_encode(const void *src, size_t n, char *out) {
    const unsigned char *p = src;
    size_t i = 0, o = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
}

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int ej_b64_decode(const char *text, size_t len, char **out, size_t *out_len) {
    if (len % 4 != 0) return SD_EPROTO_STORE;
    size_t pad = 0;
    if (len > 0 && text[len - 1] == '=') pad++;
    if (len > 1 && text[len - 2] == '=') pad++;
    size_t n = len / 4 * 3 - pad;
    char *buf = malloc(n + 1);
    if (!buf) return -ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        for (int j = 0; j < 4; j++) {
            unsigned char c = (unsigned char)text[i + j];
            /* '=' only as the padding of the last group */
            if (c == '=' && i + 4 == len && j >= 4 - (int)pad) v[j] = 0;
            else if ((v[j] = b64_value(c)) < 0) goto bad;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        buf[o++] = (char)(w >> 16);
        if (o < n) buf[o++] = (char)(w >> 8);
        if (o < n) buf[o++] = (char)w;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 0;
bad:
    free(buf);
    return SD_EPROTO_STORE;
}

/* ---- request bodies ------------------------------------------------------- */

/* a JSON string holding the base64 of n bytes; NULL on no memory */
static json_t *b64_json(const void *p, size_t n) {
    char *text = malloc(ej_b64_len(n) + 1);
    if (!text) return NULL;
    ej_b64_encode(p, n, text);
    json_t *s = json_string_nocheck(text);
    free(text);
    return s;
}

static json_t *int64_json(int64_t v) {
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return json_string_nocheck(buf);
}

/* obj[name] = v, taking v; false (and v released) on failure */
static bool set(json_t *obj, const char *name, json_t *v) { return v && json_object_set_new_nocheck(obj, name, v) == 0; }

/* The end of the range of keys starting with prefix: the prefix with its
 * last byte below 0xff incremented and the rest cut. A prefix of only 0xff
 * bytes (or none) has no such bound: etcd reads "\0" as "to the end". */
static bool set_range(json_t *obj, const char *key, bool prefix) {
    size_t n = strlen(key);
    if (n == 0) return set(obj, "key", b64_json("", 1)) && (!prefix || set(obj, "range_end", b64_json("", 1)));
    if (!set(obj, "key", b64_json(key, n))) return false;
    if (!prefix) return true;
    char *end = malloc(n);
    if (!end) return false;
    memcpy(end, key, n);
    size_t m = n;
    while (m > 0 && (unsigned char)end[m - 1] == 0xff) m--;
    bool ok;
    if (m == 0) {
        ok = set(obj, "range_end", b64_json("", 1));
    } else {
        end[m - 1] = (char)((unsigned char)end[m - 1] + 1);
        ok = set(obj, "range_end", b64_json(end, m));
    }
    free(end);
    return ok;
}

/* dumps and releases root */
static char *dump(json_t *root, bool ok) {
    char *s = ok ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return s;
}

char *ej_range_req(const char *key, bool prefix) {
    json_t *o = json_object();
    return o ? dump(o, set_range(o, key, prefix)) : NULL;
}

static json_t *put_obj(const char *key, const char *value, size_t value_len, int64_t lease) {
    json_t *o = json_object();
    if (!o) return NULL;
    bool ok = set(o, "key", b64_json(key, strlen(key))) && set(o, "value", b64_json(value, value_len)) &&
              (lease == 0 || set(o, "lease", int64_json(lease)));
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

char *ej_put_req(const char *key, const char *value, size_t value_len, int64_t lease) {
    json_t *o = put_obj(key, value, value_len, lease);
    return o ? dump(o, true) : NULL;
}

char *ej_delete_req(const char *key, bool prefix) { return ej_range_req(key, prefix); }

static json_t *cmp_obj(const store_cmp *c) {
    static const char *const results[] = {"EQUAL", "NOT_EQUAL", "LESS", "GREATER"};
    if ((unsigned)c->op > STORE_CMP_GREATER) return NULL;
    json_t *o = json_object();
    if (!o) return NULL;
    bool ok = set(o, "key", b64_json(c->key, strlen(c->key))) && set(o, "result", json_string(results[c->op]));
    switch (c->target) {
    case STORE_CMP_VALUE:
        ok = ok && set(o, "target", json_string("VALUE")) &&
             set(o, "value", b64_json(c->value ? c->value : "", c->value ? strlen(c->value) : 0));
        break;
    case STORE_CMP_CREATE_REV:
        ok = ok && set(o, "target", json_string("CREATE")) && set(o, "create_revision", int64_json(c->rev));
        break;
    case STORE_CMP_MOD_REV:
        ok = ok && set(o, "target", json_string("MOD")) && set(o, "mod_revision", int64_json(c->rev));
        break;
    default: ok = false;
    }
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *op_obj(const store_op *op) {
    json_t *o = json_object(), *inner = NULL;
    if (!o) return NULL;
    switch (op->type) {
    case STORE_OP_PUT: {
        const char *v = op->value ? op->value : "";
        inner = put_obj(op->key, v, op->value_len ? op->value_len : strlen(v), op->lease);
        if (set(o, "request_put", inner)) return o;
        break;
    }
    case STORE_OP_DEL:
    case STORE_OP_DEL_PREFIX:
        inner = json_object();
        if (inner && !set_range(inner, op->key, op->type == STORE_OP_DEL_PREFIX)) {
            json_decref(inner);
            inner = NULL;
        }
        if (set(o, "request_delete_range", inner)) return o;
        break;
    default: break;
    }
    json_decref(o);
    return NULL;
}

static bool add_ops(json_t *root, const char *name, const store_op *ops, size_t n) {
    json_t *arr = json_array();
    if (!set(root, name, arr)) return false;
    for (size_t i = 0; i < n; i++) {
        json_t *o = op_obj(&ops[i]);
        if (!o || json_array_append_new(arr, o) != 0) return false;
    }
    return true;
}

char *ej_txn_req(const store_txn *t) {
    json_t *root = json_object(), *cmps = json_array();
    if (!root || !set(root, "compare", cmps)) {
        json_decref(root);
        return NULL;
    }
    for (size_t i = 0; i < t->ncmps; i++) {
        json_t *c = cmp_obj(&t->cmps[i]);
        if (!c || json_array_append_new(cmps, c) != 0) return dump(root, false);
    }
    bool ok = add_ops(root, "success", t->then, t->nthen) && add_ops(root, "failure", t->otherwise, t->notherwise);
    return dump(root, ok);
}

char *ej_lease_grant_req(int ttl_secs) {
    json_t *o = json_object();
    return o ? dump(o, set(o, "TTL", int64_json(ttl_secs))) : NULL;
}

char *ej_lease_id_req(int64_t lease) {
    json_t *o = json_object();
    return o ? dump(o, set(o, "ID", int64_json(lease))) : NULL;
}

char *ej_watch_req(const char *prefix, int64_t start_rev) {
    json_t *root = json_object(), *c = json_object();
    if (!root || !set(root, "create_request", c)) {
        json_decref(root);
        return NULL;
    }
    bool ok = set_range(c, prefix, true) && (start_rev <= 0 || set(c, "start_revision", int64_json(start_rev))) &&
              set(c, "progress_notify", json_true());
    return dump(root, ok);
}

char *ej_auth_req(const char *user, const char *password) {
    json_t *o = json_object();
    if (!o) return NULL;
    return dump(o, set(o, "name", json_string(user)) && set(o, "password", json_string(password ? password : "")));
}

/* ---- answers ------------------------------------------------------------- */

int ej_parse(const char *body, size_t len, json_t **root) {
    json_error_t e;
    json_t *r = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
    if (!r) return SD_EPROTO_STORE;
    if (!json_is_object(r)) {
        json_decref(r);
        return SD_EPROTO_STORE;
    }
    *root = r;
    return 0;
}

bool ej_error(const json_t *obj, int *code, const char **msg) {
    const json_t *e = json_object_get(obj, "error");
    if (!e) return false;
    const json_t *c, *m;
    if (json_is_object(e)) { /* inside a stream */
        c = json_object_get(e, "grpc_code");
        m = json_object_get(e, "message");
    } else if (json_is_string(e)) {
        if (json_string_length(e) == 0) return false; /* an empty error field is no error */
        c = json_object_get(obj, "code");
        m = json_object_get(obj, "message");
        if (!json_is_string(m)) m = e;
    } else {
        c = m = NULL;
    }
    *code = json_is_integer(c) ? (int)json_integer_value(c) : 2 /* Unknown */;
    *msg = json_is_string(m) ? json_string_value(m) : "";
    return true;
}

bool ej_error_is_bad_token(int grpc_code, const char *msg) {
    return grpc_code == 16 || strstr(msg, "invalid auth token") || strstr(msg, "auth store is old");
}

bool ej_error_is_unavailable(int grpc_code, const char *msg) {
    (void)msg;
    return grpc_code == 14;
}

int ej_error_code(int grpc_code, const char *msg) {
    if (strstr(msg, "lease not found")) return SD_ELEASE_LOST;
    if (strstr(msg, "has been compacted")) return SD_ECOMPACTED;
    if (strstr(msg, "request is too large")) return -EMSGSIZE;
    if (strstr(msg, "too many operations")) return -E2BIG;
    if (strstr(msg, "authentication failed") || strstr(msg, "user name is empty")) return -EACCES;
    switch (grpc_code) {
    case 3: return -EINVAL;          /* InvalidArgument */
    case 4: return -ETIMEDOUT;       /* DeadlineExceeded */
    case 5: return -ENOENT;          /* NotFound */
    case 6: return -EEXIST;          /* AlreadyExists */
    case 7: return -EACCES;          /* PermissionDenied */
    case 8: return -EMSGSIZE;        /* ResourceExhausted */
    case 11: return -ERANGE;         /* OutOfRange: a future revision */
    case 14: return SD_EUNAVAILABLE; /* Unavailable */
    case 16: return -EACCES;         /* Unauthenticated */
    default: return -EIO;
    }
}

int ej_int64(const json_t *obj, const char *name, int64_t *out) {
    const json_t *v = json_object_get(obj, name);
    *out = 0;
    if (!v) return 0;
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v)) return SD_EPROTO_STORE;
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    size_t i = s[0] == '-' ? 1 : 0;
    if (len == i || len > 20) return SD_EPROTO_STORE;
    for (size_t j = i; j < len; j++)
        if (s[j] < '0' || s[j] > '9') return SD_EPROTO_STORE;
    errno = 0;
    long long x = strtoll(s, NULL, 10);
    if (errno == ERANGE) return SD_EPROTO_STORE;
    *out = (int64_t)x;
    return 0;
}

int ej_header_rev(const json_t *obj, int64_t *rev) {
    const json_t *h = json_object_get(obj, "header");
    if (!json_is_object(h) || ej_int64(h, "revision", rev) != 0 || *rev <= 0) return SD_EPROTO_STORE;
    return 0;
}

/* decodes the base64 string member name (absent = empty) into a new string */
static int b64_member(const json_t *obj, const char *name, char **out, size_t *len) {
    const json_t *v = json_object_get(obj, name);
    if (!v) return ej_b64_decode("", 0, out, len);
    if (!json_is_string(v)) return SD_EPROTO_STORE;
    return ej_b64_decode(json_string_value(v), json_string_length(v), out, len);
}

void ej_kv_clear(store_kv *kv) {
    free((char *)kv->key);
    free((char *)kv->value);
    memset(kv, 0, sizeof *kv);
}

int ej_kv(const json_t *obj, store_kv *out, bool require_revs) {
    memset(out, 0, sizeof *out);
    if (!json_is_object(obj) || !json_is_string(json_object_get(obj, "key"))) return SD_EPROTO_STORE;
    char *key = NULL, *value = NULL;
    size_t klen = 0, vlen = 0;
    int rc = b64_member(obj, "key", &key, &klen);
    if (rc == 0) rc = b64_member(obj, "value", &value, &vlen);
    out->key = key;
    out->value = value;
    if (rc != 0) goto fail;
    out->value_len = vlen;
    rc = SD_EPROTO_STORE;
    /* keys are C strings here: an empty one or one holding NUL cannot be named */
    if (klen == 0 || strlen(key) != klen) goto fail;
    if (ej_int64(obj, "create_revision", &out->create_rev) != 0 || ej_int64(obj, "mod_revision", &out->mod_rev) != 0 ||
        ej_int64(obj, "lease", &out->lease) != 0)
        goto fail;
    if (out->mod_rev < 0 || out->create_rev < 0 || out->lease < 0) goto fail;
    if (require_revs && (out->create_rev <= 0 || out->mod_rev < out->create_rev)) goto fail;
    return 0;
fail:
    ej_kv_clear(out);
    return rc;
}

void ej_kvs_free(store_kv *kvs, size_t n) {
    for (size_t i = 0; i < n; i++) ej_kv_clear(&kvs[i]);
    free(kvs);
}

int ej_kvs(const json_t *obj, store_kv **out, size_t *n) {
    *out = NULL;
    *n = 0;
    const json_t *arr = json_object_get(obj, "kvs");
    if (!arr) return 0;
    if (!json_is_array(arr)) return SD_EPROTO_STORE;
    size_t cnt = json_array_size(arr);
    if (cnt == 0) return 0;
    store_kv *kvs = calloc(cnt, sizeof *kvs);
    if (!kvs) return -ENOMEM;
    for (size_t i = 0; i < cnt; i++) {
        int rc = ej_kv(json_array_get(arr, i), &kvs[i], true);
        if (rc != 0) {
            ej_kvs_free(kvs, i);
            return rc;
        }
    }
    *out = kvs;
    *n = cnt;
    return 0;
}

const json_t *ej_unwrap(const json_t *obj) {
    const json_t *r = json_object_get(obj, "result");
    return json_is_object(r) ? r : obj;
}

static int get_bool(const json_t *obj, const char *name, bool *out) {
    const json_t *v = json_object_get(obj, name);
    *out = false;
    if (!v) return 0;
    if (!json_is_boolean(v)) return SD_EPROTO_STORE;
    *out = json_is_true(v);
    return 0;
}

void ej_watch_msg_clear(ej_watch_msg *m) {
    ej_kvs_free(m->kvs, m->nevents);
    free(m->events);
    memset(m, 0, sizeof *m);
}

/* one mvccpb.Event into ev/kv */
static int watch_event(const json_t *e, store_event *ev, store_kv *kv) {
    if (!json_is_object(e)) return SD_EPROTO_STORE;
    const json_t *type = json_object_get(e, "type");
    bool del;
    if (!type || (json_is_string(type) && strcmp(json_string_value(type), "PUT") == 0)) del = false;
    else if (json_is_string(type) && strcmp(json_string_value(type), "DELETE") == 0) del = true;
    else return SD_EPROTO_STORE;
    int rc = ej_kv(json_object_get(e, "kv"), kv, !del);
    if (rc != 0) return rc;
    if (kv->mod_rev <= 0) {
        ej_kv_clear(kv);
        return SD_EPROTO_STORE;
    }
    ev->type = del ? STORE_EVENT_DELETE : STORE_EVENT_PUT;
    ev->kv = kv;
    ev->revision = kv->mod_rev;
    return 0;
}

int ej_watch_msg_decode(const json_t *root, ej_watch_msg *m) {
    memset(m, 0, sizeof *m);
    m->cancel_reason = "";
    const char *msg;
    if (ej_error(root, &m->err_code, &msg)) {
        m->is_error = true;
        m->cancel_reason = msg;
        return 0;
    }
    const json_t *r = json_object_get(root, "result");
    if (!json_is_object(r)) return SD_EPROTO_STORE;
    const json_t *h = json_object_get(r, "header");
    if (h && (!json_is_object(h) || ej_int64(h, "revision", &m->header_rev) != 0)) return SD_EPROTO_STORE;
    if (get_bool(r, "created", &m->created) != 0 || get_bool(r, "canceled", &m->canceled) != 0 ||
        ej_int64(r, "compact_revision", &m->compact_rev) != 0)
        return SD_EPROTO_STORE;
    const json_t *reason = json_object_get(r, "cancel_reason");
    if (reason && !json_is_string(reason)) return SD_EPROTO_STORE;
    if (reason) m->cancel_reason = json_string_value(reason);
    const json_t *evs = json_object_get(r, "events");
    if (!evs) return 0;
    if (!json_is_array(evs)) return SD_EPROTO_STORE;
    size_t n = json_array_size(evs);
    if (n == 0) return 0;
    m->events = calloc(n, sizeof *m->events);
    m->kvs = calloc(n, sizeof *m->kvs);
    if (!m->events || !m->kvs) {
        ej_watch_msg_clear(m);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = watch_event(json_array_get(evs, i), &m->events[i], &m->kvs[i]);
        /* events come in revision order; anything else cannot be resumed */
        if (rc == 0 && i > 0 && m->events[i].revision < m->events[i - 1].revision) {
            ej_kv_clear(&m->kvs[i]);
            rc = SD_EPROTO_STORE;
        }
        if (rc != 0) {
            m->nevents = i;
            ej_watch_msg_clear(m);
            return rc;
        }
        m->nevents = i + 1;
    }
    return 0;
}
