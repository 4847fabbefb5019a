/*
 * config.c - INI configuration reader (see config.h): the parser around
 * the key tables of config_keys.c.
 *
 * libinih calls handler() for each key; a reader wrapper counts lines and
 * notes where each section starts, so that every error, including the
 * checks made once a section is complete, names FILE:LINE.  Which keys a
 * section has, their types, bounds and defaults are the tables' (no key
 * is named in this file but in the cross-key checks of a finished
 * section); this file turns an entry and a value into a stored field or
 * an error that names the key and what it takes.
 */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "config_keys.h"
#include "error.h"

typedef struct parse_state {
	hq_config *cfg;
	FILE *fp;
	int line;	  /* line inih is on */
	int section_line; /* where the current section began */
	int failed;
	char dir[1024]; /* the config file's directory: relative paths start here */
	struct seen {
		char name[128];
		int line;
	} * seen; /* sections so far, to refuse repeats */
	int nseen;
} parse_state;

/* What a bad duration's message lists (hq_parse_duration's units). */
#define DUR_UNITS "a number and a unit: ms, s, min, m, h, d"

static int
vfail(parse_state *st, int line, const char *fmt, va_list ap)
{
	char reason[900];
	vsnprintf(reason, sizeof reason, fmt, ap);
	if (!st->failed)
		snprintf(st->cfg->err, sizeof st->cfg->err, "%s:%d: %s", st->cfg->file, line, reason);
	st->failed = 1;
	return 0;
}

/* Fails at line (a section's, for errors about the section itself). */
static int __attribute__((format(printf, 3, 4))) fail_at(parse_state *st, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(st, line, fmt, ap);
	va_end(ap);
	return 0;
}

int
hq_conf_fail(struct parse_state *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(st, st->line, fmt, ap);
	va_end(ap);
	return 0;
}

/* ---- one value, by its table entry ---- */

/* Stores v in the integer of k's size at p. */
static void
store_uint(const hq_conf_key *k, char *p, uint64_t v)
{
	if (k->size == sizeof(int)) {
		int i = (int)v;
		memcpy(p, &i, sizeof i);
	} else {
		memcpy(p, &v, sizeof v);
	}
}

/* A duration as its largest whole unit: "250ms", "30s", "24h", "30d". */
static void
duration_text(uint64_t ms, int lower, char *out, size_t cap)
{
	if (lower) { /* a lower bound: ms or s, as errors have always said it */
		if (ms % 1000)
			snprintf(out, cap, "%llums", (unsigned long long)ms);
		else
			snprintf(out, cap, "%llus", (unsigned long long)(ms / 1000));
	} else if (ms % HQ_DAY_MS == 0) {
		snprintf(out, cap, "%llud", (unsigned long long)(ms / HQ_DAY_MS));
	} else if (ms % 3600000 == 0) {
		snprintf(out, cap, "%lluh", (unsigned long long)(ms / 3600000));
	} else {
		snprintf(out, cap, "%llus", (unsigned long long)(ms / 1000));
	}
}

static int
duration_value(parse_state *st, const hq_conf_key *k, char *p, const char *val)
{
	uint64_t v;
	int zero_ok = (k->flags & HQ_CF_ZERO) != 0;
	if (hq_parse_duration(val, &v) != 0)
		return hq_conf_fail(st, "%s: '%s' is not a duration (%s)", k->name, val, DUR_UNITS);
	if ((v == 0 && !zero_ok) || (v != 0 && (v < k->lo || v > k->hi))) {
		char los[32], his[32];
		duration_text(k->lo, 1, los, sizeof los);
		duration_text(k->hi, 0, his, sizeof his);
		return hq_conf_fail(st, "%s: '%s' is out of range (%s%s to %s)", k->name, val,
				    zero_ok ? "0, or " : "", los, his);
	}
	store_uint(k, p, v);
	return 1;
}

