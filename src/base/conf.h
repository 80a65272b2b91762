/*
 * conf: Storm-style dotted configuration keys with types and defaults.
 * Precedence: built-in defaults < --config FILE < topology `config:` <
 * -c key=value. Every known key, its type and default is in one table in
 * conf.c and documented in etc/streamd.yaml. Unknown keys are kept as
 * strings (user keys, as Storm allows) so components can read them.
 * A conf is not thread-safe to modify; read-only sharing is fine.
 */
#ifndef SD_CONF_H
#define SD_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

typedef struct conf conf;

conf *conf_new(void);                 /* empty: lookups fall back to defaults */
conf *conf_copy(const conf *c);
void conf_free(conf *c);

/* Loads a flat YAML mapping of dotted keys. On error writes
 * "FILE:LINE: key 'k': expected an integer, got 'x'" (or a YAML syntax error
 * with its line) into err and returns -1; c is then unchanged. */
int conf_load_file(conf *c, const char *path, char *err, size_t errlen);

/* Sets one key from text with type checking ("key=value" from -c, or a
 * value from a topology's config: section). file/line name the source in
 * the error ("-c" and 0 for the command line). Returns 0 or -1 with err. */
int conf_set_text(conf *c, const char *key, const char *value, const char *file, int line,
                  char *err, size_t errlen);
/* Same, but the error names `shown` instead of key (a topology's top-level
 * `workers:` sets topology.workers; the user should read the key they wrote). */
int conf_set_text_as(conf *c, const char *key, const char *shown, const char *value,
                     const char *file, int line, char *err, size_t errlen);
/* Parses "key=value" (the -c argument). */
int conf_set_kv(conf *c, const char *kv, char *err, size_t errlen);

/* Copies every key set in src into dst (src wins). */
void conf_merge(conf *dst, const conf *src);

/* Typed reads: the set value, else the built-in default, else def. */
int64_t conf_int(const conf *c, const char *key);
double conf_double(const conf *c, const char *key);
bool conf_bool(const conf *c, const char *key);
const char *conf_str(const conf *c, const char *key); /* NULL if none */
int64_t conf_int_or(const conf *c, const char *key, int64_t def);
const char *conf_str_or(const conf *c, const char *key, const char *def);
bool conf_is_set(const conf *c, const char *key);

/* Every set key as a JSON object of strings (to hand a conf to a worker),
 * and back. conf_from_json returns NULL on a malformed object. */
json_t *conf_to_json(const conf *c);
conf *conf_from_json(const json_t *obj);

/* For `streamd --help-config`-like dumps and tests: iterate known keys. */
typedef struct conf_key_info {
    const char *key;
    const char *type;   /* "int", "double", "bool", "string" */
    const char *def;    /* default as text */
    const char *doc;
} conf_key_info;
const conf_key_info *conf_known_keys(size_t *n);

#endif
