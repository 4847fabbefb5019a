/*
 * fhir.c - the message level of the v2 -> FHIR conversion (see fhir.h):
 * which types are mapped, the walk that groups segments by the message
 * structure (OBX and NTE under their OBR, SPM in its order, RXR with its
 * RXA, NK1/PD1/MRG with their PID), deterministic ids, and the Bundle.
 *
 * Ids: HMAC-SHA-256(site key, "Type|business key"), first 16 bytes as a
 * UUID (version 8, RFC 9562's custom form).  The key makes ids unreadable:
 * without it, nobody can test an id against a guessed MRN.  SHA-256 is
 * OpenSSL's libcrypto (EVP): it uses the CPU's SHA instructions where there
 * are some, and an id per OBX made mbedTLS's portable SHA-256 the largest
 * single cost of a conversion (libcurl loads libcrypto into hl7qd anyway).
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/error.h"
#include "fhir_int.h"

static const char *const supported[] = {
	"ADT^A01", "ADT^A02", "ADT^A03", "ADT^A04", "ADT^A08", "ADT^A11", "ADT^A28", "ADT^A31",
	"ADT^A40", "ORU^R01", "VXU^V04", "ORM^O01", "OML^O21", "SIU^S12", "MDM^T02",
};

int
hq_fhir_supported(const char *code, size_t ncode, const char *trig, size_t ntrig)
{
	if (ncode != 3 || ntrig != 3)
		return 0;
	for (size_t i = 0; i < sizeof supported / sizeof supported[0]; i++)
		if (memcmp(supported[i], code, 3) == 0 && memcmp(supported[i] + 4, trig, 3) == 0)
			return 1;
	return 0;
}

int
fx_segpos(fx *x, int segidx)
{
	int n = 0;
	for (int i = 0; i <= segidx && i < x->m.nseg; i++)
		n += x->m.seg[i].n >= 3 && memcmp(x->m.seg[i].p, x->m.seg[segidx].p, 3) == 0;
	return n;
}

void
fx_fail(fx *x, hq_str seg, int field, const char *what)
{
	if (x->failed)
		return;
	x->failed = 1;
	int pos = 0;
	for (int i = 0; i < x->m.nseg; i++) {
		if (x->m.seg[i].n >= 3 && memcmp(x->m.seg[i].p, seg.p, 3) == 0)
			pos++;
		if (x->m.seg[i].p == seg.p)
			break;
	}
	snprintf(x->why, sizeof x->why, "%.3s[%d]-%d: %s", seg.p, pos, field, what);
}

fj *
fx_ref(const char *ref)
{
	return fx_pack("{s:s}", "reference", ref);
}

/* SHA-256, fetched from the default provider once per process (a fetch
 * takes a lock and a lookup: not something to do per conversion). */