void
hq_conf_size_text(uint64_t n, char *out, size_t cap)
{
	static const char units[] = "KMGT";
	int u = -1;
	while (u < 3 && n >= 1024 && n % 1024 == 0) {
		n /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(out, cap, "%llu", (unsigned long long)n);
	else
		snprintf(out, cap, "%llu%c", (unsigned long long)n, units[u]);
}

static int
size_value(parse_state *st, const hq_conf_key *k, char *p, const char *val)
{
	uint64_t n;
	if (hq_parse_size(val, &n) != 0)
		return hq_conf_fail(st, "%s: '%s' is not a size (a number and K, M, G or T)", k->name, val);
	if (n < k->lo || n > k->hi) {
		char los[32], his[32];
		hq_conf_size_text(k->lo, los, sizeof los);
		hq_conf_size_text(k->hi, his, sizeof his);
		return hq_conf_fail(st, "%s: '%s' is out of range (%s to %s)", k->name, val, los, his);
	}
	store_uint(k, p, n);
	return 1;
}

static int
int_value(parse_state *st, const hq_conf_key *k, char *p, const char *val)
{
	char *end;
	long v = strtol(val, &end, 10);
	int zero = (k->flags & HQ_CF_ZERO) && v == 0;
	if (*end || (!zero && (v < (long)k->lo || v > (long)k->hi))) {
		if (k->flags & HQ_CF_ZERO)
			return hq_conf_fail(st, "%s: '%s' is not a number (0: %s)", k->name, val, k->zero);
		return hq_conf_fail(st, "%s: '%s' is not a number from %llu to %llu", k->name, val,
				    (unsigned long long)k->lo, (unsigned long long)k->hi);
	}
	store_uint(k, p, (uint64_t)v);
	return 1;
}

void
hq_conf_enum_text(const hq_conf_enum *e, const char *sep, const char *last, char *out, size_t cap)
{
	size_t n = 0;
	out[0] = 0;
	for (int i = 0; e[i].name && n < cap; i++)
		n += (size_t)snprintf(out + n, cap - n, "%s%s",
				      i == 0	      ? ""
				      : e[i + 1].name ? sep
						      : last,
				      e[i].name);
}

static int
enum_value(parse_state *st, const hq_conf_key *k, char *p, const char *val)
{
	char names[200];
	for (const hq_conf_enum *e = k->values; e->name; e++)
		if (strcmp(e->name, val) == 0) {
			store_uint(k, p, (uint64_t)e->value);
			return 1;
		}
	hq_conf_enum_text(k->values, ", ", " or ", names, sizeof names);
	return hq_conf_fail(st, "%s: '%s' is not %s", k->name, val, names);
}

/* Parses val by k into obj (the section's struct).  1, or 0 after a failure. */
static int
key_value(parse_state *st, const hq_conf_key *k, void *obj, const char *val)
{
	char *p = (char *)obj + k->off;
	int ok;
	switch (k->type) {
	case HQ_CT_URL:
		if (strncmp(val, "https://", 8) != 0 && strncmp(val, "http://", 7) != 0)
			return hq_conf_fail(st, "%s: '%s' is not an http:// or https:// URL", k->name, val);
		/* fall through */
	case HQ_CT_STR:
	case HQ_CT_PATH:
		if (*val == 0 || strlen(val) >= k->size)
			return hq_conf_fail(st, "%s: empty or too long", k->name);
		snprintf(p, k->size, "%s", val);
		ok = 1;
		break;
	case HQ_CT_INT: ok = int_value(st, k, p, val); break;
	case HQ_CT_SIZE: ok = size_value(st, k, p, val); break;
	case HQ_CT_DURATION: ok = duration_value(st, k, p, val); break;
	case HQ_CT_ENUM: ok = enum_value(st, k, p, val); break;
	default: ok = k->parse(st, k, obj, val); break;
	}
	if (ok && k->line_off)
		memcpy((char *)obj + k->line_off, &st->line, sizeof st->line);
	return ok;
}

/* ---- sections ---- */

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

/* The [listener NAME] so far, or a new one with the table's defaults. */
static hq_listener_conf *
listener_for(parse_state *st, const hq_conf_section *sec, const char *name)
{
	hq_config *cfg = st->cfg;
	void *v = cfg->listeners;
	int added;
	hq_listener_conf *l = hq_named_get(&v, &cfg->nlisteners, sizeof *l, name, sizeof l->name, &added);
	cfg->listeners = v;
	if (!added)
		return l;
	hq_conf_defaults(sec, l);
	l->expect_from_min = l->expect_to_min = -1; /* expect_hours: all day */
	l->line = st->section_line;
	return l;
}

/* The [target NAME] so far, or a new one with the table's defaults. */
static hq_target_conf *
target_for(parse_state *st, const hq_conf_section *sec, const char *name)
{
	hq_config *cfg = st->cfg;
	void *v = cfg->targets;
	int added;
	hq_target_conf *t = hq_named_get(&v, &cfg->ntargets, sizeof *t, name, sizeof t->name, &added);
	cfg->targets = v;
	if (!added)
		return t;
	hq_conf_defaults(sec, t);
	t->line = st->section_line;
	return t;
}

/* The table of a section header as inih reports it ("journal", "target x");
 * *name gets the NAME of a named section. NULL: no such section. */
static const hq_conf_section *
section_of(const char *section, const char **name)
{
	size_t n;
	const hq_conf_section *secs = hq_conf_sections(&n);
	*name = NULL;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(secs[i].name);
		if (secs[i].kind == HQ_SEC_TOP) {
			if (strcmp(section, secs[i].name) == 0)
				return &secs[i];
		} else if (strncmp(section, secs[i].name, len) == 0 &&
			   (section[len] == ' ' || section[len] == '\t')) {
			*name = section + len + 1;
			while (**name == ' ' || **name == '\t')
				(*name)++;
			return &secs[i];
		}
	}
	return NULL;
}

