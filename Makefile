# Build, test and demo targets; "make help" lists them.
#
# go comes from PATH, else /usr/local/go/bin/go; GO=/path/to/go overrides.

GO := $(or $(GO),$(shell command -v go 2>/dev/null),/usr/local/go/bin/go)
GOFMT := $(shell $(GO) env GOROOT 2>/dev/null)/bin/gofmt
# Scripts and tests that run go or gofmt themselves find the same toolchain.
export GO
export PATH := $(dir $(GO))$(if $(PATH),:$(PATH))

# The race detector needs cgo; without a C compiler the tests run without it.
RACE := $(if $(filter 1,$(shell $(GO) env CGO_ENABLED 2>/dev/null)),-race)
# Tests re-execute their own binary in other roles; each such process
# would otherwise sleep a second at exit under the race detector.
export GORACE ?= atexit_sleep_ms=0
# Per test binary; a hung test fails the run instead of eating CI's time.
TEST_TIMEOUT ?= 10m
# Each fuzz target runs this long under "make fuzz".
FUZZTIME ?= 20s
export FUZZTIME
# What check, bench and fuzz cover: "make fuzz PKGS=./protocol/..." narrows it.
PKGS ?= ./...

# The steps of "test" must run in order, and go parallelises by itself.
.NOTPARALLEL:

# Where "make install" puts things; DESTDIR is prepended to each (for
# packaging into a staging tree). See docs/install.md.
PREFIX ?= /usr/local
export PREFIX DESTDIR BINDIR MANDIR DOCDIR UNITDIR

# The manuals in docs/ that are also man pages.
MANUALS := docs/sslserver.md docs/sslhandle.md docs/sslclient.md docs/sslrules.md docs/sslrulescheck.md docs/ssltlsa.md

.PHONY: build man install uninstall test deps vet fmt-check unit integration check demo bench fuzz clean help

## build: compile every program into bin/
# Without cgo, because sslserver changes the ids of all its threads at once
# (syscall.AllThreadsSyscall), which a cgo binary cannot do.
build:
	CGO_ENABLED=0 $(GO) build -o bin/ ./cmd/...

## man: render the man pages from docs/ into bin/man (go-md2man)
man:
	rm -rf bin/man
	$(GO) run ./internal/manpage/mkman -o bin/man $(MANUALS)

## install: build, then install programs, man pages, docs, examples and the systemd unit under PREFIX (/usr/local), DESTDIR
install: build man
	scripts/install install

## uninstall: remove exactly what "make install" installed (same PREFIX and DESTDIR)
uninstall:
	scripts/install uninstall

## test: the whole suite, as CI runs it (installs test packages; root for integration/)
test: deps vet fmt-check build unit integration

## deps: install the Debian packages the tests use, if missing
deps:
	scripts/install-test-deps

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$($(GOFMT) -l .) || exit 1; \
	if [ -n "$$out" ]; then echo "gofmt: these files need formatting:" >&2; echo "$$out" >&2; exit 1; fi

# Unit tests run under the race detector; the integration tests drive real
# sslserver processes, where it would only slow the test binary down. They
# build those programs themselves, without cgo like "build".
unit:
	pkgs=$$($(GO) list ./... | grep -v '/integration') && \
	$(GO) test -count=1 $(RACE) -timeout $(TEST_TIMEOUT) $$pkgs

integration:
	@if [ -d integration ]; then \
		echo "CGO_ENABLED=0 $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./integration/..."; \
		CGO_ENABLED=0 $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./integration/...; \
	fi

## check: quick pre-commit check: vet, gofmt, go test -short
check: vet fmt-check
	$(GO) test -short $(PKGS)

## demo: one real SMTP session through STARTTLS under sslserver -n (as root)
demo: build
	scripts/demo

## bench: run the benchmarks
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(if $(filter 1,$(BENCH_QUICK)),100ms,500ms) \
		$$($(GO) list $(PKGS) | grep -v '/integration$$')
	CGO_ENABLED=0 $(GO) build -o bin/ ./cmd/...
	bin/sslbench run $(if $(filter 1,$(BENCH_QUICK)),-quick) $(BENCHFLAGS)

## fuzz: run every Fuzz* target for FUZZTIME each (default 20s)
fuzz:
	scripts/fuzz $(PKGS)

## clean: remove built programs and man pages
clean:
	rm -rf bin

## help: list the targets
help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)
