/*
 * compact.c - the journal's upkeep: hl7q compact (a compacted copy of the
 * journal, taken under the daemon's lock) and hl7q reseal (everything
 * sealed under the first key of the key file, a slice per transaction).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "tools/hl7q/hl7q.h"

const struct option compact_opts[] = {{"json", no_argument, NULL, 'J'}, {NULL, 0, NULL, 0}};

int
cmd_compact(ctx *c, int argc, char **argv)
{
	const char *dir = NULL;
	int o;
	while ((o = getopt_long(argc, argv, "+", compact_opts, NULL)) != -1) {
		if (o == 'J')
			g_json = 1;
		else
			return bad_option(argv);
	}
	if (optind + 1 < argc)
		return fail("usage: hl7q compact DIR [--json]");
	dir = optind < argc ? argv[optind] : NULL;
	if (dir == NULL)
		return fail("where to? (hl7q compact DIR: a new or empty directory)");
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return fail("cannot create %s: %s", dir, strerror(errno));
	char path[4200];
	struct stat st;
	snprintf(path, sizeof path, "%s/data.mdb", dir);
	if (stat(path, &st) == 0)
		return fail("%s already holds a journal: give a new or empty directory", dir);
	/* A copy taken while hl7qd runs misses what it ACKs afterwards: swapped
	 * in, those messages would be lost.  Hold the daemon's lock meanwhile,
	 * so that none starts either (released at exit). */
	int lockfd;
	long holder;
	int rc = hq_journal_lock(c->journal_dir, &lockfd, &holder);
	if (rc == HQ_ELOCKED)
		return fail("hl7qd (pid %ld) holds the journal %s: stop it first, then compact, "
			    "swap the copy in, and start it (see hl7q(1))",
			    holder, c->journal_dir);
	if (rc != 0)
		return fail("cannot lock the journal %s: %s", c->journal_dir, hq_strerror(rc));
	uint64_t nmsg = 0;
	hq_journal_count(c->j, &nmsg);
	rc = audit_now(c, NULL, 0, nmsg);
	if (rc)
		return rc;
	rc = hq_journal_copy(c->j, dir);
	if (rc != 0)
		return fail("cannot write the copy into %s: %s", dir, hq_strerror(rc));
	hq_journal_usage u;
	uint64_t was = hq_journal_usage_get(c->j, &u) == 0 ? u.file_size : 0;
	if (stat(path, &st) != 0)
		return fail("the copy is missing: %s", strerror(errno));
	if (g_json) {
		printf("{\"copy\":\"%s\",\"copy_bytes\":%lld,\"journal_bytes\":%llu}\n", path,
		       (long long)st.st_size, (unsigned long long)was);
		return 0;
	}
	printf("wrote %s: %.1f MB (the journal's file: %.1f MB).\n"
	       "To use it, before hl7qd starts again: move %s/data.mdb over the journal's data.mdb, remove the journal's lock.mdb, start hl7qd.\n",
	       path, st.st_size / 1e6, was / 1e6, dir);
	return 0;
}

/* --- reseal ---------------------------------------------------------------- */

#define RESEAL_SLICE 1000 /* records or attempts per write transaction */

/* Seals everything under the first key of the key file, a slice per
 * transaction; the journal keeps the progress, so an interrupted run goes
 * on where it stopped when started again. */
const struct option reseal_opts[] = {{"json", no_argument, NULL, 'J'}, {NULL, 0, NULL, 0}};

int
cmd_reseal(ctx *c, int argc, char **argv)
{
	int o;
	while ((o = getopt_long(argc, argv, "+", reseal_opts, NULL)) != -1) {
		if (o == 'J')
			g_json = 1;
		else
			return bad_option(argv);
	}
	if (optind != argc)
		return fail("usage: hl7q -c FILE reseal [--json]");
	if (!c->have_cfg || !c->cfg.encryption_key_file[0])
		return fail("reseal needs -c FILE whose [journal] encryption_key_file names the keys");
	int rc = audit_now(c, NULL, 0, 0);
	if (rc)
		return rc;
	uint64_t seals;
	long total = 0;
	int done = 0;
	while (!done) {
		long n = hq_journal_reseal(c->j, RESEAL_SLICE, &done);
		if (n == -EINVAL)
			return fail("the keys did not load (see above): nothing sealed");
		if (n < 0)
			return fail("cannot reseal: %s (%ld sealed before; run it again to go on)",
				    hq_strerror((int)n), total);
		total += n;
	}
	/* the access audit's sealed patient ids too, or the old key stays needed */
	uint64_t seq = 0;
	done = 0;
	while (c->audit && !done) {
		long n = hq_audit_reseal(c->audit, RESEAL_SLICE, &seq, &done);
		if (n < 0)
			return fail("cannot reseal the access audit: %s (%ld sealed before; run it again to go on)",
				    hq_strerror((int)n), total);
		total += n;
	}
	int wear = hq_journal_key_wear(c->j, &seals);
	if (g_json) {
		printf("{\"resealed\":%ld,\"done\":true,\"key_seals\":%llu}\n", total, (unsigned long long)seals);
		return 0;
	}
	printf("resealed %ld records, answer excerpts and audit events: everything is sealed under the first key of %s.\n"
	       "Keys below it that no record uses any more can now leave the file.\n",
	       total, c->cfg.encryption_key_file);
	if (wear)
		fprintf(stderr, "hl7q reseal: the first key has sealed %llu values: rotate it soon\n",
			(unsigned long long)seals);
	return 0;
}
