/*
 * check_ack.c - unit tests for hl7/ack.c, the ACK builder, over hand-made
 * cases and an ACK for every corpus message.
 */
#include <check.h>
#include <string.h>

#include "hl7/ack.h"
#include "hl7/msg.h"
#include "tests/check_util.h"

static char out[8192];

static int
build(const char *msg, hq_ack_kind kind, int code, const char *text, const char *loc)
{
	hq_msh m;
	hq_msh_parse(msg, strlen(msg), &m);
	int n = hq_ack_build(&m, kind, code, text, loc, "20260101120000.000+0000", "ACK1", out, sizeof out);
	if (n >= 0)
		out[n] = 0;
	return n;
}

START_TEST(test_positive_v25)
{
	ck_assert_int_gt(build("MSH|^~\\&|SA|SF|RA|RF|20260101||ADT^A01^ADT_A01|C1|P|2.5.1\rPID|1\r",
			       HQ_ACK_ACCEPT, 0, NULL, NULL),
			 0);
	ck_assert_str_eq(out, "MSH|^~\\&|RA|RF|SA|SF|20260101120000.000+0000||ACK^A01^ACK|ACK1|P|2.5.1\r"
			      "MSA|AA|C1\r");
}
END_TEST

START_TEST(test_positive_v23)
{
	build("MSH|^~\\&|SA|SF|RA|RF|20260101||ORU^R01|C2|T|2.3\r", HQ_ACK_ACCEPT, 0, NULL, NULL);
	ck_assert_str_eq(out, "MSH|^~\\&|RA|RF|SA|SF|20260101120000.000+0000||ACK^R01|ACK1|T|2.3\r"
			      "MSA|AA|C2\r");
}
END_TEST

START_TEST(test_enhanced)
{
	hq_msh m;
	const char *msg = "MSH|^~\\&|SA|SF|RA|RF|20260101||ORU^R01|C3|P|2.5|||NE|AL\r";
	hq_msh_parse(msg, strlen(msg), &m);
	ck_assert(hq_ack_enhanced(&m));
	ck_assert_str_eq(hq_ack_code(&m, HQ_ACK_ACCEPT), "CA");
	ck_assert_str_eq(hq_ack_code(&m, HQ_ACK_REJECT), "CR");
	ck_assert(!hq_ack_wanted(&m, HQ_ACK_ACCEPT));
	ck_assert(hq_ack_wanted(&m, HQ_ACK_ERROR)); /* never silence on refusal */
	const char *er = "MSH|^~\\&|SA|SF|RA|RF|20260101||ORU^R01|C3|P|2.5|||ER\r";
	hq_msh_parse(er, strlen(er), &m);
	ck_assert(!hq_ack_wanted(&m, HQ_ACK_ACCEPT));
	const char *su = "MSH|^~\\&|SA|SF|RA|RF|20260101||ORU^R01|C3|P|2.5|||SU\r";
	hq_msh_parse(su, strlen(su), &m);
	ck_assert(hq_ack_wanted(&m, HQ_ACK_ACCEPT));
	const char *orig = "MSH|^~\\&|SA|SF|RA|RF|20260101||ORU^R01|C3|P|2.5\r";
	hq_msh_parse(orig, strlen(orig), &m);
	ck_assert(!hq_ack_enhanced(&m));
	ck_assert_str_eq(hq_ack_code(&m, HQ_ACK_ACCEPT), "AA");
}
END_TEST

START_TEST(test_negative_v25_err)
{
	build("MSH|^~\\&|SA|SF|RA|RF|20260101||ADT^A01|C4|P|2.5\r", HQ_ACK_ERROR, 101,
	      "Required field missing", "MSH^1^9");
	ck_assert_str_eq(out, "MSH|^~\\&|RA|RF|SA|SF|20260101120000.000+0000||ACK^A01^ACK|ACK1|P|2.5\r"
			      "MSA|AE|C4\r"
			      "ERR||MSH^1^9|101^Required field missing^HL70357|E\r");
}
END_TEST

START_TEST(test_negative_v23_err)
{
	build("MSH|^~\\&|SA|SF|RA|RF|20260101||ADT^A01|C5|P|2.3\r", HQ_ACK_REJECT, 207,
	      "Journal commit failed", "");
	ck_assert_str_eq(out, "MSH|^~\\&|RA|RF|SA|SF|20260101120000.000+0000||ACK^A01|ACK1|P|2.3\r"
			      "MSA|AR|C5|Journal commit failed\r"
			      "ERR|^^^207&Journal commit failed&HL70357\r");
}
END_TEST

START_TEST(test_sender_delimiters)
{
	build("MSH#$%@!#SA#SF#RA#RF#1##ADT$A08#C6#P#2.4\r", HQ_ACK_ACCEPT, 0, NULL, NULL);
	ck_assert_str_eq(out, "MSH#$%@!#RA#RF#SA#SF#20260101120000.000+0000##ACK$A08#ACK1#P#2.4\rMSA#AA#C6\r");
}
END_TEST

