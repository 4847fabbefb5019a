/*
 * journal.c - the LMDB journal (see journal.h for the contract).
 *
 * Layout, one LMDB environment with named databases:
 *   meta        "format" -> 1 byte; "next_id" -> be64 (see below)
 *   msgs        be64 id -> record (format byte first, see encode())
 *   by_time     be64 received_us -> be64 id   (DUPSORT, DUPFIXED)
 *   by_type     "code^trigger"   -> be64 id   (DUPSORT, DUPFIXED)  deferred
 *   by_control  MSH-10           -> be64 id   (DUPSORT, DUPFIXED)  deferred
 *   by_patient  PID-3.1          -> be64 id   (DUPSORT, DUPFIXED)  deferred
 *
 * Every B-tree an intake commit touches costs it at least one dirty page
 * (and its record in LMDB's main database, and a freed page to list), and
 * on one stop-and-wait connection those pages are the cost of each
 * message.  So the intake commit writes msgs and by_time only: both grow
 * at their ends (one rightmost leaf each).  Control ids and patient ids
 * land all over their trees (two random leaf pages per message), and
 * by_type is one more tree: they are written behind, by hq_journal_index(),
 * in larger transactions that the daemon runs between turns; meta
 * "indexed_upto" says how far, in the same transaction, so a crash never
 * leaves them half done (on start the daemon goes on from there: the
 * indexes are rebuilt from the records).  Lookups read the index and then
 * scan the short tail of records past indexed_upto: answers are complete
 * at every moment.  by_time stays in the intake commit because retention
 * walks it with a resumable cursor that a late entry could slip behind.
 *
 * meta "next_id" is not rewritten by every commit (that was one more dirty
 * leaf per message): the next id is the larger of it and the last key of
 * msgs + 1, and a purge, the one thing that can remove the last key,
 * raises "next_id" past every id it removes, in its own transaction.  So
 * an id is never handed out twice.
 *   dedup       sender+control   -> be64 id, be64 received_us
 *   deliveries  be64 id, target      -> delivery record (dlv_encode)
 *   pending     target \0 be64 id    -> (pending or retrying: the queue)
 *   dead        target \0 be64 id    -> (dead-lettered)
 *   attempts    be64 id, target \0 be32 n -> time, status, latency, error, body excerpt
 *   targets     target               -> delivered count, last success, last error,
 *                                          then pending, retrying and dead counts
 *
 * The per-target counts move in the transaction that moves a delivery
 * (dlv_move, hq_batch_add_delivery), so /metrics and `hl7q status` read
 * them in O(targets) whatever the backlog, never recounting the queues.
 * A journal written before them gets them once at open (fill_counts);
 * meta "counts_v1" says they are kept.
 *
 * Record format version 1: [1][id be64][received_us be64][state][is_batch]
 * [ack 2][err_code be16][dup_of be64][nfields][nfields x (be32 len, bytes)].
 * To change it: add fields at the end (readers skip what they do not
 * know); anything else takes REC_FORMAT 2 and a reader for both.
 *
 * Durability is LMDB's default: no MDB_NOSYNC, MDB_MAPASYNC or
 * MDB_NOMETASYNC, so mdb_txn_commit returns only once the data and the
 * meta page are fsynced.
 */
#include <errno.h>
#include <lmdb.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include <mbedtls/gcm.h>
#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>

#include "core/error.h"
#include "core/secret.h"
#include "journal.h"

#define REC_FORMAT 1
#define REC_HEADER 32
#define MAX_KEY 480 /* LMDB's default limit is 511 */

/* A key of an encrypted journal: its id, and the two keys derived from it. */
#define MAX_KEYS 16
typedef struct jkey {
	unsigned char id[4];
	unsigned char enc[32]; /* AES-256-GCM */
	unsigned char mac[32]; /* HMAC-SHA-256 of patient ids for the index */
} jkey;

struct hq_journal {
	jkey keys[MAX_KEYS]; /* keys[0] seals new records */
	int nkeys;
	MDB_env *env;
	MDB_dbi meta, msgs, by_time, by_type, by_control, by_patient, dedup;
	MDB_dbi deliveries, pending, attempts, dead, targets;
	char instance[33];
	char dir[1024]; /* for statvfs */
	uint64_t next_id;
	uint64_t indexed_upto; /* by_control/by_patient hold every id <= this */
	uint64_t commits;     /* commits attempted, for the test seam */
	uint64_t fail_at;     /* commit number that fails; 0 none */
	uint64_t usage_at_ms; /* when usage was last refreshed */
	int counts_kept;      /* meta "counts_v1": targets records carry the queue counts */
	hq_journal_usage usage;
	int readonly;
};

struct hq_batch {
	hq_journal *j;
	MDB_txn *txn;
	uint64_t first_id; /* next_id when the batch began */
	int err;	   /* first failure; the batch is poisoned */
};

static void
put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint64_t
get_be64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Small values (ids, counters) are [VAL_FORMAT][be64 ...]. */
#define VAL_FORMAT 1

/* Delivery record: [1][state][attempts be32][next_us be64][updated_us be64]
 * [last_status be16] (24 bytes, the first layout) then [attempt_base be32]
 * [replayed_us be64] (36: added for replay; a 24-byte record reads as never
 * replayed). */
#define DLV_SIZE 36
#define DLV_SIZE_V1 24

static void
put_val(unsigned char *p, uint64_t v)
{
	p[0] = VAL_FORMAT;
	put_be64(p + 1, v);
}

/* The be64 of a small value; 0 when it is not one this code knows. */
static uint64_t
get_val(const MDB_val *v)
{
	const unsigned char *p = v->mv_data;
	if (v->mv_size < 9 || p[0] != VAL_FORMAT)
		return 0;
	return get_be64(p + 1);
}

static void
put_be32(unsigned char *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint32_t
get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static size_t
encoded_size(const hq_record *r)
{
	size_t n = REC_HEADER;
	for (int i = 0; i < HQ_F_COUNT; i++)
		n += 4 + r->f[i].n;
	return n;
}

static void
encode(const hq_record *r, unsigned char *p)
{
	p[0] = REC_FORMAT;
	put_be64(p + 1, r->id);
	put_be64(p + 9, r->received_us);
	p[17] = r->state;
	p[18] = r->is_batch;
	p[19] = (unsigned char)r->ack[0];
	p[20] = (unsigned char)r->ack[1];
	p[21] = (unsigned char)(r->err_code >> 8);
	p[22] = (unsigned char)r->err_code;
	put_be64(p + 23, r->dup_of);
	/* p[31] is nfields */
	p += REC_HEADER - 1;
	*p++ = HQ_F_COUNT;
	for (int i = 0; i < HQ_F_COUNT; i++) {
		put_be32(p, (uint32_t)r->f[i].n);
		p += 4;
		if (r->f[i].n)
			memcpy(p, r->f[i].p, r->f[i].n);
		p += r->f[i].n;
	}
}

/*
 * Reads count [be32 length][bytes] items from p[0..n) into out[0..nout)
 * (items past nout are skipped: a newer writer's fields).  Returns 0 or
 * HQ_ECORRUPT when an item runs past the end.
 */
static int
split_fields(const unsigned char *p, size_t n, unsigned count, hq_str *out, size_t nout)
{
	size_t off = 0;
	for (unsigned i = 0; i < count; i++) {
		if (off + 4 > n)
			return HQ_ECORRUPT;
		uint32_t len = get_be32(p + off);
		off += 4;
		if (len > n - off)
			return HQ_ECORRUPT;
		if (i < nout)
			out[i] = (hq_str){(const char *)p + off, len};
		off += len;
	}
	return 0;
}

static int
decode(const unsigned char *p, size_t n, hq_record *r)
{
	memset(r, 0, sizeof *r);
	if (n < REC_HEADER || p[0] != REC_FORMAT)
		return HQ_ECORRUPT;
	r->id = get_be64(p + 1);
	r->received_us = get_be64(p + 9);
	r->state = p[17];
	r->is_batch = p[18];
	r->ack[0] = (char)p[19];
	r->ack[1] = (char)p[20];
	r->ack[2] = 0;
	r->err_code = (uint16_t)(p[21] << 8 | p[22]);
	r->dup_of = get_be64(p + 23);
	return split_fields(p + REC_HEADER, n - REC_HEADER, p[REC_HEADER - 1], r->f, HQ_F_COUNT);
}

/* --- encryption at rest ---------------------------------------------------
 * A sealed value: [SEAL_FORMAT][key id 4][nonce 12][ciphertext][tag 16],
 * AES-256-GCM, with associated data binding it to its place (the record
 * id, or the attempt's key), so that a sealed value moved elsewhere does
 * not open. */
#define SEAL_FORMAT 1
#define SEAL_OVERHEAD (1 + 4 + 12 + 16)
#define ATTEMPT_SEALED 2 /* an attempt value whose answer excerpt is sealed */

static const jkey *
key_by_id(const hq_journal *j, const unsigned char *id)
{
	for (int i = 0; i < j->nkeys; i++)
		if (memcmp(j->keys[i].id, id, 4) == 0)
			return &j->keys[i];
	return NULL;
}

/* Seals n bytes into out (n + SEAL_OVERHEAD bytes).  Returns 0 or an error. */
static int
seal(const hq_journal *j, const void *aad, size_t aadlen, const void *in, size_t n, unsigned char *out)
{
	const jkey *k = &j->keys[0];
	mbedtls_gcm_context g;
	out[0] = SEAL_FORMAT;
	memcpy(out + 1, k->id, 4);
	if (getrandom(out + 5, 12, 0) != 12)
		return EIO;
	mbedtls_gcm_init(&g);
	int rc = mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, k->enc, 256);
	if (rc == 0)
		rc = mbedtls_gcm_crypt_and_tag(&g, MBEDTLS_GCM_ENCRYPT, n, out + 5, 12, aad, aadlen, in,
					       out + 17, 16, out + 17 + n);
	mbedtls_gcm_free(&g);
	return rc ? HQ_ECORRUPT : 0;
}

