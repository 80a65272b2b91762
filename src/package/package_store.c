/*
 * package_store: packages in the cluster store (see package.h), as chunks
 * packages/<hash>/chunk-NNNNNN of at most PACKAGE_CHUNK_BYTES and a
 * manifest written after them. Called by the leader (put, delete) and by
 * nodes (fetch), on the loop that owns the store; one request at a time
 * per operation, so a package never needs more than one chunk in flight.
 * Everything read back is checked: the manifest's numbers are bounded and
 * consistent, each chunk has the size the manifest implies, and the whole
 * matches its hash.
 * Threads: none; each operation runs on its store's loop. Operations are
 * also kept in a process-wide list (under a mutex, since a process may run
 * several loops) so that package_store_cancel can find them by arg.
 */
#include "package/package.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_CAP 512
#define MANIFEST_MAX 1024 /* bytes of manifest JSON worth parsing */

typedef enum { OP_PUT, OP_FETCH, OP_DELETE } op_kind;

typedef struct pkg_op pkg_op;
struct pkg_op {
    store *st;
    op_kind kind;
    char prefix[KEY_CAP]; /* STORE_PREFIX<cluster>/packages/<hash>/ */
    char hash[PACKAGE_HASH_HEX];
    unsigned char *data; /* put: a copy of the package; fetch: what has arrived */
    size_t len;
    size_t chunks, next; /* chunk count; the chunk being written or read */
    bool guarded;
    store_cmp guard; /* key and value owned */
    package_done_cb done;
    package_fetch_cb fetched;
    void *arg;
    pkg_op *prev, *nextop; /* the registry */
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static pkg_op *reg_head;

static void reg_add(pkg_op *op) {
    pthread_mutex_lock(&reg_mu);
    op->prev = NULL;
    op->nextop = reg_head;
    if (reg_head) reg_head->prev = op;
    reg_head = op;
    pthread_mutex_unlock(&reg_mu);
}

static void reg_remove_locked(pkg_op *op) {
    if (op->prev)
        op->prev->nextop = op->nextop;
    else
        reg_head = op->nextop;
    if (op->nextop) op->nextop->prev = op->prev;
}

static void op_free(pkg_op *op) {
    free((char *)op->guard.key);
    free((char *)op->guard.value);
    free(op->data);
    free(op);
}

/* Ends op: its callback runs once, with err. */
static void finish(pkg_op *op, int err) {
    pthread_mutex_lock(&reg_mu);
    reg_remove_locked(op);
    pthread_mutex_unlock(&reg_mu);
    if (op->kind == OP_FETCH)
        op->fetched(op->arg, err, err == 0 ? op->data : NULL, err == 0 ? op->len : 0);
    else if (op->done)
        op->done(op->arg, err);
    op_free(op);
}

void package_store_cancel(store *st, void *arg) {
    pthread_mutex_lock(&reg_mu);
    for (pkg_op *op = reg_head, *next; op; op = next) {
        next = op->nextop;
        if (op->st != st || op->arg != arg) continue;
        reg_remove_locked(op);
        store_cancel(st, op);
        op_free(op);
    }
    pthread_mutex_unlock(&reg_mu);
}

static pkg_op *op_new(store *st, op_kind kind, const char *cluster, const char *hash, const store_cmp *guard,
                      void *arg, int *err) {
    *err = -EINVAL;
    if (!st || !cluster || !cluster[0] || strchr(cluster, '/') || !package_hash_valid(hash)) return NULL;
    pkg_op *op = calloc(1, sizeof *op);
    if (!op) {
        *err = -ENOMEM;
        return NULL;
    }
    op->st = st;
    op->kind = kind;
    op->arg = arg;
    memcpy(op->hash, hash, PACKAGE_HASH_HEX);
    if ((*err = store_key(op->prefix, sizeof op->prefix, cluster, "packages/%s/", hash)) != 0) {
        free(op);
        return NULL;
    }
    if (guard) {
        op->guarded = true;
        op->guard = *guard;
        op->guard.key = guard->key ? strdup(guard->key) : NULL;
        op->guard.value = guard->value ? strdup(guard->value) : NULL;
        if (!guard->key || !op->guard.key || (guard->value && !op->guard.value)) {
            *err = guard->key ? -ENOMEM : -EINVAL;
            op_free(op);
            return NULL;
        }
    }
    *err = 0;
    return op;
}

static void chunk_key(const pkg_op *op, size_t i, char *buf, size_t cap) {
    snprintf(buf, cap, "%schunk-%06zu", op->prefix, i);
}

static void manifest_key(const pkg_op *op, char *buf, size_t cap) { snprintf(buf, cap, "%smanifest", op->prefix); }

/* ---- put ------------------------------------------------------------------------ */

static void on_written(void *arg, const store_result *r);

/* Puts one value, guarded when op is. */
static int write_value(pkg_op *op, const char *key, const void *value, size_t len) {
    if (!op->guarded) return store_put_bytes(op->st, key, value, len, 0, on_written, op);
    store_op put = {.type = STORE_OP_PUT, .key = key, .value = value, .value_len = len};
    store_txn t = {.cmps = &op->guard, .ncmps = 1, .then = &put, .nthen = 1};
    return store_commit(op->st, &t, on_written, op);
}

/* Writes chunk op->next, or the manifest once every chunk is in. */
static int put_next(pkg_op *op) {
    char key[KEY_CAP + 32];
    if (op->next < op->chunks) {
        size_t off = op->next * PACKAGE_CHUNK_BYTES;
        size_t n = op->len - off < PACKAGE_CHUNK_BYTES ? op->len - off : PACKAGE_CHUNK_BYTES;
        chunk_key(op, op->next, key, sizeof key);
        return write_value(op, key, op->data + off, n);
    }
    char manifest[96];
    int n = snprintf(manifest, sizeof manifest, "{\"size\":%zu,\"chunks\":%zu}", op->len, op->chunks);
    manifest_key(op, key, sizeof key);
    return write_value(op, key, manifest, (size_t)n);
}

static void on_written(void *arg, const store_result *r) {
    pkg_op *op = arg;
    if (r->err != 0) {
        finish(op, r->err);
        return;
    }
    if (op->guarded && !r->succeeded) {
        finish(op, -EPERM); /* no longer the leader */
        return;
    }
    if (op->next == op->chunks) {
        finish(op, 0); /* the manifest is in */
        return;
    }
    op->next++;
    int rc = put_next(op);
    if (rc != 0) finish(op, rc);
}

int package_store_put(store *st, const char *cluster, const char *hash, const void *data, size_t len,
                      const store_cmp *guard, package_done_cb cb, void *arg) {
    if (!data || len == 0 || len > PACKAGE_MAX_BYTES) return len > PACKAGE_MAX_BYTES ? -EFBIG : -EINVAL;
    int err;
    pkg_op *op = op_new(st, OP_PUT, cluster, hash, guard, arg, &err);
    if (!op) return err;
    op->done = cb;
    op->len = len;
    op->chunks = (len + PACKAGE_CHUNK_BYTES - 1) / PACKAGE_CHUNK_BYTES;
    if (!(op->data = malloc(len))) {
        op_free(op);
        return -ENOMEM;
    }
    memcpy(op->data, data, len);
    int rc = put_next(op);
    if (rc != 0) {
        op_free(op);
        return rc;
    }
    reg_add(op);
    return 0;
}

/* ---- fetch ------------------------------------------------------------------------- */

static void on_chunk(void *arg, const store_result *r);

static int fetch_next(pkg_op *op) {
    char key[KEY_CAP + 32];
    chunk_key(op, op->next, key, sizeof key);
    return store_get(op->st, key, on_chunk, op);
}

static void on_chunk(void *arg, const store_result *r) {
    pkg_op *op = arg;
    if (r->err != 0) {
        finish(op, r->err);
        return;
    }
    if (r->nkvs == 0) {
        finish(op, -ENODATA);
        return;
    }
    size_t off = op->next * PACKAGE_CHUNK_BYTES;
    size_t want = op->len - off < PACKAGE_CHUNK_BYTES ? op->len - off : PACKAGE_CHUNK_BYTES;
    if (r->kvs[0].value_len != want || !r->kvs[0].value) {
        finish(op, SD_EHASH);
        return;
    }
    memcpy(op->data + off, r->kvs[0].value, want);
    if (++op->next < op->chunks) {
        int rc = fetch_next(op);
        if (rc != 0) finish(op, rc);
        return;
    }
    char got[PACKAGE_HASH_HEX];
    package_hash(op->data, op->len, got);
    finish(op, strcmp(got, op->hash) == 0 ? 0 : SD_EHASH);
}

/* {"size": n, "chunks": k} with 0 < n <= PACKAGE_MAX_BYTES and k the chunk count of n. */
static int parse_manifest(const store_kv *kv, size_t *size, size_t *chunks) {
    if (!kv->value || kv->value_len == 0 || kv->value_len > MANIFEST_MAX) return SD_EPROTO_STORE;
    json_t *m = json_loadb(kv->value, kv->value_len, 0, NULL);
    json_t *js = json_object_get(m, "size"), *jc = json_object_get(m, "chunks");
    int rc = SD_EPROTO_STORE;
    if (json_is_integer(js) && json_is_integer(jc)) {
        json_int_t s = json_integer_value(js), c = json_integer_value(jc);
        if (s > 0 && s <= PACKAGE_MAX_BYTES && c == (s + PACKAGE_CHUNK_BYTES - 1) / PACKAGE_CHUNK_BYTES) {
            *size = (size_t)s;
            *chunks = (size_t)c;
            rc = 0;
        }
    }
    json_decref(m);
    return rc;
}

static void on_manifest(void *arg, const store_result *r) {
    pkg_op *op = arg;
    if (r->err != 0 || r->nkvs == 0) {
        finish(op, r->err != 0 ? r->err : -ENOENT);
        return;
    }
    int rc = parse_manifest(&r->kvs[0], &op->len, &op->chunks);
    if (rc == 0 && !(op->data = malloc(op->len))) rc = -ENOMEM;
    if (rc == 0) rc = fetch_next(op);
    if (rc != 0) finish(op, rc);
}

int package_store_fetch(store *st, const char *cluster, const char *hash, package_fetch_cb cb, void *arg) {
    if (!cb) return -EINVAL;
    int err;
    pkg_op *op = op_new(st, OP_FETCH, cluster, hash, NULL, arg, &err);
    if (!op) return err;
    op->fetched = cb;
    char key[KEY_CAP + 32];
    manifest_key(op, key, sizeof key);
    int rc = store_get(st, key, on_manifest, op);
    if (rc != 0) {
        op_free(op);
        return rc;
    }
    reg_add(op);
    return 0;
}

/* ---- delete ------------------------------------------------------------------------ */

static void on_deleted(void *arg, const store_result *r) {
    pkg_op *op = arg;
    finish(op, r->err != 0 ? r->err : r->succeeded ? 0 : -EPERM);
}

int package_store_delete(store *st, const char *cluster, const char *hash, const store_cmp *guard,
                         package_done_cb cb, void *arg) {
    int err;
    pkg_op *op = op_new(st, OP_DELETE, cluster, hash, guard, arg, &err);
    if (!op) return err;
    op->done = cb;
    char key[KEY_CAP + 32];
    manifest_key(op, key, sizeof key);
    /* the manifest and the chunks go together: no reader sees a manifest without its chunks */
    store_op ops[2] = {
        {.type = STORE_OP_DEL, .key = key},
        {.type = STORE_OP_DEL_PREFIX, .key = op->prefix},
    };
    store_txn t = {.cmps = op->guarded ? &op->guard : NULL, .ncmps = op->guarded ? 1 : 0, .then = ops, .nthen = 2};
    int rc = store_commit(st, &t, on_deleted, op);
    if (rc != 0) {
        op_free(op);
        return rc;
    }
    reg_add(op);
    return 0;
}
