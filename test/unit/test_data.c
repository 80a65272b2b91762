/* test_data: locating test/data and reading fixtures' expectations, shared
 * by the unit tests that load files. */
#include "test_data.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* test/data, found from the binary's location (cwd does not matter) */
int test_data_dir(char *out) {
    char src[PATH_MAX], tmp[2 * PATH_MAX + 64];
    snprintf(src, sizeof src, "%s", __FILE__);
    const char *srcdir = dirname(src);
    if (srcdir[0] == '/') {
        snprintf(tmp, sizeof tmp, "%s/../data", srcdir);
    } else {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0) return -1;
        exe[n] = '\0';
        snprintf(tmp, sizeof tmp, "%s/../../%s/../data", dirname(exe), srcdir);
    }
    return realpath(tmp, out) ? 0 : -1;
}

char data_dir[PATH_MAX];

void data_path(char *out, size_t len, const char *name) { snprintf(out, len, "%s/%s", data_dir, name); }

/* Reads the "# expect: ..." first line of a fixture into out. */
int read_expect(const char *path, char *out, size_t len) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[1024];
    int rc = -1;
    if (fgets(line, sizeof line, f) && strncmp(line, "# expect: ", 10) == 0) {
        line[strcspn(line, "\n")] = '\0';
        snprintf(out, len, "%s", line + 10);
        rc = 0;
    }
    fclose(f);
    return rc;
}
