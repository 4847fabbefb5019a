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
 * Exit codes: 0 done; 1 usage or input error (one line on stderr); 2 the
 * journal cannot be opened.  `check` follows the monitoring-plugin
 * contract instead: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
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
#include "queue/journal.h"

#ifndef HQ_VERSION
#define HQ_VERSION "0.1.0"
#endif

#define MAX_TARGETS 256
#define ID_CHUNK 5000 /* ids per write transaction */

static int g_json;
static const char *g_cmd = "hl7q";

/* Prints "hl7q CMD: reason" on stderr; returns 1 (usage/input error). */
static int
fail(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "hl7q %s: ", g_cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
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
} ctx;

/* Opens the journal (read-only unless write).  Returns 0 or 2 (message printed). */
static int
open_journal(ctx *c, int write)
{
	char path[1100];
	struct stat st;
	snprintf(path, sizeof path, "%s/data.mdb", c->journal_dir);
	if (stat(path, &st) != 0) {
		fprintf(stderr, "hl7q %s: cannot open journal %s: %s\n", g_cmd, c->journal_dir,
			strerror(errno));
		return 2;
	}
	int rc = hq_journal_open(c->journal_dir, 0, !write, &c->j);
	if (rc != 0) {
		fprintf(stderr, "hl7q %s: cannot open journal %s: %s\n", g_cmd, c->journal_dir,
			hq_strerror(rc));
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
		s->inflight[k] = inf;
		s->t[k].pending = (uint64_t)inf < queued ? queued - (uint64_t)inf : 0;
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

static int
cmd_status(ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"target", required_argument, NULL, 't'}, {"json", no_argument, NULL, 'J'}, {NULL, 0, NULL, 0}};
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
	char t1[40], t2[40];
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
			json_t *o = json_pack("{s:{s:I, s:I, s:I, s:I}}", "journal", "size_bytes",
					      (json_int_t)s->u.file_size, "used_bytes", (json_int_t)s->u.used,
					      "free_bytes", (json_int_t)s->u.free, "max_bytes",
					      (json_int_t)s->u.map_size);
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
			      r->locked ? json_null() : jfield(r, HQ_F_PATIENT_ID), "ack", r->ack, "state",
			      msg_state_name(r->state));
	json_object_set_new(o, "targets", targets_json(d, nd));
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
	       r->ack[0] ? r->ack : "-", tg);
	return ferror(stdout) != 0;
}

/* Reads the filters shared by ls, replay and purge.  Returns 0, or 1 after
 * printing why.  *extra gets the first unknown option for the caller. */
static int
parse_state(const char *s, int *state)
{
	static const struct { const char *name; int v; } names[] = {
		{"pending", HQ_DLV_PENDING}, {"retry", HQ_DLV_RETRY}, {"retrying", HQ_DLV_RETRY},
		{"dead", HQ_DLV_DEAD}, {"delivered", HQ_DLV_DELIVERED}, {"rejected", HQ_STATE_REJECTED}};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(s, names[i].name) == 0) {
			*state = names[i].v;
			return 0;
		}
	return fail("--state '%s': expected pending, retry, dead, delivered or rejected", s);
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

static int
cmd_ls(ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"state", required_argument, NULL, 's'},      {"target", required_argument, NULL, 't'},
		{"type", required_argument, NULL, 'y'},       {"control-id", required_argument, NULL, 'i'},
		{"patient", required_argument, NULL, 'p'},    {"since", required_argument, NULL, 'S'},
		{"until", required_argument, NULL, 'U'},      {"limit", required_argument, NULL, 'n'},
		{"json", no_argument, NULL, 'J'},	      {NULL, 0, NULL, 0}};
	hq_query q;
	int o, rows = 0;
	memset(&q, 0, sizeof q);
	while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (o) {
		case 's': if (parse_state(optarg, &q.state)) return 1; break;
		case 't': q.target = optarg; break;
		case 'y': q.type = (hq_str){optarg, strlen(optarg)}; break;
		case 'i': q.control_id = (hq_str){optarg, strlen(optarg)}; break;
		case 'p': q.patient = (hq_str){optarg, strlen(optarg)}; break;
		case 'S': if (parse_time(optarg, &q.since_us)) return fail("--since '%s' is not a time (RFC 3339, or a duration back like 15m)", optarg); break;
		case 'U': if (parse_time(optarg, &q.until_us)) return fail("--until '%s' is not a time (RFC 3339, or a duration back like 15m)", optarg); break;
		case 'n': if (parse_count(optarg, &q.limit) || q.limit == 0) return fail("--limit '%s' is not a positive number", optarg); break;
		case 'J': g_json = 1; break;
		default: return bad_option(argv);
		}
	}
	if (optind != argc)
		return fail("unexpected argument '%s'", argv[optind]);
	if (check_range(&q))
		return 1;
	long n = hq_journal_query(c->j, &q, ls_row, &rows);
	if (n < 0)
		return fail("cannot read the journal: %s", hq_strerror((int)n));
	if (!g_json && n == 0)
		fprintf(stderr, "no messages match\n");
	return 0;
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

