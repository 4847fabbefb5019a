/*
 * delivery.c - the set of delivery workers (see delivery.h): built from a
 * config with their secrets read, started, swapped on a reload (unchanged
 * workers go on, changed ones drain and their successors wait for them),
 * reaped and stopped.  What one worker does is worker.c.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "delivery.h"
#include "worker.h"

struct hq_delivery_sys {
	worker **workers; /* the current ones */
	int n;
	worker **retired; /* replaced or removed by a reload: joined at stop */
	int nretired;
	hq_journal *j;
	int held; /* HL7Q_TEST_HOLD_DELIVERY: no threads */
};

/* Frees a worker whose thread has been joined (or never started). */
static void
worker_free(worker *w)
{
	if (w == NULL)
		return;
	for (int k = 0; k < w->nslots; k++)
		if (w->slots[k].easy)
			curl_easy_cleanup(w->slots[k].easy);
	if (w->multi)
		curl_multi_cleanup(w->multi);
	free(w->slots);
	hq_auth_free(&w->auth);
	hq_tz_free(w->fhir_tz);
	memset(&w->fhir, 0, sizeof w->fhir);
	free(w);
}

/* How many workers share target t's queue. */
static uint32_t
shards_of(const hq_target_conf *t)
{
	/* An unordered target gets two workers, each with its share of the
	 * queue (ids by parity): the work per request (TLS, HTTP/2, libcurl)
	 * outweighs one core.  Ordered targets keep one. */
	return t->ordering == HQ_ORDER_NONE && t->concurrency >= 4 ? 2 : 1;
}

/* A worker for shard `shard` of target t, its secrets read (not started). */
static worker *
worker_new(const hq_target_conf *t, hq_journal *j, uint32_t shard, char *err, size_t errcap)
{
	worker *w = hq_xcalloc(1, sizeof *w);
	w->t = t;
	w->j = j;
	w->nshards = shards_of(t);
	w->shard = shard;
	if (hq_auth_load(&w->auth, t, err, errcap) != 0)
		goto fail;
	if (t->format == HQ_FMT_FHIR) {
		char why[512];
		if (hq_fhir_opts_init(&w->fhir, t->fhir_id_key_file, t->fhir_timezone, &w->fhir_tz,
				      why, sizeof why) != 0) {
			snprintf(err, errcap, "target %s: %s", t->name, why);
			goto fail;
		}
		w->fhir.batch = t->fhir_batch;
		w->fhir.max_entries = t->fhir_max_entries;
		w->fhir.patient_match = t->fhir_patient_match;
	}
	w->nslots = t->ordering == HQ_ORDER_FIFO ? 1 : t->concurrency;
	if (w->nshards > 1)
		w->nslots = (t->concurrency + 1) / 2;
	w->slots = hq_xcalloc((size_t)w->nslots, sizeof *w->slots);
	w->multi = hq_http_multi_new(w->nslots);
	if (w->multi == NULL) {
		snprintf(err, errcap, "target %s: out of memory", t->name);
		goto fail;
	}
	w->m = hq_metrics_target(t->name);
	return w;
fail:
	worker_free(w);
	return NULL;
}

/* Starts w's thread, with the warnings and the line a target gets at start. */
static int
worker_start(worker *w, char *err, size_t errcap)
{
	const hq_target_conf *t = w->t;
	if (w->shard == 0) {
		if (t->auth == HQ_AUTH_BASIC && !t->password_file[0])
			hq_log(HQ_LOG_WARNING,
			       "target %s: password is written in the config; use password_file", t->name);
		if (t->insecure)
			hq_log(HQ_LOG_WARNING,
			       "target %s: insecure = true: TLS certificates are NOT verified", t->name);
	}
	if (pthread_create(&w->thread, NULL, hq_worker_main, w) != 0) {
		snprintf(err, errcap, "target %s: cannot start its thread", t->name);
		return -1;
	}
	w->started = 1;
	if (w->shard == 0)
		hq_log(HQ_LOG_NOTICE, "target %s: delivering to %s (%s, %s, %d in flight at most)",
		       t->name, t->url,
		       t->format == HQ_FMT_RAW	  ? "raw"
		       : t->format == HQ_FMT_JSON ? "json"
		       : t->format == HQ_FMT_FHIR ? "fhir"
						  : "google-hl7v2",
		       t->ordering == HQ_ORDER_FIFO	 ? "fifo"
		       : t->ordering == HQ_ORDER_PATIENT ? "fifo per patient"
							 : "unordered",
		       t->concurrency > w->nslots && t->ordering != HQ_ORDER_FIFO ? t->concurrency : w->nslots);
	return 0;
}

