/*
 * audit.h - the access audit trail: who read or changed what in the
 * journal, kept in the journal's own LMDB environment (named database
 * "audit") so that it is as durable as the messages and travels with a
 * compacted copy.
 *
 * Invariant: an event is committed, in its own write transaction, before
 * the command it records prints or acts; a command that cannot write its
 * event does not run.  Retention and `hl7q purge` never touch this
 * database; only hq_audit_purge_before removes events.
 *
 * An event names the operator (uid, login name, SUDO_USER, host), the
 * command, the filter it used and the message ids it touched.  A patient
 * id (the `--patient` filter) is sealed with the journal's key when the
 * journal is encrypted, and shown only to a reader holding that key.  The
 * one-line rendering for syslog (hq_audit_line) carries ids and counts,
 * never a patient id.  The store never logs; it returns codes
 * (core/error.h).
 */
#ifndef HQ_AUDIT_H
#define HQ_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "queue/journal.h"

typedef struct hq_audit hq_audit;

/* At most this many ids are kept per event; count says how many there were. */
#define HQ_AUDIT_MAX_IDS 1000

typedef struct hq_audit_event {
	uint64_t seq;	/* set by hq_audit_append: 1, 2, ... in commit order */
	uint64_t at_us; /* wall clock, microseconds since the epoch */
	long uid;	/* the login uid (getuid) */
	long pid;
	char user[64];	    /* its name */
	char sudo_user[64]; /* SUDO_USER when set, else "" */
	char host[128];
	char program[16];   /* "hl7q" or "hl7qd" */
	char command[32];   /* "show", "ls", "purge", "start", "reload", ... */
	char filter[512];   /* options as given, PHI-free ("--state dead --target t") */
	char detail[256];   /* what else: "sha256=..." for a reload, a failure's reason */
	char patient[128];  /* a patient id the command looked for ("" none) */
	int patient_sealed; /* read back: the patient id is sealed and no key here opens it */
	uint64_t count;	    /* messages touched (may exceed nids) */
	uint64_t *ids;	    /* the ids touched, nids of them (not owned by the event) */
	size_t nids;
} hq_audit_event;

/*
 * Opens the audit store of journal j (creating the database when j is
 * writable; a read-only journal without one lists no events).  Call it
 * before other threads use j: it opens a database handle.  Returns 0, or
 * an errno / MDB_* code.
 */
int hq_audit_open(hq_journal *j, hq_audit **out);

void hq_audit_close(hq_audit *a);

/*
 * Fills ev's time, uid, user, SUDO_USER, host and pid from the process,
 * and program; the rest is zeroed.
 */
void hq_audit_event_init(hq_audit_event *ev, const char *program, const char *command);

/*
 * Appends ev (setting ev->seq) in its own write transaction, committed
 * (fsync'd) before it returns.  Seals ev->patient when the journal has a
 * key.  Returns 0, EROFS/EACCES (the journal is not writable here), or an
 * errno / MDB_* code.
 */
int hq_audit_append(hq_audit *a, hq_audit_event *ev);

/* A listing's filter: every set field must match. */
typedef struct hq_audit_query {
	uint64_t since_us, until_us; /* at_us in [since, until); 0 open */
	const char *user;	     /* user or sudo_user equal to this */
	uint64_t id;		     /* events that touched this message id */
} hq_audit_query;

/* Called per event, oldest first; ev lives until it returns.  Non-zero stops. */
typedef int (*hq_audit_fn)(void *arg, const hq_audit_event *ev);

/* Lists the events matching q in seq order, read a slice per read
 * transaction and handed to fn outside it (fn may be slow); fn returning
 * non-zero stops the list.  Returns the number of matches handed over or
 * a negative code. */
long hq_audit_list(hq_audit *a, const hq_audit_query *q, hq_audit_fn fn, void *arg);

/*
 * Deletes the events recorded before before_us, except event keep_seq (the
 * purge's own event), in one write transaction.  Returns the number
 * deleted or a negative code.
 */
long hq_audit_purge_before(hq_audit *a, uint64_t before_us, uint64_t keep_seq);

/*
 * Seals the patient ids of up to max events, from event *resume_seq on,
 * under the journal's current key (those in plaintext, written before
 * encryption was turned on, and those sealed with an older key or
 * format), in one write transaction; *resume_seq moves past what was
 * read and *finished becomes 1 at the end.  hl7q reseal runs it after
 * hq_journal_reseal so that an old key can leave the key file.  Returns
 * the number resealed (none without a key) or a negative code.
 */
long hq_audit_reseal(hq_audit *a, size_t max, uint64_t *resume_seq, int *finished);

/*
 * The event as one line for syslog: "user=alice(1000) sudo_user=- host=h
 * program=hl7q command=show filter=... ids=8 count=1"; no patient id
 * (a patient filter shows as patient=yes).  Returns the length (cut at cap).
 */
size_t hq_audit_line(const hq_audit_event *ev, char *buf, size_t cap);

#endif
