#!/usr/bin/env bash
# Builds dbinit's images from a static binary built on this machine, so no
# registry is needed:
#
#   docker/build-image.sh dbinit   [TAG]        the dbinit image, FROM scratch (default tag dbinit:local)
#   docker/build-image.sh postgres TAG BASE     Dockerfile.postgres on BASE (e.g. dbinit/postgres-base:17)
#
# VERSION (default: git describe) is stamped into the binary.
set -Eeuo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kind=${1:?usage: build-image.sh dbinit|postgres [TAG] [BASE]}
version=${VERSION:-$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

(cd "$root" && CGO_ENABLED=0 go build -trimpath \
	-ldflags "-s -w -X github.com/savvi-studio/dbinit/internal/cli.Version=$version" \
	-o "$stage/bin/dbinit" ./cmd/dbinit)
cp -R "$root/db" "$stage/db"

case "$kind" in
dbinit)
	tag=${2:-dbinit:local}
	ca=/etc/ssl/certs/ca-certificates.crt
	if [[ ! -f $ca ]]; then
		echo "build-image.sh: $ca is missing; install the ca-certificates package" >&2
		exit 1
	fi
	cp "$ca" "$stage/ca-certificates.crt"
	mv "$stage/bin/dbinit" "$stage/dbinit"
	printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n' >"$stage/passwd"
	printf 'root:x:0:\nnonroot:x:65532:\n' >"$stage/group"
	docker build -q -f "$root/docker/Dockerfile" -t "$tag" "$stage" >/dev/null
	;;
postgres)
	tag=${2:?usage: build-image.sh postgres TAG BASE}
	base=${3:?usage: build-image.sh postgres TAG BASE}
	mkdir -p "$stage/docker/postgres"
	cp "$root/docker/postgres/initdb-dbinit.sh" "$stage/docker/postgres/"
	docker build -q -f "$root/Dockerfile.postgres" --build-arg "POSTGRES_IMAGE=$base" -t "$tag" "$stage" >/dev/null
	;;
*)
	echo "build-image.sh: unknown image kind $kind (dbinit or postgres)" >&2
	exit 2
	;;
esac
echo "$tag $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.1f MB", $1/1e6}')"
