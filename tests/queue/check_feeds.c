/*
 * check_feeds.c - unit tests for queue/feeds.c: reading each listener's
 * last accepted message back from a journal, as the daemon does at start
 * and `hl7q check --silent` does without it.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "queue/feeds.h"
#include "queue/journal.h"
#include "tests/check_util.h"

static char dir[64];
static hq_journal *j;

static void
setup(void)
{
	strcpy(dir, "/tmp/hl7q-feeds-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	rmdir(dir); /* the journal creates it */
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
}

static void
teardown(void)
{
	char cmd[128];
	hq_journal_close(j);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0) {
		/* best effort */
	}
}

/* One record of listener at second t (state, ack as given). */
static void
add(const char *listener, uint64_t t, int state, const char *ack)
{
	hq_batch *b;
	hq_record r;
	uint64_t id;
	memset(&r, 0, sizeof r);
	r.received_us = t * 1000000;
	r.state = (uint8_t)state;
	memcpy(r.ack, ack, strlen(ack));
	r.f[HQ_F_LISTENER] = (hq_str){listener, strlen(listener)};
	r.f[HQ_F_CONTROL_ID] = (hq_str){"C1", 2};
	r.f[HQ_F_RAW] = (hq_str){"MSH|^~\\&|", 9};
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	ck_assert_int_eq(hq_batch_add(b, &r, NULL, &id), 0);
	ck_assert_int_eq(hq_batch_commit(b), 0);
}

static const char *names[] = {"adt", "lab", "rad"};

START_TEST(test_empty_journal)
{
	uint64_t last[3] = {9, 9, 9}, oldest = 9;
	ck_assert_int_eq(hq_feeds_last_seen(j, names, 3, 100, last, &oldest), 0);
	ck_assert_uint_eq(last[0] + last[1] + last[2], 0);
	ck_assert_uint_eq(oldest, 0); /* the whole journal was read */
}
END_TEST

START_TEST(test_newest_accepted_per_listener)
{
	add("adt", 100, HQ_MSG_ACCEPTED, "AA");
	add("lab", 110, HQ_MSG_UNROUTED, "CA");
	add("adt", 120, HQ_MSG_ACCEPTED, "AA");
	add("adt", 130, HQ_MSG_REJECTED, "AR");	 /* refused: not a message */
	add("lab", 140, HQ_MSG_DUPLICATE, "AR"); /* a refused repeat: not either */
	add("lab", 150, HQ_MSG_DUPLICATE, "AA"); /* an acknowledged repeat: it is */
	add("other", 160, HQ_MSG_ACCEPTED, "AA");
	uint64_t last[3], oldest = 9;
	ck_assert_int_eq(hq_feeds_last_seen(j, names, 3, 100, last, &oldest), 0);
	ck_assert_uint_eq(last[0], 120 * 1000000ull);
	ck_assert_uint_eq(last[1], 150 * 1000000ull);
	ck_assert_uint_eq(last[2], 0); /* rad: never, in the whole journal */
	ck_assert_uint_eq(oldest, 0);
}
END_TEST

START_TEST(test_scan_limit)
{
	/* adt's message is older than the newest 3 records: "silent since" the oldest read */
	add("adt", 100, HQ_MSG_ACCEPTED, "AA");
	for (uint64_t t = 200; t < 260; t += 10)
		add("lab", t, HQ_MSG_ACCEPTED, "AA");
	uint64_t last[2], oldest = 0;
	ck_assert_int_eq(hq_feeds_last_seen(j, names, 2, 3, last, &oldest), 0);
	ck_assert_uint_eq(last[0], 0);
	ck_assert_uint_eq(last[1], 250 * 1000000ull);
	ck_assert_uint_eq(oldest, 230 * 1000000ull);
	/* with room enough, found */
	ck_assert_int_eq(hq_feeds_last_seen(j, names, 2, 100, last, &oldest), 0);
	ck_assert_uint_eq(last[0], 100 * 1000000ull);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("feeds");
	TCase *tc = tcase_create("last_seen");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_empty_journal);
	tcase_add_test(tc, test_newest_accepted_per_listener);
	tcase_add_test(tc, test_scan_limit);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
