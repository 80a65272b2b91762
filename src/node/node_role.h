/*
 * node_role: `streamd --role=node`: a node (node.h) on etcd, for as long as
 * the process runs: registers, keeps its lease, runs the workers assigned
 * to it, reports their counters to the leader, and stops them gracefully on
 * SIGTERM or when its lease may be gone.
 */
#ifndef SD_NODE_ROLE_H
#define SD_NODE_ROLE_H

#include "base/conf.h"

/* c: the effective configuration; exe_path: this executable (run as the
 * workers). Returns 0 after a clean stop, 1 on a fatal error (logged). */
int node_role_run(const conf *c, const char *exe_path);

#endif
