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

/* The (peer, source, destination, stream, value count, flags) of data
 * tuples that passed: a tuple with the same ones passes again without the
 * rules, which look at nothing else of a user stream's tuple (the layout
 * never changes while a worker runs). Acking packets are always checked
 * whole: their records are in their values. Direct-mapped; zeroed when
 * made; owned by the thread that checks (the loop thread). */
#define WIRE_MEMO_SLOTS 64
typedef struct wire_memo {
    uint64_t tasks[WIRE_MEMO_SLOTS]; /* source | destination << 32 */
    uint64_t rest[WIRE_MEMO_SLOTS];  /* stream | values << 16 | flags << 32 | (peer + 1) << 48; 0: empty */
} wire_memo;
/* wire_check, through m. Inline: once per tuple received. */
static inline const char *wire_check_memo(const worker_rt *rt, wire_memo *m, int peer, const sd_tuple *t) {
    uint64_t tasks = (uint32_t)t->src_task | (uint64_t)(uint32_t)t->dest_task << 32;
    uint64_t rest = t->stream_id | (uint64_t)t->nvalues << 16 | (uint64_t)t->flags << 32 |
                    (uint64_t)(uint16_t)(peer + 1) << 48;
    unsigned slot = (unsigned)(((tasks ^ (rest * 0xff51afd7ed558ccdull)) * 0x9e3779b97f4a7c15ull) >> 58);
    _Static_assert(WIRE_MEMO_SLOTS == 64, "six bits of the hash");
    if (m->tasks[slot] == tasks && m->rest[slot] == rest) return NULL;
    const char *why = wire_check(rt, peer, t);
    if (!why && rt->stream_kind[t->stream_id] == STREAM_USER) {
        m->tasks[slot] = tasks;
        m->rest[slot] = rest;
    }
    return why;
}

#endif
