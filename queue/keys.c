/*
 * keys.c - the key file of an encrypted journal and the key ids the
 * journal remembers (meta "key:" entries with each key's wear).
 *
 * Invariant: a journal opens with a key file only when every key some
 * record, attempt or audit event is still sealed with is in it; ids no
 * value uses any more are forgotten.  Key material is wiped after use.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>

#include "core/secret.h"

#include "core/alloc.h"
#include "journal_int.h"

/* --- keys ------------------------------------------------------------------ */

/* Parses one key line (64 hex digits) into 32 bytes.  0 or -1. */
static int
parse_key(const char *s, size_t n, unsigned char out[32])
{
	if (n != 64)
		return -1;
	for (int i = 0; i < 32; i++) {
		unsigned v = 0;
		for (int k = 0; k < 2; k++) {
			char c = s[2 * i + k];
			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= (unsigned)(c - 'a' + 10);
			else if (c >= 'A' && c <= 'F')
				v |= (unsigned)(c - 'A' + 10);
			else
				return -1;
		}
		out[i] = (unsigned char)v;
	}
	return 0;
}

/* Derives a key's id and its two working keys (HKDF-SHA-256). */
static int
derive(const unsigned char master[32], jkey *k)
{
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	unsigned char id[32];
	if (mbedtls_hkdf(md, NULL, 0, master, 32, (const unsigned char *)"hl7q key id", 11, id, 32) ||
	    mbedtls_hkdf(md, NULL, 0, master, 32, (const unsigned char *)"hl7q record seal v1", 19, k->enc, 32) ||
	    mbedtls_hkdf(md, NULL, 0, master, 32, (const unsigned char *)"hl7q patient index v1", 21, k->mac, 32))
		return -1;
	memcpy(k->id, id, 4);
	return 0;
}

static void
id_hex(const unsigned char *id, char out[9])
{
	snprintf(out, 9, "%02x%02x%02x%02x", id[0], id[1], id[2], id[3]);
}

/*
 * The key ids the journal knows: one meta entry per key, "key:" + the 4
 * id bytes -> [VAL_FORMAT][seals be64] (values sealed under it, its
 * wear), so any number of them can be kept.  Journals written before list
 * up to 64 ids in meta "key_ids" ([1][n][id 4 ...]); a writable open moves
 * them into entries (keys_migrate).
 */
#define KEY_META_LEN 8
static void
key_meta(unsigned char k[KEY_META_LEN], const unsigned char *id)
{
	memcpy(k, "key:", 4);
	memcpy(k + 4, id, 4);
}

/* Every key id known, in *out (malloc'd, the caller frees; NULL when none).
 * Returns how many, or a negative code. */
