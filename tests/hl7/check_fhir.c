/*
 * check_fhir.c - unit tests for hl7/fhir*.c, one or more per mapping rule
 * of issue 13 and per datatype: deterministic PHI-free ids and business
 * keys, one Bundle of PUTs, times (precision, sender's offset, MSH-7's,
 * the configured zone with DST), repetitions and escapes, message structure
 * (OBX/NTE under their OBR), OBX value types, statuses, never an empty
 * value, refusals that name segment and field and no data, and the corpus.
 */
#include <check.h>
#include <mbedtls/md.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "hl7/fhir.h"
#include "tests/check_util.h"

static hq_fhir_opts opts;
static hq_tz *chicago;

static void
setup(void)
{
	char err[256];
	memset(&opts, 0, sizeof opts);
	for (int i = 0; i < 32; i++)
		opts.key[i] = (unsigned char)(0xa0 + i);
	if (chicago == NULL)
		ck_assert_int_eq(hq_tz_load("America/Chicago", NULL, &chicago, err, sizeof err), 0);
	opts.tz = chicago;
}

#define MSH(type, ts) "MSH|^~\\&|APP|FAC|RCV|RFAC|" ts "||" type "|CTRL1|P|2.5.1\r"
#define PID "PID|1||MRN77^^^HOSP&1.2.3.4&ISO^MR||Doe^Jane^Q^^Dr^^L||19700101|F\r"

static json_t *
conv(const char *m)
{
	json_t *b = NULL;
	char why[256];
	int rc = hq_fhir_convert(m, strlen(m), &opts, &b, NULL, why, sizeof why);
	ck_assert_msg(rc == 0, "conversion failed: %s", why);
	return b;
}

/* The n-th (from 0) resource of type in bundle b, or NULL. */
static json_t *
res(json_t *b, const char *type, int n)
{
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(b, "entry"), i, e)
	{
		json_t *r = json_object_get(e, "resource");
		if (strcmp(json_string_value(json_object_get(r, "resourceType")), type) == 0 && n-- == 0)
			return r;
	}
	return NULL;
}

static const char *
str(json_t *j, const char *path)
{
	/* "a.b.0.c": objects by key, arrays by index */
	char buf[256], *save, *p;
	snprintf(buf, sizeof buf, "%s", path);
	for (p = strtok_r(buf, ".", &save); p && j; p = strtok_r(NULL, ".", &save))
		j = json_is_array(j) ? json_array_get(j, (size_t)atoi(p)) : json_object_get(j, p);
	return json_string_value(j);
}

static int
count(json_t *b, const char *type)
{
	int n = 0;
	while (res(b, type, n))
		n++;
	return n;
}

START_TEST(test_ids_deterministic_and_phi_free)
{
	const char *m = MSH("ADT^A01", "20260101120000") PID;
	json_t *a = conv(m), *b = conv(m);
	const char *id = str(res(a, "Patient", 0), "id");
	ck_assert_str_eq(id, str(res(b, "Patient", 0), "id"));
	regex_t re;
	regcomp(&re, "^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", REG_EXTENDED);
	ck_assert_int_eq(regexec(&re, id, 0, NULL, 0), 0);
	regfree(&re);
	ck_assert_ptr_null(strstr(id, "77"));
	/* HMAC-SHA-256(key, "Patient|MRN77|1.2.3.4") as Python's hmac module computes it */
	ck_assert_str_eq(id, "42302b8c-add7-870e-b554-e93c963d597e");
	/* another site key: other ids */
	opts.key[0] ^= 1;
	json_t *c = conv(m);
	ck_assert_str_ne(id, str(res(c, "Patient", 0), "id"));
	/* every entry a PUT to Type/id */
	json_t *e = json_array_get(json_object_get(a, "entry"), 0);
	char url[128];
	snprintf(url, sizeof url, "Patient/%s", id);
	ck_assert_str_eq(str(e, "request.method"), "PUT");
	ck_assert_str_eq(str(e, "request.url"), url);
	ck_assert_str_eq(str(a, "type"), "transaction");
	json_decref(a);
	json_decref(b);
	json_decref(c);
}
END_TEST

