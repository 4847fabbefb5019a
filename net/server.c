/*
 * server.c - epoll MLLP acceptor (see server.h).
 *
 * A connection is one switch on its state per I/O step (beanstalkd's
 * conn_process_io): reading frames, draining ACKs, closing.  The frame
 * parsing itself lives in mllp.c.  Frames complete in one loop turn are
 * collected across all connections and committed together before any ACK
 * is written (Redis' beforeSleep flushing the AOF before replies).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "mllp.h"
#include "server.h"
#include "tls.h"

#define READ_CHUNK 65536
#define OUT_HIGH_WATER (1u << 20) /* stop reading from a peer that does not read its ACKs */
#define OUT_KEEP_CAP (64u << 10)  /* a larger ACK buffer is freed once it is written out */
#define TICK_MS 500

enum { KIND_LISTENER = 1, KIND_CONN, KIND_WAKE };

typedef enum conn_state {
	CONN_OPEN,    /* reading frames, writing ACKs */
	CONN_DRAIN,   /* peer sent EOF: write what is owed, then close */
	CONN_CLOSED   /* to be reaped at the end of the turn */
} conn_state;

typedef struct hq_conn {
	int kind; /* KIND_CONN; first, shared with listener_t */
	int fd;
	struct listener_t *l;
	conn_state state;
	char peer[64];
	struct sockaddr_storage addr; /* the peer's, for max_connections_per_peer */
	hq_mllp mllp;
	char *out;
	size_t out_len, out_off, out_cap;
	uint64_t last_io_ms, frame_start_ms;
	uint32_t events;       /* what epoll watches now */
	int dirty;	       /* has output to try this turn */
	struct hq_conn *prev, *next;
	struct hq_server *srv;
	const char *close_reason;
	hq_tls_conn *tls; /* NULL: plain TCP */
	int handshaking;  /* TLS handshake not done yet */
	char why[256];	  /* a TLS failure, for the close line */
	char *subject;	  /* the TLS client's certificate subject (duplicate keys), or NULL */
} hq_conn;

typedef struct listener_t {
	int kind; /* KIND_LISTENER */
	int fd;	  /* -1 once closed (removed by a reload, or stopping) */
	const hq_listener_conf *lc; /* the config it runs with (a reload swaps it) */
	hq_listener_metrics *m;
	hq_tls_server *tls; /* certificates and keys read at bind (and at each reload) */
	int open; /* connections now */
	int port;
	int removed; /* gone from the config: freed when its last connection closes */
} listener_t;

struct hq_server {
	const hq_config *cfg;
	int epfd, wakefd;
	int wake_kind; /* KIND_WAKE, epoll data points here */
	listener_t **listeners; /* every listener with a socket or connections */
	int nlisteners, cap_listeners;
	hq_conn *conns; /* all open connections */
	hq_batch_fn fn;
	void *arg;
	hq_turn_fn turn_fn;
	void *turn_arg;
	hq_frame **pending; /* frames of this turn */
	hq_conn **pending_conn;
	size_t npending, cap_pending;
	volatile int stopping, aborting;
	hq_server_stats stats;
	hq_ratelimit rl_conn; /* connection events: a scan or a reconnect storm stays readable */
	hq_tls_server **old_tls; /* replaced by reloads; connections may still use them */
	int nold_tls;
};

/* At most CONN_LOG_BURST connection-event lines per CONN_LOG_MS. */
#define CONN_LOG_BURST 100
#define CONN_LOG_MS 10000
#define conn_log(s, prio, ...) \
	hq_log_limited(&(s)->rl_conn, CONN_LOG_BURST, CONN_LOG_MS, "connection events", prio, __VA_ARGS__)



static void
peer_name(const struct sockaddr_storage *ss, char *buf, size_t cap)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		port = ntohs(in->sin_port);
		snprintf(buf, cap, "%s:%d", host, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
		port = ntohs(in6->sin6_port);
		snprintf(buf, cap, "[%s]:%d", host, port);
	} else {
		snprintf(buf, cap, "unknown");
	}
}