static long
key_ids_list(hq_journal *j, MDB_txn *txn, unsigned char (**out)[4])
{
	unsigned char(*ids)[4] = NULL;
	long n = 0, cap = 0;
	MDB_cursor *c;
	MDB_val k = {4, "key:"}, v;
	int rc;

	*out = NULL;
	if ((rc = mdb_cursor_open(txn, j->meta, &c)))
		return hq_neg(rc);
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	for (;;) {
		const unsigned char *from = NULL;
		size_t cnt = 0;
		if (rc == 0 && k.mv_size == KEY_META_LEN && memcmp(k.mv_data, "key:", 4) == 0) {
			from = (const unsigned char *)k.mv_data + 4;
			cnt = 1;
		} else if (rc == 0 || rc == MDB_NOTFOUND) {
			/* the entries are done: then the old list, if any */
			MDB_val ok = {7, "key_ids"}, ov;
			if (mdb_get(txn, j->meta, &ok, &ov) == 0 && ov.mv_size >= 2 &&
			    ov.mv_size >= 2 + 4 * (size_t)((unsigned char *)ov.mv_data)[1]) {
				from = (const unsigned char *)ov.mv_data + 2;
				cnt = ((unsigned char *)ov.mv_data)[1];
			}
			rc = MDB_NOTFOUND;
		}
		for (size_t i = 0; i < cnt; i++) {
			int dup = 0;
			for (long m = 0; m < n && !dup; m++)
				dup = memcmp(ids[m], from + 4 * i, 4) == 0;
			if (dup)
				continue;
			if (n == cap) {
				ids = hq_xrealloc(ids, (size_t)(cap = cap ? 2 * cap : 16) * 4);
			}
			memcpy(ids[n++], from + 4 * i, 4);
		}
		if (rc != 0)
			break;
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	*out = ids;
	return n;
}

/* Stored seals of key id (0 when it has no entry). */
uint64_t
jnl_key_seals(hq_journal *j, MDB_txn *txn, const unsigned char *id)
{
	unsigned char km[KEY_META_LEN];
	key_meta(km, id);
	MDB_val k = {KEY_META_LEN, km}, v;
	if (mdb_get(txn, j->meta, &k, &v) != 0 || v.mv_size < 9)
		return 0;
	return get_be64((unsigned char *)v.mv_data + 1);
}

int
jnl_key_put(hq_journal *j, MDB_txn *txn, const unsigned char *id, uint64_t seals)
{
	unsigned char km[KEY_META_LEN], val[9];
	key_meta(km, id);
	val[0] = VAL_FORMAT;
	put_be64(val + 1, seals);
	MDB_val k = {KEY_META_LEN, km}, v = {9, val};
	return mdb_put(txn, j->meta, &k, &v, 0);
}

/* Moves the old "key_ids" list into entries. */
static int
keys_migrate(hq_journal *j, MDB_txn *txn)
{
	MDB_val ok = {7, "key_ids"}, ov;
	if (mdb_get(txn, j->meta, &ok, &ov) != 0)
		return 0;
	const unsigned char *p = ov.mv_data;
	unsigned char copy[2 + 4 * 255];
	size_t n = ov.mv_size >= 2 ? p[1] : 0;
	if (ov.mv_size < 2 + 4 * n)
		n = 0;
	memcpy(copy, p, 2 + 4 * n);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		unsigned char km[KEY_META_LEN];
		key_meta(km, copy + 2 + 4 * i);
		MDB_val k = {KEY_META_LEN, km}, v;
		if (mdb_get(txn, j->meta, &k, &v) == MDB_NOTFOUND)
			rc = jnl_key_put(j, txn, copy + 2 + 4 * i, 0);
	}
	return rc ? rc : mdb_del(txn, j->meta, &ok, NULL);
}

/* The key id a sealed blob was made with, or NULL. */
static const unsigned char *
blob_key(const unsigned char *b, size_t n)
{
	return n >= SEAL_OVERHEAD ? b + 1 : NULL;
}

/* The sealed answer excerpt of an attempt value, or NULL. */
static const unsigned char *
attempt_blob(const MDB_val *v, size_t *n)
{
	const unsigned char *p = v->mv_data;
	if (v->mv_size < 17 || p[0] != ATTEMPT_SEALED)
		return NULL;
	size_t elen = (size_t)(p[15] << 8 | p[16]);
	if (elen > v->mv_size - 17)
		return NULL;
	*n = v->mv_size - 17 - elen;
	return p + 17 + elen;
}

/*
 * 1 when an event of the access audit store beside the journal (database
 * "audit", queue/audit.c) holds a patient id sealed under key id, 0 when
 * none does, or a negative code.  The store keeps the sealed bytes in hex
 * after "patient_sealed":", the format byte then the key id first.
 */
