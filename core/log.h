/*
 * log.h - the one log writer of hl7q (only the daemon and tools log;
 * hl7/ and queue/ never print).
 *
 * Lines go to stderr, each prefixed with a syslog priority ("<3>") that
 * journald understands.  A log line names the journal id, control id
 * (MSH-10), message type and peer address -- never patient data.
 */
#ifndef HQ_LOG_H
#define HQ_LOG_H

enum { HQ_LOG_ERR = 3, HQ_LOG_WARNING = 4, HQ_LOG_NOTICE = 5, HQ_LOG_INFO = 6, HQ_LOG_DEBUG = 7 };

extern int hq_log_level; /* lines above this priority are skipped */

/* Writes one line at priority prio; with_errno appends ": strerror(errno)". */
void hq_log_write(int prio, int with_errno, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Parses "err|warning|notice|info|debug"; returns the priority or -1. */
int hq_log_parse_level(const char *name);

/*
 * Rate limit for one kind of line (connection events, refusals,
 * dead-letters), so that an outage or a scan does not flood the log: at
 * most burst lines per interval_ms.  Not shared between threads.
 */
typedef struct hq_ratelimit {
	unsigned long long window_ms; /* start of the current window */
	unsigned n;		      /* lines written in it */
	unsigned long long suppressed;
} hq_ratelimit;

/*
 * Whether one more line of this kind may be written now.  When a new
 * window opens after lines were held back, first logs how many ("what":
 * a plural noun such as "connection events").
 */
int hq_log_allow(hq_ratelimit *rl, unsigned burst, unsigned long long interval_ms, const char *what);

/* Logs the count held back once the window is over (call it now and then). */
void hq_log_flush(hq_ratelimit *rl, unsigned long long interval_ms, const char *what);

/* hq_log, through a rate limit. */
#define hq_log_limited(rl, burst, interval_ms, what, prio, ...)                                    \
	do {                                                                                       \
		if ((prio) <= hq_log_level && hq_log_allow((rl), (burst), (interval_ms), (what)))  \
			hq_log_write((prio), 0, __VA_ARGS__);                                      \
	} while (0)

#define hq_log(prio, ...)                                                                          \
	do {                                                                                       \
		if ((prio) <= hq_log_level)                                                        \
			hq_log_write((prio), 0, __VA_ARGS__);                                      \
	} while (0)
#define hq_logerrno(prio, ...)                                                                     \
	do {                                                                                       \
		if ((prio) <= hq_log_level)                                                        \
			hq_log_write((prio), 1, __VA_ARGS__);                                      \
	} while (0)

#endif
