/*
 * server.c - epoll MLLP acceptor (see server.h).
 *
 * A connection is one switch on its state per I/O step (beanstalkd's
 * conn_process_io): reading frames, draining ACKs, closing.  The frame
 * parsing itself lives in mllp.c.  Frames complete in one loop turn are
 * collected across all connections and committed together before any ACK
 * is written (Redis' beforeSleep flushing the AOF before replies).
 * The listening sockets, and a reload's changes to them, are listener.c.
 *
 * The group commit is pipelined: with more than one connection open, a
 * committer thread stores one batch (s->fn: the write transaction and its
 * fsync) while the loop goes on reading the next; when it is done the
 * loop queues that batch's ACKs and hands it the frames gathered
 * meanwhile.  An ACK still goes out only after the commit that stored its
 * frame.  The end-of-turn hook (reload, deferred indexing, retention)
 * runs only while the committer is idle, so nothing the hook changes is
 * in use by a batch; a connection with frames not yet answered is not
 * freed.  With one connection there is nothing to overlap: the loop
 * commits itself and saves two thread wake-ups per message.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "server_int.h"

#define READ_CHUNK 65536
#define OUT_HIGH_WATER (1u << 20) /* stop reading from a peer that does not read its ACKs */
#define OUT_KEEP_CAP (64u << 10)  /* a larger ACK buffer is freed once it is written out */
#define TICK_MS 500
#define PENDING_MAX 16384 /* frames gathered while a commit runs: beyond it the loop waits */

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


