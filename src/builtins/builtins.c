/*
 * builtins: the table of components compiled into streamd, looked up by
 * class name when a topology names no library symbol for it. Each built-in
 * lives in its own builtin_*.c and uses only the public component API, as a
 * user library would; they are not exported with SD_EXPORT_COMPONENT so that
 * the streamd binary keeps no streamd_component_* symbols of its own.
 * No threads, no state: the table is constant.
 */
#include <string.h>

#include "topology/topology.h"

/* defined in builtin_file_lines.c, builtin_words.c, builtin_file_sink.c and
 * builtin_bench.c */
extern const sd_component_def builtin_file_lines_def;
extern const sd_component_def builtin_split_words_def;
extern const sd_component_def builtin_word_count_def;
extern const sd_component_def builtin_file_sink_def;
extern const sd_component_def builtin_fail_randomly_def;
extern const sd_component_def builtin_bench_spout_def;
extern const sd_component_def builtin_pass_through_def;
extern const sd_component_def builtin_null_sink_def;

static const sd_component_def *const builtin_table[] = {
    &builtin_file_lines_def,
    &builtin_split_words_def,
    &builtin_word_count_def,
    &builtin_file_sink_def,
    &builtin_fail_randomly_def,
    &builtin_bench_spout_def,
    &builtin_pass_through_def,
    &builtin_null_sink_def,
};

const sd_component_def *builtin_component(const char *class_name) {
    if (!class_name) return NULL;
    for (size_t i = 0; i < sizeof builtin_table / sizeof builtin_table[0]; i++)
        if (strcmp(builtin_table[i]->name, class_name) == 0) return builtin_table[i];
    return NULL;
}
