/*
 * passwd_cmd.c — owns the `starling passwd` subcommand: adding, changing and
 * deleting one user of a password file, with mosquitto_passwd's interface
 * (-c, -D, -b) so scripts written for it keep working, plus -I to pick the
 * PBKDF2 iteration count.
 *
 * Runs on the main thread of a process that is not a broker: main() hands
 * over before any configuration is read. It may print and exit freely, but
 * keeps no global state, so it can be called from a test driver.
 *
 * Invariants: the file on disk is either the old one or the complete new
 * one (temporary file in the same directory, fsync, rename, fsync of the
 * directory); every line that is not the user's is written back byte for
 * byte, comments and line endings included; a result the broker would refuse
 * to load (passwd_parse fails) is never written; passwords are wiped from
 * our buffers once hashed.
 */
#include "auth/passwd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#define ERR_MAX  (PATH_MAX + 512)          /* one error line */
#define PASS_BUF (PASSWD_PASSWORD_MAX + 3) /* a password, its CR LF and the NUL */

static const char usage_text[] =
    "Usage: starling passwd [-c | -D] [-b] [-I ITERATIONS] FILE USER [PASSWORD]\n"
    "\n"
    "Add a user to a password file, change a user's password, or delete a user.\n"
    "The file is mosquitto's format; mosquitto password files work unchanged.\n"
    "\n"
    "  -c             create FILE, or overwrite it: it then holds USER only\n"
    "  -D             delete USER from FILE\n"
    "  -b             batch mode: PASSWORD is the third argument (visible to\n"
    "                 other local users in the process list while it runs)\n"
    "  -I ITERATIONS  PBKDF2-SHA512 rounds for the new hash (default 100000,\n"
    "                 at least 1000; below 10000 is weak and warned about)\n"
    "  -h             print this help\n"
    "\n"
    "Without -b the password is read twice from the terminal without echo, or\n"
    "once as one line from standard input when that is not a terminal.\n"
    "Other users' lines and comments are kept as they are. The file is replaced\n"
    "atomically and left with mode 0600.\n";

_Static_assert(PASSWD_ITERATIONS_DEFAULT == 100000, "usage_text names the default");

/* The fewest PBKDF2 rounds `starling passwd` writes. A hash is there to
 * make a stolen file expensive to attack; one round (or mosquitto_passwd's
 * 101) makes each guess about as cheap as a plain salted SHA-512. 1000 is
 * still fast enough for tests; below PASSWD_ITERATIONS_WARN a warning says
 * it is weak. (Files from mosquitto with fewer rounds are still read.) */
#define PASSWD_ITERATIONS_MIN  1000
#define PASSWD_ITERATIONS_WARN 10000
_Static_assert(PASSWD_ITERATIONS_MIN == 1000 && PASSWD_ITERATIONS_WARN == 10000,
               "usage_text names the floor and the warning");

struct opts {
	bool create;         /* -c */
	bool delete;         /* -D */
	bool batch;          /* -b */
	unsigned iterations; /* -I, 1..PASSWD_ITERATIONS_MAX */
	const char *file;
	const char *user;
	char *password; /* -b: the argument, wiped once copied */
};

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...)
{
	char msg[ERR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "starling passwd: %s\n", msg);
	return 1;
}

/* ------------------------------------------------------------------------ */
/* Arguments */

static bool parse_uint(const char *s, unsigned long min, unsigned long max, unsigned *out)
{
	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = (unsigned)v;
	return true;
}

