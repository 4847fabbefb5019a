/*
 * delivery.c - delivery workers (see delivery.h).
 *
 * Per target, one thread runs rounds: fill the free request slots with
 * due deliveries (fifo: one slot, and a delivery waiting for its retry
 * holds back the ones behind it; none: `concurrency` slots), let libcurl's
 * multi interface move them, classify what finished, write the outcomes
 * in one transaction, sleep in curl_multi_poll until a transfer moves, a
 * retry falls due, or intake wakes it.
 *
 * Outcomes are decided by hq_retry_decide() (retry.h): 2xx delivered;
 * network errors, timeouts, 408, 425, 429, 5xx, 307, 308 retried with
 * backoff; other 3xx and 4xx, or the limits, dead.  While a target is down
 * the worker sends one probe at a time on the target's own backoff (not
 * every queued message on its own schedule), and when outcomes cannot be
 * written it pauses in memory instead of re-sending at once.  A FIFO head
 * that cannot be read stops the target (log, /healthz, hl7qd.status).
 * Logs name the target, journal id, control id and type, never the
 * message or the answer's body (that goes to the journal only).
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/secret.h"
#include "delivery.h"
#include "hl7/fhir.h"
#include "hl7/payload.h"
#include "queue/retry.h"

#define MAX_ROUND 256

typedef struct slot {
	CURL *easy;
	int busy;
	hq_due due;
	struct curl_slist *headers;
	char *payload;
	size_t payload_len;
	char body[512];
	size_t body_len;
	uint64_t start_us;
	char errbuf[CURL_ERROR_SIZE]; /* libcurl's detail of a failed transfer */
	hq_outcome settled; /* format fhir: the outcome of a message that needs no request */
	uint64_t token_gen; /* oauth2: the token generation this request carries */
} slot;

typedef struct worker {
	const hq_target_conf *t;
	hq_journal *j;
	pthread_t thread;
	CURLM *multi;
	volatile int stop;
	char *password, *token;	/* basic; bearer, or the cached oauth2 token */
	uint64_t token_expires_us;	/* oauth2: refetch after this */
	/* oauth2 rotation: each fetched token is a generation; a request
	 * carries the one it was sent with.  A 401 for an older generation is
	 * resent with the current one; a 401 for the current one asks for one
	 * refresh (resent too), unless that token was itself fetched after a
	 * 401 and never worked: then the 401 counts against the message. */
	uint64_t token_gen;
	int gen_after_401;		/* the current token was fetched because of a 401 */
	int gen_proven;			/* the current token got a 2xx */
	int want_refresh;		/* a 401 asked for a new token */
	char *client_secret;		/* oauth2 */
	char *aws_key, *aws_secret;	/* aws-sigv4 */
	char *sigv4;			/* "aws:amz:REGION:SERVICE" */
	hq_fhir_opts fhir;		/* format fhir: id key, zone, Bundle options */
	hq_tz *fhir_tz;
	slot *slots;
	int nslots;
	int down; /* last attempt failed: log only the transitions; probe one at a time */
	uint32_t down_streak;	  /* failed probes in a row */
	uint64_t probe_at_us;	  /* while down: no request before this */
	uint64_t pause_until_us;  /* outcomes could not be written: no request before this */
	uint32_t write_failures;  /* in a row */
	uint64_t stuck_id;	  /* FIFO head that cannot be read: the target stops */
	int woken;		  /* (atomic) a wake-up is on its way: coalesce the others */
	uint32_t shard, nshards; /* this worker's share of an unordered target */
	int inflight;		 /* requests out, or done and not yet written (atomic) */
	hq_target_metrics *m;
	hq_ratelimit rl_dead, rl_state; /* dead-letter lines; down/back lines */
	/* reload: a worker that replaces others waits until they have exited */
	struct worker *pred[2];
	int npred;
	int draining; /* (atomic) finish what is in flight, take nothing new, exit */
	int exited;   /* (atomic) the thread is done */
	int waited;   /* (atomic) past the wait for pred: pred no longer read */
	int started;  /* a thread was created */
} worker;

struct hq_delivery_sys {
	worker **workers; /* the current ones */
	int n;
	worker **retired; /* replaced or removed by a reload: joined at stop */
	int nretired;
	hq_journal *j;
	int held; /* HL7Q_TEST_HOLD_DELIVERY: no threads */
};

/* Dead-letter lines: at most 10 a minute per worker; down/back: 6 a minute. */
#define DEAD_LOG_BURST 10
#define STATE_LOG_BURST 6
#define LOG_WINDOW_MS 60000


void
hq_header_value(const char *s, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	if (cap == 0)
		return;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		int plain = c > 0x20 && c < 0x7f && c != '%';
		if (n + (plain ? 1 : 3) >= cap)
			break;
		if (plain) {
			out[n++] = (char)c;
		} else {
			out[n++] = '%';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		}
	}
	out[n] = 0;
}

/* Reads a secret file, without its trailing newline. */
static char *
read_secret(const char *path, char *err, size_t errcap, const char *target)
{
	FILE *fp = fopen(path, "r");
	char buf[4096];
	if (fp == NULL) {
		snprintf(err, errcap, "target %s: cannot read %s: %s", target, path, strerror(errno));
		return NULL;
	}
	setvbuf(fp, NULL, _IONBF, 0); /* no stdio buffer left holding a copy */
	size_t n = fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = 0;
	if (n == 0) {
		snprintf(err, errcap, "target %s: %s is empty", target, path);
		return NULL;
	}
	char *out = strdup(buf);
	hq_secret_wipe(buf, sizeof buf);
	return out;
}

/* The "json" body's metadata of d (pointers into d). */
static hq_payload_meta
payload_meta(const hq_due *d)
{
	return (hq_payload_meta){d->id, d->received_us, d->listener, d->peer, d->type, d->control_id,
				 d->version, d->sending_app, d->sending_fac, d->receiving_app, d->receiving_fac};
}

/*
 * The target's http_version as libcurl's CURLOPT_HTTP_VERSION.
 *   auto  HTTP/2 where TLS (ALPN) negotiates it, else HTTP/1.1: what hl7q
 *         always did.  Kept as the default because HTTP/2 multiplexes a
 *         target's requests over one connection (concurrency without a
 *         TLS handshake per request) and costs no extra round trip; the
 *         benchmark (tests/bench/delivery.sh) drains to nginx with both.
 *   1.1   HTTP/1.1 only, also over TLS.
 *   2     HTTP/2: over https offered by ALPN (a server that refuses gets
 *         1.1); over http:// with prior knowledge (the server must speak it).
 */
