#!/bin/sh
# The cgroup v2 test guest's init (PID 1), built into its initramfs by tests/vm/build-guest.sh.
# Stage 1 moves the root to a tmpfs: the initramfs root (rootfs) can never be unmounted, so pivot_root
# fails beneath it (EINVAL) and every container would need --no-pivot; after switch_root the root is an
# ordinary mount, as on a real host. Stage 2 mounts the API filesystems and a pure cgroup2 tree (the kernel
# runs with cgroup_no_v1=all) with every controller enabled for children, then runs each test executable of
# /tests/list against carte and then against runc, streaming their output to the second serial port
# (ttyS1, a file on the host) between `== vm` marker lines, and powers off.
# In the systemd guest (tests/vm/guest-systemd.sh) this script runs once more, as `guest-init.sh tests` from a
# service unit of the booted systemd: then it only runs the tests and powers the guest off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp

res=/dev/ttyS1
say() { echo "$*" >$res; echo "vm: $*"; }

# Each test executable of /tests/list against each runtime of /tests/runtimes, between marker lines. A file of
# /tests/both runs each scenario with carte and with runc by itself: once, in the first pass, marked `both`.
run_tests() {
    args=$(cat /tests/args 2>/dev/null)
    first=$(cut -d' ' -f1 /tests/runtimes)
    for rt in $(cat /tests/runtimes); do
        for t in $(cat /tests/list); do
            label=$rt bin=/usr/sbin/$rt
            if grep -qx "$t" /tests/both 2>/dev/null; then
                [ "$rt" = "$first" ] || continue
                label=both bin=/usr/sbin/carte
            fi
            say "== vm begin $label $t"
            start=$(date +%s)
            # shellcheck disable=SC2086  # args are test-harness flags, split on purpose
            # shellcheck disable=SC2046  # VAR=value words of /tests/env (CARTE_VM_ENV)
            env $(cat /tests/env 2>/dev/null) CARTE_BIN=$bin timeout -s KILL 900 /tests/$t $args >$res 2>&1
            rc=$?
            say "== vm end $label $t rc=$rc seconds=$(($(date +%s) - start))"
        done
    done
    [ -x /tests/after.sh ] && /tests/after.sh >$res 2>&1
    say "== vm done"
    sync
}

if [ "${1:-}" = tests ]; then
    stty -F $res raw -echo 2>/dev/null
    say "== vm guest $(uname -r) systemd $(systemctl --version | head -n 1 | cut -d' ' -f2) as PID 1, cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
    grep -q ' - cgroup ' /proc/self/mountinfo && say "== vm guest has a cgroup v1 mount"
    run_tests
    # Immediately, as busybox's `poweroff -f` below: nothing of the throwaway guest needs a clean stop.
    systemctl poweroff --force --force
    exit 0
fi

if [ ! -e /.stage2 ]; then
    [ -e /tests/systemd ] && exec /tests/guest-systemd.sh
    mount -t tmpfs -o mode=0755 tmpfs /newroot
    for entry in /*; do
        [ "$entry" = /newroot ] || cp -a "$entry" /newroot/
    done
    : >/newroot/.stage2
    exec switch_root /newroot /init
fi

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666,gid=5,mode=620 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t mqueue mqueue /dev/mqueue
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
# nsdelegate as systemd mounts it: a cgroup namespace is a delegation boundary.
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control
done
hostname carte-v2-guest
ip link set lo up

stty -F $res raw -echo 2>/dev/null
say "== vm guest $(uname -r) cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
grep -q ' - cgroup ' /proc/self/mountinfo && say "== vm guest has a cgroup v1 mount"
run_tests
poweroff -f
