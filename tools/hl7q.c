/*
 * hl7q.c - the operator CLI: status, audit queries, a message's story,
 * replay, purge, compaction and a monitoring plugin, on the journal of a
 * running (or stopped) hl7qd.  See hl7q(1).
 *
 * It opens the same LMDB environment as the daemon: reads run in read
 * transactions (they never block intake), replay and purge in short write
 * transactions the daemon's workers see on their next scan (within a
 * second).  Output is an aligned table, or JSON lines with --json.
 *
 * Access audit: every command that shows message content or patient ids
 * (ls, show, audit) or changes the journal (replay, purge, compact)
 * first commits an event to the journal's audit store (queue/audit.h) --
 * who, from where, which command, filter and ids -- and echoes it to
 * journald (and an RFC 5424 collector); a command that cannot record its
 * event refuses to run (exit 2).
 *
 * Options: each command's are declared in a table (CMDS below, the
 * struct option arrays beside each command); main reads them, and the
 * global ones (-c, -j, --json, --help), anywhere on the line, GNU style,
 * then hands the command its options first and its operands after "--".
 *
 * Exit codes: 0 done; 1 usage or input error (one line on stderr); 2 the
 * journal cannot be opened, or the audit event cannot be written.  `check` follows the monitoring-plugin
 * contract instead: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
 */
#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/error.h"
#include "net/auditlog.h"
#include "queue/audit.h"
#include "queue/feeds.h"
#include "core/silence.h"
#include "hl7/fhir.h"
#include "queue/journal.h"

#ifndef HQ_VERSION
#define HQ_VERSION "0.1.0"
#endif

#define MAX_TARGETS 256
#define ID_CHUNK 5000 /* ids per write transaction */

static int g_json;
static const char *g_cmd = "hl7q";
static char g_err[1400]; /* the last reason printed, for check's UNKNOWN line */

/* Prints "hl7q CMD: reason" on stderr; returns 1 (usage/input error). */
static int
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
static int
bad_option(char **argv)
{
	return fail("option '%s' is unknown or lacks its value (see hl7q --help)", argv[optind - 1]);
}


/*
 * TIME: RFC 3339 (2026-11-26T10:00:00Z, fraction and offset optional; a
 * date alone is its midnight UTC) or a duration back from now (15m, 2d).
 * Returns 0 or -1.
 */
static int
parse_time(const char *s, uint64_t *us)
{
	uint64_t ms;
	if (hq_parse_duration(s, &ms) == 0 && s[0] >= '0' && s[0] <= '9' && !strchr(s, '-')) {
		uint64_t now = hq_wall_us();
		*us = ms * 1000 < now ? now - ms * 1000 : 0;
		return 0;
	}
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *p = strptime(s, "%Y-%m-%d", &tm);
	if (p == NULL)
		return -1;
	uint64_t frac = 0;
	long off = 0;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p = strptime(p + 1, "%H:%M:%S", &tm);
		if (p == NULL)
			return -1;
		if (*p == '.') {
			uint64_t scale = 100000;
			for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
				frac += (uint64_t)(*p - '0') * scale;
		}
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int h, m;
			if (sscanf(p + 1, "%2d:%2d", &h, &m) != 2)
				return -1;
			off = (h * 3600L + m * 60L) * (*p == '-' ? -1 : 1);
			p += 6;
		} else {
			return -1; /* RFC 3339 wants the offset */
		}
	}
	if (*p != 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_hour > 23 || tm.tm_min > 59 ||
	    tm.tm_sec > 60)
		return -1;
	time_t t = timegm(&tm) - off;
	if (t < 0)
		return -1;
	*us = (uint64_t)t * 1000000 + frac;
	return 0;
}

/* 2026-11-26T10:00:00.123Z (milliseconds). */
static const char *
fmt_time(uint64_t us, char *buf, size_t cap)
{
	if (us == 0)
		return "-";
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, cap - n, ".%03uZ", (unsigned)(us % 1000000 / 1000));
	return buf;
}

static const char *
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

static const char *
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
static const char *
field(const hq_record *r, int f, char *buf, size_t cap)
{
	size_t n = r->f[f].n < cap - 1 ? r->f[f].n : cap - 1;
	if (n)
		memcpy(buf, r->f[f].p, n);
	buf[n] = 0;
	return buf;
}

static json_t *
jfield(const hq_record *r, int f)
{
	return json_stringn_nocheck(r->f[f].p ? r->f[f].p : "", r->f[f].n);
}

/* A decimal count (0 allowed).  Returns 0 or -1. */
static int
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
static int
parse_id(const char *s, uint64_t *id)
{
	return parse_count(s, id) == 0 && *id > 0 ? 0 : -1;
}

/* --- the journal ------------------------------------------------------- */

typedef struct ctx {
	const char *config_file;
	const char *journal_dir;
	hq_config cfg;
	int have_cfg;
	hq_journal *j;
	hq_audit *audit;     /* the access audit store, for commands that need one */
	hq_audit_event ev;   /* this command's event: who and the filter, set by main */
	int audited;	     /* ev is committed */
} ctx;

/*
 * Commits this command's audit event with the ids it is about to show or
 * change (up to HQ_AUDIT_MAX_IDS kept; count the total), then echoes it
 * to journald / the RFC 5424 collector.  Call it before printing or
 * acting.  Returns 0, or 2 after saying why the command refuses.
 */
static int
audit_now(ctx *c, const uint64_t *ids, size_t n, uint64_t count)
{
	c->ev.ids = (uint64_t *)ids;
	c->ev.nids = n < HQ_AUDIT_MAX_IDS ? n : HQ_AUDIT_MAX_IDS;
	c->ev.count = count;
	int rc = c->audit ? hq_audit_append(c->audit, &c->ev) : EROFS;
	if (rc != 0) {
		fail("cannot record the access audit event in %s: %s; refusing to %s "
		     "(run hl7q as the journal's owner, see hl7q(1) ACCESS)",
		     c->journal_dir, rc == EROFS || rc == EACCES ? "the journal is not writable by this user" : hq_strerror(rc),
		     g_cmd);
		return 2;
	}
	c->audited = 1;
	char err[600];
	if (hq_auditlog_send(&c->ev, c->have_cfg ? c->cfg.audit_rfc5424 : "", err, sizeof err) != 0)
		fprintf(stderr, "hl7q %s: warning: %s (the event is in the journal)\n", g_cmd, err);
	return 0;
}

/* Whether target name is known: in the config, or with records in the journal. */
static int
target_known(ctx *c, const char *name)
{
	for (int i = 0; c->have_cfg && i < c->cfg.ntargets; i++)
		if (strcmp(c->cfg.targets[i].name, name) == 0)
			return 1;
	static hq_target_summary t[MAX_TARGETS];
	long n = hq_journal_targets(c->j, t, MAX_TARGETS);
	for (long i = 0; i < n && i < MAX_TARGETS; i++)
		if (strcmp(t[i].name, name) == 0)
			return 1;
	return 0;
}

/* Fails (1) when a --target names no target; the known ones in the message. */
static int
check_target(ctx *c, const char *name)
{
	if (name == NULL || target_known(c, name))
		return 0;
	char list[600] = "";
	size_t n = 0;
	for (int i = 0; c->have_cfg && i < c->cfg.ntargets && n < sizeof list; i++)
		n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", c->cfg.targets[i].name);
	return fail("no target '%s'%s%s%s", name, n ? " (the config has: " : "", list, n ? ")" : "");
}

/* Opens the journal (read-only unless write).  Returns 0 or 2 (message printed). */
static int
open_journal(ctx *c, int write)
{
	char path[1100];
	struct stat st;
	snprintf(path, sizeof path, "%s/data.mdb", c->journal_dir);
	if (stat(path, &st) != 0) {
		fail("cannot open journal %s: %s", c->journal_dir, strerror(errno));
		return 2;
	}
	int rc = hq_journal_open(c->journal_dir, 0, !write, &c->j);
	if (rc != 0 && write && (rc == EACCES || rc == EROFS || rc == EPERM)) {
		fail("cannot open journal %s for writing: %s; hl7q %s records an access audit event there first "
		     "and refuses to run without it (run it as the journal's owner or via sudo, see hl7q(1) ACCESS)",
		     c->journal_dir, hq_strerror(rc), g_cmd);
		return 2;
	}
	if (rc != 0) {
		fail("cannot open journal %s: %s", c->journal_dir, hq_strerror(rc));
		return 2;
	}
	/* An encrypted journal: the key opens message bytes and patient ids.
	 * Without it (or with -j) the audit metadata still reads. */
	if (c->have_cfg && c->cfg.encryption_key_file[0]) {
		char err[1300];
		if (hq_journal_set_keys(c->j, c->cfg.encryption_key_file, err, sizeof err) != 0)
			fprintf(stderr, "hl7q %s: %s: message bytes and patient ids stay sealed\n", g_cmd, err);
	}
	return 0;
}

/* Reads the ids of argv[0..argc), each must be in the journal. */
static int
ids_from_args(ctx *c, int argc, char **argv, uint64_t **out, size_t *n)
{
	uint64_t *ids = calloc((size_t)argc + 1, sizeof *ids);
	if (ids == NULL)
		return fail("out of memory");
	for (int i = 0; i < argc; i++) {
		hq_record r;
		void *mem;
		if (parse_id(argv[i], &ids[i]) != 0) {
			free(ids);
			return fail("'%s' is not a message id (a positive number)", argv[i]);
		}
		int rc = hq_journal_get(c->j, ids[i], &r, &mem);
		if (rc == HQ_ENOTFOUND) {
			free(ids);
			return fail("no message %s in the journal", argv[i]);
		}
		if (rc != 0) {
			free(ids);
			return fail("cannot read message %s: %s", argv[i], hq_strerror(rc));
		}
		free(mem);
	}
	*out = ids;
	*n = (size_t)argc;
	return 0;
}

/* --- status -------------------------------------------------------------- */

/* hl7qd rewrites its status file every second; older than this, it hangs. */
#define DAEMON_STALE_S 30

typedef struct daemon_info {
	int state;	 /* DAEMON_DOWN, DAEMON_UP, DAEMON_HUNG */
	long pid;
	uint64_t age_s; /* since the status file was written */
} daemon_info;
enum { DAEMON_DOWN, DAEMON_UP, DAEMON_HUNG };

/* Whether hl7qd runs on this journal: JOURNAL/hl7qd.status names a live
 * pid (EPERM: alive, another user's) that updated it lately. */
static void
daemon_probe(const ctx *c, daemon_info *d)
{
	char path[1100], line[256];
	unsigned long long upd = 0;
	memset(d, 0, sizeof *d);
	snprintf(path, sizeof path, "%s/hl7qd.status", c->journal_dir);
	FILE *fp = fopen(path, "r");
	if (fp == NULL)
		return;
	while (fgets(line, sizeof line, fp)) {
		if (sscanf(line, "pid %ld", &d->pid) == 1)
			continue;
		sscanf(line, "updated_us %llu", &upd);
	}
	fclose(fp);
	if (d->pid <= 0 || (kill((pid_t)d->pid, 0) != 0 && errno == ESRCH))
		return; /* a stale file of a daemon that is gone */
	uint64_t now = hq_wall_us();
	d->age_s = upd && now > upd ? (now - upd) / 1000000 : 0;
	d->state = d->age_s > DAEMON_STALE_S ? DAEMON_HUNG : DAEMON_UP;
}

static const char *
daemon_words(const daemon_info *d, char *buf, size_t cap)
{
	if (d->state == DAEMON_UP)
		snprintf(buf, cap, "running (pid %ld)", d->pid);
	else if (d->state == DAEMON_HUNG)
		snprintf(buf, cap, "not responding (pid %ld, status %llu s old)", d->pid,
			 (unsigned long long)d->age_s);
	else
		snprintf(buf, cap, "not running");
	return buf;
}

/* The daemon's in-flight count of target, when it is running; *stopped
 * gets the id of the FIFO head that stopped it (0: not stopped). */
static int
daemon_inflight(const ctx *c, const char *target, uint64_t *stopped)
{
	char path[1100], line[256], name[HQ_TARGET_MAX];
	long pid = 0;
	int n, found = 0;
	unsigned long long sid;
	*stopped = 0;
	snprintf(path, sizeof path, "%s/hl7qd.status", c->journal_dir);
	FILE *fp = fopen(path, "r");
	if (fp == NULL)
		return 0;
	while (fgets(line, sizeof line, fp)) {
		if (sscanf(line, "pid %ld", &pid) == 1)
			continue;
		if (sscanf(line, "inflight %63s %d", name, &n) == 2 && strcmp(name, target) == 0)
			found = n;
		if (sscanf(line, "stopped %63s %llu", name, &sid) == 2 && strcmp(name, target) == 0)
			*stopped = sid;
	}
	fclose(fp);
	if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno == ESRCH)) {
		*stopped = 0;
		return 0; /* a stale file of a daemon that is gone */
	}
	return found;
}

