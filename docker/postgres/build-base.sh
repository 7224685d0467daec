#!/usr/bin/env bash
# build-base.sh - build an offline PostgreSQL base image from Debian packages.
#
#   build-base.sh [--force] [--full] [--keep-tar] 15|17|18
#
#   15 -> Debian bookworm, postgresql-15 -> dbinit/postgres-base:15
#   17 -> Debian trixie,   postgresql-17 -> dbinit/postgres-base:17
#   18 -> Debian forky,    postgresql-18 -> dbinit/postgres-base:18
#
# forky is Debian testing: a mirror may serve its Release files past their
# Valid-Until date, so that check is off for forky (and for snapshot mirrors);
# its security suite is used only if the security mirror has one.
#
# No container registry is needed: the root filesystem is made by mmdebstrap
# from Debian's archive (the mirror the host's apt uses), docker-entrypoint.sh
# is put into it, and the result is loaded with `docker import`.  A second,
# metadata-only step adds STOPSIGNAL, which `docker import --change` rejects.
#
# The build is skipped when the tag already carries the same inputs hash
# (this script + docker-entrypoint.sh + major + variant); --force rebuilds.
#
# Options:
#   --force      rebuild even if the image is up to date
#   --full       keep JIT (LLVM), full perl and locale sources (bigger image)
#   --keep-tar   keep the rootfs tarball in docker/.build/
#
# Environment:
#   DBINIT_PG_IMAGE        image repository (default dbinit/postgres-base)
#   DEBIAN_MIRROR          Debian archive URI (default: taken from host apt)
#   DEBIAN_SECURITY_MIRROR Debian security URI (default: taken from host apt)
#   DBINIT_BUILD_DIR       where --keep-tar puts the tarball (default docker/.build)
#   TMPDIR                 scratch space (~0.5 GB while building)
set -Eeuo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
SCRIPT_DIR=$(dirname "$SELF")
ENTRYPOINT_SRC=$SCRIPT_DIR/docker-entrypoint.sh

