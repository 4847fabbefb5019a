/*
 * tls.h - MLLP inside TLS, on mbedTLS (Debian's libmbedtls 2.28), for the
 * epoll loop: every call is non-blocking and says whether it waits for
 * the socket to become readable or writable.
 *
 * Policy: TLS 1.2 (mbedTLS 2.28 has no TLS 1.3 server; 3.x would add it),
 * only ECDHE key exchange with AES-GCM or ChaCha20-Poly1305, a session
 * cache for resumption, and -- with a client CA -- client certificates
 * required and verified, optionally narrowed to allowed subjects (IHE
 * ATNA's mutual authentication).
 */
#ifndef HQ_TLS_H
#define HQ_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "core/config.h"

typedef struct hq_tls_server hq_tls_server;
typedef struct hq_tls_conn hq_tls_conn;

/*
 * Reads the listener's certificate, key and client CA.  Returns 0, or -1
 * with err naming the listener and the file.
 */
int hq_tls_server_new(const hq_listener_conf *lc, hq_tls_server **out, char *err, size_t errcap);

/*
 * Releases the caller's reference to s (hq_tls_server_new gives one; each
 * connection made from it holds one until hq_tls_conn_free): the last one
 * frees it, so a reload's retired config lives exactly as long as the
 * connections that use it.  Single-threaded (the server loop's thread).
 */
void hq_tls_server_free(hq_tls_server *s);

/* A TLS session on fd (accepted, non-blocking); NULL when out of memory. */
hq_tls_conn *hq_tls_conn_new(hq_tls_server *s, int fd);

/* Sends close_notify (best effort) and frees c; the fd stays open. */
void hq_tls_conn_free(hq_tls_conn *c);

/* What an operation waits for, or how it ended. */
enum {
	HQ_TLS_OK = 0,
	HQ_TLS_WANT_READ = -1,
	HQ_TLS_WANT_WRITE = -2,
	HQ_TLS_EOF = -3,
	HQ_TLS_ERROR = -4
};

/*
 * Moves the handshake on.  Returns HQ_TLS_OK when it is done (and the
 * client certificate, if required, is verified and allowed), a WANT code,
 * or HQ_TLS_ERROR with why (no secrets, no message data in it).
 */
int hq_tls_handshake(hq_tls_conn *c, char *why, size_t cap);

/* Reads decrypted bytes: > 0, or a code (WANT_*, EOF, ERROR). */
ssize_t hq_tls_read(hq_tls_conn *c, void *buf, size_t len);

/*
 * Writes: bytes taken (> 0), or a code.  After a WANT code call again with
 * the same data, at least as long as before (more may follow it: only the
 * length first tried is taken, so bytes appended meanwhile wait for the
 * next call); a shorter retry is HQ_TLS_ERROR.
 */
ssize_t hq_tls_write(hq_tls_conn *c, const void *buf, size_t len);

/* "TLSv1.2 TLS-ECDHE-RSA-WITH-AES-256-GCM-SHA384", and the client's subject or "". */
void hq_tls_describe(hq_tls_conn *c, char *buf, size_t cap);

/* The client's certificate subject as mbedTLS prints it, or "" without one. */
void hq_tls_subject(hq_tls_conn *c, char *buf, size_t cap);

#endif
