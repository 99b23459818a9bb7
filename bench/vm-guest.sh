#!/bin/sh
# Runs inside the cgroup v2 guest (tests/vm/, as its after-script; busybox sh): bench/runtime.sh's scenarios
# for carte, crun and runc in one hyperfine run each, printed as medians and ratios to crun. The guest is
# emulated (TCG, about ten times slower): only the ratios mean anything.
set -u
runs=${RUNS:-10}
w=/tmp/bench
b=$w/bundle
mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/dev" "$b/rootfs/sys" "$b/rootfs/tmp"
cp /bin/busybox "$b/rootfs/bin/"
for a in sh true; do ln -s busybox "$b/rootfs/bin/$a"; done
(cd "$b" && runc spec)
sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"\/bin\/true"/' "$b/config.json"
echo "== bench begin"
echo "# cgroup v2 guest $(uname -r) under qemu TCG; $(crun --version | head -1); $(runc --version | head -1)"
# report CSV: hyperfine's --export-csv (command,mean,stddev,median,…) as medians and x crun.
report() {
    awk -F, 'NR > 1 { name[NR] = $1; med[NR] = $4; if ($1 == "crun") c = $4; n = NR }
        END { printf "%-8s %10s %7s\n", "row", "median", "x crun"
              for (i = 2; i <= n; i++) printf "%-8s %8.2fms %6.2fx\n", name[i], med[i] * 1000, c ? med[i] / c : 0 }' "$1"
}
set -- carte crun runc
runc_=""; cyc=""; ver=""; st=""
for n in "$@"; do
    r=$w/root-$n
    mkdir -p "$r"
    "$n" --root "$r" create -b "$b" st </dev/null >/dev/null 2>&1
done
echo "## run /bin/true (foreground)"
hyperfine -N -w 2 -r "$runs" --export-csv $w/run.csv \
    -n carte "carte --root $w/root-carte run -b $b r" -n crun "crun --root $w/root-crun run -b $b r" \
    -n runc "runc --root $w/root-runc run -b $b r" >/dev/null 2>&1
report $w/run.csv
echo "## create + start + wait + delete"
cycle() { echo "sh -c '$1 --root $w/root-$1 create -b $b c && $1 --root $w/root-$1 start c && while [ \"\$($1 --root $w/root-$1 state c | grep -o stopped)\" != stopped ]; do :; done; $1 --root $w/root-$1 delete c'"; }
hyperfine -w 2 -r "$runs" --export-csv $w/cycle.csv -n carte "$(cycle carte)" -n crun "$(cycle crun)" \
    -n runc "$(cycle runc)" >/dev/null 2>&1
report $w/cycle.csv
echo "## --version"
hyperfine -N -w 2 -r "$((runs * 2))" --export-csv $w/ver.csv -n carte "carte --version" -n crun "crun --version" \
    -n runc "runc --version" >/dev/null 2>&1
report $w/ver.csv
echo "## state of a created container"
hyperfine -N -w 2 -r "$((runs * 2))" --export-csv $w/state.csv -n carte "carte --root $w/root-carte state st" \
    -n crun "crun --root $w/root-crun state st" -n runc "runc --root $w/root-runc state st" >/dev/null 2>&1
report $w/state.csv
for n in "$@"; do "$n" --root "$w/root-$n" delete -f st >/dev/null 2>&1; done
echo "== bench end"
