#!/bin/sh
# The systemd test guest's first stage (issue 15), exec'd by tests/vm/guest-init.sh as PID 1 of the initramfs
# when build-guest.sh was run with CARTE_VM_SYSTEMD. Instead of a Debian root built per run (mmdebstrap: a
# network download and minutes of unpacking), the guest borrows this host's own root: qemu shares `/` read-only
# over virtio 9p (tests/vm/run.sh --systemd), an overlay with a tmpfs upper makes it writable inside the guest
# and throwaway, and the host's own systemd (Debian's, the one tests/setup.sh installs) becomes PID 1. Units that
# would touch disks, the network, timers or services of the host are masked; the one unit the guest starts,
# carte-vm.service, runs `guest-init.sh tests` and powers the guest off when it ends.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
fail() {
    echo "vm: guest-systemd: $*" >/dev/console
    echo "== vm guest-systemd failed: $*" >/dev/ttyS1
    poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for ko in /modules/*.ko; do
    insmod "$ko" || fail "insmod $ko"
done
mkdir -p /lower /upper
# The 9p driver binds to the virtio device asynchronously after insmod: a few tries.
tries=0
until mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=512000,cache=loose hostroot /lower 2>/dev/null; do
    tries=$((tries + 1))
    [ "$tries" -lt 50 ] || fail "mount the host's root (9p tag hostroot)"
    sleep 0.1
done
mount -t tmpfs -o mode=0755 tmpfs /upper
mkdir -p /upper/data /upper/work
mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work overlay /newroot ||
    fail "mount the overlay root"
[ -x /newroot/lib/systemd/systemd ] || fail "no /lib/systemd/systemd on the host (apt-get install systemd)"

new=/newroot
# What the tests need: the runtimes at the paths CARTE_BIN names (this build's carte; runc is the host's own),
# and the test executables with their lists.
cp -a /tests "$new/tests"
cp /init "$new/tests/guest-init.sh"
cp /usr/sbin/carte "$new/usr/sbin/carte"
# The host's fstab, hostname and machine id are not the guest's: no disks to mount, a fresh id.
echo "# carte systemd test guest: no disks" >"$new/etc/fstab"
echo carte-systemd-guest >"$new/etc/hostname"
rm -f "$new/etc/machine-id"
# A host that is itself a container image (CI's may be) marks its root as one: systemd would believe it runs in
# a container and ignore the kernel command line (systemd.unit=, which names the test unit).
rm -f "$new/.dockerenv" "$new/run/.containerenv"
: >"$new/etc/machine-id"

units=$new/etc/systemd/system
mkdir -p "$units"
# Masked: what would wait for hardware or the network, start the host's services or timers, or only slow the
# boot under emulation. The test unit needs basic.target (sysinit: journald, udev, tmpfiles) and nothing else.
for u in timers.target remote-fs.target network-online.target systemd-timesyncd.service systemd-pstore.service \
    e2scrub_reap.service apparmor.service systemd-binfmt.service keyboard-setup.service console-setup.service \
    systemd-random-seed.service systemd-update-utmp.service ldconfig.service man-db.service apt-daily.service \
    apt-daily-upgrade.service systemd-fsck-root.service systemd-remount-fs.service systemd-hwdb-update.service \
    systemd-firstboot.service systemd-machine-id-commit.service dev-hugepages.mount sys-kernel-debug.mount \
    sys-kernel-tracing.mount sys-fs-fuse-connections.mount sys-kernel-config.mount docker.socket podman.socket \
    containerd.service docker.service podman.service; do
    ln -sf /dev/null "$units/$u"
done
cat >"$units/carte-vm.service" <<'EOF'
[Unit]
Description=carte integration tests in the systemd guest (tests/vm)
# The system bus is up, as on any systemd host: the runtimes reach systemd through it first (libcgroups, and
# go-systemd in runc), and a socket-activated dbus-daemon still starting under emulation would hold up the
# first containers for many seconds.
Wants=dbus.service
After=basic.target dbus.service

[Service]
Type=oneshot
ExecStart=/tests/guest-init.sh tests
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity
# guest-init.sh powers off itself when the tests end (systemctl poweroff -ff); this is for a failing start.
FailureAction=poweroff-immediate
EOF

# /tmp on a tmpfs of its own, as Debian's tmp.mount makes it: the tests' bundles and containerd's overlay
# snapshots live there, and overlayfs refuses an upper directory on the overlay root.
# A worktree below /tmp (the README's `git clone . /tmp/x`) would vanish under it, and with it the image
# archives the engine tests read from its target/: its overlay view is kept aside and put back on top.
wt=$(cat /tests/worktree 2>/dev/null)
case "$wt" in
/tmp/?*)
    mkdir -p /keep
    mount --bind "$new$wt" /keep || fail "keep the worktree $wt"
    ;;
*) wt= ;;
esac
mount -t tmpfs -o mode=1777 tmpfs "$new/tmp"
if [ -n "$wt" ]; then
    mkdir -p "$new$wt"
    mount --move /keep "$new$wt" || fail "put the worktree $wt back"
fi
umount /proc /sys /dev 2>/dev/null
exec switch_root "$new" /lib/systemd/systemd
