/*
 * client_leader: finds the leading master's API URL in the cluster store
 * (master/leader, docs/etcd-keys.md), for the client commands. Opens its
 * own loop and etcd store, waits at most timeout_ms, and closes both.
 */
#ifndef SD_CLIENT_LEADER_H
#define SD_CLIENT_LEADER_H

#include <stddef.h>

#include "base/conf.h"

#define CLIENT_URL_MAX 512

/* Writes the leader's "api" URL into url. 0, or a negative code with a
 * message in err: etcd unreachable (SD_EUNAVAILABLE, -ETIMEDOUT), no
 * leader (-ENOENT), a malformed leader key (SD_EPROTO_STORE). */
int client_find_leader(const conf *c, int timeout_ms, char url[CLIENT_URL_MAX], char *err, size_t errlen);

#endif
