/*
 * query.c - reading records back: one record (hq_journal_get), the ls /
 * show queries, a message's deliveries and attempts.
 *
 * Invariant: a query reads in bounded read transactions and calls back
 * outside them (slices), so a slow reader never holds a snapshot that
 * makes the file grow.  Nothing here writes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "journal_int.h"

int
hq_journal_get(hq_journal *j, uint64_t id, hq_record *rec, void **mem)
{
	unsigned char idbe[8];
	MDB_txn *txn;
	MDB_val k = {8, idbe}, v;
	int rc;

	put_be64(idbe, id);
	if ((rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn)))
		return rc;
	rc = mdb_get(txn, j->msgs, &k, &v);
	if (rc == MDB_NOTFOUND)
		rc = HQ_ENOTFOUND;
	if (rc == 0) {
		/* one buffer: the stored value, then room to open it */
		unsigned char *copy = malloc(v.mv_size ? 2 * v.mv_size : 1);
		if (copy == NULL) {
			rc = ENOMEM;
		} else {
			memcpy(copy, v.mv_data, v.mv_size);
			rc = jnl_open_record_into(j, copy, v.mv_size, rec, copy + v.mv_size);
			if (rc)
				free(copy);
			else
				*mem = copy;
		}
	}
	mdb_txn_abort(txn);
	return rc;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int
jnl_idvec_push(idvec *iv, uint64_t id)
{
	if (iv->n == iv->cap) {
		size_t cap = iv->cap ? iv->cap * 2 : 256;
		uint64_t *v = realloc(iv->v, cap * sizeof *v);
		if (v == NULL)
			return ENOMEM;
		iv->v = v;
		iv->cap = cap;
	}
	iv->v[iv->n++] = id;
	return 0;
}

/* Sorts and drops repeats. */
void
jnl_idvec_sort(idvec *iv)
{
	size_t k = 0;
	if (iv->n == 0)
		return;
	qsort(iv->v, iv->n, sizeof *iv->v, cmp_u64);
	for (size_t i = 0; i < iv->n; i++)
		if (k == 0 || iv->v[k - 1] != iv->v[i])
			iv->v[k++] = iv->v[i];
	iv->n = k;
}

/* The delivery records of id, in txn.  Returns the count or a negative code. */
long
jnl_deliveries_txn(hq_journal *j, MDB_txn *txn, uint64_t id, hq_msg_dlv *out, size_t max)
{
	unsigned char start[8];
	MDB_cursor *c;
	MDB_val k = {8, start}, v;
	long n = 0;
	int rc;

	put_be64(start, id);
	if ((rc = mdb_cursor_open(txn, j->deliveries, &c)))
		return hq_neg(rc);
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size > 8 && get_be64(k.mv_data) == id) {
		size_t tl = k.mv_size - 8;
		if ((size_t)n < max && tl < HQ_TARGET_MAX) {
			memcpy(out[n].target, (char *)k.mv_data + 8, tl);
			out[n].target[tl] = 0;
			if (jnl_dlv_decode(&v, &out[n].d) == 0)
				n++;
		} else if ((size_t)n >= max) {
			n++;
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? n : hq_neg(rc);
}

long
hq_journal_deliveries(hq_journal *j, uint64_t id, hq_msg_dlv *out, size_t max)
{
	MDB_txn *txn;
	int rc;
	if ((rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn)))
		return hq_neg(rc);
	long n = jnl_deliveries_txn(j, txn, id, out, max);
	mdb_txn_abort(txn);
	return n;
}

