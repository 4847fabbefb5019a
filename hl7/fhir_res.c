/*
 * fhir_res.c - HL7 v2 segments -> FHIR R4 resources, after the V2-to-FHIR
 * guide's segment maps (PID, PD1, NK1, MRG, PV1, PV2, AL1, DG1, IN1, ORC,
 * OBR, OBX, NTE, SPM, RXA, RXR, SCH, AIS, AIP, TXA).
 *
 * Each builder makes one resource, hands it to fx_add under its business
 * key (fhir.h lists them), and fails through fx_fail, naming segment and
 * field, when an element FHIR requires has no source.  Practitioners,
 * Organizations and Locations stay logical references (identifier and
 * display): a thin XCN here never overwrites a rich record made elsewhere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "fhir_int.h"
#include "json.h"

#define SEG(i) (x->m.seg[i])
#define F(i, n) hq_v2_field(&x->m, SEG(i), (n))
#define R(f, r) hq_v2_rep(&x->m, (f), (r))
#define C(v, n) fx_comp(x, (v), (n))
#define S(v, n) hq_v2_sub(&x->m, (v), (n))

/* Code and its system as one key part: "code^system" of a CWE. */
static void
codekey(fx *x, hq_str cwe, char *out, size_t cap)
{
	char c[120], s[60];
	fx_keypart(x, C(cwe, 1), c, sizeof c);
	fx_keypart(x, C(cwe, 3), s, sizeof s);
	if (!c[0])
		fx_keypart(x, C(cwe, 2), c, sizeof c);
	fx_cat(out, cap, c, "^", s, (char *)NULL);
}

/* "value|authority" of a CX (authority: CX-4's universal id, else its
 * namespace id); "" when no value. */
static void
cxkey(fx *x, hq_str cx, char *out, size_t cap)
{
	char v[120], a[120];
	fx_keypart(x, C(cx, 1), v, sizeof v);
	fx_keypart(x, S(C(cx, 4), 2), a, sizeof a);
	if (!a[0])
		fx_keypart(x, S(C(cx, 4), 1), a, sizeof a);
	if (v[0])
		fx_cat(out, cap, v, "|", a, (char *)NULL);
	else
		out[0] = 0;
}

/* A CWE whose coding has no system gets table's (HL7 table nnnn). */
static fj *
cwe_table(fx *x, hq_str cwe, const char *uri)
{
	fj *cc = fx_cwe(x, cwe);
	fj *k = fj_at(fj_get(cc, "coding"), 0);
	if (k && fj_get(k, "system") == NULL && !hq_v2_valued(C(cwe, 3)))
		fj_set(k, "system", fj_string(uri));
	return cc;
}

static fj *
coding(const char *system, const char *code)
{
	return fx_pack("{s:s,s:s}", "system", system, "code", code);
}

/* Decoded repetitions of a field joined with newlines. */
static fj *
reps_text(fx *x, hq_str f)
{
	int n = hq_v2_nreps(&x->m, f);
	char *buf = NULL;
	size_t len = 0;
	for (int r = 1; r <= n; r++) {
		fj *t = fx_text(x, R(f, r));
		if (t == NULL)
			continue;
		size_t tl = fj_strlen(t);
		char *nb = realloc(buf, len + tl + 2);
		if (nb) {
			buf = nb;
			if (len)
				buf[len++] = '\n';
			memcpy(buf + len, fj_str(t), tl);
			len += tl;
		}
		fj_drop(t);
	}
	fj *j = len ? fj_stringn(buf, len) : NULL;
	free(buf);
	return j;
}

static void
set_subject(fx *x, fj *r, const char *key)
{
	if (x->patient_ref[0])
		fj_set(r, key, fx_ref(x->patient_ref));
}

static void
set_encounter(fx *x, fj *r, const char *key)
{
	if (x->encounter_ref[0])
		fj_set(r, key, fx_ref(x->encounter_ref));
}

static const char *
lookup(const char *const (*map)[2], size_t n, fj *code, const char *dflt)
{
	const char *c = code ? fj_str(code) : NULL;
	for (size_t i = 0; c && i < n; i++)
		if (strcmp(map[i][0], c) == 0)
			dflt = map[i][1];
	fj_drop(code);
	return dflt;
}
#define LOOKUP(map, code, dflt) lookup(map, sizeof map / sizeof map[0], code, dflt)

