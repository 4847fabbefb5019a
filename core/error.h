/*
 * error.h - the one error space of hl7q.
 *
 * Every public function of hl7q returns an int: 0 is success, a positive
 * value is an errno passed through, values in [HQ_ERR_FIRST, HQ_ERR_LAST]
 * are hl7q's own, and LMDB's codes (MDB_*, -30799..-30780) pass through
 * unchanged.  Calls that return a count give errors negated (an MDB_* code
 * or -errno).  hq_strerror() names all of them.
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

/* Returns a static, human-readable text for any code of the space above. */
const char *hq_strerror(int err);

#endif
