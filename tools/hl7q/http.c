/*
 * http.c - GET over plain HTTP from hl7qd's admin endpoint, for
 * check --admin, with libcurl loaded only then.
 */
#include <curl/curl.h>
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/hl7q/hl7q.h"

static size_t
http_write(char *p, size_t size, size_t nmemb, void *arg)
{
	return hq_buf_take(arg, p, size * nmemb, 16u << 20); /* an endpoint that never ends */
}

/*
 * libcurl, loaded only for `check --admin`: linked, every hl7q command
 * would load its thirty-odd libraries first (15-30 ms a start, measured;
 * the lookups hl7q is timed on take 2-5 ms).
 */
typedef struct curl_api {
	void *lib;
	CURLcode (*global_init)(long);
	void (*global_cleanup)(void);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_perform)(CURL *);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	void (*easy_cleanup)(CURL *);
	const char *(*easy_strerror)(CURLcode);
} curl_api;

static curl_api g_curl;

/* Loads libcurl.  Returns 0, or -1 with why in err. */
static int
curl_load(char *err, size_t cap)
{
	if (g_curl.lib)
		return 0;
	void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL) {
		snprintf(err, cap, "cannot load libcurl: %s", dlerror());
		return -1;
	}
	static const struct {
		const char *name;
		size_t off;
	} syms[] = {
		{"curl_global_init", offsetof(curl_api, global_init)},
		{"curl_global_cleanup", offsetof(curl_api, global_cleanup)},
		{"curl_easy_init", offsetof(curl_api, easy_init)},
		{"curl_easy_setopt", offsetof(curl_api, easy_setopt)},
		{"curl_easy_perform", offsetof(curl_api, easy_perform)},
		{"curl_easy_getinfo", offsetof(curl_api, easy_getinfo)},
		{"curl_easy_cleanup", offsetof(curl_api, easy_cleanup)},
		{"curl_easy_strerror", offsetof(curl_api, easy_strerror)},
	};
	for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
		void *f = dlsym(lib, syms[i].name);
		if (f == NULL) {
			snprintf(err, cap, "libcurl lacks %s", syms[i].name);
			dlclose(lib);
			return -1;
		}
		memcpy((char *)&g_curl + syms[i].off, &f, sizeof f);
	}
	g_curl.lib = lib;
	g_curl.global_init(CURL_GLOBAL_DEFAULT);
	return 0;
}

void
curl_unload(void)
{
	if (g_curl.lib) {
		g_curl.global_cleanup();
		dlclose(g_curl.lib);
		memset(&g_curl, 0, sizeof g_curl);
	}
}

/* GETs http://addr/path.  Returns the HTTP status, or -1 with why in err. */
long
http_get(const char *addr, const char *path, hq_buf *b, char *err, size_t cap)
{
	char url[400];
	if (curl_load(err, cap) != 0)
		return -1;
	snprintf(url, sizeof url, "http://%s%s", addr, path);
	CURL *h = g_curl.easy_init();
	if (h == NULL) {
		snprintf(err, cap, "out of memory");
		return -1;
	}
	char ebuf[CURL_ERROR_SIZE] = "";
	g_curl.easy_setopt(h, CURLOPT_URL, url);
	g_curl.easy_setopt(h, CURLOPT_WRITEFUNCTION, http_write);
	g_curl.easy_setopt(h, CURLOPT_WRITEDATA, b);
	g_curl.easy_setopt(h, CURLOPT_TIMEOUT, 10L);
	g_curl.easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	g_curl.easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
	g_curl.easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
	long status = -1;
	CURLcode rc = g_curl.easy_perform(h);
	if (rc == CURLE_OK)
		g_curl.easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	else
		snprintf(err, cap, "%s", ebuf[0] ? ebuf : g_curl.easy_strerror(rc));
	g_curl.easy_cleanup(h);
	return status;
}
