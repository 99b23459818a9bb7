#!/usr/bin/env bash
# bench/runtime.sh's comparison on a pure cgroup v2 host: the test guest of tests/vm/ (Debian's kernel under
# qemu TCG, cgroup_no_v1=all) with crun and hyperfine added, running bench/vm-guest.sh instead of tests.
# Emulated: read the ratios, not the times. BENCH_README=FILE also writes the report between the
# `<!-- bench-vm:begin -->` and `<!-- bench-vm:end -->` lines of FILE.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. bench/common.sh
for p in crun hyperfine; do
    command -v "$p" >/dev/null || apt-get install -y -qq crun hyperfine </dev/null >/dev/null
done
# No test runs (no runtime in the list); the guest only runs the after-script. `lifecycle` is there
# because the guest builder wants a test file.
CARTE_VM_RUNTIMES=" " CARTE_VM_AFTER=bench/vm-guest.sh \
    CARTE_VM_EXTRA="$(command -v crun) $(command -v hyperfine)" tests/vm/run.sh lifecycle >/dev/null || true
report=$(awk '/^== bench begin/ { on = 1; next } /^== bench end/ { on = 0 } on' target/vm/results.log)
[ -n "$report" ] || { echo "bench/vm.sh: the guest printed no report (target/vm/console.log)" >&2; exit 1; }
echo "$report" | tee target/vm/bench.txt
if [ -n "${BENCH_README:-}" ]; then
    write_readme_section "$BENCH_README" bench-vm target/vm/bench.txt bench/vm.sh
fi
