/*
 * check.c - hl7q check, the monitoring plugin (Nagios/Icinga contract:
 * exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, one line with perfdata on
 * stdout).  The figures come from the journal and the daemon's status
 * file, or from the admin endpoint's /healthz and /metrics (--admin);
 * --silent adds the listeners that went quiet past their expect_within.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/feeds.h"
#include "core/silence.h"
#include "core/status.h"
#include "core/timefmt.h"
#include "queue/feeds.h"
#include "tools/hl7q/hl7q.h"

/* A monitoring threshold: warn and crit, each optional. */
typedef struct limit {
	uint64_t warn, crit;
	int has_warn, has_crit;
} limit;

static int
level(const limit *l, uint64_t v)
{
	if (l->has_crit && v > l->crit)
		return 2;
	if (l->has_warn && v > l->warn)
		return 1;
	return 0;
}

static void
perf(const char *name, uint64_t v, const char *unit, const limit *l)
{
	printf(" %s=%llu%s;", name, (unsigned long long)v, unit);
	if (l->has_warn)
		printf("%llu", (unsigned long long)l->warn);
	putchar(';');
	if (l->has_crit)
		printf("%llu", (unsigned long long)l->crit);
	printf(";0;");
}

/*
 * check's defaults, for a threshold not given (hl7q(1) CHECK): a metric
 * with either of its thresholds given uses just those.  hl7qd not running
 * (or not answering) is CRITICAL whatever the thresholds.
 */
#define CHECK_WARN_AGE_S (10 * 60)
#define CHECK_CRIT_AGE_S (60 * 60)
#define CHECK_WARN_DEAD 0 /* any dead message */
#define CHECK_WARN_PENDING 10000
#define CHECK_CRIT_PENDING 100000
#define CHECK_WARN_FREE_PCT 20 /* journal free space below this share of max_size */
#define CHECK_CRIT_FREE_PCT 10

/* check's UNKNOWN: the reason on stdout, where Nagios shows it; returns 3. */
static int
unknown(const char *fmt, ...)
{
	char why[sizeof g_err];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap); /* g_err may be an argument */
	va_end(ap);
	snprintf(g_err, sizeof g_err, "%s", why);
	printf("HL7Q UNKNOWN - %s\n", why);
	fprintf(stderr, "hl7q check: %s\n", why);
	return 3;
}

/* What check judges, read from the journal or from the admin endpoint. */
typedef struct figures {
	uint64_t pending, dead, oldest, free, max;
	char worst_age[HQ_TARGET_MAX], worst_dead[HQ_TARGET_MAX];
	uint64_t worst_dead_n, worst_age_s;
	char down[300]; /* why hl7qd counts as down ("" up) */
	int targets;	/* how many were counted */
} figures;

static void
figures_add(figures *f, const char *target, uint64_t pending, uint64_t dead, uint64_t age)
{
	f->pending += pending;
	f->dead += dead;
	if (age > f->oldest || f->targets == 0)
		f->oldest = age > f->oldest ? age : f->oldest;
	if (age >= f->worst_age_s && age > 0) {
		f->worst_age_s = age;
		snprintf(f->worst_age, sizeof f->worst_age, "%s", target);
	}
	if (dead > f->worst_dead_n) {
		f->worst_dead_n = dead;
		snprintf(f->worst_dead, sizeof f->worst_dead, "%s", target);
	}
	f->targets++;
}

static int
figures_from_journal(ctx *c, const char *only, figures *f)
{
	if (c->j == NULL) {
		if (c->journal_dir == NULL)
			return unknown("no journal: give -c FILE (hl7qd's config), -j DIR, or --admin HOST:PORT");
		if (open_journal(c, 0) != 0)
			return unknown("%s", g_err);
	}
	status *s = hq_xcalloc(1, sizeof *s);
	if (load_status(c, s, only) != 0) {
		free(s);
		return unknown("%s", g_err);
	}
	uint64_t now = hq_wall_us();
	for (long i = 0; i < s->n; i++)
		figures_add(f, s->t[i].name, s->t[i].pending + s->t[i].retrying + (uint64_t)s->inflight[i],
			    s->t[i].dead, hq_age_s(s->t[i].oldest_pending_us, now));
	f->free = s->u.free;
	f->max = s->u.map_size;
	free(s);
	daemon_info di;
	char dw[100];
	daemon_probe(c, &di);
	if (di.state != DAEMON_UP)
		snprintf(f->down, sizeof f->down, "hl7qd %s", daemon_words(&di, dw, sizeof dw));
	return 0;
}

