# dbinit — see README.md. `make help` lists the targets.
SHELL := bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/savvi-studio/dbinit/internal/cli.Version=$(VERSION)
# The main module and the two modules go.work joins to it (container
# tooling kept out of the main go.mod).
PKGS := ./... ./docker/... ./dbtest/dbtestcontainers/...

PG_MAJOR ?= 17
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

.PHONY: help build release test test-short short-needs-no-server reliability bench bench-peers fuzz vet clean image postgres-image postgres-dbinit-image up down

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

build: ## build the static binary bin/dbinit
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/dbinit ./cmd/dbinit

DIST ?= dist
PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
release: ## static binaries for linux, darwin and windows on amd64 and arm64 in $(DIST)/, with SHA256SUMS; VERSION=v1.2.3 stamps them
	rm -rf $(DIST) && mkdir -p $(DIST)
	@set -e; for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; ext=; [ $$os = windows ] && ext=.exe; \
		out=$(DIST)/dbinit-$(VERSION)-$$os-$$arch$$ext; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$out ./cmd/dbinit; \
		echo $$out; \
	done
	cd $(DIST) && sha256sum dbinit-* >SHA256SUMS && sha256sum -c --quiet SHA256SUMS

test: vet short-needs-no-server ## every test, with the race detector, against real PostgreSQL servers and containers it starts
	$(GO) test -race -count=1 -timeout 15m $(PKGS)
	bash docker/test-on.sh 17
	bash docker/test-on.sh 18

test-short: ## the tests that need no server or Docker (go test -short)
	$(GO) test -short -count=1 $(PKGS)

# -short promises no server: with no usable PostgreSQL binaries and no
# TEST_DATABASE_URL, any test that tried to start one would fail here.
short-needs-no-server:
	env -u TEST_DATABASE_URL TEST_PG_BINDIR=/nonexistent $(GO) test -short -count=1 $(PKGS)

test-on-%: ## the database tests against PostgreSQL % in a container (test-on-17, test-on-18)
	bash docker/test-on.sh $*

reliability: ## kill, crash and concurrency trials on PostgreSQL 15, 17 and 18 at the counts of docs/reliability.md
	cd docker && RELIABILITY_TRIALS=30 RELIABILITY_RUNNERS=40 $(GO) test -count=1 -timeout 60m -run 'TestReliability' -v . | grep -E '^(---|ok|FAIL|PASS)|reliability_test.go'

bench: ## benchmarks: dbinit vs psql, clone vs migrate (see docs/benchmarks.md)
	$(GO) test -run '^$$' -bench . -benchtime 5x -timeout 60m ./bench/...

bench-peers: ## dbinit vs psql -1, psql per file, goose, golang-migrate and tern at 100, 1,000 and 5,000 files: docs/peers.md and docs/peers.png (needs /usr/bin/time)
	cd bench/peers && GOWORK=off $(GO) run . $(PEERS_FLAGS)

fuzz: ## fuzz the SQL splitter for a minute
	$(GO) test -run '^$$' -fuzz FuzzSplit -fuzztime 60s ./internal/sqlsplit

vet: ## go vet, gofmt, and the binary builds for Windows and macOS (what make release ships)
	$(GO) vet $(PKGS)
	CGO_ENABLED=0 GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null ./cmd/dbinit
	CGO_ENABLED=0 GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./cmd/dbinit
	cd bench/peers && GOWORK=off $(GO) vet .
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

image: ## the dbinit image dbinit:local, FROM scratch, from a host-built binary
	bash docker/build-image.sh dbinit dbinit:local

postgres-image: ## dbinit/postgres-base:$(PG_MAJOR) from Debian packages (15: bookworm, 17: trixie, 18: forky)
	bash docker/postgres/build-base.sh $(PG_MAJOR)

postgres-dbinit-image: ## Dockerfile.postgres on the offline base: dbinit/postgres-dbinit:$(PG_MAJOR)
	@docker image inspect dbinit/postgres-base:$(PG_MAJOR) >/dev/null 2>&1 || $(MAKE) postgres-image
	bash docker/build-image.sh postgres dbinit/postgres-dbinit:$(PG_MAJOR) dbinit/postgres-base:$(PG_MAJOR)

# up uses the official postgres image when it is here or can be pulled, and
# builds the offline one from Debian packages otherwise (docker/up.sh).
up: image ## start postgres, dbinit and the example app with docker-compose; exits with dbinit's code when it fails
	@PG_MAJOR=$(PG_MAJOR) COMPOSE="$(COMPOSE)" bash docker/up.sh

down: ## stop the compose services and delete their data
	$(COMPOSE) down -v --remove-orphans

clean: ## remove build outputs and every image this project built (the next make test rebuilds the PostgreSQL images: minutes)
	rm -rf bin dist docker/.build
	@ids=$$( (docker images -q --filter label=io.github.savvi-studio.dbinit.project=dbinit; docker images -q dbinit; docker images -q 'dbinit/*') 2>/dev/null | sort -u); \
	if [ -n "$$ids" ]; then echo "removing $$(echo $$ids | wc -w) dbinit image(s)"; docker image rm -f $$ids >/dev/null; fi
