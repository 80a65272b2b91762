/*
 * latency_hist: reading percentiles out of the histogram (see
 * latency_hist.h; recording is inline there). Called by the heartbeat on
 * the worker's loop thread while the spout's thread records.
 */
#include "runtime/latency_hist.h"

static uint64_t lat_bucket_upper(int b) {
    if (b < 8) return (uint64_t)b;
    int msb = b / 8 + 2, sub = b % 8;
    return ((uint64_t)(8 + sub + 1) << (msb - 3)) - 1;
}

uint64_t lat_quantile(atomic_uint_fast64_t hist[LAT_BUCKETS], atomic_uint_fast64_t *max_us, double q) {
    uint64_t total = 0, counts[LAT_BUCKETS];
    for (int i = 0; i < LAT_BUCKETS; i++) total += counts[i] = atomic_load(&hist[i]);
    if (total == 0) return 0;
    uint64_t want = (uint64_t)(q * (double)total), seen = 0;
    for (int i = 0; i < LAT_BUCKETS; i++) {
        seen += counts[i];
        if (seen > want) {
            uint64_t up = lat_bucket_upper(i), max = atomic_load(max_us);
            return up < max ? up : max;
        }
    }
    return atomic_load(max_us);
}