log() { printf '[build-base %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf '[build-base] error: %s\n' "$*" >&2; exit 1; }

usage() {
	sed -n '2,/^set -Eeuo/{/^set -Eeuo/d;s/^# \{0,1\}//;p}' "$SELF" >&2
	exit "${1:-2}"
}

# Paths that dpkg must never unpack in any variant.  They stay configured in
# the image (/etc/dpkg/dpkg.cfg.d/99mmdebstrap) so derived images stay slim.
DOC_EXCLUDES=(
	'path-exclude=/usr/share/doc/*'
	'path-include=/usr/share/doc/*/copyright'
	'path-exclude=/usr/share/man/*'
	'path-exclude=/usr/share/info/*'
	'path-exclude=/usr/share/locale/*'
	'path-include=/usr/share/locale/locale.alias'
	'path-exclude=/usr/share/lintian/*'
)
# Paths dropped only by the default (slim) variant:
#   - LLVM + z3 + PostgreSQL's JIT provider and bitcode (~150 MB): JIT is
#     optional; without llvmjit.so the server reports JIT as unavailable.
#   - locale sources (/usr/share/i18n, ~17 MB): the image uses glibc's
#     built-in C.UTF-8; nothing can be locale-gen'd without them.
# These packages are installed after the essential set, so the essential hook
# puts the excludes in place before they are unpacked.
SLIM_EXCLUDES=(
	'path-exclude=/usr/lib/*/libLLVM*'
	'path-exclude=/usr/lib/llvm-*'
	'path-exclude=/usr/lib/*/libz3.so*'
	'path-exclude=/usr/lib/postgresql/*/lib/bitcode/*'
	'path-exclude=/usr/lib/postgresql/*/lib/llvmjit*'
	'path-exclude=/usr/share/i18n/*'
)
#   - perl-modules / libperl (~47 MB): maintainer scripts (usrmerge,
#     postgresql-common) need the full perl while packages are configured;
#     afterwards only Debian's pg_* wrappers use perl, and perl-base is enough.
#     So the customize hook reinstalls these two packages with the excludes.
SLIM_PERL_EXCLUDES=(
	'path-exclude=/usr/lib/*/libperl.so*'
	'path-exclude=/usr/lib/*/perl/*'
	'path-exclude=/usr/share/perl/*'
)
# All slim excludes live in this file during the build only: it is deleted at
# the end, so `apt-get install --reinstall <pkg>` in a derived image brings
# the files back.
SLIM_CFG=/etc/dpkg/dpkg.cfg.d/50dbinit-slim

PG_UID=999 # same uid/gid as the official postgres image, so volumes can move

# ---------------------------------------------------------------------------
# mmdebstrap hooks.  mmdebstrap runs them as `build-base.sh __hook NAME ROOT`;
# settings come in through the exported DBINIT_* variables.
# ---------------------------------------------------------------------------
hook_essential() {
	local root=$1
	# Debian's postinst would create a "main" cluster; the entrypoint runs its
	# own initdb, so switch that off before postgresql-NN gets configured.
	mkdir -p "$root/etc/postgresql-common/createcluster.d"
	printf '%s\n' '# dbinit: clusters are created by docker-entrypoint.sh' \
		'create_main_cluster = false' \
		>"$root/etc/postgresql-common/createcluster.d/00-dbinit.conf"
	if [[ $DBINIT_VARIANT == slim ]]; then
		printf '%s\n' "${SLIM_EXCLUDES[@]}" >"$root$SLIM_CFG"
	fi
}

# take_id ROOT passwd|group NAME ID: give user/group NAME the id ID, and the
# files it owns along with it.  From forky on, systemd-sysusers hands out
# system ids from 999 down while the essential set is configured (the lpadmin
# group gets gid 999), so ID may be taken: its holder then gets NAME's old id
# in exchange, and its files (and, for a group, its users) follow it.
take_id() {
	local root=$1 db=$2 name=$3 want=$4 old holder mod chg find_opt u
	local -a users_old=() users_want=()
	case $db in
	passwd) mod=(usermod --uid) chg=chown find_opt=-uid ;;
	group) mod=(groupmod --gid) chg=chgrp find_opt=-gid ;;
	esac
	old=$(chroot "$root" getent "$db" "$name" | cut -d: -f3)
	[[ $old == "$want" ]] && return 0
	holder=$(chroot "$root" getent "$db" "$want" | cut -d: -f1) || holder=
	# List files and primary-group users by number before any id moves.
	chroot "$root" find / -xdev "$find_opt" "$old" -print0 >"$DBINIT_WORK/$db-$old"
	if [[ $db == group ]]; then
		mapfile -t users_old < <(chroot "$root" getent passwd | awk -F: -v g="$old" '$4 == g {print $1}')
	fi
	if [[ -n $holder ]]; then
		log "$db id $want is taken by '$holder': it gets $name's $old instead"
		chroot "$root" find / -xdev "$find_opt" "$want" -print0 >"$DBINIT_WORK/$db-$want"
		if [[ $db == group ]]; then
			mapfile -t users_want < <(chroot "$root" getent passwd | awk -F: -v g="$want" '$4 == g {print $1}')
		fi
		# --non-unique: for a moment it shares $old with NAME.
		chroot "$root" "${mod[@]}" "$old" --non-unique "$holder"
	fi
	chroot "$root" "${mod[@]}" "$want" "$name"
	# groupmod moves users by number, so with a shared id it cannot tell them
	# apart: set each one's primary group again.
	for u in "${users_old[@]}"; do chroot "$root" usermod --gid "$want" "$u"; done
	for u in "${users_want[@]}"; do chroot "$root" usermod --gid "$old" "$u"; done
	chroot "$root" xargs -0 -r "$chg" -h "$want" <"$DBINIT_WORK/$db-$old"
	if [[ -n $holder ]]; then
		chroot "$root" xargs -0 -r "$chg" -h "$old" <"$DBINIT_WORK/$db-$want"
	fi
}

