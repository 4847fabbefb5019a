/*
 * retention.h - the journal's retention passes, run by the daemon between
 * turns: `retention` purges delivered messages older than that, and
 * `rejected_retention` refused frames older than that, each pass once a
 * minute (the first 5 s after start), a slice of at most 2000 records per
 * turn so that intake never waits behind one long write transaction.
 * A rejected_retention pass goes on from where the last one ended
 * (earlier refused frames are gone).  Main thread only.
 */
#ifndef HQ_DAEMON_RETENTION_H
#define HQ_DAEMON_RETENTION_H

#include <stdint.h>

#include "core/config.h"
#include "queue/journal.h"

typedef struct hq_retention {
	uint64_t at_ms;	    /* last retention pass began */
	uint64_t resume_us; /* where the pass under way goes on */
	int running;
	uint64_t purged;	     /* by the pass under way */
	uint64_t rejected_at_ms;     /* last rejected_retention pass began */
	uint64_t rejected_resume_us; /* only moves forward: earlier refused frames are gone */
	int rejected_running;
	uint64_t rejected_purged; /* by the pass under way */
} hq_retention;

/* Starts r at now_ms (hq_now_ms): the first passes begin 5 s later. */
void hq_retention_init(hq_retention *r, uint64_t now_ms);

/*
 * One turn's share of cfg's retention passes over j: begins a pass when a
 * minute has gone since the last one began, else goes on with the one
 * under way by one slice.  Logs what a pass purged when it ends, and a
 * purge that fails (the pass then stops until the next minute).
 */
void hq_retention_turn(hq_retention *r, hq_journal *j, const hq_config *cfg, uint64_t now_ms);

#endif
