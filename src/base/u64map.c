/* u64map: linear probing with tombstones; see u64map.h. */
#include "base/u64map.h"

#include <stdlib.h>
#include <string.h>

#define TOMB UINT64_MAX

static size_t slot_of(uint64_t key, size_t mask) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (size_t)key & mask;
}

static int alloc_table(u64map *m, size_t cap) {
    m->keys = calloc(cap, sizeof *m->keys);
    m->recs = calloc(cap, sizeof *m->recs);
    if (!m->keys || !m->recs) {
        free(m->keys);
        free(m->recs);
        return -1;
    }
    m->cap = cap;
    m->len = m->tombs = 0;
    return 0;
}

int u64map_init(u64map *m, size_t cap_hint) {
    size_t cap = 16;
    while (cap < cap_hint * 2) cap <<= 1;
    if (alloc_table(m, cap) != 0) return -1;
    m->min_cap = cap;
    return 0;
}

void u64map_destroy(u64map *m) {
    free(m->keys);
    free(m->recs);
    memset(m, 0, sizeof *m);
}

u64map_rec *u64map_get(u64map *m, uint64_t key) {
    size_t mask = m->cap - 1;
    for (size_t i = slot_of(key, mask);; i = (i + 1) & mask) {
        if (m->keys[i] == key) return &m->recs[i];
        if (m->keys[i] == 0) return NULL;
    }
}

/* copies the live entries into a table of cap slots (dropping tombstones);
 * on allocation failure the table is left as it was */
static int rehash(u64map *m, size_t cap) {
    u64map old = *m;
    if (alloc_table(m, cap) != 0) {
        *m = old;
        return -1;
    }
    m->min_cap = old.min_cap;
    size_t mask = cap - 1;
    for (size_t i = 0; i < old.cap; i++) {
        if (!old.keys[i] || old.keys[i] == TOMB) continue;
        size_t j = slot_of(old.keys[i], mask);
        while (m->keys[j]) j = (j + 1) & mask;
        m->keys[j] = old.keys[i];
        m->recs[j] = old.recs[i];
        m->len++;
    }
    free(old.keys);
    free(old.recs);
    return 0;
}

static int grow(u64map *m) {
    /* rehash in place when mostly tombstones */
    return rehash(m, m->len * 4 > m->cap ? m->cap * 2 : m->cap);
}

u64map_rec *u64map_upsert(u64map *m, uint64_t key, int *created) {
    if ((m->len + m->tombs + 1) * 4 > m->cap * 3 && grow(m) != 0) return NULL;
    size_t mask = m->cap - 1;
    size_t tomb = SIZE_MAX;
    for (size_t i = slot_of(key, mask);; i = (i + 1) & mask) {
        if (m->keys[i] == key) {
            *created = 0;
            return &m->recs[i];
        }
        if (m->keys[i] == TOMB && tomb == SIZE_MAX) tomb = i;
        if (m->keys[i] == 0) {
            if (tomb != SIZE_MAX) {
                i = tomb;
                m->tombs--;
            }
            m->keys[i] = key;
            memset(&m->recs[i], 0, sizeof m->recs[i]);
            m->len++;
            *created = 1;
            return &m->recs[i];
        }
    }
}

int u64map_del(u64map *m, uint64_t key) {
    size_t mask = m->cap - 1;
    for (size_t i = slot_of(key, mask);; i = (i + 1) & mask) {
        if (m->keys[i] == key) {
            m->keys[i] = TOMB;
            m->len--;
            m->tombs++;
            /* below 1/8 full: half the size (a failed allocation keeps it) */
            if (m->cap > m->min_cap && m->len * 8 < m->cap) rehash(m, m->cap / 2);
            return 1;
        }
        if (m->keys[i] == 0) return 0;
    }
}
