/*
 * check_config.c - unit tests for core/config.c and its key tables
 * (core/config_keys.c, core/config_man.c): values, defaults, errors that
 * name FILE:LINE and the key, bounds from the tables, and the key list of
 * deploy/man/hl7q.conf.5 (it must be what the tables render).
 */
#include <arpa/inet.h>
#include <check.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/config_keys.h"
#include "core/error.h"
#include "tests/check_util.h"

static char path[64];
static hq_config cfg;

static int
load(const char *text)
{
	strcpy(path, "/tmp/hl7q-cfg-XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (int)strlen(text));
	close(fd);
	hq_config_free(&cfg);
	int rc = hq_config_load(path, &cfg);
	unlink(path);
	return rc;
}

static void
assert_err(const char *text, int line, const char *needle)
{
	ck_assert_int_eq(load(text), HQ_ECONFIG);
	char want[128];
	snprintf(want, sizeof want, "%s:%d: ", path, line);
	ck_assert_msg(strncmp(cfg.err, want, strlen(want)) == 0, "got '%s', want prefix '%s'", cfg.err, want);
	ck_assert_msg(strstr(cfg.err, needle) != NULL, "'%s' lacks '%s'", cfg.err, needle);
}

START_TEST(test_good)
{
	ck_assert_int_eq(load("; comment\n[journal]\npath = /tmp/j   ; inline\nmax_size = 8G\nretention = 30d\n"
			      "[listener adt]\nlisten = 127.0.0.1:6661\nmax_message_size = 2M\n"
			      "idle_timeout = 90s\nmax_connections = 10\nduplicates = reject\n"
			      "[listener v6]\nlisten = [::1]:0\n"),
			 0);
	ck_assert_str_eq(cfg.journal_path, "/tmp/j");
	ck_assert_uint_eq(cfg.max_size, 8ull << 30);
	ck_assert_uint_eq(cfg.retention_ms, 30ull * 86400000);
	ck_assert_int_eq(cfg.nlisteners, 2);
	ck_assert_str_eq(cfg.listeners[0].name, "adt");
	ck_assert_uint_eq(cfg.listeners[0].max_message_size, 2u << 20);
	ck_assert_uint_eq(cfg.listeners[0].idle_timeout_ms, 90000);
	ck_assert_int_eq(cfg.listeners[0].max_connections, 10);
	ck_assert_int_eq(cfg.listeners[0].duplicates, HQ_DUP_REJECT);
	ck_assert_int_eq(cfg.listeners[1].addr.ss_family, AF_INET6);
	ck_assert_uint_eq(cfg.listeners[1].max_message_size, 1u << 20); /* default */
}
END_TEST

/* Issue 11, points 1 and 6: accept_ack, max_connections_per_peer, rejected_retention. */
START_TEST(test_issue11_keys)
{
	ck_assert_int_eq(load("[journal]\npath = /tmp/j\n[listener a]\nlisten = 127.0.0.1:0\n"), 0);
	ck_assert_int_eq(cfg.listeners[0].accept_ack, HQ_ACCEPT_ACK_ALWAYS);
	ck_assert_int_eq(cfg.listeners[0].max_connections_per_peer, 32);
	ck_assert_uint_eq(cfg.rejected_retention_ms, 7ull * 86400000);
	ck_assert_int_eq(load("[journal]\npath = /tmp/j\nrejected_retention = 0\n[listener a]\n"
			      "listen = 127.0.0.1:0\naccept_ack = msh15\nmax_connections_per_peer = 4\n"),
			 0);
	ck_assert_int_eq(cfg.listeners[0].accept_ack, HQ_ACCEPT_ACK_MSH15);
	ck_assert_int_eq(cfg.listeners[0].max_connections_per_peer, 4);
	ck_assert_uint_eq(cfg.rejected_retention_ms, 0);
	assert_err("[journal]\npath = /tmp/j\n[listener a]\nlisten = 127.0.0.1:0\naccept_ack = never\n",
		   5, "accept_ack");
	assert_err("[journal]\npath = /tmp/j\n[listener a]\nlisten = 127.0.0.1:0\nmax_connections_per_peer = 0\n",
		   5, "max_connections_per_peer");
	assert_err("[journal]\npath = /tmp/j\nrejected_retention = soon\n", 3, "rejected_retention");
}
END_TEST

START_TEST(test_errors)
{
	assert_err("[journal]\npath = /tmp/j\nbogus = 1\n", 3, "unknown key 'bogus'");
	assert_err("[journal]\npath = /tmp/j\n\n[nonsense]\nx = 1\n", 4, "unknown section [nonsense]");
	assert_err("[journal]\npath=/tmp/j\n[listener a]\nlisten = 127.0.0.1:1\nidle_timeout = soon\n",
		   5, "idle_timeout");
	assert_err("[journal]\npath=/tmp/j\n[listener a]\nlisten = nohostport\n", 4, "listen");
	assert_err("[journal]\npath=/tmp/j\n[listener a]\nlisten = 1.2.3.4:99999\n", 4, "listen");
	assert_err("[journal]\npath=/tmp/j\n\n[listener a]\nmax_connections = 5\n", 4, "needs listen");
	assert_err("[journal]\npath=/tmp/j\n[listener a]\nlisten=127.0.0.1:1\nduplicates = maybe\n", 5, "duplicates");
	assert_err("[journal]\npath=/tmp/j\n[listener a]\nlisten=127.0.0.1:1\nmax_message_size = 12Q\n",
		   5, "max_message_size");
	assert_err("[journal]\nmax_size = 1G\n[listener a]\nlisten=127.0.0.1:1\n", 4, "path is required");
	assert_err("[journal]\npath=/tmp/j\n", 2, "no [listener");
	assert_err("[journal]\npath=/tmp/j\nthis line is not ini\n", 3, "syntax");
	assert_err("[listener bad name!]\nlisten=127.0.0.1:1\n", 1, "listener name");
}
END_TEST

START_TEST(test_missing_file)
{
	ck_assert_int_eq(hq_config_load("/nonexistent/hl7q.conf", &cfg), HQ_ECONFIG);
	ck_assert(strstr(cfg.err, "/nonexistent/hl7q.conf:0: cannot open") != NULL);
}
END_TEST

START_TEST(test_units)
{
	uint64_t v;
	ck_assert_int_eq(hq_parse_duration("250ms", &v), 0);
	ck_assert_uint_eq(v, 250);
	ck_assert_int_eq(hq_parse_duration("5m", &v), 0);
	ck_assert_uint_eq(v, 300000);
	ck_assert_int_eq(hq_parse_duration("2h", &v), 0);
	ck_assert_uint_eq(v, 7200000);
	ck_assert_int_eq(hq_parse_duration("10", &v), 0);
	ck_assert_uint_eq(v, 10000);
	ck_assert_int_eq(hq_parse_duration("-1s", &v), -1);
	ck_assert_int_eq(hq_parse_duration("3w", &v), -1);
	ck_assert_int_eq(hq_parse_size("64K", &v), 0);
	ck_assert_uint_eq(v, 65536);
	ck_assert_int_eq(hq_parse_size("1M", &v), 0);
	ck_assert_uint_eq(v, 1 << 20);
	ck_assert_int_eq(hq_parse_size("M", &v), -1);
	ck_assert_int_eq(hq_parse_size("5X", &v), -1);
}
END_TEST

START_TEST(test_targets_and_routing)
{
	ck_assert_int_eq(load("[journal]\npath=/tmp/j\n[listener adt]\nlisten=127.0.0.1:1\n"
			      "[listener lab]\nlisten=127.0.0.1:2\n"
			      "[target portal]\nurl = https://x/adt\nfrom = adt\ntypes = ADT^A01 ADT^A08\n"
			      "[target dw]\nurl = https://x/dw\ntypes = ORU, ADT^*\nordering = patient\n"
			      "format = json\nheaders = X-A: 1; X-B: two\nretry_initial = 2s\n"),
			 0);
	ck_assert_int_eq(cfg.ntargets, 2);
	hq_target_conf *p = &cfg.targets[0], *d = &cfg.targets[1];
	ck_assert(hq_target_routes(p, "adt", "ADT^A01^ADT_A01", 15));
	ck_assert(hq_target_routes(p, "adt", "ADT^A08", 7));
	ck_assert(!hq_target_routes(p, "adt", "ADT^A03", 7));
	ck_assert(!hq_target_routes(p, "lab", "ADT^A01", 7));	      /* from */
	ck_assert(!hq_target_routes(p, "adt", "ADTX^A01", 8));	      /* not a prefix match */
	ck_assert(hq_target_routes(d, "lab", "ORU^R01^ORU_R01", 15)); /* ORU = ORU^* */
	ck_assert(hq_target_routes(d, "adt", "ADT^A40", 7));
	ck_assert(!hq_target_routes(d, "adt", "ORM^O01", 7));
	ck_assert_int_eq(d->ordering, HQ_ORDER_PATIENT);
	ck_assert_int_eq(d->format, HQ_FMT_JSON);
	ck_assert_int_eq(d->nheaders, 2);
	ck_assert_str_eq(d->headers[1], "X-B: two");
	ck_assert_uint_eq(d->retry_initial_ms, 2000);
	ck_assert_uint_eq(p->max_age_ms, 7ull * 86400000); /* default */

	const char *base = "[journal]\npath=/tmp/j\n[listener a]\nlisten=127.0.0.1:1\n";
	char text[512];
	snprintf(text, sizeof text, "%s[target t]\nurl = ftp://x\n", base);
	assert_err(text, 6, "url");
	snprintf(text, sizeof text, "%s[target t]\nurl = https://x\nauth = basic\nusername = u\n", base);
	assert_err(text, 5, "needs username and password_file");
	snprintf(text, sizeof text, "%s[target t]\nurl = https://x\nclient_secret = s\n", base);
	assert_err(text, 7, "from a file");
	snprintf(text, sizeof text, "%s[target t]\nurl = https://x\nfrom = nope\n", base);
	assert_err(text, 5, "from names a listener");
	snprintf(text, sizeof text, "%s[target t]\nurl = https://x\nauth = oauth2\n", base);
	assert_err(text, 5, "oauth2 needs");
	snprintf(text, sizeof text, "%s[target t]\nurl = https://x\nordering = random\n", base);
	assert_err(text, 7, "ordering");
}
END_TEST


/* Issue 16, point 3: http_version per target; auto unless said. */
START_TEST(test_issue16_http_version)
{
	ck_assert_int_eq(load("[journal]\npath=/tmp/j\n[listener a]\nlisten=127.0.0.1:1\n"
			      "[target plain]\nurl = https://x/a\n"
			      "[target one]\nurl = https://x/b\nhttp_version = 1.1\n"
			      "[target two]\nurl = http://x/c\nhttp_version = 2\n"
			      "[target said]\nurl = https://x/d\nhttp_version = auto\n"),
			 0);
	ck_assert_int_eq(cfg.ntargets, 4);
	ck_assert_int_eq(cfg.targets[0].http_version, HQ_HTTP_AUTO);
	ck_assert_int_eq(cfg.targets[1].http_version, HQ_HTTP_1_1);
	ck_assert_int_eq(cfg.targets[2].http_version, HQ_HTTP_2);
	ck_assert_int_eq(cfg.targets[3].http_version, HQ_HTTP_AUTO);

	const char *base = "[journal]\npath=/tmp/j\n[listener a]\nlisten=127.0.0.1:1\n";
	const char *bad[] = {"1.0", "3", "2.0", "HTTP/2", ""};
	char text[512];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(text, sizeof text, "%s[target t]\nurl = https://x\nhttp_version = %s\n",
			 base, bad[i]);
		assert_err(text, 7, "http_version");
	}
}
END_TEST

