/*
 * check_auditlog.c - unit tests for net/auditlog.c: the RFC 5424 message
 * of an access-audit event (priority authpriv.notice, UTC timestamp, app
 * name hl7q-audit, the command as MSGID) carries no patient id.
 */
#include <check.h>
#include <string.h>

#include "net/auditlog.h"
#include "tests/check_util.h"

START_TEST(test_rfc5424_message)
{
	hq_audit_event ev;
	char msg[2400];
	uint64_t id = 42;
	hq_audit_event_init(&ev, "hl7q", "show");
	ev.at_us = 1764583200123456ull; /* 2025-12-01T10:00:00.123456Z */
	ev.pid = 77;
	ev.uid = 0;
	snprintf(ev.user, sizeof ev.user, "root");
	snprintf(ev.sudo_user, sizeof ev.sudo_user, "carol");
	snprintf(ev.host, sizeof ev.host, "db1");
	snprintf(ev.patient, sizeof ev.patient, "MRN-555");
	ev.ids = &id;
	ev.nids = 1;
	ev.count = 1;
	size_t n = hq_auditlog_rfc5424(&ev, msg, sizeof msg);
	ck_assert_uint_eq(n, strlen(msg));
	ck_assert_str_eq(msg, "<85>1 2025-12-01T10:00:00.123456Z db1 hl7q-audit 77 show - "
			      "user=root(0) sudo_user=carol host=db1 program=hl7q command=show patient=yes ids=42 count=1");
	ck_assert_ptr_null(strstr(msg, "MRN-555"));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("auditlog");
	TCase *tc = tcase_create("auditlog");
	tcase_add_test(tc, test_rfc5424_message);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
