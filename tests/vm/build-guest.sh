#!/usr/bin/env bash
# Assembles the cgroup v2 test guest (issue 15) from this host and the build: an initramfs holding Debian's
# busybox-static, the release `carte`, `/usr/sbin/runc`, the chosen integration test executables, their
# shared libraries and the guest's init (tests/vm/guest-init.sh). No kernel module is needed: the guest has no
# disk and no network, and its serial ports, devtmpfs, tmpfs and cgroup2 are built into Debian's kernel.
#   tests/vm/build-guest.sh OUT TEST...    → OUT/initrd.img (uncompressed cpio), OUT/tests.txt
# With CARTE_VM_SYSTEMD=KVER the guest boots systemd instead (tests/vm/run.sh --systemd): the initramfs also
# carries kernel KVER's modules for a virtio 9p share and overlayfs, and the init stacks a tmpfs over this
# host's root (shared read-only by qemu) and hands it to the host's own /lib/systemd/systemd.
# TEST are integration test files of tests/tests/ (without .rs); their executables come from cargo's JSON
# messages, so the ones `cargo test --release` already built are reused, not rebuilt.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
out=${1:?usage: build-guest.sh OUT TEST...}
shift
[ $# -gt 0 ] || { echo "build-guest.sh: no test named" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$out/root
rm -rf "$stage"
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,lib64,proc,sys,dev,tmp,run,etc,root,tests,newroot}

# busybox: the guest's shell and tools, and the /bin/busybox every test bundle copies (tests/src/bundle.rs).
cp /bin/busybox "$stage/bin/busybox"
/bin/busybox --list-full | while read -r applet; do
    [ -e "$stage/$applet" ] || ln -s /bin/busybox "$stage/$applet"
done

# The runtimes, at the paths the tests name them by (CARTE_BIN).
cp target/release/carte "$stage/usr/sbin/carte"
cp /usr/sbin/runc "$stage/usr/sbin/runc"

# The rootless tests (tests/tests/rootless.rs): util-linux's setpriv, shadow's useradd/userdel (login.defs
# gives each new user /etc/subuid and /etc/subgid ranges) and uidmap's setuid newuidmap/newgidmap. They
# replace busybox's applets of the same path (removed first: cp would write through the symlink).
rootless_tools=(/usr/bin/setpriv /usr/sbin/useradd /usr/sbin/userdel /usr/bin/newuidmap /usr/bin/newgidmap)
for tool in "${rootless_tools[@]}"; do
    [ -x "$tool" ] || continue
    rm -f "$stage$tool"
    cp -p "$tool" "$stage$tool"
done

# The test executables: cargo reports each one it built (or found fresh) as a compiler-artifact line.
targets=()
for t in "$@"; do targets+=(--test "$t"); done
cargo test --release -q -p carte-tests --no-run --message-format=json "${targets[@]}" >"$out/cargo.json"
: >"$out/tests.txt"
for t in "$@"; do
    exe=$(jq -r --arg t "$t" 'select(.reason == "compiler-artifact" and .target.name == $t
        and .profile.test and .executable != null) | .executable' "$out/cargo.json" | tail -n 1)
    [ -n "$exe" ] && [ -x "$exe" ] || { echo "build-guest.sh: no test executable for $t" >&2; exit 1; }
    cp "$exe" "$stage/tests/$t"
    echo "$t" >>"$out/tests.txt"
done
cp "$out/tests.txt" "$stage/tests/list"
# Files whose scenarios each run with carte and with runc themselves (`per_runtime!`: the engine tests,
# rootless_podman): the guest runs them once, not once per runtime pass, where CARTE_BIN=runc would make their
# "carte" half a second runc that looks for carte's state (tests/runc-parity.sh skips them on the host alike).
: >"$stage/tests/both"
for t in "$@"; do
    if grep -q '^per_runtime!' "tests/tests/$t.rs"; then echo "$t" >>"$stage/tests/both"; fi
done

