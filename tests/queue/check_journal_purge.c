/*
 * check_journal_purge.c - unit tests for the journal (queue/journal.h)
 * (issue 15, point 2: purge and replay don't race).  The journal API
 * interleaves the steps deterministically: a replay between retention's
 * scan and its write transaction, an outcome computed before a replay and
 * written after it, and purges inside the duplicate window.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "queue/journal.h"
#include "tests/check_util.h"

static char dir[64];

static void
setup(void)
{
	check_journal_dir(dir, sizeof dir, "purge");
}

static void
teardown(void)
{
	check_rm_rf(dir);
}

#define T0 1700000000000000ull

/* The duplicate key of ctrl from APP/FAC on listener "adt". */
static void
dedup_of(hq_dedup *d, const char *ctrl)
{
	static const char raw[] = "MSH|^~\\&|APP|FAC\r";
	hq_dedup_fill(d, (hq_str){"adt", 3}, (hq_str){"APP", 3}, (hq_str){"FAC", 3},
		      (hq_str){ctrl, strlen(ctrl)}, (hq_str){"", 0}, (hq_str){raw, sizeof raw - 1},
		      (hq_str){"", 0});
}

/* A message with a delivery to "t", received at t_us, with the duplicate key of ctrl. */
static uint64_t
add_msg(hq_journal *j, const char *ctrl, uint64_t t_us)
{
	hq_batch *b;
	hq_record r;
	uint64_t id;
	hq_dedup dd;
	dedup_of(&dd, ctrl);
	memset(&r, 0, sizeof r);
	r.received_us = t_us;
	r.state = HQ_MSG_ACCEPTED;
	r.f[HQ_F_SENDING_APP] = (hq_str){"APP", 3};
	r.f[HQ_F_SENDING_FAC] = (hq_str){"FAC", 3};
	r.f[HQ_F_CONTROL_ID] = (hq_str){ctrl, strlen(ctrl)};
	r.f[HQ_F_TYPE] = (hq_str){"ADT^A01", 7};
	r.f[HQ_F_RAW] = (hq_str){"MSH|^~\\&|APP|FAC\r", 17};
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	ck_assert_int_eq(hq_batch_add(b, &r, &dd, &id), 0);
	ck_assert_int_eq(hq_batch_add_delivery(b, id, "t", t_us), 0);
	ck_assert_int_eq(hq_batch_commit(b), 0);
	return id;
}

static void
settle(hq_journal *j, uint64_t id, hq_dlv_state st, uint64_t epoch)
{
	hq_outcome o;
	memset(&o, 0, sizeof o);
	o.id = id;
	o.state = st;
	o.at_us = T0 + 1000;
	o.http_status = st == HQ_DLV_DELIVERED ? 200 : 400;
	o.epoch = epoch;
	ck_assert_int_eq(hq_journal_record_outcomes(j, "t", &o, 1), 0);
}

typedef struct replayer {
	hq_journal *j;
	uint64_t id;
	long replayed;
} replayer;

static void
replay_in_gap(void *arg)
{
	replayer *r = arg;
	r->replayed = hq_journal_replay(r->j, &r->id, 1, "t", 0, T0 + 5000000);
}

/* 15.2: a replay made between retention's scan and its write transaction
 * is not deleted (today the purge trusts the scan's read). */
START_TEST(test_purge_rechecks_state_in_write_txn)
{
	hq_journal *j;
	hq_delivery d;
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	uint64_t a = add_msg(j, "A", T0), b = add_msg(j, "B", T0 + 1);
	settle(j, a, HQ_DLV_DELIVERED, 0);
	settle(j, b, HQ_DLV_DELIVERED, 0);
	replayer r = {j, a, 0};
	hq_journal_on_purge_scan(j, replay_in_gap, &r);
	uint64_t resume = 0;
	hq_journal_set_duplicate_window(j, 1); /* the window is the next test's */
	long n = hq_journal_purge_before(j, T0 + 10, &resume, 100, 0);
	ck_assert_int_eq(r.replayed, 1);
	ck_assert_int_ge(n, 1);
	/* the replayed message is still there, pending; the other is gone */
	ck_assert_int_eq(hq_journal_delivery(j, a, "t", &d), 0);
	ck_assert_int_eq(d.state, HQ_DLV_PENDING);
	ck_assert_int_eq(hq_journal_delivery(j, b, "t", &d), HQ_ENOTFOUND);
	hq_record rec;
	void *mem = NULL;
	ck_assert_int_eq(hq_journal_get(j, a, &rec, &mem), 0);
	free(mem);
	/* purge --dead: only settled messages, checked again in the transaction */
	settle(j, a, HQ_DLV_DEAD, 0);
	ck_assert_int_eq(hq_journal_replay(j, &a, 1, NULL, 1, T0 + 6000000), 1);
	ck_assert_int_eq(hq_journal_purge_if(j, &a, 1, HQ_PURGE_SETTLED), 0);
	ck_assert_int_eq(hq_journal_delivery(j, a, "t", &d), 0);
	hq_journal_close(j);
}
END_TEST

