/*
 * ls.c - hl7q ls: the messages a filter selects, as a table or JSON
 * lines.  A first pass counts them and keeps the first ids for the access
 * audit event; a second prints what the first counted, one record at a time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tools/hl7q/hl7q.h"

static json_t *
targets_json(const hq_msg_dlv *d, size_t nd)
{
	json_t *o = json_object();
	for (size_t i = 0; i < nd; i++)
		json_object_set_new(o, d[i].target, json_string(dlv_state_name(d[i].d.state)));
	return o;
}

json_t *
record_json(const hq_record *r, const hq_msg_dlv *d, size_t nd)
{
	char t[40];
	json_t *o = json_pack("{s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:s, s:s}", "id",
			      (json_int_t)r->id, "received_at", fmt_time(r->received_us, t, sizeof t),
			      "listener", jfield(r, HQ_F_LISTENER), "peer", jfield(r, HQ_F_PEER),
			      "type", jfield(r, HQ_F_TYPE), "control_id", jfield(r, HQ_F_CONTROL_ID),
			      "patient", r->locked ? json_null() : jfield(r, HQ_F_PATIENT_ID),
			      "ack", r->ack[0] ? r->ack : "none", "state", msg_state_name(r->state));
	json_object_set_new(o, "targets", targets_json(d, nd));
	if (r->f[HQ_F_RAW_SIZE].n) { /* refused: the journal keeps a prefix */
		char n[32];
		json_object_set_new(o, "size",
				    json_integer(strtoll(field(r, HQ_F_RAW_SIZE, n, sizeof n), NULL, 10)));
		json_object_set_new(o, "sha256", jfield(r, HQ_F_RAW_SHA256));
	}
	return o;
}

static int
ls_row(void *arg, const hq_record *r, const hq_msg_dlv *d, size_t nd)
{
	int *rows = arg;
	if (g_json) {
		json_t *o = record_json(r, d, nd);
		print_json(o);
		return ferror(stdout) != 0;
	}
	char t[40], lis[64], peer[64], type[64], ctrl[64], pat[64], tg[512];
	if ((*rows)++ == 0)
		printf("%-8s %-24s %-10s %-21s %-16s %-22s %-14s %-3s %s\n", "ID", "RECEIVED",
		       "LISTENER", "PEER", "TYPE", "CONTROL_ID", "PATIENT", "ACK", "TARGETS");
	size_t n = 0;
	tg[0] = 0;
	for (size_t i = 0; i < nd && n < sizeof tg; i++)
		n += (size_t)snprintf(tg + n, sizeof tg - n, "%s%s=%s", i ? "," : "", d[i].target,
				      dlv_state_name(d[i].d.state));
	if (nd == 0)
		snprintf(tg, sizeof tg, "(%s)", msg_state_name(r->state));
	printf("%-8llu %-24s %-10s %-21s %-16s %-22s %-14s %-3s %s\n", (unsigned long long)r->id,
	       fmt_time(r->received_us, t, sizeof t), field(r, HQ_F_LISTENER, lis, sizeof lis),
	       field(r, HQ_F_PEER, peer, sizeof peer), field(r, HQ_F_TYPE, type, sizeof type),
	       field(r, HQ_F_CONTROL_ID, ctrl, sizeof ctrl),
	       r->locked ? "(sealed)" : field(r, HQ_F_PATIENT_ID, pat, sizeof pat),
	       r->ack[0] ? r->ack : "none", tg);
	return ferror(stdout) != 0;
}

/* ls's second pass: prints what the first pass counted (and the audit
 * event recorded), not what arrived since. */
static int
print_match(void *arg, const hq_record *r, const hq_msg_dlv *d, size_t nd)
{
	collect *c = arg;
	if (r->id > c->max_id || !collect_match(c, r, d, nd))
		return 0;
	if (ls_row(c->rows, r, d, nd))
		return 1;
	return ++c->total >= c->limit;
}

