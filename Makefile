# dbinit — see README.md. `make help` lists the targets.
SHELL := bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/savvi-studio/dbinit/internal/cli.Version=$(VERSION)
PKGS := ./...

.PHONY: help build test test-short bench fuzz lint vet fmt clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

build: ## build the static binary bin/dbinit
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/dbinit ./cmd/dbinit

test: vet ## run every test with the race detector (starts a throwaway PostgreSQL)
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

test-short: ## unit tests only, no server
	$(GO) test -short -count=1 $(PKGS)

bench: ## benchmarks: dbinit vs psql, clone vs migrate (see docs/benchmarks.md)
	$(GO) test -run '^$$' -bench . -benchtime 5x -timeout 60m ./bench/...

fuzz: ## fuzz the SQL splitter for a minute
	$(GO) test -run '^$$' -fuzz FuzzSplit -fuzztime 60s ./internal/sqlsplit

vet: ## go vet and gofmt
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean:
	rm -rf bin
