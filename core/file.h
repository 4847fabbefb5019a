/*
 * file.h - reading a whole file into memory (corpus messages for the
 * tests, PEM files for hl7sink).
 */
#ifndef HQ_FILE_H
#define HQ_FILE_H

#include <stddef.h>

/*
 * The bytes of path, malloc'd and NUL-ended (the NUL not counted); *len
 * (when not NULL) gets their number.  NULL when the file cannot be read.
 */
char *hq_read_file(const char *path, size_t *len);

#endif
