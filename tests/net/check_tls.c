/*
 * check_tls.c - unit tests for net/tls.c: the non-blocking TLS layer under
 * the MLLP server, driven over a socketpair with small socket buffers so
 * that writes block (WANT_WRITE) as they do with a slow reader.
 *
 * Issue 11, point 2: after WANT_WRITE mbedTLS must be called again with
 * the same length; the server appends ACKs meanwhile, and a longer retry
 * used to be reported as sent in full while only the first record went
 * out; a record of the server's that mbedTLS flushed during a read must
 * not be sent again by the retry.  A peer that closes without close_notify
 * is a half-close (this one already held on main: a regression guard).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/tls.h"
#include "tests/check_util.h"

static char g_dir[] = "/tmp/hq-check-tls-XXXXXX";
static hq_tls_server *g_srv;

/* A self-signed EC certificate made with openssl, and the server config. */
static void
setup_server(void)
{
	char cmd[1024];
	hq_listener_conf lc;
	char err[512];

	ck_assert_ptr_nonnull(mkdtemp(g_dir));
	snprintf(cmd, sizeof cmd,
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
		 "-subj /CN=hl7q-check -keyout %s/k.pem -out %s/c.pem >/dev/null 2>&1",
		 g_dir, g_dir);
	ck_assert_int_eq(system(cmd), 0);
	memset(&lc, 0, sizeof lc);
	snprintf(lc.name, sizeof lc.name, "t");
	snprintf(lc.tls_cert, sizeof lc.tls_cert, "%s/c.pem", g_dir);
	snprintf(lc.tls_key, sizeof lc.tls_key, "%s/k.pem", g_dir);
	ck_assert_msg(hq_tls_server_new(&lc, &g_srv, err, sizeof err) == 0, "%s", err);
}

static void
teardown_server(void)
{
	char cmd[256];
	hq_tls_server_free(g_srv);
	snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* The client side: plain mbedTLS, no certificate check (not under test). */
typedef struct client {
	mbedtls_ssl_config conf;
	mbedtls_ssl_context ssl;
	mbedtls_net_context net;
	mbedtls_entropy_context entropy;
	mbedtls_ctr_drbg_context drbg;
} client;

static void client_init_opts(client *c, int fd, int renego);

static void
client_init(client *c, int fd)
{
	client_init_opts(c, fd, 0);
}

static void
client_init_opts(client *c, int fd, int renego)
{
	mbedtls_ssl_config_init(&c->conf);
	mbedtls_ssl_init(&c->ssl);
	mbedtls_entropy_init(&c->entropy);
	mbedtls_ctr_drbg_init(&c->drbg);
	ck_assert_int_eq(mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy,
					       (const unsigned char *)"t", 1),
			 0);
	ck_assert_int_eq(mbedtls_ssl_config_defaults(&c->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
						     MBEDTLS_SSL_PRESET_DEFAULT),
			 0);
	mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_NONE);
	mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, &c->drbg);
	if (renego) {
		mbedtls_ssl_conf_renegotiation(&c->conf, MBEDTLS_SSL_RENEGOTIATION_ENABLED);
		mbedtls_ssl_conf_renegotiation_enforced(&c->conf, MBEDTLS_SSL_RENEGOTIATION_NOT_ENFORCED);
	}
	ck_assert_int_eq(mbedtls_ssl_setup(&c->ssl, &c->conf), 0);
	c->net.fd = fd;
	mbedtls_ssl_set_bio(&c->ssl, &c->net, mbedtls_net_send, mbedtls_net_recv, NULL);
}

static void
client_free(client *c)
{
	mbedtls_ssl_free(&c->ssl);
	mbedtls_ssl_config_free(&c->conf);
	mbedtls_ctr_drbg_free(&c->drbg);
	mbedtls_entropy_free(&c->entropy);
}

/* A connected pair with small buffers: fds[0] the server's, fds[1] the client's. */
static void
small_pair(int fds[2])
{
	int small = 4096;
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	for (int i = 0; i < 2; i++) {
		setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
		setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
		fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
	}
}

