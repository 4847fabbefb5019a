/*
 * check_index.c - unit tests for queue/index.c: hq_journal_index() returns
 * a count or a negative code, never an error that reads as a count
 * (issue 12.4: its failed cursor open returned EINVAL as "22 indexed").
 * White-box: the test includes the journal's private header to make the
 * msgs database handle invalid, the one way to make that open fail.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "queue/journal_int.h"
#include "tests/check_util.h"

static char dir[64];

static void
setup(void)
{
	check_journal_dir(dir, sizeof dir, "index");
}

static void
teardown(void)
{
	check_rm_rf(dir);
}

static void
add(hq_journal *j, const char *ctrl)
{
	hq_batch *b;
	hq_record r;
	uint64_t id;
	memset(&r, 0, sizeof r);
	r.received_us = 1700000000000000ull;
	r.f[HQ_F_CONTROL_ID] = (hq_str){ctrl, strlen(ctrl)};
	r.f[HQ_F_RAW] = (hq_str){"MSH|^~\\&|", 9};
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	ck_assert_int_eq(hq_batch_add(b, &r, NULL, &id), 0);
	ck_assert_int_eq(hq_batch_commit(b), 0);
}

START_TEST(test_index_error_is_negative)
{
	hq_journal *j;
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	add(j, "C1");
	add(j, "C2");
	MDB_dbi msgs = j->msgs;
	j->msgs = 200; /* no such database: mdb_cursor_open says EINVAL */
	long n = hq_journal_index(j, 100);
	ck_assert_int_eq(n, -EINVAL);
	j->msgs = msgs;
	ck_assert_uint_eq(hq_journal_unindexed(j), 2); /* nothing was indexed */
	ck_assert_int_eq(hq_journal_index(j, 100), 2);
	ck_assert_uint_eq(hq_journal_unindexed(j), 0);
	hq_journal_close(j);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("index");
	TCase *tc = tcase_create("index");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_index_error_is_negative);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
