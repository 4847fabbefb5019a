/*
 * show.c - hl7q show: a message's story (metadata, the ACK sent, every
 * delivery and attempt with its answer excerpt), its bytes exactly as
 * received (--raw), or the FHIR Bundle a format = fhir target gets (--fhir).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "hl7/fhir.h"
#include "tools/hl7q/hl7q.h"

/* Prints up to n bytes of an answer excerpt, non-printing bytes as \xNN. */
static void
print_excerpt(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch >= 0x20 && ch < 0x7f)
			putchar(ch);
		else if (ch == '\r' || ch == '\n')
			fputs("\\n", stdout);
		else
			printf("\\x%02x", ch);
	}
}

static int
show_attempt(void *arg, const hq_attempt *a)
{
	json_t *list = arg;
	char t[40];
	if (list) {
		json_array_append_new(
			list, json_pack("{s:s, s:i, s:s, s:i, s:f, s:s, s:s%}", "target", a->target,
					"n", (int)a->n, "at", fmt_time(a->at_us, t, sizeof t),
					"http_status", a->http_status, "latency_ms", a->latency_us / 1000.0,
					"error", a->error, "response", a->body, a->body_len));
		return 0;
	}
	static char last_target[HQ_TARGET_MAX];
	static uint32_t last_n;
	if (strcmp(last_target, a->target) != 0)
		last_n = 0;
	if (a->n > last_n + 1)
		printf("  %-16s ... %u attempt%s not kept (the journal keeps the first and the last few)\n",
		       a->target, a->n - last_n - 1, a->n - last_n - 1 == 1 ? "" : "s");
	snprintf(last_target, sizeof last_target, "%s", a->target);
	last_n = a->n;
	char st[16];
	if (a->http_status)
		snprintf(st, sizeof st, "HTTP %d", a->http_status);
	else
		snprintf(st, sizeof st, "no answer");
	printf("  %-16s #%-3u %s  %-9s %8.1f ms", a->target, a->n, fmt_time(a->at_us, t, sizeof t),
	       st, a->latency_us / 1000.0);
	if (strcmp(a->error, st) != 0) /* more than the status: a reason, a redirect's Location */
		printf("  %s", a->error);
	if (a->body_len) {
		fputs("  response: ", stdout);
		print_excerpt(a->body, a->body_len);
	}
	putchar('\n');
	return 0;
}

const struct option show_opts[] = {{"raw", no_argument, NULL, 'r'},
				   {"json", no_argument, NULL, 'J'},
				   {"fhir", no_argument, NULL, 'F'},
				   {"target", required_argument, NULL, 'T'},
				   {NULL, 0, NULL, 0}};

/* show --fhir: the Bundle the format = fhir target (named, or the only one) gets for r. */
static int
show_fhir(ctx *c, const hq_record *r, const char *target)
{
	const hq_target_conf *t = NULL;
	int n = 0;
	for (int i = 0; c->have_cfg && i < c->cfg.ntargets; i++)
		if (c->cfg.targets[i].format == HQ_FMT_FHIR &&
		    (target == NULL || strcmp(c->cfg.targets[i].name, target) == 0))
			t = &c->cfg.targets[i], n++;
	if (t == NULL)
		return fail(target ? "no format = fhir target '%s' in the config"
				   : "--fhir needs a config (-c FILE) with a format = fhir target",
			    target);
	if (n > 1)
		return fail("several format = fhir targets: name one with --target");
	if (r->locked)
		return fail("message %llu is encrypted and no key here opens it",
			    (unsigned long long)r->id);
	hq_fhir_opts o;
	hq_tz *tz;
	char err[600], *body;
	size_t len;
	if (hq_fhir_opts_init(&o, t->fhir_id_key_file, t->fhir_timezone, &tz, err, sizeof err) != 0)
		return fail("target %s: %s", t->name, err);
	o.batch = t->fhir_batch;
	o.max_entries = t->fhir_max_entries;
	o.patient_match = t->fhir_patient_match;
	hq_fhir_stats st;
	int rc = hq_fhir_render(r->f[HQ_F_RAW].p, r->f[HQ_F_RAW].n, &o, &body, &len, &st, err, sizeof err);
	hq_tz_free(tz);
	memset(&o, 0, sizeof o);
	if (rc != 0)
		return fail("message %llu: %s (target %s: %s)", (unsigned long long)r->id,
			    hq_strerror(rc), t->name, err);
	fwrite(body, 1, len, stdout);
	putchar('\n');
	free(body);
	if (st.zsegments || st.skipped) /* what the Bundle leaves out, on stderr: stdout is the Bundle alone */
		fprintf(stderr, "hl7q show: %d entries; %d Z-segment%s ignored, %d segment%s without a mapping\n",
			st.entries, st.zsegments, st.zsegments == 1 ? "" : "s", st.skipped,
			st.skipped == 1 ? "" : "s");
	return ferror(stdout) ? fail("cannot write: %s", strerror(errno)) : 0;
}

