/*
 * fhir_obs.c - orders, results and their kin: OBX -> Observation (every
 * OBX-2 value type), OBR -> DiagnosticReport, ORC/OBR -> ServiceRequest,
 * SPM -> Specimen, RXA/RXR -> Immunization, SCH/AIS/AIP -> Appointment,
 * TXA + OBX -> DocumentReference.  Same contract as fhir_res.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fhir_int.h"
#include "json.h"

#define SEG(i) (x->m.seg[i])
#define F(i, n) hq_v2_field(&x->m, SEG(i), (n))
#define R(f, r) hq_v2_rep(&x->m, (f), (r))
#define C(v, n) fx_comp(x, (v), (n))

/* "value|authority" of an EI in components; "" when no value. */
static void
eikey(fx *x, hq_str ei, char *out, size_t cap)
{
	char v[120], a[120];
	fx_keypart(x, C(ei, 1), v, sizeof v);
	fx_keypart(x, C(ei, 2), a, sizeof a);
	if (v[0])
		fx_cat(out, cap, v, "|", a, (char *)NULL);
	else
		out[0] = 0;
}

static const char *
map(const char *const (*m)[2], size_t n, fx *x, hq_str raw, const char *dflt)
{
	char c[16];
	fx_keypart(x, raw, c, sizeof c);
	for (size_t i = 0; i < n; i++)
		if (strcmp(m[i][0], c) == 0)
			return m[i][1];
	return dflt;
}
#define MAP(m, raw, dflt) map(m, sizeof m / sizeof m[0], x, raw, dflt)

static fj *
typed_id(fx *x, hq_str ei, const char *type)
{
	fj *id = fx_ei(x, ei);
	if (id)
		fj_set(id, "type",
		       fx_pack("{s:[{s:s,s:s}]}", "coding", "system",
			       "http://terminology.hl7.org/CodeSystem/v2-0203", "code", type));
	return id;
}

static fj *
reps_text(fx *x, hq_str f)
{
	int n = hq_v2_nreps(&x->m, f);
	fj *out = NULL;
	for (int r = 1; r <= n; r++) {
		fj *t = fx_text(x, R(f, r));
		if (t == NULL)
			continue;
		if (out == NULL) {
			out = t;
			continue;
		}
		char *s = NULL;
		if (asprintf(&s, "%s\n%s", fj_str(out), fj_str(t)) > 0) {
			fj_drop(out);
			out = fj_string(s);
		}
		free(s);
		fj_drop(t);
	}
	return out;
}

/* --- Observation ------------------------------------------------------------ */

static fj *
quantity(fx *x, hq_str num, hq_str units)
{
	fj *q = fj_object();
	if (fx_set_decimal(x, q, "value", num) != 0) {
		fj_drop(q);
		return NULL;
	}
	fj *u = fx_text(x, C(units, 2)) ?: fx_text(x, C(units, 1));
	fx_set(q, "unit", u);
	fj *k = fx_coding(x, units);
	fj *sys = fj_get(k, "system");
	if (sys) {
		fj_set(q, "system", sys);
		fj_set(q, "code", fj_get(k, "code"));
	}
	fj_drop(k);
	return q;
}

