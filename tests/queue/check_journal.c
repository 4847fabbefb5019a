/*
 * check_journal.c - unit tests for the journal (queue/journal.h): records
 * round-trip, indexes, ids across reopen, poisoned batches, the
 * commit-failure seam and a full map; delivery outcomes, the audit query,
 * per-target figures, replay and purge.
 */
#include <check.h>
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "queue/journal.h"
#include "tests/check_util.h"

static char dir[64];

static void
setup(void)
{
	check_journal_dir(dir, sizeof dir, "journal");
}

static void
teardown(void)
{
	check_rm_rf(dir);
}

static hq_str
S(const char *s)
{
	return (hq_str){s, strlen(s)};
}

static void
make_rec(hq_record *r, const char *ctrl, const char *type, const char *pid, const char *raw)
{
	memset(r, 0, sizeof *r);
	r->received_us = 1700000000000000ull;
	r->state = HQ_MSG_ACCEPTED;
	memcpy(r->ack, "AA", 2);
	r->f[HQ_F_LISTENER] = S("adt");
	r->f[HQ_F_PEER] = S("127.0.0.1:5000");
	r->f[HQ_F_CONTROL_ID] = S(ctrl);
	r->f[HQ_F_TYPE] = S(type);
	r->f[HQ_F_PATIENT_ID] = S(pid);
	r->f[HQ_F_RAW] = (hq_str){raw, strlen(raw)};
}

static uint64_t
add_one(hq_journal *j, const char *ctrl, const char *type, const char *pid, const char *raw)
{
	hq_batch *b;
	hq_record r;
	uint64_t id;
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	make_rec(&r, ctrl, type, pid, raw);
	ck_assert_int_eq(hq_batch_add(b, &r, NULL, &id), 0);
	ck_assert_int_eq(hq_batch_commit(b), 0);
	return id;
}

START_TEST(test_roundtrip)
{
	hq_journal *j;
	hq_record r;
	void *mem;
	const char raw[] = "MSH|^~\\&|A\r\x00\xff binary kept";
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	hq_batch *b;
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	hq_record in;
	make_rec(&in, "C1", "ADT^A01^ADT_A01", "MRN1", "x");
	in.f[HQ_F_RAW] = (hq_str){raw, sizeof raw};
	uint64_t id;
	ck_assert_int_eq(hq_batch_add(b, &in, NULL, &id), 0);
	ck_assert_int_eq(hq_batch_commit(b), 0);
	ck_assert_uint_eq(id, 1);
	ck_assert_int_eq(hq_journal_get(j, id, &r, &mem), 0);
	ck_assert_uint_eq(r.id, 1);
	ck_assert_uint_eq(r.received_us, 1700000000000000ull);
	ck_assert_int_eq(r.state, HQ_MSG_ACCEPTED);
	ck_assert_str_eq(r.ack, "AA");
	ck_assert(r.f[HQ_F_RAW].n == sizeof raw && memcmp(r.f[HQ_F_RAW].p, raw, sizeof raw) == 0);
	ck_assert(r.f[HQ_F_CONTROL_ID].n == 2 && memcmp(r.f[HQ_F_CONTROL_ID].p, "C1", 2) == 0);
	free(mem);
	ck_assert_int_eq(hq_journal_get(j, 99, &r, &mem), HQ_ENOTFOUND);
	hq_journal_close(j);
}
END_TEST

START_TEST(test_indexes)
{
	hq_journal *j;
	uint64_t ids[16];
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	add_one(j, "C1", "ADT^A01^ADT_A01", "P1", "m1");
	add_one(j, "C2", "ORU^R01", "P2", "m2");
	add_one(j, "C1", "ADT^A08", "P1", "m3");
	add_one(j, "C3", "ADTX^Z01", "", "m4");
	ck_assert_int_eq(hq_journal_lookup(j, HQ_IDX_CONTROL, S("C1"), ids, 16), 2);
	ck_assert(ids[0] == 1 && ids[1] == 3);
	ck_assert_int_eq(hq_journal_lookup(j, HQ_IDX_PATIENT, S("P2"), ids, 16), 1);
	ck_assert_uint_eq(ids[0], 2);
	ck_assert_int_eq(hq_journal_lookup(j, HQ_IDX_TYPE, S("ADT"), ids, 16), 2);
	ck_assert(ids[0] == 1 && ids[1] == 3);
	ck_assert_int_eq(hq_journal_lookup(j, HQ_IDX_TYPE, S("ADT^A08"), ids, 16), 1);
	ck_assert_int_eq(hq_journal_lookup(j, HQ_IDX_CONTROL, S("nope"), ids, 16), 0);
	/* The control and patient indexes are written behind: the same
	 * answers before (from the tail scan) and after (from the index). */
	ck_assert_uint_eq(hq_journal_unindexed(j), 4);
	ck_assert_int_eq(hq_journal_index(j, 3), 3);
	ck_assert_uint_eq(hq_journal_unindexed(j), 1);
	add_one(j, "C1", "ORU^R01", "P1", "m5");
	ck_assert_int_eq(hq_journal_lookup(j, HQ_IDX_CONTROL, S("C1"), ids, 16), 3);
	ck_assert(ids[0] == 1 && ids[1] == 3 && ids[2] == 5);
	/* the type index too: part from the index, part from the tail, once each */
	ck_assert_int_eq(hq_journal_lookup(j, HQ_IDX_TYPE, S("ORU"), ids, 16), 2);
	ck_assert(ids[0] == 2 && ids[1] == 5);
	ck_assert_int_eq(hq_journal_lookup(j, HQ_IDX_TYPE, S("ADT"), ids, 16), 2);
	ck_assert_int_eq(hq_journal_lookup(j, HQ_IDX_TYPE, S("ADTX"), ids, 16), 1);
	ck_assert_uint_eq(ids[0], 4);
	ck_assert_int_eq(hq_journal_index(j, 100), 2);
	ck_assert_uint_eq(hq_journal_unindexed(j), 0);
	ck_assert_int_eq(hq_journal_lookup(j, HQ_IDX_CONTROL, S("C1"), ids, 16), 3);
	ck_assert(ids[0] == 1 && ids[1] == 3 && ids[2] == 5);
	ck_assert_int_eq(hq_journal_lookup(j, HQ_IDX_PATIENT, S("P1"), ids, 16), 3);
	ck_assert_int_eq(hq_journal_index(j, 100), 0);
	uint64_t count;
	ck_assert_int_eq(hq_journal_count(j, &count), 0);
	ck_assert_uint_eq(count, 5);
	hq_journal_close(j);
	/* the index position survives a reopen */
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	ck_assert_uint_eq(hq_journal_unindexed(j), 0);
	hq_journal_close(j);
}
END_TEST

/* Entries in one database of the journal at dir (closed), by raw LMDB. */
static size_t
db_entries(const char *name)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_stat st;
	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
	ck_assert_int_eq(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, name, 0, &dbi), 0);
	ck_assert_int_eq(mdb_stat(txn, dbi, &st), 0);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return st.ms_entries;
}

/* Whether meta of the journal at dir (closed) holds key. */
static int
meta_has(const char *key)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {strlen(key), (void *)key}, v;
	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
	ck_assert_int_eq(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	int found = mdb_get(txn, dbi, &k, &v) == 0;
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return found;
}