long
hq_journal_attempts(hq_journal *j, uint64_t id, hq_attempt_fn fn, void *arg)
{
	unsigned char start[8];
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k = {8, start}, v;
	long n = 0;
	int rc;

	put_be64(start, id);
	if ((rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn)))
		return hq_neg(rc);
	if ((rc = mdb_cursor_open(txn, j->attempts, &c))) {
		mdb_txn_abort(txn);
		return hq_neg(rc);
	}
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size >= 13 && get_be64(k.mv_data) == id) {
		const unsigned char *p = v.mv_data;
		size_t tl = k.mv_size - 13;
		hq_attempt a;
		memset(&a, 0, sizeof a);
		unsigned char body[600];
		if (tl < HQ_TARGET_MAX && v.mv_size >= 17 && (p[0] == VAL_FORMAT || p[0] == ATTEMPT_SEALED)) {
			memcpy(a.target, (char *)k.mv_data + 8, tl);
			a.n = get_be32((unsigned char *)k.mv_data + 9 + tl);
			a.at_us = get_be64(p + 1);
			a.http_status = p[9] << 8 | p[10];
			a.latency_us = get_be32(p + 11);
			size_t elen = (size_t)(p[15] << 8 | p[16]);
			if (elen > v.mv_size - 17)
				elen = v.mv_size - 17;
			size_t ecopy = elen < sizeof a.error ? elen : sizeof a.error - 1;
			memcpy(a.error, p + 17, ecopy);
			a.body = (const char *)p + 17 + elen;
			a.body_len = v.mv_size - 17 - elen;
			if (p[0] == ATTEMPT_SEALED) {
				size_t bl = a.body_len;
				unsigned char aad[512];
				size_t alen = k.mv_size;
				const void *ad = k.mv_data; /* SEAL_FORMAT_V1: the key alone */
				if (bl >= 1 && ((const unsigned char *)a.body)[0] != SEAL_FORMAT_V1) {
					alen = jnl_attempt_aad(j, k.mv_data, k.mv_size, p,
							       17 + elen, aad, sizeof aad);
					ad = aad;
				}
				if (bl >= SEAL_OVERHEAD && bl - SEAL_OVERHEAD <= sizeof body && alen &&
				    jnl_unseal(j, ad, alen, (const unsigned char *)a.body, bl, body) == 0) {
					a.body = (const char *)body;
					a.body_len = bl - SEAL_OVERHEAD;
				} else {
					a.body = "";
					a.body_len = 0; /* sealed, and no key here */
				}
			}
			n++;
			if (fn(arg, &a))
				break;
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return rc == 0 || rc == MDB_NOTFOUND ? n : hq_neg(rc);
}

/* Whether record r with deliveries d[0..nd) passes every filter of q. */
static int
query_match(const hq_query *q, const hq_record *r, const hq_msg_dlv *d, size_t nd)
{
	if (q->since_us && r->received_us < q->since_us)
		return 0;
	if (q->until_us && r->received_us >= q->until_us)
		return 0;
	if (q->type.n && !jnl_type_matches(r->f[HQ_F_TYPE], q->type))
		return 0;
	if (q->control_id.n && !jnl_str_eq(r->f[HQ_F_CONTROL_ID], q->control_id))
		return 0;
	if (q->patient.n && !jnl_str_eq(r->f[HQ_F_PATIENT_ID], q->patient))
		return 0;
	if (q->state == HQ_STATE_REJECTED)
		return r->state == HQ_MSG_REJECTED;
	if (q->state == 0 && q->target == NULL)
		return 1;
	for (size_t i = 0; i < nd; i++)
		if ((q->target == NULL || strcmp(q->target, d[i].target) == 0) &&
		    (q->state == 0 || (int)d[i].d.state == q->state ||
		     (q->state == HQ_STATE_QUEUED && (d[i].d.state == HQ_DLV_PENDING || d[i].d.state == HQ_DLV_RETRY))))
			return 1;
	return 0;
}

/* Collects the ids of a target queue (pending or dead), every target's when target is NULL. */
int
jnl_queue_ids(MDB_txn *txn, MDB_dbi dbi, const char *target, idvec *out)
{
	unsigned char pk[HQ_TARGET_MAX + 9];
	size_t tl = target ? strlen(target) : 0;
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, dbi, &c)))
		return rc;
	if (target) {
		k = (MDB_val){jnl_pending_key(pk, target, 0), pk};
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	} else {
		rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	}
	while (rc == 0) {
		const unsigned char *p = k.mv_data;
		if (k.mv_size < 9)
			break;
		if (target && (k.mv_size != tl + 9 || memcmp(p, target, tl) != 0 || p[tl] != 0))
			break;
		if ((rc = jnl_idvec_push(out, get_be64(p + k.mv_size - 8))))
			break;
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Reads record id in txn and, if it matches, hands it to fn.  1: fn asked to stop. */
/*
 * A query reads in bounded transactions and calls back outside them: the
 * matches of up to QUERY_SLICE examined records (or QUERY_SLICE_MS
 * milliseconds) are copied out, the read transaction is reset, the
 * callbacks run, and a renewed transaction goes on after the last key
 * read.  A reader blocked in its callback (hl7q ls | less) thus never
 * holds a snapshot: writers reuse freed pages instead of growing the file.
 */
#define QUERY_SLICE 64
#define QUERY_SLICE_MS 50

typedef struct qhit {
	hq_record r;
	void *mem; /* r's strings point into it */
	hq_msg_dlv *d;
	size_t nd;
} qhit;

typedef struct qslice {
	qhit hits[QUERY_SLICE];
	size_t n, examined;
	struct timespec began;
} qslice;

/* Copies record id out when it matches q.  Returns 1 when the limit is reached. */
static int
query_visit(hq_journal *j, MDB_txn *txn, const hq_query *q, uint64_t id, qslice *qs, long *found, int *rc)
{
	unsigned char idbe[8];
	MDB_val k = {8, idbe}, v;
	hq_msg_dlv d[HQ_TARGET_MAX];
	hq_record r;

	qs->examined++;
	put_be64(idbe, id);
	if (mdb_get(txn, j->msgs, &k, &v) != 0)
		return 0; /* purged meanwhile */
	unsigned char *copy = malloc(2 * v.mv_size + 1);
	if (copy == NULL) {
		*rc = ENOMEM;
		return 1;
	}
	memcpy(copy, v.mv_data, v.mv_size);
	if (jnl_open_record_into(j, copy, v.mv_size, &r, copy + v.mv_size) != 0) {
		free(copy);
		return 0; /* not this code's format */
	}
	long nd = jnl_deliveries_txn(j, txn, id, d, HQ_TARGET_MAX);
	if (nd < 0) {
		free(copy);
		*rc = (int)nd;
		return 1;
	}
	if ((size_t)nd > HQ_TARGET_MAX)
		nd = HQ_TARGET_MAX;
	if (!query_match(q, &r, d, (size_t)nd)) {
		free(copy);
		return 0;
	}
	qhit *h = &qs->hits[qs->n];
	h->d = nd ? hq_xmalloc((size_t)nd * sizeof *d) : NULL;
	if (nd)
		memcpy(h->d, d, (size_t)nd * sizeof *d);
	h->r = r;
	h->mem = copy;
	h->nd = (size_t)nd;
	qs->n++;
	(*found)++;
	return q->limit && (uint64_t)*found >= q->limit;
}

static int
qslice_full(qslice *qs)
{
	if (qs->n == QUERY_SLICE || qs->examined >= 16 * QUERY_SLICE)
		return 1;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - qs->began.tv_sec) * 1000 + (now.tv_nsec - qs->began.tv_nsec) / 1000000 >= QUERY_SLICE_MS;
}

