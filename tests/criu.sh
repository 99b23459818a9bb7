#!/bin/sh
# Makes sure `criu` can checkpoint and restore on this kernel, for tests/tests/checkpoint.rs. Idempotent; run by
# setup.sh after Debian's criu is installed.
#
# Debian 12's criu 3.17 cannot start on Linux 6.13+: the kernel split the vDSO data pages into [vvar] and
# [vvar_vclock] (e93d2521b27f) and criu 3.17 stops at "vdso: Unexpected rt vDSO area bounds" (criu issue 2532,
# fixed in 4.1). And on Linux 6.16+ (7d8d93fdde50b) getsockopt(SO_PASSCRED/SO_PASSSEC) on a TCP socket says
# EOPNOTSUPP, which fails every dump with a socket in criu 4.1 too (criu issue 2718): so-pass.patch dumps those
# two options for unix and netlink sockets only. Where either applies, criu 4.1.1 is built from Debian 13's source
# package with that patch and installed as /usr/local/sbin/criu, ahead of /usr/sbin/criu in PATH.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
version=4.1.1
target=/usr/local/sbin/criu

kernel_at_least() { # MAJOR MINOR
    k=$(uname -r)
    major=${k%%.*}
    rest=${k#*.}
    minor=${rest%%[!0-9]*}
    [ "$major" -gt "$1" ] || { [ "$major" -eq "$1" ] && [ "$minor" -ge "$2" ]; }
}

if [ -x "$target" ] && "$target" --version 2>/dev/null | grep -q "Version: $version"; then
    echo "criu.sh: $target $version present"
    exit 0
fi
if criu check >/dev/null 2>&1 && ! kernel_at_least 6 16; then
    echo "criu.sh: Debian's criu works on this kernel"
    exit 0
fi

echo "criu.sh: building criu $version for Linux $(uname -r) (Debian's criu cannot dump on it)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq </dev/null
apt-get install -y -qq --no-install-recommends build-essential pkgconf libprotobuf-c-dev protobuf-c-compiler \
    protobuf-compiler libprotobuf-dev python3-protobuf libnl-3-dev libnet1-dev libcap-dev libbsd-dev \
    libgnutls28-dev libnftables-dev uuid-dev </dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Debian 13's source index, in a private apt state: the host's sources and lists stay as they are.
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
    >"$work/sources.list"
apt_private="-o Dir::Etc::sourcelist=$work/sources.list -o Dir::Etc::sourceparts=- -o Dir::State::Lists=$work/lists -o Dir::Cache=$work/cache"
# shellcheck disable=SC2086  # the options are separate words
apt-get $apt_private update -qq </dev/null
# Only the upstream tarball is needed; a missing Debian packaging tarball does not matter.
# shellcheck disable=SC2086
(cd "$work" && apt-get $apt_private source --download-only "criu=$version-1" </dev/null) || true
tarball="$work/criu_$version.orig.tar.xz"
[ -f "$tarball" ] || { echo "criu.sh: could not fetch criu_$version.orig.tar.xz" >&2; exit 1; }
tar -xf "$tarball" -C "$work"
(cd "$work/criu-$version" && patch -p1 <"$here/criu/so-pass.patch" && make -j"$(nproc)" criu >/dev/null)
install -m 0755 "$work/criu-$version/criu/criu" "$target"
"$target" check