/* Issue 16, point 1: every B-tree an intake commit touches costs a dirty
 * page per message on a quiet connection.  The commit writes the record
 * only: by_time and by_type are written behind with the other indexes,
 * and meta "next_id" is not rewritten (the last key says it). */
START_TEST(test_intake_commit_touches_one_tree)
{
	hq_journal *j;
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	add_one(j, "C1", "ADT^A01^ADT_A01", "P1", "m1");
	hq_journal_close(j);
	ck_assert_uint_eq(db_entries("msgs"), 1);
	ck_assert_uint_eq(db_entries("by_time"), 0);
	ck_assert_uint_eq(db_entries("by_type"), 0);
	ck_assert_uint_eq(db_entries("by_control"), 0);
	ck_assert_uint_eq(db_entries("by_patient"), 0);
	ck_assert(!meta_has("next_id"));
	/* the index run writes them, and meta says how far */
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	ck_assert_uint_eq(hq_journal_next_id(j), 2);
	ck_assert_uint_eq(hq_journal_unindexed(j), 1);
	ck_assert_int_eq(hq_journal_index(j, 100), 1);
	ck_assert_uint_eq(hq_journal_unindexed(j), 0);
	hq_journal_close(j);
	ck_assert_uint_eq(db_entries("by_time"), 1);
	ck_assert_uint_eq(db_entries("by_type"), 1);
	ck_assert_uint_eq(db_entries("by_control"), 1);
	ck_assert_uint_eq(db_entries("by_patient"), 1);
}
END_TEST

/* With no "next_id" written by the intake commit, purging the newest
 * records must still not let their ids come back. */
START_TEST(test_purged_last_id_never_reused)
{
	hq_journal *j;
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	add_one(j, "A", "ADT^A01", "", "1");
	add_one(j, "B", "ADT^A01", "", "2");
	uint64_t three = add_one(j, "C", "ADT^A01", "", "3");
	ck_assert_int_eq(hq_journal_purge(j, &three, 1), 1);
	hq_journal_close(j);
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	ck_assert_uint_eq(hq_journal_next_id(j), 4);
	uint64_t all[] = {1, 2, 4};
	ck_assert_uint_eq(add_one(j, "D", "ADT^A01", "", "4"), 4);
	ck_assert_int_eq(hq_journal_purge(j, all, 3), 3);
	hq_journal_close(j);
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	ck_assert_uint_eq(hq_journal_next_id(j), 5);
	hq_journal_close(j);
}
END_TEST

START_TEST(test_ids_survive_reopen)
{
	hq_journal *j;
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	add_one(j, "A", "ADT^A01", "", "1");
	add_one(j, "B", "ADT^A01", "", "2");
	hq_journal_close(j);
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	ck_assert_uint_eq(hq_journal_next_id(j), 3);
	ck_assert_uint_eq(add_one(j, "C", "ADT^A01", "", "3"), 3);
	hq_journal_close(j);
}
END_TEST

START_TEST(test_abort_and_seam)
{
	hq_journal *j;
	hq_batch *b;
	hq_record r;
	uint64_t id, count;
	void *mem;
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	make_rec(&r, "X", "ADT^A01", "", "x");
	ck_assert_int_eq(hq_batch_add(b, &r, NULL, &id), 0);
	hq_batch_abort(b);
	ck_assert_uint_eq(hq_journal_next_id(j), 1);

	hq_journal_fail_commit(j, 2);
	add_one(j, "ok1", "ADT^A01", "", "a");
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	make_rec(&r, "bad", "ADT^A01", "", "b");
	ck_assert_int_eq(hq_batch_add(b, &r, NULL, &id), 0);
	ck_assert_int_eq(hq_batch_commit(b), HQ_EINJECTED);
	ck_assert_int_eq(hq_journal_get(j, id, &r, &mem), HQ_ENOTFOUND);
	uint64_t next = add_one(j, "ok2", "ADT^A01", "", "c");
	ck_assert_uint_eq(next, 2); /* the failed batch's id is reused: nothing was stored */
	ck_assert_int_eq(hq_journal_count(j, &count), 0);
	ck_assert_uint_eq(count, 2);
	hq_journal_close(j);
}
END_TEST