static long
curl_http_version(const hq_target_conf *t)
{
	switch (t->http_version) {
	case HQ_HTTP_1_1:
		return CURL_HTTP_VERSION_1_1;
	case HQ_HTTP_2:
		return strncasecmp(t->url, "http://", 7) == 0 ? CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE
							    : CURL_HTTP_VERSION_2_0;
	case HQ_HTTP_AUTO:
	default:
		return CURL_HTTP_VERSION_2TLS;
	}
}

static size_t
on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	slot *s = arg;
	size_t n = size * nmemb;
	size_t room = sizeof s->body - s->body_len;
	memcpy(s->body + s->body_len, p, n < room ? n : room);
	s->body_len += n < room ? n : room;
	return n;
}

typedef struct grow {
	char *p;
	size_t n;
} grow;

static size_t
on_grow(char *p, size_t size, size_t nmemb, void *arg)
{
	grow *g = arg;
	size_t n = size * nmemb;
	if (g->n + n > 65536)
		return 0;
	char *q = realloc(g->p, g->n + n + 1);
	if (q == NULL)
		return 0;
	memcpy(q + g->n, p, n);
	g->p = q;
	g->n += n;
	g->p[g->n] = 0;
	return n;
}

/*
 * OAuth2 client credentials: fetches a token from token_url (as Azure AD
 * and Azure Health Data Services use), cached until shortly before it
 * expires.  Returns 0, or -1 with why (no secret in it).
 */
static int
oauth2_token(worker *w, char *why, size_t cap)
{
	const hq_target_conf *t = w->t;
	if (w->token && hq_wall_us() < w->token_expires_us)
		return 0;
	CURL *e = curl_easy_init();
	grow g = {0};
	long status = 0;
	int rc = -1;
	if (e == NULL) {
		snprintf(why, cap, "out of memory");
		return -1;
	}
	char *id = curl_easy_escape(e, t->client_id, 0);
	char *secret = curl_easy_escape(e, w->client_secret, 0);
	char *scope = curl_easy_escape(e, t->scope, 0);
	size_t flen = strlen(id) + strlen(secret) + strlen(scope) + 96;
	char *form = malloc(flen);
	if (form && id && secret && scope) {
		snprintf(form, flen, "grant_type=client_credentials&client_id=%s&client_secret=%s%s%s",
			 id, secret, t->scope[0] ? "&scope=" : "", scope);
		curl_easy_setopt(e, CURLOPT_URL, t->token_url);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, form);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_grow);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &g);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t->timeout_ms);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		if (t->ca_file[0])
			curl_easy_setopt(e, CURLOPT_CAINFO, t->ca_file);
		CURLcode res = curl_easy_perform(e);
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
		if (res != CURLE_OK) {
			snprintf(why, cap, "token endpoint: %s", curl_easy_strerror(res));
		} else if (status != 200) {
			snprintf(why, cap, "token endpoint: HTTP %ld", status);
		} else {
			json_t *j = json_loads(g.p ? g.p : "", 0, NULL);
			const char *tok = json_string_value(json_object_get(j, "access_token"));
			json_int_t expires = json_integer_value(json_object_get(j, "expires_in"));
			if (tok == NULL) {
				snprintf(why, cap, "token endpoint: no access_token in the answer");
			} else {
				hq_secret_free(w->token);
				w->token = strdup(tok);
				w->token_gen++;
				w->gen_after_401 = w->want_refresh;
				w->gen_proven = 0;
				w->want_refresh = 0;
				if (expires <= 0)
					expires = 300;
				/* refetch a minute early (or at half-life for short tokens) */
				json_int_t margin = expires > 120 ? 60 : expires / 2;
				w->token_expires_us = hq_wall_us() + (uint64_t)(expires - margin) * 1000000;
				rc = w->token ? 0 : -1;
			}
			json_decref(j);
		}
	} else {
		snprintf(why, cap, "out of memory");
	}
	if (form)
		hq_secret_wipe(form, strlen(form));
	free(form);
	curl_free(id);
	if (secret)
		hq_secret_wipe(secret, strlen(secret));
	curl_free(secret);
	curl_free(scope);
	free(g.p);
	curl_easy_cleanup(e);
	return rc;
}

/*
 * format = fhir: the Bundle of s's message into s->payload (0), or, when
 * there is none to send, s->settled filled and 1: a type without a mapping
 * is dead or skipped (fhir_unsupported), a Bundle over fhir_max_entries or
 * a message that cannot be converted is dead, with the reason (segment and
 * field, never patient data) in the attempt.
 */
static int
fhir_payload(worker *w, slot *s)
{
	char why[256];
	hq_fhir_stats st;
	int rc = hq_fhir_render(s->due.raw, s->due.raw_len, &w->fhir, &s->payload, &s->payload_len, &st,
				why, sizeof why);
	if (rc == 0)
		return 0;
	if (rc == ENOMEM)
		return -1;
	hq_outcome *o = &s->settled;
	memset(o, 0, sizeof *o);
	o->id = s->due.id;
	o->epoch = s->due.epoch; /* a replay meanwhile makes this outcome stale */
	o->at_us = hq_wall_us();
	int skip = rc == HQ_EUNSUPPORTED && w->t->fhir_skip_unsupported;
	o->state = skip ? HQ_DLV_DELIVERED : HQ_DLV_DEAD;
	snprintf(o->error, sizeof o->error, "fhir: %s%s", skip ? "skipped: " : "", why);
	hq_count(&w->m->attempts, 1);
	hq_count(skip ? &w->m->delivered : &w->m->dead, 1);
	hq_log_limited(&w->rl_dead, DEAD_LOG_BURST, LOG_WINDOW_MS, "dead-letter lines",
		       skip ? HQ_LOG_INFO : HQ_LOG_WARNING, "target %s: id=%llu ctrl=%.*s type=%s %s (%s)",
		       w->t->name, (unsigned long long)o->id, (int)strnlen(s->due.control_id, 64),
		       s->due.control_id, s->due.type, skip ? "skipped" : "dead-lettered", o->error);
	return 1;
}