static int
watch(hq_server *s, int fd, void *ptr, uint32_t events, int op)
{
	struct epoll_event ev = {.events = events, .data.ptr = ptr};
	return epoll_ctl(s->epfd, op, fd, &ev);
}

/* Binds a listener for lc.  Returns it, or NULL with err set. */
static listener_t *
listener_bind(hq_server *s, const hq_listener_conf *lc, char *err, size_t errcap, int *rc)
{
	listener_t *l = calloc(1, sizeof *l);
	int one = 1;
	if (l == NULL) {
		*rc = ENOMEM;
		snprintf(err, errcap, "listener %s: out of memory", lc->name);
		return NULL;
	}
	l->kind = KIND_LISTENER;
	l->lc = lc;
	l->fd = socket(lc->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0) {
		*rc = errno;
		snprintf(err, errcap, "listener %s: socket: %s", lc->name, strerror(*rc));
		free(l);
		return NULL;
	}
	setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (lc->addr.ss_family == AF_INET6)
		setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(l->fd, (const struct sockaddr *)&lc->addr, lc->addrlen) != 0 ||
	    listen(l->fd, 1024) != 0) {
		*rc = errno;
		int port = ntohs(lc->addr.ss_family == AF_INET
					 ? ((const struct sockaddr_in *)&lc->addr)->sin_port
					 : ((const struct sockaddr_in6 *)&lc->addr)->sin6_port);
		snprintf(err, errcap, "listener %s: cannot listen on %s: %s%s", lc->name, lc->listen,
			 strerror(*rc),
			 *rc == EACCES && port < 1024
				 ? " (a port under 1024 needs CAP_NET_BIND_SERVICE: see deploy/systemd/lowport.conf)"
				 : "");
		close(l->fd);
		free(l);
		return NULL;
	}
	struct sockaddr_storage bound;
	socklen_t blen = sizeof bound;
	getsockname(l->fd, (struct sockaddr *)&bound, &blen);
	l->port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
						   : ((struct sockaddr_in6 *)&bound)->sin6_port);
	if (lc->tls_cert[0]) {
		if (hq_tls_server_new(lc, &l->tls, err, errcap) != 0) {
			*rc = EINVAL;
			close(l->fd);
			free(l);
			return NULL;
		}
	}
	l->m = hq_metrics_listener(lc->name);
	return l;
}

/* Drops the listener's reference to a TLS config a reload replaced: open
 * connections hold theirs, and the last to close frees it. */
static void
retire_tls(hq_server *s, hq_tls_server *t)
{
	(void)s;
	hq_tls_server_free(t);
}

/* Starts accepting on l and adds it to the server's list. */
static int
listener_add(hq_server *s, listener_t *l)
{
	if (s->nlisteners == s->cap_listeners) {
		int cap = s->cap_listeners ? s->cap_listeners * 2 : 8;
		listener_t **v = realloc(s->listeners, (size_t)cap * sizeof *v);
		if (v == NULL)
			return ENOMEM;
		s->listeners = v;
		s->cap_listeners = cap;
	}
	s->listeners[s->nlisteners++] = l;
	watch(s, l->fd, l, EPOLLIN, EPOLL_CTL_ADD);
	__atomic_store_n(&l->m->up, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&l->m->configured, 1, __ATOMIC_RELAXED);
	return 0;
}

/* Stops accepting on l (its connections go on). */
static void
listener_close(hq_server *s, listener_t *l)
{
	if (l->fd < 0)
		return;
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, l->fd, NULL);
	close(l->fd);
	l->fd = -1;
	__atomic_store_n(&l->m->up, 0, __ATOMIC_RELAXED);
}

/* Frees removed listeners whose last connection has closed. */
static void
listeners_reap(hq_server *s)
{
	int k = 0;
	for (int i = 0; i < s->nlisteners; i++) {
		listener_t *l = s->listeners[i];
		if (l->removed && l->open == 0) {
			listener_close(s, l);
			hq_tls_server_free(l->tls);
			free(l);
		} else {
			s->listeners[k++] = l;
		}
	}
	s->nlisteners = k;
}

