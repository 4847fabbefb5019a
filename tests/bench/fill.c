/*
 * fill DIR N - writes N synthetic ADT/ORU/ORM messages (about 600 bytes
 * each) into a fresh journal at DIR through hl7q's own journal code, as
 * hl7qd would store them: 1,000 per commit, a delivery record each for
 * target "warehouse" marked delivered, and the deferred control-id and
 * patient indexes built.  Control ids are CTRL0000001..., patients P000001
 * ... (10 messages each), received times one per 0.864 s ending now.  For
 * the lookup benchmark of `make bench` (tests/bench/lookup.py).
 *
 * fill DIR N --pending leaves every delivery pending instead: a backlog of
 * N for the /metrics scrape benchmark (tests/bench/scrape.py).
 *
 * fill DIR N --retry SECS marks every delivery as a retry (one failed
 * attempt, HTTP 503) due SECS seconds from now: the not-due retries of the
 * retry benchmark (tests/bench/retry.sh).  --target NAME names the target
 * (default "warehouse"); --key FILE seals the journal with the keys of FILE
 * (encryption_key_file's format), as hl7qd with encryption would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/clock.h"
#include "core/error.h"
#include "queue/journal.h"

#define BATCH 1000


#define S(x) ((hq_str){(x), strlen(x)})

int
main(int argc, char **argv)
{
	static const char *types[] = {"ADT^A01^ADT_A01", "ADT^A08^ADT_A01", "ORU^R01^ORU_R01", "ORM^O01^ORM_O01"};
	int pending = 0, bad = argc < 3;
	long retry_s = -1;
	const char *target = "warehouse", *key = NULL;
	for (int a = 3; a < argc && !bad; a++) {
		if (strcmp(argv[a], "--pending") == 0)
			pending = 1;
		else if (strcmp(argv[a], "--retry") == 0 && a + 1 < argc)
			retry_s = strtol(argv[++a], NULL, 10);
		else if (strcmp(argv[a], "--target") == 0 && a + 1 < argc)
			target = argv[++a];
		else if (strcmp(argv[a], "--key") == 0 && a + 1 < argc)
			key = argv[++a];
		else
			bad = 1;
	}
	if (bad || (pending && retry_s >= 0)) {
		fprintf(stderr, "usage: fill DIR N [--pending | --retry SECS] [--target NAME] [--key FILE]\n");
		return 2;
	}
	uint64_t n = strtoull(argv[2], NULL, 10), end = hq_wall_us(), start = end - n * 864000;
	hq_journal *j;
	int rc = hq_journal_open(argv[1], (uint64_t)8 << 30, 0, &j);
	if (rc) {
		fprintf(stderr, "fill: %s: %s\n", argv[1], hq_strerror(rc));
		return 1;
	}
	char err[256];
	if (key && hq_journal_set_keys(j, key, err, sizeof err)) {
		fprintf(stderr, "fill: %s\n", err);
		return 1;
	}
	static hq_outcome outs[BATCH];
	char raw[1024], ctrl[32], pat[32];
	for (uint64_t i = 0; i < n; i += BATCH) {
		hq_batch *b;
		if ((rc = hq_batch_begin(j, &b))) {
			fprintf(stderr, "fill: %s\n", hq_strerror(rc));
			return 1;
		}
		size_t k = 0;
		for (; k < BATCH && i + k < n; k++) {
			uint64_t m = i + k + 1, id;
			const char *type = types[m % 4];
			snprintf(ctrl, sizeof ctrl, "CTRL%07llu", (unsigned long long)m);
			snprintf(pat, sizeof pat, "P%06llu", (unsigned long long)(m % (n / 10 + 1)));
			int len = snprintf(
				raw, sizeof raw,
				"MSH|^~\\&|EPIC|HOSP|WAREHOUSE|DW|20261126120000||%s|%s|P|2.5.1\r"
				"EVN|A01|20261126120000\r"
				"PID|1||%s^^^HOSP^MR||SYNTHETIC^PATIENT^ONE||19700101|U|||1 MAIN ST^^TOWN^ST^00000\r"
				"PV1|1|I|WARD^101^1^HOSP||||1234^DOCTOR^ONE|||MED||||1|||1234^DOCTOR^ONE|IN|V%llu\r"
				"OBX|1|TX|NOTE^Note||Synthetic benchmark message, no patient data. Padding padding padding padding padding padding padding padding padding.||||||F\r"
				"NTE|1||Synthetic benchmark message number %llu, written by tests/bench/fill.c for the lookup benchmark.\r",
				type, ctrl, pat, (unsigned long long)m, (unsigned long long)m);
			hq_record r;
			memset(&r, 0, sizeof r);
			r.received_us = start + m * 864000;
			r.state = HQ_MSG_ACCEPTED;
			memcpy(r.ack, "AA", 3);
			r.f[HQ_F_LISTENER] = S("epic");
			r.f[HQ_F_PEER] = S("10.0.1.15:40112");
			r.f[HQ_F_SENDING_APP] = S("EPIC");
			r.f[HQ_F_SENDING_FAC] = S("HOSP");
			r.f[HQ_F_RECEIVING_APP] = S("WAREHOUSE");
			r.f[HQ_F_RECEIVING_FAC] = S("DW");
			r.f[HQ_F_TYPE] = S(type);
			r.f[HQ_F_CONTROL_ID] = S(ctrl);
			r.f[HQ_F_VERSION] = S("2.5.1");
			r.f[HQ_F_PATIENT_ID] = S(pat);
			r.f[HQ_F_ACK_ID] = S("ACK1");
			r.f[HQ_F_RAW] = (hq_str){raw, (size_t)len};
			if ((rc = hq_batch_add(b, &r, NULL, &id)) ||
			    (rc = hq_batch_add_delivery(b, id, target, r.received_us)))
				break;
			memset(&outs[k], 0, sizeof outs[k]);
			outs[k].id = id;
			outs[k].state = HQ_DLV_DELIVERED;
			outs[k].at_us = r.received_us + 20000;
			outs[k].http_status = 200;
			outs[k].latency_us = 15000;
			snprintf(outs[k].error, sizeof outs[k].error, "HTTP 200");
			if (retry_s >= 0) {
				outs[k].state = HQ_DLV_RETRY;
				outs[k].at_us = end;
				outs[k].next_us = end + (uint64_t)retry_s * 1000000;
				outs[k].http_status = 503;
				snprintf(outs[k].error, sizeof outs[k].error, "HTTP 503");
			}
		}
		if (rc || (rc = hq_batch_commit(b)) ||
		    (!pending && (rc = hq_journal_record_outcomes(j, target, outs, k)))) {
			fprintf(stderr, "fill: %s\n", hq_strerror(rc));
			return 1;
		}
	}
	long done;
	while ((done = hq_journal_index(j, 65536)) > 0)
		;
	if (done < 0) {
		fprintf(stderr, "fill: indexing: %s\n", hq_strerror((int)done));
		return 1;
	}
	hq_journal_close(j);
	return 0;
}
