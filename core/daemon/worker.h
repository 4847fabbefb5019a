/*
 * worker.h - one delivery worker (private to core/daemon/): its request
 * slots, its credentials and down/probe state, and the thread that runs
 * its rounds (worker.c).  The set of workers, their start, reload and
 * stop, is delivery.c (public: delivery.h).
 *
 * Threads: a worker's fields are its thread's, but for those marked
 * (atomic), which the daemon's thread reads or writes too.
 */
#ifndef HQ_DAEMON_WORKER_H
#define HQ_DAEMON_WORKER_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>

#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "hl7/fhir.h"
#include "net/auth.h"
#include "net/http.h"
#include "queue/journal.h"

typedef struct slot {
	CURL *easy;
	int busy;
	hq_due due;
	hq_http_hdrs hdrs; /* the request's header lines (hq_http_headers) */
	char *payload;
	size_t payload_len;
	hq_http_answer ans; /* the answer's first bytes (journal only) */
	uint64_t start_us;
	char errbuf[CURL_ERROR_SIZE]; /* libcurl's detail of a failed transfer */
	hq_outcome settled; /* format fhir: the outcome of a message that needs no request */
	uint64_t token_gen; /* oauth2: the token generation this request carries */
} slot;

typedef struct worker {
	const hq_target_conf *t;
	hq_journal *j;
	pthread_t thread;
	CURLM *multi;
	volatile int stop;
	hq_creds auth;		   /* the target's credentials; the cached oauth2 token */
	uint64_t token_expires_us; /* oauth2: refetch after this */
	/* oauth2 rotation: each fetched token is a generation; a request
	 * carries the one it was sent with.  A 401 for an older generation is
	 * resent with the current one; a 401 for the current one asks for one
	 * refresh (resent too), unless that token was itself fetched after a
	 * 401 and never worked: then the 401 counts against the message. */
	uint64_t token_gen;
	int gen_after_401; /* the current token was fetched because of a 401 */
	int gen_proven;	   /* the current token got a 2xx */
	int want_refresh;  /* a 401 asked for a new token */
	hq_fhir_opts fhir; /* format fhir: id key, zone, Bundle options */
	hq_tz *fhir_tz;
	slot *slots;
	int nslots;
	int down; /* last attempt failed: log only the transitions; probe one at a time */
	uint32_t down_streak;	 /* failed probes in a row */
	uint64_t probe_at_us;	 /* while down: no request before this */
	uint64_t pause_until_us; /* outcomes could not be written: no request before this */
	uint32_t write_failures; /* in a row */
	uint64_t stuck_id;	 /* FIFO head that cannot be read: the target stops */
	int woken;		 /* (atomic) a wake-up is on its way: coalesce the others */
	uint32_t shard, nshards; /* this worker's share of an unordered target */
	int inflight;		 /* requests out, or done and not yet written (atomic) */
	hq_target_metrics *m;
	hq_ratelimit rl_dead, rl_state; /* dead-letter lines; down/back lines */
	/* reload: a worker that replaces others waits until they have exited */
	struct worker *pred[2];
	int npred;
	int draining; /* (atomic) finish what is in flight, take nothing new, exit */
	int exited;   /* (atomic) the thread is done */
	int waited;   /* (atomic) past the wait for pred: pred no longer read */
	int started;  /* a thread was created */
} worker;

/* The ordering target t's queue keeps (its due index). */
hq_due_order hq_worker_due_order(const hq_target_conf *t);

/*
 * The thread of worker arg (a worker *): waits for the workers it replaces
 * to exit, then runs rounds until stop, or until draining and nothing is
 * in flight (10 s at most); then writes what it has, sets exited, returns
 * NULL.  Never frees the worker (delivery.c does, after the join).
 */
void *hq_worker_main(void *arg);

#endif
