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

# Every image this project builds carries this label: make clean finds them by it.
label=io.github.savvi-studio.dbinit.project=dbinit

# build runs docker build quietly; its output (the classic builder's
# deprecation notice, the steps) is shown only when it fails.
build() {
	local out
	if ! out=$(docker build -q "$@" 2>&1); then
		printf '%s\n' "$out" >&2
		exit 1
	fi
}

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
	old=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
	build -f "$root/docker/Dockerfile.prebuilt" --label "$label" -t "$tag" "$stage"
	;;
postgres)
	tag=${2:?usage: build-image.sh postgres TAG BASE}
	base=${3:?usage: build-image.sh postgres TAG BASE}
	mkdir -p "$stage/docker/postgres"
	cp "$root/docker/postgres/initdb-dbinit.sh" "$stage/docker/postgres/"
	old=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
	build -f "$root/Dockerfile.postgres" --build-arg "POSTGRES_IMAGE=$base" --label "$label" -t "$tag" "$stage"
	;;
*)
	echo "build-image.sh: unknown image kind $kind (dbinit or postgres)" >&2
	exit 2
	;;
esac
# The image this tag named before is now untagged: remove it rather than
# leave a dangling image per build (it stays while a container uses it).
if [[ -n $old && $old != "$(docker image inspect -f '{{.Id}}' "$tag")" ]]; then
	docker image rm "$old" >/dev/null 2>&1 || true
fi
echo "$tag $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.1f MB", $1/1e6}')"
