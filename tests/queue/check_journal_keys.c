/*
 * check_journal_keys.c - unit tests for the key handling of the journal
 * (queue/keys.c, seal.c, reseal.c; issue 15, point 4: keys rotate as
 * documented): an old key leaves the key file once no record uses it, any
 * number of key ids, hl7q reseal (resumable), associated data binding the
 * journal instance and the plaintext metadata (records sealed the old way
 * still open), and the per-key seal counter that warns, then refuses.
 */
#include <check.h>
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/gcm.h>
#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>

#include "core/error.h"
#include "queue/journal.h"
#include "tests/check_util.h"

static char dir[64];

static void
setup(void)
{
	check_journal_dir(dir, sizeof dir, "keys");
}

static void
teardown(void)
{
	char paths[256];
	snprintf(paths, sizeof paths, "%s /tmp/hl7q-kf-*-%d", dir, (int)getpid());
	check_rm_rf(paths);
}

static hq_str
S(const char *s)
{
	return (hq_str){s, strlen(s)};
}

static const char RAW[] = "MSH|^~\\&|A|B|C|D|1||ADT^A01|K1|P|2.5\rPID|1||SECRETMRN77^^^H||SECRETNAME\r";

static uint64_t
add_one(hq_journal *j, const char *ctrl, const char *pid)
{
	hq_batch *b;
	hq_record r;
	uint64_t id;
	memset(&r, 0, sizeof r);
	r.received_us = 1700000000000000ull;
	r.state = HQ_MSG_ACCEPTED;
	memcpy(r.ack, "AA", 2);
	r.f[HQ_F_LISTENER] = S("adt");
	r.f[HQ_F_CONTROL_ID] = S(ctrl);
	r.f[HQ_F_TYPE] = S("ADT^A01");
	r.f[HQ_F_PATIENT_ID] = S(pid);
	r.f[HQ_F_RAW] = S(RAW);
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	ck_assert_int_eq(hq_batch_add(b, &r, NULL, &id), 0);
	ck_assert_int_eq(hq_batch_add_delivery(b, id, "t", r.received_us), 0);
	ck_assert_int_eq(hq_batch_commit(b), 0);
	return id;
}

/* Key i as 64 hex digits. */
static void
key_hex(int i, char out[65])
{
	for (int b = 0; b < 32; b++)
		snprintf(out + 2 * b, 3, "%02x",
			 (unsigned)((i * 37 + b * 11 + 1) & 0xff) ^ (unsigned)(i >> 8));
}

/* Writes a key file holding keys[0..n) (indices for key_hex), first line first. */
static const char *
key_file(const char *name, const int *keys, int n)
{
	static char path[160];
	snprintf(path, sizeof path, "/tmp/hl7q-kf-%s-%d", name, (int)getpid());
	FILE *fp = fopen(path, "w");
	ck_assert_ptr_nonnull(fp);
	fprintf(fp, "# test keys\n");
	for (int i = 0; i < n; i++) {
		char hex[65];
		key_hex(keys[i], hex);
		fprintf(fp, "%s\n", hex);
	}
	fclose(fp);
	chmod(path, 0600);
	return path;
}

static int
record_opens(hq_journal *j, uint64_t id)
{
	hq_record r;
	void *mem = NULL;
	int rc = hq_journal_get(j, id, &r, &mem);
	int ok = rc == 0 && !r.locked && r.f[HQ_F_RAW].n == strlen(RAW) &&
		 memcmp(r.f[HQ_F_RAW].p, RAW, strlen(RAW)) == 0;
	free(mem);
	return ok;
}

/* Whether data.mdb in directory d holds the bytes s. */
static int
file_holds(const char *d, const char *s)
{
	char path[128];
	snprintf(path, sizeof path, "%s/data.mdb", d);
	FILE *fp = fopen(path, "rb");
	ck_assert_ptr_nonnull(fp);
	static char buf[4 << 20];
	size_t n = fread(buf, 1, sizeof buf, fp);
	fclose(fp);
	return memmem(buf, n, s, strlen(s)) != NULL;
}

