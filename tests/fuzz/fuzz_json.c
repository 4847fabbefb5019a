/*
 * fuzz_json.c - libFuzzer target for the JSON mapping (hl7/json.c): when
 * an input maps to JSON, mapping it back gives the same bytes (lossless),
 * through a serialised and re-parsed document as a target would see it.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hl7/json.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *j = hq_hl7_to_json((const char *)data, size);
	if (j == NULL)
		return 0;
	char *text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (text == NULL)
		return 0;
	json_error_t e;
	json_t *back = json_loads(text, JSON_ALLOW_NUL, &e);
	free(text);
	if (back == NULL)
		abort(); /* we wrote JSON that does not parse */
	char *out;
	size_t len;
	if (hq_json_to_hl7(back, &out, &len) != 0 || len != size || memcmp(out, data, size) != 0)
		abort(); /* not lossless */
	free(out);
	json_decref(back);
	return 0;
}
