/*
 * tls.c - non-blocking TLS for MLLP listeners on mbedTLS (see tls.h).
 *
 * mbedTLS rather than OpenSSL: it is in Debian (libmbedtls-dev), small,
 * and its state machine is driven step by step on a non-blocking socket,
 * which is what one epoll loop for every connection needs.
 */
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_cache.h>
#include <mbedtls/ssl_internal.h> /* mbedtls_ssl_flush_output: a pending record goes out first */
#include <mbedtls/x509_crt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls.h"

struct hq_tls_server {
	mbedtls_ssl_config conf;
	mbedtls_x509_crt cert, ca;
	mbedtls_pk_context key;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
	mbedtls_ssl_cache_context cache;
	int verify_client;
	char allowed[HQ_MAX_LIST][256]; /* subjects (whole DN) or CNs; none: any verified client */
	int nallowed;
	int refs; /* its listener's, plus one per connection (the server loop's thread only) */
};

struct hq_tls_conn {
	hq_tls_server *srv;
	mbedtls_ssl_context ssl;
	mbedtls_net_context net;
	/* The length of the write mbedTLS holds as an encrypted record after
	 * WANT_WRITE (0: none).  mbedTLS 2.28 only flushes that record on the
	 * retry and returns the length it is given: a longer retry (ACKs
	 * appended meanwhile) would be counted as sent though only the first
	 * record went out.  So the retry is made with this length. */
	size_t pending;
};

/* Forward secrecy and AEAD only. */
static const int suites[] = {
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	0,
};

static void
tls_err(int rc, char *buf, size_t cap)
{
	char text[160];
	mbedtls_strerror(rc, text, sizeof text);
	snprintf(buf, cap, "%s (-0x%04x)", text, (unsigned)-rc);
}