typedef struct status {
	hq_target_summary t[MAX_TARGETS];
	long n;
	int inflight[MAX_TARGETS];
	uint64_t stopped[MAX_TARGETS]; /* FIFO head that stopped the target; 0 none */
	hq_journal_usage u;
} status;

static int
load_status(ctx *c, status *s, const char *only)
{
	long n = hq_journal_targets(c->j, s->t, MAX_TARGETS);
	if (n < 0)
		return fail("cannot read the journal: %s", hq_strerror((int)n));
	if (n > MAX_TARGETS)
		n = MAX_TARGETS;
	/* Configured targets with nothing journaled yet still show. */
	for (int i = 0; c->have_cfg && i < c->cfg.ntargets && n < MAX_TARGETS; i++) {
		int have = 0;
		for (long k = 0; k < n && !have; k++)
			have = strcmp(s->t[k].name, c->cfg.targets[i].name) == 0;
		if (!have) {
			memset(&s->t[n], 0, sizeof s->t[n]);
			snprintf(s->t[n].name, sizeof s->t[n].name, "%s", c->cfg.targets[i].name);
			n++;
		}
	}
	long k = 0;
	for (long i = 0; i < n; i++) {
		if (only && strcmp(s->t[i].name, only) != 0)
			continue;
		s->t[k] = s->t[i];
		int inf = daemon_inflight(c, s->t[k].name, &s->stopped[k]);
		uint64_t queued = s->t[k].pending;
		/* The requests in flight are among the journal's pending
		 * deliveries; the daemon's count is up to a second older than
		 * the journal, so it can be larger: never more than those. */
		if (inf < 0)
			inf = 0;
		if ((uint64_t)inf > queued)
			inf = (int)queued;
		s->inflight[k] = inf;
		s->t[k].pending = queued - (uint64_t)inf;
		k++;
	}
	s->n = k;
	if (only && k == 0)
		return fail("no target '%s' in the journal or the config", only);
	int rc = hq_journal_usage_get(c->j, &s->u);
	if (rc != 0)
		return fail("cannot read the journal's space: %s", hq_strerror(rc));
	return 0;
}

static uint64_t
age_s(uint64_t since_us, uint64_t now)
{
	return since_us && now > since_us ? (now - since_us) / 1000000 : 0;
}

static const struct option status_opts[] = {
	{"target", required_argument, NULL, 't'}, {"json", no_argument, NULL, 'J'}, {NULL, 0, NULL, 0}};

static int
cmd_status(ctx *c, int argc, char **argv)
{
	const struct option *opts = status_opts;
	const char *only = NULL;
	int o;
	while ((o = getopt_long(argc, argv, "+t:", opts, NULL)) != -1) {
		if (o == 't')
			only = optarg;
		else if (o == 'J')
			g_json = 1;
		else
			return bad_option(argv);
	}
	if (optind != argc)
		return fail("unexpected argument '%s'", argv[optind]);
	status *s = calloc(1, sizeof *s);
	if (s == NULL)
		return fail("out of memory");
	int rc = load_status(c, s, only);
	uint64_t now = hq_wall_us();
	char t1[40], t2[40], dw[100];
	daemon_info di;
	daemon_probe(c, &di);
	for (long i = 0; rc == 0 && i < s->n; i++) {
		hq_target_summary *t = &s->t[i];
		if (g_json) {
			json_t *o = json_pack("{s:s, s:I, s:I, s:i, s:I, s:I, s:I}", "target", t->name,
					      "pending", (json_int_t)t->pending, "retrying",
					      (json_int_t)t->retrying, "inflight", s->inflight[i], "dead",
					      (json_int_t)t->dead, "delivered", (json_int_t)t->delivered,
					      "oldest_pending_age_s",
					      (json_int_t)age_s(t->oldest_pending_us, now));
			json_object_set_new(o, "last_success", t->last_ok_us ? json_string(fmt_time(t->last_ok_us, t1, sizeof t1)) : json_null());
			json_object_set_new(o, "last_error_at", t->last_err_us ? json_string(fmt_time(t->last_err_us, t2, sizeof t2)) : json_null());
			json_object_set_new(o, "last_error", t->last_err_us ? json_string(t->last_error) : json_null());
			json_object_set_new(o, "stopped_at_id", s->stopped[i] ? json_integer((json_int_t)s->stopped[i]) : json_null());
			char *line = json_dumps(o, JSON_COMPACT);
			puts(line);
			free(line);
			json_decref(o);
			continue;
		}
		if (i == 0)
			printf("%-16s %9s %9s %9s %9s %11s %10s  %-24s %s\n", "TARGET", "PENDING",
			       "RETRYING", "INFLIGHT", "DEAD", "DELIVERED", "OLDEST_S", "LAST_SUCCESS",
			       "LAST_ERROR");
		char err[200];
		if (s->stopped[i])
			snprintf(err, sizeof err, "STOPPED: the head of its queue, id=%llu, cannot be read or opened",
				 (unsigned long long)s->stopped[i]);
		else if (t->last_err_us)
			snprintf(err, sizeof err, "%s (%s)", fmt_time(t->last_err_us, t2, sizeof t2), t->last_error);
		else
			snprintf(err, sizeof err, "-");
		printf("%-16s %9llu %9llu %9d %9llu %11llu %10llu  %-24s %s\n", t->name,
		       (unsigned long long)t->pending, (unsigned long long)t->retrying, s->inflight[i],
		       (unsigned long long)t->dead, (unsigned long long)t->delivered,
		       (unsigned long long)age_s(t->oldest_pending_us, now),
		       fmt_time(t->last_ok_us, t1, sizeof t1), err);
	}
	if (rc == 0) {
		if (g_json) {
			json_t *o = json_pack("{s:{s:I, s:I, s:I, s:I}, s:{s:b, s:s}}", "journal", "size_bytes",
					      (json_int_t)s->u.file_size, "used_bytes", (json_int_t)s->u.used,
					      "free_bytes", (json_int_t)s->u.free, "max_bytes",
					      (json_int_t)s->u.map_size, "hl7qd", "running", di.state == DAEMON_UP,
					      "state", di.state == DAEMON_UP ? "running" : di.state == DAEMON_HUNG ? "not responding" : "not running");
			if (di.state != DAEMON_DOWN)
				json_object_set_new(json_object_get(o, "hl7qd"), "pid", json_integer(di.pid));
			char *line = json_dumps(o, JSON_COMPACT);
			puts(line);
			free(line);
			json_decref(o);
		} else {
			if (s->n == 0)
				printf("no targets\n");
			printf("journal %s: file %.1f MB, used %.1f MB, free %.1f MB of %.1f MB\n",
			       c->journal_dir, s->u.file_size / 1e6, s->u.used / 1e6, s->u.free / 1e6,
			       s->u.map_size / 1e6);
			printf("hl7qd: %s\n", daemon_words(&di, dw, sizeof dw));
		}
	}
	free(s);
	return rc;
}

/* --- ls ------------------------------------------------------------------ */

static json_t *
targets_json(const hq_msg_dlv *d, size_t nd)
{
	json_t *o = json_object();
	for (size_t i = 0; i < nd; i++)
		json_object_set_new(o, d[i].target, json_string(dlv_state_name(d[i].d.state)));
	return o;
}

static json_t *
record_json(const hq_record *r, const hq_msg_dlv *d, size_t nd)
{
	char t[40];
	json_t *o = json_pack("{s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:s, s:s}", "id", (json_int_t)r->id,
			      "received_at", fmt_time(r->received_us, t, sizeof t), "listener",
			      jfield(r, HQ_F_LISTENER), "peer", jfield(r, HQ_F_PEER), "type",
			      jfield(r, HQ_F_TYPE), "control_id", jfield(r, HQ_F_CONTROL_ID), "patient",
			      r->locked ? json_null() : jfield(r, HQ_F_PATIENT_ID), "ack", r->ack[0] ? r->ack : "none", "state",
			      msg_state_name(r->state));
	json_object_set_new(o, "targets", targets_json(d, nd));
	if (r->f[HQ_F_RAW_SIZE].n) { /* refused: the journal keeps a prefix */
		char n[32];
		json_object_set_new(o, "size", json_integer(strtoll(field(r, HQ_F_RAW_SIZE, n, sizeof n), NULL, 10)));
		json_object_set_new(o, "sha256", jfield(r, HQ_F_RAW_SHA256));
	}
	return o;
}

static int
ls_row(void *arg, const hq_record *r, const hq_msg_dlv *d, size_t nd)
{
	int *rows = arg;
	if (g_json) {
		json_t *o = record_json(r, d, nd);
		char *line = json_dumps(o, JSON_COMPACT);
		puts(line);
		free(line);
		json_decref(o);
		return ferror(stdout) != 0;
	}
	char t[40], lis[64], peer[64], type[64], ctrl[64], pat[64], tg[512];
	if ((*rows)++ == 0)
		printf("%-8s %-24s %-10s %-21s %-16s %-22s %-14s %-3s %s\n", "ID", "RECEIVED", "LISTENER",
		       "PEER", "TYPE", "CONTROL_ID", "PATIENT", "ACK", "TARGETS");
	size_t n = 0;
	tg[0] = 0;
	for (size_t i = 0; i < nd && n < sizeof tg; i++)
		n += (size_t)snprintf(tg + n, sizeof tg - n, "%s%s=%s", i ? "," : "", d[i].target,
				      dlv_state_name(d[i].d.state));
	if (nd == 0)
		snprintf(tg, sizeof tg, "(%s)", msg_state_name(r->state));
	printf("%-8llu %-24s %-10s %-21s %-16s %-22s %-14s %-3s %s\n", (unsigned long long)r->id,
	       fmt_time(r->received_us, t, sizeof t), field(r, HQ_F_LISTENER, lis, sizeof lis),
	       field(r, HQ_F_PEER, peer, sizeof peer), field(r, HQ_F_TYPE, type, sizeof type),
	       field(r, HQ_F_CONTROL_ID, ctrl, sizeof ctrl),
	       r->locked ? "(sealed)" : field(r, HQ_F_PATIENT_ID, pat, sizeof pat),
	       r->ack[0] ? r->ack : "none", tg);
	return ferror(stdout) != 0;
}

/*
 * The state words, one vocabulary with status and check: "pending" is
 * what they count as pending (waiting, retrying or in flight: not yet
 * delivered nor dead); "retry" just the retrying.  duplicate and unrouted
 * are intake's verdicts (no deliveries).  Returns 0, or 1 after saying why.
 */
static int
parse_state(const char *s, int *state, int *msg_state)
{
	static const struct { const char *name; int v, msg; } names[] = {
		{"pending", HQ_STATE_QUEUED, 0}, {"retry", HQ_DLV_RETRY, 0}, {"retrying", HQ_DLV_RETRY, 0},
		{"dead", HQ_DLV_DEAD, 0}, {"delivered", HQ_DLV_DELIVERED, 0},
		{"rejected", HQ_STATE_REJECTED, 0}, {"duplicate", 0, HQ_MSG_DUPLICATE},
		{"unrouted", 0, HQ_MSG_UNROUTED}};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(s, names[i].name) == 0) {
			*state = names[i].v;
			*msg_state = names[i].msg;
			return 0;
		}
	return fail("--state '%s': expected pending (includes retrying), retry, dead, delivered, rejected, duplicate or unrouted", s);
}

static int
check_range(const hq_query *q)
{
	if (q->since_us && q->until_us && q->since_us >= q->until_us)
		return fail("--since is not before --until: the range is empty");
	if (q->state == HQ_STATE_REJECTED && q->target)
		return fail("--state rejected and --target conflict: refused messages have no deliveries");
	return 0;
}


typedef struct collect {
	uint64_t *v;
	size_t n, cap;
	int need_settled;		 /* purge --dead: skip messages still queued somewhere */
	const char *route_to;		 /* replay of a range: messages for this target only */
	const hq_target_conf *route_conf; /* its config, when known */
	int only_missing;		 /* ... and of those only the ones route_to never had */
	uint64_t never_had;		 /* how many collected route_to never had */
	uint64_t *nv;			 /* their ids, the first NEVER_LIST */
	size_t nn;
	/* ls's filters the journal's query does not know */
	int msg_state;			 /* HQ_MSG_DUPLICATE, HQ_MSG_UNROUTED; 0 any */
	const char *type_pat;		 /* a `types` pattern: ADT, ADT^*, ADT^A01, * */
	const char *listener, *sender;	 /* exact listener name, MSH-3 */
	uint64_t limit;			 /* 0 all */
	size_t keep;			 /* ls: keep only the first this many ids (0: all) ... */
	uint64_t total, max_id;		 /* ... but count every match, and the highest id */
	int *rows;			 /* ls's second pass: rows printed */
} collect;

