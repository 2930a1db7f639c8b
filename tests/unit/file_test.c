/* file_test.c — file_read_all: contents, the NUL after them, and the bound
 * both as fstat tells it and as the bytes actually read tell it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"

static char *temp_with(const char *text, size_t len)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/starling-file-test-XXXXXX");
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

Test(file, whole_file_with_a_nul_after_it)
{
	const char *path = temp_with("ab\0cd\n", 6);
	char *text, err[256];
	size_t len;
	cr_assert_eq(file_read_all(path, 6, &text, &len, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(len, 6, "the limit is inclusive");
	cr_assert_eq(memcmp(text, "ab\0cd\n", 6), 0);
	cr_assert_eq(text[6], '\0');
	free(text);
	unlink(path);
}

Test(file, empty_file)
{
	const char *path = temp_with("", 0);
	char *text, err[256];
	size_t len = 99;
	cr_assert_eq(file_read_all(path, 0, &text, &len, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(len, 0);
	cr_assert_str_eq(text, "");
	free(text);
	unlink(path);
}

Test(file, over_the_limit_by_its_size)
{
	const char *path = temp_with("abcdefg", 7);
	char *text = (char *)1, err[256], want[320];
	size_t len;
	cr_assert_eq(file_read_all(path, 6, &text, &len, err, sizeof(err)), -1);
	cr_assert_null(text);
	snprintf(want, sizeof(want), "%s: 7 bytes, more than the limit of 6", path);
	cr_assert_str_eq(err, want);
	unlink(path);
}

/* /proc files say size 0 and then hold more: the buffer must grow, and the
 * bound must hold on the bytes read. */
Test(file, size_that_lies_grows_the_buffer_and_keeps_the_bound)
{
	char *text, err[256];
	size_t len;
	cr_assert_eq(file_read_all("/proc/self/status", 1 << 20, &text, &len, err, sizeof(err)), 0,
	             "%s", err);
	cr_assert_gt(len, 64);
	cr_assert_eq(strncmp(text, "Name:", 5), 0);
	cr_assert_eq(strlen(text), len);
	free(text);

	text = (char *)1;
	cr_assert_eq(file_read_all("/proc/self/status", 16, &text, &len, err, sizeof(err)), -1);
	cr_assert_null(text);
	cr_assert_str_eq(err, "/proc/self/status: more than the limit of 16 bytes");
}

Test(file, errors_name_the_path)
{
	char *text, err[256];
	size_t len;
	cr_assert_eq(file_read_all("/nonexistent/x", 10, &text, &len, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "/nonexistent/x: cannot open: No such file or directory");
	cr_assert_eq(file_read_all("/tmp", 10, &text, &len, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "/tmp: not a regular file");
	/* No room for the message is no crash. */
	cr_assert_eq(file_read_all("/tmp", 10, &text, &len, NULL, 0), -1);
}