static EVP_MD *sha256;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void
sha256_fetch(void)
{
	sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* HMAC-SHA-256 (RFC 2104) with the key's inner and outer block states kept
 * (x->ipad, x->opad, made on the first id of a conversion): two SHA-256
 * blocks fewer per id than starting over.  0, or -1 when libcrypto fails
 * (out of memory). */
static int
hmac_keyed(fx *x)
{
	unsigned char pad[64];
	pthread_once(&sha256_once, sha256_fetch);
	if (sha256 == NULL)
		return -1;
	x->ipad = EVP_MD_CTX_new();
	x->opad = EVP_MD_CTX_new();
	x->work = EVP_MD_CTX_new();
	if (x->ipad == NULL || x->opad == NULL || x->work == NULL)
		return -1;
	memset(pad, 0x36, sizeof pad);
	for (size_t i = 0; i < sizeof x->o->key; i++)
		pad[i] ^= x->o->key[i];
	int ok = EVP_DigestInit_ex(x->ipad, sha256, NULL) && EVP_DigestUpdate(x->ipad, pad, 64);
	for (size_t i = 0; i < 64; i++)
		pad[i] ^= 0x36 ^ 0x5c;
	ok = ok && EVP_DigestInit_ex(x->opad, sha256, NULL) && EVP_DigestUpdate(x->opad, pad, 64);
	OPENSSL_cleanse(pad, sizeof pad);
	return ok ? 0 : -1;
}

/* out = the UUID of type under key; 0, or -1 when libcrypto fails. */
static int
uuid_of(fx *x, const char *type, const char *key, char out[37])
{
	unsigned char mac[32];
	unsigned int n;
	char msg[512]; /* "Type|key": one update (fx_add's keys are < 400 bytes) */
	size_t tl = strlen(type), kl = strlen(key);
	if ((x->ipad == NULL && hmac_keyed(x) != 0) || tl + 1 + kl > sizeof msg)
		return -1;
	memcpy(msg, type, tl);
	msg[tl] = '|';
	memcpy(msg + tl + 1, key, kl);
	EVP_MD_CTX *c = x->work;
	if (!EVP_MD_CTX_copy_ex(c, x->ipad) || !EVP_DigestUpdate(c, msg, tl + 1 + kl) ||
	    !EVP_DigestFinal_ex(c, mac, &n) || !EVP_MD_CTX_copy_ex(c, x->opad) ||
	    !EVP_DigestUpdate(c, mac, sizeof mac) || !EVP_DigestFinal_ex(c, mac, &n))
		return -1;
	mac[6] = (unsigned char)((mac[6] & 0x0f) | 0x80); /* version 8 */
	mac[8] = (unsigned char)((mac[8] & 0x3f) | 0x80); /* variant 10 */
	static const char hex[] = "0123456789abcdef";
	int o = 0;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[mac[i] >> 4];
		out[o++] = hex[mac[i] & 15];
	}
	out[o] = 0;
	OPENSSL_cleanse(mac, sizeof mac);
	return 0;
}

/* FNV-1a of a business key: find_key compares these before the strings
 * (a corpus ORU holds dozens of Observations, each looked up once). */
static uint64_t
key_hash(const char *k)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *k; k++)
		h = (h ^ (unsigned char)*k) * 0x100000001b3ULL;
	return h;
}

/* The entry made of type under key k (of hash h), or -1.  Entries that went
 * in by conditional update (no "Type/id" reference) are never found, as before. */
static int
find_key(fx *x, const char *type, const char *k, uint64_t h)
{
	for (int i = 0; i < x->nids; i++)
		if (x->hashes[i] == h && x->keys[i] && strcmp(x->types[i], type) == 0 &&
		    strcmp(x->keys[i], k) == 0)
			return i;
	return -1;
}

/* "Patient?identifier=system|value" for a conditional update; 0 when the Patient has one. */
static int
conditional_url(const fj *r, char *out, size_t cap)
{
	const fj *id = fj_at(fj_get(r, "identifier"), 0);
	const char *v = fj_str(fj_get(id, "value"));
	const char *s = fj_str(fj_get(id, "system"));
	if (v == NULL)
		return -1;
	size_t o = (size_t)snprintf(out, cap, "Patient?identifier=");
	const char *parts[2] = {s, v};
	for (int k = 0; k < 2; k++) {
		if (parts[k] == NULL)
			continue;
		for (const char *p = parts[k]; *p && o + 4 < cap; p++) {
			unsigned char c = (unsigned char)*p;
			if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			    (c >= '0' && c <= '9') || strchr("-._~:/", c))
				out[o++] = (char)c;
			else
				o += (size_t)snprintf(out + o, cap - o, "%%%02X", c);
		}
		if (k == 0 && s && o + 4 < cap)
			o += (size_t)snprintf(out + o, cap - o, "%%7C");
	}
	out[o < cap ? o : cap - 1] = 0;
	return o + 4 < cap ? 0 : -1;
}

