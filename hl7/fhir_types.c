/*
 * fhir_types.c - HL7 v2 datatypes -> FHIR R4 datatypes, after the V2-to-FHIR
 * guide's datatype maps (CX, EI, XPN, XAD, XTN, CWE/CE/CNE, TS/DTM, XCN, XON,
 * PL, HD).  Each returns NULL when nothing in the source is valued, so no
 * empty object reaches a resource.
 *
 * Coding systems: the names of HL7 table 0396 that senders use map to their
 * FHIR URIs, HL7nnnn to terminology.hl7.org's v2 tables, OIDs to urn:oid:,
 * URIs stay; any other name is left out of Coding.system (the code and its
 * display stay), never replaced by a made-up URI.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fhir_int.h"
#include "msg.h"

#define C(v, n) fx_comp(x, (v), (n))

void
fx_cat(char *out, size_t cap, ...)
{
	va_list ap;
	size_t o = 0;
	va_start(ap, cap);
	for (const char *p; (p = va_arg(ap, const char *)) != NULL;) {
		size_t n = strlen(p);
		if (n > cap - 1 - o)
			n = cap - 1 - o;
		memcpy(out + o, p, n);
		o += n;
	}
	va_end(ap);
	out[o] = 0;
}

/* One value of fx_pack's format at *f; NULL (with *bad set) when an
 * argument was NULL.  Every "o" argument is consumed, also after a failure. */
static fj *
pack_value(const char **f, va_list *ap, int *bad)
{
	char c = *(*f)++;
	if (c == 's') {
		const char *v = va_arg(*ap, const char *);
		fj *j = NULL;
		if (**f == '#') {
			(*f)++;
			int n = va_arg(*ap, int);
			j = v && !*bad ? fj_stringn(v, (size_t)n) : NULL;
		} else {
			j = v && !*bad ? fj_string(v) : NULL;
		}
		if (j == NULL)
			*bad = 1;
		return j;
	}
	if (c == 'o' || c == 'O') {
		fj *v = va_arg(*ap, fj *);
		if (v == NULL || *bad) {
			if (c == 'o')
				fj_drop(v);
			*bad = 1;
			return NULL;
		}
		return v; /* O: shared, as the arena owns all */
	}
	char close = c == '{' ? '}' : ']';
	fj *j = *bad ? NULL : c == '{' ? fj_object() : fj_array();
	if (j == NULL)
		*bad = 1;
	while (**f && **f != close) {
		if (**f == ',' || **f == ':') {
			(*f)++;
			continue;
		}
		const char *key = NULL;
		if (c == '{') {
			(*f)++; /* 's' */
			key = va_arg(*ap, const char *);
			while (**f == ':')
				(*f)++;
		}
		fj *v = pack_value(f, ap, bad);
		if (*bad) {
			fj_drop(v);
			continue;
		}
		if (c == '{')
			fj_add(j, key, v); /* a format names each key once */
		else
			fj_append(j, v);
	}
	if (**f)
		(*f)++;
	if (*bad) {
		fj_drop(j);
		return NULL;
	}
	return j;
}

fj *
fx_pack(const char *fmt, ...)
{
	va_list ap;
	int bad = 0;
	va_start(ap, fmt);
	fj *j = pack_value(&fmt, &ap, &bad);
	va_end(ap);
	return j;
}

fj *
fx_time_of(fx *x, int i, int n, hq_str raw, char kind)
{
	x->badtime = 0;
	fj *t = fx_time(x, raw, kind);
	if (x->badtime)
		fx_fail(x, x->m.seg[i], n, "not a date/time (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])");
	return t;
}

/* The decoded text of raw in x->tmp, its length; 0 when raw is not valued
 * or decodes to nothing, or x->tmp cannot grow.  Valid until the next
 * decoding.  May be no UTF-8: see decoded(). */
static size_t
decode(fx *x, hq_str raw)
{
	if (!hq_v2_valued(raw))
		return 0;
	size_t need = 2 * raw.n + 1;
	if (need > x->tmpcap) {
		char *p = realloc(x->tmp, need);
		if (p == NULL)
			return 0;
		x->tmp = p;
		x->tmpcap = need;
	}
	return hq_v2_decode(&x->m, raw, x->tmp, x->tmpcap);
}

