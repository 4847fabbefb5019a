/*
 * payload.c - request bodies per target format (see payload.h).  Pure:
 * bytes in, bytes out.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "json.h"
#include "payload.h"

char *
hq_payload_google(const char *raw, size_t n, size_t *len)
{
	size_t elen;
	char *enc = hq_base64(raw, n, &elen);
	char *out = enc ? malloc(elen + 32) : NULL;
	if (out)
		*len = (size_t)sprintf(out, "{\"message\":{\"data\":\"%s\"}}", enc);
	free(enc);
	return out;
}

static json_t *
jstr(const char *s)
{
	json_t *j = json_string(s);
	return j ? j : json_null();
}

char *
hq_payload_json(const hq_payload_meta *m, const char *raw, size_t raw_len, size_t *len)
{
	char when[64];
	time_t secs = (time_t)(m->received_us / 1000000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, sizeof when - n, ".%06uZ", (unsigned)(m->received_us % 1000000));
	json_t *msg = hq_hl7_to_json(raw, raw_len);
	json_t *root = json_pack(
		"{s:I,s:s,s:o,s:o,s:o,s:o,s:o,s:{s:o,s:o},s:{s:o,s:o}}", "id", (json_int_t)m->id,
		"received_at", when, "listener", jstr(m->listener), "peer", jstr(m->peer), "type",
		jstr(m->type), "control_id", jstr(m->control_id), "version", jstr(m->version),
		"sender", "application", jstr(m->sending_app), "facility", jstr(m->sending_fac),
		"receiver", "application", jstr(m->receiving_app), "facility", jstr(m->receiving_fac));
	if (root == NULL) {
		json_decref(msg);
		return NULL;
	}
	if (msg) {
		json_object_set_new(root, "message", msg);
	} else {
		size_t blen;
		char *b = hq_base64(raw, raw_len, &blen);
		json_object_set_new(root, "message", json_null());
		if (b)
			json_object_set_new(root, "raw_base64", json_stringn(b, blen));
		free(b);
	}
	char *text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (text)
		*len = strlen(text);
	return text;
}

const char *
hq_payload_charset(const char *msh18)
{
	static const struct {
		const char *hl7, *iana;
	} map[] = {
		{"UNICODE UTF-8", "utf-8"}, {"UTF-8", "utf-8"},	      {"ASCII", "us-ascii"},
		{"8859/1", "iso-8859-1"},   {"8859/2", "iso-8859-2"}, {"8859/15", "iso-8859-15"},
	};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (strcasecmp(msh18, map[i].hl7) == 0)
			return map[i].iana;
	return NULL;
}
