/*
 * config.c - INI configuration reader (see config.h).
 *
 * libinih calls handler() for each key; a reader wrapper counts lines and
 * notes where each section starts, so that every error, including the
 * checks made once a section is complete, names FILE:LINE.
 */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "log.h"
#include "silence.h"

typedef struct parse_state {
	hq_config *cfg;
	FILE *fp;
	int line;	    /* line inih is on */
	int section_line;   /* where the current section began */
	char section[128];  /* current section, as inih reported it */
	int failed;
	char dir[1024];	    /* the config file's directory: relative paths start here */
	struct seen { char name[128]; int line; } *seen; /* sections so far, to refuse repeats */
	int nseen;
} parse_state;

/* What a bad duration's message lists (hq_parse_duration's units). */
#define DUR_UNITS "a number and a unit: ms, s, min, m, h, d"

/* Upper bounds: far past any real use, yet small enough that now minus the
 * value never wraps (36500d of retention once did, and purged everything). */
#define DAY_MS 86400000ull
#define MAX_DURATION_MS (3650 * DAY_MS)

static int
fail(parse_state *st, int line, const char *fmt, ...)
{
	char reason[900];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	if (!st->failed)
		snprintf(st->cfg->err, sizeof st->cfg->err, "%s:%d: %s",
			 st->cfg->file, line, reason);
	st->failed = 1;
	return 0;
}

/*
 * A duration key: parses val into *ms and checks lo <= *ms <= hi (0 is also
 * accepted when zero_ok).  Returns 1, or 0 after fail() with the units or
 * the range in the reason.
 */
static int
duration_key(parse_state *st, const char *key, const char *val, uint64_t lo, uint64_t hi,
	     int zero_ok, uint64_t *ms)
{
	uint64_t v;
	if (hq_parse_duration(val, &v) != 0)
		return fail(st, st->line, "%s: '%s' is not a duration (%s)", key, val, DUR_UNITS);
	if ((v == 0 && !zero_ok) || (v != 0 && (v < lo || v > hi))) {
		char los[32], his[32];
		if (lo % 1000)
			snprintf(los, sizeof los, "%llums", (unsigned long long)lo);
		else
			snprintf(los, sizeof los, "%llus", (unsigned long long)(lo / 1000));
		if (hi % DAY_MS == 0)
			snprintf(his, sizeof his, "%llud", (unsigned long long)(hi / DAY_MS));
		else if (hi % 3600000 == 0)
			snprintf(his, sizeof his, "%lluh", (unsigned long long)(hi / 3600000));
		else
			snprintf(his, sizeof his, "%llus", (unsigned long long)(hi / 1000));
		return fail(st, st->line, "%s: '%s' is out of range (%s%s to %s)", key, val,
			    zero_ok ? "0, or " : "", los, his);
	}
	*ms = v;
	return 1;
}

int
hq_parse_duration(const char *s, uint64_t *ms)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || errno || v < 0)
		return -1;
	while (*end == ' ')
		end++;
	double mult;
	if (*end == 0 || strcmp(end, "s") == 0)
		mult = 1000;
	else if (strcmp(end, "ms") == 0)
		mult = 1;
	else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		mult = 60e3;
	else if (strcmp(end, "h") == 0)
		mult = 3600e3;
	else if (strcmp(end, "d") == 0)
		mult = 86400e3;
	else
		return -1;
	if (v * mult > 1e15)
		return -1;
	*ms = (uint64_t)(v * mult + 0.5);
	return 0;
}

int
hq_parse_size(const char *s, uint64_t *bytes)
{
	char *end;
	errno = 0;
	if (!isdigit((unsigned char)*s))
		return -1;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	while (*end == ' ')
		end++;
	uint64_t mult = 1;
	switch (toupper((unsigned char)*end)) {
	case 0: break;
	case 'K': mult = 1ull << 10; end++; break;
	case 'M': mult = 1ull << 20; end++; break;
	case 'G': mult = 1ull << 30; end++; break;
	case 'T': mult = 1ull << 40; end++; break;
	default: return -1;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end != 0 || (mult > 1 && v > UINT64_MAX / mult))
		return -1;
	*bytes = v * mult;
	return 0;
}

