/*
 * alloc.h - the one allocation policy of hl7q.
 *
 * Small, bounded allocations (a struct, a copy of a configured name, a
 * handful of pointers) cannot fail in a way the caller can answer better
 * than by stopping: the hq_x* helpers below abort the process on
 * out-of-memory, after one line on stderr.  Nothing is lost by that: a
 * frame is acknowledged only after the transaction that stored it has
 * committed, so a crash never drops an acknowledged message, and systemd
 * restarts the daemon.
 *
 * Allocations whose size comes from input (a frame, a message body, a
 * decoded attachment, a journal value) use plain malloc/realloc, check the
 * result and answer the caller with ENOMEM: a 50 MB frame from a stranger
 * is a negative ACK, not an abort.
 */
#ifndef HQ_ALLOC_H
#define HQ_ALLOC_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Never returns on failure. */
static inline void
hq_oom(size_t n)
{
	fprintf(stderr, "hl7q: out of memory (%zu bytes)\n", n);
	abort();
}

/* malloc(n) that never returns NULL (n == 0 gives a valid pointer). */
static inline void *
hq_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		hq_oom(n);
	return p;
}

/* calloc(count, size) that never returns NULL; aborts on overflow too. */
static inline void *
hq_xcalloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size ? size : 1);
	if (!p)
		hq_oom(count * size);
	return p;
}

/* realloc(p, n) that never returns NULL; p is untouched on failure (which aborts). */
static inline void *
hq_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		hq_oom(n);
	return q;
}

/* strdup(s) that never returns NULL; s must not be NULL. */
static inline char *
hq_xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		hq_oom(strlen(s) + 1);
	return p;
}

/* strndup(s, n) that never returns NULL. */
static inline char *
hq_xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (!p)
		hq_oom(n + 1);
	return p;
}

/*
 * The entry named name in the array *items of *n entries of size bytes,
 * each starting with a NUL-terminated name of at most namecap bytes (a
 * config section, a status-file entry).  When there is none, the array
 * grows by one zeroed entry holding the name (cut at namecap), *added is
 * set to 1, and that entry is returned (*items may move: pass a void *
 * copy of the owner's pointer and store it back).  The array is small: it
 * aborts on out-of-memory like the helpers above.
 */
static inline void *
hq_named_get(void **items, int *n, size_t size, const char *name, size_t namecap, int *added)
{
	for (int i = 0; i < *n; i++) {
		char *e = (char *)*items + (size_t)i * size;
		if (strcmp(e, name) == 0) {
			*added = 0;
			return e;
		}
	}
	*items = hq_xrealloc(*items, (size_t)(*n + 1) * size);
	char *e = memset((char *)*items + (size_t)(*n)++ * size, 0, size);
	snprintf(e, namecap, "%s", name);
	*added = 1;
	return e;
}

#endif
