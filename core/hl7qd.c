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
 * stays queued (it is in the journal).  Every config the daemon ran with
 * stays in memory until exit: connections and workers may still point
 * into an older one.
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
 * after start).
 *
 * Test seam: HL7Q_TEST_FAIL_COMMIT=N makes the N-th journal commit fail
 * (tests assert that no positive ACK goes out for that batch).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "error.h"
#include "intake.h"
#include "log.h"
#include "metrics.h"
#include "net/admin.h"
#include "net/delivery.h"
#include "net/server.h"
#include "net/tls.h"
#include "queue/journal.h"

#ifndef HQ_VERSION
#define HQ_VERSION "0.1.0"
#endif

static hq_server *g_server;
static volatile sig_atomic_t g_reload;

/* The daemon's state between turns. */
typedef struct daemon_state {
	hq_intake *intake;
	hq_config *cfg;		  /* the running config */
	hq_config **old;	  /* every earlier one (still pointed into) */
	int nold;
	hq_delivery_sys *delivery;
	hq_admin *admin;
	int verbose;
	uint64_t status_at_ms;	  /* last status file */
	uint64_t retention_at_ms; /* last retention pass began */
	uint64_t resume_us;	  /* where the pass under way goes on */
	int retention_running;
	uint64_t purged;	  /* by the pass under way */
	uint64_t watchdog_us;	  /* WatchdogSec, 0: off */
	uint64_t watchdog_at_ms;  /* last ping */
} daemon_state;

