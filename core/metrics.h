/*
 * metrics.h - hl7qd's counters and histograms, shared by the intake loop,
 * the delivery workers and the admin endpoint, and written out in the
 * Prometheus text format.
 *
 * Every value is updated and read with relaxed atomics: writers never
 * wait, and a scrape sees each value whole (not all of them at one
 * instant).  Series are keyed by listener or target *name* -- never by
 * anything a message carries -- and live for the whole process, so a
 * reload that drops and re-adds a target keeps its counters.
 */
#ifndef HQ_METRICS_H
#define HQ_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define HQ_HIST_BUCKETS 12

/* A histogram with fixed upper bounds (see metrics.c). */
typedef struct hq_hist {
	uint64_t bucket[HQ_HIST_BUCKETS]; /* not cumulative; the last is +Inf */
	uint64_t count;
	uint64_t sum; /* in the histogram's unit: microseconds, or items */
} hq_hist;

/* ACK codes counted per listener (index order). */
enum {
	HQ_ACK_AA,
	HQ_ACK_AE,
	HQ_ACK_AR,
	HQ_ACK_CA,
	HQ_ACK_CE,
	HQ_ACK_CR,
	HQ_ACK_NONE,
	HQ_ACK_CODES
};

typedef struct hq_listener_metrics {
	char name[64];
	uint64_t received, bytes, refused_connections;
	uint64_t control_id_reused;   /* MSH-10 seen again with other content: stored as new */
	uint64_t acked[HQ_ACK_CODES]; /* by the code answered (NONE: MSH-15 asked for none) */
	int64_t open;		      /* connections now */
	int up;			      /* bound and accepting */
	int configured;		      /* in the running config (health wants it up) */
	hq_hist ack_latency; /* frame received to its ACK ready (commit included), microseconds */
	uint64_t last_message_us; /* the last accepted frame (wall clock); seeded at start, core/feeds.c */
	uint64_t expect_within_ms; /* silent-feed settings of the running config (0: none) */
	int expect_from_min, expect_to_min; /* expect_hours in minutes of the day; -1: all day */
} hq_listener_metrics;

typedef struct hq_target_metrics {
	char name[64];
	uint64_t attempts, delivered, retried, dead;
	uint64_t status_2xx, status_4xx, status_5xx, network_errors;
	hq_hist latency;   /* microseconds, per attempt */
	int64_t inflight;  /* requests out now (the workers add and take back) */
	uint64_t stuck_id; /* FIFO head that cannot be read: the target is stopped (0: not) */
} hq_target_metrics;

typedef struct hq_metrics {
	hq_listener_metrics listeners[64];
	int nlisteners;
	hq_target_metrics targets[64];
	int ntargets;
	hq_hist commit_batch;	/* frames per commit */
	hq_hist commit_latency; /* microseconds */
	uint64_t commits_failed;
	int journal_writable; /* 0 after a failed commit until one succeeds, or when full */
} hq_metrics;

/* The process's metrics. */
extern hq_metrics hq_m;

/*
 * The series of listener / target name, created on first use (main thread
 * only; at most 64 of each, after that a shared "other" series).  The
 * pointer stays valid for the life of the process.
 */
hq_listener_metrics *hq_metrics_listener(const char *name);
hq_target_metrics *hq_metrics_target(const char *name);

/* Adds v to a counter (any thread). */
static inline void
hq_count(uint64_t *c, uint64_t v)
{
	__atomic_fetch_add(c, v, __ATOMIC_RELAXED);
}

/*
 * Intake's note that a frame of listener m was answered: its ACK latency
 * (from received_us to now), and when accepted (a positive ACK, or none
 * asked for) the listener's last-message time.  Any thread.
 */
void hq_metrics_answered(hq_listener_metrics *m, uint64_t received_us, int accepted);

/*
 * Whether listener l is silent at now_us by its expect_within /
 * expect_hours (core/silence.h); *quiet_us (may be NULL) gets how long.
 */
int hq_metrics_listener_silent(const hq_listener_metrics *l, uint64_t now_us, uint64_t *quiet_us);

/* Records one observation of a microsecond or item histogram. */
void hq_hist_observe_us(hq_hist *h, uint64_t us);
void hq_hist_observe_items(hq_hist *h, uint64_t n);

/* The index of an ACK code ("AA", ...; "" for none). */
int hq_metrics_ack_index(const char *code);

/*
 * Writes the process metrics (listeners, commits, per-target delivery
 * counters and latency) to b in the Prometheus text format 0.0.4.  Gauges
 * read from the journal are the caller's to add.
 */
void hq_metrics_write(hq_buf *b);

/* Writes one histogram (name without suffix, labels "" or `target="x"`). */
void hq_metrics_write_hist(hq_buf *b, const char *name, const char *help, const char *labels,
			   const hq_hist *h, int seconds);

#endif