int
hq_parse_addr(const char *s, struct sockaddr_storage *addr, socklen_t *len)
{
	char host[256];
	const char *port;
	struct addrinfo hints, *res;

	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':' ||
		    (size_t)(close - s - 1) >= sizeof host)
			return -1;
		memcpy(host, s + 1, (size_t)(close - s - 1));
		host[close - s - 1] = 0;
		port = close + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (colon == NULL || (size_t)(colon - s) >= sizeof host ||
		    memchr(s, ':', (size_t)(colon - s)) != NULL)
			return -1;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = 0;
		port = colon + 1;
	}
	if (*port == 0)
		return -1;
	for (const char *p = port; *p; p++)
		if (!isdigit((unsigned char)*p))
			return -1;
	if (atol(port) > 65535)
		return -1;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (getaddrinfo(*host ? host : NULL, port, &hints, &res) != 0)
		return -1;
	memcpy(addr, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static hq_listener_conf *
current_listener(parse_state *st, const char *name)
{
	hq_config *cfg = st->cfg;
	for (int i = 0; i < cfg->nlisteners; i++)
		if (strcmp(cfg->listeners[i].name, name) == 0)
			return &cfg->listeners[i];
	hq_listener_conf *l = realloc(cfg->listeners,
				      sizeof *l * (size_t)(cfg->nlisteners + 1));
	if (l == NULL)
		return NULL;
	cfg->listeners = l;
	l = &cfg->listeners[cfg->nlisteners++];
	memset(l, 0, sizeof *l);
	snprintf(l->name, sizeof l->name, "%s", name);
	l->max_message_size = 1 << 20;
	l->idle_timeout_ms = 300000;
	l->frame_timeout_ms = 60000;
	l->max_connections = 256;
	l->max_connections_per_peer = 32;
	l->duplicates = HQ_DUP_ACCEPT;
	l->duplicate_window_ms = 86400000;
	l->accept_ack = HQ_ACCEPT_ACK_ALWAYS;
	l->expect_from_min = l->expect_to_min = -1;
	l->line = st->section_line;
	return l;
}

static int
valid_name(const char *s)
{
	if (*s == 0 || strlen(s) >= 64)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
			return 0;
	return 1;
}

/* "10.0.1.0/24", "10.0.2.15" (/32), "2001:db8::/32", "::1". */
static int
parse_cidr(const char *s, hq_cidr *c)
{
	char host[96];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	if (n == 0 || n >= sizeof host)
		return -1;
	memcpy(host, s, n);
	host[n] = 0;
	memset(c, 0, sizeof *c);
	if (inet_pton(AF_INET, host, c->addr) == 1) {
		c->family = AF_INET;
		c->prefix = 32;
	} else if (inet_pton(AF_INET6, host, c->addr) == 1) {
		c->family = AF_INET6;
		c->prefix = 128;
	} else {
		return -1;
	}
	if (slash) {
		char *end;
		long v = strtol(slash + 1, &end, 10);
		if (*end || end == slash + 1 || v < 0 || v > c->prefix)
			return -1;
		c->prefix = (int)v;
	}
	return 0;
}

int
hq_listener_allows(const hq_listener_conf *l, const struct sockaddr_storage *ss)
{
	if (l->nallow == 0)
		return 1;
	unsigned char a[16];
	int family = ss->ss_family;
	if (family == AF_INET) {
		memcpy(a, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	} else if (family == AF_INET6) {
		memcpy(a, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
		/* ::ffff:10.0.0.1 is 10.0.0.1 */
		static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (memcmp(a, mapped, 12) == 0) {
			memmove(a, a + 12, 4);
			family = AF_INET;
		}
	} else {
		return 0;
	}
	for (int i = 0; i < l->nallow; i++) {
		const hq_cidr *c = &l->allow[i];
		if (c->family != family)
			continue;
		int bits = c->prefix, k = 0;
		for (; bits >= 8; bits -= 8, k++)
			if (a[k] != c->addr[k])
				break;
		if (bits >= 8)
			continue;
		unsigned char mask = (unsigned char)(0xff << (8 - bits));
		if (bits == 0 || (a[k] & mask) == (c->addr[k] & mask))
			return 1;
	}
	return 0;
}

static int
listener_key(parse_state *st, hq_listener_conf *l, const char *key, const char *val)
{
	uint64_t n;

	if (strcmp(key, "listen") == 0) {
		if (hq_parse_addr(val, &l->addr, &l->addrlen) != 0)
			return fail(st, st->line, "listen: '%s' is not host:port or [v6]:port", val);
		snprintf(l->listen, sizeof l->listen, "%s", val);
	} else if (strcmp(key, "max_message_size") == 0) {
		if (hq_parse_size(val, &n) != 0 || n < 64 || n > (1ull << 30))
			return fail(st, st->line, "max_message_size: '%s' is not a size between 64 and 1G", val);
		l->max_message_size = (size_t)n;
	} else if (strcmp(key, "idle_timeout") == 0) {
		return duration_key(st, key, val, 1, 30 * DAY_MS, 1, &l->idle_timeout_ms);
	} else if (strcmp(key, "frame_timeout") == 0) {
		return duration_key(st, key, val, 1, DAY_MS, 0, &l->frame_timeout_ms);
	} else if (strcmp(key, "max_connections") == 0) {
		char *end;
		long v = strtol(val, &end, 10);
		if (*end || v < 1 || v > 1000000)
			return fail(st, st->line, "max_connections: '%s' is not a number from 1 to 1000000", val);
		l->max_connections = (int)v;
	} else if (strcmp(key, "max_connections_per_peer") == 0) {
		char *end;
		long v = strtol(val, &end, 10);
		if (*end || v < 1 || v > 1000000)
			return fail(st, st->line, "max_connections_per_peer: '%s' is not a number from 1 to 1000000", val);
		l->max_connections_per_peer = (int)v;
	} else if (strcmp(key, "duplicates") == 0) {
		if (strcmp(val, "accept") == 0)
			l->duplicates = HQ_DUP_ACCEPT;
		else if (strcmp(val, "ack") == 0)
			l->duplicates = HQ_DUP_ACK;
		else if (strcmp(val, "reject") == 0)
			l->duplicates = HQ_DUP_REJECT;
		else
			return fail(st, st->line, "duplicates: '%s' is not accept, ack or reject", val);
	} else if (strcmp(key, "accept_ack") == 0) {
		if (strcmp(val, "always") == 0)
			l->accept_ack = HQ_ACCEPT_ACK_ALWAYS;
		else if (strcmp(val, "msh15") == 0)
			l->accept_ack = HQ_ACCEPT_ACK_MSH15;
		else
			return fail(st, st->line, "accept_ack: '%s' is not always or msh15", val);
	} else if (strcmp(key, "duplicate_window") == 0) {
		return duration_key(st, key, val, 1, 365 * DAY_MS, 1, &l->duplicate_window_ms);
	} else if (strcmp(key, "tls_cert") == 0 || strcmp(key, "tls_key") == 0 ||
		   strcmp(key, "tls_client_ca") == 0) {
		char *dst = key[4] == 'c' && key[5] == 'e' ? l->tls_cert
			  : key[4] == 'k'		   ? l->tls_key
							   : l->tls_client_ca;
		if (*val == 0 || strlen(val) >= sizeof l->tls_cert)
			return fail(st, st->line, "%s: empty or too long", key);
		snprintf(dst, sizeof l->tls_cert, "%s", val);
	} else if (strcmp(key, "tls_allowed_subjects") == 0) {
		/* DNs hold commas, and ';' starts an INI comment: entries are separated by '|' */
		l->ntls_allowed = 0;
		for (const char *p = val; *p;) {
			while (*p == ' ' || *p == '|')
				p++;
			size_t n = strcspn(p, "|");
			while (n > 0 && p[n - 1] == ' ')
				n--;
			if (n == 0)
				break;
			if (l->ntls_allowed == HQ_MAX_LIST || n >= sizeof l->tls_allowed[0])
				return fail(st, st->line, "tls_allowed_subjects: too many or too long");
			memcpy(l->tls_allowed[l->ntls_allowed], p, n);
			l->tls_allowed[l->ntls_allowed++][n] = 0;
			p += n;
			while (*p && *p != '|')
				p++;
		}
	} else if (strcmp(key, "allow") == 0) {
		char item[128];
		l->nallow = 0;
		for (const char *p = val; *p;) {
			while (*p == ' ' || *p == ',' || *p == '\t')
				p++;
			size_t n = strcspn(p, " ,\t");
			if (n == 0)
				break;
			if (n >= sizeof item || l->nallow == HQ_MAX_LIST)
				return fail(st, st->line, "allow: too many or too long entries");
			memcpy(item, p, n);
			item[n] = 0;
			p += n;
			if (parse_cidr(item, &l->allow[l->nallow]) != 0)
				return fail(st, st->line, "allow: '%s' is not an address or CIDR (10.0.1.0/24, 2001:db8::/32)", item);
			l->nallow++;
		}
	} else if (strcmp(key, "expect_within") == 0) {
		if (hq_parse_duration(val, &l->expect_within_ms) != 0 || l->expect_within_ms < 1000)
			return fail(st, st->line, "expect_within: '%s' is not a duration of at least 1s (e.g. 15m)", val);
	} else if (strcmp(key, "expect_hours") == 0) {
		if (hq_parse_hours(val, &l->expect_from_min, &l->expect_to_min) != 0)
			return fail(st, st->line, "expect_hours: '%s' is not a daily window HH:MM-HH:MM (e.g. 06:00-22:00)", val);
	} else {
		return fail(st, st->line, "unknown key '%s' in [listener %s]", key, l->name);
	}
	return 1;
}

static hq_target_conf *
current_target(parse_state *st, const char *name)
{
	hq_config *cfg = st->cfg;
	for (int i = 0; i < cfg->ntargets; i++)
		if (strcmp(cfg->targets[i].name, name) == 0)
			return &cfg->targets[i];
	hq_target_conf *t = realloc(cfg->targets, sizeof *t * (size_t)(cfg->ntargets + 1));
	if (t == NULL)
		return NULL;
	cfg->targets = t;
	t = &cfg->targets[cfg->ntargets++];
	memset(t, 0, sizeof *t);
	snprintf(t->name, sizeof t->name, "%s", name);
	t->concurrency = 8;
	t->timeout_ms = 30000;
	t->retry_initial_ms = 1000;
	t->retry_max_ms = 600000;
	t->max_age_ms = 7ull * 86400000;
	t->line = st->section_line;
	return t;
}

/* Splits a space- or comma-separated list into out[][cap]; returns the count or -1. */
static int
split_list(const char *val, char (*out)[64], int max)
{
	int n = 0;
	const char *p = val;
	while (*p) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if (!*p)
			break;
		size_t len = strcspn(p, " ,\t");
		if (n == max || len >= 64)
			return -1;
		memcpy(out[n], p, len);
		out[n][len] = 0;
		n++;
		p += len;
	}
	return n;
}

static int
set_path(parse_state *st, char *dst, size_t cap, const char *key, const char *val)
{
	if (*val == 0 || strlen(val) >= cap)
		return fail(st, st->line, "%s: empty or too long", key);
	snprintf(dst, cap, "%s", val);
	return 1;
}

/* Whether zone names a TZif file of the system's tz database (read by hl7/tz.c at start). */
static int
is_zone(const char *zone)
{
	char path[256], magic[5];
	if (*zone == 0 || *zone == '/' || strstr(zone, "..") || strlen(zone) > 200)
		return 0;
	snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", zone);
	FILE *fp = fopen(path, "rb");
	if (fp == NULL)
		return 0;
	size_t n = fread(magic, 1, 5, fp);
	fclose(fp);
	return n == 5 && memcmp(magic, "TZif", 4) == 0 && magic[4] >= '2';
}

/* The fhir_* keys of a target (format = fhir). */
static int
fhir_key(parse_state *st, hq_target_conf *t, const char *key, const char *val)
{
	if (strcmp(key, "fhir_bundle") == 0) {
		if (strcmp(val, "transaction") != 0 && strcmp(val, "batch") != 0)
			return fail(st, st->line, "fhir_bundle: '%s' is not transaction or batch", val);
		t->fhir_batch = strcmp(val, "batch") == 0;
	} else if (strcmp(key, "fhir_max_entries") == 0) {
		char *end;
		long v = strtol(val, &end, 10);
		if (*end || v < 0 || v > 1000000)
			return fail(st, st->line, "fhir_max_entries: '%s' is not a number (0: no limit)", val);
		t->fhir_max_entries = (int)v;
	} else if (strcmp(key, "fhir_timezone") == 0) {
		if (strlen(val) >= sizeof t->fhir_timezone || !is_zone(val))
			return fail(st, st->line, "fhir_timezone: '%s' is not an IANA time zone of /usr/share/zoneinfo (e.g. America/Chicago)", val);
		snprintf(t->fhir_timezone, sizeof t->fhir_timezone, "%s", val);
	} else if (strcmp(key, "fhir_id_key_file") == 0) {
		return set_path(st, t->fhir_id_key_file, sizeof t->fhir_id_key_file, key, val);
	} else if (strcmp(key, "fhir_unsupported") == 0) {
		if (strcmp(val, "dead") != 0 && strcmp(val, "skip") != 0)
			return fail(st, st->line, "fhir_unsupported: '%s' is not dead or skip", val);
		t->fhir_skip_unsupported = strcmp(val, "skip") == 0;
	} else if (strcmp(key, "fhir_patient_match") == 0) {
		if (strcmp(val, "none") != 0 && strcmp(val, "identifier") != 0)
			return fail(st, st->line, "fhir_patient_match: '%s' is not none or identifier", val);
		t->fhir_patient_match = strcmp(val, "identifier") == 0;
	} else {
		return fail(st, st->line, "unknown key '%s' in [target %s]", key, t->name);
	}
	return 1;
}

static int
target_key(parse_state *st, hq_target_conf *t, const char *key, const char *val)
{
	if (strcmp(key, "url") == 0) {
		if (strncmp(val, "https://", 8) != 0 && strncmp(val, "http://", 7) != 0)
			return fail(st, st->line, "url: '%s' is not an http:// or https:// URL", val);
		return set_path(st, t->url, sizeof t->url, key, val);
	} else if (strcmp(key, "from") == 0) {
		if ((t->nfrom = split_list(val, t->from, HQ_MAX_LIST)) < 0)
			return fail(st, st->line, "from: too many or too long listener names");
	} else if (strcmp(key, "types") == 0) {
		if ((t->ntypes = split_list(val, t->types, HQ_MAX_LIST)) < 0)
			return fail(st, st->line, "types: too many or too long types");
	} else if (strcmp(key, "format") == 0) {
		if (strcmp(val, "raw") == 0)
			t->format = HQ_FMT_RAW;
		else if (strcmp(val, "google-hl7v2") == 0)
			t->format = HQ_FMT_GOOGLE;
		else if (strcmp(val, "json") == 0)
			t->format = HQ_FMT_JSON;
		else if (strcmp(val, "fhir") == 0)
			t->format = HQ_FMT_FHIR;
		else
			return fail(st, st->line, "format: '%s' is not raw, json, google-hl7v2 or fhir", val);
	} else if (strncmp(key, "fhir_", 5) == 0) {
		return fhir_key(st, t, key, val);
	} else if (strcmp(key, "auth") == 0) {
		if (strcmp(val, "none") == 0)
			t->auth = HQ_AUTH_NONE;
		else if (strcmp(val, "basic") == 0)
			t->auth = HQ_AUTH_BASIC;
		else if (strcmp(val, "bearer") == 0)
			t->auth = HQ_AUTH_BEARER;
		else if (strcmp(val, "oauth2") == 0)
			t->auth = HQ_AUTH_OAUTH2;
		else if (strcmp(val, "aws-sigv4") == 0)
			t->auth = HQ_AUTH_SIGV4;
		else
			return fail(st, st->line, "auth: '%s' is not none, basic, bearer, oauth2 or aws-sigv4", val);
	} else if (strcmp(key, "username") == 0) {
		return set_path(st, t->username, sizeof t->username, key, val);
	} else if (strcmp(key, "password_file") == 0) {
		return set_path(st, t->password_file, sizeof t->password_file, key, val);
	} else if (strcmp(key, "token_file") == 0) {
		return set_path(st, t->token_file, sizeof t->token_file, key, val);
	} else if (strcmp(key, "token_url") == 0) {
		if (strncmp(val, "https://", 8) != 0 && strncmp(val, "http://", 7) != 0)
			return fail(st, st->line, "token_url: '%s' is not an http(s):// URL", val);
		return set_path(st, t->token_url, sizeof t->token_url, key, val);
	} else if (strcmp(key, "client_id") == 0) {
		return set_path(st, t->client_id, sizeof t->client_id, key, val);
	} else if (strcmp(key, "client_secret_file") == 0) {
		return set_path(st, t->client_secret_file, sizeof t->client_secret_file, key, val);
	} else if (strcmp(key, "scope") == 0) {
		return set_path(st, t->scope, sizeof t->scope, key, val);
	} else if (strcmp(key, "aws_region") == 0) {
		return set_path(st, t->aws_region, sizeof t->aws_region, key, val);
	} else if (strcmp(key, "aws_service") == 0) {
		return set_path(st, t->aws_service, sizeof t->aws_service, key, val);
	} else if (strcmp(key, "aws_key_id_file") == 0) {
		return set_path(st, t->aws_key_id_file, sizeof t->aws_key_id_file, key, val);
	} else if (strcmp(key, "aws_secret_file") == 0) {
		return set_path(st, t->aws_secret_file, sizeof t->aws_secret_file, key, val);
	} else if (strcmp(key, "password") == 0) {
		return set_path(st, t->password, sizeof t->password, key, val);
	} else if (strcmp(key, "client_secret") == 0 || strcmp(key, "token") == 0) {
		return fail(st, st->line, "%s: secrets come from a file (%s_file), never the config itself",
			    key, key);
	} else if (strcmp(key, "headers") == 0) {
		/* "Name: value; Name2: value2" */
		const char *p = val;
		while (*p) {
			while (*p == ' ' || *p == ';')
				p++;
			if (!*p)
				break;
			size_t len = strcspn(p, ";");
			if (t->nheaders == HQ_MAX_LIST || len >= sizeof t->headers[0] ||
			    memchr(p, ':', len) == NULL)
				return fail(st, st->line, "headers: expected 'Name: value; Name2: value'");
			memcpy(t->headers[t->nheaders], p, len);
			t->headers[t->nheaders++][len] = 0;
			p += len;
		}
	} else if (strcmp(key, "ordering") == 0) {
		if (strcmp(val, "fifo") == 0)
			t->ordering = HQ_ORDER_FIFO;
		else if (strcmp(val, "none") == 0)
			t->ordering = HQ_ORDER_NONE;
		else if (strcmp(val, "patient") == 0)
			t->ordering = HQ_ORDER_PATIENT;
		else
			return fail(st, st->line, "ordering: '%s' is not fifo, patient or none", val);
	} else if (strcmp(key, "concurrency") == 0) {
		char *end;
		long v = strtol(val, &end, 10);
		if (*end || v < 1 || v > 256)
			return fail(st, st->line, "concurrency: '%s' is not a number from 1 to 256", val);
		t->concurrency = (int)v;
	} else if (strcmp(key, "timeout") == 0) {
		return duration_key(st, key, val, 1, DAY_MS, 0, &t->timeout_ms);
	} else if (strcmp(key, "retry_initial") == 0) {
		return duration_key(st, key, val, 1, 30 * DAY_MS, 0, &t->retry_initial_ms);
	} else if (strcmp(key, "retry_max") == 0) {
		return duration_key(st, key, val, 1, 30 * DAY_MS, 0, &t->retry_max_ms);
	} else if (strcmp(key, "max_attempts") == 0) {
		char *end;
		long v = strtol(val, &end, 10);
		if (*end || v < 0 || v > 1000000)
			return fail(st, st->line, "max_attempts: '%s' is not a number (0: no limit)", val);
		t->max_attempts = (int)v;
	} else if (strcmp(key, "max_age") == 0) {
		return duration_key(st, key, val, 1, MAX_DURATION_MS, 1, &t->max_age_ms);
	} else if (strcmp(key, "client_cert") == 0) {
		return set_path(st, t->client_cert, sizeof t->client_cert, key, val);
	} else if (strcmp(key, "client_key") == 0) {
		return set_path(st, t->client_key, sizeof t->client_key, key, val);
	} else if (strcmp(key, "ca_file") == 0) {
		return set_path(st, t->ca_file, sizeof t->ca_file, key, val);
	} else if (strcmp(key, "insecure") == 0) {
		if (strcmp(val, "true") == 0)
			t->insecure = 1;
		else if (strcmp(val, "false") == 0)
			t->insecure = 0;
		else
			return fail(st, st->line, "insecure: '%s' is not true or false", val);
	} else if (strcmp(key, "http_version") == 0) {
		if (strcmp(val, "auto") == 0)
			t->http_version = HQ_HTTP_AUTO;
		else if (strcmp(val, "1.1") == 0)
			t->http_version = HQ_HTTP_1_1;
		else if (strcmp(val, "2") == 0)
			t->http_version = HQ_HTTP_2;
		else
			return fail(st, st->line, "http_version: '%s' is not auto, 1.1 or 2", val);
	} else {
		return fail(st, st->line, "unknown key '%s' in [target %s]", key, t->name);
	}
	return 1;
}

int
hq_target_routes(const hq_target_conf *t, const char *listener, const char *type,
		 size_t type_len)
{
	int ok = t->nfrom == 0;
	for (int i = 0; i < t->nfrom && !ok; i++)
		ok = strcmp(t->from[i], listener) == 0;
	if (!ok)
		return 0;
	if (t->ntypes == 0)
		return 1;
	for (int i = 0; i < t->ntypes; i++)
		if (hq_type_pattern_match(t->types[i], type, type_len))
			return 1;
	return 0;
}

int
hq_type_pattern_match(const char *pat, const char *type, size_t type_len)
{
	/* code^trigger of the message */
	size_t code = 0;
	while (code < type_len && type[code] != '^')
		code++;
	size_t trig = code < type_len ? code + 1 : code;
	while (trig < type_len && type[trig] != '^')
		trig++;
	if (strcmp(pat, "*") == 0)
		return 1;
	const char *caret = strchr(pat, '^');
	size_t plen = caret ? (size_t)(caret - pat) : strlen(pat);
	if (plen != code || memcmp(pat, type, code) != 0)
		return 0;
	if (caret == NULL || strcmp(caret + 1, "*") == 0)
		return 1;
	return strlen(caret) == trig - code && memcmp(caret, type + code, trig - code) == 0;
}

static int
handler(void *user, const char *section, const char *key, const char *val)
{
	parse_state *st = user;
	hq_config *cfg = st->cfg;
	uint64_t n;

	if (st->failed)
		return 0;
	if (strcmp(section, "journal") == 0) {
		if (strcmp(key, "path") == 0) {
			if (*val == 0 || strlen(val) >= sizeof cfg->journal_path)
				return fail(st, st->line, "path: empty or too long");
			snprintf(cfg->journal_path, sizeof cfg->journal_path, "%s", val);
			cfg->journal_line = st->line;
		} else if (strcmp(key, "max_size") == 0) {
			if (hq_parse_size(val, &n) != 0)
				return fail(st, st->line, "max_size: '%s' is not a size (a number and K, M, G or T)", val);
			if (n < (1u << 20) || n > (64ull << 40))
				return fail(st, st->line, "max_size: '%s' is out of range (1M to 64T)", val);
			cfg->max_size = n;
		} else if (strcmp(key, "encryption_key_file") == 0) {
			if (*val == 0 || strlen(val) >= sizeof cfg->encryption_key_file)
				return fail(st, st->line, "encryption_key_file: empty or too long");
			snprintf(cfg->encryption_key_file, sizeof cfg->encryption_key_file, "%s", val);
			cfg->encryption_line = st->line;
		} else if (strcmp(key, "retention") == 0) {
			return duration_key(st, key, val, 1000, MAX_DURATION_MS, 1, &cfg->retention_ms);
		} else if (strcmp(key, "rejected_retention") == 0) {
			return duration_key(st, key, val, 1000, MAX_DURATION_MS, 1, &cfg->rejected_retention_ms);
		} else {
			return fail(st, st->line, "unknown key '%s' in [journal]", key);
		}
		return 1;
	}
	if (strncmp(section, "listener", 8) == 0 &&
	    (section[8] == ' ' || section[8] == '\t')) {
		const char *name = section + 9;
		while (*name == ' ' || *name == '\t')
			name++;
		if (!valid_name(name))
			return fail(st, st->section_line, "listener name '%s' must be letters, digits, '-', '_' or '.'", name);
		hq_listener_conf *l = current_listener(st, name);
		if (l == NULL)
			return fail(st, st->line, "out of memory");
		return listener_key(st, l, key, val);
	}
	if (strncmp(section, "target", 6) == 0 &&
	    (section[6] == ' ' || section[6] == '\t')) {
		const char *name = section + 7;
		while (*name == ' ' || *name == '\t')
			name++;
		if (!valid_name(name))
			return fail(st, st->section_line, "target name '%s' must be letters, digits, '-', '_' or '.'", name);
		hq_target_conf *t = current_target(st, name);
		if (t == NULL)
			return fail(st, st->line, "out of memory");
		return target_key(st, t, key, val);
	}
	if (strcmp(section, "admin") == 0) {
		if (strcmp(key, "listen") == 0) {
			if (strlen(val) >= sizeof cfg->admin_listen ||
			    hq_parse_addr(val, &cfg->admin_addr, &cfg->admin_addrlen) != 0)
				return fail(st, st->line, "listen: '%s' is not host:port or [v6]:port", val);
			snprintf(cfg->admin_listen, sizeof cfg->admin_listen, "%s", val);
		} else {
			return fail(st, st->line, "unknown key '%s' in [admin]", key);
		}
		return 1;
	}
	if (strcmp(section, "audit") == 0) {
		if (strcmp(key, "syslog_rfc5424") == 0) {
			const char *colon = strrchr(val, ':');
			if (strlen(val) >= sizeof cfg->audit_rfc5424 || colon == NULL || colon == val ||
			    colon[1] == 0 || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
			    atol(colon + 1) < 1 || atol(colon + 1) > 65535)
				return fail(st, st->line, "syslog_rfc5424: '%s' is not host:port", val);
			snprintf(cfg->audit_rfc5424, sizeof cfg->audit_rfc5424, "%s", val);
		} else {
			return fail(st, st->line, "unknown key '%s' in [audit]", key);
		}
		return 1;
	}
	if (strcmp(section, "daemon") == 0) {
		if (strcmp(key, "log_level") == 0) {
			int lvl = hq_log_parse_level(val);
			if (lvl < 0)
				return fail(st, st->line, "log_level: '%s' is not err, warning, notice, info or debug", val);
			cfg->log_level = lvl;
		} else {
			return fail(st, st->line, "unknown key '%s' in [daemon]", key);
		}
		return 1;
	}
	if (*section == 0)
		return fail(st, st->line, "key '%s' outside any section", key);
	return fail(st, st->section_line, "unknown section [%s]", section);
}

/*
 * Notes the section whose header starts at text (past its '['), and fails
 * when it was written before: a second [target x] would otherwise merge
 * into the first one and its keys silently override.
 */
static void
note_section(parse_state *st, const char *text)
{
	char name[128];
	size_t n = 0;
	int space = 0;
	for (const char *p = text; *p && *p != ']' && n < sizeof name - 1; p++) {
		if (*p == ' ' || *p == '\t') {
			space = n > 0;
			continue;
		}
		if (space)
			name[n++] = ' ';
		space = 0;
		if (n < sizeof name - 1)
			name[n++] = *p;
	}
	name[n] = 0;
	for (int i = 0; i < st->nseen; i++)
		if (strcmp(st->seen[i].name, name) == 0) {
			fail(st, st->line, "[%s] is written twice (first at line %d): merge the two", name,
			     st->seen[i].line);
			return;
		}
	struct seen *ns = realloc(st->seen, sizeof *ns * (size_t)(st->nseen + 1));
	if (ns == NULL) {
		fail(st, st->line, "out of memory");
		return;
	}
	st->seen = ns;
	snprintf(ns[st->nseen].name, sizeof ns[0].name, "%s", name);
	ns[st->nseen++].line = st->line;
}

/* dst (a path key of cap bytes), when relative, made relative to dir. 0 or -1 (too long). */
static int
resolve_path(const char *dir, char *dst, size_t cap)
{
	char buf[2100];
	if (dst[0] == 0 || dst[0] == '/' || dir[0] == 0)
		return 0;
	int n = snprintf(buf, sizeof buf, "%s/%s", dir, dst);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	memcpy(dst, buf, (size_t)n + 1);
	return 0;
}

/* Every path key of cfg resolved against dir; 0, or HQ_ECONFIG with cfg->err. */
static int
resolve_paths(hq_config *cfg, const char *dir)
{
	int bad = 0, line = 0;
	bad |= resolve_path(dir, cfg->journal_path, sizeof cfg->journal_path);
	bad |= resolve_path(dir, cfg->encryption_key_file, sizeof cfg->encryption_key_file);
	for (int i = 0; i < cfg->nlisteners && !bad; i++) {
		hq_listener_conf *l = &cfg->listeners[i];
		bad |= resolve_path(dir, l->tls_cert, sizeof l->tls_cert);
		bad |= resolve_path(dir, l->tls_key, sizeof l->tls_key);
		bad |= resolve_path(dir, l->tls_client_ca, sizeof l->tls_client_ca);
		line = l->line;
	}
	for (int i = 0; i < cfg->ntargets && !bad; i++) {
		hq_target_conf *t = &cfg->targets[i];
		char *paths[] = {t->password_file, t->token_file, t->client_secret_file, t->aws_key_id_file,
				 t->aws_secret_file, t->client_cert, t->client_key, t->ca_file};
		for (size_t k = 0; k < sizeof paths / sizeof paths[0]; k++)
			bad |= resolve_path(dir, paths[k], sizeof t->ca_file);
		bad |= resolve_path(dir, t->fhir_id_key_file, sizeof t->fhir_id_key_file);
		line = t->line;
	}
	if (bad) {
		snprintf(cfg->err, sizeof cfg->err, "%s:%d: a relative path is too long once joined to %s",
			 cfg->file, line, dir);
		return HQ_ECONFIG;
	}
	return 0;
}

/* fgets with line counting and section tracking, for ini_parse_stream. */
static char *
reader(char *str, int num, void *stream)
{
	parse_state *st = stream;
	char *r = fgets(str, num, st->fp);
	if (r == NULL)
		return NULL;
	st->line++;
	const char *p = str;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '[') {
		st->section_line = st->line;
		note_section(st, p + 1);
	}
	return r;
}

int
hq_config_load(const char *file, hq_config *cfg)
{
	parse_state st;

	memset(cfg, 0, sizeof *cfg);
	snprintf(cfg->file, sizeof cfg->file, "%s", file);
	cfg->max_size = 1ull << 30;
	cfg->rejected_retention_ms = 7ull * 86400000;
	cfg->log_level = HQ_LOG_INFO;
	memset(&st, 0, sizeof st);
	st.cfg = cfg;
	st.fp = fopen(file, "r");
	if (st.fp == NULL) {
		snprintf(cfg->err, sizeof cfg->err, "%s:0: cannot open: %s", file,
			 strerror(errno));
		return HQ_ECONFIG;
	}
	{
		/* relative paths start at the config's directory, whatever the working directory */
		char tmp[1024], *slash;
		snprintf(tmp, sizeof tmp, "%s", file);
		slash = strrchr(tmp, '/');
		if (slash == tmp)
			tmp[1] = 0;
		else if (slash)
			*slash = 0;
		else
			snprintf(tmp, sizeof tmp, ".");
		if (realpath(tmp, st.dir) == NULL)
			snprintf(st.dir, sizeof st.dir, "%s", tmp);
	}
	int rc = ini_parse_stream(reader, &st, handler, &st);
	fclose(st.fp);
	free(st.seen);
	if (st.failed)
		return HQ_ECONFIG;
	if (resolve_paths(cfg, st.dir) != 0)
		return HQ_ECONFIG;
	if (rc != 0) {
		snprintf(cfg->err, sizeof cfg->err, "%s:%d: syntax error (expected [section] or key = value)",
			 file, rc > 0 ? rc : st.line);
		return HQ_ECONFIG;
	}
	if (cfg->journal_path[0] == 0) {
		snprintf(cfg->err, sizeof cfg->err, "%s:%d: [journal] path is required",
			 file, st.line);
		return HQ_ECONFIG;
	}
	if (cfg->nlisteners == 0) {
		snprintf(cfg->err, sizeof cfg->err, "%s:%d: no [listener NAME] section: nothing would be received",
			 file, st.line);
		return HQ_ECONFIG;
	}
	for (int i = 0; i < cfg->nlisteners; i++) {
		hq_listener_conf *l = &cfg->listeners[i];
		const char *why = NULL;
		if (l->listen[0] == 0)
			why = "needs listen = host:port";
		else if ((l->tls_cert[0] != 0) != (l->tls_key[0] != 0))
			why = "tls_cert and tls_key go together";
		else if (l->tls_client_ca[0] && !l->tls_cert[0])
			why = "tls_client_ca needs tls_cert and tls_key";
		else if (l->ntls_allowed && !l->tls_client_ca[0])
			why = "tls_allowed_subjects needs tls_client_ca (client certificates)";
		else if (l->expect_from_min >= 0 && l->expect_within_ms == 0)
			why = "expect_hours needs expect_within (how long a silence is too long)";
		if (why) {
			snprintf(cfg->err, sizeof cfg->err, "%s:%d: [listener %s] %s", file, l->line,
				 l->name, why);
			return HQ_ECONFIG;
		}
	}
	for (int i = 0; i < cfg->ntargets; i++) {
		hq_target_conf *t = &cfg->targets[i];
		const char *why = NULL;
		if (t->url[0] == 0)
			why = "needs url = https://...";
		else if (t->auth == HQ_AUTH_BASIC && (!t->username[0] ||
						      (!t->password_file[0] && !t->password[0])))
			why = "auth = basic needs username and password_file";
		else if (t->auth == HQ_AUTH_BEARER && !t->token_file[0])
			why = "auth = bearer needs token_file";
		else if (t->auth == HQ_AUTH_OAUTH2 && (!t->token_url[0] || !t->client_id[0] ||
							!t->client_secret_file[0]))
			why = "auth = oauth2 needs token_url, client_id and client_secret_file";
		else if (t->auth == HQ_AUTH_SIGV4 && (!t->aws_region[0] || !t->aws_service[0]))
			why = "auth = aws-sigv4 needs aws_region and aws_service";
		else if ((t->client_cert[0] != 0) != (t->client_key[0] != 0))
			why = "client_cert and client_key go together";
		else if (t->retry_initial_ms > t->retry_max_ms)
			why = "retry_initial is larger than retry_max";
		else if (t->format == HQ_FMT_FHIR && !t->fhir_id_key_file[0])
			why = "format = fhir needs fhir_id_key_file (64 hex characters: openssl rand -hex 32)";
		else if (t->fhir_patient_match && t->fhir_batch)
			why = "fhir_patient_match = identifier needs fhir_bundle = transaction (references to the Patient resolve inside one transaction)";
		for (int k = 0; k < t->nfrom && !why; k++) {
			int found = 0;
			for (int l = 0; l < cfg->nlisteners; l++)
				found |= strcmp(cfg->listeners[l].name, t->from[k]) == 0;
			if (!found)
				why = "from names a listener that is not configured";
		}
		if (why) {
			snprintf(cfg->err, sizeof cfg->err, "%s:%d: [target %s] %s", file, t->line,
				 t->name, why);
			return HQ_ECONFIG;
		}
	}
	return 0;
}

/* One secret file's check; 0 or HQ_ECONFIG. */
static int
check_secret(const hq_config *cfg, int line, const char *section, const char *key, const char *path,
	     char *err, size_t errcap)
{
	struct stat st;
	if (path[0] == 0 || stat(path, &st) != 0)
		return 0;
	if ((st.st_mode & 0077) == 0)
		return 0;
	snprintf(err, errcap, "%s:%d: [%s] %s %s is readable by other users (mode %04o): chmod 600 %s",
		 cfg->file, line, section, key, path, (unsigned)(st.st_mode & 07777), path);
	return HQ_ECONFIG;
}

/* One file's check: it exists and this process can read it.  0 or HQ_ECONFIG. */
static int
check_readable(const hq_config *cfg, int line, const char *section, const char *key, const char *path,
	       char *err, size_t errcap)
{
	char c;
	if (path[0] == 0)
		return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, &c, 1) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		snprintf(err, errcap, "%s:%d: [%s] %s %s cannot be read (uid %ld): %s", cfg->file, line,
			 section, key, path, (long)geteuid(), strerror(e));
		return HQ_ECONFIG;
	}
	close(fd);
	return 0;
}