/* --- Patient ---------------------------------------------------------------- */

static void
patient_contact(fx *x, fj *p, int nk1)
{
	fj *c = fj_object();
	fx_set(c, "name", fx_xpn(x, R(F(nk1, 2), 1)));
	fj *rel = cwe_table(x, R(F(nk1, 3), 1), "http://terminology.hl7.org/CodeSystem/v2-0063");
	fx_push(c, "relationship", rel);
	fx_set(c, "address", fx_xad(x, R(F(nk1, 4), 1)));
	for (int r = 1; r <= hq_v2_nreps(&x->m, F(nk1, 5)); r++)
		fx_push(c, "telecom", fx_xtn(x, R(F(nk1, 5), r), "home"));
	for (int r = 1; r <= hq_v2_nreps(&x->m, F(nk1, 6)); r++)
		fx_push(c, "telecom", fx_xtn(x, R(F(nk1, 6), r), "work"));
	/* pat-1: a contact holds a name, telecom or address */
	if (fj_get(c, "name") || fj_get(c, "telecom") || fj_get(c, "address"))
		fx_push(p, "contact", c);
	else
		fj_drop(c);
}

static void
patient_demographics(fx *x, fj *p, int pid)
{
	static const char *const gender[][2] = {{"M", "male"},	{"F", "female"}, {"O", "other"},
						{"A", "other"}, {"N", "other"},	 {"U", "unknown"}};
	for (int f = 2; f <= 4; f += 1)
		for (int r = 1; r <= hq_v2_nreps(&x->m, F(pid, f)); r++)
			fx_push(p, "identifier", fx_cx(x, R(F(pid, f), r)));
	for (int r = 1; r <= hq_v2_nreps(&x->m, F(pid, 5)); r++)
		fx_push(p, "name", fx_xpn(x, R(F(pid, 5), r)));
	fx_set(p, "birthDate", fx_time_of(x, pid, 7, C(F(pid, 7), 1), 'd'));
	fj *g = fx_text(x, C(F(pid, 8), 1));
	if (g)
		fj_set(p, "gender", fj_string(LOOKUP(gender, g, "unknown")));
	for (int r = 1; r <= hq_v2_nreps(&x->m, F(pid, 11)); r++)
		fx_push(p, "address", fx_xad(x, R(F(pid, 11), r)));
	for (int r = 1; r <= hq_v2_nreps(&x->m, F(pid, 13)); r++)
		fx_push(p, "telecom", fx_xtn(x, R(F(pid, 13), r), "home"));
	for (int r = 1; r <= hq_v2_nreps(&x->m, F(pid, 14)); r++)
		fx_push(p, "telecom", fx_xtn(x, R(F(pid, 14), r), "work"));
	fj *lang = fx_cwe(x, R(F(pid, 15), 1));
	if (lang)
		fx_push(p, "communication", fx_pack("{s:o}", "language", lang));
	fx_set(p, "maritalStatus",
	       cwe_table(x, R(F(pid, 16), 1), "http://terminology.hl7.org/CodeSystem/v2-0002"));
	fj *died = fx_time_of(x, pid, 29, C(F(pid, 29), 1), 't');
	fj *dead = fx_text(x, F(pid, 30));
	if (died)
		fj_set(p, "deceasedDateTime", died);
	else if (dead && (strcmp(fj_str(dead), "Y") == 0 || strcmp(fj_str(dead), "N") == 0))
		fj_set(p, "deceasedBoolean", fj_boolean(fj_str(dead)[0] == 'Y'));
	fj_drop(dead);
	fj *order = fx_text(x, F(pid, 25)), *multi = fx_text(x, F(pid, 24));
	int ord = order ? atoi(fj_str(order)) : 0;
	if (ord > 0)
		fj_set(p, "multipleBirthInteger", fj_integer(ord));
	else if (multi && (strcmp(fj_str(multi), "Y") == 0 || strcmp(fj_str(multi), "N") == 0))
		fj_set(p, "multipleBirthBoolean", fj_boolean(fj_str(multi)[0] == 'Y'));
	fj_drop(order);
	fj_drop(multi);
}

