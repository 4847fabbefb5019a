/*
 * tz.h - UTC offsets of an IANA time zone, read from the system's TZif
 * files (/usr/share/zoneinfo, Debian's tzdata), for times that carry no
 * offset of their own.
 *
 * Why not localtime_r with TZ set: TZ is process-wide, and delivery runs
 * in threads; setenv at run time races with every other thread's time
 * calls.  ICU would do it but is a large dependency for one lookup.  A
 * loaded hq_tz is read-only, so any number of threads may share it.
 * Times after the file's last transition follow its POSIX TZ footer
 * rule (TZif v2+), so DST stays right in the far future too.
 */
#ifndef HQ_TZ_H
#define HQ_TZ_H

#include <stddef.h>
#include <stdint.h>

typedef struct hq_tz hq_tz;

/*
 * Loads zone name ("America/Chicago", "UTC") from dir (NULL: the system's
 * /usr/share/zoneinfo).  Returns 0 with *out set, HQ_ECONFIG when the
 * name is not a zone (err says why), or ENOMEM.
 */
int hq_tz_load(const char *name, const char *dir, hq_tz **out, char *err, size_t errcap);

/* Frees tz (NULL is fine). */
void hq_tz_free(hq_tz *tz);

/* Offset east of UTC, in seconds, in force at instant t (Unix seconds). */
int hq_tz_offset_at(const hq_tz *tz, int64_t t);

/*
 * Offset of the local wall-clock time `local` (seconds since 1970-01-01
 * 00:00 of that wall clock).  In the hour a DST change skips, the offset
 * before the change; in the hour it repeats, the earlier (DST) one.
 */
int hq_tz_offset_local(const hq_tz *tz, int64_t local);

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (negative before it); m 1..12, d may run past the month's end. */
int64_t hq_tz_days(int64_t y, int m, int d);

#endif
