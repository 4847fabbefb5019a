/*
 * journal.c - the LMDB journal (see journal.h for the contract).
 *
 * Layout, one LMDB environment with named databases:
 *   meta        "format" -> 1 byte; "next_id" -> be64
 *   msgs        be64 id -> record (format byte first, see encode())
 *   by_time     be64 received_us -> be64 id   (DUPSORT, DUPFIXED)
 *   by_type     "code^trigger"   -> be64 id   (DUPSORT, DUPFIXED)
 *   by_control  MSH-10           -> be64 id   (DUPSORT, DUPFIXED)  deferred
 *   by_patient  PID-3.1          -> be64 id   (DUPSORT, DUPFIXED)  deferred
 *
 * msgs, by_time and by_type grow at their ends, so the intake commit
 * dirties few pages.  Control ids and patient ids land all over their
 * trees: written in the intake commit they tripled its cost (every message
 * dirtied two random leaf pages).  They are written behind, by
 * hq_journal_index(), in larger transactions that the daemon runs between
 * turns; meta "indexed_upto" says how far, in the same transaction, so a
 * crash never leaves them half done.  Lookups read the index and then
 * scan the short tail of records past indexed_upto: answers are complete
 * at every moment.
 *   dedup       sender+control   -> be64 id, be64 received_us
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
#include <sys/types.h>

#include "core/error.h"
#include "journal.h"

#define REC_FORMAT 1
#define REC_HEADER 32
#define MAX_KEY 480 /* LMDB's default limit is 511 */

