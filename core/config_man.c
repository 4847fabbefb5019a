/*
 * config_man.c - the key list of hl7q.conf(5), rendered from the key
 * tables (config_keys.c): per section a tbl table of every key, its
 * default, and what it takes with its bounds.
 *
 * `make man-keys` writes this between the marker lines of
 * deploy/man/hl7q.conf.5, and tests/core/check_config.c fails when the
 * committed page holds anything else: the page cannot list a key, a
 * default or a range the reader does not have.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config_keys.h"

/* Writes s with the characters troff would take for its own escaped:
 * '-' as "\-" (a hyphen that copies as one), '\' as "\e". */
static void
put_text(FILE *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '-')
			fputs("\\-", out);
		else if (*s == '\\')
			fputs("\\e", out);
		else
			fputc(*s, out);
	}
}

/* A duration as its largest whole unit: "250ms", "30s", "5m", "24h", "7d". */
static void
duration_text(uint64_t ms, char *out, size_t cap)
{
	static const struct {
		uint64_t ms;
		const char *unit;
	} units[] = {{HQ_DAY_MS, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (ms % units[i].ms == 0) {
			snprintf(out, cap, "%llu%s", (unsigned long long)(ms / units[i].ms), units[i].unit);
			return;
		}
}

/* A number of k's type as the config writes it. */
static void
value_text(const hq_conf_key *k, uint64_t v, char *out, size_t cap)
{
	if (k->type == HQ_CT_DURATION && v != 0)
		duration_text(v, out, cap);
	else if (k->type == HQ_CT_SIZE)
		hq_conf_size_text(v, out, cap);
	else
		snprintf(out, cap, "%llu", (unsigned long long)v);
}

/* The default column of k. */
static void
default_text(const hq_conf_key *k, char *out, size_t cap)
{
	if (k->flags & HQ_CF_REQUIRED) {
		snprintf(out, cap, "required");
	} else if (k->shown) {
		snprintf(out, cap, "%s", k->shown);
	} else if (k->type == HQ_CT_ENUM) {
		snprintf(out, cap, "?");
		for (const hq_conf_enum *e = k->values; e->name; e++)
			if ((uint64_t)e->value == k->def)
				snprintf(out, cap, "%s", e->name);
	} else if (k->type == HQ_CT_INT || k->type == HQ_CT_SIZE || k->type == HQ_CT_DURATION) {
		value_text(k, k->def, out, cap);
	} else {
		snprintf(out, cap, "none");
	}
}

/* What k takes: its type and bounds. */
static void
takes_text(const hq_conf_key *k, char *out, size_t cap)
{
	static const char *const types[] = {[HQ_CT_STR] = "text",
					    [HQ_CT_PATH] = "a file",
					    [HQ_CT_URL] = "an http:// or https:// URL",
					    [HQ_CT_INT] = "a number",
					    [HQ_CT_SIZE] = "a size",
					    [HQ_CT_DURATION] = "a duration"};
	char lo[32], hi[32], zero[64] = "";
	if (k->accepts) {
		snprintf(out, cap, "%s", k->accepts);
	} else if (k->type == HQ_CT_ENUM) {
		hq_conf_enum_text(k->values, " | ", " | ", out, cap);
	} else if (k->type == HQ_CT_INT || k->type == HQ_CT_SIZE || k->type == HQ_CT_DURATION) {
		value_text(k, k->lo, lo, sizeof lo);
		value_text(k, k->hi, hi, sizeof hi);
		if (k->flags & HQ_CF_ZERO)
			snprintf(zero, sizeof zero, "0 (%s) or ", k->zero);
		snprintf(out, cap, "%s, %s%s to %s", types[k->type], zero, lo, hi);
	} else {
		snprintf(out, cap, "%s%s", types[k->type],
			 k->flags & HQ_CF_SECRET ? ", a secret (mode 0600)" : "");
	}
}

static void
write_section(FILE *out, const hq_conf_section *sec)
{
	char def[64], takes[200];
	fprintf(out, ".SS [%s%s]\n", sec->name, sec->kind == HQ_SEC_TOP ? "" : " NAME");
	put_text(out, sec->help);
	fputs("\n.TS\nlb l lx.\n", out);
	fputs("key\tdefault\tvalue, and what it does\n_\n", out);
	for (size_t i = 0; i < sec->nkeys; i++) {
		const hq_conf_key *k = &sec->keys[i];
		if (k->flags & HQ_CF_UNLISTED)
			continue;
		default_text(k, def, sizeof def);
		takes_text(k, takes, sizeof takes);
		put_text(out, k->name);
		fputc('\t', out);
		put_text(out, def);
		fputs("\tT{\n", out);
		put_text(out, takes);
		fputs("\n.br\n", out);
		put_text(out, k->help);
		fputs("\nT}\n", out);
	}
	fputs(".TE\n", out);
}

int
hq_conf_write_man(FILE *out)
{
	size_t n;
	const hq_conf_section *secs = hq_conf_sections(&n);
	fprintf(out, "%s\n", HQ_CONF_MAN_BEGIN);
	fputs(".SH KEYS\n"
	      "Every key of every section: its default and what it takes (the\n"
	      "reader refuses anything else, naming the file, the line and the key).\n"
	      "The sections below say what each does.\n",
	      out);
	for (size_t i = 0; i < n; i++)
		write_section(out, &secs[i]);
	fprintf(out, "%s\n", HQ_CONF_MAN_END);
	return ferror(out) ? (errno ? errno : EIO) : 0;
}
