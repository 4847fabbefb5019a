/*
 * fhir_int.h - what fhir.c (messages, ids, the Bundle), fhir_res.c
 * (segments -> resources) and fhir_types.c (datatypes) share.  Private to
 * those three files.
 *
 * Every builder returns NULL rather than an empty object or array, and
 * every setter leaves a key out rather than set it empty: "never an empty
 * string, object or array" holds by construction.
 */
#ifndef HQ_FHIR_INT_H
#define HQ_FHIR_INT_H

#include <jansson.h>
#include <mbedtls/sha256.h>

#include "fhir.h"
#include "v2.h"

/* One conversion's state. */
typedef struct fx {
	const hq_fhir_opts *o;
	hq_v2 m;
	hq_str msh;
	char msh_off[8];   /* MSH-7's offset, "+hh:mm", or "" */
	char msgkey[300];  /* sender + MSH-10: prefix of message-scoped keys */
	json_t *entries;   /* Bundle.entry */
	char (*ids)[64];   /* "Type/uuid" of each entry, for repeats */
	json_t **res;	   /* the resource of each entry */
	int nids, capids;
	int nz, nskip;
	char patient_ref[64]; /* "Patient/<id>" or "urn:uuid:<id>"; "" when none */
	char patient_key[300];
	char encounter_ref[64];
	char encounter_key[300];
	char why[200];	   /* the reason, when conversion fails */
	int failed;
	int badtime;	   /* fx_time met a value that is no time */
	mbedtls_sha256_context ipad, opad; /* HMAC's keyed inner and outer states, made once per conversion */
	int hmac_ready;
	char *tmp;	   /* scratch for decoded text */
	size_t tmpcap;
} fx;

/* --- fhir_types.c: datatypes -------------------------------------------- */

/* Decoded text of raw as a JSON string; NULL when empty. */
json_t *fx_text(fx *x, hq_str raw);
/* Sets obj.key to the decoded text of raw, when valued. */
void fx_set_text(fx *x, json_t *obj, const char *key, hq_str raw);
/* Sets obj.key to a code (whitespace trimmed and collapsed), when valued. */
void fx_set_code(fx *x, json_t *obj, const char *key, hq_str raw);
/* Sets obj.key to v, or drops v when it is NULL, an empty object or array. */
void fx_set(json_t *obj, const char *key, json_t *v);
/* Appends v to obj.key (an array made on demand) unless v is NULL or empty. */
void fx_push(json_t *obj, const char *key, json_t *v);

/* Coding system name (table 0396, an OID, a URI) -> FHIR URI; NULL when unknown. */
const char *fx_system_uri(const char *name, char *buf, size_t cap);

json_t *fx_cwe(fx *x, hq_str cwe);	    /* CWE/CE/CNE -> CodeableConcept */
json_t *fx_coding(fx *x, hq_str cwe);	    /* first triplet -> Coding */
json_t *fx_cx(fx *x, hq_str cx);	    /* CX -> Identifier */
json_t *fx_ei(fx *x, hq_str ei);	    /* EI -> Identifier */
json_t *fx_xpn(fx *x, hq_str xpn);	    /* XPN -> HumanName */
json_t *fx_xad(fx *x, hq_str xad);	    /* XAD -> Address */
json_t *fx_xtn(fx *x, hq_str xtn, const char *use); /* XTN -> ContactPoint */
json_t *fx_xcn_ref(fx *x, hq_str xcn);	    /* XCN -> logical Reference(Practitioner) */
json_t *fx_org_ref(fx *x, hq_str xon);	    /* XON -> logical Reference(Organization) */
json_t *fx_pl_ref(fx *x, hq_str pl);	    /* PL -> logical Reference(Location) */
json_t *fx_hd_system(fx *x, hq_str hd);	    /* HD -> system URI string, or NULL */
/* Sets obj.key to the text of the FHIR decimal in raw (see fx_number); 0 when set. */
int fx_set_decimal(fx *x, json_t *obj, const char *key, hq_str raw);

/*
 * TS/DTM -> FHIR: kind 'd' a date (precision kept, time dropped), 't' a
 * dateTime (a date stays a date; a time gets seconds and an offset),
 * 'i' an instant (needs minutes at least: NULL when the value has less;
 * seconds are padded, as the type demands).  NULL when
 * empty; sets x->badtime when not a time.
 */
json_t *fx_time(fx *x, hq_str ts, char kind);

/* The JSON placeholder for a verbatim number (fhir.c's serializer writes it bare). */
json_t *fx_number(const char *digits);

/* --- fhir.c: ids and entries -------------------------------------------- */

/* Records the failure (first one wins): seg is "OBX", n its position in the
 * message from 1, field the field number, what the rule that broke. */
void fx_fail(fx *x, hq_str seg, int field, const char *what);
/* Position (from 1) of segment s among the message's segments of its id. */
int fx_segpos(fx *x, int segidx);

/*
 * Adds resource r (owned, also on failure) of type under business key
 * (NULL: message-scoped, from segidx) as an entry; ref gets "Type/<id>".
 * A second resource of the same type and key in one message: Patient and
 * Encounter reuse the first (r is merged into it, first values winning);
 * others become the key's n-th occurrence.  Returns the resource in the
 * Bundle (borrowed) or NULL on failure.
 */
json_t *fx_add(fx *x, const char *type, const char *key, int segidx, json_t *r, char ref[64]);

/* JSON {"reference": ref}. */
json_t *fx_ref(const char *ref);

/* --- fhir_res.c: segments -> resources ---------------------------------- */

int fx_patient(fx *x, int pid, int pd1, const int *nk1, int nnk1, int mrg);
int fx_encounter(fx *x, int pv1, int pv2, const char *trigger);
int fx_allergy(fx *x, int al1);
int fx_condition(fx *x, int dg1);
int fx_coverage(fx *x, int in1);
/* Observation of OBX at obx, under report (may be NULL) / part of (may be NULL). */
int fx_observation(fx *x, int obx, const char *report_key, json_t *report, const char *partof);
/* DiagnosticReport (or, when order is set, ServiceRequest) of OBR; key_out gets its key. */
json_t *fx_report(fx *x, int obr, int orc, char key_out[300]);
json_t *fx_service_request(fx *x, int orc, int obr);
int fx_specimen(fx *x, int spm, const char *report_key, json_t *report);
int fx_immunization(fx *x, int orc, int rxa, int rxr, char ref[64]);
int fx_appointment(fx *x, int sch, const int *ais, int nais, const int *aip, int naip);
int fx_document(fx *x, int txa, const int *obx, int nobx);
/* Appends the NTE's comment to r.key (an Annotation list). */
void fx_note(fx *x, int nte, json_t *r, const char *key);

#endif
