/* test_store_sync: synchronous wrappers over an asynchronous store, for unit
 * tests: each runs the loop until the request's callback has run (or 5 s). */
#ifndef SD_TEST_STORE_SYNC_H
#define SD_TEST_STORE_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "store/store.h"

typedef struct ts_kv {
    char *key, *value;
    size_t value_len;
    int64_t create_rev, mod_rev, lease;
} ts_kv;

typedef struct ts_result {
    int err;
    int64_t revision, lease, ttl, deleted;
    bool succeeded;
    size_t nkvs;
    ts_kv *kvs; /* ts_result_clear frees */
} ts_result;

/* Runs loop until *flag or ms pass; returns *flag. */
bool ts_run_until(uv_loop_t *loop, const bool *flag, uint64_t ms);
/* The callback to pass to a store request whose result the test waits for. */
void ts_cb(void *arg, const store_result *r);
/* A request waited for: call the store with ts_cb and &w, then ts_wait. */
typedef struct ts_wait_t {
    bool done;
    ts_result r;
} ts_wait_t;
/* Waits for w; fails the test on timeout; returns &w->r. */
ts_result *ts_wait(uv_loop_t *loop, ts_wait_t *w);
void ts_result_clear(ts_result *r);

/* Shorthands: value of key (malloc'ed) or NULL; err of a put; keys deleted. */
char *ts_get(uv_loop_t *loop, store *s, const char *key);
int ts_put(uv_loop_t *loop, store *s, const char *key, const char *value, int64_t lease, int64_t *rev);
int64_t ts_del(uv_loop_t *loop, store *s, const char *key, bool prefix);

#endif
