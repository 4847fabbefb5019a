/*
 * feeds.c - last messages and the silent-feed log lines (see feeds.h).
 */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "feeds.h"
#include "log.h"
#include "metrics.h"

void
hq_feeds_configure(const hq_config *cfg, hq_feeds_last_seen_fn last_seen, void *ctx, uint64_t now_us)
{
	int nm = __atomic_load_n(&hq_m.nlisteners, __ATOMIC_ACQUIRE);
	for (int i = 0; i < nm; i++) /* removed by a reload: no alarm */
		__atomic_store_n(&hq_m.listeners[i].expect_within_ms, 0, __ATOMIC_RELAXED);

	const char **names = hq_xcalloc((size_t)cfg->nlisteners + 1, sizeof *names);
	uint64_t *last = hq_xcalloc((size_t)cfg->nlisteners + 1, sizeof *last);
	int n = 0;
	for (int i = 0; i < cfg->nlisteners; i++) {
		const hq_listener_conf *lc = &cfg->listeners[i];
		hq_listener_metrics *m = hq_metrics_listener(lc->name);
		__atomic_store_n(&m->expect_from_min, lc->expect_from_min, __ATOMIC_RELAXED);
		__atomic_store_n(&m->expect_to_min, lc->expect_to_min, __ATOMIC_RELAXED);
		__atomic_store_n(&m->expect_within_ms, lc->expect_within_ms, __ATOMIC_RELAXED);
		if (__atomic_load_n(&m->last_message_us, __ATOMIC_RELAXED) == 0)
			names[n++] = lc->name;
	}
	if (n == 0) {
		free(names);
		free(last);
		return;
	}
	uint64_t oldest = 0;
	/* no last_seen (a reload): a listener it added is a new feed, counting from now */
	int rc = last_seen ? last_seen(ctx, names, n, last, &oldest) : 0;
	if (rc != 0)
		hq_log(HQ_LOG_WARNING,
		       "cannot read the last messages back from the journal: %s; "
		       "silent-feed alarms count from now",
		       hq_strerror(rc));
	for (int i = 0; i < n; i++) {
		uint64_t t = rc != 0 ? now_us : last[i] ? last[i] : oldest ? oldest : now_us;
		hq_listener_metrics *m = hq_metrics_listener(names[i]);
		uint64_t zero = 0;
		__atomic_compare_exchange_n(&m->last_message_us, &zero, t, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	}
	free(names);
	free(last);
}

void
hq_feeds_watch(const hq_config *cfg, uint64_t now_us)
{
	static uint64_t at_us;
	static uint64_t silent_last[64]; /* by metrics slot: the last message when reported silent; 0 not */
	if (now_us - at_us < 1000000)
		return;
	at_us = now_us;
	for (int i = 0; i < cfg->nlisteners; i++) {
		hq_listener_metrics *m = hq_metrics_listener(cfg->listeners[i].name);
		int slot = (int)(m - hq_m.listeners);
		uint64_t quiet, last = __atomic_load_n(&m->last_message_us, __ATOMIC_RELAXED);
		int silent = hq_metrics_listener_silent(m, now_us, &quiet);
		if (silent && !silent_last[slot]) {
			hq_log(HQ_LOG_WARNING, "listener %s: silent: no message for %llu s (expect_within %llu s)",
			       m->name, (unsigned long long)(quiet / 1000000),
			       (unsigned long long)(cfg->listeners[i].expect_within_ms / 1000));
			silent_last[slot] = last ? last : 1;
		} else if (!silent && silent_last[slot]) {
			if (last > silent_last[slot])
				hq_log(HQ_LOG_NOTICE, "listener %s: messages again (the first for %llu s)",
				       m->name, (unsigned long long)((last - silent_last[slot]) / 1000000));
			else
				hq_log(HQ_LOG_NOTICE, "listener %s: no longer silent: outside expect_hours or no expect_within now",
				       m->name);
			silent_last[slot] = 0;
		}
	}
}

void
hq_feeds_status(const hq_config *cfg, hq_status *s)
{
	for (int i = 0; i < cfg->nlisteners; i++) {
		const hq_listener_metrics *m = hq_metrics_listener(cfg->listeners[i].name);
		hq_status_listener_add(s, m->name)->last_message_us = __atomic_load_n(
			&m->last_message_us, __ATOMIC_RELAXED);
	}
}
