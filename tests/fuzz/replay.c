/*
 * replay.c — runs a libFuzzer target over files and directories without
 * libFuzzer, so every build (gcc, sanitizers) replays the seed corpus and
 * any past crash inputs as an ordinary test. Prints TAP: one line per file.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned count;

static void run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		printf("not ok %u - %s: cannot open\n", ++count, path);
		return;
	}
	static uint8_t buf[1 << 20];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	/* A copy of exactly n bytes so ASan sees reads past the input. */
	uint8_t *copy = malloc(n ? n : 1);
	memcpy(copy, buf, n);
	LLVMFuzzerTestOneInput(copy, n); /* aborts on a failed check */
	free(copy);
	printf("ok %u - %s\n", ++count, path);
}

static void run_path(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		printf("not ok %u - %s: missing\n", ++count, path);
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		run_file(path);
		return;
	}
	struct dirent **names;
	int n = scandir(path, &names, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.') {
			char full[4096];
			snprintf(full, sizeof(full), "%s/%s", path, names[i]->d_name);
			run_path(full);
		}
		free(names[i]);
	}
	free(names);
}

int main(int argc, char **argv)
{
	printf("TAP version 13\n");
	for (int i = 1; i < argc; i++)
		run_path(argv[i]);
	printf("1..%u\n", count);
	return 0;
}
