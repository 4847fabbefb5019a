/*
 * config.h - hl7qd's INI configuration (keys: ../shared/INTERFACE.md).
 *
 * Read with libinih.  Every error names FILE:LINE and the key; unknown
 * sections and keys are errors, never silently ignored.  The keys, their
 * types, bounds and defaults are the tables of config_keys.c, the one
 * list of them (hl7q.conf(5)'s key list is rendered from it).
 */
#ifndef HQ_CONFIG_H
#define HQ_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef enum hq_dup_mode {
	HQ_DUP_ACCEPT, /* store repeats as new messages (default) */
	HQ_DUP_ACK,    /* answer AA/CA again, store no second copy */
	HQ_DUP_REJECT  /* answer AR/CR with 0357 code 205 */
} hq_dup_mode;

/* When the accept ACK goes out (listener key accept_ack). */
typedef enum hq_accept_ack_mode {
	HQ_ACCEPT_ACK_ALWAYS, /* every message is answered, whatever MSH-15 says (default) */
	HQ_ACCEPT_ACK_MSH15   /* MSH-15 NE/ER honoured strictly: a positive ACK may not go out */
} hq_accept_ack_mode;

#define HQ_MAX_LIST 32

/* An address range of an allow list: 10.0.1.0/24, 2001:db8::/32. */
typedef struct hq_cidr {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int prefix; /* bits */
} hq_cidr;

typedef struct hq_listener_conf {
	char name[64];
	char listen[256]; /* as written: host:port or [v6]:port */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	size_t max_message_size;       /* default 1M */
	uint64_t idle_timeout_ms;      /* default 300s; 0 never */
	uint64_t frame_timeout_ms;     /* a started frame must end within; default 60s */
	int max_connections;	       /* default 256 */
	int max_connections_per_peer;  /* from one host; default 32 */
	hq_dup_mode duplicates;	       /* default accept */
	uint64_t duplicate_window_ms;  /* default 24h */
	hq_accept_ack_mode accept_ack; /* default always */
	char tls_cert[1024];	       /* with tls_key: MLLP inside TLS */
	char tls_key[1024];
	char tls_client_ca[1024];	    /* require and verify client certificates */
	char tls_allowed[HQ_MAX_LIST][256]; /* subjects (whole DN) or CNs allowed; none: any */
	int ntls_allowed;
	hq_cidr allow[HQ_MAX_LIST]; /* peers allowed; nallow 0: all */
	int nallow;
	uint64_t expect_within_ms; /* silent-feed alarm after this long without a message; 0 off */
	int expect_from_min, expect_to_min; /* expect_hours, minutes of the day; -1: all day */
	int line;			    /* where the section starts */
} hq_listener_conf;

/* Whether peer address ss is in l's allow list (always, when there is none). */
int hq_listener_allows(const hq_listener_conf *l, const struct sockaddr_storage *ss);

typedef enum hq_format { HQ_FMT_RAW, HQ_FMT_JSON, HQ_FMT_GOOGLE, HQ_FMT_FHIR } hq_format;
typedef enum hq_auth {
	HQ_AUTH_NONE,
	HQ_AUTH_BASIC,
	HQ_AUTH_BEARER,
	HQ_AUTH_OAUTH2,
	HQ_AUTH_SIGV4
} hq_auth;
typedef enum hq_ordering { HQ_ORDER_FIFO, HQ_ORDER_PATIENT, HQ_ORDER_NONE } hq_ordering;
/* http_version: auto (HTTP/2 where TLS negotiates it, else 1.1), 1.1, 2. */
typedef enum hq_http_version { HQ_HTTP_AUTO, HQ_HTTP_1_1, HQ_HTTP_2 } hq_http_version;

