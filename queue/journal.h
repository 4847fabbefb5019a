/*
 * journal.h - the LMDB journal: every message hl7q received, accepted or
 * refused, with the indexes that audits query.
 *
 * Invariant: a frame is acknowledged only after the transaction that
 * stored it has committed.  The journal gives the daemon a batch (one
 * write transaction) to gather every frame that is ready, and one commit
 * (one fsync, LMDB's default durability) makes the whole batch durable.
 *
 * A batch is poisoned by its first failure: later adds do nothing and the
 * commit returns that first error, so every frame of it is answered
 * negatively.  The journal never logs; it returns codes (core/error.h).
 */
#ifndef HQ_JOURNAL_H
#define HQ_JOURNAL_H

#include <stdint.h>

#include "core/str.h"

typedef struct hq_journal hq_journal;
typedef struct hq_batch hq_batch;

/* What happened to a frame at intake (stored as one byte; never renumber). */
typedef enum hq_msg_state {
	HQ_MSG_ACCEPTED = 1, /* stored, positive ACK sent */
	HQ_MSG_REJECTED = 2, /* refused: negative ACK sent; RAW a bounded prefix, with RAW_SIZE and RAW_SHA256 */
	HQ_MSG_DUPLICATE = 3, /* a repeat acked or refused by duplicate policy */
	HQ_MSG_UNROUTED = 4   /* accepted, but no target takes it */
} hq_msg_state;

/* Text fields of a message record (indices into hq_record.f; append only). */
enum {
	HQ_F_LISTENER,
	HQ_F_PEER,
	HQ_F_SENDING_APP,
	HQ_F_SENDING_FAC,
	HQ_F_RECEIVING_APP,
	HQ_F_RECEIVING_FAC,
	HQ_F_DATETIME,	 /* MSH-7 */
	HQ_F_TYPE,	 /* MSH-9 as code^trigger^structure */
	HQ_F_CONTROL_ID, /* MSH-10 (batch: FHS-11/BHS-11) */
	HQ_F_PROCESSING_ID,
	HQ_F_VERSION,
	HQ_F_ACCEPT_ACK,   /* MSH-15 */
	HQ_F_APP_ACK,	   /* MSH-16 */
	HQ_F_CHARSET,	   /* MSH-18 */
	HQ_F_PATIENT_ID,   /* PID-3.1 */
	HQ_F_PATIENT_AUTH, /* PID-3.4 */
	HQ_F_ACK_ID,	   /* MSH-10 of the ACK sent */
	HQ_F_REASON,	   /* why it was refused */
	HQ_F_RAW,	   /* the bytes exactly as received */
	HQ_F_SEALED,	   /* encrypted journal: RAW, PATIENT_ID and PATIENT_AUTH, sealed */
	HQ_F_RAW_SIZE,	   /* refused: the frame's real size in decimal (RAW holds a prefix) */
	HQ_F_RAW_SHA256,   /* refused: SHA-256 of the whole frame, 64 hex digits */
	HQ_F_DEDUP_KEY,	   /* the duplicate key it is indexed under (hq_dedup; empty: none) */
	HQ_F_MSG_KEY,	   /* 16 random bytes given at intake: its Idempotency-Key, for ever */
	HQ_F_COUNT
};

typedef struct hq_record {
	uint64_t id;	      /* journal sequence number, set by the journal */
	uint64_t received_us; /* wall clock, microseconds since the epoch */
	uint8_t state;	      /* hq_msg_state */
	uint8_t is_batch;     /* an FHS/BHS batch kept whole */
	char ack[3];	      /* ACK code sent ("AA", "CR", "" for none) */
	uint16_t err_code;    /* table 0357 code when refused */
	uint64_t dup_of;      /* the original's id for a duplicate */
	uint8_t locked;	      /* read back: sealed and no key to open it (RAW, PATIENT_* empty) */
	hq_str f[HQ_F_COUNT];
} hq_record;

/* Journal space, in bytes. */
typedef struct hq_journal_usage {
	uint64_t map_size;  /* the most the journal may grow to */
	uint64_t file_size; /* pages in the file */
	uint64_t used;	    /* pages holding data */
	uint64_t free;	    /* map_size - used */
	uint64_t reserve;   /* intake refuses below this much free space */
	uint64_t fs_free; /* free bytes on the journal's filesystem (for an unprivileged writer) */
} hq_journal_usage;

