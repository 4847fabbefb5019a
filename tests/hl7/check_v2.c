/*
 * check_v2.c - unit tests for hl7/v2.c: segment splitting (CR, LF, CRLF,
 * blank lines), the standard's field numbering (MSH-1 is the separator),
 * repetitions, components, subcomponents, and decoding: delimiter, hex and
 * formatting escapes, ISO 8859-1 read as such, Unicode spaces, trimming.
 */
#include <check.h>
#include <string.h>

#include "core/error.h"
#include "hl7/v2.h"
#include "tests/check_util.h"

static int
eq(hq_str s, const char *lit)
{
	return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

START_TEST(test_split_and_numbering)
{
	const char *m = "MSH|^~\\&|APP|FAC|||20260101||ADT^A01|C1|P|2.5\r\n\r\nPID|1||A~B^^^H&1.2&ISO\nZZZ\r";
	hq_v2 v;
	ck_assert_int_eq(hq_v2_open(&v, m, strlen(m)), 0);
	ck_assert_int_eq(v.nseg, 3);
	ck_assert(hq_v2_is(v.seg[0], "MSH"));
	ck_assert(eq(hq_v2_field(&v, v.seg[0], 1), "|"));
	ck_assert(eq(hq_v2_field(&v, v.seg[0], 2), "^~\\&"));
	ck_assert(eq(hq_v2_field(&v, v.seg[0], 3), "APP"));
	ck_assert(eq(hq_v2_comp(&v, hq_v2_field(&v, v.seg[0], 9), 2), "A01"));
	hq_str f3 = hq_v2_field(&v, v.seg[1], 3);
	ck_assert_int_eq(hq_v2_nreps(&v, f3), 2);
	ck_assert(eq(hq_v2_rep(&v, f3, 1), "A"));
	hq_str hd = hq_v2_comp(&v, hq_v2_rep(&v, f3, 2), 4);
	ck_assert(eq(hq_v2_sub(&v, hd, 2), "1.2"));
	ck_assert(eq(hq_v2_sub(&v, hd, 4), ""));
	ck_assert(eq(hq_v2_field(&v, v.seg[1], 30), ""));
	ck_assert_int_eq(hq_v2_nreps(&v, hq_v2_field(&v, v.seg[1], 4)), 0);
	hq_v2_close(&v);
	ck_assert_int_eq(hq_v2_open(&v, "PID|1\r", 6), HQ_EPARSE);
}
END_TEST

static const char *
dec(hq_v2 *v, const char *raw)
{
	static char out[256];
	hq_v2_decode(v, (hq_str){raw, strlen(raw)}, out, sizeof out);
	return out;
}

START_TEST(test_decode)
{
	const char *m = "MSH|^~\\&|A\r";
	hq_v2 v;
	ck_assert_int_eq(hq_v2_open(&v, m, strlen(m)), 0);
	ck_assert_str_eq(dec(&v, "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f"), "a|b^c&d~e\\f");
	ck_assert_str_eq(dec(&v, "x\\X414243\\y"), "xABCy");
	ck_assert_str_eq(dec(&v, "one\\.br\\two\\.sp\\three"), "one\ntwo\nthree");
	ck_assert_str_eq(dec(&v, "\\H\\bold\\N\\ \\.in+4\\x\\Cxxyy\\"), "bold x");
	ck_assert_str_eq(dec(&v, "  padded\t "), "padded");
	ck_assert_str_eq(dec(&v, "a\x01\x02"
				 "b"),
			 "ab");
	ck_assert_str_eq(dec(&v, "stray\\esc"), "stray\\esc");
	ck_assert_str_eq(dec(&v, "nb\xc2\xa0sp\xe2\x80\x89x\xc2\xa0"), "nb sp x");
	hq_v2_close(&v);
	/* not UTF-8: ISO 8859-1 */
	const char *l = "MSH|^~\\&|A\rPID|1||M\xfcller\r";
	ck_assert_int_eq(hq_v2_open(&v, l, strlen(l)), 0);
	ck_assert_int_eq(v.latin1, 1);
	ck_assert_str_eq(dec(&v, "M\xfcller"), "M\xc3\xbcller");
	hq_v2_close(&v);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("v2");
	TCase *tc = tcase_create("v2");
	tcase_add_test(tc, test_split_and_numbering);
	tcase_add_test(tc, test_decode);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
