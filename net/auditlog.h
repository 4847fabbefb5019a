/*
 * auditlog.h - sends access-audit events (queue/audit.h) out of the host
 * as well as into the journal: one line to journald/syslog with
 * SYSLOG_IDENTIFIER=hl7q-audit, and, when [audit] syslog_rfc5424 names a
 * collector, one RFC 5424 message over TCP (octet-counted, RFC 6587) for a
 * SIEM.  The journal's copy is the record; these are its echoes, so a
 * collector that is down costs a warning, never the command.
 *
 * The line carries ids and counts, never a patient id (hq_audit_line).
 */
#ifndef HQ_AUDITLOG_H
#define HQ_AUDITLOG_H

#include <stddef.h>

#include "queue/audit.h"

/*
 * Sends ev to journald (best effort: no journald, no line) and, when
 * rfc5424 ("host:port") is not empty, to that collector within 3 s.
 * Returns 0, or an errno with err saying what failed (the collector).
 */
int hq_auditlog_send(const hq_audit_event *ev, const char *rfc5424, char *err, size_t errcap);

/* The RFC 5424 message for ev (without the octet count).  Returns its length. */
size_t hq_auditlog_rfc5424(const hq_audit_event *ev, char *buf, size_t cap);

#endif