/* Sets the value[x] of Observation o from OBX obx; 1 when OBX-2 is ED (no value here). */
static int
obx_value(fx *x, fj *o, int obx)
{
	char t[8];
	fx_keypart(x, F(obx, 2), t, sizeof t);
	hq_str v = R(F(obx, 5), 1), units = F(obx, 6);
	if (!hq_v2_valued(F(obx, 5)))
		return 0;
	if (!strcmp(t, "NM")) {
		fj *q = quantity(x, v, units);
		if (q)
			fj_set(o, "valueQuantity", q);
		else
			fx_set(o, "valueString", fx_text(x, v));
	} else if (!strcmp(t, "CE") || !strcmp(t, "CWE") || !strcmp(t, "CNE") || !strcmp(t, "CF")) {
		fx_set(o, "valueCodeableConcept", fx_cwe(x, v));
	} else if (!strcmp(t, "DT") || !strcmp(t, "DTM") || !strcmp(t, "TS")) {
		fx_set(o, "valueDateTime", fx_time_of(x, obx, 5, C(v, 1), !strcmp(t, "DT") ? 'd' : 't'));
	} else if (!strcmp(t, "TM")) {
		char s[16];
		fx_keypart(x, v, s, sizeof s);
		if (strlen(s) >= 4 && strspn(s, "0123456789") >= 4) {
			char out[16];
			snprintf(out, sizeof out, "%.2s:%.2s:%.2s", s, s + 2, strlen(s) >= 6 ? s + 4 : "00");
			fj_set(o, "valueTime", fj_string(out));
		}
	} else if (!strcmp(t, "SN")) {
		char cmp[4], sep[4];
		fx_keypart(x, C(v, 1), cmp, sizeof cmp);
		fx_keypart(x, C(v, 3), sep, sizeof sep);
		fj *a = quantity(x, C(v, 2), units), *b = quantity(x, C(v, 4), units);
		if (a && b && (!strcmp(sep, ":") || !strcmp(sep, "/"))) {
			fj_del(b, "unit");
			fj_set(o, "valueRatio", fx_pack("{s:o,s:o}", "numerator", a, "denominator", b));
		} else if (a && b && !strcmp(sep, "-")) {
			fj_set(o, "valueRange", fx_pack("{s:o,s:o}", "low", a, "high", b));
		} else if (a && !b && !sep[0]) {
			if (!strcmp(cmp, "<") || !strcmp(cmp, ">") || !strcmp(cmp, "<=") || !strcmp(cmp, ">="))
				fj_set(a, "comparator", fj_string(cmp));
			fj_set(o, "valueQuantity", a);
		} else {
			fj_drop(a);
			fj_drop(b);
			fx_set(o, "valueString", fx_text(x, v)); /* "1^+" titres and the like, as written */
		}
	} else if (!strcmp(t, "NR")) {
		fj *r = fj_object();
		fx_set(r, "low", quantity(x, C(v, 1), units));
		fx_set(r, "high", quantity(x, C(v, 2), units));
		fx_set(o, "valueRange", r);
	} else if (!strcmp(t, "ED")) {
		return 1;
	} else {
		/* ST, TX, FT and any other: text, repetitions as lines */
		fx_set(o, "valueString", reps_text(x, F(obx, 5)));
	}
	return 0;
}

/* ED (source^type^subtype^encoding^data) -> Attachment. */
static fj *
attachment(fx *x, hq_str ed)
{
	char type[40], sub[60], enc[16], ct[128];
	fx_keypart(x, C(ed, 2), type, sizeof type);
	fx_keypart(x, C(ed, 3), sub, sizeof sub);
	fx_keypart(x, C(ed, 4), enc, sizeof enc);
	for (char *p = sub; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
	if (strchr(sub, '/'))
		snprintf(ct, sizeof ct, "%s", sub);
	else if (!strcmp(type, "TEXT") || !strcmp(type, "TX"))
		snprintf(ct, sizeof ct, "text/%s", sub[0] ? sub : "plain");
	else if (!strcmp(type, "IM"))
		snprintf(ct, sizeof ct, "image/%s", sub[0] ? sub : "octet-stream");
	else
		snprintf(ct, sizeof ct, "application/%s", sub[0] ? sub : "octet-stream");
	hq_str data = C(ed, 5);
	fj *a = fx_pack("{s:s}", "contentType", ct);
	if (!strcasecmp(enc, "Base64")) {
		/* data.n bytes, NULs included: strndup would stop at the first NUL
		 * and the loop read past its copy (a fuzzer finding) */
		char *d = malloc(data.n + 1);
		size_t k = 0;
		for (size_t i = 0; d && i < data.n; i++)
			if (data.p[i] && strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=",
						data.p[i]))
				d[k++] = data.p[i];
		if (d && k)
			fj_set(a, "data", fj_stringn(d, k));
		free(d);
	} else {
		fj *t = fx_text(x, data);
		size_t n;
		char *b = t ? hq_base64(fj_str(t), fj_strlen(t), &n) : NULL;
		if (b)
			fj_set(a, "data", fj_stringn(b, n));
		free(b);
		fj_drop(t);
	}
	return a;
}

