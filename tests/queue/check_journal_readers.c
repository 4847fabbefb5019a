/*
 * check_journal_readers.c - unit tests for the journal (queue/journal.h)
 * (issue 15, point 3: readers can't pin the journal): a query whose caller
 * is slow (hl7q ls | less) does not keep freed pages from reuse, the
 * reader slot of a process that died in a read transaction is cleared, and
 * files created by root belong to the journal directory's owner.
 */
#include <check.h>
#include <errno.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.h"
#include "queue/journal.h"
#include "tests/check_util.h"

static char dir[64];

static void
setup(void)
{
	check_journal_dir(dir, sizeof dir, "readers");
}

static void
teardown(void)
{
	check_rm_rf(dir);
}

#define N 1200
#define T0 1700000000000000ull

/* N records, one per second from T0, each with a delivery to "t". */
static void
fill(hq_journal *j, uint64_t *ids)
{
	static char raw[1500];
	memset(raw, 'x', sizeof raw - 1);
	memcpy(raw, "MSH|^~\\&|A|B\r", 13);
	hq_batch *b;
	ck_assert_int_eq(hq_batch_begin(j, &b), 0);
	for (int i = 0; i < N; i++) {
		char ctrl[16];
		hq_record r;
		memset(&r, 0, sizeof r);
		snprintf(ctrl, sizeof ctrl, "C%d", i);
		r.received_us = T0 + (uint64_t)i * 1000000;
		r.state = HQ_MSG_ACCEPTED;
		r.f[HQ_F_CONTROL_ID] = (hq_str){ctrl, strlen(ctrl)};
		r.f[HQ_F_TYPE] = (hq_str){"ADT^A01", 7};
		r.f[HQ_F_RAW] = (hq_str){raw, sizeof raw - 1};
		hq_dedup dd;
		hq_dedup_fill(&dd, (hq_str){"adt", 3}, (hq_str){"", 0}, (hq_str){"", 0},
			      (hq_str){ctrl, strlen(ctrl)}, (hq_str){"", 0},
			      (hq_str){raw, sizeof raw - 1}, (hq_str){"", 0});
		ck_assert_int_eq(hq_batch_add(b, &r, &dd, &ids[i]), 0);
		ck_assert_int_eq(hq_batch_add_delivery(b, ids[i], "t", r.received_us), 0);
	}
	ck_assert_int_eq(hq_batch_commit(b), 0);
}

typedef struct writer {
	hq_journal *j;
	uint64_t *ids; /* the second half: purged one by one as the reader goes */
	int next, seen;
} writer;

/* The reader's callback, slow as a pager: the daemon writes meanwhile. */
static int
purge_while_reading(void *arg, const hq_record *r, const hq_msg_dlv *d, size_t nd)
{
	writer *w = arg;
	w->seen++;
	if (w->next < N / 2 - 20) /* the last 20 went before */
		ck_assert_int_eq(hq_journal_purge(w->j, &w->ids[N / 2 + w->next++], 1), 1);
	return 0;
}

/* 15.3: a query read to its end while writers free pages keeps the file
 * from growing (today the one read transaction of the query pins every
 * page freed meanwhile: the file grows with each write). */
START_TEST(test_readers_query_does_not_pin_freed_pages)
{
	hq_journal *j;
	static uint64_t ids[N];
	hq_journal_usage before, after;
	ck_assert_int_eq(hq_journal_open(dir, 512ull << 20, 0, &j), 0);
	fill(j, ids);
	hq_journal_index(j, N);
	/* some free pages to reuse: purge a few and let the free list settle */
	ck_assert_int_eq(hq_journal_purge(j, &ids[N - 20], 20), 20);
	ck_assert_int_eq(hq_journal_usage_get(j, &before), 0);
	writer w = {j, ids, 0, 0};
	hq_query q;
	memset(&q, 0, sizeof q);
	q.until_us = T0 + (uint64_t)(N / 2) * 1000000; /* the first half */
	ck_assert_int_eq(hq_journal_query(j, &q, purge_while_reading, &w), N / 2);
	ck_assert_int_eq(w.seen, N / 2);
	ck_assert_int_eq(hq_journal_usage_get(j, &after), 0);
	/* 580 purges of a 1.5 KB record each: pinned, every copied-on-write
	 * page is new (tens of MB); unpinned, freed pages are reused */
	ck_assert_msg(after.file_size <= before.file_size + (4u << 20), "file grew from %llu to %llu bytes",
		      (unsigned long long)before.file_size, (unsigned long long)after.file_size);
	/* and the by-index path (control id) slices the same way */
	hq_journal_close(j);
}
END_TEST

/* 15.3: the reader slot of a process that died inside a read transaction
 * is cleared by hq_journal_reader_check (the daemon calls it every minute). */
START_TEST(test_readers_dead_reader_slot_cleared)
{
	hq_journal *j;
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	pid_t pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		MDB_env *env;
		MDB_txn *txn;
		if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 16) ||
		    mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600) ||
		    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))
			_exit(2);
		_exit(0); /* dies holding the read transaction */
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	int dead = -1;
	ck_assert_int_eq(hq_journal_reader_check(j, &dead), 0);
	ck_assert_int_eq(dead, 1);
	ck_assert_int_eq(hq_journal_reader_check(j, &dead), 0);
	ck_assert_int_eq(dead, 0);
	hq_journal_close(j);
}
END_TEST

/* 15.3: hl7q run as root leaves no file in the journal directory that the
 * daemon's user cannot open (today lock.mdb and data.mdb stay root's). */
START_TEST(test_readers_root_files_owned_by_dir_owner)
{
	hq_journal *j;
	struct stat st;
	char path[128];
	uid_t want = geteuid() == 0 ? 65534 : geteuid(); /* as root: a journal of "nobody" */
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	if (geteuid() == 0)
		ck_assert_int_eq(chown(dir, 65534, 65534), 0);
	ck_assert_int_eq(hq_journal_open(dir, 16 << 20, 0, &j), 0);
	hq_journal_close(j);
	snprintf(path, sizeof path, "%s/lock.mdb", dir);
	ck_assert_int_eq(unlink(path), 0); /* as after a reboot: hl7q comes first */
	ck_assert_int_eq(hq_journal_open(dir, 0, 1, &j), 0);
	const char *names[] = {"data.mdb", "lock.mdb"};
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		ck_assert_int_eq(stat(path, &st), 0);
		ck_assert_msg(st.st_uid == want, "%s owned by %d", names[i], (int)st.st_uid);
	}
	/* a compacted copy (to be moved over data.mdb) too */
	char copy[96];
	snprintf(copy, sizeof copy, "%s/copy", dir);
	ck_assert_int_eq(mkdir(copy, 0700), 0);
	ck_assert_int_eq(hq_journal_copy(j, copy), 0);
	snprintf(path, sizeof path, "%s/data.mdb", copy);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_msg(st.st_uid == want, "the copy owned by %d", (int)st.st_uid);
	hq_journal_close(j);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("journal_readers");
	TCase *tc = tcase_create("journal_readers");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_readers_query_does_not_pin_freed_pages);
	tcase_add_test(tc, test_readers_dead_reader_slot_cleared);
	tcase_add_test(tc, test_readers_root_files_owned_by_dir_owner);
	suite_add_tcase(s, tc);
	int failed = run_suite(s);
	return failed;
}