#define NEVER_LIST 1000

static int
str_is(hq_str f, const char *s)
{
	return f.n == strlen(s) && (f.n == 0 || memcmp(f.p, s, f.n) == 0);
}

/* Whether a range replay for c->route_to takes r: it has a delivery to that
 * target already, or the config routes such a message there. */
static int
routed(const collect *c, const hq_record *r, const hq_msg_dlv *d, size_t nd)
{
	for (size_t i = 0; i < nd; i++)
		if (strcmp(d[i].target, c->route_to) == 0)
			return 1;
	if (c->route_conf == NULL || (r->state != HQ_MSG_ACCEPTED && r->state != HQ_MSG_UNROUTED))
		return 0;
	char lis[64], type[64];
	field(r, HQ_F_TYPE, type, sizeof type);
	return hq_target_routes(c->route_conf, field(r, HQ_F_LISTENER, lis, sizeof lis), type,
				strlen(type));
}

/* Whether r passes the filters the journal's query does not know. */
static int
collect_match(const collect *c, const hq_record *r, const hq_msg_dlv *d, size_t nd)
{
	for (size_t i = 0; c->need_settled && i < nd; i++)
		if (d[i].d.state == HQ_DLV_PENDING || d[i].d.state == HQ_DLV_RETRY)
			return 0;
	if (c->route_to && !routed(c, r, d, nd))
		return 0;
	if (c->msg_state && r->state != c->msg_state)
		return 0;
	if (c->listener && !str_is(r->f[HQ_F_LISTENER], c->listener))
		return 0;
	if (c->sender && !str_is(r->f[HQ_F_SENDING_APP], c->sender))
		return 0;
	if (c->type_pat && !hq_type_pattern_match(c->type_pat, r->f[HQ_F_TYPE].p ? r->f[HQ_F_TYPE].p : "",
						   r->f[HQ_F_TYPE].n))
		return 0;
	return 1;
}

static int
collect_id(void *arg, const hq_record *r, const hq_msg_dlv *d, size_t nd)
{
	collect *c = arg;
	if (!collect_match(c, r, d, nd))
		return 0;
	c->total++;
	c->max_id = r->id > c->max_id ? r->id : c->max_id;
	if (c->keep && c->n >= c->keep)
		return c->limit && c->total >= c->limit;
	if (c->route_to) {
		int had = 0;
		for (size_t i = 0; i < nd && !had; i++)
			had = strcmp(d[i].target, c->route_to) == 0;
		if (had && c->only_missing)
			return 0;
		if (!had) {
			if (c->nv == NULL && (c->nv = calloc(NEVER_LIST, sizeof *c->nv)) == NULL)
				return 1;
			if (c->nn < NEVER_LIST)
				c->nv[c->nn++] = r->id;
			c->never_had++;
		}
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 1024;
		uint64_t *v = realloc(c->v, cap * sizeof *v);
		if (v == NULL)
			return 1;
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = r->id;
	return c->limit && c->total >= c->limit;
}

/* ls's second pass: prints what the first pass counted (and the audit
 * event recorded), not what arrived since. */
static int
print_match(void *arg, const hq_record *r, const hq_msg_dlv *d, size_t nd)
{
	collect *c = arg;
	if (r->id > c->max_id || !collect_match(c, r, d, nd))
		return 0;
	if (ls_row(c->rows, r, d, nd))
		return 1;
	return ++c->total >= c->limit;
}

static const struct option ls_opts[] = {
	{"state", required_argument, NULL, 's'},      {"target", required_argument, NULL, 't'},
	{"type", required_argument, NULL, 'y'},       {"control-id", required_argument, NULL, 'i'},
	{"patient", required_argument, NULL, 'p'},    {"since", required_argument, NULL, 'S'},
	{"until", required_argument, NULL, 'U'},      {"limit", required_argument, NULL, 'n'},
	{"listener", required_argument, NULL, 'l'},   {"sender", required_argument, NULL, 'f'},
	{"json", no_argument, NULL, 'J'},	      {NULL, 0, NULL, 0}};

static int
cmd_ls(ctx *c, int argc, char **argv)
{
	const struct option *opts = ls_opts;
	hq_query q;
	collect ids = {0};
	int o, rows = 0;
	memset(&q, 0, sizeof q);
	while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (o) {
		case 's': if (parse_state(optarg, &q.state, &ids.msg_state)) return 1; break;
		case 't': q.target = optarg; break;
		case 'y': ids.type_pat = optarg; break;
		case 'i': q.control_id = (hq_str){optarg, strlen(optarg)}; break;
		case 'p': q.patient = (hq_str){optarg, strlen(optarg)}; break;
		case 'S': if (parse_time(optarg, &q.since_us)) return fail("--since '%s' is not a time (RFC 3339, or a duration back like 15m)", optarg); break;
		case 'U': if (parse_time(optarg, &q.until_us)) return fail("--until '%s' is not a time (RFC 3339, or a duration back like 15m)", optarg); break;
		case 'n': if (parse_count(optarg, &ids.limit) || ids.limit == 0) return fail("--limit '%s' is not a positive number", optarg); break;
		case 'l': ids.listener = optarg; break;
		case 'f': ids.sender = optarg; break;
		case 'J': g_json = 1; break;
		default: return bad_option(argv);
		}
	}
	if (optind != argc)
		return fail("unexpected argument '%s'", argv[optind]);
	if (check_range(&q) || check_target(c, q.target))
		return 1;
	if (ids.listener && c->have_cfg) {
		int known = 0;
		for (int i = 0; i < c->cfg.nlisteners && !known; i++)
			known = strcmp(c->cfg.listeners[i].name, ids.listener) == 0;
		if (!known)
			return fail("no listener '%s' in %s", ids.listener, c->cfg.file);
	}
	char code[64] = "";
	if (ids.type_pat) { /* the router's patterns; the index takes the code */
		size_t n = strcspn(ids.type_pat, "^");
		if (n == 0 || n >= sizeof code || (strchr(ids.type_pat, '*') && strcmp(ids.type_pat, "*") != 0 &&
						    strcmp(ids.type_pat + n, "^*") != 0))
			return fail("--type '%s': expected a type like the config's types: ADT, ADT^*, ADT^A01 or *", ids.type_pat);
		memcpy(code, ids.type_pat, n);
		code[n] = 0;
		if (strcmp(code, "*") != 0)
			q.type = (hq_str){code, n};
	}
	/* Count the matches (keeping the first ids), record the access, then
	 * stream the same query again up to that count: a whole journal's ls
	 * holds one record at a time, as before. */
	ids.keep = HQ_AUDIT_MAX_IDS;
	long n = hq_journal_query(c->j, &q, collect_id, &ids);
	if (n < 0) {
		free(ids.v);
		return fail("cannot read the journal: %s", hq_strerror((int)n));
	}
	int rc = audit_now(c, ids.v, ids.n, ids.total);
	uint64_t found = ids.total;
	free(ids.v);
	ids.v = NULL;
	if (rc == 0 && found) {
		ids.limit = ids.total;
		ids.total = 0;
		ids.rows = &rows;
		n = hq_journal_query(c->j, &q, print_match, &ids);
		if (n < 0)
			rc = fail("cannot read the journal: %s", hq_strerror((int)n));
		else if (ferror(stdout))
			rc = fail("cannot write: %s", strerror(errno));
	}
	if (rc == 0 && !g_json && found == 0)
		fprintf(stderr, "no messages match\n");
	return rc;
}

/* --- show ---------------------------------------------------------------- */

/* Prints up to n bytes of an answer excerpt, non-printing bytes as \xNN. */
static void
print_excerpt(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch >= 0x20 && ch < 0x7f)
			putchar(ch);
		else if (ch == '\r' || ch == '\n')
			fputs("\\n", stdout);
		else
			printf("\\x%02x", ch);
	}
}

static int
show_attempt(void *arg, const hq_attempt *a)
{
	json_t *list = arg;
	char t[40];
	if (list) {
		json_array_append_new(list, json_pack("{s:s, s:i, s:s, s:i, s:f, s:s, s:s%}", "target",
						      a->target, "n", (int)a->n, "at",
						      fmt_time(a->at_us, t, sizeof t), "http_status",
						      a->http_status, "latency_ms",
						      a->latency_us / 1000.0, "error", a->error,
						      "response", a->body, a->body_len));
		return 0;
	}
	static char last_target[HQ_TARGET_MAX];
	static uint32_t last_n;
	if (strcmp(last_target, a->target) != 0)
		last_n = 0;
	if (a->n > last_n + 1)
		printf("  %-16s ... %u attempt%s not kept (the journal keeps the first and the last few)\n",
		       a->target, a->n - last_n - 1, a->n - last_n - 1 == 1 ? "" : "s");
	snprintf(last_target, sizeof last_target, "%s", a->target);
	last_n = a->n;
	char st[16];
	if (a->http_status)
		snprintf(st, sizeof st, "HTTP %d", a->http_status);
	else
		snprintf(st, sizeof st, "no answer");
	printf("  %-16s #%-3u %s  %-9s %8.1f ms", a->target, a->n, fmt_time(a->at_us, t, sizeof t), st,
	       a->latency_us / 1000.0);
	if (strcmp(a->error, st) != 0) /* more than the status: a reason, a redirect's Location */
		printf("  %s", a->error);
	if (a->body_len) {
		fputs("  response: ", stdout);
		print_excerpt(a->body, a->body_len);
	}
	putchar('\n');
	return 0;
}

static const struct option show_opts[] = {
	{"raw", no_argument, NULL, 'r'}, {"json", no_argument, NULL, 'J'},
	{"fhir", no_argument, NULL, 'F'}, {"target", required_argument, NULL, 'T'}, {NULL, 0, NULL, 0}};

/* show --fhir: the Bundle the format = fhir target (named, or the only one) gets for r. */
static int
show_fhir(ctx *c, const hq_record *r, const char *target)
{
	const hq_target_conf *t = NULL;
	int n = 0;
	for (int i = 0; c->have_cfg && i < c->cfg.ntargets; i++)
		if (c->cfg.targets[i].format == HQ_FMT_FHIR &&
		    (target == NULL || strcmp(c->cfg.targets[i].name, target) == 0))
			t = &c->cfg.targets[i], n++;
	if (t == NULL)
		return fail(target ? "no format = fhir target '%s' in the config" :
				     "--fhir needs a config (-c FILE) with a format = fhir target", target);
	if (n > 1)
		return fail("several format = fhir targets: name one with --target");
	if (r->locked)
		return fail("message %llu is encrypted and no key here opens it", (unsigned long long)r->id);
	hq_fhir_opts o;
	hq_tz *tz;
	char err[600], *body;
	size_t len;
	if (hq_fhir_opts_init(&o, t->fhir_id_key_file, t->fhir_timezone, &tz, err, sizeof err) != 0)
		return fail("target %s: %s", t->name, err);
	o.batch = t->fhir_batch;
	o.max_entries = t->fhir_max_entries;
	o.patient_match = t->fhir_patient_match;
	hq_fhir_stats st;
	int rc = hq_fhir_render(r->f[HQ_F_RAW].p, r->f[HQ_F_RAW].n, &o, &body, &len, &st, err, sizeof err);
	hq_tz_free(tz);
	memset(&o, 0, sizeof o);
	if (rc != 0)
		return fail("message %llu: %s (target %s: %s)", (unsigned long long)r->id, hq_strerror(rc), t->name, err);
	fwrite(body, 1, len, stdout);
	putchar('\n');
	free(body);
	if (st.zsegments || st.skipped) /* what the Bundle leaves out, on stderr: stdout is the Bundle alone */
		fprintf(stderr, "hl7q show: %d entries; %d Z-segment%s ignored, %d segment%s without a mapping\n",
			st.entries, st.zsegments, st.zsegments == 1 ? "" : "s", st.skipped, st.skipped == 1 ? "" : "s");
	return ferror(stdout) ? fail("cannot write: %s", strerror(errno)) : 0;
}

