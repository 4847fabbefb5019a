/*
 * error.c - texts for hl7q's error space (see error.h).
 */
#include <lmdb.h>
#include <string.h>

#include "error.h"

const char *
hq_strerror(int err)
{
	switch (err) {
	case HQ_OK: return "success";
	case HQ_EPARSE: return "not acceptable HL7";
	case HQ_ETOOBIG: return "larger than allowed";
	case HQ_ECONFIG: return "configuration error";
	case HQ_EFULL: return "journal full (reserve reached)";
	case HQ_EINJECTED: return "failure injected by test seam";
	case HQ_ENOTFOUND: return "not found";
	case HQ_ECORRUPT: return "stored record has an unknown format";
	case HQ_EPOISONED: return "batch already failed";
	case HQ_EKEYSPENT: return "encryption key used up: put a new key first and run hl7q reseal";
	case HQ_ELOCKED: return "the journal is locked by another process";
	case HQ_EUNSUPPORTED: return "no mapping for this message type";
	case HQ_ECONVERT: return "message cannot be converted";
	}
	if (err > 0)
		return strerror(err);
	if (err > -30000)
		return strerror(-err); /* a negated errno, as count-returning calls give */
	return mdb_strerror(err);      /* MDB_* codes, and "Invalid argument" style fallbacks */
}
