/*
 * yaml_doc: reads one YAML file (libyaml) into a small tree of scalar,
 * mapping and sequence nodes, each with its 1-based line, so conf and
 * topology can name the line of anything they reject. Pure data, no
 * threads; a loaded tree is read-only.
 */
#ifndef SD_YAML_DOC_H
#define SD_YAML_DOC_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { YD_SCALAR, YD_MAP, YD_SEQ } yd_kind;

typedef struct yd_node yd_node;
struct yd_node {
    yd_kind kind;
    int line;            /* 1-based */
    char *text;          /* YD_SCALAR: the value as written (never NULL) */
    bool quoted;         /* YD_SCALAR: written in quotes (so never null) */
    size_t n;            /* YD_MAP: pairs, YD_SEQ: items */
    char **keys;         /* YD_MAP: key i */
    int *key_lines;      /* YD_MAP: line of key i */
    yd_node **items;     /* YD_MAP: value i, YD_SEQ: item i */
};

/* Loads path. An empty file gives an empty mapping on line 1. On error
 * writes "FILE:LINE: yaml: <problem>" (FILE as given) and returns NULL.
 * Duplicate mapping keys, aliases, non-scalar keys and more than one
 * document are errors. */
yd_node *yd_load_file(const char *path, char *err, size_t errlen);
/* Same from a buffer; name stands in for FILE in errors. */
yd_node *yd_load_string(const char *name, const char *text, size_t len, char *err, size_t errlen);
void yd_free(yd_node *n);

/* Value of key in a mapping (NULL if absent or map is not a mapping). */
const yd_node *yd_get(const yd_node *map, const char *key);
/* Index of key in a mapping, -1 if absent. */
int yd_index(const yd_node *map, const char *key);
/* A plain "", "~" or "null": YAML's null. */
bool yd_is_null(const yd_node *n);
/* "a scalar", "a mapping", "a sequence" for messages. */
const char *yd_kind_name(const yd_node *n);

#endif
