/*
 * hl7q.h - what the files of the operator CLI (tools/hl7q/) share: the
 * command context, the error and output helpers, the journal access every
 * command goes through, and each command's entry point and options for
 * the command table in main.c.  Private to bin/hl7q.
 *
 * Every command returns the process's exit status: 0 done, 1 usage or
 * input error (fail() printed one line on stderr), 2 the journal or its
 * audit store cannot be opened or written; check its plugin codes (0-3).
 */
#ifndef HL7Q_TOOL_H
#define HL7Q_TOOL_H

#include <getopt.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "queue/audit.h"
#include "queue/journal.h"

#define MAX_TARGETS 256
#define ID_CHUNK 5000 /* ids per write transaction */
#define HL7Q_ERR_CAP 1400

/* --- output.c: errors, times, names, fields, numbers ----------------------- */

extern int g_json;		 /* --json: JSON lines instead of tables */
extern const char *g_cmd;	 /* the command running, for messages */
extern char g_err[HL7Q_ERR_CAP]; /* the last reason printed, for check's UNKNOWN line */

/* Prints "hl7q CMD: reason" on stderr; returns 1 (usage/input error). */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* getopt's complaint, in this tool's words (opterr is off). */
int bad_option(char **argv);
/* TIME (hl7q(1)), the value s of option opt: RFC 3339 or a duration back
 * from now (core/timefmt.h).  Returns 0, or 1 after saying why (the
 * message names example, a duration that fits the option). */
int time_arg(const char *opt, const char *example, const char *s, uint64_t *us);
/* The --since (option letter 'S') and --until ('U') every selection takes,
 * through time_arg: 0, or 1 after saying why s is not a time. */
int range_arg(int o, const char *s, uint64_t *since_us, uint64_t *until_us);
/* 2026-11-26T10:00:00.123Z (milliseconds); "-" for 0, never. */
const char *fmt_time(uint64_t us, char *buf, size_t cap);
const char *dlv_state_name(hq_dlv_state s);
const char *msg_state_name(int s);
/* A stored field as a C string (cut at cap). */
const char *field(const hq_record *r, int f, char *buf, size_t cap);
/* A stored field as a JSON string. */
json_t *jfield(const hq_record *r, int f);
/* Prints o as one compact JSON line and frees it. */
void print_json(json_t *o);
/* A decimal count (0 allowed).  Returns 0 or -1. */
int parse_count(const char *s, uint64_t *n);
/* A message id: a count from 1.  Returns 0 or -1. */
int parse_id(const char *s, uint64_t *id);

/* --- journal.c: the journal, its access audit, targets and ids ------------- */

typedef struct ctx {
	const char *config_file;
	const char *journal_dir;
	hq_config cfg;
	int have_cfg;
	hq_journal *j;
	hq_audit *audit;   /* the access audit store, for commands that need one */
	hq_audit_event ev; /* this command's event: who and the filter, set by main */
	int audited;	   /* ev is committed */
} ctx;

/* Commits this command's audit event with the ids it is about to show or
 * change, then echoes it.  Returns 0, or 2 after saying why it refuses. */
int audit_now(ctx *c, const uint64_t *ids, size_t n, uint64_t count);
/* Fails (1) when a --target names no target; 0 for NULL or a known one. */
int check_target(ctx *c, const char *name);
/* Opens the journal (read-only unless write).  Returns 0 or 2 (message printed). */
int open_journal(ctx *c, int write);
/* Reads the ids of argv[0..argc), each must be in the journal; *out is the
 * caller's to free.  Returns 0 or 1 (message printed). */
int ids_from_args(ctx *c, int argc, char **argv, uint64_t **out, size_t *n);

/* --- status.c: the targets' counts and the daemon ------------------------- */

typedef struct daemon_info {
	int state; /* DAEMON_DOWN, DAEMON_UP, DAEMON_HUNG */
	long pid;
	uint64_t age_s; /* since the status file was written */
} daemon_info;
enum { DAEMON_DOWN, DAEMON_UP, DAEMON_HUNG };

