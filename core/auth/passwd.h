/*
 * passwd.h — the password file: user names with salted slow hashes, in
 * mosquitto's format so a mosquitto password file works unchanged, and the
 * `starling passwd` subcommand that writes it.
 *
 * File format: one "user:hash" per line; a line starting with '#' is a
 * comment; blank lines are ignored; CRLF and trailing blanks are tolerated.
 * The hash is one of
 *   $7$<iterations>$<salt base64>$<key base64>   PBKDF2-HMAC-SHA512, 64-byte
 *                                                key (mosquitto 2.x default)
 *   $6$<salt base64>$<digest base64>             SHA-512(password || salt)
 *                                                (mosquitto 1.x)
 * Plain-text passwords are refused. Errors name file:line and what is wrong,
 * e.g. `passwords:3: user "bob": unknown hash scheme $2b$`.
 *
 * A struct passwd_db is immutable once passwd_load/passwd_parse returns, so
 * any number of threads may call passwd_find/passwd_verify on it at once.
 * passwd_verify is slow by design (milliseconds): call it off the workers'
 * event loops.
 */
#ifndef STARLING_CORE_PASSWD_H
#define STARLING_CORE_PASSWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PASSWD_USER_MAX       256          /* bytes of a user name */
#define PASSWD_USERS_MAX      1000000      /* users in one file */
#define PASSWD_FILE_MAX       (256u << 20) /* bytes of a password file: 256 MiB */
#define PASSWD_PASSWORD_MAX   65535        /* bytes of a password (MQTT binary data) */
#define PASSWD_SALT_MAX       64           /* bytes of a salt read from a file */
#define PASSWD_SALT_BYTES     12           /* salt of a new hash, as mosquitto_passwd */
#define PASSWD_KEY_BYTES      64           /* SHA-512 output, both schemes */
#define PASSWD_HASH_MAX       160          /* a "$7$..." string passwd_hash writes, NUL incl. */
#define PASSWD_ITERATIONS_MAX 10000000     /* beyond: a typo, and seconds per CONNECT */

/*
 * PBKDF2-SHA512 rounds for new hashes. OWASP's 2023 guidance is 210000 for
 * SHA-512; we take less because every CONNECT with a password pays it on one
 * core. Measured for one hash (passwd_hash, OpenSSL 3.0.19, one thread) on
 * the 2-core Xeon VM the project builds on: 90-100 ms idle, ~140 ms while
 * another build ran; 210000 rounds took ~235 ms. So a reconnect storm of
 * 1000 clients costs ~100 core seconds, not ~235, and a hash is still ~1000x
 * the work of mosquitto_passwd's default of 101 rounds. `starling passwd -I` picks
 * another count; each hash records its own, so raising it later only needs
 * passwords reset, not a format change.
 */
#define PASSWD_ITERATIONS_DEFAULT 100000

enum passwd_scheme {
	PASSWD_PBKDF2_SHA512 = 7, /* "$7$" */
	PASSWD_SHA512 = 6,        /* "$6$" */
};

struct passwd_entry; /* one user; lives as long as its db */
struct passwd_db;    /* immutable after passwd_load / passwd_parse */

/* Load a password file of at most PASSWD_FILE_MAX bytes and PASSWD_USERS_MAX
 * users; a user listed twice is an error. Returns 0 with *out set, or -1 with
 * one line in err (err may be NULL). */
int passwd_load(const char *path, struct passwd_db **out, char *err, size_t err_len);

/* The same from text[0..len); name stands for the file in error messages. */
int passwd_parse(const char *name, const char *text, size_t len, struct passwd_db **out, char *err,
                 size_t err_len);

void passwd_free(struct passwd_db *db); /* NULL is fine */
size_t passwd_count(const struct passwd_db *db);

/* The entry for a user (bytes compared exactly), or NULL. O(1) expected. */
const struct passwd_entry *passwd_find(const struct passwd_db *db, const char *user,
                                       size_t user_len);

/* Does the password match the entry? Slow by design; constant-time compare.
 * A password over PASSWD_PASSWORD_MAX bytes, or e == NULL, never matches.
 * (mosquitto compares up to the first NUL byte of a password; we use every
 * byte, so a password with a NUL in it may match in mosquitto but not here.) */
bool passwd_verify(const struct passwd_entry *e, const uint8_t *password, size_t password_len);

/* find + verify for a CONNECT. An unknown user costs about the same time as a
 * known one (a verify against a dummy entry with the db's largest iteration
 * count), so the time of a refusal does not tell which user names exist. */
bool passwd_check(const struct passwd_db *db, const char *user, size_t user_len,
                  const uint8_t *password, size_t password_len);

/* A new "$7$<iterations>$<salt>$<key>" for the password with a fresh random
 * salt into out[0..cap), NUL-terminated. Returns its length without the NUL,
 * or 0 if it does not fit, iterations is outside 1..PASSWD_ITERATIONS_MAX, the
 * password is too long, or the random source failed. */
size_t passwd_hash(char *out, size_t cap, const uint8_t *password, size_t password_len,
                   unsigned iterations);

/* Read a whole file of at most PASSWD_FILE_MAX bytes into a malloc'd,
 * NUL-terminated buffer (*text, *len without the NUL). For passwd_load and
 * the subcommand, which must rewrite the file it read. Returns 0 or -1. */
int passwd_file_read(const char *path, char **text, size_t *len, char *err, size_t err_len);

/* `starling passwd [-c | -D] [-b] [-I ITERATIONS] FILE USER [PASSWORD]`.
 * argv[0] is the subcommand's name ("passwd"): main passes argv + 1. Returns
 * the exit status: 0, or 1 after one "starling passwd: ..." line on stderr. */
int passwd_main(int argc, char **argv);

#endif
