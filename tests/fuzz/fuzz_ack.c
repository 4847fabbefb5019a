/*
 * fuzz_ack.c - libFuzzer target for the ACK builder (hl7/ack.c): for any
 * input the parser took or refused, the ACK for each kind fits the
 * capacity intake gives it, starts with MSH and carries an MSA segment.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hl7/ack.h"
#include "hl7/msg.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	hq_msh m;
	hq_msh_parse(buf, size, &m);
	size_t cap = 2048 + size; /* what intake allocates */
	char *out = malloc(cap);
	static const hq_ack_kind kinds[] = {HQ_ACK_ACCEPT, HQ_ACK_ERROR, HQ_ACK_REJECT};
	for (size_t k = 0; k < 3 && out; k++) {
		int n = hq_ack_build(&m, kinds[k], k ? 207 : 0, k ? "Application internal error" : NULL,
				     k ? "MSH^1^10" : "", "20261126120000", "QFUZZ1", out, cap);
		if (n < 0 || (size_t)n > cap || n < 8 || memcmp(out, "MSH", 3) != 0 ||
		    memmem(out, (size_t)n, "\rMSA", 4) == NULL)
			abort();
		(void)hq_ack_code(&m, kinds[k]);
		(void)hq_ack_wanted(&m, kinds[k]);
	}
	free(out);
	free(buf);
	return 0;
}
