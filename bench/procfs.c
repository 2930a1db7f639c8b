/*
 * procfs.c — /proc readings (see procfs.h). statm's second field is the
 * resident set in pages; stat's fields 14 and 15 are utime and stime in
 * clock ticks, counted after the ')' that ends the command name, which may
 * itself contain spaces and parentheses.
 */
#include "procfs.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static uint64_t rss_from(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	unsigned long long size = 0, resident = 0;
	int n = fscanf(f, "%llu %llu", &size, &resident);
	fclose(f);
	if (n != 2)
		return 0;
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

uint64_t procfs_self_rss_bytes(void)
{
	return rss_from("/proc/self/statm");
}

uint64_t procfs_rss_bytes(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
	return rss_from(path);
}

double procfs_cpu_s(pid_t pid)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	unsigned long long utime = 0, stime = 0;
	/* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt
	 * cmajflt utime(14) stime(15) */
	if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
	           &stime) != 2)
		return -1;
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}
