/*
 * config_keys.c - every key of hl7q.conf, one table per section (see
 * config_keys.h), the parse functions of the keys that are not one number
 * or one string, and the man page's key list rendered from the tables.
 *
 * Adding a key: one line in its section's table (a field in config.h for
 * the value), then `make man-keys` and a sentence in the section's prose
 * of deploy/man/hl7q.conf.5.  The names are operators' (see
 * ../shared/INTERFACE.md): rename none.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_keys.h"
#include "log.h"
#include "silence.h"

/* ---- value syntax (config.h) ---- */

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
	case 'K':
		mult = 1ull << 10;
		end++;
		break;
	case 'M':
		mult = 1ull << 20;
		end++;
		break;
	case 'G':
		mult = 1ull << 30;
		end++;
		break;
	case 'T':
		mult = 1ull << 40;
		end++;
		break;
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
		if (close == NULL || close[1] != ':' || (size_t)(close - s - 1) >= sizeof host)
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

/* ---- parse functions of the CUSTOM keys ---- */

static int
parse_addr_into(struct parse_state *st, const hq_conf_key *k, char *text, size_t cap,
		struct sockaddr_storage *addr, socklen_t *len, const char *val)
{
	if (strlen(val) >= cap || hq_parse_addr(val, addr, len) != 0)
		return hq_conf_fail(st, "%s: '%s' is not host:port or [v6]:port", k->name, val);
	snprintf(text, cap, "%s", val);
	return 1;
}

static int
parse_listen(struct parse_state *st, const hq_conf_key *k, void *obj, const char *val)
{
	hq_listener_conf *l = obj;
	return parse_addr_into(st, k, l->listen, sizeof l->listen, &l->addr, &l->addrlen, val);
}

static int
parse_admin_listen(struct parse_state *st, const hq_conf_key *k, void *obj, const char *val)
{
	hq_config *cfg = obj;
	return parse_addr_into(st, k, cfg->admin_listen, sizeof cfg->admin_listen, &cfg->admin_addr,
			       &cfg->admin_addrlen, val);
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

static int
parse_allow(struct parse_state *st, const hq_conf_key *k, void *obj, const char *val)
{
	hq_listener_conf *l = obj;
	char item[128];
	l->nallow = 0;
	for (const char *p = val; *p;) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		size_t n = strcspn(p, " ,\t");
		if (n == 0)
			break;
		if (n >= sizeof item || l->nallow == HQ_MAX_LIST)
			return hq_conf_fail(st, "allow: too many or too long entries");
		memcpy(item, p, n);
		item[n] = 0;
		p += n;
		if (parse_cidr(item, &l->allow[l->nallow]) != 0)
			return hq_conf_fail(st, "allow: '%s' is not an address or CIDR (10.0.1.0/24, 2001:db8::/32)",
					    item);
		l->nallow++;
	}
	return 1;
}

/* DNs hold commas, and ';' starts an INI comment: entries are separated by '|'. */
static int
parse_subjects(struct parse_state *st, const hq_conf_key *k, void *obj, const char *val)
{
	hq_listener_conf *l = obj;
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
			return hq_conf_fail(st, "tls_allowed_subjects: too many or too long");
		memcpy(l->tls_allowed[l->ntls_allowed], p, n);
		l->tls_allowed[l->ntls_allowed++][n] = 0;
		p += n;
		while (*p && *p != '|')
			p++;
	}
	return 1;
}

static int
parse_expect_within(struct parse_state *st, const hq_conf_key *k, void *obj, const char *val)
{
	hq_listener_conf *l = obj;
	if (hq_parse_duration(val, &l->expect_within_ms) != 0 || l->expect_within_ms < 1000)
		return hq_conf_fail(st, "expect_within: '%s' is not a duration of at least 1s (e.g. 15m)", val);
	return 1;
}

static int
parse_expect_hours(struct parse_state *st, const hq_conf_key *k, void *obj, const char *val)
{
	hq_listener_conf *l = obj;
	if (hq_parse_hours(val, &l->expect_from_min, &l->expect_to_min) != 0)
		return hq_conf_fail(st, "expect_hours: '%s' is not a daily window HH:MM-HH:MM (e.g. 06:00-22:00)",
				    val);
	return 1;
}

