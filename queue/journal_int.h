/*
 * journal_int.h - what the files of the journal share, private to queue/
 * (never included outside it; the API is journal.h).
 *
 * The journal is one concept in several files, each keeping one part of
 * its invariant -- a frame is acknowledged only after the transaction that
 * stored it has committed, and every stored value starts with a version
 * byte its reader checks:
 *   journal.c     the environment: open (and its one-time upgrades), close,
 *                 space, copy, the lock file; the layout of the databases
 *   record.c      the stored forms of a record, a small value and a
 *                 delivery record (encode/decode, version bytes)
 *   seal.c        encryption at rest: sealing and opening values, the key's
 *                 wear counted in the transaction that commits the seals
 *   keys.c        the key file, and the key ids the journal remembers
 *   reseal.c      sealing old records again under the newest key
 *   batch.c       the intake batch (group commit) and the duplicate key
 *   due.c         the due index: what a delivery worker may take next
 *   targets.c     per-target figures and queue membership, moved in the
 *                 transaction that moves a delivery
 *   deliveries.c  claims (hq_journal_due), outcomes, replays
 *   index.c       the deferred indexes (time, type, control id, patient),
 *                 lookups through them, and the tail not in by_time yet
 *   query.c       reading records back: get, ls/show queries, attempts
 *   purge.c       purge and retention
 * The struct bodies of hq_journal and hq_batch live here because all of
 * them read the handle; nothing outside queue/ sees them.
 */
#ifndef HQ_QUEUE_JOURNAL_INT_H
#define HQ_QUEUE_JOURNAL_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "bytes.h"
#include "journal.h"

#define REC_FORMAT 1
/* meta "format": 2 since the due index (a format 1 journal opens, and its
 * index is built at the first hq_journal_set_order). */
#define JOURNAL_FORMAT 2
#define REC_HEADER 32
#define MAX_KEY 480 /* LMDB's default limit is 511 */

/* The code behind a negative count: -errno back to errno, MDB_* as is. */
#define CODE_OF(n) ((int)((n) < 0 && (n) > -30000 ? -(n) : (n)))

/* A key of an encrypted journal: its id, and the two keys derived from it. */
#define MAX_KEYS 256 /* in the key file; the journal remembers any number of key ids */
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
	MDB_dbi due, patq; /* the due index; has_due 0: a read-only view of a format 1 journal */
	int has_due;
	/* The ordering each target's due index is kept for (a cache of meta
	 * "order:" keys); read and written only inside write transactions,
	 * which LMDB serialises. */
	struct {
		char name[HQ_TARGET_MAX];
		int order;
	} orders[64];
	int norders;
	/* Free-space figures for delivery writes (dlv_mu guards them). */
	pthread_mutex_t dlv_mu;
	uint64_t dlv_usage_at_ms;
	hq_journal_usage dlv_usage;
	char instance[33];
	char dir[1024]; /* for statvfs */
	uint64_t next_id;
	uint64_t indexed_upto;	/* by_type/by_control/by_patient hold every id <= this */
	uint64_t time_upto;	/* by_time holds every id <= this */
	uint64_t commits;	/* commits attempted, for the test seam */
	uint64_t fail_at;	/* commit number that fails; 0 none */
	uint64_t fail_outcomes; /* test seam: this many outcome writes fail (atomic) */
	uint64_t usage_at_ms;	/* when usage was last refreshed */
	int counts_kept;	/* meta "counts_v1": targets records carry the queue counts */
	hq_journal_usage usage;
	int readonly;
	/* keys[0]'s wear (AES-GCM with random 96-bit nonces stays safe below
	 * 2^32 seals per key): seals as stored in meta, and made since (not
	 * yet stored; atomics: intake and the workers both seal). */
	uint64_t seals, unsaved_seals;
	uint64_t seal_warn, seal_limit;
	void (*purge_scan_fn)(void *); /* test seam */
	void *purge_scan_arg;
	unsigned char rnd[1024]; /* random bytes for message keys, used from the end */
	size_t rnd_n;
};

struct hq_batch {
	hq_journal *j;
	MDB_txn *txn;
	uint64_t first_id; /* next_id when the batch began */
	int err;	   /* first failure; the batch is poisoned */
	uint64_t pk_id;	   /* the last record added, and its patient key (for the due index) */
	int pk_has;
	unsigned char pk[16];
};

/* Small values (ids, counters) are [VAL_FORMAT][be64 ...]. */
#define VAL_FORMAT 1

/* A duplicate index value: [DEDUP_FORMAT][id be64][received_us be64][content 32]. */
#define DEDUP_FORMAT 2
#define DEDUP_SIZE 49

/* Delivery record: [1][state][attempts be32][next_us be64][updated_us be64]
 * [last_status be16] (24 bytes, the first layout) then [attempt_base be32]
 * [replayed_us be64] (36: added for replay; a 24-byte record reads as never
 * replayed). */
#define DLV_SIZE 36
#define DLV_SIZE_V1 24

/* --- encryption at rest ---------------------------------------------------
 * A sealed value: [SEAL_FORMAT][key id 4][nonce 12][ciphertext][tag 16],
 * AES-256-GCM, with associated data binding it to its place (the record
 * id, or the attempt's key), so that a sealed value moved elsewhere does
 * not open. */
#define SEAL_FORMAT_V1 1 /* associated data: the record id, or the attempt's key */
#define SEAL_FORMAT 2	 /* also the journal instance and the plaintext beside it (seal_aad_*) */
#define SEAL_OVERHEAD (1 + 4 + 12 + 16)
#define ATTEMPT_SEALED 2 /* an attempt value whose answer excerpt is sealed */

