/* ack_stage: acking records held per destination for one slice; see
 * ack_stage.h. */
#include "runtime/ack_stage.h"

#include <stdlib.h>

_Static_assert((ACK_STAGE_INDEX & (ACK_STAGE_INDEX - 1)) == 0, "the root index is a power of two");
_Static_assert(ACKPKT_MAX_RECS <= UINT16_MAX, "record numbers fit the index");

void ack_stage_init(ack_stage *s, ack_stage_send_fn send, void *arg) {
    memset(s, 0, sizeof *s);
    s->send = send;
    s->arg = arg;
}

void ack_stage_destroy(ack_stage *s) {
    for (int i = 0; i < ACK_STAGE_SLOTS; i++) free(s->slots[i]);
    memset(s, 0, sizeof *s);
}

static void send_slot(ack_stage *s, ack_slot *sl) {
    if (sl->n) s->send(s->arg, sl->src, sl->dest, sl->stream, sl->recs, sl->n);
    sl->n = 0;
    /* a new generation empties the index without clearing it (wrapping
     * after 2^32 sends could only make a probe longer: hits are checked) */
    sl->gen++;
}

/* the slot for (src, dest, stream), taken when none holds it; NULL when out of memory */
static ack_slot *slot_for(ack_stage *s, void *src, int dest, int stream) {
    ack_slot *sl = s->slots[s->last];
    if (s->last < s->nslots && sl->src == src && sl->dest == dest && sl->stream == stream) return sl;
    for (int i = 0; i < s->nslots; i++) {
        sl = s->slots[i];
        if (sl->src == src && sl->dest == dest && sl->stream == stream) {
            s->last = i;
            return sl;
        }
    }
    int i = s->nslots;
    if (i == ACK_STAGE_SLOTS) { /* all in use: the victim goes out now */
        i = s->victim;
        s->victim = (s->victim + 1) % ACK_STAGE_SLOTS;
        send_slot(s, s->slots[i]);
    } else {
        if (!s->slots[i]) {
            s->slots[i] = malloc(sizeof *s->slots[i]);
            if (!s->slots[i]) return NULL;
            memset(s->slots[i]->index_gen, 0, sizeof s->slots[i]->index_gen);
            s->slots[i]->gen = 1;
            s->slots[i]->n = 0;
        }
        s->nslots++;
    }
    sl = s->slots[i];
    sl->src = src;
    sl->dest = dest;
    sl->stream = stream;
    s->last = i;
    return sl;
}

static size_t index_of(uint64_t root) {
    return (size_t)((root * 0x9E3779B97F4A7C15ULL) >> 55) & (ACK_STAGE_INDEX - 1);
}

/* an ACK for a root this slot holds an ACK for: XORed into it; 1 if so,
 * else 0 after noting where r will go (record n) */
static int merge_ack(ack_slot *sl, const ackrec *r) {
    for (size_t h = index_of(r->root);; h = (h + 1) & (ACK_STAGE_INDEX - 1)) {
        if (sl->index_gen[h] != sl->gen) {
            sl->index_gen[h] = sl->gen;
            sl->index_rec[h] = (uint16_t)sl->n;
            return 0;
        }
        ackrec *have = &sl->recs[sl->index_rec[h]];
        if (sl->index_rec[h] < sl->n && have->root == r->root && have->kind == ACKREC_ACK) {
            have->xor ^= r->xor;
            return 1;
        }
    }
}

void ack_stage_add(ack_stage *s, void *src, int dest, int stream, const ackrec *r) {
    ack_slot *sl = slot_for(s, src, dest, stream);
    if (!sl) {
        s->send(s->arg, src, dest, stream, r, 1);
        return;
    }
    if (sl->n == ACKPKT_MAX_RECS) send_slot(s, sl);
    if (r->kind == ACKREC_ACK && merge_ack(sl, r)) return;
    sl->recs[sl->n++] = *r;
}

void ack_stage_flush(ack_stage *s) {
    for (int i = 0; i < s->nslots; i++) send_slot(s, s->slots[i]);
    s->nslots = 0;
    s->last = 0;
    s->victim = 0;
}

size_t ack_stage_held(const ack_stage *s) {
    size_t n = 0;
    for (int i = 0; i < s->nslots; i++) n += s->slots[i]->n;
    return n;
}
