# tillsync — build, test, demo. Run `make help` for the list.

GO       ?= go
BIN      ?= bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/tillsync/tillsync/internal/cli.Version=$(VERSION)
FUZZTIME ?= 10s
# What make fuzz runs: the packages (FUZZPKGS), the targets whose names
# match FUZZMATCH (an extended regexp), with FUZZFLAGS passed to go test
# (e.g. FUZZFLAGS='-parallel 1' on a small machine). FUZZMINIMIZE bounds
# the minimizing of each new input (go test's default, 60s, would spend
# most of a short run shrinking one large seed).
FUZZPKGS     ?= ./...
FUZZMATCH    ?= .
FUZZFLAGS    ?=
FUZZMINIMIZE ?= 3s
# make chaos: how many seeds, from which, for how long each; CHAOS_SEED=N replays one.
CHAOS_SEEDS     ?= 3
CHAOS_SEED_BASE ?= 1
CHAOS_DURATION  ?= 20s
CHAOS_SEED      ?=
CHAOS_BROKER    ?= embedded
# make crashloop: how many kill -9s of the agent.
CRASH_KILLS ?= 1000
# make bench: flags for tillsync-sim bench, e.g. BENCH_FLAGS='--run ingest,drain'
# or a smaller scale ('--aging-txs 1000000 --connections 2000'); none: everything
# at the full scale of docs/performance.md (about 45 minutes, 40 GB of disk).
BENCH_FLAGS ?=
CMDS     := tillsync-hub tillsync-agent tillsync-sim
DIST     ?= dist
# What make dist builds: the programs that ship, for every till and hub platform.
DIST_CMDS    := tillsync-agent tillsync-hub
DIST_TARGETS := windows/amd64 windows/386 linux/amd64 linux/arm64 linux/arm darwin/arm64
SHA256SUM    ?= $(shell command -v sha256sum >/dev/null 2>&1 && echo sha256sum || echo 'shasum -a 256')

.PHONY: help build dist demo test vet fmt-check bench bench-go fuzz chaos crashloop clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

build: ## build the binaries into bin/
	@mkdir -p $(BIN)
	@for c in $(CMDS); do echo "go build $$c"; $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/$$c ./cmd/$$c || exit 1; done

dist: ## cross-compile the agent and the hub for every platform into dist/OS_ARCH/, with dist/SHA256SUMS
	@rm -rf $(DIST)
	@for t in $(DIST_TARGETS); do \
	  os=$${t%/*}; arch=$${t#*/}; ext=; goarm=; \
	  [ $$os = windows ] && ext=.exe; [ $$arch = arm ] && goarm=7; \
	  mkdir -p $(DIST)/$${os}_$${arch}; \
	  for c in $(DIST_CMDS); do \
	    echo "dist $$os/$$arch$${goarm:+ (GOARM=$$goarm)}: $(DIST)/$${os}_$${arch}/$$c$$ext"; \
	    CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$goarm $(GO) build -trimpath -ldflags '$(LDFLAGS)' \
	      -o $(DIST)/$${os}_$${arch}/$$c$$ext ./cmd/$$c || exit 1; \
	  done; \
	done
	@cd $(DIST) && $(SHA256SUM) */* > SHA256SUMS
	@echo "dist $(VERSION): $(DIST)/SHA256SUMS"

demo: build ## run a hub and a store agent end to end, across a hub outage
	$(BIN)/tillsync-sim demo --bin $(BIN)

test: vet fmt-check ## go vet, gofmt check, and the whole suite with -race
	$(GO) test -race -count=1 ./...

vet: ## go vet, here and for Windows and macOS (their platform files and tests must build too)
	$(GO) vet ./...
	GOOS=windows $(GO) vet ./...
	GOOS=darwin $(GO) vet ./...

fmt-check: ## fail if gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

bench: build ## the performance scenarios (docs/performance.md), each figure beside a baseline of the same run, in one table
	$(BIN)/tillsync-sim bench $(BENCH_FLAGS)

bench-go: ## the Go micro-benchmarks (ledger apply, outbox append, MACs, ingest)
	$(GO) test -run '^$$' -bench . -benchmem ./...

fuzz: ## run every fuzz target for FUZZTIME each (default 10s), one after another; stops at the first failure
	@log=$$(mktemp); rc=$$(mktemp); sum=$$(mktemp); trap 'rm -f "$$log" "$$rc" "$$sum"' EXIT; \
	n=0; all=$$(date +%s); \
	for pkg in $$($(GO) list $(FUZZPKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' | grep -E '$(value FUZZMATCH)'); do \
	    n=$$((n+1)); t0=$$(date +%s); \
	    echo "== fuzz $$n: $$pkg $$f for $(FUZZTIME)"; \
	    { $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) $(FUZZFLAGS) $$pkg 2>&1; echo $$? > "$$rc"; } | tee "$$log"; \
	    note=; \
	    if [ "$$(cat "$$rc")" != 0 ] && ! grep -q 'Failing input written to' "$$log" && grep -qx '    context deadline exceeded' "$$log"; then \
	      note='  (go.dev/issue/75804: the fuzzer tripped on its own deadline at the end; no input failed)'; echo "fuzz:$$note"; \
	    elif [ "$$(cat "$$rc")" != 0 ]; then \
	      [ -s "$$sum" ] && { echo "== fuzz: $$((n-1)) targets passed before this one"; cat "$$sum"; }; \
	      where=; grep -q 'Failing input written to' "$$log" && where=": the failing input is in $$($(GO) list -f '{{.Dir}}' $$pkg)/testdata/fuzz/$$f/"; \
	      echo "FAIL fuzz $$pkg $$f$$where"; exit 1; \
	    fi; \
	    last=$$(grep 'execs:' "$$log" | tail -1); \
	    execs=$$(echo "$$last" | sed -n 's/.*execs: \([0-9]*\).*/\1/p'); \
	    new=$$(echo "$$last" | sed -n 's/.*new interesting: \([0-9]*\).*/\1/p'); \
	    [ -z "$$execs" ] && note="$$note  (FUZZTIME went on replaying the corpus)"; \
	    printf '  %-45s %-26s %4ss  execs %10s  new %4s%s\n' "$$pkg" "$$f" "$$(($$(date +%s)-t0))" "$${execs:-0}" "$${new:-0}" "$$note" >> "$$sum"; \
	  done; \
	done; \
	if [ $$n = 0 ]; then echo "fuzz: no target in $(FUZZPKGS) matches $(value FUZZMATCH)"; exit 1; fi; \
	echo "== fuzz summary: $$n targets passed, $(FUZZTIME) each, $$(($$(date +%s)-all))s in all"; cat "$$sum"

chaos: build ## hub and tills under seeded faults, history checked: CHAOS_SEEDS seeds (3) of CHAOS_DURATION (20s); CHAOS_SEED=N replays one; CHAOS_BROKER=mosquitto
	$(BIN)/tillsync-sim chaos $(if $(CHAOS_SEED),--seed $(CHAOS_SEED),--seeds $(CHAOS_SEEDS) --seed-base $(CHAOS_SEED_BASE)) \
	  --duration $(CHAOS_DURATION) --broker $(CHAOS_BROKER) $(if $(filter-out 1 2 3,$(CHAOS_SEEDS)),--quiet)

crashloop: build ## kill -9 a till's agent CRASH_KILLS times (1000) mid-traffic; outbox checked after each, ledger at the end
	$(BIN)/tillsync-sim crashloop --kills $(CRASH_KILLS)

clean: ## remove build output
	rm -rf $(BIN) $(DIST)
