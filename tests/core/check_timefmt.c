/*
 * check_timefmt.c - unit tests for core/timefmt.c: writing and reading
 * wall-clock times, table-driven, with round trips (a written time reads
 * back as itself, cut to the digits written) and the edges (the epoch,
 * leap days, offsets, a duration longer than the time since the epoch).
 */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "core/timefmt.h"
#include "tests/check_util.h"

/* 2026-11-26 00:00:00 UTC, in seconds and microseconds */
#define D0 1795651200ull
#define S 1000000ull

START_TEST(test_format)
{
	static const struct {
		uint64_t us;
		int digits;
		const char *want;
	} cases[] = {
		{0, 3, "1970-01-01T00:00:00.000Z"},
		{0, 6, "1970-01-01T00:00:00.000000Z"},
		{D0 * S + 36000 * S + 123456, 3, "2026-11-26T10:00:00.123Z"},
		{D0 * S + 36000 * S + 123456, 6, "2026-11-26T10:00:00.123456Z"},
		{D0 * S + 999999, 3, "2026-11-26T00:00:00.999Z"}, /* cut, never rounded up */
		{D0 * S - 1, 6, "2026-11-25T23:59:59.999999Z"},
		{1709164800ull * S, 3, "2024-02-29T00:00:00.000Z"}, /* a leap day */
		{4102444799ull * S + 5000, 3, "2099-12-31T23:59:59.005Z"},
		{D0 * S + 7, 4, "2026-11-26T00:00:00.000Z"}, /* other digit counts write milliseconds */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char buf[HQ_TIME_CAP];
		const char *got = hq_time_format(cases[i].us, cases[i].digits, buf, sizeof buf);
		ck_assert_ptr_eq(got, buf);
		ck_assert_msg(strcmp(got, cases[i].want) == 0, "case %zu: '%s', want '%s'", i, got,
			      cases[i].want);
	}
}
END_TEST

START_TEST(test_parse)
{
	const uint64_t now = D0 * S + 36000 * S; /* 2026-11-26T10:00:00Z */
	static const struct {
		const char *s;
		int rc;
		uint64_t us;
	} cases[] = {
		{"2026-11-26T10:00:00Z", 0, D0 * S + 36000 * S},
		{"2026-11-26t10:00:00z", 0, D0 * S + 36000 * S},
		{"2026-11-26 10:00:00Z", 0, D0 * S + 36000 * S},
		{"2026-11-26T12:00:00+02:00", 0, D0 * S + 36000 * S},
		{"2026-11-26T04:30:00-05:30", 0, D0 * S + 36000 * S},
		{"2026-11-26T10:00:00.5Z", 0, D0 * S + 36000 * S + 500000},
		{"2026-11-26T10:00:00.123456Z", 0, D0 * S + 36000 * S + 123456},
		{"2026-11-26T10:00:00.1234567Z", 0, D0 * S + 36000 * S + 123456}, /* past microseconds: cut */
		{"2026-11-26", 0, D0 * S}, /* a date: its midnight UTC */
		{"1970-01-01T00:00:00Z", 0, 0},
		{"2024-02-29T00:00:00Z", 0, 1709164800ull * S},
		{"2026-11-26T23:59:60Z", 0, (D0 + 86400) * S}, /* a leap second: the next one */
		{"15m", 0, now - 900 * S},
		{"2h", 0, now - 7200 * S},
		{"1.5h", 0, now - 5400 * S},
		{"2d", 0, now - 2 * 86400 * S},
		{"30", 0, now - 30 * S}, /* a bare number: seconds */
		{"100000d", 0, 0},	 /* before the epoch: the epoch */
		{"0s", 0, now},
		{"2026-11-26T10:00:00", EINVAL, 0}, /* RFC 3339 wants the offset */
		{"2026-11-26T10:00Z", EINVAL, 0},
		{"2026-11-26T10:00:00Zx", EINVAL, 0},
		{"2026-11-26T10:00:00+2", EINVAL, 0},
		{"2026-13-01", EINVAL, 0},
		{"2026-11-26T24:00:00Z", EINVAL, 0},
		{"1969-12-31T23:59:59Z", EINVAL, 0},
		{"-5m", EINVAL, 0},
		{"3w", EINVAL, 0},
		{"yesterday", EINVAL, 0},
		{"", EINVAL, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint64_t us = 42;
		int rc = hq_time_parse(cases[i].s, now, &us);
		ck_assert_msg(rc == cases[i].rc, "'%s': rc %d, want %d", cases[i].s, rc, cases[i].rc);
		if (rc == 0)
			ck_assert_msg(us == cases[i].us, "'%s': %llu, want %llu", cases[i].s,
				      (unsigned long long)us, (unsigned long long)cases[i].us);
		else
			ck_assert_msg(us == 42, "'%s': *us written on failure", cases[i].s);
	}
}
END_TEST

START_TEST(test_round_trip)
{
	static const uint64_t times[] = {
		0, 1, 999, 1000, 999999, S, D0 * S + 36000 * S + 123456, 1709164800ull * S + 86399 * S + 999999, 4102444799ull * S + 1};
	for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
		char buf[HQ_TIME_CAP];
		uint64_t back = 0;
		ck_assert_int_eq(hq_time_parse(hq_time_format(times[i], 6, buf, sizeof buf), 0, &back), 0);
		ck_assert_msg(back == times[i], "%s: %llu, want %llu", buf,
			      (unsigned long long)back, (unsigned long long)times[i]);
		ck_assert_int_eq(hq_time_parse(hq_time_format(times[i], 3, buf, sizeof buf), 0, &back), 0);
		ck_assert_msg(back == times[i] / 1000 * 1000, "%s: %llu", buf, (unsigned long long)back);
	}
}
END_TEST

START_TEST(test_age)
{
	static const struct {
		uint64_t since, now, want;
	} cases[] = {
		{0, D0 * S, 0},		      /* never */
		{D0 * S, D0 * S, 0},	      /* just now */
		{D0 * S + S, D0 * S, 0},      /* later than now (a clock step): 0 */
		{D0 * S, D0 * S + 999999, 0}, /* under a second */
		{D0 * S, D0 * S + 1000000, 1},
		{D0 * S, D0 * S + 192 * S + 5, 192}, /* 3m12s, whole seconds */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		ck_assert_msg(hq_age_s(cases[i].since, cases[i].now) == cases[i].want, "case %zu", i);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("timefmt");
	TCase *tc = tcase_create("timefmt");
	tcase_add_test(tc, test_format);
	tcase_add_test(tc, test_parse);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_age);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
