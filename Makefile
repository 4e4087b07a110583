# voxrelay — the only Makefile.
#
# Project flags and user flags stay apart; user CFLAGS/LDFLAGS come last so a
# packager's hardening flags win.  Objects live under build/, with -MMD deps.

VERSION    := 0.1.0
PREFIX     ?= /usr
SBINDIR    ?= $(PREFIX)/sbin
SYSCONFDIR ?= /etc
MANDIR     ?= $(PREFIX)/share/man
DESTDIR    ?=

CC         ?= cc
PKG_CONFIG ?= pkg-config
LLHTTP_DIR ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp

B := build

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wpointer-arith -Wcast-qual -Wwrite-strings -Wformat=2 -Wno-unused-parameter
# -Werror in development and CI; the package build sets WERROR= (empty).
WERROR ?= -Werror

OPT ?= -O2 -g
ifeq ($(DEBUG),1)
OPT := -O0 -g3
endif

ifneq ($(SANITIZER),)
SAN_FLAGS := -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
OPT := -O1 -g
endif

PKGS := libuv jansson libcurl sqlite3 libpq
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)

VR_CFLAGS  := -std=gnu11 $(OPT) $(WARN) $(WERROR) $(SAN_FLAGS) -pthread \
              -D_GNU_SOURCE -DVOXRELAY_VERSION=\"$(VERSION)\" \
              -I. -I$(LLHTTP_INC) $(PKG_CFLAGS)
VR_LDFLAGS := $(SAN_FLAGS) -pthread
VR_LIBS    := $(PKG_LIBS) -lwslay -lmbedtls -lmbedx509 -lmbedcrypto -lm

FINAL_CFLAGS  = $(VR_CFLAGS) $(CPPFLAGS) $(CFLAGS)
FINAL_LDFLAGS = $(VR_LDFLAGS) $(LDFLAGS)

ifeq ($(V),1)
Q :=
else
Q := @
endif

