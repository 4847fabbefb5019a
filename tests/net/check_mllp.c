/*
 * check_mllp.c - unit tests for net/mllp.c, the MLLP deframer.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "net/mllp.h"
#include "tests/check_util.h"

typedef struct got {
	int n;
	char frames[16][256];
	size_t lens[16], totals[16];
	int oversize[16];
} got;

static int
collect(void *arg, const char *p, size_t len, size_t total, int oversize)
{
	got *g = arg;
	if (g->n < 16) {
		memcpy(g->frames[g->n], p, len < 255 ? len : 255);
		g->lens[g->n] = len;
		g->totals[g->n] = total;
		g->oversize[g->n] = oversize;
	}
	g->n++;
	return 0;
}

START_TEST(test_one_frame)
{
	hq_mllp m;
	got g = {0};
	hq_mllp_init(&m, 1024);
	const char in[] = "\x0bMSH|^~\\&|A\r\x1c\r";
	ck_assert_int_eq(hq_mllp_feed(&m, in, sizeof in - 1, collect, &g), sizeof in - 1);
	ck_assert_int_eq(g.n, 1);
	ck_assert_uint_eq(g.lens[0], 11);
	ck_assert(memcmp(g.frames[0], "MSH|^~\\&|A\r", 11) == 0);
	ck_assert_uint_eq(m.dropped, 0);
	hq_mllp_free(&m);
}
END_TEST

/* Every split point of a two-frame stream gives the same two frames. */
START_TEST(test_split_everywhere)
{
	const char in[] = "junk\x0b"
			  "AAA\rBBB\r\x1c\r\x0b"
			  "CCC\x1c\r";
	size_t n = sizeof in - 1;
	for (size_t a = 0; a <= n; a++) {
		for (size_t b = a; b <= n; b++) {
			hq_mllp m;
			got g = {0};
			hq_mllp_init(&m, 1024);
			hq_mllp_feed(&m, in, a, collect, &g);
			hq_mllp_feed(&m, in + a, b - a, collect, &g);
			hq_mllp_feed(&m, in + b, n - b, collect, &g);
			ck_assert_int_eq(g.n, 2);
			ck_assert_uint_eq(g.lens[0], 8);
			ck_assert(memcmp(g.frames[0], "AAA\rBBB\r", 8) == 0);
			ck_assert_uint_eq(g.lens[1], 3);
			ck_assert_uint_eq(m.dropped, 4);
			hq_mllp_free(&m);
		}
	}
}
END_TEST

START_TEST(test_byte_at_a_time)
{
	const char in[] = "\x0b"
			  "ONE\x1c\r\x0b"
			  "TWO\x1c\r\x0b"
			  "THREE\x1c\r";
	hq_mllp m;
	got g = {0};
	hq_mllp_init(&m, 1024);
	for (size_t i = 0; i < sizeof in - 1; i++)
		hq_mllp_feed(&m, in + i, 1, collect, &g);
	ck_assert_int_eq(g.n, 3);
	ck_assert(memcmp(g.frames[2], "THREE", 5) == 0);
	hq_mllp_free(&m);
}
END_TEST

START_TEST(test_out_of_frame_counted)
{
	hq_mllp m;
	got g = {0};
	hq_mllp_init(&m, 1024);
	hq_mllp_feed(&m, "hello\r\n", 7, collect, &g);
	ck_assert_int_eq(g.n, 0);
	ck_assert_uint_eq(m.dropped, 7);
	ck_assert(!hq_mllp_in_frame(&m));
	hq_mllp_free(&m);
}
END_TEST

START_TEST(test_oversize_keeps_prefix_and_recovers)
{
	hq_mllp m;
	got g = {0};
	char big[5000];
	memset(big, 'x', sizeof big);
	memcpy(big, "MSH|", 4);
	hq_mllp_init(&m, 100);
	hq_mllp_feed(&m, "\x0b", 1, collect, &g);
	hq_mllp_feed(&m, big, sizeof big, collect, &g);
	hq_mllp_feed(&m, "\x1c\r\x0bOK\x1c\r", 7, collect, &g);
	ck_assert_int_eq(g.n, 2);
	ck_assert_int_eq(g.oversize[0], 1);
	ck_assert_uint_eq(g.lens[0], 100);
	ck_assert_uint_eq(g.totals[0], 5000);
	ck_assert(memcmp(g.frames[0], "MSH|", 4) == 0);
	ck_assert_int_eq(g.oversize[1], 0);
	ck_assert_uint_eq(g.lens[1], 2);
	hq_mllp_free(&m);
}
END_TEST

/* The digest the deframer reports for an oversize frame (in the callback). */
static int
grab_sha(void *arg, const char *p, size_t len, size_t total, int oversize)
{
	hq_mllp *m = ((void **)arg)[0];
	unsigned char *out = ((void **)arg)[1];
	ck_assert_int_eq(oversize, 1);
	memcpy(out, m->sha256, 32);
	return 0;
}

/* Issue 11, point 6: an oversize frame is hashed whole, whatever the
 * feeds' boundaries; after a large frame the buffer is given back. */
