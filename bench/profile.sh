#!/usr/bin/env bash
# Where the time goes, in counts that do not move with the machine's load (wall time on a shared 2-core VM
# does): bench/README.md, "Where the time goes", is written from this script's output.
#   1. carte's steps: `carte --debug run` under `strace -f`; every syscall, of any of carte's processes, is
#      counted to the step the last debug line named.
#   2. syscalls per verb for each runtime (`strace -f -c`).
#   3. user-space instructions of the runtime's own process for `--version`, `state` and `delete`
#      (`valgrind --tool=callgrind`; create and start use syscalls valgrind 3.19 does not know, see
#      there). carte runs here
#      from a read-only bind mount of itself, so it neither moves onto a read-only view nor re-executes
#      (runtime/src/selfexe/) and callgrind sees the whole verb. carte only: crun re-executes itself
#      (execveat of a sealed copy) at every verb, even --version, and valgrind does not follow
#      execveat; runc's Go runtime under valgrind is not comparable. The syscall table (2.) covers all
#      three.
# Env: CARTE (binary; default target/release/carte).
set -euo pipefail
. "$(dirname "$0")/common.sh"
enter_bench_namespace "$0" "$@"
work=$(make_work carte-profile)
cleanup() {
    umount "$work/carte-ro" 2>/dev/null || true
    cleanup_work "$work"
}
trap cleanup EXIT
b=$work/bundle
make_bundle "$b"
print_versions
# The read-only copy of carte (see 3. above); our namespace is private, the host never sees it.
ro=$work/carte-ro
cp "$carte" "$ro"
mount --bind "$ro" "$ro"
mount -o remount,bind,ro "$ro"

echo
echo "## 1. carte --debug run: syscalls per step (all processes; strace -f)"
strace -f -qq -tt -s 300 -o "$work/steps.st" "$carte" --root "$work/root-carte" --debug run -b "$b" steps 2>/dev/null
python3 - "$work/steps.st" <<'PY'
import re, sys
step, counts, order, total = "start-up (exec, arguments, logging)", {}, [], 0
for line in open(sys.argv[1]):
    m = re.match(r"\d+ +[\d:.]+ +(\w+)\(", line)
    if not m:
        continue
    total += 1
    if step not in counts:
        counts[step] = 0
        order.append(step)
    counts[step] += 1
    d = re.search(r'write\(2, ".*?msg=\\"(.*?)\\"', line)
    if d:
        step = d.group(1).replace('\\\\"', '"')[:90]
print(f"{'syscalls':>8}  step (until the next debug line)")
for s in order:
    print(f"{counts[s]:8}  {s}")
print(f"{total:8}  total")
PY

echo
echo "## 2. syscalls per verb (strace -f -c; run counts the container's /bin/true too, create its init until start)"
printf '%-7s %9s %9s %9s %9s %9s %9s %9s\n' runtime --version run create start state delete exec
make_sleeper "$b" "$work/sleeper"
count() { # FILE COMMAND…: strace's total for the command (and what it forks), written to FILE
    local out=$1
    shift
    strace -f -qq -c -o "$out" "$@" >/dev/null 2>&1 </dev/null || true
}
total() { awk '$NF == "total" { print $4 }' "$1"; } # % seconds usecs/call CALLS [errors] total
for n in "${names[@]:1}"; do
    exe=${bin[$n]}
    r=$work/root-$n
    count "$work/v.txt" "$exe" --version
    count "$work/r.txt" "$exe" --root "$r" run -b "$b" pr
    # strace -f waits for the created init, which lives until start: trace create in the background.
    count "$work/c.txt" "$exe" --root "$r" create -b "$b" pc &
    tracer=$!
    for _ in $(seq 100); do "$exe" --root "$r" state pc 2>/dev/null | grep -q created && break; sleep 0.05; done
    count "$work/st.txt" "$exe" --root "$r" start pc
    wait "$tracer"
    count "$work/sa.txt" "$exe" --root "$r" state pc
    count "$work/d.txt" "$exe" --root "$r" delete -f pc
    "$exe" --root "$r" run -d -b "$work/sleeper" px </dev/null >/dev/null 2>&1
    count "$work/e.txt" "$exe" --root "$r" exec px /bin/true
    "$exe" --root "$r" delete -f px >/dev/null 2>&1
    printf '%-7s %9s %9s %9s %9s %9s %9s %9s\n' "$n" "$(total "$work/v.txt")" "$(total "$work/r.txt")" \
        "$(total "$work/c.txt")" "$(total "$work/st.txt")" "$(total "$work/sa.txt")" "$(total "$work/d.txt")" \
        "$(total "$work/e.txt")"
done

echo
echo "## 3. user-space instructions of the runtime's own process for --version, state and delete (callgrind)"
# valgrind 3.19 does not know fsopen, open_tree, openat2 (the init's procfs and mounts) or pidfd_open
# (start's wait for the init): under it create fails in the init and start at once, and their counts
# would be of their error paths. They are in the syscall table (2.) only; state and delete run here on a
# container made and started without valgrind, so they count the paths every lifecycle takes.
printf '%-7s %11s %11s %11s\n' runtime --version state delete
for n in carte; do
    exe=$ro
    r=$work/root-$n
    instr() { # the instructions of the runtime's own process (valgrind keeps the pid it was started as)
        rm -f "$work"/cg.*
        valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" "$@" >/dev/null 2>&1 </dev/null &
        local pid=$!
        # A verb that failed under valgrind counted its error path: no number for it.
        if wait "$pid"; then
            awk '/^totals:/ { printf "%\047d\n", $2 }' "$work/cg.$pid"
        else
            echo failed
        fi
    }
    v=$(instr "$exe" --version)
    "${bin[$n]}" --root "$r" create -b "$b" ic
    sa=$(instr "$exe" --root "$r" state ic)
    "${bin[$n]}" --root "$r" start ic
    for _ in $(seq 200); do "${bin[$n]}" --root "$r" state ic 2>/dev/null | grep -q stopped && break; sleep 0.05; done
    de=$(instr "$exe" --root "$r" delete ic)
    printf '%-7s %11s %11s %11s\n' "$n" "$v" "$sa" "$de"
done
