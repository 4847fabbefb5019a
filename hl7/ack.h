/*
 * ack.h - builds the HL7 acknowledgement for an inbound message.
 *
 * The ACK copies the sender's delimiters, swaps MSH-3/4 with MSH-5/6,
 * stamps MSH-7 with the time given, answers MSH-9 with ACK^<trigger> (plus
 * ^ACK from v2.5 on), carries a new MSH-10, copies MSH-11/12 and fills
 * MSA-1/MSA-2.  A negative ACK carries an ERR segment with its table 0357
 * code: ERR-2/3/4 from v2.5 on, MSA-3 and ERR-1 before.
 */
#ifndef HQ_ACK_H
#define HQ_ACK_H

#include <stddef.h>

#include "msg.h"

/* The accept-acknowledgement decision for one message. */
typedef enum hq_ack_kind {
	HQ_ACK_ACCEPT, /* AA, or CA in enhanced mode */
	HQ_ACK_ERROR,  /* AE / CE */
	HQ_ACK_REJECT  /* AR / CR */
} hq_ack_kind;

/*
 * Non-zero when the message asks for enhanced acknowledgement (MSH-15 or
 * MSH-16 valued).
 */
int hq_ack_enhanced(const hq_msh *m);

/*
 * Whether an accept ACK of this kind is to be sent at all: always in
 * original mode and always for a refusal (never silence); a positive one
 * in enhanced mode as MSH-15 says (AL, NE, ER, SU; empty or unknown: AL).
 */
int hq_ack_wanted(const hq_msh *m, hq_ack_kind kind);

/* The two-letter code ("AA", "CR", ...) for kind under m's mode. */
const char *hq_ack_code(const hq_msh *m, hq_ack_kind kind);

/*
 * Writes the ACK message (no MLLP framing, segments ended by CR) into
 * out[0..cap).  m may lack delimiters (have_delims == 0): the defaults
 * |^~\& are used and MSA-2 stays empty.  err_code is a 0357 code (0 for
 * none), err_text a short ASCII text without delimiters, err_loc an ERL
 * like "MSH^1^9" or "".  now is MSH-7 (YYYYMMDDHHMMSS...), ack_id MSH-10.
 * Returns the length written, or -1 when cap is too small.
 */
int hq_ack_build(const hq_msh *m, hq_ack_kind kind, int err_code, const char *err_text,
		 const char *err_loc, const char *now, const char *ack_id, char *out, size_t cap);

#endif
