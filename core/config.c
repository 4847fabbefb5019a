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
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "error.h"
#include "log.h"

typedef struct parse_state {
	hq_config *cfg;
	FILE *fp;
	int line;	    /* line inih is on */
	int section_line;   /* where the current section began */
	char section[128];  /* current section, as inih reported it */
	int failed;
} parse_state;

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
	else if (strcmp(end, "m") == 0)
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
	l->duplicates = HQ_DUP_ACCEPT;
	l->duplicate_window_ms = 86400000;
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
		if (hq_parse_duration(val, &l->idle_timeout_ms) != 0)
			return fail(st, st->line, "idle_timeout: '%s' is not a duration (e.g. 300s)", val);
	} else if (strcmp(key, "frame_timeout") == 0) {
		if (hq_parse_duration(val, &l->frame_timeout_ms) != 0 || l->frame_timeout_ms == 0)
			return fail(st, st->line, "frame_timeout: '%s' is not a positive duration", val);
	} else if (strcmp(key, "max_connections") == 0) {
		char *end;
		long v = strtol(val, &end, 10);
		if (*end || v < 1 || v > 1000000)
			return fail(st, st->line, "max_connections: '%s' is not a number from 1 to 1000000", val);
		l->max_connections = (int)v;
	} else if (strcmp(key, "duplicates") == 0) {
		if (strcmp(val, "accept") == 0)
			l->duplicates = HQ_DUP_ACCEPT;
		else if (strcmp(val, "ack") == 0)
			l->duplicates = HQ_DUP_ACK;
		else if (strcmp(val, "reject") == 0)
			l->duplicates = HQ_DUP_REJECT;
		else
			return fail(st, st->line, "duplicates: '%s' is not accept, ack or reject", val);
	} else if (strcmp(key, "duplicate_window") == 0) {
		if (hq_parse_duration(val, &l->duplicate_window_ms) != 0)
			return fail(st, st->line, "duplicate_window: '%s' is not a duration", val);
	} else {
		return fail(st, st->line, "unknown key '%s' in [listener %s]", key, l->name);
	}
	return 1;
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
		} else if (strcmp(key, "max_size") == 0) {
			if (hq_parse_size(val, &n) != 0 || n < (1u << 20))
				return fail(st, st->line, "max_size: '%s' is not a size of at least 1M", val);
			cfg->max_size = n;
		} else if (strcmp(key, "retention") == 0) {
			if (hq_parse_duration(val, &cfg->retention_ms) != 0)
				return fail(st, st->line, "retention: '%s' is not a duration (e.g. 30d, 0 keeps all)", val);
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
	if (*p == '[')
		st->section_line = st->line;
	return r;
}

int
hq_config_load(const char *file, hq_config *cfg)
{
	parse_state st;

	memset(cfg, 0, sizeof *cfg);
	snprintf(cfg->file, sizeof cfg->file, "%s", file);
	cfg->max_size = 1ull << 30;
	cfg->log_level = HQ_LOG_INFO;
	memset(&st, 0, sizeof st);
	st.cfg = cfg;
	st.fp = fopen(file, "r");
	if (st.fp == NULL) {
		snprintf(cfg->err, sizeof cfg->err, "%s:0: cannot open: %s", file,
			 strerror(errno));
		return HQ_ECONFIG;
	}
	int rc = ini_parse_stream(reader, &st, handler, &st);
	fclose(st.fp);
	if (st.failed)
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
		if (l->listen[0] == 0) {
			snprintf(cfg->err, sizeof cfg->err, "%s:%d: [listener %s] needs listen = host:port",
				 file, l->line, l->name);
			return HQ_ECONFIG;
		}
	}
	return 0;
}

void
hq_config_free(hq_config *cfg)
{
	free(cfg->listeners);
	cfg->listeners = NULL;
	cfg->nlisteners = 0;
}
