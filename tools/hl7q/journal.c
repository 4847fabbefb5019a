/*
 * journal.c - hl7q's access to the journal: opening it (with the keys of
 * an encrypted one), the access audit event that every command showing or
 * changing messages commits before it acts, and the targets and ids given
 * on the command line, checked against the config and the journal.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/error.h"
#include "net/auditlog.h"
#include "tools/hl7q/hl7q.h"

/*
 * Commits this command's audit event with the ids it is about to show or
 * change (up to HQ_AUDIT_MAX_IDS kept; count the total), then echoes it
 * to journald / the RFC 5424 collector.  Call it before printing or
 * acting.  Returns 0, or 2 after saying why the command refuses.
 */
int
audit_now(ctx *c, const uint64_t *ids, size_t n, uint64_t count)
{
	c->ev.ids = (uint64_t *)ids;
	c->ev.nids = n < HQ_AUDIT_MAX_IDS ? n : HQ_AUDIT_MAX_IDS;
	c->ev.count = count;
	int rc = c->audit ? hq_audit_append(c->audit, &c->ev) : EROFS;
	if (rc != 0) {
		fail("cannot record the access audit event in %s: %s; refusing to %s "
		     "(run hl7q as the journal's owner, see hl7q(1) ACCESS)",
		     c->journal_dir,
		     rc == EROFS || rc == EACCES ? "the journal is not writable by this user" : hq_strerror(rc),
		     g_cmd);
		return 2;
	}
	c->audited = 1;
	char err[600];
	if (hq_auditlog_send(&c->ev, c->have_cfg ? c->cfg.audit_rfc5424 : "", err, sizeof err) != 0)
		fprintf(stderr, "hl7q %s: warning: %s (the event is in the journal)\n", g_cmd, err);
	return 0;
}

/* Whether target name is known: in the config, or with records in the journal. */
static int
target_known(ctx *c, const char *name)
{
	for (int i = 0; c->have_cfg && i < c->cfg.ntargets; i++)
		if (strcmp(c->cfg.targets[i].name, name) == 0)
			return 1;
	static hq_target_summary t[MAX_TARGETS];
	long n = hq_journal_targets(c->j, t, MAX_TARGETS);
	for (long i = 0; i < n && i < MAX_TARGETS; i++)
		if (strcmp(t[i].name, name) == 0)
			return 1;
	return 0;
}

/* Fails (1) when a --target names no target; the known ones in the message. */
int
check_target(ctx *c, const char *name)
{
	if (name == NULL || target_known(c, name))
		return 0;
	char list[600] = "";
	size_t n = 0;
	for (int i = 0; c->have_cfg && i < c->cfg.ntargets && n < sizeof list; i++)
		n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "",
				      c->cfg.targets[i].name);
	return fail("no target '%s'%s%s%s", name, n ? " (the config has: " : "", list, n ? ")" : "");
}

/* Opens the journal (read-only unless write).  Returns 0 or 2 (message printed). */
int
open_journal(ctx *c, int write)
{
	char path[1100];
	struct stat st;
	snprintf(path, sizeof path, "%s/data.mdb", c->journal_dir);
	if (stat(path, &st) != 0) {
		fail("cannot open journal %s: %s", c->journal_dir, strerror(errno));
		return 2;
	}
	int rc = hq_journal_open(c->journal_dir, 0, !write, &c->j);
	if (rc != 0 && write && (rc == EACCES || rc == EROFS || rc == EPERM)) {
		fail("cannot open journal %s for writing: %s; hl7q %s records an access audit event there first "
		     "and refuses to run without it (run it as the journal's owner or via sudo, see hl7q(1) ACCESS)",
		     c->journal_dir, hq_strerror(rc), g_cmd);
		return 2;
	}
	if (rc != 0) {
		fail("cannot open journal %s: %s", c->journal_dir, hq_strerror(rc));
		return 2;
	}
	/* An encrypted journal: the key opens message bytes and patient ids.
	 * Without it (or with -j) the audit metadata still reads. */
	if (c->have_cfg && c->cfg.encryption_key_file[0]) {
		char err[1300];
		if (hq_journal_set_keys(c->j, c->cfg.encryption_key_file, err, sizeof err) != 0)
			fprintf(stderr, "hl7q %s: %s: message bytes and patient ids stay sealed\n", g_cmd, err);
	}
	return 0;
}

/* Reads the ids of argv[0..argc), each must be in the journal. */
int
ids_from_args(ctx *c, int argc, char **argv, uint64_t **out, size_t *n)
{
	uint64_t *ids = hq_xcalloc((size_t)argc + 1, sizeof *ids);
	for (int i = 0; i < argc; i++) {
		hq_record r;
		void *mem;
		if (parse_id(argv[i], &ids[i]) != 0) {
			free(ids);
			return fail("'%s' is not a message id (a positive number)", argv[i]);
		}
		int rc = hq_journal_get(c->j, ids[i], &r, &mem);
		if (rc == HQ_ENOTFOUND) {
			free(ids);
			return fail("no message %s in the journal", argv[i]);
		}
		if (rc != 0) {
			free(ids);
			return fail("cannot read message %s: %s", argv[i], hq_strerror(rc));
		}
		free(mem);
	}
	*out = ids;
	*n = (size_t)argc;
	return 0;
}
