/*
 * hl7sink - a small HTTP/HTTPS receiver for demos and tests (libmicrohttpd).
 *
 *   hl7sink -p PORT -d DIR [-H ADDR] [--status CODE [--for SECONDS]]
 *           [--delay MS] [--cert PEM --key PEM]
 *
 * Stores every request it accepts (answers 2xx) as DIR/NNNNNN.head (method,
 * path, then one header per line) and DIR/NNNNNN.body (the body exactly),
 * and logs every request to DIR/requests.log ("seq status path").
 * --status CODE answers CODE instead of 200, for SECONDS from start (or
 * always): an outage to play.  A Retry-After: 1 goes with 429 and 503.
 * Port 0 picks a free port; the port is printed on stdout once listening.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <getopt.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/file.h"

typedef struct request {
	char *body;
	size_t len, cap;
} request;

static const char *dir = ".";
static int fail_status = 0;
static double fail_for = -1; /* seconds; < 0: always */
static long delay_ms = 0;
static struct timespec started;
static unsigned long seq;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t stop;

static double
elapsed(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - started.tv_sec) + (now.tv_nsec - started.tv_nsec) / 1e9;
}

static enum MHD_Result
write_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	fprintf((FILE *)cls, "%s: %s\n", key, value ? value : "");
	return MHD_YES;
}

static int
store(struct MHD_Connection *conn, const char *method, const char *url, request *r, unsigned long n)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%06lu.head.tmp", dir, n);
	FILE *fp = fopen(path, "w");
	if (fp == NULL)
		return -1;
	fprintf(fp, "%s %s\n", method, url);
	MHD_get_connection_values(conn, MHD_HEADER_KIND, write_header, fp);
	fclose(fp);
	char body[4096];
	snprintf(body, sizeof body, "%s/%06lu.body", dir, n);
	fp = fopen(body, "wb");
	if (fp == NULL)
		return -1;
	if (r->len && fwrite(r->body, 1, r->len, fp) != r->len) {
		fclose(fp);
		return -1;
	}
	fclose(fp);
	/* the .head appears last and whole: readers wait for it */
	char head[4096];
	snprintf(head, sizeof head, "%s/%06lu.head", dir, n);
	return rename(path, head);
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
       const char *version, const char *upload, size_t *upload_size, void **state)
{
	request *r = *state;
	if (r == NULL) {
		r = hq_xcalloc(1, sizeof *r);
		*state = r;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		if (r->len + *upload_size > r->cap) {
			size_t cap = r->cap ? r->cap : 4096;
			while (cap < r->len + *upload_size)
				cap *= 2;
			char *b = realloc(r->body, cap);
			if (b == NULL)
				return MHD_NO;
			r->body = b;
			r->cap = cap;
		}
		memcpy(r->body + r->len, upload, *upload_size);
		r->len += *upload_size;
		*upload_size = 0;
		return MHD_YES;
	}
	if (delay_ms > 0)
		usleep((useconds_t)delay_ms * 1000);
	int status = 200;
	if (fail_status && (fail_for < 0 || elapsed() < fail_for))
		status = fail_status;
	pthread_mutex_lock(&lock);
	unsigned long n = ++seq;
	if (status >= 200 && status < 300 && store(conn, method, url, r, n) != 0)
		status = 500;
	char logpath[4096];
	snprintf(logpath, sizeof logpath, "%s/requests.log", dir);
	FILE *log = fopen(logpath, "a");
	if (log) {
		fprintf(log, "%lu %d %s\n", n, status, url);
		fclose(log);
	}
	pthread_mutex_unlock(&lock);
	static const char ok[] = "{\"status\":\"stored\"}";
	static const char no[] = "{\"status\":\"refused by hl7sink\"}";
	const char *text = status < 300 ? ok : no;
	struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), (void *)text,
								    MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(resp, "Content-Type", "application/json");
	if (status == 429 || status == 503)
		MHD_add_response_header(resp, "Retry-After", "1");
	enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void
done(void *cls, struct MHD_Connection *conn, void **state, enum MHD_RequestTerminationCode c)
{
	request *r = *state;
	if (r) {
		free(r->body);
		free(r);
	}
	*state = NULL;
}

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"port", required_argument, NULL, 'p'}, {"dir", required_argument, NULL, 'd'},
		{"host", required_argument, NULL, 'H'}, {"status", required_argument, NULL, 's'},
		{"for", required_argument, NULL, 'f'},	{"delay", required_argument, NULL, 'D'},
		{"cert", required_argument, NULL, 'c'}, {"key", required_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},	{NULL, 0, NULL, 0},
	};
	int port = -1, c;
	const char *cert = NULL, *key = NULL;
	while ((c = getopt_long(argc, argv, "p:d:H:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': port = atoi(optarg); break;
		case 'd': dir = optarg; break;
		case 'H': break; /* loopback only: see below */
		case 's': fail_status = atoi(optarg); break;
		case 'f': fail_for = atof(optarg); break;
		case 'D': delay_ms = atol(optarg); break;
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 'h':
			printf("usage: hl7sink -p PORT -d DIR [--status CODE [--for S]] [--delay MS] [--cert PEM --key PEM]\n");
			return 0;
		default: return 2;
		}
	}
	if (port < 0 || port > 65535 || (fail_status && (fail_status < 100 || fail_status > 599)) ||
	    (!cert) != (!key)) {
		fprintf(stderr, "hl7sink: need -p PORT (0 picks one), a --status from 100 to 599, and --cert with --key\n");
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &started);
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct MHD_Daemon *d;
	if (cert) {
		char *cpem = hq_read_file(cert, NULL), *kpem = hq_read_file(key, NULL);
		if (cpem == NULL || kpem == NULL) {
			fprintf(stderr, "hl7sink: cannot read %s or %s\n", cert, key);
			return 2;
		}
		d = MHD_start_daemon(flags | MHD_USE_TLS, (uint16_t)port, NULL, NULL, handle, NULL,
				     MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_HTTPS_MEM_CERT, cpem,
				     MHD_OPTION_HTTPS_MEM_KEY, kpem, MHD_OPTION_NOTIFY_COMPLETED,
				     done, NULL, MHD_OPTION_END);
	} else {
		d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handle, NULL, MHD_OPTION_SOCK_ADDR,
				     &sa, MHD_OPTION_NOTIFY_COMPLETED, done, NULL, MHD_OPTION_END);
	}
	if (d == NULL) {
		fprintf(stderr, "hl7sink: cannot listen on 127.0.0.1:%d\n", port);
		return 1;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	printf("hl7sink: listening on 127.0.0.1:%u (%s), storing in %s\n",
	       info ? info->port : (unsigned)port, cert ? "https" : "http", dir);
	fflush(stdout);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	while (!stop)
		pause();
	MHD_stop_daemon(d);
	return 0;
}
