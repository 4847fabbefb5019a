/*
 * check_json.c - unit tests for hl7/json.c: every corpus message (and the
 * malformed ones whose delimiters can be read) turns to JSON and back into
 * the same bytes; escapes are decoded; the shape is as documented.
 */
#include <check.h>
#include <string.h>

#include "hl7/json.h"
#include "tests/check_util.h"

static void
roundtrip(const char *path, const char *data, size_t len)
{
	json_t *j = hq_hl7_to_json(data, len);
	if (j == NULL)
		return;
	char *text = json_dumps(j, JSON_COMPACT);
	ck_assert_msg(text != NULL, "%s: not serialisable", path);
	json_decref(j);
	json_error_t e;
	json_t *again = json_loads(text, JSON_ALLOW_NUL, &e);
	ck_assert_msg(again != NULL, "%s: %s", path, e.text);
	char *out;
	size_t n;
	ck_assert_msg(hq_json_to_hl7(again, &out, &n) == 0, "%s: not convertible back", path);
	ck_assert_msg(n == len && memcmp(out, data, len) == 0, "%s: bytes differ", path);
	free(out);
	free(text);
	json_decref(again);
}

START_TEST(test_corpus_roundtrip)
{
	for (int mal = 0; mal < 2; mal++) {
		size_t n, converted = 0;
		corpus_file *files = corpus_load(mal, &n);
		for (size_t i = 0; i < n; i++) {
			json_t *j = hq_hl7_to_json(files[i].data, files[i].len);
			converted += j != NULL;
			json_decref(j);
			roundtrip(files[i].path, files[i].data, files[i].len);
			free(files[i].data);
		}
		if (!mal)
			ck_assert_uint_eq(converted, n);
		free(files);
	}
}
END_TEST

START_TEST(test_shape_and_escapes)
{
	const char *m = "MSH|^~\\&|APP||||20260101||ADT^A01|C1|P|2.5\r"
			"PID|1||ID1^^^H~ID2|DOE\\S\\X^JANE&Q||\\X0D\\|\n"
			"ZZZ";
	json_t *j = hq_hl7_to_json(m, strlen(m));
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(j, "separators")), "|^~\\&");
	json_t *segs = json_object_get(j, "segments");
	ck_assert_int_eq(json_array_size(segs), 3);
	json_t *msh = json_array_get(segs, 0);
	ck_assert_str_eq(json_string_value(json_object_get(msh, "encoding")), "^~\\&");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(msh, "fields"), 0)), "APP");
	json_t *pid = json_object_get(json_array_get(segs, 1), "fields");
	/* PID-3: two repetitions, the first with components */
	json_t *pid3 = json_array_get(pid, 2);
	ck_assert_int_eq(json_array_size(pid3), 2);
	ck_assert_str_eq(json_string_value(json_array_get(json_array_get(pid3, 0), 0)), "ID1");
	ck_assert_str_eq(json_string_value(json_array_get(pid3, 1)), "ID2");
	/* PID-4: \S\ decoded; PID-4.2 has subcomponents */
	json_t *pid4 = json_array_get(json_array_get(pid, 3), 0); /* its one repetition */
	ck_assert_str_eq(json_string_value(json_array_get(pid4, 0)), "DOE^X");
	ck_assert_str_eq(json_string_value(json_array_get(json_array_get(pid4, 1), 1)), "Q");
	/* PID-6: \X0D\ kept raw */
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(pid, 5), "raw")), "\\X0D\\");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(segs, 1), "end")), "\n");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(segs, 2), "end")), "");
	char *out;
	size_t n;
	ck_assert_int_eq(hq_json_to_hl7(j, &out, &n), 0);
	ck_assert(n == strlen(m) && memcmp(out, m, n) == 0);
	free(out);
	json_decref(j);
	ck_assert_ptr_null(hq_hl7_to_json("hello", 5));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("json");
	TCase *tc = tcase_create("json");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_corpus_roundtrip);
	tcase_add_test(tc, test_shape_and_escapes);
	suite_add_tcase(s, tc);
	int failed = run_suite(s);
	return failed;
}
