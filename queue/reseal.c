/*
 * reseal.c - hl7q reseal: sealing the records and attempt excerpts made
 * under an older key (or format) again under the newest key, in slices.
 *
 * Invariant: each slice saves its position in the transaction that
 * rewrites its values, so an interrupted reseal goes on where the last
 * commit left and never leaves a record whose patient index entry points
 * at the old key's HMAC.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "journal_int.h"

/* --- reseal ----------------------------------------------------------------
 * Progress in meta "reseal": [VAL_FORMAT][key id 4][phase][n][position n]:
 * phase 0 walks msgs (position: the next id, be64), phase 1 attempts
 * (position: the last key done).  Saved in each slice's transaction, so a
 * restart goes on where the last commit left; dropped when done. */
#define RESEAL_POS_MAX (8 + HQ_TARGET_MAX + 5)

typedef struct reseal_pos {
	unsigned char key_id[4];
	int phase;
	size_t n;
	unsigned char pos[RESEAL_POS_MAX];
} reseal_pos;

/* Seals record id (at *p, n bytes, a copy) again under keys[0]; fixes its patient index entry. */
static int
reseal_record(hq_journal *j, MDB_txn *txn, const unsigned char *p, size_t n, uint64_t upto, long *done)
{
	hq_record r;
	unsigned char *buf = malloc(n ? n : 1), *enc = NULL, idval[9], oldmac[16], newmac[16];
	size_t elen;
	int rc = buf ? jnl_open_record_into(j, p, n, &r, buf) : ENOMEM;
	if (rc == 0 && r.locked)
		rc = HQ_ENOTFOUND; /* set_keys made sure every key in use is here */
	if (rc != 0 || (rc = jnl_seal_record(j, &r, &enc, &elen)) != 0)
		goto out;
	hq_str sealed = r.f[HQ_F_SEALED], pid = r.f[HQ_F_PATIENT_ID], oldkey = pid;
	const jkey *was = sealed.n ? jnl_key_by_id(j, (const unsigned char *)sealed.p + 1) : NULL;
	if (r.id <= upto && pid.n && was != &j->keys[0]) {
		if (was) {
			jnl_patient_mac(was, pid, oldmac);
			oldkey = (hq_str){(const char *)oldmac, 16};
		}
		jnl_patient_mac(&j->keys[0], pid, newmac);
		jnl_put_val(idval, r.id);
		MDB_val pk = {16, newmac}, iv = {9, idval};
		if ((rc = jnl_del_index(txn, j->by_patient, oldkey, idval)) ||
		    (rc = mdb_put(txn, j->by_patient, &pk, &iv, 0)))
			goto out;
	}
	unsigned char idbe[8];
	put_be64(idbe, r.id);
	MDB_val k = {8, idbe}, v = {elen, enc};
	if ((rc = mdb_put(txn, j->msgs, &k, &v, 0)) == 0)
		(*done)++;
out:
	if (buf)
		memset(buf, 0, n);
	free(buf);
	free(enc);
	return rc;
}

/* Seals an attempt's answer excerpt again (or for the first time) under keys[0]. */
static int
reseal_attempt(hq_journal *j, MDB_txn *txn, const MDB_val *key, const MDB_val *val, long *done)
{
	const unsigned char *p = val->mv_data;
	if (val->mv_size < 17 || (p[0] != VAL_FORMAT && p[0] != ATTEMPT_SEALED))
		return 0;
	size_t elen = (size_t)(p[15] << 8 | p[16]);
	if (elen > val->mv_size - 17 || elen > 255)
		return 0;
	const unsigned char *body = p + 17 + elen;
	size_t blen = val->mv_size - 17 - elen;
	if (blen == 0 || (p[0] == ATTEMPT_SEALED && !jnl_blob_stale(j, body, blen)))
		return 0;
	unsigned char plain[1024], out[17 + 255 + 1024 + SEAL_OVERHEAD], aad[512], kcopy[RESEAL_POS_MAX];
	size_t plen = blen, alen;
	if (key->mv_size > sizeof kcopy || blen > sizeof plain)
		return 0;
	memcpy(kcopy, key->mv_data, key->mv_size);
	if (p[0] == ATTEMPT_SEALED) {
		const void *ad = kcopy;
		alen = key->mv_size;
		if (body[0] != SEAL_FORMAT_V1) {
			alen = jnl_attempt_aad(j, kcopy, key->mv_size, p, 17 + elen, aad, sizeof aad);
			ad = aad;
		}
		if (blen < SEAL_OVERHEAD || alen == 0 || jnl_unseal(j, ad, alen, body, blen, plain) != 0)
			return HQ_ECORRUPT;
		plen = blen - SEAL_OVERHEAD;
	} else {
		memcpy(plain, body, blen);
	}
	memcpy(out, p, 17 + elen);
	out[0] = ATTEMPT_SEALED;
	alen = jnl_attempt_aad(j, kcopy, key->mv_size, out, 17 + elen, aad, sizeof aad);
	int rc = alen ? jnl_seal(j, aad, alen, plain, plen, out + 17 + elen) : HQ_ECORRUPT;
	memset(plain, 0, sizeof plain);
	if (rc)
		return rc;
	MDB_val k = {key->mv_size, kcopy}, v = {17 + elen + plen + SEAL_OVERHEAD, out};
	if ((rc = mdb_put(txn, j->attempts, &k, &v, 0)) == 0)
		(*done)++;
	return rc;
}

/* Phase 0 of a slice: the records from pos on, until max are seen (in
 * all) or the records are done (pos moves to phase 1).  Returns 0 or an error. */