static int
cmd_show(ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"raw", no_argument, NULL, 'r'}, {"json", no_argument, NULL, 'J'}, {NULL, 0, NULL, 0}};
	int o, raw = 0;
	while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (o == 'r')
			raw = 1;
		else if (o == 'J')
			g_json = 1;
		else
			return bad_option(argv);
	}
	if (optind + 1 != argc)
		return fail(optind == argc ? "which message? (hl7q show ID)" : "one id at a time");
	if (raw && g_json)
		return fail("--raw and --json conflict");
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
	printf("size         %zu bytes%s\n", r.f[HQ_F_RAW].n, r.is_batch ? " (FHS/BHS batch)" : "");
	printf("intake       %s", msg_state_name(r.state));
	if (r.state == HQ_MSG_DUPLICATE)
		printf(" of message %llu", (unsigned long long)r.dup_of);
	printf("\nack sent     %s", r.ack[0] ? r.ack : "none (MSH-15)");
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

typedef struct collect {
	uint64_t *v;
	size_t n, cap;
	int need_settled;		 /* purge --dead: skip messages still queued somewhere */
	const char *route_to;		 /* replay of a range: messages for this target only */
	const hq_target_conf *route_conf; /* its config, when known */
} collect;

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

static int
collect_id(void *arg, const hq_record *r, const hq_msg_dlv *d, size_t nd)
{
	collect *c = arg;
	for (size_t i = 0; c->need_settled && i < nd; i++)
		if (d[i].d.state == HQ_DLV_PENDING || d[i].d.state == HQ_DLV_RETRY)
			return 0;
	if (c->route_to && !routed(c, r, d, nd))
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 1024;
		uint64_t *v = realloc(c->v, cap * sizeof *v);
		if (v == NULL)
			return 1;
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = r->id;
	return 0;
}

static int
cmd_replay(ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"dead", no_argument, NULL, 'd'},	   {"target", required_argument, NULL, 't'},
		{"since", required_argument, NULL, 'S'},   {"until", required_argument, NULL, 'U'},
		{"dry-run", no_argument, NULL, 'n'},	   {"json", no_argument, NULL, 'J'},
		{NULL, 0, NULL, 0}};
	hq_query q;
	int o, dead = 0, dry = 0;
	const char *target = NULL;
	memset(&q, 0, sizeof q);
	while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (o) {
		case 'd': dead = 1; break;
		case 't': target = optarg; break;
		case 'S': if (parse_time(optarg, &q.since_us)) return fail("--since '%s' is not a time (RFC 3339, or a duration back like 15m)", optarg); break;
		case 'U': if (parse_time(optarg, &q.until_us)) return fail("--until '%s' is not a time (RFC 3339, or a duration back like 15m)", optarg); break;
		case 'n': dry = 1; break;
		case 'J': g_json = 1; break;
		default: return bad_option(argv);
		}
	}
	int nids = argc - optind, range = q.since_us || q.until_us;
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
	if (check_range(&q))
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
			for (int i = 0; c->have_cfg && i < c->cfg.ntargets; i++)
				if (strcmp(c->cfg.targets[i].name, target) == 0)
					ids.route_conf = &c->cfg.targets[i];
		}
		long n = hq_journal_query(c->j, &q, collect_id, &ids);
		if (n < 0) {
			free(ids.v);
			return fail("cannot read the journal: %s", hq_strerror((int)n));
		}
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
	if (g_json)
		printf("{\"messages\":%zu,\"queued\":%ld,\"dry_run\":%s}\n", ids.n, queued, dry ? "true" : "false");
	else if (dry)
		printf("would replay %zu message%s\n", ids.n, ids.n == 1 ? "" : "s");
	else
		printf("queued %ld deliver%s of %zu message%s\n", queued, queued == 1 ? "y" : "ies", ids.n,
		       ids.n == 1 ? "" : "s");
	free(ids.v);
	return 0;
}