static void
handshake(hq_tls_conn *s, client *c)
{
	char why[256];
	int sdone = 0, cdone = 0;
	for (int i = 0; i < 1000 && !(sdone && cdone); i++) {
		if (!sdone) {
			int rc = hq_tls_handshake(s, why, sizeof why);
			ck_assert_msg(rc == HQ_TLS_OK || rc == HQ_TLS_WANT_READ || rc == HQ_TLS_WANT_WRITE,
				      "server handshake: %s", why);
			sdone = rc == HQ_TLS_OK;
		}
		if (!cdone) {
			int rc = mbedtls_ssl_handshake(&c->ssl);
			ck_assert(rc == 0 || rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE);
			cdone = rc == 0;
		}
	}
	ck_assert(sdone && cdone);
}

/* Reads what the client can now; returns the bytes added to got. */
static size_t
client_read(client *c, unsigned char *got, size_t have, size_t cap, size_t most)
{
	size_t n0 = have;
	while (have < cap && have - n0 < most) {
		size_t want = cap - have < most - (have - n0) ? cap - have : most - (have - n0);
		int rc = mbedtls_ssl_read(&c->ssl, got + have, want);
		if (rc <= 0)
			break;
		have += (size_t)rc;
	}
	return have - n0;
}

static unsigned char
pattern(size_t i)
{
	return (unsigned char)(i * 7 + i / 251);
}

/*
 * The server writes a stream that grows while it writes (ACKs appended to
 * the connection's buffer after a WANT_WRITE), to a client that reads
 * slowly: every byte arrives once, in order.
 */
