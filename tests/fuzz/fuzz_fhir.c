/*
 * fuzz_fhir.c - libFuzzer target for the FHIR conversion (hl7/fhir*.c,
 * hl7/v2.c): any bytes convert or are refused with a reason; a Bundle
 * renders to JSON that parses again and holds no empty string, object
 * or array.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hl7/fhir.h"

/* Non-zero when j holds an empty string, object or array. */
static int
empty(json_t *j)
{
	const char *k;
	size_t i;
	json_t *v;
	if (json_is_string(j))
		return json_string_length(j) == 0;
	if (json_is_object(j)) {
		if (json_object_size(j) == 0)
			return 1;
		json_object_foreach(j, k, v) if (empty(v)) return 1;
	}
	if (json_is_array(j)) {
		if (json_array_size(j) == 0)
			return 1;
		json_array_foreach(j, i, v) if (empty(v)) return 1;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1); /* exact size: ASan sees any overread */
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	hq_fhir_opts o;
	memset(&o, 0, sizeof o);
	o.max_entries = size & 1 ? 50 : 0;
	o.patient_match = size & 2 ? 1 : 0;
	char *body, why[256];
	size_t n;
	why[0] = 0;
	int rc = hq_fhir_render(buf, size, &o, &body, &n, NULL, why, sizeof why);
	if (rc != 0 && why[0] == 0)
		abort(); /* a refusal always has its reason */
	if (rc == 0) {
		json_error_t e;
		json_t *j = json_loadb(body, n, 0, &e);
		if (j == NULL || empty(j))
			abort();
		json_decref(j);
		free(body);
	}
	free(buf);
	return 0;
}
