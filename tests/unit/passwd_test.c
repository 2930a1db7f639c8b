/*
 * passwd_test.c — a mosquitto password file works unchanged: its $7$ and $6$
 * lines load, the right passwords match and wrong ones do not; a bad line
 * is refused with file:line and the reason, never skipped; lookups are exact;
 * and the hashes we write are ones we (and mosquitto) accept.
 *
 * The reverse direction — mosquitto 2.0.11 accepting a passwd_hash line —
 * was checked by hand when this file was written (mosquitto with
 * password_file and allow_anonymous false, mosquitto_pub with the right and a
 * wrong password); it needs a mosquitto binary, so it is not a unit test.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/passwd.h"

/* ------------------------------------------------------------------------ */
/* Fixtures */

/*
 * Made with Debian's mosquitto_passwd, mosquitto version 2.0.11 (default
 * sha512-pbkdf2, 101 iterations, 12-byte salt):
 *   mosquitto_passwd -c -b /tmp/mp alice secret1
 *   mosquitto_passwd -b /tmp/mp bob 'pässwörd ✓'
 */
static const char mosquitto_file[] =
    "alice:$7$101$EV79BFzb5dqRdQD/$NjU9dY7LUCDrRBhBeQE6fmIJiF2kaIdq1cxsB1vk9EYFVR0RdumSyciBl"
    "HvCcN4HKs98s+utVvuQa3eKb5Jqug==\n"
    "bob:$7$101$usb3YHo5DqRozWCB$tAMXJZ1fbCCOfzpcT9MpaSDtgVB8ug7n7HrKJ8Qk9Zc8JdTXTBIcLXwqF881L"
    "E2HfWlrdfHeXLA9j1+oBFAEzg==\n";

/*
 * mosquitto 1.x "$6$" lines, made with python3's hashlib (salt bytes 1..12):
 *   salt = bytes(range(1, 13))
 *   h = hashlib.sha512(pw.encode() + salt).digest()
 *   f"{user}:$6${b64encode(salt)}${b64encode(h)}"
 * for carol / "legacy6" and dan / "" (the empty password). mosquitto 2.0.11
 * accepted the carol line for "legacy6" and refused "legacy7".
 */
static const char sha512_file[] =
    "carol:$6$AQIDBAUGBwgJCgsM$iPDy79YXVf7ywhWhgqLNmc7bPxz5fTKX8Q/rFno2oMXQpoBJmoh1VsuCXzrJLs2l"
    "bHRDRLjIyme8ukFjJ9NKNQ==\n"
    "dan:$6$AQIDBAUGBwgJCgsM$JZltvjGgT/A+TmPJxkesbUWUdeKEVSkjjz0I9KN+vFSMGTYjIbt3MFzvdYIaM4s80+"
    "tiK6LI5ZWJGcxHBQxsDg==\n";

/* The hash part of alice's line, to build bad lines around. */
#define SALT_OK "EV79BFzb5dqRdQD/"
#define KEY_OK                                                                                     \
	"NjU9dY7LUCDrRBhBeQE6fmIJiF2kaIdq1cxsB1vk9EYFVR0RdumSyciBlHvCcN4HKs98s+utVvuQa3eKb5Jqug=="
#define HASH_OK "$7$101$" SALT_OK "$" KEY_OK

/* ------------------------------------------------------------------------ */
/* Helpers */

static struct passwd_db *parse_ok(const char *text)
{
	struct passwd_db *db = NULL;
	char err[512] = "";
	/* An exact-size heap copy without a NUL, so ASan builds see any read
	 * past the input. */
	size_t n = strlen(text);
	char *copy = malloc(n ? n : 1);
	memcpy(copy, text, n);
	int rc = passwd_parse("pw", copy, n, &db, err, sizeof(err));
	free(copy);
	cr_assert_eq(rc, 0, "parse failed: %s", err);
	cr_assert_not_null(db);
	return db;
}

/* Parse text that must be refused and return the error line. */
static const char *parse_err(const char *text)
{
	static char err[512];
	struct passwd_db *db = (struct passwd_db *)1;
	err[0] = '\0';
	size_t n = strlen(text);
	char *copy = malloc(n ? n : 1);
	memcpy(copy, text, n);
	int rc = passwd_parse("pw", copy, n, &db, err, sizeof(err));
	free(copy);
	cr_assert_eq(rc, -1, "accepted: %s", text);
	cr_assert_null(db, "*out must be NULL on failure");
	return err;
}