const struct option ls_opts[] = {
	{"state", required_argument, NULL, 's'},    {"target", required_argument, NULL, 't'},
	{"type", required_argument, NULL, 'y'},	    {"control-id", required_argument, NULL, 'i'},
	{"patient", required_argument, NULL, 'p'},  {"since", required_argument, NULL, 'S'},
	{"until", required_argument, NULL, 'U'},    {"limit", required_argument, NULL, 'n'},
	{"listener", required_argument, NULL, 'l'}, {"sender", required_argument, NULL, 'f'},
	{"json", no_argument, NULL, 'J'},	    {NULL, 0, NULL, 0}};

int
cmd_ls(ctx *c, int argc, char **argv)
{
	const struct option *opts = ls_opts;
	hq_query q;
	collect ids = {0};
	int o, rows = 0;
	memset(&q, 0, sizeof q);
	while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			if (parse_state(optarg, &q.state, &ids.msg_state))
				return 1;
			break;
		case 't': q.target = optarg; break;
		case 'y': ids.type_pat = optarg; break;
		case 'i': q.control_id = (hq_str){optarg, strlen(optarg)}; break;
		case 'p': q.patient = (hq_str){optarg, strlen(optarg)}; break;
		case 'S':
		case 'U':
			if (range_arg(o, optarg, &q.since_us, &q.until_us))
				return 1;
			break;
		case 'n':
			if (parse_count(optarg, &ids.limit) || ids.limit == 0)
				return fail("--limit '%s' is not a positive number", optarg);
			break;
		case 'l': ids.listener = optarg; break;
		case 'f': ids.sender = optarg; break;
		case 'J': g_json = 1; break;
		default: return bad_option(argv);
		}
	}
	if (optind != argc)
		return fail("unexpected argument '%s'", argv[optind]);
	if (check_range(&q) || check_target(c, q.target))
		return 1;
	if (ids.listener && c->have_cfg) {
		int known = 0;
		for (int i = 0; i < c->cfg.nlisteners && !known; i++)
			known = strcmp(c->cfg.listeners[i].name, ids.listener) == 0;
		if (!known)
			return fail("no listener '%s' in %s", ids.listener, c->cfg.file);
	}
	char code[64] = "";
	if (ids.type_pat) { /* the router's patterns; the index takes the code */
		size_t n = strcspn(ids.type_pat, "^");
		if (n == 0 || n >= sizeof code ||
		    (strchr(ids.type_pat, '*') && strcmp(ids.type_pat, "*") != 0 &&
		     strcmp(ids.type_pat + n, "^*") != 0))
			return fail("--type '%s': expected a type like the config's types: ADT, ADT^*, ADT^A01 or *",
				    ids.type_pat);
		memcpy(code, ids.type_pat, n);
		code[n] = 0;
		if (strcmp(code, "*") != 0)
			q.type = (hq_str){code, n};
	}
	/* Count the matches (keeping the first ids), record the access, then
	 * stream the same query again up to that count: a whole journal's ls
	 * holds one record at a time, as before. */
	ids.keep = HQ_AUDIT_MAX_IDS;
	long n = hq_journal_query(c->j, &q, collect_id, &ids);
	if (n < 0) {
		free(ids.v);
		return fail("cannot read the journal: %s", hq_strerror((int)n));
	}
	int rc = audit_now(c, ids.v, ids.n, ids.total);
	uint64_t found = ids.total;
	free(ids.v);
	ids.v = NULL;
	if (rc == 0 && found) {
		ids.limit = ids.total;
		ids.total = 0;
		ids.rows = &rows;
		n = hq_journal_query(c->j, &q, print_match, &ids);
		if (n < 0)
			rc = fail("cannot read the journal: %s", hq_strerror((int)n));
		else if (ferror(stdout))
			rc = fail("cannot write: %s", strerror(errno));
	}
	if (rc == 0 && !g_json && found == 0)
		fprintf(stderr, "no messages match\n");
	return rc;
}
