/*
 * server.h - the MLLP acceptor: one epoll loop serving every listener and
 * connection (no thread per connection).
 *
 * Each loop turn reads what every ready connection sent and deframes it;
 * the complete frames of the turn, from all connections, are handed to the
 * batch callback at once (the group commit: it stores them in one
 * transaction and fills in their ACKs); only then are the ACKs written.
 * Connections are never freed inside a callback: they are marked and
 * reaped at the end of the turn.
 */
#ifndef HQ_SERVER_H
#define HQ_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/metrics.h"

typedef struct hq_server hq_server;

/* A complete frame, waiting for the group commit. */
typedef struct hq_frame {
	const hq_listener_conf *lc; /* the listener's config (valid during the callback) */
	hq_listener_metrics *m;	    /* the listener's counters */
	const char *peer;	    /* "address:port", valid during the callback */
	const char *tls_subject;    /* the TLS client's certificate subject, or NULL */
	char *data;   /* payload (first max_message_size bytes), owned by the server */
	size_t len;   /* bytes in data */
	size_t total; /* real payload size (> len when oversize) */
	int oversize;
	unsigned char sha256[32]; /* of the whole payload, when oversize (data holds a prefix) */
	uint64_t received_us;	  /* when the frame's last byte was read */
	char *ack; /* set by the callback: malloc'd ACK payload (no MLLP framing), or NULL */
	size_t ack_len;
} hq_frame;

/*
 * The group-commit callback: decides, stores and answers n frames at
 * once.  It sets each frame's ack (the server frees it).
 */
typedef void (*hq_batch_fn)(void *arg, hq_frame **frames, size_t n);

/*
 * Called at the end of every loop turn, once the ACKs are written (and at
 * least every half second when idle), with the number of frames the turn
 * committed: the place for background work such as deferred indexing.
 */
typedef void (*hq_turn_fn)(void *arg, size_t frames);

/* Sets the end-of-turn hook (NULL: none). */
void hq_server_set_turn_fn(hq_server *s, hq_turn_fn fn, void *arg);

/* Counters since start (read by the daemon for logs and metrics). */
typedef struct hq_server_stats {
	uint64_t accepted, refused_limit, closed_idle, closed_frame_timeout;
	uint64_t frames, bytes_in, out_of_frame;
	int open;
} hq_server_stats;

/*
 * Binds every listener of cfg.  Returns 0, or an errno with err (cap
 * errcap) naming the listener.  cfg must outlive the server.
 */
int hq_server_new(const hq_config *cfg, hq_batch_fn fn, void *arg, hq_server **out, char *err, size_t errcap);

/* The port the listener of cfg->listeners[i] is bound to (useful with port 0). */
int hq_server_port(const hq_server *s, int i);

/*
 * Applies a reloaded configuration: listeners that are new (or moved)
 * are bound first -- if one fails nothing changes and an errno returns
 * with err set; kept ones take their new settings; removed ones stop
 * accepting while their open connections go on.  Call between turns (from
 * the turn hook).  cfg must outlive the server, and so must the old one
 * while connections opened under it remain (the daemon keeps them all).
 */
int hq_server_reload(hq_server *s, const hq_config *cfg, char *err, size_t errcap);

/*
 * Non-zero while s runs with cfg or a listener of it (a removed listener
 * keeps its config until its last connection closes): the daemon frees an
 * old config only when neither this nor hq_delivery_uses holds.
 */
int hq_server_uses(const hq_server *s, const hq_config *cfg);

/*
 * Runs the loop until hq_server_stop().  Then stops accepting, sends the
 * ACKs of every committed frame (waiting at most drain_ms for slow
 * readers) and returns 0.
 */
int hq_server_run(hq_server *s, uint64_t drain_ms);

/* Asks the loop to stop; async-signal-safe. */
void hq_server_stop(hq_server *s);

/* Asks the loop to stop after the current turn because storage failed. */
void hq_server_abort(hq_server *s);

/* Copies the counters. */
void hq_server_stats_get(const hq_server *s, hq_server_stats *st);

/* Closes every socket and frees s. */
void hq_server_free(hq_server *s);


#endif
