/*
 * agemap: a u64map whose entries are forgotten after an age, without
 * scanning. Used by the acker for its XOR table (one entry per tuple tree),
 * where a tree not completed within the message timeout has been failed by
 * its spout already and only takes room.
 *
 * Two generations: new entries go into the current one; every period the
 * previous generation is dropped whole and the current one becomes the
 * previous. An entry is therefore kept at least one period and at most two
 * (plus the caller's interval between agemap_expire calls), and expiring
 * costs freeing one table instead of a scan of every slot.
 *
 * Threads: one at a time (the acker's executor thread).
 */
#ifndef SD_AGEMAP_H
#define SD_AGEMAP_H

#include <stddef.h>
#include <stdint.h>

#include "base/u64map.h"

typedef struct agemap {
    u64map cur, prev;
    size_t cap_hint;      /* initial size of each new generation */
    int64_t period_ns;
    int64_t rotated_ns;   /* when cur became the current generation */
} agemap;

/* 0, or -ENOMEM; now is the clock agemap_expire is later called with */
int agemap_init(agemap *m, size_t cap_hint, int64_t period_ns, int64_t now);
void agemap_destroy(agemap *m);
/* the record for key in either generation, or NULL; valid until the next
 * change of the map */
u64map_rec *agemap_get(agemap *m, uint64_t key);
/* the record for key, inserted zeroed into the current generation when in
 * neither (*created set); NULL when out of memory */
u64map_rec *agemap_upsert(agemap *m, uint64_t key, int *created);
/* starts loading where key would be in the current generation (u64map_prefetch) */
static inline void agemap_prefetch(const agemap *m, uint64_t key) { u64map_prefetch(&m->cur, key); }
/* removes key; 1 if it was there */
int agemap_del(agemap *m, uint64_t key);
/* removes the entry of rec (from agemap_get or agemap_upsert, still valid) */
void agemap_del_rec(agemap *m, u64map_rec *rec);
/* Once a period has passed since the last rotation: drops the previous
 * generation, returns how many entries it still held (0 otherwise, or when
 * a new table cannot be allocated: then nothing is dropped). */
size_t agemap_expire(agemap *m, int64_t now);
size_t agemap_len(const agemap *m);

#endif