/* The value of metric name{target="T"} lines, target by target, into f. */
static int
figures_from_metrics(const char *text, const char *only, figures *f)
{
	static const char *names[] = {"hl7q_target_pending", "hl7q_target_retrying", "hl7q_target_inflight",
				      "hl7q_target_dead", "hl7q_target_oldest_pending_age_seconds"};
	struct {
		char name[HQ_TARGET_MAX];
		double v[5];
	} t[MAX_TARGETS];
	int nt = 0, have_free = 0;
	double fr = 0, mx = 0;
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (*l == '#')
			continue;
		if (sscanf(l, "hl7q_journal_free_bytes %lf", &fr) == 1) {
			have_free = 1;
			continue;
		}
		if (sscanf(l, "hl7q_journal_max_bytes %lf", &mx) == 1)
			continue;
		for (int k = 0; k < 5; k++) {
			size_t nl = strlen(names[k]);
			char name[HQ_TARGET_MAX];
			double v;
			if (strncmp(l, names[k], nl) != 0 || strncmp(l + nl, "{target=\"", 9) != 0 ||
			    sscanf(l + nl + 9, "%63[^\"]\"} %lf", name, &v) != 2)
				continue;
			int i = 0;
			while (i < nt && strcmp(t[i].name, name) != 0)
				i++;
			if (i == nt && nt < MAX_TARGETS) {
				memset(&t[nt], 0, sizeof t[nt]);
				snprintf(t[nt].name, sizeof t[nt].name, "%s", name);
				nt++;
			}
			if (i < nt)
				t[i].v[k] = v;
		}
	}
	if (!have_free)
		return unknown("the admin endpoint's /metrics has no hl7q_journal_free_bytes: is it hl7qd's?");
	for (int i = 0; i < nt; i++)
		if (only == NULL || strcmp(only, t[i].name) == 0)
			figures_add(f, t[i].name, (uint64_t)(t[i].v[0] + t[i].v[1] + t[i].v[2]),
				    (uint64_t)t[i].v[3], (uint64_t)t[i].v[4]);
	if (only && f->targets == 0)
		return unknown("no target '%s' in the admin endpoint's /metrics", only);
	f->free = (uint64_t)fr;
	f->max = (uint64_t)mx;
	return 0;
}

static int
figures_from_admin(const char *addr, const char *only, figures *f)
{
	char err[CURL_ERROR_SIZE + 64];
	hq_buf b = {0};
	long st = http_get(addr, "/healthz", &b, err, sizeof err);
	int rc = 0;
	if (st < 0) {
		snprintf(f->down, sizeof f->down, "hl7qd not answering on %s (%s)", addr, err);
	} else if (st != 200) {
		json_t *o = b.p ? json_loads(b.p, 0, NULL) : NULL;
		char *reasons = o ? json_dumps(json_object_get(o, "reasons"), JSON_COMPACT) : NULL;
		snprintf(f->down, sizeof f->down, "hl7qd unhealthy (/healthz HTTP %ld%s%s)", st,
			 reasons ? ": " : "", reasons ? reasons : "");
		free(reasons);
		json_decref(o);
	}
	free(b.p);
	b = (hq_buf){0};
	if (st >= 0) {
		long ms = http_get(addr, "/metrics", &b, err, sizeof err);
		if (ms != 200)
			rc = ms < 0 ? unknown("GET http://%s/metrics: %s", addr, err)
				    : unknown("GET http://%s/metrics: HTTP %ld", addr, ms);
		else
			rc = figures_from_metrics(b.p ? b.p : "", only, f);
	}
	free(b.p);
	curl_unload();
	return rc;
}

/*
 * check --silent: the listeners with expect_within that are silent now,
 * named in text (" silent: adt 912 s") and as JSON strings in json.  The
 * last messages are read back from the journal as the daemon does at
 * start, or the running daemon's (its status file) when later.  Returns 0 OK,
 * 2 CRITICAL (one is silent) or 3 UNKNOWN (no config, journal unreadable).
 */