fj *
fx_add(fx *x, const char *type, const char *key, int segidx, fj *r, char ref[64])
{
	char k[400], id[37], tid[64];
	if (key == NULL || *key == 0)
		snprintf(k, sizeof k, "%s|%.3s#%d", x->msgkey, x->m.seg[segidx].p, fx_segpos(x, segidx));
	else
		fx_cat(k, sizeof k, key, (char *)NULL);
	int merge = strcmp(type, "Patient") == 0 || strcmp(type, "Encounter") == 0;
	size_t klen = strlen(k);
	uint64_t h;
	/* the same type and key: the same id (the ids are an HMAC of them), so
	 * the keys are compared and only the one that is new is hashed */
	for (int n = 1;; n++) {
		if (n > 1)
			snprintf(k + klen, sizeof k - klen, "|#%d", n);
		h = key_hash(k);
		int at = find_key(x, type, k, h);
		if (at < 0)
			break;
		if (merge) {
			fj_update_missing(x->res[at], r);
			fj_drop(r);
			snprintf(ref, 64, "%s", x->ids[at]);
			return x->res[at];
		}
	}
	if (uuid_of(x, type, k, id) != 0) {
		fj_drop(r);
		x->failed = 1;
		snprintf(x->why, sizeof x->why, "id: libcrypto's SHA-256 failed (out of memory)");
		return NULL;
	}
	size_t tl = strlen(type);
	memcpy(tid, type, tl);
	tid[tl] = '/';
	memcpy(tid + tl + 1, id, 37);
	if (x->nids == x->capids) {
		int cap = x->capids ? 2 * x->capids : 16;
		void *a = realloc(x->ids, (size_t)cap * sizeof *x->ids);
		if (a)
			x->ids = a;
		void *b = a ? realloc(x->res, (size_t)cap * sizeof *x->res) : NULL;
		if (b)
			x->res = b;
		void *c = b ? realloc(x->keys, (size_t)cap * sizeof *x->keys) : NULL;
		if (c)
			x->keys = c;
		void *d = c ? realloc(x->types, (size_t)cap * sizeof *x->types) : NULL;
		if (d)
			x->types = d;
		void *e = d ? realloc(x->hashes, (size_t)cap * sizeof *x->hashes) : NULL;
		if (e)
			x->hashes = e;
		if (e == NULL) {
			fj_drop(r);
			x->failed = 1;
			snprintf(x->why, sizeof x->why, "out of memory");
			return NULL;
		}
		x->capids = cap;
	}
	fj *res = r; /* resourceType and id are written first by the serializer */
	fj_add(res, "resourceType", fj_string(type)); /* added here only: no search */
	fj *entry = fj_object();
	char url[600];
	const char *kept = NULL;
	if (strcmp(type, "Patient") == 0 && x->o->patient_match && conditional_url(r, url, sizeof url) == 0) {
		snprintf(ref, 64, "urn:uuid:%s", id);
		fj_set(entry, "fullUrl", fj_string(ref));
	} else {
		fj_add(res, "id", fj_stringn(id, 36));
		memcpy(url, tid, tl + 38);
		memcpy(ref, tid, tl + 38);
		fj *ks = fj_stringn(k, strlen(k));
		kept = ks ? fj_str(ks) : NULL;
	}
	fj_set(entry, "resource", res);
	fj_set(entry, "request", fx_pack("{s:s,s:s}", "method", "PUT", "url", url));
	fj_append(x->entries, entry);
	fx_cat(x->ids[x->nids], sizeof x->ids[0], ref, (char *)NULL);
	x->keys[x->nids] = kept;
	x->types[x->nids] = type;
	x->hashes[x->nids] = h;
	x->res[x->nids++] = res;
	return res;
}

/* MSH-7's offset, "+hh:mm", when it has one. */
static void
msh_offset(fx *x)
{
	hq_str t = hq_v2_comp(&x->m, hq_v2_field(&x->m, x->msh, 7), 1);
	for (size_t i = 0; i < t.n; i++)
		if ((t.p[i] == '+' || t.p[i] == '-') && t.n - i == 5) {
			int ok = 1;
			for (int k = 1; k <= 4; k++)
				ok &= t.p[i + k] >= '0' && t.p[i + k] <= '9';
			if (ok)
				snprintf(x->msh_off, sizeof x->msh_off, "%c%.2s:%.2s", t.p[i],
					 t.p + i + 1, t.p + i + 3);
		}
}

