/*
 * status.c - hl7q status: per target the pending, retrying, in-flight,
 * dead and delivered counts, the oldest pending age and the last success
 * and error; the journal's space; whether hl7qd runs.  The journal gives
 * the counts, the daemon's status file (core/status.h) what only the
 * running daemon knows (requests in flight, stopped targets, its pid).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/status.h"
#include "core/timefmt.h"
#include "tools/hl7q/hl7q.h"

/* hl7qd rewrites its status file every second; older than this, it hangs. */
#define DAEMON_STALE_S 30


/* Whether hl7qd runs on this journal: its status file (core/status.h)
 * names a live pid (EPERM: alive, another user's) that updated it lately. */
void
daemon_probe(const ctx *c, daemon_info *d)
{
	hq_status st;
	memset(d, 0, sizeof *d);
	if (hq_status_read(c->journal_dir, &st) == 0 && hq_status_alive(&st)) {
		d->pid = st.pid;
		d->age_s = hq_age_s(st.updated_us, hq_wall_us());
		d->state = d->age_s > DAEMON_STALE_S ? DAEMON_HUNG : DAEMON_UP;
	} /* else none, or a stale file of a daemon that is gone */
	hq_status_free(&st);
}

const char *
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


int
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
	/* the running daemon's in-flight counts and stopped targets */
	hq_status ds;
	int live = hq_status_read(c->journal_dir, &ds) == 0 && hq_status_alive(&ds);
	long k = 0;
	for (long i = 0; i < n; i++) {
		if (only && strcmp(s->t[i].name, only) != 0)
			continue;
		s->t[k] = s->t[i];
		const hq_status_target *dt = live ? hq_status_target_find(&ds, s->t[k].name) : NULL;
		int inf = dt ? dt->inflight : 0;
		s->stopped[k] = dt ? dt->stopped : 0;
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
	hq_status_free(&ds);
	if (only && k == 0)
		return fail("no target '%s' in the journal or the config", only);
	int rc = hq_journal_usage_get(c->j, &s->u);
	if (rc != 0)
		return fail("cannot read the journal's space: %s", hq_strerror(rc));
	return 0;
}

const struct option status_opts[] = {
	{"target", required_argument, NULL, 't'}, {"json", no_argument, NULL, 'J'}, {NULL, 0, NULL, 0}};

/* Target i of s as a table row (the header before the first) or a JSON line. */
static void
status_row(const status *s, long i, uint64_t now)
{
	const hq_target_summary *t = &s->t[i];
	char t1[40], t2[40];
	if (g_json) {
		json_t *o = json_pack("{s:s, s:I, s:I, s:i, s:I, s:I, s:I}", "target", t->name, "pending",
				      (json_int_t)t->pending, "retrying", (json_int_t)t->retrying,
				      "inflight", s->inflight[i], "dead", (json_int_t)t->dead,
				      "delivered", (json_int_t)t->delivered, "oldest_pending_age_s",
				      (json_int_t)hq_age_s(t->oldest_pending_us, now));
		json_object_set_new(o, "last_success",
				    t->last_ok_us ? json_string(fmt_time(t->last_ok_us, t1, sizeof t1))
						  : json_null());
		json_object_set_new(o, "last_error_at",
				    t->last_err_us ? json_string(fmt_time(t->last_err_us, t2, sizeof t2))
						   : json_null());
		json_object_set_new(o, "last_error", t->last_err_us ? json_string(t->last_error) : json_null());
		json_object_set_new(o, "stopped_at_id",
				    s->stopped[i] ? json_integer((json_int_t)s->stopped[i]) : json_null());
		print_json(o);
		return;
	}
	if (i == 0)
		printf("%-16s %9s %9s %9s %9s %11s %10s  %-24s %s\n", "TARGET", "PENDING", "RETRYING",
		       "INFLIGHT", "DEAD", "DELIVERED", "OLDEST_S", "LAST_SUCCESS", "LAST_ERROR");
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
	       (unsigned long long)hq_age_s(t->oldest_pending_us, now),
	       fmt_time(t->last_ok_us, t1, sizeof t1), err);
}

/* The journal's space and whether hl7qd runs, after the targets. */
static void
status_footer(const ctx *c, const status *s, const daemon_info *di)
{
	char dw[100];
	if (g_json) {
		json_t *o = json_pack("{s:{s:I, s:I, s:I, s:I}, s:{s:b, s:s}}", "journal",
				      "size_bytes", (json_int_t)s->u.file_size, "used_bytes",
				      (json_int_t)s->u.used, "free_bytes", (json_int_t)s->u.free,
				      "max_bytes", (json_int_t)s->u.map_size, "hl7qd", "running",
				      di->state == DAEMON_UP, "state",
				      di->state == DAEMON_UP	 ? "running"
				      : di->state == DAEMON_HUNG ? "not responding"
								 : "not running");
		if (di->state != DAEMON_DOWN)
			json_object_set_new(json_object_get(o, "hl7qd"), "pid", json_integer(di->pid));
		print_json(o);
	} else {
		if (s->n == 0)
			printf("no targets\n");
		printf("journal %s: file %.1f MB, used %.1f MB, free %.1f MB of %.1f MB\n", c->journal_dir,
		       s->u.file_size / 1e6, s->u.used / 1e6, s->u.free / 1e6, s->u.map_size / 1e6);
		printf("hl7qd: %s\n", daemon_words(di, dw, sizeof dw));
	}
}

int
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
	status *s = hq_xcalloc(1, sizeof *s);
	int rc = load_status(c, s, only);
	uint64_t now = hq_wall_us();
	daemon_info di;
	daemon_probe(c, &di);
	for (long i = 0; rc == 0 && i < s->n; i++)
		status_row(s, i, now);
	if (rc == 0)
		status_footer(c, s, &di);
	free(s);
	return rc;
}
