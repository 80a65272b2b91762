/*
 * node_report: every node.report.interval.secs, sends the node's workers and
 * their latest heartbeats (node_workers_json, each cut down to the task
 * columns the leader keeps: TCOL_REPORT_MASK) to the leader's HTTP API as
 * POST /api/v1/nodes/<id>/report; a report over master.api.max.body.bytes
 * goes without the counters. The leader's address is read from
 * master/leader in the store. The POST runs on libuv's thread pool with a
 * timeout, one at a time, so a slow or absent leader never blocks the loop;
 * a report that fails is simply replaced by the next one.
 */
#ifndef SD_NODE_REPORT_H
#define SD_NODE_REPORT_H

#include <uv.h>

#include "base/conf.h"
#include "node/node.h"
#include "store/store.h"

typedef struct node_report node_report;

/* NULL on allocation failure. */
node_report *node_report_start(uv_loop_t *loop, store *st, node *nd, const conf *c, const char *node_id);
/* Stops the timer; a POST in flight finishes on its thread and its result
 * is dropped; memory is released once both are done (run the loop). */
void node_report_stop(node_report *r);

#endif
