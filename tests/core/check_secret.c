/*
 * check_secret.c - unit tests for core/secret.h: a wiped secret is zeroes
 * (issue 15.5; the daemon's no-core-dump half is in
 * tests/integration/test_hardening.py).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/secret.h"
#include "tests/check_util.h"

START_TEST(test_issue15_5_secret_wipe)
{
	char buf[64];
	static const char zero[64];
	strcpy(buf, "s3cr3t-password");
	memset(buf + 16, 'x', sizeof buf - 16);
	hq_secret_wipe(buf, sizeof buf);
	ck_assert_mem_eq(buf, zero, sizeof buf);
	hq_secret_wipe(NULL, 10); /* NULL is fine */
	hq_secret_free(NULL);
	char *s = strdup("token");
	ck_assert_ptr_nonnull(s);
	hq_secret_free(s); /* ASan: no leak, no overrun */
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("secret");
	TCase *tc = tcase_create("secret");
	tcase_add_test(tc, test_issue15_5_secret_wipe);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
