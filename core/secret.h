/*
 * secret.h - wiping secrets (passwords, tokens, keys, client secrets)
 * before their memory goes back to the allocator or leaves scope, so a
 * heap or stack page reused later, or a core dump, holds no copy.
 *
 * mbedtls_platform_zeroize, because a memset before free() is a dead store
 * the compiler may drop.  Header-only: hl7sink links no mbedtls and needs
 * none of this.
 */
#ifndef HQ_SECRET_H
#define HQ_SECRET_H

#include <mbedtls/platform_util.h>
#include <stdlib.h>
#include <string.h>

/* Zeroes n bytes at p (p may be NULL). */
static inline void
hq_secret_wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		mbedtls_platform_zeroize(p, n);
}

/* Wipes the NUL-terminated secret s, then frees it (s may be NULL). */
static inline void
hq_secret_free(char *s)
{
	if (s != NULL) {
		hq_secret_wipe(s, strlen(s));
		free(s);
	}
}

#endif
