/*
 * latency_hist: a histogram of latencies in microseconds with a fixed
 * relative error (8 buckets per power of two, so a bucket's upper bound is
 * within 12.5% of what it counts) and the exact maximum. One writer (a
 * spout's executor thread records complete latencies) and any number of
 * readers (the worker's heartbeat asks for percentiles), so counters are
 * relaxed atomics written with a plain load and store.
 */
#ifndef SD_LATENCY_HIST_H
#define SD_LATENCY_HIST_H

#include <stdatomic.h>
#include <stdint.h>

#define LAT_BUCKETS 512 /* 8 buckets per power of two of microseconds */

static inline int lat_bucket(uint64_t us) {
    if (us < 8) return (int)us;
    int msb = 63 - __builtin_clzll(us);
    int b = (msb - 2) * 8 + (int)((us >> (msb - 3)) & 7);
    return b < LAT_BUCKETS ? b : LAT_BUCKETS - 1;
}

/* Counts one latency of ns nanoseconds (negative counts as 0). Inline: a
 * spout records one per completed tuple tree. Single writer only. */
static inline void lat_record(atomic_uint_fast64_t hist[LAT_BUCKETS], atomic_uint_fast64_t *max_us, int64_t ns) {
    uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
    atomic_uint_fast64_t *c = &hist[lat_bucket(us)];
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1, memory_order_relaxed);
    if (us > atomic_load_explicit(max_us, memory_order_relaxed))
        atomic_store_explicit(max_us, us, memory_order_relaxed);
}

/* The q-quantile (0..1) in microseconds: the upper bound of its bucket,
 * capped by the maximum; 0 when nothing was recorded. Any thread. */
uint64_t lat_quantile(atomic_uint_fast64_t hist[LAT_BUCKETS], atomic_uint_fast64_t *max_us, double q);

#endif
