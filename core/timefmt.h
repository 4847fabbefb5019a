/*
 * timefmt.h - the one way hl7q writes and reads wall-clock times.
 *
 * Written: RFC 3339 / ISO 8601 in UTC with a fixed number of fraction
 * digits, "2026-11-26T10:00:00.123Z" (milliseconds: log lines, hl7q's
 * tables and JSON) or "2026-11-26T10:00:00.123456Z" (microseconds: the
 * delivery payload, the RFC 5424 audit line).  Read: what an operator
 * types after --since, --until, --before: RFC 3339 (fraction and offset
 * optional; a date alone is its midnight UTC) or a duration back from now
 * ("15m", "2d", hq_parse_duration's units).
 *
 * Times are microseconds since the Unix epoch (hq_wall_us()); the
 * fraction written is cut, never rounded, so a written time read back
 * is the same time cut to the digits written.
 */
#ifndef HQ_TIMEFMT_H
#define HQ_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* A buffer that holds any time hq_time_format writes. */
#define HQ_TIME_CAP 40

/*
 * Writes us as "YYYY-MM-DDTHH:MM:SS.fffZ" into buf (cap >= HQ_TIME_CAP),
 * with digits fraction digits (3: milliseconds, 6: microseconds; anything
 * else counts as 3).  Returns buf.
 */
const char *hq_time_format(uint64_t us, int digits, char *buf, size_t cap);

/*
 * Reads s: RFC 3339 (2026-11-26T10:00:00Z, 2026-11-26T12:00:00.5+02:00,
 * 2026-11-26) or a duration back from now_us (15m, 2d; a time before the
 * epoch is the epoch).  Returns 0 with *us set, or EINVAL (*us untouched).
 */
int hq_time_parse(const char *s, uint64_t now_us, uint64_t *us);

/* Whole seconds from since_us to now_us; 0 when since_us is 0 (never) or later than now_us. */
uint64_t hq_age_s(uint64_t since_us, uint64_t now_us);

#endif
