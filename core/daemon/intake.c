/*
 * intake.c - the group commit (see intake.h).
 *
 * For each frame of the turn: parse the header, decide (accept, refuse,
 * duplicate), add the record to one batch.  Commit once.  Only then build
 * each ACK: the planned code when the commit succeeded, AR/CR with ERR 207
 * for every frame when it failed.  An fsync failure or MDB_PANIC also
 * stops the daemon (exit non-zero): retrying fsync can lie.
 */
#include <errno.h>
#include <lmdb.h>
#include <malloc.h>
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "hl7/ack.h"
#include "hl7/msg.h"
#include "intake.h"
#include "core/log.h"
#include "core/metrics.h"
#include "delivery.h"

#define ACK_CAP 2048

/* A refused frame is journaled as its first REFUSED_KEEP bytes, its size
 * and its SHA-256, its header fields cut to REFUSED_FIELD_MAX: junk from
 * outside cannot fill the journal (a record fits in one LMDB page). */
#define REFUSED_KEEP 2048
#define REFUSED_FIELD_MAX 128

/* What was decided for one frame before the commit. */
typedef struct plan {
	hq_msh msh;
	hq_ack_kind kind;
	int err_code;
	const char *err_text;
	const char *err_loc;
	char ack_id[24];
	uint64_t id;
	uint64_t reused_of; /* MSH-10 reused with other content: the earlier message */
	int stored;
} plan;

void
hq_intake_init(hq_intake *in, const hq_config *cfg, hq_journal *j)
{
	memset(in, 0, sizeof *in);
	/* A turn's frames and ACKs (some 4 KB each, up to a few hundred KB a
	 * turn) are freed at its end; glibc would hand that back to the
	 * kernel every turn (its 128 KB trim threshold) and fault it in again
	 * on the next.  Keep up to 4 MB. */
	mallopt(M_TRIM_THRESHOLD, 4 << 20);
	in->cfg = cfg;
	in->journal = j;
	/* ACK control ids: start time in base 36, then a counter: unique across restarts. */
	static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
	struct timeval tv;
	gettimeofday(&tv, NULL);
	uint64_t t = (uint64_t)tv.tv_sec * 100 + (uint64_t)tv.tv_usec / 10000;
	char tmp[16];
	int n = 0;
	do {
		tmp[n++] = digits[t % 36];
		t /= 36;
	} while (t && n < 15);
	for (int i = 0; i < n; i++)
		in->ack_prefix[i] = tmp[n - 1 - i];
	in->ack_prefix[n] = 0;
}


static void
format_now(char *buf, size_t cap)
{
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	char zone[8];
	strftime(zone, sizeof zone, "%z", &tm);
	char base[32];
	strftime(base, sizeof base, "%Y%m%d%H%M%S", &tm);
	snprintf(buf, cap, "%s.%03d%s", base, (int)(tv.tv_usec / 1000), zone);
}

static hq_str
S(hq_str s)
{
	return s;
}

static void
fill_record(hq_record *r, const hq_frame *f, const plan *p, const char *listener)
{
	const hq_msh *m = &p->msh;
	memset(r, 0, sizeof *r);
	r->received_us = f->received_us;
	r->is_batch = (uint8_t)m->is_batch;
	r->err_code = (uint16_t)p->err_code;
	r->f[HQ_F_LISTENER] = (hq_str){listener, strlen(listener)};
	r->f[HQ_F_PEER] = (hq_str){f->peer, strlen(f->peer)};
	if (m->have_delims) {
		r->f[HQ_F_SENDING_APP] = S(m->sending_app);
		r->f[HQ_F_SENDING_FAC] = S(m->sending_fac);
		r->f[HQ_F_RECEIVING_APP] = S(m->receiving_app);
		r->f[HQ_F_RECEIVING_FAC] = S(m->receiving_fac);
		r->f[HQ_F_DATETIME] = S(m->datetime);
		r->f[HQ_F_TYPE] = S(m->type_field);
		r->f[HQ_F_CONTROL_ID] = S(m->control_id);
		r->f[HQ_F_PROCESSING_ID] = S(m->processing_id);
		r->f[HQ_F_VERSION] = S(m->version_id);
		r->f[HQ_F_ACCEPT_ACK] = S(m->accept_ack);
		r->f[HQ_F_APP_ACK] = S(m->app_ack);
		r->f[HQ_F_CHARSET] = S(m->charset);
		r->f[HQ_F_PATIENT_ID] = S(m->patient_id);
		r->f[HQ_F_PATIENT_AUTH] = S(m->patient_authority);
	}
	r->f[HQ_F_ACK_ID] = (hq_str){p->ack_id, strlen(p->ack_id)};
	if (p->err_text)
		r->f[HQ_F_REASON] = (hq_str){p->err_text, strlen(p->err_text)};
	r->f[HQ_F_RAW] = (hq_str){f->data, f->len};
}