/* Intake also refuses when the filesystem has less than this free. */
#define HQ_FS_RESERVE (4ull << 20)

/*
 * Opens (creating, mode 0700/0600) the journal in directory dir with a map
 * of map_size bytes (0: keep the existing size).  readonly opens for
 * queries only.  Run as root, the files it creates in dir (lock.mdb,
 * data.mdb) are given to dir's owner, so that the daemon's user can open
 * them.  Returns 0, an errno or an MDB_* code.
 */
int hq_journal_open(const char *dir, uint64_t map_size, int readonly, hq_journal **out);

/*
 * Encryption at rest: reads the key file (one key per line, 64 hex digits,
 * `#` comments; the first line is the key new records are sealed with, the
 * others still open older records).  From then on the message bytes, the
 * patient id and the answer excerpts of attempts are sealed with AES-256-GCM
 * (a fresh 96-bit nonce each, the record id as associated data, the key id
 * stored in front), and the patient index holds HMAC-SHA-256 values, not
 * ids.  The associated data binds a record's sealed bytes to the journal
 * instance, its id and every plaintext field stored beside them (records
 * sealed before that, format 1, bound to the id alone, still open).  On a
 * journal opened for writing, the key ids are remembered (any number):
 * a later start must hold every key that a record or attempt is still
 * sealed with (a scan when one is missing; ids no longer used are
 * forgotten).  Returns 0, or HQ_ECONFIG with err saying why (never the
 * key): a missing key still in use, or a first key at HQ_SEAL_LIMIT.
 */
int hq_journal_set_keys(hq_journal *j, const char *key_file, char *err, size_t errcap);

/*
 * Key wear: AES-GCM with random 96-bit nonces is safe for fewer than 2^32
 * seals under one key.  The journal counts seals per key id (in the
 * journal, so restarts add up); past HQ_SEAL_WARN the daemon warns, at
 * HQ_SEAL_LIMIT sealing fails with HQ_EKEYSPENT and hq_journal_set_keys
 * refuses a writable journal that key as the first: rotate.
 */
#ifndef HQ_SEAL_WARN
#define HQ_SEAL_WARN (1ull << 31)
#endif
#ifndef HQ_SEAL_LIMIT
#define HQ_SEAL_LIMIT ((1ull << 32) - (1ull << 24))
#endif

/* Test seam: other thresholds than HQ_SEAL_WARN/HQ_SEAL_LIMIT (call before hq_journal_set_keys). */
void hq_journal_set_seal_limits(hq_journal *j, uint64_t warn, uint64_t limit);

/*
 * The wear of the key new values are sealed with: *seals gets its seal
 * count.  Returns 0 (fine, or no key), 1 (past the warning threshold:
 * rotate soon) or 2 (at the limit: sealing is refused).
 */
int hq_journal_key_wear(hq_journal *j, uint64_t *seals);

/*
 * Seals again, under the first key, what is not sealed under it yet:
 * records stored in plaintext (encryption turned on), sealed under an
 * older key or in the older format, and the answer excerpts of attempts.
 * Examines up to max records or attempts in one write transaction, with
 * the progress saved in the same transaction, so that a later call (or
 * another process after a crash) goes on from there.  *finished is set
 * once the whole journal is done (the progress is then dropped: a next
 * call starts over, and finds nothing to do).  Once done, older keys are
 * no longer used and can leave the key file.  Needs keys and a writable
 * journal.  Returns the number sealed again or a negative code.
 */
long hq_journal_reseal(hq_journal *j, size_t max, int *finished);

/*
 * Journals with sealed records: 1 (and the key ids, as hex, in ids) when
 * the journal has ever been written with a key.  For the daemon to refuse
 * starting without one.
 */
int hq_journal_encrypted(hq_journal *j, char *ids, size_t cap);

/*
 * Clears the reader slots of processes that died holding a read
 * transaction (hl7q killed mid-query), so they no longer keep freed pages
 * from reuse.  The daemon calls it now and then.  *dead gets how many.
 * Returns 0 or an MDB_* code.
 */
