/*
 * msg.c - HL7 v2 header parser (see msg.h).
 *
 * Segments may end with CR, LF or CRLF.  The first non-blank segment must
 * be MSH (or FHS/BHS, a batch kept whole).  Every segment id is checked
 * (three characters, a capital letter then capitals or digits) so that
 * binary junk is refused instead of journaled as a message.  PID-3 is
 * taken from the first PID segment.
 */
#include <ctype.h>
#include <string.h>

#include "core/error.h"
#include "msg.h"

int
hq_str_eq(hq_str s, const char *lit)
{
	size_t n = strlen(lit);
	return s.n == n && memcmp(s.p, lit, n) == 0;
}

int
hq_version_num(hq_str v)
{
	size_t i = 0;
	int major = 0, minor = 0, digits = 0;

	while (i < v.n && isdigit((unsigned char)v.p[i]) && digits < 3) {
		major = major * 10 + (v.p[i++] - '0');
		digits++;
	}
	if (digits == 0 || i >= v.n || v.p[i] != '.')
		return -1;
	i++;
	digits = 0;
	while (i < v.n && isdigit((unsigned char)v.p[i]) && digits < 3) {
		minor = minor * 10 + (v.p[i++] - '0');
		digits++;
	}
	if (digits == 0)
		return -1;
	return major * 100 + minor;
}

/* The segment starting at *pos, advancing *pos past its terminator(s). */
static hq_str
next_segment(const char *buf, size_t len, size_t *pos)
{
	size_t i = *pos, start = i;
	/* The first CR or LF, by memchr (a loop per byte was second in
	 * hl7qd's profile at 64 connections; issue 16). */
	if (i < len) {
		const char *cr = memchr(buf + i, '\r', len - i);
		size_t upto = cr ? (size_t)(cr - buf) : len;
		const char *lf = memchr(buf + i, '\n', upto - i);
		i = lf ? (size_t)(lf - buf) : upto;
	}
	hq_str seg = {buf + start, i - start};
	if (i < len && buf[i] == '\r' && i + 1 < len && buf[i + 1] == '\n')
		i += 2;
	else if (i < len)
		i++;
	*pos = i;
	return seg;
}

static int
valid_segment_id(hq_str seg, char fs)
{
	if (seg.n < 3)
		return 0;
	if (!isupper((unsigned char)seg.p[0]))
		return 0;
	for (int i = 1; i < 3; i++)
		if (!isupper((unsigned char)seg.p[i]) && !isdigit((unsigned char)seg.p[i]))
			return 0;
	return seg.n == 3 || seg.p[3] == fs;
}

static int
fail(hq_msh *m, int code, const char *text, const char *loc)
{
	m->err_code = code;
	m->err_text = text;
	m->err_loc = loc;
	return HQ_EPARSE;
}

/*
 * Reads the delimiters from a header segment (MSH, FHS or BHS): one field
 * separator, then 3 to 5 distinct encoding characters (component,
 * repetition, escape, subcomponent, v2.7 truncation).
 */
static int
parse_delims(hq_msh *m, hq_str seg)
{
	if (seg.n < 4)
		return 0;
	char fs = seg.p[3];
	if (isalnum((unsigned char)fs) || fs == ' ' || !isprint((unsigned char)fs))
		return 0;
	const char *enc = seg.p + 4;
	const char *end = seg.p + seg.n;
	const char *q = memchr(enc, fs, (size_t)(end - enc));
	size_t n = (size_t)((q ? q : end) - enc);
	if (n < 3 || n > 5)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)enc[i];
		if (isalnum(c) || c == ' ' || !isprint(c) || (char)c == fs)
			return 0;
		for (size_t k = 0; k < i; k++)
			if (enc[k] == enc[i])
				return 0;
	}
	m->fs = fs;
	m->cs = enc[0];
	m->rs = enc[1];
	m->es = enc[2];
	m->ss = n > 3 ? enc[3] : 0;
	m->ts = n > 4 ? enc[4] : 0;
	m->have_delims = 1;
	return 1;
}

/* Header field k, numbered as the standard does (k >= 3; 1 and 2 are the delimiters). */
static hq_str
header_field(const hq_msh *m, hq_str seg, int k)
{
	return hq_str_piece(seg, m->fs, k - 1);
}

static void
take_msh_fields(hq_msh *m, hq_str msh)
{
	m->sending_app = header_field(m, msh, 3);
	m->sending_fac = header_field(m, msh, 4);
	m->receiving_app = header_field(m, msh, 5);
	m->receiving_fac = header_field(m, msh, 6);
	m->datetime = header_field(m, msh, 7);
	m->type_field = header_field(m, msh, 9);
	m->type_code = hq_str_piece(m->type_field, m->cs, 0);
	m->trigger = hq_str_piece(m->type_field, m->cs, 1);
	m->structure = hq_str_piece(m->type_field, m->cs, 2);
	m->control_id = header_field(m, msh, 10);
	m->processing_id = header_field(m, msh, 11);
	m->version = header_field(m, msh, 12);
	m->version_id = hq_str_piece(m->version, m->cs, 0);
	m->accept_ack = header_field(m, msh, 15);
	m->app_ack = header_field(m, msh, 16);
	m->charset = hq_str_piece(header_field(m, msh, 18), m->rs, 0);
}

