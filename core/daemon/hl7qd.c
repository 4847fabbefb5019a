/*
 * hl7qd.c - the daemon: reads the config, opens the journal, binds the
 * listeners, starts the delivery workers and the admin endpoint, and runs
 * the MLLP loop with intake's group commit.
 *
 * Signals: SIGTERM/SIGINT stop accepting, finish the commit under way and
 * send its ACKs, then exit 0.  SIGKILL at any moment loses no acknowledged
 * message, since no ACK leaves before its commit.  SIGHUP reloads the
 * config between two turns: a config that fails to load, or a change that
 * cannot be applied (a listener that cannot bind, a secret that cannot be
 * read, another journal), is refused with the reason logged and the
 * running one goes on; otherwise listeners and targets are added, changed
 * or removed without closing open MLLP connections, and what was queued
 * stays queued (it is in the journal).  An older config stays in memory
 * while a connection (of a removed listener) or a delivery worker still
 * runs with it; release_old frees it, and reaps the retired workers, after
 * each reload and once a second, so reloads leave no memory behind.
 *
 * systemd (Type=notify, via libsystemd's sd_notify): READY=1 once the
 * journal is open and every listener is bound, RELOADING=1 / READY=1
 * around a reload, STOPPING=1, and WATCHDOG=1 from the loop at half the
 * WatchdogSec interval -- the loop, not a thread, so a stuck loop is caught.
 *
 * Between turns it also writes JOURNAL/hl7qd.status every second (its pid
 * and each target's requests in flight, which only the daemon knows; `hl7q
 * status` reads it) and applies `retention`: every minute, delivered
 * messages older than that are purged, a slice per turn (the first pass 5 s
 * after start); `rejected_retention` does the same for refused frames,
 * each pass going on from where the last one ended (retention.c).
 *
 * One journal, one daemon: it holds an exclusive flock on JOURNAL/hl7qd.lock
 * (which names its pid) from before the journal opens until it exits; a
 * second hl7qd, or `hl7q compact`, is refused while it does.
 *
 * It also logs when a feed goes silent or recovers (core/feeds.c).
 *
 * Test seam: HL7Q_TEST_FAIL_COMMIT=N makes the N-th journal commit fail
 * (tests assert that no positive ACK goes out for that batch).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <mbedtls/md.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/error.h"
#include "core/feeds.h"
#include "intake.h"
#include "retention.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/file.h"
#include "core/status.h"
#include "net/admin.h"
#include "net/auditlog.h"
#include "delivery.h"
#include "net/server.h"
#include "net/tls.h"
#include "queue/audit.h"
#include "queue/feeds.h"
#include "queue/journal.h"

#ifndef HQ_VERSION
#define HQ_VERSION "0.1.0"
#endif

static hq_server *g_server;
static volatile sig_atomic_t g_reload;

/* The daemon's state between turns. */
typedef struct daemon_state {
	hq_intake *intake;
	hq_config *cfg;	 /* the running config */
	hq_config **old; /* every earlier one (still pointed into) */
	int nold;
	hq_delivery_sys *delivery;
	hq_admin *admin;
	int verbose;
	uint64_t status_at_ms;	 /* last status file */
	hq_retention retention;	 /* retention and rejected_retention passes */
	uint64_t watchdog_us;	 /* WatchdogSec, 0: off */
	uint64_t watchdog_at_ms; /* last ping */
	hq_audit *audit;	 /* the access audit trail: start, stop, reload, keys */
	uint64_t house_at_ms;	 /* last housekeeping (stale readers, key wear) */
} daemon_state;

/* The SHA-256 of a config file as hex, for the audit trail ("unreadable" when it is). */
static void
config_sha256(const char *file, char out[65])
{
	size_t n;
	char *buf = hq_read_file(file, &n);
	unsigned char h[32];
	if (buf == NULL ||
	    mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), (unsigned char *)buf, n, h) != 0) {
		snprintf(out, 65, "unreadable");
	} else {
		for (int i = 0; i < 32; i++)
			snprintf(out + 2 * i, 3, "%02x", h[i]);
	}
	free(buf);
}

/* Set while the server loop runs: events then echo from a thread of their own. */
static int g_serving;