/* Builds the (unstarted) workers of cfg.  Returns their count, or -1 with err. */
static int
workers_new(const hq_config *cfg, hq_journal *j, worker ***out, char *err, size_t errcap)
{
	int n = 0;
	for (int i = 0; i < cfg->ntargets; i++)
		n += (int)shards_of(&cfg->targets[i]);
	worker **v = hq_xcalloc((size_t)(n ? n : 1), sizeof *v);
	for (int i = 0, k = 0; i < cfg->ntargets; i++)
		for (uint32_t sh = 0; sh < shards_of(&cfg->targets[i]); sh++, k++)
			if ((v[k] = worker_new(&cfg->targets[i], j, sh, err, errcap)) == NULL) {
				while (k-- > 0)
					worker_free(v[k]);
				free(v);
				return -1;
			}
	*out = v;
	return n;
}

hq_due_order
hq_worker_due_order(const hq_target_conf *t)
{
	return t->ordering == HQ_ORDER_FIFO	 ? HQ_DUE_FIFO
	       : t->ordering == HQ_ORDER_PATIENT ? HQ_DUE_PATIENT
						 : HQ_DUE_NONE;
}

static int
set_orders(const hq_config *cfg, hq_journal *j, char *err, size_t errcap)
{
	for (int i = 0; i < cfg->ntargets; i++) {
		int rc = hq_journal_set_order(j, cfg->targets[i].name, hq_worker_due_order(&cfg->targets[i]));
		if (rc != 0) {
			snprintf(err, errcap, "target %s: cannot index its queue: %s",
				 cfg->targets[i].name, hq_strerror(rc));
			return -1;
		}
	}
	return 0;
}

int
hq_delivery_start(const hq_config *cfg, hq_journal *j, hq_delivery_sys **out, char *err, size_t errcap)
{
	hq_delivery_sys *d = hq_xcalloc(1, sizeof *d);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	d->j = j;
	if ((d->n = workers_new(cfg, j, &d->workers, err, errcap)) < 0) {
		free(d);
		return HQ_ECONFIG;
	}
	/* Each target's due index kept for its ordering (built once for a
	 * journal from before it, or when the ordering changed). */
	if (set_orders(cfg, j, err, errcap) != 0) {
		for (int i = 0; i < d->n; i++)
			worker_free(d->workers[i]);
		free(d->workers);
		free(d);
		return HQ_ECONFIG;
	}
	/* Test seam for the benchmark: fill the queues without draining them. */
	const char *hold = getenv("HL7Q_TEST_HOLD_DELIVERY");
	if (hold && *hold) {
		hq_log(HQ_LOG_WARNING, "test seam: delivery workers not started (HL7Q_TEST_HOLD_DELIVERY)");
		d->held = 1;
		*out = d;
		return 0;
	}
	for (int i = 0; i < d->n; i++)
		if (worker_start(d->workers[i], err, errcap) != 0) {
			hq_delivery_stop(d);
			return HQ_ECONFIG;
		}
	*out = d;
	return 0;
}

/* Whether w can go on as the worker of t: same settings, same secrets. */
static int
worker_unchanged(const worker *w, const worker *fresh)
{
	hq_target_conf a = *w->t, b = *fresh->t;
	a.line = b.line = 0;
	return memcmp(&a, &b, sizeof a) == 0 && w->shard == fresh->shard &&
	       w->nshards == fresh->nshards && hq_auth_same(&w->auth, &fresh->auth, w->t);
}

int
hq_delivery_reload(hq_delivery_sys *d, const hq_config *cfg, char *err, size_t errcap)
{
	worker **fresh;
	hq_delivery_reap(d);
	int n = workers_new(cfg, d->j, &fresh, err, errcap);
	if (n < 0)
		return HQ_ECONFIG; /* a secret cannot be read: nothing changes */
	d->retired = hq_xrealloc(d->retired, (size_t)(d->nretired + d->n + 1) * sizeof *d->retired);
	int *kept = hq_xcalloc((size_t)(d->n + 1), sizeof *kept);
	/* Unchanged workers go on (their config stays alive: the daemon frees a
	 * config only once hq_delivery_uses says no worker runs with it); the
	 * others drain, their successors wait for them, and hq_delivery_reap
	 * joins and frees them once they have exited. */
	for (int i = 0; i < n; i++) {
		worker *nw = fresh[i];
		for (int k = 0; k < d->n; k++) {
			worker *ow = d->workers[k];
			if (kept[k] || strcmp(ow->t->name, nw->t->name) != 0)
				continue;
			if (worker_unchanged(ow, nw)) {
				worker_free(nw);
				fresh[i] = ow;
				kept[k] = 1;
				break;
			}
		}
	}
	for (int k = 0; k < d->n; k++) {
		worker *ow = d->workers[k];
		if (kept[k])
			continue;
		__atomic_store_n(&ow->draining, 1, __ATOMIC_RELAXED);
		if (ow->multi && ow->started)
			curl_multi_wakeup(ow->multi);
		d->retired[d->nretired++] = ow;
		int replaced = 0;
		for (int i = 0; i < n; i++) {
			worker *nw = fresh[i];
			if (nw->started || strcmp(nw->t->name, ow->t->name) != 0 || nw->npred == 2)
				continue;
			nw->pred[nw->npred++] = ow;
			replaced = 1;
		}
		if (ow->shard == 0)
			hq_log(HQ_LOG_NOTICE, "target %s: %s; finishing its requests in flight",
			       ow->t->name, replaced ? "settings changed" : "removed");
	}
	/* An ordering that changed gets its index rebuilt; the new worker
	 * waits for the old one anyway, which takes nothing new meanwhile. */
	if (set_orders(cfg, d->j, err, errcap) != 0)
		hq_log(HQ_LOG_ERR, "%s", err);
	for (int i = 0; i < n; i++) {
		if (fresh[i]->started || d->held)
			continue;
		if (worker_start(fresh[i], err, errcap) != 0)
			hq_log(HQ_LOG_ERR, "%s", err);
	}
	free(kept);
	free(d->workers);
	d->workers = fresh;
	d->n = n;
	return 0;
}