static int
check_msh(hq_msh *m)
{
	if (hq_str_blank(m->type_code))
		return fail(m, HQ_0357_REQUIRED_MISSING, "Required field missing: MSH-9 message type", "MSH^1^9");
	if (hq_str_blank(m->control_id))
		return fail(m, HQ_0357_REQUIRED_MISSING, "Required field missing: MSH-10 control id", "MSH^1^10");
	/* MSH-11 is required by the standard, but HAPI accepts it empty and
	 * real senders leave it so (the corpus has such a message): accept. */
	if (hq_str_blank(m->version_id))
		return fail(m, HQ_0357_REQUIRED_MISSING, "Required field missing: MSH-12 version id", "MSH^1^12");
	int v = hq_version_num(m->version_id);
	if (v < 201 || v > 299)
		return fail(m, HQ_0357_UNSUPPORTED_VERSION, "Unsupported version id", "MSH^1^12");
	return 0;
}

int
hq_msh_parse(const char *buf, size_t len, hq_msh *m)
{
	size_t pos = 0;
	hq_str seg = {buf, 0}, first_msh = {NULL, 0};
	int have_pid = 0;

	memset(m, 0, sizeof *m);
	m->err_loc = "";

	/* Skip blank lines before the header. */
	while (pos < len) {
		size_t at = pos;
		seg = next_segment(buf, len, &pos);
		if (!hq_str_blank(seg)) {
			pos = at;
			break;
		}
	}
	seg = next_segment(buf, len, &pos);
	if (seg.n >= 3 && (memcmp(seg.p, "FHS", 3) == 0 || memcmp(seg.p, "BHS", 3) == 0))
		m->is_batch = 1;
	else if (seg.n < 3 || memcmp(seg.p, "MSH", 3) != 0)
		return fail(m, HQ_0357_SEGMENT_SEQUENCE, "Message does not start with an MSH segment", "");
	if (!parse_delims(m, seg))
		return fail(m, HQ_0357_DATA_TYPE, "Invalid delimiters in MSH-1/MSH-2", "MSH^1^2");

	hq_str header = seg;
	if (!m->is_batch)
		first_msh = seg;
	m->segments = 1;

	while (pos < len) {
		seg = next_segment(buf, len, &pos);
		if (hq_str_blank(seg))
			continue;
		m->segments++;
		if (!valid_segment_id(seg, m->fs))
			return fail(m, HQ_0357_SEGMENT_SEQUENCE, "Invalid segment id", "");
		if (first_msh.p == NULL && memcmp(seg.p, "MSH", 3) == 0)
			first_msh = seg;
		if (!have_pid && memcmp(seg.p, "PID", 3) == 0) {
			hq_str pid3 = hq_str_piece(hq_str_piece(seg, m->fs, 3), m->rs, 0);
			m->patient_id = hq_str_piece(pid3, m->cs, 0);
			m->patient_authority = hq_str_piece(pid3, m->cs, 3);
			have_pid = 1;
		}
	}

	if (first_msh.p == NULL)
		return fail(m, HQ_0357_SEGMENT_SEQUENCE, "Batch holds no MSH segment", "");
	if (m->is_batch) {
		/* The batch's first message gives type and version; the
		 * header gives the parties and the control id that is acked. */
		hq_msh inner = *m;
		if (!parse_delims(&inner, first_msh))
			return fail(m, HQ_0357_DATA_TYPE, "Invalid delimiters in MSH-1/MSH-2", "MSH^1^2");
		take_msh_fields(&inner, first_msh);
		hq_str batch_ctrl = header_field(m, header, 11);
		int rc = check_msh(&inner);
		*m = inner;
		m->is_batch = 1;
		if (!hq_str_blank(batch_ctrl))
			m->control_id = batch_ctrl;
		m->sending_app = header_field(m, header, 3);
		m->sending_fac = header_field(m, header, 4);
		m->receiving_app = header_field(m, header, 5);
		m->receiving_fac = header_field(m, header, 6);
		/* A batch is acknowledged as a unit, in original mode: the
		 * first message's MSH-15/16 speak for that message only. */
		m->accept_ack = m->app_ack = (hq_str){header.p, 0};
		return rc;
	}
	take_msh_fields(m, first_msh);
	return check_msh(m);
}

int
hq_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	while (p < end) {
		unsigned c = *p;
		size_t len;
		unsigned min;
		if (c < 0x80) {
			p++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			len = 2, min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3, min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4, min = 0x10000;
		} else {
			return 0;
		}
		if ((size_t)(end - p) < len)
			return 0;
		unsigned cp = c & (0x7f >> len);
		for (size_t i = 1; i < len; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		p += len;
	}
	return 1;
}
