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
 * message.  A listener a reload adds counts from the reload.  The reading
 * itself is the journal's (queue/feeds.h): this floor gets it as a callback.
 */
#ifndef HQ_FEEDS_H
#define HQ_FEEDS_H

#include <stdint.h>

#include "config.h"
#include "status.h"

/*
 * Reads the newest accepted message of each of names[0..n) back (the
 * daemon passes one over queue/feeds.h's hq_feeds_last_seen): out_us[i]
 * gets its receive time or 0, *oldest_us the oldest receive time looked at
 * or 0 when everything was.  Returns 0 or an error code (hq_strerror).
 */
typedef int (*hq_feeds_last_seen_fn)(void *ctx, const char *const *names, int n, uint64_t *out_us,
				     uint64_t *oldest_us);

/*
 * Applies cfg's expect_within / expect_hours to the listeners' metrics
 * (listeners no longer configured get none) and gives listeners without a
 * last-message time one: at start, read back through last_seen(ctx, ...)
 * as the file comment says; after a reload (last_seen NULL), now.  When
 * last_seen fails, logs it and counts from now.  Main thread.
 */
void hq_feeds_configure(const hq_config *cfg, hq_feeds_last_seen_fn last_seen, void *ctx, uint64_t now_us);

/*
 * Logs once when a listener goes silent and once when it hears again
 * (at most one pass a second).  Main thread, between turns.
 */
void hq_feeds_watch(const hq_config *cfg, uint64_t now_us);

/* Adds each listener's last message to s (the status file, for hl7q check --silent). */
void hq_feeds_status(const hq_config *cfg, hq_status *s);

#endif
