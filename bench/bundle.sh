#!/usr/bin/env bash
# Benchmark `carte-bundle unpack` against `umoci unpack` on the same multi-layer OCI image (one hyperfine run).
#
# The image is built offline with umoci from host directories (6 gzip layers, ~12k entries:
# a busybox base, /usr/include, python3.11, perl, a whiteout layer and an opaque-dir layer),
# so both tools read the same layout and write to the same filesystem.
# Env: CARTE_BUNDLE (binary; default: build release), BENCH_DIR (scratch, default /var/tmp), RUNS (default 5).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
bin=${CARTE_BUNDLE:-$target/release/carte-bundle}
runs=${RUNS:-5}
for tool in umoci hyperfine; do
    command -v "$tool" >/dev/null || { echo "bench/bundle.sh: $tool is not installed" >&2; exit 1; }
done
if [ -z "${CARTE_BUNDLE:-}" ]; then
    (cd "$root" && cargo build --release -q -p carte-bundle)
fi

work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/carte-bundle-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
img="$work/layout:bench"

# Base layer: busybox-static with applet links and a minimal /etc.
mkdir -p "$work/base/bin" "$work/base/etc"
cp /bin/busybox "$work/base/bin/"
for a in sh ls cat echo id true; do ln -s busybox "$work/base/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$work/base/etc/passwd"
echo 'root:x:0:' >"$work/base/etc/group"
mkdir -p "$work/opaque/only-this"
echo replaced >"$work/opaque/only-this/file"

echo "building the image (6 layers)…" >&2
umoci init --layout "$work/layout"
umoci new --image "$img"
umoci insert --image "$img" "$work/base" /
umoci insert --image "$img" /usr/include /usr/include
umoci insert --image "$img" /usr/lib/python3.11 /usr/lib/python3.11
umoci insert --image "$img" /usr/share/perl /usr/share/perl
umoci insert --image "$img" --whiteout /usr/include/linux
umoci insert --image "$img" --opaque "$work/opaque" /usr/share/perl
umoci config --image "$img" --config.cmd /bin/sh
du -sh "$work/layout" >&2

"$bin" -q unpack "$work/layout" "$work/sized" --image bench
echo "unpacked: $(du -sh "$work/sized/rootfs" | cut -f1), $(find "$work/sized/rootfs" | wc -l) entries" >&2
rm -rf "$work/sized"

hyperfine --warmup 1 --runs "$runs" \
    --prepare "rm -rf '$work/out'" \
    -n carte-bundle "'$bin' -q unpack '$work/layout' '$work/out' --image bench" \
    -n umoci "umoci unpack --image '$img' '$work/out'"