/* Splits a space- or comma-separated list into out[][64]; returns the count or -1. */
static int
split_words(const char *val, char (*out)[64], int max)
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
parse_from(struct parse_state *st, const hq_conf_key *k, void *obj, const char *val)
{
	hq_target_conf *t = obj;
	if ((t->nfrom = split_words(val, t->from, HQ_MAX_LIST)) < 0)
		return hq_conf_fail(st, "from: too many or too long listener names");
	return 1;
}

static int
parse_types(struct parse_state *st, const hq_conf_key *k, void *obj, const char *val)
{
	hq_target_conf *t = obj;
	if ((t->ntypes = split_words(val, t->types, HQ_MAX_LIST)) < 0)
		return hq_conf_fail(st, "types: too many or too long types");
	return 1;
}

/* "Name: value; Name2: value2" */
static int
parse_headers(struct parse_state *st, const hq_conf_key *k, void *obj, const char *val)
{
	hq_target_conf *t = obj;
	const char *p = val;
	while (*p) {
		while (*p == ' ' || *p == ';')
			p++;
		if (!*p)
			break;
		size_t len = strcspn(p, ";");
		if (t->nheaders == HQ_MAX_LIST || len >= sizeof t->headers[0] || memchr(p, ':', len) == NULL)
			return hq_conf_fail(st, "headers: expected 'Name: value; Name2: value'");
		memcpy(t->headers[t->nheaders], p, len);
		t->headers[t->nheaders++][len] = 0;
		p += len;
	}
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

static int
parse_zone(struct parse_state *st, const hq_conf_key *k, void *obj, const char *val)
{
	hq_target_conf *t = obj;
	if (strlen(val) >= sizeof t->fhir_timezone || !is_zone(val))
		return hq_conf_fail(st,
				    "fhir_timezone: '%s' is not an IANA time zone of /usr/share/zoneinfo "
				    "(e.g. America/Chicago)",
				    val);
	snprintf(t->fhir_timezone, sizeof t->fhir_timezone, "%s", val);
	return 1;
}

/* client_secret, token: known only to be refused. */
static int
parse_refused_secret(struct parse_state *st, const hq_conf_key *k, void *obj, const char *val)
{
	return hq_conf_fail(st, "%s: secrets come from a file (%s_file), never the config itself",
			    k->name, k->name);
}

static int
parse_syslog(struct parse_state *st, const hq_conf_key *k, void *obj, const char *val)
{
	hq_config *cfg = obj;
	const char *colon = strrchr(val, ':');
	if (strlen(val) >= sizeof cfg->audit_rfc5424 || colon == NULL || colon == val ||
	    colon[1] == 0 || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    atol(colon + 1) < 1 || atol(colon + 1) > 65535)
		return hq_conf_fail(st, "syslog_rfc5424: '%s' is not host:port", val);
	snprintf(cfg->audit_rfc5424, sizeof cfg->audit_rfc5424, "%s", val);
	return 1;
}

static int
parse_log_level(struct parse_state *st, const hq_conf_key *k, void *obj, const char *val)
{
	hq_config *cfg = obj;
	int lvl = hq_log_parse_level(val);
	if (lvl < 0)
		return hq_conf_fail(st, "log_level: '%s' is not err, warning, notice, info or debug", val);
	cfg->log_level = lvl;
	return 1;
}

/* ---- the tables ---- */

/* offset and size of a field of the section's struct */
#define TOP(f) offsetof(hq_config, f), sizeof(((hq_config *)0)->f)
#define LST(f) offsetof(hq_listener_conf, f), sizeof(((hq_listener_conf *)0)->f)
#define TGT(f) offsetof(hq_target_conf, f), sizeof(((hq_target_conf *)0)->f)
#define SECRET (HQ_CF_FILE | HQ_CF_SECRET)
/* units of the bounds and defaults: bytes (K), milliseconds (S, MIN, H) */
#define K 1024ull
#define S 1000ull
#define MIN (60 * S)
#define H (60 * MIN)

static const hq_conf_enum dup_modes[] = {
	{"accept", HQ_DUP_ACCEPT}, {"ack", HQ_DUP_ACK}, {"reject", HQ_DUP_REJECT}, {NULL, 0}};
static const hq_conf_enum accept_acks[] = {
	{"always", HQ_ACCEPT_ACK_ALWAYS}, {"msh15", HQ_ACCEPT_ACK_MSH15}, {NULL, 0}};
static const hq_conf_enum formats[] = {{"raw", HQ_FMT_RAW},
				       {"json", HQ_FMT_JSON},
				       {"google-hl7v2", HQ_FMT_GOOGLE},
				       {"fhir", HQ_FMT_FHIR},
				       {NULL, 0}};
static const hq_conf_enum auths[] = {{"none", HQ_AUTH_NONE},	   {"basic", HQ_AUTH_BASIC},
				     {"bearer", HQ_AUTH_BEARER},   {"oauth2", HQ_AUTH_OAUTH2},
				     {"aws-sigv4", HQ_AUTH_SIGV4}, {NULL, 0}};
static const hq_conf_enum orderings[] = {
	{"fifo", HQ_ORDER_FIFO}, {"patient", HQ_ORDER_PATIENT}, {"none", HQ_ORDER_NONE}, {NULL, 0}};
static const hq_conf_enum http_versions[] = {
	{"auto", HQ_HTTP_AUTO}, {"1.1", HQ_HTTP_1_1}, {"2", HQ_HTTP_2}, {NULL, 0}};
static const hq_conf_enum bundles[] = {{"transaction", 0}, {"batch", 1}, {NULL, 0}};
static const hq_conf_enum unsupported[] = {{"dead", 0}, {"skip", 1}, {NULL, 0}};
static const hq_conf_enum patient_matches[] = {{"none", 0}, {"identifier", 1}, {NULL, 0}};
static const hq_conf_enum booleans[] = {{"true", 1}, {"false", 0}, {NULL, 0}};

static const hq_conf_key journal_keys[] = {
	{"path", HQ_CT_PATH, TOP(journal_path), .flags = HQ_CF_REQUIRED, .accepts = "a directory",
	 .line_off = offsetof(hq_config, journal_line),
	 .help = "the LMDB environment directory (created 0700, files 0600)"},
	{"max_size", HQ_CT_SIZE, TOP(max_size), .lo = 1 * K * K, .hi = 64 * K * K * K * K,
	 .def = 1 * K * K * K, .help = "the map size; below a reserve, intake answers AR/CR"},
	{"retention", HQ_CT_DURATION, TOP(retention_ms), .lo = S, .hi = HQ_MAX_DURATION_MS,
	 .flags = HQ_CF_ZERO, .zero = "keep all", .help = "delivered messages older than this are purged"},
	{"rejected_retention", HQ_CT_DURATION, TOP(rejected_retention_ms), .lo = S,
	 .hi = HQ_MAX_DURATION_MS, .def = 7 * HQ_DAY_MS, .flags = HQ_CF_ZERO, .zero = "keep them",
	 .help = "refused frames are purged after this"},
	{"encryption_key_file", HQ_CT_PATH, TOP(encryption_key_file), .flags = SECRET,
	 .line_off = offsetof(hq_config, encryption_line), .shown = "not encrypted",
	 .help = "AES-256-GCM keys, 64 hex digits a line"},
};

static const hq_conf_key listener_keys[] = {
	{"listen", HQ_CT_CUSTOM, LST(listen), .parse = parse_listen, .flags = HQ_CF_REQUIRED,
	 .accepts = "host:port, [v6]:port", .help = "where MLLP is received; port 0 picks one"},
	{"max_message_size", HQ_CT_SIZE, LST(max_message_size), .lo = 64, .hi = 1 * K * K * K,
	 .def = 1 * K * K, .help = "larger frames are answered AR"},
	{"idle_timeout", HQ_CT_DURATION, LST(idle_timeout_ms), .lo = 1, .hi = 30 * HQ_DAY_MS,
	 .def = 300 * S, .flags = HQ_CF_ZERO, .zero = "never", .help = "a silent connection is closed"},
	{"frame_timeout", HQ_CT_DURATION, LST(frame_timeout_ms), .lo = 1, .hi = HQ_DAY_MS,
	 .def = 60 * S, .help = "a frame started must end within this"},
	{"max_connections", HQ_CT_INT, LST(max_connections), .lo = 1, .hi = 1000000, .def = 256,
	 .help = "connections at once"},
	{"max_connections_per_peer", HQ_CT_INT, LST(max_connections_per_peer), .lo = 1,
	 .hi = 1000000, .def = 32, .help = "connections from one host"},
	{"tls_cert", HQ_CT_PATH, LST(tls_cert), .flags = HQ_CF_FILE, .help = "PEM certificate: MLLP inside TLS"},
	{"tls_key", HQ_CT_PATH, LST(tls_key), .flags = SECRET, .help = "its private key"},
	{"tls_client_ca", HQ_CT_PATH, LST(tls_client_ca), .flags = HQ_CF_FILE,
	 .help = "require client certificates of this CA"},
	{"tls_allowed_subjects", HQ_CT_CUSTOM, LST(tls_allowed), .parse = parse_subjects,
	 .shown = "any", .accepts = "DNs or CNs, | between", .help = "only these client subjects"},
	{"allow", HQ_CT_CUSTOM, LST(allow), .parse = parse_allow, .shown = "all",
	 .accepts = "addresses, CIDRs", .help = "only these peers may connect"},
	{"expect_within", HQ_CT_CUSTOM, LST(expect_within_ms), .parse = parse_expect_within, .shown = "none",
	 .accepts = "a duration, 1s or more", .help = "silent-feed alarm after this long without a message"},
	{"expect_hours", HQ_CT_CUSTOM, .parse = parse_expect_hours, .shown = "all day",
	 .accepts = "HH:MM-HH:MM", .help = "expect_within only inside this daily window"},
	{"duplicates", HQ_CT_ENUM, LST(duplicates), .values = dup_modes, .def = HQ_DUP_ACCEPT,
	 .help = "what a repeated message gets"},
	{"duplicate_window", HQ_CT_DURATION, LST(duplicate_window_ms), .lo = 1, .hi = 365 * HQ_DAY_MS,
	 .def = 24 * H, .flags = HQ_CF_ZERO, .zero = "none", .help = "how far back a duplicate is looked for"},
	{"accept_ack", HQ_CT_ENUM, LST(accept_ack), .values = accept_acks,
	 .def = HQ_ACCEPT_ACK_ALWAYS, .help = "msh15: MSH-15 NE/ER honoured strictly"},
};

static const hq_conf_key target_keys[] = {
	{"url", HQ_CT_URL, TGT(url), .flags = HQ_CF_REQUIRED, .help = "where messages are POSTed"},
	{"from", HQ_CT_CUSTOM, TGT(from), .parse = parse_from, .shown = "all listeners",
	 .accepts = "listener names", .help = "the listeners that feed it"},
	{"types", HQ_CT_CUSTOM, TGT(types), .parse = parse_types, .shown = "all",
	 .accepts = "ADT^A01, ADT^*, ORU", .help = "the message types routed to it"},
	{"format", HQ_CT_ENUM, TGT(format), .values = formats, .def = HQ_FMT_RAW, .help = "the request body"},
	{"auth", HQ_CT_ENUM, TGT(auth), .values = auths, .def = HQ_AUTH_NONE, .help = "how requests authenticate"},
	{"username", HQ_CT_STR, TGT(username), .help = "auth = basic"},
	{"password_file", HQ_CT_PATH, TGT(password_file), .flags = SECRET, .help = "auth = basic"},
	{"password", HQ_CT_STR, TGT(password), .help = "a literal password: works, warned about"},
	{"token_file", HQ_CT_PATH, TGT(token_file), .flags = SECRET, .help = "auth = bearer"},
	{"token_url", HQ_CT_URL, TGT(token_url), .help = "auth = oauth2"},
	{"client_id", HQ_CT_STR, TGT(client_id), .help = "auth = oauth2"},
	{"client_secret_file", HQ_CT_PATH, TGT(client_secret_file), .flags = SECRET, .help = "auth = oauth2"},
	{"scope", HQ_CT_STR, TGT(scope), .help = "auth = oauth2"},
	{"aws_region", HQ_CT_STR, TGT(aws_region), .help = "auth = aws-sigv4"},
	{"aws_service", HQ_CT_STR, TGT(aws_service), .help = "auth = aws-sigv4"},
	{"aws_key_id_file", HQ_CT_PATH, TGT(aws_key_id_file), .flags = SECRET,
	 .shown = "environment", .help = "auth = aws-sigv4 (else $AWS_ACCESS_KEY_ID)"},
	{"aws_secret_file", HQ_CT_PATH, TGT(aws_secret_file), .flags = SECRET,
	 .shown = "environment", .help = "auth = aws-sigv4 (else $AWS_SECRET_ACCESS_KEY)"},
	{"ordering", HQ_CT_ENUM, TGT(ordering), .values = orderings, .def = HQ_ORDER_FIFO,
	 .help = "what may be in flight side by side"},
	{"concurrency", HQ_CT_INT, TGT(concurrency), .lo = 1, .hi = 256, .def = 8,
	 .help = "requests in flight (patient, none)"},
	{"timeout", HQ_CT_DURATION, TGT(timeout_ms), .lo = 1, .hi = HQ_DAY_MS, .def = 30 * S, .help = "of one request"},
	{"retry_initial", HQ_CT_DURATION, TGT(retry_initial_ms), .lo = 1, .hi = 30 * HQ_DAY_MS,
	 .def = 1 * S, .help = "the first backoff"},
	{"retry_max", HQ_CT_DURATION, TGT(retry_max_ms), .lo = 1, .hi = 30 * HQ_DAY_MS,
	 .def = 10 * MIN, .help = "the longest backoff"},
	{"max_attempts", HQ_CT_INT, TGT(max_attempts), .lo = 1, .hi = 1000000, .flags = HQ_CF_ZERO,
	 .zero = "no limit", .help = "then dead-letter"},
	{"max_age", HQ_CT_DURATION, TGT(max_age_ms), .lo = 1, .hi = HQ_MAX_DURATION_MS,
	 .def = 7 * HQ_DAY_MS, .flags = HQ_CF_ZERO, .zero = "no limit", .help = "then dead-letter"},
	{"headers", HQ_CT_CUSTOM, TGT(headers), .parse = parse_headers, .shown = "none",
	 .accepts = "Name: value; ...", .help = "extra request headers"},
	{"client_cert", HQ_CT_PATH, TGT(client_cert), .flags = HQ_CF_FILE, .help = "mutual TLS: PEM certificate"},
	{"client_key", HQ_CT_PATH, TGT(client_key), .flags = SECRET, .help = "its private key"},
	{"ca_file", HQ_CT_PATH, TGT(ca_file), .flags = HQ_CF_FILE, .shown = "system CAs",
	 .help = "CA of the target's certificate"},
	{"insecure", HQ_CT_ENUM, TGT(insecure), .values = booleans, .help = "true: no certificate check"},
	{"http_version", HQ_CT_ENUM, TGT(http_version), .values = http_versions,
	 .def = HQ_HTTP_AUTO, .help = "auto: HTTP/2 where TLS offers it"},
	{"fhir_bundle", HQ_CT_ENUM, TGT(fhir_batch), .values = bundles, .help = "the Bundle's type"},
	{"fhir_max_entries", HQ_CT_INT, TGT(fhir_max_entries), .lo = 1, .hi = 1000000,
	 .flags = HQ_CF_ZERO, .zero = "no limit", .help = "larger Bundles are dead-lettered"},
	{"fhir_timezone", HQ_CT_CUSTOM, TGT(fhir_timezone), .parse = parse_zone, .shown = "UTC",
	 .accepts = "an IANA zone", .help = "for times without an offset"},
	{"fhir_id_key_file", HQ_CT_PATH, TGT(fhir_id_key_file), .flags = SECRET,
	 .help = "HMAC key of the resource ids (format = fhir)"},
	{"fhir_unsupported", HQ_CT_ENUM, TGT(fhir_skip_unsupported), .values = unsupported,
	 .help = "message types without a mapping"},
	{"fhir_patient_match", HQ_CT_ENUM, TGT(fhir_patient_match), .values = patient_matches,
	 .help = "conditional update of Patient"},
	{"client_secret", HQ_CT_CUSTOM, .parse = parse_refused_secret, .flags = HQ_CF_UNLISTED},
	{"token", HQ_CT_CUSTOM, .parse = parse_refused_secret, .flags = HQ_CF_UNLISTED},
};

static const hq_conf_key admin_keys[] = {
	{"listen", HQ_CT_CUSTOM, TOP(admin_listen), .parse = parse_admin_listen, .shown = "none",
	 .accepts = "host:port, [v6]:port", .help = "GET /healthz and /metrics"},
};

static const hq_conf_key audit_keys[] = {
	{"syslog_rfc5424", HQ_CT_CUSTOM, TOP(audit_rfc5424), .parse = parse_syslog, .shown = "none",
	 .accepts = "host:port", .help = "access-audit events as RFC 5424 over TCP"},
};

static const hq_conf_key daemon_keys[] = {
	{"log_level", HQ_CT_CUSTOM, TOP(log_level), .parse = parse_log_level, .def = HQ_LOG_INFO, .shown = "info",
	 .accepts = "err | warning | notice | info | debug", .help = "the least severe line logged"},
};

#define SECTION(name, kind, keys, help)                                                            \
	{                                                                                          \
		name, kind, keys, sizeof keys / sizeof keys[0], help                               \
	}

static const hq_conf_section sections[] = {
	SECTION("journal", HQ_SEC_TOP, journal_keys, "The journal (required)."),
	SECTION("listener", HQ_SEC_LISTENER, listener_keys, "One per MLLP listener (at least one)."),
	SECTION("target", HQ_SEC_TARGET, target_keys, "One per HTTP(S) destination."),
	SECTION("admin", HQ_SEC_TOP, admin_keys, "The admin endpoint (optional)."),
	SECTION("audit", HQ_SEC_TOP, audit_keys, "The access-audit trail (optional)."),
	SECTION("daemon", HQ_SEC_TOP, daemon_keys, "The daemon."),
};

const hq_conf_section *
hq_conf_sections(size_t *n)
{
	*n = sizeof sections / sizeof sections[0];
	return sections;
}

const hq_conf_section *
hq_conf_section_find(const char *name)
{
	for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
		if (strcmp(sections[i].name, name) == 0)
			return &sections[i];
	return NULL;
}

const hq_conf_key *
hq_conf_key_find(const hq_conf_section *sec, const char *key)
{
	for (size_t i = 0; i < sec->nkeys; i++)
		if (strcmp(sec->keys[i].name, key) == 0)
			return &sec->keys[i];
	return NULL;
}

/* Numbers and enums get their .def; so do CUSTOM keys whose value is one
 * int or uint64_t (log_level, expect_within); texts and lists start empty. */
void
hq_conf_defaults(const hq_conf_section *sec, void *obj)
{
	for (size_t i = 0; i < sec->nkeys; i++) {
		const hq_conf_key *k = &sec->keys[i];
		char *p = (char *)obj + k->off;
		if (k->type == HQ_CT_STR || k->type == HQ_CT_PATH || k->type == HQ_CT_URL)
			continue;
		if (k->size == sizeof(int)) {
			int v = (int)k->def;
			memcpy(p, &v, sizeof v);
		} else if (k->size == sizeof(uint64_t)) {
			uint64_t v = k->def;
			memcpy(p, &v, sizeof v);
		}
	}
}