/* Bounds a refused frame's record; size and hex (65 bytes) hold its new fields. */
static void
bound_refused(hq_record *r, const hq_frame *f, char *size, size_t sizecap, char *hex)
{
	unsigned char sha[32];
	if (f->oversize)
		memcpy(sha, f->sha256, sizeof sha); /* data holds only a prefix */
	else
		mbedtls_sha256_ret((const unsigned char *)f->data, f->len, sha, 0);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", sha[i]);
	int n = snprintf(size, sizecap, "%zu", f->total > f->len ? f->total : f->len);
	r->f[HQ_F_RAW_SIZE] = (hq_str){size, (size_t)n};
	r->f[HQ_F_RAW_SHA256] = (hq_str){hex, 64};
	for (int i = 0; i < HQ_F_COUNT; i++) {
		size_t cap = i == HQ_F_RAW ? REFUSED_KEEP : REFUSED_FIELD_MAX;
		if (i != HQ_F_RAW_SHA256 && r->f[i].n > cap)
			r->f[i].n = cap;
	}
}

static void
refuse(plan *p, hq_ack_kind kind, int code, const char *text, const char *loc)
{
	p->kind = kind;
	p->err_code = code;
	p->err_text = text;
	p->err_loc = loc ? loc : "";
}

/*
 * Whether the accept ACK for p goes out: always under accept_ack = always
 * (what every real MLLP client waits for), else as MSH-15 says.
 */
static int
ack_goes_out(const hq_listener_conf *lc, const plan *p)
{
	return lc->accept_ack == HQ_ACCEPT_ACK_ALWAYS || hq_ack_wanted(&p->msh, p->kind);
}

/* Parse and decide one frame; nothing is stored yet. */
static void
decide(plan *p, const hq_frame *f)
{
	int rc = hq_msh_parse(f->data, f->len, &p->msh);
	p->kind = HQ_ACK_ACCEPT;
	if (f->oversize) {
		refuse(p, HQ_ACK_REJECT, HQ_0357_INTERNAL, "Message exceeds max_message_size", "");
	} else if (rc != 0) {
		int c = p->msh.err_code;
		hq_ack_kind k = (c == HQ_0357_UNSUPPORTED_VERSION ||
				 c == HQ_0357_UNSUPPORTED_TYPE || !p->msh.have_delims)
					? HQ_ACK_REJECT
					: HQ_ACK_ERROR;
		refuse(p, k, c, p->msh.err_text, p->msh.err_loc);
	} else if (hq_str_eq(p->msh.charset, "UNICODE UTF-8") && !hq_utf8_valid(f->data, f->len)) {
		/* Stored as received, a target would get text it cannot decode. */
		refuse(p, HQ_ACK_ERROR, HQ_0357_DATA_TYPE,
		       "Invalid UTF-8 in a message whose MSH-18 is UNICODE UTF-8", "MSH^1^18");
	}
}

/* At most REFUSED_LOG_BURST refusal lines per REFUSED_LOG_MS. */
#define REFUSED_LOG_BURST 50
#define REFUSED_LOG_MS 10000

