/*
 * check_delivery_headers.c - unit tests for core/daemon/delivery.c's header values:
 * X-HL7-Control-Id and X-HL7-Message-Type carry the sender's bytes
 * percent-encoded outside visible ASCII (issue 15.6).
 */
#include <check.h>
#include <string.h>

#include "core/daemon/delivery.h"
#include "tests/check_util.h"

START_TEST(test_issue15_6_header_values_percent_encoded)
{
	char out[64];
	hq_header_value("ADT^A01^ADT_A01", out, sizeof out);
	ck_assert_str_eq(out, "ADT^A01^ADT_A01");
	hq_header_value("A B\r\nX-Evil: 1", out, sizeof out);
	ck_assert_str_eq(out, "A%20B%0D%0AX-Evil:%201");
	hq_header_value("caf\xc3\xa9%\x7f\x01", out, sizeof out);
	ck_assert_str_eq(out, "caf%C3%A9%25%7F%01");
	/* cut before an escape, never inside one */
	hq_header_value("abc def", out, 6);
	ck_assert_str_eq(out, "abc");
	hq_header_value("", out, sizeof out);
	ck_assert_str_eq(out, "");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("delivery_headers");
	TCase *tc = tcase_create("headers");
	tcase_add_test(tc, test_issue15_6_header_values_percent_encoded);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
