/*
 * builtin_words: the word-count bolts.
 *   split_words: splits the first string field of each input on runs of ASCII
 *     whitespace and emits [word] per word, anchored to the input, then acks.
 *     arg lowercase (bool, default false).
 *   word_count: counts input field `word` in a hash table of its own and
 *     emits [word, count] (the running count), anchored, then acks.
 *
 * Thread: each task's callbacks run on its executor thread, which owns the
 * task's state (the lowercase buffer, the count table). Public API only.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "streamd/component.h"

extern const sd_component_def builtin_split_words_def;
extern const sd_component_def builtin_word_count_def;

/* ---- split_words ------------------------------------------------------- */

typedef struct split_words {
    bool lowercase;
    char *buf; /* lowercased copy of the current input */
    size_t cap;
    bool warned_no_string;
} split_words;

static void *sw_prepare(sd_context *ctx, sd_collector *col) {
    (void)col;
    split_words *st = calloc(1, sizeof *st);
    if (!st) {
        sd_log(ctx, SD_LOG_ERROR, "split_words: out of memory");
        return NULL;
    }
    st->lowercase = sd_context_arg_bool(ctx, "lowercase", false);
    return st;
}

static void sw_execute(void *state, sd_collector *col, sd_tuple *input) {
    split_words *st = state;
    if (sd_tuple_is_tick(input)) return;
    const sd_value *text = NULL;
    for (size_t i = 0; i < sd_tuple_size(input); i++) {
        const sd_value *v = sd_tuple_get(input, i);
        if (v->type == SD_STRING) {
            text = v;
            break;
        }
    }
    if (!text) {
        /* nothing to split is not worth a replay: ack, and say so once */
        if (!st->warned_no_string) sd_report_error(col, "split_words: input without a string field");
        st->warned_no_string = true;
        sd_ack(col, input);
        return;
    }
    const char *s = text->v.s.ptr;
    size_t n = text->v.s.len;
    if (st->lowercase) {
        if (n > st->cap) {
            char *nb = realloc(st->buf, n);
            if (!nb) {
                sd_report_error(col, "split_words: out of memory");
                sd_fail(col, input);
                return;
            }
            st->buf = nb;
            st->cap = n;
        }
        for (size_t i = 0; i < n; i++) st->buf[i] = (char)tolower((unsigned char)s[i]);
        s = st->buf;
    }
    size_t i = 0;
    while (i < n) {
        while (i < n && isspace((unsigned char)s[i])) i++;
        size_t start = i;
        while (i < n && !isspace((unsigned char)s[i])) i++;
        if (i > start) {
            sd_value w = sd_str(s + start, (uint32_t)(i - start));
            if (sd_emit(col, NULL, &input, 1, &w, 1) != 0) {
                sd_fail(col, input);
                return;
            }
        }
    }
    sd_ack(col, input);
}

static void sw_cleanup(void *state, sd_collector *col) {
    (void)col;
    split_words *st = state;
    if (!st) return;
    free(st->buf);
    free(st);
}

static const sd_stream_decl sw_streams[] = {
    {.name = SD_DEFAULT_STREAM, .fields = {"word", NULL}},
    {.name = NULL},
};

const sd_component_def builtin_split_words_def = {
    .api_version = SD_API_VERSION,
    .name = "split_words",
    .kind = SD_BOLT,
    .streams = sw_streams,
    .open = sw_prepare,
    .execute = sw_execute,
    .close = sw_cleanup,
};

/* ---- word_count: a string -> count table (open addressing) ------------- */

typedef struct wc_slot {
    char *word; /* owned copy; NULL = empty */
    uint32_t len;
    uint64_t hash;
    int64_t count;
} wc_slot;

typedef struct word_count {
    wc_slot *slots;
    size_t cap, len; /* cap is a power of two */
} word_count;

static uint64_t wc_hash(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29); /* FNV's low bits are weak for short keys */
}

static int wc_grow(word_count *st) {
    size_t ncap = st->cap ? st->cap * 2 : 1024;
    wc_slot *ns = calloc(ncap, sizeof *ns);
    if (!ns) return -1;
    for (size_t j = 0; j < st->cap; j++) {
        if (!st->slots[j].word) continue;
        size_t i = st->slots[j].hash & (ncap - 1);
        while (ns[i].word) i = (i + 1) & (ncap - 1);
        ns[i] = st->slots[j];
    }
    free(st->slots);
    st->slots = ns;
    st->cap = ncap;
    return 0;
}

/* the slot of word, inserted with count 0 when new; NULL when out of memory */
static wc_slot *wc_lookup(word_count *st, const char *w, uint32_t n) {
    if ((st->len + 1) * 4 > st->cap * 3 && wc_grow(st) != 0) return NULL;
    uint64_t h = wc_hash(w, n);
    size_t i = h & (st->cap - 1);
    for (; st->slots[i].word; i = (i + 1) & (st->cap - 1)) {
        wc_slot *s = &st->slots[i];
        if (s->hash == h && s->len == n && memcmp(s->word, w, n) == 0) return s;
    }
    char *copy = malloc(n ? n : 1);
    if (!copy) return NULL;
    memcpy(copy, w, n);
    st->slots[i] = (wc_slot){.word = copy, .len = n, .hash = h, .count = 0};
    st->len++;
    return &st->slots[i];
}

static void *wc_prepare(sd_context *ctx, sd_collector *col) {
    (void)col;
    word_count *st = calloc(1, sizeof *st);
    if (!st || wc_grow(st) != 0) {
        free(st);
        sd_log(ctx, SD_LOG_ERROR, "word_count: out of memory");
        return NULL;
    }
    return st;
}

static void wc_execute(void *state, sd_collector *col, sd_tuple *input) {
    word_count *st = state;
    if (sd_tuple_is_tick(input)) return;
    const sd_value *w = sd_tuple_field(input, "word");
    if (!w || w->type != SD_STRING) {
        sd_report_error(col, "word_count: input from %s has no string field 'word'",
                        sd_tuple_source_component(input));
        sd_ack(col, input); /* a replay would not grow the field */
        return;
    }
    wc_slot *s = wc_lookup(st, w->v.s.ptr, w->v.s.len);
    if (!s) {
        sd_report_error(col, "word_count: out of memory");
        sd_fail(col, input);
        return;
    }
    s->count++;
    sd_value out[2] = {sd_str(s->word, s->len), sd_int(s->count)};
    if (sd_emit(col, NULL, &input, 1, out, 2) != 0) {
        s->count--; /* the replay will count it again */
        sd_fail(col, input);
        return;
    }
    sd_ack(col, input);
}

static void wc_cleanup(void *state, sd_collector *col) {
    (void)col;
    word_count *st = state;
    if (!st) return;
    for (size_t i = 0; i < st->cap; i++) free(st->slots[i].word);
    free(st->slots);
    free(st);
}

static const sd_stream_decl wc_streams[] = {
    {.name = SD_DEFAULT_STREAM, .fields = {"word", "count", NULL}},
    {.name = NULL},
};

const sd_component_def builtin_word_count_def = {
    .api_version = SD_API_VERSION,
    .name = "word_count",
    .kind = SD_BOLT,
    .streams = wc_streams,
    .open = wc_prepare,
    .execute = wc_execute,
    .close = wc_cleanup,
};
