/*
 * err: the project's one error convention. A function that can fail returns
 * 0 (or a count) on success and a negative errno-style code on failure
 * (-ENOENT, -ETIMEDOUT, ...), or NULL for a constructor; sd_strerror names a
 * code, including the project's own codes below. Low-level code returns the
 * code; the caller that decides what to do logs it, once.
 */
#ifndef SD_ERR_H
#define SD_ERR_H

/* Project codes, outside errno's range. */
#define SD_EPROTO_STORE (-4001)  /* the store answered something malformed */
#define SD_ECOMPACTED (-4002)    /* a watch's history was compacted away */
#define SD_ELEASE_LOST (-4003)   /* a lease expired or was revoked */
#define SD_EUNAVAILABLE (-4004)  /* no store endpoint could be reached */
#define SD_EHASH (-4005)         /* content does not match its hash */

/* A static string for err (negative code; 0 gives "ok"). Never NULL. */
const char *sd_strerror(int err);

#include <stddef.h>

/* Formats a message into err (errlen bytes, may be 0) for a caller that
 * reports why, and returns code: `return sd_err_msg(err, len, -EINVAL, ...)`. */
int sd_err_msg(char *err, size_t errlen, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