/* The live listener named name, or NULL. */
static listener_t *
listener_find(const hq_server *s, const char *name)
{
	for (int i = 0; i < s->nlisteners; i++)
		if (!s->listeners[i]->removed && strcmp(s->listeners[i]->lc->name, name) == 0)
			return s->listeners[i];
	return NULL;
}

int
hq_server_new(const hq_config *cfg, hq_batch_fn fn, void *arg, hq_server **out,
	      char *err, size_t errcap)
{
	hq_server *s = calloc(1, sizeof *s);
	int rc = 0;

	if (s == NULL)
		return ENOMEM;
	s->cfg = cfg;
	s->fn = fn;
	s->arg = arg;
	s->wake_kind = KIND_WAKE;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->epfd < 0 || s->wakefd < 0) {
		rc = errno ? errno : ENOMEM;
		snprintf(err, errcap, "cannot set up the event loop: %s", strerror(rc));
		goto fail;
	}
	watch(s, s->wakefd, &s->wake_kind, EPOLLIN, EPOLL_CTL_ADD);
	for (int i = 0; i < cfg->nlisteners; i++) {
		listener_t *l = listener_bind(s, &cfg->listeners[i], err, errcap, &rc);
		if (l == NULL)
			goto fail;
		if ((rc = listener_add(s, l)) != 0) {
			close(l->fd);
			free(l);
			snprintf(err, errcap, "out of memory");
			goto fail;
		}
	}
	*out = s;
	return 0;
fail:
	hq_server_free(s);
	return rc ? rc : EINVAL;
}

/* Whether two listener configs bind the same address. */
static int
same_address(const hq_listener_conf *a, const hq_listener_conf *b)
{
	return a->addrlen == b->addrlen && memcmp(&a->addr, &b->addr, a->addrlen) == 0;
}

int
hq_server_reload(hq_server *s, const hq_config *cfg, char *err, size_t errcap)
{
	listener_t *fresh[HQ_MAX_LIST * 4];
	int rc = 0;

	if (cfg->nlisteners > (int)(sizeof fresh / sizeof fresh[0])) {
		snprintf(err, errcap, "too many listeners");
		return EINVAL;
	}
	hq_tls_server *tls[HQ_MAX_LIST * 4] = {0};
	/* First bind what is new (or moved), and read the TLS material of the
	 * kept ones again, so that a failure changes nothing. */
	for (int i = 0; i < cfg->nlisteners; i++) {
		const hq_listener_conf *lc = &cfg->listeners[i];
		listener_t *old = listener_find(s, lc->name);
		fresh[i] = NULL;
		if (old && same_address(old->lc, lc) && old->fd >= 0) {
			if (lc->tls_cert[0] && hq_tls_server_new(lc, &tls[i], err, errcap) != 0)
				rc = EINVAL;
		} else {
			fresh[i] = listener_bind(s, lc, err, errcap, &rc);
		}
		if (rc == 0)
			continue;
		for (int k = 0; k <= i; k++) {
			hq_tls_server_free(tls[k]);
			if (fresh[k]) {
				hq_tls_server_free(fresh[k]->tls);
				close(fresh[k]->fd);
				free(fresh[k]);
			}
		}
		return rc;
	}
	/* Then swap: kept listeners take their new config, removed ones stop
	 * accepting (their connections go on), new ones start. */
	for (int i = 0; i < s->nlisteners; i++) {
		listener_t *l = s->listeners[i];
		if (l->removed)
			continue;
		int keep = 0;
		for (int k = 0; k < cfg->nlisteners && !keep; k++)
			if (fresh[k] == NULL && strcmp(cfg->listeners[k].name, l->lc->name) == 0) {
				l->lc = &cfg->listeners[k];
				retire_tls(s, l->tls);
				l->tls = tls[k];
				keep = 1;
			}
		if (!keep) {
			hq_log(HQ_LOG_NOTICE, "listener %s: no longer listening on %s (%d connection%s stay open)",
			       l->lc->name, l->lc->listen, l->open, l->open == 1 ? "" : "s");
			listener_close(s, l);
			l->removed = 1;
			if (listener_find(s, l->lc->name) == NULL) /* not moved: gone */
				__atomic_store_n(&l->m->configured, 0, __ATOMIC_RELAXED);
		}
	}
	for (int i = 0; i < cfg->nlisteners; i++) {
		if (fresh[i] == NULL)
			continue;
		if (listener_add(s, fresh[i]) != 0) {
			close(fresh[i]->fd);
			free(fresh[i]);
			continue;
		}
		hq_log(HQ_LOG_NOTICE, "listener %s: listening on %s (port %d)", fresh[i]->lc->name,
		       fresh[i]->lc->listen, fresh[i]->port);
	}
	s->cfg = cfg;
	listeners_reap(s);
	return 0;
}