static int
same_key(const hq_dedup *a, const hq_dedup *b)
{
	return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

/* The duplicate key of a message in listener l with MSH-3 app and MSH-10 c. */
static hq_dedup
dkey(const char *l, hq_str app, const char *c, const char *subject, const char *raw)
{
	hq_dedup d;
	hq_str r = S(raw);
	const char *t = strstr(raw, "|2026"); /* MSH-7 */
	hq_dedup_fill(&d, S(l), app, S("FAC"), S(c), S(subject), r,
		      t ? (hq_str){t + 1, 14} : (hq_str){NULL, 0});
	return d;
}

START_TEST(test_dedup)
{
	hq_journal *j;
	hq_batch *b;
	hq_record r;
	uint64_t id, orig;
	int same;
	const char *m1 = "MSH|^~\\&|APP|FAC|||20261126120000||ADT^A01|C9|P|2.5\rPID|1||X\r";
	hq_dedup key = dkey("adt", S("APP"), "C9", "", m1);
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	ck_assert_int_eq(hq_batch_find_dup(b, &key, 0, &orig, &same), HQ_ENOTFOUND);
	make_rec(&r, "C9", "ADT^A01", "", "x");
	ck_assert_int_eq(hq_batch_add(b, &r, &key, &id), 0);
	/* seen within the same batch */
	ck_assert_int_eq(hq_batch_find_dup(b, &key, 0, &orig, &same), 0);
	ck_assert_uint_eq(orig, id);
	ck_assert_int_eq(same, 1);
	ck_assert_int_eq(hq_batch_commit(b), 0);
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	ck_assert_int_eq(hq_batch_find_dup(b, &key, r.received_us, &orig, &same), 0);
	/* outside the window */
	ck_assert_int_eq(hq_batch_find_dup(b, &key, r.received_us + 1, &orig, &same), HQ_ENOTFOUND);
	hq_batch_abort(b);
	hq_journal_close(j);
}
END_TEST

/* Issue 11 point 3: the key is the whole listener + MSH-3 + MSH-4 + MSH-10
 * (+ TLS subject), never cut; the content hash leaves out MSH-7 only. */
START_TEST(test_point3_dedup_key_whole_and_per_listener)
{
	static char app[2000];
	memset(app, 'A', sizeof app - 1);
	const char *m1 = "MSH|^~\\&|APP|FAC|||20261126120000||ADT^A01|C1|P|2.5\rPID|1||X\r";
	const char *m1later = "MSH|^~\\&|APP|FAC|||20261127093000||ADT^A01|C1|P|2.5\rPID|1||X\r";
	const char *m1other = "MSH|^~\\&|APP|FAC|||20261126120000||ADT^A01|C1|P|2.5\rPID|1||Y\r";
	hq_str longapp = S(app);
	hq_dedup a = dkey("adt", longapp, "C1", "", m1), b = dkey("adt", longapp, "C2", "", m1);
	ck_assert(!same_key(&a, &b)); /* MSH-10 counts after 2,000 bytes of MSH-3 */
	b = dkey("lab", longapp, "C1", "", m1);
	ck_assert(!same_key(&a, &b)); /* per listener */
	b = dkey("adt", longapp, "C1", "CN=lis01", m1);
	ck_assert(!same_key(&a, &b)); /* per TLS client */
	static char c1[100], c2[100];
	memset(c1, 'X', 80);
	memcpy(c2, c1, 80);
	c1[80] = '1';
	c2[80] = '2'; /* control ids alike in their first 64 bytes */
	a = dkey("adt", S("APP"), c1, "", m1);
	b = dkey("adt", S("APP"), c2, "", m1);
	ck_assert(!same_key(&a, &b));
	b = dkey("ad", S("tAAA"), "C1", "", m1); /* no ambiguity where the parts join */
	hq_dedup c = dkey("adt", S("AAA"), "C1", "", m1);
	ck_assert(!same_key(&b, &c));
	a = dkey("adt", S("APP"), "C1", "", m1);
	b = dkey("adt", S("APP"), "C1", "", m1later);
	ck_assert(same_key(&a, &b));
	ck_assert(memcmp(a.content, b.content, 32) == 0); /* a resend stamped anew */
	b = dkey("adt", S("APP"), "C1", "", m1other);
	ck_assert(memcmp(a.content, b.content, 32) != 0); /* other content */

	/* the index answers "same" or "reused", and points at the newest */
	hq_journal *j;
	hq_batch *bt;
	hq_record r;
	uint64_t id1, id2, orig;
	int same;
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	ck_assert_int_eq(hq_batch_begin(j, &bt), 0);
	make_rec(&r, "C1", "ADT^A01", "", m1);
	ck_assert_int_eq(hq_batch_add(bt, &r, &a, &id1), 0);
	ck_assert_int_eq(hq_batch_find_dup(bt, &b, 0, &orig, &same), 0);
	ck_assert_uint_eq(orig, id1);
	ck_assert_int_eq(same, 0);
	ck_assert_int_eq(hq_batch_add(bt, &r, &b, &id2), 0);
	ck_assert_int_eq(hq_batch_find_dup(bt, &b, 0, &orig, &same), 0);
	ck_assert_uint_eq(orig, id2);
	ck_assert_int_eq(same, 1);
	ck_assert_int_eq(hq_batch_commit(bt), 0);
	/* purging the newest drops its entry */
	ck_assert_int_eq(hq_journal_purge(j, &id2, 1), 1);
	ck_assert_int_eq(hq_batch_begin(j, &bt), 0);
	ck_assert_int_eq(hq_batch_find_dup(bt, &b, 0, &orig, &same), HQ_ENOTFOUND);
	hq_batch_abort(bt);
	hq_journal_close(j);
}
END_TEST

/* Issue 11 point 4: every message gets its own random key; a copy never
 * hands one out again, though it hands out the same ids. */
START_TEST(test_point4_message_keys_unique_across_copies)
{
	hq_journal *j;
	hq_batch *b;
	hq_record r, got;
	uint64_t id1, id2;
	void *mem;
	char copy[96], k1[16], k2[16];
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	snprintf(copy, sizeof copy, "%s/copy", dir);
	ck_assert_int_eq(mkdir(copy, 0700), 0);
	mode_t old = umask(0);
	ck_assert_int_eq(hq_journal_copy(j, copy), 0);
	umask(old);
	char path[128];
	struct stat st;
	snprintf(path, sizeof path, "%s/data.mdb", copy);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(hq_journal_copy(j, copy), EEXIST);
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	make_rec(&r, "C1", "ADT^A01", "", "x");
	ck_assert_int_eq(hq_batch_add(b, &r, NULL, &id1), 0);
	ck_assert_int_eq(hq_batch_commit(b), 0);
	ck_assert_int_eq(hq_journal_get(j, id1, &got, &mem), 0);
	ck_assert_uint_eq(got.f[HQ_F_MSG_KEY].n, 16);
	memcpy(k1, got.f[HQ_F_MSG_KEY].p, 16);
	free(mem);
	hq_journal_close(j);
	ck_assert_int_eq(hq_journal_open(copy, 16 << 20, 0, &j), 0);
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	ck_assert_int_eq(hq_batch_add(b, &r, NULL, &id2), 0);
	ck_assert_int_eq(hq_batch_commit(b), 0);
	ck_assert_uint_eq(id2, id1); /* the copy hands the id out again ... */
	ck_assert_int_eq(hq_journal_get(j, id2, &got, &mem), 0);
	memcpy(k2, got.f[HQ_F_MSG_KEY].p, 16);
	ck_assert(memcmp(k1, k2, 16) != 0); /* ... but never the key */
	free(mem);
	hq_journal_close(j);
}
END_TEST

/* Issue 11 point 4: one journal, one daemon. */
START_TEST(test_point4_journal_lock)
{
	int fd, fd2 = -1;
	long holder;
	ck_assert_int_eq(hq_journal_lock(dir, &fd, &holder), 0);
	/* flock is per open file: a second open in this process is refused too */
	ck_assert_int_eq(hq_journal_lock(dir, &fd2, &holder), HQ_ELOCKED);
	ck_assert_int_eq(holder, (long)getpid());
	close(fd);
	ck_assert_int_eq(hq_journal_lock(dir, &fd2, &holder), 0);
	close(fd2);
}
END_TEST

/* A map that fills: adds fail, the batch is poisoned, nothing partial is
 * stored, and the journal reports itself full. */
START_TEST(test_full_map)
{
	hq_journal *j;
	static char big[200000];
	memset(big, 'x', sizeof big - 1);
	ck_assert_int_eq(hq_journal_open(dir, 1 << 20, 0, &j), 0);
	int failed = 0;
	for (int i = 0; i < 20 && !failed; i++) {
		hq_batch *b;
		hq_record r;
		uint64_t id;
		char ctrl[16];
		snprintf(ctrl, sizeof ctrl, "B%d", i);
		ck_assert_int_eq(hq_batch_begin(j, &b), 0);
		make_rec(&r, ctrl, "ADT^A01", "", big);
		int rc = hq_batch_add(b, &r, NULL, &id);
		if (rc != 0) {
			ck_assert_int_eq(rc, MDB_MAP_FULL);
			/* poisoned: a later add returns the first error */
			ck_assert_int_eq(hq_batch_add(b, &r, NULL, &id), MDB_MAP_FULL);
			ck_assert_int_eq(hq_batch_commit(b), MDB_MAP_FULL);
			failed = 1;
		} else {
			rc = hq_batch_commit(b);
			if (rc != 0) {
				ck_assert_int_eq(rc, MDB_MAP_FULL);
				failed = 1;
			}
		}
	}
	ck_assert(failed);
	ck_assert(hq_journal_full(j, 1, 0));
	hq_journal_usage u;
	ck_assert_int_eq(hq_journal_usage_get(j, &u), 0);
	ck_assert_uint_eq(u.map_size, 1 << 20);
	ck_assert_uint_lt(u.free, u.reserve);
	hq_journal_close(j);
}
END_TEST


/* Adds n messages (ctrl "C<i>", types cycling ADT^A01, ADT^A08, ORU^R01,
 * patient "P<i%3>", received 1 s apart) with a delivery to "t" each. */
static void
add_many(hq_journal *j, int n, uint64_t *ids)
{
	static const char *types[] = {"ADT^A01^ADT_A01", "ADT^A08", "ORU^R01^ORU_R01"};
	hq_batch *b;
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	for (int i = 0; i < n; i++) {
		char ctrl[16], pid[16];
		hq_record r;
		snprintf(ctrl, sizeof ctrl, "C%d", i);
		snprintf(pid, sizeof pid, "P%d", i % 3);
		make_rec(&r, ctrl, types[i % 3], pid, "MSH|^~\\&|A|B\r");
		r.f[HQ_F_CONTROL_ID] = (hq_str){strdup(ctrl), strlen(ctrl)};
		r.f[HQ_F_PATIENT_ID] = (hq_str){strdup(pid), strlen(pid)};
		r.received_us += (uint64_t)i * 1000000;
		hq_dedup dd;
		hq_dedup_fill(&dd, S("l"), S("A"), S("B"), S(ctrl), S(""), S(ctrl), S(""));
		ck_assert_int_eq(hq_batch_add(b, &r, &dd, &ids[i]), 0);
		ck_assert_int_eq(hq_batch_add_delivery(b, ids[i], "t", r.received_us), 0);
		free((void *)r.f[HQ_F_CONTROL_ID].p);
		free((void *)r.f[HQ_F_PATIENT_ID].p);
	}
	ck_assert_int_eq(hq_batch_commit(b), 0);
}

static void
outcome(hq_journal *j, uint64_t id, hq_dlv_state st, int status)
{
	hq_outcome o;
	memset(&o, 0, sizeof o);
	o.id = id;
	o.state = st;
	o.at_us = 1800000000000000ull;
	o.http_status = status;
	snprintf(o.error, sizeof o.error, "HTTP %d", status);
	memcpy(o.body, "answer", 6);
	o.body_len = 6;
	ck_assert_int_eq(hq_journal_record_outcomes(j, "t", &o, 1), 0);
}

typedef struct ids_seen {
	uint64_t v[64];
	size_t n;
} ids_seen;

static int
seen(void *arg, const hq_record *r, const hq_msg_dlv *d, size_t nd)
{
	ids_seen *s = arg;
	(void)d;
	(void)nd;
	if (s->n < 64)
		s->v[s->n++] = r->id;
	return 0;
}

static size_t
query(hq_journal *j, const hq_query *q, ids_seen *s)
{
	memset(s, 0, sizeof *s);
	long n = hq_journal_query(j, q, seen, s);
	ck_assert_int_ge(n, 0);
	ck_assert_uint_eq((size_t)n, s->n);
	return s->n;
}

/* One message with no delivery (a purge candidate) received at t_us. */
static uint64_t
add_at(hq_journal *j, const char *ctrl, uint64_t t_us)
{
	hq_batch *b;
	hq_record r;
	uint64_t id;
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	make_rec(&r, ctrl, "ADT^A01", "P1", "m");
	r.received_us = t_us;
	ck_assert_int_eq(hq_batch_add(b, &r, NULL, &id), 0);
	ck_assert_int_eq(hq_batch_commit(b), 0);
	return id;
}

#define TT 1700000000000000ull

/* Issue 16, point 1: by_time is written behind intake too.  The time
 * queries and retention read by_time and the records not in it yet,
 * merged in time order, each once (the tail here has a time out of
 * order, and one equal to an indexed one). */
START_TEST(test_time_readers_see_unindexed)
{
	hq_journal *j;
	ids_seen s;
	hq_query q;
	uint64_t resume;
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	uint64_t a = add_at(j, "A", TT + 10), b = add_at(j, "B", TT + 20), c = add_at(j, "C", TT + 30);
	ck_assert_int_eq(hq_journal_index(j, 3), 3);
	uint64_t d = add_at(j, "D", TT + 15), e = add_at(j, "E", TT + 40), f = add_at(j, "F", TT + 20);
	ck_assert_uint_eq(hq_journal_unindexed(j), 3);
	memset(&q, 0, sizeof q);
	ck_assert_uint_eq(query(j, &q, &s), 6);
	uint64_t want[] = {a, d, b, f, c, e};
	for (int i = 0; i < 6; i++)
		ck_assert_uint_eq(s.v[i], want[i]);
	q.since_us = TT + 15;
	q.until_us = TT + 31;
	ck_assert_uint_eq(query(j, &q, &s), 4);
	ck_assert(s.v[0] == d && s.v[1] == b && s.v[2] == f && s.v[3] == c);
	q.type = S("ADT");
	ck_assert_uint_eq(query(j, &q, &s), 4);
	/* retention: a dry run counts the four older than TT + 25 once, the
	 * real pass (a message a slice) purges them, indexed or not */
	resume = 0;
	ck_assert_int_eq(hq_journal_purge_before(j, TT + 25, &resume, 100, 1), 4);
	ck_assert_uint_eq(resume, TT + 25);
	long total = 0;
	resume = 0;
	for (int slices = 0; slices < 20 && resume < TT + 25; slices++) {
		long n = hq_journal_purge_before(j, TT + 25, &resume, 1, 0);
		ck_assert_int_ge(n, 0);
		total += n;
	}
	ck_assert_int_eq(total, 4);
	ck_assert_uint_eq(resume, TT + 25);
	memset(&q, 0, sizeof q);
	ck_assert_uint_eq(query(j, &q, &s), 2);
	ck_assert(s.v[0] == c && s.v[1] == e);
	/* the index run skips the purged: by_time ends as the records are */
	ck_assert_int_eq(hq_journal_index(j, 100), 1);
	ck_assert_uint_eq(hq_journal_unindexed(j), 0);
	ck_assert_uint_eq(query(j, &q, &s), 2);
	ck_assert(s.v[0] == c && s.v[1] == e);
	hq_journal_close(j);
	ck_assert_uint_eq(db_entries("by_time"), 2);
}
END_TEST

typedef struct indexer {
	hq_journal *j;
	ids_seen s;
	long indexed;
} indexer;

/* A query callback that runs the index run after the first slice. */
static int
seen_then_index(void *arg, const hq_record *r, const hq_msg_dlv *d, size_t nd)
{
	indexer *x = arg;
	if (x->indexed == 0)
		x->indexed = hq_journal_index(x->j, 1000);
	return seen(&x->s, r, d, nd);
}

/* A query over several slices, with the tail indexed between two of
 * them: each message once, in time order. */
START_TEST(test_time_query_tail_indexed_between_slices)
{
	hq_journal *j;
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	for (int i = 0; i < 60; i++)
		add_at(j, "X", TT + 2 * (uint64_t)i);
	ck_assert_int_eq(hq_journal_index(j, 60), 60);
	for (int i = 0; i < 60; i++) /* between the indexed ones */
		add_at(j, "Y", TT + 2 * (uint64_t)i + 1);
	indexer x = {j, {{0}, 0}, 0};
	hq_query q;
	memset(&q, 0, sizeof q);
	long n = hq_journal_query(j, &q, seen_then_index, &x);
	ck_assert_int_eq(x.indexed, 60);
	ck_assert_int_eq(n, 120);
	ck_assert_uint_eq(x.s.n, 64);	   /* ids_seen keeps 64 */
	for (size_t i = 0; i < x.s.n; i++) /* 1, 61, 2, 62, ...: by time */
		ck_assert_uint_eq(x.s.v[i], i % 2 ? 61 + i / 2 : 1 + i / 2);
	hq_journal_close(j);
}
END_TEST

/* A journal whose intake wrote by_time (no meta "by_time_upto", the
 * other indexes behind) opens, reads each message once, and its index
 * run writes by_time for none of them again. */
START_TEST(test_time_index_upgrade_from_intake_by_time)
{
	hq_journal *j;
	ids_seen s;
	hq_query q;
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	for (int i = 0; i < 3; i++)
		add_at(j, "U", TT + (uint64_t)i);
	ck_assert_int_eq(hq_journal_index(j, 3), 3);
	hq_journal_close(j);
	{ /* back to the older layout: by_time complete, the others up to 1 */
		MDB_env *env;
		MDB_txn *txn;
		MDB_dbi meta;
		unsigned char one[9] = {1, 0, 0, 0, 0, 0, 0, 0, 1};
		MDB_val uk = {12, "indexed_upto"}, uv = {9, one}, tk = {12, "by_time_upto"};
		ck_assert_int_eq(mdb_env_create(&env), 0);
		ck_assert_int_eq(mdb_env_set_maxdbs(env, 32), 0);
		ck_assert_int_eq(mdb_env_open(env, dir, 0, 0600), 0);
		ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
		ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &meta), 0);
		ck_assert_int_eq(mdb_put(txn, meta, &uk, &uv, 0), 0);
		ck_assert_int_eq(mdb_del(txn, meta, &tk, NULL), 0);
		ck_assert_int_eq(mdb_txn_commit(txn), 0);
		mdb_env_close(env);
	}
	ck_assert_int_eq(hq_journal_open(dir, 0, 1, &j), 0); /* read only: by_time is all there */
	memset(&q, 0, sizeof q);
	ck_assert_uint_eq(query(j, &q, &s), 3);
	hq_journal_close(j);
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	ck_assert_uint_eq(hq_journal_unindexed(j), 2);
	ck_assert_uint_eq(query(j, &q, &s), 3);
	ck_assert_int_eq(hq_journal_index(j, 100), 2);
	ck_assert_uint_eq(query(j, &q, &s), 3);
	hq_journal_close(j);
	ck_assert_uint_eq(db_entries("by_time"), 3);
	ck_assert_uint_eq(db_entries("by_control"), 3);
}
END_TEST

