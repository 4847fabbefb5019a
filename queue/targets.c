/*
 * targets.c - per-target figures (delivered, pending, retrying, dead,
 * last success and error) and the queue/dead-list membership of a
 * delivery, moved together (dlv_move).
 *
 * Invariant: the counts change in the transaction that moves the
 * delivery, so /metrics and `hl7q status` read them in O(targets) and
 * they always agree with the queues; a journal written before them gets
 * them once at open.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "journal_int.h"

void
jnl_tstat_get(hq_journal *j, MDB_txn *txn, const char *target, tstat *t)
{
	MDB_val k = {strlen(target), (void *)target}, v;
	memset(t, 0, sizeof *t);
	if (mdb_get(txn, j->targets, &k, &v) != 0 || v.mv_size < 26 ||
	    ((unsigned char *)v.mv_data)[0] != VAL_FORMAT) {
		t->have_counts = j->counts_kept; /* a target not seen yet: all zero */
		return;
	}
	const unsigned char *p = v.mv_data;
	t->delivered = get_be64(p + 1);
	t->last_ok_us = get_be64(p + 9);
	t->last_err_us = get_be64(p + 17);
	size_t raw = p[25], n = raw;
	if (n > v.mv_size - 26)
		n = v.mv_size - 26;
	if (n >= sizeof t->last_error)
		n = sizeof t->last_error - 1;
	memcpy(t->last_error, p + 26, n);
	t->last_error[n] = 0;
	if (v.mv_size >= 26 + raw + 24) {
		t->pending = get_be64(p + 26 + raw);
		t->retrying = get_be64(p + 34 + raw);
		t->dead = get_be64(p + 42 + raw);
		t->have_counts = 1;
	}
}

int
jnl_tstat_put(hq_journal *j, MDB_txn *txn, const char *target, const tstat *t)
{
	unsigned char p[26 + sizeof t->last_error + 24];
	size_t n = strnlen(t->last_error, sizeof t->last_error - 1);
	p[0] = VAL_FORMAT;
	put_be64(p + 1, t->delivered);
	put_be64(p + 9, t->last_ok_us);
	put_be64(p + 17, t->last_err_us);
	p[25] = (unsigned char)n;
	memcpy(p + 26, t->last_error, n);
	size_t len = 26 + n;
	if (t->have_counts) {
		put_be64(p + len, t->pending);
		put_be64(p + len + 8, t->retrying);
		put_be64(p + len + 16, t->dead);
		len += 24;
	}
	MDB_val k = {strlen(target), (void *)target}, v = {len, p};
	return mdb_put(txn, j->targets, &k, &v, 0);
}

/* The count of state s in t (NULL for states without one). */
static uint64_t *
tstat_count(tstat *t, hq_dlv_state s)
{
	switch (s) {
	case HQ_DLV_PENDING: return &t->pending;
	case HQ_DLV_RETRY: return &t->retrying;
	case HQ_DLV_DEAD: return &t->dead;
	case HQ_DLV_DELIVERED: return &t->delivered;
	default: return NULL;
	}
}

/* A target's counts while fill_counts runs. */
typedef struct tcount {
	char name[HQ_TARGET_MAX];
	uint64_t n[5]; /* by hq_dlv_state */
} tcount;

static tcount *
tcount_of(tcount **v, size_t *n, const char *name, size_t len)
{
	for (size_t i = 0; i < *n; i++)
		if (strlen((*v)[i].name) == len && memcmp((*v)[i].name, name, len) == 0)
			return &(*v)[i];
	tcount *nv = hq_xrealloc(*v, (*n + 1) * sizeof *nv);
	*v = nv;
	memset(&nv[*n], 0, sizeof nv[0]);
	memcpy(nv[*n].name, name, len);
	return &nv[(*n)++];
}

/*
 * Gives every target record its queue counts, counted once from the
 * delivery records, when the journal does not keep them yet (written
 * before them, or a record rewritten by an older hl7q without them).
 */
