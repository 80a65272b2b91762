/*
 * election: leader election among masters on the store's master/leader key.
 * While it holds a lease, a master campaigns with a txn that puts the key
 * (with its lease) only if the key does not exist; when that fails it
 * watches the key and campaigns again once the key is deleted. The winner
 * remembers the key's create revision: every write the leader makes is a
 * txn comparing it (election_guard), so a deposed leader can never
 * overwrite its successor's state. Losing the lease (election_set_lease
 * with 0 or a new lease) ends leadership at once, before the store says so.
 * Every master, leader or not, also learns who leads (the key's value), so
 * a standby can point API clients at the leader.
 * Called by the master role (master.c); runs on the store's loop thread.
 */
#ifndef SD_ELECTION_H
#define SD_ELECTION_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "store/store.h"

typedef struct election election;

/* leader true: this master now leads (election_guard works); false: it
 * no longer does. Runs on the loop, never inside an election_* call. */
typedef void (*election_cb)(void *arg, bool leader);

typedef struct election_options {
    const char *cluster;
    const char *id;   /* this master's id */
    const char *host; /* put in the leader record */
    const char *api;  /* "http://HOST:PORT" */
    int retry_ms;     /* wait after a store error (0 = 1000) */
} election_options;

/* Strings are copied. Starts following the leader key at once; campaigns
 * once a lease is given. NULL on allocation failure or a bad option. */
election *election_new(uv_loop_t *loop, store *st, const election_options *o, election_cb cb, void *arg);

/* The lease this master's keys live on, 0 = none. A different lease ends
 * leadership (cb(false)) and campaigns again with the new one. */
void election_set_lease(election *e, int64_t lease);

bool election_is_leader(const election *e);
/* The create revision of this master's leader key; 0 when not leading. */
int64_t election_guard_rev(const election *e);
/* Fills *cmp with the guard compare (create_revision(master/leader) ==
 * the revision this master won with); -EPERM when not leading. The key
 * string lives as long as e. */
int election_guard(const election *e, store_cmp *cmp);
/* The leader record last seen ({"id","host","api","since"}; borrowed),
 * NULL when no leader is known. */
const json_t *election_leader(const election *e);
/* The leader's "api" URL, or NULL. */
const char *election_leader_api(const election *e);

/* Stops: no callback runs after this. Does not touch the leader key (the
 * lease's end removes it). Releases e once its timer closed (run the loop). */
void election_free(election *e);

#endif
