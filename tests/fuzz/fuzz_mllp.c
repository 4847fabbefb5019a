/*
 * fuzz_mllp.c - libFuzzer target for the MLLP deframer (net/mllp.c).
 * The input is fed whole, and again split at a point the input chooses:
 * both feeds must find the same frames (framing does not depend on how
 * TCP cut the bytes), and every frame must respect the size bound.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/mllp.h"

typedef struct seen {
	size_t frames, bytes, oversize;
	uint64_t hash;
} seen;

static int
on_frame(void *arg, const char *payload, size_t len, size_t total, int oversize)
{
	seen *s = arg;
	if (len > 4096 || (oversize && total <= 4096) || (!oversize && total != len))
		abort(); /* the bound was not kept */
	s->frames++;
	s->bytes += len;
	s->oversize += oversize != 0;
	for (size_t i = 0; i < len; i++)
		s->hash = s->hash * 1099511628211u ^ (unsigned char)payload[i];
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	seen a = {0}, b = {0};
	hq_mllp m;
	hq_mllp_init(&m, 4096);
	hq_mllp_feed(&m, (const char *)data, size, on_frame, &a);
	hq_mllp_free(&m);
	size_t cut = size ? data[0] % (size + 1) : 0;
	hq_mllp_init(&m, 4096);
	hq_mllp_feed(&m, (const char *)data, cut, on_frame, &b);
	hq_mllp_feed(&m, (const char *)data + cut, size - cut, on_frame, &b);
	hq_mllp_free(&m);
	if (a.frames != b.frames || a.bytes != b.bytes || a.oversize != b.oversize || a.hash != b.hash)
		abort(); /* a split changed what was framed */
	return 0;
}