/* 15.4: once no record uses the old key, removing it from the key file lets
 * the journal open (today: refused for ever, naming the key id). */
START_TEST(test_keys_old_key_removable_once_unused)
{
	hq_journal *j;
	char err[1300];
	int a[] = {1}, ba[] = {2, 1}, b[] = {2};
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("a", a, 1), err, sizeof err), 0);
	uint64_t old = add_one(j, "K1", "SECRETMRN77");
	hq_journal_close(j);
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("ba", ba, 2), err, sizeof err), 0);
	uint64_t new = add_one(j, "K2", "SECRETMRN77");
	hq_journal_close(j);
	/* still used: B alone is refused */
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("b", b, 1), err, sizeof err), HQ_ECONFIG);
	ck_assert_msg(strstr(err, "sealed with key id") != NULL, "%s", err);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("ba", ba, 2), err, sizeof err), 0);
	ck_assert_int_eq(hq_journal_purge(j, &old, 1), 1);
	hq_journal_close(j);
	/* no record uses A any more: B alone opens, and A is forgotten */
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("b", b, 1), err, sizeof err), 0);
	ck_assert(record_opens(j, new));
	char ids[200];
	ck_assert_int_eq(hq_journal_encrypted(j, ids, sizeof ids), 1);
	ck_assert_msg(strchr(ids, ' ') == NULL, "one key id left: %s", ids);
	hq_journal_close(j);
}
END_TEST

/* 15.4: more than 64 key ids are recorded (today: 16 keys in the file, 64 ids). */
START_TEST(test_keys_more_than_64_ids)
{
	enum { N = 70 };
	hq_journal *j;
	char err[1300], ids[N * 9 + 8];
	int keys[N];
	uint64_t rec[N];
	for (int i = 0; i < N; i++) {
		for (int k = 0; k <= i; k++)
			keys[k] = i - k; /* the newest first */
		ck_assert_int_eq(hq_journal_open(dir, 64 << 20, 0, &j), 0);
		ck_assert_msg(hq_journal_set_keys(j, key_file("many", keys, i + 1), err, sizeof err) == 0,
			      "key %d: %s", i, err);
		rec[i] = add_one(j, "M", "P");
		hq_journal_close(j);
	}
	ck_assert_int_eq(hq_journal_open(dir, 0, 1, &j), 0);
	ck_assert_int_eq(hq_journal_encrypted(j, ids, sizeof ids), 1);
	int spaces = 0;
	for (char *p = ids; *p; p++)
		spaces += *p == ' ';
	ck_assert_int_eq(spaces + 1, N);
	/* every key still needed: the first 69 alone are refused */
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("many", keys, N - 1), err, sizeof err), HQ_ECONFIG);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("many", keys, N), err, sizeof err), 0);
	for (int i = 0; i < N; i++)
		ck_assert(record_opens(j, rec[i]));
	hq_journal_close(j);
}
END_TEST

/* 15.4: turning encryption on seals the records stored before (hl7q reseal),
 * a slice at a time with the progress kept across a reopen; after a
 * rotation, reseal moves everything to the new key so the old one can go. */
