/*
 * fuzz_config.c - libFuzzer target for the config reader (core/config.c,
 * on libinih): any file loads, or fails with an error that names FILE:LINE.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/error.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	if (path[0] == 0)
		snprintf(path, sizeof path, "/tmp/hl7q-fuzz-config-%d.conf", (int)getpid());
	FILE *fp = fopen(path, "wb");
	if (fp == NULL)
		return 0;
	fwrite(data, 1, size, fp);
	fclose(fp);
	hq_config cfg;
	int rc = hq_config_load(path, &cfg);
	if (rc != 0) {
		size_t n = strlen(path);
		if (strncmp(cfg.err, path, n) != 0 || cfg.err[n] != ':')
			abort(); /* every error names the file and line */
	} else {
		char err[1300];
		(void)hq_config_check_secrets(&cfg, err, sizeof err);
		for (int i = 0; i < cfg.nlisteners; i++) {
			struct sockaddr_storage ss;
			memset(&ss, 0, sizeof ss);
			ss.ss_family = AF_INET;
			(void)hq_listener_allows(&cfg.listeners[i], &ss);
		}
	}
	hq_config_free(&cfg);
	return 0;
}