static int
cmd_show(ctx *c, int argc, char **argv)
{
	const struct option *opts = show_opts;
	int o, raw = 0, fhir = 0;
	const char *fhir_target = NULL;
	while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (o == 'r')
			raw = 1;
		else if (o == 'F')
			fhir = 1;
		else if (o == 'T')
			fhir_target = optarg;
		else if (o == 'J')
			g_json = 1;
		else
			return bad_option(argv);
	}
	if (optind + 1 != argc)
		return fail(optind == argc ? "which message? (hl7q show ID)" : "one id at a time");
	if (raw && g_json)
		return fail("--raw and --json conflict");
	if (fhir && (raw || g_json))
		return fail("--fhir prints the Bundle: no --raw or --json with it");
	uint64_t id;
	if (parse_id(argv[optind], &id))
		return fail("'%s' is not a message id (a positive number)", argv[optind]);
	hq_record r;
	void *mem;
	int rc = hq_journal_get(c->j, id, &r, &mem);
	if (rc == HQ_ENOTFOUND)
		return fail("no message %llu in the journal", (unsigned long long)id);
	if (rc)
		return fail("cannot read message %llu: %s", (unsigned long long)id, hq_strerror(rc));
	if (raw && r.locked) {
		free(mem);
		return fail("message %llu is encrypted and no key here opens it (hl7q -c CONFIG with encryption_key_file)",
			    (unsigned long long)id);
	}
	if ((rc = audit_now(c, &id, 1, 1)) != 0) {
		free(mem);
		return rc;
	}
	if (fhir) {
		rc = show_fhir(c, &r, fhir_target);
		free(mem);
		return rc;
	}
	if (raw) {
		fwrite(r.f[HQ_F_RAW].p, 1, r.f[HQ_F_RAW].n, stdout);
		free(mem);
		return ferror(stdout) ? fail("cannot write: %s", strerror(errno)) : 0;
	}
	hq_msg_dlv d[HQ_TARGET_MAX];
	long nd = hq_journal_deliveries(c->j, id, d, HQ_TARGET_MAX);
	if (nd < 0) {
		free(mem);
		return fail("cannot read the journal: %s", hq_strerror((int)nd));
	}
	if (nd > HQ_TARGET_MAX)
		nd = HQ_TARGET_MAX;
	char t[40], b1[256], b2[256];
	if (g_json) {
		json_t *o = record_json(&r, d, (size_t)nd), *att = json_array(), *dl = json_array();
		json_object_set_new(o, "version", jfield(&r, HQ_F_VERSION));
		json_object_set_new(o, "sending_application", jfield(&r, HQ_F_SENDING_APP));
		json_object_set_new(o, "sending_facility", jfield(&r, HQ_F_SENDING_FAC));
		json_object_set_new(o, "receiving_application", jfield(&r, HQ_F_RECEIVING_APP));
		json_object_set_new(o, "receiving_facility", jfield(&r, HQ_F_RECEIVING_FAC));
		json_object_set_new(o, "ack_control_id", jfield(&r, HQ_F_ACK_ID));
		json_object_set_new(o, "reason", jfield(&r, HQ_F_REASON));
		json_object_set_new(o, "size_bytes", json_integer((json_int_t)r.f[HQ_F_RAW].n));
		for (long i = 0; i < nd; i++)
			json_array_append_new(dl, json_pack("{s:s, s:s, s:i, s:i, s:s}", "target", d[i].target,
							    "state", dlv_state_name(d[i].d.state), "attempts",
							    (int)d[i].d.attempts, "last_status", d[i].d.last_status,
							    "updated_at", fmt_time(d[i].d.updated_us, t, sizeof t)));
		json_object_set_new(o, "deliveries", dl);
		long na = hq_journal_attempts(c->j, id, show_attempt, att);
		json_object_set_new(o, "attempts", att);
		char *line = json_dumps(o, JSON_COMPACT);
		puts(line);
		free(line);
		json_decref(o);
		free(mem);
		return na < 0 ? fail("cannot read the journal: %s", hq_strerror((int)na)) : 0;
	}
	printf("id           %llu\n", (unsigned long long)r.id);
	printf("received     %s\n", fmt_time(r.received_us, t, sizeof t));
	printf("listener     %s\n", field(&r, HQ_F_LISTENER, b1, sizeof b1));
	printf("peer         %s\n", field(&r, HQ_F_PEER, b1, sizeof b1));
	printf("type         %s\n", field(&r, HQ_F_TYPE, b1, sizeof b1));
	printf("control id   %s\n", field(&r, HQ_F_CONTROL_ID, b1, sizeof b1));
	printf("version      %s\n", field(&r, HQ_F_VERSION, b1, sizeof b1));
	printf("sender       %s / %s\n", field(&r, HQ_F_SENDING_APP, b1, sizeof b1),
	       field(&r, HQ_F_SENDING_FAC, b2, sizeof b2));
	printf("receiver     %s / %s\n", field(&r, HQ_F_RECEIVING_APP, b1, sizeof b1),
	       field(&r, HQ_F_RECEIVING_FAC, b2, sizeof b2));
	printf("patient      %s\n", r.locked ? "(sealed: no key)" : field(&r, HQ_F_PATIENT_ID, b1, sizeof b1));
	if (r.f[HQ_F_RAW_SIZE].n) /* refused: the journal keeps a prefix */
		printf("size         %s bytes (first %zu kept), sha256 %s\n",
		       field(&r, HQ_F_RAW_SIZE, b1, sizeof b1), r.f[HQ_F_RAW].n,
		       field(&r, HQ_F_RAW_SHA256, b2, sizeof b2));
	else
		printf("size         %zu bytes%s\n", r.f[HQ_F_RAW].n, r.is_batch ? " (FHS/BHS batch)" : "");
	printf("intake       %s", msg_state_name(r.state));
	if (r.state == HQ_MSG_DUPLICATE)
		printf(" of message %llu", (unsigned long long)r.dup_of);
	printf("\nack sent     %s", r.ack[0] ? r.ack : "none");
	if (r.f[HQ_F_ACK_ID].n)
		printf(" (ACK control id %s)", field(&r, HQ_F_ACK_ID, b1, sizeof b1));
	if (r.err_code)
		printf(", error %u: %s", r.err_code, field(&r, HQ_F_REASON, b1, sizeof b1));
	printf("\ndeliveries   %s\n", nd ? "" : "none");
	for (long i = 0; i < nd; i++)
		printf("  %-16s %-9s  attempts %u  last status %d  at %s%s\n", d[i].target,
		       dlv_state_name(d[i].d.state), d[i].d.attempts, d[i].d.last_status,
		       fmt_time(d[i].d.updated_us, t, sizeof t),
		       d[i].d.replayed_us ? "  (replayed)" : "");
	printf("attempts\n");
	long na = hq_journal_attempts(c->j, id, show_attempt, NULL);
	if (na == 0)
		printf("  none\n");
	free(mem);
	return na < 0 ? fail("cannot read the journal: %s", hq_strerror((int)na)) : 0;
}

/* --- replay and purge ----------------------------------------------------- */

static const struct option replay_opts[] = {
	{"dead", no_argument, NULL, 'd'},	   {"target", required_argument, NULL, 't'},
	{"since", required_argument, NULL, 'S'},   {"until", required_argument, NULL, 'U'},
	{"dry-run", no_argument, NULL, 'n'},	   {"missing", no_argument, NULL, 'm'},
	{"json", no_argument, NULL, 'J'},	   {NULL, 0, NULL, 0}};

static int
cmd_replay(ctx *c, int argc, char **argv)
{
	const struct option *opts = replay_opts;
	hq_query q;
	int o, dead = 0, dry = 0, missing = 0;
	const char *target = NULL;
	memset(&q, 0, sizeof q);
	while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (o) {
		case 'd': dead = 1; break;
		case 't': target = optarg; break;
		case 'S': if (parse_time(optarg, &q.since_us)) return fail("--since '%s' is not a time (RFC 3339, or a duration back like 15m)", optarg); break;
		case 'U': if (parse_time(optarg, &q.until_us)) return fail("--until '%s' is not a time (RFC 3339, or a duration back like 15m)", optarg); break;
		case 'n': dry = 1; break;
		case 'm': missing = 1; break;
		case 'J': g_json = 1; break;
		default: return bad_option(argv);
		}
	}
	int nids = argc - optind, range = q.since_us || q.until_us;
	if (missing && !range)
		return fail("--missing goes with --target T --since TIME");
	if (nids && (dead || range))
		return fail("message ids and --dead/--since/--until conflict: give one or the other");
	if (dead && range)
		return fail("--dead and --since/--until conflict");
	if (!nids && !dead && !range)
		return fail("what to replay? ids, --dead [--target T], or --target T --since TIME");
	if (range && target == NULL)
		return fail("a time range replays for one target: add --target T");
	if (target && strlen(target) >= HQ_TARGET_MAX)
		return fail("no target '%s'", target);
	if (check_range(&q) || check_target(c, target))
		return 1;
	collect ids = {0};
	if (nids) {
		if (ids_from_args(c, nids, argv + optind, &ids.v, &ids.n))
			return 1;
	} else {
		if (dead) {
			q.state = HQ_DLV_DEAD;
			q.target = target;
		} else {
			ids.route_to = target;
			ids.only_missing = missing;
			for (int i = 0; c->have_cfg && i < c->cfg.ntargets; i++)
				if (strcmp(c->cfg.targets[i].name, target) == 0)
					ids.route_conf = &c->cfg.targets[i];
		}
		long n = hq_journal_query(c->j, &q, collect_id, &ids);
		if (n < 0) {
			free(ids.v);
			free(ids.nv);
			return fail("cannot read the journal: %s", hq_strerror((int)n));
		}
	}
	int rc = audit_now(c, ids.v, ids.n, ids.n);
	if (rc) {
		free(ids.v);
		free(ids.nv);
		return rc;
	}
	long queued = 0;
	for (size_t i = 0; !dry && i < ids.n; i += ID_CHUNK) {
		size_t k = ids.n - i < ID_CHUNK ? ids.n - i : ID_CHUNK;
		long n = hq_journal_replay(c->j, ids.v + i, k, target, dead, hq_wall_us());
		if (n < 0) {
			free(ids.v);
			return fail("cannot write the journal: %s (%ld deliveries queued before)",
				    hq_strerror((int)n), queued);
		}
		queued += n;
	}
	if (g_json) {
		printf("{\"messages\":%zu,\"queued\":%ld,\"dry_run\":%s", ids.n, queued, dry ? "true" : "false");
		if (range) {
			printf(",\"never_had\":%llu,\"never_had_ids\":[", (unsigned long long)ids.never_had);
			for (size_t i = 0; i < ids.nn; i++)
				printf("%s%llu", i ? "," : "", (unsigned long long)ids.nv[i]);
			printf("]");
		}
		printf("}\n");
	} else {
		if (dry)
			printf("would replay %zu message%s\n", ids.n, ids.n == 1 ? "" : "s");
		else
			printf("queued %ld deliver%s of %zu message%s\n", queued, queued == 1 ? "y" : "ies", ids.n,
			       ids.n == 1 ? "" : "s");
		if (range) {
			printf("%llu of them %s never had%s", (unsigned long long)ids.never_had, target,
			       ids.never_had ? ":" : "");
			for (size_t i = 0; i < ids.nn; i++)
				printf(" %llu", (unsigned long long)ids.nv[i]);
			printf("%s\n", ids.never_had > ids.nn ? " ..." : "");
		}
	}
	free(ids.v);
	free(ids.nv);
	return 0;
}

static const struct option purge_opts[] = {
	{"dead", no_argument, NULL, 'd'},	{"delivered-before", required_argument, NULL, 'b'},
	{"target", required_argument, NULL, 't'}, {"dry-run", no_argument, NULL, 'n'},
	{"json", no_argument, NULL, 'J'},	{"rejected", no_argument, NULL, 'r'},
	{"force", no_argument, NULL, 'f'},	{NULL, 0, NULL, 0}};

/* Whether a message of ids[0..n) is still owed to a target (pending,
 * retrying or dead): then it says which, and purging it needs --force. */
static int
undelivered(ctx *c, const uint64_t *ids, size_t n)
{
	static const char *names[] = {"?", "pending", "retrying", "delivered", "dead"};
	for (size_t i = 0; i < n; i++) {
		hq_msg_dlv d[HQ_TARGET_MAX];
		long nd = hq_journal_deliveries(c->j, ids[i], d, HQ_TARGET_MAX);
		if (nd < 0)
			return fail("cannot read the journal: %s", hq_strerror((int)nd)) != 0;
		for (long t = 0; t < nd && t < HQ_TARGET_MAX; t++)
			if (d[t].d.state != HQ_DLV_DELIVERED)
				return fail("message %llu has not been delivered to target %s (%s): "
					    "add --force to purge it anyway",
					    (unsigned long long)ids[i], d[t].target,
					    d[t].d.state <= HQ_DLV_DEAD ? names[d[t].d.state] : "?") != 0;
	}
	return 0;
}

