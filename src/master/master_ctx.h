/*
 * master_ctx: the master role's state, shared by its modules: the role's
 * entry (master.c) owns it; election.c, mstate.c, reconcile.c,
 * lifecycle.c, reports.c and api/routes.c read and act on it. Everything
 * here is used on the loop thread only.
 */
#ifndef SD_MASTER_CTX_H
#define SD_MASTER_CTX_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "base/conf.h"
#include "store/store.h"

typedef struct election election;
typedef struct mstate mstate;
typedef struct reports reports;
typedef struct api_server api_server;
typedef struct lease_keeper lease_keeper;
typedef struct gwrite gwrite;
typedef struct life life;

typedef struct master_ctx {
    uv_loop_t *loop;
    const conf *conf;
    store *st;
    const char *cluster;
    char id[256];
    char host[256];
    char api_url[320]; /* "http://HOST:PORT" as others reach this master */
    int64_t started;   /* unix seconds */

    election *el;
    mstate *state;     /* running while leading */
    reports *reports;  /* node reports, while leading */
    life *life;        /* submissions, status changes, kills */
    api_server *api;
    lease_keeper *keeper;
    int64_t lease;

    bool leading;      /* the election said so and the leader state runs */
    uint64_t term;     /* bumped on every start and end of leadership */
    bool stopping;
    gwrite *writes;    /* guarded writes in flight */
    json_t *pending_assign; /* topology id -> true while its assignment write is in flight */
    uv_timer_t sched_timer;
} master_ctx;

/* Runs the reconciler soon (coalescing bursts of changes). master.c. */
void master_reschedule(master_ctx *m);

#endif