static int
handler(void *user, const char *section, const char *key, const char *val)
{
	parse_state *st = user;
	const char *name;
	void *obj = st->cfg;

	if (st->failed)
		return 0;
	const hq_conf_section *sec = section_of(section, &name);
	if (sec == NULL && *section == 0)
		return hq_conf_fail(st, "key '%s' outside any section", key);
	if (sec == NULL)
		return fail_at(st, st->section_line, "unknown section [%s]", section);
	if (name && !valid_name(name))
		return fail_at(st, st->section_line,
			       "%s name '%s' must be letters, digits, '-', '_' or '.'", sec->name, name);
	if (sec->kind == HQ_SEC_LISTENER)
		obj = listener_for(st, sec, name);
	else if (sec->kind == HQ_SEC_TARGET)
		obj = target_for(st, sec, name);
	const hq_conf_key *k = hq_conf_key_find(sec, key);
	if (k == NULL)
		return hq_conf_fail(st, "unknown key '%s' in [%s%s%s]", key, sec->name,
				    name ? " " : "", name ? name : "");
	return key_value(st, k, obj, val);
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
			hq_conf_fail(st, "[%s] is written twice (first at line %d): merge the two",
				     name, st->seen[i].line);
			return;
		}
	st->seen = hq_xrealloc(st->seen, sizeof *st->seen * (size_t)(st->nseen + 1));
	snprintf(st->seen[st->nseen].name, sizeof st->seen[0].name, "%s", name);
	st->seen[st->nseen++].line = st->line;
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

/* ---- every section of a loaded config, for the walks over the tables ---- */

/* How many structs of sec cfg holds: 1 for a top section. */
static int
section_count(const hq_config *cfg, const hq_conf_section *sec)
{
	return sec->kind == HQ_SEC_LISTENER ? cfg->nlisteners
	       : sec->kind == HQ_SEC_TARGET ? cfg->ntargets
					    : 1;
}

/* The i-th struct of sec in cfg; label gets "journal" or "listener NAME",
 * *line where it starts (0 for a top section: its keys carry their lines). */
static char *
section_obj(const hq_config *cfg, const hq_conf_section *sec, int i, char *label, size_t cap, int *line)
{
	if (sec->kind == HQ_SEC_LISTENER) {
		snprintf(label, cap, "listener %s", cfg->listeners[i].name);
		*line = cfg->listeners[i].line;
		return (char *)&cfg->listeners[i];
	}
	if (sec->kind == HQ_SEC_TARGET) {
		snprintf(label, cap, "target %s", cfg->targets[i].name);
		*line = cfg->targets[i].line;
		return (char *)&cfg->targets[i];
	}
	snprintf(label, cap, "%s", sec->name);
	*line = 0;
	return (char *)cfg;
}

