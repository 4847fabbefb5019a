/*
 * mllp.h - the MLLP deframer: turns a TCP byte stream into frames
 * <0x0B> payload <0x1C><0x0D>.
 *
 * Frames may be split over many feeds and many may arrive in one feed.
 * Bytes outside a frame are dropped and counted.  A frame that grows past
 * max keeps its first max bytes, is read to its end and is then reported
 * with oversize set, so the caller can answer it and the connection stays
 * usable.  A second start byte inside a frame restarts the frame (the
 * bytes before it are counted as dropped).  <0x1C> not followed by <0x0D>
 * is taken as data, except when a start byte follows it.
 *
 * An oversize frame is hashed whole (SHA-256) as it streams past, so the
 * journal can name what it refused without keeping it.  After a frame
 * larger than HQ_MLLP_KEEP_CAP the buffer is freed: one large frame does
 * not pin megabytes for the rest of the connection.
 */
#ifndef HQ_MLLP_H
#define HQ_MLLP_H

#include <mbedtls/sha256.h>
#include <stddef.h>
#include <stdint.h>

#define HQ_MLLP_SB 0x0b
#define HQ_MLLP_EB 0x1c
#define HQ_MLLP_CR 0x0d
#define HQ_MLLP_KEEP_CAP (64u << 10) /* a larger buffer is freed once its frame is done */

typedef enum hq_mllp_state {
	HQ_MLLP_IDLE,	  /* waiting for a start byte */
	HQ_MLLP_IN_FRAME, /* collecting payload */
	HQ_MLLP_SAW_EB,	  /* payload then 0x1C: expecting 0x0D */
} hq_mllp_state;

typedef struct hq_mllp {
	hq_mllp_state state;
	size_t max;	  /* largest payload kept */
	char *buf;	  /* payload so far (owned) */
	size_t len, cap;  /* kept bytes, allocation */
	size_t total;	  /* payload bytes seen, kept or not */
	uint64_t dropped; /* bytes seen outside any frame */
	int hashing;	  /* the frame outgrew max: sha hashes all of it */
	mbedtls_sha256_context sha;
	unsigned char sha256[32]; /* of the whole payload: valid in the callback when oversize */
} hq_mllp;

/*
 * Called for each completed frame.  payload is valid only during the call;
 * total is the frame's real size (> len when oversize).  A non-zero return
 * stops the feed (the remaining bytes are not consumed).
 */
typedef int (*hq_mllp_frame_fn)(void *arg, const char *payload, size_t len, size_t total, int oversize);

/* Initialises m to keep at most max payload bytes per frame. */
void hq_mllp_init(hq_mllp *m, size_t max);

/* Frees m's buffer. */
void hq_mllp_free(hq_mllp *m);

/*
 * Feeds n bytes.  Returns the number of bytes consumed (n unless fn asked
 * to stop), or -1 when memory for the frame could not be had (the frame is
 * then treated as oversize).
 */
long hq_mllp_feed(hq_mllp *m, const char *p, size_t n, hq_mllp_frame_fn fn, void *arg);

/* Non-zero while a frame has started and not ended. */
int hq_mllp_in_frame(const hq_mllp *m);

#endif
