/*
 * fhir_json.c - the converter's JSON tree (see fhir_int.h): objects that
 * keep their keys in insertion order, arrays, strings, integers and
 * booleans, all carved out of one arena per conversion and released
 * together when the Bundle has been written.
 *
 * Why not jansson: a Bundle of a 1 KB ADT holds a few hundred values, and
 * jansson gives each its own malloc (objects a hashtable, keys a copy),
 * then frees them one by one; that was half of a conversion's instructions.
 * Resources hold a few dozen keys at most, so a linear key search beats
 * hashing, and nothing is freed before the end.  The calls mirror jansson's
 * (NULL-safe getters, a NULL value refused by setters) so the mapping code
 * reads the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fhir_int.h"
#include "msg.h"

/* A block of the arena; data follows. */
typedef struct fj_block {
	struct fj_block *next;
	size_t used, cap;
} fj_block;

/* The arena of the conversion running on this thread. */
static __thread fj_arena *cur;

void
fj_begin(fj_arena *a)
{
	memset(a, 0, sizeof *a);
	cur = a;
}

void
fj_end(fj_arena *a)
{
	fj_block *b = a->blocks;
	while (b) {
		fj_block *n = b->next;
		free(b);
		b = n;
	}
	a->blocks = NULL;
	if (cur == a)
		cur = NULL;
}

/* A new block for n bytes (fj_alloc's slow path). */
static __attribute__((noinline)) void *
fj_alloc_block(fj_arena *a, size_t n)
{
	fj_block *b = a->blocks;
	size_t cap = n > 16384 - sizeof *b ? n : 16384 - sizeof *b;
	fj_block *nb = malloc(sizeof *nb + cap);
	if (nb == NULL) {
		a->oom = 1;
		return NULL;
	}
	nb->used = 0;
	nb->cap = cap;
	if (b && n > 16384 - sizeof *b) { /* a big string: behind the current block */
		nb->next = b->next;
		b->next = nb;
	} else {
		nb->next = b;
		a->blocks = nb;
	}
	nb->used = n;
	return nb + 1;
}

static inline void *
fj_alloc(size_t n)
{
	fj_arena *a = cur;
	if (a == NULL)
		return NULL;
	n = (n + 15) & ~(size_t)15;
	fj_block *b = a->blocks;
	if (b == NULL || b->cap - b->used < n)
		return fj_alloc_block(a, n);
	void *p = (char *)(b + 1) + b->used;
	b->used += n;
	return p;
}

static fj *
node(int type)
{
	fj *j = fj_alloc(sizeof *j);
	if (j) {
		memset(j, 0, sizeof *j);
		j->type = type;
	}
	return j;
}

fj *
fj_object(void)
{
	return node(FJ_OBJECT);
}

fj *
fj_array(void)
{
	return node(FJ_ARRAY);
}

/* Some byte of the 8 in v is a control, '"', '\\' or not ASCII (the "has a
 * byte less than" bit tricks). */
static inline uint64_t
unplain8(uint64_t v)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
	return (v & highs) | ((v - ones * 0x20) & ~v & highs) | ((q - ones) & ~q & highs) |
	       ((b - ones) & ~b & highs);
}

/* Printable ASCII without '"' and '\\': valid UTF-8 that JSON takes as it
 * is.  Eight bytes at a time; the last eight overlap the ones before when
 * n is no multiple of 8 (no byte loop but for strings under 8 bytes). */
static int
plain(const char *s, size_t n)
{
	uint64_t v;
	if (n >= 8) {
		for (size_t i = 0; i + 8 <= n; i += 8) {
			memcpy(&v, s + i, 8);
			if (unplain8(v))
				return 0;
		}
		memcpy(&v, s + n - 8, 8);
		return unplain8(v) == 0;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\')
			return 0;
	}
	return 1;
}