int
jnl_fill_counts(hq_journal *j, MDB_txn *txn)
{
	MDB_val mk = {9, "counts_v1"}, mv, k, v;
	MDB_cursor *c;
	tcount *tc = NULL;
	size_t ntc = 0;
	int rc, missing = mdb_get(txn, j->meta, &mk, &mv) != 0;

	if ((rc = mdb_cursor_open(txn, j->targets, &c)))
		return rc;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && !missing;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const unsigned char *p = v.mv_data;
		missing = v.mv_size < 26 || v.mv_size < 26 + (size_t)p[25] + 24;
	}
	mdb_cursor_close(c);
	if (!missing)
		return 0;
	if ((rc = mdb_cursor_open(txn, j->deliveries, &c)))
		return rc;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		hq_delivery d;
		size_t tl = k.mv_size - 8;
		if (k.mv_size <= 8 || tl >= HQ_TARGET_MAX || jnl_dlv_decode(&v, &d) != 0 || d.state > 4)
			continue;
		tcount *t = tcount_of(&tc, &ntc, (char *)k.mv_data + 8, tl);
		t->n[d.state]++;
	}
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	/* targets with a record and no deliveries left count zero */
	if (rc == 0 && (rc = mdb_cursor_open(txn, j->targets, &c)) == 0) {
		for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
			if (k.mv_size < HQ_TARGET_MAX)
				tcount_of(&tc, &ntc, k.mv_data, k.mv_size);
		mdb_cursor_close(c);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	for (size_t i = 0; rc == 0 && i < ntc; i++) {
		tstat ts;
		jnl_tstat_get(j, txn, tc[i].name, &ts);
		ts.pending = tc[i].n[HQ_DLV_PENDING];
		ts.retrying = tc[i].n[HQ_DLV_RETRY];
		ts.dead = tc[i].n[HQ_DLV_DEAD];
		ts.have_counts = 1;
		rc = jnl_tstat_put(j, txn, tc[i].name, &ts);
	}
	free(tc);
	mv = (MDB_val){1, "\x01"};
	if (rc == 0)
		rc = mdb_put(txn, j->meta, &mk, &mv, 0);
	return rc;
}

/* Moves delivery (id, target) out of its old state's bookkeeping
 * (queue, dead list, delivered count) and into the new one's. */
int
jnl_dlv_move(hq_journal *j, MDB_txn *txn, const char *target, uint64_t id, hq_dlv_state from,
	     hq_dlv_state to, tstat *ts)
{
	unsigned char pk[HQ_TARGET_MAX + 9], one = VAL_FORMAT;
	MDB_val qk = {jnl_pending_key(pk, target, id), pk}, qv = {1, &one};
	int queued_before = from == HQ_DLV_PENDING || from == HQ_DLV_RETRY;
	int queued_after = to == HQ_DLV_PENDING || to == HQ_DLV_RETRY;
	int rc = 0;

	if (queued_before && !queued_after)
		rc = mdb_del(txn, j->pending, &qk, NULL);
	else if (!queued_before && queued_after)
		rc = mdb_put(txn, j->pending, &qk, &qv, 0);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	if (rc == 0 && from == HQ_DLV_DEAD && to != HQ_DLV_DEAD)
		rc = mdb_del(txn, j->dead, &qk, NULL);
	else if (rc == 0 && to == HQ_DLV_DEAD && from != HQ_DLV_DEAD)
		rc = mdb_put(txn, j->dead, &qk, &qv, 0);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	if (from != to) {
		/* delivered is always counted; the queue counts once they are kept */
		uint64_t *a = tstat_count(ts, from), *b = tstat_count(ts, to);
		if (a && *a > 0 && (ts->have_counts || from == HQ_DLV_DELIVERED))
			(*a)--;
		if (b && (ts->have_counts || to == HQ_DLV_DELIVERED))
			(*b)++;
	}
	return rc;
}

