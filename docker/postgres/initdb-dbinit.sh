#!/bin/sh
# Runs from /docker-entrypoint-initdb.d during the postgres image's first
# start, against the temporary server that listens only on the unix socket:
# dbinit builds the template and the working database in place of loading
# every file with psql.
set -eu
export DBINIT_ENTRYPOINT_MODE=true          # accept the socket-only first-start server
export PGHOST="${PGHOST:-/var/run/postgresql}"
export PGPORT="${PGPORT:-5432}"
export PGUSER="${PGUSER:-${POSTGRES_USER:-postgres}}"
export PGDATABASE="${DBINIT_MAINTENANCE_DB:-postgres}"
if [ -z "${PGPASSWORD:-}" ] && [ -n "${POSTGRES_PASSWORD:-}" ]; then
	export PGPASSWORD="$POSTGRES_PASSWORD"
fi
/usr/local/bin/dbinit init
