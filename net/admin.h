/*
 * admin.h - the admin endpoint ([admin] listen): GET /healthz and GET
 * /metrics, served by libmicrohttpd on its own thread.
 *
 * /healthz answers 200 {"status":"ok"} when the journal is writable (the
 * last commit succeeded and free space is above the reserve) and every
 * configured listener is accepting; otherwise 503 with
 * {"status":"unhealthy","reasons":[...]}.  /metrics is the Prometheus text
 * format: the process counters of core/metrics.h plus, read from the
 * journal at each scrape, per target pending / retrying / in flight / dead
 * / delivered and the oldest pending age, and the journal's size, used and
 * free bytes.  Labels name listeners and targets, never message content.
 * Bind it to loopback or a management network: it has no authentication.
 */
#ifndef HQ_ADMIN_H
#define HQ_ADMIN_H

#include <sys/socket.h>

#include "queue/journal.h"

typedef struct hq_admin hq_admin;

/*
 * Starts serving on addr.  j must outlive the endpoint (it is read from
 * the endpoint's thread, in read transactions).  Returns 0, or an errno
 * with err set.
 */
int hq_admin_start(const struct sockaddr_storage *addr, socklen_t len, hq_journal *j,
		   hq_admin **out, char *err, size_t errcap);

/* The port it is bound to. */
int hq_admin_port(const hq_admin *a);

/* Stops serving and frees a (NULL is fine). */
void hq_admin_stop(hq_admin *a);

/*
 * The health verdict as served: 1 healthy, 0 not; reasons (may be NULL)
 * gets a JSON array of the reasons.
 */
int hq_admin_health(hq_journal *j, char *reasons, size_t cap);

#endif
