/*
 * audit.c - hl7q audit: the access audit trail (who ran which command
 * with which filter on which ids, and hl7qd's own events), and
 * audit purge --before, the only way events go.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "tools/hl7q/hl7q.h"

static int
audit_row(void *arg, const hq_audit_event *ev)
{
	int *rows = arg;
	char t[40];
	if (g_json) {
		json_t *o = json_pack("{s:I, s:s, s:I, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:I}", "seq",
				      (json_int_t)ev->seq, "time", fmt_time(ev->at_us, t, sizeof t),
				      "uid", (json_int_t)ev->uid, "user", ev->user, "sudo_user",
				      ev->sudo_user, "host", ev->host, "pid", (json_int_t)ev->pid,
				      "program", ev->program, "command", ev->command, "filter",
				      ev->filter, "detail", ev->detail, "count", (json_int_t)ev->count);
		json_t *ids = json_array();
		for (size_t i = 0; i < ev->nids; i++)
			json_array_append_new(ids, json_integer((json_int_t)ev->ids[i]));
		json_object_set_new(o, "ids", ids);
		if (ev->patient_sealed)
			json_object_set_new(o, "patient", json_string("(sealed)"));
		else if (ev->patient[0])
			json_object_set_new(o, "patient", json_string(ev->patient));
		print_json(o);
		return ferror(stdout) != 0;
	}
	if ((*rows)++ == 0)
		printf("%-6s %-24s %-18s %-12s %-13s %-16s %6s  %s\n", "SEQ", "TIME", "USER",
		       "HOST", "COMMAND", "IDS", "COUNT", "FILTER / DETAIL");
	char user[160], idl[64] = "-";
	if (ev->sudo_user[0])
		snprintf(user, sizeof user, "%s(sudo:%s)", ev->user, ev->sudo_user);
	else
		snprintf(user, sizeof user, "%s", ev->user);
	size_t n = 0;
	for (size_t i = 0; i < ev->nids && n < 40; i++)
		n += (size_t)snprintf(idl + n, sizeof idl - n, "%s%llu", i ? "," : "",
				      (unsigned long long)ev->ids[i]);
	if (ev->nids && n >= 40)
		snprintf(idl + 36, sizeof idl - 36, ",...");
	char cmd[64];
	snprintf(cmd, sizeof cmd, "%s%s%s", strcmp(ev->program, "hl7q") ? ev->program : "",
		 strcmp(ev->program, "hl7q") ? " " : "", ev->command);
	printf("%-6llu %-24s %-18s %-12s %-13s %-16s %6llu  %s%s%s%s%s%s\n",
	       (unsigned long long)ev->seq, fmt_time(ev->at_us, t, sizeof t), user, ev->host, cmd, idl,
	       (unsigned long long)ev->count, ev->filter, ev->filter[0] && ev->detail[0] ? " " : "",
	       ev->detail, ev->patient[0] || ev->patient_sealed ? " patient=" : "",
	       ev->patient_sealed ? "(sealed)" : ev->patient, "");
	return ferror(stdout) != 0;
}

const struct option audit_opts[] = {{"since", required_argument, NULL, 'S'},
				    {"until", required_argument, NULL, 'U'},
				    {"user", required_argument, NULL, 'u'},
				    {"id", required_argument, NULL, 'i'},
				    {"before", required_argument, NULL, 'b'},
				    {"json", no_argument, NULL, 'J'},
				    {NULL, 0, NULL, 0}};

int
cmd_audit(ctx *c, int argc, char **argv)
{
	hq_audit_query q;
	uint64_t before = 0;
	int o, rows = 0, has_before = 0;
	memset(&q, 0, sizeof q);
	while ((o = getopt_long(argc, argv, "+", audit_opts, NULL)) != -1) {
		switch (o) {
		case 'S':
		case 'U':
			if (range_arg(o, optarg, &q.since_us, &q.until_us))
				return 1;
			break;
		case 'b':
			if (time_arg("--before", "400d", optarg, &before))
				return 1;
			has_before = 1;
			break;
		case 'u': q.user = optarg; break;
		case 'i':
			if (parse_id(optarg, &q.id))
				return fail("--id '%s' is not a message id (a positive number)", optarg);
			break;
		case 'J': g_json = 1; break;
		default: return bad_option(argv);
		}
	}
	int purge = optind < argc && strcmp(argv[optind], "purge") == 0;
	if (optind + purge != argc)
		return fail("unexpected argument '%s' (hl7q audit [filters], or hl7q audit purge --before TIME)",
			    argv[optind + purge]);
	if (purge) {
		if (!has_before)
			return fail("purge what? hl7q audit purge --before TIME");
		if (q.since_us || q.until_us || q.user || q.id)
			return fail("audit purge takes --before TIME only");
		snprintf(c->ev.command, sizeof c->ev.command, "audit purge");
		char t[40];
		snprintf(c->ev.detail, sizeof c->ev.detail, "before=%s", fmt_time(before, t, sizeof t));
		int rc = audit_now(c, NULL, 0, 0);
		if (rc)
			return rc;
		long n = hq_audit_purge_before(c->audit, before, c->ev.seq);
		if (n < 0)
			return fail("cannot purge audit events: %s", hq_strerror((int)n));
		if (g_json)
			printf("{\"purged_events\":%ld,\"before\":\"%s\"}\n", n, fmt_time(before, t, sizeof t));
		else
			printf("purged %ld audit event%s recorded before %s (this purge is event %llu)\n",
			       n, n == 1 ? "" : "s", fmt_time(before, t, sizeof t),
			       (unsigned long long)c->ev.seq);
		return 0;
	}
	if (has_before)
		return fail("--before goes with hl7q audit purge");
	if (q.since_us && q.until_us && q.since_us >= q.until_us)
		return fail("--since is not before --until: the range is empty");
	int rc = audit_now(c, q.id ? &q.id : NULL, q.id ? 1 : 0, 0);
	if (rc)
		return rc;
	long n = hq_audit_list(c->audit, &q, audit_row, &rows);
	if (n < 0)
		return fail("cannot read the audit trail: %s", hq_strerror((int)n));
	if (!g_json && n == 0)
		fprintf(stderr, "no audit events match\n");
	return 0;
}
