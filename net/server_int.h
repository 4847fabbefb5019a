/*
 * server_int.h - what the MLLP server's two files share (private to net/):
 * server.c (the loop and the connections) and listener.c (the listening
 * sockets, and a reload's add/change/remove of them).
 */
#ifndef HQ_SERVER_INT_H
#define HQ_SERVER_INT_H

#include <pthread.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "core/log.h"
#include "core/metrics.h"
#include "mllp.h"
#include "server.h"
#include "tls.h"

enum { KIND_LISTENER = 1, KIND_CONN, KIND_WAKE };

typedef enum conn_state {
	CONN_OPEN,  /* reading frames, writing ACKs */
	CONN_DRAIN, /* peer sent EOF: write what is owed, then close */
	CONN_CLOSED /* to be reaped at the end of the turn */
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
	uint32_t events; /* what epoll watches now */
	int dirty;	 /* has output to try this turn */
	struct hq_conn *prev, *next;
	struct hq_server *srv;
	const char *close_reason;
	hq_tls_conn *tls; /* NULL: plain TCP */
	int handshaking;  /* TLS handshake not done yet */
	char why[256];	  /* a TLS failure, for the close line */
	char *subject;	  /* the TLS client's certificate subject (duplicate keys), or NULL */
	int frames; /* its frames gathered or committing, not yet answered: not freed before */
} hq_conn;

typedef struct listener_t {
	int kind;		    /* KIND_LISTENER */
	int fd;			    /* -1 once closed (removed by a reload, or stopping) */
	const hq_listener_conf *lc; /* the config it runs with (a reload swaps it) */
	hq_listener_metrics *m;
	hq_tls_server *tls; /* certificates and keys read at bind (and at each reload) */
	int open;	    /* connections now */
	int port;
	int removed; /* gone from the config: freed when its last connection closes */
} listener_t;

struct hq_server {
	const hq_config *cfg;
	int epfd, wakefd;
	int wake_kind;		/* KIND_WAKE, epoll data points here */
	listener_t **listeners; /* every listener with a socket or connections */
	int nlisteners, cap_listeners;
	hq_conn *conns; /* all open connections */
	hq_batch_fn fn;
	void *arg;
	hq_turn_fn turn_fn;
	void *turn_arg;
	hq_frame **pending; /* frames gathered for the next group commit */
	hq_conn **pending_conn;
	size_t npending, cap_pending;
	/* The committer (server.c, "the group commit"): the batch it stores
	 * while the loop reads the next one.  job* belong to the committer
	 * from hand-off until cm_done; cm_busy is the loop's own flag. */
	hq_frame **job;
	hq_conn **job_conn;
	size_t njob, cap_job;
	int cm_busy, cm_started, cm_quit, cm_go, cm_done;
	pthread_t cm_thread;
	pthread_mutex_t cm_mu;
	pthread_cond_t cm_cv;
	volatile int stopping, aborting;
	hq_server_stats stats;
	hq_ratelimit rl_conn; /* connection events: a scan or a reconnect storm stays readable */
};

/* At most CONN_LOG_BURST connection-event lines per CONN_LOG_MS. */
#define CONN_LOG_BURST 100
#define CONN_LOG_MS 10000
#define conn_log(s, prio, ...)                                                                     \
	hq_log_limited(&(s)->rl_conn, CONN_LOG_BURST, CONN_LOG_MS, "connection events", prio, __VA_ARGS__)

/* Adds, changes (op) the epoll watch of fd with ptr as its data. */
static inline int
watch(hq_server *s, int fd, void *ptr, uint32_t events, int op)
{
	struct epoll_event ev = {.events = events, .data.ptr = ptr};
	return epoll_ctl(s->epfd, op, fd, &ev);
}

/* Binds a listener for lc (TLS material read).  Returns it, or NULL with
 * err set and *rc the error. */
listener_t *listener_bind(hq_server *s, const hq_listener_conf *lc, char *err, size_t errcap, int *rc);

/* Makes l one of s's listeners and watches its socket.  Returns 0 or -1. */
int listener_add(hq_server *s, listener_t *l);

/* Closes l's socket (its connections stay open); freed by listeners_reap
 * once removed and without connections. */
void listener_close(hq_server *s, listener_t *l);

/* Frees the removed listeners without connections left. */
void listeners_reap(hq_server *s);

#endif
