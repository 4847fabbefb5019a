/*
 * check_http.c - unit tests for net/http.c: header values (X-HL7-Control-Id
 * and X-HL7-Message-Type carry the sender's bytes percent-encoded outside
 * visible ASCII, issue 15.6), the request's header lines, and the TLS
 * failure texts.
 */
#include <check.h>
#include <string.h>

#include "net/http.h"
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

static hq_target_conf
target(hq_auth auth)
{
	hq_target_conf t;
	memset(&t, 0, sizeof t);
	t.auth = auth;
	return t;
}

static int
has(const struct curl_slist *h, const char *line)
{
	for (; h; h = h->next)
		if (strcmp(h->data, line) == 0)
			return 1;
	return 0;
}

START_TEST(test_request_header_lines)
{
	hq_target_conf t = target(HQ_AUTH_NONE);
	hq_http_hdrs hb;
	struct curl_slist *h = hq_http_headers(&hb, &t, "application/json", NULL, "k-1", 42, "C 1", "ADT^A01");
	ck_assert_ptr_nonnull(h);
	ck_assert_str_eq(h->data, "Content-Type: application/json");
	ck_assert(has(h, "Idempotency-Key: k-1"));
	ck_assert(has(h, "X-HL7-Message-Id: 42"));
	ck_assert(has(h, "X-HL7-Control-Id: C%201"));
	ck_assert(has(h, "X-HL7-Message-Type: ADT^A01"));
	ck_assert(has(h, "Expect:"));
	ck_assert(!has(h, "Accept: application/fhir+json"));

	t = target(HQ_AUTH_SIGV4); /* SigV4 would sign an Expect: never sent */
	h = hq_http_headers(&hb, &t, "application/fhir+json", "application/fhir+json", "k", 1, "", "");
	ck_assert(has(h, "Accept: application/fhir+json"));
	ck_assert(!has(h, "Expect:"));
}
END_TEST

START_TEST(test_tls_failure_texts)
{
	char out[256];
	ck_assert_int_eq(hq_http_tls_failure_text(CURLE_COULDNT_CONNECT, 0, "", out, sizeof out), 0);
	ck_assert_int_eq(hq_http_tls_failure_text(CURLE_PEER_FAILED_VERIFICATION, 18, "", out, sizeof out), 1);
	ck_assert_str_eq(out, "TLS: self-signed certificate: set ca_file to that certificate (or the CA that signed it)");
	ck_assert_int_eq(hq_http_tls_failure_text(CURLE_PEER_FAILED_VERIFICATION, 10, "", out, sizeof out), 1);
	ck_assert_str_eq(out, "TLS: certificate expired: renew it on the target (ca_file cannot help)");
	ck_assert_int_eq(hq_http_tls_failure_text(CURLE_SSL_CACERT_BADFILE, 0, "", out, sizeof out), 1);
	ck_assert(strstr(out, "ca_file cannot be read") != NULL);
	ck_assert_int_eq(hq_http_tls_failure_text(CURLE_PEER_FAILED_VERIFICATION, 0,
						  "SSL: no alternative certificate subject name matches",
						  out, sizeof out),
			 1);
	ck_assert(strstr(out, "host name not in the certificate") != NULL);
	ck_assert_int_eq(hq_http_tls_failure_text(CURLE_SSL_CONNECT_ERROR, 7, "odd", out, sizeof out), 1);
	ck_assert_str_eq(out, "TLS: odd (verify 7); if the CA is private, set ca_file");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("http");
	tcase_add_test(tc, test_issue15_6_header_values_percent_encoded);
	tcase_add_test(tc, test_request_header_lines);
	tcase_add_test(tc, test_tls_failure_texts);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
