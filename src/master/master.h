/*
 * master: `streamd --role=master` (nimbus). Registers under masters/<id>,
 * campaigns for master/leader, and while leader: watches nodes/ and
 * topologies/, schedules, writes assignments (every write guarded by its
 * leader key's revision), stores packages, and serves the HTTP API; a
 * standby redirects API requests to the leader.
 */
#ifndef SD_MASTER_H
#define SD_MASTER_H

#include "base/conf.h"

/* Runs until SIGINT/SIGTERM. c is the effective configuration (defaults <
 * --config < -c). Returns 0, or 1 on a fatal error (logged). */
int master_run(const conf *c);

#endif
