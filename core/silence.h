/*
 * silence.h - when has a feed gone silent?  The decision behind the
 * listener keys expect_within and expect_hours, as pure functions of
 * times (no I/O, no state), shared by /metrics, /healthz, the daemon's log
 * and `hl7q check --silent` so that all four give the same answer.
 *
 * Rule: inside the daily window (all day without expect_hours) a message
 * is expected at least every expect_within.  The window's opening counts
 * as a message, so a feed that is quiet at night is not reported silent
 * the moment the window opens, only expect_within after it.  Outside the
 * window a feed is never silent.  Windows are in the daemon's local time
 * and may cross midnight (22:00-06:00).
 */
#ifndef HQ_SILENCE_H
#define HQ_SILENCE_H

#include <stdint.h>

/*
 * Parses "06:00-22:00" into minutes of the day (0..1439).  The two ends
 * differ.  Returns 0 or -1.
 */
int hq_parse_hours(const char *s, int *from_min, int *to_min);

/*
 * 1 when a listener whose last message arrived at last_us (wall clock,
 * microseconds) is silent at now_us, else 0.  within_ms 0: never silent.
 * from_min < 0: no window (all day).  *quiet_us (may be NULL) gets how long
 * the silence counted so far has lasted (0 outside the window).
 */
int hq_silence_eval(uint64_t last_us, uint64_t now_us, uint64_t within_ms, int from_min, int to_min,
		    uint64_t *quiet_us);

#endif
