/*
 * record.c - the stored forms of the journal's values: a message record,
 * a small value (id, counter) and a delivery record, and the keys of the
 * queue databases.
 *
 * Every stored value starts with a version byte (REC_FORMAT, VAL_FORMAT);
 * a reader refuses a byte it does not know (HQ_ECORRUPT) rather than
 * guess, and a newer writer only ever appends fields an older reader
 * skips (see the record format at the top of journal.c).  Pure byte
 * work: no transactions here.
 */
#include <string.h>

#include "journal_int.h"

void
jnl_put_val(unsigned char *p, uint64_t v)
{
	p[0] = VAL_FORMAT;
	put_be64(p + 1, v);
}

/* The be64 of a small value; 0 when it is not one this code knows. */
uint64_t
jnl_get_val(const MDB_val *v)
{
	const unsigned char *p = v->mv_data;
	if (v->mv_size < 9 || p[0] != VAL_FORMAT)
		return 0;
	return get_be64(p + 1);
}

size_t
jnl_encoded_size(const hq_record *r)
{
	size_t n = REC_HEADER;
	for (int i = 0; i < HQ_F_COUNT; i++)
		n += 4 + r->f[i].n;
	return n;
}

void
jnl_encode(const hq_record *r, unsigned char *p)
{
	p[0] = REC_FORMAT;
	put_be64(p + 1, r->id);
	put_be64(p + 9, r->received_us);
	p[17] = r->state;
	p[18] = r->is_batch;
	p[19] = (unsigned char)r->ack[0];
	p[20] = (unsigned char)r->ack[1];
	p[21] = (unsigned char)(r->err_code >> 8);
	p[22] = (unsigned char)r->err_code;
	put_be64(p + 23, r->dup_of);
	/* p[31] is nfields */
	p += REC_HEADER - 1;
	*p++ = HQ_F_COUNT;
	for (int i = 0; i < HQ_F_COUNT; i++) {
		put_be32(p, (uint32_t)r->f[i].n);
		p += 4;
		if (r->f[i].n)
			memcpy(p, r->f[i].p, r->f[i].n);
		p += r->f[i].n;
	}
}

/*
 * Reads count [be32 length][bytes] items from p[0..n) into out[0..nout)
 * (items past nout are skipped: a newer writer's fields).  Returns 0 or
 * HQ_ECORRUPT when an item runs past the end.
 */
int
jnl_split_fields(const unsigned char *p, size_t n, unsigned count, hq_str *out, size_t nout)
{
	size_t off = 0;
	for (unsigned i = 0; i < count; i++) {
		if (off + 4 > n)
			return HQ_ECORRUPT;
		uint32_t len = get_be32(p + off);
		off += 4;
		if (len > n - off)
			return HQ_ECORRUPT;
		if (i < nout)
			out[i] = (hq_str){(const char *)p + off, len};
		off += len;
	}
	return 0;
}

int
jnl_decode(const unsigned char *p, size_t n, hq_record *r)
{
	memset(r, 0, sizeof *r);
	if (n < REC_HEADER || p[0] != REC_FORMAT)
		return HQ_ECORRUPT;
	r->id = get_be64(p + 1);
	r->received_us = get_be64(p + 9);
	r->state = p[17];
	r->is_batch = p[18];
	r->ack[0] = (char)p[19];
	r->ack[1] = (char)p[20];
	r->ack[2] = 0;
	r->err_code = (uint16_t)(p[21] << 8 | p[22]);
	r->dup_of = get_be64(p + 23);
	return jnl_split_fields(p + REC_HEADER, n - REC_HEADER, p[REC_HEADER - 1], r->f, HQ_F_COUNT);
}

/* --- delivery ---------------------------------------------------------- */

size_t
jnl_dlv_key(unsigned char *k, uint64_t id, const char *target)
{
	size_t n = strlen(target);
	put_be64(k, id);
	memcpy(k + 8, target, n);
	return 8 + n;
}

size_t
jnl_pending_key(unsigned char *k, const char *target, uint64_t id)
{
	size_t n = strlen(target);
	memcpy(k, target, n);
	k[n] = 0;
	put_be64(k + n + 1, id);
	return n + 9;
}

void
jnl_dlv_encode(unsigned char *v, const hq_delivery *d)
{
	v[0] = VAL_FORMAT;
	v[1] = (unsigned char)d->state;
	put_be32(v + 2, d->attempts);
	put_be64(v + 6, d->next_us);
	put_be64(v + 14, d->updated_us);
	v[22] = (unsigned char)(d->last_status >> 8);
	v[23] = (unsigned char)d->last_status;
	put_be32(v + 24, d->attempt_base);
	put_be64(v + 28, d->replayed_us);
}

int
jnl_dlv_decode(const MDB_val *val, hq_delivery *d)
{
	const unsigned char *v = val->mv_data;
	if (val->mv_size < DLV_SIZE_V1 || v[0] != VAL_FORMAT)
		return HQ_ECORRUPT;
	d->state = (hq_dlv_state)v[1];
	d->attempts = get_be32(v + 2);
	d->next_us = get_be64(v + 6);
	d->updated_us = get_be64(v + 14);
	d->last_status = v[22] << 8 | v[23];
	d->attempt_base = val->mv_size >= DLV_SIZE ? get_be32(v + 24) : 0;
	d->replayed_us = val->mv_size >= DLV_SIZE ? get_be64(v + 28) : 0;
	if (d->attempt_base > d->attempts)
		d->attempt_base = d->attempts;
	return 0;
}
