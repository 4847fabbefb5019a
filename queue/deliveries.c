/*
 * deliveries.c - the delivery side of the queue: claims (the messages due
 * for a target, copied out), outcomes of attempts, replays.
 *
 * Invariant: no transaction stays open across a network call: a claim
 * copies the message out of a short read transaction, and the outcome is
 * recorded later in a new write transaction, which ignores an outcome
 * whose delivery was replayed meanwhile (the replay epoch).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "journal_int.h"

static void
copy_field(char *dst, size_t cap, hq_str s)
{
	size_t n = s.n < cap - 1 ? s.n : cap - 1;
	if (n)
		memcpy(dst, s.p, n);
	dst[n] = 0;
}

/* Makes *buf hold at least n bytes. */
static int
grow(unsigned char **buf, size_t *cap, size_t n)
{
	if (n <= *cap)
		return 0;
	unsigned char *p = realloc(*buf, n);
	if (p == NULL)
		return ENOMEM;
	*buf = p;
	*cap = n;
	return 0;
}

/*
 * The Idempotency-Key of r's delivery d to target: the message's random
 * key, the target, and once replayed the time of the last replay.  Unique
 * for ever per message and deliberate replay -- a copy or a restore of the
 * journal hands out ids again, but never message keys -- and stable across
 * retries and restarts.  Records written before message keys existed keep
 * the key they were sent with then: the journal instance, target and id.
 */
static void
idem_key(const hq_journal *j, const hq_record *r, const char *target, const hq_delivery *d, char *out, size_t cap)
{
	char hex[33];
	int n;
	if (r->f[HQ_F_MSG_KEY].n == 16) {
		static const char digits[] = "0123456789abcdef";
		for (int i = 0; i < 16; i++) {
			unsigned char c = (unsigned char)r->f[HQ_F_MSG_KEY].p[i];
			hex[2 * i] = digits[c >> 4];
			hex[2 * i + 1] = digits[c & 15];
		}
		hex[32] = 0;
		n = snprintf(out, cap, "%s-%s", hex, target);
	} else {
		n = snprintf(out, cap, "%s-%s-%llu", j->instance, target, (unsigned long long)r->id);
	}
	if (d->replayed_us && n > 0 && (size_t)n < cap)
		snprintf(out + n, cap - (size_t)n, "-r%llu", (unsigned long long)d->replayed_us);
}

/* Copies message id out into o for delivery d.  Returns 0, HQ_ENOTFOUND
 * (purged), HQ_ECORRUPT (unreadable, or sealed and no key here) or ENOMEM. */
static int
due_fill(hq_journal *j, MDB_txn *txn, const char *target, uint64_t id, const hq_delivery *d,
	 hq_due *o, unsigned char **pbuf, size_t *pcap)
{
	unsigned char mkb[8];
	MDB_val mk = {8, mkb}, mval;
	hq_record r;
	put_be64(mkb, id);
	int rc = mdb_get(txn, j->msgs, &mk, &mval);
	if (rc == MDB_NOTFOUND)
		return HQ_ENOTFOUND;
	if (rc || (rc = grow(pbuf, pcap, mval.mv_size)))
		return rc;
	if (jnl_open_record_into(j, mval.mv_data, mval.mv_size, &r, *pbuf) != 0 || r.locked)
		return HQ_ECORRUPT;
	memset(o, 0, sizeof *o);
	o->id = id;
	o->attempts = d->attempts - d->attempt_base;
	o->received_us = r.received_us;
	o->age_from_us = d->replayed_us > r.received_us ? d->replayed_us : r.received_us;
	o->epoch = DLV_EPOCH(d);
	idem_key(j, &r, target, d, o->idem_key, sizeof o->idem_key);
	copy_field(o->control_id, sizeof o->control_id, r.f[HQ_F_CONTROL_ID]);
	copy_field(o->type, sizeof o->type, r.f[HQ_F_TYPE]);
	copy_field(o->charset, sizeof o->charset, r.f[HQ_F_CHARSET]);
	copy_field(o->listener, sizeof o->listener, r.f[HQ_F_LISTENER]);
	copy_field(o->peer, sizeof o->peer, r.f[HQ_F_PEER]);
	copy_field(o->version, sizeof o->version, r.f[HQ_F_VERSION]);
	copy_field(o->sending_app, sizeof o->sending_app, r.f[HQ_F_SENDING_APP]);
	copy_field(o->sending_fac, sizeof o->sending_fac, r.f[HQ_F_SENDING_FAC]);
	copy_field(o->receiving_app, sizeof o->receiving_app, r.f[HQ_F_RECEIVING_APP]);
	copy_field(o->receiving_fac, sizeof o->receiving_fac, r.f[HQ_F_RECEIVING_FAC]);
	o->raw = malloc(r.f[HQ_F_RAW].n ? r.f[HQ_F_RAW].n : 1);
	if (o->raw == NULL)
		return ENOMEM;
	memcpy(o->raw, r.f[HQ_F_RAW].p, r.f[HQ_F_RAW].n);
	o->raw_len = r.f[HQ_F_RAW].n;
	return 0;
}

