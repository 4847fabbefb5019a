/*
 * status.h - JOURNAL/hl7qd.status, the file by which a running hl7qd
 * tells hl7q (status, check) what only the daemon knows: that it runs
 * (its pid, and when it last wrote), each target's requests in flight
 * and whether its queue is stopped, each listener's last message.
 *
 * hl7qd rewrites it every second and removes it at a clean stop; hl7q
 * reads it.  Both go through this module, so the format is written down
 * once.  It is text, a line a fact, read leniently (a missing line reads
 * as 0, an unknown one is skipped):
 *
 *     pid 4242
 *     updated_us 1795687200123456
 *     inflight TARGET N          one per configured target
 *     last_message LISTENER US   one per listener (0: none yet)
 *     stopped TARGET ID          a target whose FIFO head cannot be read
 *
 * The file is replaced atomically (written beside, then renamed) with
 * mode 0600 like the journal's other files.  A file whose pid is gone is
 * a stale file of a daemon that died: hq_status_alive() says so.
 */
#ifndef HQ_STATUS_H
#define HQ_STATUS_H

#include <stdbool.h>
#include <stdint.h>

#define HQ_STATUS_FILE "hl7qd.status"
#define HQ_STATUS_NAME 64 /* target and listener names are shorter */

typedef struct hq_status_target {
	char name[HQ_STATUS_NAME]; /* first: status.c finds entries by it */
	int inflight;		   /* requests in flight now */
	uint64_t stopped;	   /* id of the FIFO head that stopped the target; 0 not stopped */
} hq_status_target;

typedef struct hq_status_listener {
	char name[HQ_STATUS_NAME]; /* first, as above */
	uint64_t last_message_us;  /* 0: none yet */
} hq_status_listener;

typedef struct hq_status {
	long pid;
	uint64_t updated_us;
	hq_status_target *targets;
	int ntargets;
	hq_status_listener *listeners;
	int nlisteners;
} hq_status;

/* Adds a target, or finds the one of that name; returns it (aborts on out-of-memory). */
hq_status_target *hq_status_target_add(hq_status *s, const char *name);

/* Adds a listener, or finds the one of that name; returns it (aborts on out-of-memory). */
hq_status_listener *hq_status_listener_add(hq_status *s, const char *name);

/* The target or listener of that name, or NULL. */
const hq_status_target *hq_status_target_find(const hq_status *s, const char *name);
const hq_status_listener *hq_status_listener_find(const hq_status *s, const char *name);

/* Writes s as journal_dir/hl7qd.status, atomically.  Returns 0 or an errno. */
int hq_status_write(const char *journal_dir, const hq_status *s);

/* Reads journal_dir/hl7qd.status into s (zeroed first; free it with
 * hq_status_free, also on failure).  Returns 0, ENOENT (no daemon has
 * written one, or it stopped cleanly) or another errno. */
int hq_status_read(const char *journal_dir, hq_status *s);

/* Whether s names a live process (EPERM counts: alive, another user's). */
bool hq_status_alive(const hq_status *s);

/* Removes journal_dir/hl7qd.status (a clean stop).  Returns 0 or an errno. */
int hq_status_remove(const char *journal_dir);

/* Frees what s holds and zeroes it. */
void hq_status_free(hq_status *s);

#endif
