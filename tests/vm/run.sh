#!/usr/bin/env bash
# The cgroup v2 host stage (issue 15): boots Debian's kernel under qemu's TCG emulation (KVM cannot boot a
# stock kernel on this VM: nested PVM) with cgroup_no_v1=all, so every controller is on the unified
# hierarchy, and runs integration tests there with CARTE_BIN=carte and then CARTE_BIN=runc in the same guest.
#   tests/vm/run.sh [TEST...]      TEST: files of tests/tests/ (default: $CARTE_VM_TESTS or the list below)
#   tests/vm/run.sh --systemd [TEST...]   the same guest with systemd as PID 1 (tests/vm/guest-systemd.sh: this
#                                  host's root shared read-only, an overlay on it); default tests: systemd_cgroup
#                                  rootless_podman (rootless podman, with --memory through a delegated v2 subtree)
# Prints a table (test × carte × runc) and ends with one line:
#   `vm: N passed, N failed, N skipped, N known runc failures` (over both runtimes; tests/vm/runc-known.txt)
# and exits non-zero when a test failed, a test executable crashed or the guest did not finish in time.
# Needs the release build (`cargo build --release`); installs qemu and the kernel through tests/setup.sh.
# Logs in target/vm/: console.log (the guest's kernel and init), results.txt (every test's output).
# The guest is ~10 times slower than the host: its tests prove behaviour, never timing.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
out=target/vm
default="lifecycle cgroups cgroup_parent cgroup_v2 verbs verbs_parity rootless"
systemd=
if [ "${1:-}" = --systemd ]; then
    shift
    # rootless_podman needs the host's podman, conmon and setuid newuidmap, which only this guest (the host's
    # root) has; the plain v2 guest's initramfs carries none of them.
    systemd=1 out=target/vm-systemd default="systemd_cgroup rootless_podman"
    export CARTE_VM_TESTS=${CARTE_VM_SYSTEMD_TESTS:-}
