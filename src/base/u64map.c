/* u64map: linear probing, deletion by backward shift (no tombstones); see
 * u64map.h. */
#include "base/u64map.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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
    m->len = 0;
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

/* copies the entries into a table of cap slots;
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
        if (!old.keys[i]) continue;
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

u64map_rec *u64map_upsert(u64map *m, uint64_t key, int *created) {
    if ((m->len + 1) * 4 > m->cap * 3 && rehash(m, m->cap * 2) != 0) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = slot_of(key, mask);; i = (i + 1) & mask) {
        if (m->keys[i] == key) {
            *created = 0;
            return &m->recs[i];
        }
        if (m->keys[i] == 0) {
            m->keys[i] = key;
            memset(&m->recs[i], 0, sizeof m->recs[i]);
            m->len++;
            *created = 1;
            return &m->recs[i];
        }
    }
}

/* Backward-shift deletion: the entries after i in its probe run that may
 * live at i move back, so no tombstone is left. A table with a steady
 * churn of random keys (trees begun and completed) otherwise filled with
 * tombstones and was rebuilt every few hundred deletes. */
static void shift_back(u64map *m, size_t i, size_t mask) {
    for (size_t j = (i + 1) & mask; m->keys[j]; j = (j + 1) & mask) {
        size_t home = slot_of(m->keys[j], mask);
        /* j's entry may move to i when its home is not in (i, j] (cyclically) */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays) continue;
        m->keys[i] = m->keys[j];
        m->recs[i] = m->recs[j];
        i = j;
    }
    m->keys[i] = 0;
}

int u64map_take(u64map *m, uint64_t key, u64map_rec *out) {
    size_t mask = m->cap - 1;
    for (size_t i = slot_of(key, mask);; i = (i + 1) & mask) {
        if (m->keys[i] == key) {
            if (out) *out = m->recs[i];
            shift_back(m, i, mask);
            m->len--;
            /* below 1/8 full: half the size (a failed allocation keeps it) */
            if (m->cap > m->min_cap && m->len * 8 < m->cap) rehash(m, m->cap / 2);
            return 1;
        }
        if (m->keys[i] == 0) return 0;
    }
}

int u64map_del(u64map *m, uint64_t key) { return u64map_take(m, key, NULL); }