int
hq_server_uses(const hq_server *s, const hq_config *cfg)
{
	if (s == NULL)
		return 0;
	if (s->cfg == cfg)
		return 1;
	const hq_listener_conf *lo = cfg->listeners, *hi = cfg->listeners + cfg->nlisteners;
	for (int i = 0; i < s->nlisteners; i++)
		if (s->listeners[i]->lc >= lo && s->listeners[i]->lc < hi)
			return 1;
	return 0;
}

int
hq_server_port(const hq_server *s, int i)
{
	const listener_t *l = listener_find(s, s->cfg->listeners[i].name);
	return l ? l->port : 0;
}

void
hq_server_stop(hq_server *s)
{
	uint64_t one = 1;
	s->stopping = 1;
	if (write(s->wakefd, &one, sizeof one) < 0) {
		/* already signalled */
	}
}

void
hq_server_abort(hq_server *s)
{
	s->aborting = 1;
	hq_server_stop(s);
}

void
hq_server_stats_get(const hq_server *s, hq_server_stats *st)
{
	*st = s->stats;
}

static void
conn_close(hq_conn *c, const char *reason)
{
	if (c->state == CONN_CLOSED)
		return;
	c->state = CONN_CLOSED;
	c->close_reason = reason;
}

/* Whether two peer addresses are the same host (the port aside). */
static int
same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			      &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
	return 0;
}

/* Open connections of listener l from the host of ss. */
static int
peer_connections(const hq_server *s, const listener_t *l, const struct sockaddr_storage *ss)
{
	int n = 0;
	for (const hq_conn *c = s->conns; c; c = c->next)
		if (c->l == l && c->state != CONN_CLOSED && same_host(&c->addr, ss))
			n++;
	return n;
}