hook_customize() {
	local root=$1 major=$DBINIT_PG_MAJOR
	local bindir=/usr/lib/postgresql/$major/bin

	# The entrypoint and the init dir, like the official image.
	install -D -m 0755 "$DBINIT_ENTRYPOINT" "$root/usr/local/bin/docker-entrypoint.sh"
	install -d -m 0755 "$root/docker-entrypoint-initdb.d"

	# postgresql-common made a system user with a low uid; move it to 999.
	take_id "$root" group postgres "$PG_UID"
	take_id "$root" passwd postgres "$PG_UID"

	install -d -m 0700 -o "$PG_UID" -g "$PG_UID" "$root/var/lib/postgresql/data"
	# mmdebstrap's own /run cleanup is skipped (it would take this dir too).
	find "$root/run" -mindepth 1 -maxdepth 1 \! -name lock -exec rm -rf {} +
	install -d -m 2775 -o "$PG_UID" -g "$PG_UID" "$root/run/postgresql"

	if [[ $DBINIT_VARIANT == slim ]]; then
		printf '%s\n' "${SLIM_PERL_EXCLUDES[@]}" >>"$root$SLIM_CFG"
		local perl_pkgs
		# shellcheck disable=SC2016
		perl_pkgs=$(chroot "$root" dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' \
			'perl-modules-*' 'libperl5*' 2>/dev/null | awk '$1 == "ii" {print $2}')
		if [[ -n $perl_pkgs ]]; then
			# shellcheck disable=SC2086 # word splitting intended
			chroot "$root" apt-get install -y -qq --reinstall --no-install-recommends \
				$perl_pkgs >&2
		fi
		rm -f "$root$SLIM_CFG"
	fi

	# mmdebstrap copies the host's resolv.conf and hostname; docker mounts its
	# own at run time, so do not ship the build host's.
	: >"$root/etc/resolv.conf"
	printf 'localhost\n' >"$root/etc/hostname"
	chmod 0644 "$root/etc/resolv.conf" "$root/etc/hostname"
	rm -f "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
	rm -rf "$root"/var/log/apt/* "$root"/var/log/*.log

	# Smoke test inside the chroot, and record the exact version.
	chroot "$root" "$bindir/postgres" --version >&2
	chroot "$root" "$bindir/psql" --version >&2
	chroot "$root" setpriv --version >&2
	# shellcheck disable=SC2016
	chroot "$root" dpkg-query -W -f '${Version}' "postgresql-$major" >"$DBINIT_WORK/pg-version"
}

if [[ ${1:-} == __hook ]]; then
	"hook_$2" "$3"
	exit 0
fi

# ---------------------------------------------------------------------------
# Main program
# ---------------------------------------------------------------------------
force=0 variant=slim keep_tar=0 major=
while (($#)); do
	case $1 in
	--force) force=1 ;;
	--full) variant=full ;;
	--keep-tar) keep_tar=1 ;;
	-h | --help) usage 0 ;;
	15 | 17 | 18) major=$1 ;;
	*) printf 'unknown argument: %s\n\n' "$1" >&2; usage ;;
	esac
	shift
done
[[ -n $major ]] || usage
case $major in
15) suite=bookworm ;;
17) suite=trixie ;;
18) suite=forky ;;
esac

image=${DBINIT_PG_IMAGE:-dbinit/postgres-base}
tag=$image:$major
label_prefix=io.github.savvi-studio.dbinit
now_us() { local t=$EPOCHREALTIME; printf '%s' "${t//[.,]/}"; }
# elapsed START_US: seconds since START_US with one decimal
elapsed() {
	local d=$((($(now_us) - $1) / 100000))
	printf '%d.%ds' $((d / 10)) $((d % 10))
}
t_start=$(now_us)

[[ -f $ENTRYPOINT_SRC ]] || die "missing $ENTRYPOINT_SRC"
command -v docker >/dev/null || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "cannot reach the docker daemon (docker info failed)"

# --- cache check ------------------------------------------------------------
inputs_hash=$({
	sha256sum <"$SELF"
	sha256sum <"$ENTRYPOINT_SRC"
	printf 'major=%s suite=%s variant=%s\n' "$major" "$suite" "$variant"
} | sha256sum | cut -c1-16)

# Test packages run in parallel and may ask for the same image at once: one
# builds, the others wait and then find it up to date.
if command -v flock >/dev/null; then
	exec 9>"${TMPDIR:-/tmp}/dbinit-postgres-base-$major.lock"
	flock 9
fi

old_id=$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || :)
if [[ -n $old_id && $force == 0 ]]; then
	have=$(docker image inspect -f "{{ index .Config.Labels \"$label_prefix.inputs\" }}" "$tag" 2>/dev/null || :)
	if [[ $have == "$inputs_hash" ]]; then
		log "$tag is up to date (inputs $inputs_hash); use --force to rebuild"
		exit 0
	fi
	log "$tag exists with inputs '${have:-none}', want $inputs_hash: rebuilding"
fi

# --- tools ----------------------------------------------------------------
ensure_mmdebstrap() {
	command -v mmdebstrap >/dev/null && return 0
	command -v apt-get >/dev/null ||
		die "mmdebstrap is required and this host has no apt-get; install mmdebstrap (Debian package) by hand"
	if [[ $(id -u) != 0 ]]; then
		die "mmdebstrap is required: run 'sudo apt-get install mmdebstrap' (or run this script as root to install it)"
	fi
	local cand
	cand=$(apt-cache policy mmdebstrap 2>/dev/null | awk '/Candidate:/ {print $2}')
	if [[ -z $cand || $cand == '(none)' ]]; then
		log "mmdebstrap not in the apt lists yet: running apt-get update"
		apt-get update -qq
	fi
	log "mmdebstrap not found: installing it with apt-get (Debian package)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
	command -v mmdebstrap >/dev/null || die "installing mmdebstrap failed"
}
ensure_mmdebstrap

# --- mirrors: reuse what the host's apt is configured with -------------------
host_codename=$( . /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}") || host_codename=
# shellcheck disable=SC2016
host_targets=$(apt-get indextargets --no-release-info --format '$(REPO_URI) $(RELEASE)' \
	'Identifier: Packages' 2>/dev/null | sort -u || :)
pick_uri() { # $1 = release to look for, $2 = URI path suffix to fall back on
	local uri rel
	while read -r uri rel; do
		[[ $rel == "$1" ]] && { printf '%s\n' "${uri%/}"; return; }
	done <<<"$host_targets"
	while read -r uri rel; do
		[[ ${uri%/} == *"$2" ]] && { printf '%s\n' "${uri%/}"; return; }
	done <<<"$host_targets"
}
mirror=${DEBIAN_MIRROR:-$(pick_uri "${host_codename:-none}" /debian)}
mirror=${mirror:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-$(pick_uri "${host_codename:-none}-security" /debian-security)}
security=${security:-http://deb.debian.org/debian-security}

# An apt proxy set in the host's apt config reaches apt through the
# environment, so it is not written into the image.
if [[ -z ${http_proxy:-} ]]; then
	apt_proxy=$(apt-config shell P Acquire::http::Proxy 2>/dev/null | sed -n "s/^P='\(.*\)'$/\1/p")
	if [[ -n $apt_proxy && $apt_proxy != DIRECT && $apt_proxy != false ]]; then
		export http_proxy=$apt_proxy
		log "using the host's apt proxy $apt_proxy"
	fi
fi

# trixie on a bookworm host needs the trixie archive keys (debian-archive-keyring
# >= 2023.3 ships them).  forky has no key of its own yet: Debian signs it with
# the bookworm and trixie archive keys.
key_suite=$suite
[[ $suite == forky ]] && key_suite=trixie
if ! ls /etc/apt/trusted.gpg.d/*"$key_suite"* /usr/share/keyrings/*"$key_suite"* >/dev/null 2>&1; then
	log "warning: no '$key_suite' key found in /etc/apt/trusted.gpg.d or /usr/share/keyrings;" \
		"if signature checks fail, run 'apt-get install debian-archive-keyring' (>= 2023.3)"
fi

# A testing suite may have no security suite (forky-security only appears
# once Debian sets it up); apt would fail on a suite with no Release file, so
# for forky ask the security mirror first and leave the suite out if it has
# none.  Released suites always have one.
use_security=1
if [[ $suite == forky ]]; then
	probe=$(mktemp "${TMPDIR:-/tmp}/dbinit-release-probe.XXXXXX")
	if /usr/lib/apt/apt-helper -qq download-file "$security/dists/$suite-security/InRelease" \
		"$probe" >/dev/null 2>&1 ||
		/usr/lib/apt/apt-helper -qq download-file "$security/dists/$suite-security/Release" \
			"$probe" >/dev/null 2>&1; then
		:
	else
		use_security=0
		log "$security has no $suite-security suite: building without it"
	fi
	rm -f "$probe"
fi

# --- build the rootfs --------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/dbinit-postgres-base-$major.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
chmod 0755 "$work"
tarball=$work/rootfs.tar

export DBINIT_PG_MAJOR=$major DBINIT_VARIANT=$variant DBINIT_WORK=$work \
	DBINIT_ENTRYPOINT=$ENTRYPOINT_SRC

packages=postgresql-$major,ca-certificates,xz-utils,tzdata
# From forky on, postgresql-common and ssl-cert depend on "systemd |
# systemd-standalone-tmpfiles" and "systemd | systemd-standalone-sysusers";
# the standalone tools keep systemd itself (~20 MB) out of the image.
if [[ $suite == forky ]]; then
	packages+=,systemd-standalone-tmpfiles,systemd-standalone-sysusers
fi

dpkg_opts=("${DOC_EXCLUDES[@]}")
mm_args=(
	--variant=minbase
	--skip=cleanup/run
	--include="$packages"
	--essential-hook="bash \"$SELF\" __hook essential \"\$1\""
	--customize-hook="bash \"$SELF\" __hook customize \"\$1\""
)
for o in "${dpkg_opts[@]}"; do mm_args+=(--dpkgopt="$o"); done
# snapshot.debian.org serves Release files whose Valid-Until has passed, and
# so may a mirror for testing (forky), whose Release files are valid for a
# week only.
if [[ $mirror == *snapshot* || $security == *snapshot* || $suite == forky ]]; then
	mm_args+=(--aptopt='Acquire::Check-Valid-Until "false"')
fi
sources=("deb $mirror $suite main" "deb $mirror $suite-updates main")
if ((use_security)); then
	sources+=("deb $security $suite-security main")
else
	security=none
fi

log "building $tag: Debian $suite, postgresql-$major, variant $variant"
log "mirror $mirror, security $security"
t_mm=$(now_us)
mmdebstrap "${mm_args[@]}" "$suite" "$tarball" "${sources[@]}" \
	>"$work/mmdebstrap.log" 2>&1 || {
	tail -n 40 "$work/mmdebstrap.log" >&2
	die "mmdebstrap failed (log above)"
}
pg_version=$(cat "$work/pg-version")
log "rootfs ready in $(elapsed "$t_mm"): postgresql-$major $pg_version, tarball $(du -h "$tarball" | cut -f1)"

# --- docker import ----------------------------------------------------------
t_imp=$(now_us)
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
imported=$(docker import \
	--message "dbinit postgres-base $major: Debian $suite, postgresql-$major $pg_version ($variant)" \
	--change "ENV PATH=/usr/lib/postgresql/$major/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
	--change "ENV LANG=C.UTF-8" \
	--change "ENV PG_MAJOR=$major" \
	--change "ENV PG_VERSION=$pg_version" \
	--change "ENV PGDATA=/var/lib/postgresql/data" \
	--change "VOLUME /var/lib/postgresql/data" \
	--change "EXPOSE 5432" \
	--change "USER root" \
	--change "WORKDIR /" \
	--change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
	--change 'CMD ["postgres"]' \
	--change "LABEL $label_prefix.inputs=$inputs_hash" \
	--change "LABEL $label_prefix.variant=$variant" \
	--change "LABEL $label_prefix.debian-suite=$suite" \
	--change "LABEL org.opencontainers.image.title=dbinit/postgres-base" \
	--change "LABEL org.opencontainers.image.version=$pg_version" \
	--change "LABEL org.opencontainers.image.created=$created" \
	"$tarball")

# `docker import --change` cannot set STOPSIGNAL (daemon API 1.41 rejects it),
# so add it with a metadata-only build on top (no new layer, nothing pulled).
# SIGINT = PostgreSQL "fast" shutdown, as in the official image.
if printf 'FROM %s\nSTOPSIGNAL SIGINT\n' "$imported" |
	DOCKER_BUILDKIT=0 docker build -q -t "$tag" - >"$work/build.log" 2>&1; then
	:
else
	cat "$work/build.log" >&2
	log "warning: could not set STOPSIGNAL (needs the classic builder); 'docker stop'" \
		"will send SIGTERM (smart shutdown) - use 'docker stop -s SIGINT' / compose stop_signal"
	docker tag "$imported" "$tag"
fi
log "imported in $(elapsed "$t_imp")"

if [[ -n $old_id && $old_id != "$(docker image inspect -f '{{.Id}}' "$tag")" ]]; then
	docker image rm "$old_id" >/dev/null 2>&1 || :
fi

if [[ $keep_tar == 1 ]]; then
	keep_dir=${DBINIT_BUILD_DIR:-$SCRIPT_DIR/../.build}
	mkdir -p "$keep_dir"
	keep_dir=$(readlink -f "$keep_dir")
	mv "$tarball" "$keep_dir/postgres-base-$major.tar"
	log "kept $keep_dir/postgres-base-$major.tar"
fi

size=$(docker image inspect -f '{{.Size}}' "$tag")
log "built $tag ($((size / 1000000)) MB, postgresql $pg_version, inputs $inputs_hash) in $(elapsed "$t_start")"
