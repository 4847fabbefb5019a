/*
 * metrics.c - counters, histograms and their Prometheus text (see
 * metrics.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "metrics.h"
#include "silence.h"

hq_metrics hq_m = {.journal_writable = 1};

/* Upper bounds: latency in microseconds (0.5 ms .. 10 s), batch sizes in frames. */
static const uint64_t us_bounds[HQ_HIST_BUCKETS - 1] = {
	500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, 10000000};
static const uint64_t item_bounds[HQ_HIST_BUCKETS - 1] = {1,  2,   4,	8,   16,  32,
							  64, 128, 256, 512, 1024};

static void
observe(hq_hist *h, const uint64_t *bounds, uint64_t v)
{
	int i = 0;
	while (i < HQ_HIST_BUCKETS - 1 && v > bounds[i])
		i++;
	__atomic_fetch_add(&h->bucket[i], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->sum, v, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->count, 1, __ATOMIC_RELAXED);
}

void
hq_hist_observe_us(hq_hist *h, uint64_t us)
{
	observe(h, us_bounds, us);
}

void
hq_hist_observe_items(hq_hist *h, uint64_t n)
{
	observe(h, item_bounds, n);
}

void
hq_metrics_answered(hq_listener_metrics *m, uint64_t received_us, int accepted)
{
	uint64_t now = hq_wall_us();
	hq_hist_observe_us(&m->ack_latency, now > received_us ? now - received_us : 0);
	if (!accepted)
		return;
	/* keep the latest: two threads never race here today, but a max is cheap */
	uint64_t was = __atomic_load_n(&m->last_message_us, __ATOMIC_RELAXED);
	while (was < received_us && !__atomic_compare_exchange_n(&m->last_message_us, &was, received_us,
								 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

int
hq_metrics_listener_silent(const hq_listener_metrics *l, uint64_t now_us, uint64_t *quiet_us)
{
	return hq_silence_eval(__atomic_load_n(&l->last_message_us, __ATOMIC_RELAXED), now_us,
			       __atomic_load_n(&l->expect_within_ms, __ATOMIC_RELAXED),
			       __atomic_load_n(&l->expect_from_min, __ATOMIC_RELAXED),
			       __atomic_load_n(&l->expect_to_min, __ATOMIC_RELAXED), quiet_us);
}

hq_listener_metrics *
hq_metrics_listener(const char *name)
{
	int n = __atomic_load_n(&hq_m.nlisteners, __ATOMIC_ACQUIRE);
	for (int i = 0; i < n; i++)
		if (strcmp(hq_m.listeners[i].name, name) == 0)
			return &hq_m.listeners[i];
	if (n == 64)
		return &hq_m.listeners[63];
	snprintf(hq_m.listeners[n].name, sizeof hq_m.listeners[n].name, "%s", name);
	__atomic_store_n(&hq_m.nlisteners, n + 1, __ATOMIC_RELEASE);
	return &hq_m.listeners[n];
}

hq_target_metrics *
hq_metrics_target(const char *name)
{
	int n = __atomic_load_n(&hq_m.ntargets, __ATOMIC_ACQUIRE);
	for (int i = 0; i < n; i++)
		if (strcmp(hq_m.targets[i].name, name) == 0)
			return &hq_m.targets[i];
	if (n == 64)
		return &hq_m.targets[63];
	snprintf(hq_m.targets[n].name, sizeof hq_m.targets[n].name, "%s", name);
	__atomic_store_n(&hq_m.ntargets, n + 1, __ATOMIC_RELEASE);
	return &hq_m.targets[n];
}

int
hq_metrics_ack_index(const char *code)
{
	static const char *codes[] = {"AA", "AE", "AR", "CA", "CE", "CR"};
	for (int i = 0; i < 6; i++)
		if (strcmp(code, codes[i]) == 0)
			return i;
	return HQ_ACK_NONE;
}


static uint64_t
ld(const uint64_t *v)
{
	return __atomic_load_n(v, __ATOMIC_RELAXED);
}

void
hq_metrics_write_hist(hq_buf *b, const char *name, const char *help, const char *labels,
		      const hq_hist *h, int seconds)
{
	const uint64_t *bounds = seconds ? us_bounds : item_bounds;
	const char *sep = labels[0] ? "," : "";
	uint64_t cum = 0;
	if (help)
		hq_buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (int i = 0; i < HQ_HIST_BUCKETS - 1; i++) {
		cum += ld(&h->bucket[i]);
		if (seconds)
			hq_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
				      bounds[i] / 1e6, (unsigned long long)cum);
		else
			hq_buf_printf(b, "%s_bucket{%s%sle=\"%llu\"} %llu\n", name, labels, sep,
				      (unsigned long long)bounds[i], (unsigned long long)cum);
	}
	cum += ld(&h->bucket[HQ_HIST_BUCKETS - 1]);
	/* count is read last and is at least the buckets' total */
	uint64_t count = ld(&h->count);
	if (count < cum)
		count = cum;
	hq_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)count);
	if (seconds)
		hq_buf_printf(b, "%s_sum%s%s%s %.6f\n", name, labels[0] ? "{" : "", labels,
			      labels[0] ? "}" : "", ld(&h->sum) / 1e6);
	else
		hq_buf_printf(b, "%s_sum%s%s%s %llu\n", name, labels[0] ? "{" : "", labels,
			      labels[0] ? "}" : "", (unsigned long long)ld(&h->sum));
	hq_buf_printf(b, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels,
		      labels[0] ? "}" : "", (unsigned long long)count);
}