/* Opens a sealed value into out (n - SEAL_OVERHEAD bytes).  Returns 0,
 * HQ_ENOTFOUND (no such key here) or HQ_ECORRUPT (tampered or misplaced). */
static int
unseal(const hq_journal *j, const void *aad, size_t aadlen, const unsigned char *in, size_t n,
       unsigned char *out)
{
	if (n < SEAL_OVERHEAD || in[0] != SEAL_FORMAT)
		return HQ_ECORRUPT;
	const jkey *k = key_by_id(j, in + 1);
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

/* The patient index key for pid under key k (16 bytes of HMAC-SHA-256). */
static void
patient_mac(const jkey *k, hq_str pid, unsigned char out[16])
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
 * Decodes a stored record of n bytes and, when it is sealed and a key is
 * here, opens it into buf (which holds at least n bytes): RAW and
 * PATIENT_* then point into buf.  Without the key, r->locked is set and
 * those fields stay empty.  Returns 0 or HQ_ECORRUPT.
 */
static int
open_record_into(const hq_journal *j, const unsigned char *p, size_t n, hq_record *r,
		 unsigned char *buf)
{
	int rc = decode(p, n, r);
	if (rc || r->f[HQ_F_SEALED].n == 0)
		return rc;
	hq_str sealed = r->f[HQ_F_SEALED];
	if (sealed.n < SEAL_OVERHEAD || key_by_id(j, (const unsigned char *)sealed.p + 1) == NULL) {
		r->locked = 1;
		return 0;
	}
	unsigned char aad[8];
	hq_str opened[NSEALED];
	put_be64(aad, r->id);
	if (unseal(j, aad, 8, (const unsigned char *)sealed.p, sealed.n, buf) != 0 ||
	    split_fields(buf, sealed.n - SEAL_OVERHEAD, NSEALED, opened, NSEALED) != 0)
		return HQ_ECORRUPT;
	for (int i = 0; i < NSEALED; i++)
		r->f[sealed_fields[i]] = opened[i];
	return 0;
}

/* open_record_into with a buffer of its own in *plain (the caller frees it; NULL: none needed). */
static int
open_record(const hq_journal *j, const unsigned char *p, size_t n, hq_record *r, void **plain)
{
	*plain = NULL;
	if (j->nkeys == 0) {
		int rc = decode(p, n, r);
		r->locked = rc == 0 && r->f[HQ_F_SEALED].n > 0; /* sealed, and no key here */
		return rc;
	}
	unsigned char *buf = malloc(n ? n : 1);
	if (buf == NULL)
		return ENOMEM;
	int rc = open_record_into(j, p, n, r, buf);
	if (rc == 0 && r->f[HQ_F_SEALED].n && !r->locked)
		*plain = buf;
	else
		free(buf);
	return rc;
}

static int
open_dbs(hq_journal *j, MDB_txn *txn, unsigned flags)
{
	static const struct { const char *name; size_t off; unsigned dup; } dbs[] = {
		{"meta", offsetof(hq_journal, meta), 0},
		{"msgs", offsetof(hq_journal, msgs), 0},
		{"by_time", offsetof(hq_journal, by_time), 1},
		{"by_type", offsetof(hq_journal, by_type), 1},
		{"by_control", offsetof(hq_journal, by_control), 1},
		{"by_patient", offsetof(hq_journal, by_patient), 1},
		{"dedup", offsetof(hq_journal, dedup), 0},
		{"deliveries", offsetof(hq_journal, deliveries), 0},
		{"pending", offsetof(hq_journal, pending), 0},
		{"attempts", offsetof(hq_journal, attempts), 0},
		{"dead", offsetof(hq_journal, dead), 0},
		{"targets", offsetof(hq_journal, targets), 0},
	};
	for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
		unsigned f = flags | (dbs[i].dup ? MDB_DUPSORT | MDB_DUPFIXED : 0);
		int rc = mdb_dbi_open(txn, dbs[i].name, f,
				      (MDB_dbi *)((char *)j + dbs[i].off));
		if (rc)
			return rc;
	}
	return 0;
}

/* Reads the id stored in meta under key; 0 when absent.  Returns 0 or an error. */
static int
meta_get_id(hq_journal *j, MDB_txn *txn, const char *key, uint64_t *out)
{
	MDB_val k = {strlen(key), (void *)key}, v;
	int rc = mdb_get(txn, j->meta, &k, &v);
	*out = rc == 0 ? get_val(&v) : 0;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
load_next_id(hq_journal *j, MDB_txn *txn)
{
	MDB_val v;
	uint64_t next;
	int rc = meta_get_id(j, txn, "next_id", &next);
	if (rc)
		return rc;
	if (next == 0)
		next = 1;
	/* Never hand out an id at or below one stored. */
	MDB_cursor *c;
	if ((rc = mdb_cursor_open(txn, j->msgs, &c)))
		return rc;
	MDB_val mk;
	if (mdb_cursor_get(c, &mk, &v, MDB_LAST) == 0 && mk.mv_size == 8) {
		uint64_t last = get_be64(mk.mv_data);
		if (last >= next)
			next = last + 1;
	}
	mdb_cursor_close(c);
	j->next_id = next;
	return meta_get_id(j, txn, "indexed_upto", &j->indexed_upto);
}

static int tstat_count_delivered(hq_journal *j, MDB_txn *txn, const char *target);
static int dead_mark(hq_journal *j, MDB_txn *txn, const char *target, uint64_t id);

/* Journals written before the dead list and the per-target figures
 * existed get them once, from their delivery records. */
static int
fill_target_stats(hq_journal *j, MDB_txn *txn)
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

static int fill_counts(hq_journal *j, MDB_txn *txn);

int
hq_journal_open(const char *dir, uint64_t map_size, int readonly,
		hq_journal **out)
{
	hq_journal *j = calloc(1, sizeof *j);
	MDB_txn *txn = NULL;
	int rc, dead;

	if (j == NULL)
		return ENOMEM;
	j->readonly = readonly;
	snprintf(j->dir, sizeof j->dir, "%s", dir);
	if (!readonly && mkdir(dir, 0700) != 0 && errno != EEXIST) {
		rc = errno;
		goto fail;
	}
	if ((rc = mdb_env_create(&j->env)))
		goto fail;
	mdb_env_set_maxdbs(j->env, 16);
	mdb_env_set_maxreaders(j->env, 256);
	if (map_size && (rc = mdb_env_set_mapsize(j->env, (size_t)map_size)))
		goto fail;
	if ((rc = mdb_env_open(j->env, dir, MDB_NOTLS | (readonly ? MDB_RDONLY : 0),
			       0600)))
		goto fail;
	mdb_reader_check(j->env, &dead);
	if ((rc = mdb_txn_begin(j->env, NULL, readonly ? MDB_RDONLY : 0, &txn)))
		goto fail;
	if ((rc = open_dbs(j, txn, readonly ? 0 : MDB_CREATE)))
		goto fail;
	if (!readonly) {
		MDB_val k = {6, "format"}, v = {1, "\x01"};
		if ((rc = mdb_put(txn, j->meta, &k, &v, 0)))
			goto fail;
	}
	{
		MDB_val ik = {8, "instance"}, iv;
		if (mdb_get(txn, j->meta, &ik, &iv) == 0 && iv.mv_size == 33 &&
		    ((unsigned char *)iv.mv_data)[0] == VAL_FORMAT) {
			memcpy(j->instance, (char *)iv.mv_data + 1, 32);
		} else if (!readonly) {
			unsigned char rnd[16], val[33];
			if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
				rc = errno;
				goto fail;
			}
			for (int i = 0; i < 16; i++)
				snprintf(j->instance + 2 * i, 3, "%02x", rnd[i]);
			val[0] = VAL_FORMAT;
			memcpy(val + 1, j->instance, 32);
			iv = (MDB_val){33, val};
			if ((rc = mdb_put(txn, j->meta, &ik, &iv, 0)))
				goto fail;
		}
	}
	if (!readonly && (rc = fill_target_stats(j, txn)))
		goto fail;
	if (!readonly && (rc = fill_counts(j, txn)))
		goto fail;
	{
		MDB_val ck = {9, "counts_v1"}, cv;
		j->counts_kept = mdb_get(txn, j->meta, &ck, &cv) == 0;
	}
	if ((rc = load_next_id(j, txn)))
		goto fail;
	if ((rc = mdb_txn_commit(txn))) {
		txn = NULL;
		goto fail;
	}
	*out = j;
	return 0;
fail:
	if (txn)
		mdb_txn_abort(txn);
	if (j->env)
		mdb_env_close(j->env);
	free(j);
	return rc;
}