fi
mkdir -p "$out"
# shellcheck disable=SC2206  # a space-separated list on purpose
tests=(${CARTE_VM_TESTS:-$default})
[ $# -gt 0 ] && tests=("$@")
# CI's systemd stage (the default list) skips rootless_podman's two scenarios that do not depend on the cgroup
# version (run --rm; run -d, exec, stop, rm): they run on the host, and here they would add 50 to 90 s to a stage
# of ~55 s, where the delegation scenario, the one this guest exists for, adds ~35 s. Named tests run in full.
if [ -n "$systemd" ] && [ $# -eq 0 ] && [ -z "${CARTE_VM_TESTS:-}" ]; then
    export CARTE_VM_TEST_ARGS=${CARTE_VM_TEST_ARGS:---skip bundle_tool_defaults_match_spec --skip run_rm:: --skip detached_exec_stop_rm::}
fi

"$root/tests/setup.sh" >/dev/null || exit 1
kernel=$(ls /boot/vmlinuz-*-amd64 2>/dev/null | sort -V | tail -n 1)
[ -n "$kernel" ] || { echo "vm: no /boot/vmlinuz-*-amd64 (apt-get install linux-image-amd64)" >&2; exit 1; }
[ -x target/release/carte ] || { echo "vm: target/release/carte missing (cargo build --release)" >&2; exit 1; }
kver=$(basename "$kernel" | sed 's/^vmlinuz-//')
# The systemd guest: this host's root as a read-only 9p share (multidevs=remap: inode numbers stay unique across
# the host's mounts, which the guest's overlay needs), and the kernel arguments that make its systemd start only
# the test unit on a pure cgroup2 hierarchy.
share=() append=
if [ -n "$systemd" ]; then
    [ -x /lib/systemd/systemd ] || { echo "vm: no /lib/systemd/systemd (apt-get install systemd)" >&2; exit 1; }
    share=(-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap")
    append=" systemd.unit=carte-vm.service systemd.unified_cgroup_hierarchy=1 systemd.show_status=1"
    # containerd's busybox image (engine tests): the guest reads this worktree's target/images through the share.
    tests/images.sh target/images >/dev/null || exit 1
fi
CARTE_VM_SYSTEMD=${systemd:+$kver} tests/vm/build-guest.sh "$out" "${tests[@]}" || exit 1

rm -f "$out/console.log" "$out/results.txt"
started=$(date +%s)
# -smp 2 with one host thread per vCPU (TCG's multi-threaded mode); -m 2G holds the tmpfs root and the
# bundles. ttyS0 is the console, ttyS1 the results channel. panic=-1 with -no-reboot ends qemu if init dies.
# The systemd stage runs one test file in about 90 s: 600 s bound a guest whose boot hangs on a unit.
limit=${CARTE_VM_TIMEOUT:-1500}
[ -n "$systemd" ] && limit=${CARTE_VM_TIMEOUT:-600}
timeout --kill-after=10 "$limit" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -m 2G -smp 2 -nodefaults -display none -no-reboot \
    -kernel "$kernel" -initrd "$out/initrd.img" "${share[@]}" \
    -append "console=ttyS0 cgroup_no_v1=all panic=-1 quiet$append" \
    -serial "file:$out/console.log" -serial "file:$out/results.txt"
qemu_rc=$?
seconds=$(($(date +%s) - started))
# Without carriage returns and terminal colours (the systemd guest's unit output is a terminal to the harness).
tr -d '\r' <"$out/results.txt" | sed 's/\x1b\[[0-9;]*m//g; s/\x1b(B//g' >"$out/results.log"

# `== vm begin RT T` … `test NAME ... ok|FAILED|ignored` … `== vm end RT T rc=N`: one table row per test,
# a failure for an executable that exited non-zero without a failed test (a crash or the guest's timeout)
# or never ended, and for a guest that did not reach `== vm done`. RT `both` (a `per_runtime!` file, run once):
# each `NAME::carte` and `NAME::runc` goes to its runtime's column as NAME; the file's own failures to carte's.
awk -v qemu_rc="$qemu_rc" -v seconds="$seconds" -v systemd="$systemd" -v kernel="$(basename "$kernel")" \
    -v known_file=tests/vm/runc-known.txt -v out="$out" '
  BEGIN { while ((getline l < known_file) > 0) if (l !~ /^#/ && l ~ /::/) { split(l, w, " "); known[w[1]] = 1 } }
  /^== vm begin / { rt = $4; t = $5; open_[rt " " t] = 1; next }
  /^== vm end / {
    rt = $4; t = $5; rc = $6; sub(/rc=/, "", rc); delete open_[rt " " t]
    if (rc != 0 && !failed[rt " " t]) { key = t "::(exit status " rc ")"; add(key, column(rt), "FAILED") }
    next
  }
  /^== vm done/ { done = 1; next }
  /^test .* \.\.\. (ok|FAILED|ignored)$/ && rt != "" {
    name = $2; col = rt
    if (rt == "both" && match(name, /::(carte|runc)$/)) {
      col = substr(name, RSTART + 2); name = substr(name, 1, RSTART - 1)
    }
    add(t "::" name, column(col), $NF)
    if ($NF == "FAILED") failed[rt " " t] = 1
  }
  function column(rt) { return rt == "both" ? "carte" : rt }
  function add(key, rt, r) {
    if (!(key in seen)) { seen[key] = 1; order[++n] = key }
    if (rt == "runc" && (key in known)) {
      if (r == "ok") printf "runc now passes %s in the v2 guest (remove it from tests/vm/runc-known.txt)\n", key
      else if (r == "FAILED") { r = "known"; k++ }
    }
    res[key, rt] = r
    if (r == "ok") p[rt]++; else if (r == "ignored") s[rt]++; else if (r != "known") f[rt]++
  }
  END {
    for (k in open_) { split(k, w, " "); add(w[2] "::(did not finish)", column(w[1]), "FAILED") }
    printf "%-70s %-8s %-8s\n", "cgroup v2 guest (" kernel ", cgroup_no_v1=all" (systemd ? ", systemd" : "") ")", "carte", "runc"
    for (i = 1; i <= n; i++) {
      k = order[i]; c = res[k, "carte"]; r = res[k, "runc"]
      printf "%-70s %-8s %-8s\n", k, c == "" ? "-" : c, r == "" ? "-" : r
    }
    printf "vm carte: %d passed, %d failed, %d skipped\n", p["carte"], f["carte"], s["carte"]
    printf "vm runc: %d passed, %d failed, %d skipped, %d known runc failures\n", p["runc"], f["runc"], s["runc"], k
    bad = f["carte"] + f["runc"]
    if (!done) { printf "vm: the guest did not finish (qemu exit status %d): see " out "/console.log\n", qemu_rc; bad++ }
    printf "vm stage took %d s\n", seconds
    printf "vm: %d passed, %d failed, %d skipped, %d known runc failures\n", p["carte"] + p["runc"], bad, s["carte"] + s["runc"], k
    exit bad > 0
  }
' "$out/results.log"
rc=$?
if [ "$rc" -ne 0 ]; then
    echo "---- vm: failed tests' output ($out/results.log)"
    awk '/^---- .* stdout ----$/ { show = 1 } /^failures:$/ && show { show = 0 } show' "$out/results.log" | head -n 200
    echo "---- vm: guest console (last lines of $out/console.log)"
    tail -n 20 "$out/console.log"
fi
exit "$rc"