int hq_journal_reader_check(hq_journal *j, int *dead);

/* Closes j; no batch may be open. */
void hq_journal_close(hq_journal *j);

/* A random id given to the journal when it was created (32 hex digits). */
const char *hq_journal_instance(hq_journal *j);

/* The next id the journal will hand out. */
uint64_t hq_journal_next_id(hq_journal *j);

/*
 * Reads the space figures (scans LMDB's free list: call it now and then,
 * not per message).  Returns 0 or an MDB_* code.
 */
int hq_journal_usage_get(hq_journal *j, hq_journal_usage *u);

/*
 * Non-zero when the journal's filesystem is (nearly) full now, by a fresh
 * statvfs: a failed commit is then a full disk, not a failing one.
 */
int hq_journal_disk_full(hq_journal *j);

/*
 * Non-zero when intake must refuse: free space in the map is under the
 * reserve, or the filesystem has less than HQ_FS_RESERVE free.
 * Refreshes the figures at most every refresh_ms milliseconds.
 */
int hq_journal_full(hq_journal *j, uint64_t now_ms, uint64_t refresh_ms);

/*
 * Test seam: the n-th commit from now (1 = the next) fails with
 * HQ_EINJECTED and stores nothing.  0 disarms.
 */
void hq_journal_fail_commit(hq_journal *j, uint64_t n);

/* Test seam: the next n hq_journal_record_outcomes() calls fail with
 * HQ_EINJECTED and write nothing. */
void hq_journal_fail_outcomes(hq_journal *j, uint64_t n);

/* Begins a write batch.  Returns 0, HQ_EFULL or an MDB_* code. */
int hq_batch_begin(hq_journal *j, hq_batch **out);

/*
 * A message's identity for duplicate detection.  key ends with SHA-256 over
 * the whole listener, MSH-3, MSH-4, MSH-10 and the TLS client subject (each
 * length-prefixed, never cut), which alone tells messages apart; in front
 * of it, for locality only, 8 bytes of a hash of the sender and the first
 * HQ_DEDUP_CTRL bytes of MSH-10, so that one sender's consecutive control
 * ids land on the same B-tree pages (random keys would dirty a page per
 * message in the intake commit).  content is SHA-256 of the message bytes
 * without MSH-7, so that a resend stamped anew still matches.
 */
#define HQ_DEDUP_CTRL 64
#define HQ_DEDUP_KEY_MAX (8 + HQ_DEDUP_CTRL + 32)
typedef struct hq_dedup {
	unsigned char key[HQ_DEDUP_KEY_MAX];
	size_t key_len;
	unsigned char content[32];
} hq_dedup;

/*
 * Fills d.  skip is the part of raw left out of the content hash (MSH-7:
 * it must point into raw, or be empty).
 */
void hq_dedup_fill(hq_dedup *d, hq_str listener, hq_str app, hq_str fac, hq_str control,
		   hq_str tls_subject, hq_str raw, hq_str skip);

/*
 * Adds rec (copying its bytes) with its indexes; sets *id.  The journal
 * gives it a random message key (HQ_F_MSG_KEY).  With dedup (NULL: none)
 * the record is also remembered under dedup->key, with its content hash,
 * replacing an earlier entry.  Returns 0 or the batch's first error.
 */
int hq_batch_add(hq_batch *b, hq_record *rec, const hq_dedup *dedup, uint64_t *id);

/*
 * Looks for dedup->key stored at or after since_us (this batch included).
 * Returns 0 with *id set and *same 1 when the stored content hash equals
 * dedup->content (a duplicate), 0 when it differs (the control id was
 * reused for another message); HQ_ENOTFOUND, or an error.
 */
int hq_batch_find_dup(hq_batch *b, const hq_dedup *dedup, uint64_t since_us, uint64_t *id, int *same);

/*
 * Commits: one fsync makes every add durable.  Frees b whatever happens.
 * Returns 0, HQ_EINJECTED, HQ_EPOISONED's cause, or an errno/MDB_* code.
 */
int hq_batch_commit(hq_batch *b);

