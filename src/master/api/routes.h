/*
 * api_routes: the master's HTTP API endpoints (under /api/v1/), the handler
 * given to api_server_start. Any master answers GET cluster and masters;
 * the leader answers everything else, a standby redirects it to the
 * leader's API (503 while no leader is known). Answers that need the
 * store (masters, a standby's cluster view, worker states) are given when
 * the read completes. Runs on the loop thread.
 *
 *   GET  cluster | masters | nodes | topologies | topologies/NAME
 *   POST topologies                     (body: package; X-Streamd-Package-Sha256)
 *   POST topologies/NAME/activate | deactivate | kill?wait=SECS
 *   POST nodes/NODE/report              (a node's worker counters)
 */
#ifndef SD_ROUTES_H
#define SD_ROUTES_H

#include "master/api/api_server.h"
#include "master/master_ctx.h"

typedef struct api_routes api_routes;

api_routes *api_routes_new(master_ctx *m); /* NULL on allocation failure */
/* The api_handler: arg is the routes. */
void api_routes_handle(void *arg, api_request *req);
/* Shutdown: answers 503 to every request waiting on the store. */
void api_routes_abort(api_routes *r);
void api_routes_free(api_routes *r);

#endif
