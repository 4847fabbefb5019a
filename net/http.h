/*
 * http.h - the HTTP client of the delivery workers, over libcurl.
 *
 * One POST per easy handle, prepared here with everything the wire needs:
 * the request's header lines (sender's values percent-encoded so they can
 * neither break a header nor smuggle one), timeouts, the HTTP version,
 * TCP keep-alive, the TLS options of the target (ca_file, client
 * certificate, insecure), and the first bytes of the answer kept for the
 * journal.  Connections are reused through a multi handle per worker
 * (HTTP/2 multiplexing where offered).  What an answer means is not
 * decided here: hq_http_result reads status, Retry-After and an
 * operator's error text, and queue/retry.h decides.  Authentication is
 * net/auth.h.  Never logs.
 */
#ifndef HQ_HTTP_H
#define HQ_HTTP_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

/* The first bytes of an answer's body (the rest is read and dropped). */
typedef struct hq_http_answer {
	char body[512];
	size_t len;
} hq_http_answer;

/*
 * An HTTP header value for s: bytes outside visible ASCII (0x21-0x7e), and
 * '%' itself, percent-encoded ("A B" -> "A%20B"), so a control id or type
 * from the sender can neither break the header nor smuggle another one.
 * Writes at most cap bytes with the NUL; a value that does not fit is cut
 * before an escape, never inside one.
 */
void hq_header_value(const char *s, char *out, size_t cap);

/* One request's header lines, kept in the caller's memory (a slot's):
 * building them allocates nothing, and nothing is freed after. */
typedef struct hq_http_hdrs {
	struct curl_slist node[7 + HQ_MAX_LIST];
	char ctype[160], accept[160], idem[200], id[48], ctrl[440], type[440];
} hq_http_hdrs;

/*
 * The header lines of one delivery of message id to t, built in *hb (the
 * list returned points into it and into t, and lives as long as both):
 * Content-Type content_type (and Accept accept, when not NULL),
 * Idempotency-Key idem_key, X-HL7-Message-Id, X-HL7-Control-Id and
 * X-HL7-Message-Type (hq_header_value), "Expect:" (no 100-continue wait;
 * not under SigV4, which would sign it), then t's own headers.  Not to be
 * given to curl_slist_free_all.
 */
struct curl_slist *hq_http_headers(hq_http_hdrs *hb, const hq_target_conf *t,
				   const char *content_type, const char *accept, const char *idem_key,
				   uint64_t id, const char *control_id, const char *type);

/*
 * A multi handle for a worker with nslots requests in flight at most:
 * at most nslots connections to the host, HTTP/2 multiplexing.  NULL when
 * out of memory.  The caller cleans it up (curl_multi_cleanup).
 */
CURLM *hq_http_multi_new(int nslots);

/*
 * Sets up e, once, for the POSTs of target t: URL, timeouts, HTTP
 * version, keep-alive, TLS options, the answer's first bytes into *ans,
 * libcurl's error detail into errbuf (CURL_ERROR_SIZE bytes), and priv as
 * CURLINFO_PRIVATE (ans, errbuf and priv outlive e's transfers).  libcurl
 * keeps the options from one transfer of e to the next.
 */
void hq_http_easy_setup(CURL *e, const hq_target_conf *t, hq_http_answer *ans, char *errbuf, void *priv);

/*
 * Sets e (set up by hq_http_easy_setup) up for one POST of body[0..len)
 * with the header list h (both must outlive the transfer); empties *ans
 * and errbuf.  Authentication is hq_auth_apply's.
 */
void hq_http_prepare_post(CURL *e, struct curl_slist *h, const char *body, size_t len,
			  hq_http_answer *ans, char *errbuf);

/*
 * What transfer e ended with (res): *status the HTTP status (0: no answer),
 * *retry_after_s the Retry-After in seconds (either form; -1 none), and
 * into error[0..cap) a short text for the journal and the log: "HTTP 503",
 * "HTTP 301 to URL", a TLS failure with its fix, or libcurl's text.
 */
void hq_http_result(CURL *e, CURLcode res, const char *errbuf, int *status, int64_t *retry_after_s,
		    char *error, size_t cap);

/*
 * A failed TLS handshake with a target, in an operator's words: the reason
 * (OpenSSL's verify result, as libcurl's CURLINFO_SSL_VERIFYRESULT gives
 * it, or libcurl's error buffer) and the fix.  Writes "TLS: reason: fix"
 * into out and returns 1, or 0 when res is not a TLS failure.
 */
int hq_http_tls_failure_text(CURLcode res, long verify, const char *errbuf, char *out, size_t cap);

/*
 * One blocking POST of the form body (application/x-www-form-urlencoded)
 * to url, within timeout_ms, trusting ca_file when not empty (the OAuth2
 * token endpoint).  Returns 0 with *status and the answer (at most 64 KiB,
 * malloc'd, NUL-ended; the caller frees it) in *answer, or -1 with why set
 * (libcurl's text, or "out of memory").  Nothing of form is in why.
 */
int hq_http_post_form(const char *url, const char *form, long timeout_ms, const char *ca_file,
		      long *status, char **answer, char *why, size_t cap);

#endif
