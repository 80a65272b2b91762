/*
 * fuzz_file: for the targets whose input is a file (topology, config): the
 * input written to a memfd, named by a /proc path, so no disk is touched.
 */
#ifndef SD_FUZZ_FILE_H
#define SD_FUZZ_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/log.h"

/* Writes data to a new memfd called name and puts its path in path. The
 * fd (the caller closes it), or -1 when the input cannot be staged. */
static inline int fuzz_file_open(const char *name, const uint8_t *data, size_t size, char path[64]) {
    static int quiet;
    if (!quiet) { /* errors are what the targets produce: not worth printing */
        log_set_level(SD_LOG_ERROR);
        quiet = 1;
    }
    int fd = memfd_create(name, 0);
    if (fd < 0) return -1;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return -1;
    }
    snprintf(path, 64, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
