/*
 * auth.c - target credentials and the OAuth2 token (see auth.h).
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "core/alloc.h"
#include "core/secret.h"
#include "http.h"

/* Reads a secret file, without its trailing newline; NULL with err set. */
static char *
read_secret(const char *path, char *err, size_t errcap, const char *target)
{
	FILE *fp = fopen(path, "r");
	char buf[4096];
	if (fp == NULL) {
		snprintf(err, errcap, "target %s: cannot read %s: %s", target, path, strerror(errno));
		return NULL;
	}
	setvbuf(fp, NULL, _IONBF, 0); /* no stdio buffer left holding a copy */
	size_t n = fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = 0;
	if (n == 0) {
		snprintf(err, errcap, "target %s: %s is empty", target, path);
		return NULL;
	}
	char *out = hq_xstrdup(buf);
	hq_secret_wipe(buf, sizeof buf);
	return out;
}

/* aws-sigv4: the key pair (files, else the environment) and the signing scope. */
static int
load_sigv4(hq_creds *a, const hq_target_conf *t, char *err, size_t errcap)
{
	const char *ek = getenv("AWS_ACCESS_KEY_ID"), *es = getenv("AWS_SECRET_ACCESS_KEY");
	a->aws_key = t->aws_key_id_file[0] ? read_secret(t->aws_key_id_file, err, errcap, t->name)
					   : (ek && *ek ? hq_xstrdup(ek) : NULL);
	a->aws_secret = t->aws_secret_file[0] ? read_secret(t->aws_secret_file, err, errcap, t->name)
					      : (es && *es ? hq_xstrdup(es) : NULL);
	if (a->aws_key == NULL || a->aws_secret == NULL) {
		if (!t->aws_key_id_file[0] || !t->aws_secret_file[0])
			snprintf(err, errcap, "target %s: aws-sigv4 needs aws_key_id_file and aws_secret_file, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment",
				 t->name);
		return -1;
	}
	size_t n = strlen(t->aws_region) + strlen(t->aws_service) + 16;
	a->sigv4 = hq_xmalloc(n);
	snprintf(a->sigv4, n, "aws:amz:%s:%s", t->aws_region, t->aws_service);
	return 0;
}

int
hq_auth_load(hq_creds *a, const hq_target_conf *t, char *err, size_t errcap)
{
	memset(a, 0, sizeof *a);
	if (t->auth == HQ_AUTH_BASIC && t->password_file[0] &&
	    (a->password = read_secret(t->password_file, err, errcap, t->name)) == NULL)
		goto fail;
	if (t->auth == HQ_AUTH_BASIC && !t->password_file[0])
		a->password = hq_xstrdup(t->password);
	if (t->auth == HQ_AUTH_OAUTH2 &&
	    (a->client_secret = read_secret(t->client_secret_file, err, errcap, t->name)) == NULL)
		goto fail;
	if (t->auth == HQ_AUTH_SIGV4 && load_sigv4(a, t, err, errcap) != 0)
		goto fail;
	if (t->auth == HQ_AUTH_BEARER && (a->token = read_secret(t->token_file, err, errcap, t->name)) == NULL)
		goto fail;
	return 0;
fail:
	hq_auth_free(a);
	return -1;
}

void
hq_auth_free(hq_creds *a)
{
	hq_secret_free(a->password);
	hq_secret_free(a->token);
	hq_secret_free(a->client_secret);
	hq_secret_free(a->aws_key);
	hq_secret_free(a->aws_secret);
	free(a->sigv4);
	memset(a, 0, sizeof *a);
}

static int
same(const char *x, const char *y)
{
	return (x == NULL && y == NULL) || (x && y && strcmp(x, y) == 0);
}

int
hq_auth_same(const hq_creds *a, const hq_creds *b, const hq_target_conf *t)
{
	return same(a->password, b->password) && same(a->client_secret, b->client_secret) &&
	       same(a->aws_key, b->aws_key) && same(a->aws_secret, b->aws_secret) &&
	       (t->auth == HQ_AUTH_OAUTH2 || same(a->token, b->token));
}

void
hq_auth_apply(CURL *e, const hq_target_conf *t, const hq_creds *a)
{
	if (t->auth == HQ_AUTH_BASIC) {
		curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(e, CURLOPT_USERNAME, t->username);
		curl_easy_setopt(e, CURLOPT_PASSWORD, a->password);
	} else if (t->auth == HQ_AUTH_BEARER || t->auth == HQ_AUTH_OAUTH2) {
		curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
		curl_easy_setopt(e, CURLOPT_XOAUTH2_BEARER, a->token);
	} else if (t->auth == HQ_AUTH_SIGV4) {
		/* libcurl signs the request itself (AWS Signature Version 4). */
		curl_easy_setopt(e, CURLOPT_AWS_SIGV4, a->sigv4);
		curl_easy_setopt(e, CURLOPT_USERNAME, a->aws_key);
		curl_easy_setopt(e, CURLOPT_PASSWORD, a->aws_secret);
	}
}

/* The client-credentials form, malloc'd (the caller wipes and frees it), or NULL. */
static char *
oauth2_form(const hq_target_conf *t, const char *client_secret)
{
	char *id = curl_easy_escape(NULL, t->client_id, 0);
	char *secret = curl_easy_escape(NULL, client_secret, 0);
	char *scope = curl_easy_escape(NULL, t->scope, 0);
	char *form = NULL;
	if (id && secret && scope) {
		size_t flen = strlen(id) + strlen(secret) + strlen(scope) + 96;
		form = hq_xmalloc(flen);
		snprintf(form, flen, "grant_type=client_credentials&client_id=%s&client_secret=%s%s%s",
			 id, secret, t->scope[0] ? "&scope=" : "", scope);
	}
	curl_free(id);
	if (secret)
		hq_secret_wipe(secret, strlen(secret));
	curl_free(secret);
	curl_free(scope);
	return form;
}

int
hq_auth_oauth2_fetch(hq_creds *a, const hq_target_conf *t, int64_t *expires_in_s, char *why, size_t cap)
{
	char *form = oauth2_form(t, a->client_secret ? a->client_secret : "");
	if (form == NULL) {
		snprintf(why, cap, "out of memory");
		return -1;
	}
	long status = 0;
	char *answer = NULL, detail[200];
	int rc = hq_http_post_form(t->token_url, form, (long)t->timeout_ms, t->ca_file, &status,
				   &answer, detail, sizeof detail);
	hq_secret_wipe(form, strlen(form));
	free(form);
	if (rc != 0) {
		snprintf(why, cap, "token endpoint: %s", detail);
		return -1;
	}
	rc = -1;
	if (status != 200) {
		snprintf(why, cap, "token endpoint: HTTP %ld", status);
	} else {
		json_t *j = json_loads(answer ? answer : "", 0, NULL);
		const char *tok = json_string_value(json_object_get(j, "access_token"));
		json_int_t expires = json_integer_value(json_object_get(j, "expires_in"));
		if (tok == NULL) {
			snprintf(why, cap, "token endpoint: no access_token in the answer");
		} else {
			hq_secret_free(a->token);
			a->token = hq_xstrdup(tok);
			*expires_in_s = expires > 0 ? (int64_t)expires : 300;
			rc = 0;
		}
		json_decref(j);
	}
	if (answer)
		hq_secret_wipe(answer, strlen(answer));
	free(answer);
	return rc;
}