int
fx_patient(fx *x, int pid, int pd1, const int *nk1, int nnk1, int mrg)
{
	fj *p = fj_object();
	char key[300];
	cxkey(x, R(F(pid, 3), 1), key, sizeof key);
	if (!key[0]) /* v2.3 senders put the MRN in PID-2 or PID-4 as often as in PID-3 */
		cxkey(x, R(F(pid, 2), 1), key, sizeof key);
	if (!key[0])
		cxkey(x, R(F(pid, 4), 1), key, sizeof key);
	patient_demographics(x, p, pid);
	if (pd1 >= 0) {
		for (int r = 1; r <= hq_v2_nreps(&x->m, F(pd1, 4)); r++)
			fx_push(p, "generalPractitioner", fx_xcn_ref(x, R(F(pd1, 4), r)));
		fx_push(p, "generalPractitioner", fx_org_ref(x, R(F(pd1, 3), 1)));
	}
	for (int k = 0; k < nnk1; k++)
		patient_contact(x, p, nk1[k]);
	if (x->failed) {
		fj_drop(p);
		return -1;
	}
	fj *res = fx_add(x, "Patient", key, pid, p, x->patient_ref);
	if (res == NULL)
		return -1;
	x->encounter_ref[0] = x->encounter_key[0] = 0; /* a new patient's visit comes with its own PV1 */
	snprintf(x->patient_key, sizeof x->patient_key, "%s", key[0] ? key : x->patient_ref);
	if (mrg < 0)
		return 0;
	/* A40: the old record is kept, inactive, and points at the survivor */
	char okey[300], oref[64];
	cxkey(x, R(F(mrg, 1), 1), okey, sizeof okey);
	if (!okey[0]) {
		fx_fail(x, SEG(mrg), 1, "empty: the merged patient's identifier is required");
		return -1;
	}
	fj *old = fj_object();
	for (int r = 1; r <= hq_v2_nreps(&x->m, F(mrg, 1)); r++)
		fx_push(old, "identifier", fx_cx(x, R(F(mrg, 1), r)));
	fj_set(old, "active", fj_boolean(0));
	fj_set(old, "link", fx_pack("[{s:o,s:s}]", "other", fx_ref(x->patient_ref), "type", "replaced-by"));
	if (fx_add(x, "Patient", okey, mrg, old, oref) == NULL)
		return -1;
	fx_push(res, "link", fx_pack("{s:o,s:s}", "other", fx_ref(oref), "type", "replaces"));
	return 0;
}

/* --- Encounter -------------------------------------------------------------- */

static void
encounter_participants(fx *x, fj *e, int pv1)
{
	static const struct {
		int field;
		const char *code;
	} who[] = {{7, "ATND"}, {8, "REF"}, {9, "CON"}, {17, "ADM"}};
	for (size_t k = 0; k < sizeof who / sizeof who[0]; k++)
		for (int r = 1; r <= hq_v2_nreps(&x->m, F(pv1, who[k].field)); r++) {
			fj *ref = fx_xcn_ref(x, R(F(pv1, who[k].field), r));
			if (ref == NULL)
				continue;
			fj *type = fx_pack("[{s:[o]}]", "coding",
					   coding("http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
						  who[k].code));
			fx_push(e, "participant", fx_pack("{s:o,s:o}", "type", type, "individual", ref));
		}
}

