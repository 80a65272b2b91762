/*
 * reports: the latest counters of every worker, as nodes send them to the
 * leader's API (POST /api/v1/nodes/NODE/report, every
 * node.report.interval.secs). Kept in memory only (never in the store);
 * a new leader starts empty and fills up within one interval. A report is
 * untrusted input: it is checked whole before anything is kept, and only
 * workers that the current assignments place on the reporting node are
 * kept, so memory stays bounded by the cluster's slots.
 * Used by api/routes.c on the loop thread.
 */
#ifndef SD_REPORTS_H
#define SD_REPORTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "master/mstate.h"

typedef struct reports reports;

reports *reports_new(void); /* NULL on allocation failure */
void reports_free(reports *r);
/* Forgets every report (leadership ended). */
void reports_clear(reports *r);

/* Takes node's report body {"node", "workers": [{"topology_id", "port",
 * "state"?, "heartbeat"?: {"task_columns": {"task": [...], "emitted": [...],
 * "acked": [...], "failed": [...], "chained_to": [...]}}}]} (see
 * proto/task_columns.h) received at now (unix seconds);
 * replaces that node's previous report. Returns the number of workers
 * kept, -EINVAL (a message in err: bad JSON, wrong types, negative or
 * oversized numbers, a "node" that is not the path's) or -ENOENT (a node
 * the leader does not know). */
int reports_put(reports *r, mstate *st, const char *node, const void *body, size_t len, int64_t now, char *err,
                size_t errlen);

/* The latest report of worker tid on node:port: {"time", "state"?,
 * "components": {id: {"emitted", "acked", "failed", "chained_into"?,
 * "chained_tasks"?}}} (sums over the worker's tasks of each component;
 * chained_into: the component its tasks run chained into, and how many do),
 * "restarts"?, "last_exit"?, "errors"?} (borrowed), or NULL. */
const json_t *reports_worker(const reports *r, const char *node, const char *tid, int port);
/* When node last reported (unix seconds), 0 if never. */
int64_t reports_node_time(const reports *r, const char *node);

#endif