hq_str
fx_comp(fx *x, hq_str v, int c)
{
	char cs = x->m.cs;
	if (c < 1 || cs == 0)
		return hq_v2_comp(&x->m, v, c);
	if (x->comp.p != v.p || x->comp.n != v.n) {
		int k = 0;
		x->comp.p = v.p;
		x->comp.n = v.n;
		x->comp.start[k++] = v.p;
		for (size_t i = 0; i < v.n && k < FX_NC + 1; i++)
			if (v.p[i] == cs)
				x->comp.start[k++] = v.p + i + 1;
		x->comp.nc = k;
		x->comp.more = k == FX_NC + 1;
	}
	const char *end = v.p + v.n;
	int k = c - 1;
	if (k + 1 < x->comp.nc)
		return (hq_str){x->comp.start[k], (size_t)(x->comp.start[k + 1] - 1 - x->comp.start[k])};
	if (x->comp.more)
		return hq_v2_comp(&x->m, v, c);
	if (k + 1 == x->comp.nc)
		return (hq_str){x->comp.start[k], (size_t)(end - x->comp.start[k])};
	return (hq_str){end, 0};
}

fj *
fx_text(fx *x, hq_str raw)
{
	size_t n = decode(x, raw);
	return n ? fj_stringn(x->tmp, n) : NULL; /* NULL too when no UTF-8 */
}

/* decode(), 0 also when the text is no UTF-8 (what fx_text refuses): the
 * text in x->tmp without a copy in the arena. */
static size_t
decoded(fx *x, hq_str raw)
{
	size_t n = decode(x, raw);
	return n && hq_utf8_valid(x->tmp, n) ? n : 0;
}

void
fx_keypart(fx *x, hq_str raw, char *out, size_t cap)
{
	size_t n = decoded(x, raw);
	if (n > cap - 1)
		n = cap - 1; /* cut as fx_cat cuts */
	if (n)
		memcpy(out, x->tmp, n); /* x->tmp may be NULL when n is 0 */
	out[n] = 0;
}

/* True when v is NULL, or an empty object or array (which FHIR forbids):
 * then v is freed and nothing is to be added. */
static int
dropped_empty(fj *v)
{
	if (v == NULL)
		return 1;
	if ((fj_is(v, FJ_OBJECT) || fj_is(v, FJ_ARRAY)) && fj_size(v) == 0) {
		fj_drop(v);
		return 1;
	}
	return 0;
}

void
fx_set(fj *obj, const char *key, fj *v)
{
	if (dropped_empty(v))
		return;
	fj_set(obj, key, v);
}

void
fx_push(fj *obj, const char *key, fj *v)
{
	if (dropped_empty(v))
		return;
	fj *a = fj_get(obj, key);
	if (a == NULL) {
		a = fj_array();
		fj_set(obj, key, a);
	}
	fj_append(a, v);
}

void
fx_set_text(fx *x, fj *obj, const char *key, hq_str raw)
{
	fx_set(obj, key, fx_text(x, raw));
}

void
fx_set_code(fx *x, fj *obj, const char *key, hq_str raw)
{
	size_t n = decoded(x, raw), o = 0;
	/* FHIR code: no leading/trailing blanks, single spaces inside (in
	 * place: the text only shrinks) */
	char *c = x->tmp;
	for (size_t i = 0; i < n; i++) {
		char ch = c[i] == '\t' || c[i] == '\n' ? ' ' : c[i];
		if (ch == ' ' && (o == 0 || c[o - 1] == ' '))
			continue;
		c[o++] = ch;
	}
	while (o > 0 && c[o - 1] == ' ')
		o--;
	if (o)
		fj_set(obj, key, fj_stringn(c, o));
}