START_TEST(test_keys_reseal_resumable)
{
	hq_journal *j;
	char err[1300];
	int a[] = {1}, ba[] = {2, 1}, b[] = {2};
	uint64_t ids[25];
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	for (int i = 0; i < 25; i++) {
		char ctrl[16];
		snprintf(ctrl, sizeof ctrl, "R%d", i);
		ids[i] = add_one(j, ctrl, "SECRETMRN77");
	}
	hq_outcome o;
	memset(&o, 0, sizeof o);
	o.id = ids[0];
	o.state = HQ_DLV_RETRY;
	o.at_us = 1800000000000000ull;
	memcpy(o.body, "SECRETANSWER", 12);
	o.body_len = 12;
	ck_assert_int_eq(hq_journal_record_outcomes(j, "t", &o, 1), 0);
	hq_journal_index(j, 100);
	hq_journal_close(j);
	ck_assert(file_holds(dir, "SECRETMRN77"));

	/* a first slice, then "a crash": the progress is in the journal */
	int done = 0;
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("a", a, 1), err, sizeof err), 0);
	ck_assert_int_eq(hq_journal_reseal(j, 10, &done), 10);
	ck_assert(!done);
	hq_journal_close(j);
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("a", a, 1), err, sizeof err), 0);
	long total = 0, n;
	while (!done) {
		ck_assert_int_ge(n = hq_journal_reseal(j, 10, &done), 0);
		total += n;
	}
	ck_assert_int_eq(total, 15 + 1); /* the other records, and the answer excerpt */
	for (int i = 0; i < 25; i++)
		ck_assert(record_opens(j, ids[i]));
	uint64_t got[32];
	ck_assert_int_eq(hq_journal_lookup(j, HQ_IDX_PATIENT, S("SECRETMRN77"), got, 32), 25);
	ck_assert_int_eq(hq_journal_reseal(j, 100, &done), 0); /* nothing left */
	ck_assert(done);
	/* freed pages keep old bytes until reused: a compacted copy holds none */
	char copy[96];
	snprintf(copy, sizeof copy, "%s/copy", dir);
	ck_assert_int_eq(mkdir(copy, 0700), 0);
	ck_assert_int_eq(hq_journal_copy(j, copy), 0);
	hq_journal_close(j);
	ck_assert(!file_holds(copy, "SECRETMRN77"));
	ck_assert(!file_holds(copy, "SECRETANSWER"));
	ck_assert(!file_holds(copy, "MSH|"));

	/* rotate to B, reseal, then A can leave the key file */
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("ba", ba, 2), err, sizeof err), 0);
	total = 0;
	do {
		ck_assert_int_ge(n = hq_journal_reseal(j, 7, &done), 0);
		total += n;
	} while (!done);
	ck_assert_int_eq(total, 26);
	hq_journal_close(j);
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	ck_assert_msg(hq_journal_set_keys(j, key_file("b", b, 1), err, sizeof err) == 0, "%s", err);
	for (int i = 0; i < 25; i++)
		ck_assert(record_opens(j, ids[i]));
	ck_assert_int_eq(hq_journal_lookup(j, HQ_IDX_PATIENT, S("SECRETMRN77"), got, 32), 25);
	hq_journal_close(j);
}
END_TEST

/* Opens the journal's LMDB environment directly (to play the attacker). */
static MDB_env *
raw_env(MDB_txn **txn, MDB_dbi *msgs)
{
	MDB_env *env;
	ck_assert_int_eq(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 16);
	ck_assert_int_eq(mdb_env_open(env, dir, 0, 0600), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, txn), 0);
	ck_assert_int_eq(mdb_dbi_open(*txn, "msgs", 0, msgs), 0);
	return env;
}

static void
be64(unsigned char *k, uint64_t id)
{
	for (int i = 0; i < 8; i++)
		k[i] = (unsigned char)(id >> (56 - 8 * i));
}

/* 15.4: the associated data binds the plaintext metadata stored beside the
 * sealed bytes, and the journal instance (today: the record id only). */
