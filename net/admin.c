/*
 * admin.c - GET /healthz and GET /metrics on libmicrohttpd (see admin.h).
 *
 * libmicrohttpd (Debian's libmicrohttpd12) parses HTTP for us, as it does
 * for hl7sink; this file only builds the two answers.  Everything it reads
 * is either an atomic in core/metrics.h or a read transaction of its own
 * on the journal, so the intake loop is never locked.  The journal's
 * per-target figures are counts it keeps as deliveries move: a scrape
 * reads O(targets) records, not the queues.
 */
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "admin.h"
#include "core/metrics.h"

struct hq_admin {
	struct MHD_Daemon *d;
	hq_journal *j;
	int port;
};

#define MAX_TARGETS 128


int
hq_admin_health(hq_journal *j, char *reasons, size_t cap)
{
	hq_buf b = {0};
	hq_journal_usage u;
	int ok = 1;

	hq_buf_printf(&b, "[");
	if (!__atomic_load_n(&hq_m.journal_writable, __ATOMIC_RELAXED)) {
		hq_buf_printf(&b, "%s\"journal: the last commit failed\"", ok ? "" : ",");
		ok = 0;
	}
	if (hq_journal_usage_get(j, &u) != 0) {
		hq_buf_printf(&b, "%s\"journal: cannot be read\"", ok ? "" : ",");
		ok = 0;
	} else if (u.free < u.reserve) {
		hq_buf_printf(&b, "%s\"journal: full (%llu bytes free, reserve %llu)\"", ok ? "" : ",",
			      (unsigned long long)u.free, (unsigned long long)u.reserve);
		ok = 0;
	}
	int n = __atomic_load_n(&hq_m.nlisteners, __ATOMIC_ACQUIRE);
	for (int i = 0; i < n; i++) {
		const hq_listener_metrics *l = &hq_m.listeners[i];
		if (__atomic_load_n(&l->configured, __ATOMIC_RELAXED) &&
		    !__atomic_load_n(&l->up, __ATOMIC_RELAXED)) {
			hq_buf_printf(&b, "%s\"listener %s: not accepting\"", ok ? "" : ",", l->name);
			ok = 0;
		}
	}
	int nt = __atomic_load_n(&hq_m.ntargets, __ATOMIC_ACQUIRE);
	for (int i = 0; i < nt; i++) {
		uint64_t id = __atomic_load_n(&hq_m.targets[i].stuck_id, __ATOMIC_RELAXED);
		if (id) {
			hq_buf_printf(&b, "%s\"target %s: stopped: the head of its queue, id=%llu, cannot be read or opened\"",
				      ok ? "" : ",", hq_m.targets[i].name, (unsigned long long)id);
			ok = 0;
		}
	}
	hq_buf_printf(&b, "]");
	if (reasons && cap)
		snprintf(reasons, cap, "%s", b.p && !b.oom ? b.p : "[]");
	free(b.p);
	return ok;
}

/*
 * Silent feeds (expect_within) named in /healthz as warnings: the verdict
 * stays 200.  A silent sender is not this node's fault, and a load
 * balancer that took it out would move the feeds away from a healthy node
 * -- or, with both nodes of a pair quiet, take the service down.
 * Appends `,"silent":[...],"warnings":[...]` when there is one.
 */
static void
silent_listeners(hq_buf *b)
{
	uint64_t now = hq_wall_us(), quiet;
	int n = __atomic_load_n(&hq_m.nlisteners, __ATOMIC_ACQUIRE), k = 0;
	for (int pass = 0; pass < 2; pass++) {
		k = 0;
		for (int i = 0; i < n; i++) {
			const hq_listener_metrics *l = &hq_m.listeners[i];
			if (!__atomic_load_n(&l->configured, __ATOMIC_RELAXED) ||
			    !hq_metrics_listener_silent(l, now, &quiet))
				continue;
			if (pass == 0)
				hq_buf_printf(b, "%s\"%s\"", k ? "," : ",\"silent\":[", l->name);
			else
				hq_buf_printf(b, "%s\"listener %s: silent: no message for %llu s (expect_within %llu s)\"",
					      k ? "," : ",\"warnings\":[", l->name,
					      (unsigned long long)(quiet / 1000000),
					      (unsigned long long)(__atomic_load_n(&l->expect_within_ms, __ATOMIC_RELAXED) /
								   1000));
			k++;
		}
		if (k)
			hq_buf_printf(b, "]");
	}
}