int
hq_server_new(const hq_config *cfg, hq_batch_fn fn, void *arg, hq_server **out, char *err, size_t errcap)
{
	hq_server *s = hq_xcalloc(1, sizeof *s);
	int rc = 0;

	s->cfg = cfg;
	s->fn = fn;
	s->arg = arg;
	s->wake_kind = KIND_WAKE;
	pthread_mutex_init(&s->cm_mu, NULL);
	pthread_cond_init(&s->cm_cv, NULL);
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
	/* No more events for it: it may wait for its frames' commit a while. */
	epoll_ctl(c->srv->epfd, EPOLL_CTL_DEL, c->fd, NULL);
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
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				hq_logerrno(HQ_LOG_WARNING, "listener %s: accept", lc->name);
			return;
		}
		char peer[64];
		peer_name(&ss, peer, sizeof peer);
		if (!hq_listener_allows(lc, &ss)) {
			hq_count(&l->m->refused_connections, 1);
			conn_log(s, HQ_LOG_WARNING,
				 "listener %s: refused %s: not in the allow list", lc->name, peer);
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
		hq_conn *c = hq_xcalloc(1, sizeof *c);
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
		s->pending = hq_xrealloc(s->pending, cap * sizeof *s->pending);
		s->pending_conn = hq_xrealloc(s->pending_conn, cap * sizeof *s->pending_conn);
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
	hq_frame *f = hq_xcalloc(1, sizeof *f);
	char *data = malloc(len ? len : 1); /* frame-sized: checked, the connection closes */

	if (data == NULL || add_pending(s, f, c) != 0) {
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
	c->frames++;
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
		conn_log(c->srv, HQ_LOG_WARNING, "listener %s: %s: TLS handshake failed: %s",
			 c->l->lc->name, c->peer, c->why);
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
	case CONN_CLOSED: break;
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
		if (owed == 0 && c->frames == 0)
			conn_close(c, "peer closed");
		else if (owed == 0)
			set_events(c, 0); /* its ACKs are being committed */
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

/* The committer thread: stores each batch handed to it (s->fn), then
 * says so (cm_done, and the loop's eventfd). */
static void *
committer_main(void *arg)
{
	hq_server *s = arg;
	pthread_mutex_lock(&s->cm_mu);
	for (;;) {
		while (!s->cm_go && !s->cm_quit)
			pthread_cond_wait(&s->cm_cv, &s->cm_mu);
		if (s->cm_quit)
			break;
		s->cm_go = 0;
		pthread_mutex_unlock(&s->cm_mu);
		s->fn(s->arg, s->job, s->njob);
		pthread_mutex_lock(&s->cm_mu);
		s->cm_done = 1;
		pthread_cond_broadcast(&s->cm_cv);
		uint64_t one = 1;
		if (write(s->wakefd, &one, sizeof one) < 0) {
			/* already signalled */
		}
	}
	pthread_mutex_unlock(&s->cm_mu);
	return NULL;
}

/* The ACKs of the stored batch, in its frames' order; frees the frames. */
static void
answer_job(hq_server *s)
{
	for (size_t i = 0; i < s->njob; i++) {
		hq_frame *f = s->job[i];
		hq_conn *c = s->job_conn[i];
		if (f->ack && c->state != CONN_CLOSED)
			conn_queue_ack(c, f->ack, f->ack_len);
		c->frames--;
		c->dirty = 1; /* a draining peer closes once its last frame is answered */
		free(f->ack);
		free(f->data);
		free(f);
	}
	s->njob = 0;
	s->cm_busy = 0;
}

/* If the committer has finished its batch (or, wait: once it has), its ACKs. */
static void
collect_job(hq_server *s, int wait)
{
	if (!s->cm_busy)
		return;
	pthread_mutex_lock(&s->cm_mu);
	while (wait && !s->cm_done)
		pthread_cond_wait(&s->cm_cv, &s->cm_mu);
	int done = s->cm_done;
	s->cm_done = 0;
	pthread_mutex_unlock(&s->cm_mu);
	if (done)
		answer_job(s);
}

/* Hands the gathered frames to the committer (or, with one connection
 * open or no thread to be had, stores them here and now). */
static void
hand_off(hq_server *s)
{
	hq_frame **f = s->job;
	hq_conn **c = s->job_conn;
	size_t cap = s->cap_job;
	s->job = s->pending; /* swap: the next batch gathers in the old job's arrays */
	s->job_conn = s->pending_conn;
	s->cap_job = s->cap_pending;
	s->njob = s->npending;
	s->pending = f;
	s->pending_conn = c;
	s->cap_pending = cap;
	s->npending = 0;
	for (size_t i = 0; i < s->njob; i++) { /* a reload meanwhile: the listener's config now */
		s->job[i]->lc = s->job_conn[i]->l->lc;
		s->job[i]->m = s->job_conn[i]->l->m;
	}
	s->cm_busy = 1;
	if (s->stats.open > 1 && !s->cm_started && pthread_create(&s->cm_thread, NULL, committer_main, s) == 0)
		s->cm_started = 1;
	if (s->stats.open <= 1 || !s->cm_started) {
		s->fn(s->arg, s->job, s->njob);
		answer_job(s);
		return;
	}
	pthread_mutex_lock(&s->cm_mu);
	s->cm_go = 1;
	pthread_cond_broadcast(&s->cm_cv);
	pthread_mutex_unlock(&s->cm_mu);
}

/* Waits for the batch being stored, answers it, and ends the committer. */
static void
committer_stop(hq_server *s)
{
	collect_job(s, 1);
	if (!s->cm_started)
		return;
	pthread_mutex_lock(&s->cm_mu);
	s->cm_quit = 1;
	pthread_cond_broadcast(&s->cm_cv);
	pthread_mutex_unlock(&s->cm_mu);
	pthread_join(s->cm_thread, NULL);
	s->cm_started = 0;
}

void
hq_server_set_turn_fn(hq_server *s, hq_turn_fn fn, void *arg)
{
	s->turn_fn = fn;
	s->turn_arg = arg;
}

/*
 * The end of a loop turn: the finished batch's ACKs; while the committer
 * is idle, the end-of-turn hook and then the hand-off of what this turn
 * gathered; the writes; closed connections with nothing owed freed.
 */
static void
end_turn(hq_server *s)
{
	size_t frames = s->npending;
	collect_job(s, 0);
	if (!s->cm_busy) {
		if (s->turn_fn)
			s->turn_fn(s->turn_arg, frames);
		if (s->npending)
			hand_off(s);
	}
	hq_conn *next;
	for (hq_conn *c = s->conns; c; c = next) {
		next = c->next;
		conn_after_turn(c);
		if (c->state == CONN_CLOSED && c->frames == 0)
			conn_free(s, c);
	}
	listeners_reap(s);
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
		if (stop_at && (s->conns == NULL || s->aborting || hq_now_ms() - stop_at > drain_ms))
			break;
		if (s->cm_busy && s->npending >= PENDING_MAX) {
			collect_job(s, 1); /* the disk is behind: stop reading until it catches up */
			end_turn(s);
		}
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
	committer_stop(s);
	return 0;
}

void
hq_server_free(hq_server *s)
{
	if (s == NULL)
		return;
	committer_stop(s);
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
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->wakefd >= 0)
		close(s->wakefd);
	for (size_t i = 0; i < s->npending; i++) { /* stopped before they were stored: no ACK */
		free(s->pending[i]->data);
		free(s->pending[i]);
	}
	free(s->pending);
	free(s->pending_conn);
	free(s->job);
	free(s->job_conn);
	pthread_mutex_destroy(&s->cm_mu);
	pthread_cond_destroy(&s->cm_cv);
	free(s);
}