typedef struct status {
	hq_target_summary t[MAX_TARGETS];
	long n;
	int inflight[MAX_TARGETS];
	uint64_t stopped[MAX_TARGETS]; /* FIFO head that stopped the target; 0 none */
	hq_journal_usage u;
} status;

/* Whether hl7qd runs on this journal (its status file). */
void daemon_probe(const ctx *c, daemon_info *d);
/* "running (pid N)", "not responding (...)" or "not running" into buf. */
const char *daemon_words(const daemon_info *d, char *buf, size_t cap);
/* The targets (only: that one) with the daemon's in-flight counts, and the
 * journal's space.  Returns 0 or 1 (message printed). */
int load_status(ctx *c, status *s, const char *only);

/* --- select.c: which messages a command takes ------------------------------ */

typedef struct collect {
	uint64_t *v;
	size_t n, cap;
	int need_settled;		  /* purge --dead: skip messages still queued somewhere */
	const char *route_to;		  /* replay of a range: messages for this target only */
	const hq_target_conf *route_conf; /* its config, when known */
	int only_missing;		  /* ... and of those only the ones route_to never had */
	uint64_t never_had;		  /* how many collected route_to never had */
	uint64_t *nv;			  /* their ids, the first NEVER_LIST */
	size_t nn;
	/* ls's filters the journal's query does not know */
	int msg_state;		       /* HQ_MSG_DUPLICATE, HQ_MSG_UNROUTED; 0 any */
	const char *type_pat;	       /* a `types` pattern: ADT, ADT^*, ADT^A01, * */
	const char *listener, *sender; /* exact listener name, MSH-3 */
	uint64_t limit;		       /* 0 all */
	size_t keep;		       /* ls: keep only the first this many ids (0: all) ... */
	uint64_t total, max_id;	       /* ... but count every match, and the highest id */
	int *rows;		       /* ls's second pass: rows printed */
} collect;

#define NEVER_LIST 1000

/* --state's words into the journal query's state or an intake verdict.  Returns 0 or 1. */
int parse_state(const char *s, int *state, int *msg_state);
/* Fails (1) on an empty time range or a state that conflicts with --target. */
int check_range(const hq_query *q);
/* Whether r passes the filters the journal's query does not know. */
int collect_match(const collect *c, const hq_record *r, const hq_msg_dlv *d, size_t nd);
/* hq_journal_query's callback: collects the ids of matching messages into arg (a collect). */
int collect_id(void *arg, const hq_record *r, const hq_msg_dlv *d, size_t nd);

/* --- ls.c ------------------------------------------------------------------ */

/* A message's metadata and deliveries as a JSON object (ls, show). */
json_t *record_json(const hq_record *r, const hq_msg_dlv *d, size_t nd);

/* --- http.c: GET from hl7qd's admin endpoint (check --admin) --------------- */

/* GETs http://addr/path into b (b->p the caller's to free).  Returns the
 * HTTP status, or -1 with why in err. */
long http_get(const char *addr, const char *path, hq_buf *b, char *err, size_t cap);
/* Unloads libcurl, when http_get loaded it. */
void curl_unload(void);

/* --- the commands: argv is the command's options, "--", its operands ------ */

extern const struct option status_opts[], ls_opts[], show_opts[], replay_opts[], purge_opts[],
	compact_opts[], reseal_opts[], check_opts[], audit_opts[];

int cmd_status(ctx *c, int argc, char **argv);
int cmd_ls(ctx *c, int argc, char **argv);
int cmd_show(ctx *c, int argc, char **argv);
int cmd_replay(ctx *c, int argc, char **argv);
int cmd_purge(ctx *c, int argc, char **argv);
int cmd_compact(ctx *c, int argc, char **argv);
int cmd_reseal(ctx *c, int argc, char **argv);
int cmd_check(ctx *c, int argc, char **argv);
int cmd_audit(ctx *c, int argc, char **argv);

#endif