static const struct {
	const char *name, *uri;
} systems[] = {
	{"LN", "http://loinc.org"},
	{"LOINC", "http://loinc.org"},
	{"SCT", "http://snomed.info/sct"},
	{"SNM", "http://snomed.info/sct"},
	{"SNOMED", "http://snomed.info/sct"},
	{"SNOMED-CT", "http://snomed.info/sct"},
	{"SNOMEDCT", "http://snomed.info/sct"},
	{"I9", "http://hl7.org/fhir/sid/icd-9-cm"},
	{"I9C", "http://hl7.org/fhir/sid/icd-9-cm"},
	{"I9CM", "http://hl7.org/fhir/sid/icd-9-cm"},
	{"I10", "http://hl7.org/fhir/sid/icd-10"},
	{"I10C", "http://hl7.org/fhir/sid/icd-10-cm"},
	{"ICD10CM", "http://hl7.org/fhir/sid/icd-10-cm"},
	{"I10P", "http://www.cms.gov/Medicare/Coding/ICD10"},
	{"CVX", "http://hl7.org/fhir/sid/cvx"},
	{"MVX", "http://terminology.hl7.org/CodeSystem/MVX"},
	{"NDC", "http://hl7.org/fhir/sid/ndc"},
	{"RXNORM", "http://www.nlm.nih.gov/research/umls/rxnorm"},
	{"RXN", "http://www.nlm.nih.gov/research/umls/rxnorm"},
	{"UCUM", "http://unitsofmeasure.org"},
	{"C4", "http://www.ama-assn.org/go/cpt"},
	{"CPT", "http://www.ama-assn.org/go/cpt"},
	{"CPT4", "http://www.ama-assn.org/go/cpt"},
	{"HCPCS", "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"},
	{"HCPT", "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"},
	{"NPI", "http://hl7.org/fhir/sid/us-npi"},
	{"CDCREC", "urn:oid:2.16.840.1.113883.6.238"},
	{"NUCC", "http://nucc.org/provider-taxonomy"},
	{"ISO3166", "urn:iso:std:iso:3166"},
	{"ISO+", "urn:iso:std:iso:11073:10101"},
	{"NCIT", "http://ncimeta.nci.nih.gov"},
};

static int
is_oid(const char *s)
{
	if (!(s[0] >= '0' && s[0] <= '2') || s[1] != '.')
		return 0;
	for (const char *p = s + 1; *p; p++) {
		if (*p == '.') {
			if (p[1] < '0' || p[1] > '9' || (p[1] == '0' && p[2] >= '0' && p[2] <= '9'))
				return 0;
		} else if (*p < '0' || *p > '9') {
			return 0;
		}
	}
	return 1;
}

const char *
fx_system_uri(const char *name, char *buf, size_t cap)
{
	if (name == NULL || *name == 0)
		return NULL;
	int first = name[0] | 0x20; /* a letter's lower case: most names are ruled out here */
	for (size_t i = 0; i < sizeof systems / sizeof systems[0]; i++)
		if ((systems[i].name[0] | 0x20) == first && strcasecmp(name, systems[i].name) == 0)
			return systems[i].uri;
	if (strncasecmp(name, "HL7", 3) == 0 && strlen(name) == 7 && strspn(name + 3, "0123456789") == 4) {
		fx_cat(buf, cap, "http://terminology.hl7.org/CodeSystem/v2-", name + 3, (char *)NULL);
		return buf;
	}
	if (is_oid(name)) {
		fx_cat(buf, cap, "urn:oid:", name, (char *)NULL);
		return buf;
	}
	if (strncmp(name, "http://", 7) == 0 || strncmp(name, "https://", 8) == 0 ||
	    strncmp(name, "urn:", 4) == 0) {
		if (strchr(name, ' '))
			return NULL;
		snprintf(buf, cap, "%s", name);
		return buf;
	}
	return NULL;
}

/* Coding of the triplet starting at component c of cwe. */
static fj *
coding_at(fx *x, hq_str cwe, int c)
{
	fj *k = fj_object();
	char buf[256];
	fx_set_code(x, k, "code", C(cwe, c));
	if (fj_get(k, "code") == NULL) {
		fj_drop(k);
		return NULL;
	}
	fj *sys = fx_text(x, C(cwe, c + 2));
	const char *uri = sys ? fx_system_uri(fj_str(sys), buf, sizeof buf) : NULL;
	if (uri)
		fj_set(k, "system", fj_string(uri));
	fj_drop(sys);
	fx_set_text(x, k, "display", C(cwe, c + 1));
	return k;
}

fj *
fx_coding(fx *x, hq_str cwe)
{
	return coding_at(x, cwe, 1);
}

fj *
fx_cwe(fx *x, hq_str cwe)
{
	if (!hq_v2_valued(cwe))
		return NULL;
	fj *cc = fj_object();
	fx_push(cc, "coding", coding_at(x, cwe, 1));
	fx_push(cc, "coding", coding_at(x, cwe, 4));
	fx_push(cc, "coding", coding_at(x, cwe, 10));
	fx_set_text(x, cc, "text", C(cwe, 9));
	if (fj_get(cc, "text") == NULL && fj_get(cc, "coding") == NULL)
		fx_set_text(x, cc, "text", C(cwe, 2));
	if (fj_size(cc) == 0) {
		fj_drop(cc);
		return NULL;
	}
	return cc;
}

