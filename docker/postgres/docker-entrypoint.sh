#!/usr/bin/env bash
# docker-entrypoint.sh - entrypoint of the dbinit/postgres-base images.
#
# Written for dbinit; it follows the environment contract of the official
# postgres image so that tools written for `postgres:NN` (compose files,
# testcontainers' postgres module) work unchanged:
#
#   POSTGRES_PASSWORD[_FILE]   superuser password; required unless
#                              POSTGRES_HOST_AUTH_METHOD=trust
#   POSTGRES_USER[_FILE]       superuser name (default postgres)
#   POSTGRES_DB[_FILE]         database created at init (default = user)
#   POSTGRES_INITDB_ARGS[_FILE] extra initdb arguments (shell words)
#   POSTGRES_INITDB_WALDIR     initdb --waldir
#   POSTGRES_HOST_AUTH_METHOD  pg_hba method for remote hosts (scram-sha-256)
#   PGDATA                     data directory (/var/lib/postgresql/data)
#
# On an empty PGDATA it runs initdb, starts a temporary server on the unix
# socket only, creates POSTGRES_DB, runs /docker-entrypoint-initdb.d/* in
# sorted order, stops the temporary server and then execs the real server.
# "database system is ready to accept connections" is therefore logged twice
# on a first start (temporary + real server) and once on later starts.
set -Eeuo pipefail

readonly INITDB_D=/docker-entrypoint-initdb.d
readonly SOCKET_DIR=/var/run/postgresql
readonly ME=${0##*/}

say() { printf '%s: %s\n' "$ME" "$*"; }
warn() { printf '%s: WARNING: %s\n' "$ME" "$*" >&2; }
die() { printf '%s: error: %s\n' "$ME" "$*" >&2; exit 1; }

# load_secret VAR [DEFAULT]: set VAR from $VAR, else from the file named by
# $VAR_FILE, else DEFAULT.  Both set is an error.  VAR is exported and
# VAR_FILE unset, so a re-exec as the postgres user needs no file access.
load_secret() {
	local var=$1 file_var=${1}_FILE default=${2-}
	local value=${!var-} file=${!file_var-}
	if [[ -n $value && -n $file ]]; then
		die "both $var and $file_var are set (but are exclusive)"
	fi
	if [[ -n $file ]]; then
		[[ -r $file ]] || die "$file_var points to '$file', which is not readable"
		value=$(<"$file")
	fi
	export "$var=${value:-$default}"
	unset "$file_var"
}

load_env() {
	load_secret POSTGRES_PASSWORD
	load_secret POSTGRES_USER postgres
	load_secret POSTGRES_DB "$POSTGRES_USER"
	load_secret POSTGRES_INITDB_ARGS
	export POSTGRES_INITDB_WALDIR=${POSTGRES_INITDB_WALDIR-}
	export POSTGRES_HOST_AUTH_METHOD=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
	export PGDATA=${PGDATA:-/var/lib/postgresql/data}
}

# The server arguments ask only for help/version: no init needed.
wants_help() {
	local arg
	for arg; do
		case $arg in
		-'?' | --help | --describe-config | -V | --version) return 0 ;;
		esac
	done
	return 1
}

is_initialised() { [[ -s $PGDATA/PG_VERSION ]]; }

# Create PGDATA, the socket dir and the WAL dir; as root also hand them to
# postgres.  Errors are tolerated here: initdb reports them properly.
prepare_dirs() {
	local dirs=("$PGDATA")
	[[ -n $POSTGRES_INITDB_WALDIR ]] && dirs+=("$POSTGRES_INITDB_WALDIR")
	mkdir -p "${dirs[@]}" "$SOCKET_DIR" 2>/dev/null || :
	chmod 0700 "${dirs[@]}" 2>/dev/null || :
	chmod 2775 "$SOCKET_DIR" 2>/dev/null || :
	if [[ $(id -u) == 0 ]]; then
		find "${dirs[@]}" "$SOCKET_DIR" \! -user postgres -exec chown postgres:postgres {} +
	fi
}

check_password_policy() {
	if [[ -z $POSTGRES_PASSWORD && $POSTGRES_HOST_AUTH_METHOD != trust ]]; then
		cat >&2 <<-'EOF'
			Error: Database is uninitialized and superuser password is not specified.
			       Set POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) to a non-empty
			       value, for example "-e POSTGRES_PASSWORD=password" on "docker run".

			       To accept every connection without a password instead, set
			       POSTGRES_HOST_AUTH_METHOD=trust. That is *not* recommended:
			       https://www.postgresql.org/docs/current/auth-trust.html
		EOF
		exit 1
	fi
	if [[ $POSTGRES_HOST_AUTH_METHOD == trust ]]; then
		warn "POSTGRES_HOST_AUTH_METHOD=trust: any client that reaches this" \
			"server can log in as any user, including '$POSTGRES_USER', without a password."
	fi
}

run_initdb() {
	local -a args=(-D "$PGDATA" --username="$POSTGRES_USER")
	[[ -n $POSTGRES_INITDB_WALDIR ]] && args+=(--waldir="$POSTGRES_INITDB_WALDIR")
	if [[ -n $POSTGRES_INITDB_ARGS ]]; then
		# Shell words, so quoted values such as --locale-provider=icu
		# --icu-locale="und-x-icu" work as they do with the official image.
		local -a extra
		eval "extra=($POSTGRES_INITDB_ARGS)"
		args+=("${extra[@]}")
	fi
	if [[ -n $POSTGRES_PASSWORD ]]; then
		# The password goes through a pipe (/dev/fd/N), never argv.
		initdb "${args[@]}" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD")
	else
		initdb "${args[@]}"
	fi
}