static void
accept_all(hq_server *s, listener_t *l)
{
	const hq_listener_conf *lc = l->lc;

	for (int n = 0; n < 256; n++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &len,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				hq_logerrno(HQ_LOG_WARNING, "listener %s: accept", lc->name);
			return;
		}
		char peer[64];
		peer_name(&ss, peer, sizeof peer);
		if (!hq_listener_allows(lc, &ss)) {
			hq_count(&l->m->refused_connections, 1);
			conn_log(s, HQ_LOG_WARNING, "listener %s: refused %s: not in the allow list", lc->name, peer);
			close(fd);
			continue;
		}
		if (l->open >= lc->max_connections || s->stopping) {
			s->stats.refused_limit++;
			hq_count(&l->m->refused_connections, 1);
			conn_log(s, HQ_LOG_WARNING, "listener %s: refused %s: max_connections (%d) reached",
			       lc->name, peer, lc->max_connections);
			close(fd);
			continue;
		}
		if (peer_connections(s, l, &ss) >= lc->max_connections_per_peer) {
			/* One host cannot take the whole listener from the others. */
			s->stats.refused_limit++;
			hq_count(&l->m->refused_connections, 1);
			conn_log(s, HQ_LOG_WARNING, "listener %s: refused %s: max_connections_per_peer (%d) reached",
				 lc->name, peer, lc->max_connections_per_peer);
			close(fd);
			continue;
		}
		hq_conn *c = calloc(1, sizeof *c);
		if (c == NULL) {
			hq_log(HQ_LOG_ERR, "listener %s: out of memory for %s", lc->name, peer);
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		c->kind = KIND_CONN;
		c->fd = fd;
		c->l = l;
		c->srv = s;
		c->state = CONN_OPEN;
		memcpy(c->peer, peer, sizeof c->peer);
		c->addr = ss;
		hq_mllp_init(&c->mllp, lc->max_message_size);
		c->last_io_ms = hq_now_ms();
		if (l->tls) {
			if ((c->tls = hq_tls_conn_new(l->tls, fd)) == NULL) {
				hq_log(HQ_LOG_ERR, "listener %s: out of memory for %s", lc->name, peer);
				close(fd);
				free(c);
				continue;
			}
			c->handshaking = 1;
			c->frame_start_ms = c->last_io_ms; /* frame_timeout bounds the handshake too */
		}
		c->events = EPOLLIN | EPOLLRDHUP;
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		l->open++;
		__atomic_fetch_add(&l->m->open, 1, __ATOMIC_RELAXED);
		s->stats.accepted++;
		s->stats.open++;
		watch(s, fd, c, c->events, EPOLL_CTL_ADD);
		conn_log(s, HQ_LOG_INFO, "listener %s: connection from %s", lc->name, peer);
	}
}

static int
add_pending(hq_server *s, hq_frame *f, hq_conn *c)
{
	if (s->npending == s->cap_pending) {
		size_t cap = s->cap_pending ? s->cap_pending * 2 : 256;
		hq_frame **p = realloc(s->pending, cap * sizeof *p);
		hq_conn **pc = realloc(s->pending_conn, cap * sizeof *pc);
		if (p)
			s->pending = p;
		if (pc)
			s->pending_conn = pc;
		if (p == NULL || pc == NULL)
			return -1;
		s->cap_pending = cap;
	}
	s->pending[s->npending] = f;
	s->pending_conn[s->npending] = c;
	s->npending++;
	return 0;
}

/* hq_mllp callback: queue the frame for this turn's group commit. */
static int
on_frame(void *arg, const char *payload, size_t len, size_t total, int oversize)
{
	hq_conn *c = arg;
	hq_server *s = c->srv;
	hq_frame *f = calloc(1, sizeof *f);
	char *data = malloc(len ? len : 1);

	if (f == NULL || data == NULL || add_pending(s, f, c) != 0) {
		free(f);
		free(data);
		hq_log(HQ_LOG_ERR, "%s: out of memory for a frame; closing", c->peer);
		conn_close(c, "out of memory");
		return 1;
	}
	memcpy(data, payload, len);
	f->lc = c->l->lc;
	f->m = c->l->m;
	f->peer = c->peer;
	f->tls_subject = c->subject;
	f->data = data;
	f->len = len;
	f->total = total;
	f->oversize = oversize;
	if (oversize)
		memcpy(f->sha256, c->mllp.sha256, sizeof f->sha256);
	f->received_us = hq_wall_us();
	s->stats.frames++;
	hq_count(&c->l->m->received, 1);
	hq_count(&c->l->m->bytes, total);
	c->frame_start_ms = 0;
	return 0;
}

static void
set_events(hq_conn *c, uint32_t events)
{
	if (c->events != events && c->state != CONN_CLOSED) {
		c->events = events;
		watch(c->srv, c->fd, c, events, EPOLL_CTL_MOD);
	}
}

