/*
 * journal.c - the LMDB journal (see journal.h for the contract): its
 * environment -- open with the one-time upgrades of older journals,
 * close, free space, copy, the lock file -- and the layout below, which
 * the other files of queue/ (listed in journal_int.h) fill in.
 *
 * The invariant all of them keep: a frame is acknowledged only after the
 * transaction that stored it has committed (durability below), and
 * everything that describes a message (indexes, queues, counts) moves in
 * the transaction that moves the message or its delivery.
 *
 * Layout, one LMDB environment with named databases:
 *   meta        "format" -> 1 byte; "next_id" -> be64 (see below);
 *               "indexed_upto", "by_time_upto" -> be64 (how far the
 *               deferred indexes go, below)
 *   msgs        be64 id -> record (format byte first, see encode())
 *   by_time     be64 received_us -> be64 id   (DUPSORT, DUPFIXED)  deferred
 *   by_type     "code^trigger"   -> be64 id   (DUPSORT, DUPFIXED)  deferred
 *   by_control  MSH-10           -> be64 id   (DUPSORT, DUPFIXED)  deferred
 *   by_patient  PID-3.1          -> be64 id   (DUPSORT, DUPFIXED)  deferred
 *
 * Every B-tree an intake commit touches costs it at least one dirty page
 * (and its record in LMDB's main database, and a freed page to list), and
 * on one stop-and-wait connection those pages are the cost of each
 * message.  So the intake commit writes msgs only (it grows at its end:
 * one rightmost leaf).  The indexes are written behind, by
 * hq_journal_index(), in larger transactions that the daemon runs
 * between turns (index.c): control ids and patient ids land all over
 * their trees (two random leaf pages per message), and by_type and
 * by_time are one more tree each.  Meta "indexed_upto" (by_type,
 * by_control, by_patient) and "by_time_upto" (by_time) say how far, in
 * the same transaction, so a crash never leaves them half done (on start
 * the daemon goes on from there: the indexes are rebuilt from the
 * records).  Readers read the index and then scan the short tail of
 * records past the mark: lookups match the tail's fields, the time
 * queries and retention merge the tail's received times (in each
 * record's header) into by_time's order (query.c, purge.c), so answers
 * are complete at every moment.  A journal written when the intake commit
 * wrote by_time has no "by_time_upto": a read-only view takes by_time as
 * complete, and the first writable open sets it to the last id.
 *
 * meta "next_id" is not rewritten by every commit (that was one more dirty
 * leaf per message): the next id is the larger of it and the last key of
 * msgs + 1, and a purge, the one thing that can remove the last key,
 * raises "next_id" past every id it removes, in its own transaction.  So
 * an id is never handed out twice.
 *   dedup       sender hash 8, MSH-10 (64 at most), SHA-256(listener, MSH-3,
 *               MSH-4, MSH-10, TLS subject)  (see hq_dedup in journal.h)
 *                -> [2][be64 id][be64 received_us][SHA-256 of the bytes without MSH-7]
 *               (format 1, keys cut at 480 bytes and global across listeners,
 *               is dropped once when a journal is opened for writing: meta
 *               "dedup_v2"; a message key is in every record, HQ_F_MSG_KEY)
 *   deliveries  be64 id, target      -> delivery record (dlv_encode)
 *   pending     target \0 be64 id    -> (pending or retrying: the queue)
 *   dead        target \0 be64 id    -> (dead-lettered)
 *   attempts    be64 id, target \0 be32 n -> time, status, latency, error, body excerpt
 *   targets     target               -> delivered count, last success, last error,
 *                                          then pending, retrying and dead counts
 *   due         target \0 be64 t be64 id -> pkey or nothing: what a worker may take
 *               next, by due time (format 2; see "the due index" below)
 *   patq        target \0 pkey be64 id  -> per-patient queues (ordering "patient")
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
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/secret.h"
#include "core/alloc.h"
#include "journal_int.h"

static int
open_dbs(hq_journal *j, MDB_txn *txn, unsigned flags)
{
	static const struct {
		const char *name;
		size_t off;
		unsigned dup;
	} dbs[] = {
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
		{"due", offsetof(hq_journal, due), 0},
		{"patq", offsetof(hq_journal, patq), 0},
	};
	for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
		unsigned f = flags | (dbs[i].dup ? MDB_DUPSORT | MDB_DUPFIXED : 0);
		int rc = mdb_dbi_open(txn, dbs[i].name, f, (MDB_dbi *)((char *)j + dbs[i].off));
		if (rc == MDB_NOTFOUND && !(flags & MDB_CREATE) && dbs[i].off >= offsetof(hq_journal, due))
			return 0; /* a format 1 journal, read only: no due index */
		if (rc)
			return rc;
	}
	j->has_due = 1;
	return 0;
}

