/*
 * log.c - stderr log writer with syslog priority prefixes (see log.h).
 * Each line is built in one buffer and written with one write(2), so lines
 * from different threads never interleave.
 *
 * Under journald (systemd sets JOURNAL_STREAM on the stderr it connects)
 * a line is "<prio>text": journald stamps it.  Anywhere else -- a terminal,
 * a file, a container log -- nothing would, so a line starts with its UTC
 * time: "2026-12-01T05:02:06.123Z <prio>text".
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "timefmt.h"

int hq_log_level = HQ_LOG_INFO;

/* 1: stamp lines; 0: journald does; -1: not decided yet (racy first calls agree). */
static int stamp = -1;

/* Writes "YYYY-MM-DDTHH:MM:SS.mmmZ " into p (cap > HQ_TIME_CAP); returns its length. */
static int
timestamp(char *p, size_t cap)
{
	hq_time_format(hq_wall_us(), 3, p, cap);
	size_t n = strlen(p);
	return (int)n + snprintf(p + n, cap - n, " ");
}

void
hq_log_write(int prio, int with_errno, const char *fmt, ...)
{
	char line[1024];
	int saved = errno, n = 0;
	if (stamp < 0) {
		const char *js = getenv("JOURNAL_STREAM");
		stamp = js == NULL || *js == 0;
	}
	if (stamp)
		n = timestamp(line, 64);
	n += snprintf(line + n, sizeof line - (size_t)n, "<%d>", prio);
	va_list ap;

	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof line - 2)
		n = (int)sizeof line - 2;
	if (with_errno) {
		n += snprintf(line + n, sizeof line - (size_t)n, ": %s", strerror(saved));
		if (n > (int)sizeof line - 2)
			n = (int)sizeof line - 2;
	}
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
	errno = saved;
}

int
hq_log_parse_level(const char *name)
{
	static const struct {
		const char *name;
		int prio;
	} levels[] = {
		{"err", HQ_LOG_ERR},	   {"error", HQ_LOG_ERR}, {"warning", HQ_LOG_WARNING},
		{"notice", HQ_LOG_NOTICE}, {"info", HQ_LOG_INFO}, {"debug", HQ_LOG_DEBUG},
	};
	for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
		if (strcasecmp(name, levels[i].name) == 0)
			return levels[i].prio;
	return -1;
}


void
hq_log_flush(hq_ratelimit *rl, unsigned long long interval_ms, const char *what)
{
	unsigned long long now = hq_now_ms();
	if (rl->suppressed && now - rl->window_ms >= interval_ms) {
		hq_log_write(HQ_LOG_NOTICE, 0, "%llu %s not logged in the last %llu s (rate limit)",
			     rl->suppressed, what, (now - rl->window_ms) / 1000);
		rl->window_ms = now;
		rl->n = 0;
		rl->suppressed = 0;
	}
}

int
hq_log_allow(hq_ratelimit *rl, unsigned burst, unsigned long long interval_ms, const char *what)
{
	unsigned long long now = hq_now_ms();
	if (rl->window_ms == 0 || now - rl->window_ms >= interval_ms) {
		if (rl->suppressed)
			hq_log_write(HQ_LOG_NOTICE, 0, "%llu %s not logged in the last %llu s (rate limit)",
				     rl->suppressed, what, (now - rl->window_ms) / 1000);
		rl->window_ms = now;
		rl->n = 0;
		rl->suppressed = 0;
	}
	if (rl->n < burst) {
		rl->n++;
		return 1;
	}
	rl->suppressed++;
	return 0;
}