/* Ends the slice: resets txn, calls fn on the copies, renews txn (unless
 * stopping).  Returns 1 when fn asked to stop or on error (*rc). */
static int
qslice_flush(MDB_txn *txn, qslice *qs, hq_query_fn fn, void *arg, int stopping, int *rc)
{
	int stop = 0;
	mdb_txn_reset(txn);
	for (size_t i = 0; i < qs->n; i++) {
		if (!stop)
			stop = fn(arg, &qs->hits[i].r, qs->hits[i].d, qs->hits[i].nd) != 0;
		free(qs->hits[i].mem);
		free(qs->hits[i].d);
	}
	qs->n = 0;
	qs->examined = 0;
	clock_gettime(CLOCK_MONOTONIC, &qs->began);
	if (!stop && !stopping && (*rc = mdb_txn_renew(txn)) != 0)
		stop = 1;
	return stop;
}

/*
 * hq_journal_query over the time range of q (no index serves it): the
 * by_time entries from q->since_us, merged in (time, id) order with the
 * records not in by_time yet (by_time is written behind intake: the tail
 * past meta "by_time_upto", collected in the first transaction), a slice
 * at a time.  by_time entries past that mark met in a later slice (indexed
 * meanwhile) are in the collected tail already: skipped.  Returns 0 or an
 * error; *found counts the matches.
 */
