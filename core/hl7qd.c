/*
 * hl7qd.c - the daemon: reads the config, opens the journal, binds the
 * listeners and runs the MLLP loop with intake's group commit.
 *
 * Signals: SIGTERM/SIGINT stop accepting, finish the commit under way and
 * send its ACKs, then exit 0.  SIGKILL at any moment loses no acknowledged
 * message, since no ACK leaves before its commit.
 *
 * Between turns it also writes JOURNAL/hl7qd.status every second (its pid
 * and each target's requests in flight, which only the daemon knows; `hl7q
 * status` reads it) and applies `retention`: every minute, delivered
 * messages older than that are purged, a slice per turn.
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
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "intake.h"
#include "log.h"
#include "net/delivery.h"
#include "net/server.h"
#include "queue/journal.h"

#ifndef HQ_VERSION
#define HQ_VERSION "0.1.0"
#endif

static hq_server *g_server;

/* What the daemon does between turns besides intake's indexing. */
typedef struct housekeeping {
	hq_intake *intake;
	hq_config *cfg;
	hq_delivery_sys *delivery;
	uint64_t status_at_ms;	  /* last status file */
	uint64_t retention_at_ms; /* last retention pass began */
	uint64_t resume_us;	  /* where the pass under way goes on */
	int retention_running;
	uint64_t purged;	  /* by the pass under way */
} housekeeping;

static uint64_t
wall_us(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
}

/* JOURNAL/hl7qd.status: "pid N", "updated_us N", "inflight TARGET N" lines,
 * replaced atomically. */
static void
write_status(housekeeping *h)
{
	char path[4200], tmp[4210];
	snprintf(path, sizeof path, "%s/hl7qd.status", h->cfg->journal_path);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *fp = fopen(tmp, "w");
	if (fp == NULL)
		return;
	fprintf(fp, "pid %ld\nupdated_us %llu\n", (long)getpid(), (unsigned long long)wall_us());
	for (int i = 0; i < h->cfg->ntargets; i++)
		fprintf(fp, "inflight %s %d\n", h->cfg->targets[i].name,
			hq_delivery_inflight(h->delivery, h->cfg->targets[i].name));
	if (fclose(fp) == 0)
		rename(tmp, path);
	else
		unlink(tmp);
}

/* One slice of the retention pass (a short write transaction per turn). */
static void
retention_slice(housekeeping *h)
{
	uint64_t before = wall_us() - h->cfg->retention_ms * 1000;
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
on_turn(void *arg, size_t frames)
{
	housekeeping *h = arg;
	uint64_t now = hq_now_ms();

	hq_intake_after_turn(h->intake, frames);
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
on_signal(int sig)
{
	(void)sig;
	if (g_server)
		hq_server_stop(g_server);
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
		"      --version      print the version\n");
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
	hq_config cfg;
	hq_journal *journal = NULL;
	hq_intake intake;
	char err[512];

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
	if (hq_config_load(file, &cfg) != 0) {
		fprintf(stderr, "%s\n", cfg.err);
		hq_config_free(&cfg);
		return 1;
	}
	if (check) {
		printf("%s: ok (%d listener%s, %d target%s)\n", file, cfg.nlisteners,
		       cfg.nlisteners == 1 ? "" : "s", cfg.ntargets, cfg.ntargets == 1 ? "" : "s");
		hq_config_free(&cfg);
		return 0;
	}
	hq_log_level = cfg.log_level + verbose;
	if (hq_log_level > HQ_LOG_DEBUG)
		hq_log_level = HQ_LOG_DEBUG;

	rc = hq_journal_open(cfg.journal_path, cfg.max_size, 0, &journal);
	if (rc != 0) {
		hq_log(HQ_LOG_ERR, "cannot open journal %s: %s", cfg.journal_path,
		       hq_strerror(rc));
		hq_config_free(&cfg);
		return 2;
	}
	const char *seam = getenv("HL7Q_TEST_FAIL_COMMIT");
	if (seam && *seam) {
		hq_journal_fail_commit(journal, strtoull(seam, NULL, 10));
		hq_log(HQ_LOG_WARNING, "test seam: commit %s will fail", seam);
	}
	hq_intake_init(&intake, &cfg, journal);
	hq_delivery_sys *delivery = NULL;
	rc = hq_delivery_start(&cfg, journal, &delivery, err, sizeof err);
	if (rc != 0) {
		hq_log(HQ_LOG_ERR, "%s", err);
		hq_journal_close(journal);
		hq_config_free(&cfg);
		return 2;
	}
	intake.delivery = delivery;
	rc = hq_server_new(&cfg, hq_intake_batch, &intake, &g_server, err, sizeof err);
	if (rc != 0) {
		hq_log(HQ_LOG_ERR, "%s", err);
		hq_delivery_stop(delivery);
		hq_journal_close(journal);
		hq_config_free(&cfg);
		return 2;
	}
	intake.server = g_server;
	housekeeping hk = {.intake = &intake, .cfg = &cfg, .delivery = delivery};
	hk.retention_at_ms = hq_now_ms() - 55000; /* first pass 5 s after start */
	hq_server_set_turn_fn(g_server, on_turn, &hk);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	hq_log(HQ_LOG_NOTICE, "hl7qd %s: journal %s (next id %llu)", HQ_VERSION,
	       cfg.journal_path, (unsigned long long)hq_journal_next_id(journal));
	for (int i = 0; i < cfg.nlisteners; i++)
		hq_log(HQ_LOG_NOTICE, "listener %s: listening on %s (port %d)",
		       cfg.listeners[i].name, cfg.listeners[i].listen,
		       hq_server_port(g_server, i));
	hq_log(HQ_LOG_NOTICE, "ready");

	hq_server_run(g_server, 5000);

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
	hq_server_free(g_server);
	g_server = NULL;
	hq_delivery_stop(delivery);
	{
		char path[4200];
		snprintf(path, sizeof path, "%s/hl7qd.status", cfg.journal_path);
		unlink(path);
	}
	hq_journal_close(journal);
	hq_config_free(&cfg);
	return intake.fatal ? 3 : 0;
}
