/*
 * json.c - HL7 v2 <-> JSON, lossless (see json.h).
 */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "json.h"

typedef struct delims {
	char fs, cs, rs, es, ss, ts;
	int nenc; /* encoding characters in MSH-2 */
} delims;

static void
putc_(hq_buf *b, char c)
{
	hq_buf_put(b, &c, 1);
}

/* Text -> HL7: delimiters escaped. */
static void
escape_into(hq_buf *b, const char *s, size_t n, const delims *d)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i], e = 0;
		if (c == d->fs)
			e = 'F';
		else if (c == d->cs)
			e = 'S';
		else if (d->ss && c == d->ss)
			e = 'T';
		else if (c == d->rs)
			e = 'R';
		else if (c == d->es)
			e = 'E';
		else if (d->ts && c == d->ts)
			e = 'P';
		if (e) {
			putc_(b, d->es);
			putc_(b, e);
			putc_(b, d->es);
		} else {
			putc_(b, c);
		}
	}
}

/* HL7 -> text, decoding only the delimiter escapes; returns -1 on any other escape. */
static int
unescape_into(hq_buf *b, const char *s, size_t n, const delims *d)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] != d->es) {
			putc_(b, s[i]);
			continue;
		}
		if (i + 2 >= n || s[i + 2] != d->es)
			return -1;
		switch (s[i + 1]) {
		case 'F': putc_(b, d->fs); break;
		case 'S': putc_(b, d->cs); break;
		case 'T':
			if (!d->ss)
				return -1;
			putc_(b, d->ss);
			break;
		case 'R': putc_(b, d->rs); break;
		case 'E': putc_(b, d->es); break;
		case 'P':
			if (!d->ts)
				return -1;
			putc_(b, d->ts);
			break;
		default: return -1;
		}
		i += 2;
	}
	return 0;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *
hq_base64(const char *s, size_t n, size_t *len)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1);
	size_t o = 0;
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)(unsigned char)s[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)(unsigned char)s[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)s[i + 2];
		out[o++] = b64[v >> 18 & 63];
		out[o++] = b64[v >> 12 & 63];
		out[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? b64[v & 63] : '=';
	}
	out[o] = 0;
	*len = o;
	return out;
}

static json_t *
base64_leaf(const char *s, size_t n)
{
	size_t len;
	char *enc = hq_base64(s, n, &len);
	json_t *j = enc ? json_pack("{s:s#}", "base64", enc, (int)len) : NULL;
	free(enc);
	return j;
}

static int
unbase64(const char *s, hq_buf *out)
{
	unsigned v = 0;
	int bits = 0;
	for (; *s && *s != '='; s++) {
		const char *p = strchr(b64, *s);
		if (p == NULL)
			return -1;
		v = v << 6 | (unsigned)(p - b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			putc_(out, (char)(v >> bits & 0xff));
		}
	}
	return 0;
}

/* One leaf: decoded text when that is exact, else raw, else base64. */
static json_t *
leaf(const char *s, size_t n, const delims *d)
{
	hq_buf t = {0}, back = {0};
	json_t *j = NULL;
	if (unescape_into(&t, s, n, d) == 0 && !t.oom) {
		escape_into(&back, t.p ? t.p : "", t.n, d);
		if (!back.oom && back.n == n && (n == 0 || memcmp(back.p, s, n) == 0))
			j = json_stringn(t.p ? t.p : "", t.n);
	}
	if (j == NULL)
		j = json_pack("{s:s%}", "raw", s, n);
	if (j == NULL)
		j = base64_leaf(s, n);
	free(t.p);
	free(back.p);
	return j;
}

/* Non-zero when s holds one of the separators below a field at depth. */
static int
has_below(const char *s, size_t n, int depth, const delims *d)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if ((depth <= 0 && c == d->rs) || (depth <= 1 && c == d->cs) || (d->ss && c == d->ss))
			return 1;
	}
	return 0;
}

/*
 * depth 0: a field (repetitions), 1: a repetition (components), 2: a
 * component (subcomponents).  A piece with no separator below it is a
 * leaf; any other is an array of the next level down, even of one element,
 * so that the depth of every array is known.
 */
static json_t *
level(const char *s, size_t n, int depth, const delims *d)
{
	if (depth > 2 || !has_below(s, n, depth, d))
		return leaf(s, n, d);
	char sep = depth == 0 ? d->rs : depth == 1 ? d->cs : d->ss;
	json_t *arr = json_array();
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == sep) {
			json_array_append_new(arr, level(s + start, i - start, depth + 1, d));
			start = i + 1;
		}
	}
	return arr;
}

static json_t *
field(const char *s, size_t n, const delims *d)
{
	return level(s, n, 0, d);
}

static int
is_header(const char *s, size_t n)
{
	return n >= 3 && (memcmp(s, "MSH", 3) == 0 || memcmp(s, "FHS", 3) == 0 || memcmp(s, "BHS", 3) == 0);
}

static json_t *
segment(const char *s, size_t n, const char *end, size_t endn, const delims *d)
{
	json_t *seg = json_object(), *fields = json_array();
	size_t i = 0;
	while (i < n && s[i] != d->fs)
		i++;
	json_object_set_new(seg, "name", leaf(s, i, d));
	if (i < n) {
		size_t pos = i + 1;
		if (i == 3 && is_header(s, i)) {
			/* MSH-1 is the separator itself and MSH-2 the encoding
			 * characters: kept apart, as they are. */
			size_t e = pos;
			while (e < n && s[e] != d->fs)
				e++;
			json_object_set_new(seg, "encoding", json_stringn(s + pos, e - pos));
			pos = e + 1;
			if (e >= n)
				goto done;
		}
		size_t start = pos;
		for (size_t k = pos; k <= n; k++) {
			if (k == n || s[k] == d->fs) {
				json_array_append_new(fields, field(s + start, k - start, d));
				start = k + 1;
			}
		}
	}
done:
	json_object_set_new(seg, "fields", fields);
	if (endn != 1 || end[0] != '\r')
		json_object_set_new(seg, "end", json_stringn(end, endn));
	return seg;
}

