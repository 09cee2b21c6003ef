# test/fuzz/bridge.mk (included by the Makefile): the bridge's targets.
# Every bridge module but main.c is compiled with clang-14 and coverage
# (fuzzer-no-link) + ASan/UBSan into obj-bridge/, as the unit tests link them.

BRIDGE       ?= $(TOP)/bridge
# the libraries the bridge's own Makefile names (PKGS = ...)
BRIDGE_PKGS  := $(shell sed -n 's/^PKGS *= *//p' $(BRIDGE)/Makefile)
BRIDGE_CFLAGS := -g -O1 -std=c11 -fsanitize=fuzzer-no-link,address,undefined \
                 -fno-sanitize-recover=all -fno-omit-frame-pointer \
                 $(shell pkg-config --cflags $(BRIDGE_PKGS))
BRIDGE_LIBS  := $(shell pkg-config --libs $(BRIDGE_PKGS)) -lev -lcrypto
BRIDGE_MODS  := $(filter-out $(BRIDGE)/main.c,$(sort $(wildcard $(BRIDGE)/*.c)))
BRIDGE_OBJS  := $(BRIDGE_MODS:$(BRIDGE)/%.c=obj-bridge/%.o)
BRIDGE_TARGETS := bridge_route bridge_text bridge_config bridge_consumer bridge_http \
                  $(if $(wildcard $(BRIDGE)/auth.c),bridge_auth)

obj-bridge/%.o: $(BRIDGE)/%.c $(wildcard $(BRIDGE)/*.h)
	@mkdir -p obj-bridge
	$(CC_FUZZ) $(BRIDGE_CFLAGS) -c -o $@ $<

bin/bridge_%: bridge_%/fuzz.c $(BRIDGE_OBJS) common/fuzz_bytes.h
	@mkdir -p bin
	$(CC_FUZZ) $(FUZZ_CFLAGS) -std=c11 -D_GNU_SOURCE -I$(BRIDGE) $(shell pkg-config --cflags $(BRIDGE_PKGS)) \
	    -o $@ $< $(BRIDGE_OBJS) $(BRIDGE_LIBS)