static void
log_frame(hq_intake *in, const hq_frame *f, const plan *p, const char *listener, const char *code)
{
	const hq_msh *m = &p->msh;
	int cn = m->have_delims ? (int)(m->control_id.n > 64 ? 64 : m->control_id.n) : 0;
	int tn = m->have_delims ? (int)(m->type_field.n > 40 ? 40 : m->type_field.n) : 0;
	if (p->kind == HQ_ACK_ACCEPT)
		hq_log(HQ_LOG_DEBUG, "listener %s: id=%llu ctrl=%.*s type=%.*s peer=%s ack=%s", listener,
		       (unsigned long long)p->id, cn, m->control_id.p, tn, m->type_field.p, f->peer, code);
	else
		hq_log_limited(&in->rl_refused, REFUSED_LOG_BURST, REFUSED_LOG_MS, "refusals", HQ_LOG_NOTICE,
			       "listener %s: refused id=%llu ctrl=%.*s type=%.*s peer=%s ack=%s: %d %s",
			       listener, (unsigned long long)p->id, cn, m->control_id.p, tn,
			       m->type_field.p, f->peer, code, p->err_code, p->err_text ? p->err_text : "");
}

/*
 * Decides frame f (plan p), and adds its record, and the delivery records
 * of the targets it routes to, to batch b: a duplicate within the window
 * is stored as such (or refused), a refused frame with bounded content.
 * routes is scratch space for one int per target.  Nothing is stored when
 * rc (the batch's state so far) is an error; p gets its ACK control id.
 */
static void
stage_frame(hq_intake *in, hq_batch *b, int rc, hq_frame *f, plan *p, int *routes)
{
	const hq_listener_conf *lc = f->lc;
	char rsize[24], rsha[65];
	hq_dedup dedup, *dk = NULL;
	int nroutes = 0;
	hq_record rec;

	decide(p, f);
	snprintf(p->ack_id, sizeof p->ack_id, "Q%s%llu", in->ack_prefix, (unsigned long long)++in->ack_seq);
	if (rc != 0)
		return;
	if (p->kind == HQ_ACK_ACCEPT && lc->duplicates != HQ_DUP_ACCEPT) {
		uint64_t window_us = lc->duplicate_window_ms * 1000;
		uint64_t since = f->received_us > window_us ? f->received_us - window_us : 0;
		uint64_t orig;
		int same;
		const char *subj = f->tls_subject ? f->tls_subject : "";
		/* the whole listener + MSH-3 + MSH-4 + MSH-10 (+ TLS client),
		 * hashed; the content without MSH-7 tells a resend from a
		 * control id reused for another message */
		hq_dedup_fill(&dedup, (hq_str){lc->name, strlen(lc->name)}, p->msh.sending_app,
			      p->msh.sending_fac, p->msh.control_id, (hq_str){subj, strlen(subj)},
			      (hq_str){f->data, f->len}, p->msh.datetime);
		dk = &dedup;
		if (hq_batch_find_dup(b, dk, since, &orig, &same) == 0) {
			if (same) {
				if (lc->duplicates == HQ_DUP_REJECT)
					refuse(p, HQ_ACK_REJECT, HQ_0357_DUPLICATE_KEY,
					       "Duplicate message (same sender, control id and content)",
					       "MSH^1^10");
				fill_record(&rec, f, p, lc->name);
				rec.state = HQ_MSG_DUPLICATE;
				rec.dup_of = orig;
				dk = NULL;
				goto add;
			}
			/* Stored and delivered as the new message it is; the
			 * index then points at it. */
			p->reused_of = orig;
		}
	}
	fill_record(&rec, f, p, lc->name);
	rec.state = p->kind == HQ_ACK_ACCEPT ? HQ_MSG_ACCEPTED : HQ_MSG_REJECTED;
	if (rec.state == HQ_MSG_REJECTED)
		bound_refused(&rec, f, rsize, sizeof rsize, rsha);
	if (rec.state == HQ_MSG_ACCEPTED) {
		/* Fan-out: the delivery records go in the same transaction. */
		for (int t = 0; t < in->cfg->ntargets; t++)
			if (hq_target_routes(&in->cfg->targets[t], lc->name, p->msh.type_field.p,
					     p->msh.type_field.n))
				routes[nroutes++] = t;
		if (nroutes == 0) {
			rec.state = HQ_MSG_UNROUTED;
			in->stats.unrouted++;
		}
	}
add:
	/* The ACK actually sent: "" (none) when MSH-15 keeps it back.  A
	 * failed commit changes the code, but then nothing is stored. */
	if (ack_goes_out(lc, p))
		memcpy(rec.ack, hq_ack_code(&p->msh, p->kind), 2);
	if (hq_batch_add(b, &rec, dk, &p->id) == 0)
		p->stored = 1;
	if (p->stored)
		for (int r = 0; r < nroutes; r++)
			hq_batch_add_delivery(b, p->id, in->cfg->targets[routes[r]].name, f->received_us);
}

