/* ack_stage: acking records held per destination for one slice; see
 * ack_stage.h. */
#include "runtime/ack_stage.h"

#include <string.h>

void ack_stage_init(ack_stage *s, ack_stage_send_fn send, void *arg) {
    memset(s, 0, sizeof *s);
    s->send = send;
    s->arg = arg;
}

void ack_stage_destroy(ack_stage *s) {
    s->nslots = 0;
    s->cur = NULL;
}

static void send_slot(ack_stage *s, ack_slot *sl) {
    if (sl->n) s->send(s->arg, sl->src, sl->dest, sl->stream, sl->recs, sl->n);
    sl->n = 0;
}

void ack_stage_add_slow(ack_stage *s, void *src, int dest, int stream, const ackrec *r) {
    ack_slot *sl = NULL;
    for (int i = 0; i < s->nslots; i++) {
        ack_slot *x = &s->slots[i];
        if (x->src == src && x->dest == dest && x->stream == stream) {
            sl = x;
            break;
        }
    }
    if (!sl) {
        if (s->nslots == ACK_STAGE_SLOTS) { /* all in use: the victim goes out now */
            sl = &s->slots[s->victim];
            s->victim = (s->victim + 1) % ACK_STAGE_SLOTS;
            send_slot(s, sl);
        } else {
            sl = &s->slots[s->nslots++];
        }
        sl->src = src;
        sl->dest = dest;
        sl->stream = stream;
        sl->n = 0;
    } else if (sl->n == ACK_STAGE_RECS) {
        send_slot(s, sl);
    } else if (r->kind == ACKREC_ACK && sl->n && sl->recs[sl->n - 1].kind == ACKREC_ACK &&
               sl->recs[sl->n - 1].root == r->root) {
        sl->recs[sl->n - 1].xor ^= r->xor;
        s->cur = sl;
        return;
    }
    sl->recs[sl->n++] = *r;
    s->cur = sl;
}

void ack_stage_flush(ack_stage *s) {
    for (int i = 0; i < s->nslots; i++) send_slot(s, &s->slots[i]);
    s->nslots = 0;
    s->victim = 0;
    s->cur = NULL;
}

size_t ack_stage_held(const ack_stage *s) {
    size_t n = 0;
    for (int i = 0; i < s->nslots; i++) n += s->slots[i].n;
    return n;
}
