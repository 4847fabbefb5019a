/*
 * status.c - the daemon's status file, written and read (see status.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "status.h"

#define PATH_CAP 1100

static void
status_path(const char *journal_dir, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/" HQ_STATUS_FILE, journal_dir);
}

/* The entry named name among n entries of size bytes each, whose first
 * member is their name (hq_status_target, hq_status_listener); NULL when none. */
static void *
find_named(const void *v, int n, size_t size, const char *name)
{
	for (int i = 0; i < n; i++) {
		const char *e = (const char *)v + (size_t)i * size;
		if (strcmp(e, name) == 0)
			return (void *)e;
	}
	return NULL;
}

hq_status_target *
hq_status_target_add(hq_status *s, const char *name)
{
	void *v = s->targets;
	int added;
	hq_status_target *t = hq_named_get(&v, &s->ntargets, sizeof *t, name, HQ_STATUS_NAME, &added);
	s->targets = v;
	return t;
}

hq_status_listener *
hq_status_listener_add(hq_status *s, const char *name)
{
	void *v = s->listeners;
	int added;
	hq_status_listener *l = hq_named_get(&v, &s->nlisteners, sizeof *l, name, HQ_STATUS_NAME, &added);
	s->listeners = v;
	return l;
}

const hq_status_target *
hq_status_target_find(const hq_status *s, const char *name)
{
	return find_named(s->targets, s->ntargets, sizeof *s->targets, name);
}

const hq_status_listener *
hq_status_listener_find(const hq_status *s, const char *name)
{
	return find_named(s->listeners, s->nlisteners, sizeof *s->listeners, name);
}

int
hq_status_write(const char *journal_dir, const hq_status *s)
{
	char path[PATH_CAP], tmp[PATH_CAP + 8];
	status_path(journal_dir, path, sizeof path);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	/* 0600 like the journal's other files, whatever the umask */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *fp = fd < 0 ? NULL : fdopen(fd, "w");
	if (fp == NULL) {
		int rc = errno;
		if (fd >= 0)
			close(fd);
		return rc;
	}
	fchmod(fd, 0600); /* a .tmp left by an older hl7qd kept its mode */
	fprintf(fp, "pid %ld\nupdated_us %llu\n", s->pid, (unsigned long long)s->updated_us);
	for (int i = 0; i < s->ntargets; i++)
		fprintf(fp, "inflight %s %d\n", s->targets[i].name, s->targets[i].inflight);
	for (int i = 0; i < s->nlisteners; i++)
		fprintf(fp, "last_message %s %llu\n", s->listeners[i].name,
			(unsigned long long)s->listeners[i].last_message_us);
	for (int i = 0; i < s->ntargets; i++)
		if (s->targets[i].stopped)
			fprintf(fp, "stopped %s %llu\n", s->targets[i].name,
				(unsigned long long)s->targets[i].stopped);
	if (fclose(fp) != 0) {
		int rc = errno;
		unlink(tmp);
		return rc;
	}
	return rename(tmp, path) == 0 ? 0 : errno;
}

/* One line of the file into s; an unknown or malformed line is skipped. */
static void
read_line(hq_status *s, const char *line)
{
	char name[HQ_STATUS_NAME];
	unsigned long long v;
	int n;
	if (sscanf(line, "pid %ld", &s->pid) == 1)
		return;
	if (sscanf(line, "updated_us %llu", &v) == 1)
		s->updated_us = v;
	else if (sscanf(line, "inflight %63s %d", name, &n) == 2)
		hq_status_target_add(s, name)->inflight = n;
	else if (sscanf(line, "stopped %63s %llu", name, &v) == 2)
		hq_status_target_add(s, name)->stopped = v;
	else if (sscanf(line, "last_message %63s %llu", name, &v) == 2)
		hq_status_listener_add(s, name)->last_message_us = v;
}

int
hq_status_read(const char *journal_dir, hq_status *s)
{
	char path[PATH_CAP], line[256];
	memset(s, 0, sizeof *s);
	status_path(journal_dir, path, sizeof path);
	FILE *fp = fopen(path, "r");
	if (fp == NULL)
		return errno;
	while (fgets(line, sizeof line, fp))
		read_line(s, line);
	int rc = ferror(fp) ? EIO : 0;
	fclose(fp);
	return rc;
}

bool
hq_status_alive(const hq_status *s)
{
	return s->pid > 0 && (kill((pid_t)s->pid, 0) == 0 || errno != ESRCH);
}

int
hq_status_remove(const char *journal_dir)
{
	char path[PATH_CAP];
	status_path(journal_dir, path, sizeof path);
	return unlink(path) == 0 ? 0 : errno;
}

void
hq_status_free(hq_status *s)
{
	free(s->targets);
	free(s->listeners);
	memset(s, 0, sizeof *s);
}
