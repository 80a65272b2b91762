/*
 * libFuzzer target for the configuration parser: the input is a config
 * file (YAML, the format of etc/streamd.yaml) loaded over an empty conf,
 * then read back through the typed getters and the JSON form a worker's
 * assignment carries (conf_to_json, conf_from_json). A rejected file must
 * say why; an accepted one must survive the round trip with every key
 * readable. The file lives in a memfd. Run: tools/fuzz conf
 */
#include <string.h>
#include <unistd.h>

#include "fuzz_file.h"
#include "base/conf.h"
#include "base/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64], err[1024];
    int fd = fuzz_file_open("streamd.yaml", data, size, path);
    if (fd < 0) return 0;
    conf *c = conf_new();
    if (!c) __builtin_trap();
    err[0] = 0;
    if (conf_load_file(c, path, err, sizeof err) != 0) {
        if (!err[0]) __builtin_trap();
    } else {
        json_t *j = conf_to_json(c);
        conf *back = j ? conf_from_json(j) : NULL;
        size_t n;
        const conf_key_info *keys = conf_known_keys(&n);
        for (size_t i = 0; i < n; i++) {
            const char *a = conf_str(c, keys[i].key), *b = back ? conf_str(back, keys[i].key) : NULL;
            if (back && (!a) != (!b)) __builtin_trap();
            if (a && b && strcmp(a, b) != 0) __builtin_trap();
            if (strcmp(keys[i].type, "int") == 0) (void)conf_int(c, keys[i].key);
        }
        if (back) conf_free(back);
        json_decref(j);
    }
    conf_free(c);
    close(fd);
    return 0;
}
