#!/usr/bin/env bash
# up.sh - what `make up` runs once the dbinit image is built: start
# PostgreSQL, run dbinit as the init service and start the example app, then
# say what happened. When dbinit fails, print its output (the error with
# FILE:LINE:COL and the caret) and exit with dbinit's exit code.
#
# Environment (all optional):
#   POSTGRES_IMAGE  PostgreSQL image (default: postgres:$PG_MAJOR when present
#                   or pullable, else dbinit/postgres-base:$PG_MAJOR built from
#                   Debian packages)
#   POSTGRES_PORT   host port (default: the one the running stack uses, else
#                   5432 when free, else a free one, printed)
#   PG_MAJOR        17
#   COMPOSE         docker-compose command (default: docker compose, else docker-compose)
#   COMPOSE_FILE, COMPOSE_PROJECT_NAME, DBINIT_IMAGE: as docker-compose reads them
set -Eeuo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if [[ -n ${COMPOSE:-} ]]; then
	read -r -a compose <<<"$COMPOSE"
elif docker compose version >/dev/null 2>&1; then
	compose=(docker compose)
else
	compose=(docker-compose)
fi
major=${PG_MAJOR:-17}

say() { printf '%s\n' "$*"; }

# The password the stack's postgres and dbinit read, generated once.
if [[ -z ${POSTGRES_PASSWORD_FILE:-} ]]; then
	mkdir -p .secrets && chmod 700 .secrets
	[[ -s .secrets/postgres-password ]] || (umask 022 && head -c 18 /dev/urandom | base64 >.secrets/postgres-password)
fi

if [[ -z ${POSTGRES_IMAGE:-} ]]; then
	if docker image inspect "postgres:$major" >/dev/null 2>&1 || timeout 30 docker pull -q "postgres:$major" >/dev/null 2>&1; then
		POSTGRES_IMAGE=postgres:$major
	else
		say "postgres:$major cannot be pulled here; using dbinit/postgres-base:$major, built from Debian packages (mmdebstrap; a few minutes the first time)"
		bash docker/postgres/build-base.sh "$major"
		POSTGRES_IMAGE=dbinit/postgres-base:$major
	fi
fi
export POSTGRES_IMAGE

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [[ -z ${POSTGRES_PORT:-} ]]; then
	# The stack already running keeps its port; otherwise 5432 unless taken.
	current=$("${compose[@]}" port postgres 5432 2>/dev/null || true)
	if [[ $current == *:* && ${current##*:} != 0 ]]; then
		POSTGRES_PORT=${current##*:}
	elif port_free 5432; then
		POSTGRES_PORT=5432
	else
		POSTGRES_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
			shuf -i 20000-60000 -n 1)
		say "port 5432 is taken (a local PostgreSQL?); publishing PostgreSQL on $POSTGRES_PORT instead (set POSTGRES_PORT to choose)"
	fi
fi
export POSTGRES_PORT

# dbinit and the app run again each time, against the db/ in the image just
# built; PostgreSQL and its volume stay.
"${compose[@]}" rm -f -s -v dbinit app >/dev/null 2>&1 || true

out=$(mktemp)
trap 'rm -f "$out"' EXIT
up_ok=1
"${compose[@]}" up -d >"$out" 2>&1 || up_ok=0

dbinit_id=$("${compose[@]}" ps -q dbinit 2>/dev/null || true)
code=
if [[ -n $dbinit_id ]]; then
	for _ in $(seq 600); do
		read -r status code < <(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$dbinit_id")
		[[ $status == exited ]] && break
		code=
		sleep 0.2
	done
fi

if [[ -z $code ]]; then
	say "make up: the stack did not start:"
	cat "$out"
	exit 1
fi
if [[ $code != 0 ]]; then
	say "make up: dbinit exited $code; the app was not started. dbinit said:"
	say ""
	"${compose[@]}" logs --no-color --no-log-prefix dbinit | grep -v "^Attaching to " | sed "s/^/  /"
	say ""
	case $code in
	1) say "Next: fix the statement named above (the file is under db/, mounted at /db), then run make up again. The failed file left nothing behind." ;;
	2) say "Next: fix the problem named above in db/ or in the configuration (docker-compose.yml), then run make up again." ;;
	5) say "Next: an applied file was changed or removed. Restore it, or start over with make down (which deletes the database) and make up." ;;
	*) say "Next: see docs/reference.md#exit-codes for exit code $code, then run make up again." ;;
	esac
	exit "$code"
fi
if [[ $up_ok == 0 ]]; then
	say "make up: dbinit succeeded but the stack did not start:"
	cat "$out"
	exit 1
fi

summary=$("${compose[@]}" logs --no-color --no-log-prefix dbinit | grep 'msg="init done"' | tail -1 || true)
app=
for _ in $(seq 150); do
	app=$("${compose[@]}" logs --no-color --no-log-prefix app 2>/dev/null | grep 'app ready' | tail -1 || true)
	[[ -n $app ]] && break
	sleep 0.2
done
say "dbinit: ${summary:-done}"
say "app:    ${app:-(no output yet: ${compose[*]} logs app)}"
say ""
say "PostgreSQL $POSTGRES_IMAGE on 127.0.0.1:$POSTGRES_PORT, working database savvi_studio. Connect with:"
say "  PGPASSWORD=\"\$(cat .secrets/postgres-password)\" psql -h 127.0.0.1 -p $POSTGRES_PORT -U postgres savvi_studio"
say "Add a migration: go run ./cmd/dbinit new NAME, write both files, make up again. make down stops everything and deletes the data."
