/*
 * replay.c - hl7q replay and purge: queue messages for delivery again, or
 * delete them, chosen by id, as the dead ones, or by time; a short write
 * transaction per ID_CHUNK ids, which the daemon's workers see on their
 * next scan.  Each records its access audit event first.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "tools/hl7q/hl7q.h"

const struct option replay_opts[] = {
	{"dead", no_argument, NULL, 'd'},	 {"target", required_argument, NULL, 't'},
	{"since", required_argument, NULL, 'S'}, {"until", required_argument, NULL, 'U'},
	{"dry-run", no_argument, NULL, 'n'},	 {"missing", no_argument, NULL, 'm'},
	{"json", no_argument, NULL, 'J'},	 {NULL, 0, NULL, 0}};

/* What replay did (or, dry, would do): messages, deliveries queued, and
 * for a range the messages target never had. */
static void
replay_report(const collect *ids, long queued, int dry, int range, const char *target)
{
	if (g_json) {
		printf("{\"messages\":%zu,\"queued\":%ld,\"dry_run\":%s", ids->n, queued, dry ? "true" : "false");
		if (range) {
			printf(",\"never_had\":%llu,\"never_had_ids\":[", (unsigned long long)ids->never_had);
			for (size_t i = 0; i < ids->nn; i++)
				printf("%s%llu", i ? "," : "", (unsigned long long)ids->nv[i]);
			printf("]");
		}
		printf("}\n");
	} else {
		if (dry)
			printf("would replay %zu message%s\n", ids->n, ids->n == 1 ? "" : "s");
		else
			printf("queued %ld deliver%s of %zu message%s\n", queued,
			       queued == 1 ? "y" : "ies", ids->n, ids->n == 1 ? "" : "s");
		if (range) {
			printf("%llu of them %s never had%s", (unsigned long long)ids->never_had,
			       target, ids->never_had ? ":" : "");
			for (size_t i = 0; i < ids->nn; i++)
				printf(" %llu", (unsigned long long)ids->nv[i]);
			printf("%s\n", ids->never_had > ids->nn ? " ..." : "");
		}
	}
}

int
cmd_replay(ctx *c, int argc, char **argv)
{
	const struct option *opts = replay_opts;
	hq_query q;
	int o, dead = 0, dry = 0, missing = 0;
	const char *target = NULL;
	memset(&q, 0, sizeof q);
	while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (o) {
		case 'd': dead = 1; break;
		case 't': target = optarg; break;
		case 'S':
		case 'U':
			if (range_arg(o, optarg, &q.since_us, &q.until_us))
				return 1;
			break;
		case 'n': dry = 1; break;
		case 'm': missing = 1; break;
		case 'J': g_json = 1; break;
		default: return bad_option(argv);
		}
	}
	int nids = argc - optind, range = q.since_us || q.until_us;
	if (missing && !range)
		return fail("--missing goes with --target T --since TIME");
	if (nids && (dead || range))
		return fail("message ids and --dead/--since/--until conflict: give one or the other");
	if (dead && range)
		return fail("--dead and --since/--until conflict");
	if (!nids && !dead && !range)
		return fail("what to replay? ids, --dead [--target T], or --target T --since TIME");
	if (range && target == NULL)
		return fail("a time range replays for one target: add --target T");
	if (target && strlen(target) >= HQ_TARGET_MAX)
		return fail("no target '%s'", target);
	if (check_range(&q) || check_target(c, target))
		return 1;
	collect ids = {0};
	if (nids) {
		if (ids_from_args(c, nids, argv + optind, &ids.v, &ids.n))
			return 1;
	} else {
		if (dead) {
			q.state = HQ_DLV_DEAD;
			q.target = target;
		} else {
			ids.route_to = target;
			ids.only_missing = missing;
			for (int i = 0; c->have_cfg && i < c->cfg.ntargets; i++)
				if (strcmp(c->cfg.targets[i].name, target) == 0)
					ids.route_conf = &c->cfg.targets[i];
		}
		long n = hq_journal_query(c->j, &q, collect_id, &ids);
		if (n < 0) {
			free(ids.v);
			free(ids.nv);
			return fail("cannot read the journal: %s", hq_strerror((int)n));
		}
	}
	int rc = audit_now(c, ids.v, ids.n, ids.n);
	if (rc) {
		free(ids.v);
		free(ids.nv);
		return rc;
	}
	long queued = 0;
	for (size_t i = 0; !dry && i < ids.n; i += ID_CHUNK) {
		size_t k = ids.n - i < ID_CHUNK ? ids.n - i : ID_CHUNK;
		long n = hq_journal_replay(c->j, ids.v + i, k, target, dead, hq_wall_us());
		if (n < 0) {
			free(ids.v);
			free(ids.nv);
			return fail("cannot write the journal: %s (%ld deliveries queued before)",
				    hq_strerror((int)n), queued);
		}
		queued += n;
	}
	replay_report(&ids, queued, dry, range, target);
	free(ids.v);
	free(ids.nv);
	return 0;
}