void
hq_journal_close(hq_journal *j)
{
	if (j == NULL)
		return;
	mdb_env_close(j->env);
	hq_secret_wipe(j->keys, sizeof j->keys);
	free(j);
}

const char *
hq_journal_instance(hq_journal *j)
{
	return j->instance;
}

uint64_t
hq_journal_next_id(hq_journal *j)
{
	return j->next_id;
}

void
hq_journal_fail_commit(hq_journal *j, uint64_t n)
{
	j->fail_at = n ? j->commits + n : 0;
}

/* Free bytes on the filesystem of j's directory (UINT64_MAX when unknown). */
static uint64_t
fs_free(hq_journal *j)
{
	struct statvfs vfs;
	if (j->dir[0] == 0 || statvfs(j->dir, &vfs) != 0)
		return UINT64_MAX;
	return (uint64_t)vfs.f_bavail * vfs.f_frsize;
}

int
hq_journal_usage_get(hq_journal *j, hq_journal_usage *u)
{
	MDB_envinfo info;
	MDB_stat st;
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t freepages = 0;
	int rc;

	if ((rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn)))
		return rc;
	mdb_env_info(j->env, &info);
	mdb_env_stat(j->env, &st);
	/* Free DBI 0 holds the pages freed by old transactions: each value is
	 * a list of page numbers whose first word is its length. */
	if ((rc = mdb_cursor_open(txn, 0, &c)) == 0) {
		while (mdb_cursor_get(c, &k, &v, MDB_NEXT) == 0)
			freepages += *(size_t *)v.mv_data;
		mdb_cursor_close(c);
	}
	mdb_txn_abort(txn);
	u->map_size = info.me_mapsize;
	u->file_size = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	u->used = u->file_size - freepages * st.ms_psize;
	u->free = u->map_size > u->used ? u->map_size - u->used : 0;
	u->fs_free = fs_free(j);
	u->reserve = u->map_size / 16;
	if (u->reserve < 256 * 1024)
		u->reserve = 256 * 1024;
	if (u->reserve > 64ull * 1024 * 1024)
		u->reserve = 64ull * 1024 * 1024;
	return 0;
}

int
hq_journal_full(hq_journal *j, uint64_t now_ms, uint64_t refresh_ms)
{
	if (j->usage_at_ms == 0 || now_ms - j->usage_at_ms >= refresh_ms) {
		if (hq_journal_usage_get(j, &j->usage) != 0)
			return 0; /* let the commit tell */
		j->usage_at_ms = now_ms ? now_ms : 1;
	}
	return j->usage.free < j->usage.reserve || j->usage.fs_free < HQ_FS_RESERVE;
}

int
hq_journal_disk_full(hq_journal *j)
{
	return fs_free(j) < 2 * HQ_FS_RESERVE;
}

int
hq_batch_begin(hq_journal *j, hq_batch **out)
{
	hq_batch *b = calloc(1, sizeof *b);
	int rc;

	if (b == NULL)
		return ENOMEM;
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

int
hq_batch_add(hq_batch *b, hq_record *rec, hq_str dedup_key, uint64_t *id)
{
	hq_journal *j = b->j;
	unsigned char idbe[8], idval[9], tbe[8];
	MDB_val k = {8, idbe}, v;
	int rc;

	if (b->err)
		return b->err;
	rec->id = j->next_id;
	put_be64(idbe, rec->id);
	put_val(idval, rec->id);
	put_be64(tbe, rec->received_us);
	if (j->nkeys) {
		/* Encrypted journal: the bytes and the patient id go sealed. */
		hq_record sr = *rec;
		size_t plen = 0;
		for (int i = 0; i < NSEALED; i++)
			plen += 4 + rec->f[sealed_fields[i]].n;
		unsigned char *plain = malloc(plen), *blob = malloc(plen + SEAL_OVERHEAD);
		rc = plain && blob ? 0 : ENOMEM;
		if (rc == 0) {
			size_t off = 0;
			for (int i = 0; i < NSEALED; i++) {
				hq_str f = rec->f[sealed_fields[i]];
				put_be32(plain + off, (uint32_t)f.n);
				if (f.n)
					memcpy(plain + off + 4, f.p, f.n);
				off += 4 + f.n;
				sr.f[sealed_fields[i]] = (hq_str){NULL, 0};
			}
			rc = seal(j, idbe, 8, plain, plen, blob);
		}
		sr.f[HQ_F_SEALED] = (hq_str){(const char *)blob, plen + SEAL_OVERHEAD};
		v.mv_size = encoded_size(&sr);
		if (rc == 0 && (rc = mdb_put(b->txn, j->msgs, &k, &v, MDB_RESERVE | MDB_APPEND)) == 0)
			encode(&sr, v.mv_data);
		free(plain);
		free(blob);
		if (rc)
			goto fail;
	} else {
		v.mv_size = encoded_size(rec);
		if ((rc = mdb_put(b->txn, j->msgs, &k, &v, MDB_RESERVE | MDB_APPEND)))
			goto fail;
		encode(rec, v.mv_data);
	}
	MDB_val tk = {8, tbe}, tv = {9, idval};
	if ((rc = mdb_put(b->txn, j->by_time, &tk, &tv, 0)))
		goto fail;
	/* by_type, by_control, by_patient: hq_journal_index(), behind. */
	if (dedup_key.n > 0) {
		unsigned char dv[17];
		put_val(dv, rec->id);
		put_be64(dv + 9, rec->received_us);
		MDB_val dk = {dedup_key.n > MAX_KEY ? MAX_KEY : dedup_key.n,
			      (void *)dedup_key.p};
		MDB_val dval = {17, dv};
		if ((rc = mdb_put(b->txn, j->dedup, &dk, &dval, 0)))
			goto fail;
	}
	j->next_id++;
	*id = rec->id;
	return 0;
fail:
	batch_fail(b, rc);
	return rc;
}

int
hq_batch_find_dup(hq_batch *b, hq_str key, uint64_t since_us, uint64_t *id)
{
	MDB_val k = {key.n > MAX_KEY ? MAX_KEY : key.n, (void *)key.p}, v;
	int rc;

	if (b->err)
		return b->err;
	if (key.n == 0)
		return HQ_ENOTFOUND;
	rc = mdb_get(b->txn, b->j->dedup, &k, &v);
	if (rc == MDB_NOTFOUND || (rc == 0 && (v.mv_size != 17 || get_val(&v) == 0)))
		return HQ_ENOTFOUND;
	if (rc)
		return rc;
	if (get_be64((unsigned char *)v.mv_data + 9) < since_us)
		return HQ_ENOTFOUND;
	*id = get_val(&v);
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
		rc = mdb_txn_commit(b->txn);
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
			rc = open_record_into(j, copy, v.mv_size, rec, copy + v.mv_size);
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


static hq_str type_key(hq_str type);
static int type_matches(hq_str type, hq_str want);

static uint64_t
read_indexed_upto(hq_journal *j, MDB_txn *txn)
{
	uint64_t upto;
	return meta_get_id(j, txn, "indexed_upto", &upto) == 0 ? upto : 0;
}


uint64_t
hq_journal_unindexed(hq_journal *j)
{
	return j->next_id - 1 > j->indexed_upto ? j->next_id - 1 - j->indexed_upto : 0;
}

long
hq_journal_index(hq_journal *j, size_t max)
{
	unsigned char start[8], idval[9], upbe[9];
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k = {8, start}, v;
	uint64_t upto;
	long done = 0;
	int rc;

	if ((rc = mdb_txn_begin(j->env, NULL, 0, &txn)))
		return rc > 0 ? -rc : rc;
	upto = read_indexed_upto(j, txn);
	put_be64(start, upto + 1);
	if ((rc = mdb_cursor_open(txn, j->msgs, &c))) {
		mdb_txn_abort(txn);
		return rc;
	}
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && (size_t)done < max) {
		hq_record r;
		void *plain;
		if (open_record(j, v.mv_data, v.mv_size, &r, &plain) == 0) {
			unsigned char mac[16];
			put_val(idval, r.id);
			hq_str ctrl = r.f[HQ_F_CONTROL_ID], pid = r.f[HQ_F_PATIENT_ID];
			if (j->nkeys && pid.n) { /* encrypted journal: an HMAC, not the id */
				patient_mac(&j->keys[0], pid, mac);
				pid = (hq_str){(const char *)mac, 16};
			}
			/* by_type holds code^trigger only, so a prefix "ADT" finds them all. */
			hq_str type = type_key(r.f[HQ_F_TYPE]);
			MDB_val ck = {ctrl.n > MAX_KEY ? MAX_KEY : ctrl.n, (void *)ctrl.p};
			MDB_val pk = {pid.n > MAX_KEY ? MAX_KEY : pid.n, (void *)pid.p};
			MDB_val tk = {type.n > MAX_KEY ? MAX_KEY : type.n, (void *)type.p};
			MDB_val iv = {9, idval};
			/* The keys point into the map: copy-on-write puts may move
			 * that page, so every key is read before any put. */
			char kbuf[3 * MAX_KEY];
			memcpy(kbuf, ck.mv_data, ck.mv_size);
			memcpy(kbuf + MAX_KEY, pk.mv_data, pk.mv_size);
			memcpy(kbuf + 2 * MAX_KEY, tk.mv_data, tk.mv_size);
			ck.mv_data = kbuf;
			pk.mv_data = kbuf + MAX_KEY;
			tk.mv_data = kbuf + 2 * MAX_KEY;
			upto = r.id;
			free(plain);
			if ((ck.mv_size && (rc = mdb_put(txn, j->by_control, &ck, &iv, 0))) ||
			    (pk.mv_size && (rc = mdb_put(txn, j->by_patient, &pk, &iv, 0))) ||
			    (tk.mv_size && (rc = mdb_put(txn, j->by_type, &tk, &iv, 0))))
				break;
		}
		done++;
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return rc > 0 ? -rc : rc;
	}
	put_val(upbe, upto);
	MDB_val uk = {12, "indexed_upto"}, uv = {9, upbe};
	if ((rc = mdb_put(txn, j->meta, &uk, &uv, 0))) {
		mdb_txn_abort(txn);
		return rc > 0 ? -rc : rc;
	}
	if ((rc = mdb_txn_commit(txn)))
		return rc > 0 ? -rc : rc;
	j->indexed_upto = upto;
	return done;
}


int
hq_journal_count(hq_journal *j, uint64_t *count)
{
	MDB_txn *txn;
	MDB_stat st;
	int rc;

	if ((rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn)))
		return rc;
	rc = mdb_stat(txn, j->msgs, &st);
	mdb_txn_abort(txn);
	if (rc == 0)
		*count = st.ms_entries;
	return rc;
}