/* The id of "Type|key" as RFC 2104 and mbedTLS's own HMAC make it. */
static void
expected_id(const char *type_key, char out[37])
{
	unsigned char mac[32];
	ck_assert_int_eq(mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), opts.key, 32,
					 (const unsigned char *)type_key, strlen(type_key), mac),
			 0);
	mac[6] = (unsigned char)((mac[6] & 0x0f) | 0x80);
	mac[8] = (unsigned char)((mac[8] & 0x3f) | 0x80);
	int o = 0;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		o += sprintf(out + o, "%02x", mac[i]);
	}
}

/* Ids by the pre-keyed HMAC of fhir.c equal a one-shot mbedtls_md_hmac
 * for business keys of every length from 1 to 119: the
 * SHA-256 padding crosses its block boundaries (55/56, 64, 119/120 bytes). */
START_TEST(test_ids_every_key_length)
{
	for (int len = 1; len <= 119; len++) {
		char m[512], mrn[128], tk[256], want[37];
		memset(mrn, 'M', (size_t)len);
		mrn[len] = 0;
		snprintf(m, sizeof m, MSH("ADT^A01", "20240101120000") "PID|1||%s^^^HOSP&1.2.3.4&ISO^MR||Doe^Jane\r",
			 mrn);
		json_t *b = conv(m);
		snprintf(tk, sizeof tk, "Patient|%s|1.2.3.4", mrn);
		expected_id(tk, want);
		ck_assert_msg(strcmp(str(res(b, "Patient", 0), "id"), want) == 0, "key length %d", len);
		json_decref(b);
	}
}
END_TEST

START_TEST(test_patient_business_key)
{
	/* same PID-3 and authority, other demographics and control id: same Patient */
	json_t *a = conv(MSH("ADT^A01", "20260101120000") PID);
	json_t *b = conv("MSH|^~\\&|X|Y|||20260102||ADT^A08|OTHER|P|2.5\r"
			 "PID|1||MRN77^^^HOSP&1.2.3.4&ISO^MR||Roe^Janet||19700102|F\r");
	json_t *c = conv("MSH|^~\\&|X|Y|||20260102||ADT^A08|OTHER|P|2.5\r"
			 "PID|1||MRN77^^^ELSEWHERE^MR||Doe^Jane||19700101|F\r");
	ck_assert_str_eq(str(res(a, "Patient", 0), "id"), str(res(b, "Patient", 0), "id"));
	ck_assert_str_ne(str(res(a, "Patient", 0), "id"), str(res(c, "Patient", 0), "id"));
	json_decref(a);
	json_decref(b);
	json_decref(c);
	/* PID-3 empty: PID-2 is the key, across messages */
	a = conv("MSH|^~\\&|X|Y|||20260102||ADT^A08|M1|P|2.3\rPID|1|EXT5^^^H||Doe\r");
	b = conv("MSH|^~\\&|X|Y|||20260102||ADT^A08|M2|P|2.3\rPID|1|EXT5^^^H||Doe\r");
	ck_assert_str_eq(str(res(a, "Patient", 0), "id"), str(res(b, "Patient", 0), "id"));
	json_decref(a);
	json_decref(b);
}
END_TEST

