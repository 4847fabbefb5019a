/*
 * tz.c - TZif v2+ reader and offset lookup (see tz.h).
 *
 * Reads the 64-bit block of a TZif file (RFC 8536): transition times and
 * the offset each one starts, plus the POSIX TZ footer that continues the
 * rule after the last transition (Debian ships "fat" files up to 2037 and
 * "slim" ones that stop sooner; the footer covers both).  Footer rules of
 * the Mm.w.d form, which every zone in tzdata uses, are supported; a zone
 * whose footer cannot be read keeps its last offset.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "tz.h"

typedef struct rule {
	int m, w, d;  /* Mm.w.d */
	int32_t time; /* seconds after local midnight */
} rule;

struct hq_tz {
	int64_t *at;  /* transition instants, ascending */
	int32_t *off; /* offset starting at at[i] */
	size_t n;
	int32_t first_off; /* before the first transition */
	int has_rule;	   /* footer: std_off/dst_off with start/end rules */
	int32_t std_off, dst_off;
	rule start, end;
};

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t
be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

int64_t
hq_tz_days(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int64_t
year_of(int64_t t)
{
	int64_t z = (t >= 0 ? t : t - 86399) / 86400 + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int m = (int)(mp < 10 ? mp + 3 : mp - 9);
	return yoe + era * 400 + (m <= 2);
}

/* The local wall time (seconds) at which rule r fires in year y. */
static int64_t
rule_local(const rule *r, int64_t y)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int64_t first = hq_tz_days(y, r->m, 1);
	int wd = (int)(((first % 7) + 11) % 7); /* 1970-01-01 was a Thursday (4) */
	int day = 1 + (r->d - wd + 7) % 7 + (r->w - 1) * 7;
	int len = mdays[r->m - 1] + (r->m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
	while (day > len)
		day -= 7;
	return hq_tz_days(y, r->m, day) * 86400 + r->time;
}

/* [+-]hh[:mm[:ss]] into seconds; advances *s. */
static int
posix_time(const char **s, int32_t *out)
{
	const char *p = *s;
	int sign = 1, part[3] = {0, 0, 0}, np = 0;
	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	while (np < 3) {
		if (*p < '0' || *p > '9')
			return -1;
		while (*p >= '0' && *p <= '9')
			part[np] = part[np] * 10 + (*p++ - '0');
		np++;
		if (*p != ':')
			break;
		p++;
	}
	*out = sign * (part[0] * 3600 + part[1] * 60 + part[2]);
	*s = p;
	return 0;
}

static int
posix_name(const char **s)
{
	const char *p = *s;
	if (*p == '<') {
		while (*p && *p != '>')
			p++;
		if (*p != '>')
			return -1;
		p++;
	} else {
		while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
			p++;
	}
	if (p - *s < 3)
		return -1;
	*s = p;
	return 0;
}

static int
posix_rule(const char **s, rule *r)
{
	const char *p = *s;
	if (*p != 'M' || sscanf(p + 1, "%d.%d.%d", &r->m, &r->w, &r->d) != 3 || r->m < 1 ||
	    r->m > 12 || r->w < 1 || r->w > 5 || r->d < 0 || r->d > 6)
		return -1;
	p++;
	while (*p && *p != '/' && *p != ',')
		p++;
	r->time = 7200;
	if (*p == '/') {
		p++;
		if (posix_time(&p, &r->time) != 0)
			return -1;
	}
	*s = p;
	return 0;
}

/* "CST6CDT,M3.2.0,M11.1.0": std, offset west, dst [offset], rules. */
static void
parse_footer(hq_tz *tz, const char *s)
{
	int32_t west;
	if (posix_name(&s) != 0 || posix_time(&s, &west) != 0)
		return;
	tz->std_off = -west;
	tz->first_off = tz->n ? tz->first_off : tz->std_off;
	if (*s == 0)
		return; /* no DST: the last transition's offset holds */
	if (posix_name(&s) != 0)
		return;
	tz->dst_off = tz->std_off + 3600;
	if (*s != ',' && *s) {
		if (posix_time(&s, &west) != 0)
			return;
		tz->dst_off = -west;
	}
	if (*s++ != ',' || posix_rule(&s, &tz->start) != 0 || *s++ != ',' || posix_rule(&s, &tz->end) != 0)
		return;
	tz->has_rule = 1;
}

static int
parse(hq_tz *tz, const unsigned char *b, size_t len)
{
	if (len < 44 || memcmp(b, "TZif", 4) != 0 || b[4] < '2')
		return -1;
	/* skip the v1 block */
	uint32_t c[6];
	for (int i = 0; i < 6; i++)
		c[i] = be32(b + 20 + 4 * i);
	size_t v1 = 44 + (size_t)c[3] * 5 + (size_t)c[4] * 6 + c[5] + (size_t)c[2] * 8 + c[1] + c[0];
	if (v1 + 44 > len || memcmp(b + v1, "TZif", 4) != 0)
		return -1;
	const unsigned char *h = b + v1;
	for (int i = 0; i < 6; i++)
		c[i] = be32(h + 20 + 4 * i);
	uint32_t isut = c[0], isstd = c[1], leap = c[2], timecnt = c[3], typecnt = c[4], charcnt = c[5];
	const unsigned char *p = h + 44;
	size_t need = (size_t)timecnt * 9 + (size_t)typecnt * 6 + charcnt + (size_t)leap * 12 + isstd + isut;
	if (typecnt == 0 || (size_t)(b + len - p) < need)
		return -1;
	const unsigned char *types = p + (size_t)timecnt * 9;
	tz->at = malloc((timecnt ? timecnt : 1) * sizeof *tz->at);
	tz->off = malloc((timecnt ? timecnt : 1) * sizeof *tz->off);
	if (tz->at == NULL || tz->off == NULL)
		return -1;
	for (uint32_t i = 0; i < timecnt; i++) {
		unsigned idx = p[(size_t)timecnt * 8 + i];
		if (idx >= typecnt)
			return -1;
		tz->at[i] = be64(p + 8 * (size_t)i);
		tz->off[i] = (int32_t)be32(types + 6 * idx);
	}
	tz->n = timecnt;
	tz->first_off = (int32_t)be32(types); /* type 0 */
	tz->std_off = tz->n ? tz->off[tz->n - 1] : tz->first_off;
	const unsigned char *f = p + need;
	if (f < b + len && *f == '\n') {
		char foot[128];
		size_t k = 0;
		f++;
		while (f < b + len && *f != '\n' && k + 1 < sizeof foot)
			foot[k++] = (char)*f++;
		foot[k] = 0;
		if (k)
			parse_footer(tz, foot);
	}
	return 0;
}

static int
valid_name(const char *name)
{
	if (*name == 0 || *name == '/' || strstr(name, "..") || strlen(name) > 200)
		return 0;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '/' || *p == '_' || *p == '-' || *p == '+'))
			return 0;
	return 1;
}

