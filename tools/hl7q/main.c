/*
 * main.c - hl7q, the operator CLI: status, audit queries, a message's
 * story, replay, purge, compaction and a monitoring plugin, on the journal
 * of a running (or stopped) hl7qd.  See hl7q(1).  This file holds the
 * command table and main; each command has a file beside it (status.c,
 * ls.c, show.c, replay.c, compact.c, check.c, audit.c), and what they
 * share is declared in hl7q.h (output.c, journal.c, select.c, http.c).
 *
 * It opens the same LMDB environment as the daemon: reads run in read
 * transactions (they never block intake), replay and purge in short write
 * transactions the daemon's workers see on their next scan (within a
 * second).  Output is an aligned table, or JSON lines with --json.
 *
 * Access audit: every command that shows message content or patient ids
 * (ls, show, audit) or changes the journal (replay, purge, compact)
 * first commits an event to the journal's audit store (queue/audit.h) --
 * who, from where, which command, filter and ids -- and echoes it to
 * journald (and an RFC 5424 collector); a command that cannot record its
 * event refuses to run (exit 2).
 *
 * Options: each command's are declared in a table (CMDS below, the
 * struct option arrays in each command's file); main reads them, and the
 * global ones (-c, -j, --json, --help), anywhere on the line, GNU style,
 * then hands the command its options first and its operands after "--".
 *
 * Exit codes: 0 done; 1 usage or input error (one line on stderr); 2 the
 * journal cannot be opened, or the audit event cannot be written.  `check` follows the monitoring-plugin
 * contract instead: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/config.h"
#include "core/error.h"
#include "queue/audit.h"
#include "queue/journal.h"
#include "tools/hl7q/hl7q.h"

#ifndef HQ_VERSION
#define HQ_VERSION "0.1.0"
#endif

enum { J_READ, J_WRITE, J_LAZY }; /* J_WRITE: it changes the journal or records an audit event */

/* The commands: name, body, options (the table the body reads too),
 * journal access, synopsis and help. */
typedef struct cmd_def {
	const char *name;
	int (*fn)(ctx *, int, char **);
	const struct option *opts;
	const char *shortopts;
	int journal;
	const char *synopsis;
	const char *help;
} cmd_def;

