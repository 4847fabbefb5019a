/*
 * feeds.c - each listener's newest accepted message, read back from the
 * journal (see feeds.h).
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "feeds.h"

int
hq_feeds_last_seen(hq_journal *j, const char *const *names, int n, uint64_t max, uint64_t *out_us, uint64_t *oldest_us)
{
	int found = 0;
	uint64_t id = hq_journal_next_id(j);
	*oldest_us = 0;
	for (int i = 0; i < n; i++)
		out_us[i] = 0;
	while (id > 1 && found < n) {
		if (max-- == 0)
			return 0; /* *oldest_us: silent at least since then */
		id--;
		hq_record r;
		void *mem;
		int rc = hq_journal_get(j, id, &r, &mem);
		if (rc == HQ_ENOTFOUND)
			continue; /* purged */
		if (rc != 0)
			return rc;
		*oldest_us = r.received_us;
		int ok = r.state == HQ_MSG_ACCEPTED || r.state == HQ_MSG_UNROUTED ||
			 (r.state == HQ_MSG_DUPLICATE && r.ack[1] == 'A');
		for (int i = 0; ok && i < n; i++)
			if (out_us[i] == 0 && r.f[HQ_F_LISTENER].n == strlen(names[i]) &&
			    memcmp(r.f[HQ_F_LISTENER].p, names[i], r.f[HQ_F_LISTENER].n) == 0) {
				out_us[i] = r.received_us;
				found++;
			}
		free(mem);
	}
	if (found < n)
		*oldest_us = 0; /* the whole journal was read */
	return 0;
}