START_TEST(test_cx_xpn_xad_xtn)
{
	json_t *b = conv(MSH("ADT^A04", "20260101120000") "PID|1||MRN1^^^HOSP&1.2.3.4&ISO^MR~X9^^^LOCALONLY^PI||Doe^Jane^Q^Jr^Dr^MD^L~Smith^J^^^^^M||19700101|M|||"
							  "1 Main St^Apt 2^Town^ST^12345^USA^H~PO Box 9^^Town^ST^12345^^M||"
							  "^PRN^PH^^1^555^1234567^89~^NET^Internet^jane@example.org~^^CP^^^555^7654321|^WPN^FX^^^555^9999999\r");
	json_t *p = res(b, "Patient", 0);
	ck_assert_str_eq(str(p, "identifier.0.value"), "MRN1");
	ck_assert_str_eq(str(p, "identifier.0.system"), "urn:oid:1.2.3.4");
	ck_assert_str_eq(str(p, "identifier.0.type.coding.0.code"), "MR");
	ck_assert_str_eq(str(p, "identifier.0.type.coding.0.system"), "http://terminology.hl7.org/CodeSystem/v2-0203");
	ck_assert_ptr_null(str(p, "identifier.1.system"));
	ck_assert_str_eq(str(p, "identifier.1.assigner.display"), "LOCALONLY");
	ck_assert_str_eq(str(p, "name.0.family"), "Doe");
	ck_assert_str_eq(str(p, "name.0.given.0"), "Jane");
	ck_assert_str_eq(str(p, "name.0.given.1"), "Q");
	ck_assert_str_eq(str(p, "name.0.prefix.0"), "Dr");
	ck_assert_str_eq(str(p, "name.0.suffix.0"), "Jr");
	ck_assert_str_eq(str(p, "name.0.suffix.1"), "MD");
	ck_assert_str_eq(str(p, "name.0.use"), "official");
	ck_assert_str_eq(str(p, "name.1.use"), "maiden");
	ck_assert_str_eq(str(p, "gender"), "male");
	ck_assert_str_eq(str(p, "address.0.line.0"), "1 Main St");
	ck_assert_str_eq(str(p, "address.0.line.1"), "Apt 2");
	ck_assert_str_eq(str(p, "address.0.postalCode"), "12345");
	ck_assert_str_eq(str(p, "address.0.use"), "home");
	ck_assert_str_eq(str(p, "address.1.type"), "postal");
	ck_assert_str_eq(str(p, "telecom.0.system"), "phone");
	ck_assert_str_eq(str(p, "telecom.0.value"), "+1 555 1234567 x89");
	ck_assert_str_eq(str(p, "telecom.0.use"), "home");
	ck_assert_str_eq(str(p, "telecom.1.system"), "email");
	ck_assert_str_eq(str(p, "telecom.1.value"), "jane@example.org");
	ck_assert_str_eq(str(p, "telecom.2.use"), "mobile");
	ck_assert_str_eq(str(p, "telecom.3.system"), "fax");
	ck_assert_str_eq(str(p, "telecom.3.use"), "work");
	json_decref(b);
}
END_TEST

START_TEST(test_cwe_systems)
{
	json_t *b = conv(MSH("ORU^R01", "20260101120000") PID
			 "OBR|1||F1^LAB|24323-8^Panel^LN\r"
			 "OBX|1|CWE|1-8^Code^99LOCAL^882-1^ABO^LN||A^A pos^HL70005~x||||||F\r"
			 "OBX|2|CE|X^Y^2.16.840.1.113883.6.96||S1^Thing^SNM||||||F\r");
	json_t *o1 = res(b, "Observation", 0), *o2 = res(b, "Observation", 1);
	/* an unknown name: code and display kept, no made-up system */
	ck_assert_str_eq(str(o1, "code.coding.0.code"), "1-8");
	ck_assert_ptr_null(str(o1, "code.coding.0.system"));
	ck_assert_str_eq(str(o1, "code.coding.1.system"), "http://loinc.org");
	ck_assert_str_eq(str(o1, "valueCodeableConcept.coding.0.system"),
			 "http://terminology.hl7.org/CodeSystem/v2-0005");
	ck_assert_str_eq(str(o2, "code.coding.0.system"), "urn:oid:2.16.840.1.113883.6.96");
	ck_assert_str_eq(str(o2, "valueCodeableConcept.coding.0.system"), "http://snomed.info/sct");
	json_decref(b);
}
END_TEST

/* Components are read through a per-value index (fx_comp, 24 components
 * deep): a CWE with more components than that, one that ends at its last
 * triplet, and a field whose first repetition starts where the field does
 * read the same as the short form. */
START_TEST(test_components_indexed)
{
	const char *cwe = "C1^Disp1^LN^C2^Disp2^SNM^^^Text^C3^Disp3^HL70005";
	char m[1024], tail[80] = "";
	for (int i = 0; i < 20; i++)
		strcat(tail, "^x");
	snprintf(m, sizeof m,
		 MSH("ORU^R01", "20260101120000") PID "OBR|1||F1^LAB|24323-8^Panel^LN\r"
						      "OBX|1|CWE|%s||A^B^LN~C^D^SNM||||||F\r"
						      "OBX|2|CWE|%s%s||A^B^LN~C^D^SNM||||||F\r",
		 cwe, cwe, tail);
	json_t *b = conv(m);
	json_t *o1 = res(b, "Observation", 0), *o2 = res(b, "Observation", 1);
	ck_assert_ptr_nonnull(o2);
	ck_assert_int_eq(json_equal(json_object_get(o1, "code"), json_object_get(o2, "code")), 1);
	ck_assert_str_eq(str(o1, "code.coding.0.system"), "http://loinc.org");
	ck_assert_str_eq(str(o1, "code.coding.1.system"), "http://snomed.info/sct");
	ck_assert_str_eq(str(o1, "code.coding.2.code"), "C3");
	ck_assert_str_eq(str(o1, "code.coding.2.display"), "Disp3");
	ck_assert_str_eq(str(o1, "code.coding.2.system"), "http://terminology.hl7.org/CodeSystem/v2-0005");
	ck_assert_str_eq(str(o1, "code.text"), "Text");
	ck_assert_str_eq(str(o2, "valueCodeableConcept.coding.0.code"), "A");
	ck_assert_str_eq(str(o2, "valueCodeableConcept.coding.0.system"), "http://loinc.org");
	json_decref(b);
}
END_TEST

