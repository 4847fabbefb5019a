/*
 * msg.h - HL7 v2 message header parsing: delimiters, the MSH fields the
 * journal indexes, PID-3, and the checks that decide whether a frame is
 * acceptable HL7 at all.
 *
 * The parser never copies: every hq_str points into the caller's buffer,
 * valid as long as that buffer.  It never allocates and is linear in the
 * input size, whatever the input (it is fuzzed).
 */
#ifndef HQ_MSG_H
#define HQ_MSG_H

#include <stddef.h>

#include "core/str.h"

/* HL7 table 0357 message error condition codes used by hl7q. */
enum {
	HQ_0357_ACCEPTED = 0,
	HQ_0357_SEGMENT_SEQUENCE = 100,
	HQ_0357_REQUIRED_MISSING = 101,
	HQ_0357_DATA_TYPE = 102,
	HQ_0357_UNSUPPORTED_TYPE = 200,
	HQ_0357_UNSUPPORTED_VERSION = 203,
	HQ_0357_DUPLICATE_KEY = 205,
	HQ_0357_INTERNAL = 207
};

typedef struct hq_msh {
	/* Delimiters; valid when have_delims is set. ss and ts are 0 when absent. */
	int have_delims;
	char fs, cs, rs, es, ss, ts;
	int is_batch; /* frame starts with FHS or BHS */

	hq_str sending_app, sending_fac;      /* MSH-3, MSH-4 (raw fields) */
	hq_str receiving_app, receiving_fac;  /* MSH-5, MSH-6 */
	hq_str datetime;		      /* MSH-7 */
	hq_str type_field;		      /* MSH-9 whole, e.g. ADT^A01^ADT_A01 */
	hq_str type_code, trigger, structure; /* MSH-9.1, .2, .3 */
	hq_str control_id;		      /* MSH-10 (FHS-11/BHS-11 for a batch) */
	hq_str processing_id;		      /* MSH-11 whole */
	hq_str version;			      /* MSH-12 whole */
	hq_str version_id;		      /* MSH-12.1, e.g. 2.5.1 */
	hq_str accept_ack, app_ack;	      /* MSH-15, MSH-16 */
	hq_str charset;			      /* MSH-18 (first repetition) */
	hq_str patient_id, patient_authority; /* PID-3.1 and PID-3.4, first repetition */
	int segments;			      /* segments seen, empty ones excluded */

	/* When the frame is refused: the 0357 code, a fixed text, a location. */
	int err_code;
	const char *err_text;
	const char *err_loc; /* e.g. "MSH^1^9"; "" when none */
} hq_msh;

/*
 * Parses the header of the HL7 message (or FHS/BHS batch) in buf[0..len).
 * Returns 0 when the frame is acceptable, HQ_EPARSE otherwise with
 * out->err_* saying why (and out->have_delims saying whether the sender's
 * delimiters were recovered, for the negative ACK).
 */
int hq_msh_parse(const char *buf, size_t len, hq_msh *out);

/* Parses the leading "major.minor" of a version id; returns major*100+minor, or -1. */
int hq_version_num(hq_str version_id);

/* Non-zero when s equals the NUL-terminated lit. */
int hq_str_eq(hq_str s, const char *lit);

/*
 * Whether p[0..n) is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF).  Messages whose MSH-18 says
 * "UNICODE UTF-8" must be.
 */
int hq_utf8_valid(const char *p, size_t n);

#endif
