/* ackpkt: building and checking packets of acking records; see ackpkt.h. */
#include "tuple/ackpkt.h"

#include "tuple/tuple_pool.h"

void ackpkt_put(uint8_t *p, const ackrec *r) {
    uint64_t root = htole64(r->root), xor = htole64(r->xor);
    uint32_t task = htole32((uint32_t)r->task), kind = htole32(r->kind);
    memcpy(p, &root, 8);
    memcpy(p + 8, &xor, 8);
    memcpy(p + 16, &task, 4);
    memcpy(p + 20, &kind, 4);
}

sd_tuple *ackpkt_new(struct tuple_pool *pool, const ackrec *recs, size_t n) {
    if (n == 0 || n > ACKPKT_MAX_RECS) return NULL;
    uint32_t len = (uint32_t)(n * ACKPKT_REC_BYTES);
    sd_tuple *t = tuple_alloc_in(pool, 1, 0, len);
    if (!t) return NULL;
    uint8_t *p = (uint8_t *)tuple_data(t);
    for (size_t i = 0; i < n; i++) ackpkt_put(p + i * ACKPKT_REC_BYTES, &recs[i]);
    tuple_values(t)[0] = sd_bytes(p, len);
    return t;
}

int ackpkt_count(const sd_tuple *t) {
    if (t->nvalues != 1 || tuple_values(t)[0].type != SD_BYTES) return -1;
    uint32_t len = tuple_values(t)[0].v.s.len;
    if (len == 0 || len % ACKPKT_REC_BYTES != 0 || len / ACKPKT_REC_BYTES > ACKPKT_MAX_RECS) return -1;
    return (int)(len / ACKPKT_REC_BYTES);
}

int ackpkt_check(const sd_tuple *t, unsigned kinds, int init_task) {
    int n = ackpkt_count(t);
    if (n < 0) return ACKPKT_ESHAPE;
    for (int i = 0; i < n; i++) {
        ackrec r;
        ackpkt_get(t, i, &r);
        if (r.kind < ACKREC_INIT || r.kind > ACKREC_DONE_FAIL || !(kinds & (1u << r.kind))) return ACKPKT_EKIND;
        if (r.root == 0 || r.root == UINT64_MAX) return ACKPKT_EROOT;
        if (r.kind == ACKREC_INIT && r.task != init_task) return ACKPKT_ETASK;
    }
    return ACKPKT_OK;
}