START_TEST(test_times)
{
	json_t *b = conv(MSH("ORU^R01", "20260101120000+0100") PID
			 "OBR|1||F1^LAB|24323-8^Panel^LN|||20260715083000.1234-0400\r"
			 "OBX|1|TS|T^T^LN||202607150830||||||F|||2026071508\r"
			 "OBX|2|DT|T2^T^LN||202603||||||F\r");
	/* the sender's own offset and precision */
	ck_assert_str_eq(str(res(b, "DiagnosticReport", 0), "effectiveDateTime"), "2026-07-15T08:30:00.1234-04:00");
	/* no offset: MSH-7's */
	ck_assert_str_eq(str(res(b, "Observation", 0), "valueDateTime"), "2026-07-15T08:30:00+01:00");
	ck_assert_str_eq(str(res(b, "Observation", 0), "effectiveDateTime"), "2026-07-15T08:00:00+01:00");
	/* a date stays a date, at its precision */
	ck_assert_str_eq(str(res(b, "Observation", 1), "valueDateTime"), "2026-03");
	ck_assert_str_eq(str(res(b, "Patient", 0), "birthDate"), "1970-01-01");
	json_decref(b);
	/* neither: fhir_timezone, DST-correct; without one, UTC */
	const char *m = MSH("ORU^R01", "20260101120000") PID "OBR|1||F1^LAB|P^Panel^LN|||20260715083000\r"
							     "OBX|1|TS|T^T^LN||20260115083000||||||F\r";
	b = conv(m);
	ck_assert_str_eq(str(res(b, "DiagnosticReport", 0), "effectiveDateTime"), "2026-07-15T08:30:00-05:00");
	ck_assert_str_eq(str(res(b, "Observation", 0), "valueDateTime"), "2026-01-15T08:30:00-06:00");
	json_decref(b);
	opts.tz = NULL;
	b = conv(m);
	ck_assert_str_eq(str(res(b, "DiagnosticReport", 0), "effectiveDateTime"), "2026-07-15T08:30:00+00:00");
	json_decref(b);
}
END_TEST

START_TEST(test_escapes_and_repetitions)
{
	json_t *b = conv(MSH("ORU^R01", "20260101120000") "PID|1||A1~A2~A3||O\\F\\Brien^Ann\\T\\Marie\r"
							  "OBR|1||F1^LAB|P^Panel^LN\r"
							  "OBX|1|FT|C^C^LN||one\\.br\\two \\S\\ \\R\\ \\E\\ \\X4142\\ \\H\\bold\\N\\||||||F\r"
							  "OBX|2|TX|C2^C^LN||line1~line2||||||F\r");
	json_t *p = res(b, "Patient", 0);
	ck_assert_str_eq(str(p, "identifier.2.value"), "A3");
	ck_assert_str_eq(str(p, "name.0.family"), "O|Brien");
	ck_assert_str_eq(str(p, "name.0.given.0"), "Ann&Marie");
	ck_assert_str_eq(str(res(b, "Observation", 0), "valueString"), "one\ntwo ^ ~ \\ AB bold");
	ck_assert_str_eq(str(res(b, "Observation", 1), "valueString"), "line1\nline2");
	json_decref(b);
	/* ISO 8859-1: by MSH-18, or because the bytes are not UTF-8 */
	b = conv("MSH|^~\\&|A|F|||20260101||ADT^A01|C|P|2.5||||||8859/1\rPID|1||M1||M\xc3\xbcller\r");
	ck_assert_str_eq(str(res(b, "Patient", 0), "name.0.family"), "M\xc3\x83\xc2\xbcller");
	json_decref(b);
	b = conv("MSH|^~\\&|A|F|||20260101||ADT^A01|C|P|2.5\rPID|1||M1||M\xfcller\r");
	ck_assert_str_eq(str(res(b, "Patient", 0), "name.0.family"), "M\xc3\xbcller");
	json_decref(b);
}
END_TEST