int
hq_tz_load(const char *name, const char *dir, hq_tz **out, char *err, size_t errcap)
{
	char path[512];
	if (!valid_name(name)) {
		snprintf(err, errcap, "'%s' is not an IANA time zone name (e.g. America/Chicago)", name);
		return HQ_ECONFIG;
	}
	snprintf(path, sizeof path, "%s/%s", dir ? dir : "/usr/share/zoneinfo", name);
	FILE *fp = fopen(path, "rb");
	if (fp == NULL) {
		snprintf(err, errcap, "'%s' is not a time zone of %s (%s)", name,
			 dir ? dir : "/usr/share/zoneinfo", strerror(errno));
		return HQ_ECONFIG;
	}
	unsigned char *buf = hq_xmalloc(1 << 16); /* a TZif file is a few KB */
	size_t len = fread(buf, 1, 1 << 16, fp);
	fclose(fp);
	hq_tz *tz = hq_xcalloc(1, sizeof *tz);
	int rc = parse(tz, buf, len);
	free(buf);
	if (rc != 0) {
		hq_tz_free(tz);
		snprintf(err, errcap, "'%s' is not a TZif v2+ time zone file", path);
		return HQ_ECONFIG;
	}
	*out = tz;
	return 0;
}

void
hq_tz_free(hq_tz *tz)
{
	if (tz == NULL)
		return;
	free(tz->at);
	free(tz->off);
	free(tz);
}

int
hq_tz_offset_at(const hq_tz *tz, int64_t t)
{
	if (tz->n == 0 || t >= tz->at[tz->n - 1]) {
		if (!tz->has_rule)
			return tz->n ? tz->off[tz->n - 1] : tz->first_off;
		if (tz->n && t < tz->at[tz->n - 1])
			return tz->off[tz->n - 1];
		int64_t y = year_of(t + tz->std_off);
		int64_t s = rule_local(&tz->start, y) - tz->std_off;
		int64_t e = rule_local(&tz->end, y) - tz->dst_off;
		int dst = s < e ? (t >= s && t < e) : !(t >= e && t < s);
		return dst ? tz->dst_off : tz->std_off;
	}
	if (t < tz->at[0])
		return tz->first_off;
	size_t lo = 0, hi = tz->n - 1; /* at[lo] <= t < at[hi] */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (tz->at[mid] <= t)
			lo = mid;
		else
			hi = mid;
	}
	return tz->off[lo];
}

int
hq_tz_offset_local(const hq_tz *tz, int64_t local)
{
	/* The offset o with offset_at(local - o) == o; try the one in force a
	 * day before first (the earlier of two in a repeated hour). */
	int before = hq_tz_offset_at(tz, local - 86400 - 14 * 3600);
	int after = hq_tz_offset_at(tz, local + 86400);
	if (hq_tz_offset_at(tz, local - before) == before)
		return before;
	if (hq_tz_offset_at(tz, local - after) == after)
		return after;
	return before; /* in a skipped hour */
}