static int
check_silent(ctx *c, char *text, size_t cap, char *json, size_t jcap, int *nsilent)
{
	int n = c->have_cfg ? c->cfg.nlisteners : 0;
	*nsilent = 0;
	snprintf(json, jcap, "[");
	if (!c->have_cfg) {
		snprintf(text, cap, ", --silent needs -c FILE (expect_within is in the config)");
		return 3;
	}
	const char **names = hq_xcalloc((size_t)n, sizeof *names);
	uint64_t *last = hq_xcalloc((size_t)n, sizeof *last), oldest = 0;
	for (int i = 0; i < n; i++)
		names[i] = c->cfg.listeners[i].name;
	int rc = c->j ? 0 : open_journal(c, 0) != 0 ? HQ_ENOTFOUND : 0;
	if (rc != 0)
		snprintf(text, cap, ", cannot open the journal: %s", g_err);
	else if ((rc = hq_feeds_last_seen(c->j, names, n, HQ_FEEDS_SCAN, last, &oldest)) != 0)
		snprintf(text, cap, ", cannot read the journal: %s", hq_strerror(rc));
	if (rc != 0) {
		free(names);
		free(last);
		return 3;
	}
	/* the running daemon's own figure (its status file, a second old at
	 * most) covers listeners the journal has no message of */
	hq_status ds;
	int daemon = hq_status_read(c->journal_dir, &ds) == 0 && hq_status_alive(&ds);
	for (int i = 0; i < n; i++) {
		const hq_status_listener *sl = daemon ? hq_status_listener_find(&ds, names[i]) : NULL;
		if (sl && sl->last_message_us > last[i])
			last[i] = sl->last_message_us;
		if (last[i] == 0)
			last[i] = oldest; /* silent since at least then; 0: never, in the whole journal */
	}
	hq_status_free(&ds);
	uint64_t now = hq_wall_us(), quiet;
	size_t off = 0;
	text[0] = 0;
	for (int i = 0; i < n; i++) {
		const hq_listener_conf *l = &c->cfg.listeners[i];
		if (!hq_silence_eval(last[i], now, l->expect_within_ms, l->expect_from_min,
				     l->expect_to_min, &quiet))
			continue;
		if (last[i])
			off += (size_t)snprintf(text + off, off < cap ? cap - off : 0, "%s%s %llu s",
						*nsilent ? ", " : ", silent: ", l->name,
						(unsigned long long)(quiet / 1000000));
		else
			off += (size_t)snprintf(text + off, off < cap ? cap - off : 0, "%s%s never heard",
						*nsilent ? ", " : ", silent: ", l->name);
		size_t jn = strlen(json);
		snprintf(json + jn, jcap - jn, "%s\"%s\"", *nsilent ? "," : "", l->name);
		(*nsilent)++;
	}
	size_t jn = strlen(json);
	snprintf(json + jn, jcap - jn, "]");
	free(names);
	free(last);
	return *nsilent ? 2 : 0;
}

const struct option check_opts[] = {{"max-age", required_argument, NULL, 'a'},
				    {"max-dead", required_argument, NULL, 'd'},
				    {"max-pending", required_argument, NULL, 'p'},
				    {"warn-age", required_argument, NULL, 'A'},
				    {"warn-dead", required_argument, NULL, 'D'},
				    {"warn-pending", required_argument, NULL, 'P'},
				    {"target", required_argument, NULL, 't'},
				    {"admin", required_argument, NULL, 'H'},
				    {"json", no_argument, NULL, 'J'},
				    {"silent", no_argument, NULL, 's'},
				    {NULL, 0, NULL, 0}};

/* What check's command line asks. */
typedef struct check_want {
	limit age, dead, pending;
	const char *only, *admin; /* --target, --admin */
	int silent;
} check_want;

/* check's options: the thresholds given, the defaults for a metric given
 * none.  Returns 0, or 3 (UNKNOWN) after saying why. */