int
fx_encounter(fx *x, int pv1, int pv2, const char *trigger)
{
	static const char *const cls[][2] = {{"E", "EMER"}, {"I", "IMP"}, {"O", "AMB"}, {"P", "PRENC"}};
	fj *c = fx_text(x, C(F(pv1, 2), 1));
	int valued = hq_v2_valued(F(pv1, 19)) || hq_v2_valued(F(pv1, 44)) ||
		     (c && strcmp(fj_str(c), "N") != 0);
	if (!valued) {
		fj_drop(c);
		return 0;
	}
	fj *e = fj_object();
	const char *status = "unknown";
	if (!strcmp(trigger, "A01") || !strcmp(trigger, "A02") || !strcmp(trigger, "A04"))
		status = "in-progress";
	else if (!strcmp(trigger, "A03"))
		status = "finished";
	else if (!strcmp(trigger, "A11"))
		status = "cancelled";
	else if (hq_v2_valued(F(pv1, 45)))
		status = "finished";
	else if (hq_v2_valued(F(pv1, 44)))
		status = "in-progress";
	fj_set(e, "status", fj_string(status));
	if (c) {
		const char *act = LOOKUP(cls, c, NULL);
		fj_set(e, "class",
		       act ? coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", act)
			   : coding("http://terminology.hl7.org/CodeSystem/v2-0004", fj_str(c)));
		fj_drop(c);
	} else {
		fj_set(e, "class", coding("http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "UNK"));
	}
	fx_push(e, "identifier", fx_cx(x, R(F(pv1, 19), 1)));
	set_subject(x, e, "subject");
	encounter_participants(x, e, pv1);
	fj *period = fj_object();
	fx_set(period, "start", fx_time_of(x, pv1, 44, C(R(F(pv1, 44), 1), 1), 't'));
	fx_set(period, "end", fx_time_of(x, pv1, 45, C(R(F(pv1, 45), 1), 1), 't'));
	fx_set(e, "period", period);
	fj *loc = fx_pl_ref(x, F(pv1, 3));
	if (loc)
		fx_push(e, "location", fx_pack("{s:o}", "location", loc));
	fx_set(e, "serviceType", cwe_table(x, F(pv1, 10), "http://terminology.hl7.org/CodeSystem/v2-0069"));
	fj *h = fj_object();
	fx_set(h, "admitSource", cwe_table(x, F(pv1, 14), "http://terminology.hl7.org/CodeSystem/v2-0023"));
	fx_set(h, "dischargeDisposition",
	       cwe_table(x, F(pv1, 36), "http://terminology.hl7.org/CodeSystem/v2-0112"));
	fx_set(e, "hospitalization", h);
	if (pv2 >= 0)
		fx_push(e, "reasonCode", fx_cwe(x, F(pv2, 3)));
	if (x->failed) {
		fj_drop(e);
		return -1;
	}
	char key[300];
	cxkey(x, R(F(pv1, 19), 1), key, sizeof key);
	if (fx_add(x, "Encounter", key, pv1, e, x->encounter_ref) == NULL)
		return -1;
	snprintf(x->encounter_key, sizeof x->encounter_key, "%s", key[0] ? key : x->encounter_ref);
	return 0;
}

/* --- AllergyIntolerance, Condition, Coverage -------------------------------- */

static int
need_patient(fx *x, int i, const char *what)
{
	if (x->patient_ref[0])
		return 0;
	fx_fail(x, SEG(i), 0, what);
	return -1;
}

int
fx_allergy(fx *x, int al1)
{
	static const char *const cat[][2] = {{"DA", "medication"},  {"MA", "medication"},
					     {"FA", "food"},	    {"EA", "environment"},
					     {"AA", "environment"}, {"PA", "environment"}};
	static const char *const crit[][2] = {{"SV", "high"}, {"MO", "low"}, {"MI", "low"}};
	if (need_patient(x, al1, "no PID before it: AllergyIntolerance.patient is required"))
		return -1;
	fj *a = fj_object();
	fj_set(a, "clinicalStatus",
	       fx_pack("{s:[o]}", "coding",
		       coding("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active")));
	const char *c = LOOKUP(cat, fx_text(x, C(F(al1, 2), 1)), NULL);
	if (c)
		fj_set(a, "category", fx_pack("[s]", c));
	const char *k = LOOKUP(crit, fx_text(x, C(F(al1, 4), 1)), NULL);
	if (k)
		fj_set(a, "criticality", fj_string(k));
	fx_set(a, "code", fx_cwe(x, F(al1, 3)));
	set_subject(x, a, "patient");
	for (int r = 1; r <= hq_v2_nreps(&x->m, F(al1, 5)); r++) {
		fj *t = fx_text(x, C(R(F(al1, 5), r), 2));
		if (t == NULL)
			t = fx_text(x, C(R(F(al1, 5), r), 1));
		if (t)
			fx_push(a, "reaction", fx_pack("{s:[{s:o}]}", "manifestation", "text", t));
	}
	fx_set(a, "onsetDateTime", fx_time_of(x, al1, 6, F(al1, 6), 't'));
	char key[600], code[200];
	codekey(x, F(al1, 3), code, sizeof code);
	snprintf(key, sizeof key, "pt|%s|%s", x->patient_key, code);
	char ref[64];
	if (x->failed) {
		fj_drop(a);
		return -1;
	}
	return fx_add(x, "AllergyIntolerance", strcmp(code, "^") ? key : NULL, al1, a, ref) ? 0 : -1;
}

int
fx_condition(fx *x, int dg1)
{
	if (need_patient(x, dg1, "no PID before it: Condition.subject is required"))
		return -1;
	fj *c = fj_object();
	fj_set(c, "category",
	       fx_pack("[{s:[o]}]", "coding",
		       coding("http://terminology.hl7.org/CodeSystem/condition-category", "encounter-diagnosis")));
	fj *code = fx_cwe(x, F(dg1, 3)), *desc = code ? NULL : fx_text(x, F(dg1, 4));
	fx_set(c, "code", code ? code : desc ? fx_pack("{s:o}", "text", desc) : NULL);
	set_subject(x, c, "subject");
	set_encounter(x, c, "encounter");
	fx_set(c, "onsetDateTime", fx_time_of(x, dg1, 5, C(F(dg1, 5), 1), 't'));
	char key[700], ck[200];
	codekey(x, F(dg1, 3), ck, sizeof ck);
	snprintf(key, sizeof key, "pt|%s|%s|%s", x->patient_key, x->encounter_key, ck);
	char ref[64];
	if (x->failed) {
		fj_drop(c);
		return -1;
	}
	return fx_add(x, "Condition", strcmp(ck, "^") ? key : NULL, dg1, c, ref) ? 0 : -1;
}

int
fx_coverage(fx *x, int in1)
{
	if (need_patient(x, in1, "no PID before it: Coverage.beneficiary is required"))
		return -1;
	fj *payor = fx_org_ref(x, R(F(in1, 4), 1));
	fj *pid = fx_cx(x, R(F(in1, 3), 1));
	if (payor == NULL && pid == NULL) {
		x->nskip++; /* no payor to name: Coverage.payor is required */
		return 0;
	}
	if (payor == NULL)
		payor = fx_pack("{s:s}", "type", "Organization");
	if (pid && fj_get(payor, "identifier") == NULL)
		fj_set(payor, "identifier", pid);
	else
		fj_drop(pid);
	fj *c = fj_object();
	fj_set(c, "status", fj_string("active"));
	fj_set(c, "payor", fx_pack("[o]", payor));
	set_subject(x, c, "beneficiary");
	fj *policy = fx_text(x, F(in1, 36));
	if (policy)
		fx_push(c, "identifier", fx_pack("{s:o}", "value", policy));
	fj *group = fx_text(x, F(in1, 8));
	if (group)
		fx_push(c, "class",
			fx_pack("{s:{s:[o]},s:o}", "type", "coding",
				coding("http://terminology.hl7.org/CodeSystem/coverage-class", "group"),
				"value", group));
	fj *period = fj_object();
	fx_set(period, "start", fx_time_of(x, in1, 12, F(in1, 12), 't'));
	fx_set(period, "end", fx_time_of(x, in1, 13, F(in1, 13), 't'));
	fx_set(c, "period", period);
	char key[700], co[200], pol[120], plan[120];
	cxkey(x, R(F(in1, 3), 1), co, sizeof co);
	fx_keypart(x, F(in1, 36), pol, sizeof pol);
	fx_keypart(x, C(F(in1, 2), 1), plan, sizeof plan);
	snprintf(key, sizeof key, "pt|%s|%s|%s|%s", x->patient_key, co, pol, plan);
	char ref[64];
	if (x->failed) {
		fj_drop(c);
		return -1;
	}
	return fx_add(x, "Coverage", key, in1, c, ref) ? 0 : -1;
}

void
fx_note(fx *x, int nte, fj *r, const char *key)
{
	fj *t = reps_text(x, F(nte, 3));
	if (t)
		fx_push(r, key, fx_pack("{s:o}", "text", t));
}
