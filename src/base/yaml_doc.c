/*
 * yaml_doc: builds the node tree from libyaml's event stream (not its
 * document API) because events carry the marks we need for line numbers
 * and let us reject aliases and duplicate keys as they appear. The tree is
 * built with an explicit stack bounded by YD_MAX_DEPTH so that hostile
 * input cannot exhaust the C stack. No threads.
 */
#include "base/yaml_doc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#define YD_MAX_DEPTH 64

typedef struct builder {
    const char *name;
    char *err;
    size_t errlen;
    yd_node *root;
    yd_node *stack[YD_MAX_DEPTH];
    int depth;
    char *pending_keys[YD_MAX_DEPTH]; /* per open mapping, the key awaiting its value */
    int pending_lines[YD_MAX_DEPTH];
} builder;

static void set_err(builder *b, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(builder *b, int line, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(b->err, b->errlen, "%s:%d: yaml: %s", b->name, line, msg);
}

void yd_free(yd_node *n) {
    if (!n) return;
    free(n->text);
    for (size_t i = 0; i < n->n; i++) {
        if (n->keys) free(n->keys[i]);
        yd_free(n->items[i]); /* depth is bounded by YD_MAX_DEPTH */
    }
    free(n->keys);
    free(n->key_lines);
    free(n->items);
    free(n);
}

static yd_node *node_new(yd_kind kind, int line) {
    yd_node *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->kind = kind;
    n->line = line;
    return n;
}

/* Grows a container by one slot; key may be NULL for sequences. */
static int append(yd_node *parent, char *key, int key_line, yd_node *child) {
    size_t want = parent->n + 1;
    yd_node **items = realloc(parent->items, want * sizeof *items);
    if (!items) return -1;
    parent->items = items;
    if (parent->kind == YD_MAP) {
        char **keys = realloc(parent->keys, want * sizeof *keys);
        if (!keys) return -1;
        parent->keys = keys;
        int *lines = realloc(parent->key_lines, want * sizeof *lines);
        if (!lines) return -1;
        parent->key_lines = lines;
        keys[parent->n] = key;
        lines[parent->n] = key_line;
    }
    items[parent->n] = child;
    parent->n = want;
    return 0;
}

/* Attaches a finished or just-opened node to the open container on top of
 * the stack (or makes it the root). Takes ownership of n in all cases. */
static int attach(builder *b, yd_node *n) {
    if (b->depth == 0) {
        if (b->root) {
            set_err(b, n->line, "more than one document");
            yd_free(n);
            return -1;
        }
        b->root = n;
        return 0;
    }
    yd_node *top = b->stack[b->depth - 1];
    if (top->kind == YD_SEQ) {
        if (append(top, NULL, 0, n) != 0) goto oom;
        return 0;
    }
    char **pk = &b->pending_keys[b->depth - 1];
    if (!*pk) {
        /* this node is a key */
        if (n->kind != YD_SCALAR) {
            set_err(b, n->line, "a mapping key must be a plain value, not %s", yd_kind_name(n));
            yd_free(n);
            return -1;
        }
        if (yd_index(top, n->text) >= 0) {
            set_err(b, n->line, "duplicate key '%s'", n->text);
            yd_free(n);
            return -1;
        }
        *pk = n->text;
        n->text = NULL;
        b->pending_lines[b->depth - 1] = n->line;
        yd_free(n);
        return 0;
    }
    if (append(top, *pk, b->pending_lines[b->depth - 1], n) != 0) goto oom;
    *pk = NULL;
    return 0;
oom:
    set_err(b, n->line, "out of memory");
    yd_free(n);
    return -1;
}

static int push(builder *b, yd_node *n) {
    if (b->depth >= YD_MAX_DEPTH) {
        set_err(b, n->line, "nesting deeper than %d levels", YD_MAX_DEPTH);
        yd_free(n);
        return -1;
    }
    /* attach first so the node is owned by the tree even if we fail later */
    if (attach(b, n) != 0) return -1;
    b->stack[b->depth] = n;
    b->pending_keys[b->depth] = NULL;
    b->depth++;
    return 0;
}

static void parser_error(builder *b, const yaml_parser_t *p) {
    int line = (int)p->problem_mark.line + 1;
    if (p->error == YAML_MEMORY_ERROR) {
        set_err(b, line, "out of memory");
    } else if (p->context) {
        set_err(b, line, "%s (%s at line %d)", p->problem ? p->problem : "syntax error", p->context,
                (int)p->context_mark.line + 1);
    } else {
        set_err(b, line, "%s", p->problem ? p->problem : "syntax error");
    }
}

static yd_node *build(builder *b, yaml_parser_t *p) {
    bool done = false;
    while (!done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(p, &ev)) {
            parser_error(b, p);
            goto fail;
        }
        int line = (int)ev.start_mark.line + 1;
        int rc = 0;
        switch (ev.type) {
        case YAML_SCALAR_EVENT: {
            const char *v = (const char *)ev.data.scalar.value;
            size_t len = ev.data.scalar.length;
            if (memchr(v, '\0', len)) {
                set_err(b, line, "NUL character in a value");
                rc = -1;
                break;
            }
            yd_node *n = node_new(YD_SCALAR, line);
            if (n) n->text = strndup(v, len);
            if (!n || !n->text) {
                yd_free(n);
                set_err(b, line, "out of memory");
                rc = -1;
                break;
            }
            n->quoted = ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
            rc = attach(b, n);
            break;
        }
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
            yd_node *n = node_new(ev.type == YAML_MAPPING_START_EVENT ? YD_MAP : YD_SEQ, line);
            if (!n) {
                set_err(b, line, "out of memory");
                rc = -1;
                break;
            }
            rc = push(b, n);
            break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            /* the parser guarantees balance; pending key cannot be left */
            if (b->depth > 0) b->depth--;
            break;
        case YAML_ALIAS_EVENT:
            set_err(b, line, "aliases (*name) are not supported");
            rc = -1;
            break;
        case YAML_STREAM_END_EVENT: done = true; break;
        default: break; /* stream/document start and end carry nothing */
        }
        yaml_event_delete(&ev);
        if (rc != 0) goto fail;
    }
    if (!b->root) {
        b->root = node_new(YD_MAP, 1);
        if (!b->root) {
            set_err(b, 1, "out of memory");
            return NULL;
        }
    }
    return b->root;
fail:
    /* keys waiting for a value are owned by the builder, not the tree */
    for (int i = 0; i < b->depth; i++) free(b->pending_keys[i]);
    yd_free(b->root);
    b->root = NULL;
    return NULL;
}

