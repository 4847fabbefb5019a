/*
 * due.c - the due index: which queued delivery a worker may take next,
 * without cost growing with the backlog (orderings "none" and "patient";
 * FIFO needs none).
 *
 * Invariant: the index moves in the same transaction as the delivery
 * record it mirrors (idx_update), so "due" never names a delivery that is
 * not queued, and a patient's queue has exactly its head in "due".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/md.h>

#include "journal_int.h"

/* --- the due index ------------------------------------------------------
 *
 * Finding what to send next must not cost more with a longer queue (a
 * target back from an outage has the longest).  For a target ordered
 * "none" the index "due" holds every queued delivery, for one ordered
 * "patient" the head of each patient's queue (in "patq") and every
 * delivery without a patient id: a worker walks it from the start and
 * stops at the first entry not due yet, passing only what is in flight.
 * The key's time is 0 for a delivery never attempted (since its last
 * replay), so that it is due at once whatever the wall clock did, and its
 * next_us otherwise.  FIFO targets need none: the head of "pending" is
 * the only candidate.  meta "order:TARGET" says which ordering the index
 * is kept for; hq_journal_set_order() rebuilds it when that changes.
 *
 * A patient key is 16 bytes: HMAC-SHA-256 of PID-3.1 under the sealing
 * key in an encrypted journal (as the patient index), SHA-256 otherwise;
 * whole values, so long ids keep their order.  (After a key rotation a
 * patient's older and newer messages are two queues until the older
 * drain.) */
#define ORDER_NONE_KEPT (-1)

uint64_t
jnl_due_time(const hq_delivery *d)
{
	return d->state == HQ_DLV_RETRY ? d->next_us : 0;
}

int
jnl_queued(const hq_delivery *d)
{
	return d && (d->state == HQ_DLV_PENDING || d->state == HQ_DLV_RETRY);
}

size_t
jnl_due_key(unsigned char *k, const char *target, uint64_t t, uint64_t id)
{
	size_t n = strlen(target);
	memcpy(k, target, n);
	k[n] = 0;
	put_be64(k + n + 1, t);
	put_be64(k + n + 9, id);
	return n + 17;
}

static size_t
patq_key(unsigned char *k, const char *target, const unsigned char *pkey, uint64_t id)
{
	size_t n = strlen(target);
	memcpy(k, target, n);
	k[n] = 0;
	memcpy(k + n + 1, pkey, PKEY);
	put_be64(k + n + 1 + PKEY, id);
	return n + 1 + PKEY + 8;
}

/* The patient key of pid (16 bytes). */
void
jnl_pkey_make(const hq_journal *j, hq_str pid, unsigned char out[PKEY])
{
	if (j->nkeys) {
		jnl_patient_mac(&j->keys[0], pid, out);
		return;
	}
	unsigned char sum[32];
	mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), (const unsigned char *)pid.p, pid.n, sum);
	memcpy(out, sum, PKEY);
}

/* The patient key of message id: 1 with out set, 0 when it has no patient
 * id (or it cannot be opened here: it goes unordered), or an error. */
