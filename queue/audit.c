/*
 * audit.c - the access audit trail in the journal's LMDB environment (see
 * audit.h for the invariant it keeps).
 *
 * Database "audit": key be64 sequence number (one past the last, taken in
 * the write transaction, so commit order is key order), value
 * [AUDIT_FORMAT][JSON object].  JSON keeps the record readable with
 * mdb_dump in an incident and lets fields be added without a new format;
 * bump AUDIT_FORMAT only for a change old readers would misread.
 * The journal's other code never opens this database, so retention and
 * purge cannot remove an event.
 */
#include <errno.h>
#include <jansson.h>
#include <lmdb.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/alloc.h"
#include "core/error.h"
#include "audit.h"
#include "bytes.h"

#define AUDIT_FORMAT 1
#define AUDIT_DB "audit"
#define PATIENT_AAD "hl7q audit patient v1"

struct hq_audit {
	hq_journal *j;
	MDB_env *env;
	MDB_dbi dbi;
	int missing; /* read-only journal without the database: no events */
};

int
hq_audit_open(hq_journal *j, hq_audit **out)
{
	hq_audit *a = hq_xcalloc(1, sizeof *a);
	MDB_txn *txn;
	int ro = hq_journal_is_readonly(j), rc;

	a->j = j;
	a->env = hq_journal_env(j);
	if ((rc = mdb_txn_begin(a->env, NULL, ro ? MDB_RDONLY : 0, &txn))) {
		free(a);
		return rc;
	}
	rc = mdb_dbi_open(txn, AUDIT_DB, ro ? 0 : MDB_CREATE, &a->dbi);
	if (rc == MDB_NOTFOUND && ro) {
		a->missing = 1;
		rc = 0;
	}
	if (rc == 0 && !a->missing)
		rc = mdb_txn_commit(txn); /* also read-only: an aborted txn would close the handle */
	else
		mdb_txn_abort(txn);
	if (rc) {
		free(a);
		return rc;
	}
	*out = a;
	return 0;
}

void
hq_audit_close(hq_audit *a)
{
	free(a);
}

void
hq_audit_event_init(hq_audit_event *ev, const char *program, const char *command)
{
	memset(ev, 0, sizeof *ev);
	ev->at_us = hq_wall_us();
	ev->uid = (long)getuid();
	ev->pid = (long)getpid();
	struct passwd pw, *res = NULL;
	char buf[4096];
	if (getpwuid_r(getuid(), &pw, buf, sizeof buf, &res) == 0 && res)
		snprintf(ev->user, sizeof ev->user, "%s", res->pw_name);
	else
		snprintf(ev->user, sizeof ev->user, "%ld", ev->uid);
	const char *sudo = getenv("SUDO_USER");
	if (sudo)
		snprintf(ev->sudo_user, sizeof ev->sudo_user, "%s", sudo);
	if (gethostname(ev->host, sizeof ev->host) != 0)
		snprintf(ev->host, sizeof ev->host, "unknown");
	ev->host[sizeof ev->host - 1] = 0;
	snprintf(ev->program, sizeof ev->program, "%s", program);
	snprintf(ev->command, sizeof ev->command, "%s", command);
}

