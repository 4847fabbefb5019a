/*
 * seal.c - encryption at rest: AES-256-GCM seals of records, attempt
 * excerpts and the audit store's values, bound by associated data to
 * their place so a sealed value moved elsewhere does not open.
 *
 * Invariant: a key's wear (the seals it has made, random 96-bit nonces)
 * is written in the very transaction that stores those seals
 * (commit_sealing), so a committed, acknowledged sealed record is always
 * counted, and a key never seals past seal_limit (HQ_EKEYSPENT instead).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <mbedtls/gcm.h>
#include <mbedtls/md.h>

#include "journal_int.h"

const jkey *
jnl_key_by_id(const hq_journal *j, const unsigned char *id)
{
	for (int i = 0; i < j->nkeys; i++)
		if (memcmp(j->keys[i].id, id, 4) == 0)
			return &j->keys[i];
	return NULL;
}

/* Seals n bytes into out (n + SEAL_OVERHEAD bytes) under keys[0], in
 * SEAL_FORMAT.  Returns 0, HQ_EKEYSPENT (the key has sealed seal_limit
 * values: rotate) or an error. */
int
jnl_seal(hq_journal *j, const void *aad, size_t aadlen, const void *in, size_t n, unsigned char *out)
{
	const jkey *k = &j->keys[0];
	mbedtls_gcm_context g;
	if (__atomic_load_n(&j->seals, __ATOMIC_RELAXED) + __atomic_add_fetch(&j->unsaved_seals, 1, __ATOMIC_RELAXED) >
	    j->seal_limit) {
		__atomic_sub_fetch(&j->unsaved_seals, 1, __ATOMIC_RELAXED);
		return HQ_EKEYSPENT;
	}
	out[0] = SEAL_FORMAT;
	memcpy(out + 1, k->id, 4);
	if (getrandom(out + 5, 12, 0) != 12)
		return EIO;
	mbedtls_gcm_init(&g);
	int rc = mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, k->enc, 256);
	if (rc == 0)
		rc = mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, n, out + 5, 12, aad, aadlen,
					       in, out + 17, 16, out + 17 + n);
	mbedtls_gcm_free(&g);
	return rc ? HQ_ECORRUPT : 0;
}

/* Opens a sealed value into out (n - SEAL_OVERHEAD bytes).  Returns 0,
 * HQ_ENOTFOUND (no such key here) or HQ_ECORRUPT (tampered or misplaced).
 * Both formats open: the caller gives the associated data in[0] asks for. */
int
jnl_unseal(const hq_journal *j, const void *aad, size_t aadlen, const unsigned char *in, size_t n,
	   unsigned char *out)
{
	if (n < SEAL_OVERHEAD || (in[0] != SEAL_FORMAT_V1 && in[0] != SEAL_FORMAT))
		return HQ_ECORRUPT;
	const jkey *k = jnl_key_by_id(j, in + 1);
	if (k == NULL)
		return HQ_ENOTFOUND;
	size_t len = n - SEAL_OVERHEAD;
	mbedtls_gcm_context g;
	mbedtls_gcm_init(&g);
	int rc = mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, k->enc, 256);
	if (rc == 0)
		rc = mbedtls_gcm_auth_decrypt(&g, len, in + 5, 12, aad, aadlen, in + 17 + len, 16, in + 17, out);
	mbedtls_gcm_free(&g);
	return rc ? HQ_ECORRUPT : 0;
}

/*
 * The associated data of a record sealed in SEAL_FORMAT: the journal
 * instance, then the record as stored with its SEALED field empty -- the
 * record id and every plaintext field beside the sealed bytes -- so that a
 * sealed value moved to another record or journal, or its metadata
 * changed, does not open.  p[0..n) is the stored record and sealed its
 * SEALED field (a slice of p; empty while sealing).  Returns a malloc'd
 * buffer (*len bytes) or NULL.
 */
static unsigned char *
record_aad(const hq_journal *j, const unsigned char *p, size_t n, hq_str sealed, size_t *len)
{
	size_t off = sealed.n ? (size_t)((const unsigned char *)sealed.p - p) : 0;
	unsigned char *a = malloc(32 + n - sealed.n);
	if (a == NULL)
		return NULL;
	memcpy(a, j->instance, 32);
	if (sealed.n && off >= REC_HEADER + 4 && off + sealed.n <= n) {
		memcpy(a + 32, p, off);
		memset(a + 32 + off - 4, 0, 4); /* its length, as when it was sealed */
		memcpy(a + 32 + off, p + off + sealed.n, n - off - sealed.n);
	} else {
		memcpy(a + 32, p, n);
	}
	*len = 32 + n - sealed.n;
	return a;
}

