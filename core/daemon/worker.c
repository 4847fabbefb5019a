/*
 * worker.c - one delivery worker's thread (see worker.h, delivery.h).
 *
 * Per target, one thread runs rounds: fill the free request slots with
 * due deliveries (fifo: one slot, and a delivery waiting for its retry
 * holds back the ones behind it; none: `concurrency` slots), let libcurl's
 * multi interface move them, classify what finished, write the outcomes
 * in one transaction, sleep in curl_multi_poll until a transfer moves, a
 * retry falls due, or intake wakes it.  No journal transaction is open
 * across a network call: due messages are copied out (hq_journal_due),
 * outcomes written in a new write transaction.
 *
 * Outcomes are decided by hq_retry_decide() (queue/retry.h): 2xx
 * delivered; network errors, timeouts, 408, 425, 429, 5xx, 307, 308
 * retried with backoff; other 3xx and 4xx, or the limits, dead.  While a
 * target is down the worker sends one probe at a time on the target's own
 * backoff (not every queued message on its own schedule), and when
 * outcomes cannot be written it pauses in memory instead of re-sending at
 * once.  A FIFO head that cannot be read stops the target (log, /healthz,
 * hl7qd.status).  Logs name the target, journal id, control id and type,
 * never the message or the answer's body (that goes to the journal only).
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "hl7/payload.h"
#include "queue/retry.h"
#include "worker.h"

#define MAX_ROUND 256

/* Dead-letter lines: at most 10 a minute per worker; down/back: 6 a minute. */
#define DEAD_LOG_BURST 10
#define STATE_LOG_BURST 6
#define LOG_WINDOW_MS 60000

/* The "json" body's metadata of d (pointers into d). */
static hq_payload_meta
payload_meta(const hq_due *d)
{
	return (hq_payload_meta){d->id,		 d->received_us,   d->listener,	    d->peer,
				 d->type,	 d->control_id,	   d->version,	    d->sending_app,
				 d->sending_fac, d->receiving_app, d->receiving_fac};
}

/*
 * OAuth2 client credentials: the token (hq_auth_oauth2_fetch), cached
 * until shortly before it expires; each fetched token is a generation
 * (see worker.token_gen).  Returns 0, or -1 with why (no secret in it).
 */
static int
oauth2_token(worker *w, char *why, size_t cap)
{
	if (w->auth.token && hq_wall_us() < w->token_expires_us)
		return 0;
	int64_t expires;
	if (hq_auth_oauth2_fetch(&w->auth, w->t, &expires, why, cap) != 0)
		return -1;
	w->token_gen++;
	w->gen_after_401 = w->want_refresh;
	w->gen_proven = 0;
	w->want_refresh = 0;
	/* refetch a minute early (or at half-life for short tokens) */
	int64_t margin = expires > 120 ? 60 : expires / 2;
	w->token_expires_us = hq_wall_us() + (uint64_t)(expires - margin) * 1000000;
	return 0;
}

/*
 * format = fhir: the Bundle of s's message into s->payload (0), or, when
 * there is none to send, s->settled filled and 1: a type without a mapping
 * is dead or skipped (fhir_unsupported), a Bundle over fhir_max_entries or
 * a message that cannot be converted is dead, with the reason (segment and
 * field, never patient data) in the attempt.
 */