/* show --json: r, its deliveries d[0..nd) and its attempts, as one JSON line. */
static long
show_json(ctx *c, const hq_record *r, const hq_msg_dlv *d, long nd)
{
	char t[40];
	json_t *o = record_json(r, d, (size_t)nd), *att = json_array(), *dl = json_array();
	json_object_set_new(o, "version", jfield(r, HQ_F_VERSION));
	json_object_set_new(o, "sending_application", jfield(r, HQ_F_SENDING_APP));
	json_object_set_new(o, "sending_facility", jfield(r, HQ_F_SENDING_FAC));
	json_object_set_new(o, "receiving_application", jfield(r, HQ_F_RECEIVING_APP));
	json_object_set_new(o, "receiving_facility", jfield(r, HQ_F_RECEIVING_FAC));
	json_object_set_new(o, "ack_control_id", jfield(r, HQ_F_ACK_ID));
	json_object_set_new(o, "reason", jfield(r, HQ_F_REASON));
	json_object_set_new(o, "size_bytes", json_integer((json_int_t)r->f[HQ_F_RAW].n));
	for (long i = 0; i < nd; i++)
		json_array_append_new(dl, json_pack("{s:s, s:s, s:i, s:i, s:s}", "target", d[i].target,
						    "state", dlv_state_name(d[i].d.state), "attempts",
						    (int)d[i].d.attempts, "last_status", d[i].d.last_status,
						    "updated_at", fmt_time(d[i].d.updated_us, t, sizeof t)));
	json_object_set_new(o, "deliveries", dl);
	long na = hq_journal_attempts(c->j, r->id, show_attempt, att);
	json_object_set_new(o, "attempts", att);
	print_json(o);
	return na;
}

