/*
 * check_tz.c - unit tests for hl7/tz.c: offsets from the TZif files agree
 * with the C library's (TZ set in this single-threaded test only) at
 * instants spread over 1900..2100 -- past the files' last transition too,
 * where the POSIX footer rule takes over -- in zones north and south of the
 * equator, with half-hour offsets, and without DST; local wall times in a
 * skipped or repeated hour; names that are not zones.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "hl7/tz.h"
#include "tests/check_util.h"

static const char *const zones[] = {
	"America/Chicago",  "Europe/Berlin",	"Australia/Sydney",  "Asia/Kolkata", "UTC",
	"America/St_Johns", "Pacific/Auckland", "America/Sao_Paulo", "Asia/Tokyo"};

START_TEST(test_offsets_agree_with_libc)
{
	for (size_t z = 0; z < sizeof zones / sizeof zones[0]; z++) {
		hq_tz *tz;
		char err[256];
		ck_assert_int_eq(hq_tz_load(zones[z], NULL, &tz, err, sizeof err), 0);
		setenv("TZ", zones[z], 1);
		tzset();
		/* every ~9.7 days from 1902 to 2100: DST edges fall between some */
		for (int64_t t = -2100000000LL; t < 4102444800LL; t += 838861) {
			time_t tt = (time_t)t;
			struct tm tm;
			localtime_r(&tt, &tm);
			ck_assert_msg(hq_tz_offset_at(tz, t) == tm.tm_gmtoff, "%s at %lld: %d, libc %ld",
				      zones[z], (long long)t, hq_tz_offset_at(tz, t), tm.tm_gmtoff);
		}
		hq_tz_free(tz);
	}
	unsetenv("TZ");
}
END_TEST

/* Seconds of the wall clock y-m-d h:m as if it were UTC. */
static int64_t
wall(int y, int mo, int d, int h, int mi)
{
	struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
	return (int64_t)timegm(&tm);
}

START_TEST(test_local_times)
{
	hq_tz *tz;
	char err[256];
	ck_assert_int_eq(hq_tz_load("America/Chicago", NULL, &tz, err, sizeof err), 0);
	ck_assert_int_eq(hq_tz_offset_local(tz, wall(2026, 7, 1, 12, 0)), -5 * 3600);
	ck_assert_int_eq(hq_tz_offset_local(tz, wall(2026, 1, 15, 12, 0)), -6 * 3600);
	/* 2026-03-08 02:30 does not exist: the offset before the change */
	ck_assert_int_eq(hq_tz_offset_local(tz, wall(2026, 3, 8, 2, 30)), -6 * 3600);
	ck_assert_int_eq(hq_tz_offset_local(tz, wall(2026, 3, 8, 3, 30)), -5 * 3600);
	/* 2026-11-01 01:30 happens twice: the first (CDT) */
	ck_assert_int_eq(hq_tz_offset_local(tz, wall(2026, 11, 1, 1, 30)), -5 * 3600);
	ck_assert_int_eq(hq_tz_offset_local(tz, wall(2026, 11, 1, 2, 30)), -6 * 3600);
	/* far beyond the file's transitions: the footer rule */
	ck_assert_int_eq(hq_tz_offset_local(tz, wall(2090, 7, 4, 12, 0)), -5 * 3600);
	ck_assert_int_eq(hq_tz_offset_local(tz, wall(2090, 12, 24, 12, 0)), -6 * 3600);
	hq_tz_free(tz);
	ck_assert_int_eq(hq_tz_load("Australia/Sydney", NULL, &tz, err, sizeof err), 0);
	ck_assert_int_eq(hq_tz_offset_local(tz, wall(2026, 1, 15, 12, 0)), 11 * 3600);
	ck_assert_int_eq(hq_tz_offset_local(tz, wall(2026, 7, 15, 12, 0)), 10 * 3600);
	ck_assert_int_eq(hq_tz_offset_local(tz, wall(2095, 1, 15, 12, 0)), 11 * 3600);
	hq_tz_free(tz);
}
END_TEST

START_TEST(test_bad_names)
{
	hq_tz *tz = NULL;
	char err[256];
	ck_assert_int_eq(hq_tz_load("Mars/Olympus", NULL, &tz, err, sizeof err), HQ_ECONFIG);
	ck_assert_ptr_nonnull(strstr(err, "Mars/Olympus"));
	ck_assert_int_eq(hq_tz_load("../../etc/passwd", NULL, &tz, err, sizeof err), HQ_ECONFIG);
	ck_assert_int_eq(hq_tz_load("/etc/localtime", NULL, &tz, err, sizeof err), HQ_ECONFIG);
	ck_assert_int_eq(hq_tz_load("", NULL, &tz, err, sizeof err), HQ_ECONFIG);
	/* a file that is not TZif */
	ck_assert_int_eq(hq_tz_load("zone.tab", NULL, &tz, err, sizeof err), HQ_ECONFIG);
	ck_assert_ptr_null(tz);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("tz");
	TCase *tc = tcase_create("tz");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_offsets_agree_with_libc);
	tcase_add_test(tc, test_local_times);
	tcase_add_test(tc, test_bad_names);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
