/*
 * error.h - the one error space of hl7q.
 *
 * The convention, for every public function of hl7q (LMDB's, extended):
 *
 *  - A function that succeeds or fails returns an int: 0 is success, a
 *    positive value is an errno passed through, values in [HQ_ERR_FIRST,
 *    HQ_ERR_LAST] are hl7q's own, and LMDB's codes (MDB_*, -30799..-30780)
 *    pass through unchanged.  Its prototype says which codes it returns.
 *  - A function that returns a count (or a length, or an index) returns it
 *    as a value >= 0 and an error as a value < 0: -errno, or the hl7q/LMDB
 *    code as it is (those are negative already).  hq_neg() turns a code of
 *    the first kind into one of the second; hq_strerror() takes either.
 *  - Booleans are `bool`; "not found" is HQ_ENOTFOUND, never a count of 0
 *    read as an error.
 *
 * Memory: see core/alloc.h (small allocations abort on failure; sizes from
 * input are checked and answered with ENOMEM).
 */
#ifndef HQ_ERROR_H
#define HQ_ERROR_H

enum {
	HQ_OK = 0,
	HQ_ERR_FIRST = -30999,
	HQ_EPARSE = HQ_ERR_FIRST, /* input is not acceptable HL7 */
	HQ_ETOOBIG,		  /* input larger than the configured bound */
	HQ_ECONFIG,		  /* configuration error (details elsewhere) */
	HQ_EFULL,		  /* journal is down to its reserve */
	HQ_EINJECTED,		  /* failure injected by a test seam */
	HQ_ENOTFOUND,		  /* no such record */
	HQ_ECORRUPT,		  /* stored value has an unknown format */
	HQ_EPOISONED,		  /* batch already failed; see its first error */
	HQ_EKEYSPENT,		  /* the encryption key has sealed all it may: rotate */
	HQ_ELOCKED,		  /* another process holds the journal's lock */
	HQ_EUNSUPPORTED,	  /* no mapping for this message type (format fhir) */
	HQ_ECONVERT,		  /* message cannot be converted (reason elsewhere) */
	HQ_ERR_LAST = HQ_ECONVERT
};

/* An error code of the space above as a negative count-return value:
 * errno values are negated, hl7q and LMDB codes (already negative) and 0
 * pass unchanged. */
static inline int
hq_neg(int rc)
{
	return rc > 0 ? -rc : rc;
}

/* Returns a static, human-readable text for any code of the space above,
 * positive (errno) or negated (-errno) alike. */
const char *hq_strerror(int err);

#endif
