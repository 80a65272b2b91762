/*
 * u64map: an open-addressing hash map from a non-zero 64-bit id (a tuple
 * tree's root id) to a small fixed record. Used by one thread at a time:
 * the spout executor's pending trees and the acker's XOR table (through
 * agemap.h). The table grows at 3/4 load and shrinks by half once below
 * 1/8 (never below its initial size), so a burst does not hold its memory
 * for the life of the task. A key and its record share a 32-byte slot, so
 * a probe of a random key (a tree's root) touches one cache line, not one
 * in a key array and one in a record array. A record pointer is valid
 * until the next upsert or delete.
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

typedef struct u64map_slot {
    uint64_t key;   /* 0 = empty slot; 0 and UINT64_MAX are never keys */
    u64map_rec rec;
} u64map_slot;

typedef struct u64map {
    u64map_slot *slots; /* [cap], 32-byte aligned */
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
/* removes the entry whose record rec is (a pointer from get or upsert,
 * still valid): no probe at all */
void u64map_del_rec(u64map *m, u64map_rec *rec);
/* Starts loading the slot where a probe for key begins: a caller that
 * knows its next keys (a packet of acking records) hides the cache miss
 * of each behind the work on the ones before. */
static inline size_t u64map_home(uint64_t key, size_t mask) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (size_t)key & mask;
}
/* A load of the cache line at p that nothing waits for. GCC 12 drops a
 * __builtin_prefetch inlined through a function taking a const pointer
 * (dead code elimination), so x86 gets the instruction itself. */
static inline void u64map_prefetch_addr(const void *p) {
#if defined(__x86_64__) || defined(__i386__)
    __asm__ volatile("prefetcht0 %0" : : "m"(*(const char *)p));
#else
    __builtin_prefetch(p, 1);
#endif
}
static inline void u64map_prefetch(const u64map *m, uint64_t key) {
    u64map_prefetch_addr(&m->slots[u64map_home(key, m->cap - 1)]);
}
/* does rec point into m's table? */
static inline int u64map_holds(const u64map *m, const u64map_rec *rec) {
    const char *p = (const char *)rec;
    return m->slots && p >= (const char *)m->slots && p < (const char *)(m->slots + m->cap);
}

#endif