/* Whether a worker of v[0..n) still reads ow as its predecessor. */
static int
pred_in_use(worker **v, int n, const worker *ow)
{
	for (int i = 0; i < n; i++) {
		const worker *x = v[i];
		if (!x->started || __atomic_load_n(&x->waited, __ATOMIC_ACQUIRE))
			continue;
		for (int k = 0; k < x->npred; k++)
			if (x->pred[k] == ow)
				return 1;
	}
	return 0;
}

void
hq_delivery_reap(hq_delivery_sys *d)
{
	if (d == NULL || d->nretired == 0)
		return;
	/* decide with every worker still there, then free */
	char *go = hq_xcalloc((size_t)d->nretired, 1);
	for (int i = 0; i < d->nretired; i++) {
		worker *ow = d->retired[i];
		go[i] = (!ow->started || __atomic_load_n(&ow->exited, __ATOMIC_ACQUIRE)) &&
			!pred_in_use(d->workers, d->n, ow) && !pred_in_use(d->retired, d->nretired, ow);
	}
	int k = 0;
	for (int i = 0; i < d->nretired; i++) {
		worker *ow = d->retired[i];
		if (!go[i]) {
			d->retired[k++] = ow;
			continue;
		}
		if (ow->started)
			pthread_join(ow->thread, NULL);
		worker_free(ow);
	}
	d->nretired = k;
	free(go);
}

int
hq_delivery_uses(const hq_delivery_sys *d, const hq_config *cfg)
{
	if (d == NULL || cfg->ntargets == 0)
		return 0;
	const hq_target_conf *lo = cfg->targets, *hi = cfg->targets + cfg->ntargets;
	for (int pass = 0; pass < 2; pass++) {
		worker **v = pass ? d->retired : d->workers;
		int n = pass ? d->nretired : d->n;
		for (int i = 0; i < n; i++)
			if (v[i]->t >= lo && v[i]->t < hi)
				return 1;
	}
	return 0;
}

int
hq_delivery_inflight(hq_delivery_sys *d, const char *target)
{
	int n = 0;
	for (int i = 0; d && i < d->n; i++)
		if (strcmp(d->workers[i]->t->name, target) == 0)
			n += __atomic_load_n(&d->workers[i]->inflight, __ATOMIC_RELAXED);
	for (int i = 0; d && i < d->nretired; i++)
		if (strcmp(d->retired[i]->t->name, target) == 0)
			n += __atomic_load_n(&d->retired[i]->inflight, __ATOMIC_RELAXED);
	return n;
}

uint64_t
hq_delivery_stopped(hq_delivery_sys *d, const char *target)
{
	for (int i = 0; d && i < d->n; i++)
		if (strcmp(d->workers[i]->t->name, target) == 0 && d->workers[i]->m)
			return __atomic_load_n(&d->workers[i]->m->stuck_id, __ATOMIC_RELAXED);
	return 0;
}

void
hq_delivery_wake(hq_delivery_sys *d)
{
	if (d == NULL)
		return;
	/* Coalesced: a worker already woken and not yet looking is not woken again. */
	for (int i = 0; i < d->n; i++)
		if (d->workers[i]->started && !__atomic_exchange_n(&d->workers[i]->woken, 1, __ATOMIC_RELAXED))
			curl_multi_wakeup(d->workers[i]->multi);
}

void
hq_delivery_stop(hq_delivery_sys *d)
{
	if (d == NULL)
		return;
	for (int pass = 0; pass < 2; pass++) {
		worker **v = pass ? d->retired : d->workers;
		int n = pass ? d->nretired : d->n;
		for (int i = 0; i < n; i++)
			if (v[i]->started) {
				v[i]->stop = 1;
				curl_multi_wakeup(v[i]->multi);
			}
	}
	for (int pass = 0; pass < 2; pass++) {
		worker **v = pass ? d->retired : d->workers;
		int n = pass ? d->nretired : d->n;
		for (int i = 0; i < n; i++) {
			if (v[i]->started)
				pthread_join(v[i]->thread, NULL);
			worker_free(v[i]);
		}
		free(v);
	}
	free(d);
}