/* 0 = go on, 1 = error printed, 2 = help printed. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){.iterations = PASSWD_ITERATIONS_DEFAULT};
	int i = 1;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || a[1] == '\0')
			break;
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "-c") == 0) {
			o->create = true;
		} else if (strcmp(a, "-D") == 0) {
			o->delete = true;
		} else if (strcmp(a, "-b") == 0) {
			o->batch = true;
		} else if (strcmp(a, "-I") == 0) {
			if (i + 1 >= argc)
				return fail("-I needs a number of iterations");
			if (!parse_uint(argv[++i], 1, PASSWD_ITERATIONS_MAX, &o->iterations))
				return fail("-I: \"%s\" is not a number 1..%d", argv[i],
				            PASSWD_ITERATIONS_MAX);
			if (o->iterations < PASSWD_ITERATIONS_MIN)
				return fail("-I %u: too few iterations, at least %d (default %d): "
				            "fewer make a stolen password file cheap to attack",
				            o->iterations, PASSWD_ITERATIONS_MIN,
				            PASSWD_ITERATIONS_DEFAULT);
			if (o->iterations < PASSWD_ITERATIONS_WARN)
				fprintf(stderr,
				        "starling passwd: warning: -I %u is weak (default %d); "
				        "fine for tests, not for a file that could be stolen\n",
				        o->iterations, PASSWD_ITERATIONS_DEFAULT);
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(usage_text, stdout);
			return 2;
		} else {
			return fail("unknown option \"%s\" (see starling passwd -h)", a);
		}
	}
	int n = argc - i;
	if (o->create && o->delete)
		return fail("-c and -D cannot be used together");
	if (o->delete &&o->batch)
		return fail("-D takes no password");
	if (n < 2)
		return fail("missing %s (see starling passwd -h)",
		            n == 0 ? "FILE and USER" : "USER");
	if (n > 3 || (n == 3 && !o->batch))
		return fail(n == 3 ? "a password on the command line needs -b"
		                   : "too many arguments (see starling passwd -h)");
	if (o->batch && n != 3)
		return fail("-b needs a PASSWORD argument");
	o->file = argv[i];
	o->user = argv[i + 1];
	o->password = n == 3 ? argv[i + 2] : NULL;
	return 0;
}

/* The rules passwd_parse enforces, checked up front for a clear message. */
static int check_user(const char *u)
{
	size_t n = strlen(u);
	if (n == 0)
		return fail("empty user name");
	if (n > PASSWD_USER_MAX)
		return fail("user name is longer than %d bytes", PASSWD_USER_MAX);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)u[i];
		if (c == ':')
			return fail("user name \"%s\" contains ':'", u);
		if (c < 0x20 || c == 0x7f)
			return fail("user name contains a control character");
	}
	if (u[0] == '#') /* the line would be a comment */
		return fail("user name \"%s\" starts with '#'", u);
	if (u[0] == ' ' || u[n - 1] == ' ')
		return fail("user name \"%s\" has leading or trailing blanks", u);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Password input */

/* Read one line from f into buf (PASS_BUF bytes) without its line end.
 * Returns its length, or -1 with an error printed. */
static long read_line(FILE *f, char *buf, const char *what)
{
	if (fgets(buf, PASS_BUF, f) == NULL)
		return fail("no %s on standard input", what), -1;
	size_t n = strlen(buf);
	bool nl = n > 0 && buf[n - 1] == '\n';
	if (!nl && !feof(f))
		return fail("%s is longer than %d bytes", what, PASSWD_PASSWORD_MAX), -1;
	if (nl)
		buf[--n] = '\0';
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	if (n > PASSWD_PASSWORD_MAX)
		return fail("%s is longer than %d bytes", what, PASSWD_PASSWORD_MAX), -1;
	return (long)n;
}

/* Prompt on stderr and read with echo off. */
static long read_hidden(const char *prompt, char *buf)
{
	struct termios old, quiet;
	if (tcgetattr(STDIN_FILENO, &old) != 0)
		return fail("cannot read the terminal settings: %s", strerror(errno)), -1;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	fputs(prompt, stderr);
	fflush(stderr);
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0)
		return fail("cannot turn off echo: %s", strerror(errno)), -1;
	long n = read_line(stdin, buf, "password");
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	return n;
}