/* Reads the id stored in meta under key; 0 when absent.  Returns 0 or an error. */
int
jnl_meta_get_id(hq_journal *j, MDB_txn *txn, const char *key, uint64_t *out)
{
	MDB_val k = {strlen(key), (void *)key}, v;
	int rc = mdb_get(txn, j->meta, &k, &v);
	*out = rc == 0 ? jnl_get_val(&v) : 0;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
load_next_id(hq_journal *j, MDB_txn *txn)
{
	MDB_val v;
	uint64_t next;
	int rc = jnl_meta_get_id(j, txn, "next_id", &next);
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
	j->time_upto = jnl_read_time_upto(j, txn);
	if (j->time_upto == UINT64_MAX)
		j->time_upto = next - 1; /* read only, by_time written at intake: all there */
	return jnl_meta_get_id(j, txn, "indexed_upto", &j->indexed_upto);
}

/* A journal written before by_time was deferred holds every record's
 * by_time entry: meta "by_time_upto" starts at its last id, so that the
 * index runs write by_time only past it.  Returns 0 or an error. */
static int
time_upgrade(hq_journal *j, MDB_txn *txn)
{
	MDB_val k = {12, "by_time_upto"}, v, mk;
	MDB_cursor *c;
	uint64_t last = 0;
	unsigned char be[9];
	int rc;

	if (mdb_get(txn, j->meta, &k, &v) == 0)
		return 0;
	if ((rc = mdb_cursor_open(txn, j->msgs, &c)))
		return rc;
	if (mdb_cursor_get(c, &mk, &v, MDB_LAST) == 0 && mk.mv_size == 8)
		last = get_be64(mk.mv_data);
	mdb_cursor_close(c);
	jnl_put_val(be, last);
	v = (MDB_val){9, be};
	return mdb_put(txn, j->meta, &k, &v, 0);
}

/*
 * The journal's files belong to the owner of its directory.  hl7q run as
 * root (an operator with sudo) would otherwise leave a root-owned
 * lock.mdb (or data.mdb) that hl7qd, running as its own user, cannot
 * open: as root, a file of dir/name owned by root while dir is not is
 * given to dir's owner.  (MDB_NOLOCK for readers would avoid lock.mdb but
 * is not safe beside a writing daemon.)  Best effort: nothing is logged.
 */
static void
own_like_dir(const char *dir, const char *name)
{
	struct stat ds, fs;
	char path[1100];
	if (geteuid() != 0 || stat(dir, &ds) != 0 || ds.st_uid == 0)
		return;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (lstat(path, &fs) == 0 && S_ISREG(fs.st_mode) && fs.st_uid == 0 &&
	    chown(path, ds.st_uid, ds.st_gid) != 0) {
		/* left as it is: the daemon's start names the file it cannot open */
	}
}

int
hq_journal_reader_check(hq_journal *j, int *dead)
{
	*dead = 0;
	return mdb_reader_check(j->env, dead);
}

/* The duplicate index of format 1 (keys cut at 480 bytes, global across
 * listeners, no content hash) cannot be converted: its keys lack the
 * listener and the TLS subject.  It is dropped once; duplicates of
 * messages received before the upgrade are then stored as new messages. */
static int
dedup_upgrade(hq_journal *j, MDB_txn *txn)
{
	MDB_val mk = {8, "dedup_v2"}, mv;
	int rc;

	if (mdb_get(txn, j->meta, &mk, &mv) == 0)
		return 0;
	if ((rc = mdb_drop(txn, j->dedup, 0)))
		return rc;
	mv = (MDB_val){1, "\x01"};
	return mdb_put(txn, j->meta, &mk, &mv, 0);
}

/* Marks a writable journal as JOURNAL_FORMAT, in txn.  Returns 0 or an error. */
static int
format_upgrade(hq_journal *j, MDB_txn *txn)
{
	int rc;

	/* Format 2 added the due index.  A journal last written as
	 * format 1 (an older hl7qd, maybe after a downgrade) may hold
	 * queue entries the index misses: forget every target's
	 * ordering, so that hq_journal_set_order() rebuilds it. */
	MDB_val k = {6, "format"}, v;
	if (mdb_get(txn, j->meta, &k, &v) != 0 || v.mv_size != 1 || ((unsigned char *)v.mv_data)[0] != JOURNAL_FORMAT) {
		if ((rc = jnl_orders_forget(j, txn)))
			return rc;
		unsigned char f = JOURNAL_FORMAT;
		v = (MDB_val){1, &f};
		if ((rc = mdb_put(txn, j->meta, &k, &v, 0)))
			return rc;
	}
	return 0;
}

/* Reads the journal's instance id into j->instance, making one (in txn)
 * when a writable journal has none yet.  Returns 0 or an error. */
static int
instance_load(hq_journal *j, MDB_txn *txn, int readonly)
{
	int rc;

	MDB_val ik = {8, "instance"}, iv;
	if (mdb_get(txn, j->meta, &ik, &iv) == 0 && iv.mv_size == 33 &&
	    ((unsigned char *)iv.mv_data)[0] == VAL_FORMAT) {
		memcpy(j->instance, (char *)iv.mv_data + 1, 32);
	} else if (!readonly) {
		unsigned char rnd[16], val[33];
		if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
			return errno;
		for (int i = 0; i < 16; i++)
			snprintf(j->instance + 2 * i, 3, "%02x", rnd[i]);
		val[0] = VAL_FORMAT;
		memcpy(val + 1, j->instance, 32);
		iv = (MDB_val){33, val};
		if ((rc = mdb_put(txn, j->meta, &ik, &iv, 0)))
			return rc;
	}
	return 0;
}

int
hq_journal_open(const char *dir, uint64_t map_size, int readonly, hq_journal **out)
{
	hq_journal *j = hq_xcalloc(1, sizeof *j);
	MDB_txn *txn = NULL;
	int rc, dead;

	j->readonly = readonly;
	pthread_mutex_init(&j->dlv_mu, NULL);
	snprintf(j->dir, sizeof j->dir, "%s", dir);
	if (!readonly && mkdir(dir, 0700) != 0 && errno != EEXIST) {
		rc = errno;
		goto fail;
	}
	if ((rc = mdb_env_create(&j->env)))
		goto fail;
	mdb_env_set_maxdbs(j->env, 32);
	mdb_env_set_maxreaders(j->env, 256);
	if (map_size && (rc = mdb_env_set_mapsize(j->env, (size_t)map_size)))
		goto fail;
	if ((rc = mdb_env_open(j->env, dir, MDB_NOTLS | (readonly ? MDB_RDONLY : 0), 0600)))
		goto fail;
	mdb_reader_check(j->env, &dead);
	own_like_dir(dir, "data.mdb");
	own_like_dir(dir, "lock.mdb");
	if ((rc = mdb_txn_begin(j->env, NULL, readonly ? MDB_RDONLY : 0, &txn)))
		goto fail;
	if ((rc = open_dbs(j, txn, readonly ? 0 : MDB_CREATE)))
		goto fail;
	if (!readonly && (rc = format_upgrade(j, txn)))
		goto fail;
	if ((rc = instance_load(j, txn, readonly)))
		goto fail;
	if (!readonly && (rc = jnl_fill_target_stats(j, txn)))
		goto fail;
	if (!readonly && (rc = jnl_fill_counts(j, txn)))
		goto fail;
	{
		MDB_val ck = {9, "counts_v1"}, cv;
		j->counts_kept = mdb_get(txn, j->meta, &ck, &cv) == 0;
	}
	if (!readonly && (rc = dedup_upgrade(j, txn)))
		goto fail;
	if (!readonly && (rc = time_upgrade(j, txn)))
		goto fail;
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
	pthread_mutex_destroy(&j->dlv_mu);
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
hq_journal_fail_outcomes(hq_journal *j, uint64_t n)
{
	__atomic_store_n(&j->fail_outcomes, n, __ATOMIC_RELAXED);
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

int
hq_journal_copy(hq_journal *j, const char *dir)
{
	char path[4200];
	int rc = 0;

	snprintf(path, sizeof path, "%s/data.mdb", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno;
	/* the umask may only have taken bits away; 0600 whatever it was */
	if (fchmod(fd, 0600) != 0)
		rc = errno;
	if (rc == 0)
		rc = mdb_env_copyfd2(j->env, fd, MDB_CP_COMPACT);
	if (rc == 0 && geteuid() == 0) { /* the copy replaces data.mdb: the daemon's user must own it */
		struct stat js;
		if (stat(j->dir, &js) == 0 && js.st_uid != 0 && fchown(fd, js.st_uid, js.st_gid) != 0)
			rc = errno;
	}
	if (rc == 0 && fsync(fd) != 0)
		rc = errno;
	if (close(fd) != 0 && rc == 0)
		rc = errno;
	if (rc != 0)
		unlink(path);
	return rc;
}

int
hq_journal_lock(const char *dir, int *fd, long *holder)
{
	char path[4200], buf[32];
	*holder = 0;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return errno;
	snprintf(path, sizeof path, "%s/hl7qd.lock", dir);
	int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (f < 0)
		return errno;
	own_like_dir(dir, "hl7qd.lock"); /* hl7q compact as root must not lock hl7qd out */
	if (flock(f, LOCK_EX | LOCK_NB) != 0) {
		int rc = errno == EWOULDBLOCK ? HQ_ELOCKED : errno;
		ssize_t n = pread(f, buf, sizeof buf - 1, 0);
		if (n > 0) {
			buf[n] = 0;
			*holder = strtol(buf, NULL, 10);
		}
		close(f);
		return rc;
	}
	int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
	if (ftruncate(f, 0) != 0 || pwrite(f, buf, (size_t)n, 0) != n) {
		int rc = errno ? errno : EIO;
		close(f);
		return rc;
	}
	*fd = f;
	return 0;
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