/* Drops every add and frees b. */
void hq_batch_abort(hq_batch *b);

/*
 * Reads record id.  On 0, *rec points into *mem, which the caller frees.
 * Returns 0, HQ_ENOTFOUND, HQ_ECORRUPT or an MDB_* code.
 */
int hq_journal_get(hq_journal *j, uint64_t id, hq_record *rec, void **mem);

/* Index names for hq_journal_lookup. */
typedef enum hq_index {
	HQ_IDX_CONTROL,
	HQ_IDX_PATIENT,
	HQ_IDX_TYPE /* prefix match on code, e.g. "ADT" or "ADT^A01" */
} hq_index;

/*
 * Collects up to max ids whose index value matches key, in ascending id
 * order.  Returns the number found (may exceed max: only max are written),
 * or a negative code.
 */
long hq_journal_lookup(hq_journal *j, hq_index idx, hq_str key, uint64_t *ids, size_t max);

/* Records not yet in every deferred index (time, type, control id, patient). */
uint64_t hq_journal_unindexed(hq_journal *j);

/*
 * Writes the deferred index entries (received time, type, control id,
 * patient id) of up to max records in one transaction.  Lookups, time
 * queries and retention are complete without it (they scan the tail); it
 * keeps that tail short.  Returns the number of records indexed, or a
 * negative code (an MDB_* code, or -errno).
 */
long hq_journal_index(hq_journal *j, size_t max);

/* --- delivery ------------------------------------------------------- */

/* A delivery record's state (stored as one byte; never renumber).  In
 * flight is not stored: after a restart an in-flight delivery is pending. */
typedef enum hq_dlv_state {
	HQ_DLV_PENDING = 1,
	HQ_DLV_RETRY = 2,
	HQ_DLV_DELIVERED = 3,
	HQ_DLV_DEAD = 4
} hq_dlv_state;

/*
 * Adds the delivery record of message id for target (pending, due now) in
 * the batch, so fan-out is as durable as intake.  Returns 0 or the
 * batch's first error.
 */
int hq_batch_add_delivery(hq_batch *b, uint64_t id, const char *target, uint64_t now_us);

/* A delivery due now, copied out of the journal (no transaction stays open). */
typedef struct hq_due {
	uint64_t id;
	uint32_t attempts;    /* made so far (since the last replay) */
	uint64_t received_us; /* of the message */
	char control_id[128];
	char type[64];
	char charset[64];
	char listener[64], peer[64], version[32];
	char sending_app[128], sending_fac[128], receiving_app[128], receiving_fac[128];
	uint64_t age_from_us; /* max_age counts from here: received, or the last replay */
	uint64_t epoch;	      /* the delivery's replay epoch: give it back in hq_outcome.epoch */
	char idem_key[160]; /* the Idempotency-Key: message key, target, replay (see hq_journal_due) */
	char *raw;	    /* malloc'd message bytes; the caller frees */
	size_t raw_len;
} hq_due;

/* The order a target's deliveries keep. */
typedef enum hq_due_order {
	HQ_DUE_NONE,   /* any due delivery may go */
	HQ_DUE_FIFO,   /* only the oldest undelivered one */
	HQ_DUE_PATIENT /* the oldest undelivered one of each patient (PID-3) */
} hq_due_order;

/*
 * Collects up to max deliveries of target that are due at now_us, skipping
 * the ids in skip[0..nskip) (in flight).  FIFO: only the head of the queue
 * is considered, so one in flight or waiting for its retry holds back the
 * rest; PATIENT: the same per PID-3.1 (messages without one are
 * unordered); NONE: any, soonest due first.  A delivery never attempted
 * (since its last replay) is due whatever now_us says.  The cost does not
 * grow with the queue: PATIENT and NONE read the due index that
 * hq_journal_set_order() keeps, and a delivery record is read before its
 * message.  *next_us gets the earliest later due time (0: none).  With
 * nshards > 1 (ordering NONE only) just the ids with id % nshards == shard
 * are considered, so that several workers can share one target's queue.
 * Returns the number collected, or a negative code: HQ_ECORRUPT when the
 * FIFO head cannot be read or opened (out[0].id names it: the target must
 * stop there, not skip it), HQ_ENOTFOUND for PATIENT/NONE on a read-only
 * journal without the index.
 */
