/*
 * delivery.h - delivery workers: drain the journal to HTTPS targets
 * (the set: delivery.c; one worker's rounds: worker.c; the wire: net/http.h
 * and net/auth.h; the decision after an attempt: queue/retry.h).
 *
 * One thread per target, independent of intake: a slow or dead target
 * never slows the ACKs.  Each worker copies due messages out of the
 * journal (no transaction stays open across a network call), POSTs them
 * with libcurl (connections kept alive and reused, HTTP/2 where offered,
 * up to `concurrency` in flight), and writes the outcomes back in batched
 * write transactions.  What was in flight, or done but not yet written, at
 * a crash is pending again after the restart, so a message is delivered at
 * least once and carries the same Idempotency-Key every time.  An
 * unordered target is served by two workers, each with half the queue.
 */
#ifndef HQ_DELIVERY_H
#define HQ_DELIVERY_H

#include "core/config.h"
#include "core/metrics.h"
#include "queue/journal.h"

typedef struct hq_delivery_sys hq_delivery_sys;

/*
 * Starts one worker per target of cfg.  Secrets (password_file,
 * token_file) are read here.  Returns 0, or an errno / HQ_ECONFIG with err
 * naming the target and the file.  cfg and j must outlive the system.
 */
int hq_delivery_start(const hq_config *cfg, hq_journal *j, hq_delivery_sys **out, char *err, size_t errcap);

/*
 * Applies a reloaded configuration: secrets are read first (a file that
 * cannot be read refuses the reload, nothing changes); workers of
 * unchanged targets (same settings, same secrets) go on untouched; those
 * of changed or removed targets stop taking work and finish their
 * requests in flight (10 s at most), and their successors start once they
 * have, so no message is in flight twice and FIFO order holds.  Returns 0,
 * or HQ_ECONFIG with err set.  cfg, and every config the system ran with,
 * must outlive it.
 */
int hq_delivery_reload(hq_delivery_sys *d, const hq_config *cfg, char *err, size_t errcap);

/* Requests of target in flight now (sent, or answered and not yet journaled). */
int hq_delivery_inflight(hq_delivery_sys *d, const char *target);

/* The id of the FIFO head that stopped target (it cannot be read or
 * opened), or 0 when the target is not stopped. */
uint64_t hq_delivery_stopped(hq_delivery_sys *d, const char *target);

/* Tells every worker new messages were committed (cheap; any thread). */
void hq_delivery_wake(hq_delivery_sys *d);

/*
 * Joins and frees the workers a reload retired whose threads have exited
 * (and that no successor still waits on).  Called from the daemon's loop
 * (the thread that reloads), so retired workers do not pile up.
 */
void hq_delivery_reap(hq_delivery_sys *d);

/*
 * Non-zero while a worker, current or retired and not yet reaped, runs
 * with a target of cfg: the daemon frees an old config only when neither
 * this nor hq_server_uses holds.
 */
int hq_delivery_uses(const hq_delivery_sys *d, const hq_config *cfg);

/* Stops the workers (in-flight requests are abandoned: pending again) and frees d. */
void hq_delivery_stop(hq_delivery_sys *d);

#endif
