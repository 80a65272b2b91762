/*
 * lifecycle: what the leader does to topologies on request: submission
 * (check the package, store it, create topologies/<name>), activation and
 * deactivation, and kill (status "killing" with a deadline; when it passes,
 * the assignment and the topology key go in one guarded txn, then the
 * package if no other topology uses it). Kill deadlines live in the store,
 * so a new leader finishes kills its predecessor started.
 * Called by api/routes.c (requests) and master.c (state changes,
 * leadership, shutdown), on the loop thread. The package check runs on the
 * libuv thread pool: hashing, unpacking and parsing a large package must
 * not stall the loop.
 */
#ifndef SD_LIFECYCLE_H
#define SD_LIFECYCLE_H

#include <stdbool.h>

#include "master/api/api_server.h"
#include "master/master_ctx.h"

#define LIFE_KILL_WAIT_DEFAULT 30 /* seconds, when kill has no ?wait= */
#define LIFE_KILL_WAIT_MAX 86400

life *life_new(master_ctx *m); /* NULL on allocation failure */

/* POST /api/v1/topologies: answers req (201, 400, 409, 503...). */
void life_submit(life *l, api_request *req);
/* POST .../activate and .../deactivate: answers req. */
void life_set_status(life *l, api_request *req, const char *name, bool active);
/* POST .../kill?wait=SECS: answers req. */
/* Sets (level "debug".."error") or clears (NULL) the log level the
 * topology's workers use now; answers req. */
void life_set_log_level(life *l, api_request *req, const char *name, const char *level);
void life_kill(life *l, api_request *req, const char *name, int wait_secs);

/* The leader state changed: re-arms the kill timer. */
void life_state_changed(life *l);
/* Leadership began or ended: forgets kills in progress of the old term. */
void life_term_changed(life *l);

/* Package checks still running on the thread pool (shutdown waits). */
int life_busy(const life *l);
/* Shutdown: answers 503 to submissions waiting on the store. */
void life_abort(life *l);
/* After store_free: releases l once its timer closed (run the loop). */
void life_free(life *l);

#endif