long hq_journal_due(hq_journal *j, const char *target, uint64_t now_us, hq_due_order order,
		    uint32_t shard, uint32_t nshards, const uint64_t *skip, size_t nskip,
		    hq_due *out, size_t max, uint64_t *next_us);

/*
 * Keeps target's due index for order (before its worker starts, and when
 * a reload changes the ordering): a journal that kept it for another
 * ordering, or none (format 1, or last written by an older hl7qd), gets
 * it rebuilt from the queue in one write transaction.  Returns 0, EROFS on
 * a read-only journal, or an error.
 */
int hq_journal_set_order(hq_journal *j, const char *target, hq_due_order order);

/* The outcome of one delivery attempt. */
typedef struct hq_outcome {
	uint64_t id;
	hq_dlv_state state; /* DELIVERED, RETRY or DEAD */
	uint64_t at_us;	    /* when the attempt ended */
	uint64_t next_us;   /* for RETRY: when to try again */
	int http_status;    /* 0 when no HTTP answer */
	uint32_t latency_us;
	char error[128]; /* short, no patient data (curl's text or "HTTP 503") */
	char body[512];	 /* excerpt of the answer: journal only, never logs */
	size_t body_len;
	uint64_t epoch; /* hq_due.epoch of the attempt; 0: not checked */
} hq_outcome;

/* The attempt history of a delivery keeps its first and its last few
 * attempts; the delivery record counts them all. */
#define HQ_ATTEMPTS_FIRST 3
#define HQ_ATTEMPTS_LAST 5

/*
 * Writes outcomes of target in one write transaction: the delivery record,
 * an attempt record each (of a retry: only while the journal is above its
 * free-space reserve), attempts between the first HQ_ATTEMPTS_FIRST and
 * the last HQ_ATTEMPTS_LAST dropped, and the pending entry dropped once
 * delivered or dead.  An outcome whose epoch is not the delivery's any more
 * (replayed since the attempt began) is dropped: the replay stands.
 * Returns 0 or an error.
 */
int hq_journal_record_outcomes(hq_journal *j, const char *target, const hq_outcome *o, size_t n);

/* A delivery record as stored. */
typedef struct hq_delivery {
	hq_dlv_state state;
	uint32_t attempts; /* all attempts, replays included (numbers the history) */
	uint64_t next_us, updated_us;
	int last_status;
	uint32_t attempt_base; /* attempts before the last replay (max_attempts counts from here) */
	uint64_t replayed_us;  /* the last replay (max_age counts from here); 0 never */
} hq_delivery;

/* Reads message id's delivery to target.  Returns 0, HQ_ENOTFOUND or an error. */
int hq_journal_delivery(hq_journal *j, uint64_t id, const char *target, hq_delivery *d);

/* Number of message records.  Returns 0 or an MDB_* code. */
int hq_journal_count(hq_journal *j, uint64_t *count);


/* --- audit and operation (hl7q) ---------------------------------------- */

#define HQ_TARGET_MAX 64 /* target names are shorter than this */

/* One delivery record of a message. */
typedef struct hq_msg_dlv {
	char target[HQ_TARGET_MAX];
	hq_delivery d;
} hq_msg_dlv;

/*
 * Reads up to max delivery records of message id, by target name.
 * Returns how many there are (may exceed max), or a negative code.
 */
long hq_journal_deliveries(hq_journal *j, uint64_t id, hq_msg_dlv *out, size_t max);

/* One delivery attempt as kept in the journal. */
typedef struct hq_attempt {
	char target[HQ_TARGET_MAX];
	uint32_t n; /* 1, 2, ... per message and target, replays continue it */
	uint64_t at_us;
	int http_status; /* 0: no HTTP answer */
	uint32_t latency_us;
	char error[128];
	const char *body; /* excerpt of the answer (may hold patient data) */
	size_t body_len;
} hq_attempt;

/* Called for each attempt; a non-zero return stops the walk. */
typedef int (*hq_attempt_fn)(void *arg, const hq_attempt *a);

/*
 * Calls fn for every attempt of message id, by target then number, in one
 * read transaction.  Returns the number visited or a negative code.
 */
