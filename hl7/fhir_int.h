/*
 * fhir_int.h - what fhir.c (messages, ids, the Bundle), fhir_res.c and
 * fhir_obs.c (segments -> resources), fhir_types.c (datatypes) and
 * fhir_json.c (the JSON tree, in one arena per conversion) share.  Private
 * to those files.
 *
 * Every builder returns NULL rather than an empty object or array, and
 * every setter leaves a key out rather than set it empty: "never an empty
 * string, object or array" holds by construction.
 */
#ifndef HQ_FHIR_INT_H
#define HQ_FHIR_INT_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "fhir.h"
#include "v2.h"

/* --- fhir_json.c: the JSON tree ------------------------------------------ */

enum { FJ_OBJECT, FJ_ARRAY, FJ_STRING, FJ_INTEGER, FJ_TRUE, FJ_FALSE };

typedef struct fj fj;
/* A member of an object (key) or an element of an array (key NULL). */
typedef struct fj_member {
	const char *key;
	fj *v;
	struct fj_member *next;
} fj_member;

struct fj {
	int type;
	size_t n;		/* string length; members or elements */
	const char *s;		/* FJ_STRING, NUL-terminated */
	int plain;		/* FJ_STRING: printable ASCII but '"' and '\\' (JSON as it is) */
	long long i;		/* FJ_INTEGER */
	fj_member *head, *tail; /* FJ_OBJECT, FJ_ARRAY, in insertion order */
};

/* The arena every value of one conversion comes from. */
typedef struct fj_arena {
	struct fj_block *blocks;
	int oom;
} fj_arena;

/* Makes a the arena of this thread's values, until fj_end(a) frees them all. */
void fj_begin(fj_arena *a);
void fj_end(fj_arena *a);

/* Constructors: NULL when out of memory (or, for strings, NULL or not UTF-8). */
fj *fj_object(void);
fj *fj_array(void);
fj *fj_string(const char *s);
fj *fj_stringn(const char *s, size_t n);
fj *fj_integer(long long v);
fj *fj_boolean(int v);
/* o.key = v (in place when the key exists); -1 when o is no object or v is
 * NULL.  key is kept, not copied: a literal (FHIR element names are). */
int fj_set(fj *o, const char *key, fj *v);
/* fj_set without the search, for a key o cannot hold yet (a new object's). */
int fj_add(fj *o, const char *key, fj *v);
int fj_del(fj *o, const char *key);
/* Adds src's members whose keys dst lacks. */
int fj_update_missing(fj *dst, const fj *src);
/* Appends v to array a; -1 when a is no array or v is NULL. */
int fj_append(fj *a, fj *v);
/* Getters: NULL / 0 when j is NULL or of another type. */
fj *fj_get(const fj *o, const char *key);
fj *fj_at(const fj *a, size_t i);
size_t fj_size(const fj *j);
const char *fj_str(const fj *j);
size_t fj_strlen(const fj *j);

static inline int
fj_is(const fj *j, int type)
{
	return j && j->type == type;
}

/* Marks where a value is given up: the arena frees it, at the end. */
static inline void
fj_drop(fj *j)
{
	(void)j;
}

enum { FX_NC = 24 }; /* components indexed per value (CWE has 22) */

/* One conversion's state. */
typedef struct fx {
	const hq_fhir_opts *o;
	hq_v2 m;
	hq_str msh;
	char msh_off[8];    /* MSH-7's offset, "+hh:mm", or "" */
	char msgkey[300];   /* sender + MSH-10: prefix of message-scoped keys */
	fj *entries;	    /* Bundle.entry */
	char (*ids)[64];    /* "Type/uuid" of each entry, for repeats */
	fj **res;	    /* the resource of each entry */
	const char **keys;  /* its business key (in the arena; NULL: by conditional update) */
	const char **types; /* its type (a literal) */
	uint64_t *hashes;   /* key_hash of its key */
	int nids, capids;
	int nz, nskip;
	char patient_ref[64]; /* "Patient/<id>" or "urn:uuid:<id>"; "" when none */
	char patient_key[300];
	char encounter_ref[64];
	char encounter_key[300];
	char why[200]; /* the reason, when conversion fails */
	int failed;
	int badtime;		 /* fx_time met a value that is no time */
	EVP_MD_CTX *ipad, *opad; /* HMAC's keyed inner and outer states, made on the first id */
	EVP_MD_CTX *work;	 /* an id's hashing, over a copy of one of them */
	char *tmp;		 /* scratch for decoded text */
	size_t tmpcap;
	/* Where the components of the value read last start (fx_comp): the
	 * datatypes read most components of one value, each from its start. */
	struct {
		const char *p;
		size_t n;
		int nc;	  /* starts known */
		int more; /* the value has more components than were indexed */
		const char *start[FX_NC + 1];
	} comp;
} fx;

/* --- fhir_types.c: datatypes -------------------------------------------- */

