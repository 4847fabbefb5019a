/*
 * retry.h - what to do after a delivery attempt: a pure function of the
 * answer (status, Retry-After), the attempt count and the message's age,
 * so that every rule is in one table-tested place and the worker loop
 * only calls it.
 */
#ifndef HQ_RETRY_H
#define HQ_RETRY_H

#include <stdint.h>

typedef struct hq_retry_policy {
	uint64_t initial_ms, max_ms; /* backoff bounds (retry_initial, retry_max) */
	uint32_t max_attempts;	     /* 0: no limit */
	uint64_t max_age_ms;	     /* 0: no limit */
} hq_retry_policy;

typedef struct hq_attempt_result {
	int status;	       /* HTTP status; 0: no answer (network error, timeout) */
	int64_t retry_after_s; /* Retry-After in seconds (a date already converted); -1 none */
	int stale_token;       /* a 401 the worker blames on a token since replaced */
	uint32_t attempts;     /* made, this one included */
	uint64_t now_us, age_from_us;
	double jitter; /* in [0, 1]: where in [delay/2, delay] the retry lands */
} hq_attempt_result;

typedef enum hq_next_kind {
	HQ_NEXT_DELIVERED,
	HQ_NEXT_RETRY,	/* at at_us, the attempt recorded */
	HQ_NEXT_RESEND, /* at once, and the attempt not counted (a stale token) */
	HQ_NEXT_DEAD
} hq_next_kind;

typedef struct hq_next {
	hq_next_kind kind;
	uint64_t at_us;	 /* HQ_NEXT_RETRY */
	const char *why; /* HQ_NEXT_DEAD: a short reason (static text) */
} hq_next;

/*
 * 2xx: delivered.  No answer, 408, 425, 429, 5xx, 307, 308: retried with
 * exponential backoff and jitter between initial_ms and max_ms; a
 * Retry-After asks for longer, clamped to max_ms.  Other 3xx and 4xx:
 * dead.  Dead as well when max_attempts is reached, when max_age has
 * passed, or when the next retry would fall past the max_age deadline
 * (rather than hold a FIFO head until then).  Arithmetic saturates (no
 * overflow with any header or clock).
 */
hq_next hq_retry_decide(const hq_retry_policy *p, const hq_attempt_result *r);

#endif
