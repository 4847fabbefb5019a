/*
 * check_msg.c - unit tests for hl7/msg.c, the MSH parser, over hand-made
 * cases, every test message and, when present, the extra corpus.
 */
#include <check.h>
#include <string.h>

#include "core/error.h"
#include "hl7/msg.h"
#include "tests/check_util.h"

static hq_msh m;

static int
parse(const char *s)
{
	return hq_msh_parse(s, strlen(s), &m);
}

static int
eq(hq_str s, const char *lit)
{
	return hq_str_eq(s, lit);
}

START_TEST(test_fields)
{
	ck_assert_int_eq(parse("MSH|^~\\&|SA|SF|RA|RF|20260101120000||ADT^A01^ADT_A01|C123|P|2.5.1^USA|||AL|NE||UNICODE UTF-8\r"
			       "EVN|A01\rPID|1||MRN1^^^HOSP&1.2.3&ISO^MR~OTHER^^^X||DOE^JANE\r"),
			 0);
	ck_assert(m.have_delims && m.fs == '|' && m.cs == '^' && m.rs == '~' && m.es == '\\' && m.ss == '&');
	ck_assert_int_eq(m.ts, 0);
	ck_assert(eq(m.sending_app, "SA") && eq(m.sending_fac, "SF"));
	ck_assert(eq(m.receiving_app, "RA") && eq(m.receiving_fac, "RF"));
	ck_assert(eq(m.datetime, "20260101120000"));
	ck_assert(eq(m.type_code, "ADT") && eq(m.trigger, "A01") && eq(m.structure, "ADT_A01"));
	ck_assert(eq(m.control_id, "C123") && eq(m.processing_id, "P"));
	ck_assert(eq(m.version_id, "2.5.1") && eq(m.version, "2.5.1^USA"));
	ck_assert(eq(m.accept_ack, "AL") && eq(m.app_ack, "NE"));
	ck_assert(eq(m.charset, "UNICODE UTF-8"));
	ck_assert(eq(m.patient_id, "MRN1") && eq(m.patient_authority, "HOSP&1.2.3&ISO"));
	ck_assert_int_eq(m.segments, 3);
}
END_TEST

START_TEST(test_line_endings)
{
	const char *v[] = {"\r", "\n", "\r\n"};
	for (int i = 0; i < 3; i++) {
		char buf[256];
		snprintf(buf, sizeof buf, "MSH|^~\\&|A|B|C|D|1||ORU^R01|X1|P|2.3%sPID|1||P9%sOBX|1%s",
			 v[i], v[i], v[i]);
		ck_assert_int_eq(parse(buf), 0);
		ck_assert(eq(m.patient_id, "P9"));
		ck_assert_int_eq(m.segments, 3);
	}
}
END_TEST

START_TEST(test_other_delimiters)
{
	ck_assert_int_eq(parse("MSH#^~\\&#A#B#C#D#1##ADT^A04#Z9#P#2.4\r"), 0);
	ck_assert(m.fs == '#' && eq(m.control_id, "Z9") && eq(m.trigger, "A04"));
	/* v2.7 truncation character */
	ck_assert_int_eq(parse("MSH|^~\\&#|A|B|C|D|1||ADT$A04|Z9|P|2.7\r"), 0);
	ck_assert_int_eq(m.ts, '#');
	/* three encoding characters (no subcomponent), as HAPI's 1993 samples */
	ck_assert_int_eq(parse("MSH|^~}|A|B|C|D|1||ADT^A04|Z9|P|2.2\r"), 0);
	ck_assert(m.ss == 0 && m.es == '}');
}
END_TEST

