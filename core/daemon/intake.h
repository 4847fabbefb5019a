/*
 * intake.h - decides, stores and answers the frames of one loop turn: the
 * group commit between net/server.c and queue/journal.c.
 *
 * No positive ACK (AA/CA) is ever built for a frame whose batch did not
 * commit: the ACK code is chosen only after hq_batch_commit returned 0.
 */
#ifndef HQ_INTAKE_H
#define HQ_INTAKE_H

#include <stdint.h>

#include "core/config.h"
#include "core/log.h"
#include "net/server.h"
#include "queue/journal.h"

typedef struct hq_intake_stats {
	uint64_t batches, messages, accepted, refused, duplicates, commit_failures, unrouted;
	uint64_t largest_batch;
	uint64_t commit_us_total, commit_us_max; /* time in hq_batch_commit */
	uint64_t index_runs, index_us_total, index_us_max;
} hq_intake_stats;

typedef struct hq_intake {
	const hq_config *cfg;
	hq_journal *journal;
	hq_server *server; /* aborted after a storage failure that retrying could hide */
	struct hq_delivery_sys *delivery; /* woken after each commit; may be NULL */
	int fatal;			  /* set after fsync failure or MDB_PANIC */
	uint64_t ack_seq;
	uint64_t indexed_at_ms; /* last deferred-index run */
	uint64_t frames_at_ms;	/* last turn with frames */
	char ack_prefix[16];
	hq_intake_stats stats;
	hq_ratelimit rl_refused; /* refusal lines */
	hq_ratelimit rl_reused;	 /* control id reused lines */
} hq_intake;

/* Prepares in (no allocation); server may be set later, before the first batch. */
void hq_intake_init(hq_intake *in, const hq_config *cfg, hq_journal *j);

/* The hq_batch_fn for hq_server_new; arg is the hq_intake. */
void hq_intake_batch(void *arg, hq_frame **frames, size_t n);

/*
 * The hq_turn_fn for hq_server_set_turn_fn: writes the journal's deferred
 * indexes between turns, in runs of a bounded size -- when the backlog
 * fills a run, when the last run is 2 s ago, or when the loop is quiet --
 * so the intake commit stays small.
 */
void hq_intake_after_turn(void *arg, size_t frames);

#endif
