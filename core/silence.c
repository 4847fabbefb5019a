/*
 * silence.c - the silent-feed decision (see silence.h).
 */
#include <stdio.h>
#include <time.h>

#include "silence.h"

int
hq_parse_hours(const char *s, int *from_min, int *to_min)
{
	int h1, m1, h2, m2, n = 0;
	if (sscanf(s, "%2d:%2d-%2d:%2d%n", &h1, &m1, &h2, &m2, &n) != 4 || s[n] != 0)
		return -1;
	/* 24:00 is the end of the day */
	if (h1 < 0 || h1 > 23 || m1 < 0 || m1 > 59 || h2 < 0 || h2 > 24 || m2 < 0 || m2 > 59 ||
	    (h2 == 24 && m2 != 0))
		return -1;
	*from_min = h1 * 60 + m1;
	*to_min = (h2 * 60 + m2) % 1440;
	return *from_min == *to_min ? -1 : 0;
}

int
hq_silence_eval(uint64_t last_us, uint64_t now_us, uint64_t within_ms, int from_min, int to_min, uint64_t *quiet_us)
{
	uint64_t since = last_us;
	if (quiet_us)
		*quiet_us = 0;
	if (within_ms == 0)
		return 0;
	if (from_min >= 0) {
		time_t now = (time_t)(now_us / 1000000);
		struct tm tm;
		localtime_r(&now, &tm);
		int m = tm.tm_hour * 60 + tm.tm_min;
		int inside = from_min < to_min ? m >= from_min && m < to_min : m >= from_min || m < to_min;
		if (!inside)
			return 0;
		/* the window opened today at from_min, or yesterday when it crosses midnight */
		if (m < from_min)
			tm.tm_mday--;
		tm.tm_hour = from_min / 60;
		tm.tm_min = from_min % 60;
		tm.tm_sec = 0;
		tm.tm_isdst = -1;
		time_t open = mktime(&tm);
		if (open != (time_t)-1 && (uint64_t)open * 1000000 > since)
			since = (uint64_t)open * 1000000;
	}
	if (now_us <= since)
		return 0;
	if (quiet_us)
		*quiet_us = now_us - since;
	return now_us - since >= within_ms * 1000;
}