START_TEST(test_query_filters)
{
	hq_journal *j;
	uint64_t ids[12];
	ids_seen s;
	hq_query q;
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	add_many(j, 12, ids);
	hq_journal_index(j, 5); /* half indexed: lookups also scan the tail */
	outcome(j, ids[0], HQ_DLV_DELIVERED, 200);
	outcome(j, ids[1], HQ_DLV_DEAD, 400);
	outcome(j, ids[2], HQ_DLV_RETRY, 503);

	memset(&q, 0, sizeof q);
	ck_assert_uint_eq(query(j, &q, &s), 12);
	q.type = S("ADT");
	ck_assert_uint_eq(query(j, &q, &s), 8);
	q.type = S("ADT^A08");
	ck_assert_uint_eq(query(j, &q, &s), 4);
	ck_assert_uint_eq(s.v[0], ids[1]);
	q.type = S("AD"); /* a prefix of a code, not a code */
	ck_assert_uint_eq(query(j, &q, &s), 0);
	memset(&q, 0, sizeof q);
	q.patient = S("P2");
	ck_assert_uint_eq(query(j, &q, &s), 4);
	ck_assert_uint_eq(s.v[3], ids[11]);
	q.type = S("ORU"); /* combined */
	ck_assert_uint_eq(query(j, &q, &s), 4);
	q.type = S("ADT");
	ck_assert_uint_eq(query(j, &q, &s), 0);
	memset(&q, 0, sizeof q);
	q.control_id = S("C7");
	ck_assert_uint_eq(query(j, &q, &s), 1);
	ck_assert_uint_eq(s.v[0], ids[7]);
	memset(&q, 0, sizeof q);
	q.since_us = 1700000000000000ull + 3000000;
	q.until_us = 1700000000000000ull + 6000000;
	ck_assert_uint_eq(query(j, &q, &s), 3);
	ck_assert_uint_eq(s.v[0], ids[3]);
	q.limit = 2;
	ck_assert_uint_eq(query(j, &q, &s), 2);
	memset(&q, 0, sizeof q);
	q.state = HQ_DLV_DEAD;
	ck_assert_uint_eq(query(j, &q, &s), 1);
	ck_assert_uint_eq(s.v[0], ids[1]);
	q.state = HQ_DLV_RETRY;
	ck_assert_uint_eq(query(j, &q, &s), 1);
	q.state = HQ_DLV_PENDING;
	ck_assert_uint_eq(query(j, &q, &s), 9);
	q.state = HQ_DLV_DELIVERED;
	q.target = "t";
	ck_assert_uint_eq(query(j, &q, &s), 1);
	q.target = "other";
	ck_assert_uint_eq(query(j, &q, &s), 0);
	q.state = HQ_STATE_REJECTED;
	q.target = NULL;
	ck_assert_uint_eq(query(j, &q, &s), 0);
	hq_journal_close(j);
}
END_TEST

