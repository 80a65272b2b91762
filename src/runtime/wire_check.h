/*
 * wire_check: the checks a tuple received from another worker passes before
 * it is routed. Everything decoded from the wire is untrusted: the codec
 * only guarantees a well-formed tuple with a known stream id; these checks
 * guarantee that the task ids, the stream and the values are ones this
 * topology could have produced, so that no later array index or system
 * handler (acker, spout completion) sees an impossible value.
 *
 * Called by the transport (loop thread) through transport_config.check; it
 * reads only the runtime's read-only layout, so any thread could call it.
 */
#ifndef SD_WIRE_CHECK_H
#define SD_WIRE_CHECK_H

#include "runtime/runtime.h"
#include "tuple/tuple.h"

/* NULL when t may be delivered; otherwise a static string naming the first
 * violated rule. peer is the worker index of the connection it came on. */
const char *wire_check(const worker_rt *rt, int peer, const sd_tuple *t);

#endif