/* Hands n bytes the peer sent to the deframer. */
static void
conn_feed(hq_conn *c, const char *buf, size_t n, uint64_t now)
{
	hq_server *s = c->srv;
	c->last_io_ms = now;
	s->stats.bytes_in += (uint64_t)n;
	uint64_t dropped = c->mllp.dropped;
	int was_in = hq_mllp_in_frame(&c->mllp);
	hq_mllp_feed(&c->mllp, buf, n, on_frame, c);
	s->stats.out_of_frame += c->mllp.dropped - dropped;
	if (hq_mllp_in_frame(&c->mllp) && (!was_in || c->frame_start_ms == 0))
		c->frame_start_ms = now;
}

/* The peer sent EOF: write what is owed, then close. */
static void
conn_eof(hq_conn *c)
{
	c->state = CONN_DRAIN;
	c->dirty = 1;
	set_events(c, c->out_len > c->out_off ? EPOLLOUT : 0);
}

static void
conn_read(hq_conn *c, uint64_t now)
{
	static char buf[READ_CHUNK];
	ssize_t n;

	if (c->tls == NULL) {
		n = read(c->fd, buf, sizeof buf);
		if (n > 0)
			conn_feed(c, buf, (size_t)n, now);
		else if (n == 0)
			conn_eof(c);
		else if (errno != EAGAIN && errno != EINTR)
			conn_close(c, strerror(errno));
		return;
	}
	/* mbedTLS hands out one record at a time and may hold more than the
	 * socket shows: read until it wants the socket again. */
	while (c->state == CONN_OPEN) {
		n = hq_tls_read(c->tls, buf, sizeof buf);
		if (n > 0)
			conn_feed(c, buf, (size_t)n, now);
		else if (n == HQ_TLS_EOF)
			conn_eof(c);
		else if (n == HQ_TLS_ERROR)
			conn_close(c, "TLS error");
		if (n <= 0)
			return;
	}
}

/* Writes what is owed; 0 when all is out, 1 when the socket is full, -1 on error. */
static int
conn_flush(hq_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n;
		if (c->tls) {
			/* After a WANT code, ACKs queued since make this longer:
			 * the TLS layer takes only the length it first tried. */
			n = hq_tls_write(c->tls, c->out + c->out_off, c->out_len - c->out_off);
			if (n == HQ_TLS_WANT_READ || n == HQ_TLS_WANT_WRITE)
				return 1;
			if (n < 0)
				return -1;
		} else {
			n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					return 1;
				return -1;
			}
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	if (c->out_cap > OUT_KEEP_CAP) { /* a burst of ACKs is over: give the memory back */
		free(c->out);
		c->out = NULL;
		c->out_cap = 0;
	}
	return 0;
}

static void
conn_queue_ack(hq_conn *c, const char *ack, size_t len)
{
	size_t need = c->out_len + len + 3;
	if (need > c->out_cap) {
		if (c->out_off > 0) {
			memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
			need = c->out_len + len + 3;
		}
		if (need > c->out_cap) {
			size_t cap = c->out_cap ? c->out_cap : 1024;
			while (cap < need)
				cap *= 2;
			char *p = realloc(c->out, cap);
			if (p == NULL) {
				conn_close(c, "out of memory for an ACK");
				return;
			}
			c->out = p;
			c->out_cap = cap;
		}
	}
	c->out[c->out_len++] = HQ_MLLP_SB;
	memcpy(c->out + c->out_len, ack, len);
	c->out_len += len;
	c->out[c->out_len++] = HQ_MLLP_EB;
	c->out[c->out_len++] = HQ_MLLP_CR;
	c->dirty = 1;
}