static int
skipped(const uint64_t *skip, size_t nskip, uint64_t id)
{
	for (size_t i = 0; i < nskip; i++)
		if (skip[i] == id)
			return 1;
	return 0;
}

/* hq_journal_due for a FIFO target, in txn: its queue's head when due
 * (*n 1), or nothing.  Returns 0 or an error. */
static int
due_fifo(hq_journal *j, MDB_txn *txn, const char *target, uint64_t now_us, const uint64_t *skip, size_t nskip,
	 hq_due *out, size_t max, uint64_t *next_us, unsigned char **pbuf, size_t *pcap, long *n)
{
	unsigned char key[HQ_TARGET_MAX + 17], dk[8 + HQ_TARGET_MAX];
	size_t tlen = strlen(target);
	MDB_cursor *c;
	MDB_val k, v, dkey, dval;
	hq_delivery d;
	int rc;

	/* The head of the queue, or nothing: the delivery record first,
	 * so a head waiting for its retry costs no read of the message. */
	if ((rc = mdb_cursor_open(txn, j->pending, &c)))
		return rc;
	k = (MDB_val){jnl_pending_key(key, target, 0), key};
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	uint64_t id = 0;
	if (rc == 0 && k.mv_size == tlen + 9 && memcmp(k.mv_data, target, tlen) == 0 &&
	    ((unsigned char *)k.mv_data)[tlen] == 0)
		id = get_be64((unsigned char *)k.mv_data + tlen + 1);
	mdb_cursor_close(c);
	if (id == 0 || max == 0 || skipped(skip, nskip, id))
		return 0;
	dkey = (MDB_val){jnl_dlv_key(dk, id, target), dk};
	if (mdb_get(txn, j->deliveries, &dkey, &dval) != 0 || jnl_dlv_decode(&dval, &d) != 0) {
		out[0].id = id;
		return HQ_ECORRUPT;
	}
	if (jnl_due_time(&d) > now_us) {
		*next_us = d.next_us;
		return 0;
	}
	if ((rc = due_fill(j, txn, target, id, &d, &out[0], pbuf, pcap)) == 0)
		*n = 1;
	else
		out[0].id = id; /* the head cannot be read: the target stops here */
	return rc;
}

