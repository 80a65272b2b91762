/*
 * lease_keeper: keeps one lease alive for its owner (see lease_keeper.h).
 * A 250 ms tick drives everything: a keepalive every ttl/3 while the lease
 * is held (one request in flight at a time), the deadline check (no renewal
 * that was *sent* within ttl - margin: the store may expire the lease any
 * moment, so the owner is told now), and grants after a loss with backoff.
 * Renewals count from when they were sent, not answered, so a slow store
 * can only make the keeper give up earlier, never later than the store.
 * A store whose every endpoint refuses connections is down for everyone: it
 * expires no lease meanwhile, and etcd restores every lease's full TTL when
 * it comes back. So a refusal counts as a renewal (as of when the request
 * was sent): the owner keeps its lease through an outage of the store, while
 * silence (a cut network) still ends it in time.
 */
#include "store/lease_keeper.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#define TICK_MS 250
#define REGRANT_MIN_MS 500
#define REGRANT_MAX_MS 5000
#define RETRY_MS 500 /* a failed keepalive is sent again after this */

struct lease_keeper {
    uv_loop_t *loop;
    store *st;
    int ttl_secs;
    uint64_t margin_ms;
    lease_keeper_cb cb;
    void *arg;
    uv_timer_t tick;
    int64_t lease;         /* 0 while none */
    uint64_t renewed_at;   /* uv_now() when the last successful renewal (or the grant) was sent */
    uint64_t sent_at;      /* uv_now() when the request in flight was sent */
    uint64_t next_try;     /* no grant before this (backoff) */
    int64_t ka_lease;      /* the lease the keepalive in flight is for */
    uint64_t backoff_ms;
    bool in_flight;
    int last_err;
};

static void lost(lease_keeper *k, int err) {
    int64_t old = k->lease;
    /* given up without the store's word: make sure the old lease (and the
     * keys under it, such as a leader key) goes, rather than linger for its TTL */
    if (old && err != SD_ELEASE_LOST) store_lease_revoke(k->st, old, NULL, NULL);
    k->lease = 0;
    k->backoff_ms = REGRANT_MIN_MS;
    k->next_try = uv_now(k->loop) + k->backoff_ms;
    if (old) k->cb(k->arg, old, err);
}

static void on_keepalive(void *arg, const store_result *r) {
    lease_keeper *k = arg;
    k->in_flight = false;
    if (k->ka_lease != k->lease || !k->lease) return; /* answer for a lease already given up */
    if (r->err == 0) {
        k->renewed_at = k->sent_at;
        k->last_err = 0;
    } else if (r->err == -ECONNREFUSED) {
        /* every endpoint refused: the store is down, so no lease can expire
         * before it is back, and then it restores every lease's full TTL.
         * As of this answer the lease is as good as renewed. */
        k->renewed_at = k->sent_at;
        k->last_err = r->err;
    } else {
        k->last_err = r->err;
        if (r->err == SD_ELEASE_LOST) lost(k, r->err);
        /* other errors: the deadline check decides; the next tick retries */
    }
}

static void on_grant(void *arg, const store_result *r) {
    lease_keeper *k = arg;
    k->in_flight = false;
    if (r->err != 0 || r->lease <= 0) {
        k->last_err = r->err ? r->err : SD_EPROTO_STORE;
        k->next_try = uv_now(k->loop) + k->backoff_ms;
        k->backoff_ms = k->backoff_ms * 2 > REGRANT_MAX_MS ? REGRANT_MAX_MS : k->backoff_ms * 2;
        return;
    }
    k->lease = r->lease;
    k->renewed_at = k->sent_at;
    k->last_err = 0;
    k->cb(k->arg, k->lease, 0);
}

static void on_tick(uv_timer_t *t) {
    lease_keeper *k = t->data;
    uint64_t now = uv_now(k->loop), ttl_ms = (uint64_t)k->ttl_secs * 1000;
    if (k->lease) {
        if (now - k->renewed_at + k->margin_ms >= ttl_ms) {
            lost(k, k->last_err ? k->last_err : SD_ELEASE_LOST);
            return;
        }
        /* after a failed keepalive, try again soon rather than a third of the
         * TTL later: a store that is back gets renewed at once */
        bool due = now - k->renewed_at >= ttl_ms / 3 || (k->last_err != 0 && now - k->sent_at >= RETRY_MS);
        if (!k->in_flight && due && now - k->sent_at >= TICK_MS) {
            k->sent_at = now;
            k->ka_lease = k->lease;
            if (store_lease_keepalive(k->st, k->lease, on_keepalive, k) == 0) k->in_flight = true;
        }
        return;
    }
    if (!k->in_flight && now >= k->next_try) {
        k->sent_at = now;
        int rc = store_lease_grant(k->st, k->ttl_secs, on_grant, k);
        if (rc == 0) k->in_flight = true;
        else k->next_try = now + k->backoff_ms;
    }
}

lease_keeper *lease_keeper_start(uv_loop_t *loop, store *st, int ttl_secs, int margin_ms, lease_keeper_cb on_change,
                                 void *arg) {
    if (ttl_secs <= 0) return NULL;
    lease_keeper *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    k->loop = loop;
    k->st = st;
    k->ttl_secs = ttl_secs;
    uint64_t half = (uint64_t)ttl_secs * 500;
    k->margin_ms = margin_ms < 0 ? 0 : (uint64_t)margin_ms > half ? half : (uint64_t)margin_ms;
    k->cb = on_change;
    k->arg = arg;
    k->backoff_ms = REGRANT_MIN_MS;
    uv_update_time(loop);
    k->next_try = uv_now(loop);
    if (uv_timer_init(loop, &k->tick) != 0) {
        free(k);
        return NULL;
    }
    k->tick.data = k;
    uv_timer_start(&k->tick, on_tick, 0, TICK_MS);
    return k;
}

int64_t lease_keeper_lease(const lease_keeper *k) { return k->lease; }

static void on_closed(uv_handle_t *h) { free(h->data); }

void lease_keeper_stop(lease_keeper *k) {
    if (!k) return;
    store_cancel(k->st, k);
    if (k->lease) store_lease_revoke(k->st, k->lease, NULL, NULL); /* best effort; expiry covers a failure */
    k->lease = 0;
    uv_close((uv_handle_t *)&k->tick, on_closed);
}