fj *
fj_stringn(const char *s, size_t n)
{
	if (s == NULL)
		return NULL;
	int clean = plain(s, n);
	if (!clean && !hq_utf8_valid(s, n))
		return NULL;
	fj *j = fj_alloc(sizeof *j + n + 1); /* the text right behind its node */
	if (j == NULL)
		return NULL;
	char *c = (char *)(j + 1);
	*j = (fj){.type = FJ_STRING};
	memcpy(c, s, n);
	c[n] = 0;
	j->s = c;
	j->n = n;
	j->plain = clean;
	return j;
}

fj *
fj_string(const char *s)
{
	return s ? fj_stringn(s, strlen(s)) : NULL;
}

fj *
fj_integer(long long v)
{
	fj *j = node(FJ_INTEGER);
	if (j)
		j->i = v;
	return j;
}

fj *
fj_boolean(int v)
{
	return node(v ? FJ_TRUE : FJ_FALSE);
}

static fj_member *
member(const fj *o, const char *key)
{
	if (o == NULL || o->type != FJ_OBJECT)
		return NULL;
	for (fj_member *m = o->head; m; m = m->next)
		if (m->key == key || (m->key[0] == key[0] && strcmp(m->key, key) == 0))
			return m;
	return NULL;
}

fj *
fj_get(const fj *o, const char *key)
{
	fj_member *m = member(o, key);
	return m ? m->v : NULL;
}

/* Appends a member; the key is kept, not copied (see fj_set). */
static int
add(fj *o, const char *key, fj *v)
{
	fj_member *m = fj_alloc(sizeof *m);
	if (m == NULL)
		return -1;
	m->key = key;
	m->v = v;
	m->next = NULL;
	if (o->tail)
		o->tail->next = m;
	else
		o->head = m;
	o->tail = m;
	o->n++;
	return 0;
}

int
fj_add(fj *o, const char *key, fj *v)
{
	if (o == NULL || o->type != FJ_OBJECT || key == NULL || v == NULL)
		return -1;
	return add(o, key, v);
}

int
fj_set(fj *o, const char *key, fj *v)
{
	if (o == NULL || o->type != FJ_OBJECT || key == NULL || v == NULL)
		return -1;
	fj_member *m = member(o, key);
	if (m) { /* in place: the key keeps its position, as in jansson */
		m->v = v;
		return 0;
	}
	return add(o, key, v);
}

int
fj_del(fj *o, const char *key)
{
	if (o == NULL || o->type != FJ_OBJECT)
		return -1;
	fj_member *prev = NULL;
	for (fj_member *m = o->head; m; prev = m, m = m->next)
		if (strcmp(m->key, key) == 0) {
			if (prev)
				prev->next = m->next;
			else
				o->head = m->next;
			if (o->tail == m)
				o->tail = prev;
			o->n--;
			return 0;
		}
	return -1;
}

int
fj_update_missing(fj *dst, const fj *src)
{
	if (dst == NULL || dst->type != FJ_OBJECT || src == NULL || src->type != FJ_OBJECT)
		return -1;
	for (fj_member *m = src->head; m; m = m->next)
		if (member(dst, m->key) == NULL && add(dst, m->key, m->v) != 0)
			return -1;
	return 0;
}

int
fj_append(fj *a, fj *v)
{
	if (a == NULL || a->type != FJ_ARRAY || v == NULL)
		return -1;
	fj_member *m = fj_alloc(sizeof *m);
	if (m == NULL)
		return -1;
	m->key = NULL;
	m->v = v;
	m->next = NULL;
	if (a->tail)
		a->tail->next = m;
	else
		a->head = m;
	a->tail = m;
	a->n++;
	return 0;
}

fj *
fj_at(const fj *a, size_t i)
{
	if (a == NULL || a->type != FJ_ARRAY)
		return NULL;
	for (fj_member *m = a->head; m; m = m->next)
		if (i-- == 0)
			return m->v;
	return NULL;
}

size_t
fj_size(const fj *j)
{
	return j && (j->type == FJ_OBJECT || j->type == FJ_ARRAY) ? j->n : 0;
}

const char *
fj_str(const fj *j)
{
	return j && j->type == FJ_STRING ? j->s : NULL;
}

size_t
fj_strlen(const fj *j)
{
	return j && j->type == FJ_STRING ? j->n : 0;
}