int
fx_observation(fx *x, int obx, const char *report_key, fj *report, const char *partof)
{
	static const char *const status[][2] = {{"F", "final"},
						{"C", "corrected"},
						{"P", "preliminary"},
						{"X", "cancelled"},
						{"R", "registered"},
						{"I", "registered"},
						{"D", "entered-in-error"},
						{"W", "entered-in-error"},
						{"A", "amended"},
						{"S", "preliminary"},
						{"U", "final"}};
	fj *o = fj_object();
	fj_set(o, "status", fj_string(MAP(status, F(obx, 11), "unknown")));
	fj *code = fx_cwe(x, F(obx, 3));
	if (code == NULL) {
		fj_drop(o);
		fx_fail(x, SEG(obx), 3, "empty: Observation.code is required");
		return -1;
	}
	fj_set(o, "code", code);
	if (obx_value(x, o, obx)) {
		fj_drop(o);
		if (report)
			fx_push(report, "presentedForm", attachment(x, R(F(obx, 5), 1)));
		else
			x->nskip++;
		return 0;
	}
	if (x->patient_ref[0])
		fj_set(o, "subject", fx_ref(x->patient_ref));
	if (x->encounter_ref[0])
		fj_set(o, "encounter", fx_ref(x->encounter_ref));
	if (partof)
		fj_set(o, "partOf", fx_pack("[o]", fx_ref(partof)));
	fx_set(o, "effectiveDateTime", fx_time_of(x, obx, 14, C(F(obx, 14), 1), 't'));
	for (int r = 1; r <= hq_v2_nreps(&x->m, F(obx, 8)); r++) {
		fj *k = fx_cwe(x, R(F(obx, 8), r));
		fj *c = fj_at(fj_get(k, "coding"), 0);
		if (c && !fj_get(c, "system"))
			fj_set(c, "system", fj_string("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"));
		fx_push(o, "interpretation", k);
	}
	fj *range = fx_text(x, F(obx, 7));
	if (range)
		fx_push(o, "referenceRange", fx_pack("{s:o}", "text", range));
	for (int r = 1; r <= hq_v2_nreps(&x->m, F(obx, 16)); r++)
		fx_push(o, "performer", fx_xcn_ref(x, R(F(obx, 16), r)));
	fx_set(o, "method", fx_cwe(x, F(obx, 17)));
	if (x->failed) {
		fj_drop(o);
		return -1;
	}
	char key[800], c1[120], c3[60], sub[60], when[40];
	fx_keypart(x, C(F(obx, 3), 1), c1, sizeof c1);
	fx_keypart(x, C(F(obx, 3), 3), c3, sizeof c3);
	fx_keypart(x, F(obx, 4), sub, sizeof sub);
	fx_keypart(x, F(obx, 14), when, sizeof when);
	if (report_key)
		fx_cat(key, sizeof key, report_key, "|", c1, "^", c3, "|", sub, (char *)NULL);
	else if (x->patient_key[0] && partof)
		fx_cat(key, sizeof key, partof, "|", c1, "^", c3, "|", sub, (char *)NULL);
	else if (x->patient_key[0] && when[0])
		fx_cat(key, sizeof key, "pt|", x->patient_key, "|", c1, "^", c3, "|", sub, "|",
		       when, (char *)NULL);
	else
		key[0] = 0;
	char ref[64];
	if (fx_add(x, "Observation", key, obx, o, ref) == NULL)
		return -1;
	if (report)
		fx_push(report, "result", fx_ref(ref));
	return 0;
}

/* --- DiagnosticReport, ServiceRequest, Specimen ----------------------------- */