/* The journal's per-target gauges and space, appended to b. */
static void
journal_metrics(hq_journal *j, hq_buf *b)
{
	hq_target_summary *t = calloc(MAX_TARGETS, sizeof *t); /* scrapes may overlap */
	static const struct {
		const char *name, *help;
		size_t off;
	} g[] = {
		{"hl7q_target_pending", "Deliveries waiting (not in flight), by target.",
		 offsetof(hq_target_summary, pending)},
		{"hl7q_target_retrying", "Deliveries waiting for a retry, by target.",
		 offsetof(hq_target_summary, retrying)},
		{"hl7q_target_dead", "Dead-lettered deliveries in the journal, by target.",
		 offsetof(hq_target_summary, dead)},
		{"hl7q_target_delivered", "Delivered deliveries in the journal, by target.",
		 offsetof(hq_target_summary, delivered)},
	};
	if (t == NULL) {
		b->oom = 1;
		return;
	}
	long n = hq_journal_targets(j, t, MAX_TARGETS);
	if (n > MAX_TARGETS)
		n = MAX_TARGETS;
	uint64_t now = hq_wall_us();
	/* in flight comes from the workers; pending excludes it (like hl7q status) */
	int64_t inflight[MAX_TARGETS] = {0};
	for (long i = 0; i < n; i++) {
		int nt = __atomic_load_n(&hq_m.ntargets, __ATOMIC_ACQUIRE);
		for (int k = 0; k < nt; k++)
			if (strcmp(hq_m.targets[k].name, t[i].name) == 0)
				inflight[i] = __atomic_load_n(&hq_m.targets[k].inflight, __ATOMIC_RELAXED);
		if (inflight[i] < 0)
			inflight[i] = 0;
		t[i].pending = (uint64_t)inflight[i] < t[i].pending ? t[i].pending - (uint64_t)inflight[i] : 0;
	}
	for (size_t k = 0; k < sizeof g / sizeof g[0]; k++) {
		hq_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", g[k].name, g[k].help, g[k].name);
		for (long i = 0; i < n && n > 0; i++)
			hq_buf_printf(b, "%s{target=\"%s\"} %llu\n", g[k].name, t[i].name,
				      (unsigned long long)*(const uint64_t *)((const char *)&t[i] + g[k].off));
	}
	hq_buf_printf(b, "# HELP hl7q_target_inflight Requests in flight now, by target.\n"
			 "# TYPE hl7q_target_inflight gauge\n");
	for (long i = 0; i < n; i++)
		hq_buf_printf(b, "hl7q_target_inflight{target=\"%s\"} %lld\n", t[i].name,
			      (long long)inflight[i]);
	hq_buf_printf(b, "# HELP hl7q_target_oldest_pending_age_seconds Age of the oldest undelivered message, by target (0: none).\n"
			 "# TYPE hl7q_target_oldest_pending_age_seconds gauge\n");
	for (long i = 0; i < n; i++) {
		uint64_t o = t[i].oldest_pending_us;
		hq_buf_printf(b, "hl7q_target_oldest_pending_age_seconds{target=\"%s\"} %.3f\n",
			      t[i].name, o && now > o ? (now - o) / 1e6 : 0.0);
	}
	hq_journal_usage u;
	if (hq_journal_usage_get(j, &u) == 0)
		hq_buf_printf(b,
			      "# HELP hl7q_journal_size_bytes Pages of the journal's file, in bytes.\n"
			      "# TYPE hl7q_journal_size_bytes gauge\nhl7q_journal_size_bytes %llu\n"
			      "# HELP hl7q_journal_used_bytes Journal bytes holding data.\n"
			      "# TYPE hl7q_journal_used_bytes gauge\nhl7q_journal_used_bytes %llu\n"
			      "# HELP hl7q_journal_free_bytes Journal bytes free (map size minus used).\n"
			      "# TYPE hl7q_journal_free_bytes gauge\nhl7q_journal_free_bytes %llu\n"
			      "# HELP hl7q_journal_max_bytes The journal's map size (max_size).\n"
			      "# TYPE hl7q_journal_max_bytes gauge\nhl7q_journal_max_bytes %llu\n"
			      "# HELP hl7q_journal_reserve_bytes Intake refuses when free journal space is under this.\n"
			      "# TYPE hl7q_journal_reserve_bytes gauge\nhl7q_journal_reserve_bytes %llu\n"
			      "# HELP hl7q_journal_filesystem_free_bytes Free bytes on the journal's filesystem.\n"
			      "# TYPE hl7q_journal_filesystem_free_bytes gauge\nhl7q_journal_filesystem_free_bytes %llu\n",
			      (unsigned long long)u.file_size, (unsigned long long)u.used,
			      (unsigned long long)u.free, (unsigned long long)u.map_size,
			      (unsigned long long)u.reserve, (unsigned long long)u.fs_free);
	hq_buf_printf(b,
		      "# HELP hl7q_journal_writable 1 when the last journal commit succeeded.\n"
		      "# TYPE hl7q_journal_writable gauge\nhl7q_journal_writable %d\n",
		      __atomic_load_n(&hq_m.journal_writable, __ATOMIC_RELAXED));
	free(t);
}

