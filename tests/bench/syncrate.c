/*
 * syncrate DIR SECONDS [lmdb] - the machine's durability limits, measured on the
 * filesystem of DIR:
 *   fdatasync_per_s   fdatasync calls per second (4 KB rewritten in place)
 *   lmdb_per_s        plain LMDB commits per second, one 1 KB value under
 *                     an 8-byte appended key in one named database, LMDB's
 *                     default durability: the floor the issue measures
 *                     hl7qd's one-connection rate against (not a commit
 *                     shaped like hl7q's, which would hide its cost)
 *   commits_per_s     hl7q's own journal commits, one 1 KB message each
 * The benchmark divides hl7qd's rates by these.  With "lmdb", only the
 * plain LMDB commits, and "commits=N" (the benchmark counts their page
 * writes under strace: tests/bench/syscall_pages.py).
 */
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "queue/journal.h"

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	if (argc != 3 && !(argc == 4 && strcmp(argv[3], "lmdb") == 0)) {
		fprintf(stderr, "usage: syncrate DIR SECONDS [lmdb]\n");
		return 2;
	}
	const char *dir = argv[1];
	double secs = atof(argv[2]);
	char path[1024], cmd[1100];
	static char block[4096];

	snprintf(path, sizeof path, "%s/syncrate.tmp", dir);
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	if (fd < 0) {
		perror(path);
		return 1;
	}
	int lmdb_only = argc == 4;
	long n = 0;
	double t0 = now();
	while (!lmdb_only && now() - t0 < secs) {
		if (pwrite(fd, block, sizeof block, 0) != (ssize_t)sizeof block || fdatasync(fd) != 0) {
			perror("fdatasync");
			return 1;
		}
		n++;
	}
	double fsyncs = lmdb_only ? 0 : n / (now() - t0);
	close(fd);
	unlink(path);

	/* Plain LMDB: one named database, one 1 KB value per synced commit. */
	snprintf(path, sizeof path, "%s/syncrate.lmdb", dir);
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *txn;
	char val[1024];
	memset(val, 'x', sizeof val);
	if (mkdir(path, 0700) != 0 || mdb_env_create(&env) || mdb_env_set_maxdbs(env, 2) ||
	    mdb_env_set_mapsize(env, 1ull << 30) || mdb_env_open(env, path, MDB_NOTLS, 0600) ||
	    mdb_txn_begin(env, NULL, 0, &txn) || mdb_dbi_open(txn, "msgs", MDB_CREATE, &dbi) ||
	    mdb_txn_commit(txn)) {
		fprintf(stderr, "cannot open LMDB in %s\n", path);
		return 1;
	}
	n = 0;
	t0 = now();
	while (now() - t0 < secs) {
		unsigned char kb[8];
		for (int i = 0; i < 8; i++)
			kb[i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
		MDB_val k = {8, kb}, v = {sizeof val, val};
		if (mdb_txn_begin(env, NULL, 0, &txn) || mdb_put(txn, dbi, &k, &v, MDB_APPEND) ||
		    mdb_txn_commit(txn)) {
			fprintf(stderr, "LMDB commit failed\n");
			return 1;
		}
		n++;
	}
	double lmdb = n / (now() - t0);
	mdb_env_close(env);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
	if (system(cmd) != 0)
		return 1;
	if (lmdb_only) {
		printf("result lmdb_per_s=%.0f commits=%ld\n", lmdb, n);
		return 0;
	}

	snprintf(path, sizeof path, "%s/syncrate.journal", dir);
	hq_journal *j;
	if (hq_journal_open(path, 1ull << 30, 0, &j) != 0) {
		fprintf(stderr, "cannot open journal %s\n", path);
		return 1;
	}
	char msg[1024], ctrl[32];
	memset(msg, 'x', sizeof msg);
	n = 0;
	t0 = now();
	while (now() - t0 < secs) {
		hq_batch *b;
		hq_record r;
		uint64_t id;
		memset(&r, 0, sizeof r);
		snprintf(ctrl, sizeof ctrl, "S%ld", n);
		r.received_us = (uint64_t)(now() * 1e6);
		r.state = HQ_MSG_ACCEPTED;
		r.f[HQ_F_TYPE] = (hq_str){"ADT^A01^ADT_A01", 15};
		r.f[HQ_F_CONTROL_ID] = (hq_str){ctrl, strlen(ctrl)};
		r.f[HQ_F_PATIENT_ID] = (hq_str){ctrl, strlen(ctrl)};
		r.f[HQ_F_RAW] = (hq_str){msg, sizeof msg};
		if (hq_batch_begin(j, &b) || hq_batch_add(b, &r, NULL, &id) || hq_batch_commit(b)) {
			fprintf(stderr, "commit failed\n");
			return 1;
		}
		n++;
	}
	double commits = n / (now() - t0);
	hq_journal_close(j);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
	if (system(cmd) != 0)
		return 1;
	printf("result fdatasync_per_s=%.0f lmdb_per_s=%.0f commits_per_s=%.0f\n", fsyncs, lmdb, commits);
	return 0;
}
