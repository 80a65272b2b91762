/*
 * spout_trees: a spout task's tuple trees in flight, found by root id
 * without hashing. A root id carries the index of its tree's entry in its
 * low SPOUT_TREES_INDEX_BITS bits and random bits above them, so that
 * tracking a tree takes a free entry and completing it goes straight to
 * its entry (checked against the whole root: a verdict for a tree already
 * timed out finds another root there, or none). Free entries are reused
 * last-freed first, so the entries in use stay few and warm in the cache
 * even though root ids are random.
 *
 * Used by the spout's slice and emit.c (spout_track) and peer_down.c, all
 * on the pool thread running the spout task, which owns it.
 */
#ifndef SD_SPOUT_TREES_H
#define SD_SPOUT_TREES_H

#include <stddef.h>
#include <stdint.h>

#include "base/u64map.h"

/* a spout task tracks at most 2^24 trees at once (the most
 * topology.max.spout.pending allows); the other 40 bits are random */
#define SPOUT_TREES_INDEX_BITS 24
#define SPOUT_TREES_MAX ((size_t)1 << SPOUT_TREES_INDEX_BITS)
_Static_assert(SPOUT_TREES_INDEX_BITS <= 32, "a root's top 32 bits are random (emit_acker_task)");

typedef struct spout_tree {
    uint64_t root;   /* 0: free */
    uint64_t msg_id;
    int64_t started; /* ns */
} spout_tree;

typedef struct spout_trees {
    spout_tree *e;   /* [cap] */
    uint32_t *free;  /* [cap]: indexes of free entries below used, a stack */
    size_t nfree;
    size_t used;     /* entries ever handed out: e[used..cap) never were */
    size_t cap, len; /* len: trees tracked */
    size_t min_cap;  /* the initial room, returned to once a burst is over */
} spout_trees;

int spout_trees_init(spout_trees *s, size_t cap_hint); /* 0 or -ENOMEM */
void spout_trees_destroy(spout_trees *s);
/* Tracks a new tree for msg_id started at started, with a root made from
 * random bits rnd: the root (never 0 nor UINT64_MAX), or 0 when out of
 * memory or at SPOUT_TREES_MAX trees (nothing tracked). */
uint64_t spout_trees_add(spout_trees *s, uint64_t rnd, uint64_t msg_id, int64_t started);
/* Stops tracking root, copying its entry to out (may be NULL): 1 if it was
 * tracked, else 0. Once no tree is left, a table grown by a burst shrinks
 * back to its initial room. */
int spout_trees_take(spout_trees *s, uint64_t root, spout_tree *out);
/* The entry of tree root, or NULL when it is not tracked. */
static inline spout_tree *spout_trees_get(spout_trees *s, uint64_t root) {
    size_t i = (size_t)(root & (SPOUT_TREES_MAX - 1));
    return i < s->used && s->e[i].root == root && root ? &s->e[i] : NULL;
}
/* Starts loading the entry of root (a verdict to handle soon). */
static inline void spout_trees_prefetch(const spout_trees *s, uint64_t root) {
    size_t i = (size_t)(root & (SPOUT_TREES_MAX - 1));
    if (i < s->used) u64map_prefetch_addr(&s->e[i]);
}
#endif