int
hq_tls_server_new(const hq_listener_conf *lc, hq_tls_server **out, char *err, size_t errcap)
{
	hq_tls_server *s = calloc(1, sizeof *s);
	char why[200];
	int rc;

	if (s == NULL) {
		snprintf(err, errcap, "listener %s: out of memory", lc->name);
		return -1;
	}
	s->refs = 1;
	mbedtls_ssl_config_init(&s->conf);
	mbedtls_x509_crt_init(&s->cert);
	mbedtls_x509_crt_init(&s->ca);
	mbedtls_pk_init(&s->key);
	mbedtls_entropy_init(&s->entropy);
	mbedtls_ctr_drbg_init(&s->drbg);
	mbedtls_ssl_cache_init(&s->cache);
	if ((rc = mbedtls_ctr_drbg_seed(&s->drbg, mbedtls_entropy_func, &s->entropy,
					(const unsigned char *)"hl7q-mllp", 9))) {
		tls_err(rc, why, sizeof why);
		snprintf(err, errcap, "listener %s: TLS random generator: %s", lc->name, why);
		goto fail;
	}
	if ((rc = mbedtls_x509_crt_parse_file(&s->cert, lc->tls_cert))) {
		tls_err(rc, why, sizeof why);
		snprintf(err, errcap, "listener %s: tls_cert %s: %s", lc->name, lc->tls_cert, why);
		goto fail;
	}
	if ((rc = mbedtls_pk_parse_keyfile(&s->key, lc->tls_key, NULL))) {
		tls_err(rc, why, sizeof why);
		snprintf(err, errcap, "listener %s: tls_key %s: %s", lc->name, lc->tls_key, why);
		goto fail;
	}
	if ((rc = mbedtls_ssl_config_defaults(&s->conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
					      MBEDTLS_SSL_PRESET_DEFAULT))) {
		tls_err(rc, why, sizeof why);
		snprintf(err, errcap, "listener %s: TLS: %s", lc->name, why);
		goto fail;
	}
	mbedtls_ssl_conf_rng(&s->conf, mbedtls_ctr_drbg_random, &s->drbg);
	mbedtls_ssl_conf_min_version(&s->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_ciphersuites(&s->conf, suites);
	mbedtls_ssl_conf_renegotiation(&s->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
	mbedtls_ssl_conf_session_cache(&s->conf, &s->cache, mbedtls_ssl_cache_get, mbedtls_ssl_cache_set);
	if ((rc = mbedtls_ssl_conf_own_cert(&s->conf, &s->cert, &s->key))) {
		tls_err(rc, why, sizeof why);
		snprintf(err, errcap, "listener %s: tls_cert and tls_key do not go together: %s", lc->name, why);
		goto fail;
	}
	if (lc->tls_client_ca[0]) {
		if ((rc = mbedtls_x509_crt_parse_file(&s->ca, lc->tls_client_ca))) {
			tls_err(rc, why, sizeof why);
			snprintf(err, errcap, "listener %s: tls_client_ca %s: %s", lc->name,
				 lc->tls_client_ca, why);
			goto fail;
		}
		mbedtls_ssl_conf_ca_chain(&s->conf, &s->ca, NULL);
		mbedtls_ssl_conf_authmode(&s->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
		s->verify_client = 1;
	} else {
		mbedtls_ssl_conf_authmode(&s->conf, MBEDTLS_SSL_VERIFY_NONE);
	}
	for (int i = 0; i < lc->ntls_allowed; i++)
		snprintf(s->allowed[s->nallowed++], sizeof s->allowed[0], "%s", lc->tls_allowed[i]);
	*out = s;
	return 0;
fail:
	hq_tls_server_free(s);
	return -1;
}

void
hq_tls_server_free(hq_tls_server *s)
{
	if (s == NULL || --s->refs > 0)
		return;
	mbedtls_ssl_cache_free(&s->cache);
	mbedtls_ssl_config_free(&s->conf);
	mbedtls_x509_crt_free(&s->cert);
	mbedtls_x509_crt_free(&s->ca);
	mbedtls_pk_free(&s->key);
	mbedtls_ctr_drbg_free(&s->drbg);
	mbedtls_entropy_free(&s->entropy);
	free(s);
}

hq_tls_conn *
hq_tls_conn_new(hq_tls_server *s, int fd)
{
	hq_tls_conn *c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->srv = s;
	mbedtls_ssl_init(&c->ssl);
	if (mbedtls_ssl_setup(&c->ssl, &s->conf) != 0) {
		mbedtls_ssl_free(&c->ssl);
		free(c);
		return NULL;
	}
	s->refs++;	/* the connection holds its config until it closes, across reloads */
	c->net.fd = fd; /* non-blocking already: mbedtls_net_* answer WANT_READ/WRITE */
	mbedtls_ssl_set_bio(&c->ssl, &c->net, mbedtls_net_send, mbedtls_net_recv, NULL);
	return c;
}

void
hq_tls_conn_free(hq_tls_conn *c)
{
	if (c == NULL)
		return;
	mbedtls_ssl_close_notify(&c->ssl);
	mbedtls_ssl_free(&c->ssl);
	hq_tls_server_free(c->srv); /* its reference: the last one frees a retired config */
	free(c);
}

static int
code(int rc)
{
	if (rc == MBEDTLS_ERR_SSL_WANT_READ)
		return HQ_TLS_WANT_READ;
	if (rc == MBEDTLS_ERR_SSL_WANT_WRITE)
		return HQ_TLS_WANT_WRITE;
	/* CONN_EOF: the peer closed without close_notify (Python's SSLSocket
	 * does): a half-close, as with TCP -- what is owed is still written. */
	if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || rc == MBEDTLS_ERR_SSL_CONN_EOF || rc == 0)
		return HQ_TLS_EOF;
	return HQ_TLS_ERROR;
}

/* The CN of a subject DN as mbedTLS prints it ("C=US, O=Lab, CN=lis01"). */
static const char *
cn_of(const char *dn, char *buf, size_t cap)
{
	const char *p = strstr(dn, "CN=");
	while (p && p != dn && p[-1] != ' ' && p[-1] != ',')
		p = strstr(p + 1, "CN=");
	buf[0] = 0;
	if (p) {
		p += 3;
		size_t n = strcspn(p, ",");
		if (n >= cap)
			n = cap - 1;
		memcpy(buf, p, n);
		buf[n] = 0;
	}
	return buf;
}

int
hq_tls_handshake(hq_tls_conn *c, char *why, size_t cap)
{
	int rc = mbedtls_ssl_handshake(&c->ssl);
	if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
		return code(rc);
	if (rc != 0) {
		uint32_t flags = mbedtls_ssl_get_verify_result(&c->ssl);
		if (flags != 0 && flags != (uint32_t)-1 && c->srv->verify_client) {
			char info[256];
			mbedtls_x509_crt_verify_info(info, sizeof info, "", flags);
			info[strcspn(info, "\n")] = 0;
			snprintf(why, cap, "client certificate refused: %s", info);
		} else {
			tls_err(rc, why, cap);
		}
		return HQ_TLS_ERROR;
	}
	if (c->srv->verify_client && c->srv->nallowed > 0) {
		const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&c->ssl);
		char dn[512], cn[256];
		if (peer == NULL || mbedtls_x509_dn_gets(dn, sizeof dn, &peer->subject) < 0) {
			snprintf(why, cap, "no client certificate subject");
			return HQ_TLS_ERROR;
		}
		cn_of(dn, cn, sizeof cn);
		for (int i = 0; i < c->srv->nallowed; i++)
			if (strcmp(c->srv->allowed[i], dn) == 0 || strcmp(c->srv->allowed[i], cn) == 0)
				return HQ_TLS_OK;
		snprintf(why, cap, "client certificate subject \"%s\" is not in tls_allowed_subjects", dn);
		return HQ_TLS_ERROR;
	}
	return HQ_TLS_OK;
}

ssize_t
hq_tls_read(hq_tls_conn *c, void *buf, size_t len)
{
	int rc = mbedtls_ssl_read(&c->ssl, buf, len);
	return rc > 0 ? rc : code(rc);
}

ssize_t
hq_tls_write(hq_tls_conn *c, const void *buf, size_t len)
{
	int rc;
	if (c->pending) {
		if (len < c->pending)
			return HQ_TLS_ERROR; /* the caller dropped bytes mbedTLS holds */
		len = c->pending;
		if (c->ssl.out_left == 0) {
			/* A read that had to send a record flushed ours on the way. */
			c->pending = 0;
			return (ssize_t)len;
		}
	} else if (c->ssl.out_left > 0) {
		/* A record of mbedTLS's own (an alert a read queued) waits: flush it
		 * first, else mbedtls_ssl_write would flush it and report our bytes
		 * as written. */
		rc = mbedtls_ssl_flush_output(&c->ssl);
		if (rc != 0)
			return code(rc);
	}
	rc = mbedtls_ssl_write(&c->ssl, buf, len);
	if (rc == MBEDTLS_ERR_SSL_WANT_WRITE || rc == MBEDTLS_ERR_SSL_WANT_READ) {
		c->pending = len;
		return code(rc);
	}
	c->pending = 0;
	return rc > 0 ? rc : rc == 0 ? HQ_TLS_ERROR : code(rc);
}

void
hq_tls_describe(hq_tls_conn *c, char *buf, size_t cap)
{
	const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&c->ssl);
	char dn[512] = "";
	if (peer)
		mbedtls_x509_dn_gets(dn, sizeof dn, &peer->subject);
	snprintf(buf, cap, "%s %s%s%s%s", mbedtls_ssl_get_version(&c->ssl),
		 mbedtls_ssl_get_ciphersuite(&c->ssl), dn[0] ? ", client \"" : "", dn, dn[0] ? "\"" : "");
}

void
hq_tls_subject(hq_tls_conn *c, char *buf, size_t cap)
{
	const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&c->ssl);
	buf[0] = 0;
	if (peer && mbedtls_x509_dn_gets(buf, cap, &peer->subject) < 0)
		buf[0] = 0;
}
