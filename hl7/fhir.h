/*
 * fhir.h - one HL7 v2 message -> one FHIR R4 Bundle (target format "fhir"),
 * after the HL7 V2-to-FHIR implementation guide's segment and datatype maps.
 *
 * The invariants a FHIR target relies on:
 *  - every entry is "PUT Type/<id>" and every id is a UUID made from
 *    HMAC-SHA-256(site key, "Type|business key"): the same message, re-sent
 *    or replayed, updates the same resources, and an id gives back no MRN;
 *  - times keep their precision and the sender's offset (else MSH-7's, else
 *    the configured zone's, DST included), a date stays a date;
 *  - no empty string, object or array, and every required element valued;
 *  - a message that cannot be converted gets a reason naming the segment
 *    and field, never the data in it.
 * Pure: no I/O after the options are built, no logging, thread-safe.
 *
 * Business keys (what makes a resource the same one across messages):
 *   Patient            PID-3 first identifier: value | assigning authority
 *                      (its universal id, else namespace); else PID-2, PID-4
 *   Encounter          PV1-19 visit number (+ authority)
 *   DiagnosticReport   OBR-3 filler order number, else OBR-2 + OBR-4 + patient
 *   Observation        its report + OBX-3 + OBX-4 (+ n-th repeat in the message);
 *                      outside a report: patient + OBX-3 + OBX-4 + OBX-14
 *   ServiceRequest     ORC-2/OBR-2 placer order number, else ORC-3/OBR-3
 *   Immunization       ORC-3 filler order number, else patient + RXA-5 + RXA-3
 *   AllergyIntolerance patient + AL1-3;  Condition patient + DG1-3 (+ visit)
 *   Specimen           SPM-2 (filler part, else placer), else report + SPM-1
 *   Coverage           patient + IN1-3 + IN1-36 + IN1-2
 *   Appointment        SCH-1 placer id, else SCH-2 filler id
 *   DocumentReference  TXA-12 unique document number
 * A resource whose key fields are empty takes a message-scoped key
 * (sender, MSH-10, segment position): still the same id on a replay.
 */
#ifndef HQ_FHIR_H
#define HQ_FHIR_H

#include <jansson.h>
#include <stddef.h>

#include "tz.h"

typedef struct hq_fhir_opts {
	unsigned char key[32]; /* HMAC key for ids (fhir_id_key_file) */
	int batch;	       /* Bundle.type batch instead of transaction */
	int max_entries;       /* 0: no limit */
	int patient_match;     /* Patient by conditional update on its identifier */
	const hq_tz *tz;       /* fallback zone; NULL: UTC */
} hq_fhir_opts;

typedef struct hq_fhir_stats {
	int entries;   /* entries in the Bundle */
	int zsegments; /* Z-segments ignored */
	int skipped;   /* other segments with no mapping in this cut */
} hq_fhir_stats;

/* Non-zero when the message type (MSH-9.1, MSH-9.2) has a mapping. */
int hq_fhir_supported(const char *code, size_t ncode, const char *trigger, size_t ntrigger);

/*
 * Converts the message raw[0..len) into *out (the caller owns it).
 * Returns 0; HQ_EUNSUPPORTED for a type without a mapping; HQ_ETOOBIG when
 * the Bundle would hold more than o->max_entries entries; HQ_ECONVERT or
 * HQ_EPARSE when it cannot be converted; ENOMEM.  On failure why gets a
 * reason naming segment and field, free of patient data.  stats may be NULL.
 */
int hq_fhir_convert(const char *raw, size_t len, const hq_fhir_opts *o, json_t **out,
		    hq_fhir_stats *stats, char *why, size_t whycap);

/*
 * The same, serialized (compact JSON, NUL-terminated, malloc'd into *body
 * with its length in *n).  Numbers keep the digits the sender wrote.
 */
int hq_fhir_render(const char *raw, size_t len, const hq_fhir_opts *o, char **body, size_t *n,
		   hq_fhir_stats *stats, char *why, size_t whycap);

/* Reads a 64-hex-digit key (comments and blank lines allowed, first key
 * wins) from path into key.  Returns 0, or HQ_ECONFIG / errno with err set. */
int hq_fhir_read_key(const char *path, unsigned char key[32], char *err, size_t errcap);

/*
 * Fills o for a target: the id key read from key_file (hq_fhir_read_key),
 * the zone (NULL or "": UTC) loaded into *tz (the caller frees it with
 * hq_tz_free after the last conversion).  Other fields are zeroed.
 * Returns 0, or HQ_ECONFIG / errno with err set.
 */
int hq_fhir_opts_init(hq_fhir_opts *o, const char *key_file, const char *zone, hq_tz **tz,
		      char *err, size_t errcap);

#endif
