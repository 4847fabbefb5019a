/*
 * select.c - which messages ls, replay and purge take: --state's words,
 * the range checks, and the filters the journal's query does not know
 * (listener, sender, type pattern, the routing of a range replay),
 * applied as the query streams records and collecting their ids.
 */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/config.h"
#include "tools/hl7q/hl7q.h"

/*
 * The state words, one vocabulary with status and check: "pending" is
 * what they count as pending (waiting, retrying or in flight: not yet
 * delivered nor dead); "retry" just the retrying.  duplicate and unrouted
 * are intake's verdicts (no deliveries).  Returns 0, or 1 after saying why.
 */
int
parse_state(const char *s, int *state, int *msg_state)
{
	static const struct {
		const char *name;
		int v, msg;
	} names[] = {{"pending", HQ_STATE_QUEUED, 0},	 {"retry", HQ_DLV_RETRY, 0},
		     {"retrying", HQ_DLV_RETRY, 0},	 {"dead", HQ_DLV_DEAD, 0},
		     {"delivered", HQ_DLV_DELIVERED, 0}, {"rejected", HQ_STATE_REJECTED, 0},
		     {"duplicate", 0, HQ_MSG_DUPLICATE}, {"unrouted", 0, HQ_MSG_UNROUTED}};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(s, names[i].name) == 0) {
			*state = names[i].v;
			*msg_state = names[i].msg;
			return 0;
		}
	return fail("--state '%s': expected pending (includes retrying), retry, dead, delivered, rejected, duplicate or unrouted",
		    s);
}

int
check_range(const hq_query *q)
{
	if (q->since_us && q->until_us && q->since_us >= q->until_us)
		return fail("--since is not before --until: the range is empty");
	if (q->state == HQ_STATE_REJECTED && q->target)
		return fail("--state rejected and --target conflict: refused messages have no deliveries");
	return 0;
}


static int
str_is(hq_str f, const char *s)
{
	return f.n == strlen(s) && (f.n == 0 || memcmp(f.p, s, f.n) == 0);
}

/* Whether a range replay for c->route_to takes r: it has a delivery to that
 * target already, or the config routes such a message there. */
static int
routed(const collect *c, const hq_record *r, const hq_msg_dlv *d, size_t nd)
{
	for (size_t i = 0; i < nd; i++)
		if (strcmp(d[i].target, c->route_to) == 0)
			return 1;
	if (c->route_conf == NULL || (r->state != HQ_MSG_ACCEPTED && r->state != HQ_MSG_UNROUTED))
		return 0;
	char lis[64], type[64];
	field(r, HQ_F_TYPE, type, sizeof type);
	return hq_target_routes(c->route_conf, field(r, HQ_F_LISTENER, lis, sizeof lis), type, strlen(type));
}

/* Whether r passes the filters the journal's query does not know. */
int
collect_match(const collect *c, const hq_record *r, const hq_msg_dlv *d, size_t nd)
{
	for (size_t i = 0; c->need_settled && i < nd; i++)
		if (d[i].d.state == HQ_DLV_PENDING || d[i].d.state == HQ_DLV_RETRY)
			return 0;
	if (c->route_to && !routed(c, r, d, nd))
		return 0;
	if (c->msg_state && r->state != c->msg_state)
		return 0;
	if (c->listener && !str_is(r->f[HQ_F_LISTENER], c->listener))
		return 0;
	if (c->sender && !str_is(r->f[HQ_F_SENDING_APP], c->sender))
		return 0;
	if (c->type_pat && !hq_type_pattern_match(c->type_pat, r->f[HQ_F_TYPE].p ? r->f[HQ_F_TYPE].p : "",
						  r->f[HQ_F_TYPE].n))
		return 0;
	return 1;
}

int
collect_id(void *arg, const hq_record *r, const hq_msg_dlv *d, size_t nd)
{
	collect *c = arg;
	if (!collect_match(c, r, d, nd))
		return 0;
	c->total++;
	c->max_id = r->id > c->max_id ? r->id : c->max_id;
	if (c->keep && c->n >= c->keep)
		return c->limit && c->total >= c->limit;
	if (c->route_to) {
		int had = 0;
		for (size_t i = 0; i < nd && !had; i++)
			had = strcmp(d[i].target, c->route_to) == 0;
		if (had && c->only_missing)
			return 0;
		if (!had) {
			if (c->nv == NULL)
				c->nv = hq_xcalloc(NEVER_LIST, sizeof *c->nv);
			if (c->nn < NEVER_LIST)
				c->nv[c->nn++] = r->id;
			c->never_had++;
		}
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 1024;
		uint64_t *v = realloc(c->v, cap * sizeof *v);
		if (v == NULL)
			return 1;
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = r->id;
	return c->limit && c->total >= c->limit;
}