const struct option purge_opts[] = {{"dead", no_argument, NULL, 'd'},
				    {"delivered-before", required_argument, NULL, 'b'},
				    {"target", required_argument, NULL, 't'},
				    {"dry-run", no_argument, NULL, 'n'},
				    {"json", no_argument, NULL, 'J'},
				    {"rejected", no_argument, NULL, 'r'},
				    {"force", no_argument, NULL, 'f'},
				    {NULL, 0, NULL, 0}};

/* Whether a message of ids[0..n) is still owed to a target (pending,
 * retrying or dead): then it says which, and purging it needs --force. */
static int
undelivered(ctx *c, const uint64_t *ids, size_t n)
{
	static const char *names[] = {"?", "pending", "retrying", "delivered", "dead"};
	for (size_t i = 0; i < n; i++) {
		hq_msg_dlv d[HQ_TARGET_MAX];
		long nd = hq_journal_deliveries(c->j, ids[i], d, HQ_TARGET_MAX);
		if (nd < 0)
			return fail("cannot read the journal: %s", hq_strerror((int)nd)) != 0;
		for (long t = 0; t < nd && t < HQ_TARGET_MAX; t++)
			if (d[t].d.state != HQ_DLV_DELIVERED)
				return fail("message %llu has not been delivered to target %s (%s): "
					    "add --force to purge it anyway",
					    (unsigned long long)ids[i], d[t].target,
					    d[t].d.state <= HQ_DLV_DEAD ? names[d[t].d.state] : "?") != 0;
	}
	return 0;
}

/* purge --delivered-before TIME or --rejected: counted first (the audit
 * event's count), then purged a slice per transaction; *purged counts.
 * Returns 0, or the exit status after saying why. */
static int
purge_by_time(ctx *c, int rejected, uint64_t before, int dry, long *purged)
{
	uint64_t resume = 0, found = 0;
	long n;
	if (rejected)
		before = UINT64_MAX; /* every refused frame */
	do {			     /* count first, for the audit event */
		n = rejected ? hq_journal_purge_rejected(c->j, before, &resume, ID_CHUNK, 1)
			     : hq_journal_purge_before(c->j, before, &resume, ID_CHUNK, 1);
		if (n < 0)
			return fail("cannot read the journal: %s", hq_strerror((int)n));
		found += (uint64_t)n;
	} while (resume < before);
	int rc = audit_now(c, NULL, 0, found);
	if (rc)
		return rc;
	resume = 0;
	do {
		n = rejected ? hq_journal_purge_rejected(c->j, before, &resume, ID_CHUNK, dry)
			     : hq_journal_purge_before(c->j, before, &resume, ID_CHUNK, dry);
		if (n < 0)
			return fail("cannot purge: %s (%ld purged before)", hq_strerror((int)n), *purged);
		*purged += n;
	} while (resume < before);
	return 0;
}

