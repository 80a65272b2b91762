/* err: names for the project's error codes (see err.h). */
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *sd_strerror(int err) {
    switch (err) {
    case 0: return "ok";
    case SD_EPROTO_STORE: return "malformed answer from the store";
    case SD_ECOMPACTED: return "watch history compacted";
    case SD_ELEASE_LOST: return "lease lost";
    case SD_EUNAVAILABLE: return "store unavailable";
    case SD_EHASH: return "content does not match its hash";
    default: break;
    }
    if (err < 0 && err > -4096) return strerror(-err); /* glibc: static table, thread-safe for known codes */
    return "unknown error";
}

int sd_err_msg(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}
