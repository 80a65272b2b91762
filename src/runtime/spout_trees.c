/* spout_trees: a spout's trees in flight by the index in their root; see
 * spout_trees.h. */
#include "runtime/spout_trees.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int spout_trees_init(spout_trees *s, size_t cap_hint) {
    memset(s, 0, sizeof *s);
    size_t cap = cap_hint < 16 ? 16 : cap_hint > SPOUT_TREES_MAX ? SPOUT_TREES_MAX : cap_hint;
    s->e = malloc(cap * sizeof *s->e);
    s->free = malloc(cap * sizeof *s->free);
    if (!s->e || !s->free) {
        spout_trees_destroy(s);
        return -ENOMEM;
    }
    s->cap = s->min_cap = cap;
    return 0;
}

void spout_trees_destroy(spout_trees *s) {
    free(s->e);
    free(s->free);
    memset(s, 0, sizeof *s);
}

/* doubles the room for entries (up to SPOUT_TREES_MAX); 0 or -1 */
static int grow(spout_trees *s) {
    if (s->cap >= SPOUT_TREES_MAX) return -1;
    size_t cap = s->cap * 2 > SPOUT_TREES_MAX ? SPOUT_TREES_MAX : s->cap * 2;
    spout_tree *e = realloc(s->e, cap * sizeof *e);
    if (!e) return -1;
    s->e = e;
    uint32_t *f = realloc(s->free, cap * sizeof *f);
    if (!f) return -1; /* e stays grown: harmless */
    s->free = f;
    s->cap = cap;
    return 0;
}

uint64_t spout_trees_add(spout_trees *s, uint64_t rnd, uint64_t msg_id, int64_t started) {
    size_t i;
    if (s->nfree) {
        i = s->free[--s->nfree];
    } else {
        if (s->used == s->cap && grow(s) != 0) return 0;
        i = s->used++;
    }
    uint64_t root = (rnd & ~(uint64_t)(SPOUT_TREES_MAX - 1)) | (uint64_t)i;
    /* 0 and UINT64_MAX are ids no table may use: flip a random bit */
    if (root == 0 || root == UINT64_MAX) root ^= (uint64_t)SPOUT_TREES_MAX;
    s->e[i].root = root;
    s->e[i].msg_id = msg_id;
    s->e[i].started = started;
    s->len++;
    return root;
}

int spout_trees_take(spout_trees *s, uint64_t root, spout_tree *out) {
    spout_tree *t = spout_trees_get(s, root);
    if (!t) return 0;
    if (out) *out = *t;
    t->root = 0;
    s->free[s->nfree++] = (uint32_t)(t - s->e);
    s->len--;
    if (s->len == 0 && s->cap > 4 * s->min_cap) { /* a burst is over: give its memory back */
        spout_tree *e = realloc(s->e, s->min_cap * sizeof *e);
        uint32_t *f = realloc(s->free, s->min_cap * sizeof *f);
        if (e) s->e = e;
        if (f) s->free = f;
        s->cap = s->min_cap; /* a failed shrink leaves an array larger than that: harmless */
        s->used = s->nfree = 0;
    }
    return 1;
}