static int
fhir_payload(worker *w, slot *s)
{
	char why[256];
	hq_fhir_stats st;
	int rc = hq_fhir_render(s->due.raw, s->due.raw_len, &w->fhir, &s->payload, &s->payload_len,
				&st, why, sizeof why);
	if (rc == 0)
		return 0;
	if (rc == ENOMEM)
		return -1;
	hq_outcome *o = &s->settled;
	memset(o, 0, sizeof *o);
	o->id = s->due.id;
	o->epoch = s->due.epoch; /* a replay meanwhile makes this outcome stale */
	o->at_us = hq_wall_us();
	int skip = rc == HQ_EUNSUPPORTED && w->t->fhir_skip_unsupported;
	o->state = skip ? HQ_DLV_DELIVERED : HQ_DLV_DEAD;
	snprintf(o->error, sizeof o->error, "fhir: %s%s", skip ? "skipped: " : "", why);
	hq_count(&w->m->attempts, 1);
	hq_count(skip ? &w->m->delivered : &w->m->dead, 1);
	hq_log_limited(&w->rl_dead, DEAD_LOG_BURST, LOG_WINDOW_MS, "dead-letter lines",
		       skip ? HQ_LOG_INFO : HQ_LOG_WARNING, "target %s: id=%llu ctrl=%.*s type=%s %s (%s)",
		       w->t->name, (unsigned long long)o->id, (int)strnlen(s->due.control_id, 64),
		       s->due.control_id, s->due.type, skip ? "skipped" : "dead-lettered", o->error);
	return 1;
}

static int
slot_start(worker *w, slot *s)
{
	const hq_target_conf *t = w->t;
	char ctype[128];
	const char *accept = NULL;

	if (s->easy == NULL) {
		if ((s->easy = curl_easy_init()) == NULL)
			return -1;
		hq_http_easy_setup(s->easy, t, &s->ans, s->errbuf, s);
	}
	if (t->format == HQ_FMT_GOOGLE || t->format == HQ_FMT_JSON) {
		hq_payload_meta meta = payload_meta(&s->due);
		s->payload = t->format == HQ_FMT_GOOGLE
				     ? hq_payload_google(s->due.raw, s->due.raw_len, &s->payload_len)
				     : hq_payload_json(&meta, s->due.raw, s->due.raw_len, &s->payload_len);
		if (s->payload == NULL)
			return -1;
		snprintf(ctype, sizeof ctype, "application/json");
	} else if (t->format == HQ_FMT_FHIR) {
		int rc = fhir_payload(w, s);
		if (rc != 0)
			return rc;
		snprintf(ctype, sizeof ctype, "application/fhir+json");
		accept = "application/fhir+json";
	} else {
		const char *cs = hq_payload_charset(s->due.charset);
		snprintf(ctype, sizeof ctype, "x-application/hl7-v2+er7%s%s",
			 cs ? "; charset=" : "", cs ? cs : "");
	}
	struct curl_slist *h = hq_http_headers(&s->hdrs, t, ctype, accept, s->due.idem_key,
					       s->due.id, s->due.control_id, s->due.type);
	hq_http_prepare_post(s->easy, h, s->payload ? s->payload : s->due.raw,
			     s->payload ? s->payload_len : s->due.raw_len, &s->ans, s->errbuf);
	hq_auth_apply(s->easy, t, &w->auth);
	s->start_us = hq_wall_us();
	s->token_gen = w->token_gen;
	s->busy = 1;
	return curl_multi_add_handle(w->multi, s->easy) == CURLM_OK ? 0 : -1;
}

static void
slot_release(worker *w, slot *s)
{
	curl_multi_remove_handle(w->multi, s->easy);
	free(s->payload);
	s->payload = NULL;
	free(s->due.raw);
	s->due.raw = NULL;
	s->busy = 0;
}

/* Target-level backoff while down (probes): retry_initial doubling to retry_max, jittered. */
static uint64_t
probe_delay_us(const hq_target_conf *t, uint32_t streak)
{
	hq_retry_policy p = {t->retry_initial_ms, t->retry_max_ms, 0, 0};
	hq_attempt_result r = {0, -1, 0, streak ? streak : 1, 0, 0, (double)rand() / RAND_MAX};
	return hq_retry_decide(&p, &r).at_us;
}

/*
 * Counts the outcome o of s in the target's metrics and logs what an
 * operator needs: down (once, then probes on the target's backoff), back,
 * dead-lettered (rate-limited); a delivery at debug level.
 */