/* 15.2: an outcome computed before a replay never overwrites that replay
 * (today the late "dead" outcome dead-letters the message just replayed). */
START_TEST(test_purge_stale_outcome_does_not_overwrite_replay)
{
	hq_journal *j;
	hq_due due[4];
	hq_delivery d;
	uint64_t next;
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	ck_assert_int_eq(hq_journal_set_order(j, "t", HQ_DUE_NONE), 0); /* due by the due index */
	uint64_t a = add_msg(j, "A", T0);
	/* a worker takes it... */
	ck_assert_int_eq(hq_journal_due(j, "t", T0 + 1, HQ_DUE_NONE, 0, 1, NULL, 0, due, 4, &next), 1);
	uint64_t epoch = due[0].epoch;
	free(due[0].raw);
	/* ...an operator replays it meanwhile (twice, the same microsecond)... */
	ck_assert_int_eq(hq_journal_replay(j, &a, 1, "t", 0, T0 + 2), 1);
	ck_assert_int_eq(hq_journal_due(j, "t", T0 + 3, HQ_DUE_NONE, 0, 1, NULL, 0, due, 4, &next), 1);
	uint64_t epoch2 = due[0].epoch;
	free(due[0].raw);
	ck_assert_int_eq(hq_journal_replay(j, &a, 1, "t", 0, T0 + 2), 1);
	/* ...then the first attempt's outcome arrives: dropped */
	settle(j, a, HQ_DLV_DEAD, epoch);
	ck_assert_int_eq(hq_journal_delivery(j, a, "t", &d), 0);
	ck_assert_int_eq(d.state, HQ_DLV_PENDING);
	/* the second attempt's too (the second replay came after it) */
	settle(j, a, HQ_DLV_DEAD, epoch2);
	ck_assert_int_eq(hq_journal_delivery(j, a, "t", &d), 0);
	ck_assert_int_eq(d.state, HQ_DLV_PENDING);
	/* an attempt begun after the last replay counts */
	ck_assert_int_eq(hq_journal_due(j, "t", T0 + 4, HQ_DUE_NONE, 0, 1, NULL, 0, due, 4, &next), 1);
	free(due[0].raw);
	settle(j, a, HQ_DLV_DELIVERED, due[0].epoch);
	ck_assert_int_eq(hq_journal_delivery(j, a, "t", &d), 0);
	ck_assert_int_eq(d.state, HQ_DLV_DELIVERED);
	hq_journal_close(j);
}
END_TEST

static int
is_dup(hq_journal *j, const char *ctrl, uint64_t since_us, uint64_t *orig)
{
	hq_batch *b;
	hq_dedup dd;
	int same;
	dedup_of(&dd, ctrl);
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	int rc = hq_batch_find_dup(b, &dd, since_us, orig, &same);
	hq_batch_abort(b);
	return rc == 0;
}

/* 15.2: purge and retention never shorten the duplicate history below
 * duplicate_window (today a purged message's repeat is taken as new). */
