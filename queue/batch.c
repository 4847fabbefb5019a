/*
 * batch.c - the intake batch: every frame of a group commit is stored in
 * one write transaction (record, duplicate key, first deliveries), then
 * committed once.  The indexes, by_time too, are written behind
 * (hq_journal_index, index.c).
 *
 * Invariant: a frame is acknowledged only after the transaction that
 * stored it has committed; the batch is poisoned by its first failure
 * (later adds do nothing, commit returns that error), so no frame of a
 * failed batch gets a positive ACK, and ids handed out by a failed batch
 * are handed out again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <mbedtls/sha256.h>

#include "core/alloc.h"
#include "journal_int.h"

int
hq_batch_begin(hq_journal *j, hq_batch **out)
{
	hq_batch *b = hq_xcalloc(1, sizeof *b);
	int rc;

	if ((rc = mdb_txn_begin(j->env, NULL, 0, &b->txn))) {
		free(b);
		return rc;
	}
	b->j = j;
	b->first_id = j->next_id;
	*out = b;
	return 0;
}

static void
batch_fail(hq_batch *b, int rc)
{
	if (b->err == 0)
		b->err = rc;
}

/* 16 fresh random bytes (a message key); never handed out twice.  Returns 0 or EIO. */
static int
msg_key(hq_journal *j, unsigned char out[16])
{
	if (j->rnd_n < 16) {
		if (getrandom(j->rnd, sizeof j->rnd, 0) != (ssize_t)sizeof j->rnd)
			return EIO;
		j->rnd_n = sizeof j->rnd;
	}
	j->rnd_n -= 16;
	memcpy(out, j->rnd + j->rnd_n, 16);
	memset(j->rnd + j->rnd_n, 0, 16);
	return 0;
}

int
hq_batch_add(hq_batch *b, hq_record *in, const hq_dedup *dedup, uint64_t *id)
{
	hq_journal *j = b->j;
	unsigned char idbe[8], mkey[16];
	MDB_val k = {8, idbe}, v;
	hq_record copy = *in, *rec = &copy;
	int rc;

	if (b->err)
		return b->err;
	if ((rc = msg_key(j, mkey)))
		goto fail;
	rec->f[HQ_F_MSG_KEY] = (hq_str){(const char *)mkey, 16};
	rec->f[HQ_F_DEDUP_KEY] = dedup ? (hq_str){(const char *)dedup->key, dedup->key_len}
				       : (hq_str){NULL, 0};
	in->id = j->next_id;
	rec->id = j->next_id;
	put_be64(idbe, rec->id);
	if (j->nkeys) {
		/* Encrypted journal: the bytes and the patient id go sealed. */
		unsigned char *enc;
		size_t elen;
		if ((rc = jnl_seal_record(j, rec, &enc, &elen)))
			goto fail;
		v.mv_size = elen;
		if ((rc = mdb_put(b->txn, j->msgs, &k, &v, MDB_RESERVE | MDB_APPEND)) == 0)
			memcpy(v.mv_data, enc, elen);
		free(enc);
		if (rc)
			goto fail;
	} else {
		v.mv_size = jnl_encoded_size(rec);
		if ((rc = mdb_put(b->txn, j->msgs, &k, &v, MDB_RESERVE | MDB_APPEND)))
			goto fail;
		jnl_encode(rec, v.mv_data);
	}
	/* by_time, by_type, by_control, by_patient: hq_journal_index(), behind. */
	if (dedup) {
		unsigned char dv[DEDUP_SIZE];
		dv[0] = DEDUP_FORMAT;
		put_be64(dv + 1, rec->id);
		put_be64(dv + 9, rec->received_us);
		memcpy(dv + 17, dedup->content, 32);
		MDB_val dk = {dedup->key_len, (void *)dedup->key}, dval = {DEDUP_SIZE, dv};
		if ((rc = mdb_put(b->txn, j->dedup, &dk, &dval, 0)))
			goto fail;
	}
	b->pk_id = rec->id;
	b->pk_has = rec->f[HQ_F_PATIENT_ID].n > 0;
	if (b->pk_has)
		jnl_pkey_make(j, rec->f[HQ_F_PATIENT_ID], b->pk);
	j->next_id++;
	*id = rec->id;
	return 0;
fail:
	batch_fail(b, rc);
	return rc;
}

int
hq_batch_find_dup(hq_batch *b, const hq_dedup *dedup, uint64_t since_us, uint64_t *id, int *same)
{
	MDB_val k = {dedup->key_len, (void *)dedup->key}, v;
	int rc;

	if (b->err)
		return b->err;
	rc = mdb_get(b->txn, b->j->dedup, &k, &v);
	if (rc == MDB_NOTFOUND)
		return HQ_ENOTFOUND;
	if (rc)
		return rc;
	const unsigned char *p = v.mv_data;
	if (v.mv_size < DEDUP_SIZE || p[0] != DEDUP_FORMAT || get_be64(p + 9) < since_us)
		return HQ_ENOTFOUND;
	*id = get_be64(p + 1);
	*same = memcmp(p + 17, dedup->content, 32) == 0;
	return 0;
}