static void
account(worker *w, const slot *s, const hq_outcome *o, int status, int64_t ra, uint64_t now, uint32_t attempts)
{
	const hq_target_conf *t = w->t;
	int cn = (int)strnlen(s->due.control_id, 64);
	if (o->state == HQ_DLV_DELIVERED) {
		hq_count(&w->m->delivered, 1);
		if (w->down) {
			hq_log_limited(&w->rl_state, STATE_LOG_BURST, LOG_WINDOW_MS, "target down/back lines",
				       HQ_LOG_NOTICE, "target %s: back (HTTP %d)", t->name, status);
			w->down = 0;
		}
		w->down_streak = 0;
		hq_log(HQ_LOG_DEBUG, "target %s: id=%llu ctrl=%.*s type=%s delivered (HTTP %d, %u us)",
		       t->name, (unsigned long long)o->id, cn, s->due.control_id, s->due.type,
		       status, o->latency_us);
	} else if (o->state == HQ_DLV_RETRY) {
		hq_count(&w->m->retried, 1);
		if (!w->down) {
			hq_log_limited(&w->rl_state, STATE_LOG_BURST, LOG_WINDOW_MS, "target down/back lines",
				       HQ_LOG_WARNING, "target %s: down (%s); retrying", t->name, o->error);
			w->down = 1;
		}
		/* down: one probe at a time, on the target's own backoff, instead
		 * of every queued message retrying on its own schedule */
		w->down_streak++;
		uint64_t at = probe_delay_us(t, w->down_streak);
		if (ra > 0 && o->next_us > now + at)
			at = o->next_us - now; /* the target asked for longer */
		w->probe_at_us = now + at;
	} else {
		hq_count(&w->m->dead, 1);
		hq_log_limited(&w->rl_dead, DEAD_LOG_BURST, LOG_WINDOW_MS, "dead-letter lines", HQ_LOG_WARNING,
			       "target %s: id=%llu ctrl=%.*s type=%s dead-lettered after %u attempt%s (%s)",
			       t->name, (unsigned long long)o->id, cn, s->due.control_id,
			       s->due.type, attempts, attempts == 1 ? "" : "s", o->error);
	}
}

/*
 * Decides the outcome of the transfer in s (hq_retry_decide) and fills o.
 * Returns 0 when o is to be written, or 1 when the request is simply sent
 * again (a 401 for a token since replaced: not the message's fault).
 */
static int
classify(worker *w, slot *s, CURLcode res, hq_outcome *o)
{
	const hq_target_conf *t = w->t;
	uint64_t now = hq_wall_us();
	int status = 0;
	int64_t ra = -1;
	int stale = 0;

	memset(o, 0, sizeof *o);
	o->id = s->due.id;
	o->epoch = s->due.epoch; /* a replay meanwhile makes this outcome stale */
	o->at_us = now;
	o->latency_us = (uint32_t)(now - s->start_us);
	hq_hist_observe_us(&w->m->latency, o->latency_us);
	memcpy(o->body, s->ans.body, s->ans.len);
	o->body_len = s->ans.len;
	hq_count(&w->m->attempts, 1);
	hq_http_result(s->easy, res, s->errbuf, &status, &ra, o->error, sizeof o->error);
	if (res == CURLE_OK) {
		o->http_status = status;
		if (status >= 200 && status < 300)
			hq_count(&w->m->status_2xx, 1);
		else if (status >= 500)
			hq_count(&w->m->status_5xx, 1);
		else
			hq_count(&w->m->status_4xx, 1); /* 3xx with them, as ever */
		if (status == 401 && t->auth == HQ_AUTH_OAUTH2) {
			if (s->token_gen != w->token_gen) {
				stale = 1; /* sent with a token already replaced */
			} else if (!w->gen_after_401 || w->gen_proven) {
				stale = 1; /* maybe revoked: one refresh for this generation */
				w->want_refresh = 1;
				w->token_expires_us = 0;
			}
		}
		if (status >= 200 && status < 300 && s->token_gen == w->token_gen)
			w->gen_proven = 1;
	} else {
		hq_count(&w->m->network_errors, 1);
	}
	uint32_t attempts = s->due.attempts + 1;
	hq_retry_policy pol = {t->retry_initial_ms, t->retry_max_ms, (uint32_t)t->max_attempts, t->max_age_ms};
	hq_attempt_result ar = {
		status, ra, stale, attempts, now, s->due.age_from_us, (double)rand() / RAND_MAX};
	hq_next next = hq_retry_decide(&pol, &ar);
	if (next.kind == HQ_NEXT_RESEND)
		return 1;
	o->state = next.kind == HQ_NEXT_DELIVERED ? HQ_DLV_DELIVERED
		   : next.kind == HQ_NEXT_RETRY	  ? HQ_DLV_RETRY
						  : HQ_DLV_DEAD;
	o->next_us = next.at_us;
	if (next.kind == HQ_NEXT_DEAD && (status == 0 || status >= 500 || status == 408 || status == 425 ||
					  status == 429 || status == 307 || status == 308)) {
		size_t n = strlen(o->error);
		snprintf(o->error + n, sizeof o->error - n, "; %s", next.why);
	}
	account(w, s, o, status, ra, now, attempts);
	return 0;
}
/* What a worker's rounds carry over: the outcomes not yet written, and
 * the ids a refill leaves out (in flight, or done and not yet written). */
