#!/usr/bin/env bash
# Writes runtime/layout.ld, the order of carte's functions in its binary. `make layout` builds the
# unstripped twin of `make build`'s carte that this script takes, and runs it.
#
# Why: the kernel maps a program's code 64 KiB around each page it faults in ("fault-around"), so a
# verb that runs ~900 functions scattered over 4 MB of `.text` touches most of it: 3.1 MB of carte's
# peak RSS was code, each 64 KiB window a page fault. The functions the verbs run, placed together at
# the start of the code, are about 1 MB.
#
# How: a uprobe on every function of the binary (tracefs; uprobes follow the file, so they fire in
# every process that runs it: the re-executed carte, the container's init), then the verbs containerd
# and podman call, on a bundle like theirs (seccomp, cgroup limits, rlimits, a sysctl), each traced on
# its own. A function's place: the first verb, in the order below, that runs it, then the order in
# which that verb first ran it. So `--version` and `state` touch the first pages only, and the init's
# functions sit beside create's.
#
# Functions with one instance are named without the hash Rust puts at the end of a symbol
# (`_ZN5carte4main17h…E` becomes the pattern `.text._ZN5carte4main17h*`), so the script stays valid as
# the code changes; a function it does not name is placed after the named ones, as without it. Only
# speed and memory depend on it: the same code runs in any order.
# Usage: bench/layout.sh UNSTRIPPED-CARTE [OUT]
set -euo pipefail
. "$(dirname "$0")/common.sh"
enter_bench_namespace "$0" "$@"
src=$(realpath "${1:?usage: bench/layout.sh UNSTRIPPED-CARTE [OUT]}")
out=$(realpath -m "${2:-$(dirname "$0")/../runtime/layout.ld}")
work=$(make_work carte-layout)
group=carte_layout_$$
t=$work/tracing
# write_lines FILE LINES: each line of LINES in a write(2) of its own (tracefs parses one command per write)
write_lines() {
    python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
for line in open(sys.argv[2]):
    os.write(fd, line.encode())' "$@"
}
cleanup() {
    if [ -d "$t/instances/$group" ]; then
        # The kernel waits for a grace period per probe it disables: minutes for all of them.
        echo "layout: removing the probes (about 50 ms each)"
        echo 0 >"$t/instances/$group/events/$group/enable"
        rmdir "$t/instances/$group"
    fi
    echo "-:$group/" >>"$t/dynamic_events" 2>/dev/null || true
    umount "$t" 2>/dev/null || true
    cleanup_work "$work"
}
trap cleanup EXIT
mkdir -p "$t"
mount -t tracefs nodev "$t"

c=$work/carte
cp "$src" "$c"
readelf -SW "$c" >"$work/sections"
grep -q ' \.symtab ' "$work/sections" || { echo "layout: $src has no symbol table (build it unstripped: make layout)" >&2; exit 1; }
# One uprobe per function, on an instruction of its first block (all of which runs when it is called):
# the first that is not a push and touches no vector register. On this VM's 6.18 kernel a uprobe on
# glibc's `vpbroadcastb %esi,%zmm16` (memset's entry) broke the instruction and `create` looped for
# ever; pushes are skipped too, to stay clear of the kernel's emulation of them. The offset in the
# file is the address less its section's address plus the section's offset.
objdump -d --no-show-raw-insn "$c" >"$work/disassembly"
python3 - "$work/sections" "$work/disassembly" "$c" "$group" "$work/probes" "$work/names" <<'PY'
import re, sys
sections, disassembly, exe, group, probes, names = sys.argv[1:]
code = []  # (address, offset in the file, size) of each executable section: .text, and .text.hot once laid out
for line in open(sections):
    f = line.replace("[ ", "[").split()
    if len(f) > 7 and f[0].startswith("[") and "X" in f[7]:
        code.append((int(f[3], 16), int(f[4], 16), int(f[5], 16)))
def file_offset(a):
    return next(a - addr + off for addr, off, size in code if addr <= a < addr + size)
