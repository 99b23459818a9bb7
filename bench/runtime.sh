#!/usr/bin/env bash
# carte side by side with runc, crun (and youki when installed) and the bare `unshare … chroot` floor,
# in ONE hyperfine run per scenario, so the rows are comparable. Prints medians, min–max, ratio to the
# floor, and the peak RSS of `create`.
#
# On a hybrid cgroup host every row runs in the private mount namespace crun needs (bench/common.sh).
# Env: RUNS (default 40), WARMUP (default 5); BENCH_README=FILE also writes this report between the
# `<!-- bench:begin -->` and `<!-- bench:end -->` lines of FILE (`make bench` gives bench/README.md).
set -euo pipefail
runs=${RUNS:-40}
warmup=${WARMUP:-5}
. "$(dirname "$0")/common.sh"
enter_bench_namespace "$0" "$@"
work=$(make_work carte-bench)
trap 'cleanup_work "$work"' EXIT
b=$work/bundle
make_bundle "$b"
# The exec row's container: the same bundle running sleep.
sleeper=$work/sleeper
make_sleeper "$b" "$sleeper"
# Everything below is also kept for BENCH_README (tee is waited for before the README is written).
exec 3>&1
exec > >(tee "$work/report.txt" >&3)
teepid=$!
print_versions

run_cmds=()
cycle_cmds=()
ver_cmds=()
state_cmds=()
par_cmds=()
exec_cmds=()
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
    state_cmds+=(-n "$n" "$exe --root $r state st")
    guard=; [ "$n" = youki ] && guard="timeout -s KILL 10 "
    exec_cmds+=(-n "$n" "$guard$exe --root $r exec ex /bin/true")
    # youki's foreground run can hang (above): not in the parallel row.
    [ "$n" = youki ] || par_cmds+=(-n "$n" "sh -c 'seq 50 | xargs -P2 -I{} sh -c \"$exe --root $r run -b $b p\$\$-{} >/dev/null\"'")
done

report() { # median (min–max), ratio to the floor row
    python3 - "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["results"]
med = {r["command"]: r["median"] for r in d}
floor, crun = med.get("floor"), med.get("crun")
print(f'{"row":8} {"median":>9} {"min":>9} {"max":>9} {"x floor":>8} {"x crun":>7}')
for r in d:
    xf = f'{r["median"]/floor:.2f}x' if floor else "-"
    xc = f'{r["median"]/crun:.2f}x' if crun else "-"
    print(f'{r["command"]:8} {r["median"]*1e3:8.2f}ms {r["min"]*1e3:8.2f}ms {r["max"]*1e3:8.2f}ms {xf:>8} {xc:>7}')
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
echo; echo "## state of a created container (hyperfine -N)"
for n in "${names[@]:1}"; do "${bin[$n]}" --root "$work/root-$n" create -b "$b" st </dev/null >/dev/null 2>&1; done
hyperfine -N -w "$warmup" -r "$((runs * 2))" --export-json "$work/state.json" "${state_cmds[@]}" >/dev/null
for n in "${names[@]:1}"; do "${bin[$n]}" --root "$work/root-$n" delete -f st >/dev/null 2>&1; done
report "$work/state.json"
echo; echo "## exec /bin/true in a running container (hyperfine -N)"
for n in "${names[@]:1}"; do "${bin[$n]}" --root "$work/root-$n" run -d -b "$sleeper" ex </dev/null >/dev/null 2>&1; done
hyperfine -N -w "$warmup" -r "$runs" --export-json "$work/exec.json" "${exec_cmds[@]}" >/dev/null
for n in "${names[@]:1}"; do "${bin[$n]}" --root "$work/root-$n" delete -f ex >/dev/null 2>&1; done
report "$work/exec.json"
echo; echo "## 50 runs of /bin/true, 2 at a time (lifecycles per second = 50 / median)"
hyperfine -w 1 -r 5 --export-json "$work/par.json" "${par_cmds[@]}" >/dev/null
report "$work/par.json"
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

exec >&3 3>&-
wait "$teepid"
if [ -n "${BENCH_README:-}" ]; then
    write_readme_section "$BENCH_README" bench "$work/report.txt" bench/runtime.sh
fi
