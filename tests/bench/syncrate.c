/*
 * syncrate DIR SECONDS - the machine's durability limits, measured on the
 * filesystem of DIR: fdatasync calls per second (4 KB rewritten in place),
 * and journal commits per second with one 1 KB message per transaction
 * (hl7q's own journal code, LMDB's default durability).  The benchmark
 * divides hl7qd's rates by these.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
	if (argc != 3) {
		fprintf(stderr, "usage: syncrate DIR SECONDS\n");
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
	long n = 0;
	double t0 = now();
	while (now() - t0 < secs) {
		if (pwrite(fd, block, sizeof block, 0) != (ssize_t)sizeof block || fdatasync(fd) != 0) {
			perror("fdatasync");
			return 1;
		}
		n++;
	}
	double fsyncs = n / (now() - t0);
	close(fd);
	unlink(path);

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
		if (hq_batch_begin(j, &b) || hq_batch_add(b, &r, NULL, &id) ||
		    hq_batch_commit(b)) {
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
	printf("result fdatasync_per_s=%.0f commits_per_s=%.0f\n", fsyncs, commits);
	return 0;
}