static int
count_attempt(void *arg, const hq_attempt *a)
{
	int *n = arg;
	ck_assert_str_eq(a->target, "t");
	ck_assert_uint_eq(a->n, (uint32_t)(*n + 1));
	ck_assert_uint_eq(a->body_len, 6);
	ck_assert(memcmp(a->body, "answer", 6) == 0);
	(*n)++;
	return 0;
}

START_TEST(test_targets_replay_purge)
{
	hq_journal *j;
	uint64_t ids[6], next;
	hq_target_summary ts[4];
	hq_due due[8];
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	add_many(j, 6, ids);
	ck_assert_int_eq(hq_journal_set_order(j, "t", HQ_DUE_NONE), 0); /* built from the queue */
	outcome(j, ids[0], HQ_DLV_DELIVERED, 200);
	outcome(j, ids[1], HQ_DLV_DEAD, 400);
	outcome(j, ids[2], HQ_DLV_RETRY, 503);
	ck_assert_int_eq(hq_journal_targets(j, ts, 4), 1);
	ck_assert_str_eq(ts[0].name, "t");
	ck_assert_uint_eq(ts[0].delivered, 1);
	ck_assert_uint_eq(ts[0].dead, 1);
	ck_assert_uint_eq(ts[0].retrying, 1);
	ck_assert_uint_eq(ts[0].pending, 3);
	ck_assert_uint_eq(ts[0].oldest_pending_us, 1700000000000000ull + 2000000);
	ck_assert_str_eq(ts[0].last_error, "HTTP 503");

	/* replay the dead one: pending again, due now, history kept */
	ck_assert_int_eq(hq_journal_replay(j, &ids[1], 1, NULL, 1, 1800000000000001ull), 1);
	ck_assert_int_eq(hq_journal_replay(j, &ids[0], 1, NULL, 1, 1800000000000001ull), 0);
	ck_assert_int_eq(hq_journal_targets(j, ts, 4), 1);
	ck_assert_uint_eq(ts[0].dead, 0);
	ck_assert_uint_eq(ts[0].pending, 4);
	long n = hq_journal_due(j, "t", 1800000000000002ull, HQ_DUE_NONE, 0, 1, NULL, 0, due, 8, &next);
	ck_assert_int_eq(n, 5); /* the retry is due later */
	int found = 0;
	for (long i = 0; i < n; i++) {
		if (due[i].id == ids[1]) {
			found = 1;
			ck_assert_uint_eq(due[i].attempts, 0); /* counted from the replay */
			ck_assert_uint_eq(due[i].age_from_us, 1800000000000001ull);
		}
		free(due[i].raw);
	}
	ck_assert(found);
	outcome(j, ids[1], HQ_DLV_DELIVERED, 200);
	int attempts = 0;
	ck_assert_int_eq(hq_journal_attempts(j, ids[1], count_attempt, &attempts), 2);
	ck_assert_int_eq(attempts, 2);
	/* replaying a delivered message to its target takes it off the count */
	ck_assert_int_eq(hq_journal_replay(j, &ids[0], 1, "t", 0, 1800000000000003ull), 1);
	ck_assert_int_eq(hq_journal_targets(j, ts, 4), 1);
	ck_assert_uint_eq(ts[0].delivered, 1);
	outcome(j, ids[0], HQ_DLV_DELIVERED, 200);

	/* purge_before takes only messages whose deliveries are all done */
	uint64_t resume = 0;
	ck_assert_int_eq(hq_journal_purge_before(j, UINT64_MAX, &resume, 100, 1), 2);
	resume = 0;
	ck_assert_int_eq(hq_journal_purge_before(j, UINT64_MAX, &resume, 100, 0), 2);
	hq_record r;
	void *mem;
	ck_assert_int_eq(hq_journal_get(j, ids[0], &r, &mem), HQ_ENOTFOUND);
	ck_assert_int_eq(hq_journal_get(j, ids[1], &r, &mem), HQ_ENOTFOUND);
	ck_assert_int_eq(hq_journal_attempts(j, ids[1], count_attempt, &attempts), 0);
	uint64_t got[4];
	ck_assert_int_eq(hq_journal_lookup(j, HQ_IDX_TYPE, S("ADT^A01"), got, 4), 1); /* C3 */
	ck_assert_int_eq(hq_journal_targets(j, ts, 4), 1);
	ck_assert_uint_eq(ts[0].delivered, 0);
	/* purge by id: everything of it goes, queue entry and indexes too */
	hq_journal_index(j, 100);
	ck_assert_int_eq(hq_journal_purge(j, &ids[3], 1), 1);
	ck_assert_int_eq(hq_journal_purge(j, &ids[3], 1), 0);
	ck_assert_int_eq(hq_journal_lookup(j, HQ_IDX_CONTROL, S("C3"), got, 4), 0);
	ck_assert_int_eq(hq_journal_lookup(j, HQ_IDX_PATIENT, S("P0"), got, 4), 0);
	ck_assert_int_eq(hq_journal_lookup(j, HQ_IDX_PATIENT, S("P1"), got, 4), 1);
	ck_assert_int_eq(hq_journal_targets(j, ts, 4), 1);
	ck_assert_uint_eq(ts[0].pending + ts[0].retrying, 3);
	hq_msg_dlv d[2];
	ck_assert_int_eq(hq_journal_deliveries(j, ids[3], d, 2), 0);
	ck_assert_int_eq(hq_journal_deliveries(j, ids[4], d, 2), 1);
	ck_assert_str_eq(d[0].target, "t");
	ck_assert_int_eq(d[0].d.state, HQ_DLV_PENDING);
	/* a compacted copy opens and holds the same messages */
	char copy[96];
	snprintf(copy, sizeof copy, "%s/copy", dir);
	ck_assert_int_eq(mkdir(copy, 0700), 0);
	ck_assert_int_eq(hq_journal_copy(j, copy), 0);
	hq_journal_close(j);
	ck_assert_int_eq(hq_journal_open(copy, 0, 1, &j), 0);
	uint64_t count;
	ck_assert_int_eq(hq_journal_count(j, &count), 0);
	ck_assert_uint_eq(count, 3);
	hq_journal_close(j);
}
END_TEST

