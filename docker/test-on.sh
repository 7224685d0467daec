#!/usr/bin/env bash
# test-on.sh MAJOR [PACKAGES...] - run the database tests against PostgreSQL
# MAJOR (15, 17, 18) in a container of the offline image, instead of the
# local binaries: TEST_DATABASE_URL points every test at it.
#
#   bash docker/test-on.sh 18                 # migrate, provision, cli, catalog, dbtest
#   bash docker/test-on.sh 17 ./migrate/...
set -Eeuo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
major=${1:?usage: test-on.sh 15|17|18 [PACKAGES...]}
shift
pkgs=("$@")
((${#pkgs[@]})) || pkgs=(./migrate/... ./internal/provision/... ./internal/cli/... ./internal/catalog/... ./dbtest/...)

bash "$root/docker/postgres/build-base.sh" "$major" >&2
name=dbinit-test-on-$major-$$
password=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Test settings, as the local throwaway cluster has them: no durability,
# room for parallel tests.
docker run -d --name "$name" -e POSTGRES_PASSWORD="$password" -p "127.0.0.1:$port:5432" \
	"dbinit/postgres-base:$major" postgres -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
	-c max_connections=300 >/dev/null
trap 'docker rm -f -v "$name" >/dev/null 2>&1' EXIT
url="postgres://postgres:$password@127.0.0.1:$port/postgres?sslmode=disable"
for _ in $(seq 120); do
	if docker exec "$name" pg_isready -h 127.0.0.1 -U postgres >/dev/null 2>&1 &&
		[[ $(docker logs "$name" 2>&1 | grep -c 'ready to accept connections') -ge 2 ]]; then
		break
	fi
	sleep 0.5
done
cd "$root"
echo "PostgreSQL $major at 127.0.0.1:$port" >&2
TEST_DATABASE_URL=$url go test -count=1 "${pkgs[@]}"