functions, current = [], None
for line in open(disassembly):
    head = re.match(r"^([0-9a-f]+) <(.*)>:$", line)
    if head:
        current = [head.group(2), None]
        functions.append(current)
        continue
    insn = re.match(r"^ +([0-9a-f]+):\t(\S+)(.*)", line)
    if not insn or not current or current[1] is not None:
        continue
    op, args = insn.group(2), insn.group(3)
    branch = op.startswith(("j", "call", "ret"))
    if branch or (op not in ("push", "endbr64") and not re.search(r"%[xyz]mm|%k[0-7]", args)):
        current[1] = int(insn.group(1), 16)
with open(probes, "w") as p, open(names, "w") as n:
    for i, (name, a) in enumerate(f for f in functions if f[1] is not None):
        p.write(f"p:{group}/f{i} {exe}:0x{file_offset(a):x}\n")
        n.write(f"{name}\n")
PY
write_lines "$t/uprobe_events" "$work/probes"
mkdir "$t/instances/$group"
ti=$t/instances/$group
echo 65536 >"$ti/buffer_size_kb"
echo 0 >"$ti/options/overwrite"
echo 0 >"$ti/tracing_on"
echo 1 >"$ti/events/$group/enable"

# A bundle like containerd's: a seccomp allow-list with argument rules, cgroup limits, rlimits, a sysctl.
b=$work/bundle
make_bundle "$b"
python3 - "$b/config.json" "$(dirname "$0")/../runtime/src/seccomp/table_x86_64.rs" <<'PY'
import json, re, sys
cfg, table = sys.argv[1:]
c = json.load(open(cfg))
names = re.findall(r'\("(\w+)", \d+\)', open(table).read())
allowed = [n for n in names if n not in ("kexec_load", "open_by_handle_at", "personality", "clone")]
c["linux"]["seccomp"] = {
    "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": ["SCMP_ARCH_X86_64"],
    "syscalls": [
        {"names": allowed, "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
    ],
}
c["linux"]["resources"] = {"memory": {"limit": 268435456}, "cpu": {"shares": 512}, "pids": {"limit": 100}}
c["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
c["process"]["rlimits"].append({"type": "RLIMIT_NPROC", "hard": 4096, "soft": 4096})
c["process"]["oomScoreAdj"] = 100
json.dump(c, open(cfg, "w"))
PY
s=$work/sleeper
make_sleeper "$b" "$s"

r=$work/root-carte
# trace NAME COMMAND…: the functions COMMAND runs, in the order it first runs them, into $work/verb.NAME
n=0
trace() {
    local name=$1
    shift
    echo >"$ti/trace"
    echo 1 >"$ti/tracing_on"
    timeout 120 "$@" </dev/null >/dev/null 2>&1 || { echo "layout: $name failed: $*" >&2; exit 1; }
    echo 0 >"$ti/tracing_on"
    n=$((n + 1))
    local ran
    ran=$work/verb.$(printf %02d $n).$name
    grep -o " f[0-9]*: (" "$ti/trace" | sed 's/^ f\([0-9]*\).*/\1/' | awk '!seen[$0]++' >"$ran"
    # The buffer keeps the first events when full (overwrite off): a loss would only shorten the list.
    grep -m1 "entries-in-buffer" "$ti/trace" | awk -F'[ /]+' '$4 != $5 { print "layout: " $4 " of " $5 " events kept" }' >&2
    echo "layout: $name ran $(wc -l <"$ran") functions (${SECONDS}s)"
}
trace version "$c" --version
trace create "$c" --root "$r" create -b "$s" ct
trace state "$c" --root "$r" state ct
trace start "$c" --root "$r" start ct
trace exec "$c" --root "$r" exec ct /bin/true
trace ps "$c" --root "$r" ps ct
trace list "$c" --root "$r" list
trace pause "$c" --root "$r" pause ct
trace resume "$c" --root "$r" resume ct
trace update "$c" --root "$r" update --memory 300000000 --pids-limit 200 ct
trace events "$c" --root "$r" events --stats ct
trace kill "$c" --root "$r" kill ct KILL
for _ in $(seq 100); do "$c" --root "$r" state ct | grep -q '"stopped"' && break; sleep 0.05; done
trace delete "$c" --root "$r" delete ct
trace run "$c" --root "$r" run -b "$b" rt
"$c" --root "$r" create -b "$s" ct2 </dev/null
trace delete-force "$c" --root "$r" delete -f ct2
trace features "$c" features
trace spec sh -c "cd $work && '$c' spec"

# Priority of the verbs: the ones every container start and every poll of containerd/podman run first.
order=(version state create start kill delete run exec ps list delete-force pause resume update events features spec)
files=()
for v in "${order[@]}"; do files+=("$(ls "$work"/verb.*."$v")"); done
# The C library's functions (carte is linked statically) are named by the archive member that holds them
# (Debian's libm.a is a linker script naming libm-2.36.a).
libdir=$(dirname "$(cc -print-file-name=libc.a)")
nm -A --defined-only "$libdir/libc.a" "$libdir"/libm-*.a "$(cc -print-file-name=libgcc.a)" >"$work/c-symbols" 2>/dev/null || true
python3 - "$work/names" "$work/c-symbols" "$out" "${files[@]}" <<'PY'
import collections, re, sys
names = open(sys.argv[1]).read().split()
libc = {}
for line in open(sys.argv[2]):
    m = re.match(r"^.*/(lib[^/:]+\.a):([^:]+):[0-9a-f]+ [TtWw] (\S+)$", line)
    if m:
        libc.setdefault(m.group(3), f"{m.group(1)}:{m.group(2)}")
out, files = sys.argv[3], sys.argv[4:]
# Rust's legacy mangling ends in a hash (of the crate and the instance). A function with one instance is
# named without it, so the script holds as the code changes; the instances of a generic function differ
# only by it, and only some of them run (one serde `deserialize` per type), so those keep it: one that
# changes is placed with the cold code, which costs memory, never correctness.
local_copy = re.compile(r"\.(llvm\.)?\d+$")
legacy_hash = re.compile(r"17h[0-9a-f]{16}E\*?$")


def patterns(name):
    """The name with LTO's local-copy number as a wildcard (LTO numbers the copies it makes, `.917`,
    `.llvm.5170…`, anew at each build), and that without the instance hash too."""
    base = local_copy.sub("*", name)
    return base, legacy_hash.sub("17h*", base)


instances = collections.Counter(patterns(n)[1] for n in names)
lines, seen = [], set()
for f in files:
    for i in open(f).read().split():
        name = names[int(i)]
        if not re.fullmatch(r"[\w.$]+", name):
            continue  # a PLT stub of the static binary's IFUNCs (`*ABS*+0x…@plt`): no section of its own
        if name in libc:
            line = f"*{libc[name]}(.text .text.*)"
        else:
            base, wild = patterns(name)
            s = wild if instances[wild] == 1 else base
            # LLVM puts a function it knows to be cold (`#[cold]`: the growth of a Vec) in .text.unlikely.
            line = f"*(.text.{s} .text.unlikely.{s})"
        if line not in seen:
            seen.add(line)
            lines.append(line)
with open(out, "w") as o:
    o.write("/* Generated by bench/layout.sh (`make layout`): the functions carte's verbs run, in the order they\n"
            "   first run them, placed before the rest of the code. See bench/layout.sh for why. */\n")
    o.write("SECTIONS {\n  .text.hot : {\n")
    # The entry point: _start is in the .text of the C runtime's rcrt1.o, not in a section named after it;
    # so is frame_dummy, which every start runs (from .init_array), in crtbegin's. carte_entry (runtime/src/sys/
    # entry.rs) runs before _start, in a section of its own.
    o.write("    *(.text.carte_entry)\n")
    o.write("    *crt1.o(.text .text.*)\n")
    o.write("    *crtbegin*.o(.text .text.*)\n")
    for line in lines:
        o.write(f"    {line}\n")
    o.write("  }\n}\nINSERT BEFORE .text;\n")
print(f"layout: {len(lines)} entries for the functions that ran, of {len(names)}, into {out}")
PY
