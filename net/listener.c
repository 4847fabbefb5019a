/*
 * listener.c - the MLLP server's listening sockets (see server.h): bind
 * (with the listener's TLS material), watch, close, reap, and a reload's
 * add / change / remove of listeners without closing open connections;
 * TLS contexts a reload replaces stay alive while connections use them.
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

#include "core/alloc.h"
#include "core/clock.h"
#include "server_int.h"

/* Binds a listener for lc.  Returns it, or NULL with err set. */
listener_t *
listener_bind(hq_server *s, const hq_listener_conf *lc, char *err, size_t errcap, int *rc)
{
	listener_t *l = hq_xcalloc(1, sizeof *l);
	int one = 1;
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
	if (bind(l->fd, (const struct sockaddr *)&lc->addr, lc->addrlen) != 0 || listen(l->fd, 1024) != 0) {
		*rc = errno;
		int port = ntohs(lc->addr.ss_family == AF_INET
					 ? ((const struct sockaddr_in *)&lc->addr)->sin_port
					 : ((const struct sockaddr_in6 *)&lc->addr)->sin6_port);
		snprintf(err, errcap, "listener %s: cannot listen on %s: %s%s", lc->name,
			 lc->listen, strerror(*rc),
			 *rc == EACCES && port < 1024 ? " (a port under 1024 needs CAP_NET_BIND_SERVICE: see deploy/systemd/lowport.conf)"
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
int
listener_add(hq_server *s, listener_t *l)
{
	if (s->nlisteners == s->cap_listeners) {
		int cap = s->cap_listeners ? s->cap_listeners * 2 : 8;
		s->listeners = hq_xrealloc(s->listeners, (size_t)cap * sizeof *s->listeners);
		s->cap_listeners = cap;
	}
	s->listeners[s->nlisteners++] = l;
	watch(s, l->fd, l, EPOLLIN, EPOLL_CTL_ADD);
	__atomic_store_n(&l->m->up, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&l->m->configured, 1, __ATOMIC_RELAXED);
	return 0;
}

/* Stops accepting on l (its connections go on). */
void
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
void
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