/* A patient key: 16 bytes (see due.c). */
#define PKEY 16

/* A target's running figures (the "targets" database). */
/* Record: [1][delivered be64][last_ok_us be64][last_err_us be64][n][error n]
 * then, once counts are kept, [pending be64][retrying be64][dead be64]
 * (readers that predate them stop after the error). */
/* A delivery's replay epoch: its last replay time (replays keep it
 * increasing), 1 before any; an outcome carries the one its attempt
 * began from (hq_due.epoch). */
#define DLV_EPOCH(d) ((d)->replayed_us ? (d)->replayed_us : 1)

typedef struct tstat {
	uint64_t delivered, last_ok_us, last_err_us;
	char last_error[128];
	uint64_t pending, retrying, dead; /* valid when have_counts */
	int have_counts;
} tstat;

/* A record not in by_time yet: its received time and id. */
typedef struct tpair {
	uint64_t t, id;
} tpair;

/* A growable list of ids. */
typedef struct idvec {
	uint64_t *v;
	size_t n, cap;
} idvec;

/* journal.c */
int jnl_meta_get_id(hq_journal *j, MDB_txn *txn, const char *key, uint64_t *out);

/* record.c */
void jnl_put_val(unsigned char *p, uint64_t v);
uint64_t jnl_get_val(const MDB_val *v);
size_t jnl_encoded_size(const hq_record *r);
void jnl_encode(const hq_record *r, unsigned char *p);
int jnl_split_fields(const unsigned char *p, size_t n, unsigned count, hq_str *out, size_t nout);
int jnl_decode(const unsigned char *p, size_t n, hq_record *r);
size_t jnl_dlv_key(unsigned char *k, uint64_t id, const char *target);
size_t jnl_pending_key(unsigned char *k, const char *target, uint64_t id);
void jnl_dlv_encode(unsigned char *v, const hq_delivery *d);
int jnl_dlv_decode(const MDB_val *val, hq_delivery *d);

/* seal.c */
const jkey *jnl_key_by_id(const hq_journal *j, const unsigned char *id);
int jnl_seal(hq_journal *j, const void *aad, size_t aadlen, const void *in, size_t n, unsigned char *out);
int jnl_unseal(const hq_journal *j, const void *aad, size_t aadlen, const unsigned char *in,
	       size_t n, unsigned char *out);
size_t jnl_attempt_aad(const hq_journal *j, const void *key, size_t klen, const unsigned char *pre,
		       size_t plen, unsigned char *out, size_t cap);
void jnl_patient_mac(const jkey *k, hq_str pid, unsigned char out[16]);
int jnl_seal_record(hq_journal *j, const hq_record *rec, unsigned char **out, size_t *outlen);
int jnl_open_record_into(const hq_journal *j, const unsigned char *p, size_t n, hq_record *r,
			 unsigned char *buf);
int jnl_open_record(const hq_journal *j, const unsigned char *p, size_t n, hq_record *r, void **plain);
int jnl_commit_sealing(hq_journal *j, MDB_txn *txn);
int jnl_blob_stale(const hq_journal *j, const unsigned char *b, size_t n);

/* keys.c */
uint64_t jnl_key_seals(hq_journal *j, MDB_txn *txn, const unsigned char *id);
int jnl_key_put(hq_journal *j, MDB_txn *txn, const unsigned char *id, uint64_t seals);

/* due.c */
uint64_t jnl_due_time(const hq_delivery *d);
int jnl_queued(const hq_delivery *d);
size_t jnl_due_key(unsigned char *k, const char *target, uint64_t t, uint64_t id);
void jnl_pkey_make(const hq_journal *j, hq_str pid, unsigned char out[PKEY]);
int jnl_orders_forget(hq_journal *j, MDB_txn *txn);
int jnl_idx_update(hq_journal *j, MDB_txn *txn, const char *target, uint64_t id, const hq_delivery *before,
		   const hq_delivery *after, const unsigned char *pkey, int has_pkey);

/* targets.c */
int jnl_fill_target_stats(hq_journal *j, MDB_txn *txn);
void jnl_tstat_get(hq_journal *j, MDB_txn *txn, const char *target, tstat *t);
int jnl_tstat_put(hq_journal *j, MDB_txn *txn, const char *target, const tstat *t);
int jnl_fill_counts(hq_journal *j, MDB_txn *txn);
int jnl_dlv_move(hq_journal *j, MDB_txn *txn, const char *target, uint64_t id, hq_dlv_state from,
		 hq_dlv_state to, tstat *ts);

/* index.c */
uint64_t jnl_read_indexed_upto(hq_journal *j, MDB_txn *txn);
uint64_t jnl_read_time_upto(hq_journal *j, MDB_txn *txn);
int jnl_time_tail(hq_journal *j, MDB_txn *txn, uint64_t upto, uint64_t since_us, uint64_t until_us,
		  tpair **out, size_t *n);
hq_str jnl_type_key(hq_str type);
int jnl_str_eq(hq_str a, hq_str b);
int jnl_type_matches(hq_str type, hq_str want);
int jnl_lookup_ids(hq_journal *j, MDB_txn *txn, hq_index idx, hq_str key, idvec *out);

/* query.c */
int jnl_idvec_push(idvec *iv, uint64_t id);
void jnl_idvec_sort(idvec *iv);
long jnl_deliveries_txn(hq_journal *j, MDB_txn *txn, uint64_t id, hq_msg_dlv *out, size_t max);
int jnl_queue_ids(MDB_txn *txn, MDB_dbi dbi, const char *target, idvec *out);

/* purge.c */
int jnl_del_index(MDB_txn *txn, MDB_dbi dbi, hq_str key, const unsigned char *idval);

#endif
