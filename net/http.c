/*
 * http.c - the delivery workers' HTTP client over libcurl (see http.h).
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "http.h"

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

/* Links line (NULL: skipped) as the next node of hb; returns the node. */
static struct curl_slist *
hdr_link(hq_http_hdrs *hb, int *n, char *line)
{
	struct curl_slist *h = &hb->node[*n];
	h->data = line;
	h->next = NULL;
	if (*n > 0)
		hb->node[*n - 1].next = h;
	(*n)++;
	return h;
}

struct curl_slist *
hq_http_headers(hq_http_hdrs *hb, const hq_target_conf *t, const char *content_type, const char *accept,
		const char *idem_key, uint64_t id, const char *control_id, const char *type)
{
	char value[400];
	int n = 0;
	snprintf(hb->ctype, sizeof hb->ctype, "Content-Type: %s", content_type);
	hdr_link(hb, &n, hb->ctype);
	if (accept) {
		snprintf(hb->accept, sizeof hb->accept, "Accept: %s", accept);
		hdr_link(hb, &n, hb->accept);
	}
	snprintf(hb->idem, sizeof hb->idem, "Idempotency-Key: %s", idem_key); /* see hq_journal_due */
	hdr_link(hb, &n, hb->idem);
	snprintf(hb->id, sizeof hb->id, "X-HL7-Message-Id: %llu", (unsigned long long)id);
	hdr_link(hb, &n, hb->id);
	hq_header_value(control_id, value, sizeof value);
	snprintf(hb->ctrl, sizeof hb->ctrl, "X-HL7-Control-Id: %s", value);
	hdr_link(hb, &n, hb->ctrl);
	hq_header_value(type, value, sizeof value);
	snprintf(hb->type, sizeof hb->type, "X-HL7-Message-Type: %s", value);
	hdr_link(hb, &n, hb->type);
	/* No "Expect: 100-continue" wait -- except under SigV4, where libcurl
	 * would sign the empty Expect: entry that is never sent. */
	if (t->auth != HQ_AUTH_SIGV4)
		hdr_link(hb, &n, (char *)"Expect:");
	for (int i = 0; i < t->nheaders && i < HQ_MAX_LIST; i++)
		hdr_link(hb, &n, (char *)t->headers[i]);
	return &hb->node[0];
}

CURLM *
hq_http_multi_new(int nslots)
{
	CURLM *m = curl_multi_init();
	if (m == NULL)
		return NULL;
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)nslots);
	curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	return m;
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
	case HQ_HTTP_1_1: return CURL_HTTP_VERSION_1_1;
	case HQ_HTTP_2:
		return strncasecmp(t->url, "http://", 7) == 0 ? CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE
							      : CURL_HTTP_VERSION_2_0;
	case HQ_HTTP_AUTO:
	default: return CURL_HTTP_VERSION_2TLS;
	}
}

static size_t
on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	hq_http_answer *a = arg;
	size_t n = size * nmemb;
	size_t room = sizeof a->body - a->len;
	memcpy(a->body + a->len, p, n < room ? n : room);
	a->len += n < room ? n : room;
	return n;
}

void
hq_http_easy_setup(CURL *e, const hq_target_conf *t, hq_http_answer *ans, char *errbuf, void *priv)
{
	curl_easy_setopt(e, CURLOPT_URL, t->url);
	curl_easy_setopt(e, CURLOPT_POST, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(t->timeout_ms < 10000 ? t->timeout_ms : 10000));
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, curl_http_version(t));
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, ans);
	curl_easy_setopt(e, CURLOPT_PRIVATE, priv);
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
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
}

void
hq_http_prepare_post(CURL *e, struct curl_slist *h, const char *body, size_t len, hq_http_answer *ans, char *errbuf)
{
	ans->len = 0;
	errbuf[0] = 0;
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
}

void
hq_http_result(CURL *e, CURLcode res, const char *errbuf, int *status, int64_t *retry_after_s,
	       char *error, size_t cap)
{
	long st = 0;
	curl_off_t ra = -1;
	if (res != CURLE_OK) {
		long verify = 0;
		curl_easy_getinfo(e, CURLINFO_SSL_VERIFYRESULT, &verify);
		if (!hq_http_tls_failure_text(res, verify, errbuf, error, cap))
			snprintf(error, cap, "%s", curl_easy_strerror(res));
		*status = 0;
		*retry_after_s = -1;
		return;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &st);
	snprintf(error, cap, "HTTP %ld", st);
	/* curl reads both forms: seconds, and an HTTP-date (as seconds from now) */
	if (curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK || ra <= 0)
		ra = -1;
	if (st >= 300 && st < 400) {
		char *loc = NULL;
		if (curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK && loc)
			snprintf(error, cap, "HTTP %ld to %s", st, loc);
	}
	*status = (int)st;
	*retry_after_s = (int64_t)ra;
}

int
hq_http_tls_failure_text(CURLcode res, long verify, const char *errbuf, char *out, size_t cap)
{
	/* X509_V_ERR_* (OpenSSL's x509_vfy.h): libcurl here is built on OpenSSL */
	enum {
		ISSUER = 2,
		NOT_YET = 9,
		EXPIRED = 10,
		SELF_SIGNED = 18,
		SELF_IN_CHAIN = 19,
		ISSUER_LOCALLY = 20,
		LEAF = 21,
		HOSTNAME = 62
	};
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
	else if (verify == HOSTNAME ||
		 (errbuf && (strstr(errbuf, "host name") || strstr(errbuf, "subject name"))))
		why = "host name not in the certificate: use a name it lists in url";
	if (why)
		snprintf(out, cap, "TLS: %s", why);
	else
		snprintf(out, cap, "TLS: %s (verify %ld); if the CA is private, set ca_file",
			 errbuf && *errbuf ? errbuf : curl_easy_strerror(res), verify);
	return 1;
}

/* The token endpoint's answer, at most 64 KB. */
static size_t
on_grow(char *p, size_t size, size_t nmemb, void *arg)
{
	return hq_buf_take(arg, p, size * nmemb, 65536);
}

int
hq_http_post_form(const char *url, const char *form, long timeout_ms, const char *ca_file,
		  long *status, char **answer, char *why, size_t cap)
{
	CURL *e = curl_easy_init();
	hq_buf g = {0};
	*status = 0;
	*answer = NULL;
	if (e == NULL) {
		snprintf(why, cap, "out of memory");
		return -1;
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, form);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_grow);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &g);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	if (ca_file[0])
		curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
	CURLcode res = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(e);
	if (res != CURLE_OK) {
		snprintf(why, cap, "%s", curl_easy_strerror(res));
		free(g.p);
		return -1;
	}
	*answer = g.p;
	return 0;
}