long
hq_journal_due(hq_journal *j, const char *target, uint64_t now_us, hq_due_order order, uint32_t shard,
	       uint32_t nshards, const uint64_t *skip, size_t nskip, hq_due *out, size_t max, uint64_t *next_us)
{
	unsigned char key[HQ_TARGET_MAX + 17], dk[8 + HQ_TARGET_MAX];
	size_t tlen = strlen(target);
	unsigned char *pbuf = NULL; /* an opened (decrypted) record */
	size_t pcap = 0;
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v, dkey, dval;
	hq_delivery d;
	long n = 0;
	int rc;

	*next_us = 0;
	if (tlen >= HQ_TARGET_MAX)
		return -EINVAL;
	if (order != HQ_DUE_FIFO && !j->has_due)
		return HQ_ENOTFOUND;
	if ((rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn)))
		return hq_neg(rc);
	if (order == HQ_DUE_FIFO) {
		rc = due_fifo(j, txn, target, now_us, skip, nskip, out, max, next_us, &pbuf, &pcap, &n);
		goto out;
	}
	/* none, patient: the due index, oldest due first */
	if ((rc = mdb_cursor_open(txn, j->due, &c)))
		goto out;
	k = (MDB_val){jnl_due_key(key, target, 0, 0), key};
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	/* passes in-flight ids and another shard's: bounded, whatever the backlog */
	size_t visits = 0, most = 64 + 4 * (max + nskip) * (nshards ? nshards : 1);
	while (rc == 0 && (size_t)n < max && visits++ < most) {
		const unsigned char *kp = k.mv_data;
		if (k.mv_size != tlen + 17 || memcmp(kp, target, tlen) != 0 || kp[tlen] != 0)
			break;
		uint64_t t = get_be64(kp + tlen + 1), id = get_be64(kp + tlen + 9);
		if (t > now_us) {
			*next_us = t;
			break;
		}
		if ((nshards > 1 && id % nshards != shard) || skipped(skip, nskip, id)) {
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
			continue;
		}
		dkey = (MDB_val){jnl_dlv_key(dk, id, target), dk};
		if (mdb_get(txn, j->deliveries, &dkey, &dval) == 0 &&
		    jnl_dlv_decode(&dval, &d) == 0 && jnl_queued(&d)) {
			int frc = due_fill(j, txn, target, id, &d, &out[n], &pbuf, &pcap);
			if (frc == ENOMEM)
				break;
			if (frc == 0)
				n++;
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	if (visits > most && *next_us == 0)
		*next_us = now_us + 1000; /* more to pass: look again soon */
	mdb_cursor_close(c);
	rc = 0;
out:
	mdb_txn_abort(txn);
	free(pbuf);
	if (rc)
		return hq_neg(rc);
	return n;
}

/* Whether the journal is below its free-space reserve, for delivery
 * writes: figures at most a second old (any thread). */
static int
dlv_low_space(hq_journal *j)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	pthread_mutex_lock(&j->dlv_mu);
	if (j->dlv_usage_at_ms == 0 || now_ms - j->dlv_usage_at_ms >= 1000) {
		if (hq_journal_usage_get(j, &j->dlv_usage) != 0)
			memset(&j->dlv_usage, 0, sizeof j->dlv_usage);
		j->dlv_usage_at_ms = now_ms ? now_ms : 1;
	}
	int low = j->dlv_usage.map_size &&
		  (j->dlv_usage.free < j->dlv_usage.reserve || j->dlv_usage.fs_free < HQ_FS_RESERVE);
	pthread_mutex_unlock(&j->dlv_mu);
	return low;
}

/* Stores the attempt that led to outcome o of delivery d (d->attempts
 * already counts it), in txn, its answer excerpt sealed in an encrypted
 * journal, and drops the attempt that just left the last few kept.  low:
 * below the free-space reserve, where a retry's attempt is not stored.
 * Returns 0 or an error. */