static int
tstat_count_delivered(hq_journal *j, MDB_txn *txn, const char *target)
{
	tstat ts;
	jnl_tstat_get(j, txn, target, &ts);
	ts.delivered++;
	return jnl_tstat_put(j, txn, target, &ts);
}

static int
dead_mark(hq_journal *j, MDB_txn *txn, const char *target, uint64_t id)
{
	unsigned char pk[HQ_TARGET_MAX + 9], one = VAL_FORMAT;
	MDB_val k = {jnl_pending_key(pk, target, id), pk}, v = {1, &one};
	return mdb_put(txn, j->dead, &k, &v, 0);
}

/* Journals written before the dead list and the per-target figures
 * existed get them once, from their delivery records. */
int
jnl_fill_target_stats(hq_journal *j, MDB_txn *txn)
{
	MDB_val mk = {8, "stats_v1"}, mv, k, v;
	MDB_cursor *c;
	int rc;

	if (mdb_get(txn, j->meta, &mk, &mv) == 0)
		return 0;
	if ((rc = mdb_cursor_open(txn, j->deliveries, &c)))
		return rc;
	rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	while (rc == 0) {
		char target[HQ_TARGET_MAX];
		const unsigned char *dv = v.mv_data;
		size_t tl = k.mv_size - 8;
		if (k.mv_size > 8 && tl < HQ_TARGET_MAX && v.mv_size >= DLV_SIZE_V1) {
			memcpy(target, (char *)k.mv_data + 8, tl);
			target[tl] = 0;
			uint64_t id = get_be64(k.mv_data);
			if (dv[1] == HQ_DLV_DELIVERED)
				rc = tstat_count_delivered(j, txn, target);
			else if (dv[1] == HQ_DLV_DEAD)
				rc = dead_mark(j, txn, target, id);
			if (rc)
				break;
			/* the puts may have moved the cursor's page: find it again */
			unsigned char again[8 + HQ_TARGET_MAX];
			memcpy(again, k.mv_data, k.mv_size);
			k.mv_data = again;
			if ((rc = mdb_cursor_get(c, &k, &v, MDB_SET)))
				break;
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	mv = (MDB_val){1, "\x01"};
	return mdb_put(txn, j->meta, &mk, &mv, 0);
}

/* Counts a target's queue and finds its oldest undelivered message. */
static int
summarise(hq_journal *j, MDB_txn *txn, hq_target_summary *s)
{
	unsigned char pk[HQ_TARGET_MAX + 9];
	size_t tl = strlen(s->name);
	MDB_cursor *c;
	MDB_val k = {jnl_pending_key(pk, s->name, 0), pk}, v;
	int rc;

	tstat ts;
	jnl_tstat_get(j, txn, s->name, &ts);
	if (ts.have_counts) {
		/* the counts kept as deliveries move; the oldest is the queue's first id */
		s->pending = ts.pending;
		s->retrying = ts.retrying;
		s->dead = ts.dead;
		s->delivered = ts.delivered;
		s->last_ok_us = ts.last_ok_us;
		s->last_err_us = ts.last_err_us;
		memcpy(s->last_error, ts.last_error, sizeof s->last_error);
		if ((rc = mdb_cursor_open(txn, j->pending, &c)))
			return rc;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && k.mv_size == tl + 9 && memcmp(k.mv_data, s->name, tl) == 0 &&
		    ((unsigned char *)k.mv_data)[tl] == 0) {
			unsigned char mk8[8];
			memcpy(mk8, (unsigned char *)k.mv_data + tl + 1, 8);
			MDB_val mk = {8, mk8}, mval;
			if (mdb_get(txn, j->msgs, &mk, &mval) == 0 && mval.mv_size >= REC_HEADER)
				s->oldest_pending_us = get_be64((unsigned char *)mval.mv_data + 9);
		}
		mdb_cursor_close(c);
		return rc == MDB_NOTFOUND ? 0 : rc;
	}
	/* a journal whose counts are not kept (opened read-only before an hl7qd
	 * that keeps them): count the queues */
	if ((rc = mdb_cursor_open(txn, j->pending, &c)))
		return rc;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size == tl + 9 && memcmp(k.mv_data, s->name, tl) == 0 &&
	       ((unsigned char *)k.mv_data)[tl] == 0) {
		uint64_t id = get_be64((unsigned char *)k.mv_data + tl + 1);
		unsigned char dk[8 + HQ_TARGET_MAX];
		MDB_val dkey = {jnl_dlv_key(dk, id, s->name), dk}, dval, mk = {8, dk}, mval;
		hq_delivery d;
		if (mdb_get(txn, j->deliveries, &dkey, &dval) == 0 && jnl_dlv_decode(&dval, &d) == 0) {
			if (d.state == HQ_DLV_RETRY)
				s->retrying++;
			else
				s->pending++;
			if (s->oldest_pending_us == 0 && mdb_get(txn, j->msgs, &mk, &mval) == 0 &&
			    mval.mv_size >= REC_HEADER)
				s->oldest_pending_us = get_be64((unsigned char *)mval.mv_data + 9);
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	idvec dead = {0};
	rc = jnl_queue_ids(txn, j->dead, s->name, &dead);
	s->dead = dead.n;
	free(dead.v);
	s->delivered = ts.delivered;
	s->last_ok_us = ts.last_ok_us;
	s->last_err_us = ts.last_err_us;
	memcpy(s->last_error, ts.last_error, sizeof s->last_error);
	return rc;
}

/* Adds name to the sorted list out[0..*n) unless there. */
static void
add_name(hq_target_summary *out, size_t max, long *n, const char *name, size_t len)
{
	char buf[HQ_TARGET_MAX];
	if (len == 0 || len >= HQ_TARGET_MAX)
		return;
	memcpy(buf, name, len);
	buf[len] = 0;
	long i = 0, have = *n < (long)max ? *n : (long)max;
	while (i < have && strcmp(out[i].name, buf) < 0)
		i++;
	if (i < have && strcmp(out[i].name, buf) == 0)
		return;
	if (have == (long)max) {
		(*n)++;
		return; /* counted, not kept */
	}
	memmove(&out[i + 1], &out[i], (size_t)(have - i) * sizeof *out);
	memset(&out[i], 0, sizeof *out);
	memcpy(out[i].name, buf, len + 1);
	(*n)++;
}

/* Adds every target named in a "target \0 be64" keyed database. */
static int
queue_names(MDB_txn *txn, MDB_dbi dbi, hq_target_summary *out, size_t max, long *n)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc;
	if ((rc = mdb_cursor_open(txn, dbi, &c)))
		return rc;
	rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	while (rc == 0 && k.mv_size >= 9) {
		size_t tl = k.mv_size - 9;
		unsigned char next[HQ_TARGET_MAX + 1];
		add_name(out, max, n, k.mv_data, tl);
		if (tl >= HQ_TARGET_MAX)
			break;
		/* Jump past this target: its name then \1 sorts after all its keys. */
		memcpy(next, k.mv_data, tl);
		next[tl] = 1;
		k = (MDB_val){tl + 1, next};
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

long
hq_journal_targets(hq_journal *j, hq_target_summary *out, size_t max)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	long n = 0;
	int rc;

	if ((rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn)))
		return hq_neg(rc);
	if ((rc = mdb_cursor_open(txn, j->targets, &c)) == 0) {
		rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
		while (rc == 0) {
			add_name(out, max, &n, k.mv_data, k.mv_size);
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
		}
		mdb_cursor_close(c);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	if (rc == 0)
		rc = queue_names(txn, j->pending, out, max, &n);
	if (rc == 0)
		rc = queue_names(txn, j->dead, out, max, &n);
	for (long i = 0; rc == 0 && i < n && (size_t)i < max; i++)
		rc = summarise(j, txn, &out[i]);
	mdb_txn_abort(txn);
	if (rc)
		return hq_neg(rc);
	return n;
}