fj *
fx_report(fx *x, int obr, int orc, char key[300])
{
	static const char *const status[][2] = {
		{"F", "final"},	  {"C", "corrected"},  {"P", "preliminary"}, {"X", "cancelled"},
		{"R", "partial"}, {"I", "registered"}, {"O", "registered"},  {"S", "partial"},
		{"A", "partial"}, {"Y", "final"},      {"Z", "final"}};
	fj *d = fj_object();
	fj_set(d, "status", fj_string(MAP(status, F(obr, 25), "unknown")));
	fj *code = fx_cwe(x, F(obr, 4));
	if (code == NULL) {
		fj_drop(d);
		fx_fail(x, SEG(obr), 4, "empty: DiagnosticReport.code is required");
		return NULL;
	}
	fj_set(d, "code", code);
	hq_str placer = hq_v2_valued(F(obr, 2)) || orc < 0 ? F(obr, 2) : F(orc, 2);
	hq_str filler = hq_v2_valued(F(obr, 3)) || orc < 0 ? F(obr, 3) : F(orc, 3);
	fx_push(d, "identifier", typed_id(x, filler, "FILL"));
	fx_push(d, "identifier", typed_id(x, placer, "PLAC"));
	fj *cat = fx_cwe(x, F(obr, 24));
	fj *c0 = fj_at(fj_get(cat, "coding"), 0);
	if (c0 && !fj_get(c0, "system"))
		fj_set(c0, "system", fj_string("http://terminology.hl7.org/CodeSystem/v2-0074"));
	fx_push(d, "category", cat);
	if (x->patient_ref[0])
		fj_set(d, "subject", fx_ref(x->patient_ref));
	if (x->encounter_ref[0])
		fj_set(d, "encounter", fx_ref(x->encounter_ref));
	fx_set(d, "effectiveDateTime", fx_time_of(x, obr, 7, C(F(obr, 7), 1), 't'));
	fx_set(d, "issued", fx_time_of(x, obr, 22, C(F(obr, 22), 1), 'i'));
	if (x->failed) {
		fj_drop(d);
		return NULL;
	}
	char k[300], c1[120];
	eikey(x, filler, k, sizeof k);
	if (k[0]) {
		snprintf(key, 300, "fill|%s", k);
	} else {
		eikey(x, placer, k, sizeof k);
		fx_keypart(x, C(F(obr, 4), 1), c1, sizeof c1);
		if (k[0])
			snprintf(key, 300, "plac|%.120s|%.60s|%.100s", k, c1, x->patient_key);
		else
			key[0] = 0;
	}
	char ref[64];
	fj *r = fx_add(x, "DiagnosticReport", key, obr, d, ref);
	if (r && !key[0])
		snprintf(key, 300, "%s", ref);
	return r;
}

fj *
fx_service_request(fx *x, int orc, int obr)
{
	static const char *const st5[][2] = {
		{"A", "active"},   {"CA", "revoked"},	       {"CM", "completed"},
		{"DC", "revoked"}, {"ER", "entered-in-error"}, {"HD", "on-hold"},
		{"IP", "active"},  {"RP", "revoked"},	       {"SC", "active"}};
	static const char *const st1[][2] = {
		{"NW", "active"}, {"CA", "revoked"}, {"DC", "revoked"}, {"HD", "on-hold"},
		{"XO", "active"}, {"SC", "active"},  {"OC", "revoked"}, {"OK", "active"}};
	int at = obr >= 0 ? obr : orc;
	if (!x->patient_ref[0]) {
		fx_fail(x, SEG(at), 0, "no PID before it: ServiceRequest.subject is required");
		return NULL;
	}
	fj *s = fj_object();
	const char *status = orc >= 0 ? MAP(st5, F(orc, 5), NULL) : NULL;
	if (status == NULL && orc >= 0)
		status = MAP(st1, F(orc, 1), NULL);
	fj_set(s, "status", fj_string(status ? status : "unknown"));
	fj_set(s, "intent", fj_string("order"));
	hq_str placer = orc >= 0 && hq_v2_valued(F(orc, 2)) ? F(orc, 2)
			: obr >= 0			    ? F(obr, 2)
							    : F(orc, 2);
	hq_str filler = orc >= 0 && hq_v2_valued(F(orc, 3)) ? F(orc, 3)
			: obr >= 0			    ? F(obr, 3)
							    : F(orc, 3);
	fx_push(s, "identifier", typed_id(x, placer, "PLAC"));
	fx_push(s, "identifier", typed_id(x, filler, "FILL"));
	if (obr >= 0) {
		fx_set(s, "code", fx_cwe(x, F(obr, 4)));
		for (int r = 1; r <= hq_v2_nreps(&x->m, F(obr, 31)); r++)
			fx_push(s, "reasonCode", fx_cwe(x, R(F(obr, 31), r)));
	}
	fj_set(s, "subject", fx_ref(x->patient_ref));
	if (x->encounter_ref[0])
		fj_set(s, "encounter", fx_ref(x->encounter_ref));
	if (orc >= 0) {
		fx_set(s, "authoredOn", fx_time_of(x, orc, 9, C(F(orc, 9), 1), 't'));
		fx_set(s, "requester", fx_xcn_ref(x, R(F(orc, 12), 1)));
	}
	if (x->failed) {
		fj_drop(s);
		return NULL;
	}
	char key[300], k[260];
	eikey(x, placer, k, sizeof k);
	if (k[0]) {
		snprintf(key, sizeof key, "plac|%s", k);
	} else {
		eikey(x, filler, k, sizeof k);
		snprintf(key, sizeof key, "%s%s", k[0] ? "fill|" : "", k);
	}
	char ref[64];
	return fx_add(x, "ServiceRequest", key, at, s, ref);
}

