/*
 * check_util.h - helpers shared by the Check unit tests: the sample corpus
 * (../shared/corpus, or $HL7Q_CORPUS) and whole-file reads.
 */
#ifndef HQ_CHECK_UTIL_H
#define HQ_CHECK_UTIL_H

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/file.h"

typedef struct corpus_file {
	char path[1024];
	char *data;
	size_t len;
} corpus_file;

static inline const char *
corpus_root(void)
{
	const char *r = getenv("HL7Q_CORPUS");
	return r && *r ? r : "../shared/corpus";
}

/* Appends every *.hl7 under dir (recursively; skipping "malformed" unless
 * want_malformed) to *files. */
static inline void
corpus_walk(const char *dir, int want_malformed, int in_malformed,
	    corpus_file **files, size_t *n)
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

/* The corpus messages (want_malformed 0) or the malformed inputs (1). */
static inline corpus_file *
corpus_load(int want_malformed, size_t *n)
{
	char dir[1024];
	corpus_file *files = NULL;
	*n = 0;
	snprintf(dir, sizeof dir, "%s/hl7v2", corpus_root());
	corpus_walk(dir, want_malformed, 0, &files, n);
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

#endif
