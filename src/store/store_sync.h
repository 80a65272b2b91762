/*
 * store_sync: for one-shot programs (client commands, tools): run the loop
 * until a request's callback has run or a timeout passes. Never used by a
 * master or node, whose loops must not wait.
 */
#ifndef SD_STORE_SYNC_H
#define SD_STORE_SYNC_H

#include <stdbool.h>
#include <uv.h>

/* Runs loop until *done is true or timeout_ms passes: 0 or -ETIMEDOUT. */
int store_sync_wait(uv_loop_t *loop, const bool *done, int timeout_ms);

#endif