/* --- delivery ---------------------------------------------------------- */


static size_t
dlv_key(unsigned char *k, uint64_t id, const char *target)
{
	size_t n = strlen(target);
	put_be64(k, id);
	memcpy(k + 8, target, n);
	return 8 + n;
}

static size_t
pending_key(unsigned char *k, const char *target, uint64_t id)
{
	size_t n = strlen(target);
	memcpy(k, target, n);
	k[n] = 0;
	put_be64(k + n + 1, id);
	return n + 9;
}

static void
dlv_encode(unsigned char *v, const hq_delivery *d)
{
	v[0] = VAL_FORMAT;
	v[1] = (unsigned char)d->state;
	put_be32(v + 2, d->attempts);
	put_be64(v + 6, d->next_us);
	put_be64(v + 14, d->updated_us);
	v[22] = (unsigned char)(d->last_status >> 8);
	v[23] = (unsigned char)d->last_status;
	put_be32(v + 24, d->attempt_base);
	put_be64(v + 28, d->replayed_us);
}

static int
dlv_decode(const MDB_val *val, hq_delivery *d)
{
	const unsigned char *v = val->mv_data;
	if (val->mv_size < DLV_SIZE_V1 || v[0] != VAL_FORMAT)
		return HQ_ECORRUPT;
	d->state = (hq_dlv_state)v[1];
	d->attempts = get_be32(v + 2);
	d->next_us = get_be64(v + 6);
	d->updated_us = get_be64(v + 14);
	d->last_status = v[22] << 8 | v[23];
	d->attempt_base = val->mv_size >= DLV_SIZE ? get_be32(v + 24) : 0;
	d->replayed_us = val->mv_size >= DLV_SIZE ? get_be64(v + 28) : 0;
	if (d->attempt_base > d->attempts)
		d->attempt_base = d->attempts;
	return 0;
}

/* A target's running figures (the "targets" database). */
/* Record: [1][delivered be64][last_ok_us be64][last_err_us be64][n][error n]
 * then, once counts are kept, [pending be64][retrying be64][dead be64]
 * (readers that predate them stop after the error). */
typedef struct tstat {
	uint64_t delivered, last_ok_us, last_err_us;
	char last_error[128];
	uint64_t pending, retrying, dead; /* valid when have_counts */
	int have_counts;
} tstat;

static void
tstat_get(hq_journal *j, MDB_txn *txn, const char *target, tstat *t)
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

static int
tstat_put(hq_journal *j, MDB_txn *txn, const char *target, const tstat *t)
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
	tcount *nv = realloc(*v, (*n + 1) * sizeof *nv);
	if (nv == NULL)
		return NULL;
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
static int
fill_counts(hq_journal *j, MDB_txn *txn)
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
		if (k.mv_size <= 8 || tl >= HQ_TARGET_MAX || dlv_decode(&v, &d) != 0 || d.state > 4)
			continue;
		tcount *t = tcount_of(&tc, &ntc, (char *)k.mv_data + 8, tl);
		if (t == NULL) {
			rc = ENOMEM;
			break;
		}
		t->n[d.state]++;
	}
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	/* targets with a record and no deliveries left count zero */
	if (rc == 0 && (rc = mdb_cursor_open(txn, j->targets, &c)) == 0) {
		for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
			if (k.mv_size < HQ_TARGET_MAX && tcount_of(&tc, &ntc, k.mv_data, k.mv_size) == NULL) {
				rc = ENOMEM;
				break;
			}
		mdb_cursor_close(c);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	for (size_t i = 0; rc == 0 && i < ntc; i++) {
		tstat ts;
		tstat_get(j, txn, tc[i].name, &ts);
		ts.pending = tc[i].n[HQ_DLV_PENDING];
		ts.retrying = tc[i].n[HQ_DLV_RETRY];
		ts.dead = tc[i].n[HQ_DLV_DEAD];
		ts.have_counts = 1;
		rc = tstat_put(j, txn, tc[i].name, &ts);
	}
	free(tc);
	mv = (MDB_val){1, "\x01"};
	if (rc == 0)
		rc = mdb_put(txn, j->meta, &mk, &mv, 0);
	return rc;
}

/* Moves delivery (id, target) out of its old state's bookkeeping
 * (queue, dead list, delivered count) and into the new one's. */
static int
dlv_move(hq_journal *j, MDB_txn *txn, const char *target, uint64_t id, hq_dlv_state from,
	 hq_dlv_state to, tstat *ts)
{
	unsigned char pk[HQ_TARGET_MAX + 9], one = VAL_FORMAT;
	MDB_val qk = {pending_key(pk, target, id), pk}, qv = {1, &one};
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
	tstat_get(j, txn, target, &ts);
	ts.delivered++;
	return tstat_put(j, txn, target, &ts);
}

static int
dead_mark(hq_journal *j, MDB_txn *txn, const char *target, uint64_t id)
{
	unsigned char pk[HQ_TARGET_MAX + 9], one = VAL_FORMAT;
	MDB_val k = {pending_key(pk, target, id), pk}, v = {1, &one};
	return mdb_put(txn, j->dead, &k, &v, 0);
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
	dlv_encode(v, &d);
	MDB_val dk = {dlv_key(k, id, target), k}, dv = {DLV_SIZE, v};
	MDB_val qk = {pending_key(pk, target, id), pk}, qv = {1, &one};
	tstat ts;
	tstat_get(b->j, b->txn, target, &ts);
	if (ts.have_counts)
		ts.pending++;
	if ((rc = mdb_put(b->txn, b->j->deliveries, &dk, &dv, 0)) ||
	    (rc = mdb_put(b->txn, b->j->pending, &qk, &qv, 0)) ||
	    (ts.have_counts && (rc = tstat_put(b->j, b->txn, target, &ts)))) {
		batch_fail(b, rc);
		return rc;
	}
	return 0;
}

static void
copy_field(char *dst, size_t cap, hq_str s)
{
	size_t n = s.n < cap - 1 ? s.n : cap - 1;
	if (n)
		memcpy(dst, s.p, n);
	dst[n] = 0;
}

/* Patients held back in one hq_journal_due() call (ordering "patient"). */
typedef struct held {
	char (*ids)[64];
	size_t n, cap;
} held;

static int
held_has(const held *h, hq_str p)
{
	for (size_t i = 0; i < h->n; i++)
		if (strlen(h->ids[i]) == p.n && memcmp(h->ids[i], p.p, p.n) == 0)
			return 1;
	return 0;
}

static void
held_add(held *h, hq_str p)
{
	if (p.n == 0 || p.n >= 64 || held_has(h, p))
		return;
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 64;
		char (*ids)[64] = realloc(h->ids, cap * sizeof *ids);
		if (ids == NULL)
			return;
		h->ids = ids;
		h->cap = cap;
	}
	memcpy(h->ids[h->n], p.p, p.n);
	h->ids[h->n++][p.n] = 0;
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