# CARTE_VM_EXTRA: more host executables, at their own paths (bench/vm.sh brings crun and hyperfine).
# shellcheck disable=SC2206  # a space-separated list on purpose
extra=(${CARTE_VM_EXTRA:-})
for tool in "${extra[@]}"; do
    mkdir -p "$stage$(dirname "$tool")"
    rm -f "$stage$tool"
    cp -p "$tool" "$stage$tool"
done

# Shared libraries of every dynamic executable, at the paths the loader looks for them.
for exe in "$stage"/usr/sbin/carte "$stage"/usr/sbin/runc "$stage"/tests/* "${rootless_tools[@]/#/$stage}" \
    "${extra[@]/#/$stage}"; do
    [ -f "$exe" ] && [ -x "$exe" ] || continue
    ldd "$exe" 2>/dev/null | awk '/=> \// { print $3 } /^\t\// { print $1 }'
done | sort -u | while read -r lib; do
    mkdir -p "$stage$(dirname "$lib")"
    cp -L "$lib" "$stage$lib"
done

# The systemd guest's modules, each after its dependencies (modules.dep lists a module's dependencies with the
# deepest last, so they load in reverse). Plain .ko files: busybox's insmod loads them.
if [ -n "${CARTE_VM_SYSTEMD:-}" ]; then
    mods=/lib/modules/$CARTE_VM_SYSTEMD
    mkdir -p "$stage/modules"
    awk -F': *' -v want="virtio_pci 9pnet_virtio 9p overlay" '
      BEGIN { split(want, w, " ") }
      { name = $1; sub(/.*\//, "", name); sub(/\.ko$/, "", name); dep[name] = $2; path[name] = $1 }
      function load(m,   d, n, i) {
        if (m in done) return
        done[m] = 1
        n = split(dep[m], d, " ")
        for (i = n; i >= 1; i--) { sub(/.*\//, "", d[i]); sub(/\.ko$/, "", d[i]); load(d[i]) }
        print path[m]
      }
      END { for (i = 1; i in w; i++) if (w[i] in path) load(w[i]) }
    ' "$mods/modules.dep" | while read -r ko; do
        n=$(($(ls "$stage/modules" | wc -l) + 1))
        cp "$mods/$ko" "$stage/modules/$(printf %02d "$n")-$(basename "$ko")"
    done
    install -m 0755 tests/vm/guest-systemd.sh "$stage/tests/guest-systemd.sh"
    : >"$stage/tests/systemd"
    echo "$root" >"$stage/tests/worktree"
fi

printf 'root:x:0:0:root:/root:/bin/sh\n' >"$stage/etc/passwd"
printf 'root:x:0:\n' >"$stage/etc/group"
printf 'root:*:19000:0:99999:7:::\n' >"$stage/etc/shadow"
printf 'root:*::\n' >"$stage/etc/gshadow"
: >"$stage/etc/subuid"
: >"$stage/etc/subgid"
if [ -f /etc/login.defs ]; then cp /etc/login.defs "$stage/etc/login.defs"; fi
install -m 0755 tests/vm/guest-init.sh "$stage/init"
mknod -m 600 "$stage/dev/console" c 5 1
# What the guest runs: the runtimes in order, the test harness's flags (carte-bundle's comparison needs the
# image archives, which the guest does not carry), and an optional script run last (for debugging).
printf "%s\n" "${CARTE_VM_RUNTIMES:-carte runc}" >"$stage/tests/runtimes"
printf "%s\n" "${CARTE_VM_TEST_ARGS:---skip bundle_tool_defaults_match_spec}" >"$stage/tests/args"
[ -z "${CARTE_VM_AFTER:-}" ] || install -m 0755 "$CARTE_VM_AFTER" "$stage/tests/after.sh"
# Extra environment for the test executables (for debugging, e.g. CARTE_VM_ENV="CARTE_TEST_TRACE=1").
printf "%s\n" "${CARTE_VM_ENV:-}" >"$stage/tests/env"

# newc cpio, uncompressed: the kernel unpacks it fastest, and its ~30 MB cost nothing on disk.
(cd "$stage" && find . -mindepth 1 | cpio -o -H newc --quiet) >"$out/initrd.img"
rm -rf "$stage"
echo "vm: guest image $out/initrd.img ($(du -h "$out/initrd.img" | cut -f1)), tests: $*"
