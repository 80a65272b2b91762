/*
 * records: the JSON values of nodes/, topologies/ and assignments/ keys
 * (docs/etcd-keys.md), checked after decoding: what the store holds was
 * written by other processes and is used here as sizes, names and ports.
 * A value that fails a check is refused as a whole (NULL, with the reason);
 * the leader then treats that key as absent. Pure functions, used by the
 * leader's state (mstate.c), the reconciler and the API routes.
 */
#ifndef SD_RECORDS_H
#define SD_RECORDS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define REC_MAX_ID 200           /* node ids, topology names and ids */
#define REC_MAX_SLOTS 1024       /* ports per node */
#define REC_MAX_WORKERS 10000    /* workers per topology */
#define REC_MAX_TASKS (1 << 20)  /* tasks per topology */
#define REC_MAX_COMPONENTS 10000

/* A name usable in a key and a URL path: 1..REC_MAX_ID characters of
 * [A-Za-z0-9._-], not "." or "..". */
bool rec_valid_name(const char *s);

/* nodes/<id>: {"id", "host", "slots": [PORT...], ...}; id must equal the
 * key's last part. Returns the parsed value (new reference) or NULL with
 * a reason in err. */
json_t *rec_node(const char *id, const char *value, size_t len, char *err, size_t errlen);

/* topologies/<name>: {"name", "id", "status", "package", "workers",
 * "ntasks", "conf", "submit_time", "kill_deadline"?, "components"?}. */
json_t *rec_topology(const char *name, const char *value, size_t len, char *err, size_t errlen);

/* assignments/<topology-id>: {"topology_id", "workers": [{"node", "host",
 * "port", "tasks"}], "active", "version", ...}. */
json_t *rec_assignment(const char *tid, const char *value, size_t len, char *err, size_t errlen);

/* Accessors of checked records. */
const char *rec_str(const json_t *rec, const char *key); /* NULL if absent */
long long rec_int(const json_t *rec, const char *key);  /* 0 if absent */

#endif
