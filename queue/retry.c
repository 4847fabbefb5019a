/*
 * retry.c - the retry decision (see retry.h).  No I/O, no clock, no
 * randomness of its own: the caller passes now and the jitter.
 */
#include <stddef.h>

#include "retry.h"

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t
sat_mul(uint64_t a, uint64_t b)
{
	return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

static hq_next
dead(const char *why)
{
	return (hq_next){HQ_NEXT_DEAD, 0, why};
}

hq_next
hq_retry_decide(const hq_retry_policy *p, const hq_attempt_result *r)
{
	int s = r->status;
	if (s >= 200 && s < 300)
		return (hq_next){HQ_NEXT_DELIVERED, 0, NULL};
	if (s == 401 && r->stale_token)
		return (hq_next){HQ_NEXT_RESEND, r->now_us, NULL};
	int retryable = s == 0 || s == 408 || s == 425 || s == 429 || s >= 500 || s == 307 || s == 308;
	if (!retryable)
		return dead(s >= 300 && s < 400 ? "redirect" : "refused");
	if (p->max_attempts && r->attempts >= p->max_attempts)
		return dead("max_attempts reached");
	uint64_t deadline = p->max_age_ms ? sat_add(r->age_from_us, sat_mul(p->max_age_ms, 1000)) : UINT64_MAX;
	if (r->now_us >= deadline)
		return dead("max_age reached");
	/* backoff: initial * 2^(attempts-1), at most max, jitter in its upper half */
	uint64_t max = p->max_ms ? p->max_ms : 1, d = p->initial_ms ? p->initial_ms : 1;
	for (uint32_t i = 1; i < r->attempts && d < max; i++)
		d = sat_mul(d, 2);
	if (d > max)
		d = max;
	double j = r->jitter < 0 ? 0 : r->jitter > 1 ? 1 : r->jitter;
	d = d / 2 + (uint64_t)(j * (double)(d - d / 2));
	if (r->retry_after_s >= 0) {
		uint64_t ra = sat_mul((uint64_t)r->retry_after_s, 1000);
		if (ra > max)
			ra = max;
		if (ra > d)
			d = ra;
	}
	uint64_t at = sat_add(r->now_us, sat_mul(d, 1000));
	if (at > deadline)
		return dead("the next retry would fall past max_age");
	return (hq_next){HQ_NEXT_RETRY, at, NULL};
}