/* purge ID... (owed ones need force) or --dead [--target T] (settled ones,
 * checked again as it purges); *purged counts.  Returns 0, or the exit
 * status after saying why. */
static int
purge_ids(ctx *c, int nids, char **idv, const char *target, int force, int dry, long *purged)
{
	collect ids = {0};
	if (nids) {
		if (ids_from_args(c, nids, idv, &ids.v, &ids.n))
			return 1;
		if (!force && undelivered(c, ids.v, ids.n)) {
			free(ids.v);
			return 1;
		}
	} else {
		hq_query q;
		memset(&q, 0, sizeof q);
		q.state = HQ_DLV_DEAD;
		q.target = target;
		ids.need_settled = 1;
		long n = hq_journal_query(c->j, &q, collect_id, &ids);
		if (n < 0) {
			free(ids.v);
			return fail("cannot read the journal: %s", hq_strerror((int)n));
		}
	}
	int rc = audit_now(c, ids.v, ids.n, ids.n);
	if (rc) {
		free(ids.v);
		return rc;
	}
	for (size_t i = 0; i < ids.n; i += ID_CHUNK) {
		size_t k = ids.n - i < ID_CHUNK ? ids.n - i : ID_CHUNK;
		/* --dead: checked again as it purges, so a replay made meanwhile stays */
		long n = dry ? (long)k : hq_journal_purge_if(c->j, ids.v + i, k, nids ? HQ_PURGE_ANY : HQ_PURGE_SETTLED);
		if (n < 0) {
			free(ids.v);
			return fail("cannot purge: %s (%ld purged before)", hq_strerror((int)n), *purged);
		}
		*purged += n;
	}
	free(ids.v);
	return 0;
}

int
cmd_purge(ctx *c, int argc, char **argv)
{
	const struct option *opts = purge_opts;
	int o, dead = 0, dry = 0, before_set = 0, rejected = 0, force = 0;
	uint64_t before = 0;
	const char *target = NULL;
	while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (o) {
		case 'd': dead = 1; break;
		case 'r': rejected = 1; break;
		case 'b':
			if (time_arg("--delivered-before", "30d", optarg, &before))
				return 1;
			before_set = 1;
			break;
		case 't': target = optarg; break;
		case 'n': dry = 1; break;
		case 'J': g_json = 1; break;
		case 'f': force = 1; break;
		default: return bad_option(argv);
		}
	}
	int nids = argc - optind;
	if (force && !nids)
		return fail("--force goes with message ids only");
	if ((nids > 0) + dead + before_set + rejected != 1)
		return fail(nids + dead + before_set + rejected
				    ? "give one of --dead, --rejected, --delivered-before TIME or ids"
				    : "what to purge? --dead, --rejected, --delivered-before TIME, or ids");
	if (target && !dead)
		return fail("--target goes with --dead only");
	if (check_target(c, target))
		return 1;
	long purged = 0;
	uint64_t before_usage = 0;
	hq_journal_usage u;
	if (hq_journal_usage_get(c->j, &u) == 0)
		before_usage = u.free;
	int rc = before_set || rejected ? purge_by_time(c, rejected, before, dry, &purged)
					: purge_ids(c, nids, argv + optind, target, force, dry, &purged);
	if (rc)
		return rc;
	uint64_t freed = 0;
	if (!dry && hq_journal_usage_get(c->j, &u) == 0 && u.free > before_usage)
		freed = u.free - before_usage;
	if (g_json)
		printf("{\"purged\":%ld,\"dry_run\":%s,\"freed_bytes\":%llu}\n", purged,
		       dry ? "true" : "false", (unsigned long long)freed);
	else if (dry)
		printf("would purge %ld message%s\n", purged, purged == 1 ? "" : "s");
	else
		printf("purged %ld message%s (%.1f MB freed for reuse)\n", purged,
		       purged == 1 ? "" : "s", freed / 1e6);
	return 0;
}
