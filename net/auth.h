/*
 * auth.h - how a delivery worker proves who it is to its target: the
 * credentials of one target's `auth` (basic, bearer, oauth2 client
 * credentials, aws-sigv4), read from their files (or the environment for
 * AWS) when a worker is built, set on each request, and the OAuth2 token
 * fetched from token_url.
 *
 * Secrets are read from files or the environment only, never from argv,
 * and never appear in an error text; every copy is wiped before its
 * memory is freed (core/secret.h).  Never logs: errors come back as text
 * naming the target and the file.
 */
#ifndef HQ_AUTH_H
#define HQ_AUTH_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

/* One target's credentials; NULL where its auth has none. */
typedef struct hq_creds {
	char *password;		    /* basic: password_file, or the config's password */
	char *token;		    /* bearer: token_file; oauth2: the current token */
	char *client_secret;	    /* oauth2: client_secret_file */
	char *aws_key, *aws_secret; /* aws-sigv4: the files, else AWS_* of the environment */
	char *sigv4;		    /* aws-sigv4: "aws:amz:REGION:SERVICE" */
} hq_creds;

/*
 * Reads t's credentials into *a (zeroed first).  Returns 0, or -1 with err
 * naming the target and what is missing (a file that cannot be read or is
 * empty, or no AWS keys); *a is then freed.
 */
int hq_auth_load(hq_creds *a, const hq_target_conf *t, char *err, size_t errcap);

/* Wipes and frees a's secrets (a itself is the caller's). */
void hq_auth_free(hq_creds *a);

/* Whether a and b hold the same secrets (the oauth2 token, fetched at run
 * time, is not compared when t's auth is oauth2). */
int hq_auth_same(const hq_creds *a, const hq_creds *b, const hq_target_conf *t);

/* Sets a's credentials on request e as t's auth asks (nothing for none).
 * The strings must outlive the transfer. */
void hq_auth_apply(CURL *e, const hq_target_conf *t, const hq_creds *a);

/*
 * OAuth2 client credentials: asks t->token_url for a token with t's
 * client_id, a->client_secret and scope (as Azure AD and Azure Health
 * Data Services take it).  Returns 0 with the token in a->token (the old
 * one wiped) and *expires_in_s its lifetime (300 when the answer gives
 * none), or -1 with why ("token endpoint: ...", no secret in it).
 */
int hq_auth_oauth2_fetch(hq_creds *a, const hq_target_conf *t, int64_t *expires_in_s, char *why, size_t cap);

#endif