START_TEST(test_purge_keeps_duplicate_history_within_window)
{
	hq_journal *j;
	uint64_t orig;
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	uint64_t now = (uint64_t)time(NULL) * 1000000;
	uint64_t old = add_msg(j, "OLD", now - 3 * 3600 * 1000000ull); /* 3 h ago */
	uint64_t fresh = add_msg(j, "NEW", now - 60 * 1000000ull);     /* 1 min ago */
	settle(j, old, HQ_DLV_DELIVERED, 0);
	settle(j, fresh, HQ_DLV_DELIVERED, 0);
	ck_assert_int_eq(hq_journal_set_duplicate_window(j, 2 * 3600 * 1000000ull), 0); /* 2 h */
	uint64_t resume = 0;
	ck_assert_int_eq(hq_journal_purge_before(j, UINT64_MAX, &resume, 100, 0), 2);
	/* the fresh one's key stays for the window; the old one is past it */
	ck_assert(is_dup(j, "NEW", now - 2 * 3600 * 1000000ull, &orig));
	ck_assert_uint_eq(orig, fresh);
	ck_assert(!is_dup(j, "OLD", 0, &orig));
	/* an explicit purge keeps it too; the window is in the journal, for hl7q */
	uint64_t again = add_msg(j, "AGAIN", now);
	hq_journal_close(j);
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	ck_assert_int_eq(hq_journal_purge(j, &again, 1), 1);
	ck_assert(is_dup(j, "AGAIN", now - 3600 * 1000000ull, &orig));
	ck_assert_uint_eq(orig, again);
	hq_journal_close(j);
}
END_TEST

/* Counts what a sliced purge pass (dry run: nothing deleted) finds, as
 * hl7q purge does before its audit event; at most 50 slices. */
static long
count_pass(hq_journal *j, int rejected, size_t max)
{
	uint64_t resume = 0;
	long total = 0;
	for (int slices = 0; slices < 50; slices++) {
		long n = rejected ? hq_journal_purge_rejected(j, UINT64_MAX, &resume, max, 1)
				  : hq_journal_purge_before(j, UINT64_MAX, &resume, max, 1);
		ck_assert_int_ge(n, 0);
		total += n;
		if (resume == UINT64_MAX)
			return total;
	}
	return -1; /* never finished */
}

/* Review: messages received in the same microsecond across a slice's end
 * are counted once by a dry run (today the next slice starts again at
 * that time: counted twice, or for ever when more than a slice share it). */
START_TEST(test_purge_slices_keep_same_time_together)
{
	hq_journal *j;
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	uint64_t ids[7];
	for (int i = 0; i < 7; i++) {
		char ctrl[8];
		snprintf(ctrl, sizeof ctrl, "S%d", i);
		ids[i] = add_msg(j, ctrl, i < 5 ? T0 : T0 + 1); /* five share T0 */
		settle(j, ids[i], HQ_DLV_DELIVERED, 0);
	}
	ck_assert_int_eq(count_pass(j, 0, 2), 7);
	ck_assert_int_eq(count_pass(j, 0, 4), 7);
	ck_assert_int_eq(count_pass(j, 0, 100), 7);
	/* and the real pass purges them all */
	uint64_t resume = 0;
	long total = 0;
	for (int slices = 0; slices < 50 && resume != UINT64_MAX; slices++)
		total += hq_journal_purge_before(j, UINT64_MAX, &resume, 2, 0);
	ck_assert_int_eq(total, 7);
	hq_journal_close(j);
}
END_TEST

START_TEST(test_purge_rejected_slices_keep_same_time_together)
{
	hq_journal *j;
	hq_batch *b;
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	for (int i = 0; i < 6; i++) {
		hq_record r;
		uint64_t id;
		memset(&r, 0, sizeof r);
		r.received_us = i < 5 ? T0 : T0 + 1;
		r.state = HQ_MSG_REJECTED;
		r.f[HQ_F_RAW] = (hq_str){"junk", 4};
		ck_assert_int_eq(hq_batch_add(b, &r, NULL, &id), 0);
	}
	ck_assert_int_eq(hq_batch_commit(b), 0);
	ck_assert_int_eq(count_pass(j, 1, 2), 6);
	ck_assert_int_eq(count_pass(j, 1, 3), 6);
	hq_journal_close(j);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("journal_purge");
	TCase *tc = tcase_create("journal_purge");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_purge_rechecks_state_in_write_txn);
	tcase_add_test(tc, test_purge_stale_outcome_does_not_overwrite_replay);
	tcase_add_test(tc, test_purge_keeps_duplicate_history_within_window);
	tcase_add_test(tc, test_purge_slices_keep_same_time_together);
	tcase_add_test(tc, test_purge_rejected_slices_keep_same_time_together);
	suite_add_tcase(s, tc);
	int failed = run_suite(s);
	return failed;
}
