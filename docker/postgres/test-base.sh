#!/usr/bin/env bash
# test-base.sh - functional checks of the dbinit/postgres-base images.
#
#   test-base.sh [15] [17] [18]   (default: 17)
#
# Starts containers from dbinit/postgres-base:NN (build them first with
# build-base.sh), talks to them only through ports published on 127.0.0.1,
# and removes every container, volume and temp dir it made, also on failure.
# Ends with "N passed, N failed"; exits non-zero if anything failed.
#
# Environment:
#   DBINIT_PG_IMAGE   image repository (default dbinit/postgres-base)
#   TEST_TIMEOUT      seconds to wait for one container (default 90)
#   PSQL              psql client to use (default: host psql if present, else
#                     the image's own psql in a --network host container)
set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IMAGE_REPO=${DBINIT_PG_IMAGE:-dbinit/postgres-base}
TIMEOUT=${TEST_TIMEOUT:-90}
RUN_ID=dbinit-pgtest-$$
LABEL=io.github.savvi-studio.dbinit.test-run=$RUN_ID
READY='database system is ready to accept connections'

passed=0 failed=0
tmp_root=$(mktemp -d)
chmod 0755 "$tmp_root"

remove_containers() {
	local -a ids=()
	mapfile -t ids < <(docker ps -aq --filter "label=$LABEL" 2>/dev/null || :)
	((${#ids[@]} == 0)) || docker rm -f -v "${ids[@]}" >/dev/null 2>&1 || :
}
cleanup() {
	local -a vols=()
	remove_containers
	mapfile -t vols < <(docker volume ls -q --filter "label=$LABEL" 2>/dev/null || :)
	((${#vols[@]} == 0)) || docker volume rm "${vols[@]}" >/dev/null 2>&1 || :
	rm -rf "$tmp_root"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { local t=$EPOCHREALTIME; t=${t//[.,]/}; printf '%s' $((t / 1000)); }
secs() { printf '%d.%02ds' $(($1 / 1000)) $(($1 % 1000 / 10)); }

ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }
# check DESCRIPTION WANT GOT
check() {
	if [[ $3 == "$2" ]]; then ok "$1"; else bad "$1: want '$2', got '$3'"; fi
}
# check_has DESCRIPTION NEEDLE HAYSTACK
check_has() {
	if [[ $3 == *"$2"* ]]; then ok "$1"; else bad "$1: no '$2' in: $(tail -c 600 <<<"$3")"; fi
}
show_logs() { printf '      --- logs of %s ---\n' "$1"; docker logs --tail 30 "$1" 2>&1 | sed 's/^/      /'; }

# start NAME DOCKER-RUN-ARGS... : run a container detached, print its name
start() {
	local name=$RUN_ID-$1
	shift
	docker run -d --name "$name" --label "$LABEL" -p 127.0.0.1::5432 "$@" >/dev/null
	printf '%s\n' "$name"
}

port_of() { docker port "$1" 5432/tcp | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p' | head -n1; }

# sql URL SQL : run one statement, print unaligned tuples
sql() {
	if [[ -n $psql_image ]]; then
		docker run --rm --network host --label "$LABEL" --entrypoint psql "$psql_image" \
			-XAtq -v ON_ERROR_STOP=1 "$1" -c "$2"
	else
		PGCONNECT_TIMEOUT=3 "$PSQL" -XAtq -v ON_ERROR_STOP=1 "$1" -c "$2"
	fi
}

# wait_up CONTAINER URL : until SQL works through the published port (the
# URL's port is filled in).  Sets waited_ms; fails if the container stops or
# time runs out.  Not to be called in a subshell (it counts failures).
wait_up() {
	local c=$1 url=$2 t0 state
	t0=$(now_ms)
	while (($(now_ms) - t0 < TIMEOUT * 1000)); do
		state=$(docker inspect -f '{{.State.Status}}' "$c" 2>/dev/null || echo gone)
		if [[ $state != running && $state != created ]]; then
			bad "$c stopped early (state $state)"
			show_logs "$c"
			return 1
		fi
		if sql "${url/@127.0.0.1:/@127.0.0.1:$(port_of "$c")}" 'select 1' >/dev/null 2>&1; then
			waited_ms=$(($(now_ms) - t0))
			return 0
		fi
		sleep 0.2
	done
	bad "$c not ready after ${TIMEOUT}s"
	show_logs "$c"
	return 1
}

# wait_exit CONTAINER : print its exit code (bounded)
wait_exit() {
	local code
	code=$(timeout "$TIMEOUT" docker wait "$1" 2>/dev/null) || code=timeout
	printf '%s\n' "$code"
}

url_for() { printf 'postgresql://%s@127.0.0.1:%s/%s' "$2" "$(port_of "$1")" "$3"; }
ready_count() { docker logs "$1" 2>&1 | grep -c "$READY" || :; }

# ---------------------------------------------------------------------------
test_basic() {
	local c ms url out
	c=$(start basic -e POSTGRES_PASSWORD=secret "$image" -c fsync=off)
	wait_up "$c" "postgresql://postgres:secret@127.0.0.1:/postgres" || return 0
	ok "pg$major basic: first start ready in $(secs "$waited_ms") (docker run -> SQL through the port)"
	url=$(url_for "$c" postgres:secret postgres)
	out=$(sql "$url" 'select version()' 2>&1) || :
	check_has "pg$major basic: select version()" "PostgreSQL $major." "$out"
	check "pg$major basic: leading '-c fsync=off' reaches postgres" off "$(sql "$url" 'show fsync' 2>&1)"
	check "pg$major basic: server listens on '*'" '*' "$(sql "$url" 'show listen_addresses' 2>&1)"
	check "pg$major basic: '$READY' logged twice" 2 "$(ready_count "$c")"
	check "pg$major basic: PID 1 runs as uid 999 (postgres)" 999 \
		"$(docker exec "$c" awk '/^Uid:/ {print $2}' /proc/1/status)"
	check "pg$major basic: PID 1 is postgres" postgres "$(docker exec "$c" cat /proc/1/comm)"
	check "pg$major basic: remote auth is scram-sha-256" "host all all all scram-sha-256" \
		"$(docker exec "$c" tail -n1 /var/lib/postgresql/data/pg_hba.conf)"
	if sql "$(url_for "$c" postgres:wrong postgres)" 'select 1' >/dev/null 2>&1; then
		bad "pg$major basic: a wrong password was accepted"
	else
		ok "pg$major basic: a wrong password is rejected"
	fi
	ms=$(now_ms)
	docker stop -t 30 "$c" >/dev/null
	check_has "pg$major basic: docker stop is a fast shutdown (STOPSIGNAL SIGINT)" \
		"received fast shutdown request" "$(docker logs --tail 20 "$c" 2>&1)"
	ok "pg$major basic: stopped in $(secs $(($(now_ms) - ms)))"
}

test_user_db() {
	local c url
	c=$(start userdb -e POSTGRES_PASSWORD=pw -e POSTGRES_USER=app -e POSTGRES_DB=app "$image")
	wait_up "$c" "postgresql://app:pw@127.0.0.1:/app" || return 0
	url=$(url_for "$c" app:pw app)
	check "pg$major user/db: POSTGRES_USER=app POSTGRES_DB=app" "app|app|t" \
		"$(sql "$url" 'select current_user, current_database(), rolsuper from pg_roles where rolname = current_user' 2>&1)"
}

test_file_secrets() {
	local c dir url
	dir=$tmp_root/secrets-$major
	mkdir -m 0755 "$dir"
	printf 'f1le-pw\n' >"$dir/password"
	printf 'fileuser' >"$dir/user"
	printf 'filedb' >"$dir/db"
	# initdb turns data checksums on by default from 18 on: ask for the
	# opposite of the default, so the check shows the file was read.
	local checksums=on
	((major >= 18)) && checksums=off
	if [[ $checksums == on ]]; then
		printf -- '--data-checksums' >"$dir/initdb-args"
	else
		printf -- '--no-data-checksums' >"$dir/initdb-args"
	fi
	chmod 0444 "$dir"/*
	c=$(start files -v "$dir:/run/secrets:ro" \
		-e POSTGRES_PASSWORD_FILE=/run/secrets/password \
		-e POSTGRES_USER_FILE=/run/secrets/user \
		-e POSTGRES_DB_FILE=/run/secrets/db \
		-e POSTGRES_INITDB_ARGS_FILE=/run/secrets/initdb-args "$image")
	wait_up "$c" "postgresql://fileuser:f1le-pw@127.0.0.1:/filedb" || return 0
	url=$(url_for "$c" fileuser:f1le-pw filedb)
	check "pg$major _FILE: user, db and password from files" "fileuser|filedb" \
		"$(sql "$url" 'select current_user, current_database()' 2>&1)"
	check "pg$major _FILE: POSTGRES_INITDB_ARGS_FILE applied" "$checksums" "$(sql "$url" 'show data_checksums' 2>&1)"

	c=$(start both -v "$dir:/run/secrets:ro" -e POSTGRES_PASSWORD=x \
		-e POSTGRES_PASSWORD_FILE=/run/secrets/password "$image")
	check "pg$major _FILE: VAR and VAR_FILE both set -> exit 1" 1 "$(wait_exit "$c")"
	check_has "pg$major _FILE: ... with a clear message" "are exclusive" "$(docker logs "$c" 2>&1)"
}

test_no_password() {
	local c code
	c=$(start nopw "$image")
	code=$(wait_exit "$c")
	if [[ $code != 0 && $code != timeout ]]; then ok "pg$major no password: exits non-zero ($code)"; else bad "pg$major no password: exit '$code'"; fi
	check_has "pg$major no password: explains why" \
		"superuser password is not specified" "$(docker logs "$c" 2>&1)"
}

test_trust() {
	local c
	c=$(start trust -e POSTGRES_HOST_AUTH_METHOD=trust "$image")
	wait_up "$c" "postgresql://postgres@127.0.0.1:/postgres" || return 0
	check "pg$major trust: no password needed" 1 "$(sql "$(url_for "$c" postgres postgres)" 'select 1' 2>&1)"
}

test_initdb_d_and_restart() {
	local c dir vol url ms logs
	dir=$tmp_root/initdb-$major
	mkdir -m 0755 "$dir"
	cat >"$dir/10-schema.sql" <<-'SQL'
		CREATE TABLE items (id serial PRIMARY KEY, src text NOT NULL);
		INSERT INTO items (src) VALUES ('10-schema.sql');
	SQL
	printf "INSERT INTO items (src) VALUES ('20-data.sql.gz');\n" | gzip >"$dir/20-data.sql.gz"
	if command -v xz >/dev/null; then
		printf "INSERT INTO items (src) VALUES ('25-data.sql.xz');\n" | xz >"$dir/25-data.sql.xz"
	fi
	cat >"$dir/30-exec.sh" <<-'SH'
		#!/bin/bash
		set -euo pipefail
		psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
			-c "INSERT INTO items (src) VALUES ('30-exec.sh as $(id -un)')"
	SH
	cat >"$dir/40-sourced.sh" <<-'SH'
		docker_process_sql -c "INSERT INTO items (src) VALUES ('40-sourced.sh')"
	SH
	printf 'not sql\n' >"$dir/99-ignored.txt"
	chmod 0644 "$dir"/*
	chmod 0755 "$dir/30-exec.sh"

	vol=$RUN_ID-data-$major
	docker volume create --label "$LABEL" "$vol" >/dev/null
	c=$(start initdb -v "$vol:/var/lib/postgresql/data" -v "$dir:/docker-entrypoint-initdb.d:ro" \
		-e POSTGRES_PASSWORD=secret -e POSTGRES_DB=app "$image")
	wait_up "$c" "postgresql://postgres:secret@127.0.0.1:/app" || return 0
	url=$(url_for "$c" postgres:secret app)
	local want="10-schema.sql,20-data.sql.gz"
	command -v xz >/dev/null && want+=",25-data.sql.xz"
	want+=",30-exec.sh as postgres,40-sourced.sh"
	check "pg$major initdb.d: .sql, .sql.gz, .sql.xz, .sh (exec + sourced) in order" "$want" \
		"$(sql "$url" "select string_agg(src, ',' order by id) from items" 2>&1)"
	logs=$(docker logs "$c" 2>&1)
	check_has "pg$major initdb.d: other files ignored" "ignoring /docker-entrypoint-initdb.d/99-ignored.txt" "$logs"
	check_has "pg$major initdb.d: init completes" "PostgreSQL init process complete; ready for start up." "$logs"

	ms=$(now_ms)
	docker restart -t 30 "$c" >/dev/null
	wait_up "$c" "postgresql://postgres:secret@127.0.0.1:/app" || return 0
	ok "pg$major restart: ready again in $(secs $(($(now_ms) - ms)))"
	url=$(url_for "$c" postgres:secret app)
	check_has "pg$major restart: init skipped" "Skipping initialization" "$(docker logs --tail 20 "$c" 2>&1)"
	check "pg$major restart: data kept" "$(grep -o , <<<"$want" | wc -l | awk '{print $1 + 1}')" \
		"$(sql "$url" 'select count(*) from items' 2>&1)"

	# A new container on the same volume: init skipped, the new password is
	# ignored (the stored one still works), data kept, one ready line.
	docker rm -f "$c" >/dev/null
	c=$(start reuse -v "$vol:/var/lib/postgresql/data" -e POSTGRES_PASSWORD=other "$image")
	wait_up "$c" "postgresql://postgres:secret@127.0.0.1:/app" || return 0
	ok "pg$major reuse volume: ready in $(secs "$waited_ms")"
	url=$(url_for "$c" postgres:secret app)
	check_has "pg$major reuse volume: init skipped" "Skipping initialization" "$(docker logs "$c" 2>&1)"
	check "pg$major reuse volume: '$READY' logged once" 1 "$(ready_count "$c")"
	check "pg$major reuse volume: data kept" 1 "$(sql "$url" "select count(*) from items where src = '10-schema.sql'" 2>&1)"
}

test_failing_init() {
	local c dir
	dir=$tmp_root/badinit-$major
	mkdir -m 0755 "$dir"
	printf 'SELECT * FROM no_such_table;\n' >"$dir/01-bad.sql"
	chmod 0644 "$dir/01-bad.sql"
	c=$(start badinit -v "$dir:/docker-entrypoint-initdb.d:ro" -e POSTGRES_PASSWORD=x "$image")
	local code
	code=$(wait_exit "$c")
	if [[ $code != 0 && $code != timeout ]]; then ok "pg$major failing init script: exits non-zero ($code)"; else bad "pg$major failing init script: exit '$code'"; fi
	check_has "pg$major failing init script: says so" "initialisation failed" "$(docker logs "$c" 2>&1)"
}

# ---------------------------------------------------------------------------
majors=("$@")
((${#majors[@]})) || majors=(17)
waited_ms=0

for major in "${majors[@]}"; do
	case $major in 15 | 17 | 18) ;; *) echo "usage: $0 [15] [17] [18]" >&2; exit 2 ;; esac
	image=$IMAGE_REPO:$major
	if ! docker image inspect "$image" >/dev/null 2>&1; then
		bad "image $image not found: run bash $SCRIPT_DIR/build-base.sh $major"
		continue
	fi
	psql_image=
	if [[ -n ${PSQL:-} ]]; then :
	elif command -v psql >/dev/null; then PSQL=psql
	else psql_image=$image
	fi
	echo "# $image: postgresql $(docker image inspect -f \
		'{{index .Config.Labels "org.opencontainers.image.version"}}' "$image"), $(($(docker image inspect -f '{{.Size}}' "$image") / 1000000)) MB"
	test_basic
	test_user_db
	test_file_secrets
	test_no_password
	test_trust
	test_initdb_d_and_restart
	test_failing_init
	# Containers of this image are done: free them before the next image.
	remove_containers
done

echo
echo "$passed passed, $failed failed"
((failed == 0))