START_TEST(test_issue11_point6_oversize_hashed_and_buffer_shrinks)
{
	enum { BIG = 300000, MAX = 100000 };
	char *big = malloc(BIG);
	unsigned char want[32], got_sha[32];
	for (size_t i = 0; i < BIG; i++)
		big[i] = (char)('a' + i % 23);
	mbedtls_sha256_ret((const unsigned char *)big, BIG, want, 0);
	size_t steps[] = {1, 777, 65536, BIG};
	for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
		hq_mllp m;
		void *arg[2] = {&m, got_sha};
		memset(got_sha, 0, sizeof got_sha);
		hq_mllp_init(&m, MAX);
		hq_mllp_feed(&m, "\x0b", 1, grab_sha, arg);
		for (size_t off = 0; off < BIG; off += steps[s])
			hq_mllp_feed(&m, big + off, BIG - off < steps[s] ? BIG - off : steps[s], grab_sha, arg);
		hq_mllp_feed(&m, "\x1c\r", 2, grab_sha, arg);
		ck_assert_msg(memcmp(got_sha, want, 32) == 0, "step %zu: wrong SHA-256", steps[s]);
		ck_assert_ptr_null(m.buf); /* 100 KB kept: freed after the frame */
		ck_assert_uint_eq(m.cap, 0);
		got g = {0};
		hq_mllp_feed(&m, "\x0bOK\x1c\r", 5, collect, &g);
		ck_assert_int_eq(g.n, 1);
		ck_assert_uint_eq(g.lens[0], 2);
		hq_mllp_free(&m);
	}
	free(big);
}
END_TEST

START_TEST(test_second_start_byte_restarts)
{
	hq_mllp m;
	got g = {0};
	hq_mllp_init(&m, 1024);
	const char in[] = "\x0bpartial\x0bMSH|real\x1c\r";
	hq_mllp_feed(&m, in, sizeof in - 1, collect, &g);
	ck_assert_int_eq(g.n, 1);
	ck_assert_uint_eq(g.lens[0], 8);
	ck_assert(memcmp(g.frames[0], "MSH|real", 8) == 0);
	ck_assert_uint_eq(m.dropped, 8); /* "partial" and its start byte */
	hq_mllp_free(&m);
}
END_TEST

START_TEST(test_eb_inside_payload_is_data)
{
	hq_mllp m;
	got g = {0};
	hq_mllp_init(&m, 1024);
	const char s[] = "\x0b"
			 "A\x1c"
			 "B\x1c\r";
	hq_mllp_feed(&m, s, sizeof s - 1, collect, &g);
	ck_assert_int_eq(g.n, 1);
	ck_assert_uint_eq(g.lens[0], 3);
	ck_assert(memcmp(g.frames[0],
			 "A\x1c"
			 "B",
			 3) == 0);
	hq_mllp_free(&m);
}
END_TEST

START_TEST(test_eb_then_sb_ends_frame)
{
	hq_mllp m;
	got g = {0};
	hq_mllp_init(&m, 1024);
	const char s[] = "\x0b"
			 "ONE\x1c\x0b"
			 "TWO\x1c\r";
	hq_mllp_feed(&m, s, sizeof s - 1, collect, &g);
	ck_assert_int_eq(g.n, 2);
	ck_assert(memcmp(g.frames[0], "ONE", 3) == 0);
	ck_assert(memcmp(g.frames[1], "TWO", 3) == 0);
	hq_mllp_free(&m);
}
END_TEST

/* Every corpus message, framed and fed in 7-byte pieces, comes out whole. */
typedef struct whole {
	int n;
	int same;
	const char *want;
	size_t len;
} whole;

static int
compare(void *arg, const char *p, size_t len, size_t total, int oversize)
{
	whole *w = arg;
	w->n++;
	w->same = !oversize && len == w->len && memcmp(p, w->want, len) == 0;
	return 0;
}

START_TEST(test_corpus_roundtrip)
{
	size_t n;
	corpus_file *files = corpus_load(0, &n);
	for (size_t i = 0; i < n; i++) {
		hq_mllp m;
		size_t len = files[i].len;
		char *framed = malloc(len + 3);
		framed[0] = 0x0b;
		memcpy(framed + 1, files[i].data, len);
		framed[len + 1] = 0x1c;
		framed[len + 2] = 0x0d;
		hq_mllp_init(&m, 1 << 20);
		whole w = {0, 0, files[i].data, len};
		for (size_t off = 0; off < len + 3; off += 7) {
			size_t k = len + 3 - off < 7 ? len + 3 - off : 7;
			hq_mllp_feed(&m, framed + off, k, compare, &w);
		}
		ck_assert_msg(w.n == 1 && w.same, "%s: frame not reproduced", files[i].path);
		ck_assert_uint_eq(m.dropped, 0);
		hq_mllp_free(&m);
		free(framed);
		free(files[i].data);
	}
	free(files);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("mllp");
	TCase *tc = tcase_create("deframer");
	tcase_add_test(tc, test_one_frame);
	tcase_add_test(tc, test_split_everywhere);
	tcase_add_test(tc, test_byte_at_a_time);
	tcase_add_test(tc, test_out_of_frame_counted);
	tcase_add_test(tc, test_oversize_keeps_prefix_and_recovers);
	tcase_add_test(tc, test_issue11_point6_oversize_hashed_and_buffer_shrinks);
	tcase_add_test(tc, test_second_start_byte_restarts);
	tcase_add_test(tc, test_eb_inside_payload_is_data);
	tcase_add_test(tc, test_eb_then_sb_ends_frame);
	tcase_add_test(tc, test_corpus_roundtrip);
	suite_add_tcase(s, tc);
	int failed = run_suite(s);
	return failed;
}
