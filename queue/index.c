/*
 * index.c - the deferred indexes by_time, by_type, by_control and
 * by_patient: written behind intake (hq_journal_index) and read by
 * lookups; and the records not in by_time yet (jnl_time_tail), which the
 * time queries and retention read besides by_time.
 *
 * Invariant: meta "indexed_upto" (by_type, by_control, by_patient) and
 * "by_time_upto" (by_time) move in the transaction that writes the index
 * entries, and a reader reads the index and then every record past the
 * mark, so its answers are complete at every moment.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "journal_int.h"

uint64_t
jnl_read_indexed_upto(hq_journal *j, MDB_txn *txn)
{
	uint64_t upto;
	return jnl_meta_get_id(j, txn, "indexed_upto", &upto) == 0 ? upto : 0;
}

/* How far by_time goes (every id <= it is there).  A journal without the
 * mark predates the deferred by_time (its intake commit wrote it): all. */
uint64_t
jnl_read_time_upto(hq_journal *j, MDB_txn *txn)
{
	MDB_val k = {12, "by_time_upto"}, v;
	return mdb_get(txn, j->meta, &k, &v) == 0 ? jnl_get_val(&v) : UINT64_MAX;
}

static int
cmp_tpair(const void *a, const void *b)
{
	const tpair *x = a, *y = b;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/*
 * The records past upto (not in by_time in txn when upto is what
 * jnl_read_time_upto says) received in [since_us, until_us), in by_time's
 * order (time, then id), into *out (malloc'd, *n of them; the caller
 * frees).  Reads each record's header only.  Returns 0 or an error.
 */
int
jnl_time_tail(hq_journal *j, MDB_txn *txn, uint64_t upto, uint64_t since_us, uint64_t until_us,
	      tpair **out, size_t *n)
{
	unsigned char start[8];
	MDB_cursor *c;
	MDB_val k = {8, start}, v;
	size_t cap = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (upto == UINT64_MAX)
		return 0;
	put_be64(start, upto + 1);
	if ((rc = mdb_cursor_open(txn, j->msgs, &c)))
		return rc;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0) {
		const unsigned char *p = v.mv_data;
		if (k.mv_size == 8 && v.mv_size >= REC_HEADER && p[0] == REC_FORMAT) {
			uint64_t t = get_be64(p + 9);
			if (t >= since_us && t < until_us) {
				if (*n == cap) {
					cap = cap ? 2 * cap : 64;
					*out = hq_xrealloc(*out, cap * sizeof **out);
				}
				(*out)[(*n)++] = (tpair){t, get_be64(k.mv_data)};
			}
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND) {
		free(*out);
		*out = NULL;
		*n = 0;
		return rc;
	}
	if (*n > 1)
		qsort(*out, *n, sizeof **out, cmp_tpair);
	return 0;
}

uint64_t
hq_journal_unindexed(hq_journal *j)
{
	uint64_t upto = j->indexed_upto < j->time_upto ? j->indexed_upto : j->time_upto;
	return j->next_id - 1 > upto ? j->next_id - 1 - upto : 0;
}

/* Puts meta key = [VAL_FORMAT][be64 v]. */
static int
meta_put_id(hq_journal *j, MDB_txn *txn, const char *key, uint64_t v)
{
	unsigned char be[9];
	jnl_put_val(be, v);
	MDB_val k = {strlen(key), (void *)key}, val = {9, be};
	return mdb_put(txn, j->meta, &k, &val, 0);
}

long
hq_journal_index(hq_journal *j, size_t max)
{
	unsigned char start[8], idval[9];
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k = {8, start}, v;
	uint64_t upto, tupto, last = 0;
	long done = 0;
	int rc;

	if ((rc = mdb_txn_begin(j->env, NULL, 0, &txn)))
		return hq_neg(rc);
	upto = jnl_read_indexed_upto(j, txn);
	tupto = jnl_read_time_upto(j, txn);
	/* by_time_upto runs ahead of indexed_upto in a journal whose intake
	 * wrote by_time (set at open): each index gets each record once. */
	put_be64(start, (tupto < upto ? tupto : upto) + 1);
	if ((rc = mdb_cursor_open(txn, j->msgs, &c))) {
		mdb_txn_abort(txn);
		return hq_neg(rc);
	}
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && (size_t)done < max) {
		hq_record r;
		void *plain;
		if (jnl_open_record(j, v.mv_data, v.mv_size, &r, &plain) == 0) {
			unsigned char mac[16], tbe[8];
			jnl_put_val(idval, r.id);
			put_be64(tbe, r.received_us);
			hq_str ctrl = r.f[HQ_F_CONTROL_ID], pid = r.f[HQ_F_PATIENT_ID];
			if (j->nkeys && pid.n) { /* encrypted journal: an HMAC, not the id */
				jnl_patient_mac(&j->keys[0], pid, mac);
				pid = (hq_str){(const char *)mac, 16};
			}
			/* by_type holds code^trigger only, so a prefix "ADT" finds them all. */
			hq_str type = jnl_type_key(r.f[HQ_F_TYPE]);
			MDB_val ck = {ctrl.n > MAX_KEY ? MAX_KEY : ctrl.n, (void *)ctrl.p};
			MDB_val pk = {pid.n > MAX_KEY ? MAX_KEY : pid.n, (void *)pid.p};
			MDB_val tk = {type.n > MAX_KEY ? MAX_KEY : type.n, (void *)type.p};
			MDB_val iv = {9, idval}, timek = {8, tbe};
			/* The keys point into the map: copy-on-write puts may move
			 * that page, so every key is read before any put. */
			char kbuf[3 * MAX_KEY];
			memcpy(kbuf, ck.mv_data, ck.mv_size);
			memcpy(kbuf + MAX_KEY, pk.mv_data, pk.mv_size);
			memcpy(kbuf + 2 * MAX_KEY, tk.mv_data, tk.mv_size);
			ck.mv_data = kbuf;
			pk.mv_data = kbuf + MAX_KEY;
			tk.mv_data = kbuf + 2 * MAX_KEY;
			uint64_t id = r.id;
			free(plain);
			if (id > tupto && (rc = mdb_put(txn, j->by_time, &timek, &iv, 0)))
				break;
			if (id > upto && ((ck.mv_size && (rc = mdb_put(txn, j->by_control, &ck, &iv, 0))) ||
					  (pk.mv_size && (rc = mdb_put(txn, j->by_patient, &pk, &iv, 0))) ||
					  (tk.mv_size && (rc = mdb_put(txn, j->by_type, &tk, &iv, 0)))))
				break;
		}
		if (k.mv_size == 8)
			last = get_be64(k.mv_data);
		done++;
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return hq_neg(rc);
	}
	/* At the end of msgs, ids purged past its last key are done too
	 * (every id below next_id is stored or purged: no batch is open
	 * beside this transaction in this handle's one intake thread). */
	if (rc == MDB_NOTFOUND && j->next_id - 1 > last)
		last = j->next_id - 1;
	if (last > upto)
		upto = last;
	if (last > tupto)
		tupto = last;
	if ((rc = meta_put_id(j, txn, "indexed_upto", upto)) ||
	    (rc = meta_put_id(j, txn, "by_time_upto", tupto))) {
		mdb_txn_abort(txn);
		return hq_neg(rc);
	}
	if ((rc = mdb_txn_commit(txn)))
		return hq_neg(rc);
	j->indexed_upto = upto;
	j->time_upto = tupto;
	return done;
}