/* The line to name for key k of a section struct at obj that starts at line. */
static int
key_line(const hq_conf_key *k, const char *obj, int line)
{
	int kl;
	if (k->line_off == 0)
		return line;
	memcpy(&kl, obj + k->line_off, sizeof kl);
	return kl;
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
	char label[100];
	size_t nsec;
	const hq_conf_section *secs = hq_conf_sections(&nsec);
	for (size_t s = 0; s < nsec; s++)
		for (int i = 0; i < section_count(cfg, &secs[s]); i++) {
			int line;
			char *obj = section_obj(cfg, &secs[s], i, label, sizeof label, &line);
			for (size_t k = 0; k < secs[s].nkeys; k++) {
				const hq_conf_key *key = &secs[s].keys[k];
				if (key->type != HQ_CT_PATH || resolve_path(dir, obj + key->off, key->size) == 0)
					continue;
				snprintf(cfg->err, sizeof cfg->err,
					 "%s:%d: a relative path is too long once joined to %s",
					 cfg->file, key_line(key, obj, line), dir);
				return HQ_ECONFIG;
			}
		}
	return 0;
}

/* ---- a finished config: what one key cannot say alone ---- */

/* Why listener l is incomplete, or NULL. */
static const char *
listener_incomplete(const hq_listener_conf *l)
{
	if (l->listen[0] == 0)
		return "needs listen = host:port";
	if ((l->tls_cert[0] != 0) != (l->tls_key[0] != 0))
		return "tls_cert and tls_key go together";
	if (l->tls_client_ca[0] && !l->tls_cert[0])
		return "tls_client_ca needs tls_cert and tls_key";
	if (l->ntls_allowed && !l->tls_client_ca[0])
		return "tls_allowed_subjects needs tls_client_ca (client certificates)";
	if (l->expect_from_min >= 0 && l->expect_within_ms == 0)
		return "expect_hours needs expect_within (how long a silence is too long)";
	return NULL;
}

/* Why target t of cfg is incomplete, or NULL. */
static const char *
target_incomplete(const hq_config *cfg, const hq_target_conf *t)
{
	if (t->url[0] == 0)
		return "needs url = https://...";
	if (t->auth == HQ_AUTH_BASIC && (!t->username[0] || (!t->password_file[0] && !t->password[0])))
		return "auth = basic needs username and password_file";
	if (t->auth == HQ_AUTH_BEARER && !t->token_file[0])
		return "auth = bearer needs token_file";
	if (t->auth == HQ_AUTH_OAUTH2 && (!t->token_url[0] || !t->client_id[0] || !t->client_secret_file[0]))
		return "auth = oauth2 needs token_url, client_id and client_secret_file";
	if (t->auth == HQ_AUTH_SIGV4 && (!t->aws_region[0] || !t->aws_service[0]))
		return "auth = aws-sigv4 needs aws_region and aws_service";
	if ((t->client_cert[0] != 0) != (t->client_key[0] != 0))
		return "client_cert and client_key go together";
	if (t->retry_initial_ms > t->retry_max_ms)
		return "retry_initial is larger than retry_max";
	if (t->format == HQ_FMT_FHIR && !t->fhir_id_key_file[0])
		return "format = fhir needs fhir_id_key_file (64 hex characters: openssl rand -hex 32)";
	if (t->fhir_patient_match && t->fhir_batch)
		return "fhir_patient_match = identifier needs fhir_bundle = transaction (references to the "
		       "Patient resolve inside one transaction)";
	for (int k = 0; k < t->nfrom; k++) {
		int found = 0;
		for (int l = 0; l < cfg->nlisteners; l++)
			found |= strcmp(cfg->listeners[l].name, t->from[k]) == 0;
		if (!found)
			return "from names a listener that is not configured";
	}
	return NULL;
}

/* The checks of the whole file once read (last_line: its end). 0 or HQ_ECONFIG. */
static int
check_complete(hq_config *cfg, int last_line)
{
	const char *why;
	if (cfg->journal_path[0] == 0) {
		snprintf(cfg->err, sizeof cfg->err, "%s:%d: [journal] path is required", cfg->file, last_line);
		return HQ_ECONFIG;
	}
	if (cfg->nlisteners == 0) {
		snprintf(cfg->err, sizeof cfg->err, "%s:%d: no [listener NAME] section: nothing would be received",
			 cfg->file, last_line);
		return HQ_ECONFIG;
	}
	for (int i = 0; i < cfg->nlisteners; i++)
		if ((why = listener_incomplete(&cfg->listeners[i])) != NULL) {
			snprintf(cfg->err, sizeof cfg->err, "%s:%d: [listener %s] %s", cfg->file,
				 cfg->listeners[i].line, cfg->listeners[i].name, why);
			return HQ_ECONFIG;
		}
	for (int i = 0; i < cfg->ntargets; i++)
		if ((why = target_incomplete(cfg, &cfg->targets[i])) != NULL) {
			snprintf(cfg->err, sizeof cfg->err, "%s:%d: [target %s] %s", cfg->file,
				 cfg->targets[i].line, cfg->targets[i].name, why);
			return HQ_ECONFIG;
		}
	return 0;
}

