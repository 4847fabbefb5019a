/*
 * str.h - a borrowed byte string: pointer and length, not NUL-terminated.
 * Who owns the bytes is said by each function that hands one out.
 */
#ifndef HQ_STR_H
#define HQ_STR_H

#include <stddef.h>

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

#endif
