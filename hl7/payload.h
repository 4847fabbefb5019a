/*
 * payload.h - the request bodies a target's format asks for, built from a
 * stored message: pure functions (no sockets, no journal, no log), so the
 * delivery worker only picks one and sends what it returns.
 *
 *   raw          the message bytes as they are (no function: nothing to build)
 *   json         metadata and the message's lossless JSON form (hl7/json.h),
 *                or raw_base64 when it has none (schema: hl7q(1), "json")
 *   google-hl7v2 {"message": {"data": "<base64>"}}, as Google Cloud
 *                Healthcare's messages.ingest takes
 *   fhir         a Bundle: hl7/fhir.h (hq_fhir_render)
 *
 * Bodies are input-sized: a NULL return is ENOMEM, answered by the caller
 * (core/alloc.h), never an abort.
 */
#ifndef HQ_PAYLOAD_H
#define HQ_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

/* What the "json" body says about a message besides its bytes (NUL-ended
 * strings, "" when unknown; all from the journal's record). */
typedef struct hq_payload_meta {
	uint64_t id;	      /* journal id */
	uint64_t received_us; /* wall clock, us since the epoch */
	const char *listener, *peer, *type, *control_id, *version;
	const char *sending_app, *sending_fac, *receiving_app, *receiving_fac;
} hq_payload_meta;

/*
 * The "json" body of raw[0..raw_len) with m's metadata: compact JSON,
 * malloc'd and NUL-ended, *len its length.  NULL when out of memory.
 */
char *hq_payload_json(const hq_payload_meta *m, const char *raw, size_t raw_len, size_t *len);

/*
 * The "google-hl7v2" body of raw[0..n): malloc'd and NUL-ended, *len its
 * length.  NULL when out of memory.
 */
char *hq_payload_google(const char *raw, size_t n, size_t *len);

/*
 * The IANA charset name (for Content-Type) of an MSH-18 value such as
 * "UNICODE UTF-8" or "8859/1" (case-insensitive); a static string, or
 * NULL when msh18 is empty or not one hl7q maps.
 */
const char *hq_payload_charset(const char *msh18);

#endif