/* The associated data of an attempt's sealed answer excerpt: the journal
 * instance, the attempt's key and the plaintext before the excerpt (time,
 * status, latency, error).  Returns its length in out (cap bytes), 0 when
 * it does not fit. */
size_t
jnl_attempt_aad(const hq_journal *j, const void *key, size_t klen, const unsigned char *pre,
		size_t plen, unsigned char *out, size_t cap)
{
	if (32 + klen + plen > cap)
		return 0;
	memcpy(out, j->instance, 32);
	memcpy(out + 32, key, klen);
	memcpy(out + 32 + klen, pre, plen);
	return 32 + klen + plen;
}

/* The patient index key for pid under key k (16 bytes of HMAC-SHA-256). */
void
jnl_patient_mac(const jkey *k, hq_str pid, unsigned char out[16])
{
	unsigned char full[32];
	mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), k->mac, 32,
			(const unsigned char *)pid.p, pid.n, full);
	memcpy(out, full, 16);
}

/* The fields a sealed record hides. */
static const int sealed_fields[] = {HQ_F_RAW, HQ_F_PATIENT_ID, HQ_F_PATIENT_AUTH};
#define NSEALED 3

/*
 * The stored form of rec (rec->id set) in an encrypted journal: RAW and
 * PATIENT_* sealed under keys[0] into SEALED, bound to the rest by
 * record_aad().  On 0, *out is malloc'd (*outlen bytes; the caller frees).
 * Returns 0, HQ_EKEYSPENT, ENOMEM or HQ_ECORRUPT.
 */
int
jnl_seal_record(hq_journal *j, const hq_record *rec, unsigned char **out, size_t *outlen)
{
	hq_record sr = *rec;
	size_t plen = 0;
	for (int i = 0; i < NSEALED; i++)
		plen += 4 + rec->f[sealed_fields[i]].n;
	sr.f[HQ_F_SEALED] = (hq_str){NULL, 0};
	for (int i = 0; i < NSEALED; i++)
		sr.f[sealed_fields[i]] = (hq_str){NULL, 0};
	size_t bare = jnl_encoded_size(&sr), aadlen = 0;
	unsigned char *plain = malloc(plen), *blob = malloc(plen + SEAL_OVERHEAD);
	unsigned char *enc = malloc(bare + plen + SEAL_OVERHEAD), *aad = NULL;
	int rc = plain && blob && enc ? 0 : ENOMEM;
	if (rc == 0) {
		size_t off = 0;
		for (int i = 0; i < NSEALED; i++) {
			hq_str f = rec->f[sealed_fields[i]];
			put_be32(plain + off, (uint32_t)f.n);
			if (f.n)
				memcpy(plain + off + 4, f.p, f.n);
			off += 4 + f.n;
		}
		jnl_encode(&sr, enc);
		if ((aad = record_aad(j, enc, bare, (hq_str){NULL, 0}, &aadlen)) == NULL)
			rc = ENOMEM;
	}
	if (rc == 0)
		rc = jnl_seal(j, aad, aadlen, plain, plen, blob);
	if (rc == 0) {
		sr.f[HQ_F_SEALED] = (hq_str){(const char *)blob, plen + SEAL_OVERHEAD};
		jnl_encode(&sr, enc);
		*out = enc;
		*outlen = bare + plen + SEAL_OVERHEAD;
		enc = NULL;
	}
	if (plain)
		memset(plain, 0, plen);
	free(plain);
	free(blob);
	free(aad);
	free(enc);
	return rc;
}

/*
 * Decodes a stored record of n bytes and, when it is sealed and a key is
 * here, opens it into buf (which holds at least n bytes): RAW and
 * PATIENT_* then point into buf.  Without the key, r->locked is set and
 * those fields stay empty.  Returns 0 or HQ_ECORRUPT.
 */
int
jnl_open_record_into(const hq_journal *j, const unsigned char *p, size_t n, hq_record *r, unsigned char *buf)
{
	int rc = jnl_decode(p, n, r);
	if (rc || r->f[HQ_F_SEALED].n == 0)
		return rc;
	hq_str sealed = r->f[HQ_F_SEALED];
	if (sealed.n < SEAL_OVERHEAD || jnl_key_by_id(j, (const unsigned char *)sealed.p + 1) == NULL) {
		r->locked = 1;
		return 0;
	}
	unsigned char idaad[8], *aad = idaad;
	size_t aadlen = 8;
	hq_str opened[NSEALED];
	put_be64(idaad, r->id);
	if (sealed.p[0] != SEAL_FORMAT_V1 && (aad = record_aad(j, p, n, sealed, &aadlen)) == NULL)
		return ENOMEM;
	rc = jnl_unseal(j, aad, aadlen, (const unsigned char *)sealed.p, sealed.n, buf);
	if (aad != idaad)
		free(aad);
	if (rc != 0 || jnl_split_fields(buf, sealed.n - SEAL_OVERHEAD, NSEALED, opened, NSEALED) != 0)
		return HQ_ECORRUPT;
	for (int i = 0; i < NSEALED; i++)
		r->f[sealed_fields[i]] = opened[i];
	return 0;
}