int
fx_specimen(fx *x, int spm, const char *report_key, fj *report)
{
	fj *s = fj_object();
	hq_str id = hq_v2_sub(&x->m, C(F(spm, 2), 2), 1);
	if (!hq_v2_valued(id))
		id = hq_v2_sub(&x->m, C(F(spm, 2), 1), 1);
	fj *v = fx_text(x, id);
	if (v)
		fx_push(s, "identifier", fx_pack("{s:O}", "value", v));
	fx_set(s, "type", fx_cwe(x, F(spm, 4)));
	if (x->patient_ref[0])
		fj_set(s, "subject", fx_ref(x->patient_ref));
	fj *col = fj_object();
	fx_set(col, "collectedDateTime", fx_time_of(x, spm, 17, C(F(spm, 17), 1), 't'));
	fx_set(s, "collection", col);
	fx_set(s, "receivedTime", fx_time_of(x, spm, 18, C(F(spm, 18), 1), 't'));
	char key[400], seq[20];
	fx_keypart(x, F(spm, 1), seq, sizeof seq);
	if (v)
		snprintf(key, sizeof key, "spm|%s", fj_str(v));
	else if (report_key)
		snprintf(key, sizeof key, "%s|SPM|%s", report_key, seq);
	else
		key[0] = 0;
	fj_drop(v);
	if (x->failed) {
		fj_drop(s);
		return -1;
	}
	char ref[64];
	if (fx_add(x, "Specimen", key, spm, s, ref) == NULL)
		return -1;
	if (report)
		fx_push(report, "specimen", fx_ref(ref));
	return 0;
}

/* --- Immunization ----------------------------------------------------------- */

int
fx_immunization(fx *x, int orc, int rxa, int rxr, char ref[64])
{
	static const char *const status[][2] = {
		{"CP", "completed"}, {"PA", "completed"}, {"RE", "not-done"}, {"NA", "not-done"}};
	if (!x->patient_ref[0]) {
		fx_fail(x, SEG(rxa), 0, "no PID before it: Immunization.patient is required");
		return -1;
	}
	fj *im = fj_object();
	char action[4];
	fx_keypart(x, F(rxa, 21), action, sizeof action);
	fj_set(im, "status",
	       fj_string(!strcmp(action, "D") ? "entered-in-error" : MAP(status, F(rxa, 20), "completed")));
	fj *code = fx_cwe(x, F(rxa, 5));
	fj *when = fx_time_of(x, rxa, 3, C(F(rxa, 3), 1), 't');
	if (code == NULL || when == NULL) {
		fj_drop(code);
		fj_drop(when);
		fj_drop(im);
		fx_fail(x, SEG(rxa), code ? 3 : 5,
			code ? "empty: Immunization.occurrence is required"
			     : "empty: Immunization.vaccineCode is required");
		return -1;
	}
	fj_set(im, "vaccineCode", code);
	fj_set(im, "patient", fx_ref(x->patient_ref));
	if (x->encounter_ref[0])
		fj_set(im, "encounter", fx_ref(x->encounter_ref));
	fj_set(im, "occurrenceDateTime", when);
	char amount[32];
	fx_keypart(x, F(rxa, 6), amount, sizeof amount);
	if (strcmp(amount, "999") != 0)
		fx_set(im, "doseQuantity", quantity(x, F(rxa, 6), F(rxa, 7)));
	fx_set(im, "lotNumber", fx_text(x, R(F(rxa, 15), 1)));
	fx_set(im, "expirationDate", fx_time_of(x, rxa, 16, C(R(F(rxa, 16), 1), 1), 'd'));
	fj *mvx = fx_text(x, C(R(F(rxa, 17), 1), 2)) ?: fx_text(x, C(R(F(rxa, 17), 1), 1));
	if (mvx)
		fj_set(im, "manufacturer", fx_pack("{s:o,s:s}", "display", mvx, "type", "Organization"));
	fj *who = fx_xcn_ref(x, R(F(rxa, 10), 1));
	if (who)
		fx_push(im, "performer",
			fx_pack("{s:{s:[{s:s,s:s}]},s:o}", "function", "coding", "system",
				"http://terminology.hl7.org/CodeSystem/v2-0443", "code", "AP", "actor", who));
	char src[8];
	fx_keypart(x, C(F(rxa, 9), 1), src, sizeof src);
	if (!strcmp(src, "00") || !strcmp(src, "01"))
		fj_set(im, "primarySource", fj_boolean(src[1] == '0'));
	if (!strcmp(fj_str(fj_get(im, "status")), "not-done"))
		fx_set(im, "statusReason", fx_cwe(x, F(rxa, 18)));
	if (rxr >= 0) {
		fx_set(im, "route", fx_cwe(x, F(rxr, 1)));
		fx_set(im, "site", fx_cwe(x, F(rxr, 2)));
	}
	if (orc >= 0)
		fx_push(im, "identifier", typed_id(x, F(orc, 3), "FILL"));
	if (x->failed) {
		fj_drop(im);
		return -1;
	}
	char key[500], k[260], c[120], t[40];
	if (orc >= 0)
		eikey(x, F(orc, 3), k, sizeof k);
	else
		k[0] = 0;
	fx_keypart(x, C(F(rxa, 5), 1), c, sizeof c);
	fx_keypart(x, C(F(rxa, 3), 1), t, sizeof t);
	if (k[0])
		snprintf(key, sizeof key, "fill|%s", k);
	else
		snprintf(key, sizeof key, "pt|%.300s|%s|%s", x->patient_key, c, t);
	return fx_add(x, "Immunization", key, rxa, im, ref) ? 0 : -1;
}