static struct sockaddr_storage
addr(const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		inet_pton(AF_INET6, ip, &a->sin6_addr);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		inet_pton(AF_INET, ip, &a->sin_addr);
	}
	return ss;
}

START_TEST(test_security_keys)
{
	ck_assert_int_eq(load("[journal]\npath = /tmp/j\nencryption_key_file = /etc/hl7q/journal.key\n"
			      "[listener s]\nlisten = 127.0.0.1:0\ntls_cert = /c.pem\ntls_key = /k.pem\n"
			      "tls_client_ca = /ca.pem\ntls_allowed_subjects = O=Lab, CN=lis01 | lis02\n"
			      "allow = 10.0.1.0/24, 10.0.2.15 2001:db8::/32\n"
			      "[admin]\nlisten = 127.0.0.1:9575\n"),
			 0);
	ck_assert_str_eq(cfg.encryption_key_file, "/etc/hl7q/journal.key");
	const hq_listener_conf *l = &cfg.listeners[0];
	ck_assert_str_eq(l->tls_cert, "/c.pem");
	ck_assert_str_eq(l->tls_key, "/k.pem");
	ck_assert_str_eq(l->tls_client_ca, "/ca.pem");
	ck_assert_int_eq(l->ntls_allowed, 2);
	ck_assert_str_eq(l->tls_allowed[0], "O=Lab, CN=lis01");
	ck_assert_str_eq(l->tls_allowed[1], "lis02");
	ck_assert_int_eq(l->nallow, 3);
	struct sockaddr_storage a;
	a = addr("10.0.1.77");
	ck_assert(hq_listener_allows(l, &a));
	a = addr("10.0.2.15");
	ck_assert(hq_listener_allows(l, &a));
	a = addr("10.0.2.16");
	ck_assert(!hq_listener_allows(l, &a));
	a = addr("10.0.0.1");
	ck_assert(!hq_listener_allows(l, &a));
	a = addr("2001:db8:ffff::1");
	ck_assert(hq_listener_allows(l, &a));
	a = addr("2001:db9::1");
	ck_assert(!hq_listener_allows(l, &a));
	a = addr("::ffff:10.0.1.3"); /* an IPv4 peer on a dual-stack socket */
	ck_assert(hq_listener_allows(l, &a));
	ck_assert_str_eq(cfg.admin_listen, "127.0.0.1:9575");
	/* no allow list: everyone */
	ck_assert_int_eq(load("[journal]\npath = /tmp/j\n[listener s]\nlisten = 127.0.0.1:0\n"), 0);
	a = addr("192.0.2.1");
	ck_assert(hq_listener_allows(&cfg.listeners[0], &a));

	assert_err("[journal]\npath = /j\n[listener s]\nlisten = 127.0.0.1:0\nallow = 10.0.0.0/33\n", 5, "allow");
	assert_err("[journal]\npath = /j\n[listener s]\nlisten = 127.0.0.1:0\nallow = example.org\n", 5, "allow");
	assert_err("[journal]\npath = /j\n[listener s]\nlisten = 127.0.0.1:0\ntls_cert = /c.pem\n",
		   3, "tls_cert and tls_key go together");
	assert_err("[journal]\npath = /j\n[listener s]\nlisten = 127.0.0.1:0\ntls_client_ca = /ca.pem\n",
		   3, "tls_client_ca needs tls_cert");
	assert_err("[journal]\npath = /j\n[listener s]\nlisten = 127.0.0.1:0\ntls_cert = /c\ntls_key = /k\n"
		   "tls_allowed_subjects = lis01\n",
		   3, "needs tls_client_ca");
	assert_err("[journal]\npath = /j\n[listener s]\nlisten = 127.0.0.1:0\n[admin]\nlisten = nowhere\n",
		   6, "listen");
}
END_TEST