/* HD -> a system URI: its universal id (HD-2) as its type (HD-3) says, or an HD-1 that is one. */
fj *
fx_hd_system(fx *x, hq_str hd)
{
	char buf[512], type[16] = "";
	fj *uid = fx_text(x, hq_v2_sub(&x->m, hd, 2));
	fj *t = fx_text(x, hq_v2_sub(&x->m, hd, 3));
	if (t)
		snprintf(type, sizeof type, "%s", fj_str(t));
	fj_drop(t);
	const char *uri = NULL;
	if (uid) {
		const char *u = fj_str(uid);
		if (strcasecmp(type, "UUID") == 0 && strlen(u) == 36) {
			snprintf(buf, sizeof buf, "urn:uuid:%s", u);
			uri = buf;
		} else {
			uri = fx_system_uri(u, buf, sizeof buf);
		}
		fj_drop(uid);
	}
	if (uri == NULL) {
		fj *ns = fx_text(x, hq_v2_sub(&x->m, hd, 1));
		if (ns) {
			const char *s = fj_str(ns);
			if (is_oid(s) || strncmp(s, "urn:", 4) == 0 || strncmp(s, "http", 4) == 0)
				uri = fx_system_uri(s, buf, sizeof buf);
			fj_drop(ns);
		}
	}
	return uri ? fj_string(uri) : NULL;
}

/* An identifier: value, system from the HD, else the HD's namespace as the assigner. */
static fj *
identifier(fx *x, hq_str value, hq_str hd_as_comp)
{
	fj *id = fj_object();
	fx_set_text(x, id, "value", value);
	if (fj_get(id, "value") == NULL) {
		fj_drop(id);
		return NULL;
	}
	/* the HD is a component here: its parts are subcomponents */
	fj *sys = fx_hd_system(x, hd_as_comp);
	if (sys) {
		fj_set(id, "system", sys);
	} else {
		fj *ns = fx_text(x, hq_v2_sub(&x->m, hd_as_comp, 1));
		if (ns)
			fj_set(id, "assigner", fx_pack("{s:o}", "display", ns));
	}
	return id;
}

fj *
fx_cx(fx *x, hq_str cx)
{
	fj *id = identifier(x, C(cx, 1), C(cx, 4));
	if (id == NULL)
		return NULL;
	hq_str type = C(cx, 5);
	if (hq_v2_valued(type)) {
		fj *k = fj_object();
		fj_set(k, "system", fj_string("http://terminology.hl7.org/CodeSystem/v2-0203"));
		fx_set_code(x, k, "code", type);
		fj_set(id, "type", fx_pack("{s:[o]}", "coding", k));
	}
	return id;
}

fj *
fx_ei(fx *x, hq_str ei)
{
	/* EI-2..4 are the HD of the assigning authority, as components */
	fj *id = fj_object();
	fx_set_text(x, id, "value", C(ei, 1));
	if (fj_get(id, "value") == NULL) {
		fj_drop(id);
		return NULL;
	}
	char buf[512], type[16] = "";
	fj *t = fx_text(x, C(ei, 4)), *uid = fx_text(x, C(ei, 3)), *ns = fx_text(x, C(ei, 2));
	if (t)
		snprintf(type, sizeof type, "%s", fj_str(t));
	const char *uri = NULL;
	if (uid && strcasecmp(type, "UUID") == 0) {
		snprintf(buf, sizeof buf, "urn:uuid:%s", fj_str(uid));
		uri = buf;
	} else if (uid) {
		uri = fx_system_uri(fj_str(uid), buf, sizeof buf);
	}
	if (uri == NULL && ns && (is_oid(fj_str(ns)) || strncmp(fj_str(ns), "urn:", 4) == 0))
		uri = fx_system_uri(fj_str(ns), buf, sizeof buf);
	if (uri)
		fj_set(id, "system", fj_string(uri));
	else if (ns)
		fj_set(id, "assigner", fx_pack("{s:O}", "display", ns));
	fj_drop(t);
	fj_drop(uid);
	fj_drop(ns);
	return id;
}