static int
slot_start(worker *w, slot *s)
{
	const hq_target_conf *t = w->t;
	char line[1024];

	if (s->easy == NULL && (s->easy = curl_easy_init()) == NULL)
		return -1;
	CURL *e = s->easy;
	s->body_len = 0;
	if (t->format == HQ_FMT_GOOGLE || t->format == HQ_FMT_JSON) {
		hq_payload_meta meta = payload_meta(&s->due);
		s->payload = t->format == HQ_FMT_GOOGLE
				     ? hq_payload_google(s->due.raw, s->due.raw_len, &s->payload_len)
				     : hq_payload_json(&meta, s->due.raw, s->due.raw_len, &s->payload_len);
		if (s->payload == NULL)
			return -1;
		s->headers = curl_slist_append(NULL, "Content-Type: application/json");
	} else if (t->format == HQ_FMT_FHIR) {
		int rc = fhir_payload(w, s);
		if (rc != 0)
			return rc;
		s->headers = curl_slist_append(NULL, "Content-Type: application/fhir+json");
		s->headers = curl_slist_append(s->headers, "Accept: application/fhir+json");
	} else {
		const char *cs = hq_payload_charset(s->due.charset);
		snprintf(line, sizeof line, "Content-Type: x-application/hl7-v2+er7%s%s",
			 cs ? "; charset=" : "", cs ? cs : "");
		s->headers = curl_slist_append(NULL, line);
	}
	snprintf(line, sizeof line, "Idempotency-Key: %s", s->due.idem_key); /* see hq_journal_due */
	s->headers = curl_slist_append(s->headers, line);
	snprintf(line, sizeof line, "X-HL7-Message-Id: %llu", (unsigned long long)s->due.id);
	s->headers = curl_slist_append(s->headers, line);
	char value[400];
	hq_header_value(s->due.control_id, value, sizeof value);
	snprintf(line, sizeof line, "X-HL7-Control-Id: %s", value);
	s->headers = curl_slist_append(s->headers, line);
	hq_header_value(s->due.type, value, sizeof value);
	snprintf(line, sizeof line, "X-HL7-Message-Type: %s", value);
	s->headers = curl_slist_append(s->headers, line);
	/* No "Expect: 100-continue" wait -- except under SigV4, where libcurl
	 * would sign the empty Expect: entry that is never sent. */
	if (t->auth != HQ_AUTH_SIGV4)
		s->headers = curl_slist_append(s->headers, "Expect:");
	for (int i = 0; i < t->nheaders; i++)
		s->headers = curl_slist_append(s->headers, t->headers[i]);

	curl_easy_setopt(e, CURLOPT_URL, t->url);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, s->payload ? s->payload : s->due.raw);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
			 (curl_off_t)(s->payload ? s->payload_len : s->due.raw_len));
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->headers);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(t->timeout_ms < 10000 ? t->timeout_ms : 10000));
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, curl_http_version(t));
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(e, CURLOPT_PRIVATE, s);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	if (t->ca_file[0])
		curl_easy_setopt(e, CURLOPT_CAINFO, t->ca_file);
	if (t->client_cert[0]) {
		curl_easy_setopt(e, CURLOPT_SSLCERT, t->client_cert);
		curl_easy_setopt(e, CURLOPT_SSLKEY, t->client_key);
	}
	if (t->insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (t->auth == HQ_AUTH_BASIC) {
		curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(e, CURLOPT_USERNAME, t->username);
		curl_easy_setopt(e, CURLOPT_PASSWORD, w->password);
	} else if (t->auth == HQ_AUTH_BEARER || t->auth == HQ_AUTH_OAUTH2) {
		curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
		curl_easy_setopt(e, CURLOPT_XOAUTH2_BEARER, w->token);
	} else if (t->auth == HQ_AUTH_SIGV4) {
		/* libcurl signs the request itself (AWS Signature Version 4). */
		curl_easy_setopt(e, CURLOPT_AWS_SIGV4, w->sigv4);
		curl_easy_setopt(e, CURLOPT_USERNAME, w->aws_key);
		curl_easy_setopt(e, CURLOPT_PASSWORD, w->aws_secret);
	}
	s->errbuf[0] = 0;
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf);
	s->start_us = hq_wall_us();
	s->token_gen = w->token_gen;
	s->busy = 1;
	return curl_multi_add_handle(w->multi, e) == CURLM_OK ? 0 : -1;
}

static void
slot_release(worker *w, slot *s)
{
	curl_multi_remove_handle(w->multi, s->easy);
	curl_slist_free_all(s->headers);
	s->headers = NULL;
	free(s->payload);
	s->payload = NULL;
	free(s->due.raw);
	s->due.raw = NULL;
	s->busy = 0;
}

/* Target-level backoff while down (probes): retry_initial doubling to retry_max, jittered. */
static uint64_t
probe_delay_us(const hq_target_conf *t, uint32_t streak)
{
	hq_retry_policy p = {t->retry_initial_ms, t->retry_max_ms, 0, 0};
	hq_attempt_result r = {0, -1, 0, streak ? streak : 1, 0, 0, (double)rand() / RAND_MAX};
	return hq_retry_decide(&p, &r).at_us;
}

/*
 * A failed TLS handshake with a target, in an operator's words: the reason
 * (OpenSSL's verify result, as libcurl's CURLINFO_SSL_VERIFYRESULT gives
 * it, or libcurl's error buffer) and the fix.  Writes "TLS: reason: fix"
 * into out and returns 1, or 0 when res is not a TLS failure.
 */
static int
tls_failure_text(CURLcode res, long verify, const char *errbuf, char *out, size_t cap)
{
	/* X509_V_ERR_* (OpenSSL's x509_vfy.h): libcurl here is built on OpenSSL */
	enum { ISSUER = 2, NOT_YET = 9, EXPIRED = 10, SELF_SIGNED = 18, SELF_IN_CHAIN = 19,
	       ISSUER_LOCALLY = 20, LEAF = 21, HOSTNAME = 62 };
	const char *why = NULL;
	if (res != CURLE_PEER_FAILED_VERIFICATION && res != CURLE_SSL_CONNECT_ERROR &&
	    res != CURLE_SSL_CACERT_BADFILE && res != CURLE_SSL_ISSUER_ERROR)
		return 0;
	if (res == CURLE_SSL_CACERT_BADFILE)
		why = "ca_file cannot be read or holds no certificate: point ca_file at a PEM file";
	else if (verify == SELF_SIGNED)
		why = "self-signed certificate: set ca_file to that certificate (or the CA that signed it)";
	else if (verify == SELF_IN_CHAIN || verify == ISSUER || verify == ISSUER_LOCALLY || verify == LEAF)
		why = "unknown issuer: set ca_file to the CA that signed the target's certificate";
	else if (verify == EXPIRED)
		why = "certificate expired: renew it on the target (ca_file cannot help)";
	else if (verify == NOT_YET)
		why = "certificate not valid yet: check the clocks here and on the target";
	else if (verify == HOSTNAME || (errbuf && (strstr(errbuf, "host name") || strstr(errbuf, "subject name"))))
		why = "host name not in the certificate: use a name it lists in url";
	if (why)
		snprintf(out, cap, "TLS: %s", why);
	else
		snprintf(out, cap, "TLS: %s (verify %ld); if the CA is private, set ca_file",
			 errbuf && *errbuf ? errbuf : curl_easy_strerror(res), verify);
	return 1;
}

