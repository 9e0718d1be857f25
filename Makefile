# ngx_http_c1_module
#
#   make run        the demo: nginx with the C1Chat frontend on
#                   127.0.0.1:8080 (a mock C1 without THESYS_API_KEY)
#   make            install what is missing (as root), build
#                   build/ngx_http_c1_module.so against Debian's nginx
#   make test       install what is missing (as root), build, run the suite
#                   (the thread-store files twice: zone, then Redis)
#   make unit       the protocol units' own tests
#   make fuzz       each libFuzzer harness for FUZZ_SECONDS (default 300)
#   make bench         the module against its alternatives (bench/RESULTS.md)
#   make bench-stream  the streaming benchmark (bench/stream-bench.pl)
#   make bench-history the thread store, zone and Redis: listing threads,
#                      a turn's time and bytes, throughput at c=16 (wrk),
#                      against the module before the thread API
#   make bench-tools   a turn with one tool round: the time the module
#                      adds beyond the tool's and C1's, against the same
#                      calls made by hand (bench/tools-bench.pl)
#   make soak           mixed traffic at concurrency 200 with slow readers
#                       and one worker killed (bench/soak.pl, SOAK_ARGS)
#   make soak-redis     two nodes, threads in Redis, Redis restarted in the
#                       middle (bench/soak-redis.pl, SOAK_ARGS; the same as
#                       SOAK_ARGS=--redis make soak)
#   make test-valgrind  the Test::Nginx suite under valgrind memcheck
#   make test-asan      the suite against the module built with
#                       -fsanitize=address,undefined
#   make deb            the Debian package libnginx-mod-http-c1 (build/deb)
#   make test-deb       install it with apt, run the suite against it
#   make clean

SHELL := /bin/bash

