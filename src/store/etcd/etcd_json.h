/*
 * etcd_json: the JSON of etcd's v3 gateway. Encodes request bodies (keys and
 * values in base64, int64 fields as strings) and decodes answers into
 * store.h results, checking every field: a malformed answer gives
 * SD_EPROTO_STORE, never a crash. Also maps etcd's error answers
 * ({"error", "message", "code"}) to the project's error codes.
 * Called by etcd_http, etcd_store and etcd_watch. No state, no threads.
 */
#ifndef SD_ETCD_JSON_H
#define SD_ETCD_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* ---- base64 (standard alphabet, padded, as Go's encoding/json) ---------- */

/* Encoded length of n bytes, without the NUL. */
size_t ej_b64_len(size_t n);
/* Writes the encoding of src[0..n) and a NUL into out (ej_b64_len(n) + 1 bytes). */
void ej_b64_encode(const void *src, size_t n, char *out);
/* Decodes text[0..len) into a new buffer (caller frees) with a NUL after
 * the *out_len bytes. SD_EPROTO_STORE on bad text, -ENOMEM. */
int ej_b64_decode(const char *text, size_t len, char **out, size_t *out_len);

/* ---- requests: each returns a new NUL-terminated body (caller frees), NULL on no memory */

/* range over one key, or every key starting with it when prefix */
char *ej_range_req(const char *key, bool prefix);
char *ej_put_req(const char *key, const char *value, size_t value_len, int64_t lease);
char *ej_delete_req(const char *key, bool prefix);
/* NULL also when t holds an unknown compare or op kind */
char *ej_txn_req(const store_txn *t);
char *ej_lease_grant_req(int ttl_secs);
char *ej_lease_id_req(int64_t lease); /* keepalive and revoke */
char *ej_watch_req(const char *prefix, int64_t start_rev);
char *ej_auth_req(const char *user, const char *password);

/* ---- answers ------------------------------------------------------------ */

/* Parses body as a JSON object: SD_EPROTO_STORE when it is not one. */
int ej_parse(const char *body, size_t len, json_t **root);

/* When obj is an etcd error answer, in either shape the gateway uses
 * ({"error": "...", "code": N} for unary calls, {"error": {"grpc_code": N,
 * "message": "..."}} inside streams): true, with the gRPC code and message
 * (message points into obj; "" if absent). */
bool ej_error(const json_t *obj, int *code, const char **msg);
/* The project's code for an etcd error (gRPC code and message). */
int ej_error_code(int grpc_code, const char *msg);
/* Whether an error means the auth token is invalid or expired. */
bool ej_error_is_bad_token(int grpc_code, const char *msg);
/* True when an answer says the member cannot serve now (no leader, gRPC
 * Unavailable): another endpoint may. */
bool ej_error_is_unavailable(int grpc_code, const char *msg);

/* An int64 member (a string of digits, or a JSON integer); absent = 0.
 * SD_EPROTO_STORE on anything else. */
int ej_int64(const json_t *obj, const char *name, int64_t *out);
/* header.revision of an answer; SD_EPROTO_STORE when absent or not positive. */
int ej_header_rev(const json_t *obj, int64_t *rev);

/* Decodes one mvccpb.KeyValue. Strings are new (ej_kv_clear frees them).
 * require_revs: create_revision and mod_revision must be positive. */
int ej_kv(const json_t *obj, store_kv *out, bool require_revs);
void ej_kv_clear(store_kv *kv);
/* Decodes the `kvs` member (absent = none) into a new array. */
int ej_kvs(const json_t *obj, store_kv **out, size_t *n);
void ej_kvs_free(store_kv *kvs, size_t n);

/* The gateway wraps streamed answers (watch, lease keepalive) in
 * {"result": {...}}: the inner object, or obj itself when not wrapped. */
const json_t *ej_unwrap(const json_t *obj);

/* One message of a watch stream, decoded and checked. */
typedef struct ej_watch_msg {
    bool created, canceled;
    int64_t header_rev;      /* 0 when absent (canceled answers omit it) */
    int64_t compact_rev;     /* > 0: the start revision was compacted */
    const char *cancel_reason; /* into the parsed message; "" if none */
    int err_code;            /* gRPC code of an {"error": ...} message, else 0 */
    bool is_error;
    store_event *events;     /* in the order sent */
    store_kv *kvs;           /* events[i].kv == &kvs[i] */
    size_t nevents;
} ej_watch_msg;

/* Decodes root (one parsed line of the stream) into m; ej_watch_msg_clear
 * releases it. SD_EPROTO_STORE on malformed events. */
int ej_watch_msg_decode(const json_t *root, ej_watch_msg *m);
void ej_watch_msg_clear(ej_watch_msg *m);

#endif
