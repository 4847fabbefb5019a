/*
 * fuzz_msg.c - libFuzzer target for the MSH/PID parser (hl7/msg.c): any
 * bytes parse or are refused with a 0357 code, and every field the parser
 * returns lies inside the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hl7/msg.h"

static void
inside(hq_str s, const char *buf, size_t len)
{
	if (s.n && (s.p < buf || s.p + s.n > buf + len))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1); /* exact size: ASan sees any overread */
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	hq_msh m;
	int rc = hq_msh_parse(buf, size, &m);
	if (rc != 0 && m.err_code == 0)
		abort(); /* a refusal always has its code */
	if (m.have_delims) {
		hq_str fields[] = {m.sending_app, m.sending_fac, m.receiving_app, m.receiving_fac,
				   m.control_id,  m.type_field,	 m.version};
		for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
			inside(fields[i], buf, size);
	}
	free(buf);
	return 0;
}