static int
attempt_put(hq_journal *j, MDB_txn *txn, const char *target, const hq_outcome *o, const hq_delivery *d, int low)
{
	int rc = 0;

	unsigned char ak[8 + HQ_TARGET_MAX + 5];
	size_t tl = strlen(target);
	put_be64(ak, o->id);
	memcpy(ak + 8, target, tl);
	ak[8 + tl] = 0;
	put_be32(ak + 9 + tl, d->attempts);
	size_t elen = strnlen(o->error, sizeof o->error);
	size_t blen = o->body_len < sizeof o->body ? o->body_len : sizeof o->body;
	unsigned char av[1 + 8 + 2 + 4 + 2 + sizeof o->error + sizeof o->body + SEAL_OVERHEAD];
	av[0] = j->nkeys && blen ? ATTEMPT_SEALED : VAL_FORMAT;
	put_be64(av + 1, o->at_us);
	av[9] = (unsigned char)(o->http_status >> 8);
	av[10] = (unsigned char)o->http_status;
	put_be32(av + 11, o->latency_us);
	av[15] = (unsigned char)(elen >> 8);
	av[16] = (unsigned char)elen;
	memcpy(av + 17, o->error, elen);
	if (av[0] == ATTEMPT_SEALED) { /* the answer may quote patient data */
		unsigned char aad[512];
		size_t alen = jnl_attempt_aad(j, ak, 13 + tl, av, 17 + elen, aad, sizeof aad);
		if ((rc = jnl_seal(j, aad, alen, o->body, blen, av + 17 + elen)))
			return rc;
		blen += SEAL_OVERHEAD;
	} else {
		memcpy(av + 17 + elen, o->body, blen);
	}
	MDB_val akey = {13 + tl, ak}, aval = {17 + elen + blen, av};
	if (!(low && d->state == HQ_DLV_RETRY) && (rc = mdb_put(txn, j->attempts, &akey, &aval, 0)))
		return rc;
	/* bounded history: the one that just left the last few goes */
	if (d->attempts > HQ_ATTEMPTS_FIRST + HQ_ATTEMPTS_LAST) {
		put_be32(ak + 9 + tl, d->attempts - HQ_ATTEMPTS_LAST);
		if ((rc = mdb_del(txn, j->attempts, &akey, NULL)) == MDB_NOTFOUND)
			rc = 0;
		if (rc)
			return rc;
	}
	return 0;
}