long
hq_journal_due(hq_journal *j, const char *target, uint64_t now_us, hq_due_order order,
	       uint32_t shard, uint32_t nshards, const uint64_t *skip, size_t nskip, hq_due *out, size_t max,
	       uint64_t *next_us)
{
	unsigned char pk[64 + 9];
	size_t tlen = strlen(target);
	int fifo = order == HQ_DUE_FIFO, bypatient = order == HQ_DUE_PATIENT;
	held h = {0};
	unsigned char *pbuf = NULL; /* an opened (decrypted) record */
	size_t pcap = 0;
	MDB_txn *txn;
	MDB_cursor *c;
	long n = 0;
	int rc, scanned = 0;

	*next_us = 0;
	if (tlen >= 64)
		return -EINVAL;
	if ((rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn)))
		return rc > 0 ? -rc : rc;
	if ((rc = mdb_cursor_open(txn, j->pending, &c))) {
		mdb_txn_abort(txn);
		return rc > 0 ? -rc : rc;
	}
	MDB_val k = {pending_key(pk, target, 0), pk}, v;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	/* by patient, a bounded look ahead: the queue may be long */
	while (rc == 0 && (size_t)n < max && scanned++ < 100000) {
		if (k.mv_size != tlen + 9 || memcmp(k.mv_data, target, tlen) != 0 ||
		    ((unsigned char *)k.mv_data)[tlen] != 0)
			break;
		uint64_t id = get_be64((unsigned char *)k.mv_data + tlen + 1);
		int skipped = 0;
		for (size_t i = 0; i < nskip && !skipped; i++)
			skipped = skip[i] == id;
		if (nshards > 1 && order == HQ_DUE_NONE && id % nshards != shard) {
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
			continue; /* another worker's */
		}
		if (skipped && fifo)
			break; /* the head is in flight: nothing else may go */
		if (skipped && !bypatient) {
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
			continue;
		}
		unsigned char dk[8 + 64];
		MDB_val dkey = {dlv_key(dk, id, target), dk}, dval, mk = {8, dk}, mval;
		hq_delivery d;
		hq_record r;
		if (mdb_get(txn, j->deliveries, &dkey, &dval) != 0 || dlv_decode(&dval, &d) != 0 ||
		    mdb_get(txn, j->msgs, &mk, &mval) != 0 || grow(&pbuf, &pcap, mval.mv_size) != 0 ||
		    open_record_into(j, mval.mv_data, mval.mv_size, &r, pbuf) != 0 || r.locked) {
			/* A pending entry without its records (purged): skip it. */
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
			continue;
		}
		hq_str patient = r.f[HQ_F_PATIENT_ID];
		if (bypatient && patient.n > 0 && held_has(&h, patient)) {
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
			continue; /* an earlier message of this patient is not done */
		}
		if (skipped) {
			if (bypatient)
				held_add(&h, patient);
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
			continue;
		}
		if (d.next_us > now_us) {
			if (*next_us == 0 || d.next_us < *next_us)
				*next_us = d.next_us;
			if (fifo)
				break;
			if (bypatient)
				held_add(&h, patient);
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
			continue;
		}
		hq_due *o = &out[n];
		memset(o, 0, sizeof *o);
		o->id = id;
		o->attempts = d.attempts - d.attempt_base;
		o->received_us = r.received_us;
		o->age_from_us = d.replayed_us > r.received_us ? d.replayed_us : r.received_us;
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
			break;
		memcpy(o->raw, r.f[HQ_F_RAW].p, r.f[HQ_F_RAW].n);
		o->raw_len = r.f[HQ_F_RAW].n;
		n++;
		if (fifo)
			break;
		if (bypatient)
			held_add(&h, patient);
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	free(h.ids);
	free(pbuf);
	return n;
}

int
hq_journal_record_outcomes(hq_journal *j, const char *target, const hq_outcome *o,
			   size_t n)
{
	MDB_txn *txn;
	tstat ts;
	int rc;

	if (strlen(target) >= HQ_TARGET_MAX)
		return EINVAL;
	if ((rc = mdb_txn_begin(j->env, NULL, 0, &txn)))
		return rc;
	tstat_get(j, txn, target, &ts);
	for (size_t i = 0; i < n && rc == 0; i++) {
		unsigned char dk[8 + HQ_TARGET_MAX], v[DLV_SIZE];
		MDB_val dkey = {dlv_key(dk, o[i].id, target), dk}, dval;
		hq_delivery d;
		if (mdb_get(txn, j->deliveries, &dkey, &dval) != 0 || dlv_decode(&dval, &d) != 0)
			continue; /* purged meanwhile */
		hq_dlv_state from = d.state;
		d.state = o[i].state;
		d.attempts++;
		d.next_us = o[i].state == HQ_DLV_RETRY ? o[i].next_us : 0;
		d.updated_us = o[i].at_us;
		d.last_status = o[i].http_status;
		dlv_encode(v, &d);
		MDB_val nv = {DLV_SIZE, v};
		if ((rc = mdb_put(txn, j->deliveries, &dkey, &nv, 0)))
			break;
		/* the attempt */
		unsigned char ak[8 + HQ_TARGET_MAX + 5];
		size_t tl = strlen(target);
		put_be64(ak, o[i].id);
		memcpy(ak + 8, target, tl);
		ak[8 + tl] = 0;
		put_be32(ak + 9 + tl, d.attempts);
		size_t elen = strnlen(o[i].error, sizeof o[i].error);
		size_t blen = o[i].body_len < sizeof o[i].body ? o[i].body_len : sizeof o[i].body;
		unsigned char av[1 + 8 + 2 + 4 + 2 + sizeof o[i].error + sizeof o[i].body + SEAL_OVERHEAD];
		av[0] = j->nkeys && blen ? ATTEMPT_SEALED : VAL_FORMAT;
		put_be64(av + 1, o[i].at_us);
		av[9] = (unsigned char)(o[i].http_status >> 8);
		av[10] = (unsigned char)o[i].http_status;
		put_be32(av + 11, o[i].latency_us);
		av[15] = (unsigned char)(elen >> 8);
		av[16] = (unsigned char)elen;
		memcpy(av + 17, o[i].error, elen);
		if (av[0] == ATTEMPT_SEALED) { /* the answer may quote patient data */
			if ((rc = seal(j, ak, 13 + tl, o[i].body, blen, av + 17 + elen)))
				break;
			blen += SEAL_OVERHEAD;
		} else {
			memcpy(av + 17 + elen, o[i].body, blen);
		}
		MDB_val akey = {13 + tl, ak}, aval = {17 + elen + blen, av};
		if ((rc = mdb_put(txn, j->attempts, &akey, &aval, 0)))
			break;
		rc = dlv_move(j, txn, target, o[i].id, from, d.state, &ts);
		if (d.state == HQ_DLV_DELIVERED) {
			ts.last_ok_us = o[i].at_us;
		} else {
			ts.last_err_us = o[i].at_us;
			memcpy(ts.last_error, o[i].error, sizeof ts.last_error);
			ts.last_error[sizeof ts.last_error - 1] = 0;
		}
	}
	if (rc == 0)
		rc = tstat_put(j, txn, target, &ts);
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_txn_commit(txn);
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
	MDB_val k = {dlv_key(dk, id, target), dk};
	if ((rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn)))
		return rc;
	rc = mdb_get(txn, j->deliveries, &k, &v);
	if (rc == 0)
		rc = dlv_decode(&v, d);
	else if (rc == MDB_NOTFOUND)
		rc = HQ_ENOTFOUND;
	mdb_txn_abort(txn);
	return rc;
}

/* --- audit and operation ----------------------------------------------- */

size_t
hq_dedup_key(hq_str app, hq_str fac, hq_str control, char *buf, size_t cap)
{
	hq_str parts[3] = {app, fac, control};
	size_t n = 0;
	for (int i = 0; i < 3; i++) {
		if (i && n < cap)
			buf[n++] = 0x1f;
		size_t k = parts[i].n < cap - n ? parts[i].n : cap - n;
		if (k)
			memcpy(buf + n, parts[i].p, k);
		n += k;
	}
	return n;
}

/* A growable list of ids. */
typedef struct idvec {
	uint64_t *v;
	size_t n, cap;
} idvec;