/*
 * Decides the outcome of the transfer in s (hq_retry_decide) and fills o.
 * Returns 0 when o is to be written, or 1 when the request is simply sent
 * again (a 401 for a token since replaced: not the message's fault).
 */
static int
classify(worker *w, slot *s, CURLcode res, hq_outcome *o)
{
	const hq_target_conf *t = w->t;
	uint64_t now = hq_wall_us();
	long status = 0;
	curl_off_t ra = -1;
	int stale = 0;

	memset(o, 0, sizeof *o);
	o->id = s->due.id;
	o->epoch = s->due.epoch; /* a replay meanwhile makes this outcome stale */
	o->at_us = now;
	o->latency_us = (uint32_t)(now - s->start_us);
	hq_hist_observe_us(&w->m->latency, o->latency_us);
	memcpy(o->body, s->body, s->body_len);
	o->body_len = s->body_len;
	hq_count(&w->m->attempts, 1);
	if (res == CURLE_OK) {
		curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
		o->http_status = (int)status;
		snprintf(o->error, sizeof o->error, "HTTP %ld", status);
		if (status >= 200 && status < 300)
			hq_count(&w->m->status_2xx, 1);
		else if (status >= 500)
			hq_count(&w->m->status_5xx, 1);
		else
			hq_count(&w->m->status_4xx, 1); /* 3xx with them, as ever */
		/* curl reads both forms: seconds, and an HTTP-date (as seconds from now) */
		if (curl_easy_getinfo(s->easy, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK || ra <= 0)
			ra = -1;
		if (status >= 300 && status < 400) {
			char *loc = NULL;
			if (curl_easy_getinfo(s->easy, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK && loc)
				snprintf(o->error, sizeof o->error, "HTTP %ld to %s", status, loc);
		}
		if (status == 401 && t->auth == HQ_AUTH_OAUTH2) {
			if (s->token_gen != w->token_gen) {
				stale = 1; /* sent with a token already replaced */
			} else if (!w->gen_after_401 || w->gen_proven) {
				stale = 1; /* maybe revoked: one refresh for this generation */
				w->want_refresh = 1;
				w->token_expires_us = 0;
			}
		}
		if (status >= 200 && status < 300 && s->token_gen == w->token_gen)
			w->gen_proven = 1;
	} else {
		hq_count(&w->m->network_errors, 1);
		long verify = 0;
		curl_easy_getinfo(s->easy, CURLINFO_SSL_VERIFYRESULT, &verify);
		if (!tls_failure_text(res, verify, s->errbuf, o->error, sizeof o->error))
			snprintf(o->error, sizeof o->error, "%s", curl_easy_strerror(res));
	}
	uint32_t attempts = s->due.attempts + 1;
	hq_retry_policy pol = {t->retry_initial_ms, t->retry_max_ms, (uint32_t)t->max_attempts,
			       t->max_age_ms};
	hq_attempt_result ar = {(int)status, (int64_t)ra, stale, attempts, now, s->due.age_from_us,
				(double)rand() / RAND_MAX};
	hq_next next = hq_retry_decide(&pol, &ar);
	if (next.kind == HQ_NEXT_RESEND)
		return 1;
	o->state = next.kind == HQ_NEXT_DELIVERED ? HQ_DLV_DELIVERED
		   : next.kind == HQ_NEXT_RETRY	  ? HQ_DLV_RETRY
						  : HQ_DLV_DEAD;
	o->next_us = next.at_us;
	if (next.kind == HQ_NEXT_DEAD && (status == 0 || status >= 500 || status == 408 || status == 425 ||
					  status == 429 || status == 307 || status == 308)) {
		size_t n = strlen(o->error);
		snprintf(o->error + n, sizeof o->error - n, "; %s", next.why);
	}
	int cn = (int)strnlen(s->due.control_id, 64);
	if (o->state == HQ_DLV_DELIVERED) {
		hq_count(&w->m->delivered, 1);
		if (w->down) {
			hq_log_limited(&w->rl_state, STATE_LOG_BURST, LOG_WINDOW_MS, "target down/back lines",
				       HQ_LOG_NOTICE, "target %s: back (HTTP %ld)", t->name, status);
			w->down = 0;
		}
		w->down_streak = 0;
		hq_log(HQ_LOG_DEBUG, "target %s: id=%llu ctrl=%.*s type=%s delivered (HTTP %ld, %u us)",
		       t->name, (unsigned long long)o->id, cn, s->due.control_id, s->due.type,
		       status, o->latency_us);
	} else if (o->state == HQ_DLV_RETRY) {
		hq_count(&w->m->retried, 1);
		if (!w->down) {
			hq_log_limited(&w->rl_state, STATE_LOG_BURST, LOG_WINDOW_MS, "target down/back lines",
				       HQ_LOG_WARNING, "target %s: down (%s); retrying", t->name, o->error);
			w->down = 1;
		}
		/* down: one probe at a time, on the target's own backoff, instead
		 * of every queued message retrying on its own schedule */
		w->down_streak++;
		uint64_t at = probe_delay_us(t, w->down_streak);
		if (ra > 0 && o->next_us > now + at)
			at = o->next_us - now; /* the target asked for longer */
		w->probe_at_us = now + at;
	} else {
		hq_count(&w->m->dead, 1);
		hq_log_limited(&w->rl_dead, DEAD_LOG_BURST, LOG_WINDOW_MS, "dead-letter lines", HQ_LOG_WARNING,
			       "target %s: id=%llu ctrl=%.*s type=%s dead-lettered after %u attempt%s (%s)",
		       t->name, (unsigned long long)o->id, cn, s->due.control_id, s->due.type,
		       attempts, attempts == 1 ? "" : "s", o->error);
	}
	return 0;
}

static hq_due_order due_order(const hq_target_conf *t);

static void *
worker_main(void *arg)
{
	worker *w = arg;
	const hq_target_conf *t = w->t;
	hq_due_order order = due_order(t);
	hq_due due[MAX_ROUND];
	/* Outcomes are written in batches: when twice as many as the slots
	 * have gathered, when nothing else is running, or 20 ms after the
	 * first (every write transaction is an fsync that intake waits behind).
	 * Until then their ids stay out of the next rounds, like in-flight
	 * ones (after a crash they are sent again, as in-flight ones are). */
	size_t cap = (size_t)w->nslots * 4, nout = 0;
	uint64_t first_out_us = 0;
	hq_outcome *outs = calloc(cap, sizeof *outs);
	uint64_t *skip = calloc(cap + (size_t)w->nslots, sizeof *skip);
	uint64_t drain_since = 0;

	/* Replacing workers of a reload: they finish their requests first, so
	 * that no message is in flight twice and FIFO order holds. */
	for (int i = 0; i < w->npred; i++)
		while (!__atomic_load_n(&w->pred[i]->exited, __ATOMIC_ACQUIRE) && !w->stop)
			curl_multi_poll(w->multi, NULL, 0, 10, NULL);
	__atomic_store_n(&w->waited, 1, __ATOMIC_RELEASE); /* the reaper may free pred now */

	while (!w->stop && outs && skip) {
		__atomic_store_n(&w->woken, 0, __ATOMIC_RELAXED); /* wakes from here on count */
		int draining = __atomic_load_n(&w->draining, __ATOMIC_RELAXED);
		if (draining && drain_since == 0)
			drain_since = hq_wall_us();
		/* Fill the free slots with due deliveries. */
		int free_slots = 0, nskip = 0;
		for (int i = 0; i < w->nslots; i++) {
			if (w->slots[i].busy)
				skip[nskip++] = w->slots[i].due.id;
			else
				free_slots++;
		}
		for (size_t i = 0; i < nout; i++)
			skip[nskip++] = outs[i].id;
		uint64_t next_us = 0;
		if (free_slots > 0 && t->auth == HQ_AUTH_OAUTH2) {
			char why[256];
			if (oauth2_token(w, why, sizeof why) != 0) {
				if (!w->down)
					hq_log(HQ_LOG_WARNING, "target %s: down (%s); retrying", t->name, why);
				w->down = 1;
				curl_multi_poll(w->multi, NULL, 0, (int)(t->retry_initial_ms < 5000 ? t->retry_initial_ms : 5000), NULL);
				continue;
			}
		}
		/* Refill in bunches (a quarter of the slots, or all when idle):
		 * each refill is a read transaction and a queue scan. */
		int refill = free_slots > 0 && !draining &&
			     (free_slots >= (w->nslots + 3) / 4 || free_slots == w->nslots);
		uint64_t now_us = hq_wall_us(), hold_us = 0;
		size_t want = (size_t)free_slots < MAX_ROUND ? (size_t)free_slots : MAX_ROUND;
		if (now_us < w->pause_until_us)
			hold_us = w->pause_until_us; /* outcomes could not be written */
		else if (w->down && now_us < w->probe_at_us)
			hold_us = w->probe_at_us; /* down: the next probe */
		if (w->down && free_slots < w->nslots)
			refill = 0; /* down: one probe in flight at a time */
		if (w->down)
			want = 1;
		if (hold_us)
			refill = 0;
		if (refill) {
			long n = hq_journal_due(w->j, t->name, now_us, order, w->shard, w->nshards,
						skip, (size_t)nskip,
						due, want, &next_us);
			if (n == HQ_ECORRUPT && order == HQ_DUE_FIFO) {
				/* The head cannot be read or opened: skipping it would break
				 * the order, so the target stops here, and says why. */
				if (w->stuck_id != due[0].id)
					hq_log(HQ_LOG_ERR, "target %s: stopped: the head of its queue, id=%llu, cannot be read or opened (journal damaged, or sealed with a key not loaded); fix it, or `hl7q purge %llu`",
					       t->name, (unsigned long long)due[0].id, (unsigned long long)due[0].id);
				w->stuck_id = due[0].id;
				__atomic_store_n(&w->m->stuck_id, due[0].id, __ATOMIC_RELAXED);
				next_us = now_us + 5000000; /* look again (a reload may bring the key) */
				n = 0;
			} else if (n < 0) {
				hq_log(HQ_LOG_ERR, "target %s: cannot read the journal: %s", t->name,
				       hq_strerror((int)n));
			} else if (w->stuck_id) {
				hq_log(HQ_LOG_NOTICE, "target %s: its queue moves again", t->name);
				w->stuck_id = 0;
				__atomic_store_n(&w->m->stuck_id, 0, __ATOMIC_RELAXED);
			}
			for (long k = 0, i = 0; k < n; k++) {
				while (w->slots[i].busy)
					i++;
				w->slots[i].due = due[k];
				int rc = slot_start(w, &w->slots[i]);
				if (rc == 1 && nout < cap) { /* settled without a request (format fhir) */
					if (nout == 0)
						first_out_us = hq_wall_us();
					outs[nout++] = w->slots[i].settled;
					slot_release(w, &w->slots[i]);
				} else if (rc == 1) {
					slot_release(w, &w->slots[i]); /* no room to record it: pending, next round */
				} else if (rc != 0) {
					hq_log(HQ_LOG_ERR, "target %s: cannot start a request", t->name);
					slot_release(w, &w->slots[i]);
				}
			}
		}
		int running = 0;
		curl_multi_perform(w->multi, &running);

		/* What finished. */
		CURLMsg *m;
		int left, finished = 0;
		while (nout < cap && (m = curl_multi_info_read(w->multi, &left)) != NULL) {
			if (m->msg != CURLMSG_DONE)
				continue;
			slot *s;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			if (nout == 0)
				first_out_us = hq_wall_us();
			if (classify(w, s, m->data.result, &outs[nout]) == 0)
				nout++;
			slot_release(w, s);
			finished++;
		}
		int still = 0;
		for (int i = 0; i < w->nslots; i++)
			still += w->slots[i].busy;
		int was = __atomic_exchange_n(&w->inflight, still + (int)nout, __ATOMIC_RELAXED);
		__atomic_fetch_add(&w->m->inflight, still + (int)nout - was, __ATOMIC_RELAXED);
		if (draining && ((still == 0 && nout == 0) || hq_wall_us() - drain_since > 10000000))
			break; /* done (or 10 s: what is left is pending again at the next start) */
		hq_log_flush(&w->rl_dead, LOG_WINDOW_MS, "dead-letter lines");
		if (nout > 0 && (nout >= 2 * (size_t)w->nslots || still == 0 ||
				 hq_wall_us() - first_out_us >= 20000)) {
			int rc = hq_journal_record_outcomes(w->j, t->name, outs, nout);
			if (rc != 0) {
				/* Not written: the messages are due again as they were.
				 * Back off in memory instead of re-sending at once. */
				w->write_failures++;
				uint64_t d = probe_delay_us(t, w->write_failures);
				w->pause_until_us = hq_wall_us() + d;
				hq_log(HQ_LOG_ERR, "target %s: cannot record %zu outcomes: %s (they will be retried in %llu ms)",
				       t->name, nout, hq_strerror(rc), (unsigned long long)(d / 1000));
			} else {
				w->write_failures = 0;
			}
			nout = 0;
			continue; /* look for more work at once */
		}
		if (finished)
			continue; /* free slots: fill them */
		long wait_ms = 1000; /* idle: intake's wake-up or the next second */
		if (hold_us && (next_us == 0 || next_us < hold_us))
			next_us = hold_us;
		if (next_us) {
			uint64_t now = hq_wall_us();
			long until = next_us > now ? (long)((next_us - now) / 1000) + 1 : 0;
			if (until < wait_ms)
				wait_ms = until;
		}
		if (nout > 0 && wait_ms > 20)
			wait_ms = 20; /* the unwritten outcomes */
		curl_multi_poll(w->multi, NULL, 0, (int)wait_ms, NULL);
	}
	if (nout > 0 && outs)
		hq_journal_record_outcomes(w->j, t->name, outs, nout);
	for (int i = 0; i < w->nslots; i++)
		if (w->slots[i].busy)
			slot_release(w, &w->slots[i]);
	free(outs);
	free(skip);
	__atomic_fetch_sub(&w->m->inflight, __atomic_exchange_n(&w->inflight, 0, __ATOMIC_RELAXED),
			   __ATOMIC_RELAXED);
	__atomic_store_n(&w->exited, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Frees a worker whose thread has been joined (or never started). */
static void
worker_free(worker *w)
{
	if (w == NULL)
		return;
	for (int k = 0; k < w->nslots; k++)
		if (w->slots[k].easy)
			curl_easy_cleanup(w->slots[k].easy);
	if (w->multi)
		curl_multi_cleanup(w->multi);
	free(w->slots);
	hq_secret_free(w->password);
	hq_secret_free(w->token);
	hq_secret_free(w->client_secret);
	hq_secret_free(w->aws_key);
	hq_secret_free(w->aws_secret);
	free(w->sigv4);
	hq_tz_free(w->fhir_tz);
	memset(&w->fhir, 0, sizeof w->fhir);
	free(w);
}

/* How many workers share target t's queue. */
static uint32_t
shards_of(const hq_target_conf *t)
{
	/* An unordered target gets two workers, each with its share of the
	 * queue (ids by parity): the work per request (TLS, HTTP/2, libcurl)
	 * outweighs one core.  Ordered targets keep one. */
	return t->ordering == HQ_ORDER_NONE && t->concurrency >= 4 ? 2 : 1;
}

/* A worker for shard `shard` of target t, its secrets read (not started). */
static worker *
worker_new(const hq_target_conf *t, hq_journal *j, uint32_t shard, char *err, size_t errcap)
{
	worker *w = calloc(1, sizeof *w);
	if (w == NULL) {
		snprintf(err, errcap, "target %s: out of memory", t->name);
		return NULL;
	}
	w->t = t;
	w->j = j;
	w->nshards = shards_of(t);
	w->shard = shard;
	if (t->auth == HQ_AUTH_BASIC && t->password_file[0] &&
	    (w->password = read_secret(t->password_file, err, errcap, t->name)) == NULL)
		goto fail;
	if (t->auth == HQ_AUTH_BASIC && !t->password_file[0])
		w->password = strdup(t->password);
	if (t->auth == HQ_AUTH_OAUTH2 &&
	    (w->client_secret = read_secret(t->client_secret_file, err, errcap, t->name)) == NULL)
		goto fail;
	if (t->auth == HQ_AUTH_SIGV4) {
		const char *ek = getenv("AWS_ACCESS_KEY_ID"), *es = getenv("AWS_SECRET_ACCESS_KEY");
		w->aws_key = t->aws_key_id_file[0] ? read_secret(t->aws_key_id_file, err, errcap, t->name)
						   : (ek && *ek ? strdup(ek) : NULL);
		w->aws_secret = t->aws_secret_file[0]
					? read_secret(t->aws_secret_file, err, errcap, t->name)
					: (es && *es ? strdup(es) : NULL);
		if (w->aws_key == NULL || w->aws_secret == NULL) {
			if (!t->aws_key_id_file[0] || !t->aws_secret_file[0])
				snprintf(err, errcap, "target %s: aws-sigv4 needs aws_key_id_file and aws_secret_file, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment",
					 t->name);
			goto fail;
		}
		size_t n = strlen(t->aws_region) + strlen(t->aws_service) + 16;
		if ((w->sigv4 = malloc(n)) == NULL)
			goto fail;
		snprintf(w->sigv4, n, "aws:amz:%s:%s", t->aws_region, t->aws_service);
	}
	if (t->auth == HQ_AUTH_BEARER &&
	    (w->token = read_secret(t->token_file, err, errcap, t->name)) == NULL)
		goto fail;
	if (t->format == HQ_FMT_FHIR) {
		char why[512];
		if (hq_fhir_opts_init(&w->fhir, t->fhir_id_key_file, t->fhir_timezone, &w->fhir_tz, why,
				      sizeof why) != 0) {
			snprintf(err, errcap, "target %s: %s", t->name, why);
			goto fail;
		}
		w->fhir.batch = t->fhir_batch;
		w->fhir.max_entries = t->fhir_max_entries;
		w->fhir.patient_match = t->fhir_patient_match;
	}
	w->nslots = t->ordering == HQ_ORDER_FIFO ? 1 : t->concurrency;
	if (w->nshards > 1)
		w->nslots = (t->concurrency + 1) / 2;
	w->slots = calloc((size_t)w->nslots, sizeof *w->slots);
	w->multi = curl_multi_init();
	if (w->slots == NULL || w->multi == NULL) {
		snprintf(err, errcap, "target %s: out of memory", t->name);
		goto fail;
	}
	curl_multi_setopt(w->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)w->nslots);
	curl_multi_setopt(w->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	w->m = hq_metrics_target(t->name);
	return w;
fail:
	worker_free(w);
	return NULL;
}

/* Starts w's thread, with the warnings and the line a target gets at start. */
static int
worker_start(worker *w, char *err, size_t errcap)
{
	const hq_target_conf *t = w->t;
	if (w->shard == 0) {
		if (t->auth == HQ_AUTH_BASIC && !t->password_file[0])
			hq_log(HQ_LOG_WARNING, "target %s: password is written in the config; use password_file",
			       t->name);
		if (t->insecure)
			hq_log(HQ_LOG_WARNING, "target %s: insecure = true: TLS certificates are NOT verified",
			       t->name);
	}
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
		snprintf(err, errcap, "target %s: cannot start its thread", t->name);
		return -1;
	}
	w->started = 1;
	if (w->shard == 0)
		hq_log(HQ_LOG_NOTICE, "target %s: delivering to %s (%s, %s, %d in flight at most)",
		       t->name, t->url, t->format == HQ_FMT_RAW ? "raw" : t->format == HQ_FMT_JSON ? "json" : t->format == HQ_FMT_FHIR ? "fhir" : "google-hl7v2",
		       t->ordering == HQ_ORDER_FIFO ? "fifo" : t->ordering == HQ_ORDER_PATIENT ? "fifo per patient" : "unordered",
		       t->concurrency > w->nslots && t->ordering != HQ_ORDER_FIFO ? t->concurrency : w->nslots);
	return 0;
}

/* Builds the (unstarted) workers of cfg.  Returns their count, or -1 with err. */
static int
workers_new(const hq_config *cfg, hq_journal *j, worker ***out, char *err, size_t errcap)
{
	int n = 0;
	for (int i = 0; i < cfg->ntargets; i++)
		n += (int)shards_of(&cfg->targets[i]);
	worker **v = calloc((size_t)(n ? n : 1), sizeof *v);
	if (v == NULL) {
		snprintf(err, errcap, "out of memory");
		return -1;
	}
	for (int i = 0, k = 0; i < cfg->ntargets; i++)
		for (uint32_t sh = 0; sh < shards_of(&cfg->targets[i]); sh++, k++)
			if ((v[k] = worker_new(&cfg->targets[i], j, sh, err, errcap)) == NULL) {
				while (k-- > 0)
					worker_free(v[k]);
				free(v);
				return -1;
			}
	*out = v;
	return n;
}

static hq_due_order
due_order(const hq_target_conf *t)
{
	return t->ordering == HQ_ORDER_FIFO	 ? HQ_DUE_FIFO
	       : t->ordering == HQ_ORDER_PATIENT ? HQ_DUE_PATIENT
						 : HQ_DUE_NONE;
}

static int
set_orders(const hq_config *cfg, hq_journal *j, char *err, size_t errcap)
{
	for (int i = 0; i < cfg->ntargets; i++) {
		int rc = hq_journal_set_order(j, cfg->targets[i].name, due_order(&cfg->targets[i]));
		if (rc != 0) {
			snprintf(err, errcap, "target %s: cannot index its queue: %s", cfg->targets[i].name,
				 hq_strerror(rc));
			return -1;
		}
	}
	return 0;
}

int
hq_delivery_start(const hq_config *cfg, hq_journal *j, hq_delivery_sys **out, char *err,
		  size_t errcap)
{
	hq_delivery_sys *d = calloc(1, sizeof *d);
	if (d == NULL)
		return ENOMEM;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	d->j = j;
	if ((d->n = workers_new(cfg, j, &d->workers, err, errcap)) < 0) {
		free(d);
		return HQ_ECONFIG;
	}
	/* Each target's due index kept for its ordering (built once for a
	 * journal from before it, or when the ordering changed). */
	if (set_orders(cfg, j, err, errcap) != 0) {
		for (int i = 0; i < d->n; i++)
			worker_free(d->workers[i]);
		free(d->workers);
		free(d);
		return HQ_ECONFIG;
	}
	/* Test seam for the benchmark: fill the queues without draining them. */
	const char *hold = getenv("HL7Q_TEST_HOLD_DELIVERY");
	if (hold && *hold) {
		hq_log(HQ_LOG_WARNING, "test seam: delivery workers not started (HL7Q_TEST_HOLD_DELIVERY)");
		d->held = 1;
		*out = d;
		return 0;
	}
	for (int i = 0; i < d->n; i++)
		if (worker_start(d->workers[i], err, errcap) != 0) {
			hq_delivery_stop(d);
			return HQ_ECONFIG;
		}
	*out = d;
	return 0;
}

/* Whether w can go on as the worker of t: same settings, same secrets. */
static int
worker_unchanged(const worker *w, const worker *fresh)
{
	hq_target_conf a = *w->t, b = *fresh->t;
	a.line = b.line = 0;
#define SAME(f) ((w->f == NULL && fresh->f == NULL) || (w->f && fresh->f && strcmp(w->f, fresh->f) == 0))
	return memcmp(&a, &b, sizeof a) == 0 && w->shard == fresh->shard &&
	       w->nshards == fresh->nshards && SAME(password) && SAME(client_secret) &&
	       SAME(aws_key) && SAME(aws_secret) && (w->t->auth == HQ_AUTH_OAUTH2 || SAME(token));
#undef SAME
}

int
hq_delivery_reload(hq_delivery_sys *d, const hq_config *cfg, char *err, size_t errcap)
{
	worker **fresh;
	hq_delivery_reap(d);
	int n = workers_new(cfg, d->j, &fresh, err, errcap);
	if (n < 0)
		return HQ_ECONFIG; /* a secret cannot be read: nothing changes */
	worker **retired = realloc(d->retired, (size_t)(d->nretired + d->n + 1) * sizeof *retired);
	if (retired == NULL) {
		for (int i = 0; i < n; i++)
			worker_free(fresh[i]);
		free(fresh);
		snprintf(err, errcap, "out of memory");
		return ENOMEM;
	}
	d->retired = retired;
	int *kept = calloc((size_t)(d->n + 1), sizeof *kept);
	if (kept == NULL) {
		for (int i = 0; i < n; i++)
			worker_free(fresh[i]);
		free(fresh);
		snprintf(err, errcap, "out of memory");
		return ENOMEM;
	}
	/* Unchanged workers go on (their config stays alive: the daemon frees a
	 * config only once hq_delivery_uses says no worker runs with it); the
	 * others drain, their successors wait for them, and hq_delivery_reap
	 * joins and frees them once they have exited. */
	for (int i = 0; i < n; i++) {
		worker *nw = fresh[i];
		for (int k = 0; k < d->n; k++) {
			worker *ow = d->workers[k];
			if (kept[k] || strcmp(ow->t->name, nw->t->name) != 0)
				continue;
			if (worker_unchanged(ow, nw)) {
				worker_free(nw);
				fresh[i] = ow;
				kept[k] = 1;
				break;
			}
		}
	}
	for (int k = 0; k < d->n; k++) {
		worker *ow = d->workers[k];
		if (kept[k])
			continue;
		__atomic_store_n(&ow->draining, 1, __ATOMIC_RELAXED);
		if (ow->multi && ow->started)
			curl_multi_wakeup(ow->multi);
		d->retired[d->nretired++] = ow;
		int replaced = 0;
		for (int i = 0; i < n; i++) {
			worker *nw = fresh[i];
			if (nw->started || strcmp(nw->t->name, ow->t->name) != 0 || nw->npred == 2)
				continue;
			nw->pred[nw->npred++] = ow;
			replaced = 1;
		}
		if (ow->shard == 0)
			hq_log(HQ_LOG_NOTICE, "target %s: %s; finishing its requests in flight", ow->t->name,
			       replaced ? "settings changed" : "removed");
	}
	/* An ordering that changed gets its index rebuilt; the new worker
	 * waits for the old one anyway, which takes nothing new meanwhile. */
	if (set_orders(cfg, d->j, err, errcap) != 0)
		hq_log(HQ_LOG_ERR, "%s", err);
	for (int i = 0; i < n; i++) {
		if (fresh[i]->started || d->held)
			continue;
		if (worker_start(fresh[i], err, errcap) != 0)
			hq_log(HQ_LOG_ERR, "%s", err);
	}
	free(kept);
	free(d->workers);
	d->workers = fresh;
	d->n = n;
	return 0;
}

/* Whether a worker of v[0..n) still reads ow as its predecessor. */
static int
pred_in_use(worker **v, int n, const worker *ow)
{
	for (int i = 0; i < n; i++) {
		const worker *x = v[i];
		if (!x->started || __atomic_load_n(&x->waited, __ATOMIC_ACQUIRE))
			continue;
		for (int k = 0; k < x->npred; k++)
			if (x->pred[k] == ow)
				return 1;
	}
	return 0;
}

void
hq_delivery_reap(hq_delivery_sys *d)
{
	if (d == NULL || d->nretired == 0)
		return;
	/* decide with every worker still there, then free */
	char *go = calloc((size_t)d->nretired, 1);
	if (go == NULL)
		return;
	for (int i = 0; i < d->nretired; i++) {
		worker *ow = d->retired[i];
		go[i] = (!ow->started || __atomic_load_n(&ow->exited, __ATOMIC_ACQUIRE)) &&
			!pred_in_use(d->workers, d->n, ow) && !pred_in_use(d->retired, d->nretired, ow);
	}
	int k = 0;
	for (int i = 0; i < d->nretired; i++) {
		worker *ow = d->retired[i];
		if (!go[i]) {
			d->retired[k++] = ow;
			continue;
		}
		if (ow->started)
			pthread_join(ow->thread, NULL);
		worker_free(ow);
	}
	d->nretired = k;
	free(go);
}

int
hq_delivery_uses(const hq_delivery_sys *d, const hq_config *cfg)
{
	if (d == NULL || cfg->ntargets == 0)
		return 0;
	const hq_target_conf *lo = cfg->targets, *hi = cfg->targets + cfg->ntargets;
	for (int pass = 0; pass < 2; pass++) {
		worker **v = pass ? d->retired : d->workers;
		int n = pass ? d->nretired : d->n;
		for (int i = 0; i < n; i++)
			if (v[i]->t >= lo && v[i]->t < hi)
				return 1;
	}
	return 0;
}

int
hq_delivery_inflight(hq_delivery_sys *d, const char *target)
{
	int n = 0;
	for (int i = 0; d && i < d->n; i++)
		if (strcmp(d->workers[i]->t->name, target) == 0)
			n += __atomic_load_n(&d->workers[i]->inflight, __ATOMIC_RELAXED);
	for (int i = 0; d && i < d->nretired; i++)
		if (strcmp(d->retired[i]->t->name, target) == 0)
			n += __atomic_load_n(&d->retired[i]->inflight, __ATOMIC_RELAXED);
	return n;
}

uint64_t
hq_delivery_stopped(hq_delivery_sys *d, const char *target)
{
	for (int i = 0; d && i < d->n; i++)
		if (strcmp(d->workers[i]->t->name, target) == 0 && d->workers[i]->m)
			return __atomic_load_n(&d->workers[i]->m->stuck_id, __ATOMIC_RELAXED);
	return 0;
}

void
hq_delivery_wake(hq_delivery_sys *d)
{
	if (d == NULL)
		return;
	/* Coalesced: a worker already woken and not yet looking is not woken again. */
	for (int i = 0; i < d->n; i++)
		if (d->workers[i]->started && !__atomic_exchange_n(&d->workers[i]->woken, 1, __ATOMIC_RELAXED))
			curl_multi_wakeup(d->workers[i]->multi);
}

void
hq_delivery_stop(hq_delivery_sys *d)
{
	if (d == NULL)
		return;
	for (int pass = 0; pass < 2; pass++) {
		worker **v = pass ? d->retired : d->workers;
		int n = pass ? d->nretired : d->n;
		for (int i = 0; i < n; i++)
			if (v[i]->started) {
				v[i]->stop = 1;
				curl_multi_wakeup(v[i]->multi);
			}
	}
	for (int pass = 0; pass < 2; pass++) {
		worker **v = pass ? d->retired : d->workers;
		int n = pass ? d->nretired : d->n;
		for (int i = 0; i < n; i++) {
			if (v[i]->started)
				pthread_join(v[i]->thread, NULL);
			worker_free(v[i]);
		}
		free(v);
	}
	free(d);
}