static void
hex(const unsigned char *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static int
unhex(const char *s, unsigned char *out, size_t cap, size_t *n)
{
	size_t len = strlen(s);
	if (len % 2 || len / 2 > cap)
		return -1;
	for (size_t i = 0; i < len / 2; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	*n = len / 2;
	return 0;
}

/* The event as stored (without its format byte).  NULL on out of memory. */
static char *
jnl_encode(hq_audit *a, const hq_audit_event *ev, int *err)
{
	json_t *o = json_pack("{s:I, s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "at_us",
			      (json_int_t)ev->at_us, "uid", (json_int_t)ev->uid, "pid",
			      (json_int_t)ev->pid, "user", ev->user, "sudo_user", ev->sudo_user, "host",
			      ev->host, "program", ev->program, "command", ev->command, "filter",
			      ev->filter, "detail", ev->detail, "count", (json_int_t)ev->count);
	*err = ENOMEM;
	if (o == NULL)
		return NULL;
	json_t *ids = json_array();
	for (size_t i = 0; i < ev->nids && i < HQ_AUDIT_MAX_IDS; i++)
		json_array_append_new(ids, json_integer((json_int_t)ev->ids[i]));
	json_object_set_new(o, "ids", ids);
	if (ev->patient[0]) {
		unsigned char sealed[sizeof ev->patient + 64];
		char shex[2 * sizeof sealed + 1];
		size_t n;
		int rc = hq_journal_seal_value(a->j, PATIENT_AAD, strlen(PATIENT_AAD), ev->patient,
					       strlen(ev->patient), sealed, sizeof sealed, &n);
		if (rc == 0) {
			hex(sealed, n, shex);
			json_object_set_new(o, "patient_sealed", json_string(shex));
		} else if (rc == HQ_ENOTFOUND) { /* not encrypted: as the journal keeps it */
			json_object_set_new(o, "patient", json_string(ev->patient));
		} else {
			json_decref(o);
			*err = rc;
			return NULL;
		}
	}
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

int
hq_audit_append(hq_audit *a, hq_audit_event *ev)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	unsigned char kb[8];
	int rc;

	if (hq_journal_is_readonly(a->j) || a->missing)
		return EROFS;
	char *s = jnl_encode(a, ev, &rc);
	if (s == NULL)
		return rc;
	size_t n = strlen(s);
	unsigned char *val = malloc(n + 1);
	if (val == NULL) {
		free(s);
		return ENOMEM;
	}
	val[0] = AUDIT_FORMAT;
	memcpy(val + 1, s, n);
	free(s);
	if ((rc = mdb_txn_begin(a->env, NULL, 0, &txn))) {
		free(val);
		return rc;
	}
	uint64_t seq = 1;
	if ((rc = mdb_cursor_open(txn, a->dbi, &c)) == 0) {
		if (mdb_cursor_get(c, &k, &v, MDB_LAST) == 0 && k.mv_size == 8)
			seq = get_be64(k.mv_data) + 1;
		mdb_cursor_close(c);
		put_be64(kb, seq);
		k = (MDB_val){8, kb};
		v = (MDB_val){n + 1, val};
		rc = mdb_put(txn, a->dbi, &k, &v, MDB_APPEND);
	}
	if (rc == 0)
		rc = hq_journal_commit(a->j, txn); /* the patient id's seal counts */
	else
		mdb_txn_abort(txn);
	free(val);
	if (rc == 0)
		ev->seq = seq;
	return rc;
}

/* Reads a stored event into ev (ids malloc'd into *ids).  Returns 0 or HQ_ECORRUPT. */
static int
jnl_decode(hq_audit *a, const MDB_val *k, const MDB_val *v, hq_audit_event *ev, uint64_t **ids)
{
	const unsigned char *p = v->mv_data;
	memset(ev, 0, sizeof *ev);
	*ids = NULL;
	if (k->mv_size != 8 || v->mv_size < 2 || p[0] != AUDIT_FORMAT)
		return HQ_ECORRUPT;
	json_error_t je;
	json_t *o = json_loadb((const char *)p + 1, v->mv_size - 1, 0, &je);
	if (o == NULL || !json_is_object(o)) {
		json_decref(o);
		return HQ_ECORRUPT;
	}
	ev->seq = get_be64(k->mv_data);
	ev->at_us = (uint64_t)json_integer_value(json_object_get(o, "at_us"));
	ev->uid = (long)json_integer_value(json_object_get(o, "uid"));
	ev->pid = (long)json_integer_value(json_object_get(o, "pid"));
	ev->count = (uint64_t)json_integer_value(json_object_get(o, "count"));
	static const struct {
		const char *key;
		size_t off, cap;
	} strs[] = {
		{"user", offsetof(hq_audit_event, user), sizeof ev->user},
		{"sudo_user", offsetof(hq_audit_event, sudo_user), sizeof ev->sudo_user},
		{"host", offsetof(hq_audit_event, host), sizeof ev->host},
		{"program", offsetof(hq_audit_event, program), sizeof ev->program},
		{"command", offsetof(hq_audit_event, command), sizeof ev->command},
		{"filter", offsetof(hq_audit_event, filter), sizeof ev->filter},
		{"detail", offsetof(hq_audit_event, detail), sizeof ev->detail},
		{"patient", offsetof(hq_audit_event, patient), sizeof ev->patient},
	};
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
		const char *s = json_string_value(json_object_get(o, strs[i].key));
		if (s)
			snprintf((char *)ev + strs[i].off, strs[i].cap, "%s", s);
	}
	const char *sealed = json_string_value(json_object_get(o, "patient_sealed"));
	if (sealed) {
		unsigned char blob[sizeof ev->patient + 64];
		size_t n, m;
		if (unhex(sealed, blob, sizeof blob, &n) == 0 &&
		    hq_journal_open_value(a->j, PATIENT_AAD, strlen(PATIENT_AAD), blob, n,
					  ev->patient, sizeof ev->patient - 1, &m) == 0)
			ev->patient[m] = 0;
		else
			ev->patient_sealed = 1;
	}
	json_t *arr = json_object_get(o, "ids");
	size_t nids = json_array_size(arr);
	if (nids) {
		*ids = calloc(nids, sizeof **ids);
		if (*ids == NULL) {
			json_decref(o);
			return ENOMEM;
		}
		for (size_t i = 0; i < nids; i++)
			(*ids)[i] = (uint64_t)json_integer_value(json_array_get(arr, i));
	}
	ev->ids = *ids;
	ev->nids = nids;
	json_decref(o);
	return 0;
}

static int
matches(const hq_audit_query *q, const hq_audit_event *ev)
{
	if (q->since_us && ev->at_us < q->since_us)
		return 0;
	if (q->until_us && ev->at_us >= q->until_us)
		return 0;
	if (q->user && strcmp(q->user, ev->user) != 0 && strcmp(q->user, ev->sudo_user) != 0)
		return 0;
	if (q->id) {
		size_t i = 0;
		while (i < ev->nids && ev->ids[i] != q->id)
			i++;
		if (i == ev->nids)
			return 0;
	}
	return 1;
}

/* Events read per read transaction by hq_audit_list. */
#define LIST_SLICE 64

long
hq_audit_list(hq_audit *a, const hq_audit_query *q, hq_audit_fn fn, void *arg)
{
	hq_audit_event *ev;
	uint64_t *ids[LIST_SLICE], next = 0;
	long found = 0;
	int rc = 0, stop = 0, end = 0;

	if (a->missing)
		return 0;
	ev = hq_xmalloc(LIST_SLICE * sizeof *ev);
	/* A slice of matches per read transaction, handed to fn outside it:
	 * a slow reader (hl7q audit | less) pins no page the daemon frees. */
	while (rc == 0 && !stop && !end) {
		MDB_txn *txn;
		MDB_cursor *c;
		MDB_val k, v;
		unsigned char kb[8];
		size_t n = 0;
		if ((rc = mdb_txn_begin(a->env, NULL, MDB_RDONLY, &txn)))
			break;
		if ((rc = mdb_cursor_open(txn, a->dbi, &c))) {
			mdb_txn_abort(txn);
			break;
		}
		put_be64(kb, next);
		k = (MDB_val){8, kb};
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		while (rc == 0 && n < LIST_SLICE) {
			if (k.mv_size == 8)
				next = get_be64(k.mv_data) + 1;
			if ((rc = jnl_decode(a, &k, &v, &ev[n], &ids[n])) == ENOMEM)
				break;
			if (rc == 0 && matches(q, &ev[n]))
				n++;
			else
				free(ids[n]);
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
		}
		mdb_cursor_close(c);
		mdb_txn_abort(txn);
		if (rc == MDB_NOTFOUND) {
			end = 1;
			rc = 0;
		} else if (rc == HQ_ECORRUPT) {
			rc = 0; /* skipped, as before */
		}
		for (size_t i = 0; i < n; i++) {
			if (!stop) {
				found++;
				stop = fn(arg, &ev[i]) != 0;
			}
			free(ids[i]);
		}
	}
	free(ev);
	if (rc != 0)
		return hq_neg(rc);
	return found;
}

long
hq_audit_purge_before(hq_audit *a, uint64_t before_us, uint64_t keep_seq)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	long n = 0;
	int rc;

	if (hq_journal_is_readonly(a->j) || a->missing)
		return -EROFS;
	if ((rc = mdb_txn_begin(a->env, NULL, 0, &txn)))
		return hq_neg(rc);
	if ((rc = mdb_cursor_open(txn, a->dbi, &c))) {
		mdb_txn_abort(txn);
		return hq_neg(rc);
	}
	rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	while (rc == 0) {
		const unsigned char *p = v.mv_data;
		uint64_t at = 0;
		if (v.mv_size > 1 && p[0] == AUDIT_FORMAT) {
			json_t *o = json_loadb((const char *)p + 1, v.mv_size - 1, 0, NULL);
			at = (uint64_t)json_integer_value(json_object_get(o, "at_us"));
			json_decref(o);
		}
		if (at >= before_us)
			break; /* events are in time order */
		if (k.mv_size == 8 && get_be64(k.mv_data) != keep_seq) {
			if ((rc = mdb_cursor_del(c, 0)))
				break;
			n++;
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return hq_neg(rc);
	}
	if ((rc = mdb_txn_commit(txn)))
		return hq_neg(rc);
	return n;
}

size_t
hq_audit_line(const hq_audit_event *ev, char *buf, size_t cap)
{
	size_t n = (size_t)snprintf(buf, cap, "user=%s(%ld) sudo_user=%s host=%s program=%s command=%s",
				    ev->user, ev->uid, ev->sudo_user[0] ? ev->sudo_user : "-",
				    ev->host, ev->program, ev->command);
	if (n < cap && ev->filter[0])
		n += (size_t)snprintf(buf + n, cap - n, " filter=\"%s\"", ev->filter);
	if (n < cap && ev->patient[0])
		n += (size_t)snprintf(buf + n, cap - n, " patient=yes");
	if (n < cap && ev->nids) {
		n += (size_t)snprintf(buf + n, cap - n, " ids=");
		for (size_t i = 0; i < ev->nids && i < 20 && n < cap; i++)
			n += (size_t)snprintf(buf + n, cap - n, "%s%llu", i ? "," : "",
					      (unsigned long long)ev->ids[i]);
		if (ev->nids > 20 && n < cap)
			n += (size_t)snprintf(buf + n, cap - n, ",...");
	}
	if (n < cap)
		n += (size_t)snprintf(buf + n, cap - n, " count=%llu", (unsigned long long)ev->count);
	if (n < cap && ev->detail[0])
		n += (size_t)snprintf(buf + n, cap - n, " detail=\"%s\"", ev->detail);
	return n < cap ? n : cap - 1;
}

/* Seals the patient id of event value v again under the current key when
 * it is sealed under another: puts the new value at key k in txn and
 * counts it in *done.  Events it cannot read are left as they are. */
static int
reseal_event(hq_audit *a, MDB_txn *txn, const MDB_val *k, const MDB_val *v, long *done)
{
	const unsigned char *p = v->mv_data;
	if (v->mv_size < 2 || p[0] != AUDIT_FORMAT)
		return 0;
	json_t *o = json_loadb((const char *)p + 1, v->mv_size - 1, 0, NULL);
	const char *sealed = json_string_value(json_object_get(o, "patient_sealed"));
	unsigned char blob[sizeof((hq_audit_event *)0)->patient + 64];
	char plain[sizeof((hq_audit_event *)0)->patient], shex[2 * sizeof blob + 1];
	size_t n = 0, m;
	int rc = 0;
	const char *clear = json_string_value(json_object_get(o, "patient"));
	if (sealed == NULL && clear && *clear) {
		/* written before encryption was turned on: sealed now */
		m = strlen(clear);
		if (m >= sizeof plain)
			goto out;
		memcpy(plain, clear, m);
	} else if (sealed == NULL || unhex(sealed, blob, sizeof blob, &n) != 0 ||
		   !hq_journal_value_stale(a->j, blob, n)) {
		goto out;
	} else if ((rc = hq_journal_open_value(a->j, PATIENT_AAD, strlen(PATIENT_AAD), blob, n,
					       plain, sizeof plain, &m))) {
		goto out; /* set_keys made sure every key in use is here */
	}
	rc = hq_journal_seal_value(a->j, PATIENT_AAD, strlen(PATIENT_AAD), plain, m, blob, sizeof blob, &n);
	if (rc == HQ_ENOTFOUND)
		rc = 0; /* no key: nothing to seal with, left as it is */
	if (rc || n == 0)
		goto out;
	hex(blob, n, shex);
	json_object_del(o, "patient");
	json_object_set_new(o, "patient_sealed", json_string(shex));
	char *js = json_dumps(o, JSON_COMPACT);
	size_t jl = js ? strlen(js) : 0;
	unsigned char *val = js ? malloc(jl + 1) : NULL;
	if (val == NULL) {
		free(js);
		rc = ENOMEM;
		goto out;
	}
	val[0] = AUDIT_FORMAT;
	memcpy(val + 1, js, jl);
	free(js);
	unsigned char kb[8];
	memcpy(kb, k->mv_data, 8); /* the put may move k's page */
	MDB_val nk = {8, kb}, nv = {jl + 1, val};
	if ((rc = mdb_put(txn, a->dbi, &nk, &nv, 0)) == 0)
		(*done)++;
	free(val);
out:
	memset(plain, 0, sizeof plain);
	json_decref(o);
	return rc;
}

long
hq_audit_reseal(hq_audit *a, size_t max, uint64_t *resume_seq, int *finished)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	unsigned char kb[8];
	long done = 0;
	size_t seen = 0;
	int rc;

	*finished = 0;
	if (hq_journal_is_readonly(a->j) || a->missing)
		return -EROFS;
	if ((rc = mdb_txn_begin(a->env, NULL, 0, &txn)))
		return hq_neg(rc);
	uint64_t next = *resume_seq;
	while (rc == 0 && seen < max) {
		put_be64(kb, next);
		k = (MDB_val){8, kb};
		if ((rc = mdb_cursor_open(txn, a->dbi, &c)))
			break;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		mdb_cursor_close(c);
		if (rc == MDB_NOTFOUND) {
			rc = 0;
			*finished = 1;
			break;
		}
		if (rc || k.mv_size != 8)
			break;
		next = get_be64(k.mv_data) + 1;
		seen++;
		rc = reseal_event(a, txn, &k, &v, &done);
	}
	if (rc) {
		mdb_txn_abort(txn);
		return hq_neg(rc);
	}
	if ((rc = hq_journal_commit(a->j, txn)))
		return hq_neg(rc);
	*resume_seq = next;
	return done;
}