/* The password into buf (PASS_BUF bytes); returns its length or -1. */
static long get_password(struct opts *o, char *buf)
{
	long n;
	if (o->password != NULL) {
		size_t len = strlen(o->password);
		if (len > PASSWD_PASSWORD_MAX)
			return fail("password is longer than %d bytes", PASSWD_PASSWORD_MAX), -1;
		memcpy(buf, o->password, len + 1);
		/* Blank it in our argv so later `ps` output no longer shows it. */
		OPENSSL_cleanse(o->password, len);
		n = (long)len;
	} else if (isatty(STDIN_FILENO)) {
		char *again = malloc(PASS_BUF);
		if (again == NULL)
			return fail("out of memory"), -1;
		n = read_hidden("Password: ", buf);
		long m = n < 0 ? -1 : read_hidden("Reenter password: ", again);
		if (n >= 0 && m >= 0 && (m != n || memcmp(buf, again, (size_t)n) != 0)) {
			fail("passwords do not match");
			n = -1;
		} else if (m < 0) {
			n = -1;
		}
		OPENSSL_cleanse(again, PASS_BUF);
		free(again);
	} else {
		n = read_line(stdin, buf, "password");
	}
	if (n == 0)
		return fail("empty password"), -1;
	return n;
}

/* ------------------------------------------------------------------------ */
/* The new file */

/* Does line[0..n) (its end of line removed) hold an entry for user? The same
 * reading as passwd_parse: '#' comments, blank lines, name up to ':'. */
static bool line_is_user(const char *line, size_t n, const char *user, size_t user_len)
{
	if (n == 0 || line[0] == '#')
		return false;
	const char *colon = memchr(line, ':', n);
	size_t un = colon != NULL ? (size_t)(colon - line) : n;
	return un == user_len && memcmp(line, user, user_len) == 0;
}

/*
 * Build the new contents from old[0..old_len) (NULL for -c) into a malloc'd
 * buffer: the user's first line replaced by entry (or dropped for -D, entry
 * NULL), later lines of the user dropped, entry appended if the user was not
 * there. Returns the length, or -1 with an error printed; *found tells
 * whether the user was there.
 */
static long build(const char *old, size_t old_len, const char *user, const char *entry, char **out,
                  bool *found)
{
	size_t user_len = strlen(user), entry_len = entry != NULL ? strlen(entry) : 0;
	*found = false;
	*out = malloc(old_len + entry_len + 4);
	if (*out == NULL)
		return fail("out of memory"), -1;
	char *w = *out;
	bool crlf = false; /* the file's line ending, for an appended line */
	size_t pos = 0;
	while (pos < old_len) {
		const char *line = old + pos;
		const char *nl = memchr(line, '\n', old_len - pos);
		size_t full = nl != NULL ? (size_t)(nl - line) + 1 : old_len - pos;
		size_t n = full - (nl != NULL);
		bool cr = n > 0 && line[n - 1] == '\r';
		if (pos == 0)
			crlf = cr;
		pos += full;

		size_t t = n; /* as passwd_parse trims: CR and trailing blanks */
		while (t > 0 && (line[t - 1] == '\r' || line[t - 1] == ' ' || line[t - 1] == '\t'))
			t--;
		if (!line_is_user(line, t, user, user_len)) {
			memcpy(w, line, full);
			w += full;
			continue;
		}
		if (*found || entry == NULL) { /* a duplicate, or -D */
			*found = true;
			continue;
		}
		*found = true;
		memcpy(w, entry, entry_len);
		w += entry_len;
		/* Keep this line's own ending; a last line without one gets one. */
		if (cr)
			*w++ = '\r';
		*w++ = '\n';
	}
	if (!*found && entry != NULL) {
		if (w > *out && w[-1] != '\n')
			*w++ = '\n';
		memcpy(w, entry, entry_len);
		w += entry_len;
		if (crlf)
			*w++ = '\r';
		*w++ = '\n';
	}
	return (long)(w - *out);
}

