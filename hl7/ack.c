/*
 * ack.c - HL7 ACK builder (see ack.h).  Follows what HAPI's
 * Message.generateACK() and python-hl7's create_ack() produce.
 *
 * The ACK is written in the sender's delimiters, so text of ours inside it
 * (ERR texts, MSH-7's "20260101120000.000+0000") is escaped with the
 * sender's escape character wherever it holds one of them: a sender whose
 * component separator is '.' must not read MSH-7 as two components.
 */
#include <stdio.h>
#include <string.h>

#include "ack.h"

int
hq_ack_enhanced(const hq_msh *m)
{
	return m->have_delims && (m->accept_ack.n > 0 || m->app_ack.n > 0);
}

int
hq_ack_wanted(const hq_msh *m, hq_ack_kind kind)
{
	if (!hq_ack_enhanced(m) || kind != HQ_ACK_ACCEPT)
		return 1; /* a refusal is always answered: never silence */
	if (hq_str_eq(m->accept_ack, "NE"))
		return 0;
	if (hq_str_eq(m->accept_ack, "ER"))
		return kind != HQ_ACK_ACCEPT;
	if (hq_str_eq(m->accept_ack, "SU"))
		return kind == HQ_ACK_ACCEPT;
	return 1;
}

const char *
hq_ack_code(const hq_msh *m, hq_ack_kind kind)
{
	static const char *codes[2][3] = {{"AA", "AE", "AR"}, {"CA", "CE", "CR"}};
	return codes[hq_ack_enhanced(m) ? 1 : 0][kind];
}

typedef struct out_buf {
	char *p;
	size_t n, cap;
	int overflow;
} out_buf;

static void
put(out_buf *o, const char *s, size_t n)
{
	if (n == 0)
		return;
	if (o->overflow || o->n + n > o->cap) {
		o->overflow = 1;
		return;
	}
	memcpy(o->p + o->n, s, n);
	o->n += n;
}

static void
puts_(out_buf *o, const char *s)
{
	put(o, s, strlen(s));
}

static void
putc_(out_buf *o, char c)
{
	put(o, &c, 1);
}

static void
putstr(out_buf *o, hq_str s)
{
	put(o, s.p, s.n);
}

/* The delimiters an ACK is written in (the sender's, else the defaults). */
typedef struct delims {
	char fs, cs, rs, es, ss, ts;
} delims;

/*
 * Appends s escaped for d: each delimiter as ESC F/S/R/E/T/P ESC (the
 * truncation character is \P\ since v2.7), control bytes as ESC Xhh ESC.
 */
static void
puts_escaped(out_buf *o, const delims *d, const char *s)
{
	for (; s && *s; s++) {
		char c = *s, code = 0;
		if (c == d->fs)
			code = 'F';
		else if (c == d->cs)
			code = 'S';
		else if (c == d->rs)
			code = 'R';
		else if (c == d->es)
			code = 'E';
		else if (d->ss && c == d->ss)
			code = 'T';
		else if (d->ts && c == d->ts)
			code = 'P';
		if (code) {
			char e[3] = {d->es, code, d->es};
			put(o, e, 3);
		} else if ((unsigned char)c < 0x20 || c == 0x7f) {
			char e[6];
			snprintf(e, sizeof e, "%cX%02X%c", d->es, (unsigned)(unsigned char)c, d->es);
			put(o, e, 5);
		} else {
			putc_(o, c);
		}
	}
}

int
hq_ack_build(const hq_msh *m, hq_ack_kind kind, int err_code, const char *err_text,
	     const char *err_loc, const char *now, const char *ack_id, char *out, size_t cap)
{
	out_buf o = {out, 0, cap, 0};
	int have = m->have_delims;
	char fs = have ? m->fs : '|', cs = have ? m->cs : '^';
	char rs = have ? m->rs : '~', es = have ? m->es : '\\';
	char ss = have ? m->ss : '&', ts = have ? m->ts : 0;
	int v = have ? hq_version_num(m->version_id) : -1;
	int modern = v < 0 || v >= 205;
	hq_str none = {"", 0};
	const delims d = {fs, cs, rs, es, ss, ts};

	/* MSH-1, MSH-2 */
	puts_(&o, "MSH");
	putc_(&o, fs);
	putc_(&o, cs);
	putc_(&o, rs);
	putc_(&o, es);
	if (ss)
		putc_(&o, ss);
	if (ss && ts)
		putc_(&o, ts);
	/* MSH-3..6 swapped */
	putc_(&o, fs);
	putstr(&o, have ? m->receiving_app : none);
	putc_(&o, fs);
	putstr(&o, have ? m->receiving_fac : none);
	putc_(&o, fs);
	putstr(&o, have ? m->sending_app : none);
	putc_(&o, fs);
	putstr(&o, have ? m->sending_fac : none);
	/* MSH-7, MSH-8 */
	putc_(&o, fs);
	puts_escaped(&o, &d, now);
	putc_(&o, fs);
	/* MSH-9 */
	putc_(&o, fs);
	puts_(&o, "ACK");
	if (have && m->trigger.n > 0) {
		putc_(&o, cs);
		putstr(&o, m->trigger);
		if (v >= 205) {
			putc_(&o, cs);
			puts_(&o, "ACK");
		}
	}
	/* MSH-10, 11, 12 */
	putc_(&o, fs);
	puts_(&o, ack_id);
	putc_(&o, fs);
	if (have && m->processing_id.n > 0)
		putstr(&o, m->processing_id);
	else
		putc_(&o, 'P');
	putc_(&o, fs);
	if (have && m->version.n > 0)
		putstr(&o, m->version);
	else
		puts_(&o, "2.5");
	putc_(&o, '\r');

	/* MSA */
	puts_(&o, "MSA");
	putc_(&o, fs);
	puts_(&o, hq_ack_code(m, kind));
	putc_(&o, fs);
	putstr(&o, have ? m->control_id : none);
	if (kind != HQ_ACK_ACCEPT && !modern && err_text) {
		putc_(&o, fs);
		puts_escaped(&o, &d, err_text);
	}
	putc_(&o, '\r');

	if (kind != HQ_ACK_ACCEPT && err_code > 0) {
		char code[16];
		snprintf(code, sizeof code, "%d", err_code);
		puts_(&o, "ERR");
		putc_(&o, fs);
		if (modern) {
			/* ERR-2 location, ERR-3 code^text^HL70357, ERR-4 severity */
			putc_(&o, fs);
			if (err_loc && *err_loc) {
				for (const char *p = err_loc; *p; p++)
					putc_(&o, *p == '^' ? cs : *p);
			}
			putc_(&o, fs);
			puts_(&o, code);
			putc_(&o, cs);
			puts_escaped(&o, &d, err_text);
			putc_(&o, cs);
			puts_(&o, "HL70357");
			putc_(&o, fs);
			putc_(&o, 'E');
		} else {
			/* ERR-1 ELD: segment^sequence^field^code&text&HL70357 */
			const char *loc = err_loc && *err_loc ? err_loc : "^^";
			for (const char *p = loc; *p; p++)
				putc_(&o, *p == '^' ? cs : *p);
			putc_(&o, cs);
			puts_(&o, code);
			if (ss) {
				putc_(&o, ss);
				puts_escaped(&o, &d, err_text);
				putc_(&o, ss);
				puts_(&o, "HL70357");
			}
		}
		putc_(&o, '\r');
	}
	return o.overflow ? -1 : (int)o.n;
}