static void builder_init(builder *b, const char *name, char *err, size_t errlen) {
    memset(b, 0, sizeof *b);
    b->name = name;
    b->err = err;
    b->errlen = errlen;
}

yd_node *yd_load_string(const char *name, const char *text, size_t len, char *err, size_t errlen) {
    builder b;
    builder_init(&b, name, err, errlen);
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        set_err(&b, 1, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    yd_node *root = build(&b, &p);
    yaml_parser_delete(&p);
    return root;
}

yd_node *yd_load_file(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) { /* fopen accepts directories */
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(EISDIR));
        fclose(f);
        return NULL;
    }
    builder b;
    builder_init(&b, path, err, errlen);
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        fclose(f);
        set_err(&b, 1, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_file(&p, f);
    yd_node *root = build(&b, &p);
    yaml_parser_delete(&p);
    if (ferror(f) && root) {
        snprintf(err, errlen, "%s: read error", path);
        yd_free(root);
        root = NULL;
    }
    fclose(f);
    return root;
}

int yd_index(const yd_node *map, const char *key) {
    if (!map || map->kind != YD_MAP) return -1;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i], key) == 0) return (int)i;
    return -1;
}

const yd_node *yd_get(const yd_node *map, const char *key) {
    int i = yd_index(map, key);
    return i < 0 ? NULL : map->items[i];
}

bool yd_is_null(const yd_node *n) {
    if (!n || n->kind != YD_SCALAR || n->quoted) return false;
    return n->text[0] == '\0' || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0 ||
           strcmp(n->text, "Null") == 0 || strcmp(n->text, "NULL") == 0;
}

const char *yd_kind_name(const yd_node *n) {
    if (!n) return "nothing";
    switch (n->kind) {
    case YD_SCALAR: return "a scalar";
    case YD_MAP: return "a mapping";
    case YD_SEQ: return "a sequence";
    }
    return "?";
}