START_TEST(test_issue11_point2_write_retry_keeps_length)
{
	enum { TOTAL = 200000 };
	int fds[2];
	client c;
	small_pair(fds);
	hq_tls_conn *s = hq_tls_conn_new(g_srv, fds[0]);
	ck_assert_ptr_nonnull(s);
	client_init(&c, fds[1]);
	handshake(s, &c);

	unsigned char *data = malloc(TOTAL), *got = malloc(TOTAL);
	for (size_t i = 0; i < TOTAL; i++)
		data[i] = pattern(i);
	size_t off = 0, avail = 0, have = 0;
	int wants = 0, idle = 0;
	for (long round = 0; have < TOTAL && idle < 1000; round++) {
		size_t before = have + off;
		if (avail < TOTAL)
			avail += TOTAL - avail < 300 ? TOTAL - avail : 300; /* an ACK came in */
		if (off < avail) {
			ssize_t n = hq_tls_write(s, data + off, avail - off);
			if (n > 0) {
				ck_assert_uint_le((size_t)n, avail - off);
				off += (size_t)n;
			} else {
				ck_assert_msg(n == HQ_TLS_WANT_WRITE || n == HQ_TLS_WANT_READ, "write: %zd", n);
				wants++;
			}
		}
		/* a slow reader: a little now and then, all once the server is done */
		if (round % 5 == 0 || off == TOTAL)
			have += client_read(&c, got, have, TOTAL, off == TOTAL ? TOTAL : 700);
		idle = have + off == before ? idle + 1 : 0;
	}
	ck_assert_int_gt(wants, 0); /* the socket did fill up */
	ck_assert_uint_eq(off, TOTAL);
	ck_assert_msg(have == TOTAL, "the client got %zu of %d bytes the server counted as sent", have, TOTAL);
	for (size_t i = 0; i < TOTAL; i++)
		ck_assert_msg(got[i] == data[i], "byte %zu differs", i);
	free(data);
	free(got);
	hq_tls_conn_free(s);
	client_free(&c);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

/*
 * The server's blocked record goes out while mbedTLS answers something the
 * client sent (here a renegotiation request, refused): the retry must not
 * send the same bytes a second time, nor lose the ones appended since.
 */
START_TEST(test_issue11_point2_record_flushed_by_a_read_is_not_sent_twice)
{
	enum { TOTAL = 100000 };
	int fds[2];
	client c;
	char sink[4096];
	small_pair(fds);
	hq_tls_conn *s = hq_tls_conn_new(g_srv, fds[0]);
	ck_assert_ptr_nonnull(s);
	client_init_opts(&c, fds[1], 1);
	handshake(s, &c);

	unsigned char *data = malloc(TOTAL), *got = malloc(TOTAL);
	for (size_t i = 0; i < TOTAL; i++)
		data[i] = pattern(i);
	size_t off = 0, avail = 1000, have = 0;
	ssize_t n;
	/* Write until the socket is full: a record stays with mbedTLS. */
	while ((n = hq_tls_write(s, data + off, avail - off)) > 0) {
		off += (size_t)n;
		avail += 1000;
	}
	ck_assert_int_eq(n, HQ_TLS_WANT_WRITE);
	/* The client drains the socket and asks to renegotiate; the server's
	 * read flushes the blocked record on its way to refusing. */
	have += client_read(&c, got, have, TOTAL, TOTAL);
	int rc = mbedtls_ssl_renegotiate(&c.ssl);
	ck_assert(rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE);
	for (int i = 0; i < 5; i++)
		(void)hq_tls_read(s, sink, sizeof sink);
	/* More ACKs came in meanwhile; the server goes on writing. */
	for (int idle = 0; have < TOTAL && idle < 1000;) {
		size_t before = have + off;
		if (avail < TOTAL)
			avail += TOTAL - avail < 1000 ? TOTAL - avail : 1000;
		if (off < avail && (n = hq_tls_write(s, data + off, avail - off)) > 0)
			off += (size_t)n;
		have += client_read(&c, got, have, TOTAL, TOTAL);
		idle = have + off == before ? idle + 1 : 0;
	}
	ck_assert_uint_eq(off, TOTAL);
	ck_assert_msg(have == TOTAL, "the client got %zu of %d bytes", have, TOTAL);
	for (size_t i = 0; i < TOTAL; i++)
		ck_assert_msg(got[i] == data[i], "byte %zu differs", i);
	free(data);
	free(got);
	hq_tls_conn_free(s);
	client_free(&c);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

/*
 * A client that shuts its side without close_notify (what Python's
 * SSLSocket does): the server reads EOF, not an error, and what it still
 * writes arrives.
 */
START_TEST(test_issue11_point2_eof_without_close_notify_is_half_close)
{
	int fds[2];
	client c;
	char buf[64];
	small_pair(fds);
	hq_tls_conn *s = hq_tls_conn_new(g_srv, fds[0]);
	ck_assert_ptr_nonnull(s);
	client_init(&c, fds[1]);
	handshake(s, &c);

	ck_assert_int_eq(mbedtls_ssl_write(&c.ssl, (const unsigned char *)"frame", 5), 5);
	ck_assert_int_eq(shutdown(fds[1], SHUT_WR), 0);
	ck_assert_int_eq(hq_tls_read(s, buf, sizeof buf), 5);
	ck_assert_int_eq(hq_tls_read(s, buf, sizeof buf), HQ_TLS_EOF);
	ck_assert_int_eq(hq_tls_write(s, "ack", 3), 3);
	unsigned char in[8];
	ck_assert_int_eq(mbedtls_ssl_read(&c.ssl, in, sizeof in), 3);
	ck_assert(memcmp(in, "ack", 3) == 0);
	hq_tls_conn_free(s);
	client_free(&c);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("tls");
	TCase *tc = tcase_create("nonblocking");
	tcase_add_unchecked_fixture(tc, setup_server, teardown_server);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_issue11_point2_write_retry_keeps_length);
	tcase_add_test(tc, test_issue11_point2_record_flushed_by_a_read_is_not_sent_twice);
	tcase_add_test(tc, test_issue11_point2_eof_without_close_notify_is_half_close);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
