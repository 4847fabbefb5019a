/*
 * str.h - a borrowed byte string: pointer and length, not NUL-terminated.
 * Who owns the bytes is said by each function that hands one out.
 */
#ifndef HQ_STR_H
#define HQ_STR_H

#include <stddef.h>
#include <string.h>

typedef struct hq_str {
	const char *p;
	size_t n;
} hq_str;

#define HQ_STR_LIT(s) ((hq_str){(s), sizeof(s) - 1})

/* True when s is empty or holds only spaces and tabs (an HL7 field that is
 * present but carries no value). */
static inline int
hq_str_blank(hq_str s)
{
	for (size_t i = 0; i < s.n; i++)
		if (s.p[i] != ' ' && s.p[i] != '\t')
			return 0;
	return 1;
}

/* The n-th piece (0-based) of s split on sep; an empty string at the end of
 * s when there are fewer.  sep 0 (no separator known): s is its own piece 0. */
static inline hq_str
hq_str_piece(hq_str s, char sep, int n)
{
	const char *p = s.p, *end = s.p + s.n;
	if (sep == 0)
		return n == 0 ? s : (hq_str){end, 0};
	while (n > 0) {
		const char *q = memchr(p, sep, (size_t)(end - p));
		if (q == NULL)
			return (hq_str){end, 0};
		p = q + 1;
		n--;
	}
	const char *q = memchr(p, sep, (size_t)(end - p));
	return (hq_str){p, (size_t)((q ? q : end) - p)};
}

#endif