/* Index of the next segment with id after i (before a segment in stop, "" for none), or -1. */
static int
next_seg(fx *x, int i, const char *id, const char *stop)
{
	for (int k = i + 1; k < x->m.nseg; k++) {
		if (hq_v2_is(x->m.seg[k], id))
			return k;
		for (const char *s = stop; *s; s += 3)
			if (hq_v2_is(x->m.seg[k], (char[4]){s[0], s[1], s[2], 0}))
				return -1;
	}
	return -1;
}

/* PID with its PD1, NK1s and (A40) MRG, up to the next PID. */
static int
walk_pid(fx *x, int i)
{
	int nk1[32], nnk1 = 0, pd1 = -1, mrg = -1;
	for (int k = i + 1; k < x->m.nseg && !hq_v2_is(x->m.seg[k], "PID"); k++) {
		if (hq_v2_is(x->m.seg[k], "PD1") && pd1 < 0)
			pd1 = k;
		else if (hq_v2_is(x->m.seg[k], "NK1") && nnk1 < 32)
			nk1[nnk1++] = k;
		else if (hq_v2_is(x->m.seg[k], "MRG") && mrg < 0)
			mrg = k;
		else if (hq_v2_is(x->m.seg[k], "OBR") || hq_v2_is(x->m.seg[k], "ORC"))
			break;
	}
	return fx_patient(x, i, pd1, nk1, nnk1, mrg);
}

typedef struct walk {
	int orc, rxa;
	fj *report, *last; /* the current DiagnosticReport/ServiceRequest; last resource for NTE */
	char report_key[300], imm_ref[64];
	const char *last_note_key;
	int obx[256], nobx, ais[32], nais, aip[32], naip, sch, txa;
} walk;

static void
walk_order(fx *x, walk *w, int i, int oru)
{
	int orc = w->orc >= 0 ? w->orc : -1;
	if (oru) {
		w->report = fx_report(x, i, orc, w->report_key);
		w->last = w->report;
		w->last_note_key = NULL; /* DiagnosticReport has no note in R4 */
	} else {
		w->report = fx_service_request(x, orc, i);
		w->report_key[0] = 0;
		if (w->report)
			snprintf(w->report_key, sizeof w->report_key, "%s",
				 fj_str(fj_get(w->report, "id")) ?: "");
		w->last = w->report;
		w->last_note_key = "note";
	}
	w->orc = -1;
}

static void
walk_segment(fx *x, walk *w, int i, const char *type)
{
	hq_str s = x->m.seg[i];
	int oru = strcmp(type, "ORU") == 0, mdm = strcmp(type, "MDM") == 0;
	if (hq_v2_is(s, "PID")) {
		walk_pid(x, i);
	} else if (hq_v2_is(s, "PV1")) {
		int pv2 = i + 1 < x->m.nseg && hq_v2_is(x->m.seg[i + 1], "PV2") ? i + 1 : -1;
		if (type[0] != 'A' || strcmp(type + 4, "A28") != 0)
			fx_encounter(x, i, pv2, type + 4);
	} else if (hq_v2_is(s, "AL1")) {
		fx_allergy(x, i);
	} else if (hq_v2_is(s, "DG1")) {
		fx_condition(x, i);
	} else if (hq_v2_is(s, "IN1")) {
		fx_coverage(x, i);
	} else if (hq_v2_is(s, "ORC")) {
		if (w->orc >= 0 && !oru && strcmp(type, "VXU") != 0)
			fx_service_request(x, w->orc, -1); /* an ORC with no OBR of its own */
		w->orc = i;
		w->report = NULL;
		w->rxa = -1;
	} else if (hq_v2_is(s, "OBR")) {
		walk_order(x, w, i, oru);
	} else if (hq_v2_is(s, "OBX")) {
		if (mdm) {
			if (w->nobx < 256)
				w->obx[w->nobx++] = i;
		} else if (w->rxa >= 0) {
			fx_observation(x, i, NULL, NULL, w->imm_ref);
		} else {
			fx_observation(x, i, w->report ? w->report_key : NULL, oru ? w->report : NULL, NULL);
		}
		w->last = x->nids ? x->res[x->nids - 1] : NULL;
		w->last_note_key = "note";
	} else if (hq_v2_is(s, "NTE")) {
		if (w->last && w->last_note_key)
			fx_note(x, i, w->last, w->last_note_key);
	} else if (hq_v2_is(s, "SPM")) {
		fx_specimen(x, i, w->report_key[0] ? w->report_key : NULL, oru ? w->report : NULL);
	} else if (hq_v2_is(s, "RXA")) {
		int rxr = next_seg(x, i, "RXR", "RXAORCOBXPID");
		fx_immunization(x, w->orc, i, rxr, w->imm_ref);
		w->rxa = i;
		w->orc = -1;
	} else if (hq_v2_is(s, "SCH")) {
		w->sch = i;
	} else if (hq_v2_is(s, "AIS") || hq_v2_is(s, "AIP")) {
		int is_ais = hq_v2_is(s, "AIS");
		if (is_ais && w->nais < 32)
			w->ais[w->nais++] = i;
		else if (!is_ais && w->naip < 32)
			w->aip[w->naip++] = i;
	} else if (hq_v2_is(s, "TXA")) {
		w->txa = i;
	} else if (s.p[0] == 'Z') {
		x->nz++;
	} else if (!hq_v2_is(s, "MSH") && !hq_v2_is(s, "EVN") && !hq_v2_is(s, "PD1") && !hq_v2_is(s, "NK1") &&
		   !hq_v2_is(s, "MRG") && !hq_v2_is(s, "PV2") && !hq_v2_is(s, "RXR")) {
		x->nskip++;
	}
}

