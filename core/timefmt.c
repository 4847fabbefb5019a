/*
 * timefmt.c - writing and reading wall-clock times (see timefmt.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "timefmt.h"

const char *
hq_time_format(uint64_t us, int digits, char *buf, size_t cap)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	if (digits == 6)
		snprintf(buf + n, cap - n, ".%06uZ", (unsigned)(us % 1000000));
	else
		snprintf(buf + n, cap - n, ".%03uZ", (unsigned)(us % 1000000 / 1000));
	return buf;
}

/* "HH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" after a date's 'T': into tm, *frac
 * (microseconds) and *off (seconds east of UTC).  Returns the rest, or NULL. */
static const char *
parse_clock(const char *p, struct tm *tm, uint64_t *frac, long *off)
{
	p = strptime(p, "%H:%M:%S", tm);
	if (p == NULL)
		return NULL;
	if (*p == '.') {
		uint64_t scale = 100000;
		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			*frac += (uint64_t)(*p - '0') * scale;
	}
	if (*p == 'Z' || *p == 'z')
		return p + 1;
	if (*p != '+' && *p != '-')
		return NULL; /* RFC 3339 wants the offset */
	int h, m;
	if (sscanf(p + 1, "%2d:%2d", &h, &m) != 2)
		return NULL;
	*off = (h * 3600L + m * 60L) * (*p == '-' ? -1 : 1);
	return p + 6;
}

int
hq_time_parse(const char *s, uint64_t now_us, uint64_t *us)
{
	uint64_t ms;
	if (hq_parse_duration(s, &ms) == 0 && s[0] >= '0' && s[0] <= '9' && !strchr(s, '-')) {
		*us = ms * 1000 < now_us ? now_us - ms * 1000 : 0;
		return 0;
	}
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *p = strptime(s, "%Y-%m-%d", &tm);
	if (p == NULL)
		return EINVAL;
	uint64_t frac = 0;
	long off = 0;
	if (*p == 'T' || *p == 't' || *p == ' ')
		p = parse_clock(p + 1, &tm, &frac, &off);
	if (p == NULL || *p != 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_hour > 23 ||
	    tm.tm_min > 59 || tm.tm_sec > 60)
		return EINVAL;
	time_t t = timegm(&tm) - off;
	if (t < 0)
		return EINVAL;
	*us = (uint64_t)t * 1000000 + frac;
	return 0;
}

uint64_t
hq_age_s(uint64_t since_us, uint64_t now_us)
{
	return since_us && now_us > since_us ? (now_us - since_us) / 1000000 : 0;
}
