/*
 * mllp.c - MLLP deframer (see mllp.h).  A byte-at-a-time state machine
 * with a memchr fast path for the payload, so a 1 MB frame costs a few
 * memcpy calls.
 */
#include <stdlib.h>
#include <string.h>

#include "mllp.h"

void
hq_mllp_init(hq_mllp *m, size_t max)
{
	memset(m, 0, sizeof *m);
	m->max = max;
}

static void stop_hashing(hq_mllp *m);

void
hq_mllp_free(hq_mllp *m)
{
	stop_hashing(m);
	free(m->buf);
	m->buf = NULL;
	m->len = m->cap = 0;
}

int
hq_mllp_in_frame(const hq_mllp *m)
{
	return m->state != HQ_MLLP_IDLE;
}

/*
 * Keeps what fits of p[0..n) under max; grows the buffer geometrically.
 * Past max, the frame is hashed: what was kept first, then the rest.
 */
static void
keep(hq_mllp *m, const char *p, size_t n)
{
	m->total += n;
	if (n == 0)
		return;
	size_t room = m->len < m->max ? m->max - m->len : 0;
	size_t k = n < room ? n : room;
	if (k && m->len + k > m->cap) {
		size_t cap = m->cap ? m->cap : 4096;
		while (cap < m->len + k)
			cap *= 2;
		if (cap > m->max)
			cap = m->max;
		char *b = realloc(m->buf, cap);
		if (b == NULL) {
			/* Treat as oversize: stop keeping, still count (and hash). */
			m->max = m->len;
			k = 0;
		} else {
			m->buf = b;
			m->cap = cap;
		}
	}
	if (k) {
		memcpy(m->buf + m->len, p, k);
		m->len += k;
	}
	if (k < n) {
		if (!m->hashing) {
			mbedtls_sha256_init(&m->sha);
			mbedtls_sha256_starts_ret(&m->sha, 0);
			mbedtls_sha256_update_ret(&m->sha, (const unsigned char *)m->buf, m->len);
			m->hashing = 1;
		}
		mbedtls_sha256_update_ret(&m->sha, (const unsigned char *)p + k, n - k);
	}
}

static void
stop_hashing(hq_mllp *m)
{
	if (m->hashing) {
		mbedtls_sha256_free(&m->sha);
		m->hashing = 0;
	}
}

static void
start_frame(hq_mllp *m)
{
	stop_hashing(m);
	m->state = HQ_MLLP_IN_FRAME;
	m->len = 0;
	m->total = 0;
}

/* After a large frame, give its buffer back. */
static void
shrink(hq_mllp *m)
{
	if (m->cap > HQ_MLLP_KEEP_CAP) {
		free(m->buf);
		m->buf = NULL;
		m->cap = 0;
		m->len = 0;
	}
}

long
hq_mllp_feed(hq_mllp *m, const char *p, size_t n, hq_mllp_frame_fn fn, void *arg)
{
	size_t i = 0;

	while (i < n) {
		switch (m->state) {
		case HQ_MLLP_IDLE: {
			const char *sb = memchr(p + i, HQ_MLLP_SB, n - i);
			if (sb == NULL) {
				m->dropped += n - i;
				i = n;
				break;
			}
			m->dropped += (size_t)(sb - (p + i));
			i = (size_t)(sb - p) + 1;
			start_frame(m);
			break;
		}
		case HQ_MLLP_IN_FRAME: {
			/* The first end or start byte: two memchr calls, not a loop
			 * per byte (this scan was hl7qd's hottest function at
			 * 64 connections; issue 16). */
			const char *eb = memchr(p + i, HQ_MLLP_EB, n - i);
			size_t upto = eb ? (size_t)(eb - p) : n;
			const char *sb = memchr(p + i, HQ_MLLP_SB, upto - i);
			size_t j = sb ? (size_t)(sb - p) : upto;
			keep(m, p + i, j - i);
			i = j;
			if (i == n)
				break;
			if (p[i] == HQ_MLLP_SB) {
				/* A new start byte: what came before is lost. */
				m->dropped += m->total + 1;
				start_frame(m);
			} else {
				m->state = HQ_MLLP_SAW_EB;
			}
			i++;
			break;
		}
		case HQ_MLLP_SAW_EB:
			if (p[i] == HQ_MLLP_CR || p[i] == HQ_MLLP_SB) {
				int oversize = m->total > m->len;
				int sb = p[i] == HQ_MLLP_SB;
				int stop;
				m->state = HQ_MLLP_IDLE;
				i++;
				if (m->hashing)
					mbedtls_sha256_finish_ret(&m->sha, m->sha256);
				stop_hashing(m);
				stop = fn(arg, m->buf ? m->buf : "", m->len, m->total, oversize);
				shrink(m);
				if (sb) /* sender left out the CR: next frame begins */
					start_frame(m);
				if (stop)
					return (long)i;
			} else {
				/* 0x1C inside the payload: keep it as data. */
				char eb = HQ_MLLP_EB;
				keep(m, &eb, 1);
				m->state = HQ_MLLP_IN_FRAME;
			}
			break;
		}
	}
	return (long)i;
}