configure_cluster() {
	{
		printf '\n# Added by %s: accept connections from other hosts.\n' "$ME"
		[[ $POSTGRES_HOST_AUTH_METHOD == trust ]] &&
			printf '# WARNING: "trust" lets every client in without a password.\n'
		printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD"
	} >>"$PGDATA/pg_hba.conf"
	printf "\n# Added by %s: listen on all interfaces.\nlisten_addresses = '*'\n" "$ME" \
		>>"$PGDATA/postgresql.conf"
}

# Run psql against the temporary server (unix socket, no password prompt).
# Sourced *.sh init scripts may call it too, as with the official image.
docker_process_sql() {
	local -a cmd=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
	[[ -n $POSTGRES_DB ]] && cmd+=(--dbname "$POSTGRES_DB")
	PGHOST='' PGHOSTADDR='' "${cmd[@]}" "$@"
}

# $@: the server arguments, so settings such as shared_preload_libraries
# apply during init too.  Listens on the unix socket only.
start_temp_server() {
	local opts
	opts=$(printf '%q ' "$@" -c listen_addresses= -p "${PGPORT:-5432}")
	pg_ctl -D "$PGDATA" -o "$opts" -w start
}

stop_temp_server() {
	pg_ctl -D "$PGDATA" -m fast -w stop
}

create_database() {
	[[ $POSTGRES_DB == postgres ]] && return 0
	docker_process_sql --dbname postgres --quiet --set db="$POSTGRES_DB" <<-'SQL'
		SELECT format('CREATE DATABASE %I', :'db')
		WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
	SQL
	say "database \"$POSTGRES_DB\" is ready"
}

run_init_scripts() {
	local -a files=()
	local f
	# Byte order, independent of the container's locale.
	mapfile -d '' files < <(
		LC_ALL=C
		shopt -s nullglob
		for f in "$INITDB_D"/*; do printf '%s\0' "$f"; done
	)
	for f in "${files[@]}"; do
		case $f in
		*.sh)
			if [[ -x $f ]]; then
				say "running $f"
				"$f"
			else
				say "sourcing $f"
				# Scripts written for the official image do not expect -u.
				set +u
				# shellcheck disable=SC1090
				. "$f"
				set -u
			fi
			;;
		*.sql) say "running $f"; docker_process_sql -f "$f" ;;
		*.sql.gz) say "running $f"; gzip -dc "$f" | docker_process_sql ;;
		*.sql.xz) say "running $f"; xz -dc "$f" | docker_process_sql ;;
		*.sql.zst)
			command -v zstd >/dev/null || die "$f: zstd is not installed in this image"
			say "running $f"; zstd -dc "$f" | docker_process_sql
			;;
		*) say "ignoring $f" ;;
		esac
		echo
	done
}

init_failed() {
	printf '%s: error: initialisation failed (line %s); %s is left half-initialised:\n' \
		"$ME" "$1" "$PGDATA" >&2
	printf '%s: remove it (or the volume) before the next start, or it will be used as is.\n' \
		"$ME" >&2
}

initialise() {
	check_password_policy
	[[ -d $INITDB_D ]] && { ls "$INITDB_D/" >/dev/null || die "cannot read $INITDB_D"; }

	trap 'init_failed $LINENO' ERR
	run_initdb
	configure_cluster

	# Let initdb.d scripts (and psql in them) work without extra flags; the
	# caller's own PG* settings win.
	local had_pguser=${PGUSER+1} had_pgdatabase=${PGDATABASE+1}
	export PGPASSWORD=${PGPASSWORD:-$POSTGRES_PASSWORD}
	export PGUSER=${PGUSER:-$POSTGRES_USER} PGDATABASE=${PGDATABASE:-$POSTGRES_DB}

	start_temp_server "$@"
	create_database
	run_init_scripts
	stop_temp_server
	trap - ERR

	unset PGPASSWORD
	[[ -n $had_pguser ]] || unset PGUSER
	[[ -n $had_pgdatabase ]] || unset PGDATABASE

	echo
	say "PostgreSQL init process complete; ready for start up."
	echo
}

main() {
	(($#)) || set -- postgres
	# `docker run IMAGE -c fsync=off` means `postgres -c fsync=off`.
	[[ $1 == -* ]] && set -- postgres "$@"

	if [[ $1 != postgres ]] || wants_help "$@"; then
		exec "$@"
	fi

	load_env
	prepare_dirs

	if [[ $(id -u) == 0 ]]; then
		# Drop root, as gosu does in the official image.
		HOME=$(getent passwd postgres | cut -d: -f6)
		export HOME
		exec setpriv --reuid=postgres --regid=postgres --init-groups -- "${BASH_SOURCE[0]}" "$@"
	fi

	if is_initialised; then
		say "PostgreSQL Database directory appears to contain a database; Skipping initialization"
		echo
	else
		initialise "${@:2}"
	fi
	exec "$@"
}

# Sourcing this file (e.g. from a test) only defines the functions.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	main "$@"
fi
