# tillsync — build, test, demo. Run `make help` for the list.

GO       ?= go
BIN      ?= bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/tillsync/tillsync/internal/cli.Version=$(VERSION)
FUZZTIME ?= 10s
CMDS     := tillsync-hub tillsync-agent tillsync-sim

.PHONY: help build demo test vet fmt-check bench fuzz clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

build: ## build the binaries into bin/
	@mkdir -p $(BIN)
	@for c in $(CMDS); do echo "go build $$c"; $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/$$c ./cmd/$$c || exit 1; done

demo: build ## run a hub and a store agent end to end, across a hub outage
	$(BIN)/tillsync-sim demo --bin $(BIN)

test: vet fmt-check ## go vet, gofmt check and the whole suite with -race
	$(GO) test -race -count=1 ./...

vet: ## go vet
	$(GO) vet ./...

fmt-check: ## fail if gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

bench: ## run the benchmarks
	$(GO) test -run '^$$' -bench . -benchmem ./...

fuzz: ## run every fuzz target for FUZZTIME each (default 10s)
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean: ## remove build output
	rm -rf $(BIN)