/* Moves a TLS handshake on; when done, logs the protocol and the client. */
static void
conn_handshake(hq_conn *c, uint64_t now)
{
	int rc = hq_tls_handshake(c->tls, c->why, sizeof c->why);
	c->last_io_ms = now;
	if (rc == HQ_TLS_WANT_READ || rc == HQ_TLS_WANT_WRITE) {
		set_events(c, rc == HQ_TLS_WANT_WRITE ? EPOLLOUT : EPOLLIN | EPOLLRDHUP);
		return;
	}
	if (rc != HQ_TLS_OK) {
		conn_log(c->srv, HQ_LOG_WARNING, "listener %s: %s: TLS handshake failed: %s", c->l->lc->name,
			 c->peer, c->why);
		conn_close(c, "TLS handshake failed");
		return;
	}
	char info[700];
	hq_tls_describe(c->tls, info, sizeof info);
	conn_log(c->srv, HQ_LOG_INFO, "listener %s: %s: TLS %s", c->l->lc->name, c->peer, info);
	char subject[512];
	hq_tls_subject(c->tls, subject, sizeof subject);
	if (subject[0])
		c->subject = strdup(subject); /* NULL on no memory: keyed as without a client certificate */
	c->handshaking = 0;
	c->frame_start_ms = 0;
	set_events(c, EPOLLIN | EPOLLRDHUP);
}

/* One I/O step for a connection, by state. */
static void
conn_io(hq_conn *c, uint32_t ev, uint64_t now)
{
	switch (c->state) {
	case CONN_OPEN:
		if (c->handshaking) {
			conn_handshake(c, now);
			if (c->handshaking || c->state != CONN_OPEN)
				break;
			ev |= EPOLLIN; /* the first frame may have come with the handshake */
		}
		if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			conn_read(c, now);
		if (c->state == CONN_OPEN && (ev & EPOLLOUT))
			c->dirty = 1;
		break;
	case CONN_DRAIN:
		if (ev & (EPOLLERR | EPOLLHUP))
			conn_close(c, "peer closed");
		else
			c->dirty = 1;
		break;
	case CONN_CLOSED:
		break;
	}
}

/* After the commit: write the ACKs, adjust what epoll watches. */
static void
conn_after_turn(hq_conn *c)
{
	if (c->state == CONN_CLOSED || !c->dirty || c->handshaking)
		return;
	c->dirty = 0;
	int r = conn_flush(c);
	if (r < 0) {
		conn_close(c, "write failed");
		return;
	}
	size_t owed = c->out_len - c->out_off;
	if (c->state == CONN_DRAIN) {
		if (owed == 0)
			conn_close(c, "peer closed");
		else
			set_events(c, EPOLLOUT);
		return;
	}
	uint32_t ev = owed ? EPOLLOUT : 0;
	if (owed < OUT_HIGH_WATER && !c->srv->stopping)
		ev |= EPOLLIN | EPOLLRDHUP;
	set_events(c, ev);
}

static void
conn_free(hq_server *s, hq_conn *c)
{
	const hq_listener_conf *lc = c->l->lc;
	if (c->mllp.dropped)
		conn_log(s, HQ_LOG_NOTICE, "listener %s: %s: %llu bytes outside MLLP frames dropped",
		       lc->name, c->peer, (unsigned long long)c->mllp.dropped);
	conn_log(s, HQ_LOG_INFO, "listener %s: %s closed (%s)", lc->name, c->peer,
	       c->close_reason ? c->close_reason : "closed");
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	hq_tls_conn_free(c->tls);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->l->open--;
	__atomic_fetch_sub(&c->l->m->open, 1, __ATOMIC_RELAXED);
	s->stats.open--;
	hq_mllp_free(&c->mllp);
	free(c->out);
	free(c->subject);
	free(c);
}

static void
check_timeouts(hq_server *s)
{
	uint64_t now = hq_now_ms(); /* not the turn's start: accepts came later */
	hq_log_flush(&s->rl_conn, CONN_LOG_MS, "connection events");
	for (hq_conn *c = s->conns; c; c = c->next) {
		const hq_listener_conf *lc = c->l->lc;
		if (c->state == CONN_CLOSED)
			continue;
		if (c->frame_start_ms && now - c->frame_start_ms > lc->frame_timeout_ms) {
			s->stats.closed_frame_timeout++;
			conn_log(s, HQ_LOG_NOTICE, "listener %s: %s: frame not finished within %llu ms; closing",
			       lc->name, c->peer, (unsigned long long)lc->frame_timeout_ms);
			conn_close(c, "frame timeout");
		} else if (lc->idle_timeout_ms && now - c->last_io_ms > lc->idle_timeout_ms) {
			s->stats.closed_idle++;
			conn_close(c, "idle timeout");
		}
	}
}