START_TEST(test_keys_aad_binds_metadata_and_instance)
{
	hq_journal *j;
	char err[1300], other[96];
	int a[] = {1};
	hq_record r;
	void *mem;
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("a", a, 1), err, sizeof err), 0);
	uint64_t id = add_one(j, "CTRL9", "SECRETMRN77");
	uint64_t id2 = add_one(j, "CTRL8", "SECRETMRN77");
	hq_journal_close(j);
	/* a second journal, same key, same ids */
	snprintf(other, sizeof other, "%s/other", dir);
	ck_assert_int_eq(hq_journal_open(other, 16 << 20, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("a", a, 1), err, sizeof err), 0);
	ck_assert_uint_eq(add_one(j, "CTRL9", "SECRETMRN77"), id);
	hq_journal_close(j);

	MDB_txn *txn;
	MDB_dbi dbi;
	unsigned char k[8];
	MDB_val key = {8, k}, val;
	MDB_env *env = raw_env(&txn, &dbi);
	/* record id: change a plaintext field (the control id CTRL9 -> CTRL7) */
	be64(k, id);
	ck_assert_int_eq(mdb_get(txn, dbi, &key, &val), 0);
	unsigned char *copy = malloc(val.mv_size), *stolen = malloc(val.mv_size);
	memcpy(copy, val.mv_data, val.mv_size);
	memcpy(stolen, val.mv_data, val.mv_size);
	size_t stolen_n = val.mv_size;
	unsigned char *c = memmem(copy, val.mv_size, "CTRL9", 5);
	ck_assert_ptr_nonnull(c);
	c[4] = '7';
	MDB_val nv = {val.mv_size, copy};
	ck_assert_int_eq(mdb_put(txn, dbi, &key, &nv, 0), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	free(copy);
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("a", a, 1), err, sizeof err), 0);
	ck_assert_int_eq(hq_journal_get(j, id, &r, &mem), HQ_ECORRUPT);
	ck_assert(record_opens(j, id2));
	hq_journal_close(j);

	/* the untouched record of this journal, copied into the other one at
	 * the same id: does not open there */
	char save[64];
	snprintf(save, sizeof save, "%s", dir);
	snprintf(dir, sizeof dir, "%s", other);
	env = raw_env(&txn, &dbi);
	be64(k, id);
	nv = (MDB_val){stolen_n, stolen};
	ck_assert_int_eq(mdb_put(txn, dbi, &key, &nv, 0), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	snprintf(dir, sizeof dir, "%s", save);
	free(stolen);
	ck_assert_int_eq(hq_journal_open(other, 0, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("a", a, 1), err, sizeof err), 0);
	ck_assert_int_eq(hq_journal_get(j, id, &r, &mem), HQ_ECORRUPT);
	hq_journal_close(j);
}
END_TEST

/*
 * A record sealed the way hl7q did before the format byte 2 (associated
 * data: the record id alone) still opens: the test writes one by hand,
 * following the stored format (see queue/seal.c) and the key derivation.
 */
static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

START_TEST(test_keys_old_format_still_opens)
{
	hq_journal *j;
	char err[1300], hex[65];
	int a[] = {1};
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("a", a, 1), err, sizeof err), 0);
	uint64_t id = add_one(j, "OLD1", "SECRETMRN77");
	hq_journal_close(j);

	unsigned char master[32], kid[32], enc[32];
	key_hex(1, hex);
	for (int i = 0; i < 32; i++) {
		unsigned v;
		sscanf(hex + 2 * i, "%2x", &v);
		master[i] = (unsigned char)v;
	}
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	ck_assert_int_eq(
		mbedtls_hkdf(md, NULL, 0, master, 32, (const unsigned char *)"hl7q key id", 11, kid, 32), 0);
	ck_assert_int_eq(mbedtls_hkdf(md, NULL, 0, master, 32,
				      (const unsigned char *)"hl7q record seal v1", 19, enc, 32),
			 0);
	/* plaintext of the sealed field: RAW, PATIENT_ID, PATIENT_AUTH */
	size_t rl = strlen(RAW), plen = 4 + rl + 4 + 11 + 4;
	unsigned char plain[256], blob[256 + 33];
	put32(plain, (uint32_t)rl);
	memcpy(plain + 4, RAW, rl);
	put32(plain + 4 + rl, 11);
	memcpy(plain + 8 + rl, "SECRETMRN77", 11);
	put32(plain + 8 + rl + 11, 0);
	unsigned char aad[8];
	be64(aad, id);
	blob[0] = 1;
	memcpy(blob + 1, kid, 4);
	memset(blob + 5, 0x5a, 12);
	mbedtls_gcm_context g;
	mbedtls_gcm_init(&g);
	ck_assert_int_eq(mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, enc, 256), 0);
	ck_assert_int_eq(mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, plen, blob + 5, 12, aad,
						   8, plain, blob + 17, 16, blob + 17 + plen),
			 0);
	mbedtls_gcm_free(&g);
	/* the stored record: header, then the fields, SEALED (index 19) replaced */
	MDB_txn *txn;
	MDB_dbi dbi;
	unsigned char k[8], rec[2048];
	MDB_val key = {8, k}, val;
	MDB_env *env = raw_env(&txn, &dbi);
	be64(k, id);
	ck_assert_int_eq(mdb_get(txn, dbi, &key, &val), 0);
	const unsigned char *p = val.mv_data;
	size_t off = 32, out = 32;
	memcpy(rec, p, 32);
	for (unsigned f = 0; f < p[31]; f++) {
		uint32_t len = (uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 |
			       (uint32_t)p[off + 2] << 8 | p[off + 3];
		if (f == HQ_F_SEALED) {
			put32(rec + out, (uint32_t)(plen + 33));
			memcpy(rec + out + 4, blob, plen + 33);
			out += 4 + plen + 33;
		} else {
			memcpy(rec + out, p + off, 4 + len);
			out += 4 + len;
		}
		off += 4 + len;
	}
	MDB_val nv = {out, rec};
	ck_assert_int_eq(mdb_put(txn, dbi, &key, &nv, 0), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("a", a, 1), err, sizeof err), 0);
	ck_assert(record_opens(j, id));
	/* and reseal brings it to the current format */
	int done;
	ck_assert_int_eq(hq_journal_reseal(j, 100, &done), 1);
	ck_assert(record_opens(j, id));
	hq_journal_close(j);
}
END_TEST