typedef struct round_state {
	hq_outcome *outs;
	size_t cap, nout;
	uint64_t first_out_us; /* when the oldest unwritten outcome came */
	uint64_t *skip;
	size_t nskip;
} round_state;

/* Replacing workers of a reload: they finish their requests first, so
 * that no message is in flight twice and FIFO order holds. */
static void
wait_for_predecessors(worker *w)
{
	for (int i = 0; i < w->npred; i++)
		while (!__atomic_load_n(&w->pred[i]->exited, __ATOMIC_ACQUIRE) && !w->stop)
			curl_multi_poll(w->multi, NULL, 0, 10, NULL);
	__atomic_store_n(&w->waited, 1, __ATOMIC_RELEASE); /* the reaper may free pred now */
}

/* oauth2: 1 when there is a token to send with; else the target is down,
 * the worker has waited a little, and 0. */
static int
token_ready(worker *w)
{
	const hq_target_conf *t = w->t;
	char why[256];
	if (oauth2_token(w, why, sizeof why) == 0)
		return 1;
	if (!w->down)
		hq_log(HQ_LOG_WARNING, "target %s: down (%s); retrying", t->name, why);
	w->down = 1;
	curl_multi_poll(w->multi, NULL, 0, (int)(t->retry_initial_ms < 5000 ? t->retry_initial_ms : 5000), NULL);
	return 0;
}

/* Lists the ids a refill leaves out into r->skip; returns the free slots. */
static int
list_skipped(worker *w, round_state *r)
{
	int free_slots = 0;
	r->nskip = 0;
	for (int i = 0; i < w->nslots; i++) {
		if (w->slots[i].busy)
			r->skip[r->nskip++] = w->slots[i].due.id;
		else
			free_slots++;
	}
	for (size_t i = 0; i < r->nout; i++)
		r->skip[r->nskip++] = r->outs[i].id;
	return free_slots;
}

/* Whether this round refills, with how many at most (*want), and until
 * when the target holds back (*hold_us; 0: it does not). */
static int
plan_refill(const worker *w, int free_slots, int draining, uint64_t now_us, size_t *want, uint64_t *hold_us)
{
	/* Refill in bunches (a quarter of the slots, or all when idle):
	 * each refill is a read transaction and a queue scan. */
	int refill = free_slots > 0 && !draining &&
		     (free_slots >= (w->nslots + 3) / 4 || free_slots == w->nslots);
	*want = (size_t)free_slots < MAX_ROUND ? (size_t)free_slots : MAX_ROUND;
	*hold_us = 0;
	if (now_us < w->pause_until_us)
		*hold_us = w->pause_until_us; /* outcomes could not be written */
	else if (w->down && now_us < w->probe_at_us)
		*hold_us = w->probe_at_us; /* down: the next probe */
	if (w->down && free_slots < w->nslots)
		refill = 0; /* down: one probe in flight at a time */
	if (w->down)
		*want = 1;
	if (*hold_us)
		refill = 0;
	return refill;
}

