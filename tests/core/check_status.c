/*
 * check_status.c - unit tests for core/status.c: the daemon's status file
 * written then read back (the daemon's writer and hl7q's reader are the
 * two sides), its exact text, its mode, a lenient read of a hand-written
 * or older file, and the live-pid test.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/status.h"
#include "tests/check_util.h"

static char dir[64];

static void
setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/hl7q-status-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void
teardown(void)
{
	check_rm_rf(dir);
}

static void
write_text(const char *text)
{
	char path[128];
	snprintf(path, sizeof path, "%s/" HQ_STATUS_FILE, dir);
	FILE *fp = fopen(path, "w");
	ck_assert_ptr_nonnull(fp);
	fputs(text, fp);
	fclose(fp);
}

static char *
read_text(void)
{
	char path[128];
	snprintf(path, sizeof path, "%s/" HQ_STATUS_FILE, dir);
	FILE *fp = fopen(path, "r");
	ck_assert_ptr_nonnull(fp);
	static char buf[4096];
	size_t n = fread(buf, 1, sizeof buf - 1, fp);
	buf[n] = 0;
	fclose(fp);
	return buf;
}

START_TEST(test_write_then_read)
{
	hq_status w = {.pid = 4242, .updated_us = 1795687200123456ull};
	static const struct {
		const char *name;
		int inflight;
		uint64_t stopped;
	} targets[] = {{"ehr", 3, 0}, {"lab-results", 0, 77}, {"fhir", 12, 18446744073709551615ull}};
	static const struct {
		const char *name;
		uint64_t last;
	} listeners[] = {{"adt", 1795687199000000ull}, {"new", 0}};
	for (size_t i = 0; i < 3; i++) {
		hq_status_target *t = hq_status_target_add(&w, targets[i].name);
		t->inflight = targets[i].inflight;
		t->stopped = targets[i].stopped;
	}
	for (size_t i = 0; i < 2; i++)
		hq_status_listener_add(&w, listeners[i].name)->last_message_us = listeners[i].last;
	ck_assert_ptr_eq(hq_status_target_add(&w, "ehr"), &w.targets[0]); /* a name once */
	ck_assert_int_eq(w.ntargets, 3);
	ck_assert_int_eq(hq_status_write(dir, &w), 0);
	hq_status_free(&w);
	ck_assert_ptr_null(w.targets);

	/* the format, to the byte: what older hl7q releases read too */
	ck_assert_str_eq(read_text(), "pid 4242\nupdated_us 1795687200123456\n"
				      "inflight ehr 3\ninflight lab-results 0\ninflight fhir 12\n"
				      "last_message adt 1795687199000000\nlast_message new 0\n"
				      "stopped lab-results 77\nstopped fhir 18446744073709551615\n");
	char path[128];
	struct stat st;
	snprintf(path, sizeof path, "%s/" HQ_STATUS_FILE, dir);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	snprintf(path, sizeof path, "%s/" HQ_STATUS_FILE ".tmp", dir);
	ck_assert_int_ne(access(path, F_OK), 0); /* renamed into place */

	hq_status r;
	ck_assert_int_eq(hq_status_read(dir, &r), 0);
	ck_assert_int_eq(r.pid, 4242);
	ck_assert_uint_eq(r.updated_us, 1795687200123456ull);
	ck_assert_int_eq(r.ntargets, 3);
	for (size_t i = 0; i < 3; i++) {
		const hq_status_target *t = hq_status_target_find(&r, targets[i].name);
		ck_assert_ptr_nonnull(t);
		ck_assert_int_eq(t->inflight, targets[i].inflight);
		ck_assert_uint_eq(t->stopped, targets[i].stopped);
	}
	ck_assert_int_eq(r.nlisteners, 2);
	for (size_t i = 0; i < 2; i++) {
		const hq_status_listener *l = hq_status_listener_find(&r, listeners[i].name);
		ck_assert_ptr_nonnull(l);
		ck_assert_uint_eq(l->last_message_us, listeners[i].last);
	}
	ck_assert_ptr_null(hq_status_target_find(&r, "adt"));
	ck_assert_ptr_null(hq_status_listener_find(&r, "ehr"));
	hq_status_free(&r);

	/* written again: replaced, not appended */
	hq_status w2 = {.pid = 7, .updated_us = 1};
	ck_assert_int_eq(hq_status_write(dir, &w2), 0);
	ck_assert_str_eq(read_text(), "pid 7\nupdated_us 1\n");
	ck_assert_int_eq(hq_status_read(dir, &r), 0);
	ck_assert_int_eq(r.ntargets + r.nlisteners, 0);
	hq_status_free(&r);
}
END_TEST

START_TEST(test_read_lenient)
{
	hq_status r;
	/* hand-written like test_cli's stale count: no updated_us, an unknown
	 * line, a malformed one, a stopped target without its inflight line */
	write_text("pid 99\nwhatever 1 2\ninflight t 3\ninflight broken\nstopped u 5\nlast_message adt 12\n");
	ck_assert_int_eq(hq_status_read(dir, &r), 0);
	ck_assert_int_eq(r.pid, 99);
	ck_assert_uint_eq(r.updated_us, 0);
	ck_assert_int_eq(r.ntargets, 2);
	ck_assert_int_eq(hq_status_target_find(&r, "t")->inflight, 3);
	ck_assert_uint_eq(hq_status_target_find(&r, "t")->stopped, 0);
	ck_assert_int_eq(hq_status_target_find(&r, "u")->inflight, 0);
	ck_assert_uint_eq(hq_status_target_find(&r, "u")->stopped, 5);
	ck_assert_uint_eq(hq_status_listener_find(&r, "adt")->last_message_us, 12);
	hq_status_free(&r);

	write_text("");
	ck_assert_int_eq(hq_status_read(dir, &r), 0);
	ck_assert_int_eq(r.pid, 0);
	ck_assert(!hq_status_alive(&r));
	hq_status_free(&r);

	ck_assert_int_eq(hq_status_remove(dir), 0);
	ck_assert_int_eq(hq_status_read(dir, &r), ENOENT);
	hq_status_free(&r);
	ck_assert_int_eq(hq_status_remove(dir), ENOENT);
}
END_TEST

START_TEST(test_alive)
{
	hq_status s = {.pid = (long)getpid()};
	ck_assert(hq_status_alive(&s));
	s.pid = 1; /* init: alive, another user's or ours (EPERM counts) */
	ck_assert(hq_status_alive(&s));
	s.pid = 0;
	ck_assert(!hq_status_alive(&s));
	s.pid = -5;
	ck_assert(!hq_status_alive(&s));
	/* a child that has exited and been reaped: gone */
	pid_t child = fork();
	if (child == 0)
		_exit(0);
	ck_assert_int_gt(child, 0);
	int wst;
	ck_assert_int_eq(waitpid(child, &wst, 0), child);
	s.pid = child;
	ck_assert(!hq_status_alive(&s));
}
END_TEST

START_TEST(test_write_fails_softly)
{
	hq_status w = {.pid = 1};
	ck_assert_int_eq(hq_status_write("/nonexistent/hl7q-status", &w), ENOENT);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("status");
	TCase *tc = tcase_create("status");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_write_then_read);
	tcase_add_test(tc, test_read_lenient);
	tcase_add_test(tc, test_alive);
	tcase_add_test(tc, test_write_fails_softly);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
