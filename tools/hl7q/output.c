/*
 * output.c - hl7q's words: the one-line errors, times (core/timefmt.h),
 * the state names, stored fields as text or JSON, and the numbers read
 * from the command line.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/timefmt.h"
#include "tools/hl7q/hl7q.h"


int g_json;
const char *g_cmd = "hl7q";
char g_err[HL7Q_ERR_CAP]; /* the last reason printed, for check's UNKNOWN line */

/* Prints "hl7q CMD: reason" on stderr; returns 1 (usage/input error). */
int
fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(g_err, sizeof g_err, fmt, ap);
	va_end(ap);
	fprintf(stderr, "hl7q %s: %s\n", g_cmd, g_err);
	return 1;
}

/* getopt's complaint, in this tool's words (opterr is off). */
int
bad_option(char **argv)
{
	return fail("option '%s' is unknown or lacks its value (see hl7q --help)", argv[optind - 1]);
}

int
time_arg(const char *opt, const char *example, const char *s, uint64_t *us)
{
	if (hq_time_parse(s, hq_wall_us(), us) == 0)
		return 0;
	return fail("%s '%s' is not a time (RFC 3339, or a duration back like %s)", opt, s, example);
}

int
range_arg(int o, const char *s, uint64_t *since_us, uint64_t *until_us)
{
	return o == 'S' ? time_arg("--since", "15m", s, since_us) : time_arg("--until", "15m", s, until_us);
}

/* 2026-11-26T10:00:00.123Z (milliseconds); "-" for 0, never. */
const char *
fmt_time(uint64_t us, char *buf, size_t cap)
{
	return us ? hq_time_format(us, 3, buf, cap) : "-";
}

const char *
dlv_state_name(hq_dlv_state s)
{
	switch (s) {
	case HQ_DLV_PENDING: return "pending";
	case HQ_DLV_RETRY: return "retry";
	case HQ_DLV_DELIVERED: return "delivered";
	case HQ_DLV_DEAD: return "dead";
	}
	return "unknown";
}

const char *
msg_state_name(int s)
{
	switch (s) {
	case HQ_MSG_ACCEPTED: return "accepted";
	case HQ_MSG_REJECTED: return "rejected";
	case HQ_MSG_DUPLICATE: return "duplicate";
	case HQ_MSG_UNROUTED: return "unrouted";
	}
	return "unknown";
}

/* A stored field as a C string (cut at cap). */
const char *
field(const hq_record *r, int f, char *buf, size_t cap)
{
	size_t n = r->f[f].n < cap - 1 ? r->f[f].n : cap - 1;
	if (n)
		memcpy(buf, r->f[f].p, n);
	buf[n] = 0;
	return buf;
}

json_t *
jfield(const hq_record *r, int f)
{
	return json_stringn_nocheck(r->f[f].p ? r->f[f].p : "", r->f[f].n);
}

/* A decimal count (0 allowed).  Returns 0 or -1. */
int
parse_count(const char *s, uint64_t *n)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-')
		return -1;
	*n = v;
	return 0;
}

/* A message id: a count from 1. */
int
parse_id(const char *s, uint64_t *id)
{
	return parse_count(s, id) == 0 && *id > 0 ? 0 : -1;
}

void
print_json(json_t *o)
{
	char *line = json_dumps(o, JSON_COMPACT);
	if (line)
		puts(line);
	free(line);
	json_decref(o);
}
