/*
 * check_journal.c - unit tests for queue/journal.c: records round-trip,
 * indexes, ids across reopen, poisoned batches, the commit-failure seam
 * and a full map.
 */
#include <check.h>
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "queue/journal.h"
#include "tests/check_util.h"

static char dir[64];

static void
setup(void)
{
	strcpy(dir, "/tmp/hl7q-journal-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	rmdir(dir); /* the journal creates it, 0700 */
}

static void
teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0) {
		/* best effort */
	}
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
	ck_assert_int_eq(hq_batch_add(b, &r, (hq_str){"", 0}, &id), 0);
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
	ck_assert_int_eq(hq_batch_add(b, &in, (hq_str){"", 0}, &id), 0);
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
	ck_assert_int_eq(hq_batch_add(b, &r, (hq_str){"", 0}, &id), 0);
	hq_batch_abort(b);
	ck_assert_uint_eq(hq_journal_next_id(j), 1);

	hq_journal_fail_commit(j, 2);
	add_one(j, "ok1", "ADT^A01", "", "a");
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	make_rec(&r, "bad", "ADT^A01", "", "b");
	ck_assert_int_eq(hq_batch_add(b, &r, (hq_str){"", 0}, &id), 0);
	ck_assert_int_eq(hq_batch_commit(b), HQ_EINJECTED);
	ck_assert_int_eq(hq_journal_get(j, id, &r, &mem), HQ_ENOTFOUND);
	uint64_t next = add_one(j, "ok2", "ADT^A01", "", "c");
	ck_assert_uint_eq(next, 2); /* the failed batch's id is reused: nothing was stored */
	ck_assert_int_eq(hq_journal_count(j, &count), 0);
	ck_assert_uint_eq(count, 2);
	hq_journal_close(j);
}
END_TEST

START_TEST(test_dedup)
{
	hq_journal *j;
	hq_batch *b;
	hq_record r;
	uint64_t id, orig;
	hq_str key = S("APP\x1f" "FAC\x1f" "C9");
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	ck_assert_int_eq(hq_batch_find_dup(b, key, 0, &orig), HQ_ENOTFOUND);
	make_rec(&r, "C9", "ADT^A01", "", "x");
	ck_assert_int_eq(hq_batch_add(b, &r, key, &id), 0);
	/* seen within the same batch */
	ck_assert_int_eq(hq_batch_find_dup(b, key, 0, &orig), 0);
	ck_assert_uint_eq(orig, id);
	ck_assert_int_eq(hq_batch_commit(b), 0);
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	ck_assert_int_eq(hq_batch_find_dup(b, key, r.received_us, &orig), 0);
	/* outside the window */
	ck_assert_int_eq(hq_batch_find_dup(b, key, r.received_us + 1, &orig), HQ_ENOTFOUND);
	hq_batch_abort(b);
	hq_journal_close(j);
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
		int rc = hq_batch_add(b, &r, (hq_str){"", 0}, &id);
		if (rc != 0) {
			ck_assert_int_eq(rc, MDB_MAP_FULL);
			/* poisoned: a later add returns the first error */
			ck_assert_int_eq(hq_batch_add(b, &r, (hq_str){"", 0}, &id), MDB_MAP_FULL);
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

int
main(void)
{
	Suite *s = suite_create("journal");
	TCase *tc = tcase_create("journal");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_indexes);
	tcase_add_test(tc, test_ids_survive_reopen);
	tcase_add_test(tc, test_abort_and_seam);
	tcase_add_test(tc, test_dedup);
	tcase_add_test(tc, test_full_map);
	suite_add_tcase(s, tc);
	int failed = run_suite(s);
	return failed;
}
