/*
 * v2.h - read access to the segments, fields, repetitions and components
 * of one HL7 v2 message, with the escape sequences decoded.
 *
 * msg.h reads the header a journal needs; a converter needs every field.
 * hq_v2_open splits the message into segments once (one array, the only
 * allocation); every piece handed out after that is an hq_str into the
 * caller's buffer, valid as long as that buffer.  Numbering follows the
 * standard: fields, repetitions and components count from 1, and MSH-1 is
 * the field separator itself.  Decoded text is always valid UTF-8: a
 * message that is not is read as ISO 8859-1.
 */
#ifndef HQ_V2_H
#define HQ_V2_H

#include <stddef.h>

#include "core/str.h"

typedef struct hq_v2 {
	char fs, cs, rs, es, ss;
	int latin1;  /* the bytes are not UTF-8: decode as ISO 8859-1 */
	hq_str *seg; /* the segments, blank ones left out */
	int nseg;
	struct hq_v2_index *index; /* the fields of the segment read last (v2.c) */
} hq_v2;

/* Splits buf[0..len) (one message, MSH first).  Returns 0, HQ_EPARSE when
 * there is no MSH with readable delimiters, or ENOMEM. */
int hq_v2_open(hq_v2 *m, const char *buf, size_t len);

/* Frees what hq_v2_open allocated (not the buffer). */
void hq_v2_close(hq_v2 *m);

/* Non-zero when segment s has the three-letter id. */
int hq_v2_is(hq_str s, const char *id);

/* Field n of segment s (MSH-n counted as the standard does); empty when absent. */
hq_str hq_v2_field(const hq_v2 *m, hq_str s, int n);

/* Repetition r (from 1) of a field; component c of a repetition;
 * subcomponent k of a component.  Empty when absent. */
hq_str hq_v2_rep(const hq_v2 *m, hq_str f, int r);
hq_str hq_v2_comp(const hq_v2 *m, hq_str rep, int c);
hq_str hq_v2_sub(const hq_v2 *m, hq_str comp, int k);

/* Number of repetitions of a field (0 when empty). */
int hq_v2_nreps(const hq_v2 *m, hq_str f);

/*
 * Decodes raw into out[0..cap): delimiter escapes (\F\ \S\ \T\ \R\ \E\),
 * hex (\Xhh..\), line breaks (\.br\ \.sp\ -> "\n"); other formatting and
 * character-set escapes are dropped; control characters other than tab and
 * newline are dropped; leading and trailing blanks are trimmed.  Returns the
 * length written (NUL-terminated; text longer than cap - 1 is cut at a
 * character boundary).
 */
size_t hq_v2_decode(const hq_v2 *m, hq_str raw, char *out, size_t cap);

/* Whether raw has any non-blank byte. */
int hq_v2_valued(hq_str raw);

#endif