static int
query_by_time(hq_journal *j, MDB_txn *txn, const hq_query *q, qslice *qs, hq_query_fn fn, void *arg, long *found)
{
	unsigned char tbe[8], idval[9];
	uint64_t upto = jnl_read_time_upto(j, txn), until = q->until_us ? q->until_us : UINT64_MAX;
	MDB_cursor *c = NULL;
	MDB_val k = {8, tbe}, v;
	tpair *tail;
	size_t ntail, ti = 0;
	int rc, stop = 0;

	if ((rc = jnl_time_tail(j, txn, upto, q->since_us, until, &tail, &ntail)))
		return rc;
	put_be64(tbe, q->since_us);
	if ((rc = mdb_cursor_open(txn, j->by_time, &c)) == 0)
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 || rc == MDB_NOTFOUND) {
		while (rc == 0 && jnl_get_val(&v) > upto) /* in the tail */
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
		if (rc == 0 && get_be64(k.mv_data) >= until)
			rc = MDB_NOTFOUND;
		if (rc != 0 && rc != MDB_NOTFOUND)
			break;
		uint64_t t = rc == 0 ? get_be64(k.mv_data) : 0, id = rc == 0 ? jnl_get_val(&v) : 0;
		int from_tail = ti < ntail &&
				(rc != 0 || tail[ti].t < t || (tail[ti].t == t && tail[ti].id < id));
		if (!from_tail && rc != 0)
			break; /* both done */
		if ((stop = query_visit(j, txn, q, from_tail ? tail[ti].id : id, qs, found, &rc)))
			break;
		if (from_tail)
			ti++;
		else
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
		if (!qslice_full(qs))
			continue;
		/* a new transaction, at the by_time entry (t, id) not read yet */
		int at = rc == 0;
		if (at) {
			t = get_be64(k.mv_data);
			memcpy(idval, v.mv_data, v.mv_size < 9 ? v.mv_size : 9);
		}
		mdb_cursor_close(c);
		c = NULL;
		if (rc != 0 && rc != MDB_NOTFOUND)
			break;
		if ((stop = qslice_flush(txn, qs, fn, arg, 0, &rc)) ||
		    (rc = mdb_cursor_open(txn, j->by_time, &c))) {
			c = NULL;
			break;
		}
		if (!at) {
			rc = MDB_NOTFOUND;
			continue;
		}
		put_be64(tbe, t);
		k = (MDB_val){8, tbe};
		v = (MDB_val){9, idval};
		rc = mdb_cursor_get(c, &k, &v, MDB_GET_BOTH_RANGE);
		if (rc == MDB_NOTFOUND) {
			put_be64(tbe, t + 1);
			k = (MDB_val){8, tbe};
			rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		}
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
	if (c)
		mdb_cursor_close(c);
	free(tail);
	return rc;
}

long
hq_journal_query(hq_journal *j, const hq_query *q, hq_query_fn fn, void *arg)
{
	idvec ids = {0};
	MDB_txn *txn;
	long found = 0;
	int rc, by_ids = 1, stop = 0;
	qslice *qs = hq_xcalloc(1, sizeof *qs);

	clock_gettime(CLOCK_MONOTONIC, &qs->began);
	if ((rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn))) {
		free(qs);
		return hq_neg(rc);
	}
	if (q->control_id.n) {
		rc = jnl_lookup_ids(j, txn, HQ_IDX_CONTROL, q->control_id, &ids);
	} else if (q->patient.n) {
		rc = jnl_lookup_ids(j, txn, HQ_IDX_PATIENT, q->patient, &ids);
	} else if (q->state == HQ_DLV_PENDING || q->state == HQ_DLV_RETRY || q->state == HQ_STATE_QUEUED) {
		rc = jnl_queue_ids(txn, j->pending, q->target, &ids);
	} else if (q->state == HQ_DLV_DEAD) {
		rc = jnl_queue_ids(txn, j->dead, q->target, &ids);
	} else if (q->type.n && !q->since_us && !q->until_us) {
		rc = jnl_lookup_ids(j, txn, HQ_IDX_TYPE, q->type, &ids);
	} else {
		by_ids = 0;
	}
	if (rc == 0 && by_ids) {
		jnl_idvec_sort(&ids);
		for (size_t i = 0; i < ids.n && !stop; i++) {
			stop = query_visit(j, txn, q, ids.v[i], qs, &found, &rc);
			if (!stop && qslice_full(qs))
				stop = qslice_flush(txn, qs, fn, arg, 0, &rc);
		}
	} else if (rc == 0) {
		rc = query_by_time(j, txn, q, qs, fn, arg, &found);
	}
	{
		int frc = 0;
		qslice_flush(txn, qs, fn, arg, 1, rc ? &frc : &rc);
	}
	free(ids.v);
	free(qs);
	mdb_txn_abort(txn);
	if (rc)
		return hq_neg(rc);
	return found;
}