static const cmd_def CMDS[] = {
	{"status", cmd_status, status_opts, "t:", J_READ, "status [--target T]",
	 "Per target: pending, retrying, in flight, dead, delivered, the oldest pending\n"
	 "age and the last success and error; the journal's space; whether hl7qd runs."},
	{"ls", cmd_ls, ls_opts, "", J_WRITE,
	 "ls [--state S] [--target T] [--type PATTERN] [--listener L] [--sender APP]\n"
	 "   [--control-id X] [--patient ID] [--since TIME] [--until TIME] [--limit N]",
	 "Lists messages (audited).  --state: pending (waiting, retrying or in flight,\n"
	 "as status and check count it), retry, dead, delivered, rejected, duplicate,\n"
	 "unrouted.  --type takes the config's patterns: ADT, ADT^*, ADT^A01, *.\n"
	 "--sender is MSH-3.  A target or listener that does not exist is an error."},
	{"show", cmd_show, show_opts, "", J_WRITE, "show ID [--raw | --json | --fhir [--target T]]",
	 "A message's story: metadata, the ACK sent, every delivery and attempt\n"
	 "(audited).  --raw prints the bytes exactly as received; --fhir the FHIR\n"
	 "Bundle a format = fhir target (named with --target when several) gets."},
	{"replay", cmd_replay, replay_opts, "", J_WRITE,
	 "replay ID... | --dead [--target T] | --target T --since TIME [--until TIME] [--missing]\n"
	 "       [--dry-run]",
	 "Queues messages for delivery again (audited).  A range replay for a target\n"
	 "says which of its messages the target never had; --missing sends only those."},
	{"purge", cmd_purge, purge_opts, "", J_WRITE,
	 "purge --dead [--target T] | --rejected | --delivered-before TIME | ID... [--force]  [--dry-run]",
	 "Deletes messages from the journal (audited); never audit events.  An id that\n"
	 "some target has not had (pending, retrying or dead) needs --force."},
	{"compact", cmd_compact, compact_opts, "", J_WRITE, "compact DIR",
	 "Writes a compacted copy of the journal into DIR, a new or empty directory\n"
	 "(audited, mode 0600).  Refused while hl7qd runs: stop it, compact, swap the\n"
	 "copy in, start it (hl7q(1))."},
	{"reseal", cmd_reseal, reseal_opts, "", J_WRITE, "reseal",
	 "Seals every record, answer excerpt and audit patient id not yet sealed under\nthe first key of "
	 "encryption_key_file (needs -c), a slice per write transaction, beside a\n"
	 "running hl7qd; interrupted, run it again and it goes on (audited)."},
	{"audit", cmd_audit, audit_opts, "", J_WRITE,
	 "audit [--since TIME] [--until TIME] [--user U] [--id ID] | audit purge --before TIME",
	 "The access audit trail: who (uid, name, sudo user, host) ran which command\n"
	 "with which filter on which message ids, and hl7qd's start, stop, reload and\n"
	 "key events.  --user matches the login or the sudo user.  Viewing the trail\n"
	 "is itself recorded.  `audit purge --before TIME` is the only way events go,\n"
	 "and leaves an event of its own."},
	{"check", cmd_check, check_opts, "", J_LAZY,
	 "check [--max-age DUR] [--max-dead N] [--max-pending N] [--warn-age DUR]\n"
	 "      [--warn-dead N] [--warn-pending N] [--target T] [--admin HOST:PORT] [--silent]",
	 "Monitoring plugin: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; one line on\n"
	 "stdout with perfdata.  CRITICAL when hl7qd is not running.  A metric given no\n"
	 "threshold uses the defaults: oldest pending age WARNING > 10m, CRITICAL > 1h;\n"
	 "dead WARNING > 0; pending WARNING > 10000, CRITICAL > 100000; journal free\n"
	 "space WARNING < 20%, CRITICAL < 10%.  --admin reads hl7qd's /healthz and\n"
	 "/metrics instead of the journal (no journal access needed).  --silent (needs\n"
	 "-c) adds the listeners' expect_within: CRITICAL when a feed is silent."},
};
#define NCMDS (sizeof CMDS / sizeof CMDS[0])

static const cmd_def *
find_cmd(const char *name)
{
	for (size_t k = 0; k < NCMDS; k++)
		if (strcmp(CMDS[k].name, name) == 0)
			return &CMDS[k];
	return NULL;
}

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: hl7q COMMAND [options] (-c FILE | -j DIR)\n"
		    "  -c, --config FILE   hl7qd's configuration (the journal path is read from it)\n"
		    "  -j, --journal DIR   the journal directory\n"
		    "      --json          JSON lines instead of tables\n"
		    "  -h, --help          this; hl7q help COMMAND or hl7q COMMAND --help for one\n"
		    "Options go anywhere on the line.  Commands:\n");
	for (size_t k = 0; k < NCMDS; k++)
		fprintf(fp, "  %s\n", CMDS[k].synopsis);
	fprintf(fp, "TIME: RFC 3339 (2026-11-26T10:00:00Z) or a duration back from now (15m, 2d).\n"
		    "See hl7q(1).\n");
}

static void
cmd_help(const cmd_def *cmd)
{
	printf("usage: hl7q %s\n       (-c FILE | -j DIR) [--json] anywhere\n\n%s\n\nSee hl7q(1).\n",
	       cmd->synopsis, cmd->help);
}

/* hl7q help [COMMAND]: the usage, or one command's help.  Returns the exit status. */
static int
help_command(const char *name)
{
	if (name == NULL) {
		usage(stdout);
		return 0;
	}
	const cmd_def *cmd = find_cmd(name);
	if (cmd == NULL) {
		fprintf(stderr, "hl7q help: no command '%s' (status, ls, show, replay, purge, compact, reseal, audit, check)\n",
			name);
		return 1;
	}
	cmd_help(cmd);
	return 0;
}

enum { OPT_CONFIG = 0x100, OPT_JOURNAL, OPT_HELP };
static char END_OF_OPTIONS[] = "--"; /* ends the options gather() hands on (tokens before it are malloc'd) */