static bool write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* Replace path by text[0..len) atomically, mode 0600, keeping the owner and
 * group of the file it replaces when we may (a root-run `starling passwd`
 * must not leave a file the broker's user cannot read). */
static int write_file(const char *path, const char *text, size_t len, const struct stat *old)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp))
		return fail("%s: path too long", path);
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	int fd = mkstemp(tmp); /* same directory: rename stays within one file system */
	if (fd < 0) {
		/* Name what the operator wrote, not the random temporary name. */
		int e = errno;
		if (e == ENOENT || e == ENOTDIR)
			return fail("%s: the directory %s does not exist", path, dir);
		return fail("%s: cannot create a file in %s: %s", path, dir, strerror(e));
	}
	const char *step;
	if (fchmod(fd, 0600) != 0) {
		step = "chmod";
		goto fail;
	}
	if (old != NULL && fchown(fd, old->st_uid, old->st_gid) != 0 && errno != EPERM) {
		step = "chown";
		goto fail;
	}
	if (!write_all(fd, text, len)) {
		step = "write";
		goto fail;
	}
	if (fsync(fd) != 0) {
		step = "fsync";
		goto fail;
	}
	if (close(fd) != 0) {
		fd = -1;
		step = "close";
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		step = "rename";
		goto fail;
	}

	/* The rename is durable once the directory is on disk too. */
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) != 0) {
		int e = errno;
		if (dfd >= 0)
			close(dfd);
		return fail("%s: fsync of the directory: %s", dir, strerror(e));
	}
	close(dfd);
	return 0;

fail:;
	int e = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return fail("%s: %s of the new file (%s): %s; the file is unchanged", path, step, tmp,
	            strerror(e));
}

int passwd_main(int argc, char **argv)
{
	struct opts o;
	int rc = parse_args(argc, argv, &o);
	if (rc != 0)
		return rc == 2 ? 0 : 1;
	if (check_user(o.user) != 0)
		return 1;

	rc = 1;
	char *old = NULL, *text = NULL, *password = NULL;
	size_t old_len = 0;
	struct stat st;
	bool have_old = false;
	char err[ERR_MAX];
	if (!o.create) {
		if (stat(o.file, &st) != 0) {
			int e = errno;
			fail("%s: %s%s", o.file, strerror(e),
			     e == ENOENT ? " (-c creates it)" : "");
			goto done;
		}
		have_old = true;
		if (passwd_file_read(o.file, &old, &old_len, err, sizeof(err)) != 0) {
			fail("%s", err);
			goto done;
		}
	} else {
		have_old = stat(o.file, &st) == 0 && S_ISREG(st.st_mode);
	}

	char entry[PASSWD_USER_MAX + 1 + PASSWD_HASH_MAX];
	if (!o.delete) {
		password = malloc(PASS_BUF);
		if (password == NULL) {
			fail("out of memory");
			goto done;
		}
		long n = get_password(&o, password);
		if (n < 0)
			goto done;
		char hash[PASSWD_HASH_MAX];
		size_t hl = passwd_hash(hash, sizeof(hash), (const uint8_t *)password, (size_t)n,
		                        o.iterations);
		if (hl == 0) {
			fail("hashing failed (OpenSSL)");
			goto done;
		}
		snprintf(entry, sizeof(entry), "%s:%s", o.user, hash);
	}

	bool found;
	long len = build(old, old_len, o.user, o.delete ? NULL : entry, &text, &found);
	if (len < 0)
		goto done;
	if (o.delete &&!found) {
		fail("user \"%s\" is not in %s", o.user, o.file);
		goto done;
	}

	/* Never write what the broker would refuse to load. */
	struct passwd_db *db;
	if (passwd_parse(o.file, text, (size_t)len, &db, err, sizeof(err)) != 0) {
		fail("%s; the file is unchanged", err);
		goto done;
	}
	passwd_free(db);

	if (write_file(o.file, text, (size_t)len, have_old ? &st : NULL) != 0)
		goto done;
	rc = 0;
done:
	if (password != NULL)
		OPENSSL_cleanse(password, PASS_BUF);
	free(password);
	free(old);
	free(text);
	return rc;
}
