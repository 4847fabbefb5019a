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

#include "config.h"
#include "net/server.h"
#include "queue/journal.h"

typedef struct hq_intake_stats {
	uint64_t batches, messages, accepted, refused, duplicates, commit_failures;
	uint64_t largest_batch;
} hq_intake_stats;

typedef struct hq_intake {
	const hq_config *cfg;
	hq_journal *journal;
	hq_server *server; /* aborted after a storage failure that retrying could hide */
	int fatal;	   /* set after fsync failure or MDB_PANIC */
	uint64_t ack_seq;
	char ack_prefix[16];
	hq_intake_stats stats;
} hq_intake;

/* Prepares in (no allocation); server may be set later, before the first batch. */
void hq_intake_init(hq_intake *in, const hq_config *cfg, hq_journal *j);

/* The hq_batch_fn for hq_server_new; arg is the hq_intake. */
void hq_intake_batch(void *arg, hq_frame **frames, size_t n);

#endif
