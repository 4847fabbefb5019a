/*
 * purge.c - purging messages (hl7q purge) and retention's by-time slices.
 *
 * Invariant: a message goes with everything that names it -- indexes,
 * deliveries, attempts, queue entries and counts -- in one transaction,
 * and only when its deliveries are still in the state the caller asked
 * for, read in that transaction; meta "next_id" is raised past every
 * purged id, so an id is never handed out twice.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "journal_int.h"

/* Deletes every entry of dbi whose key starts with the 8 bytes of id. */
static int
del_prefix(MDB_txn *txn, MDB_dbi dbi, const unsigned char *idbe)
{
	MDB_cursor *c;
	MDB_val k = {8, (void *)idbe}, v;
	int rc;
	if ((rc = mdb_cursor_open(txn, dbi, &c)))
		return rc;
	for (;;) {
		k = (MDB_val){8, (void *)idbe};
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (rc || k.mv_size < 8 || memcmp(k.mv_data, idbe, 8) != 0 || (rc = mdb_cursor_del(c, 0)))
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Deletes one (key, id) pair of a DUPSORT index. */
int
jnl_del_index(MDB_txn *txn, MDB_dbi dbi, hq_str key, const unsigned char *idval)
{
	char kbuf[MAX_KEY];
	size_t n = key.n > MAX_KEY ? MAX_KEY : key.n;
	if (n == 0)
		return 0;
	memcpy(kbuf, key.p, n); /* key points into a page the deletes may move */
	MDB_val k = {n, kbuf}, v = {9, (void *)idval};
	int rc = mdb_del(txn, dbi, &k, &v);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/*
 * Deletes message id (when it meets cond, read in this transaction) with
 * its indexes, deliveries and attempts.  Its duplicate key stays when it
 * was received at or after keep_dup_us (inside the duplicate window).
 */
static int
purge_one(hq_journal *j, MDB_txn *txn, uint64_t id, uint64_t indexed_upto, hq_purge_if cond,
	  uint64_t keep_dup_us, long *purged)
{
	unsigned char idbe[8], idval[9], tbe[8];
	MDB_val k = {8, idbe}, v;
	hq_record r;
	hq_msg_dlv d[HQ_TARGET_MAX];
	void *copy;
	int rc;

	put_be64(idbe, id);
	jnl_put_val(idval, id);
	if ((rc = mdb_get(txn, j->msgs, &k, &v)) == MDB_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	/* The record's strings point into the map: work on a copy (and room to open it). */
	if ((copy = malloc(2 * v.mv_size)) == NULL)
		return ENOMEM;
	memcpy(copy, v.mv_data, v.mv_size);
	if (jnl_open_record_into(j, copy, v.mv_size, &r, (unsigned char *)copy + v.mv_size) != 0) {
		free(copy);
		return HQ_ECORRUPT;
	}
	long nd = jnl_deliveries_txn(j, txn, id, d, HQ_TARGET_MAX);
	rc = nd < 0 ? CODE_OF(nd) : 0;
	for (long i = 0; rc == 0 && cond != HQ_PURGE_ANY && i < nd; i++) {
		hq_dlv_state st = i < HQ_TARGET_MAX ? d[i].d.state : 0;
		if ((cond == HQ_PURGE_DELIVERED && st != HQ_DLV_DELIVERED) ||
		    (cond == HQ_PURGE_SETTLED && st != HQ_DLV_DELIVERED && st != HQ_DLV_DEAD)) {
			free(copy); /* replayed (or queued) since the ids were collected: kept */
			return 0;
		}
	}
	for (long i = 0; rc == 0 && i < nd && i < HQ_TARGET_MAX; i++) {
		tstat ts;
		jnl_tstat_get(j, txn, d[i].target, &ts);
		if ((rc = jnl_dlv_move(j, txn, d[i].target, id, d[i].d.state, 0, &ts)) == 0)
			rc = jnl_idx_update(j, txn, d[i].target, id, &d[i].d, NULL, NULL, -1);
		if (rc == 0 && (d[i].d.state == HQ_DLV_DELIVERED || ts.have_counts))
			rc = jnl_tstat_put(j, txn, d[i].target, &ts);
	}
	if (rc == 0)
		rc = del_prefix(txn, j->deliveries, idbe);
	if (rc == 0)
		rc = del_prefix(txn, j->attempts, idbe);
	put_be64(tbe, r.received_us);
	if (rc == 0)
		rc = jnl_del_index(txn, j->by_time, (hq_str){(char *)tbe, 8}, idval);
	if (rc == 0)
		rc = jnl_del_index(txn, j->by_type, jnl_type_key(r.f[HQ_F_TYPE]), idval);
	if (rc == 0 && id <= indexed_upto) {
		rc = jnl_del_index(txn, j->by_control, r.f[HQ_F_CONTROL_ID], idval);
		hq_str pid = r.f[HQ_F_PATIENT_ID];
		if (rc == 0 && j->nkeys) { /* indexed under one key's HMAC: try each */
			for (int i = 0; i < j->nkeys && rc == 0 && pid.n; i++) {
				unsigned char mac[16];
				jnl_patient_mac(&j->keys[i], pid, mac);
				rc = jnl_del_index(txn, j->by_patient, (hq_str){(const char *)mac, 16}, idval);
			}
		} else if (rc == 0) {
			rc = jnl_del_index(txn, j->by_patient, pid, idval);
		}
	}
	if (rc == 0 && r.f[HQ_F_DEDUP_KEY].n > 0 && r.f[HQ_F_DEDUP_KEY].n <= HQ_DEDUP_KEY_MAX) {
		unsigned char key[HQ_DEDUP_KEY_MAX];
		memcpy(key, r.f[HQ_F_DEDUP_KEY].p, r.f[HQ_F_DEDUP_KEY].n);
		MDB_val dk = {r.f[HQ_F_DEDUP_KEY].n, key}, dv;
		if (r.received_us < keep_dup_us && mdb_get(txn, j->dedup, &dk, &dv) == 0 &&
		    dv.mv_size >= DEDUP_SIZE && get_be64((unsigned char *)dv.mv_data + 1) == id)
			rc = mdb_del(txn, j->dedup, &dk, NULL);
	}
	free(copy);
	if (rc == 0 && (rc = mdb_del(txn, j->msgs, &k, NULL)) == 0)
		(*purged)++;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

void
hq_journal_on_purge_scan(hq_journal *j, void (*fn)(void *arg), void *arg)
{
	j->purge_scan_fn = fn;
	j->purge_scan_arg = arg;
}

#define DUP_WINDOW_DEFAULT_US (24ull * 3600 * 1000000)

static uint64_t
wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

int
hq_journal_set_duplicate_window(hq_journal *j, uint64_t window_us)
{
	MDB_txn *txn;
	unsigned char val[9];
	MDB_val k = {13, "dup_window_us"}, v;
	int rc;
	if ((rc = mdb_txn_begin(j->env, NULL, 0, &txn)))
		return rc;
	if (mdb_get(txn, j->meta, &k, &v) == 0 && jnl_get_val(&v) == window_us) {
		mdb_txn_abort(txn);
		return 0;
	}
	jnl_put_val(val, window_us);
	v = (MDB_val){9, val};
	if ((rc = mdb_put(txn, j->meta, &k, &v, 0))) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_txn_commit(txn);
}

long
hq_journal_purge(hq_journal *j, const uint64_t *ids, size_t n)
{
	return hq_journal_purge_if(j, ids, n, HQ_PURGE_ANY);
}

long
hq_journal_purge_if(hq_journal *j, const uint64_t *ids, size_t n, hq_purge_if cond)
{
	MDB_txn *txn;
	long purged = 0;
	int rc;

	if ((rc = mdb_txn_begin(j->env, NULL, 0, &txn)))
		return hq_neg(rc);
	uint64_t upto = jnl_read_indexed_upto(j, txn), window = DUP_WINDOW_DEFAULT_US,
		 now = wall_us(), top = 0, next;
	MDB_val wk = {13, "dup_window_us"}, wv;
	if (mdb_get(txn, j->meta, &wk, &wv) == 0 && wv.mv_size == 9)
		window = jnl_get_val(&wv);
	uint64_t keep_dup_us = now > window ? now - window : 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = purge_one(j, txn, ids[i], upto, cond, keep_dup_us, &purged);
		if (ids[i] > top)
			top = ids[i];
	}
	/* The intake commit does not write meta "next_id" (see the top):
	 * removing the last record must not let its id be handed out again. */
	if (rc == 0 && (rc = jnl_meta_get_id(j, txn, "next_id", &next)) == 0 && top >= next) {
		unsigned char nbe[9];
		jnl_put_val(nbe, top + 1);
		MDB_val nk = {7, "next_id"}, nv = {9, nbe};
		rc = mdb_put(txn, j->meta, &nk, &nv, 0);
	}
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	j->usage_at_ms = 0; /* free space changed */
	return rc ? hq_neg(rc) : purged;
}

/* Whether record id is one a by-time purge takes: every delivery of it
 * delivered, or (rejected) a frame refused at intake, seen from the state in
 * the record's header, no decoding. */
static int
purge_candidate(hq_journal *j, MDB_txn *txn, uint64_t id, int rejected)
{
	if (rejected) {
		unsigned char idbe[8];
		MDB_val mk = {8, idbe}, mv;
		put_be64(idbe, id);
		return mdb_get(txn, j->msgs, &mk, &mv) == 0 && mv.mv_size >= REC_HEADER &&
		       ((const unsigned char *)mv.mv_data)[0] == REC_FORMAT &&
		       ((const unsigned char *)mv.mv_data)[17] == HQ_MSG_REJECTED;
	}
	hq_msg_dlv d[HQ_TARGET_MAX];
	long nd = jnl_deliveries_txn(j, txn, id, d, HQ_TARGET_MAX);
	int done = nd >= 0 && nd <= HQ_TARGET_MAX;
	for (long i = 0; done && i < nd; i++)
		done = d[i].d.state == HQ_DLV_DELIVERED;
	return done;
}

/*
 * hq_journal_purge_before (rejected 0) and hq_journal_purge_rejected
 * (rejected 1): one slice of the by-time scan, then the purge of what it
 * found, under the contract in journal.h.
 *
 * by_time is written behind intake (index.c): the records past meta
 * "by_time_upto" are not in it yet.  The slice that reaches the end of
 * the scan also takes those received before before_us, read from their
 * headers in the same transaction, and the pass is done only once it has
 * taken them all (a dry run counts them all in that one slice: once).  A
 * record indexed between two slices of a pass was in the tail until then
 * and is newer than the cursor unless its time is out of order (a clock
 * stepped back): such a one is left to the next pass, as before.
 */
static long
purge_by_time(hq_journal *j, uint64_t before_us, uint64_t *resume_us, size_t max, int dry_run, int rejected)
{
	unsigned char tbe[8];
	idvec ids = {0};
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k = {8, tbe}, v;
	size_t scanned = 0;
	uint64_t last_t = 0;
	int rc;

	if ((rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn)))
		return hq_neg(rc);
	put_be64(tbe, *resume_us);
	if ((rc = mdb_cursor_open(txn, j->by_time, &c)) == 0) {
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		while (rc == 0) {
			uint64_t t = get_be64(k.mv_data), id = jnl_get_val(&v);
			if (t >= before_us) {
				rc = MDB_NOTFOUND; /* done */
				break;
			}
			/* A slice ends between two times, never inside one: the next
			 * starts at t and would see its earlier entries again. */
			if ((ids.n >= max || scanned >= 20 * max) && scanned && t != last_t) {
				*resume_us = t; /* a slice: the caller goes on from here */
				break;
			}
			scanned++;
			last_t = t;
			if (purge_candidate(j, txn, id, rejected) && (rc = jnl_idvec_push(&ids, id)))
				break;
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
		}
		mdb_cursor_close(c);
	}
	if (rc == MDB_NOTFOUND) { /* the end of by_time's part: the tail */
		tpair *tail;
		size_t ntail, i;
		rc = jnl_time_tail(j, txn, jnl_read_time_upto(j, txn), 0, before_us, &tail, &ntail);
		for (i = 0; rc == 0 && i < ntail && (dry_run || ids.n < max); i++)
			if (purge_candidate(j, txn, tail[i].id, rejected))
				rc = jnl_idvec_push(&ids, tail[i].id);
		free(tail);
		if (rc == 0 && i == ntail)
			*resume_us = before_us;
		else if (rc == 0 && scanned) /* more of the tail than a slice: again from here */
			*resume_us = last_t;
	}
	mdb_txn_abort(txn);
	long n = (long)ids.n;
	if (rc == 0 && !dry_run && ids.n && j->purge_scan_fn)
		j->purge_scan_fn(j->purge_scan_arg);
	if (rc == 0 && !dry_run && ids.n) {
		/* refused frames stay refused: no delivery state to recheck */
		long p = hq_journal_purge_if(j, ids.v, ids.n, rejected ? HQ_PURGE_ANY : HQ_PURGE_DELIVERED);
		if (p < 0)
			rc = (int)-p;
	}
	free(ids.v);
	return rc ? hq_neg(rc) : n;
}

long
hq_journal_purge_before(hq_journal *j, uint64_t before_us, uint64_t *resume_us, size_t max, int dry_run)
{
	return purge_by_time(j, before_us, resume_us, max, dry_run, 0);
}

long
hq_journal_purge_rejected(hq_journal *j, uint64_t before_us, uint64_t *resume_us, size_t max, int dry_run)
{
	return purge_by_time(j, before_us, resume_us, max, dry_run, 1);
}
