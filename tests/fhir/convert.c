/*
 * convert.c - the conformance run's and the benchmark's driver for hl7/fhir.c.
 *
 *   convert [-z ZONE] [-m MAX] FILE...    one JSON line per message:
 *       {"file", "index", "type", "rc": "ok"|"unsupported"|"too-big"|"failed",
 *        "why"?, "bundle"?}
 *   convert -b SECONDS [-t TYPES] FILE... conversions per CPU second (one core),
 *       over the messages of the listed types ("ADT,ORU"; default: all supported)
 *   convert -n ROUNDS [-t TYPES] FILE...  the same for a fixed number of rounds
 *       over the messages: reproducible under valgrind --tool=callgrind
 *
 * A file may hold several messages (a batch: FHS/BHS/BTS/FTS lines are
 * dropped, each MSH starts a message).  The id key is fixed: this is a test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "hl7/fhir.h"

typedef struct msgbuf {
	char *p;
	size_t n;
	const char *file;
	int index;
	char type[16];
} msgbuf;

static msgbuf *msgs;
static int nmsgs, capmsgs;

static void
add_msg(const char *file, int index, const char *p, size_t n)
{
	if (n == 0)
		return;
	if (nmsgs == capmsgs) {
		capmsgs = capmsgs ? 2 * capmsgs : 64;
		msgs = realloc(msgs, (size_t)capmsgs * sizeof *msgs);
	}
	msgbuf *m = &msgs[nmsgs++];
	m->p = malloc(n);
	memcpy(m->p, p, n);
	m->n = n;
	m->file = file;
	m->index = index;
	/* MSH-9.1^MSH-9.2 read here: hq_msh_parse refuses some frames the converter takes */
	snprintf(m->type, sizeof m->type, "???^???");
	if (n > 8 && memcmp(p, "MSH", 3) == 0) {
		char fs = p[3], cs = p[4];
		size_t i = 3;
		for (int f = 1; f < 9 && i < n; i++)
			f += p[i] == fs;
		size_t c = i;
		while (c < n && p[c] != cs && p[c] != fs && p[c] != '\r')
			c++;
		size_t t = c + 1;
		while (t < n && p[t] != cs && p[t] != fs && p[t] != '\r')
			t++;
		if (c - i == 3 && t - c - 1 == 3)
			snprintf(m->type, sizeof m->type, "%.3s^%.3s", p + i, p + c + 1);
	}
}

static void
load(const char *file)
{
	FILE *fp = fopen(file, "rb");
	if (fp == NULL) {
		perror(file);
		exit(1);
	}
	char *buf = NULL, *cur = malloc(1 << 20);
	size_t len = 0, cap = 0, curn = 0, curcap = 1 << 20;
	char chunk[65536];
	size_t k;
	while ((k = fread(chunk, 1, sizeof chunk, fp)) > 0) {
		if (len + k > cap) {
			cap = (len + k) * 2;
			buf = realloc(buf, cap);
		}
		memcpy(buf + len, chunk, k);
		len += k;
	}
	fclose(fp);
	int index = 0;
	for (size_t i = 0; i < len;) {
		size_t s = i;
		while (i < len && buf[i] != '\r' && buf[i] != '\n')
			i++;
		size_t e = i;
		while (i < len && (buf[i] == '\r' || buf[i] == '\n'))
			i++;
		if (e - s >= 3 && (!memcmp(buf + s, "FHS", 3) || !memcmp(buf + s, "BHS", 3) ||
				   !memcmp(buf + s, "BTS", 3) || !memcmp(buf + s, "FTS", 3)))
			continue;
		if (e - s >= 3 && !memcmp(buf + s, "MSH", 3) && curn) {
			add_msg(file, index++, cur, curn);
			curn = 0;
		}
		if (curn + (e - s) + 1 > curcap) {
			curcap = (curn + e - s + 1) * 2;
			cur = realloc(cur, curcap);
		}
		memcpy(cur + curn, buf + s, e - s);
		curn += e - s;
		cur[curn++] = '\r';
	}
	add_msg(file, index, cur, curn);
	free(buf);
	free(cur);
}