/* Writes a key file of the given keys (hex), mode 0600; returns its path. */
static const char *
key_file(const char *name, const char *k1, const char *k2)
{
	static char path[160];
	snprintf(path, sizeof path, "/tmp/hl7q-key-%s-%d", name, (int)getpid());
	FILE *fp = fopen(path, "w");
	ck_assert_ptr_nonnull(fp);
	fprintf(fp, "# test keys\n%s\n%s%s", k1, k2 ? k2 : "", k2 ? "\n" : "");
	fclose(fp);
	chmod(path, 0600);
	return path;
}

#define KEY_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_B "f0e0d0c0b0a090807060504030201000ffeeddccbbaa99887766554433221100"

START_TEST(test_encrypted)
{
	hq_journal *j;
	hq_record r;
	void *mem;
	char err[1300], ids[200];
	const char raw[] = "MSH|^~\\&|A|B|C|D|1||ADT^A01|E1|P|2.5\rPID|1||SECRETMRN42^^^H||SECRETNAME\r";
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	ck_assert_int_eq(hq_journal_encrypted(j, ids, sizeof ids), 0);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("a", KEY_A, NULL), err, sizeof err), 0);
	ck_assert_int_eq(hq_journal_encrypted(j, ids, sizeof ids), 1);
	uint64_t id1 = add_one(j, "E1", "ADT^A01", "SECRETMRN42", raw);
	hq_journal_index(j, 100);
	uint64_t id2 = add_one(j, "E2", "ADT^A01", "SECRETMRN42", raw); /* in the tail */
	ck_assert_int_eq(hq_journal_get(j, id1, &r, &mem), 0);
	ck_assert(!r.locked);
	ck_assert_int_eq(r.f[HQ_F_RAW].n, strlen(raw));
	ck_assert(memcmp(r.f[HQ_F_RAW].p, raw, strlen(raw)) == 0);
	ck_assert(memcmp(r.f[HQ_F_PATIENT_ID].p, "SECRETMRN42", 11) == 0);
	free(mem);
	uint64_t got[4];
	ck_assert_int_eq(hq_journal_lookup(j, HQ_IDX_PATIENT, S("SECRETMRN42"), got, 4), 2);
	hq_journal_close(j);

	/* the file holds neither the bytes nor the patient id */
	char path[128];
	snprintf(path, sizeof path, "%s/data.mdb", dir);
	FILE *fp = fopen(path, "rb");
	ck_assert_ptr_nonnull(fp);
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof buf, fp);
	fclose(fp);
	ck_assert_ptr_null(memmem(buf, n, "SECRETMRN42", 11));
	ck_assert_ptr_null(memmem(buf, n, "SECRETNAME", 10));
	ck_assert_ptr_null(memmem(buf, n, "MSH|", 4));

	/* without a key: metadata reads, the rest stays locked */
	ck_assert_int_eq(hq_journal_open(dir, 0, 1, &j), 0);
	ck_assert_int_eq(hq_journal_get(j, id1, &r, &mem), 0);
	ck_assert(r.locked);
	ck_assert_uint_eq(r.f[HQ_F_RAW].n, 0);
	ck_assert(memcmp(r.f[HQ_F_CONTROL_ID].p, "E1", 2) == 0);
	free(mem);
	/* the wrong key only: refused, naming the key id it lacks */
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("b", KEY_B, NULL), err, sizeof err), HQ_ECONFIG);
	ck_assert_msg(strstr(err, "sealed with key id") != NULL, "%s", err);
	hq_journal_close(j);

	/* rotation: B seals new records, A still opens the old ones */
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("ba", KEY_B, KEY_A), err, sizeof err), 0);
	uint64_t id3 = add_one(j, "E3", "ADT^A01", "SECRETMRN42", raw);
	hq_journal_index(j, 100);
	ck_assert_int_eq(hq_journal_lookup(j, HQ_IDX_PATIENT, S("SECRETMRN42"), got, 4), 3);
	ck_assert_uint_eq(got[0], id1);
	ck_assert_uint_eq(got[2], id3);
	for (uint64_t id = id1; id <= id3; id++) {
		ck_assert_int_eq(hq_journal_get(j, id, &r, &mem), 0);
		ck_assert(!r.locked);
		ck_assert(memcmp(r.f[HQ_F_RAW].p, raw, strlen(raw)) == 0);
		free(mem);
	}
	ck_assert_int_eq(hq_journal_encrypted(j, ids, sizeof ids), 1);
	ck_assert_msg(strchr(ids, ' ') != NULL, "two key ids: %s", ids);
	/* purge clears the HMAC index entries under either key */
	ck_assert_int_eq(hq_journal_purge(j, &id1, 1), 1);
	ck_assert_int_eq(hq_journal_purge(j, &id2, 1), 1);
	ck_assert_int_eq(hq_journal_lookup(j, HQ_IDX_PATIENT, S("SECRETMRN42"), got, 4), 1);
	hq_journal_close(j);
	/* a key file without a key, and a malformed one */
	ck_assert_int_eq(hq_journal_open(dir, 0, 1, &j), 0);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("bad", "abcd", NULL), err, sizeof err), HQ_ECONFIG);
	ck_assert_msg(strstr(err, ":2: not a key") != NULL, "%s", err);
	hq_journal_close(j);
}
END_TEST