/* open_record_into with a buffer of its own in *plain (the caller frees it; NULL: none needed). */
int
jnl_open_record(const hq_journal *j, const unsigned char *p, size_t n, hq_record *r, void **plain)
{
	*plain = NULL;
	if (j->nkeys == 0) {
		int rc = jnl_decode(p, n, r);
		r->locked = rc == 0 && r->f[HQ_F_SEALED].n > 0; /* sealed, and no key here */
		return rc;
	}
	unsigned char *buf = malloc(n ? n : 1);
	if (buf == NULL)
		return ENOMEM;
	int rc = jnl_open_record_into(j, p, n, r, buf);
	if (rc == 0 && r->f[HQ_F_SEALED].n && !r->locked)
		*plain = buf;
	else
		free(buf);
	return rc;
}

/* Adds the seals made since the last flush to keys[0]'s entry, in txn,
 * just before it commits (commit_sealing).  *n gets how many, *total the
 * new count. */
static int
seals_flush(hq_journal *j, MDB_txn *txn, uint64_t *n, uint64_t *total)
{
	*n = __atomic_exchange_n(&j->unsaved_seals, 0, __ATOMIC_RELAXED);
	if (*n == 0)
		return 0;
	*total = jnl_key_seals(j, txn, j->keys[0].id) + *n;
	return jnl_key_put(j, txn, j->keys[0].id, *total);
}

int
jnl_commit_sealing(hq_journal *j, MDB_txn *txn)
{
	uint64_t n = 0, total = 0;
	int rc = j->nkeys ? seals_flush(j, txn, &n, &total) : 0;
	if (rc == 0) {
		rc = mdb_txn_commit(txn);
	} else {
		mdb_txn_abort(txn);
	}
	if (rc != 0 && n) /* nonces were drawn all the same: count them */
		__atomic_add_fetch(&j->unsaved_seals, n, __ATOMIC_RELAXED);
	else if (rc == 0 && n)
		__atomic_store_n(&j->seals, total, __ATOMIC_RELAXED);
	return rc;
}

void
hq_journal_set_seal_limits(hq_journal *j, uint64_t warn, uint64_t limit)
{
	j->seal_warn = warn;
	j->seal_limit = limit;
}

int
hq_journal_key_wear(hq_journal *j, uint64_t *seals)
{
	uint64_t n = __atomic_load_n(&j->seals, __ATOMIC_RELAXED) +
		     __atomic_load_n(&j->unsaved_seals, __ATOMIC_RELAXED);
	*seals = n;
	if (j->nkeys == 0)
		return 0;
	return n >= j->seal_limit ? 2 : n >= j->seal_warn ? 1 : 0;
}

int
hq_journal_seal_value(hq_journal *j, const void *aad, size_t aadlen, const void *in, size_t n,
		      void *out, size_t cap, size_t *outlen)
{
	if (j->nkeys == 0)
		return HQ_ENOTFOUND;
	if (cap < n + SEAL_OVERHEAD)
		return HQ_ETOOBIG;
	*outlen = n + SEAL_OVERHEAD;
	return jnl_seal(j, aad, aadlen, in, n, out);
}

int
hq_journal_commit(hq_journal *j, MDB_txn *txn)
{
	return jnl_commit_sealing(j, txn);
}

int
hq_journal_value_stale(const hq_journal *j, const void *in, size_t n)
{
	return j->nkeys ? jnl_blob_stale(j, in, n) : 0;
}

int
hq_journal_open_value(hq_journal *j, const void *aad, size_t aadlen, const void *in, size_t n,
		      void *out, size_t cap, size_t *outlen)
{
	if (n < SEAL_OVERHEAD)
		return HQ_ECORRUPT;
	if (cap < n - SEAL_OVERHEAD)
		return HQ_ETOOBIG;
	*outlen = n - SEAL_OVERHEAD;
	return jnl_unseal(j, aad, aadlen, in, n, out);
}

/* Whether a sealed blob needs sealing again (old format or old key). */
int
jnl_blob_stale(const hq_journal *j, const unsigned char *b, size_t n)
{
	return n < SEAL_OVERHEAD || b[0] != SEAL_FORMAT || memcmp(b + 1, j->keys[0].id, 4) != 0;
}