/*
 * Reads the command's argv GNU style: its own options (cmd->opts) and the
 * global ones anywhere.  Globals go into c and *help; the command's
 * options come back in *out as "--name[=value]", then "--", then its
 * operands in order, for the command's own getopt.  Also writes the
 * audit event's PHI-free filter (a --patient value goes to ev.patient).
 * Returns 0, or 1 after saying why.
 */
static int
gather(const cmd_def *cmd, int argc, char **argv, ctx *c, int *help, char ***out, int *outc)
{
	struct option all[64];
	size_t n = 0;
	for (; cmd->opts[n].name && n < 60; n++)
		all[n] = cmd->opts[n];
	all[n++] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
	all[n++] = (struct option){"journal", required_argument, NULL, OPT_JOURNAL};
	all[n++] = (struct option){"help", no_argument, NULL, OPT_HELP};
	all[n] = (struct option){NULL, 0, NULL, 0};
	char shorts[64];
	snprintf(shorts, sizeof shorts, "-c:j:h%s", cmd->shortopts);
	char **opts = hq_xcalloc((size_t)argc * 2 + 2, sizeof *opts),
	     **pos = hq_xcalloc((size_t)argc + 1, sizeof *pos);
	int no = 0, np = 0, o, li;
	int rc = 0;
	opts[no++] = argv[0];
	optind = 0;
	opterr = 0;
	size_t fl = 0;
	while ((o = getopt_long(argc, argv, shorts, all, &li)) != -1) {
		if (o == 1) {
			pos[np++] = optarg;
			continue;
		}
		if (o == '?' || o == ':') {
			rc = fail("option '%s' is unknown or lacks its value (see hl7q help %s)",
				  argv[optind - 1], cmd->name);
			goto out;
		}
		if (o == OPT_CONFIG || o == 'c') {
			c->config_file = optarg;
			continue;
		}
		if (o == OPT_JOURNAL || o == 'j') {
			c->journal_dir = optarg;
			continue;
		}
		if (o == OPT_HELP || o == 'h') {
			*help = 1;
			continue;
		}
		const struct option *def = NULL;
		for (size_t k = 0; k < n && def == NULL; k++)
			if (all[k].val == o)
				def = &all[k];
		if (def == NULL) {
			rc = fail("option '%s' is unknown (see hl7q help %s)", argv[optind - 1], cmd->name);
			goto out;
		}
		int with_value = def->has_arg != no_argument && optarg;
		size_t len = strlen(def->name) + (with_value ? strlen(optarg) + 1 : 0) + 3;
		char *tok = hq_xmalloc(len);
		snprintf(tok, len, with_value ? "--%s=%s" : "--%s", def->name, with_value ? optarg : "");
		opts[no++] = tok;
		/* the audit event's filter: options as given, without --json, a patient id apart */
		if (strcmp(def->name, "json") == 0)
			continue;
		const char *shown = tok;
		if (strcmp(def->name, "patient") == 0) {
			snprintf(c->ev.patient, sizeof c->ev.patient, "%s", optarg);
			shown = "--patient=(patient)";
		}
		if (fl < sizeof c->ev.filter)
			fl += (size_t)snprintf(c->ev.filter + fl, sizeof c->ev.filter - fl, "%s%s",
					       fl ? " " : "", shown);
	}
	while (optind < argc) /* operands after a "--" of the user's */
		pos[np++] = argv[optind++];
	opts[no++] = END_OF_OPTIONS;
	for (int i = 0; i < np; i++) {
		opts[no++] = pos[i];
		if (fl < sizeof c->ev.filter && strcmp(cmd->name, "audit") != 0)
			fl += (size_t)snprintf(c->ev.filter + fl, sizeof c->ev.filter - fl, "%s%s",
					       fl ? " " : "", pos[i]);
	}
	opts[no] = NULL;
	free(pos);
	*out = opts;
	*outc = no;
	return 0;
out:
	for (int i = 1; i < no; i++)
		free(opts[i]);
	free(opts);
	free(pos);
	return rc;
}

/*
 * Reads the config (or takes -j), opens the journal and, for a command
 * that records an access audit event, its audit store.  Returns 0, or the
 * exit status after saying why.
 */