static int
walk_message(fx *x, const char *type)
{
	walk w;
	memset(&w, 0, sizeof w);
	w.orc = w.rxa = w.sch = w.txa = -1;
	/* the patient first: every other resource refers to it */
	for (int i = 0; i < x->m.nseg && !x->failed; i++)
		if (hq_v2_is(x->m.seg[i], "PID")) {
			walk_pid(x, i);
			break;
		}
	int first_pid = 1;
	for (int i = 1; i < x->m.nseg && !x->failed; i++) {
		if (hq_v2_is(x->m.seg[i], "PID") && first_pid) {
			first_pid = 0;
			continue;
		}
		walk_segment(x, &w, i, type);
	}
	if (w.orc >= 0 && !x->failed && (strcmp(type, "ORM") == 0 || strcmp(type, "OML") == 0))
		fx_service_request(x, w.orc, -1);
	if (w.sch >= 0 && !x->failed)
		fx_appointment(x, w.sch, w.ais, w.nais, w.aip, w.naip);
	if (strcmp(type, "MDM") == 0 && !x->failed) {
		if (w.txa < 0)
			fx_fail(x, x->msh, 9, "MDM without a TXA segment");
		else
			fx_document(x, w.txa, w.obx, w.nobx);
	}
	return x->failed ? HQ_ECONVERT : 0;
}

static void
fx_free(fx *x)
{
	fj_drop(x->entries);
	free(x->ids);
	free(x->res);
	free(x->keys);
	free(x->types);
	free(x->hashes);
	free(x->tmp);
	EVP_MD_CTX_free(x->ipad); /* NULL-safe; the states are cleansed */
	EVP_MD_CTX_free(x->opad);
	EVP_MD_CTX_free(x->work);
	hq_v2_close(&x->m);
}

/* 1 to 3 capitals or digits: safe to quote in a reason. */
static int
plain_id(hq_str s)
{
	if (s.n < 1 || s.n > 3)
		return 0;
	for (size_t i = 0; i < s.n; i++)
		if (!((s.p[i] >= 'A' && s.p[i] <= 'Z') || (s.p[i] >= '0' && s.p[i] <= '9')))
			return 0;
	return 1;
}

