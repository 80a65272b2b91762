/* u64map: linear probing, deletion by backward shift (no tombstones); see
 * u64map.h. */
#include "base/u64map.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(u64map_slot) == 32, "a slot is a half cache line");

static size_t slot_of(uint64_t key, size_t mask) { return u64map_home(key, mask); }

static int alloc_table(u64map *m, size_t cap) {
    void *p = NULL;
    if (posix_memalign(&p, 64, cap * sizeof(u64map_slot)) != 0) return -1;
    memset(p, 0, cap * sizeof(u64map_slot));
    m->slots = p;
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
    free(m->slots);
    memset(m, 0, sizeof *m);
}

u64map_rec *u64map_get(u64map *m, uint64_t key) {
    size_t mask = m->cap - 1;
    for (size_t i = slot_of(key, mask);; i = (i + 1) & mask) {
        if (m->slots[i].key == key) return &m->slots[i].rec;
        if (m->slots[i].key == 0) return NULL;
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
        if (!old.slots[i].key) continue;
        size_t j = slot_of(old.slots[i].key, mask);
        while (m->slots[j].key) j = (j + 1) & mask;
        m->slots[j] = old.slots[i];
        m->len++;
    }
    free(old.slots);
    return 0;
}

u64map_rec *u64map_upsert(u64map *m, uint64_t key, int *created) {
    if ((m->len + 1) * 4 > m->cap * 3 && rehash(m, m->cap * 2) != 0) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = slot_of(key, mask);; i = (i + 1) & mask) {
        u64map_slot *s = &m->slots[i];
        if (s->key == key) {
            *created = 0;
            return &s->rec;
        }
        if (s->key == 0) {
            s->key = key;
            memset(&s->rec, 0, sizeof s->rec);
            m->len++;
            *created = 1;
            return &s->rec;
        }
    }
}

/* Backward-shift deletion: the entries after i in its probe run that may
 * live at i move back, so no tombstone is left. A table with a steady
 * churn of random keys (trees begun and completed) otherwise filled with
 * tombstones and was rebuilt every few hundred deletes. Then, below 1/8
 * full: half the size (a failed allocation keeps it). */
static void delete_at(u64map *m, size_t i) {
    size_t mask = m->cap - 1;
    for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        size_t home = slot_of(m->slots[j].key, mask);
        /* j's entry may move to i when its home is not in (i, j] (cyclically) */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays) continue;
        m->slots[i] = m->slots[j];
        i = j;
    }
    m->slots[i].key = 0;
    m->len--;
    if (m->cap > m->min_cap && m->len * 8 < m->cap) rehash(m, m->cap / 2);
}

int u64map_take(u64map *m, uint64_t key, u64map_rec *out) {
    size_t mask = m->cap - 1;
    for (size_t i = slot_of(key, mask);; i = (i + 1) & mask) {
        if (m->slots[i].key == key) {
            if (out) *out = m->slots[i].rec;
            delete_at(m, i);
            return 1;
        }
        if (m->slots[i].key == 0) return 0;
    }
}

int u64map_del(u64map *m, uint64_t key) { return u64map_take(m, key, NULL); }

void u64map_del_rec(u64map *m, u64map_rec *rec) {
    size_t i = (size_t)((u64map_slot *)((char *)rec - offsetof(u64map_slot, rec)) - m->slots);
    delete_at(m, i);
}
