/*
 * feeds.h - each listener's last message, for the silent-feed alarm
 * (listener keys expect_within / expect_hours; the decision itself is
 * core/silence.h).
 *
 * The time of the last accepted message survives a restart: at start it
 * is read back from the journal (the newest accepted record of each
 * listener among the newest HQ_FEEDS_SCAN records).  A listener with none
 * there is taken as silent since the oldest record looked at when the
 * journal holds more, or as starting now (daemon start) when the whole
 * journal was looked at: a new feed gets expect_within to send its first
 * message.  A listener a reload adds counts from the reload.
 */
#ifndef HQ_FEEDS_H
#define HQ_FEEDS_H

#include <stdint.h>

#include "config.h"
#include "status.h"
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

/*
 * Applies cfg's expect_within / expect_hours to the listeners' metrics
 * (listeners no longer configured get none) and gives listeners without a
 * last-message time one: at start (at_start 1) read back from j as the
 * file comment says; after a reload, now.  Main thread.
 */
void hq_feeds_configure(const hq_config *cfg, hq_journal *j, uint64_t now_us, int at_start);

/*
 * Logs once when a listener goes silent and once when it hears again
 * (at most one pass a second).  Main thread, between turns.
 */
void hq_feeds_watch(const hq_config *cfg, uint64_t now_us);

/* Adds each listener's last message to s (the status file, for hl7q check --silent). */
void hq_feeds_status(const hq_config *cfg, hq_status *s);

#endif
