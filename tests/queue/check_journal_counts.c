/*
 * check_journal_counts.c - unit tests for the journal (queue/journal.h):
 * the per-target pending, retrying and dead counts kept in the "targets"
 * records (issue 15.8) stay equal to a full recount of the delivery
 * records through every path that adds, moves or deletes a delivery:
 * outcomes (stale ones too), replay (by id, --dead, to a new target),
 * purge by id, purge --dead (hq_journal_purge_if), retention
 * (hq_journal_purge_before), purge --rejected, key rotation with reseal,
 * and a reopen.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "queue/journal.h"

static char dir[64];

static void
setup(void)
{
	strcpy(dir, "/tmp/hl7q-counts-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	rmdir(dir);
}

static void
teardown(void)
{
	char cmd[160];
	snprintf(cmd, sizeof cmd, "rm -rf %s /tmp/hl7q-ckf-%d", dir, (int)getpid());
	if (system(cmd) != 0) {
		/* best effort */
	}
}

#define T0 1700000000000000ull
#define NMAX 64

static uint64_t all[NMAX];
static size_t nall;

static hq_str
S(const char *s)
{
	return (hq_str){s, strlen(s)};
}

/* A message (state st) received at t_us with deliveries to targets[0..nt). */
static uint64_t
add_msg(hq_journal *j, hq_msg_state st, uint64_t t_us, const char *const *targets, int nt)
{
	hq_batch *b;
	hq_record r;
	uint64_t id;
	char ctrl[24];
	snprintf(ctrl, sizeof ctrl, "C%zu", nall);
	memset(&r, 0, sizeof r);
	r.received_us = t_us;
	r.state = st;
	r.f[HQ_F_CONTROL_ID] = S(ctrl);
	r.f[HQ_F_TYPE] = S("ADT^A01");
	r.f[HQ_F_PATIENT_ID] = S("P1");
	r.f[HQ_F_RAW] = S("MSH|^~\\&|A|B\rPID|1||P1\r");
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	ck_assert_int_eq(hq_batch_add(b, &r, NULL, &id), 0);
	for (int i = 0; i < nt; i++)
		ck_assert_int_eq(hq_batch_add_delivery(b, id, targets[i], t_us), 0);
	ck_assert_int_eq(hq_batch_commit(b), 0);
	ck_assert_uint_lt(nall, NMAX);
	all[nall++] = id;
	return id;
}

static void
settle(hq_journal *j, const char *target, uint64_t id, hq_dlv_state st, uint64_t epoch)
{
	hq_outcome o;
	memset(&o, 0, sizeof o);
	o.id = id;
	o.state = st;
	o.at_us = T0 + 1000;
	o.next_us = T0 + 2000;
	o.http_status = st == HQ_DLV_DELIVERED ? 200 : 503;
	o.epoch = epoch;
	ck_assert_int_eq(hq_journal_record_outcomes(j, target, &o, 1), 0);
}

/* The kept counts of every target equal a recount of the delivery records. */
static void
assert_counts(hq_journal *j, const char *where)
{
	static const char *const names[] = {"a", "b", "c"};
	uint64_t want[3][5];
	memset(want, 0, sizeof want);
	for (size_t i = 0; i < nall; i++) {
		hq_msg_dlv d[8];
		long nd = hq_journal_deliveries(j, all[i], d, 8);
		ck_assert_int_ge(nd, 0);
		for (long k = 0; k < nd; k++)
			for (int t = 0; t < 3; t++)
				if (strcmp(d[k].target, names[t]) == 0)
					want[t][d[k].d.state]++;
	}
	hq_target_summary ts[8];
	long n = hq_journal_targets(j, ts, 8);
	ck_assert_int_ge(n, 0);
	for (int t = 0; t < 3; t++) {
		uint64_t p = 0, r = 0, dd = 0;
		for (long i = 0; i < n; i++)
			if (strcmp(ts[i].name, names[t]) == 0) {
				p = ts[i].pending;
				r = ts[i].retrying;
				dd = ts[i].dead;
			}
		ck_assert_msg(p == want[t][HQ_DLV_PENDING] && r == want[t][HQ_DLV_RETRY] &&
				      dd == want[t][HQ_DLV_DEAD],
			      "%s: target %s kept pending/retrying/dead %llu/%llu/%llu, recount %llu/%llu/%llu",
			      where, names[t], (unsigned long long)p, (unsigned long long)r,
			      (unsigned long long)dd, (unsigned long long)want[t][HQ_DLV_PENDING],
			      (unsigned long long)want[t][HQ_DLV_RETRY],
			      (unsigned long long)want[t][HQ_DLV_DEAD]);
	}
}

static const char *
key_file(const char *lines)
{
	static char path[96];
	snprintf(path, sizeof path, "/tmp/hl7q-ckf-%d", (int)getpid());
	FILE *fp = fopen(path, "w");
	ck_assert_ptr_nonnull(fp);
	fputs(lines, fp);
	fclose(fp);
	chmod(path, 0600);
	return path;
}

#define KEY_A "1111111111111111111111111111111111111111111111111111111111111111\n"
#define KEY_B "2222222222222222222222222222222222222222222222222222222222222222\n"

