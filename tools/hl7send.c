/*
 * hl7send - MLLP sender and load generator.
 *
 *   hl7send [-H HOST] -p PORT [-v] FILE...       send files, print each ACK code
 *   hl7send [-H HOST] -p PORT -g [-c CONNS] [-n COUNT | -d SECONDS] [-s BYTES] [-P PATIENTS]
 *                                                 generated ADT^A01 load: rate and
 *                                                 ACK latency percentiles
 *   hl7send [-H HOST] -p PORT --idle N [-d SECONDS]   hold N idle connections
 *
 * A file holds one message, several (split before each MSH segment), an
 * FHS/BHS batch (sent whole) or MLLP frames (sent as they are framed).
 * Exit status: 0 when every message got AA/CA, 1 when one got a negative
 * or no ACK, 2 on usage or connection errors.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "net/mllp.h"

static const char *host = "127.0.0.1";
static const char *port = NULL;
static int verbose = 0;


static int
connect_to(void)
{
	struct addrinfo hints = {0}, *res, *ai;
	int fd = -1, one = 1;

	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		fprintf(stderr, "hl7send: %s:%s: %s\n", host, port, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, 0);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		fprintf(stderr, "hl7send: cannot connect to %s:%s: %s\n", host, port, strerror(errno));
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Sends msg in one MLLP frame, in one system call when it fits. */
static int
send_frame(int fd, const char *msg, size_t len)
{
	static char buf[16384];
	char sb = HQ_MLLP_SB, end[2] = {HQ_MLLP_EB, HQ_MLLP_CR};
	if (len + 3 > sizeof buf)
		return write_all(fd, &sb, 1) || write_all(fd, msg, len) || write_all(fd, end, 2);
	buf[0] = sb;
	memcpy(buf + 1, msg, len);
	memcpy(buf + 1 + len, end, 2);
	return write_all(fd, buf, len + 3);
}

typedef struct ack_reader {
	hq_mllp mllp;
	char *ack;
	size_t len;
	int got;
} ack_reader;

static int
on_ack(void *arg, const char *p, size_t len, size_t total, int oversize)
{
	ack_reader *r = arg;
	free(r->ack);
	r->ack = malloc(len + 1);
	if (r->ack) {
		memcpy(r->ack, p, len);
		r->ack[len] = 0;
		r->len = len;
	}
	r->got = 1;
	return 1; /* one ACK at a time */
}

/* Reads one ACK frame (timeout_ms); returns 0 with r->ack set, -1 otherwise. */
static int
read_ack(int fd, ack_reader *r, int timeout_ms)
{
	static char buf[65536];
	static size_t have = 0, off = 0;
	r->got = 0;
	for (;;) {
		if (off < have) {
			long used = hq_mllp_feed(&r->mllp, buf + off, have - off, on_ack, r);
			off += (size_t)used;
			if (r->got)
				return 0;
		}
		struct pollfd pfd = {fd, POLLIN, 0};
		int pr = poll(&pfd, 1, timeout_ms);
		if (pr <= 0)
			return -1;
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n <= 0)
			return -1;
		have = (size_t)n;
		off = 0;
	}
}

/* Field k (1-based after the segment id) of segment seg ("MSA") in msg; "" when absent. */
static void
segment_field(const char *msg, const char *seg, int k, char *out, size_t cap)
{
	out[0] = 0;
	const char *p = msg;
	while (p && *p) {
		if (strncmp(p, seg, 3) == 0 && p[3]) {
			char fs = p[3];
			const char *q = p + 3;
			for (int i = 0; i < k; i++) {
				q = memchr(q, fs, strcspn(q, "\r\n"));
				if (q == NULL)
					return;
				q++;
			}
			size_t n = strcspn(q, "\r\n");
			const char *e = memchr(q, fs, n);
			if (e)
				n = (size_t)(e - q);
			if (n >= cap)
				n = cap - 1;
			memcpy(out, q, n);
			out[n] = 0;
			return;
		}
		p = strpbrk(p, "\r\n");
		if (p)
			while (*p == '\r' || *p == '\n')
				p++;
	}
}