static int
pkey_of_msg(hq_journal *j, MDB_txn *txn, uint64_t id, unsigned char out[PKEY])
{
	unsigned char idbe[8];
	MDB_val k = {8, idbe}, v;
	hq_record r;
	void *plain = NULL;
	put_be64(idbe, id);
	int rc = mdb_get(txn, j->msgs, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	if (jnl_open_record(j, v.mv_data, v.mv_size, &r, &plain) != 0 || r.locked ||
	    r.f[HQ_F_PATIENT_ID].n == 0) {
		free(plain);
		return 0;
	}
	jnl_pkey_make(j, r.f[HQ_F_PATIENT_ID], out);
	free(plain);
	return 1;
}

static int
order_key(char *k, const char *target)
{
	return snprintf(k, 6 + HQ_TARGET_MAX, "order:%s", target);
}

/* The ordering target's index is kept for, or ORDER_NONE_KEPT.  Inside a write transaction. */
static int
order_of(hq_journal *j, MDB_txn *txn, const char *target)
{
	for (int i = 0; i < j->norders; i++)
		if (strcmp(j->orders[i].name, target) == 0)
			return j->orders[i].order;
	char kb[6 + HQ_TARGET_MAX];
	MDB_val k = {(size_t)order_key(kb, target), kb}, v;
	int order = ORDER_NONE_KEPT;
	if (mdb_get(txn, j->meta, &k, &v) == 0 && v.mv_size == 2 && ((unsigned char *)v.mv_data)[0] == VAL_FORMAT)
		order = ((unsigned char *)v.mv_data)[1];
	if (j->norders < (int)(sizeof j->orders / sizeof j->orders[0])) {
		snprintf(j->orders[j->norders].name, HQ_TARGET_MAX, "%s", target);
		j->orders[j->norders++].order = order;
	}
	return order;
}

/* Deletes every entry of dbi whose key starts with prefix[0..n). */
static int
del_keyprefix(MDB_txn *txn, MDB_dbi dbi, const unsigned char *prefix, size_t n)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc;
	if ((rc = mdb_cursor_open(txn, dbi, &c)))
		return rc;
	for (;;) {
		k = (MDB_val){n, (void *)prefix};
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (rc || k.mv_size < n || memcmp(k.mv_data, prefix, n) != 0 || (rc = mdb_cursor_del(c, 0)))
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int
jnl_orders_forget(hq_journal *j, MDB_txn *txn)
{
	j->norders = 0;
	return del_keyprefix(txn, j->meta, (const unsigned char *)"order:", 6);
}

/* Makes the first delivery of a patient's queue the one in "due" (and the
 * second not, when it was the first until now). */
static int
head_fix(hq_journal *j, MDB_txn *txn, const char *target, const unsigned char *pkey)
{
	unsigned char qk[HQ_TARGET_MAX + 1 + PKEY + 8], dk[8 + HQ_TARGET_MAX];
	size_t plen = patq_key(qk, target, pkey, 0) - 8;
	MDB_cursor *c;
	MDB_val k = {plen + 8, qk}, v;
	uint64_t ids[2];
	int n = 0, rc;
	if ((rc = mdb_cursor_open(txn, j->patq, &c)))
		return rc;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && n < 2 && k.mv_size == plen + 8 && memcmp(k.mv_data, qk, plen) == 0) {
		ids[n++] = get_be64((unsigned char *)k.mv_data + plen);
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	for (int i = 0; i < n; i++) {
		hq_delivery d;
		MDB_val dkey = {jnl_dlv_key(dk, ids[i], target), dk}, dval;
		if (mdb_get(txn, j->deliveries, &dkey, &dval) != 0 || jnl_dlv_decode(&dval, &d) != 0)
			continue;
		unsigned char ek[HQ_TARGET_MAX + 17];
		MDB_val ekey = {jnl_due_key(ek, target, jnl_due_time(&d), ids[i]), ek},
			ev = {PKEY, (void *)pkey};
		rc = i == 0 ? mdb_put(txn, j->due, &ekey, &ev, 0) : mdb_del(txn, j->due, &ekey, NULL);
		if (rc && rc != MDB_NOTFOUND)
			return rc;
	}
	return 0;
}

/*
 * Keeps the due index in step with a change of delivery (id, target):
 * before and after are its records before and after the change (NULL, or
 * not queued: not in the queue).  pkey: the message's patient key when the
 * caller has it (has_pkey 1: it has one, 0: none, -1: unknown, look).
 */
int
jnl_idx_update(hq_journal *j, MDB_txn *txn, const char *target, uint64_t id, const hq_delivery *before,
	       const hq_delivery *after, const unsigned char *pkey, int has_pkey)
{
	int order = order_of(j, txn, target);
	if (!j->has_due || (order != HQ_DUE_NONE && order != HQ_DUE_PATIENT))
		return 0;
	int was = jnl_queued(before), is = jnl_queued(after);
	if (!was && !is)
		return 0;
	unsigned char ek[HQ_TARGET_MAX + 17], pk[PKEY];
	MDB_val ekey, ev = {0, ""};
	int rc = 0, indexed = 0;
	if (was) { /* out of "due", noting the patient key it carried */
		ekey = (MDB_val){jnl_due_key(ek, target, jnl_due_time(before), id), ek};
		MDB_val cur;
		if (mdb_get(txn, j->due, &ekey, &cur) == 0) {
			indexed = 1;
			if (cur.mv_size == PKEY && has_pkey < 0) {
				memcpy(pk, cur.mv_data, PKEY);
				pkey = pk;
				has_pkey = 1;
			}
			if ((rc = mdb_del(txn, j->due, &ekey, NULL)))
				return rc;
		}
	}
	if (order == HQ_DUE_PATIENT && has_pkey < 0) {
		if ((rc = pkey_of_msg(j, txn, id, pk)) < 0 || rc > 1)
			return rc;
		has_pkey = rc;
		pkey = pk;
	}
	if (order == HQ_DUE_NONE || has_pkey == 0) {
		if (!is)
			return 0;
		ekey = (MDB_val){jnl_due_key(ek, target, jnl_due_time(after), id), ek};
		return mdb_put(txn, j->due, &ekey, &ev, 0);
	}
	/* by patient: a retime keeps a head a head; anything else goes
	 * through the patient's queue */
	if (was && is && indexed) {
		ekey = (MDB_val){jnl_due_key(ek, target, jnl_due_time(after), id), ek};
		ev = (MDB_val){PKEY, (void *)pkey};
		return mdb_put(txn, j->due, &ekey, &ev, 0);
	}
	if (was && is)
		return 0; /* not the head: stays out of "due" */
	unsigned char qk[HQ_TARGET_MAX + 1 + PKEY + 8], one = VAL_FORMAT;
	MDB_val qkey = {patq_key(qk, target, pkey, id), qk}, qv = {1, &one};
	rc = is ? mdb_put(txn, j->patq, &qkey, &qv, 0) : mdb_del(txn, j->patq, &qkey, NULL);
	if (rc && rc != MDB_NOTFOUND)
		return rc;
	return head_fix(j, txn, target, pkey);
}

int
hq_journal_set_order(hq_journal *j, const char *target, hq_due_order order)
{
	MDB_txn *txn;
	MDB_cursor *c = NULL;
	int rc;
	size_t tlen = strlen(target);

	if (tlen >= HQ_TARGET_MAX)
		return EINVAL;
	if (j->readonly || !j->has_due)
		return EROFS;
	if ((rc = mdb_txn_begin(j->env, NULL, 0, &txn)))
		return rc;
	if (order_of(j, txn, target) == (int)order) {
		mdb_txn_abort(txn);
		return 0;
	}
	/* Rebuild: drop the index of the old ordering, and walk the queue. */
	unsigned char prefix[HQ_TARGET_MAX + 1];
	memcpy(prefix, target, tlen + 1);
	if ((rc = del_keyprefix(txn, j->due, prefix, tlen + 1)) ||
	    (rc = del_keyprefix(txn, j->patq, prefix, tlen + 1)))
		goto out;
	for (int i = 0; i < j->norders; i++)
		if (strcmp(j->orders[i].name, target) == 0)
			j->orders[i].order = (int)order;
	if (order_of(j, txn, target) != (int)order) { /* the cache is full */
		rc = ENOMEM;
		goto out;
	}
	if (order != HQ_DUE_FIFO) {
		unsigned char pk[HQ_TARGET_MAX + 9];
		MDB_val k = {jnl_pending_key(pk, target, 0), pk}, v;
		if ((rc = mdb_cursor_open(txn, j->pending, &c)))
			goto out;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		while (rc == 0 && k.mv_size == tlen + 9 && memcmp(k.mv_data, prefix, tlen + 1) == 0) {
			uint64_t id = get_be64((unsigned char *)k.mv_data + tlen + 1);
			unsigned char dk[8 + HQ_TARGET_MAX];
			MDB_val dkey = {jnl_dlv_key(dk, id, target), dk}, dval;
			hq_delivery d;
			if (mdb_get(txn, j->deliveries, &dkey, &dval) == 0 && jnl_dlv_decode(&dval, &d) == 0 &&
			    (rc = jnl_idx_update(j, txn, target, id, NULL, &d, NULL, -1)))
				goto out;
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
		}
		if (rc != MDB_NOTFOUND && rc != 0)
			goto out;
	}
	char kb[6 + HQ_TARGET_MAX];
	unsigned char ov[2] = {VAL_FORMAT, (unsigned char)order};
	MDB_val ok = {(size_t)order_key(kb, target), kb}, oval = {2, ov};
	rc = mdb_put(txn, j->meta, &ok, &oval, 0);
out:
	if (c)
		mdb_cursor_close(c);
	if (rc == 0)
		return mdb_txn_commit(txn);
	mdb_txn_abort(txn);
	j->norders = 0; /* the cache may say what was not committed */
	return rc;
}
