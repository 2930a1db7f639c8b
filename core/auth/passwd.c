/*
 * passwd.c — owns the in-memory password database: parsing mosquitto's
 * password file format, the user name hash table, and computing and checking
 * the two hash schemes with OpenSSL's libcrypto.
 *
 * Pure: no sockets, no globals. Loading runs on one thread (main, or the
 * thread that rereads the file); the finished db is never written again, so
 * any number of threads may look users up and verify passwords at once
 * (libcrypto 3.x is thread-safe without setup).
 *
 * Layout: one array of entries in file order, one pool of user name bytes,
 * one open-addressing table of entry indices (linear probing, load <= 1/2).
 * The table's contents come from the administrator's file, not from clients,
 * so a client cannot build collision chains; a plain FNV-1a hash is enough.
 * A lookup key from a client only ever probes chains the file made.
 *
 * Invariants: every entry has 1..PASSWD_USER_MAX name bytes without ':',
 * control characters or leading/trailing blanks; hash holds exactly
 * PASSWD_KEY_BYTES bytes; salt_len is 1..PASSWD_SALT_MAX; iterations is
 * 1..PASSWD_ITERATIONS_MAX for PBKDF2 entries. A failed parse frees
 * everything and leaves *out NULL.
 *
 * Verification allocates nothing here; OpenSSL allocates and frees its own
 * digest and HMAC contexts inside each call.
 */
#include "auth/passwd.h"

#include <assert.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/errmsg.h"
#include "base/file.h"

#define LINE_MAX_BYTES 4096 /* a user name and the longest hash fit with room to spare */
#define B64_SALT_MAX   88   /* base64 characters of PASSWD_SALT_MAX bytes */
#define B64_KEY_LEN    88   /* base64 characters of PASSWD_KEY_BYTES, padding included */

_Static_assert(PASSWD_KEY_BYTES == 64, "SHA-512 output");
_Static_assert(B64_SALT_MAX == 4 * ((PASSWD_SALT_MAX + 2) / 3), "salt base64 bound");
_Static_assert(B64_KEY_LEN == 4 * ((PASSWD_KEY_BYTES + 2) / 3), "key base64 length");
_Static_assert(PASSWD_USERS_MAX < UINT32_MAX / 4, "table indices fit in uint32_t");
_Static_assert(PASSWD_ITERATIONS_MAX <= 2147483647, "PKCS5_PBKDF2_HMAC takes an int");
_Static_assert(PASSWD_PASSWORD_MAX <= 2147483647, "PKCS5_PBKDF2_HMAC takes an int");

struct passwd_entry {
	const char *user;              /* into db->names, not NUL-terminated */
	uint16_t user_len;             /* bytes, 1..PASSWD_USER_MAX */
	uint8_t salt_len;              /* bytes, 1..PASSWD_SALT_MAX */
	enum passwd_scheme scheme;     /* how hash was computed */
	uint32_t iterations;           /* PBKDF2 rounds; 0 for $6$ */
	uint32_t line;                 /* in the file, for duplicate errors */
	uint8_t salt[PASSWD_SALT_MAX]; /* decoded salt bytes */
	uint8_t hash[PASSWD_KEY_BYTES];
};

struct passwd_db {
	struct passwd_entry *entries; /* count used, in file order */
	size_t count;
	char *names;               /* user name bytes of every entry, back to back */
	uint32_t *table;           /* entry index + 1; 0 = empty slot */
	size_t table_mask;         /* table size - 1; size is a power of two >= 2 * count */
	struct passwd_entry dummy; /* verified against for unknown users (passwd_check) */
};

/* ------------------------------------------------------------------------ */
/* Errors */

/* ------------------------------------------------------------------------ */
/* Base64 (RFC 4648 with padding, as mosquitto writes it) */

static bool b64_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/*
 * Check s[0..n) is padded base64 and return the number of bytes it decodes
 * to, or -1. EVP_DecodeBlock would accept (and skip) blanks and report the
 * padding as zero bytes, so validation and the true length are done here.
 */