static int
reseal_records(hq_journal *j, MDB_txn *txn, reseal_pos *pos, size_t max, size_t *seen, uint64_t upto, long *done)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc = 0;

	uint64_t next = pos->n == 8 ? get_be64(pos->pos) : 0;
	while (rc == 0 && *seen < max) {
		unsigned char idbe[8];
		put_be64(idbe, next);
		k = (MDB_val){8, idbe};
		if ((rc = mdb_cursor_open(txn, j->msgs, &c)))
			break;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		mdb_cursor_close(c);
		if (rc == MDB_NOTFOUND) { /* the records are done: the attempts */
			rc = 0;
			pos->phase = 1;
			pos->n = 0;
			break;
		}
		if (rc || k.mv_size != 8)
			break;
		next = get_be64(k.mv_data) + 1;
		(*seen)++;
		hq_record r;
		if (jnl_decode(v.mv_data, v.mv_size, &r) != 0)
			continue; /* not ours to judge: left as it is */
		hq_str sealed = r.f[HQ_F_SEALED];
		if (sealed.n && !jnl_blob_stale(j, (const unsigned char *)sealed.p, sealed.n))
			continue;
		unsigned char *copy = malloc(v.mv_size);
		if (copy == NULL) {
			rc = ENOMEM;
			break;
		}
		memcpy(copy, v.mv_data, v.mv_size); /* the puts may move its page */
		rc = reseal_record(j, txn, copy, v.mv_size, upto, done);
		free(copy);
	}
	if (pos->phase == 0) {
		put_be64(pos->pos, next);
		pos->n = 8;
	}
	return rc;
}

/* Phase 1 of a slice: the attempts after pos, until max are seen (in all)
 * or the attempts are done (pos moves to phase 2).  Returns 0 or an error. */
static int
reseal_attempts(hq_journal *j, MDB_txn *txn, reseal_pos *pos, size_t max, size_t *seen, long *done)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc = 0;

	while (rc == 0 && pos->phase == 1 && *seen < max) {
		unsigned char at[RESEAL_POS_MAX];
		memcpy(at, pos->pos, pos->n);
		k = (MDB_val){pos->n, at};
		if ((rc = mdb_cursor_open(txn, j->attempts, &c)))
			break;
		rc = pos->n ? mdb_cursor_get(c, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(c, &k, &v, MDB_FIRST);
		if (rc == 0 && pos->n && k.mv_size == pos->n && memcmp(k.mv_data, pos->pos, pos->n) == 0)
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT); /* that one is done */
		mdb_cursor_close(c);
		if (rc == MDB_NOTFOUND) {
			rc = 0;
			pos->phase = 2;
			break;
		}
		if (rc || k.mv_size > RESEAL_POS_MAX)
			break;
		memcpy(pos->pos, k.mv_data, k.mv_size);
		pos->n = k.mv_size;
		(*seen)++;
		MDB_val kk = {pos->n, pos->pos};
		rc = reseal_attempt(j, txn, &kk, &v, done);
	}
	return rc;
}

long
hq_journal_reseal(hq_journal *j, size_t max, int *finished)
{
	MDB_txn *txn;
	reseal_pos pos;
	MDB_val mk = {6, "reseal"}, mv;
	long done = 0;
	size_t seen = 0;
	int rc;

	*finished = 0;
	if (j->nkeys == 0 || j->readonly)
		return -EINVAL;
	if ((rc = mdb_txn_begin(j->env, NULL, 0, &txn)))
		return hq_neg(rc);
	memset(&pos, 0, sizeof pos);
	if (mdb_get(txn, j->meta, &mk, &mv) == 0 && mv.mv_size >= 7 &&
	    ((unsigned char *)mv.mv_data)[0] == VAL_FORMAT &&
	    memcmp((unsigned char *)mv.mv_data + 1, j->keys[0].id, 4) == 0) {
		const unsigned char *p = mv.mv_data;
		pos.phase = p[5];
		pos.n = p[6] <= RESEAL_POS_MAX && mv.mv_size >= 7u + p[6] ? p[6] : 0;
		memcpy(pos.pos, p + 7, pos.n);
	} /* else: a fresh start (none saved, or saved for another key) */
	memcpy(pos.key_id, j->keys[0].id, 4);
	uint64_t upto = jnl_read_indexed_upto(j, txn);
	if (pos.phase == 0)
		rc = reseal_records(j, txn, &pos, max, &seen, upto, &done);
	if (rc == 0)
		rc = reseal_attempts(j, txn, &pos, max, &seen, &done);
	if (rc == 0) {
		if (pos.phase == 2) {
			rc = mdb_del(txn, j->meta, &mk, NULL);
			if (rc == MDB_NOTFOUND)
				rc = 0;
		} else {
			unsigned char val[7 + RESEAL_POS_MAX];
			val[0] = VAL_FORMAT;
			memcpy(val + 1, pos.key_id, 4);
			val[5] = (unsigned char)pos.phase;
			val[6] = (unsigned char)pos.n;
			memcpy(val + 7, pos.pos, pos.n);
			mv = (MDB_val){7 + pos.n, val};
			rc = mdb_put(txn, j->meta, &mk, &mv, 0);
		}
	}
	if (rc == 0)
		rc = jnl_commit_sealing(j, txn); /* ends txn whatever happens */
	else
		mdb_txn_abort(txn);
	if (rc == 0) {
		*finished = pos.phase == 2;
		return done;
	}
	return hq_neg(rc);
}