/*
 * Commits batch b of n frames (rc: its state so far; b NULL when it never
 * began) and wakes the delivery workers when it held.  Counts and logs;
 * a storage failure that cannot be trusted stops the daemon (fatal).
 * Returns the commit's result: 0, or the error every frame is answered with.
 */
static int
commit_batch(hq_intake *in, hq_batch *b, int rc, size_t n)
{
	if (b != NULL) {
		uint64_t t0 = hq_mono_us();
		rc = hq_batch_commit(b);
		uint64_t dt = hq_mono_us() - t0;
		in->stats.commit_us_total += dt;
		if (dt > in->stats.commit_us_max)
			in->stats.commit_us_max = dt;
		if (rc == 0)
			hq_delivery_wake(in->delivery);
		hq_hist_observe_items(&hq_m.commit_batch, n);
		hq_hist_observe_us(&hq_m.commit_latency, dt);
	}
	__atomic_store_n(&hq_m.journal_writable, rc == 0, __ATOMIC_RELAXED);

	in->stats.batches++;
	in->stats.messages += n;
	if (n > in->stats.largest_batch)
		in->stats.largest_batch = n;
	if (rc != 0) {
		in->stats.commit_failures++;
		hq_count(&hq_m.commits_failed, 1);
		hq_log(HQ_LOG_ERR, "journal commit of %zu frames failed: %s; answering all negatively",
		       n, hq_strerror(rc));
		if (rc == EIO && hq_journal_disk_full(in->journal)) {
			/* LMDB reports a short write as EIO: here the disk is full,
			 * nothing committed, and intake resumes once space is freed. */
			hq_log(HQ_LOG_ERR, "the journal's filesystem is full: answering negatively until space is freed");
		} else if (rc == MDB_PANIC || rc == EIO) {
			hq_log(HQ_LOG_ERR, "storage can no longer be trusted (%s); stopping", hq_strerror(rc));
			in->fatal = 1;
			if (in->server)
				hq_server_abort(in->server);
		}
	}
	return rc;
}

/*
 * After the commit (rc its result): frame f's answer.  A failed commit
 * turns every plan into a negative ACK; counts, logs the frame, and
 * builds the ACK into f->ack unless MSH-15 keeps it back (now: MSH-7).
 */
static void
answer_frame(hq_intake *in, hq_frame *f, plan *p, int rc, const char *now)
{
	const char *lname = f->lc->name;
	if (rc != 0) {
		refuse(p, HQ_ACK_REJECT, HQ_0357_INTERNAL,
		       rc == HQ_EFULL ? "Journal full; message not stored" : "Journal commit failed; message not stored",
		       "");
		p->id = 0;
	}
	if (p->kind == HQ_ACK_ACCEPT)
		in->stats.accepted++;
	else
		in->stats.refused++;
	log_frame(in, f, p, lname, hq_ack_code(&p->msh, p->kind));
	if (rc == 0 && p->reused_of) {
		const hq_msh *m = &p->msh;
		hq_count(&f->m->control_id_reused, 1);
		hq_log_limited(&in->rl_reused, REFUSED_LOG_BURST, REFUSED_LOG_MS,
			       "reused control id lines", HQ_LOG_NOTICE,
			       "listener %s: control id reused with other content: id=%llu ctrl=%.*s type=%.*s peer=%s (earlier id=%llu); stored as a new message",
			       lname, (unsigned long long)p->id,
			       (int)(m->control_id.n > 64 ? 64 : m->control_id.n), m->control_id.p,
			       (int)(m->type_field.n > 40 ? 40 : m->type_field.n), m->type_field.p,
			       f->peer, (unsigned long long)p->reused_of);
	}
	int wanted = ack_goes_out(f->lc, p);
	hq_count(&f->m->acked[wanted ? hq_metrics_ack_index(hq_ack_code(&p->msh, p->kind)) : HQ_ACK_NONE], 1);
	hq_metrics_answered(f->m, f->received_us, p->kind == HQ_ACK_ACCEPT); /* ACK latency, last message */
	if (!wanted)
		return;
	/* The echoed fields come from the frame, so this always fits. */
	size_t cap = ACK_CAP + f->len;
	char *ack = malloc(cap); /* input-sized: checked, no ACK (the sender resends) */
	if (ack == NULL)
		return;
	int len = hq_ack_build(&p->msh, p->kind, p->err_code, p->err_text, p->err_loc, now, p->ack_id, ack, cap);
	f->ack = ack;
	f->ack_len = len > 0 ? (size_t)len : 0;
}