long hq_journal_attempts(hq_journal *j, uint64_t id, hq_attempt_fn fn, void *arg);

/* hq_query.state: refused at intake (no delivery records). */
#define HQ_STATE_REJECTED 100
/* hq_query.state: not yet delivered nor dead (pending or retrying), as
 * `hl7q status` and `check` count pending. */
#define HQ_STATE_QUEUED 101

/* An audit query: every set field must match. */
typedef struct hq_query {
	int state;	    /* 0 any; an hq_dlv_state, or HQ_STATE_REJECTED */
	const char *target; /* NULL any: with state, the delivery to this target */
	hq_str type;	    /* "ADT" matches every ADT^..., "ADT^A01" just those */
	hq_str control_id;  /* MSH-10, exact */
	hq_str patient;	    /* PID-3.1, exact */
	uint64_t since_us;  /* received at or after; 0 open */
	uint64_t until_us;  /* received before; 0 open */
	uint64_t limit;	    /* 0 all */
} hq_query;

/* Called per match, oldest id first; r and its strings live until it returns. */
typedef int (*hq_query_fn)(void *arg, const hq_record *r, const hq_msg_dlv *d, size_t nd);

/*
 * Runs q in bounded read transactions (intake is never blocked): the
 * matches of a slice (64 records, or 50 ms) are copied out and fn is
 * called for them after the transaction is reset, so a caller blocked in
 * fn (hl7q ls | less) does not keep freed pages from reuse.  The most
 * selective index drives it: control id, then patient, then the pending or
 * dead queue, then the type; otherwise the time index streams the range,
 * each slice going on after the last key read.  Returns the number of
 * matches or a negative code.
 */
long hq_journal_query(hq_journal *j, const hq_query *q, hq_query_fn fn, void *arg);

/* What the journal knows of one target, for `hl7q status`. */
typedef struct hq_target_summary {
	char name[HQ_TARGET_MAX];
	uint64_t pending, retrying, dead, delivered;
	uint64_t oldest_pending_us; /* received time of the oldest undelivered message; 0 none */
	uint64_t last_ok_us, last_err_us;
	char last_error[128];
} hq_target_summary;

/*
 * Summarises every target the journal has records of (names ascending).
 * Returns how many (may exceed max), or a negative code.
 */
long hq_journal_targets(hq_journal *j, hq_target_summary *out, size_t max);

/*
 * Queues messages again: the delivery to target (every delivery of the
 * message when target is NULL; with only_dead just the dead ones) becomes
 * pending and due at now_us, its earlier attempts kept.  With a target a
 * message has no record for, an accepted message gets one.  One write
 * transaction.  Returns the number of deliveries queued or a negative code.
 */
long hq_journal_replay(hq_journal *j, const uint64_t *ids, size_t n, const char *target,
		       int only_dead, uint64_t now_us);

/*
 * Deletes messages with their indexes, deliveries and attempts, in one
 * write transaction; their pages become free for reuse.  Ids not in the
 * journal are skipped.  The duplicate history is kept: the duplicate key
 * of a message received within the duplicate window stays (pointing at
 * the purged id) until the window has passed it.  Returns the number
 * deleted or a negative code.
 */
long hq_journal_purge(hq_journal *j, const uint64_t *ids, size_t n);

/* What a purge requires of each message, checked again in its write transaction. */
typedef enum hq_purge_if {
	HQ_PURGE_ANY,	    /* nothing: hq_journal_purge */
	HQ_PURGE_DELIVERED, /* every delivery delivered (retention) */
	HQ_PURGE_SETTLED    /* no delivery pending or retrying (purge --dead) */
} hq_purge_if;

/*
 * hq_journal_purge of the ids that still meet cond inside the write
 * transaction: a message replayed since the ids were collected is kept.
 * Returns the number deleted or a negative code.
 */
long hq_journal_purge_if(hq_journal *j, const uint64_t *ids, size_t n, hq_purge_if cond);

/*
 * The longest duplicate_window of the listeners, in microseconds, kept in
 * the journal so that every purger (the daemon, hl7q) keeps that much
 * duplicate history.  Until set, 24 hours.  Returns 0 or an MDB_* code.
 */