/* A check of one file a config names: 0 or HQ_ECONFIG with err set. */
typedef int (*file_check)(const hq_config *cfg, int line, const char *section, const char *key,
			  const char *path, char *err, size_t errcap);

/* One file key of a section; secret: its mode must keep other users out. */
struct conf_file {
	const char *key, *path;
	int secret;
};

/* check on every file the config names, in config-reference order (only the
 * secret ones if secrets_only); stops at the first failure.  0 or HQ_ECONFIG. */
static int
check_each_file(const hq_config *cfg, int secrets_only, file_check check, char *err, size_t errcap)
{
	char sec[80];
	if (check(cfg, cfg->encryption_line, "journal", "encryption_key_file", cfg->encryption_key_file, err,
		  errcap))
		return HQ_ECONFIG;
	for (int i = 0; i < cfg->nlisteners; i++) {
		const hq_listener_conf *l = &cfg->listeners[i];
		const struct conf_file files[] = {
			{"tls_cert", l->tls_cert, 0}, {"tls_key", l->tls_key, 1}, {"tls_client_ca", l->tls_client_ca, 0}};
		snprintf(sec, sizeof sec, "listener %s", l->name);
		for (size_t k = 0; k < sizeof files / sizeof files[0]; k++)
			if ((files[k].secret || !secrets_only) &&
			    check(cfg, l->line, sec, files[k].key, files[k].path, err, errcap))
				return HQ_ECONFIG;
	}
	for (int i = 0; i < cfg->ntargets; i++) {
		const hq_target_conf *t = &cfg->targets[i];
		const struct conf_file files[] = {
			{"password_file", t->password_file, 1}, {"token_file", t->token_file, 1},
			{"client_secret_file", t->client_secret_file, 1}, {"aws_key_id_file", t->aws_key_id_file, 1},
			{"aws_secret_file", t->aws_secret_file, 1}, {"client_cert", t->client_cert, 0},
			{"client_key", t->client_key, 1}, {"ca_file", t->ca_file, 0},
			{"fhir_id_key_file", t->fhir_id_key_file, 1}};
		snprintf(sec, sizeof sec, "target %s", t->name);
		for (size_t k = 0; k < sizeof files / sizeof files[0]; k++)
			if ((files[k].secret || !secrets_only) &&
			    check(cfg, t->line, sec, files[k].key, files[k].path, err, errcap))
				return HQ_ECONFIG;
	}
	return 0;
}