/* Frees a config hq_config_load filled, and the struct itself. */
static void
config_drop(hq_config *cfg)
{
	hq_config_free(cfg);
	free(cfg);
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


/* JOURNAL/hl7qd.status: "pid N", "updated_us N", "inflight TARGET N" lines,
 * "stopped TARGET ID" for a target whose FIFO head cannot be read,
 * replaced atomically. */
static void
write_status(daemon_state *h)
{
	char path[1100], tmp[1110];
	snprintf(path, sizeof path, "%s/hl7qd.status", h->cfg->journal_path);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *fp = fopen(tmp, "w");
	if (fp == NULL)
		return;
	fprintf(fp, "pid %ld\nupdated_us %llu\n", (long)getpid(), (unsigned long long)hq_wall_us());
	for (int i = 0; i < h->cfg->ntargets; i++)
		fprintf(fp, "inflight %s %d\n", h->cfg->targets[i].name,
			hq_delivery_inflight(h->delivery, h->cfg->targets[i].name));
	for (int i = 0; i < h->cfg->ntargets; i++) {
		uint64_t id = hq_delivery_stopped(h->delivery, h->cfg->targets[i].name);
		if (id)
			fprintf(fp, "stopped %s %llu\n", h->cfg->targets[i].name, (unsigned long long)id);
	}
	if (fclose(fp) == 0)
		rename(tmp, path);
	else
		unlink(tmp);
}

/* One slice of the retention pass (a short write transaction per turn). */
static void
retention_slice(daemon_state *h)
{
	uint64_t before = hq_wall_us() - h->cfg->retention_ms * 1000;
	long n = hq_journal_purge_before(h->intake->journal, before, &h->resume_us, 2000, 0);
	if (n < 0) {
		hq_log(HQ_LOG_WARNING, "retention: cannot purge: %s", hq_strerror((int)n));
		h->retention_running = 0;
		return;
	}
	h->purged += (uint64_t)n;
	if (h->resume_us >= before) { /* the pass is done */
		if (h->purged)
			hq_log(HQ_LOG_NOTICE, "retention: purged %llu delivered messages older than %llu s",
			       (unsigned long long)h->purged,
			       (unsigned long long)(h->cfg->retention_ms / 1000));
		h->retention_running = 0;
	}
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
	int rc = hq_admin_start(&cfg->admin_addr, cfg->admin_addrlen, h->intake->journal, out, err,
				errcap);
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
	hq_config *ncfg = calloc(1, sizeof *ncfg);
	hq_config **old = realloc(h->old, (size_t)(h->nold + 1) * sizeof *old);

	sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration");
	if (ncfg == NULL || old == NULL) {
		hq_log(HQ_LOG_ERR, "reload refused: out of memory; the running config stays");
		free(ncfg);
		goto done;
	}
	h->old = old;
	if (hq_config_load(h->cfg->file, ncfg) != 0) {
		hq_log(HQ_LOG_ERR, "reload refused: %s; the running config stays", ncfg->err);
		goto fail;
	}
	if (hq_config_check_secrets(ncfg, err, sizeof err) != 0) {
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
	set_log_level(ncfg, h->verbose);
	hq_log(HQ_LOG_NOTICE, "reloaded %s: %d listener%s, %d target%s", ncfg->file, ncfg->nlisteners,
	       ncfg->nlisteners == 1 ? "" : "s", ncfg->ntargets, ncfg->ntargets == 1 ? "" : "s");
	goto done;
fail:
	config_drop(ncfg);
done:
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
	if (h->watchdog_us && (now - h->watchdog_at_ms) * 1000 >= h->watchdog_us / 2) {
		h->watchdog_at_ms = now;
		sd_notify(0, "WATCHDOG=1");
	}
	if (now - h->status_at_ms >= 1000) {
		h->status_at_ms = now;
		write_status(h);
	}
	if (h->cfg->retention_ms == 0)
		return;
	if (!h->retention_running && now - h->retention_at_ms >= 60000) {
		h->retention_at_ms = now;
		h->retention_running = 1;
		h->resume_us = 0;
		h->purged = 0;
	}
	if (h->retention_running)
		retention_slice(h);
}

static void
usage(FILE *fp)
{
	fprintf(fp,
		"usage: hl7qd -c FILE [--check] [-v]\n"
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
		{"config", required_argument, NULL, 'c'},
		{"check", no_argument, NULL, 'C'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *file = NULL;
	int check = 0, verbose = 0, c, rc;
	hq_config *cfg;
	hq_journal *journal = NULL;
	hq_intake intake;
	daemon_state h;
	char err[1300];

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
	if ((cfg = calloc(1, sizeof *cfg)) == NULL)
		return 1;
	if (hq_config_load(file, cfg) != 0) {
		fprintf(stderr, "%s\n", cfg->err);
		config_drop(cfg);
		return 1;
	}
	if (check) {
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
	set_log_level(cfg, verbose);
	if (hq_config_check_secrets(cfg, err, sizeof err) != 0) {
		hq_log(HQ_LOG_ERR, "%s", err);
		config_drop(cfg);
		return 1;
	}

	rc = hq_journal_open(cfg->journal_path, cfg->max_size, 0, &journal);
	if (rc != 0) {
		hq_log(HQ_LOG_ERR, "cannot open journal %s: %s", cfg->journal_path, hq_strerror(rc));
		config_drop(cfg);
		return 2;
	}
	/* Encryption at rest: the keys, or a refusal when the journal needs them. */
	char ids[600];
	if (cfg->encryption_key_file[0]) {
		if ((rc = hq_journal_set_keys(journal, cfg->encryption_key_file, err, sizeof err)) != 0) {
			hq_log(HQ_LOG_ERR, "%s:%d: %s; not starting", cfg->file, cfg->encryption_line, err);
			hq_journal_close(journal);
			config_drop(cfg);
			return 1;
		}
		hq_journal_encrypted(journal, ids, sizeof ids);
		hq_log(HQ_LOG_NOTICE, "journal encrypted at rest (AES-256-GCM; key ids in use: %s)", ids);
	} else if (hq_journal_encrypted(journal, ids, sizeof ids)) {
		hq_log(HQ_LOG_ERR, "journal %s is encrypted (key ids %s) but %s sets no [journal] encryption_key_file; not starting",
		       cfg->journal_path, ids, cfg->file);
		hq_journal_close(journal);
		config_drop(cfg);
		return 1;
	}
	const char *seam = getenv("HL7Q_TEST_FAIL_COMMIT");
	if (seam && *seam) {
		hq_journal_fail_commit(journal, strtoull(seam, NULL, 10));
		hq_log(HQ_LOG_WARNING, "test seam: commit %s will fail", seam);
	}
	if ((seam = getenv("HL7Q_TEST_FAIL_OUTCOMES")) && *seam) {
		hq_journal_fail_outcomes(journal, strtoull(seam, NULL, 10));
		hq_log(HQ_LOG_WARNING, "test seam: %s outcome writes will fail", seam);
	}
	hq_intake_init(&intake, cfg, journal);
	memset(&h, 0, sizeof h);
	h.intake = &intake;
	h.cfg = cfg;
	h.verbose = verbose;
	rc = hq_delivery_start(cfg, journal, &h.delivery, err, sizeof err);
	if (rc != 0) {
		hq_log(HQ_LOG_ERR, "%s", err);
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
		hq_journal_close(journal);
		config_drop(cfg);
		return 2;
	}
	intake.server = g_server;
	h.retention_at_ms = hq_now_ms() - 55000; /* first pass 5 s after start */
	hq_server_set_turn_fn(g_server, on_turn, &h);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	hq_log(HQ_LOG_NOTICE, "hl7qd %s: journal %s (next id %llu)", HQ_VERSION,
	       cfg->journal_path, (unsigned long long)hq_journal_next_id(journal));
	for (int i = 0; i < cfg->nlisteners; i++)
		hq_log(HQ_LOG_NOTICE, "listener %s: listening on %s (port %d)",
		       cfg->listeners[i].name, cfg->listeners[i].listen,
		       hq_server_port(g_server, i));
	if (sd_watchdog_enabled(0, &h.watchdog_us) <= 0)
		h.watchdog_us = 0;
	h.watchdog_at_ms = hq_now_ms();
	sd_notifyf(0, "READY=1\nSTATUS=running: %d listener%s, %d target%s\nMAINPID=%ld",
		   cfg->nlisteners, cfg->nlisteners == 1 ? "" : "s", cfg->ntargets,
		   cfg->ntargets == 1 ? "" : "s", (long)getpid());
	hq_log(HQ_LOG_NOTICE, "ready");

	hq_server_run(g_server, 5000);
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");

	hq_server_stats st;
	hq_server_stats_get(g_server, &st);
	hq_log(HQ_LOG_NOTICE,
	       "stopped: %llu frames in %llu batches (largest %llu), %llu accepted (%llu unrouted), %llu refused, %llu out-of-frame bytes",
	       (unsigned long long)intake.stats.messages,
	       (unsigned long long)intake.stats.batches,
	       (unsigned long long)intake.stats.largest_batch,
	       (unsigned long long)intake.stats.accepted,
	       (unsigned long long)intake.stats.unrouted,
	       (unsigned long long)intake.stats.refused,
	       (unsigned long long)st.out_of_frame);
	if (intake.stats.batches)
		hq_log(HQ_LOG_NOTICE,
		       "commits: mean %.2f ms, max %.2f ms; deferred index runs: %llu, mean %.2f ms, max %.2f ms",
		       intake.stats.commit_us_total / 1000.0 / (double)intake.stats.batches,
		       intake.stats.commit_us_max / 1000.0,
		       (unsigned long long)intake.stats.index_runs,
		       intake.stats.index_runs ? intake.stats.index_us_total / 1000.0 / (double)intake.stats.index_runs : 0.0,
		       intake.stats.index_us_max / 1000.0);
	hq_admin_stop(h.admin);
	hq_server_free(g_server);
	g_server = NULL;
	hq_delivery_stop(h.delivery);
	{
		char path[1100];
		snprintf(path, sizeof path, "%s/hl7qd.status", h.cfg->journal_path);
		unlink(path);
	}
	hq_journal_close(journal);
	for (int i = 0; i < h.nold; i++)
		config_drop(h.old[i]);
	free(h.old);
	config_drop(h.cfg);
	return intake.fatal ? 3 : 0;
}