/* 15.4: a per-key seal counter (kept across restarts) warns, then refuses,
 * before 2^32 seals under one key; the thresholds lowered by the seam. */
START_TEST(test_keys_seal_counter_warns_then_refuses)
{
	hq_journal *j;
	char err[1300];
	int a[] = {1}, ba[] = {2, 1};
	uint64_t seals;
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	hq_journal_set_seal_limits(j, 3, 5);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("a", a, 1), err, sizeof err), 0);
	add_one(j, "W1", "P");
	add_one(j, "W2", "P");
	ck_assert_int_eq(hq_journal_key_wear(j, &seals), 0);
	ck_assert_uint_eq(seals, 2);
	hq_journal_close(j);
	/* the count survives a restart */
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	hq_journal_set_seal_limits(j, 3, 5);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("a", a, 1), err, sizeof err), 0);
	add_one(j, "W3", "P");
	ck_assert_int_eq(hq_journal_key_wear(j, &seals), 1);
	ck_assert_uint_eq(seals, 3);
	add_one(j, "W4", "P");
	add_one(j, "W5", "P");
	ck_assert_int_eq(hq_journal_key_wear(j, &seals), 2);
	hq_batch *b;
	hq_record r;
	uint64_t id;
	memset(&r, 0, sizeof r);
	r.state = HQ_MSG_ACCEPTED;
	r.f[HQ_F_RAW] = S(RAW);
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	ck_assert_int_eq(hq_batch_add(b, &r, NULL, &id), HQ_EKEYSPENT);
	hq_batch_abort(b);
	hq_journal_close(j);
	/* a start with that key first is refused; a new key first is fine */
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	hq_journal_set_seal_limits(j, 3, 5);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("a", a, 1), err, sizeof err), HQ_ECONFIG);
	ck_assert_msg(strstr(err, "has sealed") != NULL, "%s", err);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("ba", ba, 2), err, sizeof err), 0);
	ck_assert_int_eq(hq_journal_key_wear(j, &seals), 0);
	ck_assert_uint_eq(seals, 0);
	add_one(j, "W6", "P");
	hq_journal_close(j);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("journal_keys");
	TCase *tc = tcase_create("journal_keys");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_keys_old_key_removable_once_unused);
	tcase_add_test(tc, test_keys_more_than_64_ids);
	tcase_add_test(tc, test_keys_reseal_resumable);
	tcase_add_test(tc, test_keys_aad_binds_metadata_and_instance);
	tcase_add_test(tc, test_keys_old_format_still_opens);
	tcase_add_test(tc, test_keys_seal_counter_warns_then_refuses);
	suite_add_tcase(s, tc);
	int failed = run_suite(s);
	return failed;
}