PROTO_SRC   := $(wildcard proto/*.c)
SHM_SRC     := $(wildcard shm/*.c)
COMMON_SRC  := $(wildcard daemon/common/*.c)
PERSONA_SRC := $(wildcard personas/*.c)
DAEMON_SRC  := $(filter-out daemon/main.c,$(wildcard daemon/*.c))
WORKER_SRC  := $(wildcard worker/*.c)
LLHTTP_SRC  := $(LLHTTP_DIR)/api.c $(LLHTTP_DIR)/http.c $(LLHTTP_DIR)/llhttp.c

LIB_SRC  := $(PROTO_SRC) $(SHM_SRC) $(COMMON_SRC) $(PERSONA_SRC)
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
APP_OBJ  := $(DAEMON_SRC:%.c=$(B)/%.o) $(WORKER_SRC:%.c=$(B)/%.o)
LLHTTP_OBJ := $(B)/llhttp/api.o $(B)/llhttp/http.o $(B)/llhttp/llhttp.o

UNIT_SRC := $(wildcard test/unit/*.c)
UNIT_OBJ := $(UNIT_SRC:%.c=$(B)/%.o)
# The call-record store is the one part of daemon/ the unit tests link.
STORE_OBJ := $(patsubst %.c,$(B)/%.o,$(wildcard daemon/store*.c))

BENCH_OBJ := $(patsubst %.c,$(B)/%.o,$(wildcard test/bench/*.c))
BENCH_LIB := $(B)/test/bench/bench_common.o $(B)/proto/buf.o $(B)/proto/ws.o \
             $(B)/proto/ws_util.o $(B)/proto/b64.o

ALL_OBJ := $(LIB_OBJ) $(APP_OBJ) $(B)/daemon/main.o $(UNIT_OBJ) $(BENCH_OBJ)

.PHONY: all check check-sanitize unit store-pg integration peers clean install demo deps test settings deb bench-tools \
        bench bench-relay bench-relay-py
all: $(B)/voxrelay

# Remember the flags used, so a change of flags rebuilds everything.
SETTINGS := $(CC) $(FINAL_CFLAGS) $(FINAL_LDFLAGS) $(SANITIZER)
$(B)/.settings: FORCE
	@mkdir -p $(B)
	@echo '$(SETTINGS)' | cmp -s - $@ || echo '$(SETTINGS)' > $@
FORCE:

$(B)/%.o: %.c $(B)/.settings
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	$(Q)$(CC) $(FINAL_CFLAGS) -MMD -MP -c $< -o $@

# llhttp's generated C is not ours: compile it with relaxed warnings.
$(B)/llhttp/%.o: $(LLHTTP_DIR)/%.c $(B)/.settings
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	$(Q)$(CC) -std=gnu11 $(OPT) $(SAN_FLAGS) -I$(LLHTTP_INC) $(CPPFLAGS) $(CFLAGS) -w -c $< -o $@

# The dashboard pages, built into the binary as byte arrays (daemon/
# dashboard.c serves them): daemon/NAME.html becomes NAME_html[].  What the
# pages share comes in here, so each is whole as served: the operator-token
# prompt, whose markup (daemon/token_prompt.html) replaces the line
# "<!-- include token_prompt.html -->" and whose script (token_prompt.js)
# the line "/* include token_prompt.js */" in the page's script.  Only od
# and sed: no xxd needed.
PAGE_PARTS := daemon/token_prompt.html daemon/token_prompt.js
$(B)/gen/%_html.c: daemon/%.html $(PAGE_PARTS)
	@mkdir -p $(dir $@)
	@echo "  GEN   $@"
	$(Q)sed -e '/^<!-- include token_prompt\.html -->$$/{' \
	    -e 'r daemon/token_prompt.html' -e 'd' -e '}' \
	    -e '/^[[:space:]]*\/\* include token_prompt\.js \*\/$$/{' \
	    -e 'r daemon/token_prompt.js' -e 'd' -e '}' $< > $@.html
	$(Q)od -An -v -tx1 $@.html > $@.hex
	$(Q){ echo '/* Made by the Makefile from $<: do not edit. */'; \
	  echo '#include <stddef.h>'; \
	  echo 'extern const unsigned char $*_html[];'; \
	  echo 'extern const size_t $*_html_len;'; \
	  echo 'const unsigned char $*_html[] = {'; \
	  sed -e 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g' $@.hex; \
	  echo '0x00 };'; \
	  echo 'const size_t $*_html_len = sizeof($*_html) - 1;'; \
	} > $@.tmp
	$(Q)rm -f $@.hex $@.html && mv $@.tmp $@

EMBED_OBJ := $(B)/gen/dashboard_html.o $(B)/gen/calls_html.o
.SECONDARY: $(EMBED_OBJ:.o=.c)
$(B)/gen/%_html.o: $(B)/gen/%_html.c $(B)/.settings
	@echo "  CC    $<"
	$(Q)$(CC) $(FINAL_CFLAGS) -c $< -o $@

$(B)/voxrelay: $(B)/daemon/main.o $(APP_OBJ) $(LIB_OBJ) $(LLHTTP_OBJ) $(EMBED_OBJ)
	@echo "  LD    $@"
	$(Q)$(CC) $(FINAL_LDFLAGS) -o $@ $^ $(VR_LIBS)

# The relay is tested alone between fake legs (test/unit/test_relay.c).
UNIT_APP_OBJ := $(B)/worker/relay.o

$(B)/test_unit: $(UNIT_OBJ) $(UNIT_APP_OBJ) $(STORE_OBJ) $(LIB_OBJ) $(LLHTTP_OBJ)
	@echo "  LD    $@"
	$(Q)$(CC) $(FINAL_LDFLAGS) -o $@ $^ $(VR_LIBS)

unit: $(B)/test_unit
	$(B)/test_unit

# The store's unit tests once more on a PostgreSQL server the script
# starts in a temporary directory (Debian's postgresql package).
store-pg: $(B)/test_unit
	test/store/pg.sh $(B)/test_unit

integration: $(B)/voxrelay bench-tools
	/usr/bin/python3 test/integration/run.py --binary $(B)/voxrelay

peers:
	/usr/bin/python3 test/peers/test_peers_selftest.py

# bench-tools: the benchmark's programs are only run by make bench, but they
# link against proto/, so check builds them to keep them linking.
check: unit store-pg peers fuzz-replay integration bench-tools

# Fuzzing (test/fuzz/; README "Fuzzing").  make fuzz builds one libFuzzer
# program per target with clang, AddressSanitizer and UBSan into
# build/fuzz/; make fuzz-run runs each on a copy of its corpus for
# FUZZ_SECONDS (FUZZ_TARGETS picks some, FUZZ_JOBS runs that many at once);
# make fuzz-merge adds what the last run found to test/fuzz/corpus/.  The
# same sources built with $(CC) as plain programs that replay the corpus
# are make fuzz-replay, part of check: no clang needed there.
FUZZ_NAMES   := http http_resp ws twilio openai csv form sig token ipc \
                twiml conf persona intent
FUZZ_TARGETS ?= $(FUZZ_NAMES)
FUZZ_SECONDS ?= 60
FUZZ_JOBS    ?= 1
FUZZ_CC      ?= clang
FUZZ_B       := $(B)/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all \
                -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=gnu11 -O1 -g $(WARN) -Wno-format-nonliteral $(FUZZ_SAN) \
                -fsanitize=fuzzer-no-link -pthread -D_GNU_SOURCE \
                -I. -I$(LLHTTP_INC) $(PKG_CFLAGS)
FUZZ_LIBS    := -ljansson -lwslay -lmbedtls -lmbedx509 -lmbedcrypto -lm
FUZZ_LIB_OBJ := $(patsubst %.c,$(FUZZ_B)/obj/%.o,$(PROTO_SRC) $(COMMON_SRC) \
                $(PERSONA_SRC)) $(FUZZ_B)/obj/llhttp/api.o \
                $(FUZZ_B)/obj/llhttp/http.o $(FUZZ_B)/obj/llhttp/llhttp.o
FUZZ_BIN     := $(FUZZ_NAMES:%=$(FUZZ_B)/fuzz_%)
FUZZ_R       := $(B)/fuzz-replay
FUZZ_R_BIN   := $(FUZZ_NAMES:%=$(FUZZ_R)/fuzz_%)
FUZZ_R_OBJ   := $(FUZZ_R_BIN:=.o) $(FUZZ_R)/replay.o

.PHONY: fuzz fuzz-run fuzz-merge fuzz-replay

$(FUZZ_B)/.settings: FORCE
	@mkdir -p $(FUZZ_B)
	@echo '$(FUZZ_CC) $(FUZZ_CFLAGS)' | cmp -s - $@ || \
	    echo '$(FUZZ_CC) $(FUZZ_CFLAGS)' > $@

$(FUZZ_B)/obj/llhttp/%.o: $(LLHTTP_DIR)/%.c $(FUZZ_B)/.settings
	@mkdir -p $(dir $@)
	@echo "  FUZZCC $<"
	$(Q)$(FUZZ_CC) -std=gnu11 -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
	    -I$(LLHTTP_INC) -w -c $< -o $@

$(FUZZ_B)/obj/%.o: %.c $(FUZZ_B)/.settings
	@mkdir -p $(dir $@)
	@echo "  FUZZCC $<"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_BIN): $(FUZZ_B)/fuzz_%: $(FUZZ_B)/obj/test/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ)
	@echo "  LD    $@"
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -pthread -o $@ $^ $(FUZZ_LIBS)