START_TEST(test_counts_follow_every_path)
{
	static const char *const ab[] = {"a", "b"}, *const a[] = {"a"};
	hq_journal *j;
	hq_delivery d;
	char err[1300];
	nall = 0;
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	ck_assert_msg(hq_journal_set_keys(j, key_file(KEY_A), err, sizeof err) == 0, "%s", err);
	uint64_t m[12];
	for (int i = 0; i < 12; i++)
		m[i] = add_msg(j, HQ_MSG_ACCEPTED, T0 + (uint64_t)i, i % 2 ? a : ab, i % 2 ? 1 : 2);
	uint64_t rej = add_msg(j, HQ_MSG_REJECTED, T0 + 60, NULL, 0);
	uint64_t unr = add_msg(j, HQ_MSG_UNROUTED, T0 + 21, NULL, 0);
	(void)rej;
	assert_counts(j, "added");

	/* outcomes of each kind */
	settle(j, "a", m[0], HQ_DLV_DELIVERED, 0);
	settle(j, "b", m[0], HQ_DLV_DELIVERED, 0);
	settle(j, "a", m[1], HQ_DLV_DEAD, 0);
	settle(j, "a", m[2], HQ_DLV_RETRY, 0);
	settle(j, "b", m[2], HQ_DLV_DEAD, 0);
	settle(j, "a", m[3], HQ_DLV_DELIVERED, 0);
	settle(j, "a", m[4], HQ_DLV_DEAD, 0);
	settle(j, "b", m[4], HQ_DLV_DEAD, 0);
	settle(j, "a", m[5], HQ_DLV_RETRY, 0);
	settle(j, "a", m[6], HQ_DLV_DELIVERED, 0);
	settle(j, "b", m[6], HQ_DLV_DEAD, 0);
	settle(j, "a", m[7], HQ_DLV_DEAD, 0);
	assert_counts(j, "outcomes");

	/* replay: --dead of a message, everything of another, to a new target */
	ck_assert_int_ge(hq_journal_delivery(j, m[2], "b", &d), 0);
	uint64_t stale = d.replayed_us ? d.replayed_us : 1;
	ck_assert_int_eq(hq_journal_replay(j, &m[2], 1, NULL, 1, T0 + 100), 1);
	assert_counts(j, "replay --dead");
	ck_assert_int_eq(hq_journal_replay(j, &m[0], 1, NULL, 0, T0 + 101), 2);
	assert_counts(j, "replay");
	ck_assert_int_eq(hq_journal_replay(j, &m[3], 1, "c", 0, T0 + 102), 1);
	ck_assert_int_eq(hq_journal_replay(j, &unr, 1, "c", 0, T0 + 102), 1);
	assert_counts(j, "replay to a new target");
	/* an outcome from before the replay is dropped; one from after it counts */
	settle(j, "b", m[2], HQ_DLV_DELIVERED, stale);
	assert_counts(j, "stale outcome");
	settle(j, "c", m[3], HQ_DLV_DEAD, 0);
	assert_counts(j, "outcome to c");

	/* purge by id: pending, retrying and dead deliveries */
	ck_assert_int_eq(hq_journal_purge(j, &m[5], 1), 1);
	ck_assert_int_eq(hq_journal_purge(j, &m[9], 1), 1);
	assert_counts(j, "purge by id");
	/* purge --dead: only settled messages (m[4], m[7] and m[3]'s a/c) */
	uint64_t cand[] = {m[4], m[7], m[2], m[3], m[8]};
	ck_assert_int_eq(hq_journal_purge_if(j, cand, 5, HQ_PURGE_SETTLED), 3);
	assert_counts(j, "purge --dead");
	/* retention: m[6] is half dead, m[10] delivered */
	settle(j, "a", m[10], HQ_DLV_DELIVERED, 0);
	settle(j, "b", m[10], HQ_DLV_DELIVERED, 0);
	uint64_t resume = 0;
	ck_assert_int_ge(hq_journal_purge_before(j, T0 + 50, &resume, 100, 0), 1);
	assert_counts(j, "retention");
	resume = 0;
	ck_assert_int_eq(hq_journal_purge_rejected(j, UINT64_MAX, &resume, 100, 0), 1);
	assert_counts(j, "purge --rejected");

	/* a key rotation and a reseal */
	hq_journal_close(j);
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	ck_assert_msg(hq_journal_set_keys(j, key_file(KEY_B KEY_A), err, sizeof err) == 0, "%s", err);
	int done = 0;
	while (!done)
		ck_assert_int_ge(hq_journal_reseal(j, 3, &done), 0);
	assert_counts(j, "reseal");
	hq_journal_close(j);
	ck_assert_int_eq(hq_journal_open(dir, 0, 0, &j), 0);
	ck_assert_msg(hq_journal_set_keys(j, key_file(KEY_B), err, sizeof err) == 0, "%s", err);
	assert_counts(j, "reopened");
	hq_journal_close(j);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("journal_counts");
	TCase *tc = tcase_create("counts");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_counts_follow_every_path);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