struct hq_journal {
	MDB_env *env;
	MDB_dbi meta, msgs, by_time, by_type, by_control, by_patient, dedup;
	MDB_dbi deliveries, pending, attempts;
	char instance[33];
	uint64_t next_id;
	uint64_t indexed_upto; /* by_control/by_patient hold every id <= this */
	uint64_t commits;     /* commits attempted, for the test seam */
	uint64_t fail_at;     /* commit number that fails; 0 none */
	uint64_t usage_at_ms; /* when usage was last refreshed */
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
	unsigned nf = p[REC_HEADER - 1];
	size_t off = REC_HEADER;
	for (unsigned i = 0; i < nf; i++) {
		if (off + 4 > n)
			return HQ_ECORRUPT;
		uint32_t len = get_be32(p + off);
		off += 4;
		if (len > n - off)
			return HQ_ECORRUPT;
		if (i < HQ_F_COUNT)
			r->f[i] = (hq_str){(const char *)p + off, len};
		off += len;
	}
	return 0;
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
	return j->usage.free < j->usage.reserve;
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

static int
put_index(hq_batch *b, MDB_dbi dbi, hq_str key, const unsigned char *idval)
{
	if (key.n == 0)
		return 0;
	MDB_val k = {key.n > MAX_KEY ? MAX_KEY : key.n, (void *)key.p};
	MDB_val v = {9, (void *)idval};
	return mdb_put(b->txn, dbi, &k, &v, 0);
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
	v.mv_size = encoded_size(rec);
	if ((rc = mdb_put(b->txn, j->msgs, &k, &v, MDB_RESERVE | MDB_APPEND)))
		goto fail;
	encode(rec, v.mv_data);
	MDB_val tk = {8, tbe}, tv = {9, idval};
	if ((rc = mdb_put(b->txn, j->by_time, &tk, &tv, 0)))
		goto fail;
	/* by_type holds code^trigger only, so a prefix "ADT" finds them all. */
	hq_str type = rec->f[HQ_F_TYPE];
	const char *caret = memchr(type.p ? type.p : "", '^', type.n);
	if (caret) {
		const char *second = memchr(caret + 1, '^',
					    type.n - (size_t)(caret + 1 - type.p));
		if (second)
			type.n = (size_t)(second - type.p);
	}
	if ((rc = put_index(b, j->by_type, type, idval)))
		goto fail; /* by_control, by_patient: hq_journal_index() */
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
	if (rc == 0) {
		unsigned char nbe[9];
		put_val(nbe, j->next_id);
		MDB_val k = {7, "next_id"}, v = {9, nbe};
		rc = mdb_put(b->txn, j->meta, &k, &v, 0);
	}
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
		void *copy = malloc(v.mv_size ? v.mv_size : 1);
		if (copy == NULL) {
			rc = ENOMEM;
		} else {
			memcpy(copy, v.mv_data, v.mv_size);
			rc = decode(copy, v.mv_size, rec);
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

/* Appends the ids stored under exactly key (prefix 0) or under every key
 * starting with key (prefix 1). */
static int
collect_ids(MDB_cursor *c, const char *key, size_t klen, int prefix,
	    uint64_t *ids, size_t max, long *found)
{
	MDB_val k = {klen, (void *)key}, v;
	int rc = mdb_cursor_get(c, &k, &v, prefix ? MDB_SET_RANGE : MDB_SET_KEY);
	while (rc == 0) {
		if (prefix && (k.mv_size < klen || memcmp(k.mv_data, key, klen) != 0))
			break;
		if ((size_t)*found < max)
			ids[*found] = get_val(&v);
		(*found)++;
		rc = mdb_cursor_get(c, &k, &v, prefix ? MDB_NEXT : MDB_NEXT_DUP);
	}
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static uint64_t
read_indexed_upto(hq_journal *j, MDB_txn *txn)
{
	uint64_t upto;
	return meta_get_id(j, txn, "indexed_upto", &upto) == 0 ? upto : 0;
}

/* The records not yet in the deferred indexes, matched one by one. */
static int
scan_tail(hq_journal *j, MDB_txn *txn, int field, const char *key, size_t klen,
	  uint64_t *ids, size_t max, long *found)
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
		if (decode(v.mv_data, v.mv_size, &r) == 0) {
			hq_str f = r.f[field];
			size_t n = f.n > MAX_KEY ? MAX_KEY : f.n;
			if (n == klen && memcmp(f.p, key, klen) == 0) {
				if ((size_t)*found < max)
					ids[*found] = r.id;
				(*found)++;
			}
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
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
		if (decode(v.mv_data, v.mv_size, &r) == 0) {
			put_val(idval, r.id);
			hq_str ctrl = r.f[HQ_F_CONTROL_ID], pid = r.f[HQ_F_PATIENT_ID];
			MDB_val ck = {ctrl.n > MAX_KEY ? MAX_KEY : ctrl.n, (void *)ctrl.p};
			MDB_val pk = {pid.n > MAX_KEY ? MAX_KEY : pid.n, (void *)pid.p};
			MDB_val iv = {9, idval};
			/* The keys point into the map: copy-on-write puts may move
			 * that page, so both keys are read before either put. */
			char kbuf[2 * MAX_KEY];
			memcpy(kbuf, ck.mv_data, ck.mv_size);
			memcpy(kbuf + MAX_KEY, pk.mv_data, pk.mv_size);
			ck.mv_data = kbuf;
			pk.mv_data = kbuf + MAX_KEY;
			upto = r.id;
			if ((ck.mv_size && (rc = mdb_put(txn, j->by_control, &ck, &iv, 0))) ||
			    (pk.mv_size && (rc = mdb_put(txn, j->by_patient, &pk, &iv, 0))))
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

long
hq_journal_lookup(hq_journal *j, hq_index idx, hq_str key, uint64_t *ids,
		  size_t max)
{
	MDB_dbi dbi = idx == HQ_IDX_CONTROL ? j->by_control
		    : idx == HQ_IDX_PATIENT ? j->by_patient
					    : j->by_type;
	size_t klen = key.n > MAX_KEY ? MAX_KEY : key.n;
	MDB_txn *txn;
	MDB_cursor *c;
	long found = 0;
	int rc;

	if (klen == 0)
		return 0;
	if ((rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn)))
		return rc;
	if ((rc = mdb_cursor_open(txn, dbi, &c))) {
		mdb_txn_abort(txn);
		return rc;
	}
	rc = collect_ids(c, key.p, klen, 0, ids, max, &found);
	if (rc == 0 && idx != HQ_IDX_TYPE)
		rc = scan_tail(j, txn, idx == HQ_IDX_CONTROL ? HQ_F_CONTROL_ID : HQ_F_PATIENT_ID,
			       key.p, klen, ids, max, &found);
	if (rc == 0 && idx == HQ_IDX_TYPE && memchr(key.p, '^', klen) == NULL) {
		/* "ADT" also matches every "ADT^..." key, not "ADTX". */
		char prefix[MAX_KEY + 1];
		memcpy(prefix, key.p, klen);
		prefix[klen] = '^';
		rc = collect_ids(c, prefix, klen + 1, 1, ids, max, &found);
		size_t n = (size_t)found < max ? (size_t)found : max;
		qsort(ids, n, sizeof *ids, cmp_u64);
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return rc ? rc : found;
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

#define DLV_SIZE 24

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
}

static int
dlv_decode(const MDB_val *val, hq_delivery *d)
{
	const unsigned char *v = val->mv_data;
	if (val->mv_size < DLV_SIZE || v[0] != VAL_FORMAT)
		return HQ_ECORRUPT;
	d->state = (hq_dlv_state)v[1];
	d->attempts = get_be32(v + 2);
	d->next_us = get_be64(v + 6);
	d->updated_us = get_be64(v + 14);
	d->last_status = v[22] << 8 | v[23];
	return 0;
}

int
hq_batch_add_delivery(hq_batch *b, uint64_t id, const char *target, uint64_t now_us)
{
	unsigned char k[8 + 64], pk[64 + 9], v[DLV_SIZE], one = VAL_FORMAT;
	hq_delivery d = {HQ_DLV_PENDING, 0, now_us, now_us, 0};
	int rc;

	if (b->err)
		return b->err;
	if (strlen(target) >= 64)
		return EINVAL;
	dlv_encode(v, &d);
	MDB_val dk = {dlv_key(k, id, target), k}, dv = {DLV_SIZE, v};
	MDB_val qk = {pending_key(pk, target, id), pk}, qv = {1, &one};
	if ((rc = mdb_put(b->txn, b->j->deliveries, &dk, &dv, 0)) ||
	    (rc = mdb_put(b->txn, b->j->pending, &qk, &qv, 0))) {
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

long
hq_journal_due(hq_journal *j, const char *target, uint64_t now_us, hq_due_order order,
	       uint32_t shard, uint32_t nshards, const uint64_t *skip, size_t nskip, hq_due *out, size_t max,
	       uint64_t *next_us)
{
	unsigned char pk[64 + 9];
	size_t tlen = strlen(target);
	int fifo = order == HQ_DUE_FIFO, bypatient = order == HQ_DUE_PATIENT;
	held h = {0};
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
		    mdb_get(txn, j->msgs, &mk, &mval) != 0 ||
		    decode(mval.mv_data, mval.mv_size, &r) != 0) {
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
		o->attempts = d.attempts;
		o->received_us = r.received_us;
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
	return n;
}

int
hq_journal_record_outcomes(hq_journal *j, const char *target, const hq_outcome *o,
			   size_t n)
{
	MDB_txn *txn;
	int rc;

	if (strlen(target) >= 64)
		return EINVAL;
	if ((rc = mdb_txn_begin(j->env, NULL, 0, &txn)))
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		unsigned char dk[8 + 64], v[DLV_SIZE];
		MDB_val dkey = {dlv_key(dk, o[i].id, target), dk}, dval;
		hq_delivery d;
		if (mdb_get(txn, j->deliveries, &dkey, &dval) != 0 || dlv_decode(&dval, &d) != 0)
			continue; /* purged meanwhile */
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
		unsigned char ak[8 + 64 + 5];
		size_t tl = strlen(target);
		put_be64(ak, o[i].id);
		memcpy(ak + 8, target, tl);
		ak[8 + tl] = 0;
		put_be32(ak + 9 + tl, d.attempts);
		size_t elen = strnlen(o[i].error, sizeof o[i].error);
		size_t blen = o[i].body_len < sizeof o[i].body ? o[i].body_len : sizeof o[i].body;
		unsigned char av[1 + 8 + 2 + 4 + 2 + sizeof o[i].error + sizeof o[i].body];
		av[0] = VAL_FORMAT;
		put_be64(av + 1, o[i].at_us);
		av[9] = (unsigned char)(o[i].http_status >> 8);
		av[10] = (unsigned char)o[i].http_status;
		put_be32(av + 11, o[i].latency_us);
		av[15] = (unsigned char)(elen >> 8);
		av[16] = (unsigned char)elen;
		memcpy(av + 17, o[i].error, elen);
		memcpy(av + 17 + elen, o[i].body, blen);
		MDB_val akey = {13 + tl, ak}, aval = {17 + elen + blen, av};
		if ((rc = mdb_put(txn, j->attempts, &akey, &aval, 0)))
			break;
		if (o[i].state == HQ_DLV_DELIVERED || o[i].state == HQ_DLV_DEAD) {
			unsigned char pk[64 + 9];
			MDB_val qk = {pending_key(pk, target, o[i].id), pk};
			rc = mdb_del(txn, j->pending, &qk, NULL);
			if (rc == MDB_NOTFOUND)
				rc = 0;
		}
	}
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