static int
cmd_purge(ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"dead", no_argument, NULL, 'd'},	{"delivered-before", required_argument, NULL, 'b'},
		{"target", required_argument, NULL, 't'}, {"dry-run", no_argument, NULL, 'n'},
		{"json", no_argument, NULL, 'J'},	{NULL, 0, NULL, 0}};
	int o, dead = 0, dry = 0, before_set = 0;
	uint64_t before = 0;
	const char *target = NULL;
	while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (o) {
		case 'd': dead = 1; break;
		case 'b':
			if (parse_time(optarg, &before))
				return fail("--delivered-before '%s' is not a time (RFC 3339, or a duration back like 30d)", optarg);
			before_set = 1;
			break;
		case 't': target = optarg; break;
		case 'n': dry = 1; break;
		case 'J': g_json = 1; break;
		default: return bad_option(argv);
		}
	}
	int nids = argc - optind;
	if ((nids > 0) + dead + before_set != 1)
		return fail(nids + dead + before_set ? "give one of --dead, --delivered-before TIME or ids"
						     : "what to purge? --dead, --delivered-before TIME, or ids");
	if (target && !dead)
		return fail("--target goes with --dead only");
	collect ids = {0};
	long purged = 0;
	uint64_t before_usage = 0;
	hq_journal_usage u;
	if (hq_journal_usage_get(c->j, &u) == 0)
		before_usage = u.free;
	if (before_set) {
		uint64_t resume = 0;
		long n;
		do {
			n = hq_journal_purge_before(c->j, before, &resume, ID_CHUNK, dry);
			if (n < 0)
				return fail("cannot purge: %s (%ld purged before)", hq_strerror((int)n), purged);
			purged += n;
		} while (resume < before);
	} else {
		if (nids) {
			if (ids_from_args(c, nids, argv + optind, &ids.v, &ids.n))
				return 1;
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
		for (size_t i = 0; i < ids.n; i += ID_CHUNK) {
			size_t k = ids.n - i < ID_CHUNK ? ids.n - i : ID_CHUNK;
			long n = dry ? (long)k : hq_journal_purge(c->j, ids.v + i, k);
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

static int
cmd_compact(ctx *c, int argc, char **argv)
{
	const char *dir = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			g_json = 1;
		else if (argv[i][0] == '-' || dir)
			return fail("usage: hl7q compact DIR [--json]");
		else
			dir = argv[i];
	}
	if (dir == NULL)
		return fail("where to? (hl7q compact DIR: a new or empty directory)");
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return fail("cannot create %s: %s", dir, strerror(errno));
	char path[4200];
	struct stat st;
	snprintf(path, sizeof path, "%s/data.mdb", dir);
	if (stat(path, &st) == 0)
		return fail("%s already holds a journal: give a new or empty directory", dir);
	int rc = hq_journal_copy(c->j, dir);
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
	       "To use it: stop hl7qd, move %s/data.mdb over the journal's data.mdb, remove the journal's lock.mdb, start hl7qd.\n",
	       path, st.st_size / 1e6, was / 1e6, dir);
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

static int
cmd_check(ctx *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{"max-age", required_argument, NULL, 'a'},	 {"max-dead", required_argument, NULL, 'd'},
		{"max-pending", required_argument, NULL, 'p'}, {"warn-age", required_argument, NULL, 'A'},
		{"warn-dead", required_argument, NULL, 'D'},	 {"warn-pending", required_argument, NULL, 'P'},
		{"target", required_argument, NULL, 't'},	 {"json", no_argument, NULL, 'J'},
		{NULL, 0, NULL, 0}};
	limit age = {0}, dead = {0}, pending = {0};
	const char *only = NULL;
	int o;
	while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		uint64_t v = 0, ms;
		int bad = 0;
		if (o == 'a' || o == 'A')
			bad = hq_parse_duration(optarg, &ms) != 0, v = ms / 1000;
		else if (o == 'd' || o == 'D' || o == 'p' || o == 'P')
			bad = parse_count(optarg, &v) != 0;
		if (bad) {
			printf("HL7Q UNKNOWN - bad threshold '%s'\n", optarg);
			fail("bad threshold '%s' (ages take 30s, 15m, 2h; counts a number)", optarg);
			return 3;
		}
		switch (o) {
		case 'a': age.crit = v; age.has_crit = 1; break;
		case 'A': age.warn = v; age.has_warn = 1; break;
		case 'd': dead.crit = v; dead.has_crit = 1; break;
		case 'D': dead.warn = v; dead.has_warn = 1; break;
		case 'p': pending.crit = v; pending.has_crit = 1; break;
		case 'P': pending.warn = v; pending.has_warn = 1; break;
		case 't': only = optarg; break;
		case 'J': g_json = 1; break;
		default:
			printf("HL7Q UNKNOWN - bad usage\n");
			bad_option(argv);
			return 3;
		}
	}
	if (optind != argc) {
		printf("HL7Q UNKNOWN - unexpected argument\n");
		fail("unexpected argument '%s'", argv[optind]);
		return 3;
	}
	status *s = calloc(1, sizeof *s);
	if (s == NULL || load_status(c, s, only) != 0) {
		printf("HL7Q UNKNOWN - cannot read the journal\n");
		free(s);
		return 3;
	}
	uint64_t now = hq_wall_us(), npend = 0, ndead = 0, oldest = 0;
	const char *worst_age = NULL, *worst_dead = NULL;
	uint64_t worst_dead_n = 0;
	for (long i = 0; i < s->n; i++) {
		uint64_t a = age_s(s->t[i].oldest_pending_us, now);
		npend += s->t[i].pending + s->t[i].retrying + (uint64_t)s->inflight[i];
		ndead += s->t[i].dead;
		if (a > oldest || worst_age == NULL) {
			if (a >= oldest)
				worst_age = s->t[i].name;
			oldest = a > oldest ? a : oldest;
		}
		if (s->t[i].dead > worst_dead_n) {
			worst_dead_n = s->t[i].dead;
			worst_dead = s->t[i].name;
		}
	}
	int la = level(&age, oldest), ld = level(&dead, ndead), lp = level(&pending, npend);
	int worst = la > ld ? la : ld;
	worst = worst > lp ? worst : lp;
	static const char *names[] = {"OK", "WARNING", "CRITICAL"};
	if (g_json) { /* the same verdict for scripts; the exit status is the plugin's */
		printf("{\"status\":\"%s\",\"pending\":%llu,\"dead\":%llu,\"oldest_pending_age_s\":%llu,"
		       "\"journal_free_bytes\":%llu}\n", names[worst], (unsigned long long)npend,
		       (unsigned long long)ndead, (unsigned long long)oldest, (unsigned long long)s->u.free);
		free(s);
		return worst;
	}
	printf("HL7Q %s - %llu pending, %llu dead, oldest pending %llu s", names[worst],
	       (unsigned long long)npend, (unsigned long long)ndead, (unsigned long long)oldest);
	if (la && worst_age)
		printf(" (target %s)", worst_age);
	if (ld && worst_dead)
		printf(" (most dead: %s)", worst_dead);
	printf(" |");
	perf("pending", npend, "", &pending);
	perf("dead", ndead, "", &dead);
	perf("oldest_pending_age", oldest, "s", &age);
	printf(" journal_free=%lluB;;;0;%llu\n", (unsigned long long)s->u.free,
	       (unsigned long long)s->u.map_size);
	free(s);
	return worst;
}