void
hq_intake_batch(void *arg, hq_frame **frames, size_t n)
{
	hq_intake *in = arg;
	plan *plans = hq_xcalloc(n, sizeof *plans); /* a plan per frame of one turn: small */
	hq_batch *b = NULL;
	int rc;

	/* the targets one message goes to (reused for every frame) */
	int *routes = hq_xcalloc((size_t)(in->cfg->ntargets ? in->cfg->ntargets : 1), sizeof *routes);

	if (hq_journal_full(in->journal, hq_now_ms(), 1000))
		rc = HQ_EFULL;
	else
		rc = hq_batch_begin(in->journal, &b);
	for (size_t i = 0; i < n; i++)
		stage_frame(in, b, rc, frames[i], &plans[i], routes);
	/* Group commit before any reply: every frame of this turn in one
	 * write transaction, committed (fsync) before an ACK is built. */
	rc = commit_batch(in, b, rc, n);

	/* The commit is done (or failed): now, and only now, the ACKs. */
	char now[40];
	format_now(now, sizeof now);
	for (size_t i = 0; i < n; i++)
		answer_frame(in, frames[i], &plans[i], rc, now);
	free(plans);
	free(routes);
}

/*
 * A deferred index run stalls every connection for its length: LMDB has
 * one writer, so the intake commits wait, and each run pays a commit
 * (two fsyncs) of its own whatever its size.  Short runs thus cost more
 * in all (measured: runs of 256 records at 64 connections were 17% more
 * commits, 16% more CPU per message and a worse p99), while a run delays
 * just one message per connection whatever its length.  So under load a
 * run takes INDEX_RUN records (each index page written once per run, and
 * a stall of about 10-20 ms, not the 40-170 ms of a 2 s backlog at
 * 64 connections), more when the backlog runs away (a slow disk: catch
 * up), at most INDEX_MAX.
 */
#define INDEX_RUN 16384
#define INDEX_MAX 65536
#define INDEX_QUIET_MS 100 /* no frames for this long: the loop is quiet */

void
hq_intake_after_turn(void *arg, size_t frames)
{
	hq_intake *in = arg;
	uint64_t backlog = hq_journal_unindexed(in->journal);
	uint64_t now = hq_now_ms();

	hq_log_flush(&in->rl_refused, REFUSED_LOG_MS, "refusals");
	hq_log_flush(&in->rl_reused, REFUSED_LOG_MS, "reused control id lines");
	if (frames)
		in->frames_at_ms = now;
	if (backlog == 0)
		return;
	/* Index once the backlog fills a run, when the loop is quiet, and at
	 * least every 2 s: a quiet connection gets one index commit per 2 s,
	 * not one per message.  Lookups, time queries and retention scan the
	 * backlog meanwhile, so answers stay complete. */
	int quiet = frames == 0 && now - in->frames_at_ms >= INDEX_QUIET_MS;
	if (!quiet && backlog < INDEX_RUN && now - in->indexed_at_ms < 2000)
		return;
	size_t slice = backlog > 4 * INDEX_RUN ? (size_t)(backlog / 4) : INDEX_RUN;
	if (slice > INDEX_MAX)
		slice = INDEX_MAX;
	in->indexed_at_ms = now;
	uint64_t t0 = hq_mono_us();
	long rc = hq_journal_index(in->journal, slice);
	uint64_t dt = hq_mono_us() - t0;
	in->stats.index_runs++;
	in->stats.index_us_total += dt;
	if (dt > in->stats.index_us_max)
		in->stats.index_us_max = dt;
	if (rc < 0)
		hq_log(HQ_LOG_WARNING, "deferred indexing failed: %s (lookups still scan the tail)",
		       hq_strerror((int)rc));
}