/* One HTTPS destination ([target NAME]). */
typedef struct hq_target_conf {
	char name[64];
	char url[1024];
	char from[HQ_MAX_LIST][64]; /* listener names; nfrom 0: all */
	int nfrom;
	char types[HQ_MAX_LIST][64]; /* "ADT^A01", "ADT^*", "ADT"; ntypes 0: all */
	int ntypes;
	hq_format format;
	hq_auth auth;
	char username[256];
	char password_file[1024];
	char password[256]; /* a literal password: works, warned about at start */
	char token_file[1024];
	char token_url[1024]; /* oauth2 */
	char client_id[256];
	char client_secret_file[1024];
	char scope[512];
	char aws_region[64]; /* aws-sigv4 */
	char aws_service[64];
	char aws_key_id_file[1024];	/* else $AWS_ACCESS_KEY_ID */
	char aws_secret_file[1024];	/* else $AWS_SECRET_ACCESS_KEY */
	char headers[HQ_MAX_LIST][512]; /* "Name: value" */
	int nheaders;
	hq_ordering ordering;
	int concurrency;	   /* default 8 (ordering none or patient) */
	uint64_t timeout_ms;	   /* default 30s */
	uint64_t retry_initial_ms; /* default 1s */
	uint64_t retry_max_ms;	   /* default 10m */
	int max_attempts;	   /* 0: until max_age */
	uint64_t max_age_ms;	   /* default 7d */
	char ca_file[1024];
	char client_cert[1024]; /* mutual TLS to the target: PEM certificate ... */
	char client_key[1024];	/* ... and its key (a file, never inline) */
	int insecure;
	/* format = fhir (issue 13) */
	int fhir_batch;		      /* fhir_bundle = batch (default transaction) */
	int fhir_max_entries;	      /* larger Bundles are dead-lettered; 0: no limit */
	char fhir_timezone[64];	      /* IANA zone for times without an offset; "": UTC */
	char fhir_id_key_file[1024];  /* HMAC key of the resource ids (required) */
	int fhir_skip_unsupported;    /* fhir_unsupported = skip (default dead) */
	int fhir_patient_match;	      /* fhir_patient_match = identifier */
	hq_http_version http_version; /* default auto */
	int line;
} hq_target_conf;

typedef struct hq_config {
	char file[1024];
	char journal_path[1024]; /* relative paths in the file are made absolute (its directory) */
	int journal_line;
	uint64_t max_size;		/* LMDB map size, default 1G */
	uint64_t retention_ms;		/* 0 keeps all */
	uint64_t rejected_retention_ms; /* refused frames are purged after this; default 7d, 0 keeps them */
	char encryption_key_file[1024]; /* "" : the journal is not encrypted */
	int encryption_line;
	int log_level;		/* syslog priority, default info */
	char admin_listen[256]; /* [admin] listen, as written; "" none */
	struct sockaddr_storage admin_addr;
	socklen_t admin_addrlen;
	char audit_rfc5424[256]; /* [audit] syslog_rfc5424 host:port; "" none */
	hq_listener_conf *listeners;
	int nlisteners;
	hq_target_conf *targets;
	int ntargets;
	char err[1200]; /* "FILE:LINE: reason" after a failed load */
} hq_config;

/*
 * Loads file into cfg (zeroed first).  Returns 0, or HQ_ECONFIG with
 * cfg->err set to "FILE:LINE: reason".  Free with hq_config_free either way.
 */
int hq_config_load(const char *file, hq_config *cfg);

/*
 * Secret files (keys, passwords, tokens, client secrets, private keys)
 * must not be readable by other users: returns 0, or HQ_ECONFIG with err
 * "FILE:LINE: [section] key PATH is readable by other users (mode 0644):
 * chmod 600 PATH".  Files that do not exist are left to their readers.
 */
int hq_config_check_secrets(const hq_config *cfg, char *err, size_t errcap);

/*
 * Every file the config names (keys, certificates, CAs, secrets) exists
 * and can be read by this process: returns 0, or HQ_ECONFIG with err
 * "FILE:LINE: [section] key PATH cannot be read (uid N): reason".
 */
int hq_config_check_files(const hq_config *cfg, char *err, size_t errcap);

/*
 * The journal directory (or, before it exists, its parent) is a directory
 * this process can write: 0, or HQ_ECONFIG with err "FILE:LINE: ...".
 * Run by --check as the service user, so it answers for hl7qd.
 */
int hq_config_check_journal_dir(const hq_config *cfg, char *err, size_t errcap);

/* Frees what hq_config_load allocated. */
void hq_config_free(hq_config *cfg);

/*
 * Non-zero when a message of type (MSH-9 as stored, "ADT^A01^ADT_A01")
 * received on listener goes to target t.
 */
int hq_target_routes(const hq_target_conf *t, const char *listener, const char *type, size_t type_len);

/*
 * Non-zero when a message type (MSH-9 as stored) matches a `types`
 * pattern: "ADT" or "ADT^*" (every ADT), "ADT^A01" (just those), "*" (all).
 * The router's matcher; `hl7q ls --type` takes the same patterns.
 */
int hq_type_pattern_match(const char *pat, const char *type, size_t type_len);

/* Parses "250ms", "30s", "5m", "2h", "7d" (bare number: seconds). Returns 0 or -1. */
int hq_parse_duration(const char *s, uint64_t *ms);

/* Parses "512", "64K", "1M", "8G". Returns 0 or -1. */
int hq_parse_size(const char *s, uint64_t *bytes);

/* Resolves "host:port" / "[v6]:port" into addr. Returns 0 or -1. */
int hq_parse_addr(const char *s, struct sockaddr_storage *addr, socklen_t *len);

#endif