/* CPU seconds of this (single-threaded) process: one core's work, whatever else the machine runs. */
static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
bench(const hq_fhir_opts *o, double seconds, long rounds, const char *types)
{
	int *pick = malloc((size_t)nmsgs * sizeof *pick), n = 0;
	size_t bytes = 0;
	for (int i = 0; i < nmsgs; i++) {
		if (!hq_fhir_supported(msgs[i].type, 3, msgs[i].type + 4, 3))
			continue;
		if (types && !strstr(types, (char[4]){msgs[i].type[0], msgs[i].type[1], msgs[i].type[2], 0}))
			continue;
		pick[n++] = i;
		bytes += msgs[i].n;
	}
	if (n == 0) {
		fprintf(stderr, "convert: no message of the types asked for\n");
		exit(1);
	}
	long done = 0, failed = 0;
	double start = now_s(), t = start;
	for (long r = 0; rounds > 0 ? r < rounds : t - start < seconds; r++) {
		for (int k = 0; k < n; k++) {
			char *body, why[256];
			size_t len;
			if (hq_fhir_render(msgs[pick[k]].p, msgs[pick[k]].n, o, &body, &len, NULL,
					   why, sizeof why) == 0)
				free(body);
			else
				failed++;
			done++;
		}
		t = now_s();
	}
	printf("%s: %d messages (%zu bytes avg), %ld conversions in %.2f CPU s: %.0f messages/s (%ld refused)\n",
	       types ? types : "all supported", n, bytes / (size_t)n, done, t - start,
	       (double)done / (t - start), failed);
	free(pick);
}

int
main(int argc, char **argv)
{
	hq_fhir_opts o;
	hq_tz *tz = NULL;
	double bench_s = 0;
	long rounds = 0;
	const char *types = NULL;
	char err[256];
	memset(&o, 0, sizeof o);
	for (int i = 0; i < 32; i++)
		o.key[i] = (unsigned char)(i * 7 + 1);
	int a = 1;
	for (; a < argc && argv[a][0] == '-'; a++) {
		if (!strcmp(argv[a], "-z") && a + 1 < argc) {
			if (hq_tz_load(argv[++a], NULL, &tz, err, sizeof err) != 0) {
				fprintf(stderr, "convert: %s\n", err);
				return 1;
			}
			o.tz = tz;
		} else if (!strcmp(argv[a], "-m") && a + 1 < argc) {
			o.max_entries = atoi(argv[++a]);
		} else if (!strcmp(argv[a], "-b") && a + 1 < argc) {
			bench_s = atof(argv[++a]);
		} else if (!strcmp(argv[a], "-n") && a + 1 < argc) {
			rounds = atol(argv[++a]);
		} else if (!strcmp(argv[a], "-t") && a + 1 < argc) {
			types = argv[++a];
		} else {
			fprintf(stderr, "usage: convert [-z ZONE] [-m MAX] [-b SECONDS | -n ROUNDS] [-t TYPES] FILE...\n");
			return 1;
		}
	}
	for (; a < argc; a++)
		load(argv[a]);
	if (bench_s > 0 || rounds > 0) {
		bench(&o, bench_s, rounds, types);
		return 0;
	}
	for (int i = 0; i < nmsgs; i++) {
		char *body = NULL, why[256] = "";
		size_t len;
		int rc = hq_fhir_render(msgs[i].p, msgs[i].n, &o, &body, &len, NULL, why, sizeof why);
		const char *st = rc == 0		 ? "ok"
				 : rc == HQ_EUNSUPPORTED ? "unsupported"
				 : rc == HQ_ETOOBIG	 ? "too-big"
							 : "failed";
		json_t *line = json_pack("{s:s,s:i,s:s,s:s}", "file", msgs[i].file, "index",
					 msgs[i].index, "type", msgs[i].type, "rc", st);
		if (rc != 0)
			json_object_set_new(line, "why", json_string(why));
		char *head = json_dumps(line, JSON_COMPACT);
		json_decref(line);
		/* splice the Bundle text in verbatim (its numbers are as written) */
		head[strlen(head) - 1] = 0;
		printf("%s%s%s}\n", head, body ? ",\"bundle\":" : "", body ? body : "");
		free(head);
		free(body);
	}
	hq_tz_free(tz);
	return 0;
}