/* show's story: r's metadata, the ACK sent, its deliveries d[0..nd) and attempts. */
static long
show_text(ctx *c, const hq_record *r, const hq_msg_dlv *d, long nd)
{
	char t[40], b1[256], b2[256];
	printf("id           %llu\n", (unsigned long long)r->id);
	printf("received     %s\n", fmt_time(r->received_us, t, sizeof t));
	printf("listener     %s\n", field(r, HQ_F_LISTENER, b1, sizeof b1));
	printf("peer         %s\n", field(r, HQ_F_PEER, b1, sizeof b1));
	printf("type         %s\n", field(r, HQ_F_TYPE, b1, sizeof b1));
	printf("control id   %s\n", field(r, HQ_F_CONTROL_ID, b1, sizeof b1));
	printf("version      %s\n", field(r, HQ_F_VERSION, b1, sizeof b1));
	printf("sender       %s / %s\n", field(r, HQ_F_SENDING_APP, b1, sizeof b1),
	       field(r, HQ_F_SENDING_FAC, b2, sizeof b2));
	printf("receiver     %s / %s\n", field(r, HQ_F_RECEIVING_APP, b1, sizeof b1),
	       field(r, HQ_F_RECEIVING_FAC, b2, sizeof b2));
	printf("patient      %s\n", r->locked ? "(sealed: no key)" : field(r, HQ_F_PATIENT_ID, b1, sizeof b1));
	if (r->f[HQ_F_RAW_SIZE].n) /* refused: the journal keeps a prefix */
		printf("size         %s bytes (first %zu kept), sha256 %s\n",
		       field(r, HQ_F_RAW_SIZE, b1, sizeof b1), r->f[HQ_F_RAW].n,
		       field(r, HQ_F_RAW_SHA256, b2, sizeof b2));
	else
		printf("size         %zu bytes%s\n", r->f[HQ_F_RAW].n, r->is_batch ? " (FHS/BHS batch)" : "");
	printf("intake       %s", msg_state_name(r->state));
	if (r->state == HQ_MSG_DUPLICATE)
		printf(" of message %llu", (unsigned long long)r->dup_of);
	printf("\nack sent     %s", r->ack[0] ? r->ack : "none");
	if (r->f[HQ_F_ACK_ID].n)
		printf(" (ACK control id %s)", field(r, HQ_F_ACK_ID, b1, sizeof b1));
	if (r->err_code)
		printf(", error %u: %s", r->err_code, field(r, HQ_F_REASON, b1, sizeof b1));
	printf("\ndeliveries   %s\n", nd ? "" : "none");
	for (long i = 0; i < nd; i++)
		printf("  %-16s %-9s  attempts %u  last status %d  at %s%s\n", d[i].target,
		       dlv_state_name(d[i].d.state), d[i].d.attempts, d[i].d.last_status,
		       fmt_time(d[i].d.updated_us, t, sizeof t), d[i].d.replayed_us ? "  (replayed)" : "");
	printf("attempts\n");
	long na = hq_journal_attempts(c->j, r->id, show_attempt, NULL);
	if (na == 0)
		printf("  none\n");
	return na;
}

int
cmd_show(ctx *c, int argc, char **argv)
{
	const struct option *opts = show_opts;
	int o, raw = 0, fhir = 0;
	const char *fhir_target = NULL;
	while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (o == 'r')
			raw = 1;
		else if (o == 'F')
			fhir = 1;
		else if (o == 'T')
			fhir_target = optarg;
		else if (o == 'J')
			g_json = 1;
		else
			return bad_option(argv);
	}
	if (optind + 1 != argc)
		return fail(optind == argc ? "which message? (hl7q show ID)" : "one id at a time");
	if (raw && g_json)
		return fail("--raw and --json conflict");
	if (fhir && (raw || g_json))
		return fail("--fhir prints the Bundle: no --raw or --json with it");
	uint64_t id;
	if (parse_id(argv[optind], &id))
		return fail("'%s' is not a message id (a positive number)", argv[optind]);
	hq_record r;
	void *mem;
	int rc = hq_journal_get(c->j, id, &r, &mem);
	if (rc == HQ_ENOTFOUND)
		return fail("no message %llu in the journal", (unsigned long long)id);
	if (rc)
		return fail("cannot read message %llu: %s", (unsigned long long)id, hq_strerror(rc));
	if (raw && r.locked) {
		free(mem);
		return fail("message %llu is encrypted and no key here opens it (hl7q -c CONFIG with encryption_key_file)",
			    (unsigned long long)id);
	}
	if ((rc = audit_now(c, &id, 1, 1)) != 0) {
		free(mem);
		return rc;
	}
	if (fhir) {
		rc = show_fhir(c, &r, fhir_target);
		free(mem);
		return rc;
	}
	if (raw) {
		fwrite(r.f[HQ_F_RAW].p, 1, r.f[HQ_F_RAW].n, stdout);
		free(mem);
		return ferror(stdout) ? fail("cannot write: %s", strerror(errno)) : 0;
	}
	hq_msg_dlv d[HQ_TARGET_MAX];
	long nd = hq_journal_deliveries(c->j, id, d, HQ_TARGET_MAX);
	if (nd < 0) {
		free(mem);
		return fail("cannot read the journal: %s", hq_strerror((int)nd));
	}
	if (nd > HQ_TARGET_MAX)
		nd = HQ_TARGET_MAX;
	long na = g_json ? show_json(c, &r, d, nd) : show_text(c, &r, d, nd);
	free(mem);
	return na < 0 ? fail("cannot read the journal: %s", hq_strerror((int)na)) : 0;
}
