/*
 * check_silence.c - unit tests for core/silence.c: the expect_hours
 * parser and the silent-feed decision, table-driven, in UTC.
 */
#include <check.h>
#include <stdlib.h>
#include <time.h>

#include "core/silence.h"
#include "tests/check_util.h"

START_TEST(test_parse_hours)
{
	static const struct {
		const char *s;
		int rc, from, to;
	} cases[] = {
		{"06:00-22:00", 0, 360, 1320},
		{"22:00-06:00", 0, 1320, 360},
		{"00:00-24:00", -1, 0, 0},
		{"07:30-24:00", 0, 450, 0},
		{"6:00-22:00", 0, 360, 1320},
		{"06:00-06:00", -1, 0, 0},
		{"25:00-06:00", -1, 0, 0},
		{"06:60-07:00", -1, 0, 0},
		{"06:00", -1, 0, 0},
		{"06:00-22:00x", -1, 0, 0},
		{"", -1, 0, 0},
		{"24:30-01:00", -1, 0, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int from = -5, to = -5;
		int rc = hq_parse_hours(cases[i].s, &from, &to);
		ck_assert_msg(rc == cases[i].rc, "'%s': rc %d", cases[i].s, rc);
		if (rc == 0)
			ck_assert_msg(from == cases[i].from && to == cases[i].to, "'%s': %d-%d",
				      cases[i].s, from, to);
	}
}
END_TEST

#define DAY 86400ull
#define H 3600ull
#define M 60ull
/* 2026-11-26 00:00:00 UTC */
#define D0 1795651200ull

START_TEST(test_eval)
{
	setenv("TZ", "UTC", 1);
	tzset();
	static const struct {
		uint64_t last_s, now_s, within_s;
		int from, to; /* minutes; -1 all day */
		int silent;
		uint64_t quiet_s;
	} cases[] = {
		/* all day: silent from exactly expect_within on */
		{D0 + 10 * H, D0 + 10 * H + 899, 900, -1, -1, 0, 899},
		{D0 + 10 * H, D0 + 10 * H + 900, 900, -1, -1, 1, 900},
		{D0 + 10 * H, D0 + 10 * H + 5 * H, 900, -1, -1, 1, 5 * H},
		/* no expect_within: never */
		{D0, D0 + 30 * DAY, 0, -1, -1, 0, 0},
		/* a clock that went back: not silent */
		{D0 + 10 * H, D0 + 9 * H, 900, -1, -1, 0, 0},
		/* 06:00-22:00: at night never, however long */
		{D0 + 21 * H, D0 + 23 * H, 900, 360, 1320, 0, 0},
		{D0 + 21 * H, D0 + DAY + 5 * H + 59 * M, 900, 360, 1320, 0, 0},
		/* the window's opening counts as a message: 06:14:59 not yet, 06:15 silent */
		{D0 + 21 * H, D0 + DAY + 6 * H + 14 * M + 59, 900, 360, 1320, 0, 14 * M + 59},
		{D0 + 21 * H, D0 + DAY + 6 * H + 15 * M, 900, 360, 1320, 1, 15 * M},
		/* a message inside the window counts from itself */
		{D0 + 10 * H, D0 + 10 * H + 600, 900, 360, 1320, 0, 600},
		{D0 + 10 * H, D0 + 10 * H + 901, 900, 360, 1320, 1, 901},
		/* the end of the window is outside it */
		{D0 + 10 * H, D0 + 22 * H, 900, 360, 1320, 0, 0},
		/* across midnight, 22:00-06:00: opened yesterday at 22:00 */
		{D0 + 12 * H, D0 + DAY + 1 * H, 900, 1320, 360, 1, 3 * H},
		{D0 + 12 * H, D0 + 22 * H + 10 * M, 900, 1320, 360, 0, 10 * M},
		{D0 + 12 * H, D0 + DAY + 12 * H, 900, 1320, 360, 0, 0},
		{D0 + DAY + 0 * H + 59 * M, D0 + DAY + 1 * H + 10 * M, 900, 1320, 360, 0, 11 * M},
		/* never heard (0): silent once inside the window for expect_within */
		{0, D0 + 10 * H, 900, -1, -1, 1, D0 + 10 * H},
		{0, D0 + 6 * H + 5 * M, 900, 360, 1320, 0, 5 * M},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint64_t quiet = 12345;
		int s = hq_silence_eval(cases[i].last_s * 1000000, cases[i].now_s * 1000000,
					cases[i].within_s * 1000, cases[i].from, cases[i].to, &quiet);
		ck_assert_msg(s == cases[i].silent, "case %zu: silent %d", i, s);
		ck_assert_msg(quiet == cases[i].quiet_s * 1000000, "case %zu: quiet %llu s", i,
			      (unsigned long long)(quiet / 1000000));
	}
	ck_assert_int_eq(hq_silence_eval(D0 * 1000000, (D0 + 1000) * 1000000, 900000, -1, -1, NULL), 1);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("silence");
	TCase *tc = tcase_create("silence");
	tcase_add_test(tc, test_parse_hours);
	tcase_add_test(tc, test_eval);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
