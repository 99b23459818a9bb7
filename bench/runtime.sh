#!/usr/bin/env bash
# carte side by side with runc, crun (and youki when installed) and the bare `unshare … chroot` floor,
# in ONE hyperfine run per scenario, so the rows are comparable. Prints medians, min–max, ratio to the
# floor, and the peak RSS of `create`.
#
# crun refuses this kind of hybrid cgroup host (v2 hierarchy with controllers attached); like the
# research notes, every row runs inside one private mount namespace where
# /sys/fs/cgroup/unified/cgroup.controllers is masked by an empty file (the host is untouched).
# Env: RUNS (default 40), WARMUP (default 5).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-40}
warmup=${WARMUP:-5}
if [ "${CARTE_BENCH_INNER:-}" != 1 ]; then
    for p in hyperfine runc crun busybox; do
        command -v "$p" >/dev/null || { apt-get install -y -qq hyperfine runc crun busybox-static </dev/null >/dev/null; break; }
    done
    exec unshare -m env CARTE_BENCH_INNER=1 "$0" "$@"
fi
mount --make-rprivate /
if [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
    mount --bind /dev/null /sys/fs/cgroup/unified/cgroup.controllers
fi
carte=$root/target/release/carte
work=$(mktemp -d /tmp/carte-bench.XXXXXX)
# On any exit, remove what the runs may have left (a created container holds a cgroup) before the files.
cleanup() {
    for r in "$work"/root-*; do
        [ -d "$r" ] || continue
        for c in "$r"/*/; do
            [ -d "$c" ] && "${bin[${r##*/root-}]:-true}" --root "$r" delete -f "$(basename "$c")" >/dev/null 2>&1
        done
    done
    rm -rf "$work"
}
trap cleanup EXIT
b=$work/bundle
mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/dev" "$b/rootfs/sys" "$b/rootfs/tmp"
cp /bin/busybox "$b/rootfs/bin/"
for a in sh true sleep; do ln -s busybox "$b/rootfs/bin/$a"; done
(cd "$b" && runc spec)
# runc spec's default, not interactive, running /bin/true.
sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"\/bin\/true"/' "$b/config.json"
grep -q '"/bin/true"' "$b/config.json" || { echo "bench: could not set args" >&2; exit 1; }

names=(floor carte crun runc)
declare -A bin=([carte]=$carte [crun]=$(command -v crun) [runc]=$(command -v runc))
if command -v youki >/dev/null; then names+=(youki); bin[youki]=$(command -v youki); fi

echo "# versions"
for n in "${names[@]:1}"; do printf '%-6s %s\n' "$n" "$("${bin[$n]}" --version | head -1)"; done
echo "# kernel $(uname -r), $(nproc) cpus; busybox-static /bin/true; runc spec defaults (pid net ipc uts mount ns)"

run_cmds=()
cycle_cmds=()
ver_cmds=()
for n in "${names[@]}"; do
    if [ "$n" = floor ]; then
        run_cmds+=(-n floor "unshare --fork --pid --mount --uts --ipc --net --mount-proc chroot $b/rootfs /bin/true")
        continue
    fi
    r=$work/root-$n
    exe=${bin[$n]}
    if [ "$n" = youki ]; then
        # youki's foreground run can hang (SIGCHLD race): bench it detached, with a kill guard.
        run_cmds+=(-n youki "timeout -s KILL 10 sh -c '$exe --root $r run -d -b $b y\$\$ >/dev/null && while $exe --root $r state y\$\$ | grep -q running; do :; done; $exe --root $r delete -f y\$\$'")
    else
        run_cmds+=(-n "$n" "$exe --root $r run -b $b ${n}run")
    fi
    cycle_cmds+=(-n "$n" "sh -c '$exe --root $r create -b $b c\$\$ && $exe --root $r start c\$\$ && while [ \"\$($exe --root $r state c\$\$ | grep -o stopped)\" != stopped ]; do :; done; $exe --root $r delete c\$\$'")
    ver_cmds+=(-n "$n" "$exe --version")
done

report() { # median (min–max), ratio to the floor row
    python3 - "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["results"]
floor = next((r["median"] for r in d if r["command"] == "floor"), None)
print(f'{"row":8} {"median":>9} {"min":>9} {"max":>9} {"x floor":>8}')
for r in d:
    ratio = f'{r["median"]/floor:.1f}x' if floor else "-"
    print(f'{r["command"]:8} {r["median"]*1e3:8.2f}ms {r["min"]*1e3:8.2f}ms {r["max"]*1e3:8.2f}ms {ratio:>8}')
PY
}

echo; echo "## run /bin/true (foreground; hyperfine -N)"
hyperfine -N -w "$warmup" -r "$runs" --export-json "$work/run.json" "${run_cmds[@]}" >/dev/null
report "$work/run.json"
echo; echo "## create + start + wait + delete"
hyperfine -w "$warmup" -r "$runs" --export-json "$work/cycle.json" "${cycle_cmds[@]}" >/dev/null
report "$work/cycle.json"
echo; echo "## --version (hyperfine -N)"
hyperfine -N -w "$warmup" -r "$((runs * 2))" --export-json "$work/ver.json" "${ver_cmds[@]}" >/dev/null
report "$work/ver.json"
echo; echo "## peak RSS of create (max of 5, KiB)"
for n in "${names[@]:1}"; do
    exe=${bin[$n]}
    r=$work/root-$n
    max=0
    for i in 1 2 3 4 5; do
        # -o: the created init inherits our stdio and would hold a $(...) pipe open until deleted.
        /usr/bin/time -o "$work/rss" -f %M "$exe" --root "$r" create -b "$b" m$i </dev/null >/dev/null 2>&1 || true
        kb=$(tail -1 "$work/rss")
        "$exe" --root "$r" delete -f m$i >/dev/null 2>&1 || true
        [ "$kb" -gt "$max" ] 2>/dev/null && max=$kb
    done
    printf '%-6s %s KiB\n' "$n" "$max"
done
printf '%-6s %s bytes\n' "binary" "$(stat -c %s "$carte")"
