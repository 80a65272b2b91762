/*
 * views: the JSON bodies of the API's GET answers, built from checked
 * records (records.h) and node reports. Pure functions (no store, no
 * clock: "now" is passed in); used by api/routes.c on the loop thread.
 * Maps are JSON objects: nodes by id, topologies by name, assignments by
 * topology id, masters by id.
 */
#ifndef SD_VIEWS_H
#define SD_VIEWS_H

#include <jansson.h>
#include <stdint.h>

#include "master/reports.h"

/* {"cluster", "leader": {...} | null, "masters", "nodes", "topologies",
 * "slots_total", "slots_used"} */
json_t *view_cluster(const char *cluster, const json_t *leader, json_t *masters, json_t *nodes, json_t *topos,
                     json_t *assigns);
/* {"masters": [{"id", "host", "api", "started", "version", "leader"}]} by id */
json_t *view_masters(json_t *masters, const json_t *leader);
/* {"nodes": [{...the node's record, "last_report", "workers": [{"topology_id",
 * "topology_name", "port", "tasks"}]}]} by id; r may be NULL */
json_t *view_nodes(json_t *nodes, json_t *assigns, const reports *r);
/* {"topologies": [{"name", "id", "status", "workers", "workers_assigned",
 * "submit_time"}]} by name */
json_t *view_topologies(json_t *topos, json_t *assigns);
/* {"name", "id", "status", "package", "submit_time", "kill_deadline"?,
 * "workers": [{"node", "host", "port", "tasks", "state"}], "components":
 * [{"id", "kind", "parallelism", "tasks", "emitted", "acked", "failed"}]}.
 * assign may be NULL; states: "<node>:<port>" -> state text (from the
 * workers/ keys; may be NULL). A worker whose report is older than
 * stale_secs counts as "unknown" unless the store says otherwise. */
json_t *view_topology(const json_t *topo, const json_t *assign, json_t *states, const reports *r, int64_t now,
                      int stale_secs);

#endif