static bool verify(const struct passwd_db *db, const char *user, const char *password)
{
	const struct passwd_entry *e = passwd_find(db, user, strlen(user));
	cr_assert_not_null(e, "user %s not found", user);
	return passwd_verify(e, (const uint8_t *)password, strlen(password));
}

#define assert_err(text, want)                                                                     \
	do {                                                                                       \
		const char *got_ = parse_err(text);                                                \
		cr_assert_str_eq(got_, want);                                                      \
	} while (0)

/* ------------------------------------------------------------------------ */
/* Mosquitto compatibility */

Test(passwd, mosquitto_pbkdf2_file_loads)
{
	struct passwd_db *db = parse_ok(mosquitto_file);
	cr_assert_eq(passwd_count(db), 2);
	cr_assert_not_null(passwd_find(db, "alice", 5));
	cr_assert_not_null(passwd_find(db, "bob", 3));
	passwd_free(db);
}

Test(passwd, mosquitto_pbkdf2_right_passwords_match)
{
	struct passwd_db *db = parse_ok(mosquitto_file);
	cr_assert(verify(db, "alice", "secret1"));
	cr_assert(verify(db, "bob", "pässwörd ✓"));
	passwd_free(db);
}

Test(passwd, mosquitto_pbkdf2_wrong_passwords_fail)
{
	struct passwd_db *db = parse_ok(mosquitto_file);
	cr_assert_not(verify(db, "alice", "secret2"));
	cr_assert_not(verify(db, "alice", "secret"));
	cr_assert_not(verify(db, "alice", "secret1 "));
	cr_assert_not(verify(db, "alice", "pässwörd ✓")); /* bob's */
	cr_assert_not(verify(db, "bob", "passwörd ✓"));   /* one letter off */
	cr_assert_not(verify(db, "bob", "secret1"));
	passwd_free(db);
}

Test(passwd, sha512_mosquitto1_lines)
{
	struct passwd_db *db = parse_ok(sha512_file);
	cr_assert_eq(passwd_count(db), 2);
	cr_assert(verify(db, "carol", "legacy6"));
	cr_assert_not(verify(db, "carol", "legacy7"));
	cr_assert_not(verify(db, "carol", ""));
	cr_assert(verify(db, "dan", ""));
	cr_assert_not(verify(db, "dan", "x"));
	passwd_free(db);
}

/* ------------------------------------------------------------------------ */
/* File syntax */

Test(passwd, comments_blank_lines_crlf_and_both_schemes)
{
	char text[2048];
	snprintf(text, sizeof(text),
	         "# migrated from mosquitto\r\n"
	         "\r\n"
	         "   \n"
	         "%s"
	         "#bob:not a hash, a comment\n"
	         "erin:%s \t\r\n" /* trailing blanks, as a hand edit leaves them */
	         "%.*s",          /* last line without a newline */
	         "alice:" HASH_OK "\r\n", HASH_OK, (int)strlen(sha512_file) - 1, sha512_file);
	struct passwd_db *db = parse_ok(text);
	cr_assert_eq(passwd_count(db), 4);
	cr_assert(verify(db, "alice", "secret1"));
	cr_assert(verify(db, "erin", "secret1"));
	cr_assert(verify(db, "carol", "legacy6"));
	cr_assert(verify(db, "dan", ""));
	cr_assert_null(passwd_find(db, "#bob", 4));
	passwd_free(db);
}

Test(passwd, empty_file_has_no_users)
{
	struct passwd_db *db = parse_ok("# nobody yet\n\n");
	cr_assert_eq(passwd_count(db), 0);
	cr_assert_null(passwd_find(db, "alice", 5));
	cr_assert_not(passwd_check(db, "alice", 5, (const uint8_t *)"x", 1));
	passwd_free(db);
}

/* ------------------------------------------------------------------------ */
/* Errors: exact lines, with the line number */

