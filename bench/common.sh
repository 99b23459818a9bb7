# Sourced by runtime.sh and profile.sh: the runtimes to compare, the private mount namespace crun needs on a
# hybrid host, and the bundle every row runs.
#
# crun refuses a hybrid cgroup host whose v2 hierarchy has controllers attached. The caller re-executes
# itself in a private mount namespace (`enter_bench_namespace "$0" "$@"`) where
# /sys/fs/cgroup/unified/cgroup.controllers is covered by an empty file, so crun falls back to v1; every
# runtime then runs in that same namespace, and the host's own mounts are untouched.

bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
carte=${CARTE:-$bench_root/target/release/carte}

# enter_bench_namespace SCRIPT ARGS…: install what is missing, then re-execute SCRIPT in the namespace.
enter_bench_namespace() {
    if [ "${CARTE_BENCH_INNER:-}" = 1 ]; then
        mount --make-rprivate /
        if [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
            mount --bind /dev/null /sys/fs/cgroup/unified/cgroup.controllers
        fi
        return
    fi
    for p in hyperfine runc crun busybox strace valgrind; do
        command -v "$p" >/dev/null || {
            apt-get install -y -qq hyperfine runc crun busybox-static strace valgrind </dev/null >/dev/null
            break
        }
    done
    exec unshare -m env CARTE_BENCH_INNER=1 "$@"
}

# The rows: names in order, and each runtime's binary (youki only when installed).
names=(floor carte crun runc)
declare -A bin=([carte]=$carte [crun]=$(command -v crun) [runc]=$(command -v runc))
if command -v youki >/dev/null; then
    names+=(youki)
    bin[youki]=$(command -v youki)
fi

# make_bundle DIR: `runc spec`'s default bundle (pid, net, ipc, uts, mount namespaces; not interactive)
# around busybox-static, running /bin/true.
make_bundle() {
    local b=$1
    mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/dev" "$b/rootfs/sys" "$b/rootfs/tmp"
    cp /bin/busybox "$b/rootfs/bin/"
    for a in sh true sleep; do ln -sf busybox "$b/rootfs/bin/$a"; done
    (cd "$b" && runc spec)
    sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"\/bin\/true"/' "$b/config.json"
    grep -q '"/bin/true"' "$b/config.json" || { echo "bench: could not set args in $b/config.json" >&2; exit 1; }
}

# make_sleeper BUNDLE DIR: a copy of make_bundle's BUNDLE running `sleep 1000` (a container to exec into).
make_sleeper() {
    cp -a "$1" "$2"
    sed -i 's/"\/bin\/true"/"\/bin\/sleep", "1000"/' "$2/config.json"
    grep -q '"/bin/sleep"' "$2/config.json" || { echo "bench: could not set args in $2/config.json" >&2; exit 1; }
}

# make_work NAME: a fresh directory for the bundles and the runtimes' state roots, on a tmpfs of its own (mounted in
# the private namespace: the host never sees it). Real hosts keep runtime state on a tmpfs (/run: runc's, crun's and
# containerd's roots); this VM's /run and /tmp are on ext4, where replacing a file by a rename (carte's atomic
# state.json) makes ext4 write the new file out first (auto_da_alloc) and the runtime wait for the disk.
make_work() {
    local w
    w=$(mktemp -d "/tmp/$1.XXXXXX")
    mount -t tmpfs -o mode=0755 tmpfs "$w"
    echo "$w"
}

# cleanup_work WORK: on exit, delete what the runs left under WORK/root-<runtime> (a created container holds a
# cgroup), then remove WORK.
cleanup_work() {
    local w=$1 r c
    for r in "$w"/root-*; do
        [ -d "$r" ] || continue
        for c in "$r"/*/; do
            [ -d "$c" ] && "${bin[${r##*/root-}]:-true}" --root "$r" delete -f "$(basename "$c")" >/dev/null 2>&1
        done
    done
    umount "$w" 2>/dev/null
    rm -rf "$w"
}

print_versions() {
    echo "# versions"
    local n
    for n in "${names[@]:1}"; do printf '%-6s %s\n' "$n" "$("${bin[$n]}" --version | head -1)"; done
    echo "# kernel $(uname -r), $(nproc) cpus; busybox-static /bin/true; runc spec defaults (pid net ipc uts mount ns)"
}

# write_readme_section README KEY REPORT SCRIPT: put the text of file REPORT between the lines
# `<!-- KEY:begin -->` and `<!-- KEY:end -->` of README, stamped with the date and SCRIPT's name.
write_readme_section() {
    python3 - "$@" <<'PY'
import sys, datetime
readme, key, report, script = sys.argv[1:5]
text = open(readme).read()
begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
head, rest = text.split(begin, 1)
tail = rest.split(end, 1)[1]
body = open(report).read().rstrip()
stamp = datetime.date.today().isoformat()
out = f"{begin}\nWritten by `make bench` on {stamp} (one run of `{script}`):\n\n```\n{body}\n```\n{end}"
open(readme, "w").write(head + out + tail)
PY
}