json_t *
hq_hl7_to_json(const char *m, size_t len)
{
	delims d = {0};
	/* the header's delimiters: first segment starting MSH/FHS/BHS */
	size_t h = 0;
	while (h < len && (m[h] == '\r' || m[h] == '\n'))
		h++;
	if (len - h < 8 || !is_header(m + h, 3))
		return NULL;
	d.fs = m[h + 3];
	const char *enc = m + h + 4;
	size_t k = 0;
	while (h + 4 + k < len && enc[k] != d.fs && enc[k] != '\r' && enc[k] != '\n')
		k++;
	if (k < 3 || k > 5)
		return NULL;
	d.cs = enc[0];
	d.rs = enc[1];
	d.es = enc[2];
	d.ss = k > 3 ? enc[3] : 0;
	d.ts = k > 4 ? enc[4] : 0;
	d.nenc = (int)k;

	json_t *root = json_object(), *segs = json_array();
	char sep[6] = {d.fs, d.cs, d.rs, d.es, d.ss, d.ts};
	json_object_set_new(root, "separators", json_stringn(sep, 1 + k));
	size_t i = 0;
	while (i < len) {
		size_t s = i;
		while (i < len && m[i] != '\r' && m[i] != '\n')
			i++;
		size_t e = i;
		if (i < len && m[i] == '\r' && i + 1 < len && m[i + 1] == '\n')
			i += 2;
		else if (i < len)
			i++;
		json_array_append_new(segs, segment(m + s, e - s, m + e, i - e, &d));
	}
	json_object_set_new(root, "segments", segs);
	/* Lossless or nothing: check the way back (cheap beside a POST). */
	char *back;
	size_t blen;
	if (hq_json_to_hl7(root, &back, &blen) != 0) {
		json_decref(root);
		return NULL;
	}
	if (blen != len || memcmp(back, m, len) != 0) {
		free(back);
		json_decref(root);
		return NULL;
	}
	free(back);
	return root;
}

/* --- back to HL7 ---------------------------------------------------- */

static int emit_level(hq_buf *b, const json_t *j, int depth, const delims *d);

static int
emit_leaf(hq_buf *b, const json_t *j, const delims *d)
{
	if (json_is_string(j)) {
		escape_into(b, json_string_value(j), json_string_length(j), d);
		return 0;
	}
	const json_t *raw = json_object_get(j, "raw"), *b64v = json_object_get(j, "base64");
	if (json_is_string(raw)) {
		hq_buf_put(b, json_string_value(raw), json_string_length(raw));
		return 0;
	}
	if (json_is_string(b64v))
		return unbase64(json_string_value(b64v), b);
	return -1;
}

/* depth 0: field (reps), 1: repetition (components), 2: component (subs) */
static int
emit_level(hq_buf *b, const json_t *j, int depth, const delims *d)
{
	if (!json_is_array(j))
		return emit_leaf(b, j, d);
	if (depth > 2)
		return -1;
	char sep = depth == 0 ? d->rs : depth == 1 ? d->cs : d->ss;
	size_t i;
	json_t *v;
	json_array_foreach(j, i, v)
	{
		if (i)
			putc_(b, sep);
		if (emit_level(b, v, depth + 1, d) != 0)
			return -1;
	}
	return 0;
}

int
hq_json_to_hl7(const json_t *root, char **out, size_t *len)
{
	const json_t *sepj = json_object_get(root, "separators");
	const json_t *segs = json_object_get(root, "segments");
	if (!json_is_string(sepj) || !json_is_array(segs) || json_string_length(sepj) < 4 ||
	    json_string_length(sepj) > 6)
		return -1;
	const char *sp = json_string_value(sepj);
	size_t sl = json_string_length(sepj);
	delims d = {sp[0],	sp[1], sp[2], sp[3], sl > 4 ? sp[4] : 0, sl > 5 ? sp[5] : 0,
		    (int)sl - 1};
	hq_buf b = {0};
	size_t i;
	json_t *seg;
	json_array_foreach(segs, i, seg)
	{
		const json_t *name = json_object_get(seg, "name");
		const json_t *fields = json_object_get(seg, "fields");
		const json_t *end = json_object_get(seg, "end");
		if (name == NULL || !json_is_array(fields) || emit_leaf(&b, name, &d) != 0)
			goto bad;
		const json_t *enc = json_object_get(seg, "encoding");
		if (enc) {
			if (!json_is_string(enc))
				goto bad;
			putc_(&b, d.fs);
			hq_buf_put(&b, json_string_value(enc), json_string_length(enc));
		}
		size_t k;
		json_t *f;
		json_array_foreach(fields, k, f)
		{
			putc_(&b, d.fs);
			if (emit_level(&b, f, 0, &d) != 0)
				goto bad;
		}
		if (end == NULL)
			putc_(&b, '\r');
		else if (json_is_string(end))
			hq_buf_put(&b, json_string_value(end), json_string_length(end));
		else
			goto bad;
	}
	if (b.oom)
		goto bad;
	*out = b.p ? b.p : calloc(1, 1);
	*len = b.n;
	return 0;
bad:
	free(b.p);
	return -1;
}
