#!/bin/sh
# Records, then compares, a set of the host's sysctls around the whole test run (issue 14): no
# container config may change the host's values. The list is the namespaced sysctls a config can
# name (ipc, uts, net, user) plus non-namespaced ones a careless runtime would write.
# net.ipv4.ip_forward is left out: the CNI bridge plugin turns it on for the host on purpose.
#   tests/host-sysctls.sh save FILE      write "key = value" lines
#   tests/host-sysctls.sh check FILE     exit 1 and print what changed since `save`
set -eu
keys="fs.mqueue.queues_max fs.mqueue.msg_max fs.mqueue.msgsize_max kernel.msgmax kernel.msgmnb kernel.msgmni
kernel.sem kernel.shmmax kernel.shmall kernel.shmmni kernel.shm_rmid_forced kernel.hostname kernel.domainname
net.ipv4.ping_group_range net.ipv4.ip_unprivileged_port_start net.core.somaxconn net.ipv4.tcp_syncookies
user.max_user_namespaces kernel.pid_max kernel.core_pattern kernel.sysrq vm.overcommit_memory"

snapshot() {
    for k in $keys; do
        f=/proc/sys/$(echo "$k" | tr . /)
        [ -r "$f" ] && printf '%s = %s\n' "$k" "$(tr '\t' ' ' <"$f")"
    done
    return 0
}

case "${1:-}" in
save) snapshot >"$2" ;;
check)
    now=$(mktemp)
    snapshot >"$now"
    if ! diff -u "$2" "$now" >"$now.diff"; then
        echo "host sysctls changed during the tests:"
        grep '^[-+][a-z]' "$now.diff"
        rm -f "$now" "$now.diff"
        exit 1
    fi
    rm -f "$now" "$now.diff"
    echo "host sysctls unchanged ($(wc -l <"$2") checked)"
    ;;
*) echo "usage: $0 save|check FILE" >&2; exit 2 ;;
esac
