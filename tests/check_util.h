/*
 * check_util.h - helpers shared by the Check unit tests: the test messages
 * and whole-file reads.  The messages are the project's own
 * (tests/data/hl7v2, or $HL7Q_DATA/hl7v2), always; plus, as an extra run,
 * an outside corpus when $HL7Q_CORPUS names a directory that exists (the
 * Makefile passes ../shared/corpus).  A clone without that corpus runs
 * the same tests over the project's messages alone.
 */
#ifndef HQ_CHECK_UTIL_H
#define HQ_CHECK_UTIL_H

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file.h"

typedef struct corpus_file {
	char path[1024];
	char *data;
	size_t len;
} corpus_file;

/* Where the project's own messages are (relative to the repository root,
 * where the unit tests run). */
static inline const char *
data_root(void)
{
	const char *r = getenv("HL7Q_DATA");
	return r && *r ? r : "tests/data";
}

/* The extra corpus, or NULL when $HL7Q_CORPUS is unset or names no directory. */
static inline const char *
corpus_root(void)
{
	const char *r = getenv("HL7Q_CORPUS");
	struct stat st;
	if (r == NULL || *r == '\0' || stat(r, &st) != 0 || !S_ISDIR(st.st_mode))
		return NULL;
	return r;
}

/* Appends every *.hl7 under dir (recursively; skipping "malformed" unless
 * want_malformed) to *files. */
static inline void
corpus_walk(const char *dir, int want_malformed, int in_malformed, corpus_file **files, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char path[1024];
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (stat(path, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			int mal = in_malformed || strcmp(e->d_name, "malformed") == 0;
			if (mal && !want_malformed)
				continue;
			corpus_walk(path, want_malformed, mal, files, n);
		} else if (strstr(e->d_name, ".hl7") && in_malformed == want_malformed) {
			*files = realloc(*files, sizeof **files * (*n + 1));
			corpus_file *f = &(*files)[(*n)++];
			snprintf(f->path, sizeof f->path, "%s", path);
			f->data = hq_read_file(path, &f->len);
		}
	}
	closedir(d);
}

/* The test messages (want_malformed 0) or the malformed inputs (1): the
 * project's, then the extra corpus's when there is one.  Fails the calling
 * test when a source that is there holds none, so a missing or emptied
 * directory is an error and never a test that quietly checks nothing. */
static inline corpus_file *
corpus_load(int want_malformed, size_t *n)
{
	const char *roots[2] = {data_root(), corpus_root()};
	corpus_file *files = NULL;
	*n = 0;
	for (int i = 0; i < 2 && roots[i] != NULL; i++) {
		char dir[1024];
		size_t before = *n;
		snprintf(dir, sizeof dir, "%s/hl7v2", roots[i]);
		corpus_walk(dir, want_malformed, 0, &files, n);
		ck_assert_msg(*n > before, "no %s messages under %s", want_malformed ? "malformed" : "test", dir);
	}
	return files;
}

/* Runs suite s (Check prints its summary line); the exit status of a test binary. */
static inline int
run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

/* A fresh journal directory name under /tmp for a fixture's setup; the
 * directory itself is not left there (the journal creates it, 0700). */
static inline void
check_journal_dir(char *dir, size_t cap, const char *what)
{
	snprintf(dir, cap, "/tmp/hl7q-%s-XXXXXX", what);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	rmdir(dir);
}

/* Removes what a test left (paths or shell patterns), best effort. */
static inline void
check_rm_rf(const char *paths)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf %s", paths);
	if (system(cmd) != 0) {
		/* best effort */
	}
}

#endif