int
hq_config_check_secrets(const hq_config *cfg, char *err, size_t errcap)
{
	return check_each_file(cfg, 1, check_secret, err, errcap);
}

int
hq_config_check_files(const hq_config *cfg, char *err, size_t errcap)
{
	return check_each_file(cfg, 0, check_readable, err, errcap);
}

int
hq_config_check_journal_dir(const hq_config *cfg, char *err, size_t errcap)
{
	char dir[1024];
	struct stat st;
	snprintf(dir, sizeof dir, "%s", cfg->journal_path);
	if (stat(dir, &st) != 0) {
		/* not there yet: hl7qd creates it, so its parent must take it */
		char *slash = strrchr(dir, '/');
		if (slash == dir)
			dir[1] = 0;
		else if (slash)
			*slash = 0;
		else
			snprintf(dir, sizeof dir, ".");
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK | X_OK) != 0) {
		int e = errno;
		snprintf(err, errcap, "%s:%d: [journal] path %s: uid %ld cannot write %s: %s", cfg->file,
			 cfg->journal_line, cfg->journal_path, (long)geteuid(), dir,
			 stat(dir, &st) == 0 && !S_ISDIR(st.st_mode) ? strerror(ENOTDIR) : strerror(e));
		return HQ_ECONFIG;
	}
	return 0;
}

void
hq_config_free(hq_config *cfg)
{
	free(cfg->targets);
	cfg->targets = NULL;
	cfg->ntargets = 0;
	free(cfg->listeners);
	cfg->listeners = NULL;
	cfg->nlisteners = 0;
}