static int
check_args(int argc, char **argv, check_want *a)
{
	const struct option *opts = check_opts;
	int o;
	memset(a, 0, sizeof *a);
	while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		uint64_t v = 0, ms;
		int bad = 0;
		if (o == 'a' || o == 'A')
			bad = hq_parse_duration(optarg, &ms) != 0, v = ms / 1000;
		else if (o == 'd' || o == 'D' || o == 'p' || o == 'P')
			bad = parse_count(optarg, &v) != 0;
		if (bad)
			return unknown("bad threshold '%s' (ages take 30s, 15m, 2h; counts a number)", optarg);
		limit *l = o == 'a' || o == 'A'	  ? &a->age
			   : o == 'd' || o == 'D' ? &a->dead
			   : o == 'p' || o == 'P' ? &a->pending
						  : NULL;
		if (l) { /* lower case: the critical threshold; upper: the warning */
			if (islower(o))
				l->crit = v, l->has_crit = 1;
			else
				l->warn = v, l->has_warn = 1;
			continue;
		}
		switch (o) {
		case 't': a->only = optarg; break;
		case 'H': a->admin = optarg; break;
		case 's': a->silent = 1; break;
		case 'J': g_json = 1; break;
		default:
			return unknown("option '%s' is unknown or lacks its value (see hl7q help check)",
				       argv[optind - 1]);
		}
	}
	if (optind != argc)
		return unknown("unexpected argument '%s'", argv[optind]);
	/* The defaults, for a metric given no threshold at all. */
	if (!a->age.has_warn && !a->age.has_crit)
		a->age = (limit){CHECK_WARN_AGE_S, CHECK_CRIT_AGE_S, 1, 1};
	if (!a->dead.has_warn && !a->dead.has_crit)
		a->dead = (limit){CHECK_WARN_DEAD, 0, 1, 0};
	if (!a->pending.has_warn && !a->pending.has_crit)
		a->pending = (limit){CHECK_WARN_PENDING, CHECK_CRIT_PENDING, 1, 1};
	return 0;
}

int
cmd_check(ctx *c, int argc, char **argv)
{
	check_want a;
	int rc = check_args(argc, argv, &a);
	if (rc)
		return rc;
	limit age = a.age, dead = a.dead, pending = a.pending;
	const char *only = a.only, *admin = a.admin;
	int silent = a.silent;
	figures f;
	memset(&f, 0, sizeof f);
	rc = admin ? figures_from_admin(admin, only, &f) : figures_from_journal(c, only, &f);
	if (rc)
		return rc;
	int la = level(&age, f.oldest), ld = level(&dead, f.dead), lp = level(&pending, f.pending);
	int lf = 0;
	if (f.max && f.free * 100 < f.max * CHECK_CRIT_FREE_PCT)
		lf = 2;
	else if (f.max && f.free * 100 < f.max * CHECK_WARN_FREE_PCT)
		lf = 1;
	int worst = la > ld ? la : ld;
	worst = worst > lp ? worst : lp;
	worst = worst > lf ? worst : lf;
	if (f.down[0])
		worst = 2;
	/* --silent: feeds with expect_within that went quiet (CRITICAL) */
	char stext[1024] = "", sjson[1024] = "";
	int nsilent = 0,
	    lsil = silent ? check_silent(c, stext, sizeof stext, sjson, sizeof sjson, &nsilent) : 0;
	worst = worst > lsil ? worst : lsil;
	static const char *names[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};
	if (g_json) { /* the same verdict for scripts; the exit status is the plugin's */
		printf("{\"status\":\"%s\",\"pending\":%llu,\"dead\":%llu,\"oldest_pending_age_s\":%llu,"
		       "\"journal_free_bytes\":%llu,\"hl7qd_running\":%s",
		       names[worst], (unsigned long long)f.pending, (unsigned long long)f.dead,
		       (unsigned long long)f.oldest, (unsigned long long)f.free, f.down[0] ? "false" : "true");
		if (silent)
			printf(",\"silent\":%s", sjson);
		if (f.down[0]) {
			json_t *d = json_string(f.down);
			char *ds = json_dumps(d, JSON_ENCODE_ANY);
			printf(",\"down\":%s", ds);
			free(ds);
			json_decref(d);
		}
		printf("}\n");
		return worst;
	}
	printf("HL7Q %s - ", names[worst]);
	if (f.down[0])
		printf("%s; ", f.down);
	printf("%llu pending, %llu dead, oldest pending %llu s", (unsigned long long)f.pending,
	       (unsigned long long)f.dead, (unsigned long long)f.oldest);
	if (la && f.worst_age[0])
		printf(" (target %s)", f.worst_age);
	if (ld && f.worst_dead[0])
		printf(" (most dead: %s)", f.worst_dead);
	if (lf)
		printf(", journal %.0f%% free", f.max ? 100.0 * (double)f.free / (double)f.max : 0.0);
	printf("%s |", stext);
	perf("pending", f.pending, "", &pending);
	perf("dead", f.dead, "", &dead);
	perf("oldest_pending_age", f.oldest, "s", &age);
	printf(" journal_free=%lluB;;;0;%llu", (unsigned long long)f.free, (unsigned long long)f.max);
	if (silent)
		printf(" silent=%d;;1;0;", nsilent);
	printf("\n");
	return worst;
}