/*
 * json_pack's subset that the converter uses ({} [] s s# o O; keys are
 * ASCII literals), without its cost: NULL when an s or o argument is NULL,
 * the o arguments released then, as json_pack does.
 */
fj *fx_pack(const char *fmt, ...);

/* out = the strings up to a NULL, joined, cut at cap - 1 bytes as
 * snprintf(out, cap, "%s%s...") would (cap > 0), without its cost. */
void fx_cat(char *out, size_t cap, ...);

/* hq_v2_comp(&x->m, v, c), through x->comp. */
hq_str fx_comp(fx *x, hq_str v, int c);

/* Decoded text of raw as a JSON string; NULL when empty. */
fj *fx_text(fx *x, hq_str raw);
/* Sets obj.key to the decoded text of raw, when valued. */
void fx_set_text(fx *x, fj *obj, const char *key, hq_str raw);
/* Sets obj.key to a code (whitespace trimmed and collapsed), when valued. */
void fx_set_code(fx *x, fj *obj, const char *key, hq_str raw);
/* Sets obj.key to v, or drops v when it is NULL, an empty object or array. */
void fx_set(fj *obj, const char *key, fj *v);
/* Appends v to obj.key (an array made on demand) unless v is NULL or empty. */
void fx_push(fj *obj, const char *key, fj *v);

/* Coding system name (table 0396, an OID, a URI) -> FHIR URI; NULL when unknown. */
const char *fx_system_uri(const char *name, char *buf, size_t cap);

fj *fx_cwe(fx *x, hq_str cwe);			/* CWE/CE/CNE -> CodeableConcept */
fj *fx_coding(fx *x, hq_str cwe);		/* first triplet -> Coding */
fj *fx_cx(fx *x, hq_str cx);			/* CX -> Identifier */
fj *fx_ei(fx *x, hq_str ei);			/* EI -> Identifier */
fj *fx_xpn(fx *x, hq_str xpn);			/* XPN -> HumanName */
fj *fx_xad(fx *x, hq_str xad);			/* XAD -> Address */
fj *fx_xtn(fx *x, hq_str xtn, const char *use); /* XTN -> ContactPoint */
fj *fx_xcn_ref(fx *x, hq_str xcn);		/* XCN -> logical Reference(Practitioner) */
fj *fx_org_ref(fx *x, hq_str xon);		/* XON -> logical Reference(Organization) */
fj *fx_pl_ref(fx *x, hq_str pl);		/* PL -> logical Reference(Location) */
fj *fx_hd_system(fx *x, hq_str hd);		/* HD -> system URI string, or NULL */
/* Sets obj.key to the text of the FHIR decimal in raw (see fx_number); 0 when set. */
int fx_set_decimal(fx *x, fj *obj, const char *key, hq_str raw);

/*
 * TS/DTM -> FHIR: kind 'd' a date (precision kept, time dropped), 't' a
 * dateTime (a date stays a date; a time gets seconds and an offset),
 * 'i' an instant (needs minutes at least: NULL when the value has less;
 * seconds are padded, as the type demands).  NULL when
 * empty; sets x->badtime when not a time.
 */
fj *fx_time(fx *x, hq_str ts, char kind);
/* fx_time of field n of segment i (raw); fails through fx_fail naming
 * that field when it is no time. */
fj *fx_time_of(fx *x, int i, int n, hq_str raw, char kind);
/* out = the decoded text of raw, a short key part ("" when empty). */
void fx_keypart(fx *x, hq_str raw, char *out, size_t cap);

/* The JSON placeholder for a verbatim number (fhir.c's serializer writes it bare). */
fj *fx_number(const char *digits);

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
fj *fx_add(fx *x, const char *type, const char *key, int segidx, fj *r, char ref[64]);

/* JSON {"reference": ref}. */
fj *fx_ref(const char *ref);

/* --- fhir_res.c: segments -> resources ---------------------------------- */

int fx_patient(fx *x, int pid, int pd1, const int *nk1, int nnk1, int mrg);
int fx_encounter(fx *x, int pv1, int pv2, const char *trigger);
int fx_allergy(fx *x, int al1);
int fx_condition(fx *x, int dg1);
int fx_coverage(fx *x, int in1);
/* Observation of OBX at obx, under report (may be NULL) / part of (may be NULL). */
int fx_observation(fx *x, int obx, const char *report_key, fj *report, const char *partof);
/* DiagnosticReport (or, when order is set, ServiceRequest) of OBR; key_out gets its key. */
fj *fx_report(fx *x, int obr, int orc, char key_out[300]);
fj *fx_service_request(fx *x, int orc, int obr);
int fx_specimen(fx *x, int spm, const char *report_key, fj *report);
int fx_immunization(fx *x, int orc, int rxa, int rxr, char ref[64]);
int fx_appointment(fx *x, int sch, const int *ais, int nais, const int *aip, int naip);
int fx_document(fx *x, int txa, const int *obx, int nobx);
/* Appends the NTE's comment to r.key (an Annotation list). */
void fx_note(fx *x, int nte, fj *r, const char *key);

#endif