static const char *
name_use(const char *c)
{
	static const char *map[][2] = {{"L", "official"}, {"D", "usual"},    {"A", "usual"},
				       {"M", "maiden"},	  {"N", "nickname"}, {"S", "anonymous"},
				       {"B", "official"}, {"C", "official"}, {"T", "temp"},
				       {"U", "temp"},	  {"I", "usual"},    {"P", "usual"},
				       {"R", "official"}};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (strcmp(c, map[i][0]) == 0)
			return map[i][1];
	return NULL;
}

fj *
fx_xpn(fx *x, hq_str xpn)
{
	fj *n = fj_object();
	fx_set_text(x, n, "family", hq_v2_sub(&x->m, C(xpn, 1), 1));
	fx_push(n, "given", fx_text(x, C(xpn, 2)));
	fx_push(n, "given", fx_text(x, C(xpn, 3)));
	fx_push(n, "prefix", fx_text(x, C(xpn, 5)));
	fx_push(n, "suffix", fx_text(x, C(xpn, 4)));
	fx_push(n, "suffix", fx_text(x, C(xpn, 6)));
	if (fj_size(n) == 0) {
		fj_drop(n);
		return NULL;
	}
	fj *u = fx_text(x, C(xpn, 7));
	const char *use = u ? name_use(fj_str(u)) : NULL;
	if (use)
		fj_set(n, "use", fj_string(use));
	fj_drop(u);
	return n;
}

fj *
fx_xad(fx *x, hq_str xad)
{
	fj *a = fj_object();
	fx_push(a, "line", fx_text(x, hq_v2_sub(&x->m, C(xad, 1), 1)));
	fx_push(a, "line", fx_text(x, C(xad, 2)));
	fx_set_text(x, a, "city", C(xad, 3));
	fx_set_text(x, a, "district", C(xad, 9));
	fx_set_text(x, a, "state", C(xad, 4));
	fx_set_text(x, a, "postalCode", C(xad, 5));
	fx_set_text(x, a, "country", C(xad, 6));
	if (fj_size(a) == 0) {
		fj_drop(a);
		return NULL;
	}
	fj *t = fx_text(x, C(xad, 7));
	if (t) {
		const char *c = fj_str(t);
		if (strcmp(c, "H") == 0 || strcmp(c, "P") == 0)
			fj_set(a, "use", fj_string("home"));
		else if (strcmp(c, "B") == 0 || strcmp(c, "O") == 0)
			fj_set(a, "use", fj_string("work"));
		else if (strcmp(c, "C") == 0)
			fj_set(a, "use", fj_string("temp"));
		else if (strcmp(c, "BA") == 0)
			fj_set(a, "use", fj_string("old"));
		else if (strcmp(c, "M") == 0)
			fj_set(a, "type", fj_string("postal"));
		fj_drop(t);
	}
	return a;
}

fj *
fx_xtn(fx *x, hq_str xtn, const char *use)
{
	fj *cp = fj_object();
	char uc[16] = "", eq[16] = "";
	fj *u = fx_text(x, C(xtn, 2)), *e = fx_text(x, C(xtn, 3));
	if (u)
		snprintf(uc, sizeof uc, "%s", fj_str(u));
	if (e)
		snprintf(eq, sizeof eq, "%s", fj_str(e));
	fj_drop(u);
	fj_drop(e);
	const char *system = "phone";
	fj *email = fx_text(x, C(xtn, 4));
	if (email || strcmp(uc, "NET") == 0 || strcasecmp(eq, "Internet") == 0 || strcmp(eq, "X.400") == 0) {
		system = "email";
		if (email)
			fj_set(cp, "value", email);
	} else if (strcmp(eq, "FX") == 0) {
		system = "fax";
	} else if (strcmp(eq, "BP") == 0 || strcmp(uc, "BPN") == 0) {
		system = "pager";
	}
	if (fj_get(cp, "value") == NULL) {
		fj *area = fx_text(x, C(xtn, 6)), *local = fx_text(x, C(xtn, 7));
		if (local) {
			char v[256];
			fj *cc = fx_text(x, C(xtn, 5)), *ext = fx_text(x, C(xtn, 8));
			snprintf(v, sizeof v, "%s%s%s%s%s%s%s%s", cc ? "+" : "", cc ? fj_str(cc) : "",
				 cc ? " " : "", area ? fj_str(area) : "", area ? " " : "",
				 fj_str(local), ext ? " x" : "", ext ? fj_str(ext) : "");
			fj_set(cp, "value", fj_string(v));
			fj_drop(cc);
			fj_drop(ext);
		} else {
			fx_set_text(x, cp, "value", C(xtn, 1));
		}
		fj_drop(area);
		fj_drop(local);
	}
	if (fj_get(cp, "value") == NULL) {
		fj_drop(cp);
		return NULL;
	}
	fj_set(cp, "system", fj_string(system));
	if (strcmp(eq, "CP") == 0)
		use = "mobile";
	else if (strcmp(uc, "PRN") == 0 || strcmp(uc, "VHN") == 0)
		use = "home";
	else if (strcmp(uc, "WPN") == 0)
		use = "work";
	if (use)
		fj_set(cp, "use", fj_string(use));
	return cp;
}