NGINX_SRC   ?= /usr/share/nginx/src
BUILD       := $(CURDIR)/build
MODULE      := $(BUILD)/ngx_http_c1_module.so
SRC_DIR     := ngx_http_c1_module
SRCS        := $(wildcard $(SRC_DIR)/*.c $(SRC_DIR)/*.h) config
PROTO_SRCS  := $(SRC_DIR)/ngx_http_c1_json.c \
               $(SRC_DIR)/ngx_http_c1_request.c \
               $(SRC_DIR)/ngx_http_c1_answer.c \
               $(SRC_DIR)/ngx_http_c1_scan.c \
               $(SRC_DIR)/ngx_http_c1_sse.c \
               $(SRC_DIR)/ngx_http_c1_relay.c \
               $(SRC_DIR)/ngx_http_c1_history.c \
               $(SRC_DIR)/ngx_http_c1_api.c \
               $(SRC_DIR)/ngx_http_c1_bucket.c \
               $(SRC_DIR)/ngx_http_c1_tools.c

CC_OPT      := -g -O2 -fstack-protector-strong -Wformat \
               -Werror=format-security -fPIC -D_FORTIFY_SOURCE=2 \
               -Wall -Wextra -Wno-unused-parameter -Werror
LD_OPT      := -Wl,-z,relro -Wl,-z,now -fPIC
UNIT_CFLAGS := -g -O1 -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra \
               -Werror -I$(SRC_DIR) -It/unit \
               -fsanitize=address,undefined -fno-sanitize-recover=all

export TEST_NGINX_BINARY ?= /usr/sbin/nginx
export TEST_NGINX_LOAD_MODULES ?= $(MODULE) \
    /usr/lib/nginx/modules/ndk_http_module.so \
    /usr/lib/nginx/modules/ngx_http_lua_module.so

FUZZERS     := relay request answer scan api tools
FUZZ_BINS   := $(FUZZERS:%=$(BUILD)/fuzz/fuzz_%)
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined \
               -fno-sanitize-recover=undefined -I$(SRC_DIR)
FUZZ_SECONDS ?= 300
# what make test gives each harness
FUZZ_CI_SECONDS ?= 20

ASAN_DIR    := $(BUILD)/asan
ASAN_MODULE := $(ASAN_DIR)/ngx_http_c1_module.so
ASAN_CC_OPT := -g -O1 -fno-omit-frame-pointer -fPIC \
               -fsanitize=address,undefined -fno-sanitize-recover=undefined
# the suite's Test::Nginx files (the others drive nginx themselves)
NGINX_TESTS := $(filter-out t/000-unit.t,$(wildcard t/0[0-9][0-9]-*.t))
# the thread-store files: make test runs them a second time against Redis
# (C1_STORE=redis, t/lib/C1Store.pm)
STORE_TESTS := t/006-history.t t/013-history-clients.t t/026-long-turn.t \
               t/029-threads-api.t t/030-threads-owner.t \
               t/031-threads-turns.t t/037-threads-clients.t t/033-openui.t \
               t/041-tools.t

.PHONY: all deps deps-build test unit fuzz fuzz-ci bench bench-stream
.PHONY: bench-history bench-tools
.PHONY: test-valgrind test-asan soak soak-redis deb test-deb frontend run
.PHONY: clean

all: deps-build $(MODULE)

deps-build:
	@util/deps build

$(BUILD)/nginx/Makefile: config $(NGINX_SRC)/conf_flags
	rm -rf $(BUILD)/src $(BUILD)/nginx
	mkdir -p $(BUILD)
	cp -a $(NGINX_SRC) $(BUILD)/src
	cd $(BUILD)/src && . ./conf_flags && ./configure \
	    "$${NGX_CONF_FLAGS[@]}" \
	    --with-cc-opt="$(CC_OPT)" --with-ld-opt="$(LD_OPT)" \
	    --add-dynamic-module=$(CURDIR) --builddir=$(BUILD)/nginx \
	    > $(BUILD)/configure.log || { tail -20 $(BUILD)/configure.log; exit 1; }

$(MODULE): $(BUILD)/nginx/Makefile $(SRCS)
	cd $(BUILD)/src && $(MAKE) -s -f $(BUILD)/nginx/Makefile modules
	cp $(BUILD)/nginx/ngx_http_c1_module.so $@.tmp && mv $@.tmp $@

$(BUILD)/c1_unit: t/unit/c1_unit.c t/unit/c1_mem.c $(PROTO_SRCS) \
                  $(wildcard $(SRC_DIR)/*.h)
	mkdir -p $(BUILD)
	$(CC) $(UNIT_CFLAGS) -o $@ t/unit/c1_unit.c t/unit/c1_mem.c \
	    $(PROTO_SRCS) -lcjson

# the same without SSE2: the portable path of ngx_http_c1_scan.c
$(BUILD)/c1_unit_portable: t/unit/c1_unit.c t/unit/c1_mem.c $(PROTO_SRCS) \
                  $(wildcard $(SRC_DIR)/*.h)
	mkdir -p $(BUILD)
	$(CC) $(UNIT_CFLAGS) -U__SSE2__ -o $@ t/unit/c1_unit.c t/unit/c1_mem.c \
	    $(PROTO_SRCS) -lcjson

unit: $(BUILD)/c1_unit $(BUILD)/c1_unit_portable
	prove t/000-unit.t

$(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c t/unit/c1_mem.c $(PROTO_SRCS) \
                      $(wildcard $(SRC_DIR)/*.h)
	mkdir -p $(BUILD)/fuzz
	clang $(FUZZ_CFLAGS) -It/unit -o $@ $< t/unit/c1_mem.c $(PROTO_SRCS) \
	    -lcjson

fuzz: $(FUZZ_BINS)
	util/fuzz $(FUZZ_SECONDS) $(FUZZERS)

fuzz-ci: $(FUZZ_BINS)
	util/fuzz $(FUZZ_CI_SECONDS) $(FUZZERS)

deps:
	@util/deps

# the C1Chat frontend of the demo (examples/chat), built to static files
frontend: examples/chat/dist/index.html

examples/chat/dist/index.html: examples/chat/package-lock.json \
        examples/chat/index.html examples/chat/vite.config.js \
        $(wildcard examples/chat/src/*)
	mkdir -p $(BUILD)
	cd examples/chat && npm ci --no-audit --no-fund --loglevel=error \
	    && npm run build > $(BUILD)/frontend.log 2>&1 \
	    || { tail -30 $(BUILD)/frontend.log; exit 1; }

run:
	util/run

bench: all
	util/deps bench
	bench/compare.pl $(BENCH_ARGS)

bench-stream: all
	bench/stream-bench.pl $(BENCH_ARGS)

bench-tools: all
	bench/tools-bench.pl $(BENCH_ARGS)

# bench-history compares the thread store with the module from before the
# thread API (issue 14): that commit, checked out into a temporary git
# worktree under build/ and built there; nothing is fetched. A checkout
# without the commit (a shallow clone) skips the comparison.
OLD_COMMIT  := 53234c3
OLD_MODULE  := $(BUILD)/bench/old/ngx_http_c1_module.so
OLD_SRC     := $(BUILD)/bench/old-src

$(OLD_MODULE): $(NGINX_SRC)/conf_flags
	@if ! git cat-file -e '$(OLD_COMMIT)^{commit}' 2>/dev/null; then \
	    echo "no commit $(OLD_COMMIT) in this checkout (a shallow clone?):" \
	         "bench-history runs without the old module"; \
	    exit 0; \
	fi; \
	git worktree remove --force $(OLD_SRC) 2>/dev/null; \
	rm -rf $(OLD_SRC); git worktree prune; \
	echo "building the module of $(OLD_COMMIT) in $(OLD_SRC)"; \
	git worktree add -q --detach $(OLD_SRC) $(OLD_COMMIT) \
	&& $(MAKE) -s -C $(OLD_SRC) $(OLD_SRC)/build/ngx_http_c1_module.so \
	&& mkdir -p $(@D) && cp $(OLD_SRC)/build/ngx_http_c1_module.so $@; \
	rc=$$?; \
	git worktree remove --force $(OLD_SRC); git worktree prune; \
	exit $$rc

bench-history: all $(OLD_MODULE)
	bench/history-zone.pl --old $(OLD_MODULE) --old-commit $(OLD_COMMIT) \
	    $(BENCH_ARGS)

deb:
	util/deb

test-deb: deps deb
	util/deb-test

soak: all
	bench/soak.pl $(SOAK_ARGS)

soak-redis: all
	bench/soak-redis.pl $(SOAK_ARGS)

test: deps all frontend $(BUILD)/c1_unit $(BUILD)/c1_unit_portable
	@if ! perl -MTest::Nginx::Socket -e1 2>/dev/null; then \
	    echo "Test::Nginx::Socket is not installed: using t/compat"; \
	    export PERL5LIB=$(CURDIR)/t/compat/lib$${PERL5LIB:+:$$PERL5LIB}; \
	fi; \
	rc=0; C1_STORE=zone prove -r t/ || rc=$$?; \
	echo "the thread-store files again, against Redis (C1_STORE=redis)"; \
	C1_STORE=redis prove $(STORE_TESTS) || rc=$$?; \
	exit $$rc
	$(MAKE) -s fuzz-ci

test-valgrind: deps all
	util/memcheck valgrind $(NGINX_TESTS)

$(ASAN_DIR)/nginx/Makefile: config $(NGINX_SRC)/conf_flags
	rm -rf $(ASAN_DIR)
	mkdir -p $(ASAN_DIR)
	cp -a $(NGINX_SRC) $(ASAN_DIR)/src
	cd $(ASAN_DIR)/src && . ./conf_flags && ./configure \
	    "$${NGX_CONF_FLAGS[@]}" \
	    --with-cc-opt="$(ASAN_CC_OPT)" \
	    --with-ld-opt="-fsanitize=address,undefined" \
	    --add-dynamic-module=$(CURDIR) --builddir=$(ASAN_DIR)/nginx \
	    > $(ASAN_DIR)/configure.log || { tail -20 $(ASAN_DIR)/configure.log; exit 1; }

$(ASAN_MODULE): $(ASAN_DIR)/nginx/Makefile $(SRCS)
	cd $(ASAN_DIR)/src && $(MAKE) -s -f $(ASAN_DIR)/nginx/Makefile modules
	cp $(ASAN_DIR)/nginx/ngx_http_c1_module.so $@.tmp && mv $@.tmp $@

test-asan: deps $(ASAN_MODULE)
	util/memcheck asan $(NGINX_TESTS)

clean:
	rm -rf $(BUILD) t/servroot*
