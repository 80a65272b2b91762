/*
 * u64map: an open-addressing hash map from a non-zero 64-bit id (a tuple
 * tree's root id) to a small fixed record. Used by one thread at a time:
 * the spout executor's pending trees and the acker's XOR table (through
 * agemap.h). The table grows at 3/4 load and shrinks by half once below
 * 1/8 (never below its initial size), so a burst does not hold its memory
 * for the life of the task. A record pointer is valid until the next
 * upsert or delete.
 */
#ifndef SD_U64MAP_H
#define SD_U64MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct u64map_rec {
    uint64_t a;     /* spout: msg id; acker: running XOR */
    int64_t t;      /* when the entry was created (ns) */
    int32_t i;      /* acker: spout task */
    int32_t flags;
} u64map_rec;

typedef struct u64map {
    uint64_t *keys; /* 0 = empty slot, UINT64_MAX... never used as key */
    u64map_rec *recs;
    size_t cap, len;
    size_t min_cap; /* the initial size: never shrunk below it */
} u64map;

int u64map_init(u64map *m, size_t cap_hint);  /* 0 or -1; room for cap_hint before growing */
void u64map_destroy(u64map *m);
/* the record for key, or NULL */
u64map_rec *u64map_get(u64map *m, uint64_t key);
/* the record for key, inserted zeroed when absent (*created set); NULL on OOM */
u64map_rec *u64map_upsert(u64map *m, uint64_t key, int *created);
/* removes key; 1 if it was there (the table may shrink) */
int u64map_del(u64map *m, uint64_t key);
/* removes key and copies its record to out (may be NULL): one probe where
 * get then del take two. 1 if it was there, else 0 (out untouched) */
int u64map_take(u64map *m, uint64_t key, u64map_rec *out);

#endif
