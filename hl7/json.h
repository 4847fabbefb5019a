/*
 * json.h - the lossless JSON form of an HL7 v2 message (target format
 * "json"; schema in deploy/doc/json.md).
 *
 * A message becomes {"separators": "|^~\\&", "segments": [{"name": "PID",
 * "fields": [...], "end": "\n"?}]}: fields -> repetitions -> components ->
 * subcomponents; a piece with no separator below it is written as a leaf,
 * any other as an array of the next level (even of one element).  Leaves
 * are strings with the delimiter escapes (\F\ \S\ \T\ \R\ \E\) decoded.
 * A leaf whose text would not encode back to the same bytes (other escape
 * sequences such as \X0D\ or \.br\, a stray escape character) is written
 * {"raw": "..."}, and one that is not UTF-8 {"base64": "..."}, so that
 * hq_json_to_hl7(hq_hl7_to_json(m)) == m for every message, byte for byte.
 */
#ifndef HQ_JSON_H
#define HQ_JSON_H

#include <jansson.h>
#include <stddef.h>

/* The JSON form of buf[0..len) (an HL7 message or FHS/BHS batch), or NULL
 * when the header's delimiters cannot be read or the form would not give
 * back the same bytes (it checks).  The caller owns it. */
json_t *hq_hl7_to_json(const char *buf, size_t len);

/* The bytes of the message j describes, malloc'd into *out; returns 0, or
 * -1 when j is not of the form above. */
int hq_json_to_hl7(const json_t *j, char **out, size_t *len);

/* Standard base64 (RFC 4648, padded) of s[0..n), malloc'd and NUL-ended;
 * *len gets its length.  NULL when out of memory. */
char *hq_base64(const char *s, size_t n, size_t *len);

#endif
