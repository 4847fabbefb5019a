/*
 * feeds.h - the journal side of the silent-feed alarm: each listener's
 * newest accepted message, read back from the journal.
 *
 * The daemon reads it at start (core/feeds.h keeps the alarm, fed through
 * a callback so the ground floor needs no journal) and `hl7q check
 * --silent` reads it without a daemon.  A read-only scan, newest first,
 * bounded so a start costs a few ms whatever the journal holds.
 */
#ifndef HQ_QUEUE_FEEDS_H
#define HQ_QUEUE_FEEDS_H

#include <stdint.h>

#include "queue/journal.h"

/* How many of the newest records are read back at start (a few ms). */
#define HQ_FEEDS_SCAN 20000

/*
 * Reads the journal backwards from its newest record, at most max
 * records, for the newest accepted message (accepted, unrouted, or a
 * duplicate acknowledged positively) of each of names[0..n).  out_us[i]
 * gets its receive time, or 0 when none was found.  *oldest_us gets the
 * receive time of the oldest record read, 0 when every record of the
 * journal was read.  Returns 0, or hq_journal_get's error code.
 */
int hq_feeds_last_seen(hq_journal *j, const char *const *names, int n, uint64_t max,
		       uint64_t *out_us, uint64_t *oldest_us);

#endif