static int
convert(fx *x, const char *raw, size_t len, char *why, size_t whycap)
{
	size_t at = 0;
	while (at < len && (raw[at] == '\r' || raw[at] == '\n'))
		at++;
	if (len - at >= 3 && (memcmp(raw + at, "FHS", 3) == 0 || memcmp(raw + at, "BHS", 3) == 0)) {
		snprintf(why, whycap, "%.3s-1: an FHS/BHS batch is not converted (one Bundle per message: send them one by one)",
			 raw + at);
		return HQ_EUNSUPPORTED;
	}
	int rc = hq_v2_open(&x->m, raw, len);
	if (rc != 0) {
		snprintf(why, whycap, "MSH-1: %s",
			 rc == HQ_EPARSE ? "no MSH segment with readable delimiters" : "out of memory");
		return rc;
	}
	x->msh = x->m.seg[0];
	/* MSH-18 8859/1: the bytes are ISO 8859-1 even where they would pass for UTF-8 */
	hq_str cs = hq_v2_rep(&x->m, hq_v2_field(&x->m, x->msh, 18), 1);
	if (cs.n == 6 && memcmp(cs.p, "8859/1", 6) == 0)
		x->m.latin1 = 1;
	hq_str t9 = hq_v2_field(&x->m, x->msh, 9);
	hq_str code = hq_v2_comp(&x->m, t9, 1), trig = hq_v2_comp(&x->m, t9, 2);
	if (!hq_fhir_supported(code.p, code.n, trig.p, trig.n)) {
		/* the type as sent, when it looks like one (never more than 3+3 safe characters) */
		char c[4] = "?", t[4] = "?";
		if (plain_id(code))
			snprintf(c, sizeof c, "%.*s", (int)code.n, code.p);
		if (plain_id(trig))
			snprintf(t, sizeof t, "%.*s", (int)trig.n, trig.p);
		snprintf(why, whycap, "MSH-9: no FHIR mapping for message type %s^%s", c, t);
		return HQ_EUNSUPPORTED;
	}
	char type[8];
	snprintf(type, sizeof type, "%.3s^%.3s", code.p, trig.p);
	type[3] = 0;
	msh_offset(x);
	hq_str a = hq_v2_field(&x->m, x->msh, 3), f = hq_v2_field(&x->m, x->msh, 4),
	       c = hq_v2_field(&x->m, x->msh, 10);
	snprintf(x->msgkey, sizeof x->msgkey, "msg|%.*s|%.*s|%.*s", (int)(a.n < 90 ? a.n : 90), a.p,
		 (int)(f.n < 90 ? f.n : 90), f.p, (int)(c.n < 90 ? c.n : 90), c.p);
	x->entries = fj_array();
	rc = walk_message(x, type);
	if (rc == 0 && fj_size(x->entries) == 0) {
		rc = HQ_ECONVERT;
		snprintf(x->why, sizeof x->why, "PID-3: no resource could be made (no patient, order or result)");
	}
	if (rc != 0)
		snprintf(why, whycap, "%s", x->why);
	return rc;
}

/* The Bundle of raw as a tree in the calling thread's arena (see fj_begin). */
static int
bundle(const char *raw, size_t len, const hq_fhir_opts *o, fj **out, hq_fhir_stats *stats, char *why, size_t whycap)
{
	fx x;
	memset(&x, 0, sizeof x);
	x.o = o;
	*out = NULL;
	int rc = convert(&x, raw, len, why, whycap);
	if (stats) {
		stats->entries = (int)fj_size(x.entries);
		stats->zsegments = x.nz;
		stats->skipped = x.nskip;
	}
	if (rc == 0 && o->max_entries > 0 && (int)fj_size(x.entries) > o->max_entries) {
		snprintf(why, whycap, "Bundle of %zu entries exceeds fhir_max_entries %d (never split)",
			 fj_size(x.entries), o->max_entries);
		rc = HQ_ETOOBIG;
	}
	if (rc == 0) {
		*out = fx_pack("{s:s,s:s,s:O}", "resourceType", "Bundle", "type",
			       o->batch ? "batch" : "transaction", "entry", x.entries);
		if (*out == NULL)
			rc = ENOMEM;
	}
	fx_free(&x);
	return rc;
}

/* Bytes a JSON string cannot hold as they are: controls, '"' and '\\'. */
static const unsigned char needs_escape[256] = {
	[0 ... 0x1f] = 1,
	['"'] = 1,
	['\\'] = 1,
};