/* code^trigger of a stored MSH-9 (the by_type key). */
hq_str
jnl_type_key(hq_str type)
{
	const char *caret = type.n ? memchr(type.p, '^', type.n) : NULL;
	if (caret) {
		const char *second = memchr(caret + 1, '^', type.n - (size_t)(caret + 1 - type.p));
		if (second)
			type.n = (size_t)(second - type.p);
	}
	return type;
}

int
jnl_str_eq(hq_str a, hq_str b)
{
	size_t an = a.n > MAX_KEY ? MAX_KEY : a.n, bn = b.n > MAX_KEY ? MAX_KEY : b.n;
	return an == bn && (an == 0 || memcmp(a.p, b.p, an) == 0);
}

/* "ADT" matches ADT and ADT^...; "ADT^A01" matches exactly. */
int
jnl_type_matches(hq_str type, hq_str want)
{
	hq_str k = jnl_type_key(type);
	if (memchr(want.p, '^', want.n))
		return jnl_str_eq(k, want);
	return k.n >= want.n && memcmp(k.p, want.p, want.n) == 0 && (k.n == want.n || k.p[want.n] == '^');
}

/* Every id under key in a DUPSORT index (prefix: every key starting with it). */
static int
index_ids(MDB_txn *txn, MDB_dbi dbi, hq_str key, int prefix, idvec *out)
{
	size_t klen = key.n > MAX_KEY ? MAX_KEY : key.n;
	MDB_cursor *c;
	MDB_val k = {klen, (void *)key.p}, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, dbi, &c)))
		return rc;
	rc = mdb_cursor_get(c, &k, &v, prefix ? MDB_SET_RANGE : MDB_SET_KEY);
	while (rc == 0) {
		if (prefix && (k.mv_size < klen || memcmp(k.mv_data, key.p, klen) != 0))
			break;
		if ((rc = jnl_idvec_push(out, jnl_get_val(&v))))
			break;
		rc = mdb_cursor_get(c, &k, &v, prefix ? MDB_NEXT : MDB_NEXT_DUP);
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The records past indexed_upto whose field matches key exactly (the
 * type: as type_matches() says). */
static int
tail_ids(hq_journal *j, MDB_txn *txn, int field, hq_str key, idvec *out)
{
	unsigned char start[8];
	MDB_cursor *c;
	MDB_val k = {8, start}, v;
	int rc;

	put_be64(start, jnl_read_indexed_upto(j, txn) + 1);
	if ((rc = mdb_cursor_open(txn, j->msgs, &c)))
		return rc;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0) {
		hq_record r;
		void *plain;
		if (jnl_open_record(j, v.mv_data, v.mv_size, &r, &plain) == 0) {
			int match = field == HQ_F_TYPE ? jnl_type_matches(r.f[field], key)
						       : jnl_str_eq(r.f[field], key);
			free(plain);
			if (match && (rc = jnl_idvec_push(out, r.id)))
				break;
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/*
 * The ids whose control id, patient id or type (prefix "ADT" for every
 * ADT^...) is key: from the index, plus the records not indexed yet
 * (all three indexes are deferred).  Unsorted.
 */
int
jnl_lookup_ids(hq_journal *j, MDB_txn *txn, hq_index idx, hq_str key, idvec *out)
{
	int rc = 0;
	if (idx == HQ_IDX_CONTROL) {
		if ((rc = index_ids(txn, j->by_control, key, 0, out)) == 0)
			rc = tail_ids(j, txn, HQ_F_CONTROL_ID, key, out);
	} else if (idx == HQ_IDX_PATIENT) {
		if (j->nkeys) { /* encrypted journal: HMACs, under each key in turn */
			for (int i = 0; i < j->nkeys && rc == 0; i++) {
				unsigned char mac[16];
				jnl_patient_mac(&j->keys[i], key, mac);
				rc = index_ids(txn, j->by_patient, (hq_str){(const char *)mac, 16}, 0, out);
			}
		} else {
			rc = index_ids(txn, j->by_patient, key, 0, out);
		}
		if (rc == 0)
			rc = tail_ids(j, txn, HQ_F_PATIENT_ID, key, out);
	} else {
		rc = index_ids(txn, j->by_type, key, 0, out);
		if (rc == 0 && memchr(key.p, '^', key.n) == NULL) {
			char prefix[MAX_KEY + 1];
			size_t n = key.n < MAX_KEY ? key.n : MAX_KEY;
			memcpy(prefix, key.p, n);
			prefix[n] = '^';
			rc = index_ids(txn, j->by_type, (hq_str){prefix, n + 1}, 1, out);
		}
		if (rc == 0)
			rc = tail_ids(j, txn, HQ_F_TYPE, key, out);
	}
	return rc;
}

long
hq_journal_lookup(hq_journal *j, hq_index idx, hq_str key, uint64_t *ids, size_t max)
{
	idvec v = {0};
	MDB_txn *txn;
	int rc;

	if (key.n == 0)
		return 0;
	if ((rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn)))
		return hq_neg(rc);
	rc = jnl_lookup_ids(j, txn, idx, key, &v);
	mdb_txn_abort(txn);
	if (rc) {
		free(v.v);
		return hq_neg(rc);
	}
	jnl_idvec_sort(&v);
	for (size_t i = 0; i < v.n && i < max; i++)
		ids[i] = v.v[i];
	long n = (long)v.n;
	free(v.v);
	return n;
}