START_TEST(test_sealed_record_tamper)
{
	hq_journal *j;
	hq_record r;
	void *mem;
	char err[1300];
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("t", KEY_A, NULL), err, sizeof err), 0);
	uint64_t id = add_one(j, "T1", "ADT^A01", "P1", "MSH|^~\\&|X\r");
	hq_journal_close(j);
	/* flip one byte of the ciphertext in the file: the record no longer opens */
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	unsigned char k[8];
	for (int i = 0; i < 8; i++)
		k[i] = (unsigned char)(id >> (56 - 8 * i));
	MDB_val key = {8, k}, val;
	ck_assert_int_eq(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 16);
	ck_assert_int_eq(mdb_env_open(env, dir, 0, 0600), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, "msgs", 0, &dbi), 0);
	ck_assert_int_eq(mdb_get(txn, dbi, &key, &val), 0);
	unsigned char *copy = malloc(val.mv_size);
	memcpy(copy, val.mv_data, val.mv_size);
	copy[val.mv_size - 20] ^= 1; /* inside the sealed field, the last one */
	MDB_val nv = {val.mv_size, copy};
	ck_assert_int_eq(mdb_put(txn, dbi, &key, &nv, 0), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	free(copy);
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_keys(j, key_file("t", KEY_A, NULL), err, sizeof err), 0);
	ck_assert_int_eq(hq_journal_get(j, id, &r, &mem), HQ_ECORRUPT);
	hq_journal_close(j);
}
END_TEST

/* One message with patient pid (NULL: none) and a delivery to "t" at now_us. */
static uint64_t
add_dlv(hq_batch *b, const char *pid, uint64_t now_us)
{
	hq_record r;
	uint64_t id;
	make_rec(&r, "C", "ADT^A01", pid ? pid : "", "MSH|^~\\&|A|B\r");
	ck_assert_int_eq(hq_batch_add(b, &r, NULL, &id), 0);
	ck_assert_int_eq(hq_batch_add_delivery(b, id, "t", now_us), 0);
	return id;
}

static long
due_ids(hq_journal *j, hq_due_order order, uint64_t now, const uint64_t *skip, size_t nskip,
	uint64_t *ids, size_t max)
{
	hq_due due[16];
	uint64_t next;
	long n = hq_journal_due(j, "t", now, order, 0, 1, skip, nskip, due, max < 16 ? max : 16, &next);
	for (long i = 0; i < n; i++) {
		ids[i] = due[i].id;
		free(due[i].raw);
	}
	return n;
}

#define T0 1800000000000000ull

/* Issue 11 point 9: by patient, a long queue of held patients neither hides
 * a later patient's message nor is walked past: the due index holds the
 * head of each patient's queue only. */
START_TEST(test_point9_patient_backlog)
{
	hq_journal *j;
	hq_batch *b;
	uint64_t a1, b1, c1, none1, got[16];
	ck_assert_int_eq(hq_journal_open(dir, 512 << 20, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_order(j, "t", HQ_DUE_PATIENT), 0);
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	a1 = add_dlv(b, "PA", T0);
	b1 = add_dlv(b, "PB", T0);
	ck_assert_int_eq(hq_batch_commit(b), 0);
	for (int k = 0; k < 101; k++) { /* 101,000 more of the two held patients */
		ck_assert_int_eq(hq_batch_begin(j, &b), 0);
		for (int i = 0; i < 1000; i++)
			add_dlv(b, i % 2 ? "PA" : "PB", T0);
		ck_assert_int_eq(hq_batch_commit(b), 0);
	}
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	c1 = add_dlv(b, "PC", T0);
	none1 = add_dlv(b, NULL, T0);
	ck_assert_int_eq(hq_batch_commit(b), 0);
	/* the heads of PA and PB in flight: PC's and the unordered one go */
	uint64_t skip[2] = {a1, b1};
	ck_assert_int_eq(due_ids(j, HQ_DUE_PATIENT, T0, skip, 2, got, 8), 2);
	ck_assert_uint_eq(got[0], c1);
	ck_assert_uint_eq(got[1], none1);
	/* PA's head delivered: its next message is the new head */
	outcome(j, a1, HQ_DLV_DELIVERED, 200);
	uint64_t skip2[3] = {b1, c1, none1};
	ck_assert_int_eq(due_ids(j, HQ_DUE_PATIENT, T0, skip2, 3, got, 8), 1);
	ck_assert_uint_eq(got[0], b1 + 2); /* the first PA of the bulk (odd i) */
	/* the same journal reopened as unordered: the index is rebuilt */
	hq_journal_close(j);
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_order(j, "t", HQ_DUE_NONE), 0);
	ck_assert_int_eq(due_ids(j, HQ_DUE_NONE, T0, skip2, 3, got, 4), 4);
	ck_assert_uint_eq(got[0], b1 + 1);
	hq_journal_close(j);
}
END_TEST

/* Issue 11 point 7: a delivery never attempted is due whatever the wall
 * clock did; per-patient order holds for PID-3 values of any length. */