/* A JSON string; text holds no control characters but tab and newline (v2.c drops the others). */
static void
out_string(hq_buf *b, const char *s, size_t n)
{
	hq_buf_put(b, "\"", 1);
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!needs_escape[c])
			continue; /* the usual case: copied with the run */
		const char *esc = c == '"'    ? "\\\""
				  : c == '\\' ? "\\\\"
				  : c == '\n' ? "\\n"
				  : c == '\t' ? "\\t"
				  : c == '\r' ? "\\r"
					      : NULL;
		hq_buf_put(b, s + run, i - run);
		if (esc == NULL) {
			char u[8];
			snprintf(u, sizeof u, "\\u%04x", c);
			hq_buf_put(b, u, 6);
		} else {
			hq_buf_put(b, esc, 2);
		}
		run = i + 1;
	}
	hq_buf_put(b, s + run, n - run);
	hq_buf_put(b, "\"", 1);
}

/*
 * Compact JSON of j, keys in insertion order.  A string "\001N:<digits>"
 * (fx_number) is written as the bare number, so a value keeps the digits
 * the sender wrote (7.50 stays 7.50; a double would not).  resource says
 * where j is: 4 the Bundle, 3 Bundle.entry, 2 an entry, 1 an entry's
 * resource, 0 anything else (only resources get resourceType and id first).
 */
static void
serialize(hq_buf *b, const fj *j, int resource)
{
	if (fj_is(j, FJ_OBJECT)) {
		int first = 1;
		hq_buf_put(b, "{", 1);
		/* a resource (the Bundle, an entry's resource): resourceType and id
		 * lead, as FHIR's JSON examples have them */
		fj *rt = resource == 1 || resource == 4 ? fj_get(j, "resourceType") : NULL;
		fj *id = rt ? fj_get(j, "id") : NULL;
		if (rt) {
			hq_buf_put(b, "\"resourceType\":", 15);
			serialize(b, rt, 0);
			if (id) {
				hq_buf_put(b, ",\"id\":", 6);
				serialize(b, id, 0);
			}
			first = 0;
		}
		for (const fj_member *m = j->head; m; m = m->next) {
			const char *k = m->key;
			const fj *v = m->v;
			if (rt && (v == rt || v == id))
				continue;
			if (!first)
				hq_buf_put(b, ",", 1);
			first = 0;
			size_t kn = strlen(k);
			/* keys are FHIR element names, written by the code: no escapes */
			char *q = hq_buf_reserve(b, kn + 3);
			if (q) {
				q[0] = '"';
				memcpy(q + 1, k, kn);
				q[kn + 1] = '"';
				q[kn + 2] = ':';
			}
			/* Bundle.entry[].resource: the resources */
			serialize(b, v,
				  resource == 2 && kn == 8 && memcmp(k, "resource", 8) == 0 ? 1
				  : resource == 4 && kn == 5 && memcmp(k, "entry", 5) == 0  ? 3
											    : 0);
		}
		hq_buf_put(b, "}", 1);
	} else if (fj_is(j, FJ_ARRAY)) {
		hq_buf_put(b, "[", 1);
		for (const fj_member *m = j->head; m; m = m->next) {
			if (m != j->head)
				hq_buf_put(b, ",", 1);
			serialize(b, m->v, resource == 3 ? 2 : 0);
		}
		hq_buf_put(b, "]", 1);
	} else if (fj_is(j, FJ_STRING)) {
		const char *s = fj_str(j);
		size_t n = fj_strlen(j);
		if (j->plain) {
			char *q = hq_buf_reserve(b, n + 2);
			if (q) {
				q[0] = '"';
				memcpy(q + 1, s, n);
				q[n + 1] = '"';
			}
		} else if (n > 3 && memcmp(s, "\001N:", 3) == 0) {
			hq_buf_put(b, s + 3, n - 3);
		} else {
			out_string(b, s, n);
		}
	} else if (fj_is(j, FJ_INTEGER)) {
		char num[32];
		int n = snprintf(num, sizeof num, "%lld", j->i);
		hq_buf_put(b, num, (size_t)n);
	} else if (fj_is(j, FJ_TRUE)) {
		hq_buf_put(b, "true", 4);
	} else if (fj_is(j, FJ_FALSE)) {
		hq_buf_put(b, "false", 5);
	} else {
		hq_buf_put(b, "null", 4);
	}
}