/* Reads up to want due deliveries and starts them in free slots; *next_us
 * gets when the next one falls due (0: none known). */
static void
refill_slots(worker *w, round_state *r, hq_due_order order, size_t want, uint64_t now_us, uint64_t *next_us)
{
	const hq_target_conf *t = w->t;
	hq_due due[MAX_ROUND];
	long n = hq_journal_due(w->j, t->name, now_us, order, w->shard, w->nshards, r->skip,
				r->nskip, due, want, next_us);
	if (n == HQ_ECORRUPT && order == HQ_DUE_FIFO) {
		/* The head cannot be read or opened: skipping it would break
		 * the order, so the target stops here, and says why. */
		if (w->stuck_id != due[0].id)
			hq_log(HQ_LOG_ERR, "target %s: stopped: the head of its queue, id=%llu, cannot be read or opened (journal damaged, or sealed with a key not loaded); fix it, or `hl7q purge %llu`",
			       t->name, (unsigned long long)due[0].id, (unsigned long long)due[0].id);
		w->stuck_id = due[0].id;
		__atomic_store_n(&w->m->stuck_id, due[0].id, __ATOMIC_RELAXED);
		*next_us = now_us + 5000000; /* look again (a reload may bring the key) */
		n = 0;
	} else if (n < 0) {
		hq_log(HQ_LOG_ERR, "target %s: cannot read the journal: %s", t->name, hq_strerror((int)n));
	} else if (w->stuck_id) {
		hq_log(HQ_LOG_NOTICE, "target %s: its queue moves again", t->name);
		w->stuck_id = 0;
		__atomic_store_n(&w->m->stuck_id, 0, __ATOMIC_RELAXED);
	}
	for (long k = 0, i = 0; k < n; k++) {
		while (w->slots[i].busy)
			i++;
		w->slots[i].due = due[k];
		int rc = slot_start(w, &w->slots[i]);
		if (rc == 1 && r->nout < r->cap) { /* settled without a request (format fhir) */
			if (r->nout == 0)
				r->first_out_us = hq_wall_us();
			r->outs[r->nout++] = w->slots[i].settled;
			slot_release(w, &w->slots[i]);
		} else if (rc == 1) {
			slot_release(w, &w->slots[i]); /* no room to record it: pending, next round */
		} else if (rc != 0) {
			hq_log(HQ_LOG_ERR, "target %s: cannot start a request", t->name);
			slot_release(w, &w->slots[i]);
		}
	}
}

