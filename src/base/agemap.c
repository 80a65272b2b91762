/* agemap: two generations of u64map; see agemap.h. */
#include "base/agemap.h"

#include <errno.h>
#include <string.h>

int agemap_init(agemap *m, size_t cap_hint, int64_t period_ns, int64_t now) {
    memset(m, 0, sizeof *m);
    if (u64map_init(&m->cur, cap_hint) != 0) return -ENOMEM;
    if (u64map_init(&m->prev, cap_hint) != 0) {
        u64map_destroy(&m->cur);
        return -ENOMEM;
    }
    m->cap_hint = cap_hint;
    m->period_ns = period_ns;
    m->rotated_ns = now;
    return 0;
}

void agemap_destroy(agemap *m) {
    if (m->cur.slots) u64map_destroy(&m->cur);
    if (m->prev.slots) u64map_destroy(&m->prev);
}

u64map_rec *agemap_get(agemap *m, uint64_t key) {
    u64map_rec *r = u64map_get(&m->cur, key);
    return r ? r : (m->prev.len ? u64map_get(&m->prev, key) : NULL);
}

u64map_rec *agemap_upsert(agemap *m, uint64_t key, int *created) {
    /* the older generation is mostly empty (its trees completed): one probe */
    if (!m->prev.len) return u64map_upsert(&m->cur, key, created);
    u64map_rec *r = u64map_get(&m->cur, key);
    if (!r && m->prev.len) r = u64map_get(&m->prev, key);
    if (r) { /* an entry stays in the generation it was made in, so that it ages */
        *created = 0;
        return r;
    }
    return u64map_upsert(&m->cur, key, created);
}

int agemap_del(agemap *m, uint64_t key) {
    if (u64map_del(&m->cur, key)) return 1;
    return m->prev.len ? u64map_del(&m->prev, key) : 0;
}

void agemap_del_rec(agemap *m, u64map_rec *rec) {
    u64map_del_rec(u64map_holds(&m->cur, rec) ? &m->cur : &m->prev, rec);
}

size_t agemap_expire(agemap *m, int64_t now) {
    if (now - m->rotated_ns < m->period_ns) return 0;
    u64map fresh;
    if (u64map_init(&fresh, m->cap_hint) != 0) return 0;
    size_t dropped = m->prev.len;
    u64map_destroy(&m->prev);
    m->prev = m->cur;
    m->cur = fresh;
    m->rotated_ns = now;
    return dropped;
}

size_t agemap_len(const agemap *m) { return m->cur.len + m->prev.len; }
