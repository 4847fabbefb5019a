/*
 * conf_keys.c - prints the key list of hl7q.conf(5) from the config key
 * tables (core/config_keys.c), the part of deploy/man/hl7q.conf.5 between
 * its BEGIN KEYS and END KEYS lines.  Run by `make man-keys` (through
 * tools/man-keys.sh); not installed.
 */
#include <stdio.h>

#include "core/config_keys.h"

int
main(void)
{
	if (hq_conf_write_man(stdout) != 0 || fflush(stdout) != 0) {
		perror("conf_keys");
		return 1;
	}
	return 0;
}