/* Joins the decoded texts of the valued comps with single spaces. */
static fj *
joined(fx *x, hq_str *parts, int n)
{
	char out[512];
	size_t o = 0;
	out[0] = 0;
	for (int i = 0; i < n; i++) {
		fj *t = fx_text(x, parts[i]);
		if (t == NULL)
			continue;
		o += (size_t)snprintf(out + o, sizeof out - o, "%s%s", o ? " " : "", fj_str(t));
		if (o >= sizeof out)
			o = sizeof out - 1;
		fj_drop(t);
	}
	return o ? fj_string(out) : NULL;
}


/* A logical reference r (identifier and/or display) of type, or NULL (r
 * dropped) when r holds neither: never an empty object. */
static fj *
typed_ref(fj *r, const char *type)
{
	if (fj_size(r) == 0) {
		fj_drop(r);
		return NULL;
	}
	fj_set(r, "type", fj_string(type));
	return r;
}

fj *
fx_xcn_ref(fx *x, hq_str xcn)
{
	fj *r = fj_object();
	fj *id = identifier(x, C(xcn, 1), C(xcn, 9));
	if (id)
		fj_set(r, "identifier", id);
	hq_str parts[] = {C(xcn, 6), C(xcn, 3), C(xcn, 4), hq_v2_sub(&x->m, C(xcn, 2), 1), C(xcn, 5)};
	fx_set(r, "display", joined(x, parts, 5));
	return typed_ref(r, "Practitioner");
}

fj *
fx_org_ref(fx *x, hq_str xon)
{
	fj *r = fj_object();
	fj *id = identifier(x, hq_v2_valued(C(xon, 10)) ? C(xon, 10) : C(xon, 3), C(xon, 6));
	if (id)
		fj_set(r, "identifier", id);
	fx_set_text(x, r, "display", C(xon, 1));
	return typed_ref(r, "Organization");
}

fj *
fx_pl_ref(fx *x, hq_str pl)
{
	hq_str parts[] = {hq_v2_sub(&x->m, C(pl, 4), 1), C(pl, 1), C(pl, 2), C(pl, 3)};
	fj *d = joined(x, parts, 4);
	if (d == NULL)
		return NULL;
	return fx_pack("{s:o,s:s}", "display", d, "type", "Location");
}

/* Normalizes an HL7 NM into a FHIR decimal ("+007.50" -> "7.50"); 0 when it is one. */
static int
decimal(const char *s, size_t n, char *out, size_t cap)
{
	size_t i = 0, o = 0;
	while (i < n && s[i] == ' ')
		i++;
	while (n > i && s[n - 1] == ' ')
		n--;
	if (i < n && (s[i] == '+' || s[i] == '-')) {
		if (s[i] == '-')
			out[o++] = '-';
		i++;
	}
	size_t int_start = i;
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++;
	size_t int_end = i, frac = 0;
	if (i < n && s[i] == '.') {
		i++;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++, frac++;
	}
	if (i != n || (int_end == int_start && frac == 0) || n - int_start + 3 > cap)
		return -1;
	while (int_start + 1 < int_end && s[int_start] == '0')
		int_start++;
	if (int_end == int_start)
		out[o++] = '0';
	memcpy(out + o, s + int_start, int_end - int_start);
	o += int_end - int_start;
	if (frac) {
		out[o++] = '.';
		memcpy(out + o, s + int_end + 1, frac);
		o += frac;
	}
	out[o] = 0;
	if (strcmp(out, "-0") == 0)
		strcpy(out, "0");
	return 0;
}