fuzz: $(FUZZ_BIN)

fuzz-run: fuzz
	test/fuzz/run.sh $(FUZZ_B) $(FUZZ_SECONDS) $(FUZZ_JOBS) $(FUZZ_TARGETS)

fuzz-merge: fuzz
	@for t in $(FUZZ_TARGETS); do \
	    [ -d $(FUZZ_B)/run/$$t/corpus ] || continue; \
	    n=$$(ls test/fuzz/corpus/$$t | wc -l); \
	    $(FUZZ_B)/fuzz_$$t -merge=1 test/fuzz/corpus/$$t \
	        $(FUZZ_B)/run/$$t/corpus >$(FUZZ_B)/run/$$t/merge.log 2>&1 || \
	        { echo "$$t: merge failed, see $(FUZZ_B)/run/$$t/merge.log"; exit 1; }; \
	    echo "$$t: $$(($$(ls test/fuzz/corpus/$$t | wc -l) - n)) inputs added"; \
	done

$(FUZZ_R)/%.o: test/fuzz/%.c $(B)/.settings
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	$(Q)$(CC) $(FINAL_CFLAGS) -DFUZZ_REPLAY -MMD -MP -c $< -o $@

$(FUZZ_R_BIN): $(FUZZ_R)/fuzz_%: $(FUZZ_R)/fuzz_%.o $(FUZZ_R)/replay.o \
    $(LIB_OBJ) $(LLHTTP_OBJ)
	@echo "  LD    $@"
	$(Q)$(CC) $(FINAL_LDFLAGS) -o $@ $^ $(VR_LIBS)

fuzz-replay: $(FUZZ_R_BIN)
	@for t in $(FUZZ_NAMES); do $(FUZZ_R)/fuzz_$$t || exit 1; done

-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_R_OBJ:.o=.d) \
    $(FUZZ_NAMES:%=$(FUZZ_B)/obj/test/fuzz/fuzz_%.d)

# The load generator and the fake Realtime server (test/bench/), then the
# runs; BENCH_ARGS go to the driver, e.g. BENCH_ARGS="--calls 500 --seconds 10".
.SECONDARY: $(BENCH_OBJ)
$(B)/bench/%: $(B)/test/bench/%.o $(BENCH_LIB)
	@mkdir -p $(dir $@)
	@echo "  LD    $@"
	$(Q)$(CC) $(FINAL_LDFLAGS) -o $@ $^ $(VR_LIBS)

bench-tools: $(B)/bench/loadgen $(B)/bench/fake_upstream