static int
idvec_push(idvec *iv, uint64_t id)
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
static void
idvec_sort(idvec *iv)
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
static long
deliveries_txn(hq_journal *j, MDB_txn *txn, uint64_t id, hq_msg_dlv *out, size_t max)
{
	unsigned char start[8];
	MDB_cursor *c;
	MDB_val k = {8, start}, v;
	long n = 0;
	int rc;

	put_be64(start, id);
	if ((rc = mdb_cursor_open(txn, j->deliveries, &c)))
		return rc > 0 ? -rc : rc;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size > 8 && get_be64(k.mv_data) == id) {
		size_t tl = k.mv_size - 8;
		if ((size_t)n < max && tl < HQ_TARGET_MAX) {
			memcpy(out[n].target, (char *)k.mv_data + 8, tl);
			out[n].target[tl] = 0;
			if (dlv_decode(&v, &out[n].d) == 0)
				n++;
		} else if ((size_t)n >= max) {
			n++;
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? n : (rc > 0 ? -rc : rc);
}

long
hq_journal_deliveries(hq_journal *j, uint64_t id, hq_msg_dlv *out, size_t max)
{
	MDB_txn *txn;
	int rc;
	if ((rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn)))
		return rc > 0 ? -rc : rc;
	long n = deliveries_txn(j, txn, id, out, max);
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
		return rc > 0 ? -rc : rc;
	if ((rc = mdb_cursor_open(txn, j->attempts, &c))) {
		mdb_txn_abort(txn);
		return rc > 0 ? -rc : rc;
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
				if (bl >= SEAL_OVERHEAD && bl - SEAL_OVERHEAD <= sizeof body &&
				    unseal(j, k.mv_data, k.mv_size, (const unsigned char *)a.body, bl, body) == 0) {
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
	return rc == 0 || rc == MDB_NOTFOUND ? n : (rc > 0 ? -rc : rc);
}

/* code^trigger of a stored MSH-9 (the by_type key). */
static hq_str
type_key(hq_str type)
{
	const char *caret = type.n ? memchr(type.p, '^', type.n) : NULL;
	if (caret) {
		const char *second = memchr(caret + 1, '^', type.n - (size_t)(caret + 1 - type.p));
		if (second)
			type.n = (size_t)(second - type.p);
	}
	return type;
}

static int
str_eq(hq_str a, hq_str b)
{
	size_t an = a.n > MAX_KEY ? MAX_KEY : a.n, bn = b.n > MAX_KEY ? MAX_KEY : b.n;
	return an == bn && (an == 0 || memcmp(a.p, b.p, an) == 0);
}

/* "ADT" matches ADT and ADT^...; "ADT^A01" matches exactly. */
static int
type_matches(hq_str type, hq_str want)
{
	hq_str k = type_key(type);
	if (memchr(want.p, '^', want.n))
		return str_eq(k, want);
	return k.n >= want.n && memcmp(k.p, want.p, want.n) == 0 &&
	       (k.n == want.n || k.p[want.n] == '^');
}

/* Whether record r with deliveries d[0..nd) passes every filter of q. */
static int
query_match(const hq_query *q, const hq_record *r, const hq_msg_dlv *d, size_t nd)
{
	if (q->since_us && r->received_us < q->since_us)
		return 0;
	if (q->until_us && r->received_us >= q->until_us)
		return 0;
	if (q->type.n && !type_matches(r->f[HQ_F_TYPE], q->type))
		return 0;
	if (q->control_id.n && !str_eq(r->f[HQ_F_CONTROL_ID], q->control_id))
		return 0;
	if (q->patient.n && !str_eq(r->f[HQ_F_PATIENT_ID], q->patient))
		return 0;
	if (q->state == HQ_STATE_REJECTED)
		return r->state == HQ_MSG_REJECTED;
	if (q->state == 0 && q->target == NULL)
		return 1;
	for (size_t i = 0; i < nd; i++)
		if ((q->target == NULL || strcmp(q->target, d[i].target) == 0) &&
		    (q->state == 0 || (int)d[i].d.state == q->state ||
		     (q->state == HQ_STATE_QUEUED &&
		      (d[i].d.state == HQ_DLV_PENDING || d[i].d.state == HQ_DLV_RETRY))))
			return 1;
	return 0;
}

/* Collects the ids of a target queue (pending or dead), every target's when target is NULL. */
static int
queue_ids(MDB_txn *txn, MDB_dbi dbi, const char *target, idvec *out)
{
	unsigned char pk[HQ_TARGET_MAX + 9];
	size_t tl = target ? strlen(target) : 0;
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, dbi, &c)))
		return rc;
	if (target) {
		k = (MDB_val){pending_key(pk, target, 0), pk};
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
		if ((rc = idvec_push(out, get_be64(p + k.mv_size - 8))))
			break;
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
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
		if ((rc = idvec_push(out, get_val(&v))))
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

	put_be64(start, read_indexed_upto(j, txn) + 1);
	if ((rc = mdb_cursor_open(txn, j->msgs, &c)))
		return rc;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0) {
		hq_record r;
		void *plain;
		if (open_record(j, v.mv_data, v.mv_size, &r, &plain) == 0) {
			int match = field == HQ_F_TYPE ? type_matches(r.f[field], key)
						       : str_eq(r.f[field], key);
			free(plain);
			if (match && (rc = idvec_push(out, r.id)))
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
static int
lookup_ids(hq_journal *j, MDB_txn *txn, hq_index idx, hq_str key, idvec *out)
{
	int rc = 0;
	if (idx == HQ_IDX_CONTROL) {
		if ((rc = index_ids(txn, j->by_control, key, 0, out)) == 0)
			rc = tail_ids(j, txn, HQ_F_CONTROL_ID, key, out);
	} else if (idx == HQ_IDX_PATIENT) {
		if (j->nkeys) { /* encrypted journal: HMACs, under each key in turn */
			for (int i = 0; i < j->nkeys && rc == 0; i++) {
				unsigned char mac[16];
				patient_mac(&j->keys[i], key, mac);
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
hq_journal_lookup(hq_journal *j, hq_index idx, hq_str key, uint64_t *ids,
		  size_t max)
{
	idvec v = {0};
	MDB_txn *txn;
	int rc;

	if (key.n == 0)
		return 0;
	if ((rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn)))
		return rc > 0 ? -rc : rc;
	rc = lookup_ids(j, txn, idx, key, &v);
	mdb_txn_abort(txn);
	if (rc) {
		free(v.v);
		return rc > 0 ? -rc : rc;
	}
	idvec_sort(&v);
	for (size_t i = 0; i < v.n && i < max; i++)
		ids[i] = v.v[i];
	long n = (long)v.n;
	free(v.v);
	return n;
}

/* Reads record id in txn and, if it matches, hands it to fn.  1: fn asked to stop. */
static int
query_visit(hq_journal *j, MDB_txn *txn, const hq_query *q, uint64_t id, hq_query_fn fn,
	    void *arg, long *found, int *rc)
{
	unsigned char idbe[8];
	MDB_val k = {8, idbe}, v;
	hq_msg_dlv d[HQ_TARGET_MAX];
	hq_record r;
	void *plain;

	put_be64(idbe, id);
	if (mdb_get(txn, j->msgs, &k, &v) != 0 || open_record(j, v.mv_data, v.mv_size, &r, &plain) != 0)
		return 0; /* purged meanwhile, or not this code's format */
	long nd = deliveries_txn(j, txn, id, d, HQ_TARGET_MAX);
	int stop = 0;
	if (nd < 0) {
		*rc = (int)nd;
		stop = 1;
	} else {
		if ((size_t)nd > HQ_TARGET_MAX)
			nd = HQ_TARGET_MAX;
		if (query_match(q, &r, d, (size_t)nd)) {
			(*found)++;
			stop = fn(arg, &r, d, (size_t)nd) || (q->limit && (uint64_t)*found >= q->limit);
		}
	}
	free(plain);
	return stop;
}

long
hq_journal_query(hq_journal *j, const hq_query *q, hq_query_fn fn, void *arg)
{
	idvec ids = {0};
	MDB_txn *txn;
	long found = 0;
	int rc, by_ids = 1;

	if ((rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn)))
		return rc > 0 ? -rc : rc;
	if (q->control_id.n) {
		rc = lookup_ids(j, txn, HQ_IDX_CONTROL, q->control_id, &ids);
	} else if (q->patient.n) {
		rc = lookup_ids(j, txn, HQ_IDX_PATIENT, q->patient, &ids);
	} else if (q->state == HQ_DLV_PENDING || q->state == HQ_DLV_RETRY || q->state == HQ_STATE_QUEUED) {
		rc = queue_ids(txn, j->pending, q->target, &ids);
	} else if (q->state == HQ_DLV_DEAD) {
		rc = queue_ids(txn, j->dead, q->target, &ids);
	} else if (q->type.n && !q->since_us && !q->until_us) {
		rc = lookup_ids(j, txn, HQ_IDX_TYPE, q->type, &ids);
	} else {
		by_ids = 0;
	}
	if (rc == 0 && by_ids) {
		idvec_sort(&ids);
		for (size_t i = 0; i < ids.n; i++)
			if (query_visit(j, txn, q, ids.v[i], fn, arg, &found, &rc))
				break;
	} else if (rc == 0) {
		/* Stream the time range: one record at a time. */
		unsigned char tbe[8];
		MDB_cursor *c;
		MDB_val k = {8, tbe}, v;
		put_be64(tbe, q->since_us);
		if ((rc = mdb_cursor_open(txn, j->by_time, &c)) == 0) {
			rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
			while (rc == 0) {
				if (q->until_us && get_be64(k.mv_data) >= q->until_us)
					break;
				if (query_visit(j, txn, q, get_val(&v), fn, arg, &found, &rc))
					break;
				rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
			}
			if (rc == MDB_NOTFOUND)
				rc = 0;
			mdb_cursor_close(c);
		}
	}
	free(ids.v);
	mdb_txn_abort(txn);
	if (rc)
		return rc > 0 ? -rc : rc;
	return found;
}

/* Counts a target's queue and finds its oldest undelivered message. */
static int
summarise(hq_journal *j, MDB_txn *txn, hq_target_summary *s)
{
	unsigned char pk[HQ_TARGET_MAX + 9];
	size_t tl = strlen(s->name);
	MDB_cursor *c;
	MDB_val k = {pending_key(pk, s->name, 0), pk}, v;
	int rc;

	tstat ts;
	tstat_get(j, txn, s->name, &ts);
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
		MDB_val dkey = {dlv_key(dk, id, s->name), dk}, dval, mk = {8, dk}, mval;
		hq_delivery d;
		if (mdb_get(txn, j->deliveries, &dkey, &dval) == 0 && dlv_decode(&dval, &d) == 0) {
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
	rc = queue_ids(txn, j->dead, s->name, &dead);
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
		return rc > 0 ? -rc : rc;
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
		return rc > 0 ? -rc : rc;
	return n;
}

/* Queues delivery (id, target) again (creating it when create is set). */
static int
replay_one(hq_journal *j, MDB_txn *txn, uint64_t id, const char *target, int only_dead,
	   int create, uint64_t now_us, long *queued)
{
	unsigned char dk[8 + HQ_TARGET_MAX], v[DLV_SIZE];
	MDB_val dkey = {dlv_key(dk, id, target), dk}, dval;
	hq_delivery d;
	tstat ts;
	hq_dlv_state from = 0;
	int rc = mdb_get(txn, j->deliveries, &dkey, &dval);

	if (rc == MDB_NOTFOUND) {
		if (!create)
			return 0;
		memset(&d, 0, sizeof d);
	} else if (rc != 0 || (rc = dlv_decode(&dval, &d)) != 0) {
		return rc;
	} else {
		from = d.state;
	}
	if (only_dead && from != HQ_DLV_DEAD)
		return 0;
	tstat_get(j, txn, target, &ts);
	if ((rc = dlv_move(j, txn, target, id, from, HQ_DLV_PENDING, &ts)))
		return rc;
	d.state = HQ_DLV_PENDING;
	d.next_us = now_us;
	d.updated_us = now_us;
	d.attempt_base = d.attempts;
	d.replayed_us = now_us;
	dlv_encode(v, &d);
	MDB_val nv = {DLV_SIZE, v};
	if ((rc = mdb_put(txn, j->deliveries, &dkey, &nv, 0)) ||
	    (rc = tstat_put(j, txn, target, &ts)))
		return rc;
	(*queued)++;
	return 0;
}

long
hq_journal_replay(hq_journal *j, const uint64_t *ids, size_t n, const char *target,
		  int only_dead, uint64_t now_us)
{
	MDB_txn *txn;
	long queued = 0;
	int rc;

	if (target && strlen(target) >= HQ_TARGET_MAX)
		return -EINVAL;
	if ((rc = mdb_txn_begin(j->env, NULL, 0, &txn)))
		return rc > 0 ? -rc : rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		unsigned char idbe[8];
		MDB_val k = {8, idbe}, v;
		hq_record r;
		put_be64(idbe, ids[i]);
		if (mdb_get(txn, j->msgs, &k, &v) != 0 || decode(v.mv_data, v.mv_size, &r) != 0)
			continue;
		if (target) {
			int accepted = r.state == HQ_MSG_ACCEPTED || r.state == HQ_MSG_UNROUTED;
			rc = replay_one(j, txn, ids[i], target, only_dead, accepted, now_us, &queued);
			continue;
		}
		hq_msg_dlv d[HQ_TARGET_MAX];
		long nd = deliveries_txn(j, txn, ids[i], d, HQ_TARGET_MAX);
		if (nd < 0) {
			rc = (int)nd;
			break;
		}
		for (long t = 0; t < nd && t < HQ_TARGET_MAX && rc == 0; t++)
			rc = replay_one(j, txn, ids[i], d[t].target, only_dead, 0, now_us, &queued);
	}
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	return rc ? (rc > 0 ? -rc : rc) : queued;
}

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
		if (rc || k.mv_size < 8 || memcmp(k.mv_data, idbe, 8) != 0 ||
		    (rc = mdb_cursor_del(c, 0)))
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Deletes one (key, id) pair of a DUPSORT index. */
static int
del_index(MDB_txn *txn, MDB_dbi dbi, hq_str key, const unsigned char *idval)
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

static int
purge_one(hq_journal *j, MDB_txn *txn, uint64_t id, uint64_t indexed_upto, long *purged)
{
	unsigned char idbe[8], idval[9], tbe[8];
	MDB_val k = {8, idbe}, v;
	hq_record r;
	hq_msg_dlv d[HQ_TARGET_MAX];
	void *copy;
	int rc;

	put_be64(idbe, id);
	put_val(idval, id);
	if ((rc = mdb_get(txn, j->msgs, &k, &v)) == MDB_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	/* The record's strings point into the map: work on a copy (and room to open it). */
	if ((copy = malloc(2 * v.mv_size)) == NULL)
		return ENOMEM;
	memcpy(copy, v.mv_data, v.mv_size);
	if (open_record_into(j, copy, v.mv_size, &r, (unsigned char *)copy + v.mv_size) != 0) {
		free(copy);
		return HQ_ECORRUPT;
	}
	long nd = deliveries_txn(j, txn, id, d, HQ_TARGET_MAX);
	rc = nd < 0 ? (int)-nd : 0;
	for (long i = 0; rc == 0 && i < nd && i < HQ_TARGET_MAX; i++) {
		tstat ts;
		tstat_get(j, txn, d[i].target, &ts);
		if ((rc = dlv_move(j, txn, d[i].target, id, d[i].d.state, 0, &ts)) == 0 &&
		    (d[i].d.state == HQ_DLV_DELIVERED || ts.have_counts))
			rc = tstat_put(j, txn, d[i].target, &ts);
	}
	if (rc == 0)
		rc = del_prefix(txn, j->deliveries, idbe);
	if (rc == 0)
		rc = del_prefix(txn, j->attempts, idbe);
	put_be64(tbe, r.received_us);
	if (rc == 0)
		rc = del_index(txn, j->by_time, (hq_str){(char *)tbe, 8}, idval);
	if (rc == 0)
		rc = del_index(txn, j->by_type, type_key(r.f[HQ_F_TYPE]), idval);
	if (rc == 0 && id <= indexed_upto) {
		rc = del_index(txn, j->by_control, r.f[HQ_F_CONTROL_ID], idval);
		hq_str pid = r.f[HQ_F_PATIENT_ID];
		if (rc == 0 && j->nkeys) { /* indexed under one key's HMAC: try each */
			for (int i = 0; i < j->nkeys && rc == 0 && pid.n; i++) {
				unsigned char mac[16];
				patient_mac(&j->keys[i], pid, mac);
				rc = del_index(txn, j->by_patient, (hq_str){(const char *)mac, 16}, idval);
			}
		} else if (rc == 0) {
			rc = del_index(txn, j->by_patient, pid, idval);
		}
	}
	if (rc == 0) {
		char key[MAX_KEY];
		size_t kn = hq_dedup_key(r.f[HQ_F_SENDING_APP], r.f[HQ_F_SENDING_FAC],
					 r.f[HQ_F_CONTROL_ID], key, sizeof key);
		MDB_val dk = {kn, key}, dv;
		if (kn && mdb_get(txn, j->dedup, &dk, &dv) == 0 && get_val(&dv) == id)
			rc = mdb_del(txn, j->dedup, &dk, NULL);
	}
	free(copy);
	if (rc == 0 && (rc = mdb_del(txn, j->msgs, &k, NULL)) == 0)
		(*purged)++;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

long
hq_journal_purge(hq_journal *j, const uint64_t *ids, size_t n)
{
	MDB_txn *txn;
	long purged = 0;
	int rc;

	if ((rc = mdb_txn_begin(j->env, NULL, 0, &txn)))
		return rc > 0 ? -rc : rc;
	uint64_t upto = read_indexed_upto(j, txn), top = 0, next;
	for (size_t i = 0; i < n && rc == 0; i++) {
		rc = purge_one(j, txn, ids[i], upto, &purged);
		if (ids[i] > top)
			top = ids[i];
	}
	/* The intake commit does not write meta "next_id" (see the top):
	 * removing the last record must not let its id be handed out again. */
	if (rc == 0 && (rc = meta_get_id(j, txn, "next_id", &next)) == 0 && top >= next) {
		unsigned char nbe[9];
		put_val(nbe, top + 1);
		MDB_val nk = {7, "next_id"}, nv = {9, nbe};
		rc = mdb_put(txn, j->meta, &nk, &nv, 0);
	}
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	j->usage_at_ms = 0; /* free space changed */
	return rc ? (rc > 0 ? -rc : rc) : purged;
}

long
hq_journal_purge_before(hq_journal *j, uint64_t before_us, uint64_t *resume_us, size_t max,
			int dry_run)
{
	unsigned char tbe[8];
	idvec ids = {0};
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k = {8, tbe}, v;
	size_t scanned = 0;
	int rc;

	if ((rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn)))
		return rc > 0 ? -rc : rc;
	put_be64(tbe, *resume_us);
	if ((rc = mdb_cursor_open(txn, j->by_time, &c)) == 0) {
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		while (rc == 0) {
			uint64_t t = get_be64(k.mv_data), id = get_val(&v);
			if (t >= before_us) {
				rc = MDB_NOTFOUND; /* done */
				break;
			}
			*resume_us = t;
			if (ids.n == max || scanned++ >= 20 * max)
				break; /* a slice: the caller goes on from here */
			hq_msg_dlv d[HQ_TARGET_MAX];
			long nd = deliveries_txn(j, txn, id, d, HQ_TARGET_MAX);
			int done = nd >= 0 && nd <= HQ_TARGET_MAX;
			for (long i = 0; done && i < nd; i++)
				done = d[i].d.state == HQ_DLV_DELIVERED;
			if (done && (rc = idvec_push(&ids, id)))
				break;
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
		}
		if (rc == MDB_NOTFOUND) {
			rc = 0;
			*resume_us = before_us;
		}
		mdb_cursor_close(c);
	}
	mdb_txn_abort(txn);
	long n = (long)ids.n;
	if (rc == 0 && !dry_run && ids.n) {
		long p = hq_journal_purge(j, ids.v, ids.n);
		if (p < 0)
			rc = (int)-p;
	}
	free(ids.v);
	return rc ? (rc > 0 ? -rc : rc) : n;
}

long
hq_journal_purge_rejected(hq_journal *j, uint64_t before_us, uint64_t *resume_us, size_t max,
			  int dry_run)
{
	unsigned char tbe[8];
	idvec ids = {0};
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k = {8, tbe}, v;
	size_t scanned = 0;
	int rc;

	if ((rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn)))
		return rc > 0 ? -rc : rc;
	put_be64(tbe, *resume_us);
	if ((rc = mdb_cursor_open(txn, j->by_time, &c)) == 0) {
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		while (rc == 0) {
			uint64_t t = get_be64(k.mv_data), id = get_val(&v);
			if (t >= before_us) {
				rc = MDB_NOTFOUND; /* done */
				break;
			}
			if (ids.n == max || scanned++ >= 20 * max) {
				*resume_us = t; /* a slice: the caller goes on from here */
				break;
			}
			/* The state is in the record's header: no decoding. */
			unsigned char idbe[8];
			MDB_val mk = {8, idbe}, mv;
			put_be64(idbe, id);
			if (mdb_get(txn, j->msgs, &mk, &mv) == 0 && mv.mv_size >= REC_HEADER &&
			    ((const unsigned char *)mv.mv_data)[0] == REC_FORMAT &&
			    ((const unsigned char *)mv.mv_data)[17] == HQ_MSG_REJECTED &&
			    (rc = idvec_push(&ids, id)))
				break;
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
		}
		if (rc == MDB_NOTFOUND) {
			rc = 0;
			*resume_us = before_us;
		}
		mdb_cursor_close(c);
	}
	mdb_txn_abort(txn);
	long n = (long)ids.n;
	if (rc == 0 && !dry_run && ids.n) {
		long p = hq_journal_purge(j, ids.v, ids.n);
		if (p < 0)
			rc = (int)-p;
	}
	free(ids.v);
	return rc ? (rc > 0 ? -rc : rc) : n;
}

int
hq_journal_copy(hq_journal *j, const char *dir)
{
	return mdb_env_copy2(j->env, dir, MDB_CP_COMPACT);
}

/* --- keys ------------------------------------------------------------------ */

/* Parses one key line (64 hex digits) into 32 bytes.  0 or -1. */
static int
parse_key(const char *s, size_t n, unsigned char out[32])
{
	if (n != 64)
		return -1;
	for (int i = 0; i < 32; i++) {
		unsigned v = 0;
		for (int k = 0; k < 2; k++) {
			char c = s[2 * i + k];
			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= (unsigned)(c - 'a' + 10);
			else if (c >= 'A' && c <= 'F')
				v |= (unsigned)(c - 'A' + 10);
			else
				return -1;
		}
		out[i] = (unsigned char)v;
	}
	return 0;
}

/* Derives a key's id and its two working keys (HKDF-SHA-256). */
static int
derive(const unsigned char master[32], jkey *k)
{
	const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
	unsigned char id[32];
	if (mbedtls_hkdf(md, NULL, 0, master, 32, (const unsigned char *)"hl7q key id", 11, id, 32) ||
	    mbedtls_hkdf(md, NULL, 0, master, 32, (const unsigned char *)"hl7q record seal v1", 19, k->enc, 32) ||
	    mbedtls_hkdf(md, NULL, 0, master, 32, (const unsigned char *)"hl7q patient index v1", 21, k->mac, 32))
		return -1;
	memcpy(k->id, id, 4);
	return 0;
}

static void
id_hex(const unsigned char *id, char out[9])
{
	snprintf(out, 9, "%02x%02x%02x%02x", id[0], id[1], id[2], id[3]);
}

/* The key ids the journal has sealed with ([1][n][id 4 ...] in meta "key_ids"). */
static int
used_key_ids(hq_journal *j, MDB_txn *txn, unsigned char ids[][4], int max)
{
	MDB_val k = {7, "key_ids"}, v;
	if (mdb_get(txn, j->meta, &k, &v) != 0 || v.mv_size < 2)
		return 0;
	const unsigned char *p = v.mv_data;
	int n = p[1];
	if (n > max || v.mv_size < 2 + 4 * (size_t)n)
		return 0;
	for (int i = 0; i < n; i++)
		memcpy(ids[i], p + 2 + 4 * i, 4);
	return n;
}

int
hq_journal_set_keys(hq_journal *j, const char *key_file, char *err, size_t errcap)
{
	FILE *fp = fopen(key_file, "r");
	char line[256];
	int lineno = 0;
	unsigned char master[32];

	if (fp == NULL) {
		snprintf(err, errcap, "encryption_key_file %s: %s", key_file, strerror(errno));
		return HQ_ECONFIG;
	}
	setvbuf(fp, NULL, _IONBF, 0); /* no stdio buffer left holding the key text */
	j->nkeys = 0;
	while (fgets(line, sizeof line, fp)) {
		lineno++;
		size_t n = strcspn(line, "#\r\n");
		while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
			n--;
		char *p = line;
		while (n > 0 && (*p == ' ' || *p == '\t'))
			p++, n--;
		if (n == 0)
			continue;
		if (parse_key(p, n, master) != 0 || j->nkeys == MAX_KEYS || derive(master, &j->keys[j->nkeys]) != 0) {
			fclose(fp);
			hq_secret_wipe(master, sizeof master);
			hq_secret_wipe(line, sizeof line);
			hq_secret_wipe(j->keys, sizeof j->keys);
			j->nkeys = 0;
			snprintf(err, errcap, "%s:%d: not a key: 64 hex digits expected (openssl rand -hex 32)",
				 key_file, lineno);
			return HQ_ECONFIG;
		}
		j->nkeys++;
	}
	fclose(fp);
	hq_secret_wipe(master, sizeof master);
	hq_secret_wipe(line, sizeof line);
	if (j->nkeys == 0) {
		snprintf(err, errcap, "encryption_key_file %s holds no key (openssl rand -hex 32 > FILE)", key_file);
		return HQ_ECONFIG;
	}
	/* Every key the journal has sealed with must be here. */
	MDB_txn *txn;
	unsigned char used[64][4];
	int rc = mdb_txn_begin(j->env, NULL, j->readonly ? MDB_RDONLY : 0, &txn);
	if (rc) {
		j->nkeys = 0;
		snprintf(err, errcap, "journal: %s", mdb_strerror(rc));
		return rc;
	}
	int nused = used_key_ids(j, txn, used, 64);
	for (int i = 0; i < nused; i++)
		if (key_by_id(j, used[i]) == NULL) {
			char hex[9];
			id_hex(used[i], hex);
			mdb_txn_abort(txn);
			j->nkeys = 0;
			snprintf(err, errcap, "the journal has records sealed with key id %s, which %s does not hold (keep old keys below the new one)",
				 hex, key_file);
			return HQ_ECONFIG;
		}
	int have = 0;
	for (int i = 0; i < nused; i++)
		have |= memcmp(used[i], j->keys[0].id, 4) == 0;
	if (!have && !j->readonly && nused < 64) {
		unsigned char v[2 + 4 * 64];
		v[0] = VAL_FORMAT;
		v[1] = (unsigned char)(nused + 1);
		for (int i = 0; i < nused; i++)
			memcpy(v + 2 + 4 * i, used[i], 4);
		memcpy(v + 2 + 4 * nused, j->keys[0].id, 4);
		MDB_val mk = {7, "key_ids"}, mv = {2 + 4 * (size_t)(nused + 1), v};
		if ((rc = mdb_put(txn, j->meta, &mk, &mv, 0)) || (rc = mdb_txn_commit(txn))) {
			j->nkeys = 0;
			snprintf(err, errcap, "journal: %s", mdb_strerror(rc));
			return rc;
		}
		return 0;
	}
	mdb_txn_abort(txn);
	return 0;
}

int
hq_journal_encrypted(hq_journal *j, char *ids, size_t cap)
{
	MDB_txn *txn;
	unsigned char used[64][4];
	if (cap)
		ids[0] = 0;
	if (mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn))
		return 0;
	int n = used_key_ids(j, txn, used, 64);
	mdb_txn_abort(txn);
	for (int i = 0; i < n && cap > 0; i++) {
		char hex[9];
		id_hex(used[i], hex);
		size_t len = strlen(ids);
		snprintf(ids + len, cap - len, "%s%s", i ? " " : "", hex);
	}
	return n > 0;
}

/* --- for the stores beside the journal (queue/audit.c) ------------------ */

struct MDB_env *
hq_journal_env(hq_journal *j)
{
	return j->env;
}

int
hq_journal_is_readonly(const hq_journal *j)
{
	return j->readonly;
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
	return seal(j, aad, aadlen, in, n, out);
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
	return unseal(j, aad, aadlen, in, n, out);
}