int
fx_set_decimal(fx *x, fj *obj, const char *key, hq_str raw)
{
	char d[64];
	fj *t = fx_text(x, raw);
	if (t == NULL)
		return -1;
	int rc = decimal(fj_str(t), fj_strlen(t), d, sizeof d);
	fj_drop(t);
	if (rc != 0)
		return -1;
	fj_set(obj, key, fx_number(d));
	return 0;
}

/* n digits at s into *v; 0 when they are digits. */
static int
digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

/* Two decimal digits of v (0..99) at p; returns p + 2. */
static char *
two(char *p, int v)
{
	p[0] = (char)('0' + v / 10);
	p[1] = (char)('0' + v % 10);
	return p + 2;
}

fj *
fx_time(fx *x, hq_str raw, char kind)
{
	char s[64];
	fj *t = fx_text(x, raw);
	if (t == NULL)
		return NULL;
	size_t tn = fj_strlen(t) < sizeof s - 1 ? fj_strlen(t) : sizeof s - 1;
	memcpy(s, fj_str(t), tn);
	s[tn] = 0;
	fj_drop(t);
	/* the sender's offset, when it gave one */
	char off[8] = "";
	size_t n = strcspn(s, "+-");
	if (s[n]) {
		int oh, om;
		if (strlen(s + n) != 5 || digits(s + n + 1, 2, &oh) || digits(s + n + 3, 2, &om) ||
		    oh > 14 || om > 59)
			goto bad;
		memcpy(off, (char[]){s[n], s[n + 1], s[n + 2], ':', s[n + 3], s[n + 4], 0}, 7);
		s[n] = 0;
	}
	size_t len = strlen(s);
	char *frac = strchr(s, '.');
	size_t main_len = frac ? (size_t)(frac - s) : len;
	int y, mo = 1, d = 1, h = 0, mi = 0, se = 0;
	if (main_len < 4 || main_len > 14 || main_len % 2 || digits(s, 4, &y) ||
	    (main_len >= 6 && (digits(s + 4, 2, &mo) || mo < 1 || mo > 12)) ||
	    (main_len >= 8 && (digits(s + 6, 2, &d) || d < 1 || d > 31)) ||
	    (main_len >= 10 && (digits(s + 8, 2, &h) || h > 23)) ||
	    (main_len >= 12 && (digits(s + 10, 2, &mi) || mi > 59)) ||
	    (main_len >= 14 && (digits(s + 12, 2, &se) || se > 60)) || y < 1)
		goto bad;
	if (frac && (main_len != 14 || strlen(frac) < 2 || strlen(frac) > 10 ||
		     strspn(frac + 1, "0123456789") != strlen(frac + 1)))
		goto bad;
	char out[64], *p = two(two(out, y / 100), y % 100);
	if (main_len <= 8 || kind == 'd') {
		if (kind == 'i')
			return NULL;
		if (main_len >= 6)
			*p++ = '-', p = two(p, mo);
		if (main_len >= 8)
			*p++ = '-', p = two(p, d);
		return fj_stringn(out, (size_t)(p - out));
	}
	if (kind == 'i' && main_len < 12)
		return NULL; /* an instant needs a time; seconds are padded */
	if (!off[0] && x->msh_off[0])
		memcpy(off, x->msh_off, sizeof off);
	if (!off[0]) {
		int o = 0; /* no zone configured: UTC */
		if (x->o->tz)
			o = hq_tz_offset_local(x->o->tz, hq_tz_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + se);
		off[0] = o < 0 ? '-' : '+';
		two(off + 1, abs(o) / 3600 % 100);
		off[3] = ':';
		two(off + 4, abs(o) / 60 % 60);
		off[6] = 0;
	}
	/* yyyy-mm-ddThh:mm:ss, the fraction (at most 10), the offset (6): fits */
	*p++ = '-', p = two(p, mo);
	*p++ = '-', p = two(p, d);
	*p++ = 'T', p = two(p, h);
	*p++ = ':', p = two(p, mi);
	*p++ = ':', p = two(p, se);
	size_t fl = frac ? strlen(frac) : 0, ol = strlen(off);
	memcpy(p, frac ? frac : "", fl);
	memcpy(p + fl, off, ol);
	return fj_stringn(out, (size_t)(p - out) + fl + ol);
bad:
	x->badtime = 1;
	return NULL;
}

fj *
fx_number(const char *digits_)
{
	char b[80];
	snprintf(b, sizeof b, "\001N:%s", digits_);
	return fj_string(b);
}