Test(passwd, error_missing_colon)
{
	assert_err("alice:" HASH_OK "\n# ok\nbob" HASH_OK "\n",
	           "pw:3: missing ':' between user name and hash");
}

Test(passwd, error_empty_user)
{
	assert_err("\n:" HASH_OK "\n", "pw:2: empty user name");
}

Test(passwd, error_unknown_scheme)
{
	assert_err("alice:" HASH_OK
	           "\n\nbob:$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW\n",
	           "pw:3: user \"bob\": unknown hash scheme $2b$");
	assert_err("bob:$argon2id$v=19$m=65536\n",
	           "pw:1: user \"bob\": unknown hash scheme $argon2id$");
	assert_err("bob:$5\n", "pw:1: user \"bob\": unknown hash scheme $5");
}

Test(passwd, error_plain_text_password)
{
	assert_err("bob:hunter2\n",
	           "pw:1: user \"bob\": not a $7$ or $6$ hash (a plain-text password? hash the "
	           "file with mosquitto_passwd -U or set each user with starling passwd)");
	assert_err("bob:\n", "pw:1: user \"bob\": missing hash after ':'");
}

Test(passwd, error_malformed_fields)
{
	assert_err("bob:$7$101$" SALT_OK "\n",
	           "pw:1: user \"bob\": malformed hash: expected $7$<iterations>$<salt>$<hash>");
	assert_err("bob:" HASH_OK "$x\n",
	           "pw:1: user \"bob\": malformed hash: expected $7$<iterations>$<salt>$<hash>");
	assert_err("bob:$6$" SALT_OK "$" KEY_OK "$\n",
	           "pw:1: user \"bob\": malformed hash: expected $6$<salt>$<hash>");
	assert_err("bob:$7$101$$" KEY_OK "\n", "pw:1: user \"bob\": empty salt");
}

Test(passwd, error_bad_base64)
{
	/* A character outside the alphabet, a length not a multiple of 4,
	 * padding in the middle. */
	assert_err("bob:$7$101$EV79BFzb5dqRdQ!/$" KEY_OK "\n",
	           "pw:1: user \"bob\": salt is not valid base64");
	assert_err("bob:$7$101$EV79BFzb5dqRdQD$" KEY_OK "\n",
	           "pw:1: user \"bob\": salt is not valid base64");
	assert_err("bob:$7$101$" SALT_OK "$NjU9=Y7L" KEY_OK "\n",
	           "pw:1: user \"bob\": hash is not valid base64");
	assert_err("bob:$6$" SALT_OK "$" KEY_OK "=\n",
	           "pw:1: user \"bob\": hash is not valid base64");
	assert_err("bob:$6$" SALT_OK "$" KEY_OK "AAAA\n",
	           "pw:1: user \"bob\": hash is not valid base64");
}

Test(passwd, error_wrong_hash_length)
{
	/* Made with python3: base64.b64encode(bytes(range(n))) for n = 32, 65, 68. */
	assert_err("bob:$7$101$" SALT_OK "$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
	           "pw:1: user \"bob\": hash is 32 bytes, expected 64");
	assert_err(
	    "bob:$6$" SALT_OK
	    "$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+"
	    "P0A=\n",
	    "pw:1: user \"bob\": hash is 65 bytes, expected 64");
	/* A salt over PASSWD_SALT_MAX: measured, never decoded into the entry. */
	assert_err(
	    "bob:$6$"
	    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+"
	    "P0BBQkM=$" KEY_OK "\n",
	    "pw:1: user \"bob\": salt is 68 bytes, at most 64 allowed");
}

Test(passwd, error_iterations_out_of_range)
{
	assert_err("bob:$7$0$" SALT_OK "$" KEY_OK "\n",
	           "pw:1: user \"bob\": iterations 0 out of range 1..10000000");
	assert_err("bob:$7$10000001$" SALT_OK "$" KEY_OK "\n",
	           "pw:1: user \"bob\": iterations 10000001 out of range 1..10000000");
	assert_err("bob:$7$99999999999999999999999$" SALT_OK "$" KEY_OK "\n",
	           "pw:1: user \"bob\": iterations 99999999999999999999 out of range 1..10000000");
	assert_err("bob:$7$-5$" SALT_OK "$" KEY_OK "\n",
	           "pw:1: user \"bob\": iterations \"-5\" is not a number");
	assert_err("bob:$7$$" SALT_OK "$" KEY_OK "\n",
	           "pw:1: user \"bob\": iterations \"\" is not a number");
	/* The limits themselves are fine. */
	passwd_free(
	    parse_ok("a:$7$1$" SALT_OK "$" KEY_OK "\nb:$7$10000000$" SALT_OK "$" KEY_OK "\n"));
}