static int
audit_key_in_use(MDB_txn *txn, const unsigned char *id)
{
	static const unsigned char formats[] = {SEAL_FORMAT, SEAL_FORMAT_V1};
	char needle[2][40];
	size_t nl[2];
	MDB_dbi dbi;
	MDB_cursor *c;
	MDB_val k, v;
	int rc, used = 0;
	if ((rc = mdb_dbi_open(txn, "audit", 0, &dbi)) == MDB_NOTFOUND)
		return 0; /* no audit store */
	if (rc || (rc = mdb_cursor_open(txn, dbi, &c)))
		return hq_neg(rc);
	for (int f = 0; f < 2; f++)
		nl[f] = (size_t)snprintf(needle[f], sizeof needle[f], "\"patient_sealed\":\"%02x%02x%02x%02x%02x",
					 formats[f], id[0], id[1], id[2], id[3]);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && !used; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
		for (int f = 0; f < 2 && !used; f++)
			used = memmem(v.mv_data, v.mv_size, needle[f], nl[f]) != NULL;
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return hq_neg(rc);
	return used;
}

/* 1 when a record, an attempt or an audit event is still sealed under key
 * id, 0 when none is (a scan of the journal), or a negative code. */
static int
key_in_use(hq_journal *j, MDB_txn *txn, const unsigned char *id)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc, used = 0;
	if ((rc = mdb_cursor_open(txn, j->msgs, &c)))
		return hq_neg(rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && !used;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		hq_record r;
		const unsigned char *kid;
		if (jnl_decode(v.mv_data, v.mv_size, &r) == 0 &&
		    (kid = blob_key((const unsigned char *)r.f[HQ_F_SEALED].p, r.f[HQ_F_SEALED].n)) &&
		    memcmp(kid, id, 4) == 0)
			used = 1;
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return hq_neg(rc);
	if (used)
		return 1;
	if ((rc = mdb_cursor_open(txn, j->attempts, &c)))
		return hq_neg(rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && !used;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		size_t bn;
		const unsigned char *b = attempt_blob(&v, &bn), *kid;
		if (b && (kid = blob_key(b, bn)) && memcmp(kid, id, 4) == 0)
			used = 1;
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return hq_neg(rc);
	if (used)
		return 1;
	return audit_key_in_use(txn, id);
}

/* Reads key_file's keys into j->keys (keys[0] first).  Returns 0, or
 * HQ_ECONFIG with err set and no key left in j. */
static int
keys_read(hq_journal *j, const char *key_file, char *err, size_t errcap)
{
	FILE *fp = fopen(key_file, "r");
	char line[256];
	int lineno = 0;
	unsigned char master[32];

	if (fp == NULL) {
		snprintf(err, errcap, "encryption_key_file %s: %s", key_file, strerror(errno));
		return HQ_ECONFIG;
	}
	setvbuf(fp, NULL, _IONBF, 0); /* no stdio buffer left holding the key text */
	if (j->seal_limit == 0)
		hq_journal_set_seal_limits(j, HQ_SEAL_WARN, HQ_SEAL_LIMIT);
	j->nkeys = 0;
	while (fgets(line, sizeof line, fp)) {
		lineno++;
		size_t n = strcspn(line, "#\r\n");
		while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
			n--;
		char *p = line;
		while (n > 0 && (*p == ' ' || *p == '\t'))
			p++, n--;
		if (n == 0)
			continue;
		if (parse_key(p, n, master) != 0 || j->nkeys == MAX_KEYS ||
		    derive(master, &j->keys[j->nkeys]) != 0) {
			fclose(fp);
			hq_secret_wipe(master, sizeof master);
			hq_secret_wipe(line, sizeof line);
			snprintf(err, errcap, j->nkeys == MAX_KEYS ? "%s:%d: more than 256 keys" : "%s:%d: not a key: 64 hex digits expected (openssl rand -hex 32)",
				 key_file, lineno);
			hq_secret_wipe(j->keys, sizeof j->keys);
			j->nkeys = 0;
			return HQ_ECONFIG;
		}
		j->nkeys++;
	}
	fclose(fp);
	hq_secret_wipe(master, sizeof master);
	hq_secret_wipe(line, sizeof line);
	if (j->nkeys == 0) {
		snprintf(err, errcap, "encryption_key_file %s holds no key (openssl rand -hex 32 > FILE)", key_file);
		return HQ_ECONFIG;
	}
	return 0;
}

int
hq_journal_set_keys(hq_journal *j, const char *key_file, char *err, size_t errcap)
{
	int rc = keys_read(j, key_file, err, errcap);
	if (rc)
		return rc;
	/* Every key a record is still sealed with must be here; the ids of
	 * keys no record uses any more are forgotten. */
	MDB_txn *txn;
	unsigned char(*used)[4] = NULL;
	char hex[9];
	long nused;
	rc = mdb_txn_begin(j->env, NULL, j->readonly ? MDB_RDONLY : 0, &txn);
	if (rc) {
		j->nkeys = 0;
		snprintf(err, errcap, "journal: %s", mdb_strerror(rc));
		return rc;
	}
	if (!j->readonly && (rc = keys_migrate(j, txn)))
		goto fail;
	if ((nused = key_ids_list(j, txn, &used)) < 0) {
		rc = CODE_OF(nused);
		goto fail;
	}
	for (long i = 0; i < nused; i++) {
		if (jnl_key_by_id(j, used[i]) != NULL)
			continue;
		int inuse = key_in_use(j, txn, used[i]);
		if (inuse < 0) {
			rc = CODE_OF(inuse);
			goto fail;
		}
		if (inuse) {
			id_hex(used[i], hex);
			mdb_txn_abort(txn);
			free(used);
			j->nkeys = 0;
			snprintf(err, errcap, "the journal has records sealed with key id %s, which %s does not hold (keep old keys below the new one, or run hl7q reseal before removing it)",
				 hex, key_file);
			return HQ_ECONFIG;
		}
		if (!j->readonly) { /* no record uses it: forget it */
			unsigned char km[KEY_META_LEN];
			key_meta(km, used[i]);
			MDB_val k = {KEY_META_LEN, km};
			if ((rc = mdb_del(txn, j->meta, &k, NULL)) && rc != MDB_NOTFOUND)
				goto fail;
			rc = 0;
		}
	}
	free(used);
	used = NULL;
	j->seals = jnl_key_seals(j, txn, j->keys[0].id);
	j->unsaved_seals = 0;
	if (!j->readonly) {
		id_hex(j->keys[0].id, hex);
		if (j->seals >= j->seal_limit) {
			mdb_txn_abort(txn);
			j->nkeys = 0;
			snprintf(err, errcap, "key id %s has sealed %llu values, the most one key may (random 96-bit nonces): put a new key on the first line of %s, keep this one below it, and run hl7q reseal",
				 hex, (unsigned long long)j->seals, key_file);
			return HQ_ECONFIG;
		}
		if ((rc = jnl_key_put(j, txn, j->keys[0].id, j->seals)) || (rc = mdb_txn_commit(txn))) {
			txn = NULL;
			goto fail;
		}
		return 0;
	}
	mdb_txn_abort(txn);
	return 0;
fail:
	if (txn)
		mdb_txn_abort(txn);
	free(used);
	j->nkeys = 0;
	snprintf(err, errcap, "journal: %s", hq_strerror(rc));
	return rc;
}

int
hq_journal_encrypted(hq_journal *j, char *ids, size_t cap)
{
	MDB_txn *txn;
	unsigned char(*used)[4];
	if (cap)
		ids[0] = 0;
	if (mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn))
		return 0;
	long n = key_ids_list(j, txn, &used);
	mdb_txn_abort(txn);
	for (long i = 0; i < n && cap > 0; i++) {
		char hex[9];
		id_hex(used[i], hex);
		size_t len = strlen(ids);
		snprintf(ids + len, cap - len, "%s%s", i ? " " : "", hex);
	}
	free(used);
	return n > 0;
}
