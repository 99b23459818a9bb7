#!/usr/bin/env bash
# Build the busybox test images offline, from Debian's busybox-static: an OCI image layout made with
# umoci, then an oci-archive and a docker-archive of it made with skopeo. Idempotent.
# Usage: tests/images.sh OUT_DIR   → OUT_DIR/busybox-oci.tar, OUT_DIR/busybox-docker.tar, OUT_DIR/pause-oci.tar
# pause-oci.tar (carte.test/pause:1) is the CRI tests' pod sandbox image: the same busybox whose command sleeps
# until killed, reaping what it inherits (the pod's pid 1 under shareProcessNamespace), as k8s' pause does.
set -euo pipefail
out=${1:?usage: tests/images.sh OUT_DIR}
mkdir -p "$out"
if [ -s "$out/busybox-oci.tar" ] && [ -s "$out/busybox-docker.tar" ] && [ -s "$out/pause-oci.tar" ]; then
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/bin" "$work/root/etc" "$work/root/tmp" "$work/root/root"
cp /bin/busybox "$work/root/bin/"
for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -s busybox "$work/root/bin/$a"
done
chmod 1777 "$work/root/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/tmp:/bin/sh\n' >"$work/root/etc/passwd"
printf 'root:x:0:\nuser:x:1000:\n' >"$work/root/etc/group"
umoci init --layout "$work/layout" >/dev/null
umoci new --image "$work/layout:latest" >/dev/null
umoci insert --image "$work/layout:latest" "$work/root" / >/dev/null
umoci config --image "$work/layout:latest" --config.cmd sh --config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    --config.workingdir / --config.label org.opencontainers.image.title=carte-busybox >/dev/null
# `wait` returns on any signal with a trap; pid 1 ignores the rest, and the CRI plugin stops a sandbox with SIGKILL.
umoci config --image "$work/layout:latest" --tag pause --config.cmd /bin/sh --config.cmd -c \
    --config.cmd "trap 'exit 0' TERM INT; while :; do sleep 86400 & wait \$!; done" \
    --config.label org.opencontainers.image.title=carte-pause >/dev/null
rm -f "$out/busybox-oci.tar.tmp" "$out/busybox-docker.tar.tmp" "$out/pause-oci.tar.tmp"
skopeo copy -q "oci:$work/layout:latest" "oci-archive:$out/busybox-oci.tar.tmp:busybox:latest"
skopeo copy -q "oci:$work/layout:latest" "docker-archive:$out/busybox-docker.tar.tmp:busybox:latest"
skopeo copy -q "oci:$work/layout:pause" "oci-archive:$out/pause-oci.tar.tmp:carte.test/pause:1"
mv "$out/busybox-oci.tar.tmp" "$out/busybox-oci.tar"
mv "$out/busybox-docker.tar.tmp" "$out/busybox-docker.tar"
mv "$out/pause-oci.tar.tmp" "$out/pause-oci.tar"
echo "images: $out/busybox-oci.tar $out/busybox-docker.tar $out/pause-oci.tar"