Test(passwd, error_duplicate_user)
{
	assert_err("alice:" HASH_OK "\nbob:" HASH_OK "\n# again:\nalice:" HASH_OK "\n",
	           "pw:4: user \"alice\" is already listed on line 1");
	/* Names are bytes: case differs, so these are two users. */
	struct passwd_db *db = parse_ok("alice:" HASH_OK "\nAlice:" HASH_OK "\n");
	cr_assert_eq(passwd_count(db), 2);
	passwd_free(db);
}

Test(passwd, error_user_name_shape)
{
	char text[1024];
	memset(text, 'u', PASSWD_USER_MAX + 1);
	snprintf(text + PASSWD_USER_MAX + 1, sizeof(text) - PASSWD_USER_MAX - 1, ":%s\n", HASH_OK);
	assert_err(text, "pw:1: user name is longer than 256 bytes");
	/* Exactly PASSWD_USER_MAX bytes is fine. */
	memmove(text, text + 1, strlen(text));
	struct passwd_db *db = parse_ok(text);
	cr_assert_not_null(passwd_find(db, text, PASSWD_USER_MAX));
	passwd_free(db);

	assert_err(" bob:" HASH_OK "\n", "pw:1: user name \" bob\" has leading or trailing blanks");
	assert_err("bob :" HASH_OK "\n", "pw:1: user name \"bob \" has leading or trailing blanks");
	assert_err("b\tob:" HASH_OK "\n", "pw:1: line contains a control character");
	assert_err("b\033ob:" HASH_OK "\n", "pw:1: line contains a control character");
}