/* The directory of file, absolute when it can be, into dir. */
static void
dir_of(const char *file, char *dir, size_t cap)
{
	char tmp[1024], *slash;
	snprintf(tmp, sizeof tmp, "%s", file);
	slash = strrchr(tmp, '/');
	if (slash == tmp)
		tmp[1] = 0;
	else if (slash)
		*slash = 0;
	else
		snprintf(tmp, sizeof tmp, ".");
	char *abs = realpath(tmp, NULL);
	snprintf(dir, cap, "%s", abs ? abs : tmp);
	free(abs);
}

int
hq_config_load(const char *file, hq_config *cfg)
{
	parse_state st;
	size_t nsec;
	const hq_conf_section *secs = hq_conf_sections(&nsec);

	memset(cfg, 0, sizeof *cfg);
	snprintf(cfg->file, sizeof cfg->file, "%s", file);
	for (size_t i = 0; i < nsec; i++)
		if (secs[i].kind == HQ_SEC_TOP)
			hq_conf_defaults(&secs[i], cfg);
	memset(&st, 0, sizeof st);
	st.cfg = cfg;
	st.fp = fopen(file, "r");
	if (st.fp == NULL) {
		snprintf(cfg->err, sizeof cfg->err, "%s:0: cannot open: %s", file, strerror(errno));
		return HQ_ECONFIG;
	}
	/* relative paths start at the config's directory, whatever the working directory */
	dir_of(file, st.dir, sizeof st.dir);
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
	return check_complete(cfg, st.line);
}

/* ---- the files a config names ---- */

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
check_readable(const hq_config *cfg, int line, const char *section, const char *key,
	       const char *path, char *err, size_t errcap)
{
	char c;
	if (path[0] == 0)
		return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, &c, 1) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		snprintf(err, errcap, "%s:%d: [%s] %s %s cannot be read (uid %ld): %s", cfg->file,
			 line, section, key, path, (long)geteuid(), strerror(e));
		return HQ_ECONFIG;
	}
	close(fd);
	return 0;
}

/* A check of one file a config names: 0 or HQ_ECONFIG with err set. */
typedef int (*file_check)(const hq_config *cfg, int line, const char *section, const char *key,
			  const char *path, char *err, size_t errcap);

/* check on every file key of the tables (HQ_CF_FILE; only HQ_CF_SECRET ones
 * if secrets_only), in table order; stops at the first failure.  0 or HQ_ECONFIG. */
static int
check_each_file(const hq_config *cfg, int secrets_only, file_check check, char *err, size_t errcap)
{
	char label[100];
	size_t nsec;
	const hq_conf_section *secs = hq_conf_sections(&nsec);
	unsigned want = secrets_only ? HQ_CF_SECRET : HQ_CF_FILE;
	for (size_t s = 0; s < nsec; s++)
		for (int i = 0; i < section_count(cfg, &secs[s]); i++) {
			int line;
			const char *obj = section_obj(cfg, &secs[s], i, label, sizeof label, &line);
			for (size_t k = 0; k < secs[s].nkeys; k++) {
				const hq_conf_key *key = &secs[s].keys[k];
				if ((key->flags & want) && check(cfg, key_line(key, obj, line), label,
								 key->name, obj + key->off, err, errcap))
					return HQ_ECONFIG;
			}
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
		snprintf(err, errcap, "%s:%d: [journal] path %s: uid %ld cannot write %s: %s",
			 cfg->file, cfg->journal_line, cfg->journal_path, (long)geteuid(), dir,
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

/* ---- routing and the allow list ---- */

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

int
hq_target_routes(const hq_target_conf *t, const char *listener, const char *type, size_t type_len)
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
