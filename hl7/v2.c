/*
 * v2.c - segment, field and component access, escape decoding (see v2.h).
 *
 * Splitting is linear and allocates once; access is a scan over the
 * segment, so a converter that reads each field a few times stays linear
 * in the message for messages of usual size.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "msg.h"
#include "v2.h"

/*
 * Where the fields of the segment read last start: a converter reads many
 * fields of one segment, and finding field n from the start each time made
 * the splitting quadratic.  Only the first HQ_V2_NF fields are indexed.
 */
#define HQ_V2_NF 64
struct hq_v2_index {
	const char *p; /* the segment, p[0..n) */
	size_t n;
	int nf;	  /* starts known */
	int more; /* the segment has more fields than were indexed */
	const char *start[HQ_V2_NF + 1];
};

static void
index_segment(struct hq_v2_index *x, hq_str s, char fs)
{
	const char *p = s.p, *end = s.p + s.n;
	int k = 0;
	x->p = s.p;
	x->n = s.n;
	x->start[k++] = p;
	while (k < HQ_V2_NF + 1) {
		const char *q = memchr(p, fs, (size_t)(end - p));
		if (q == NULL)
			break;
		p = q + 1;
		x->start[k++] = p;
	}
	x->nf = k;
	x->more = k == HQ_V2_NF + 1;
}

/* hq_str_piece(s, m->fs, n), through the index. */
static hq_str
field_piece(const hq_v2 *m, hq_str s, int n)
{
	struct hq_v2_index *x = m->index;
	if (x == NULL)
		return hq_str_piece(s, m->fs, n);
	if (x->p != s.p || x->n != s.n)
		index_segment(x, s, m->fs);
	const char *end = s.p + s.n;
	if (n + 1 < x->nf)
		return (hq_str){x->start[n], (size_t)(x->start[n + 1] - 1 - x->start[n])};
	if (x->more)
		return hq_str_piece(s, m->fs, n);
	if (n + 1 == x->nf)
		return (hq_str){x->start[n], (size_t)(end - x->start[n])};
	return (hq_str){end, 0};
}

int
hq_v2_valued(hq_str s)
{
	return !hq_str_blank(s);
}

/* No byte of s[0..n) has its high bit set (ASCII, so UTF-8). */
static int
plain_ascii(const char *s, size_t n)
{
	uint64_t acc = 0;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t v;
		memcpy(&v, s + i, 8);
		acc |= v;
	}
	for (; i < n; i++)
		acc |= (unsigned char)s[i];
	return (acc & 0x8080808080808080ULL) == 0;
}

int
hq_v2_open(hq_v2 *m, const char *buf, size_t len)
{
	size_t cap = 16;
	memset(m, 0, sizeof *m);
	m->seg = malloc(cap * sizeof *m->seg);
	if (m->seg == NULL)
		return ENOMEM;
	size_t i = 0;
	while (i < len) {
		size_t s = i;
		while (i < len && buf[i] != '\r' && buf[i] != '\n')
			i++;
		hq_str seg = {buf + s, i - s};
		while (i < len && (buf[i] == '\r' || buf[i] == '\n'))
			i++;
		if (!hq_v2_valued(seg))
			continue;
		if ((size_t)m->nseg == cap) {
			hq_str *n = realloc(m->seg, 2 * cap * sizeof *n);
			if (n == NULL) {
				hq_v2_close(m);
				return ENOMEM;
			}
			m->seg = n;
			cap *= 2;
		}
		m->seg[m->nseg++] = seg;
	}
	if (m->nseg == 0 || m->seg[0].n < 8 || memcmp(m->seg[0].p, "MSH", 3) != 0) {
		hq_v2_close(m);
		return HQ_EPARSE;
	}
	const char *h = m->seg[0].p;
	m->fs = h[3];
	m->cs = h[4];
	m->rs = h[5];
	m->es = h[6];
	m->ss = h[7] != m->fs ? h[7] : 0;
	if (m->cs == m->fs || m->rs == m->fs || m->es == m->fs) {
		hq_v2_close(m);
		return HQ_EPARSE;
	}
	m->latin1 = !plain_ascii(buf, len) && !hq_utf8_valid(buf, len);
	m->index = hq_xmalloc(sizeof *m->index);
	m->index->p = NULL;
	return 0;
}

void
hq_v2_close(hq_v2 *m)
{
	free(m->seg);
	free(m->index);
	m->index = NULL;
	m->seg = NULL;
	m->nseg = 0;
}

int
hq_v2_is(hq_str s, const char *id)
{
	return s.n >= 3 && memcmp(s.p, id, 3) == 0 && (s.n == 3 || !(s.p[3] >= 'A' && s.p[3] <= 'Z'));
}

hq_str
hq_v2_field(const hq_v2 *m, hq_str s, int n)
{
	if (n < 1)
		return (hq_str){s.p, 0};
	if (hq_v2_is(s, "MSH")) {
		if (n == 1)
			return (hq_str){s.p + 3, 1};
		return field_piece(m, s, n - 1);
	}
	return field_piece(m, s, n);
}

hq_str
hq_v2_rep(const hq_v2 *m, hq_str f, int r)
{
	return hq_str_piece(f, m->rs, r - 1);
}

hq_str
hq_v2_comp(const hq_v2 *m, hq_str rep, int c)
{
	return hq_str_piece(rep, m->cs, c - 1);
}

hq_str
hq_v2_sub(const hq_v2 *m, hq_str comp, int k)
{
	return hq_str_piece(comp, m->ss, k - 1);
}

int
hq_v2_nreps(const hq_v2 *m, hq_str f)
{
	if (!hq_v2_valued(f))
		return 0;
	int n = 1;
	for (size_t i = 0; i < f.n; i++)
		n += f.p[i] == m->rs;
	return n;
}