START_TEST(test_structure_obx_under_obr)
{
	json_t *b = conv(MSH("ORU^R01", "20260101120000") PID "OBR|1||F1^LAB|P1^Panel one^LN|||||||||||||||||||||F\r"
							      "OBX|1|NM|C1^C^LN||1|||||F\rNTE|1||first note\r"
							      "SPM|1|S1&LAB^S1F&LAB||BLD^Blood^HL70487\r"
							      "OBX|2|NM|C2^C^LN||2||||||F\r"
							      "OBR|2||F2^LAB|P2^Panel two^LN\r"
							      "OBX|1|NM|C1^C^LN||3||||||F\r"
							      "ZXY|1|ignored\r");
	json_t *r1 = res(b, "DiagnosticReport", 0), *r2 = res(b, "DiagnosticReport", 1);
	ck_assert_int_eq(json_array_size(json_object_get(r1, "result")), 2);
	ck_assert_int_eq(json_array_size(json_object_get(r2, "result")), 1);
	ck_assert_int_eq(json_array_size(json_object_get(r1, "specimen")), 1);
	ck_assert_str_eq(str(r1, "status"), "final");
	ck_assert_str_eq(str(r2, "status"), "unknown");
	/* the same OBX-3 under two reports: two Observations */
	ck_assert_int_eq(count(b, "Observation"), 3);
	ck_assert_str_ne(str(res(b, "Observation", 0), "id"), str(res(b, "Observation", 2), "id"));
	ck_assert_str_eq(str(res(b, "Observation", 0), "note.0.text"), "first note");
	char ref[128];
	snprintf(ref, sizeof ref, "Observation/%s", str(res(b, "Observation", 2), "id"));
	ck_assert_str_eq(str(r2, "result.0.reference"), ref);
	snprintf(ref, sizeof ref, "Patient/%s", str(res(b, "Patient", 0), "id"));
	ck_assert_str_eq(str(res(b, "Observation", 1), "subject.reference"), ref);
	json_decref(b);
	hq_fhir_stats st;
	char why[128];
	const char *m = MSH("ORU^R01", "20260101") PID "ZXY|1\rZAB|2\r";
	ck_assert_int_eq(hq_fhir_convert(m, strlen(m), &opts, &b, &st, why, sizeof why), 0);
	ck_assert_int_eq(st.zsegments, 2);
	ck_assert_int_eq(st.entries, 1);
	json_decref(b);
}
END_TEST