START_TEST(test_no_delimiters)
{
	build("\x01\x02garbage", HQ_ACK_REJECT, 100, "Not HL7", "");
	ck_assert_str_eq(out, "MSH|^~\\&|||||20260101120000.000+0000||ACK|ACK1|P|2.5\r"
			      "MSA|AR|\r"
			      "ERR|||100^Not HL7^HL70357|E\r");
}
END_TEST

START_TEST(test_too_small)
{
	hq_msh m;
	const char *msg = "MSH|^~\\&|SA|SF|RA|RF|20260101||ADT^A01|C4|P|2.5\r";
	hq_msh_parse(msg, strlen(msg), &m);
	ck_assert_int_eq(hq_ack_build(&m, HQ_ACK_ACCEPT, 0, NULL, NULL, "x", "y", out, 10), -1);
}
END_TEST

/* An ACK for every corpus message: parses as HL7 itself, echoes MSH-10. */
START_TEST(test_corpus_acks)
{
	size_t n;
	corpus_file *files = corpus_load(0, &n);
	for (size_t i = 0; i < n; i++) {
		hq_msh m, a;
		ck_assert_int_eq(hq_msh_parse(files[i].data, files[i].len, &m), 0);
		int len = hq_ack_build(&m, HQ_ACK_ACCEPT, 0, NULL, NULL, "20260101120000", "A1", out, sizeof out);
		ck_assert_int_gt(len, 0);
		ck_assert_int_eq(hq_msh_parse(out, (size_t)len, &a), 0);
		ck_assert(a.fs == m.fs && a.cs == m.cs && a.rs == m.rs && a.es == m.es);
		ck_assert(a.sending_app.n == m.receiving_app.n &&
			  memcmp(a.sending_app.p, m.receiving_app.p, m.receiving_app.n) == 0);
		ck_assert(hq_str_eq(a.type_code, "ACK"));
		char msa[600];
		snprintf(msa, sizeof msa, "\rMSA%c%s%c%.*s\r", m.fs, hq_ack_code(&m, HQ_ACK_ACCEPT),
			 m.fs, (int)m.control_id.n, m.control_id.p);
		ck_assert_msg(strstr(out, msa) != NULL, "%s: MSA not as expected", files[i].path);
		free(files[i].data);
	}
	free(files);
}
END_TEST

/* issue 15.6: ERR texts and MSH-7 escaped with the sender's escape character,
 * whatever its delimiters ('.' or '+' among them: both are in every MSH-7). */
START_TEST(test_issue15_6_escaped_with_senders_delimiters)
{
	/* component separator '.': MSH-7's fraction would split it */
	build("MSH|.~\\&|SA|SF|RA|RF|20260101||ADT.A01|C1|P|2.5.1\r", HQ_ACK_REJECT, 207,
	      "commit failed. retry", NULL);
	ck_assert_msg(strstr(out, "|20260101120000\\S\\000+0000||") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "ERR|||207.commit failed\\S\\ retry.HL70357|E\r") != NULL, "%s", out);
	/* field separator '+' */
	build("MSH+^~\\&+SA+SF+RA+RF+20260101++ADT^A01+C2+P+2.5.1\r", HQ_ACK_REJECT, 207, "a+b", NULL);
	ck_assert_msg(strstr(out, "+20260101120000.000\\F\\0000++") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "ERR+++207^a\\F\\b^HL70357+E\r") != NULL, "%s", out);
	/* escape '!' and subcomponent '+': every delimiter in a text, a CR too */
	build("MSH|^~!+|SA|SF|RA|RF|20260101||ADT^A01|C3|P|2.5.1\r", HQ_ACK_ERROR, 101, "x|y^z~w!v+u\rt", NULL);
	ck_assert_msg(strstr(out, "|20260101120000.000!T!0000||") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "^x!F!y!S!z!R!w!E!v!T!u!X0D!t^HL70357") != NULL, "%s", out);
	/* before 2.5 the text is in MSA-3 and ERR-1.4.2: escaped there as well */
	build("MSH|^~\\&|SA|SF|RA|RF|20260101||ORU^R01|C4|P|2.3\r", HQ_ACK_REJECT, 207, "a&b|c", NULL);
	ck_assert_msg(strstr(out, "MSA|AR|C4|a\\T\\b\\F\\c\r") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "&a\\T\\b\\F\\c&HL70357") != NULL, "%s", out);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("ack");
	TCase *tc = tcase_create("build");
	tcase_add_test(tc, test_positive_v25);
	tcase_add_test(tc, test_positive_v23);
	tcase_add_test(tc, test_enhanced);
	tcase_add_test(tc, test_negative_v25_err);
	tcase_add_test(tc, test_negative_v23_err);
	tcase_add_test(tc, test_sender_delimiters);
	tcase_add_test(tc, test_no_delimiters);
	tcase_add_test(tc, test_too_small);
	tcase_add_test(tc, test_corpus_acks);
	tcase_add_test(tc, test_issue15_6_escaped_with_senders_delimiters);
	suite_add_tcase(s, tc);
	int failed = run_suite(s);
	return failed;
}
