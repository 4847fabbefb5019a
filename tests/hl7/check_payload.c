/*
 * check_payload.c - unit tests for hl7/payload.c: the request bodies of the
 * json and google-hl7v2 formats, and MSH-18 to a Content-Type charset.
 */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "hl7/payload.h"
#include "tests/check_util.h"

static const char msg[] = "MSH|^~\\&|APP|FAC|RAPP|RFAC|20260101120000||ADT^A01|C1|P|2.5\rPID|1||123\r";

START_TEST(test_google_body_is_base64_of_the_bytes)
{
	size_t len = 0;
	char *b = hq_payload_google("MSH|", 4, &len);
	ck_assert_ptr_nonnull(b);
	ck_assert_str_eq(b, "{\"message\":{\"data\":\"TVNIfA==\"}}");
	ck_assert_uint_eq(len, strlen(b));
	free(b);
}
END_TEST

START_TEST(test_json_body_metadata_and_message)
{
	hq_payload_meta m = {42,	1767268800123456ull,
			     "lab",	"127.0.0.1",
			     "ADT^A01", "C1",
			     "2.5",	"APP",
			     "FAC",	"RAPP",
			     "RFAC"};
	size_t len = 0;
	char *text = hq_payload_json(&m, msg, sizeof msg - 1, &len);
	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(len, strlen(text));
	json_t *j = json_loads(text, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "id")), 42);
	ck_assert_str_eq(json_string_value(json_object_get(j, "received_at")), "2026-01-01T12:00:00.123456Z");
	ck_assert_str_eq(json_string_value(json_object_get(j, "listener")), "lab");
	ck_assert_str_eq(json_string_value(json_object_get(j, "control_id")), "C1");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "sender"), "facility")), "FAC");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "receiver"), "application")), "RAPP");
	ck_assert(json_is_object(json_object_get(j, "message")));
	ck_assert_ptr_null(json_object_get(j, "raw_base64"));
	json_decref(j);
	free(text);
}
END_TEST

START_TEST(test_json_body_without_json_form_carries_raw_base64)
{
	hq_payload_meta m = {7, 0, "", "", "", "", "", "", "", "", ""};
	size_t len = 0;
	char *text = hq_payload_json(&m, "not hl7", 7, &len);
	ck_assert_ptr_nonnull(text);
	json_t *j = json_loads(text, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert(json_is_null(json_object_get(j, "message")));
	ck_assert_str_eq(json_string_value(json_object_get(j, "raw_base64")), "bm90IGhsNw==");
	ck_assert_str_eq(json_string_value(json_object_get(j, "received_at")), "1970-01-01T00:00:00.000000Z");
	json_decref(j);
	free(text);
}
END_TEST

START_TEST(test_charset_from_msh18)
{
	ck_assert_str_eq(hq_payload_charset("UNICODE UTF-8"), "utf-8");
	ck_assert_str_eq(hq_payload_charset("utf-8"), "utf-8");
	ck_assert_str_eq(hq_payload_charset("ASCII"), "us-ascii");
	ck_assert_str_eq(hq_payload_charset("8859/1"), "iso-8859-1");
	ck_assert_str_eq(hq_payload_charset("8859/15"), "iso-8859-15");
	ck_assert_ptr_null(hq_payload_charset(""));
	ck_assert_ptr_null(hq_payload_charset("ISO IR87"));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("payload");
	TCase *tc = tcase_create("payload");
	tcase_add_test(tc, test_google_body_is_base64_of_the_bytes);
	tcase_add_test(tc, test_json_body_metadata_and_message);
	tcase_add_test(tc, test_json_body_without_json_form_carries_raw_base64);
	tcase_add_test(tc, test_charset_from_msh18);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