bench: $(B)/voxrelay bench-tools
	/usr/bin/python3 test/bench/bench.py --build $(B) $(BENCH_ARGS)

# ConversationRelay beside Media Streams: a plain run of 500 calls, then
# 50, 200 and 500 text conversations (loadgen --relay, fake_upstream's text
# sessions), each on a fresh daemon; about 2 minutes.  BENCH_RELAY_ARGS go
# to bench.py after these, e.g. BENCH_RELAY_ARGS="--relay-calls 1000".
bench-relay: $(B)/voxrelay bench-tools
	/usr/bin/python3 test/bench/bench.py --build $(B) --modes plain,relay \
	    --calls 500 --relay-calls 50,200,500 --sweep none $(BENCH_RELAY_ARGS)

# The same conversations between Python peers (test/peers/crelay.py and
# fake_openai.py's text mode) in one process: a cross-check of the C
# tools' figures at up to a few hundred conversations.
bench-relay-py: $(B)/voxrelay
	/usr/bin/python3 test/bench/relay_bench.py $(BENCH_RELAY_PY_ARGS)

# The whole suite once more on a build with AddressSanitizer and
# UndefinedBehaviorSanitizer; the daemon's log is checked for their reports.
SAN_B := $(B)/san
check-sanitize:
	$(MAKE) B=$(SAN_B) SANITIZER=address,undefined $(SAN_B)/voxrelay $(SAN_B)/test_unit \
	    bench-tools
	$(SAN_B)/test_unit
	test/store/pg.sh $(SAN_B)/test_unit
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    /usr/bin/python3 test/integration/run.py --binary $(SAN_B)/voxrelay

# The README's two commands: both install what they need first.
deps:
	test/deps.sh

test: deps
	$(MAKE) check
	$(MAKE) check-sanitize

demo: deps
	$(MAKE) $(B)/voxrelay
	/usr/bin/python3 test/peers/demo.py --binary $(B)/voxrelay

install: $(B)/voxrelay
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(SYSCONFDIR)/voxrelay/personas \
	    $(DESTDIR)$(SYSCONFDIR)/voxrelay/lines $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(B)/voxrelay $(DESTDIR)$(SBINDIR)/voxrelay
	install -m 0640 etc/voxrelay.conf $(DESTDIR)$(SYSCONFDIR)/voxrelay/voxrelay.conf
	install -m 0644 personas/*.json $(DESTDIR)$(SYSCONFDIR)/voxrelay/personas/
	install -m 0644 etc/lines/*.json $(DESTDIR)$(SYSCONFDIR)/voxrelay/lines/
	install -d $(DESTDIR)$(PREFIX)/share/voxrelay/examples/campaigns
	install -m 0644 etc/campaigns/example.json etc/campaigns/example-contacts.csv \
	    $(DESTDIR)$(PREFIX)/share/voxrelay/examples/campaigns/
	install -m 0644 packaging/voxrelay.8 $(DESTDIR)$(MANDIR)/man8/voxrelay.8

# The Debian package, from the files git knows (committed or not, ignored
# ones left out) or, outside a git tree, from this tree minus build output.
# They are staged in build/pkg/voxrelay-$(VERSION)/ with packaging/debian/
# as debian/; the .deb and its .buildinfo and .changes land in build/.
PKG_STAGE := $(B)/pkg/voxrelay-$(VERSION)
# deb-deps installs the Build-Depends first, as deps does for the tests.
deb-deps:
	packaging/deb-deps.sh

deb: deb-deps
	@v=$$(dpkg-parsechangelog -l packaging/debian/changelog -S Version) && \
	 case "$$v" in $(VERSION)-*) ;; \
	 *) echo "packaging/debian/changelog is at $$v, the Makefile at $(VERSION)" >&2; \
	    exit 1;; esac
	rm -rf $(B)/pkg
	mkdir -p $(PKG_STAGE)
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		git ls-files -z --cached --others --exclude-standard | \
		    xargs -0 -r sh -c 'for f; do [ -e "$$f" ] && printf "%s\0" "$$f"; done' sh | \
		    tar --null -T - -cf - | tar -xf - -C $(PKG_STAGE); \
	else \
		tar --exclude=./$(B) --exclude='./build-*' --exclude=./.git -cf - . | \
		    tar -xf - -C $(PKG_STAGE); \
	fi
	rm -rf $(PKG_STAGE)/debian
	cp -r packaging/debian $(PKG_STAGE)/debian
	cd $(PKG_STAGE) && dpkg-buildpackage -us -uc -b
	mv $(B)/pkg/*.deb $(B)/pkg/*.buildinfo $(B)/pkg/*.changes $(B)/
	@ls -1 $(B)/*.deb

clean:
	rm -rf $(B)

-include $(ALL_OBJ:.o=.d)
