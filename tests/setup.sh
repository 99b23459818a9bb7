#!/bin/sh
# Installs what the integration tests need, when missing. Idempotent; safe with CI=true and no stdin.
#   busybox-static  /bin/busybox, copied into every test bundle's rootfs
#   runc            the reference runtime (CARTE_BIN=/usr/sbin/runc runs the suite against it)
#   iproute2        `ip netns add` for the join-a-network-namespace test
#   util-linux      mount/umount used by the rbind and audit self-tests
#   umoci, skopeo   build the busybox image archives (tests/images.sh) and the carte-bundle comparisons
#   golang-github-containers-common   podman's default seccomp profile, /usr/share/containers/seccomp.json
#   containernetworking-plugins, iptables   `carte net`: CNI bridge/host-local/loopback plugins, ipMasq rules
#   protobuf-compiler   protoc, which the k8s-cri crate's build script (the CRI client of engine_cri) runs
#   docker.io       dockerd 20.10 and its CLI (/usr/bin/docker), the third engine of the engine tests
#   uidmap          newuidmap/newgidmap: the rootless tests' user namespaces with /etc/subuid ranges (the
#                   runtimes and rootless podman map subordinate ids through them)
#   qemu-system-x86, linux-image-amd64, cpio, jq   the cgroup v2 guest of tests/vm/ (a kernel booted under qemu
#                   with the build's binaries in an initramfs)
#   systemd, dbus   PID 1 of the systemd guest (tests/vm/run.sh --systemd boots this host's own root and its
#                   systemd under qemu; a container image of Debian may lack both)
#   criu            checkpoint/restore (tests/tests/checkpoint.rs); criu.sh then builds a newer one where this
#                   kernel is too new for Debian's (see tests/criu.sh)
set -eu

packages="busybox-static runc iproute2 util-linux umoci skopeo golang-github-containers-common containerd podman conmon containernetworking-plugins iptables protobuf-compiler docker.io uidmap qemu-system-x86 linux-image-amd64 cpio jq systemd dbus criu"

missing=""
for pkg in $packages; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done

if [ -z "$missing" ]; then
    echo "setup.sh: test dependencies present ($packages)"
    if [ "$(id -u)" -eq 0 ]; then
        sh "$(dirname "$0")/criu.sh" || echo "setup.sh: criu.sh failed: no criu for this kernel" >&2
    fi
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: missing packages:$missing (run as root to install them)" >&2
    exit 1
fi

echo "setup.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# docker.io's maintainer scripts start a system dockerd (host iptables chains, docker0, /var/lib/docker) wherever
# invoke-rc.d is allowed to: the tests start their own, so deny service starts during this install unless a policy
# is already in place.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq </dev/null
# shellcheck disable=SC2086  # word splitting of the package list is intended
apt-get install -y -qq --no-install-recommends $missing </dev/null
sh "$(dirname "$0")/criu.sh" || echo "setup.sh: criu.sh failed: no criu for this kernel" >&2
