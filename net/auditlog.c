/*
 * auditlog.c - access-audit events to journald and to an RFC 5424
 * collector over TCP (see auditlog.h).
 *
 * RFC 5424: <PRI>1 TIMESTAMP HOST hl7q-audit PROCID MSGID - MSG with
 * facility authpriv (10) and severity notice (5), MSGID the command, MSG
 * the PHI-free line of hq_audit_line; framed by octet counting (RFC 6587
 * 3.4.1), one connection per event (events are rare: operator commands
 * and daemon starts, stops and reloads).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-journal.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "core/config.h"
#include "core/timefmt.h"
#include "auditlog.h"

#define PRI_AUTHPRIV_NOTICE (10 * 8 + 5)
#define SEND_TIMEOUT_MS 3000

size_t
hq_auditlog_rfc5424(const hq_audit_event *ev, char *buf, size_t cap)
{
	char ts[HQ_TIME_CAP], line[2048];
	hq_time_format(ev->at_us, 6, ts, sizeof ts);
	hq_audit_line(ev, line, sizeof line);
	int w = snprintf(buf, cap, "<%d>1 %s %s hl7q-audit %ld %s - %s", PRI_AUTHPRIV_NOTICE, ts,
			 ev->host[0] ? ev->host : "-", ev->pid, ev->command[0] ? ev->command : "-", line);
	return w < 0 ? 0 : (size_t)w < cap ? (size_t)w : cap - 1;
}

/* Waits until fd is ready for events; 0, or ETIMEDOUT / errno. */
static int
wait_fd(int fd, short events, int ms)
{
	struct pollfd p = {fd, events, 0};
	int rc = poll(&p, 1, ms);
	if (rc < 0)
		return errno;
	return rc == 0 ? ETIMEDOUT : 0;
}

static int
send_tcp(const char *hostport, const char *msg, size_t len)
{
	struct sockaddr_storage addr;
	socklen_t alen;
	if (hq_parse_addr(hostport, &addr, &alen) != 0)
		return EINVAL;
	int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return errno;
	int rc = 0;
	if (connect(fd, (struct sockaddr *)&addr, alen) != 0) {
		if (errno != EINPROGRESS) {
			rc = errno;
		} else if ((rc = wait_fd(fd, POLLOUT, SEND_TIMEOUT_MS)) == 0) {
			int soerr = 0;
			socklen_t sl = sizeof soerr;
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
			rc = soerr;
		}
	}
	char head[24];
	int hn = snprintf(head, sizeof head, "%zu ", len);
	struct {
		const char *p;
		size_t n;
	} parts[2] = {{head, (size_t)hn}, {msg, len}};
	for (int i = 0; rc == 0 && i < 2; i++) {
		size_t off = 0;
		while (rc == 0 && off < parts[i].n) {
			ssize_t w = send(fd, parts[i].p + off, parts[i].n - off, MSG_NOSIGNAL);
			if (w > 0)
				off += (size_t)w;
			else if (w < 0 && errno == EAGAIN)
				rc = wait_fd(fd, POLLOUT, SEND_TIMEOUT_MS);
			else
				rc = w < 0 ? errno : EPIPE;
		}
	}
	close(fd);
	return rc;
}

int
hq_auditlog_send(const hq_audit_event *ev, const char *rfc5424, char *err, size_t errcap)
{
	char line[2048];
	hq_audit_line(ev, line, sizeof line);
	char seq[32];
	snprintf(seq, sizeof seq, "%llu", (unsigned long long)ev->seq);
	/* journald: the line, and fields a query can select on (no patient data). */
	sd_journal_send("MESSAGE=%s", line, "SYSLOG_IDENTIFIER=hl7q-audit", "PRIORITY=5",
			"SYSLOG_FACILITY=10", "HL7Q_AUDIT_SEQ=%s", seq, "HL7Q_AUDIT_USER=%s",
			ev->user, "HL7Q_AUDIT_COMMAND=%s", ev->command, NULL);
	if (rfc5424 == NULL || rfc5424[0] == 0)
		return 0;
	char msg[2300];
	size_t n = hq_auditlog_rfc5424(ev, msg, sizeof msg);
	int rc = send_tcp(rfc5424, msg, n);
	if (rc)
		snprintf(err, errcap, "[audit] syslog_rfc5424 %s: %s", rfc5424,
			 rc == EINVAL ? "not host:port" : strerror(rc));
	return rc;
}