/* One counter family over the listeners. */
static void
listener_counter(hq_buf *b, const char *name, const char *help, size_t off)
{
	int n = __atomic_load_n(&hq_m.nlisteners, __ATOMIC_ACQUIRE);
	hq_buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
	for (int i = 0; i < n; i++)
		hq_buf_printf(b, "%s{listener=\"%s\"} %llu\n", name, hq_m.listeners[i].name,
			      (unsigned long long)ld((const uint64_t *)((const char *)&hq_m.listeners[i] + off)));
}

/* One counter family over the targets. */
static void
target_counter(hq_buf *b, const char *name, const char *help, size_t off)
{
	int n = __atomic_load_n(&hq_m.ntargets, __ATOMIC_ACQUIRE);
	hq_buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
	for (int i = 0; i < n; i++)
		hq_buf_printf(b, "%s{target=\"%s\"} %llu\n", name, hq_m.targets[i].name,
			      (unsigned long long)ld((const uint64_t *)((const char *)&hq_m.targets[i] + off)));
}

void
hq_metrics_write(hq_buf *b)
{
	static const char *codes[] = {"AA", "AE", "AR", "CA", "CE", "CR", "none"};
	int nl = __atomic_load_n(&hq_m.nlisteners, __ATOMIC_ACQUIRE);
	int nt = __atomic_load_n(&hq_m.ntargets, __ATOMIC_ACQUIRE);

	listener_counter(b, "hl7q_messages_received_total", "HL7 frames received, by listener.",
			 offsetof(hq_listener_metrics, received));
	hq_buf_printf(b, "# HELP hl7q_messages_acked_total Frames answered, by listener and ACK code "
			 "(none: MSH-15 asked for no ACK).\n# TYPE hl7q_messages_acked_total counter\n");
	for (int i = 0; i < nl; i++)
		for (int c = 0; c < HQ_ACK_CODES; c++)
			hq_buf_printf(b, "hl7q_messages_acked_total{listener=\"%s\",code=\"%s\"} %llu\n",
				      hq_m.listeners[i].name, codes[c],
				      (unsigned long long)ld(&hq_m.listeners[i].acked[c]));
	hq_buf_printf(b, "# HELP hl7q_messages_refused_total Frames answered negatively (AE, AR, CE, CR), by listener.\n"
			 "# TYPE hl7q_messages_refused_total counter\n");
	for (int i = 0; i < nl; i++) {
		const uint64_t *a = hq_m.listeners[i].acked;
		hq_buf_printf(b, "hl7q_messages_refused_total{listener=\"%s\"} %llu\n",
			      hq_m.listeners[i].name,
			      (unsigned long long)(ld(&a[HQ_ACK_AE]) + ld(&a[HQ_ACK_AR]) +
						   ld(&a[HQ_ACK_CE]) + ld(&a[HQ_ACK_CR])));
	}
	listener_counter(b, "hl7q_received_bytes_total", "Payload bytes of the frames received, by listener.",
			 offsetof(hq_listener_metrics, bytes));
	listener_counter(b, "hl7q_control_id_reused_total",
			 "Messages whose MSH-10 (same listener and sender) came again within duplicate_window "
			 "with other content: stored and delivered as new, by listener.",
			 offsetof(hq_listener_metrics, control_id_reused));
	listener_counter(b, "hl7q_connections_refused_total",
			 "Connections closed at once (over max_connections), by listener.",
			 offsetof(hq_listener_metrics, refused_connections));
	hq_buf_printf(b, "# HELP hl7q_connections_open MLLP connections open now, by listener.\n"
			 "# TYPE hl7q_connections_open gauge\n");
	for (int i = 0; i < nl; i++)
		hq_buf_printf(b, "hl7q_connections_open{listener=\"%s\"} %lld\n", hq_m.listeners[i].name,
			      (long long)__atomic_load_n(&hq_m.listeners[i].open, __ATOMIC_RELAXED));
	hq_buf_printf(b, "# HELP hl7q_listener_up 1 when the listener is bound and accepting.\n"
			 "# TYPE hl7q_listener_up gauge\n");
	for (int i = 0; i < nl; i++)
		hq_buf_printf(b, "hl7q_listener_up{listener=\"%s\"} %d\n", hq_m.listeners[i].name,
			      __atomic_load_n(&hq_m.listeners[i].up, __ATOMIC_RELAXED));

	for (int i = 0; i < nl; i++) {
		char labels[96];
		snprintf(labels, sizeof labels, "listener=\"%s\"", hq_m.listeners[i].name);
		hq_metrics_write_hist(b, "hl7q_ack_duration_seconds",
				      i == 0 ? "Time from a frame's last byte to its ACK ready to send "
					       "(the commit included), by listener."
					     : NULL,
				      labels, &hq_m.listeners[i].ack_latency, 1);
	}
	uint64_t now = hq_wall_us();
	hq_buf_printf(b, "# HELP hl7q_listener_last_message_timestamp_seconds When the listener last accepted "
			 "a message (Unix time; at start read from the journal, see hl7q.conf(5) expect_within).\n"
			 "# TYPE hl7q_listener_last_message_timestamp_seconds gauge\n");
	for (int i = 0; i < nl; i++)
		hq_buf_printf(b, "hl7q_listener_last_message_timestamp_seconds{listener=\"%s\"} %.3f\n",
			      hq_m.listeners[i].name, ld(&hq_m.listeners[i].last_message_us) / 1e6);
	hq_buf_printf(b, "# HELP hl7q_listener_expect_within_seconds The listener's expect_within (0: no silent-feed alarm).\n"
			 "# TYPE hl7q_listener_expect_within_seconds gauge\n");
	for (int i = 0; i < nl; i++)
		hq_buf_printf(b, "hl7q_listener_expect_within_seconds{listener=\"%s\"} %llu\n",
			      hq_m.listeners[i].name,
			      (unsigned long long)ld(&hq_m.listeners[i].expect_within_ms) / 1000);
	hq_buf_printf(b, "# HELP hl7q_listener_silent 1 when no message arrived for expect_within (inside expect_hours).\n"
			 "# TYPE hl7q_listener_silent gauge\n");
	for (int i = 0; i < nl; i++)
		hq_buf_printf(b, "hl7q_listener_silent{listener=\"%s\"} %d\n", hq_m.listeners[i].name,
			      hq_metrics_listener_silent(&hq_m.listeners[i], now, NULL));

	hq_metrics_write_hist(b, "hl7q_commit_batch_size",
			      "Frames per journal commit (group commit).", "", &hq_m.commit_batch, 0);
	hq_metrics_write_hist(b, "hl7q_commit_duration_seconds",
			      "Journal commit time (fsync included).", "", &hq_m.commit_latency, 1);
	hq_buf_printf(b,
		      "# HELP hl7q_commits_failed_total Journal commits that failed (their frames answered negatively).\n"
		      "# TYPE hl7q_commits_failed_total counter\nhl7q_commits_failed_total %llu\n",
		      (unsigned long long)ld(&hq_m.commits_failed));

	target_counter(b, "hl7q_delivery_attempts_total", "Delivery attempts, by target.",
		       offsetof(hq_target_metrics, attempts));
	hq_buf_printf(b, "# HELP hl7q_delivery_responses_total Delivery attempts by outcome class "
			 "(2xx, 4xx, 5xx, or network for no HTTP answer), by target.\n"
			 "# TYPE hl7q_delivery_responses_total counter\n");
	for (int i = 0; i < nt; i++) {
		const hq_target_metrics *t = &hq_m.targets[i];
		hq_buf_printf(b,
			      "hl7q_delivery_responses_total{target=\"%s\",class=\"2xx\"} %llu\n"
			      "hl7q_delivery_responses_total{target=\"%s\",class=\"4xx\"} %llu\n"
			      "hl7q_delivery_responses_total{target=\"%s\",class=\"5xx\"} %llu\n"
			      "hl7q_delivery_responses_total{target=\"%s\",class=\"network\"} %llu\n",
			      t->name, (unsigned long long)ld(&t->status_2xx), t->name,
			      (unsigned long long)ld(&t->status_4xx), t->name,
			      (unsigned long long)ld(&t->status_5xx), t->name,
			      (unsigned long long)ld(&t->network_errors));
	}
	target_counter(b, "hl7q_delivered_total", "Messages delivered since start, by target.",
		       offsetof(hq_target_metrics, delivered));
	target_counter(b, "hl7q_retries_total", "Attempts that will be retried, by target.",
		       offsetof(hq_target_metrics, retried));
	target_counter(b, "hl7q_dead_lettered_total", "Messages dead-lettered since start, by target.",
		       offsetof(hq_target_metrics, dead));
	for (int i = 0; i < nt; i++) {
		char labels[96];
		snprintf(labels, sizeof labels, "target=\"%s\"", hq_m.targets[i].name);
		hq_metrics_write_hist(b, "hl7q_delivery_duration_seconds",
				      i == 0 ? "Time of one delivery attempt, by target." : NULL,
				      labels, &hq_m.targets[i].latency, 1);
	}
}
