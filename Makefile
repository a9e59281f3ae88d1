# bk: encrypted, erasure-coded backups over several hosts.
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man/man1
UNITDIR ?= $(PREFIX)/lib/systemd/system
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
TOOLS   := bk-pack bk-restore bk-find bk-keygen bk-split bk-join bk-push bk-ls bk-check bk-repair bk-prune bk-backup
GOFLAGS_BUILD := -trimpath -ldflags "-s -w -X github.com/bk-backup/bk/internal/cli.version=$(VERSION)"
FUZZTIME ?= 30s

.PHONY: all build test test-large units install man bench fuzz demo soak clean
all: build

build:
	@mkdir -p bin
	go build $(GOFLAGS_BUILD) -o bin/ $(addprefix ./cmd/,$(TOOLS))

# The cross checks: vet for macOS and FreeBSD, the tools built for the
# machines people back up, and the erasure tools (pure streams) for Windows.
test:
	go mod tidy -diff
	go vet ./...
	GOOS=darwin go vet ./...
	GOOS=freebsd go vet ./...
	GOOS=darwin GOARCH=arm64 go build ./cmd/...
	GOOS=darwin GOARCH=amd64 go build ./cmd/...
	GOOS=freebsd GOARCH=amd64 go build ./cmd/...
	GOOS=windows GOARCH=amd64 go build ./cmd/bk-split ./cmd/bk-join
	go test -timeout 15m ./...
	$(MAKE) -s test-large
	$(MAKE) -s soak NIGHTS=60 SOAKFLAGS=-short
	$(MAKE) -s demo > /dev/null
	$(MAKE) units

# The tests at full size, which go test ./... skips (each costs more CPU
# than its whole budget): issue 12's 256 MiB file through three
# incremental backups, about 30 s of CPU.
test-large:
	BK_TEST_LARGE=1 go test -timeout 15m -run 'TestScripts/incremental_delta_large$$' ./internal/command

# The systemd units, checked by systemd-analyze where there is one; it
# warns without failing, so any output fails the check.
units: build
	@if ! command -v systemd-analyze >/dev/null; then echo "systemd-analyze not found: units not checked"; exit 0; fi; \
	d=$$(mktemp -d); \
	for u in service timer; do sed 's|/usr/local/bin|$(CURDIR)/bin|' contrib/systemd/bk-backup@.$$u > $$d/bk-backup@check.$$u; done; \
	out=$$(cd $$d && systemd-analyze verify --man=no ./bk-backup@check.service ./bk-backup@check.timer 2>&1); rc=$$?; rm -r $$d; \
	if [ $$rc -ne 0 ] || [ -n "$$out" ]; then echo "$$out"; echo "systemd units: systemd-analyze verify failed"; exit 1; fi; \
	echo "systemd units verified"

install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)
	install -m 0755 $(addprefix bin/,$(TOOLS)) $(DESTDIR)$(BINDIR)/
	install -m 0644 $(addprefix man/,$(addsuffix .1,$(TOOLS))) $(DESTDIR)$(MANDIR)/
	install -d $(DESTDIR)$(UNITDIR)
	sed 's|/usr/local/bin|$(BINDIR)|' contrib/systemd/bk-backup@.service > $(DESTDIR)$(UNITDIR)/bk-backup@.service
	install -m 0644 contrib/systemd/bk-backup@.timer $(DESTDIR)$(UNITDIR)/

man:
	go run man/generate.go

# Runs every fuzz target for FUZZTIME each. Minimizing a new input may take
# 60 s by default, uncounted, which left FuzzExtract at 0 execs/s for most of
# a short run; a count bounds it.
fuzz:
	@for pkg in $$(go list ./internal/...); do \
	  for f in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; go test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 200x $$pkg || exit 1; \
	  done; \
	done

bench: build
	bench/run.sh

demo: build
	demo/demo.sh

# The simulated year of nightly backups through failures (issue 16); run
# by hand and before each release. make test runs 60 nights of it with
# fewer faults, after go test.
# A failure prints the seed and night; SEED=… FROM=… replays it (the nights
# before FROM run unchecked). START is the first night's date.
SEED   ?= 1
NIGHTS ?= 365
FROM   ?= 0
START  ?= 2030-01-07
soak: build
	go run ./soak -seed $(SEED) -nights $(NIGHTS) -from $(FROM) -start $(START) $(SOAKFLAGS)

clean:
	rm -rf bin