/* --- Appointment, DocumentReference ----------------------------------------- */

int
fx_appointment(fx *x, int sch, const int *ais, int nais, const int *aip, int naip)
{
	static const char *const status[][2] = {
		{"Booked", "booked"},	{"Cancelled", "cancelled"},	 {"Complete", "fulfilled"},
		{"Noshow", "noshow"},	{"Pending", "pending"},		 {"Waitlist", "waitlist"},
		{"Started", "arrived"}, {"Deleted", "entered-in-error"}, {"Overbook", "booked"},
		{"Blocked", "booked"}};
	fj *a = fj_object();
	const char *st = MAP(status, C(F(sch, 25), 1), "booked");
	fx_push(a, "identifier", typed_id(x, F(sch, 1), "PLAC"));
	fx_push(a, "identifier", typed_id(x, F(sch, 2), "FILL"));
	fx_push(a, "reasonCode", fx_cwe(x, F(sch, 7)));
	fx_set(a, "appointmentType", fx_cwe(x, F(sch, 8)));
	hq_str tq = F(sch, 11);
	fj *start = fx_time_of(x, sch, 11, hq_v2_sub(&x->m, C(tq, 4), 1), 'i');
	fj *end = fx_time_of(x, sch, 11, hq_v2_sub(&x->m, C(tq, 5), 1), 'i');
	for (int k = 0; k < nais; k++) {
		fx_push(a, "serviceType", fx_cwe(x, F(ais[k], 3)));
		if (start == NULL)
			start = fx_time_of(x, ais[k], 4, C(F(ais[k], 4), 1), 'i');
	}
	fj *dur = fx_text(x, F(sch, 9));
	int min = dur ? atoi(fj_str(dur)) : 0;
	fj_drop(dur);
	if (min > 0)
		fj_set(a, "minutesDuration", fj_integer(min));
	/* app-2: start and end together, or neither */
	if (start && end && strcmp(st, "cancelled") && strcmp(st, "entered-in-error")) {
		fj_set(a, "start", start);
		fj_set(a, "end", end);
	} else {
		fj_drop(start);
		fj_drop(end);
		if (strcmp(st, "cancelled") && strcmp(st, "waitlist") && strcmp(st, "entered-in-error"))
			st = "proposed"; /* no start: only a proposed appointment may lack one */
	}
	fj_set(a, "status", fj_string(st));
	if (x->patient_ref[0])
		fx_push(a, "participant",
			fx_pack("{s:o,s:s}", "actor", fx_ref(x->patient_ref), "status", "accepted"));
	for (int k = 0; k < naip; k++) {
		fj *who = fx_xcn_ref(x, R(F(aip[k], 3), 1));
		if (who)
			fx_push(a, "participant", fx_pack("{s:o,s:s}", "actor", who, "status", "accepted"));
	}
	if (fj_get(a, "participant") == NULL && !x->failed)
		fx_fail(x, SEG(sch), 0, "no PID or AIP-3: Appointment.participant is required");
	if (x->failed) {
		fj_drop(a);
		return -1;
	}
	char key[300], k[260];
	eikey(x, F(sch, 1), k, sizeof k);
	if (k[0]) {
		snprintf(key, sizeof key, "plac|%s", k);
	} else {
		eikey(x, F(sch, 2), k, sizeof k);
		snprintf(key, sizeof key, "%s%s", k[0] ? "fill|" : "", k);
	}
	char ref[64];
	return fx_add(x, "Appointment", key, sch, a, ref) ? 0 : -1;
}