START_TEST(test_secret_file_modes)
{
	char secret[64] = "/tmp/hl7q-secret-XXXXXX";
	int fd = mkstemp(secret);
	ck_assert_int_ge(fd, 0);
	close(fd);
	char text[512], err[1300];
	snprintf(text, sizeof text,
		 "[journal]\npath = /tmp/j\n[listener s]\nlisten = 127.0.0.1:0\n"
		 "[target t]\nurl = https://x/\nauth = bearer\ntoken_file = %s\n",
		 secret);
	ck_assert_int_eq(chmod(secret, 0600), 0);
	ck_assert_int_eq(load(text), 0);
	ck_assert_int_eq(hq_config_check_secrets(&cfg, err, sizeof err), 0);
	ck_assert_int_eq(chmod(secret, 0640), 0);
	ck_assert_int_eq(hq_config_check_secrets(&cfg, err, sizeof err), HQ_ECONFIG);
	ck_assert_msg(strstr(err, ":5: [target t] token_file") && strstr(err, "readable by other users (mode 0640)"),
		      "%s", err);
	ck_assert_int_eq(chmod(secret, 0604), 0);
	ck_assert_int_eq(hq_config_check_secrets(&cfg, err, sizeof err), HQ_ECONFIG);
	unlink(secret);
	/* a file that is not there is left to its reader */
	ck_assert_int_eq(hq_config_check_secrets(&cfg, err, sizeof err), 0);
}
END_TEST