typedef struct audit_echo {
	hq_audit_event ev;
	char dest[256];
} audit_echo;

/* Sends one event to journald and the RFC 5424 collector; frees e. */
static void *
audit_echo_main(void *arg)
{
	audit_echo *e = arg;
	char err[600];
	if (hq_auditlog_send(&e->ev, e->dest, err, sizeof err) != 0)
		hq_log(HQ_LOG_WARNING, "audit: %s", err);
	free(e);
	return NULL;
}

/*
 * Records a daemon event in the audit trail (a when the journal is open)
 * and echoes it to journald / the RFC 5424 collector.  A failure to record
 * is logged; the daemon goes on (its intake must not stop for the trail).
 * While the server loop runs (a reload), the echo goes on a detached
 * thread: a collector that is slow or unreachable (a name lookup, 3 s
 * connect and write timeouts) must not hold intake.
 */
static void daemon_audit(hq_audit *a, const hq_config *cfg, const char *command, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void
daemon_audit(hq_audit *a, const hq_config *cfg, const char *command, const char *fmt, ...)
{
	hq_audit_event ev;
	char err[600];
	va_list ap;
	hq_audit_event_init(&ev, "hl7qd", command);
	va_start(ap, fmt);
	vsnprintf(ev.detail, sizeof ev.detail, fmt, ap);
	va_end(ap);
	int rc = a ? hq_audit_append(a, &ev) : 0;
	if (rc)
		hq_log(HQ_LOG_WARNING, "audit: cannot record the %s event in the journal: %s",
		       command, hq_strerror(rc));
	audit_echo *e = g_serving ? hq_xmalloc(sizeof *e) : NULL;
	if (e) {
		pthread_t t;
		pthread_attr_t at;
		e->ev = ev;
		snprintf(e->dest, sizeof e->dest, "%s", cfg ? cfg->audit_rfc5424 : "");
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		int trc = pthread_create(&t, &at, audit_echo_main, e);
		pthread_attr_destroy(&at);
		if (trc == 0)
			return;
		free(e); /* no thread: send it here */
	}
	if (hq_auditlog_send(&ev, cfg ? cfg->audit_rfc5424 : "", err, sizeof err) != 0)
		hq_log(HQ_LOG_WARNING, "audit: %s", err);
}

/* Frees a config hq_config_load filled, and the struct itself. */
static void
config_drop(hq_config *cfg)
{
	hq_config_free(cfg);
	free(cfg);
}

/*
 * Joins the delivery workers reloads retired that have exited, then frees
 * every earlier config neither the server nor a worker runs with any more.
 */
static void
release_old(daemon_state *h)
{
	hq_delivery_reap(h->delivery);
	int k = 0;
	for (int i = 0; i < h->nold; i++) {
		hq_config *c = h->old[i];
		if (c != h->cfg && !hq_server_uses(g_server, c) && !hq_delivery_uses(h->delivery, c))
			config_drop(c);
		else
			h->old[k++] = c;
	}
	h->nold = k;
}

static void
on_signal(int sig)
{
	if (sig == SIGHUP) {
		g_reload = 1;
		return;
	}
	if (g_server)
		hq_server_stop(g_server);
}


/* JOURNAL/hl7qd.status (core/status.h): pid, in-flight counts, stopped
 * targets, the listeners' last messages; replaced atomically. */
static void
write_status(daemon_state *h)
{
	hq_status s = {.pid = (long)getpid(), .updated_us = hq_wall_us()};
	for (int i = 0; i < h->cfg->ntargets; i++) {
		hq_status_target *t = hq_status_target_add(&s, h->cfg->targets[i].name);
		t->inflight = hq_delivery_inflight(h->delivery, t->name);
		t->stopped = hq_delivery_stopped(h->delivery, t->name);
	}
	hq_feeds_status(h->cfg, &s);
	hq_status_write(h->cfg->journal_path, &s); /* else hl7q reads the last one, and its age */
	hq_status_free(&s);
}

/* Keeps the longest duplicate_window in the journal: every purge (the
 * retention pass, hl7q purge) keeps that much duplicate history. */
static void
dup_window_store(hq_journal *j, const hq_config *cfg)
{
	uint64_t ms = 0;
	for (int i = 0; i < cfg->nlisteners; i++)
		if (cfg->listeners[i].duplicate_window_ms > ms)
			ms = cfg->listeners[i].duplicate_window_ms;
	int rc = hq_journal_set_duplicate_window(j, ms * 1000);
	if (rc != 0)
		hq_log(HQ_LOG_WARNING, "journal: cannot store the duplicate window: %s", hq_strerror(rc));
}

/* Logs the encryption key's wear once it nears the limit of one key. */
static void
key_wear_log(hq_journal *j)
{
	uint64_t seals;
	int wear = hq_journal_key_wear(j, &seals);
	if (wear)
		hq_log(wear == 2 ? HQ_LOG_ERR : HQ_LOG_WARNING,
		       "journal: the encryption key has sealed %llu values%s: put a new key on the first line of encryption_key_file (keep the old one below), reload, and run hl7q reseal",
		       (unsigned long long)seals,
		       wear == 2 ? ", the most one key may: intake is refused" : "");
}

/*
 * Every minute: clear the reader slots of processes that died in a read
 * transaction (a killed hl7q), which would keep freed pages from reuse
 * and grow the file; and warn of the key's wear.
 */
static void
housekeeping(daemon_state *h)
{
	int dead = 0;
	int rc = hq_journal_reader_check(h->intake->journal, &dead);
	if (rc != 0)
		hq_log(HQ_LOG_WARNING, "journal: cannot check readers: %s", hq_strerror(rc));
	else if (dead > 0)
		hq_log(HQ_LOG_NOTICE, "journal: cleared %d reader slot%s of exited processes", dead,
		       dead == 1 ? "" : "s");
	key_wear_log(h->intake->journal);
}

static void
set_log_level(const hq_config *cfg, int verbose)
{
	hq_log_level = cfg->log_level + verbose;
	if (hq_log_level > HQ_LOG_DEBUG)
		hq_log_level = HQ_LOG_DEBUG;
}

/* Starts the admin endpoint of cfg (none when not configured). */
static int
admin_start(daemon_state *h, const hq_config *cfg, hq_admin **out, char *err, size_t errcap)
{
	*out = NULL;
	if (cfg->admin_listen[0] == 0)
		return 0;
	int rc = hq_admin_start(&cfg->admin_addr, cfg->admin_addrlen, h->intake->journal, out, err, errcap);
	if (rc == 0)
		hq_log(HQ_LOG_NOTICE, "admin: serving /healthz and /metrics on %s (port %d)",
		       cfg->admin_listen, hq_admin_port(*out));
	return rc;
}

/*
 * SIGHUP: loads the config again and applies it, or refuses it whole.
 * Order: everything that can fail first (load, journal path, listener
 * binds, secrets), then the swaps.
 */
static void
reload(daemon_state *h)
{
	char err[1300];
	hq_config *ncfg = hq_xcalloc(1, sizeof *ncfg);
	h->old = hq_xrealloc(h->old, (size_t)(h->nold + 1) * sizeof *h->old);
	char sha[65];
	config_sha256(h->cfg->file, sha);

	sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration");
	if (hq_config_load(h->cfg->file, ncfg) != 0) {
		hq_log(HQ_LOG_ERR, "reload refused: %s; the running config stays", ncfg->err);
		goto fail;
	}
	if (hq_config_check_secrets(ncfg, err, sizeof err) != 0 ||
	    hq_config_check_files(ncfg, err, sizeof err) != 0) {
		hq_log(HQ_LOG_ERR, "reload refused: %s; the running config stays", err);
		goto fail;
	}
	if (strcmp(ncfg->encryption_key_file, h->cfg->encryption_key_file) != 0)
		hq_log(HQ_LOG_WARNING, "reload: [journal] encryption_key_file changes at the next restart");
	if (strcmp(ncfg->journal_path, h->cfg->journal_path) != 0) {
		hq_log(HQ_LOG_ERR, "reload refused: %s: [journal] path changed (%s -> %s); that takes a restart; the running config stays",
		       ncfg->file, h->cfg->journal_path, ncfg->journal_path);
		goto fail;
	}
	/* The delivery workers read their secrets first: a missing file refuses the reload. */
	if (hq_delivery_reload(h->delivery, ncfg, err, sizeof err) != 0) {
		hq_log(HQ_LOG_ERR, "reload refused: %s; the running config stays", err);
		goto fail;
	}
	if (hq_server_reload(g_server, ncfg, err, sizeof err) != 0) {
		/* Delivery already runs on the new targets: put the old ones back. */
		char err2[512];
		hq_log(HQ_LOG_ERR, "reload refused: %s; the running config stays", err);
		if (hq_delivery_reload(h->delivery, h->cfg, err2, sizeof err2) != 0)
			hq_log(HQ_LOG_ERR, "delivery: cannot return to the running config: %s", err2);
		h->old[h->nold++] = ncfg; /* workers may point into it */
		daemon_audit(h->audit, h->cfg, "reload", "refused: config %s sha256=%s", h->cfg->file, sha);
		goto done;
	}
	if (strcmp(ncfg->admin_listen, h->cfg->admin_listen) != 0) {
		hq_admin *na = NULL;
		hq_admin_stop(h->admin);
		h->admin = NULL;
		if (admin_start(h, ncfg, &na, err, sizeof err) != 0)
			hq_log(HQ_LOG_ERR, "%s (the admin endpoint is off until the next reload)", err);
		h->admin = na;
	}
	if (ncfg->max_size != h->cfg->max_size)
		hq_log(HQ_LOG_WARNING, "reload: [journal] max_size changes at the next restart");
	h->old[h->nold++] = h->cfg;
	h->cfg = ncfg;
	h->intake->cfg = ncfg;
	dup_window_store(h->intake->journal, ncfg);
	hq_feeds_configure(ncfg, NULL, NULL, hq_wall_us());
	set_log_level(ncfg, h->verbose);
	hq_log(HQ_LOG_NOTICE, "reloaded %s: %d listener%s, %d target%s", ncfg->file, ncfg->nlisteners,
	       ncfg->nlisteners == 1 ? "" : "s", ncfg->ntargets, ncfg->ntargets == 1 ? "" : "s");
	daemon_audit(h->audit, ncfg, "reload", "applied: config %s sha256=%s", ncfg->file, sha);
	goto done;
fail:
	daemon_audit(h->audit, h->cfg, "reload", "refused: config %s sha256=%s", h->cfg->file, sha);
	config_drop(ncfg);
done:
	release_old(h);
	sd_notify(0, "READY=1\nSTATUS=running");
}

static void
on_turn(void *arg, size_t frames)
{
	daemon_state *h = arg;
	uint64_t now = hq_now_ms();

	if (g_reload) {
		g_reload = 0;
		reload(h);
	}
	hq_intake_after_turn(h->intake, frames);
	hq_feeds_watch(h->cfg, hq_wall_us());
	if (h->watchdog_us && (now - h->watchdog_at_ms) * 1000 >= h->watchdog_us / 2) {
		h->watchdog_at_ms = now;
		sd_notify(0, "WATCHDOG=1");
	}
	if (now - h->status_at_ms >= 1000) {
		h->status_at_ms = now;
		write_status(h);
		if (h->nold)
			release_old(h);
	}
	if (now - h->house_at_ms >= 60000) {
		h->house_at_ms = now;
		housekeeping(h);
	}
	hq_retention_turn(&h->retention, h->intake->journal, h->cfg, now);
}

/* The silent-feed alarm's read-back at start (core/feeds.h), over the journal. */
static int
feeds_last_seen(void *journal, const char *const *names, int n, uint64_t *out_us, uint64_t *oldest_us)
{
	return hq_feeds_last_seen(journal, names, n, HQ_FEEDS_SCAN, out_us, oldest_us);
}

/*
 * hl7qd --check: what start would refuse, refused here (the
 * ExecStartPre/ExecReload gate runs as the service user, so readability
 * and the journal directory are checked for it).  Frees cfg; returns the
 * exit code (0 ok, 1 error on stderr).
 */
static int
check_config(const char *file, hq_config *cfg)
{
	char err[1300];
	if (hq_config_check_secrets(cfg, err, sizeof err) != 0 ||
	    hq_config_check_files(cfg, err, sizeof err) != 0 ||
	    hq_config_check_journal_dir(cfg, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		config_drop(cfg);
		return 1;
	}
	/* TLS material must load too: a key that does not parse fails here, not at start. */
	for (int i = 0; i < cfg->nlisteners; i++) {
		hq_tls_server *t = NULL;
		if (cfg->listeners[i].tls_cert[0] &&
		    hq_tls_server_new(&cfg->listeners[i], &t, err, sizeof err) != 0) {
			fprintf(stderr, "%s:%d: %s\n", file, cfg->listeners[i].line, err);
			config_drop(cfg);
			return 1;
		}
		hq_tls_server_free(t);
	}
	printf("%s: ok (%d listener%s, %d target%s)\n", file, cfg->nlisteners,
	       cfg->nlisteners == 1 ? "" : "s", cfg->ntargets, cfg->ntargets == 1 ? "" : "s");
	config_drop(cfg);
	return 0;
}

/*
 * Locks, opens and unseals cfg's journal and its audit store, with the
 * test seams.  Returns 0 with *journal and *audit open, or the exit code
 * (1 config, 2 journal) with the reason logged and audited and nothing
 * left open (cfg stays the caller's).
 */
static int
open_journal(const hq_config *cfg, hq_journal **journal, hq_audit **audit)
{
	char err[1300];
	int rc;

	/* One journal, one daemon: a second one would answer its senders from
	 * the same ids and deliver every queued message again.  The lock is
	 * held until exit (the fd is never closed); hl7q's readers never take it. */
	int lockfd;
	long holder;
	rc = hq_journal_lock(cfg->journal_path, &lockfd, &holder);
	if (rc == HQ_ELOCKED) {
		hq_log(HQ_LOG_ERR, "journal %s is in use by another hl7qd (or hl7q compact), pid %ld: not starting",
		       cfg->journal_path, holder);
		return 2;
	}
	if (rc != 0) {
		hq_log(HQ_LOG_ERR, "cannot lock journal %s: %s", cfg->journal_path, hq_strerror(rc));
		return 2;
	}
	rc = hq_journal_open(cfg->journal_path, cfg->max_size, 0, journal);
	if (rc != 0) {
		hq_log(HQ_LOG_ERR, "cannot open journal %s: %s", cfg->journal_path, hq_strerror(rc));
		daemon_audit(NULL, cfg, "open-failed", "journal %s: %s", cfg->journal_path, hq_strerror(rc));
		return 2;
	}
	if ((rc = hq_audit_open(*journal, audit)) != 0) {
		hq_log(HQ_LOG_ERR, "cannot open the audit store in journal %s: %s",
		       cfg->journal_path, hq_strerror(rc));
		daemon_audit(NULL, cfg, "open-failed", "audit store of journal %s: %s",
			     cfg->journal_path, hq_strerror(rc));
		hq_journal_close(*journal);
		return 2;
	}
	/* Encryption at rest: the keys, or a refusal when the journal needs them. */
	char ids[600], ids_before[600];
	int was_encrypted = hq_journal_encrypted(*journal, ids_before, sizeof ids_before);
	if (cfg->encryption_key_file[0]) {
		if ((rc = hq_journal_set_keys(*journal, cfg->encryption_key_file, err, sizeof err)) != 0) {
			hq_log(HQ_LOG_ERR, "%s:%d: %s; not starting", cfg->file, cfg->encryption_line, err);
			daemon_audit(*audit, cfg, "open-failed", "encryption keys: %s", err);
			hq_audit_close(*audit);
			hq_journal_close(*journal);
			return 1;
		}
		hq_journal_encrypted(*journal, ids, sizeof ids);
		hq_log(HQ_LOG_NOTICE, "journal encrypted at rest (AES-256-GCM; key ids in use: %s)", ids);
		if (strcmp(ids, ids_before) != 0) /* a new key seals from now on */
			daemon_audit(*audit, cfg, "key-rotation", "%s key ids in use: %s (before: %s)",
				     was_encrypted ? "new key;" : "first key;", ids,
				     was_encrypted ? ids_before : "none");
		key_wear_log(*journal);
	} else if (was_encrypted) {
		hq_log(HQ_LOG_ERR, "journal %s is encrypted (key ids %s) but %s sets no [journal] encryption_key_file; not starting",
		       cfg->journal_path, ids_before, cfg->file);
		daemon_audit(*audit, cfg, "open-failed",
			     "journal encrypted (key ids %s) and no encryption_key_file", ids_before);
		hq_audit_close(*audit);
		hq_journal_close(*journal);
		return 1;
	}
	dup_window_store(*journal, cfg);
	const char *seam = getenv("HL7Q_TEST_FAIL_COMMIT");
	if (seam && *seam) {
		hq_journal_fail_commit(*journal, strtoull(seam, NULL, 10));
		hq_log(HQ_LOG_WARNING, "test seam: commit %s will fail", seam);
	}
	if ((seam = getenv("HL7Q_TEST_FAIL_OUTCOMES")) && *seam) {
		hq_journal_fail_outcomes(*journal, strtoull(seam, NULL, 10));
		hq_log(HQ_LOG_WARNING, "test seam: %s outcome writes will fail", seam);
	}
	return 0;
}

/* The closing lines: what this run took in, and its commit times. */
static void
log_stop_stats(const hq_intake *in)
{
	hq_server_stats st;
	hq_server_stats_get(g_server, &st);
	hq_log(HQ_LOG_NOTICE, "stopped: %llu frames in %llu batches (largest %llu), %llu accepted (%llu unrouted), %llu refused, %llu out-of-frame bytes",
	       (unsigned long long)in->stats.messages, (unsigned long long)in->stats.batches,
	       (unsigned long long)in->stats.largest_batch, (unsigned long long)in->stats.accepted,
	       (unsigned long long)in->stats.unrouted, (unsigned long long)in->stats.refused,
	       (unsigned long long)st.out_of_frame);
	if (in->stats.batches)
		hq_log(HQ_LOG_NOTICE, "commits: mean %.2f ms, max %.2f ms; deferred index runs: %llu, mean %.2f ms, max %.2f ms",
		       in->stats.commit_us_total / 1000.0 / (double)in->stats.batches,
		       in->stats.commit_us_max / 1000.0, (unsigned long long)in->stats.index_runs,
		       in->stats.index_runs ? in->stats.index_us_total / 1000.0 / (double)in->stats.index_runs : 0.0,
		       in->stats.index_us_max / 1000.0);
}

/* TERM/INT stop, HUP reloads (on_signal); a closed peer is an error, not a signal. */
static void
install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* The start lines (journal, each listener's port), the watchdog's
 * interval, READY=1 to systemd, and the start event of the audit trail. */
static void
announce_ready(daemon_state *h, hq_journal *journal)
{
	const hq_config *cfg = h->cfg;
	hq_log(HQ_LOG_NOTICE, "hl7qd %s: journal %s (next id %llu)", HQ_VERSION, cfg->journal_path,
	       (unsigned long long)hq_journal_next_id(journal));
	for (int i = 0; i < cfg->nlisteners; i++)
		hq_log(HQ_LOG_NOTICE, "listener %s: listening on %s (port %d)",
		       cfg->listeners[i].name, cfg->listeners[i].listen, hq_server_port(g_server, i));
	if (sd_watchdog_enabled(0, &h->watchdog_us) <= 0)
		h->watchdog_us = 0;
	h->watchdog_at_ms = hq_now_ms();
	sd_notifyf(0, "READY=1\nSTATUS=running: %d listener%s, %d target%s\nMAINPID=%ld",
		   cfg->nlisteners, cfg->nlisteners == 1 ? "" : "s", cfg->ntargets,
		   cfg->ntargets == 1 ? "" : "s", (long)getpid());
	char sha[65];
	config_sha256(cfg->file, sha);
	daemon_audit(h->audit, cfg, "start", "version %s, pid %ld, config %s sha256=%s", HQ_VERSION,
		     (long)getpid(), cfg->file, sha);
}

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: hl7qd -c FILE [--check] [-v]\n"
		    "  -c, --config FILE  configuration (INI), see hl7q.conf(5)\n"
		    "      --check        validate the configuration and exit (0 ok, 1 error)\n"
		    "  -v, --verbose      log more (repeat for debug)\n"
		    "      --help         this text\n"
		    "      --version      print the version\n"
		    "signals: TERM/INT stop cleanly, HUP reloads the configuration\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'C'},
		{"verbose", no_argument, NULL, 'v'},	  {"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},	  {NULL, 0, NULL, 0},
	};
	const char *file = NULL;
	int check = 0, verbose = 0, c, rc;
	hq_config *cfg;
	hq_intake intake;
	daemon_state h;
	char err[1300];

	/* No core dump and no ptrace by other processes of the same user: the
	 * memory holds keys, secrets and decrypted messages (the unit adds LimitCORE=0). */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	while ((c = getopt_long(argc, argv, "c:v", opts, NULL)) != -1) {
		switch (c) {
		case 'c': file = optarg; break;
		case 'C': check = 1; break;
		case 'v': verbose++; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("hl7qd %s\n", HQ_VERSION); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (file == NULL || optind != argc) {
		fprintf(stderr, "hl7qd: %s\n", file ? "unexpected argument" : "-c FILE is required");
		usage(stderr);
		return 1;
	}
	cfg = hq_xcalloc(1, sizeof *cfg);
	if (hq_config_load(file, cfg) != 0) {
		fprintf(stderr, "%s\n", cfg->err);
		config_drop(cfg);
		return 1;
	}
	if (check)
		return check_config(file, cfg);
	set_log_level(cfg, verbose);
	if (hq_config_check_secrets(cfg, err, sizeof err) != 0 ||
	    hq_config_check_files(cfg, err, sizeof err) != 0) {
		hq_log(HQ_LOG_ERR, "%s", err);
		config_drop(cfg);
		return 1;
	}

	hq_journal *journal = NULL;
	hq_audit *audit = NULL;
	if ((rc = open_journal(cfg, &journal, &audit)) != 0) {
		config_drop(cfg);
		return rc;
	}
	hq_intake_init(&intake, cfg, journal);
	memset(&h, 0, sizeof h);
	h.intake = &intake;
	h.cfg = cfg;
	h.verbose = verbose;
	h.audit = audit;
	rc = hq_delivery_start(cfg, journal, &h.delivery, err, sizeof err);
	if (rc != 0) {
		hq_log(HQ_LOG_ERR, "%s", err);
		daemon_audit(audit, cfg, "start-failed", "%s", err);
		hq_audit_close(audit);
		hq_journal_close(journal);
		config_drop(cfg);
		return 2;
	}
	intake.delivery = h.delivery;
	rc = hq_server_new(cfg, hq_intake_batch, &intake, &g_server, err, sizeof err);
	if (rc == 0 && (rc = admin_start(&h, cfg, &h.admin, err, sizeof err)) != 0)
		hq_server_free(g_server);
	if (rc != 0) {
		hq_log(HQ_LOG_ERR, "%s", err);
		hq_delivery_stop(h.delivery);
		daemon_audit(audit, cfg, "start-failed", "%s", err);
		hq_audit_close(audit);
		hq_journal_close(journal);
		config_drop(cfg);
		return 2;
	}
	intake.server = g_server;
	hq_retention_init(&h.retention, hq_now_ms()); /* first passes 5 s after start */
	hq_feeds_configure(cfg, feeds_last_seen, journal, hq_wall_us()); /* last messages, read back */
	hq_server_set_turn_fn(g_server, on_turn, &h);

	install_signals();
	announce_ready(&h, journal);
	write_status(&h); /* hl7q status / check see it running from now */
	h.status_at_ms = hq_now_ms();
	hq_log(HQ_LOG_NOTICE, "ready");

	g_serving = 1;
	hq_server_run(g_server, 5000);
	g_serving = 0;
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");

	log_stop_stats(&intake);
	hq_admin_stop(h.admin);
	hq_server_free(g_server);
	g_server = NULL;
	hq_delivery_stop(h.delivery);
	daemon_audit(audit, h.cfg, "stop", "%s", intake.fatal ? "journal failure" : "signal");
	hq_audit_close(audit);
	hq_status_remove(h.cfg->journal_path);
	hq_journal_close(journal);
	for (int i = 0; i < h.nold; i++)
		config_drop(h.old[i]);
	free(h.old);
	config_drop(h.cfg);
	return intake.fatal ? 3 : 0;
}