static int
cmd_purge(ctx *c, int argc, char **argv)
{
	const struct option *opts = purge_opts;
	int o, dead = 0, dry = 0, before_set = 0, rejected = 0, force = 0;
	uint64_t before = 0;
	const char *target = NULL;
	while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (o) {
		case 'd': dead = 1; break;
		case 'r': rejected = 1; break;
		case 'b':
			if (parse_time(optarg, &before))
				return fail("--delivered-before '%s' is not a time (RFC 3339, or a duration back like 30d)", optarg);
			before_set = 1;
			break;
		case 't': target = optarg; break;
		case 'n': dry = 1; break;
		case 'J': g_json = 1; break;
		case 'f': force = 1; break;
		default: return bad_option(argv);
		}
	}
	int nids = argc - optind;
	if (force && !nids)
		return fail("--force goes with message ids only");
	if ((nids > 0) + dead + before_set + rejected != 1)
		return fail(nids + dead + before_set + rejected
				    ? "give one of --dead, --rejected, --delivered-before TIME or ids"
				    : "what to purge? --dead, --rejected, --delivered-before TIME, or ids");
	if (target && !dead)
		return fail("--target goes with --dead only");
	if (check_target(c, target))
		return 1;
	collect ids = {0};
	long purged = 0;
	uint64_t before_usage = 0;
	hq_journal_usage u;
	if (hq_journal_usage_get(c->j, &u) == 0)
		before_usage = u.free;
	if (before_set || rejected) {
		uint64_t resume = 0, found = 0;
		long n;
		if (rejected)
			before = UINT64_MAX; /* every refused frame */
		do { /* count first, for the audit event */
			n = rejected ? hq_journal_purge_rejected(c->j, before, &resume, ID_CHUNK, 1)
				     : hq_journal_purge_before(c->j, before, &resume, ID_CHUNK, 1);
			if (n < 0)
				return fail("cannot read the journal: %s", hq_strerror((int)n));
			found += (uint64_t)n;
		} while (resume < before);
		int rc = audit_now(c, NULL, 0, found);
		if (rc)
			return rc;
		resume = 0;
		do {
			n = rejected ? hq_journal_purge_rejected(c->j, before, &resume, ID_CHUNK, dry)
				     : hq_journal_purge_before(c->j, before, &resume, ID_CHUNK, dry);
			if (n < 0)
				return fail("cannot purge: %s (%ld purged before)", hq_strerror((int)n), purged);
			purged += n;
		} while (resume < before);
	} else {
		if (nids) {
			if (ids_from_args(c, nids, argv + optind, &ids.v, &ids.n))
				return 1;
			if (!force && undelivered(c, ids.v, ids.n)) {
				free(ids.v);
				return 1;
			}
		} else {
			hq_query q;
			memset(&q, 0, sizeof q);
			q.state = HQ_DLV_DEAD;
			q.target = target;
			ids.need_settled = 1;
			long n = hq_journal_query(c->j, &q, collect_id, &ids);
			if (n < 0) {
				free(ids.v);
				return fail("cannot read the journal: %s", hq_strerror((int)n));
			}
		}
		int rc = audit_now(c, ids.v, ids.n, ids.n);
		if (rc) {
			free(ids.v);
			return rc;
		}
		for (size_t i = 0; i < ids.n; i += ID_CHUNK) {
			size_t k = ids.n - i < ID_CHUNK ? ids.n - i : ID_CHUNK;
			/* --dead: checked again as it purges, so a replay made meanwhile stays */
			long n = dry ? (long)k
				     : hq_journal_purge_if(c->j, ids.v + i, k,
							   nids ? HQ_PURGE_ANY : HQ_PURGE_SETTLED);
			if (n < 0) {
				free(ids.v);
				return fail("cannot purge: %s (%ld purged before)", hq_strerror((int)n), purged);
			}
			purged += n;
		}
		free(ids.v);
	}
	uint64_t freed = 0;
	if (!dry && hq_journal_usage_get(c->j, &u) == 0 && u.free > before_usage)
		freed = u.free - before_usage;
	if (g_json)
		printf("{\"purged\":%ld,\"dry_run\":%s,\"freed_bytes\":%llu}\n", purged, dry ? "true" : "false",
		       (unsigned long long)freed);
	else if (dry)
		printf("would purge %ld message%s\n", purged, purged == 1 ? "" : "s");
	else
		printf("purged %ld message%s (%.1f MB freed for reuse)\n", purged, purged == 1 ? "" : "s",
		       freed / 1e6);
	return 0;
}

/* --- compact and check ----------------------------------------------------- */

static const struct option compact_opts[] = {{"json", no_argument, NULL, 'J'}, {NULL, 0, NULL, 0}};

static int
cmd_compact(ctx *c, int argc, char **argv)
{
	const char *dir = NULL;
	int o;
	while ((o = getopt_long(argc, argv, "+", compact_opts, NULL)) != -1) {
		if (o == 'J')
			g_json = 1;
		else
			return bad_option(argv);
	}
	if (optind + 1 < argc)
		return fail("usage: hl7q compact DIR [--json]");
	dir = optind < argc ? argv[optind] : NULL;
	if (dir == NULL)
		return fail("where to? (hl7q compact DIR: a new or empty directory)");
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return fail("cannot create %s: %s", dir, strerror(errno));
	char path[4200];
	struct stat st;
	snprintf(path, sizeof path, "%s/data.mdb", dir);
	if (stat(path, &st) == 0)
		return fail("%s already holds a journal: give a new or empty directory", dir);
	/* A copy taken while hl7qd runs misses what it ACKs afterwards: swapped
	 * in, those messages would be lost.  Hold the daemon's lock meanwhile,
	 * so that none starts either (released at exit). */
	int lockfd;
	long holder;
	int rc = hq_journal_lock(c->journal_dir, &lockfd, &holder);
	if (rc == HQ_ELOCKED)
		return fail("hl7qd (pid %ld) holds the journal %s: stop it first, then compact, "
			    "swap the copy in, and start it (see hl7q(1))", holder, c->journal_dir);
	if (rc != 0)
		return fail("cannot lock the journal %s: %s", c->journal_dir, hq_strerror(rc));
	uint64_t nmsg = 0;
	hq_journal_count(c->j, &nmsg);
	rc = audit_now(c, NULL, 0, nmsg);
	if (rc)
		return rc;
	rc = hq_journal_copy(c->j, dir);
	if (rc != 0)
		return fail("cannot write the copy into %s: %s", dir, hq_strerror(rc));
	hq_journal_usage u;
	uint64_t was = hq_journal_usage_get(c->j, &u) == 0 ? u.file_size : 0;
	if (stat(path, &st) != 0)
		return fail("the copy is missing: %s", strerror(errno));
	if (g_json) {
		printf("{\"copy\":\"%s\",\"copy_bytes\":%lld,\"journal_bytes\":%llu}\n", path,
		       (long long)st.st_size, (unsigned long long)was);
		return 0;
	}
	printf("wrote %s: %.1f MB (the journal's file: %.1f MB).\n"
	       "To use it, before hl7qd starts again: move %s/data.mdb over the journal's data.mdb, remove the journal's lock.mdb, start hl7qd.\n",
	       path, st.st_size / 1e6, was / 1e6, dir);
	return 0;
}

/* --- reseal ---------------------------------------------------------------- */

#define RESEAL_SLICE 1000 /* records or attempts per write transaction */

/* Seals everything under the first key of the key file, a slice per
 * transaction; the journal keeps the progress, so an interrupted run goes
 * on where it stopped when started again. */
static const struct option reseal_opts[] = {{"json", no_argument, NULL, 'J'}, {NULL, 0, NULL, 0}};

static int
cmd_reseal(ctx *c, int argc, char **argv)
{
	int o;
	while ((o = getopt_long(argc, argv, "+", reseal_opts, NULL)) != -1) {
		if (o == 'J')
			g_json = 1;
		else
			return bad_option(argv);
	}
	if (optind != argc)
		return fail("usage: hl7q -c FILE reseal [--json]");
	if (!c->have_cfg || !c->cfg.encryption_key_file[0])
		return fail("reseal needs -c FILE whose [journal] encryption_key_file names the keys");
	int rc = audit_now(c, NULL, 0, 0);
	if (rc)
		return rc;
	uint64_t seals;
	long total = 0;
	int done = 0;
	while (!done) {
		long n = hq_journal_reseal(c->j, RESEAL_SLICE, &done);
		if (n == -EINVAL)
			return fail("the keys did not load (see above): nothing sealed");
		if (n < 0)
			return fail("cannot reseal: %s (%ld sealed before; run it again to go on)",
				    hq_strerror((int)n), total);
		total += n;
	}
	/* the access audit's sealed patient ids too, or the old key stays needed */
	uint64_t seq = 0;
	done = 0;
	while (c->audit && !done) {
		long n = hq_audit_reseal(c->audit, RESEAL_SLICE, &seq, &done);
		if (n < 0)
			return fail("cannot reseal the access audit: %s (%ld sealed before; run it again to go on)",
				    hq_strerror((int)n), total);
		total += n;
	}
	int wear = hq_journal_key_wear(c->j, &seals);
	if (g_json) {
		printf("{\"resealed\":%ld,\"done\":true,\"key_seals\":%llu}\n", total,
		       (unsigned long long)seals);
		return 0;
	}
	printf("resealed %ld records, answer excerpts and audit events: everything is sealed under the first key of %s.\n"
	       "Keys below it that no record uses any more can now leave the file.\n",
	       total, c->cfg.encryption_key_file);
	if (wear)
		fprintf(stderr, "hl7q reseal: the first key has sealed %llu values: rotate it soon\n",
			(unsigned long long)seals);
	return 0;
}

/* A monitoring threshold: warn and crit, each optional. */
typedef struct limit {
	uint64_t warn, crit;
	int has_warn, has_crit;
} limit;

static int
level(const limit *l, uint64_t v)
{
	if (l->has_crit && v > l->crit)
		return 2;
	if (l->has_warn && v > l->warn)
		return 1;
	return 0;
}

static void
perf(const char *name, uint64_t v, const char *unit, const limit *l)
{
	printf(" %s=%llu%s;", name, (unsigned long long)v, unit);
	if (l->has_warn)
		printf("%llu", (unsigned long long)l->warn);
	putchar(';');
	if (l->has_crit)
		printf("%llu", (unsigned long long)l->crit);
	printf(";0;");
}

/*
 * check's defaults, for a threshold not given (hl7q(1) CHECK): a metric
 * with either of its thresholds given uses just those.  hl7qd not running
 * (or not answering) is CRITICAL whatever the thresholds.
 */
#define CHECK_WARN_AGE_S (10 * 60)
#define CHECK_CRIT_AGE_S (60 * 60)
#define CHECK_WARN_DEAD 0 /* any dead message */
#define CHECK_WARN_PENDING 10000
#define CHECK_CRIT_PENDING 100000
#define CHECK_WARN_FREE_PCT 20 /* journal free space below this share of max_size */
#define CHECK_CRIT_FREE_PCT 10

/* check's UNKNOWN: the reason on stdout, where Nagios shows it; returns 3. */
static int
unknown(const char *fmt, ...)
{
	char why[sizeof g_err];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap); /* g_err may be an argument */
	va_end(ap);
	snprintf(g_err, sizeof g_err, "%s", why);
	printf("HL7Q UNKNOWN - %s\n", why);
	fprintf(stderr, "hl7q check: %s\n", why);
	return 3;
}

/* What check judges, read from the journal or from the admin endpoint. */
typedef struct figures {
	uint64_t pending, dead, oldest, free, max;
	char worst_age[HQ_TARGET_MAX], worst_dead[HQ_TARGET_MAX];
	uint64_t worst_dead_n, worst_age_s;
	char down[300]; /* why hl7qd counts as down ("" up) */
	int targets;	/* how many were counted */
} figures;

static void
figures_add(figures *f, const char *target, uint64_t pending, uint64_t dead, uint64_t age)
{
	f->pending += pending;
	f->dead += dead;
	if (age > f->oldest || f->targets == 0)
		f->oldest = age > f->oldest ? age : f->oldest;
	if (age >= f->worst_age_s && age > 0) {
		f->worst_age_s = age;
		snprintf(f->worst_age, sizeof f->worst_age, "%s", target);
	}
	if (dead > f->worst_dead_n) {
		f->worst_dead_n = dead;
		snprintf(f->worst_dead, sizeof f->worst_dead, "%s", target);
	}
	f->targets++;
}