/* --- main ------------------------------------------------------------------ */

static void
usage(FILE *fp)
{
	fprintf(fp,
		"usage: hl7q (-c FILE | -j DIR) [--json] COMMAND [options]\n"
		"  -c, --config FILE   hl7qd's configuration (the journal path is read from it)\n"
		"  -j, --journal DIR   the journal directory\n"
		"      --json          JSON lines instead of tables\n"
		"commands:\n"
		"  status [--target T]                       queues per target, journal space\n"
		"  ls [--state S] [--target T] [--type TYPE] [--control-id X] [--patient ID]\n"
		"     [--since TIME] [--until TIME] [--limit N]   audit query\n"
		"  show ID [--raw]                           a message's story; --raw its bytes\n"
		"  replay ID... | --dead [--target T] | --target T --since TIME [--until TIME]\n"
		"  purge --dead [--target T] | --delivered-before TIME | ID...  [--dry-run]\n"
		"  compact DIR                               write a compacted copy of the journal\n"
		"  check [--max-age DUR] [--max-dead N] [--max-pending N]\n"
		"        [--warn-age DUR] [--warn-dead N] [--warn-pending N] [--target T]\n"
		"TIME: RFC 3339 (2026-11-26T10:00:00Z) or a duration back from now (15m, 2d).\n"
		"See hl7q(1).\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"journal", required_argument, NULL, 'j'},
		{"json", no_argument, NULL, 'J'},	  {"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},	  {NULL, 0, NULL, 0}};
	static const struct {
		const char *name;
		int (*fn)(ctx *, int, char **);
		int write;
	} cmds[] = {{"status", cmd_status, 0}, {"ls", cmd_ls, 0},	    {"show", cmd_show, 0},
		    {"replay", cmd_replay, 1}, {"purge", cmd_purge, 1},   {"compact", cmd_compact, 0},
		    {"check", cmd_check, 0}};
	ctx c;
	int o;
	memset(&c, 0, sizeof c);
	opterr = 0;
	while ((o = getopt_long(argc, argv, "+c:j:", opts, NULL)) != -1) {
		switch (o) {
		case 'c': c.config_file = optarg; break;
		case 'j': c.journal_dir = optarg; break;
		case 'J': g_json = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("hl7q %s\n", HQ_VERSION); return 0;
		default:
			fprintf(stderr, "hl7q: option '%s' is unknown or lacks its value (see hl7q --help)\n",
				argv[optind - 1]);
			return 1;
		}
	}
	if (optind == argc) {
		fprintf(stderr, "hl7q: which command? (status, ls, show, replay, purge, compact, check)\n");
		return 1;
	}
	size_t k = 0;
	while (k < sizeof cmds / sizeof cmds[0] && strcmp(cmds[k].name, argv[optind]) != 0)
		k++;
	if (k == sizeof cmds / sizeof cmds[0]) {
		fprintf(stderr, "hl7q: unknown command '%s' (status, ls, show, replay, purge, compact, check)\n",
			argv[optind]);
		return 1;
	}
	g_cmd = cmds[k].name;
	int is_check = strcmp(g_cmd, "check") == 0;
	if (c.config_file && c.journal_dir) {
		fail("-c and -j conflict: give one");
		return is_check ? 3 : 1;
	}
	if (c.config_file) {
		if (hq_config_load(c.config_file, &c.cfg) != 0) {
			fprintf(stderr, "%s\n", c.cfg.err);
			hq_config_free(&c.cfg);
			return is_check ? 3 : 1;
		}
		c.have_cfg = 1;
		c.journal_dir = c.cfg.journal_path;
	} else if (c.journal_dir == NULL) {
		fail("no journal: give -c FILE (hl7qd's config) or -j DIR");
		return is_check ? 3 : 1;
	}
	int rc = open_journal(&c, cmds[k].write);
	if (rc == 0) {
		int sub_argc = argc - optind;
		char **sub_argv = argv + optind;
		optind = 1; /* getopt again, on the command's arguments */
		rc = cmds[k].fn(&c, sub_argc, sub_argv);
		hq_journal_close(c.j);
	} else if (is_check) {
		printf("HL7Q UNKNOWN - cannot open the journal\n");
		rc = 3;
	}
	if (c.have_cfg)
		hq_config_free(&c.cfg);
	if (fflush(stdout) != 0 && rc == 0)
		rc = fail("cannot write: %s", strerror(errno));
	return rc;
}