int
hq_fhir_render(const char *raw, size_t len, const hq_fhir_opts *o, char **body, size_t *n,
	       hq_fhir_stats *stats, char *why, size_t whycap)
{
	fj_arena arena;
	fj *b;
	fj_begin(&arena);
	int rc = bundle(raw, len, o, &b, stats, why, whycap);
	if (rc == 0 && arena.oom)
		rc = ENOMEM; /* a value went missing: no Bundle rather than a wrong one */
	if (rc != 0) {
		fj_end(&arena);
		if (rc == ENOMEM)
			snprintf(why, whycap, "out of memory");
		return rc;
	}
	hq_buf ob = {0};
	hq_buf_grow(&ob, 4 * len + 4096); /* a Bundle is a few times its message: one or two reallocs */
	serialize(&ob, b, 4);
	fj_end(&arena);
	if (ob.oom || ob.p == NULL) {
		free(ob.p);
		snprintf(why, whycap, "out of memory");
		return ENOMEM;
	}
	ob.p[ob.n] = 0;
	*body = ob.p;
	*n = ob.n;
	return 0;
}

int
hq_fhir_convert(const char *raw, size_t len, const hq_fhir_opts *o, json_t **out,
		hq_fhir_stats *stats, char *why, size_t whycap)
{
	char *body;
	size_t n;
	*out = NULL;
	int rc = hq_fhir_render(raw, len, o, &body, &n, stats, why, whycap);
	if (rc != 0)
		return rc;
	/* numbers come back as jansson reals or integers, their digits as parsed */
	*out = json_loadb(body, n, 0, NULL);
	free(body);
	if (*out == NULL) {
		snprintf(why, whycap, "out of memory");
		return ENOMEM;
	}
	return 0;
}

int
hq_fhir_read_key(const char *path, unsigned char key[32], char *err, size_t errcap)
{
	FILE *fp = fopen(path, "r");
	char line[256];
	int lineno = 0;
	if (fp == NULL) {
		int e = errno;
		snprintf(err, errcap, "fhir_id_key_file %s: %s", path, strerror(e));
		return e ? e : HQ_ECONFIG;
	}
	while (fgets(line, sizeof line, fp)) {
		lineno++;
		size_t n = strcspn(line, "#\r\n");
		char *p = line;
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		while (n > 0 && (*p == ' ' || *p == '\t'))
			p++, n--;
		if (n == 0)
			continue;
		int ok = n == 64;
		for (size_t i = 0; ok && i < 32; i++) {
			unsigned v;
			ok = sscanf(p + 2 * i, "%2x", &v) == 1 &&
			     strspn(p + 2 * i, "0123456789abcdefABCDEF") >= 2;
			key[i] = (unsigned char)v;
		}
		fclose(fp);
		if (!ok) {
			memset(key, 0, 32);
			snprintf(err, errcap, "%s:%d: not a key: 64 hex digits expected (openssl rand -hex 32)",
				 path, lineno);
			return HQ_ECONFIG;
		}
		return 0;
	}
	fclose(fp);
	snprintf(err, errcap, "fhir_id_key_file %s holds no key (openssl rand -hex 32 > FILE)", path);
	return HQ_ECONFIG;
}

int
hq_fhir_opts_init(hq_fhir_opts *o, const char *key_file, const char *zone, hq_tz **tz, char *err, size_t errcap)
{
	memset(o, 0, sizeof *o);
	*tz = NULL;
	int rc = hq_fhir_read_key(key_file, o->key, err, errcap);
	if (rc != 0)
		return rc;
	if (zone && *zone) {
		char why[300];
		if ((rc = hq_tz_load(zone, NULL, tz, why, sizeof why)) != 0) {
			snprintf(err, errcap, "fhir_timezone: %s", why);
			memset(o->key, 0, sizeof o->key);
			return rc;
		}
		o->tz = *tz;
	}
	return 0;
}