int
hq_journal_record_outcomes(hq_journal *j, const char *target, const hq_outcome *o, size_t n)
{
	MDB_txn *txn;
	tstat ts;
	int rc;

	if (strlen(target) >= HQ_TARGET_MAX)
		return EINVAL;
	uint64_t fail = __atomic_load_n(&j->fail_outcomes, __ATOMIC_RELAXED);
	if (fail && __atomic_compare_exchange_n(&j->fail_outcomes, &fail, fail - 1, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		return HQ_EINJECTED;
	int low = dlv_low_space(j);
	if ((rc = mdb_txn_begin(j->env, NULL, 0, &txn)))
		return rc;
	jnl_tstat_get(j, txn, target, &ts);
	for (size_t i = 0; i < n && rc == 0; i++) {
		unsigned char dk[8 + HQ_TARGET_MAX], v[DLV_SIZE];
		MDB_val dkey = {jnl_dlv_key(dk, o[i].id, target), dk}, dval;
		hq_delivery d;
		if (mdb_get(txn, j->deliveries, &dkey, &dval) != 0 || jnl_dlv_decode(&dval, &d) != 0)
			continue; /* purged meanwhile */
		if (o[i].epoch && o[i].epoch != DLV_EPOCH(&d))
			continue; /* replayed since the attempt began: the replay stands */
		hq_dlv_state from = d.state;
		hq_delivery before = d;
		d.state = o[i].state;
		d.attempts++;
		d.next_us = o[i].state == HQ_DLV_RETRY ? o[i].next_us : 0;
		d.updated_us = o[i].at_us;
		d.last_status = o[i].http_status;
		jnl_dlv_encode(v, &d);
		MDB_val nv = {DLV_SIZE, v};
		if ((rc = mdb_put(txn, j->deliveries, &dkey, &nv, 0)))
			break;
		if ((rc = attempt_put(j, txn, target, &o[i], &d, low)))
			break;
		rc = jnl_dlv_move(j, txn, target, o[i].id, from, d.state, &ts);
		if (rc == 0)
			rc = jnl_idx_update(j, txn, target, o[i].id, &before, &d, NULL, -1);
		if (d.state == HQ_DLV_DELIVERED) {
			ts.last_ok_us = o[i].at_us;
		} else {
			ts.last_err_us = o[i].at_us;
			memcpy(ts.last_error, o[i].error, sizeof ts.last_error);
			ts.last_error[sizeof ts.last_error - 1] = 0;
		}
	}
	if (rc == 0)
		rc = jnl_tstat_put(j, txn, target, &ts);
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	return jnl_commit_sealing(j, txn);
}

int
hq_journal_delivery(hq_journal *j, uint64_t id, const char *target, hq_delivery *d)
{
	unsigned char dk[8 + 64];
	MDB_txn *txn;
	MDB_val v;
	int rc;

	if (strlen(target) >= 64)
		return EINVAL;
	MDB_val k = {jnl_dlv_key(dk, id, target), dk};
	if ((rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn)))
		return rc;
	rc = mdb_get(txn, j->deliveries, &k, &v);
	if (rc == 0)
		rc = jnl_dlv_decode(&v, d);
	else if (rc == MDB_NOTFOUND)
		rc = HQ_ENOTFOUND;
	mdb_txn_abort(txn);
	return rc;
}

/* Queues delivery (id, target) again (creating it when create is set). */
static int
replay_one(hq_journal *j, MDB_txn *txn, uint64_t id, const char *target, int only_dead, int create,
	   uint64_t now_us, long *jnl_queued)
{
	unsigned char dk[8 + HQ_TARGET_MAX], v[DLV_SIZE];
	MDB_val dkey = {jnl_dlv_key(dk, id, target), dk}, dval;
	hq_delivery d;
	tstat ts;
	hq_dlv_state from = 0;
	int rc = mdb_get(txn, j->deliveries, &dkey, &dval);

	if (rc == MDB_NOTFOUND) {
		if (!create)
			return 0;
		memset(&d, 0, sizeof d);
	} else if (rc != 0 || (rc = jnl_dlv_decode(&dval, &d)) != 0) {
		return rc;
	} else {
		from = d.state;
	}
	if (only_dead && from != HQ_DLV_DEAD)
		return 0;
	jnl_tstat_get(j, txn, target, &ts);
	if ((rc = jnl_dlv_move(j, txn, target, id, from, HQ_DLV_PENDING, &ts)))
		return rc;
	hq_delivery before = d;
	if (from == 0)
		before.state = 0;
	d.state = HQ_DLV_PENDING;
	d.next_us = now_us;
	d.updated_us = now_us;
	d.attempt_base = d.attempts;
	d.replayed_us = now_us > d.replayed_us ? now_us : d.replayed_us + 1; /* the epoch moves on */
	jnl_dlv_encode(v, &d);
	MDB_val nv = {DLV_SIZE, v};
	if ((rc = mdb_put(txn, j->deliveries, &dkey, &nv, 0)) ||
	    (rc = jnl_idx_update(j, txn, target, id, &before, &d, NULL, -1)) ||
	    (rc = jnl_tstat_put(j, txn, target, &ts)))
		return rc;
	(*jnl_queued)++;
	return 0;
}

long
hq_journal_replay(hq_journal *j, const uint64_t *ids, size_t n, const char *target, int only_dead, uint64_t now_us)
{
	MDB_txn *txn;
	long jnl_queued = 0;
	int rc;

	if (target && strlen(target) >= HQ_TARGET_MAX)
		return -EINVAL;
	if ((rc = mdb_txn_begin(j->env, NULL, 0, &txn)))
		return hq_neg(rc);
	for (size_t i = 0; i < n && rc == 0; i++) {
		unsigned char idbe[8];
		MDB_val k = {8, idbe}, v;
		hq_record r;
		put_be64(idbe, ids[i]);
		if (mdb_get(txn, j->msgs, &k, &v) != 0 || jnl_decode(v.mv_data, v.mv_size, &r) != 0)
			continue;
		if (target) {
			int accepted = r.state == HQ_MSG_ACCEPTED || r.state == HQ_MSG_UNROUTED;
			rc = replay_one(j, txn, ids[i], target, only_dead, accepted, now_us, &jnl_queued);
			continue;
		}
		hq_msg_dlv d[HQ_TARGET_MAX];
		long nd = jnl_deliveries_txn(j, txn, ids[i], d, HQ_TARGET_MAX);
		if (nd < 0) {
			rc = (int)nd;
			break;
		}
		for (long t = 0; t < nd && t < HQ_TARGET_MAX && rc == 0; t++)
			rc = replay_one(j, txn, ids[i], d[t].target, only_dead, 0, now_us, &jnl_queued);
	}
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	return rc ? hq_neg(rc) : jnl_queued;
}