START_TEST(test_obx_value_types)
{
	json_t *b = conv(MSH("ORU^R01", "20260101120000") PID "OBR|1||F1^LAB|P^Panel^LN\r"
							      "OBX|1|NM|A^A^LN||+007.50|mg/dL^mg/dL^UCUM||H|||F\r"
							      "OBX|2|SN|B^B^LN||<=^0.5|mg^^UCUM|||||C\r"
							      "OBX|3|SN|C^C^LN||^1^:^64||||||P\r"
							      "OBX|4|SN|D^D^LN||^2^-^5||||||F\r"
							      "OBX|5|NR|E^E^LN||3^7||||||F\r"
							      "OBX|6|ST|F^F^LN||text||||||X\r"
							      "OBX|7|ED|G^G^LN||^AP^PDF^Base64^JVBERi0=||||||F\r"
							      "OBX|8|TM|H^H^LN||0930||||||F\r"
							      "OBX|9|NM|I^I^LN||not a number||||||F\r");
	json_t *o = res(b, "Observation", 0);
	ck_assert_str_eq(str(o, "valueQuantity.unit"), "mg/dL");
	ck_assert_str_eq(str(o, "valueQuantity.system"), "http://unitsofmeasure.org");
	ck_assert_str_eq(str(o, "interpretation.0.coding.0.code"), "H");
	ck_assert_str_eq(str(res(b, "Observation", 1), "valueQuantity.comparator"), "<=");
	ck_assert_str_eq(str(res(b, "Observation", 1), "status"), "corrected");
	ck_assert_ptr_nonnull(json_object_get(json_object_get(res(b, "Observation", 2), "valueRatio"), "denominator"));
	ck_assert_str_eq(str(res(b, "Observation", 2), "status"), "preliminary");
	ck_assert_ptr_nonnull(json_object_get(json_object_get(res(b, "Observation", 3), "valueRange"), "high"));
	ck_assert_ptr_nonnull(json_object_get(json_object_get(res(b, "Observation", 4), "valueRange"), "low"));
	ck_assert_str_eq(str(res(b, "Observation", 5), "valueString"), "text");
	ck_assert_str_eq(str(res(b, "Observation", 5), "status"), "cancelled");
	/* ED: the report's presentedForm, not an Observation */
	ck_assert_str_eq(str(res(b, "DiagnosticReport", 0), "presentedForm.0.contentType"), "application/pdf");
	ck_assert_str_eq(str(res(b, "DiagnosticReport", 0), "presentedForm.0.data"), "JVBERi0=");
	ck_assert_str_eq(str(res(b, "Observation", 6), "valueTime"), "09:30:00");
	ck_assert_str_eq(str(res(b, "Observation", 7), "valueString"), "not a number");
	json_decref(b);
	/* numbers keep the digits the sender wrote, normalized to FHIR's grammar */
	const char *m = MSH("ORU^R01", "20260101") PID "OBR|1||F1^LAB|P^P^LN\rOBX|1|NM|A^A^LN||+007.50||||||F\r"
						       "OBX|2|NM|B^B^LN||-.5||||||F\r";
	char *text, why[128];
	size_t n;
	ck_assert_int_eq(hq_fhir_render(m, strlen(m), &opts, &text, &n, NULL, why, sizeof why), 0);
	ck_assert_ptr_nonnull(strstr(text, "\"valueQuantity\":{\"value\":7.50}"));
	ck_assert_ptr_nonnull(strstr(text, "\"valueQuantity\":{\"value\":-0.5}"));
	ck_assert_int_eq(strlen(text), n);
	free(text);
}
END_TEST

/* Non-zero when j holds an empty string, object or array anywhere. */
static int
has_empty(json_t *j)
{
	if (json_is_string(j))
		return json_string_length(j) == 0;
	if (json_is_array(j)) {
		size_t i;
		json_t *v;
		if (json_array_size(j) == 0)
			return 1;
		json_array_foreach(j, i, v) if (has_empty(v)) return 1;
	}
	if (json_is_object(j)) {
		const char *k;
		json_t *v;
		if (json_object_size(j) == 0)
			return 1;
		json_object_foreach(j, k, v) if (has_empty(v)) return 1;
	}
	return 0;
}

START_TEST(test_never_empty_and_required_valued)
{
	json_t *b = conv(MSH("ADT^A01", "20260101") "PID|1||M1^^^^||^^^^^^|||||^^^^^^~||^^^^|\rPV1|1|I||||||^^^\r"
						    "NK1|1|||\rAL1|1||^^^\rDG1|1||^^^\rOBX|1|ST|X^X^LN||||||||\r");
	ck_assert(!has_empty(b));
	ck_assert_str_eq(str(res(b, "Encounter", 0), "status"), "in-progress");
	ck_assert_str_eq(str(res(b, "Observation", 0), "status"), "unknown");
	ck_assert_ptr_null(json_object_get(res(b, "Patient", 0), "contact"));
	json_decref(b);
}
END_TEST