static int
figures_from_journal(ctx *c, const char *only, figures *f)
{
	if (c->j == NULL) {
		if (c->journal_dir == NULL)
			return unknown("no journal: give -c FILE (hl7qd's config), -j DIR, or --admin HOST:PORT");
		if (open_journal(c, 0) != 0)
			return unknown("%s", g_err);
	}
	status *s = calloc(1, sizeof *s);
	if (s == NULL)
		return unknown("out of memory");
	if (load_status(c, s, only) != 0) {
		free(s);
		return unknown("%s", g_err);
	}
	uint64_t now = hq_wall_us();
	for (long i = 0; i < s->n; i++)
		figures_add(f, s->t[i].name, s->t[i].pending + s->t[i].retrying + (uint64_t)s->inflight[i],
			    s->t[i].dead, age_s(s->t[i].oldest_pending_us, now));
	f->free = s->u.free;
	f->max = s->u.map_size;
	free(s);
	daemon_info di;
	char dw[100];
	daemon_probe(c, &di);
	if (di.state != DAEMON_UP)
		snprintf(f->down, sizeof f->down, "hl7qd %s", daemon_words(&di, dw, sizeof dw));
	return 0;
}

typedef struct http_buf {
	char *p;
	size_t n;
} http_buf;

static size_t
http_write(char *p, size_t size, size_t nmemb, void *arg)
{
	http_buf *b = arg;
	size_t n = size * nmemb;
	if (b->n + n > (16u << 20))
		return 0; /* an endpoint that never ends */
	char *q = realloc(b->p, b->n + n + 1);
	if (q == NULL)
		return 0;
	memcpy(q + b->n, p, n);
	b->p = q;
	b->n += n;
	b->p[b->n] = 0;
	return n;
}

/*
 * libcurl, loaded only for `check --admin`: linked, every hl7q command
 * would load its thirty-odd libraries first (15-30 ms a start, measured;
 * the lookups hl7q is timed on take 2-5 ms).
 */
typedef struct curl_api {
	void *lib;
	CURLcode (*global_init)(long);
	void (*global_cleanup)(void);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_perform)(CURL *);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	void (*easy_cleanup)(CURL *);
	const char *(*easy_strerror)(CURLcode);
} curl_api;

static curl_api g_curl;

/* Loads libcurl.  Returns 0, or -1 with why in err. */
static int
curl_load(char *err, size_t cap)
{
	if (g_curl.lib)
		return 0;
	void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL) {
		snprintf(err, cap, "cannot load libcurl: %s", dlerror());
		return -1;
	}
	static const struct { const char *name; size_t off; } syms[] = {
		{"curl_global_init", offsetof(curl_api, global_init)},
		{"curl_global_cleanup", offsetof(curl_api, global_cleanup)},
		{"curl_easy_init", offsetof(curl_api, easy_init)},
		{"curl_easy_setopt", offsetof(curl_api, easy_setopt)},
		{"curl_easy_perform", offsetof(curl_api, easy_perform)},
		{"curl_easy_getinfo", offsetof(curl_api, easy_getinfo)},
		{"curl_easy_cleanup", offsetof(curl_api, easy_cleanup)},
		{"curl_easy_strerror", offsetof(curl_api, easy_strerror)},
	};
	for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
		void *f = dlsym(lib, syms[i].name);
		if (f == NULL) {
			snprintf(err, cap, "libcurl lacks %s", syms[i].name);
			dlclose(lib);
			return -1;
		}
		memcpy((char *)&g_curl + syms[i].off, &f, sizeof f);
	}
	g_curl.lib = lib;
	g_curl.global_init(CURL_GLOBAL_DEFAULT);
	return 0;
}

static void
curl_unload(void)
{
	if (g_curl.lib) {
		g_curl.global_cleanup();
		dlclose(g_curl.lib);
		memset(&g_curl, 0, sizeof g_curl);
	}
}

/* GETs http://addr/path.  Returns the HTTP status, or -1 with why in err. */
static long
http_get(const char *addr, const char *path, http_buf *b, char *err, size_t cap)
{
	char url[400];
	if (curl_load(err, cap) != 0)
		return -1;
	snprintf(url, sizeof url, "http://%s%s", addr, path);
	CURL *h = g_curl.easy_init();
	if (h == NULL) {
		snprintf(err, cap, "out of memory");
		return -1;
	}
	char ebuf[CURL_ERROR_SIZE] = "";
	g_curl.easy_setopt(h, CURLOPT_URL, url);
	g_curl.easy_setopt(h, CURLOPT_WRITEFUNCTION, http_write);
	g_curl.easy_setopt(h, CURLOPT_WRITEDATA, b);
	g_curl.easy_setopt(h, CURLOPT_TIMEOUT, 10L);
	g_curl.easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	g_curl.easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
	g_curl.easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
	long status = -1;
	CURLcode rc = g_curl.easy_perform(h);
	if (rc == CURLE_OK)
		g_curl.easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	else
		snprintf(err, cap, "%s", ebuf[0] ? ebuf : g_curl.easy_strerror(rc));
	g_curl.easy_cleanup(h);
	return status;
}

/* The value of metric name{target="T"} lines, target by target, into f. */
static int
figures_from_metrics(const char *text, const char *only, figures *f)
{
	static const char *names[] = {"hl7q_target_pending", "hl7q_target_retrying", "hl7q_target_inflight",
				      "hl7q_target_dead", "hl7q_target_oldest_pending_age_seconds"};
	struct { char name[HQ_TARGET_MAX]; double v[5]; } t[MAX_TARGETS];
	int nt = 0, have_free = 0;
	double fr = 0, mx = 0;
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (*l == '#')
			continue;
		if (sscanf(l, "hl7q_journal_free_bytes %lf", &fr) == 1) {
			have_free = 1;
			continue;
		}
		if (sscanf(l, "hl7q_journal_max_bytes %lf", &mx) == 1)
			continue;
		for (int k = 0; k < 5; k++) {
			size_t nl = strlen(names[k]);
			char name[HQ_TARGET_MAX];
			double v;
			if (strncmp(l, names[k], nl) != 0 || strncmp(l + nl, "{target=\"", 9) != 0 ||
			    sscanf(l + nl + 9, "%63[^\"]\"} %lf", name, &v) != 2)
				continue;
			int i = 0;
			while (i < nt && strcmp(t[i].name, name) != 0)
				i++;
			if (i == nt && nt < MAX_TARGETS) {
				memset(&t[nt], 0, sizeof t[nt]);
				snprintf(t[nt].name, sizeof t[nt].name, "%s", name);
				nt++;
			}
			if (i < nt)
				t[i].v[k] = v;
		}
	}
	if (!have_free)
		return unknown("the admin endpoint's /metrics has no hl7q_journal_free_bytes: is it hl7qd's?");
	for (int i = 0; i < nt; i++)
		if (only == NULL || strcmp(only, t[i].name) == 0)
			figures_add(f, t[i].name, (uint64_t)(t[i].v[0] + t[i].v[1] + t[i].v[2]),
				    (uint64_t)t[i].v[3], (uint64_t)t[i].v[4]);
	if (only && f->targets == 0)
		return unknown("no target '%s' in the admin endpoint's /metrics", only);
	f->free = (uint64_t)fr;
	f->max = (uint64_t)mx;
	return 0;
}

static int
figures_from_admin(const char *addr, const char *only, figures *f)
{
	char err[CURL_ERROR_SIZE + 64];
	http_buf b = {0};
	long st = http_get(addr, "/healthz", &b, err, sizeof err);
	int rc = 0;
	if (st < 0) {
		snprintf(f->down, sizeof f->down, "hl7qd not answering on %s (%s)", addr, err);
	} else if (st != 200) {
		json_t *o = b.p ? json_loads(b.p, 0, NULL) : NULL;
		char *reasons = o ? json_dumps(json_object_get(o, "reasons"), JSON_COMPACT) : NULL;
		snprintf(f->down, sizeof f->down, "hl7qd unhealthy (/healthz HTTP %ld%s%s)", st,
			 reasons ? ": " : "", reasons ? reasons : "");
		free(reasons);
		json_decref(o);
	}
	free(b.p);
	b = (http_buf){0};
	if (st >= 0) {
		long ms = http_get(addr, "/metrics", &b, err, sizeof err);
		if (ms != 200)
			rc = ms < 0 ? unknown("GET http://%s/metrics: %s", addr, err)
				    : unknown("GET http://%s/metrics: HTTP %ld", addr, ms);
		else
			rc = figures_from_metrics(b.p ? b.p : "", only, f);
	}
	free(b.p);
	curl_unload();
	return rc;
}

/*
 * check --silent: the listeners with expect_within that are silent now,
 * named in text (" silent: adt 912 s") and as JSON strings in json.  The
 * last messages are read back from the journal as the daemon does at
 * start, or the running daemon's (its status file) when later.  Returns 0 OK,
 * 2 CRITICAL (one is silent) or 3 UNKNOWN (no config, journal unreadable).
 */
static int
check_silent(ctx *c, char *text, size_t cap, char *json, size_t jcap, int *nsilent)
{
	int n = c->have_cfg ? c->cfg.nlisteners : 0, daemon = 0;
	*nsilent = 0;
	snprintf(json, jcap, "[");
	if (!c->have_cfg) {
		snprintf(text, cap, ", --silent needs -c FILE (expect_within is in the config)");
		return 3;
	}
	const char **names = calloc((size_t)n, sizeof *names);
	uint64_t *last = calloc((size_t)n, sizeof *last), *seen = calloc((size_t)n, sizeof *seen), oldest = 0;
	if (names == NULL || last == NULL || seen == NULL) {
		free(names);
		free(last);
		free(seen);
		snprintf(text, cap, ", out of memory");
		return 3;
	}
	for (int i = 0; i < n; i++)
		names[i] = c->cfg.listeners[i].name;
	int rc = c->j ? 0 : open_journal(c, 0) != 0 ? HQ_ENOTFOUND : 0;
	if (rc != 0) {
		snprintf(text, cap, ", cannot open the journal: %s", g_err);
		free(names);
		free(last);
		free(seen);
		return 3;
	}
	rc = hq_feeds_last_seen(c->j, names, n, HQ_FEEDS_SCAN, last, &oldest);
	if (rc != 0) {
		snprintf(text, cap, ", cannot read the journal: %s", hq_strerror(rc));
		free(names);
		free(last);
		free(seen);
		return 3;
	}
	/* the running daemon's own figure (its status file, a second old at
	 * most) covers listeners the journal has no message of */
	char path[1100], line[256], name[80];
	long pid = 0;
	unsigned long long us;
	snprintf(path, sizeof path, "%s/hl7qd.status", c->journal_dir);
	FILE *fp = fopen(path, "r");
	while (fp && fgets(line, sizeof line, fp)) {
		sscanf(line, "pid %ld", &pid);
		for (int i = 0; i < n; i++)
			if (sscanf(line, "last_message %79s %llu", name, &us) == 2 && strcmp(name, names[i]) == 0)
				seen[i] = us;
	}
	if (fp)
		fclose(fp);
	if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
		daemon = 1; /* else a stale file of a daemon that is gone */
	for (int i = 0; i < n; i++) {
		if (daemon && seen[i] > last[i])
			last[i] = seen[i];
		if (last[i] == 0)
			last[i] = oldest; /* silent since at least then; 0: never, in the whole journal */
	}
	free(seen);
	uint64_t now = hq_wall_us(), quiet;
	size_t off = 0;
	text[0] = 0;
	for (int i = 0; i < n; i++) {
		const hq_listener_conf *l = &c->cfg.listeners[i];
		if (!hq_silence_eval(last[i], now, l->expect_within_ms, l->expect_from_min,
				     l->expect_to_min, &quiet))
			continue;
		if (last[i])
			off += (size_t)snprintf(text + off, off < cap ? cap - off : 0, "%s%s %llu s",
						*nsilent ? ", " : ", silent: ", l->name,
						(unsigned long long)(quiet / 1000000));
		else
			off += (size_t)snprintf(text + off, off < cap ? cap - off : 0, "%s%s never heard",
						*nsilent ? ", " : ", silent: ", l->name);
		size_t jn = strlen(json);
		snprintf(json + jn, jcap - jn, "%s\"%s\"", *nsilent ? "," : "", l->name);
		(*nsilent)++;
	}
	size_t jn = strlen(json);
	snprintf(json + jn, jcap - jn, "]");
	free(names);
	free(last);
	return *nsilent ? 2 : 0;
}

static const struct option check_opts[] = {
	{"max-age", required_argument, NULL, 'a'},     {"max-dead", required_argument, NULL, 'd'},
	{"max-pending", required_argument, NULL, 'p'}, {"warn-age", required_argument, NULL, 'A'},
	{"warn-dead", required_argument, NULL, 'D'},   {"warn-pending", required_argument, NULL, 'P'},
	{"target", required_argument, NULL, 't'},      {"admin", required_argument, NULL, 'H'},
	{"json", no_argument, NULL, 'J'},	       {"silent", no_argument, NULL, 's'},
	{NULL, 0, NULL, 0}};