int hq_journal_set_duplicate_window(hq_journal *j, uint64_t window_us);

/* Test seam: fn runs after the retention scans collect their ids and
 * before they purge them (in the gap another writer may use). */
void hq_journal_on_purge_scan(hq_journal *j, void (*fn)(void *arg), void *arg);

/*
 * Retention: collects up to max ids of messages received before
 * before_us whose every delivery is delivered (messages with none --
 * refused, unrouted, duplicates -- included), scanning from *resume_us;
 * purges them unless dry_run.  Looks at no more than 20 * max messages
 * per call, except that a call never stops between two messages received
 * in the same microsecond (so a dry run counts each once).  Sets
 * *resume_us where the next call goes on (before_us once the scan is
 * done).  Returns the number found, or a negative code.
 */
long hq_journal_purge_before(hq_journal *j, uint64_t before_us, uint64_t *resume_us, size_t max, int dry_run);

/*
 * Refused frames: like hq_journal_purge_before, for the records refused
 * at intake (state REJECTED) received before before_us, whatever else the
 * journal holds.  *resume_us only moves forward, so the daemon's passes
 * each scan just what arrived since the last (keep it between passes).
 * Returns the number found, or a negative code.
 */
long hq_journal_purge_rejected(hq_journal *j, uint64_t before_us, uint64_t *resume_us, size_t max, int dry_run);

/*
 * Writes a compacted copy of the journal into directory dir (which must
 * exist and hold no data.mdb): LMDB's copy with compaction, into a file
 * created mode 0600 whatever the umask, fsynced.  Returns 0 or an error
 * (EEXIST when dir already holds a journal).
 */
int hq_journal_copy(hq_journal *j, const char *dir);

/* --- for the stores beside the journal in its environment (queue/audit.c) --- */

struct MDB_env;
struct MDB_txn;

/* The LMDB environment (valid until hq_journal_close). */
struct MDB_env *hq_journal_env(hq_journal *j);

/* Non-zero when j was opened for queries only. */
int hq_journal_is_readonly(const hq_journal *j);

/*
 * Seals n bytes with the journal's current key (AES-256-GCM, bound to
 * aad) into out (n + 33 bytes needed).  Returns 0, HQ_ENOTFOUND (no key:
 * the journal is not encrypted here), HQ_ETOOBIG or HQ_ECORRUPT.
 */
int hq_journal_seal_value(hq_journal *j, const void *aad, size_t aadlen, const void *in, size_t n,
			  void *out, size_t cap, size_t *outlen);

/*
 * Commits txn, a write transaction of a store beside the journal that
 * sealed values with hq_journal_seal_value, adding those seals to the
 * current key's counter in it (as the journal's own commits do); a plain
 * mdb_txn_commit would leave them uncounted once the process exits.
 * The transaction ends whatever happens.  Returns 0 or an LMDB code.
 */
int hq_journal_commit(hq_journal *j, struct MDB_txn *txn);

/*
 * 1 when the sealed value in[0..n) is not under the current key (an older
 * key or format): hq_journal_reseal's test, for the stores beside it.
 * 0 without a key.
 */
int hq_journal_value_stale(const hq_journal *j, const void *in, size_t n);

/*
 * Opens what hq_journal_seal_value sealed.  Returns 0, HQ_ENOTFOUND (no
 * key here opens it), HQ_ETOOBIG or HQ_ECORRUPT.
 */
int hq_journal_open_value(hq_journal *j, const void *aad, size_t aadlen, const void *in, size_t n,
			  void *out, size_t cap, size_t *outlen);

/*
 * One journal, one writer process: takes an exclusive lock (flock) on
 * DIR/hl7qd.lock (creating DIR 0700 and the file 0600) and writes the
 * caller's pid into it.  Readers never take it, so queries, replay and
 * purge go on while the daemon runs.  The lock lasts until *fd is closed
 * (or the process ends).  Returns 0 with *fd set; HQ_ELOCKED when another
 * process holds it, with *holder its pid (0 when it cannot be read); or an
 * errno.
 */
int hq_journal_lock(const char *dir, int *fd, long *holder);

#endif