START_TEST(test_refusals_name_segment_and_field)
{
	static const struct {
		const char *msg;
		int rc;
		const char *why;
	} cases[] = {
		{MSH("ADT^A05", "20260101") PID, HQ_EUNSUPPORTED, "MSH-9: no FHIR mapping for message type ADT^A05"},
		{MSH("ADT^A01", "20260101") "PID|1||SECRET1||Doe||Aug 15, 1942\r", HQ_ECONVERT,
		 "PID[1]-7: not a date/time (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])"},
		{MSH("ORU^R01", "20260101") PID "OBR|1||F|P^P^LN\rOBX|1|ST|||SECRET2\rOBX|2|ST|||SECRET3\r",
		 HQ_ECONVERT, "OBX[1]-3: empty: Observation.code is required"},
		{MSH("ORU^R01", "20260101") PID "OBR|1||F|\r", HQ_ECONVERT,
		 "OBR[1]-4: empty: DiagnosticReport.code is required"},
		{MSH("VXU^V04", "20260101") PID "RXA|0|1||SECRET4|08^HepB^CVX\r", HQ_ECONVERT,
		 "RXA[1]-3: empty: Immunization.occurrence is required"},
		{MSH("ADT^A40", "20260101") PID "MRG|\r", HQ_ECONVERT,
		 "MRG[1]-1: empty: the merged patient's identifier is required"},
		{"PID|1\r", HQ_EPARSE, "MSH-1: no MSH segment with readable delimiters"},
		{"BHS|^~\\&|A\r" MSH("ADT^A01", "20260101") PID "BTS|1\r", HQ_EUNSUPPORTED,
		 "BHS-1: an FHS/BHS batch is not converted (one Bundle per message: send them one by one)"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *b = NULL;
		char why[256];
		int rc = hq_fhir_convert(cases[i].msg, strlen(cases[i].msg), &opts, &b, NULL, why, sizeof why);
		ck_assert_int_eq(rc, cases[i].rc);
		ck_assert_str_eq(why, cases[i].why);
		ck_assert_ptr_null(strstr(why, "SECRET"));
		ck_assert_ptr_null(b);
	}
}
END_TEST

START_TEST(test_max_entries_batch_and_patient_match)
{
	const char *m = MSH("ORU^R01", "20260101") PID
		"OBR|1||F1^LAB|P^P^LN\rOBX|1|NM|A^A^LN||1\rOBX|2|NM|B^B^LN||2\r";
	json_t *b = NULL;
	char why[256];
	opts.max_entries = 3;
	ck_assert_int_eq(hq_fhir_convert(m, strlen(m), &opts, &b, NULL, why, sizeof why), HQ_ETOOBIG);
	ck_assert_str_eq(why, "Bundle of 4 entries exceeds fhir_max_entries 3 (never split)");
	opts.max_entries = 4;
	opts.batch = 1;
	b = conv(m);
	ck_assert_str_eq(str(b, "type"), "batch");
	json_decref(b);
	opts.batch = 0;
	opts.patient_match = 1;
	b = conv(m);
	json_t *e = json_array_get(json_object_get(b, "entry"), 0);
	ck_assert_str_eq(str(e, "request.url"), "Patient?identifier=urn:oid:1.2.3.4%7CMRN77");
	ck_assert_ptr_null(json_object_get(json_object_get(e, "resource"), "id"));
	ck_assert_str_eq(str(res(b, "Observation", 0), "subject.reference"), str(e, "fullUrl"));
	ck_assert_int_eq(strncmp(str(e, "fullUrl"), "urn:uuid:", 9), 0);
	json_decref(b);
}
END_TEST

START_TEST(test_merge_a40)
{
	json_t *b = conv(MSH("ADT^A40", "20260101") PID "MRG|OLD9^^^HOSP&1.2.3.4&ISO^MR\r");
	json_t *now = res(b, "Patient", 0), *old = res(b, "Patient", 1);
	ck_assert(json_is_false(json_object_get(old, "active")));
	ck_assert_str_eq(str(old, "link.0.type"), "replaced-by");
	char ref[128];
	snprintf(ref, sizeof ref, "Patient/%s", str(now, "id"));
	ck_assert_str_eq(str(old, "link.0.other.reference"), ref);
	ck_assert_str_eq(str(now, "link.0.type"), "replaces");
	ck_assert_str_eq(str(old, "identifier.0.value"), "OLD9");
	json_decref(b);
}
END_TEST

START_TEST(test_message_types)
{
	static const struct {
		const char *msg, *type;
		int n;
	} cases[] = {
		{MSH("VXU^V04", "20260101") PID "ORC|RE||IMM1^X\rRXA|0|1|20260101||08^HepB^CVX|0.5|mL^^UCUM||||||||L1||MSD^Merck^MVX|||CP\r"
						"RXR|IM^IM^HL70162\r",
		 "Immunization", 1},
		{MSH("ORM^O01", "20260101") PID "ORC|NW|P1^EHR\rOBR|1|P1^EHR||C^CBC^LN\rORC|CA|P2^EHR\r",
		 "ServiceRequest", 2},
		{MSH("OML^O21", "20260101") PID "ORC|NW|P1^EHR\rOBR|1|P1^EHR||C^CBC^LN\rSPM|1|S1||BLD^Blood^HL70487\r",
		 "Specimen", 1},
		{MSH("SIU^S12", "20260101") "SCH|A1^S|||||||||^^^202601011000^202601011030|||||||||||||||Booked\r" PID
					    "AIP|1||D1^Doc^Dan\r",
		 "Appointment", 1},
		{MSH("MDM^T02", "20260101") PID "TXA|1|DS^Summary^HL70270|TX|||||||||D1^DOCS\rOBX|1|TX|DS||text||||||F\r",
		 "DocumentReference", 1},
		{MSH("ADT^A03", "20260101") PID
		 "PV1|1|I|||||||||||||||||V1^^^H^VN|||||||||||||||||||||||||20260101|20260102\r"
		 "DG1|1||I10^Hyp^I10C\rIN1|1|P^Plan|INS1^^^NAIC|Ins Co\rAL1|1|DA|P^Pen^RXNORM|SV\r",
		 "Condition", 1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *b = conv(cases[i].msg);
		ck_assert_msg(count(b, cases[i].type) == cases[i].n, "case %zu: %d %s", i,
			      count(b, cases[i].type), cases[i].type);
		ck_assert(!has_empty(b));
		json_decref(b);
	}
	json_t *b = conv(cases[1].msg);
	ck_assert_str_eq(str(res(b, "ServiceRequest", 0), "status"), "active");
	ck_assert_str_eq(str(res(b, "ServiceRequest", 1), "status"), "revoked");
	json_decref(b);
	b = conv(cases[5].msg);
	ck_assert_str_eq(str(res(b, "Encounter", 0), "status"), "finished");
	ck_assert_str_eq(str(res(b, "Encounter", 0), "period.end"), "2026-01-02");
	ck_assert_str_eq(str(res(b, "Coverage", 0), "payor.0.display"), "Ins Co");
	ck_assert_str_eq(str(res(b, "AllergyIntolerance", 0), "criticality"), "high");
	json_decref(b);
}
END_TEST

START_TEST(test_corpus)
{
	/* every corpus message converts, is refused as unsupported, or fails with a reason naming segment-field */
	size_t n;
	corpus_file *files = corpus_load(0, &n);
	regex_t re;
	regcomp(&re, "^(MSH-[0-9]+|[A-Z][A-Z0-9]{2}(\\[[0-9]+\\])?-[0-9]+): ", REG_EXTENDED);
	int ok = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *b = NULL;
		char why[256];
		int rc = hq_fhir_convert(files[i].data, files[i].len, &opts, &b, NULL, why, sizeof why);
		if (rc == 0) {
			ok++;
			ck_assert_msg(!has_empty(b), "%s: an empty value", files[i].path);
		} else {
			ck_assert_msg(regexec(&re, why, 0, NULL, 0) == 0, "%s: %s", files[i].path, why);
		}
		json_decref(b);
		free(files[i].data);
	}
	free(files);
	regfree(&re);
	ck_assert(n == 0 || ok > 0);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("fhir");
	TCase *tc = tcase_create("fhir");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_ids_deterministic_and_phi_free);
	tcase_add_test(tc, test_ids_every_key_length);
	tcase_add_test(tc, test_patient_business_key);
	tcase_add_test(tc, test_cx_xpn_xad_xtn);
	tcase_add_test(tc, test_cwe_systems);
	tcase_add_test(tc, test_components_indexed);
	tcase_add_test(tc, test_times);
	tcase_add_test(tc, test_escapes_and_repetitions);
	tcase_add_test(tc, test_structure_obx_under_obr);
	tcase_add_test(tc, test_obx_value_types);
	tcase_add_test(tc, test_never_empty_and_required_valued);
	tcase_add_test(tc, test_refusals_name_segment_and_field);
	tcase_add_test(tc, test_max_entries_batch_and_patient_match);
	tcase_add_test(tc, test_merge_a40);
	tcase_add_test(tc, test_message_types);
	tcase_add_test(tc, test_corpus);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