Test(passwd, error_nul_and_long_line)
{
	static const char nul[] = "bob\0:" HASH_OK "\n";
	struct passwd_db *db = NULL;
	char err[256];
	cr_assert_eq(passwd_parse("pw", nul, sizeof(nul) - 1, &db, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "pw:1: line contains a NUL byte");

	size_t n = 5000;
	char *text = malloc(n + 1);
	memset(text, '#', n);
	text[n] = '\0';
	assert_err(text, "pw:1: line is longer than 4096 bytes");
	free(text);
}

/* ------------------------------------------------------------------------ */
/* Lookup */

Test(passwd, find_hit_miss_and_prefixes)
{
	struct passwd_db *db = parse_ok(mosquitto_file);
	const struct passwd_entry *a = passwd_find(db, "alice", 5);
	cr_assert_not_null(a);
	/* The length is what counts, not a NUL: "alicex" cut at 5 is alice. */
	cr_assert_eq(passwd_find(db, "alicex", 5), a);
	cr_assert_null(passwd_find(db, "alic", 4));
	cr_assert_null(passwd_find(db, "alice2", 6));
	cr_assert_null(passwd_find(db, "Alice", 5));
	cr_assert_null(passwd_find(db, "carol", 5));
	cr_assert_null(passwd_find(db, "", 0));
	cr_assert_neq(passwd_find(db, "bob", 3), a);
	passwd_free(db);
}

Test(passwd, find_many_users)
{
	/* Enough users that the table probes and grows; every one is found,
	 * near misses are not. */
	enum { N = 5000 };
	size_t cap = (size_t)N * (sizeof(HASH_OK) + 16);
	char *text = malloc(cap), *w = text;
	for (int i = 0; i < N; i++)
		w += sprintf(w, "user%d:%s\n", i, HASH_OK);
	struct passwd_db *db = parse_ok(text);
	cr_assert_eq(passwd_count(db), N);
	char name[32];
	for (int i = 0; i < N; i++) {
		int n = sprintf(name, "user%d", i);
		cr_assert_not_null(passwd_find(db, name, (size_t)n), "%s", name);
		n = sprintf(name, "user%d", i + N);
		cr_assert_null(passwd_find(db, name, (size_t)n), "%s", name);
	}
	/* Prefixes of every name: with 5000 entries on the probe paths, a
	 * lookup that compared only the query's bytes would hit one. */
	static const char *const prefixes[] = {"u", "us", "use", "user", "user1x", "user49999"};
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		cr_assert_null(passwd_find(db, prefixes[i], strlen(prefixes[i])), "%s",
		               prefixes[i]);
	passwd_free(db);
	free(text);
}

/* ------------------------------------------------------------------------ */
/* Hash and verify */

Test(passwd, hash_round_trip)
{
	char hash[PASSWD_HASH_MAX], line[PASSWD_HASH_MAX + 16];
	const char *pw = "correct horse battery staple";
	size_t n = passwd_hash(hash, sizeof(hash), (const uint8_t *)pw, strlen(pw), 1000);
	cr_assert_gt(n, 0);
	cr_assert_eq(n, strlen(hash));
	cr_assert_eq(strncmp(hash, "$7$1000$", 8), 0, "%s", hash);
	/* 12-byte salt and 64-byte key, as mosquitto_passwd writes them. */
	cr_assert_eq(n, strlen("$7$1000$") + 16 + 1 + 88, "%s", hash);
	snprintf(line, sizeof(line), "frank:%s\n", hash);
	struct passwd_db *db = parse_ok(line);
	cr_assert(verify(db, "frank", pw));
	cr_assert_not(verify(db, "frank", "correct horse battery stapl"));
	passwd_free(db);
}

Test(passwd, hash_salts_differ)
{
	char a[PASSWD_HASH_MAX], b[PASSWD_HASH_MAX];
	cr_assert_gt(passwd_hash(a, sizeof(a), (const uint8_t *)"same", 4, 1000), 0);
	cr_assert_gt(passwd_hash(b, sizeof(b), (const uint8_t *)"same", 4, 1000), 0);
	/* "$7$1000$" then 16 salt characters. */
	cr_assert_neq(memcmp(a + 8, b + 8, 16), 0, "%s / %s", a, b);
	cr_assert_str_neq(a, b);
}

Test(passwd, hash_refuses_what_it_cannot_do)
{
	char out[PASSWD_HASH_MAX];
	memset(out, 'x', sizeof(out));
	cr_assert_eq(passwd_hash(out, 100, (const uint8_t *)"pw", 2, 1000), 0); /* too small */
	cr_assert_eq(out[0], '\0');
	cr_assert_eq(passwd_hash(out, sizeof(out), (const uint8_t *)"pw", 2, 0), 0);
	cr_assert_eq(
	    passwd_hash(out, sizeof(out), (const uint8_t *)"pw", 2, PASSWD_ITERATIONS_MAX + 1), 0);
	static uint8_t big[PASSWD_PASSWORD_MAX + 1];
	cr_assert_eq(passwd_hash(out, sizeof(out), big, sizeof(big), 1000), 0);
	/* The longest output ("$7$10000000$", salt, '$', key, NUL) fits. */
	cr_assert_geq(PASSWD_HASH_MAX, strlen("$7$10000000$") + 16 + 1 + 88 + 1);
}

Test(passwd, verify_empty_and_long_passwords)
{
	struct passwd_db *db = parse_ok(mosquitto_file);
	const struct passwd_entry *a = passwd_find(db, "alice", 5);
	cr_assert_not(passwd_verify(a, (const uint8_t *)"", 0));
	cr_assert_not(passwd_verify(a, NULL, 0));
	cr_assert_not(passwd_verify(NULL, (const uint8_t *)"secret1", 7));
	/* An embedded NUL is part of the password, not its end. */
	cr_assert_not(passwd_verify(a, (const uint8_t *)"secret1\0x", 9));
	passwd_free(db);

	/* The longest password MQTT can carry round-trips; one byte more is
	 * refused without hashing. */
	static uint8_t big[PASSWD_PASSWORD_MAX + 1];
	memset(big, 'p', sizeof(big));
	char hash[PASSWD_HASH_MAX], line[PASSWD_HASH_MAX + 16];
	cr_assert_gt(passwd_hash(hash, sizeof(hash), big, PASSWD_PASSWORD_MAX, 1000), 0);
	snprintf(line, sizeof(line), "g:%s\n", hash);
	db = parse_ok(line);
	const struct passwd_entry *g = passwd_find(db, "g", 1);
	cr_assert(passwd_verify(g, big, PASSWD_PASSWORD_MAX));
	cr_assert_not(passwd_verify(g, big, PASSWD_PASSWORD_MAX - 1));
	cr_assert_not(passwd_verify(g, big, PASSWD_PASSWORD_MAX + 1));

	/* And the empty password, when that is what was hashed. */
	cr_assert_gt(passwd_hash(hash, sizeof(hash), (const uint8_t *)"", 0, 1000), 0);
	snprintf(line, sizeof(line), "h:%s\n", hash);
	struct passwd_db *db2 = parse_ok(line);
	cr_assert(passwd_verify(passwd_find(db2, "h", 1), NULL, 0));
	cr_assert_not(passwd_verify(passwd_find(db2, "h", 1), (const uint8_t *)" ", 1));
	passwd_free(db2);
	passwd_free(db);
}

Test(passwd, check_known_unknown_wrong)
{
	struct passwd_db *db = parse_ok(mosquitto_file);
	cr_assert(passwd_check(db, "alice", 5, (const uint8_t *)"secret1", 7));
	cr_assert_not(passwd_check(db, "alice", 5, (const uint8_t *)"secret2", 7));
	cr_assert_not(passwd_check(db, "mallory", 7, (const uint8_t *)"secret1", 7));
	cr_assert_not(passwd_check(db, "", 0, (const uint8_t *)"", 0));
	passwd_free(db);
}

struct verify_arg {
	const struct passwd_db *db;
	int ok; /* matches out of 20 rounds of right + wrong */
};

static void *verify_thread(void *p)
{
	struct verify_arg *a = p;
	for (int i = 0; i < 20; i++) {
		a->ok += verify(a->db, "alice", "secret1");
		a->ok += !verify(a->db, "bob", "secret1");
	}
	return NULL;
}

Test(passwd, concurrent_readers)
{
	struct passwd_db *db = parse_ok(mosquitto_file);
	pthread_t t[4];
	struct verify_arg a[4];
	for (int i = 0; i < 4; i++) {
		a[i] = (struct verify_arg){db, 0};
		cr_assert_eq(pthread_create(&t[i], NULL, verify_thread, &a[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(a[i].ok, 40);
	}
	passwd_free(db);
}

/* ------------------------------------------------------------------------ */
/* Files */

Test(passwd, load_file_and_its_errors)
{
	char path[] = "/tmp/passwd_test_XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, mosquitto_file, strlen(mosquitto_file)),
	             (ssize_t)strlen(mosquitto_file));
	struct passwd_db *db = NULL;
	char err[512] = "";
	cr_assert_eq(passwd_load(path, &db, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(passwd_count(db), 2);
	cr_assert(verify(db, "bob", "pässwörd ✓"));
	passwd_free(db);

	/* Errors name the path. */
	cr_assert_eq(write(fd, "bob:" HASH_OK "\n", strlen("bob:" HASH_OK "\n")),
	             (ssize_t)strlen("bob:" HASH_OK "\n"));
	char want[600];
	snprintf(want, sizeof(want), "%s:3: user \"bob\" is already listed on line 2", path);
	cr_assert_eq(passwd_load(path, &db, err, sizeof(err)), -1);
	cr_assert_null(db);
	cr_assert_str_eq(err, want);

	/* Over 256 MiB is refused before it is read (a sparse file). */
	cr_assert_eq(ftruncate(fd, (off_t)PASSWD_FILE_MAX + 1), 0);
	snprintf(want, sizeof(want),
	         "%s: 268435457 bytes, more than the limit of 268435456 (256 MiB)", path);
	cr_assert_eq(passwd_load(path, &db, err, sizeof(err)), -1);
	cr_assert_str_eq(err, want);
	close(fd);
	unlink(path);

	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
	cr_assert_eq(passwd_load(path, &db, err, sizeof(err)), -1);
	cr_assert_str_eq(err, want);
	cr_assert_eq(passwd_load("/tmp", &db, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "/tmp: not a regular file");
}