static char *
read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	if (fp == NULL) {
		fprintf(stderr, "hl7send: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap);
	size_t r;
	while (buf && (r = fread(buf + n, 1, cap - n, fp)) > 0) {
		n += r;
		if (n == cap) {
			char *b = realloc(buf, cap *= 2);
			if (b == NULL) {
				free(buf);
				buf = NULL;
			}
			buf = b;
		}
	}
	fclose(fp);
	*len = n;
	return buf;
}

/* Sends one message and reports its ACK; returns 0 for AA/CA, 1 otherwise, 2 on I/O error. */
static int
send_one(int fd, ack_reader *r, const char *label, const char *msg, size_t len)
{
	char code[8], ctrl[128], err[256];
	if (send_frame(fd, msg, len) != 0) {
		fprintf(stderr, "hl7send: %s: send failed: %s\n", label, strerror(errno));
		return 2;
	}
	if (read_ack(fd, r, 30000) != 0) {
		printf("%s: no ACK\n", label);
		return 1;
	}
	segment_field(r->ack, "MSA", 1, code, sizeof code);
	segment_field(r->ack, "MSA", 2, ctrl, sizeof ctrl);
	segment_field(r->ack, "ERR", 3, err, sizeof err);
	if (err[0] == 0)
		segment_field(r->ack, "ERR", 1, err, sizeof err);
	printf("%s: %s %s%s%s\n", label, code, ctrl, err[0] ? " ERR " : "", err);
	if (verbose) {
		for (char *p = r->ack; *p; p++)
			putchar(*p == '\r' ? '\n' : *p);
		putchar('\n');
	}
	fflush(stdout);
	return (strcmp(code, "AA") == 0 || strcmp(code, "CA") == 0) ? 0 : 1;
}

static int
starts_segment(const char *buf, size_t i, const char *id)
{
	return (i == 0 || buf[i - 1] == '\r' || buf[i - 1] == '\n') && strncmp(buf + i, id, 3) == 0;
}

static int
send_files(char **files, int nfiles)
{
	int worst = 0;
	int fd = connect_to();
	if (fd < 0)
		return 2;
	ack_reader r;
	memset(&r, 0, sizeof r);
	hq_mllp_init(&r.mllp, 1 << 20);
	for (int i = 0; i < nfiles && worst < 2; i++) {
		size_t len;
		char *buf = read_file(files[i], &len);
		if (buf == NULL) {
			worst = 2;
			break;
		}
		char label[1200];
		if (memchr(buf, HQ_MLLP_SB, len)) {
			/* Already framed: send as is, one ACK per start byte. */
			int frames = 0;
			for (size_t k = 0; k < len; k++)
				frames += buf[k] == HQ_MLLP_SB;
			if (write_all(fd, buf, len) != 0)
				worst = 2;
			for (int k = 0; k < frames && worst < 2; k++) {
				snprintf(label, sizeof label, "%s#%d", files[i], k + 1);
				if (read_ack(fd, &r, 30000) != 0) {
					printf("%s: no ACK\n", label);
					worst = worst < 1 ? 1 : worst;
					break;
				}
				char code[8];
				segment_field(r.ack, "MSA", 1, code, sizeof code);
				printf("%s: %s\n", label, code);
				if (strcmp(code, "AA") && strcmp(code, "CA") && worst < 1)
					worst = 1;
			}
		} else if (len >= 3 && (strncmp(buf, "FHS", 3) == 0 || strncmp(buf, "BHS", 3) == 0)) {
			int rc = send_one(fd, &r, files[i], buf, len);
			worst = rc > worst ? rc : worst;
		} else {
			/* Split before each MSH that starts a segment. */
			size_t start = 0;
			int part = 0, parts = 0;
			for (size_t k = 0; k + 3 <= len; k++)
				parts += starts_segment(buf, k, "MSH");
			for (size_t k = 1; k <= len && worst < 2; k++) {
				if (k == len || (k + 3 <= len && starts_segment(buf, k, "MSH"))) {
					part++;
					if (parts > 1)
						snprintf(label, sizeof label, "%s#%d", files[i], part);
					else
						snprintf(label, sizeof label, "%s", files[i]);
					int rc = send_one(fd, &r, label, buf + start, k - start);
					worst = rc > worst ? rc : worst;
					start = k;
				}
			}
		}
		free(buf);
	}
	hq_mllp_free(&r.mllp);
	free(r.ack);
	close(fd);
	return worst;
}

/* --- load generation ------------------------------------------------- */

typedef struct gen_conn {
	int fd;
	uint64_t sent_at;
	uint64_t seq;
	int busy;
	hq_mllp mllp;
	int acked, nacked;
} gen_conn;

static uint32_t *lat;
static size_t nlat, caplat;
static uint64_t g_nack;

static int
on_gen_ack(void *arg, const char *p, size_t len, size_t total, int oversize)
{
	gen_conn *c = arg;
	uint64_t d = hq_mono_us() - c->sent_at;
	if (nlat == caplat) {
		caplat = caplat ? caplat * 2 : 1 << 16;
		lat = realloc(lat, caplat * sizeof *lat);
		if (lat == NULL) {
			fprintf(stderr, "hl7send: out of memory\n");
			exit(2);
		}
	}
	lat[nlat++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
	const char *msa = memmem(p, len, "MSA|", 4);
	if (msa == NULL || (size_t)(msa - p) + 6 > len ||
	    (strncmp(msa + 4, "AA", 2) != 0 && strncmp(msa + 4, "CA", 2) != 0))
		g_nack++;
	c->busy = 0;
	return 0;
}

/* --patients N: generated messages cycle through N patients (0: one each). */
static uint64_t g_patients;

static size_t
make_message(char *buf, size_t cap, size_t size, int conn, uint64_t seq)
{
	int pconn = conn;
	unsigned long long pseq = seq;
	if (g_patients) {
		static uint64_t next;
		uint64_t k = __atomic_fetch_add(&next, 1, __ATOMIC_RELAXED) % g_patients;
		pconn = 0;
		pseq = k;
	}
	int n = snprintf(buf, cap,
			 "MSH|^~\\&|HL7SEND|BENCH|HL7Q|LOCAL|20261126120000||ADT^A01^ADT_A01|B%d-%llu|P|2.5.1\r"
			 "EVN|A01|20261126120000\r"
			 "PID|1||T%06d%llu^^^BENCH^MR||TESTPATIENT^SYNTHETIC||19700101|U\r"
			 "PV1|1|I|WARD^1^1\r"
			 "NTE|1||",
			 conn, (unsigned long long)seq, pconn, pseq);
	size_t len = (size_t)n;
	while (len + 1 < size && len + 1 < cap)
		buf[len++] = 'x';
	buf[len++] = '\r';
	return len;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int
generate(int conns, uint64_t count, double seconds, size_t size)
{
	gen_conn *cs = calloc((size_t)conns, sizeof *cs);
	int ep = epoll_create1(0);
	char *msg = malloc(size + 512);
	uint64_t sent = 0, t0, deadline = 0;
	static char buf[65536];

	if (cs == NULL || msg == NULL || ep < 0)
		return 2;
	for (int i = 0; i < conns; i++) {
		cs[i].fd = connect_to();
		if (cs[i].fd < 0)
			return 2;
		hq_mllp_init(&cs[i].mllp, 65536);
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
		epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
	}
	t0 = hq_mono_us();
	if (seconds > 0)
		deadline = t0 + (uint64_t)(seconds * 1e6);
	int inflight = 0;
	for (;;) {
		int more = count ? sent < count : hq_mono_us() < deadline;
		for (int i = 0; i < conns && more; i++) {
			gen_conn *c = &cs[i];
			if (c->busy)
				continue;
			size_t len = make_message(msg, size + 512, size, i, ++c->seq);
			c->busy = 1;
			c->sent_at = hq_mono_us();
			if (send_frame(c->fd, msg, len) != 0) {
				fprintf(stderr, "hl7send: send: %s\n", strerror(errno));
				return 2;
			}
			sent++;
			inflight++;
			more = count ? sent < count : hq_mono_us() < deadline;
		}
		if (inflight == 0 && !more)
			break;
		struct epoll_event evs[256];
		int n = epoll_wait(ep, evs, 256, 30000);
		if (n <= 0) {
			fprintf(stderr, "hl7send: no ACK for 30 s\n");
			return 2;
		}
		for (int i = 0; i < n; i++) {
			gen_conn *c = evs[i].data.ptr;
			ssize_t r = recv(c->fd, buf, sizeof buf, 0);
			if (r <= 0) {
				fprintf(stderr, "hl7send: connection closed by the server\n");
				return 2;
			}
			size_t before = nlat;
			hq_mllp_feed(&c->mllp, buf, (size_t)r, on_gen_ack, c);
			inflight -= (int)(nlat - before);
		}
	}
	double secs = (double)(hq_mono_us() - t0) / 1e6;
	qsort(lat, nlat, sizeof *lat, cmp_u32);
	double p50 = nlat ? lat[nlat / 2] / 1000.0 : 0;
	double p99 = nlat ? lat[(size_t)(nlat * 0.99)] / 1000.0 : 0;
	double p999 = nlat ? lat[(size_t)(nlat * 0.999)] / 1000.0 : 0;
	printf("hl7send: %d connections, %llu messages of %zu bytes in %.2f s: %.0f msg/s, "
	       "ACK latency p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, %llu negative\n",
	       conns, (unsigned long long)nlat, size, secs, nlat / secs, p50, p99, p999,
	       (unsigned long long)g_nack);
	printf("result conns=%d messages=%llu seconds=%.3f rate=%.0f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f negative=%llu\n",
	       conns, (unsigned long long)nlat, secs, nlat / secs, p50, p99, p999, (unsigned long long)g_nack);
	for (int i = 0; i < conns; i++)
		close(cs[i].fd);
	return g_nack ? 1 : 0;
}

static volatile sig_atomic_t g_stop;

static void
on_term(int sig)
{
	(void)sig;
	g_stop = 1;
}

static int
hold_idle(int n, double seconds)
{
	int *fds = calloc((size_t)n, sizeof *fds);
	if (fds == NULL)
		return 2;
	for (int i = 0; i < n; i++) {
		fds[i] = connect_to();
		if (fds[i] < 0)
			return 2;
	}
	printf("hl7send: %d idle connections open\n", n);
	fflush(stdout);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	uint64_t end = hq_mono_us() + (uint64_t)(seconds * 1e6);
	while (!g_stop && (seconds <= 0 || hq_mono_us() < end))
		usleep(50000);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	return 0;
}

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: hl7send [-H HOST] -p PORT [-v] FILE...\n"
		    "       hl7send [-H HOST] -p PORT -g [-c CONNS] [-n COUNT | -d SECONDS] [-s BYTES] [-P PATIENTS]\n"
		    "       hl7send [-H HOST] -p PORT --idle N [-d SECONDS]\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"host", required_argument, NULL, 'H'},
		{"port", required_argument, NULL, 'p'},
		{"generate", no_argument, NULL, 'g'},
		{"connections", required_argument, NULL, 'c'},
		{"count", required_argument, NULL, 'n'},
		{"duration", required_argument, NULL, 'd'},
		{"size", required_argument, NULL, 's'},
		{"idle", required_argument, NULL, 'I'},
		{"patients", required_argument, NULL, 'P'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int gen = 0, conns = 1, idle = 0, c;
	uint64_t count = 0;
	double seconds = 0;
	size_t size = 1024;

	while ((c = getopt_long(argc, argv, "H:p:gc:n:d:s:P:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'H': host = optarg; break;
		case 'p': port = optarg; break;
		case 'g': gen = 1; break;
		case 'c': conns = atoi(optarg); break;
		case 'n': count = strtoull(optarg, NULL, 10); break;
		case 'd': seconds = atof(optarg); break;
		case 's': size = (size_t)strtoull(optarg, NULL, 10); break;
		case 'I': idle = atoi(optarg); break;
		case 'P': g_patients = strtoull(optarg, NULL, 10); break;
		case 'v': verbose = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (port == NULL) {
		fprintf(stderr, "hl7send: -p PORT is required\n");
		usage(stderr);
		return 2;
	}
	if (idle > 0)
		return hold_idle(idle, seconds);
	if (gen) {
		if (conns < 1 || (count == 0 && seconds <= 0) || size < 200) {
			fprintf(stderr, "hl7send: -g needs -c >= 1, -n or -d, and -s >= 200\n");
			return 2;
		}
		return generate(conns, count, seconds, size);
	}
	if (optind >= argc) {
		fprintf(stderr, "hl7send: no FILE to send (or -g to generate)\n");
		usage(stderr);
		return 2;
	}
	return send_files(argv + optind, argc - optind);
}
