/*
 * node_packages: a node's cache of topology packages (cluster mode). An
 * assignment names its package by SHA-256; before the node acts on it, the
 * package must be unpacked under <streamd.local.dir>/packages/<sha256>/.
 * A missing package is fetched from the store, verified against its hash,
 * unpacked into a temporary directory and renamed into place, so a
 * directory under its final name is always complete.
 * Threads: only the node's loop thread.
 */
#ifndef SD_NODE_PACKAGES_H
#define SD_NODE_PACKAGES_H

#include <jansson.h>
#include <uv.h>

#include "base/conf.h"
#include "store/store.h"

typedef struct node_packages node_packages;

/* ready(arg) is called when a package fetch has finished (well or not), so
 * the node reads its assignments again. NULL on error (logged). */
node_packages *node_packages_new(uv_loop_t *loop, store *st, const conf *c, void (*ready)(void *arg), void *arg);

/* The node's prepare hook: 0 with assignment's topology_path pointing into
 * the unpacked package; -EAGAIN while it is being fetched; another negative
 * code when the assignment names no valid package or it failed (logged). An
 * assignment without a "package" is refused: cluster workers run packages. */
int node_packages_prepare(node_packages *p, json_t *assignment);

/* Cancels fetches in flight; no callback runs after this. */
void node_packages_free(node_packages *p);

#endif