static long b64_len(const char *s, size_t n)
{
	if (n == 0 || n % 4 != 0)
		return -1;
	size_t pad = 0;
	while (pad < 2 && s[n - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < n - pad; i++)
		if (!b64_char((unsigned char)s[i]))
			return -1;
	return (long)(n / 4 * 3 - pad);
}

/* Decode base64 already checked by b64_len into out, which holds exactly
 * want bytes. */
static void b64_decode(const char *s, size_t n, uint8_t *out, size_t want)
{
	uint8_t tmp[(B64_SALT_MAX > B64_KEY_LEN ? B64_SALT_MAX : B64_KEY_LEN) / 4 * 3];
	assert(n / 4 * 3 <= sizeof(tmp));
	int got = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
	/* got counts the padding's zero bytes too: got - want is the padding. */
	assert(got >= 0 && (size_t)got >= want && (size_t)got - want <= 2);
	memcpy(out, tmp, want);
	OPENSSL_cleanse(tmp, sizeof(tmp));
}

/* ------------------------------------------------------------------------ */
/* Hash table */

static uint64_t name_hash(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 */
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* The slot holding user, or the empty slot where it would go. */
static size_t table_slot(const struct passwd_db *db, const char *user, size_t user_len)
{
	size_t i = (size_t)name_hash(user, user_len) & db->table_mask;
	for (;;) {
		uint32_t v = db->table[i];
		if (v == 0)
			return i;
		const struct passwd_entry *e = &db->entries[v - 1];
		if (e->user_len == user_len && memcmp(e->user, user, user_len) == 0)
			return i;
		i = (i + 1) & db->table_mask; /* terminates: the table is at most half full */
	}
}

/* ------------------------------------------------------------------------ */
/* Parsing */

/* One line of the file with its number; the terminator is not included. */
struct line {
	const char *p;
	size_t len;
	unsigned no;
};

/* Advance *pos over the next line of text[0..len); false at the end. */
static bool next_line(const char *text, size_t len, size_t *pos, struct line *l)
{
	if (*pos >= len)
		return false;
	const char *start = text + *pos;
	const char *nl = memchr(start, '\n', len - *pos);
	size_t n = nl != NULL ? (size_t)(nl - start) : len - *pos;
	*pos += n + (nl != NULL);
	l->p = start;
	l->len = n;
	l->no++;
	return true;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Strip the CR of CRLF and trailing blanks; a hand-edited file may have
 * them, and neither can be part of a hash. */
static void trim_end(struct line *l)
{
	while (l->len > 0 && (l->p[l->len - 1] == '\r' || is_blank(l->p[l->len - 1])))
		l->len--;
}

static bool is_ignored(const struct line *l)
{
	return l->len == 0 || l->p[0] == '#';
}

/* Parse "1..PASSWD_ITERATIONS_MAX" from s[0..n); 0 if not a number in range. */
static uint32_t parse_iterations(const char *s, size_t n, bool *digits)
{
	uint64_t v = 0;
	*digits = n > 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9') {
			*digits = false;
			return 0;
		}
		if (v <= PASSWD_ITERATIONS_MAX) /* saturate: the caller reports the text */
			v = v * 10 + (uint64_t)(s[i] - '0');
	}
	return v >= 1 && v <= PASSWD_ITERATIONS_MAX ? (uint32_t)v : 0;
}

/*
 * Decode the hash field h[0..n) of one entry into e. On error write why
 * (without the "file:line: user" prefix) and return false.
 */
static bool parse_hash(const char *h, size_t n, struct passwd_entry *e, char *why, size_t why_len)
{
	if (n == 0) {
		seterr(why, why_len, "missing hash after ':'");
		return false;
	}
	if (h[0] != '$') {
		seterr(why, why_len,
		       "not a $7$ or $6$ hash (a plain-text password? hash the file with "
		       "mosquitto_passwd -U or set each user with starling passwd)");
		return false;
	}

	/* Split at '$': h = "$<scheme>$<f1>$<f2>[$<f3>]". */
	const char *field[5];
	size_t field_len[5];
	size_t nf = 0;
	const char *p = h + 1, *end = h + n;
	for (;;) {
		const char *d = memchr(p, '$', (size_t)(end - p));
		if (nf == 5) {
			nf++; /* too many fields: reported below as malformed */
			break;
		}
		field[nf] = p;
		field_len[nf] = (size_t)((d != NULL ? d : end) - p);
		nf++;
		if (d == NULL)
			break;
		p = d + 1;
	}

	const char *salt, *key;
	size_t salt_n, key_n;
	if (field_len[0] == 1 && field[0][0] == '7') {
		if (nf != 4) {
			seterr(why, why_len,
			       "malformed hash: expected $7$<iterations>$<salt>$<hash>");
			return false;
		}
		bool digits;
		uint32_t it = parse_iterations(field[1], field_len[1], &digits);
		if (!digits) {
			seterr(why, why_len, "iterations \"%.*s\" is not a number",
			       (int)(field_len[1] > 20 ? 20 : field_len[1]), field[1]);
			return false;
		}
		if (it == 0) {
			seterr(why, why_len, "iterations %.*s out of range 1..%d",
			       (int)(field_len[1] > 20 ? 20 : field_len[1]), field[1],
			       PASSWD_ITERATIONS_MAX);
			return false;
		}
		e->scheme = PASSWD_PBKDF2_SHA512;
		e->iterations = it;
		salt = field[2], salt_n = field_len[2];
		key = field[3], key_n = field_len[3];
	} else if (field_len[0] == 1 && field[0][0] == '6') {
		if (nf != 3) {
			seterr(why, why_len, "malformed hash: expected $6$<salt>$<hash>");
			return false;
		}
		e->scheme = PASSWD_SHA512;
		e->iterations = 0;
		salt = field[1], salt_n = field_len[1];
		key = field[2], key_n = field_len[2];
	} else {
		/* Name the scheme as written ("$2b$", "$argon2id$"), bounded. */
		size_t sn = field_len[0] > 16 ? 16 : field_len[0];
		seterr(why, why_len, "unknown hash scheme $%.*s%s", (int)sn, field[0],
		       nf > 1 && sn == field_len[0] ? "$" : "");
		return false;
	}

	if (salt_n == 0) {
		seterr(why, why_len, "empty salt");
		return false;
	}
	/* b64_len reads but never writes, so an overlong field is safe to
	 * measure before anything is decoded into the fixed arrays. */
	long sl = b64_len(salt, salt_n);
	if (sl < 0) {
		seterr(why, why_len, "salt is not valid base64");
		return false;
	}
	if (sl > PASSWD_SALT_MAX) {
		seterr(why, why_len, "salt is %ld bytes, at most %d allowed", sl, PASSWD_SALT_MAX);
		return false;
	}
	long kl = b64_len(key, key_n);
	if (kl < 0) {
		seterr(why, why_len, "hash is not valid base64");
		return false;
	}
	if (kl != PASSWD_KEY_BYTES) {
		seterr(why, why_len, "hash is %ld bytes, expected %d", kl, PASSWD_KEY_BYTES);
		return false;
	}
	e->salt_len = (uint8_t)sl;
	b64_decode(salt, salt_n, e->salt, (size_t)sl);
	b64_decode(key, key_n, e->hash, PASSWD_KEY_BYTES);
	return true;
}

/* Check the user name u[0..n); on error write why and return false. */
static bool check_user(const char *u, size_t n, char *why, size_t why_len)
{
	if (n == 0) {
		seterr(why, why_len, "empty user name");
		return false;
	}
	if (n > PASSWD_USER_MAX) {
		seterr(why, why_len, "user name is longer than %d bytes", PASSWD_USER_MAX);
		return false;
	}
	/* mosquitto trims blanks around names; refusing them keeps a migrated
	 * file from meaning something different here. */
	if (is_blank(u[0]) || is_blank(u[n - 1])) {
		seterr(why, why_len, "user name \"%.*s\" has leading or trailing blanks", (int)n,
		       u);
		return false;
	}
	return true;
}

/* A line may hold no control characters: they cannot be typed into a
 * CONNECT's user name by accident and would corrupt our error messages. */
static bool has_control(const struct line *l)
{
	for (size_t i = 0; i < l->len; i++) {
		unsigned char c = (unsigned char)l->p[i];
		if (c < 0x20 || c == 0x7f)
			return true;
	}
	return false;
}

int passwd_parse(const char *name, const char *text, size_t len, struct passwd_db **out, char *err,
                 size_t err_len)
{
	*out = NULL;
	struct passwd_db *db = calloc(1, sizeof(*db));
	if (db == NULL)
		goto nomem;

	/* Pass 1: an upper bound on entries and name bytes, so pass 2 never
	 * reallocates. Lines past the limit are still counted only up to it. */
	size_t n_entries = 0, name_bytes = 0, pos = 0;
	struct line l = {0};
	while (next_line(text, len, &pos, &l)) {
		trim_end(&l);
		if (is_ignored(&l) || n_entries == PASSWD_USERS_MAX)
			continue;
		n_entries++;
		const char *colon = memchr(l.p, ':', l.len);
		size_t un = colon != NULL ? (size_t)(colon - l.p) : l.len;
		name_bytes += un <= PASSWD_USER_MAX ? un : 0;
	}
	size_t table_size = 16;
	while (table_size < 2 * n_entries)
		table_size *= 2;
	db->entries = calloc(n_entries ? n_entries : 1, sizeof(*db->entries));
	db->names = malloc(name_bytes ? name_bytes : 1);
	db->table = calloc(table_size, sizeof(*db->table));
	if (db->entries == NULL || db->names == NULL || db->table == NULL)
		goto nomem;
	db->table_mask = table_size - 1;

	/* Pass 2: parse and index. */
	char why[256];
	size_t name_used = 0;
	pos = 0;
	l = (struct line){0};
	while (next_line(text, len, &pos, &l)) {
		if (l.len > LINE_MAX_BYTES) {
			seterr(err, err_len, "%s:%u: line is longer than %d bytes", name, l.no,
			       LINE_MAX_BYTES);
			goto fail;
		}
		if (memchr(l.p, '\0', l.len) != NULL) {
			seterr(err, err_len, "%s:%u: line contains a NUL byte", name, l.no);
			goto fail;
		}
		trim_end(&l);
		if (is_ignored(&l))
			continue;
		if (has_control(&l)) {
			seterr(err, err_len, "%s:%u: line contains a control character", name,
			       l.no);
			goto fail;
		}
		const char *colon = memchr(l.p, ':', l.len);
		if (colon == NULL) {
			seterr(err, err_len, "%s:%u: missing ':' between user name and hash", name,
			       l.no);
			goto fail;
		}
		size_t un = (size_t)(colon - l.p);
		if (!check_user(l.p, un, why, sizeof(why))) {
			seterr(err, err_len, "%s:%u: %s", name, l.no, why);
			goto fail;
		}
		if (db->count == PASSWD_USERS_MAX) {
			seterr(err, err_len, "%s:%u: more than %d users", name, l.no,
			       PASSWD_USERS_MAX);
			goto fail;
		}
		struct passwd_entry *e = &db->entries[db->count];
		if (!parse_hash(colon + 1, l.len - un - 1, e, why, sizeof(why))) {
			seterr(err, err_len, "%s:%u: user \"%.*s\": %s", name, l.no, (int)un, l.p,
			       why);
			goto fail;
		}
		size_t slot = table_slot(db, l.p, un);
		if (db->table[slot] != 0) {
			seterr(err, err_len, "%s:%u: user \"%.*s\" is already listed on line %u",
			       name, l.no, (int)un, l.p, db->entries[db->table[slot] - 1].line);
			goto fail;
		}
		assert(name_used + un <= name_bytes);
		memcpy(db->names + name_used, l.p, un);
		e->user = db->names + name_used;
		e->user_len = (uint16_t)un;
		e->line = l.no;
		name_used += un;
		db->count++;
		db->table[slot] = (uint32_t)db->count;

		/* The dummy costs as much as the slowest real entry, so a miss is
		 * never faster than a hit. */
		if (db->dummy.scheme == 0 ||
		    (e->scheme == PASSWD_PBKDF2_SHA512 && e->iterations > db->dummy.iterations)) {
			db->dummy.scheme = e->scheme;
			db->dummy.iterations = e->iterations;
			db->dummy.salt_len = e->salt_len;
		}
	}
	if (db->dummy.scheme == 0) { /* empty file: nothing to time against */
		db->dummy.scheme = PASSWD_PBKDF2_SHA512;
		db->dummy.iterations = PASSWD_ITERATIONS_DEFAULT;
		db->dummy.salt_len = PASSWD_SALT_BYTES;
	}
	/* A random target: no password can be known to match the dummy. */
	if (RAND_bytes(db->dummy.hash, sizeof(db->dummy.hash)) != 1) {
		seterr(err, err_len, "%s: no random bytes from OpenSSL", name);
		goto fail;
	}
	*out = db;
	return 0;

nomem:
	seterr(err, err_len, "%s: out of memory", name);
fail:
	passwd_free(db);
	return -1;
}

void passwd_free(struct passwd_db *db)
{
	if (db == NULL)
		return;
	if (db->entries != NULL)
		OPENSSL_cleanse(db->entries, db->count * sizeof(*db->entries));
	free(db->entries);
	free(db->names);
	free(db->table);
	free(db);
}

size_t passwd_count(const struct passwd_db *db)
{
	return db->count;
}

int passwd_file_read(const char *path, char **text, size_t *len, char *err, size_t err_len)
{
	return file_read_all(path, PASSWD_FILE_MAX, text, len, err, err_len);
}

int passwd_load(const char *path, struct passwd_db **out, char *err, size_t err_len)
{
	*out = NULL;
	char *text;
	size_t len;
	if (passwd_file_read(path, &text, &len, err, err_len) != 0)
		return -1;
	int rc = passwd_parse(path, text, len, out, err, err_len);
	OPENSSL_cleanse(text, len);
	free(text);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Lookup and verification */

const struct passwd_entry *passwd_find(const struct passwd_db *db, const char *user,
                                       size_t user_len)
{
	if (user_len == 0 || user_len > PASSWD_USER_MAX)
		return NULL;
	uint32_t v = db->table[table_slot(db, user, user_len)];
	return v != 0 ? &db->entries[v - 1] : NULL;
}

/* The key the entry's scheme derives from password into key[]; false if
 * OpenSSL failed. */
static bool derive(const struct passwd_entry *e, const uint8_t *password, size_t password_len,
                   uint8_t key[PASSWD_KEY_BYTES])
{
	static const uint8_t empty[1];
	if (password == NULL)
		password = empty; /* only with password_len == 0 */
	if (e->scheme == PASSWD_PBKDF2_SHA512)
		return PKCS5_PBKDF2_HMAC((const char *)password, (int)password_len, e->salt,
		                         e->salt_len, (int)e->iterations, EVP_sha512(),
		                         PASSWD_KEY_BYTES, key) == 1;

	assert(e->scheme == PASSWD_SHA512);
	/* mosquitto 1.x: SHA-512 over the password, then the salt bytes. */
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = 0;
	bool ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) == 1 &&
	          EVP_DigestUpdate(ctx, password, password_len) == 1 &&
	          EVP_DigestUpdate(ctx, e->salt, e->salt_len) == 1 &&
	          EVP_DigestFinal_ex(ctx, key, &n) == 1 && n == PASSWD_KEY_BYTES;
	EVP_MD_CTX_free(ctx);
	return ok;
}

bool passwd_verify(const struct passwd_entry *e, const uint8_t *password, size_t password_len)
{
	if (e == NULL || password_len > PASSWD_PASSWORD_MAX)
		return false;
	uint8_t key[PASSWD_KEY_BYTES];
	bool ok = derive(e, password, password_len, key) &&
	          CRYPTO_memcmp(key, e->hash, PASSWD_KEY_BYTES) == 0;
	OPENSSL_cleanse(key, sizeof(key));
	return ok;
}

bool passwd_check(const struct passwd_db *db, const char *user, size_t user_len,
                  const uint8_t *password, size_t password_len)
{
	const struct passwd_entry *e = passwd_find(db, user, user_len);
	if (e == NULL) {
		(void)passwd_verify(&db->dummy, password, password_len);
		return false;
	}
	return passwd_verify(e, password, password_len);
}

size_t passwd_hash(char *out, size_t cap, const uint8_t *password, size_t password_len,
                   unsigned iterations)
{
	if (iterations < 1 || iterations > PASSWD_ITERATIONS_MAX ||
	    password_len > PASSWD_PASSWORD_MAX || cap == 0)
		return 0;
	struct passwd_entry e = {.scheme = PASSWD_PBKDF2_SHA512,
	                         .iterations = iterations,
	                         .salt_len = PASSWD_SALT_BYTES};
	size_t n = 0;
	char salt64[B64_SALT_MAX + 1], key64[B64_KEY_LEN + 1];
	if (RAND_bytes(e.salt, PASSWD_SALT_BYTES) != 1 ||
	    !derive(&e, password, password_len, e.hash))
		goto done;
	EVP_EncodeBlock((unsigned char *)salt64, e.salt, PASSWD_SALT_BYTES);
	EVP_EncodeBlock((unsigned char *)key64, e.hash, PASSWD_KEY_BYTES);
	int w = snprintf(out, cap, "$7$%u$%s$%s", iterations, salt64, key64);
	if (w > 0 && (size_t)w < cap)
		n = (size_t)w;
done:
	if (n == 0)
		out[0] = '\0';
	OPENSSL_cleanse(&e, sizeof(e));
	return n;
}