typedef struct out {
	char *p;
	size_t n, cap;
} out;

/* Appends byte c, as UTF-8 from ISO 8859-1 when latin1; never splits a character at the cap. */
static void
put(out *o, unsigned char c, int latin1)
{
	if (c < 0x20 && c != '\t' && c != '\n')
		return;
	if (c == 0x7f)
		return;
	if (latin1 && c >= 0x80) {
		if (o->n + 2 >= o->cap)
			return;
		o->p[o->n++] = (char)(0xc0 | c >> 6);
		o->p[o->n++] = (char)(0x80 | (c & 0x3f));
		return;
	}
	if (o->n + 1 >= o->cap)
		return;
	o->p[o->n++] = (char)c;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* One escape sequence body s[0..n) (between the escape characters). */
static void
escape(const hq_v2 *m, const char *s, size_t n, out *o)
{
	if (n == 1) {
		char c = 0;
		switch (s[0]) {
		case 'F': c = m->fs; break;
		case 'S': c = m->cs; break;
		case 'T': c = m->ss; break;
		case 'R': c = m->rs; break;
		case 'E': c = m->es; break;
		}
		if (c)
			put(o, (unsigned char)c, 0);
		return; /* \H\ \N\ (highlighting) and unknown ones: dropped */
	}
	if (s[0] == 'X') {
		for (size_t i = 1; i + 1 < n; i += 2) {
			int a = hexval(s[i]), b = hexval(s[i + 1]);
			if (a < 0 || b < 0)
				return;
			put(o, (unsigned char)(a << 4 | b), m->latin1);
		}
		return;
	}
	if ((n == 3 && memcmp(s, ".br", 3) == 0) || (n >= 3 && memcmp(s, ".sp", 3) == 0))
		put(o, '\n', 0);
	/* .in .ti .sk .ce .fi .nf, \Cxxyy\, \Mxxyyzz\, \Zxx\: formatting, dropped */
}

/* No byte of s[0..n) is a control, 0x7f, non-ASCII or esc: text as it is.
 * Eight bytes at a time (the "has a zero byte" bit tricks). */
static int
plain_text(const char *s, size_t n, char esc)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	const uint64_t e = ones * (unsigned char)esc, del = ones * 0x7f;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t v, a, b;
		memcpy(&v, s + i, 8);
		a = v ^ e;
		b = v ^ del;
		if ((v & highs) | ((v - ones * 0x20) & ~v & highs) | ((a - ones) & ~a & highs) |
		    ((b - ones) & ~b & highs))
			return 0;
	}
	for (; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c >= 0x7f || c == (unsigned char)esc)
			return 0;
	}
	return 1;
}

size_t
hq_v2_decode(const hq_v2 *m, hq_str raw, char *buf, size_t cap)
{
	out o = {buf, 0, cap};
	if (cap == 0)
		return 0;
	if (plain_text(raw.p, raw.n, m->es)) {
		/* the usual field: copied (up to the cap, as below), blanks trimmed */
		size_t n = raw.n < cap - 1 ? raw.n : cap - 1, s = 0;
		while (s < n && raw.p[s] == ' ')
			s++;
		while (n > s && raw.p[n - 1] == ' ')
			n--;
		memmove(buf, raw.p + s, n - s);
		buf[n - s] = 0;
		return n - s;
	}
	size_t i = 0;
	while (i < raw.n) {
		char c = raw.p[i];
		if (c == m->es) {
			const char *q = memchr(raw.p + i + 1, m->es, raw.n - i - 1);
			if (q != NULL && q > raw.p + i + 1) {
				escape(m, raw.p + i + 1, (size_t)(q - raw.p - i - 1), &o);
				i = (size_t)(q - raw.p) + 1;
				continue;
			}
		}
		put(&o, (unsigned char)c, m->latin1);
		i++;
	}
	/* trim blanks; never end inside a multi-byte character */
	size_t s = 0;
	while (s < o.n && (o.p[s] == ' ' || o.p[s] == '\t' || o.p[s] == '\n'))
		s++;
	size_t e = o.n;
	while (e > s && (o.p[e - 1] == ' ' || o.p[e - 1] == '\t' || o.p[e - 1] == '\n'))
		e--;
	while (e > s && ((unsigned char)o.p[e - 1] & 0xc0) == 0x80) {
		size_t k = e - 1;
		while (k > s && ((unsigned char)o.p[k] & 0xc0) == 0x80)
			k--;
		unsigned char lead = (unsigned char)o.p[k];
		size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
		if (e - k >= need)
			break;
		e = k;
	}
	/* Unicode spaces (U+00A0, U+2000..U+200A, U+2028/9, U+3000) become plain
	 * ones: FHIR strings allow no other whitespace than space, tab and newline */
	for (size_t k = s; k + 1 < e; k++) {
		unsigned char *u = (unsigned char *)o.p + k;
		if (u[0] == 0xc2 && u[1] == 0xa0) {
			u[0] = ' ';
			memmove(u + 1, u + 2, e - k - 2);
			e--;
		} else if (k + 2 < e &&
			   ((u[0] == 0xe2 && u[1] == 0x80 && (u[2] <= 0x8a || u[2] == 0xa8 || u[2] == 0xa9)) ||
			    (u[0] == 0xe3 && u[1] == 0x80 && u[2] == 0x80))) {
			u[0] = ' ';
			memmove(u + 1, u + 3, e - k - 3);
			e -= 2;
		}
	}
	while (e > s && (o.p[e - 1] == ' '))
		e--;
	while (s < e && o.p[s] == ' ')
		s++;
	memmove(buf, buf + s, e - s);
	buf[e - s] = 0;
	return e - s;
}