int
fx_document(fx *x, int txa, const int *obx, int nobx)
{
	static const char *const doc[][2] = {{"AU", "final"},	    {"LA", "final"},
					     {"PA", "preliminary"}, {"IP", "preliminary"},
					     {"IN", "preliminary"}, {"DI", "preliminary"},
					     {"DO", "preliminary"}};
	static const char *const avail[][2] = {{"AV", "current"}, {"OB", "superseded"}, {"CA", "entered-in-error"}};
	if (!x->patient_ref[0]) {
		fx_fail(x, SEG(txa), 0, "no PID before it: DocumentReference.subject is required");
		return -1;
	}
	fj *d = fj_object();
	fj_set(d, "status", fj_string(MAP(avail, F(txa, 19), "current")));
	const char *ds = MAP(doc, F(txa, 17), NULL);
	if (ds)
		fj_set(d, "docStatus", fj_string(ds));
	fx_set(d, "masterIdentifier", fx_ei(x, F(txa, 12)));
	fx_set(d, "type", fx_cwe(x, F(txa, 2)));
	fj_set(d, "subject", fx_ref(x->patient_ref));
	fx_set(d, "date", fx_time_of(x, txa, 4, C(F(txa, 4), 1), 'i'));
	for (int r = 1; r <= hq_v2_nreps(&x->m, F(txa, 9)); r++)
		fx_push(d, "author", fx_xcn_ref(x, R(F(txa, 9), r)));
	fx_set(d, "authenticator", fx_xcn_ref(x, R(F(txa, 10), 1)));
	/* the text OBX lines make one text/plain attachment; each ED its own */
	char *text = NULL;
	size_t tlen = 0;
	for (int k = 0; k < nobx; k++) {
		char t[8];
		fx_keypart(x, F(obx[k], 2), t, sizeof t);
		if (!strcmp(t, "ED")) {
			fx_push(d, "content",
				fx_pack("{s:o}", "attachment", attachment(x, R(F(obx[k], 5), 1))));
			continue;
		}
		fj *line = reps_text(x, F(obx[k], 5));
		if (line == NULL)
			continue;
		size_t n = fj_strlen(line);
		char *nt = realloc(text, tlen + n + 2);
		if (nt) {
			text = nt;
			if (tlen)
				text[tlen++] = '\n';
			memcpy(text + tlen, fj_str(line), n);
			tlen += n;
		}
		fj_drop(line);
	}
	if (tlen) {
		size_t n;
		char *b = hq_base64(text, tlen, &n);
		if (b)
			fx_push(d, "content",
				fx_pack("{s:{s:s,s:s#}}", "attachment", "contentType",
					"text/plain; charset=utf-8", "data", b, (int)n));
		free(b);
	}
	free(text);
	if (fj_get(d, "content") == NULL && !x->failed)
		fx_fail(x, SEG(txa), 12, "no OBX with the document's content: DocumentReference.content is required");
	if (x->encounter_ref[0])
		fj_set(d, "context", fx_pack("{s:[o]}", "encounter", fx_ref(x->encounter_ref)));
	if (x->failed) {
		fj_drop(d);
		return -1;
	}
	char key[300], k[260];
	eikey(x, F(txa, 12), k, sizeof k);
	snprintf(key, sizeof key, "%s%s", k[0] ? "doc|" : "", k);
	char ref[64];
	return fx_add(x, "DocumentReference", key, txa, d, ref) ? 0 : -1;
}