static int
prepare(ctx *c, const cmd_def *cmd)
{
	if (c->config_file && c->journal_dir)
		return fail("-c and -j conflict: give one");
	if (c->config_file) {
		if (hq_config_load(c->config_file, &c->cfg) != 0) {
			snprintf(g_err, sizeof g_err, "%s", c->cfg.err);
			fprintf(stderr, "%s\n", c->cfg.err);
			hq_config_free(&c->cfg);
			return 1;
		}
		c->have_cfg = 1;
		c->journal_dir = c->cfg.journal_path;
	} else if (c->journal_dir == NULL && cmd->journal != J_LAZY) {
		return fail("no journal: give -c FILE (hl7qd's config) or -j DIR");
	}
	if (cmd->journal == J_LAZY)
		return 0;
	int rc = open_journal(c, cmd->journal == J_WRITE);
	if (rc == 0 && cmd->journal == J_WRITE) {
		int arc = hq_audit_open(c->j, &c->audit);
		if (arc != 0) {
			fail("cannot open the journal's audit store: %s; hl7q %s refuses to run without it",
			     hq_strerror(arc), g_cmd);
			rc = 2;
		}
	}
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"journal", required_argument, NULL, 'j'},
		{"json", no_argument, NULL, 'J'},	  {"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},	  {NULL, 0, NULL, 0}};
	ctx c;
	int o, help = 0;
	memset(&c, 0, sizeof c);
	opterr = 0;
	while ((o = getopt_long(argc, argv, "+c:j:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': c.config_file = optarg; break;
		case 'j': c.journal_dir = optarg; break;
		case 'J': g_json = 1; break;
		case 'h': help = 1; break;
		case 'V': printf("hl7q %s\n", HQ_VERSION); return 0;
		default:
			fprintf(stderr, "hl7q: option '%s' is unknown or lacks its value (see hl7q --help)\n",
				argv[optind - 1]);
			return 1;
		}
	}
	if (optind == argc && help) {
		usage(stdout);
		return 0;
	}
	if (optind == argc) {
		fprintf(stderr, "hl7q: which command? (status, ls, show, replay, purge, compact, reseal, audit, check; hl7q --help)\n");
		return 1;
	}
	if (strcmp(argv[optind], "help") == 0)
		return help_command(optind + 1 < argc ? argv[optind + 1] : NULL);
	const cmd_def *cmd = find_cmd(argv[optind]);
	if (cmd == NULL) {
		fprintf(stderr, "hl7q: unknown command '%s' (status, ls, show, replay, purge, compact, reseal, audit, check)\n",
			argv[optind]);
		return 1;
	}
	g_cmd = cmd->name;
	int is_check = cmd->fn == cmd_check;
	hq_audit_event_init(&c.ev, "hl7q", cmd->name);
	char **sub_argv = NULL;
	int sub_argc = 0;
	if (gather(cmd, argc - optind, argv + optind, &c, &help, &sub_argv, &sub_argc) != 0)
		return is_check ? (printf("HL7Q UNKNOWN - %s\n", g_err), 3) : 1;
	int rc = 0;
	if (help)
		cmd_help(cmd);
	else
		rc = prepare(&c, cmd);
	if (rc != 0 && is_check) {
		printf("HL7Q UNKNOWN - %s\n", g_err);
		rc = 3;
	}
	if (!help && rc == 0) {
		optind = 0; /* getopt again, on the command's options then "--" and its operands */
		rc = cmd->fn(&c, sub_argc, sub_argv);
	}
	if (!help && cmd->journal == J_WRITE && rc == 0 && !c.audited)
		rc = fail("internal error: no access audit event was recorded");
	hq_audit_close(c.audit);
	if (c.j)
		hq_journal_close(c.j);
	if (c.have_cfg)
		hq_config_free(&c.cfg);
	for (int i = 1; i < sub_argc && sub_argv[i] != END_OF_OPTIONS; i++)
		free(sub_argv[i]);
	free(sub_argv);
	if (fflush(stdout) != 0 && rc == 0)
		rc = fail("cannot write: %s", strerror(errno));
	return rc;
}