START_TEST(test_refusals)
{
	ck_assert_int_eq(parse("hello world"), HQ_EPARSE);
	ck_assert_int_eq(m.err_code, HQ_0357_SEGMENT_SEQUENCE);
	ck_assert(!m.have_delims);
	ck_assert_int_eq(parse(""), HQ_EPARSE);
	ck_assert_int_eq(parse("MSH|&&&&|A|B|C|D|1||ADT^A01|1|P|2.5\r"), HQ_EPARSE);
	ck_assert_int_eq(m.err_code, HQ_0357_DATA_TYPE);
	ck_assert_int_eq(parse("MSH|^~\\&%$|A|B|C|D|1||ADT^A01|1|P|2.5\r"), HQ_EPARSE); /* six */
	ck_assert_int_eq(parse("MSH|^~|A|B|C|D|1||ADT^A01|1|P|2.5\r"), HQ_EPARSE);	/* two */
	ck_assert_int_eq(parse("MSH|^~\\&|A|B|C|D|1|||1|P|2.5\r"), HQ_EPARSE);
	ck_assert_int_eq(m.err_code, HQ_0357_REQUIRED_MISSING);
	ck_assert_str_eq(m.err_loc, "MSH^1^9");
	ck_assert(m.have_delims);
	ck_assert_int_eq(parse("MSH|^~\\&|A|B|C|D|1||ADT^A01||P|2.5\r"), HQ_EPARSE);
	ck_assert_str_eq(m.err_loc, "MSH^1^10");
	ck_assert_int_eq(parse("MSH|^~\\&|A|B|C|D|1||ADT^A01|1||2.5\r"), 0); /* as HAPI */
	ck_assert_int_eq(parse("MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|\r"), HQ_EPARSE);
	ck_assert_str_eq(m.err_loc, "MSH^1^12");
	ck_assert_int_eq(parse("MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|1.0\r"), HQ_EPARSE);
	ck_assert_int_eq(m.err_code, HQ_0357_UNSUPPORTED_VERSION);
	ck_assert_int_eq(parse("MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPIDX|1\r"), HQ_EPARSE);
	ck_assert_int_eq(m.err_code, HQ_0357_SEGMENT_SEQUENCE);
	ck_assert_int_eq(parse("junk\rMSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\r"), HQ_EPARSE);
	ck_assert_int_eq(parse("MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\r\x01\x02\x03\r"), HQ_EPARSE);
}
END_TEST

START_TEST(test_batch)
{
	ck_assert_int_eq(parse("FHS|^~\\&|FA|FF|FR|FRF|20260101||||F77\rBHS|^~\\&|BA\r"
			       "MSH|^~\\&|A|B|C|D|1||ORU^R01|M1|P|2.5.1\rPID|1||PB\r"
			       "MSH|^~\\&|A|B|C|D|1||ORU^R01|M2|P|2.5.1\rBTS|2\rFTS|1\r"),
			 0);
	ck_assert(m.is_batch);
	ck_assert(eq(m.control_id, "F77") && eq(m.sending_app, "FA"));
	ck_assert(eq(m.type_code, "ORU") && eq(m.version_id, "2.5.1") && eq(m.patient_id, "PB"));
	ck_assert_int_eq(parse("BHS|^~\\&|BA\rBTS|0\r"), HQ_EPARSE);
}
END_TEST

/* Every corpus message is accepted; its MSH-10 and MSH-9 are found. */
START_TEST(test_corpus_accepted)
{
	size_t n;
	corpus_file *files = corpus_load(0, &n);
	for (size_t i = 0; i < n; i++) {
		int rc = hq_msh_parse(files[i].data, files[i].len, &m);
		ck_assert_msg(rc == 0, "%s refused: %s", files[i].path, m.err_text);
		ck_assert_msg(m.control_id.n > 0 && m.type_code.n > 0, "%s", files[i].path);
		free(files[i].data);
	}
	free(files);
}
END_TEST

/* Malformed inputs are refused -- except two of the extra corpus's that are
 * structurally valid HL7: trailing empty fields, and an empty MSH-11 (the
 * project's own messages hold both as valid ones).  See deploy/doc/hl7.md,
 * "What is refused". */
START_TEST(test_corpus_malformed)
{
	size_t n, refused = 0, by_design = 0;
	corpus_file *files = corpus_load(1, &n);
	for (size_t i = 0; i < n; i++) {
		int rc = hq_msh_parse(files[i].data, files[i].len, &m);
		if (strstr(files[i].path, "invalid-trailing-empty-fields") || strstr(files[i].path, "NO_MSH11")) {
			ck_assert_int_eq(rc, 0);
			by_design++;
		} else if (rc != 0)
			refused++;
		else
			ck_abort_msg("%s accepted", files[i].path);
		free(files[i].data);
	}
	ck_assert_uint_eq(refused + by_design, n);
	ck_assert_uint_gt(refused, 0);
	free(files);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("msg");
	TCase *tc = tcase_create("msh");
	tcase_add_test(tc, test_fields);
	tcase_add_test(tc, test_line_endings);
	tcase_add_test(tc, test_other_delimiters);
	tcase_add_test(tc, test_refusals);
	tcase_add_test(tc, test_batch);
	tcase_add_test(tc, test_corpus_accepted);
	tcase_add_test(tc, test_corpus_malformed);
	suite_add_tcase(s, tc);
	int failed = run_suite(s);
	return failed;
}