/* issue 15.1: every duration and size is range-checked at load (36500d wrapped the retention cut-off). */
START_TEST(test_issue15_1_durations_in_range)
{
	const char *head = "[journal]\npath = /tmp/j\n";
	char text[512];
	static const struct {
		const char *section, *kv;
	} bad[] = {
		{"journal", "retention = 36500d"},
		{"journal", "max_size = 100T"},
		{"listener", "idle_timeout = 100000d"},
		{"listener", "frame_timeout = 400d"},
		{"listener", "duplicate_window = 36500d"},
		{"target", "timeout = 30d"},
		{"target", "retry_initial = 400d"},
		{"target", "retry_max = 400d"},
		{"target", "max_age = 36500d"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (strcmp(bad[i].section, "journal") == 0)
			snprintf(text, sizeof text, "[journal]\npath = /tmp/j\n%s\n[listener a]\nlisten = 127.0.0.1:1\n",
				 bad[i].kv);
		else if (strcmp(bad[i].section, "listener") == 0)
			snprintf(text, sizeof text, "%s[listener a]\nlisten = 127.0.0.1:1\n%s\n",
				 head, bad[i].kv);
		else
			snprintf(text, sizeof text, "%s[listener a]\nlisten = 127.0.0.1:1\n[target t]\nurl = http://x/\n%s\n",
				 head, bad[i].kv);
		int line = strcmp(bad[i].section, "journal") == 0    ? 3
			   : strcmp(bad[i].section, "listener") == 0 ? 5
								     : 7;
		assert_err(text, line, "range");
	}
	/* the longest allowed retention still leaves a cut-off in the past */
	ck_assert_int_eq(load("[journal]\npath = /tmp/j\nretention = 3650d\n[listener a]\nlisten = 127.0.0.1:1\n"), 0);
	ck_assert_uint_eq(cfg.retention_ms, 3650ull * 86400000);
	ck_assert_int_eq(load("[journal]\npath = /tmp/j\nretention = 0\n[listener a]\nlisten = 127.0.0.1:1\n"), 0);
	ck_assert_uint_eq(cfg.retention_ms, 0);
}
END_TEST

/* issue 14.6: a bad duration lists the units, and "min" is one of them. */
START_TEST(test_issue14_6_duration_units)
{
	uint64_t v;
	ck_assert_int_eq(hq_parse_duration("5min", &v), 0);
	ck_assert_uint_eq(v, 300000);
	ck_assert_int_eq(hq_parse_duration("15 min", &v), 0);
	ck_assert_uint_eq(v, 900000);
	assert_err("[journal]\npath = /tmp/j\n[listener a]\nlisten = 127.0.0.1:1\nidle_timeout = 5 mins\n",
		   5, "ms, s, min, m, h, d");
	assert_err("[journal]\npath = /tmp/j\nretention = soon\n[listener a]\nlisten = 127.0.0.1:1\n",
		   3, "ms, s, min, m, h, d");
}
END_TEST

/* issue 14.6: a section written twice is an error naming both lines. */
START_TEST(test_issue14_6_section_twice)
{
	assert_err("[journal]\npath = /tmp/j\n[listener a]\nlisten = 127.0.0.1:1\n"
		   "[target t]\nurl = http://x/\n[listener a]\nmax_connections = 5\n",
		   7, "[listener a] is written twice (first at line 3)");
	assert_err("[journal]\npath = /tmp/j\n[listener a]\nlisten = 127.0.0.1:1\n"
		   "[target t]\nurl = http://x/\n[target t]\ntimeout = 5s\n",
		   7, "[target t] is written twice");
	assert_err("[journal]\npath = /tmp/j\n[listener a]\nlisten = 127.0.0.1:1\n[journal]\nmax_size = 1G\n",
		   5, "[journal] is written twice");
}
END_TEST

/* issue 14.6: relative paths resolve against the config file's directory. */
START_TEST(test_issue14_6_relative_paths)
{
	ck_assert_int_eq(load("[journal]\npath = journal\n[listener a]\nlisten = 127.0.0.1:1\n"
			      "[target t]\nurl = https://x/\nca_file = tls/ca.pem\nauth = bearer\ntoken_file = ./tok\n"),
			 0);
	ck_assert_str_eq(cfg.journal_path, "/tmp/journal");
	ck_assert_str_eq(cfg.targets[0].ca_file, "/tmp/tls/ca.pem");
	ck_assert_str_eq(cfg.targets[0].token_file, "/tmp/./tok");
}
END_TEST

START_TEST(test_fhir_keys)
{
	const char *head = "[journal]\npath = /tmp/j\n[listener a]\nlisten = 127.0.0.1:0\n[target f]\nurl = https://f/r4/\n";
	char text[1024];
	snprintf(text, sizeof text,
		 "%sformat = fhir\nfhir_id_key_file = /k\nfhir_bundle = batch\nfhir_max_entries = 160\n"
		 "fhir_timezone = America/Chicago\nfhir_unsupported = skip\n",
		 head);
	ck_assert_int_eq(load(text), 0);
	const hq_target_conf *t = &cfg.targets[0];
	ck_assert_int_eq(t->format, HQ_FMT_FHIR);
	ck_assert_int_eq(t->fhir_batch, 1);
	ck_assert_int_eq(t->fhir_max_entries, 160);
	ck_assert_str_eq(t->fhir_timezone, "America/Chicago");
	ck_assert_str_eq(t->fhir_id_key_file, "/k");
	ck_assert_int_eq(t->fhir_skip_unsupported, 1);
	ck_assert_int_eq(t->fhir_patient_match, 0);
	/* defaults: transaction, no limit, UTC, dead */
	snprintf(text, sizeof text,
		 "%sformat = fhir\nfhir_id_key_file = /k\nfhir_patient_match = identifier\n", head);
	ck_assert_int_eq(load(text), 0);
	ck_assert_int_eq(cfg.targets[0].fhir_batch, 0);
	ck_assert_int_eq(cfg.targets[0].fhir_max_entries, 0);
	ck_assert_str_eq(cfg.targets[0].fhir_timezone, "");
	ck_assert_int_eq(cfg.targets[0].fhir_skip_unsupported, 0);
	ck_assert_int_eq(cfg.targets[0].fhir_patient_match, 1);
	static const struct {
		const char *extra;
		int line;
		const char *why;
	} bad[] = {
		{"format = fhirr\n", 7, "format: 'fhirr' is not raw, json, google-hl7v2 or fhir"},
		{"fhir_bundle = all\n", 7, "fhir_bundle: 'all'"},
		{"fhir_max_entries = 1e3\n", 7, "fhir_max_entries: '1e3'"},
		{"fhir_timezone = America/Nowhere\n", 7, "fhir_timezone: 'America/Nowhere'"},
		{"fhir_timezone = ../../etc/passwd\n", 7, "fhir_timezone"},
		{"fhir_unsupported = maybe\n", 7, "fhir_unsupported: 'maybe'"},
		{"fhir_patient_match = name\n", 7, "fhir_patient_match: 'name'"},
		{"fhir_colour = red\n", 7, "unknown key 'fhir_colour'"},
		{"format = fhir\n", 5, "format = fhir needs fhir_id_key_file"},
		{"format = fhir\nfhir_id_key_file = /k\nfhir_bundle = batch\nfhir_patient_match = identifier\n",
		 5, "needs fhir_bundle = transaction"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(text, sizeof text, "%s%s", head, bad[i].extra);
		assert_err(text, bad[i].line, bad[i].why);
	}
}
END_TEST

/* A config text whose section sec holds "key = value"; returns its line
 * (3 in [journal], 5 in a listener, 7 in a target, 6 in the others). */
static int
key_config(const hq_conf_section *sec, const char *key, const char *value, char *text, size_t cap)
{
	const char *head = "[journal]\npath = /tmp/j\n[listener a]\nlisten = 127.0.0.1:1\n";
	if (strcmp(sec->name, "journal") == 0) {
		snprintf(text, cap, "[journal]\npath = /tmp/j\n%s = %s\n[listener a]\nlisten = 127.0.0.1:1\n",
			 key, value);
		return 3;
	}
	if (strcmp(sec->name, "listener") == 0) {
		snprintf(text, cap, "%s%s = %s\n", head, key, value);
		return 5;
	}
	if (strcmp(sec->name, "target") == 0) {
		/* what other keys need (retry_initial may not pass retry_max; format
		 * fhir and each auth want their companions) follows the key's line */
		snprintf(text, cap,
			 "%s[target t]\nurl = http://x/\n%s = %s\n%s"
			 "fhir_id_key_file = /k\nusername = u\npassword_file = /p\ntoken_file = /t\n"
			 "token_url = https://t/\nclient_id = c\nclient_secret_file = /s\naws_region = r\n"
			 "aws_service = s\n",
			 head, key, value,
			 strcmp(key, "retry_initial") == 0 ? "retry_max = 30d\n"
			 : strcmp(key, "retry_max") == 0   ? "retry_initial = 1ms\n"
							   : "");
		return 7;
	}
	snprintf(text, cap, "%s[%s]\n%s = %s\n", head, sec->name, key, value);
	return 6;
}

/* A number of k's type as the config writes it, in its smallest unit. */
static void
raw_value(const hq_conf_key *k, uint64_t v, char *out, size_t cap)
{
	snprintf(out, cap, "%llu%s", (unsigned long long)v, k->type == HQ_CT_DURATION ? "ms" : "");
}

/* Issue 12.3: every bounded key of every table takes its bounds and refuses
 * one past them, with an error naming the key at its line; a new section
 * gets the table's defaults. */
START_TEST(test_issue12_3_bounds_from_the_tables)
{
	size_t nsec, checked = 0;
	const hq_conf_section *secs = hq_conf_sections(&nsec);
	char text[1024], v[64], why[128];
	for (size_t s = 0; s < nsec; s++)
		for (size_t i = 0; i < secs[s].nkeys; i++) {
			const hq_conf_key *k = &secs[s].keys[i];
			if (k->type != HQ_CT_INT && k->type != HQ_CT_SIZE && k->type != HQ_CT_DURATION)
				continue;
			int line;
			raw_value(k, k->lo, v, sizeof v);
			line = key_config(&secs[s], k->name, v, text, sizeof text);
			ck_assert_msg(load(text) == 0, "%s = %s: %s", k->name, v, cfg.err);
			raw_value(k, k->hi, v, sizeof v);
			key_config(&secs[s], k->name, v, text, sizeof text);
			ck_assert_msg(load(text) == 0, "%s = %s: %s", k->name, v, cfg.err);
			raw_value(k, k->hi + 1, v, sizeof v);
			key_config(&secs[s], k->name, v, text, sizeof text);
			snprintf(why, sizeof why, "%s: '%s' is ", k->name, v);
			assert_err(text, line, why);
			if (k->lo > 1 || !(k->flags & HQ_CF_ZERO)) {
				raw_value(k, k->flags & HQ_CF_ZERO ? k->lo - 1 : 0, v, sizeof v);
				key_config(&secs[s], k->name, v, text, sizeof text);
				snprintf(why, sizeof why, "%s: '%s' is ", k->name, v);
				assert_err(text, line, why); /* below lo (0 where 0 is not "off") */
			}
			checked++;
		}
	ck_assert_uint_ge(checked, 16); /* 3 in [journal], 6 per listener, 7 per target */
	/* the defaults of a new listener and target are the tables' */
	ck_assert_int_eq(load("[journal]\npath = /tmp/j\n[listener a]\nlisten = 127.0.0.1:1\n[target t]\nurl = http://x/\n"),
			 0);
	for (size_t s = 0; s < nsec; s++) {
		const char *obj = secs[s].kind == HQ_SEC_LISTENER ? (const char *)&cfg.listeners[0]
				  : secs[s].kind == HQ_SEC_TARGET ? (const char *)&cfg.targets[0]
								  : (const char *)&cfg;
		for (size_t i = 0; i < secs[s].nkeys; i++) {
			const hq_conf_key *k = &secs[s].keys[i];
			uint64_t got = 0;
			int small;
			if (k->type != HQ_CT_INT && k->type != HQ_CT_SIZE &&
			    k->type != HQ_CT_DURATION && k->type != HQ_CT_ENUM)
				continue;
			if (k->size == sizeof(int)) {
				memcpy(&small, obj + k->off, sizeof small);
				got = (uint64_t)small;
			} else {
				memcpy(&got, obj + k->off, sizeof got);
			}
			ck_assert_msg(got == k->def, "[%s] %s: %llu, table says %llu", secs[s].name,
				      k->name, (unsigned long long)got, (unsigned long long)k->def);
		}
	}
	/* every key refused in a section is refused by name; every listed key has its help */
	for (size_t s = 0; s < nsec; s++)
		for (size_t i = 0; i < secs[s].nkeys; i++)
			ck_assert_msg((secs[s].keys[i].flags & HQ_CF_UNLISTED) || secs[s].keys[i].help,
				      "%s has no help", secs[s].keys[i].name);
}
END_TEST

/* Issue 12.3: every enum key of the tables takes each of its names (stored
 * as the table's value) and refuses another with the names the table lists. */
START_TEST(test_issue12_3_enums_from_the_tables)
{
	size_t nsec, checked = 0;
	const hq_conf_section *secs = hq_conf_sections(&nsec);
	char text[1024], why[256], names[200];
	for (size_t s = 0; s < nsec; s++)
		for (size_t i = 0; i < secs[s].nkeys; i++) {
			const hq_conf_key *k = &secs[s].keys[i];
			if (k->type != HQ_CT_ENUM)
				continue;
			for (const hq_conf_enum *e = k->values; e->name; e++) {
				key_config(&secs[s], k->name, e->name, text, sizeof text);
				ck_assert_msg(load(text) == 0, "%s = %s: %s", k->name, e->name, cfg.err);
				const char *obj = secs[s].kind == HQ_SEC_LISTENER
							  ? (const char *)&cfg.listeners[0]
						  : secs[s].kind == HQ_SEC_TARGET
							  ? (const char *)&cfg.targets[0]
							  : (const char *)&cfg;
				int got;
				memcpy(&got, obj + k->off, sizeof got);
				ck_assert_msg(got == e->value, "%s = %s stored %d", k->name, e->name, got);
			}
			int line = key_config(&secs[s], k->name, "bogus", text, sizeof text);
			hq_conf_enum_text(k->values, ", ", " or ", names, sizeof names);
			snprintf(why, sizeof why, "%s: 'bogus' is not %s", k->name, names);
			assert_err(text, line, why);
			checked++;
		}
	ck_assert_uint_ge(checked, 10);
}
END_TEST

/* The man page's text between the BEGIN KEYS and END KEYS lines (both
 * included), or NULL; the caller frees it. */
static char *
man_key_list(const char *page)
{
	size_t len;
	char *text = hq_read_file(page, &len);
	ck_assert_msg(text != NULL, "cannot read %s", page);
	char *b = strstr(text, HQ_CONF_MAN_BEGIN), *e = strstr(text, HQ_CONF_MAN_END "\n");
	if (b == NULL || e == NULL || e < b) {
		free(text);
		return NULL;
	}
	e += strlen(HQ_CONF_MAN_END "\n");
	char *out = strndup(b, (size_t)(e - b));
	free(text);
	return out;
}

/* Whether word is a word of a bold macro line (.B, .BR, .RB) of the n bytes at text. */
static int
bold_in(const char *text, size_t n, const char *word)
{
	size_t wl = strlen(word);
	for (const char *p = text; p && p < text + n; p = memchr(p, '\n', (size_t)(text + n - p))) {
		p++;
		if (strncmp(p, ".B ", 3) != 0 && strncmp(p, ".BR ", 4) != 0 && strncmp(p, ".RB ", 4) != 0)
			continue;
		for (const char *w = p + 3; *w && *w != '\n'; w++)
			if (strncmp(w, word, wl) == 0 && strchr(" \"", w[-1]) && strchr(" \"\n", w[wl]))
				return 1;
	}
	return 0;
}

/* Issue 12.3: the key list of hl7q.conf(5) is the one the tables render:
 * a key missing, a default or a range that differs fails here (`make
 * man-keys` rewrites it).  And each listed key is described in the prose
 * of its section. */
START_TEST(test_issue12_3_man_page_is_the_table)
{
	char page[1024], *want = NULL;
	size_t wantlen = 0;
	const char *dir = getenv("HL7Q_MAN");
	snprintf(page, sizeof page, "%s/hl7q.conf.5", dir && *dir ? dir : "deploy/man");
	FILE *m = open_memstream(&want, &wantlen);
	ck_assert_int_eq(hq_conf_write_man(m), 0);
	fclose(m);
	char *got = man_key_list(page);
	ck_assert_msg(got != NULL, "%s: no key list between '%s' and '%s'", page, HQ_CONF_MAN_BEGIN, HQ_CONF_MAN_END);
	if (strcmp(got, want) != 0) {
		const char *g = got, *w = want;
		int line = 1;
		while (*g && *g == *w) {
			line += *g == '\n';
			g++, w++;
		}
		ck_abort_msg("%s: the key list differs from the config tables at its line %d: page has '%.60s', "
			     "tables give '%.60s' (make man-keys)",
			     page, line, g, w);
	}
	free(got);
	/* each key appears in bold in the prose of its section */
	size_t len, nsec;
	char *text = hq_read_file(page, &len);
	const hq_conf_section *secs = hq_conf_sections(&nsec);
	for (size_t s = 0; s < nsec; s++) {
		char head[64], *from, *to;
		snprintf(head, sizeof head, "\n.SH [%s%s]\n", secs[s].name,
			 secs[s].kind == HQ_SEC_TOP ? "" : " NAME");
		from = strstr(text, head);
		ck_assert_msg(from != NULL, "%s: no section '%s'", page, head + 1);
		to = strstr(from + 1, "\n.SH ");
		size_t n = to ? (size_t)(to - from) : strlen(from);
		for (size_t i = 0; i < secs[s].nkeys; i++)
			ck_assert_msg(bold_in(from, n, secs[s].keys[i].name) ||
					      (secs[s].keys[i].flags & HQ_CF_UNLISTED),
				      "%s: [%s] %s is not described", page, secs[s].name,
				      secs[s].keys[i].name);
	}
	free(text);
	free(want);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("load");
	tcase_add_test(tc, test_good);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_issue11_keys);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_units);
	tcase_add_test(tc, test_targets_and_routing);
	tcase_add_test(tc, test_security_keys);
	tcase_add_test(tc, test_secret_file_modes);
	tcase_add_test(tc, test_issue15_1_durations_in_range);
	tcase_add_test(tc, test_issue14_6_duration_units);
	tcase_add_test(tc, test_issue14_6_section_twice);
	tcase_add_test(tc, test_issue14_6_relative_paths);
	tcase_add_test(tc, test_fhir_keys);
	tcase_add_test(tc, test_issue16_http_version);
	tcase_add_test(tc, test_issue12_3_bounds_from_the_tables);
	tcase_add_test(tc, test_issue12_3_enums_from_the_tables);
	tcase_add_test(tc, test_issue12_3_man_page_is_the_table);
	suite_add_tcase(s, tc);
	int failed = run_suite(s);
	hq_config_free(&cfg);
	return failed;
}