static enum MHD_Result
reply(struct MHD_Connection *conn, unsigned status, const char *type, char *body, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
       const char *version, const char *upload, size_t *upload_len, void **state)
{
	hq_admin *a = cls;
	(void)version;
	(void)upload;
	if (*state == NULL) { /* headers only so far */
		*state = a;
		return MHD_YES;
	}
	if (*upload_len) { /* no bodies here */
		*upload_len = 0;
		return MHD_YES;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return reply(conn, 405, "text/plain", strdup("GET only\n"), 9);
	if (strcmp(url, "/healthz") == 0) {
		char reasons[2048];
		int ok = hq_admin_health(a->j, reasons, sizeof reasons);
		hq_buf b = {0};
		hq_buf_printf(&b, ok ? "{\"status\":\"ok\"" : "{\"status\":\"unhealthy\",\"reasons\":%s", reasons);
		silent_listeners(&b);
		hq_buf_printf(&b, "}\n");
		if (b.oom) {
			free(b.p);
			return MHD_NO;
		}
		return reply(conn, ok ? 200 : 503, "application/json", b.p, b.n);
	}
	if (strcmp(url, "/metrics") == 0) {
		hq_buf b = {0};
		hq_metrics_write(&b);
		journal_metrics(a->j, &b);
		if (b.oom) {
			free(b.p);
			return MHD_NO;
		}
		return reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.n);
	}
	return reply(conn, 404, "text/plain", strdup("not found: GET /healthz or /metrics\n"), 36);
}

int
hq_admin_start(const struct sockaddr_storage *addr, socklen_t len, hq_journal *j, hq_admin **out,
	       char *err, size_t errcap)
{
	hq_admin *a = hq_xcalloc(1, sizeof *a);
	(void)len;
	a->j = j;
	/* A thread per connection: /healthz answers while a scrape runs.  The
	 * per-target counts are kept in the journal (no queue is recounted), so
	 * a scrape costs the same at any backlog; the connection limit bounds the threads. */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
	if (addr->ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	a->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, a, MHD_OPTION_SOCK_ADDR, addr,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
	if (a->d == NULL) {
		snprintf(err, errcap, "admin: cannot listen (address in use, or not allowed)");
		free(a);
		return EADDRINUSE;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_BIND_PORT);
	a->port = info ? info->port : 0;
	*out = a;
	return 0;
}

int
hq_admin_port(const hq_admin *a)
{
	return a ? a->port : 0;
}

void
hq_admin_stop(hq_admin *a)
{
	if (a == NULL)
		return;
	MHD_stop_daemon(a->d);
	free(a);
}