int
hq_batch_commit(hq_batch *b)
{
	hq_journal *j = b->j;
	int rc = b->err;

	j->commits++;
	if (rc == 0 && j->fail_at && j->commits == j->fail_at)
		rc = HQ_EINJECTED;
	/* No meta "next_id" here: the last key of msgs says it (see the top). */
	if (rc == 0) {
		rc = jnl_commit_sealing(j, b->txn);
	} else {
		mdb_txn_abort(b->txn);
	}
	if (rc != 0) {
		j->next_id = b->first_id;
		j->usage_at_ms = 0; /* look at the space again */
	}
	free(b);
	return rc;
}

void
hq_batch_abort(hq_batch *b)
{
	b->j->next_id = b->first_id;
	mdb_txn_abort(b->txn);
	free(b);
}

int
hq_batch_add_delivery(hq_batch *b, uint64_t id, const char *target, uint64_t now_us)
{
	unsigned char k[8 + 64], pk[64 + 9], v[DLV_SIZE], one = VAL_FORMAT;
	hq_delivery d = {HQ_DLV_PENDING, 0, now_us, now_us, 0, 0, 0};
	int rc;

	if (b->err)
		return b->err;
	if (strlen(target) >= 64)
		return EINVAL;
	jnl_dlv_encode(v, &d);
	MDB_val dk = {jnl_dlv_key(k, id, target), k}, dv = {DLV_SIZE, v};
	MDB_val qk = {jnl_pending_key(pk, target, id), pk}, qv = {1, &one};
	tstat ts;
	jnl_tstat_get(b->j, b->txn, target, &ts);
	if (ts.have_counts)
		ts.pending++;
	int has = b->pk_id == id ? b->pk_has : -1;
	if ((rc = mdb_put(b->txn, b->j->deliveries, &dk, &dv, 0)) ||
	    (rc = mdb_put(b->txn, b->j->pending, &qk, &qv, 0)) ||
	    (rc = jnl_idx_update(b->j, b->txn, target, id, NULL, &d, b->pk, has)) ||
	    (ts.have_counts && (rc = jnl_tstat_put(b->j, b->txn, target, &ts)))) {
		batch_fail(b, rc);
		return rc;
	}
	return 0;
}

void
hq_dedup_fill(hq_dedup *d, hq_str listener, hq_str app, hq_str fac, hq_str control,
	      hq_str tls_subject, hq_str raw, hq_str skip)
{
	hq_str parts[5] = {listener, app, fac, tls_subject, control};
	unsigned char sender[32];
	mbedtls_sha256_context h, whole;

	/* each part length-prefixed: no two different lists hash the same
	 * bytes; the sender's hash is the state before MSH-10 goes in */
	mbedtls_sha256_init(&h);
	mbedtls_sha256_init(&whole);
	mbedtls_sha256_starts_ret(&h, 0);
	for (int i = 0; i < 5; i++) {
		unsigned char len[4];
		if (i == 4) {
			mbedtls_sha256_clone(&whole, &h);
			mbedtls_sha256_finish_ret(&h, sender);
			mbedtls_sha256_starts_ret(&h, 0); /* h is free again for the content */
		}
		put_be32(len, (uint32_t)parts[i].n);
		mbedtls_sha256_update_ret(i == 4 ? &whole : &h, len, 4);
		if (parts[i].n)
			mbedtls_sha256_update_ret(i == 4 ? &whole : &h,
						  (const unsigned char *)parts[i].p, parts[i].n);
	}
	size_t cn = control.n < HQ_DEDUP_CTRL ? control.n : HQ_DEDUP_CTRL;
	memcpy(d->key, sender, 8);
	if (cn)
		memcpy(d->key + 8, control.p, cn);
	mbedtls_sha256_finish_ret(&whole, d->key + 8 + cn);
	d->key_len = 8 + cn + 32;
	mbedtls_sha256_free(&whole);

	size_t head = raw.n, tail = raw.n;
	if (skip.n && skip.p >= raw.p && skip.p + skip.n <= raw.p + raw.n) {
		head = (size_t)(skip.p - raw.p);
		tail = head + skip.n;
	}
	mbedtls_sha256_starts_ret(&h, 0);
	if (head)
		mbedtls_sha256_update_ret(&h, (const unsigned char *)raw.p, head);
	if (raw.n > tail)
		mbedtls_sha256_update_ret(&h, (const unsigned char *)raw.p + tail, raw.n - tail);
	mbedtls_sha256_finish_ret(&h, d->content);
	mbedtls_sha256_free(&h);
}
