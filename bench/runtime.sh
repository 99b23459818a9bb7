#!/usr/bin/env bash
# carte side by side with runc, crun (and youki when installed) and the bare `unshare … chroot` floor,
# every scenario measured for all of them together, so the rows are comparable: ROUNDS hyperfine runs of
# RUNS/ROUNDS samples each, the order of the rows reversed every other round, the samples pooled. On this
# shared VM a runtime's median drifts by 20–30 % within minutes; one hyperfine run measures the rows one after
# the other, so the drift fell on whichever came last; in rounds it falls on every row alike. Prints medians,
# min–max, ratios to the floor and to crun, and the peak RSS of `create`.
#
# On a hybrid cgroup host every row runs in the private mount namespace crun needs (bench/common.sh).
# Env: RUNS (default 40), ROUNDS (default 4), WARMUP (default 3, per round); BENCH_README=FILE also writes
# this report between the `<!-- bench:begin -->` and `<!-- bench:end -->` lines of FILE (`make bench` gives
# bench/README.md).
set -euo pipefail
runs=${RUNS:-40}
rounds=${ROUNDS:-4}
warmup=${WARMUP:-3}
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

# measure NAME RUNS HYPERFINE-OPTION… -- ROW…: ROUNDS hyperfine runs of the rows (`-n name command` triples)
# with RUNS/ROUNDS samples each (at least 2), every other round in reverse order, then the report of the
# pooled samples: median (min–max), ratios to the floor and crun rows.
measure() {
    local name=$1 n=$2 opts=() rows=() rev=() k i per
    shift 2
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    rows=("$@")
    for ((i = ${#rows[@]} - 3; i >= 0; i -= 3)); do rev+=("${rows[@]:i:3}"); done
    per=$(((n + rounds - 1) / rounds))
    [ "$per" -ge 2 ] || per=2
    for k in $(seq "$rounds"); do
        if ((k % 2)); then set -- "${rows[@]}"; else set -- "${rev[@]}"; fi
        hyperfine "${opts[@]}" -r "$per" --export-json "$work/$name.$k.json" "$@" >/dev/null
    done
    python3 - "$work/$name".*.json <<'PY'
import json, statistics, sys
rows = {}
for path in sys.argv[1:]:
    for r in json.load(open(path))["results"]:
        rows.setdefault(r["command"], []).extend(r["times"])
first = [r["command"] for r in json.load(open(sys.argv[1]))["results"]]
med = {k: statistics.median(v) for k, v in rows.items()}
floor, crun = med.get("floor"), med.get("crun")
print(f'{"row":8} {"median":>9} {"min":>9} {"max":>9} {"x floor":>8} {"x crun":>7}')
for k in first:
    xf = f'{med[k]/floor:.2f}x' if floor else "-"
    xc = f'{med[k]/crun:.2f}x' if crun else "-"
    print(f'{k:8} {med[k]*1e3:8.2f}ms {min(rows[k])*1e3:8.2f}ms {max(rows[k])*1e3:8.2f}ms {xf:>8} {xc:>7}')
PY
}

echo; echo "## run /bin/true (foreground; hyperfine -N)"
measure run "$runs" -N -w "$warmup" -- "${run_cmds[@]}"
echo; echo "## create + start + wait + delete"
measure cycle "$runs" -w "$warmup" -- "${cycle_cmds[@]}"
echo; echo "## --version (hyperfine -N)"
measure ver "$((runs * 2))" -N -w "$warmup" -- "${ver_cmds[@]}"
echo; echo "## state of a created container (hyperfine -N)"
for n in "${names[@]:1}"; do "${bin[$n]}" --root "$work/root-$n" create -b "$b" st </dev/null >/dev/null 2>&1; done
measure state "$((runs * 2))" -N -w "$warmup" -- "${state_cmds[@]}"
for n in "${names[@]:1}"; do "${bin[$n]}" --root "$work/root-$n" delete -f st >/dev/null 2>&1; done
echo; echo "## exec /bin/true in a running container (hyperfine -N)"
for n in "${names[@]:1}"; do "${bin[$n]}" --root "$work/root-$n" run -d -b "$sleeper" ex </dev/null >/dev/null 2>&1; done
measure exec "$runs" -N -w "$warmup" -- "${exec_cmds[@]}"
for n in "${names[@]:1}"; do "${bin[$n]}" --root "$work/root-$n" delete -f ex >/dev/null 2>&1; done
echo; echo "## 50 runs of /bin/true, 2 at a time (lifecycles per second = 50 / median)"
measure par "$((2 * rounds))" -w 1 -- "${par_cmds[@]}"
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
