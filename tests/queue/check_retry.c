/*
 * check_retry.c - unit tests for queue/retry.c: the retry decision, one row
 * per rule (issue 11 point 7: Retry-After clamped, max_age deadline, 3xx;
 * point 8: a 401 for a replaced token is resent, not counted).
 */
#include <check.h>
#include <stdint.h>

#include "queue/retry.h"
#include "tests/check_util.h"

#define NOW 1800000000000000ull /* us */
#define S 1000000ull

START_TEST(test_point7_retry_decision_table)
{
	/* retry_initial 100 ms, retry_max 1 s, max_age 60 s, max_attempts 10 */
	const hq_retry_policy p = {100, 1000, 10, 60000};
	const hq_retry_policy nolimit = {100, 1000, 0, 0};
	static const struct row {
		const char *name;
		int nolimits;
		int status;
		int64_t retry_after;
		int stale;
		uint32_t attempts;
		uint64_t age_ms; /* how old the message is */
		double jitter;
		hq_next_kind kind;
		uint64_t at_ms; /* after NOW, for RETRY */
	} rows[] = {
		{"200 delivered", 0, 200, -1, 0, 1, 0, 1, HQ_NEXT_DELIVERED, 0},
		{"204 delivered", 0, 204, -1, 0, 1, 0, 1, HQ_NEXT_DELIVERED, 0},
		{"no answer: initial", 0, 0, -1, 0, 1, 0, 1, HQ_NEXT_RETRY, 100},
		{"jitter 0: half", 0, 0, -1, 0, 1, 0, 0, HQ_NEXT_RETRY, 50},
		{"503 doubles", 0, 503, -1, 0, 3, 0, 1, HQ_NEXT_RETRY, 400},
		{"503 capped at retry_max", 0, 503, -1, 0, 9, 0, 1, HQ_NEXT_RETRY, 1000},
		{"huge attempt count", 1, 503, -1, 0, 4000000000u, 0, 1, HQ_NEXT_RETRY, 1000},
		{"429 Retry-After 0.5 s below backoff", 0, 429, 0, 0, 2, 0, 1, HQ_NEXT_RETRY, 200},
		{"429 Retry-After clamped to retry_max", 0, 429, 30, 0, 1, 0, 1, HQ_NEXT_RETRY, 1000},
		{"Retry-After overflow, no max_age", 1, 503, INT64_MAX, 0, 1, 0, 1, HQ_NEXT_RETRY, 1000},
		{"Retry-After clamped, well before max_age", 0, 503, 3600, 0, 1, 30000, 1, HQ_NEXT_RETRY, 1000},
		{"Retry-After clamped, past max_age: dead", 0, 503, 3600, 0, 1, 59500, 0, HQ_NEXT_DEAD, 0},
		{"Retry-After overflow with max_age", 0, 503, INT64_MAX, 0, 1, 0, 1, HQ_NEXT_RETRY, 1000},
		{"retry before the deadline", 0, 503, -1, 0, 9, 59000, 0.5, HQ_NEXT_RETRY, 750},
		{"retry lands at the deadline", 0, 503, -1, 0, 9, 59000, 1, HQ_NEXT_RETRY, 1000},
		{"retry would fall past the deadline: dead", 0, 503, -1, 0, 9, 59001, 1, HQ_NEXT_DEAD, 0},
		{"max_age passed: dead", 0, 503, -1, 0, 1, 61000, 1, HQ_NEXT_DEAD, 0},
		{"max_attempts: dead", 0, 503, -1, 0, 10, 0, 1, HQ_NEXT_DEAD, 0},
		{"307 retried", 0, 307, -1, 0, 1, 0, 1, HQ_NEXT_RETRY, 100},
		{"308 retried", 0, 308, -1, 0, 1, 0, 1, HQ_NEXT_RETRY, 100},
		{"301 dead", 0, 301, -1, 0, 1, 0, 1, HQ_NEXT_DEAD, 0},
		{"302 dead", 0, 302, -1, 0, 1, 0, 1, HQ_NEXT_DEAD, 0},
		{"400 dead", 0, 400, -1, 0, 1, 0, 1, HQ_NEXT_DEAD, 0},
		{"401 fresh token dead", 0, 401, -1, 0, 1, 0, 1, HQ_NEXT_DEAD, 0},
		{"401 stale token resent", 0, 401, -1, 1, 9, 0, 1, HQ_NEXT_RESEND, 0},
		{"408 retried", 0, 408, -1, 0, 1, 0, 1, HQ_NEXT_RETRY, 100},
		{"425 retried", 0, 425, -1, 0, 1, 0, 1, HQ_NEXT_RETRY, 100},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		const struct row *r = &rows[i];
		hq_attempt_result a = {r->status, r->retry_after,	  r->stale, r->attempts,
				       NOW,	  NOW - r->age_ms * 1000, r->jitter};
		hq_next n = hq_retry_decide(r->nolimits ? &nolimit : &p, &a);
		ck_assert_msg(n.kind == r->kind, "%s: kind %d, want %d", r->name, n.kind, r->kind);
		if (r->kind == HQ_NEXT_RETRY)
			ck_assert_msg(n.at_us == NOW + r->at_ms * 1000, "%s: at +%lld ms, want +%llu", r->name,
				      (long long)(n.at_us - NOW) / 1000, (unsigned long long)r->at_ms);
		if (r->kind == HQ_NEXT_DEAD)
			ck_assert_ptr_nonnull(n.why);
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("retry");
	TCase *tc = tcase_create("retry");
	tcase_add_test(tc, test_point7_retry_decision_table);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
