/* test_data: test/data fixtures for unit tests (see test_data.c). */
#ifndef SD_TEST_DATA_H
#define SD_TEST_DATA_H

#include <limits.h>
#include <stddef.h>

extern char data_dir[PATH_MAX]; /* filled by test_data_dir() in main */
/* the absolute path of test/data, wherever the test runs from; 0 or -1 */
int test_data_dir(char *out);
void data_path(char *out, size_t len, const char *name);
/* the "# expect: ..." first line of a fixture, without the prefix; 0 or -1 */
int read_expect(const char *path, char *out, size_t len);

#endif