static int
cmd_check(ctx *c, int argc, char **argv)
{
	const struct option *opts = check_opts;
	limit age = {0}, dead = {0}, pending = {0};
	const char *only = NULL, *admin = NULL;
	int o, silent = 0;
	while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		uint64_t v = 0, ms;
		int bad = 0;
		if (o == 'a' || o == 'A')
			bad = hq_parse_duration(optarg, &ms) != 0, v = ms / 1000;
		else if (o == 'd' || o == 'D' || o == 'p' || o == 'P')
			bad = parse_count(optarg, &v) != 0;
		if (bad)
			return unknown("bad threshold '%s' (ages take 30s, 15m, 2h; counts a number)", optarg);
		switch (o) {
		case 'a': age.crit = v; age.has_crit = 1; break;
		case 'A': age.warn = v; age.has_warn = 1; break;
		case 'd': dead.crit = v; dead.has_crit = 1; break;
		case 'D': dead.warn = v; dead.has_warn = 1; break;
		case 'p': pending.crit = v; pending.has_crit = 1; break;
		case 'P': pending.warn = v; pending.has_warn = 1; break;
		case 't': only = optarg; break;
		case 'H': admin = optarg; break;
		case 's': silent = 1; break;
		case 'J': g_json = 1; break;
		default:
			return unknown("option '%s' is unknown or lacks its value (see hl7q help check)", argv[optind - 1]);
		}
	}
	if (optind != argc)
		return unknown("unexpected argument '%s'", argv[optind]);
	/* The defaults, for a metric given no threshold at all. */
	if (!age.has_warn && !age.has_crit)
		age = (limit){CHECK_WARN_AGE_S, CHECK_CRIT_AGE_S, 1, 1};
	if (!dead.has_warn && !dead.has_crit)
		dead = (limit){CHECK_WARN_DEAD, 0, 1, 0};
	if (!pending.has_warn && !pending.has_crit)
		pending = (limit){CHECK_WARN_PENDING, CHECK_CRIT_PENDING, 1, 1};
	figures f;
	memset(&f, 0, sizeof f);
	int rc = admin ? figures_from_admin(admin, only, &f) : figures_from_journal(c, only, &f);
	if (rc)
		return rc;
	int la = level(&age, f.oldest), ld = level(&dead, f.dead), lp = level(&pending, f.pending);
	int lf = 0;
	if (f.max && f.free * 100 < f.max * CHECK_CRIT_FREE_PCT)
		lf = 2;
	else if (f.max && f.free * 100 < f.max * CHECK_WARN_FREE_PCT)
		lf = 1;
	int worst = la > ld ? la : ld;
	worst = worst > lp ? worst : lp;
	worst = worst > lf ? worst : lf;
	if (f.down[0])
		worst = 2;
	/* --silent: feeds with expect_within that went quiet (CRITICAL) */
	char stext[1024] = "", sjson[1024] = "";
	int nsilent = 0, lsil = silent ? check_silent(c, stext, sizeof stext, sjson, sizeof sjson, &nsilent) : 0;
	worst = worst > lsil ? worst : lsil;
	static const char *names[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};
	if (g_json) { /* the same verdict for scripts; the exit status is the plugin's */
		printf("{\"status\":\"%s\",\"pending\":%llu,\"dead\":%llu,\"oldest_pending_age_s\":%llu,"
		       "\"journal_free_bytes\":%llu,\"hl7qd_running\":%s", names[worst], (unsigned long long)f.pending,
		       (unsigned long long)f.dead, (unsigned long long)f.oldest, (unsigned long long)f.free,
		       f.down[0] ? "false" : "true");
		if (silent)
			printf(",\"silent\":%s", sjson);
		if (f.down[0]) {
			json_t *d = json_string(f.down);
			char *ds = json_dumps(d, JSON_ENCODE_ANY);
			printf(",\"down\":%s", ds);
			free(ds);
			json_decref(d);
		}
		printf("}\n");
		return worst;
	}
	printf("HL7Q %s - ", names[worst]);
	if (f.down[0])
		printf("%s; ", f.down);
	printf("%llu pending, %llu dead, oldest pending %llu s", (unsigned long long)f.pending,
	       (unsigned long long)f.dead, (unsigned long long)f.oldest);
	if (la && f.worst_age[0])
		printf(" (target %s)", f.worst_age);
	if (ld && f.worst_dead[0])
		printf(" (most dead: %s)", f.worst_dead);
	if (lf)
		printf(", journal %.0f%% free", f.max ? 100.0 * (double)f.free / (double)f.max : 0.0);
	printf("%s |", stext);
	perf("pending", f.pending, "", &pending);
	perf("dead", f.dead, "", &dead);
	perf("oldest_pending_age", f.oldest, "s", &age);
	printf(" journal_free=%lluB;;;0;%llu", (unsigned long long)f.free, (unsigned long long)f.max);
	if (silent)
		printf(" silent=%d;;1;0;", nsilent);
	printf("\n");
	return worst;
}

/* --- audit ------------------------------------------------------------------ */

static int
audit_row(void *arg, const hq_audit_event *ev)
{
	int *rows = arg;
	char t[40];
	if (g_json) {
		json_t *o = json_pack("{s:I, s:s, s:I, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:I}", "seq",
				      (json_int_t)ev->seq, "time", fmt_time(ev->at_us, t, sizeof t), "uid",
				      (json_int_t)ev->uid, "user", ev->user, "sudo_user", ev->sudo_user, "host",
				      ev->host, "pid", (json_int_t)ev->pid, "program", ev->program, "command",
				      ev->command, "filter", ev->filter, "detail", ev->detail, "count",
				      (json_int_t)ev->count);
		json_t *ids = json_array();
		for (size_t i = 0; i < ev->nids; i++)
			json_array_append_new(ids, json_integer((json_int_t)ev->ids[i]));
		json_object_set_new(o, "ids", ids);
		if (ev->patient_sealed)
			json_object_set_new(o, "patient", json_string("(sealed)"));
		else if (ev->patient[0])
			json_object_set_new(o, "patient", json_string(ev->patient));
		char *line = json_dumps(o, JSON_COMPACT);
		puts(line);
		free(line);
		json_decref(o);
		return ferror(stdout) != 0;
	}
	if ((*rows)++ == 0)
		printf("%-6s %-24s %-18s %-12s %-13s %-16s %6s  %s\n", "SEQ", "TIME", "USER", "HOST", "COMMAND",
		       "IDS", "COUNT", "FILTER / DETAIL");
	char user[160], idl[64] = "-";
	if (ev->sudo_user[0])
		snprintf(user, sizeof user, "%s(sudo:%s)", ev->user, ev->sudo_user);
	else
		snprintf(user, sizeof user, "%s", ev->user);
	size_t n = 0;
	for (size_t i = 0; i < ev->nids && n < 40; i++)
		n += (size_t)snprintf(idl + n, sizeof idl - n, "%s%llu", i ? "," : "", (unsigned long long)ev->ids[i]);
	if (ev->nids && n >= 40)
		snprintf(idl + 36, sizeof idl - 36, ",...");
	char cmd[64];
	snprintf(cmd, sizeof cmd, "%s%s%s", strcmp(ev->program, "hl7q") ? ev->program : "",
		 strcmp(ev->program, "hl7q") ? " " : "", ev->command);
	printf("%-6llu %-24s %-18s %-12s %-13s %-16s %6llu  %s%s%s%s%s%s\n", (unsigned long long)ev->seq,
	       fmt_time(ev->at_us, t, sizeof t), user, ev->host, cmd, idl, (unsigned long long)ev->count,
	       ev->filter, ev->filter[0] && ev->detail[0] ? " " : "", ev->detail,
	       ev->patient[0] || ev->patient_sealed ? " patient=" : "",
	       ev->patient_sealed ? "(sealed)" : ev->patient, "");
	return ferror(stdout) != 0;
}

static const struct option audit_opts[] = {
	{"since", required_argument, NULL, 'S'}, {"until", required_argument, NULL, 'U'},
	{"user", required_argument, NULL, 'u'},	 {"id", required_argument, NULL, 'i'},
	{"before", required_argument, NULL, 'b'}, {"json", no_argument, NULL, 'J'},
	{NULL, 0, NULL, 0}};

static int
cmd_audit(ctx *c, int argc, char **argv)
{
	hq_audit_query q;
	uint64_t before = 0;
	int o, rows = 0, has_before = 0;
	memset(&q, 0, sizeof q);
	while ((o = getopt_long(argc, argv, "+", audit_opts, NULL)) != -1) {
		switch (o) {
		case 'S': if (parse_time(optarg, &q.since_us)) return fail("--since '%s' is not a time (RFC 3339, or a duration back like 15m)", optarg); break;
		case 'U': if (parse_time(optarg, &q.until_us)) return fail("--until '%s' is not a time (RFC 3339, or a duration back like 15m)", optarg); break;
		case 'b': if (parse_time(optarg, &before)) return fail("--before '%s' is not a time (RFC 3339, or a duration back like 400d)", optarg); has_before = 1; break;
		case 'u': q.user = optarg; break;
		case 'i': if (parse_id(optarg, &q.id)) return fail("--id '%s' is not a message id (a positive number)", optarg); break;
		case 'J': g_json = 1; break;
		default: return bad_option(argv);
		}
	}
	int purge = optind < argc && strcmp(argv[optind], "purge") == 0;
	if (optind + purge != argc)
		return fail("unexpected argument '%s' (hl7q audit [filters], or hl7q audit purge --before TIME)",
			    argv[optind + purge]);
	if (purge) {
		if (!has_before)
			return fail("purge what? hl7q audit purge --before TIME");
		if (q.since_us || q.until_us || q.user || q.id)
			return fail("audit purge takes --before TIME only");
		snprintf(c->ev.command, sizeof c->ev.command, "audit purge");
		char t[40];
		snprintf(c->ev.detail, sizeof c->ev.detail, "before=%s", fmt_time(before, t, sizeof t));
		int rc = audit_now(c, NULL, 0, 0);
		if (rc)
			return rc;
		long n = hq_audit_purge_before(c->audit, before, c->ev.seq);
		if (n < 0)
			return fail("cannot purge audit events: %s", hq_strerror((int)n));
		if (g_json)
			printf("{\"purged_events\":%ld,\"before\":\"%s\"}\n", n, fmt_time(before, t, sizeof t));
		else
			printf("purged %ld audit event%s recorded before %s (this purge is event %llu)\n", n,
			       n == 1 ? "" : "s", fmt_time(before, t, sizeof t), (unsigned long long)c->ev.seq);
		return 0;
	}
	if (has_before)
		return fail("--before goes with hl7q audit purge");
	if (q.since_us && q.until_us && q.since_us >= q.until_us)
		return fail("--since is not before --until: the range is empty");
	int rc = audit_now(c, q.id ? &q.id : NULL, q.id ? 1 : 0, 0);
	if (rc)
		return rc;
	long n = hq_audit_list(c->audit, &q, audit_row, &rows);
	if (n < 0)
		return fail("cannot read the audit trail: %s", hq_strerror((int)n));
	if (!g_json && n == 0)
		fprintf(stderr, "no audit events match\n");
	return 0;
}

/* --- main ------------------------------------------------------------------ */

enum { J_READ, J_WRITE, J_LAZY }; /* J_WRITE: it changes the journal or records an audit event */

/* The commands: name, body, options (the table the body reads too),
 * journal access, synopsis and help. */
typedef struct cmd_def {
	const char *name;
	int (*fn)(ctx *, int, char **);
	const struct option *opts;
	const char *shortopts;
	int journal;
	const char *synopsis;
	const char *help;
} cmd_def;

