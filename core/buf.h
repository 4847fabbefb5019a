/*
 * buf.h - a growing output buffer whose size comes from input.
 *
 * Used where hl7q writes out a text of unbounded size (the FHIR serializer,
 * JSON -> HL7, the Prometheus text).  Its size follows the input, so running out of memory is
 * not an abort (core/alloc.h) but a sticky flag: once `oom` is set, later
 * appends do nothing and the owner answers ENOMEM.  One byte past `n` is
 * always room for a terminating NUL, which the owner writes if it wants one.
 * The owner frees `p`.
 */
#ifndef HQ_BUF_H
#define HQ_BUF_H

#include <stdlib.h>
#include <string.h>

typedef struct hq_buf {
	char *p;
	size_t n, cap;
	int oom;
} hq_buf;

/* Appends printf-style text to b; nothing once out of memory. */
void hq_buf_printf(hq_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Makes room for n more bytes and a NUL: 0, or -1 with b->oom set. */
static inline int
hq_buf_grow(hq_buf *b, size_t n)
{
	if (b->oom)
		return -1;
	size_t cap = b->cap ? b->cap : 1024;
	while (cap < b->n + n + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (p == NULL) {
		b->oom = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

/* Appends s[0..n); nothing once out of memory. */
static inline void
hq_buf_put(hq_buf *b, const char *s, size_t n)
{
	if (n == 0 || (b->n + n + 1 > b->cap && hq_buf_grow(b, n)))
		return;
	memcpy(b->p + b->n, s, n);
	b->n += n;
}

/*
 * A libcurl write callback's body (CURLOPT_WRITEFUNCTION): appends p[0..n)
 * to b, NUL-terminated, unless b would pass max bytes or memory runs out.
 * Returns n, or 0 (which makes libcurl fail the transfer).
 */
static inline size_t
hq_buf_take(hq_buf *b, const char *p, size_t n, size_t max)
{
	if (b->n + n > max)
		return 0;
	hq_buf_put(b, p, n);
	if (b->oom)
		return 0;
	if (b->p)
		b->p[b->n] = 0;
	return n;
}

/* Room for n more bytes, counted as written; NULL when out of memory. */
static inline char *
hq_buf_reserve(hq_buf *b, size_t n)
{
	if (b->n + n + 1 > b->cap && hq_buf_grow(b, n))
		return NULL;
	char *p = b->p + b->n;
	b->n += n;
	return p;
}

#endif
