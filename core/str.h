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

#endif
