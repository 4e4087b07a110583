# voxrelay — the only Makefile.
#
# Project flags and user flags stay apart; user CFLAGS/LDFLAGS come last so a
# packager's hardening flags win.  Objects live under build/, with -MMD deps.

VERSION    := 0.1.0
PREFIX     ?= /usr
SBINDIR    ?= $(PREFIX)/sbin
SYSCONFDIR ?= /etc
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

PKGS := libuv jansson libcurl
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

ALL_OBJ := $(LIB_OBJ) $(APP_OBJ) $(B)/daemon/main.o $(UNIT_OBJ)

.PHONY: all check unit integration peers clean install demo deps test settings
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

$(B)/voxrelay: $(B)/daemon/main.o $(APP_OBJ) $(LIB_OBJ) $(LLHTTP_OBJ)
	@echo "  LD    $@"
	$(Q)$(CC) $(FINAL_LDFLAGS) -o $@ $^ $(VR_LIBS)

$(B)/test_unit: $(UNIT_OBJ) $(LIB_OBJ) $(LLHTTP_OBJ)
	@echo "  LD    $@"
	$(Q)$(CC) $(FINAL_LDFLAGS) -o $@ $^ $(VR_LIBS)

unit: $(B)/test_unit
	$(B)/test_unit

integration: $(B)/voxrelay
	/usr/bin/python3 test/integration/run.py --binary $(B)/voxrelay

peers:
	/usr/bin/python3 test/peers/test_peers_selftest.py

check: unit peers integration

# The README's two commands: both install what they need first.
deps:
	test/deps.sh

test: deps
	$(MAKE) check

demo: deps
	$(MAKE) $(B)/voxrelay
	/usr/bin/python3 test/peers/demo.py --binary $(B)/voxrelay

install: $(B)/voxrelay
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(SYSCONFDIR)/voxrelay
	install -m 0755 $(B)/voxrelay $(DESTDIR)$(SBINDIR)/voxrelay
	install -m 0640 etc/voxrelay.conf $(DESTDIR)$(SYSCONFDIR)/voxrelay/voxrelay.conf

clean:
	rm -rf $(B)

-include $(ALL_OBJ:.o=.d)
