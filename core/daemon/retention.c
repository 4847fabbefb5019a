/*
 * retention.c - the retention passes between turns (see retention.h).
 */
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "retention.h"

void
hq_retention_init(hq_retention *r, uint64_t now_ms)
{
	*r = (hq_retention){0};
	r->at_ms = now_ms - 55000; /* first pass 5 s after start */
	r->rejected_at_ms = r->at_ms;
}

/* One slice of the retention pass (a short write transaction per turn). */
static void
retention_slice(hq_retention *r, hq_journal *j, const hq_config *cfg)
{
	uint64_t now = hq_wall_us(), keep = cfg->retention_ms * 1000;
	if (keep >= now) { /* the config bounds it; never wrap into a cut-off in the future */
		r->running = 0;
		return;
	}
	uint64_t before = now - keep;
	long n = hq_journal_purge_before(j, before, &r->resume_us, 2000, 0);
	if (n < 0) {
		hq_log(HQ_LOG_WARNING, "retention: cannot purge: %s", hq_strerror((int)n));
		r->running = 0;
		return;
	}
	r->purged += (uint64_t)n;
	if (r->resume_us >= before) { /* the pass is done */
		if (r->purged)
			hq_log(HQ_LOG_NOTICE, "retention: purged %llu delivered messages older than %llu s",
			       (unsigned long long)r->purged, (unsigned long long)(cfg->retention_ms / 1000));
		r->running = 0;
	}
}

/* One slice of the rejected_retention pass. */
static void
rejected_slice(hq_retention *r, hq_journal *j, const hq_config *cfg)
{
	uint64_t before = hq_wall_us() - cfg->rejected_retention_ms * 1000;
	if (r->rejected_resume_us > before) /* the clock stepped back */
		r->rejected_resume_us = before;
	long n = hq_journal_purge_rejected(j, before, &r->rejected_resume_us, 2000, 0);
	if (n < 0) {
		hq_log(HQ_LOG_WARNING, "rejected_retention: cannot purge: %s", hq_strerror((int)n));
		r->rejected_running = 0;
		return;
	}
	r->rejected_purged += (uint64_t)n;
	if (r->rejected_resume_us >= before) {
		if (r->rejected_purged)
			hq_log(HQ_LOG_NOTICE, "rejected_retention: purged %llu refused frames older than %llu s",
			       (unsigned long long)r->rejected_purged,
			       (unsigned long long)(cfg->rejected_retention_ms / 1000));
		r->rejected_running = 0;
	}
}

void
hq_retention_turn(hq_retention *r, hq_journal *j, const hq_config *cfg, uint64_t now_ms)
{
	if (cfg->rejected_retention_ms) {
		if (!r->rejected_running && now_ms - r->rejected_at_ms >= 60000) {
			r->rejected_at_ms = now_ms;
			r->rejected_running = 1;
			r->rejected_purged = 0;
		}
		if (r->rejected_running)
			rejected_slice(r, j, cfg);
	}
	if (cfg->retention_ms == 0)
		return;
	if (!r->running && now_ms - r->at_ms >= 60000) {
		r->at_ms = now_ms;
		r->running = 1;
		r->resume_us = 0;
		r->purged = 0;
	}
	if (r->running)
		retention_slice(r, j, cfg);
}