/* Classifies the transfers that finished into r's outcomes; returns how many finished. */
static int
collect_finished(worker *w, round_state *r)
{
	CURLMsg *m;
	int left, finished = 0;
	while (r->nout < r->cap && (m = curl_multi_info_read(w->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		slot *s;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
		if (r->nout == 0)
			r->first_out_us = hq_wall_us();
		if (classify(w, s, m->data.result, &r->outs[r->nout]) == 0)
			r->nout++;
		slot_release(w, s);
		finished++;
	}
	return finished;
}

/* Writes r's outcomes in one transaction.  Not written: the messages are
 * due again as they were, and the worker backs off in memory instead of
 * re-sending at once. */
static void
write_outcomes(worker *w, round_state *r)
{
	int rc = hq_journal_record_outcomes(w->j, w->t->name, r->outs, r->nout);
	if (rc != 0) {
		w->write_failures++;
		uint64_t d = probe_delay_us(w->t, w->write_failures);
		w->pause_until_us = hq_wall_us() + d;
		hq_log(HQ_LOG_ERR, "target %s: cannot record %zu outcomes: %s (they will be retried in %llu ms)",
		       w->t->name, r->nout, hq_strerror(rc), (unsigned long long)(d / 1000));
	} else {
		w->write_failures = 0;
	}
	r->nout = 0;
}

/* How long a round with nothing finished sleeps: until intake's wake-up
 * or the next second, the next due retry or the end of a hold; 20 ms at
 * most while outcomes wait to be written. */
static long
idle_wait_ms(uint64_t hold_us, uint64_t next_us, size_t nout)
{
	long wait_ms = 1000;
	if (hold_us && (next_us == 0 || next_us < hold_us))
		next_us = hold_us;
	if (next_us) {
		uint64_t now = hq_wall_us();
		long until = next_us > now ? (long)((next_us - now) / 1000) + 1 : 0;
		if (until < wait_ms)
			wait_ms = until;
	}
	if (nout > 0 && wait_ms > 20)
		wait_ms = 20; /* the unwritten outcomes */
	return wait_ms;
}

void *
hq_worker_main(void *arg)
{
	worker *w = arg;
	const hq_target_conf *t = w->t;
	hq_due_order order = hq_worker_due_order(t);
	/* Outcomes are written in batches: when twice as many as the slots
	 * have gathered, or 20 ms after the first, or at once when draining
	 * with nothing else running (every write transaction is an fsync that
	 * intake waits behind; writing whenever the slots ran empty made a
	 * trickle of messages cost one fsync for every few deliveries).
	 * Until then their ids stay out of the next rounds, like in-flight
	 * ones (after a crash they are sent again, as in-flight ones are). */
	round_state r = {0};
	r.cap = (size_t)w->nslots * 4;
	r.outs = hq_xcalloc(r.cap, sizeof *r.outs);
	r.skip = hq_xcalloc(r.cap + (size_t)w->nslots, sizeof *r.skip);
	uint64_t drain_since = 0;
	char tname[16]; /* "dlv-TARGET", cut to the 15 bytes Linux keeps (ps, top, /proc) */
	snprintf(tname, sizeof tname, "dlv-%s", t->name);
	pthread_setname_np(pthread_self(), tname);

	wait_for_predecessors(w);
	while (!w->stop) {
		__atomic_store_n(&w->woken, 0, __ATOMIC_RELAXED); /* wakes from here on count */
		int draining = __atomic_load_n(&w->draining, __ATOMIC_RELAXED);
		if (draining && drain_since == 0)
			drain_since = hq_wall_us();
		int free_slots = list_skipped(w, &r);
		if (free_slots > 0 && t->auth == HQ_AUTH_OAUTH2 && !token_ready(w))
			continue;
		uint64_t now_us = hq_wall_us(), hold_us, next_us = 0;
		size_t want;
		if (plan_refill(w, free_slots, draining, now_us, &want, &hold_us))
			refill_slots(w, &r, order, want, now_us, &next_us);
		int running = 0;
		curl_multi_perform(w->multi, &running);
		int finished = collect_finished(w, &r);
		int still = 0;
		for (int i = 0; i < w->nslots; i++)
			still += w->slots[i].busy;
		int was = __atomic_exchange_n(&w->inflight, still + (int)r.nout, __ATOMIC_RELAXED);
		__atomic_fetch_add(&w->m->inflight, still + (int)r.nout - was, __ATOMIC_RELAXED);
		if (draining && ((still == 0 && r.nout == 0) || hq_wall_us() - drain_since > 10000000))
			break; /* done (or 10 s: what is left is pending again at the next start) */
		hq_log_flush(&w->rl_dead, LOG_WINDOW_MS, "dead-letter lines");
		if (r.nout > 0 && (r.nout >= 2 * (size_t)w->nslots || (still == 0 && draining) ||
				   hq_wall_us() - r.first_out_us >= 20000)) {
			write_outcomes(w, &r);
			continue; /* look for more work at once */
		}
		if (finished)
			continue; /* free slots: fill them */
		curl_multi_poll(w->multi, NULL, 0, (int)idle_wait_ms(hold_us, next_us, r.nout), NULL);
	}
	if (r.nout > 0)
		hq_journal_record_outcomes(w->j, t->name, r.outs, r.nout);
	for (int i = 0; i < w->nslots; i++)
		if (w->slots[i].busy)
			slot_release(w, &w->slots[i]);
	free(r.outs);
	free(r.skip);
	__atomic_fetch_sub(&w->m->inflight, __atomic_exchange_n(&w->inflight, 0, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
	__atomic_store_n(&w->exited, 1, __ATOMIC_RELEASE);
	return NULL;
}