/* The group commit of this turn, then the ACKs. */
static void
commit_turn(hq_server *s)
{
	if (s->npending == 0)
		return;
	/* Every frame of the turn goes into one transaction before any reply. */
	s->fn(s->arg, s->pending, s->npending);
	for (size_t i = 0; i < s->npending; i++) {
		hq_frame *f = s->pending[i];
		hq_conn *c = s->pending_conn[i];
		if (f->ack && c->state != CONN_CLOSED)
			conn_queue_ack(c, f->ack, f->ack_len);
		free(f->ack);
		free(f->data);
		free(f);
	}
	s->npending = 0;
}

void
hq_server_set_turn_fn(hq_server *s, hq_turn_fn fn, void *arg)
{
	s->turn_fn = fn;
	s->turn_arg = arg;
}

static void
end_turn(hq_server *s)
{
	size_t frames = s->npending;
	commit_turn(s);
	hq_conn *next;
	for (hq_conn *c = s->conns; c; c = next) {
		next = c->next;
		conn_after_turn(c);
		if (c->state == CONN_CLOSED)
			conn_free(s, c);
	}
	listeners_reap(s);
	if (s->turn_fn)
		s->turn_fn(s->turn_arg, frames);
}

static void
stop_accepting(hq_server *s)
{
	for (int i = 0; i < s->nlisteners; i++) {
		if (s->listeners[i]->fd >= 0) {
			listener_close(s, s->listeners[i]);
		}
	}
	for (hq_conn *c = s->conns; c; c = c->next) {
		/* No new frames: answer what was committed, then close. */
		if (c->state == CONN_OPEN)
			c->state = CONN_DRAIN;
		c->dirty = 1;
	}
}

int
hq_server_run(hq_server *s, uint64_t drain_ms)
{
	struct epoll_event evs[256];
	uint64_t last_tick = hq_now_ms(), stop_at = 0;

	for (;;) {
		if (s->stopping && stop_at == 0) {
			stop_at = hq_now_ms();
			stop_accepting(s);
			end_turn(s);
		}
		if (stop_at && (s->conns == NULL || s->aborting ||
				hq_now_ms() - stop_at > drain_ms))
			break;
		int n = epoll_wait(s->epfd, evs, 256, TICK_MS);
		if (n < 0 && errno != EINTR) {
			hq_logerrno(HQ_LOG_ERR, "epoll_wait");
			return errno;
		}
		uint64_t now = hq_now_ms();
		for (int i = 0; i < n; i++) {
			int kind = *(int *)evs[i].data.ptr;
			if (kind == KIND_WAKE) {
				uint64_t v;
				if (read(s->wakefd, &v, sizeof v) < 0) {
					/* nothing to read */
				}
			} else if (kind == KIND_LISTENER) {
				accept_all(s, evs[i].data.ptr);
			} else {
				conn_io(evs[i].data.ptr, evs[i].events, now);
			}
		}
		if (now - last_tick >= TICK_MS) {
			check_timeouts(s);
			last_tick = now;
		}
		end_turn(s);
	}
	return 0;
}

void
hq_server_free(hq_server *s)
{
	if (s == NULL)
		return;
	while (s->conns) {
		s->conns->close_reason = "shutdown";
		conn_free(s, s->conns);
	}
	for (int i = 0; i < s->nlisteners; i++) {
		listener_close(s, s->listeners[i]);
		hq_tls_server_free(s->listeners[i]->tls);
		free(s->listeners[i]);
	}
	free(s->listeners);
	for (int i = 0; i < s->nold_tls; i++)
		hq_tls_server_free(s->old_tls[i]);
	free(s->old_tls);
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->wakefd >= 0)
		close(s->wakefd);
	free(s->pending);
	free(s->pending_conn);
	free(s);
}