START_TEST(test_point7_due_clock_and_long_pid)
{
	hq_journal *j;
	hq_batch *b;
	uint64_t got[16], ids[3];
	char pid[200];
	memset(pid, 'x', sizeof pid - 1);
	pid[sizeof pid - 1] = 0;
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_order(j, "t", HQ_DUE_PATIENT), 0);
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	ids[0] = add_dlv(b, pid, T0);
	ids[1] = add_dlv(b, pid, T0);
	ck_assert_int_eq(hq_batch_commit(b), 0);
	/* the clock stepped back an hour: still due, and only the first */
	ck_assert_int_eq(due_ids(j, HQ_DUE_PATIENT, T0 - 3600000000ull, NULL, 0, got, 8), 1);
	ck_assert_uint_eq(got[0], ids[0]);
	ck_assert_int_eq(due_ids(j, HQ_DUE_PATIENT, T0, &ids[0], 1, got, 8), 0);
	hq_journal_close(j);

	/* FIFO, new journal */
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_order(j, "t", HQ_DUE_FIFO), 0);
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	ids[2] = add_dlv(b, "P", T0);
	ck_assert_int_eq(hq_batch_commit(b), 0);
	ck_assert_int_eq(due_ids(j, HQ_DUE_FIFO, T0 - 3600000000ull, NULL, 0, got, 8), 1);
	ck_assert_uint_eq(got[0], ids[2]);
	hq_journal_close(j);
}
END_TEST

/* Issue 11 point 9: a journal last written as format 1 (before the due
 * index, or by an older hl7qd after a downgrade) opens, and its queue is
 * found: the index is rebuilt from the queue. */
START_TEST(test_point9_format1_journal_migrates)
{
	hq_journal *j;
	hq_batch *b;
	uint64_t got[16], ids[5];
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_order(j, "t", HQ_DUE_NONE), 0);
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	for (int i = 0; i < 5; i++)
		ids[i] = add_dlv(b, "P", T0);
	ck_assert_int_eq(hq_batch_commit(b), 0);
	hq_journal_close(j);
	/* what a format 1 writer leaves: format 1, and no due entries */
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta, due;
	ck_assert_int_eq(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 16);
	ck_assert_int_eq(mdb_env_open(env, dir, 0, 0600), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, "due", 0, &due), 0);
	MDB_val k = {6, "format"}, v = {1, "\x01"};
	ck_assert_int_eq(mdb_put(txn, meta, &k, &v, 0), 0);
	ck_assert_int_eq(mdb_drop(txn, due, 0), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_order(j, "t", HQ_DUE_NONE), 0);
	ck_assert_int_eq(due_ids(j, HQ_DUE_NONE, T0, NULL, 0, got, 8), 5);
	for (int i = 0; i < 5; i++)
		ck_assert_uint_eq(got[i], ids[i]);
	hq_journal_close(j);
}
END_TEST

static int
count_any(void *arg, const hq_attempt *a)
{
	(void)a;
	(*(int *)arg)++;
	return 0;
}

/* Issue 11 point 5: below the free-space reserve (where intake refuses), a
 * retry writes no attempt record; the delivery record still counts it,
 * and a delivery (which frees queue space) is written in full. */
START_TEST(test_point5_reserve_no_retry_attempts)
{
	hq_journal *j;
	uint64_t ids[2];
	static char big[8192];
	memset(big, 'x', sizeof big - 1);
	ck_assert_int_eq(hq_journal_open(dir, 1 << 20, 0, &j), 0);
	add_many(j, 2, ids);
	while (!hq_journal_full(j, 1, 0))
		add_one(j, "BIG", "ADT^A01", "P", big);
	outcome(j, ids[0], HQ_DLV_RETRY, 503);
	int n = 0;
	ck_assert_int_eq(hq_journal_attempts(j, ids[0], count_any, &n), 0);
	hq_delivery d;
	ck_assert_int_eq(hq_journal_delivery(j, ids[0], "t", &d), 0);
	ck_assert_uint_eq(d.attempts, 1);
	ck_assert_int_eq(d.state, HQ_DLV_RETRY);
	outcome(j, ids[1], HQ_DLV_DELIVERED, 200);
	n = 0;
	ck_assert_int_eq(hq_journal_attempts(j, ids[1], count_any, &n), 1);
	hq_journal_close(j);
}
END_TEST

static int
count_only(void *arg, const hq_attempt *a)
{
	uint32_t *v = arg;
	v[v[0] + 1] = a->n;
	v[0]++;
	return 0;
}

/* Issue 11 point 5: the attempt history of a delivery is bounded: the
 * first and the last few attempts, and the count in the delivery record. */
START_TEST(test_point5_attempts_bounded)
{
	hq_journal *j;
	uint64_t ids[3];
	uint32_t seenv[256] = {0};
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	add_many(j, 3, ids);
	for (int i = 0; i < 200; i++)
		outcome(j, ids[0], HQ_DLV_RETRY, 503);
	ck_assert_int_eq(hq_journal_attempts(j, ids[0], count_only, seenv), HQ_ATTEMPTS_FIRST + HQ_ATTEMPTS_LAST);
	ck_assert_uint_eq(seenv[1], 1);
	ck_assert_uint_eq(seenv[HQ_ATTEMPTS_FIRST], HQ_ATTEMPTS_FIRST);
	ck_assert_uint_eq(seenv[HQ_ATTEMPTS_FIRST + 1], 200 - HQ_ATTEMPTS_LAST + 1);
	ck_assert_uint_eq(seenv[HQ_ATTEMPTS_FIRST + HQ_ATTEMPTS_LAST], 200);
	hq_delivery d;
	ck_assert_int_eq(hq_journal_delivery(j, ids[0], "t", &d), 0);
	ck_assert_uint_eq(d.attempts, 200);
	hq_journal_close(j);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("journal");
	TCase *tc = tcase_create("journal");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_indexes);
	tcase_add_test(tc, test_ids_survive_reopen);
	tcase_add_test(tc, test_intake_commit_touches_one_tree);
	tcase_add_test(tc, test_purged_last_id_never_reused);
	tcase_add_test(tc, test_time_readers_see_unindexed);
	tcase_add_test(tc, test_time_query_tail_indexed_between_slices);
	tcase_add_test(tc, test_time_index_upgrade_from_intake_by_time);
	tcase_add_test(tc, test_abort_and_seam);
	tcase_add_test(tc, test_dedup);
	tcase_add_test(tc, test_point3_dedup_key_whole_and_per_listener);
	tcase_add_test(tc, test_point4_message_keys_unique_across_copies);
	tcase_add_test(tc, test_point4_journal_lock);
	tcase_add_test(tc, test_full_map);
	tcase_add_test(tc, test_query_filters);
	tcase_add_test(tc, test_targets_replay_purge);
	tcase_add_test(tc, test_encrypted);
	tcase_add_test(tc, test_sealed_record_tamper);
	tcase_add_test(tc, test_point9_patient_backlog);
	tcase_add_test(tc, test_point7_due_clock_and_long_pid);
	tcase_add_test(tc, test_point9_format1_journal_migrates);
	tcase_add_test(tc, test_point5_attempts_bounded);
	tcase_add_test(tc, test_point5_reserve_no_retry_attempts);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	int failed = run_suite(s);
	return failed;
}