static const cmd_def CMDS[] = {
	{"status", cmd_status, status_opts, "t:", J_READ, "status [--target T]",
	 "Per target: pending, retrying, in flight, dead, delivered, the oldest pending\n"
	 "age and the last success and error; the journal's space; whether hl7qd runs."},
	{"ls", cmd_ls, ls_opts, "", J_WRITE,
	 "ls [--state S] [--target T] [--type PATTERN] [--listener L] [--sender APP]\n"
	 "   [--control-id X] [--patient ID] [--since TIME] [--until TIME] [--limit N]",
	 "Lists messages (audited).  --state: pending (waiting, retrying or in flight,\n"
	 "as status and check count it), retry, dead, delivered, rejected, duplicate,\n"
	 "unrouted.  --type takes the config's patterns: ADT, ADT^*, ADT^A01, *.\n"
	 "--sender is MSH-3.  A target or listener that does not exist is an error."},
	{"show", cmd_show, show_opts, "", J_WRITE, "show ID [--raw | --json | --fhir [--target T]]",
	 "A message's story: metadata, the ACK sent, every delivery and attempt\n"
	 "(audited).  --raw prints the bytes exactly as received; --fhir the FHIR\n"
	 "Bundle a format = fhir target (named with --target when several) gets."},
	{"replay", cmd_replay, replay_opts, "", J_WRITE,
	 "replay ID... | --dead [--target T] | --target T --since TIME [--until TIME] [--missing]\n"
	 "       [--dry-run]",
	 "Queues messages for delivery again (audited).  A range replay for a target\n"
	 "says which of its messages the target never had; --missing sends only those."},
	{"purge", cmd_purge, purge_opts, "", J_WRITE,
	 "purge --dead [--target T] | --rejected | --delivered-before TIME | ID... [--force]  [--dry-run]",
	 "Deletes messages from the journal (audited); never audit events.  An id that\n"
	 "some target has not had (pending, retrying or dead) needs --force."},
	{"compact", cmd_compact, compact_opts, "", J_WRITE, "compact DIR",
	 "Writes a compacted copy of the journal into DIR, a new or empty directory\n"
	 "(audited, mode 0600).  Refused while hl7qd runs: stop it, compact, swap the\n"
	 "copy in, start it (hl7q(1))."},
	{"reseal", cmd_reseal, reseal_opts, "", J_WRITE, "reseal",
	 "Seals every record, answer excerpt and audit patient id not yet sealed under\nthe first key of "
	 "encryption_key_file (needs -c), a slice per write transaction, beside a\n"
	 "running hl7qd; interrupted, run it again and it goes on (audited)."},
	{"audit", cmd_audit, audit_opts, "", J_WRITE,
	 "audit [--since TIME] [--until TIME] [--user U] [--id ID] | audit purge --before TIME",
	 "The access audit trail: who (uid, name, sudo user, host) ran which command\n"
	 "with which filter on which message ids, and hl7qd's start, stop, reload and\n"
	 "key events.  --user matches the login or the sudo user.  Viewing the trail\n"
	 "is itself recorded.  `audit purge --before TIME` is the only way events go,\n"
	 "and leaves an event of its own."},
	{"check", cmd_check, check_opts, "", J_LAZY,
	 "check [--max-age DUR] [--max-dead N] [--max-pending N] [--warn-age DUR]\n"
	 "      [--warn-dead N] [--warn-pending N] [--target T] [--admin HOST:PORT] [--silent]",
	 "Monitoring plugin: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; one line on\n"
	 "stdout with perfdata.  CRITICAL when hl7qd is not running.  A metric given no\n"
	 "threshold uses the defaults: oldest pending age WARNING > 10m, CRITICAL > 1h;\n"
	 "dead WARNING > 0; pending WARNING > 10000, CRITICAL > 100000; journal free\n"
	 "space WARNING < 20%, CRITICAL < 10%.  --admin reads hl7qd's /healthz and\n"
	 "/metrics instead of the journal (no journal access needed).  --silent (needs\n"
	 "-c) adds the listeners' expect_within: CRITICAL when a feed is silent."},
};
#define NCMDS (sizeof CMDS / sizeof CMDS[0])

static const cmd_def *
find_cmd(const char *name)
{
	for (size_t k = 0; k < NCMDS; k++)
		if (strcmp(CMDS[k].name, name) == 0)
			return &CMDS[k];
	return NULL;
}

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: hl7q COMMAND [options] (-c FILE | -j DIR)\n"
		    "  -c, --config FILE   hl7qd's configuration (the journal path is read from it)\n"
		    "  -j, --journal DIR   the journal directory\n"
		    "      --json          JSON lines instead of tables\n"
		    "  -h, --help          this; hl7q help COMMAND or hl7q COMMAND --help for one\n"
		    "Options go anywhere on the line.  Commands:\n");
	for (size_t k = 0; k < NCMDS; k++)
		fprintf(fp, "  %s\n", CMDS[k].synopsis);
	fprintf(fp, "TIME: RFC 3339 (2026-11-26T10:00:00Z) or a duration back from now (15m, 2d).\n"
		    "See hl7q(1).\n");
}

static void
cmd_help(const cmd_def *cmd)
{
	printf("usage: hl7q %s\n       (-c FILE | -j DIR) [--json] anywhere\n\n%s\n\nSee hl7q(1).\n",
	       cmd->synopsis, cmd->help);
}

enum { OPT_CONFIG = 0x100, OPT_JOURNAL, OPT_HELP };
static char END_OF_OPTIONS[] = "--"; /* ends the options gather() hands on (tokens before it are malloc'd) */

/*
 * Reads the command's argv GNU style: its own options (cmd->opts) and the
 * global ones anywhere.  Globals go into c and *help; the command's
 * options come back in *out as "--name[=value]", then "--", then its
 * operands in order, for the command's own getopt.  Also writes the
 * audit event's PHI-free filter (a --patient value goes to ev.patient).
 * Returns 0, or 1 after saying why.
 */
static int
gather(const cmd_def *cmd, int argc, char **argv, ctx *c, int *help, char ***out, int *outc)
{
	struct option all[64];
	size_t n = 0;
	for (; cmd->opts[n].name && n < 60; n++)
		all[n] = cmd->opts[n];
	all[n++] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
	all[n++] = (struct option){"journal", required_argument, NULL, OPT_JOURNAL};
	all[n++] = (struct option){"help", no_argument, NULL, OPT_HELP};
	all[n] = (struct option){NULL, 0, NULL, 0};
	char shorts[64];
	snprintf(shorts, sizeof shorts, "-c:j:h%s", cmd->shortopts);
	char **opts = calloc((size_t)argc * 2 + 2, sizeof *opts), **pos = calloc((size_t)argc + 1, sizeof *pos);
	int no = 0, np = 0, o, li;
	int rc = 0;
	if (opts == NULL || pos == NULL) {
		free(opts);
		free(pos);
		return fail("out of memory");
	}
	opts[no++] = argv[0];
	optind = 0;
	opterr = 0;
	size_t fl = 0;
	while ((o = getopt_long(argc, argv, shorts, all, &li)) != -1) {
		if (o == 1) {
			pos[np++] = optarg;
			continue;
		}
		if (o == '?' || o == ':')
			{ rc = fail("option '%s' is unknown or lacks its value (see hl7q help %s)",
				    argv[optind - 1], cmd->name); goto out; }
		if (o == OPT_CONFIG || o == 'c') {
			c->config_file = optarg;
			continue;
		}
		if (o == OPT_JOURNAL || o == 'j') {
			c->journal_dir = optarg;
			continue;
		}
		if (o == OPT_HELP || o == 'h') {
			*help = 1;
			continue;
		}
		const struct option *def = NULL;
		for (size_t k = 0; k < n && def == NULL; k++)
			if (all[k].val == o)
				def = &all[k];
		if (def == NULL)
			{ rc = fail("option '%s' is unknown (see hl7q help %s)", argv[optind - 1], cmd->name); goto out; }
		char *tok;
		if (def->has_arg != no_argument && optarg) {
			if (asprintf(&tok, "--%s=%s", def->name, optarg) < 0)
				{ rc = fail("out of memory"); goto out; }
		} else if (asprintf(&tok, "--%s", def->name) < 0) {
			{ rc = fail("out of memory"); goto out; }
		}
		opts[no++] = tok;
		/* the audit event's filter: options as given, without --json, a patient id apart */
		if (strcmp(def->name, "json") == 0)
			continue;
		const char *shown = tok;
		if (strcmp(def->name, "patient") == 0) {
			snprintf(c->ev.patient, sizeof c->ev.patient, "%s", optarg);
			shown = "--patient=(patient)";
		}
		if (fl < sizeof c->ev.filter)
			fl += (size_t)snprintf(c->ev.filter + fl, sizeof c->ev.filter - fl, "%s%s", fl ? " " : "", shown);
	}
	while (optind < argc) /* operands after a "--" of the user's */
		pos[np++] = argv[optind++];
	opts[no++] = END_OF_OPTIONS;
	for (int i = 0; i < np; i++) {
		opts[no++] = pos[i];
		if (fl < sizeof c->ev.filter && strcmp(cmd->name, "audit") != 0)
			fl += (size_t)snprintf(c->ev.filter + fl, sizeof c->ev.filter - fl, "%s%s", fl ? " " : "", pos[i]);
	}
	opts[no] = NULL;
	free(pos);
	*out = opts;
	*outc = no;
	return 0;
out:
	for (int i = 1; i < no; i++)
		free(opts[i]);
	free(opts);
	free(pos);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"journal", required_argument, NULL, 'j'},
		{"json", no_argument, NULL, 'J'},	  {"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},	  {NULL, 0, NULL, 0}};
	ctx c;
	int o, help = 0;
	memset(&c, 0, sizeof c);
	opterr = 0;
	while ((o = getopt_long(argc, argv, "+c:j:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': c.config_file = optarg; break;
		case 'j': c.journal_dir = optarg; break;
		case 'J': g_json = 1; break;
		case 'h': help = 1; break;
		case 'V': printf("hl7q %s\n", HQ_VERSION); return 0;
		default:
			fprintf(stderr, "hl7q: option '%s' is unknown or lacks its value (see hl7q --help)\n",
				argv[optind - 1]);
			return 1;
		}
	}
	if (optind == argc && help) {
		usage(stdout);
		return 0;
	}
	if (optind == argc) {
		fprintf(stderr, "hl7q: which command? (status, ls, show, replay, purge, compact, reseal, audit, check; hl7q --help)\n");
		return 1;
	}
	if (strcmp(argv[optind], "help") == 0) {
		if (optind + 1 == argc) {
			usage(stdout);
			return 0;
		}
		const cmd_def *cmd = find_cmd(argv[optind + 1]);
		if (cmd == NULL) {
			fprintf(stderr, "hl7q help: no command '%s' (status, ls, show, replay, purge, compact, reseal, audit, check)\n",
				argv[optind + 1]);
			return 1;
		}
		cmd_help(cmd);
		return 0;
	}
	const cmd_def *cmd = find_cmd(argv[optind]);
	if (cmd == NULL) {
		fprintf(stderr, "hl7q: unknown command '%s' (status, ls, show, replay, purge, compact, reseal, audit, check)\n",
			argv[optind]);
		return 1;
	}
	g_cmd = cmd->name;
	int is_check = cmd->fn == cmd_check;
	hq_audit_event_init(&c.ev, "hl7q", cmd->name);
	char **sub_argv = NULL;
	int sub_argc = 0;
	if (gather(cmd, argc - optind, argv + optind, &c, &help, &sub_argv, &sub_argc) != 0)
		return is_check ? (printf("HL7Q UNKNOWN - %s\n", g_err), 3) : 1;
	int rc = 0;
	if (help)
		cmd_help(cmd);
	if (!help && c.config_file && c.journal_dir)
		rc = fail("-c and -j conflict: give one");
	if (!help && rc == 0 && c.config_file) {
		if (hq_config_load(c.config_file, &c.cfg) != 0) {
			snprintf(g_err, sizeof g_err, "%s", c.cfg.err);
			fprintf(stderr, "%s\n", c.cfg.err);
			hq_config_free(&c.cfg);
			rc = 1;
		} else {
			c.have_cfg = 1;
			c.journal_dir = c.cfg.journal_path;
		}
	} else if (!help && rc == 0 && c.journal_dir == NULL && cmd->journal != J_LAZY) {
		rc = fail("no journal: give -c FILE (hl7qd's config) or -j DIR");
	}
	if (!help && rc == 0 && cmd->journal != J_LAZY) {
		rc = open_journal(&c, cmd->journal == J_WRITE);
		if (rc == 0 && cmd->journal == J_WRITE) {
			int arc = hq_audit_open(c.j, &c.audit);
			if (arc != 0)
				rc = fail("cannot open the journal's audit store: %s; hl7q %s refuses to run without it",
					  hq_strerror(arc), g_cmd), rc = 2;
		}
	}
	if (rc != 0 && is_check) {
		printf("HL7Q UNKNOWN - %s\n", g_err);
		rc = 3;
	}
	if (!help && rc == 0) {
		optind = 0; /* getopt again, on the command's options then "--" and its operands */
		rc = cmd->fn(&c, sub_argc, sub_argv);
	}
	if (!help && cmd->journal == J_WRITE && rc == 0 && !c.audited)
		rc = fail("internal error: no access audit event was recorded");
	hq_audit_close(c.audit);
	if (c.j)
		hq_journal_close(c.j);
	if (c.have_cfg)
		hq_config_free(&c.cfg);
	for (int i = 1; i < sub_argc && sub_argv[i] != END_OF_OPTIONS; i++)
		free(sub_argv[i]);
	free(sub_argv);
	if (fflush(stdout) != 0 && rc == 0)
		rc = fail("cannot write: %s", strerror(errno));
	return rc;
}
