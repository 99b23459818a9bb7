# Carte — the two commands a newcomer needs are `make demo` and `make test`.
CARGO   ?= cargo
REL     := target/release
HOST    := $(shell rustc -vV | sed -n 's/^host: //p')
PROBE   := target/$(HOST)/release/carte-probe
IMAGES  := target/images
DEMO    := target/demo

.PHONY: all build layout probe images demo test test-vm conformance lint bench clean

all: build

# carte is linked static-pie: no dynamic loader, relocations of three libraries or symbol lookups at
# each of its starts (one per verb; see runtime/src/selfexe/ for the re-execution it avoids); bench/README.md has
# the numbers. Its 10,640 relative relocations are packed (DT_RELR, binutils 2.38 and glibc 2.36): the
# start-up reads 4 KB of them instead of 256 KB, 320 KB less resident. Only carte's final link gets
# +crt-static (`cargo rustc`): proc-macros and build scripts cannot be static. A plain `cargo build`
# still gives a working, dynamic carte. runtime/layout.ld puts the functions the verbs run together at
# the start of the code (`make layout` writes it; bench/layout.sh says why): the kernel maps code 64 KiB
# around each fault, so scattered functions cost faults and resident memory. On x86-64 the process
# enters at carte_entry, which pre-faults the pages those relocations write in one madvise before
# glibc's _start (runtime/src/sys/entry.rs).
CARTE_LINK := -C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs \
	-C link-arg=-Wl,-T,$(CURDIR)/runtime/layout.ld
ifneq ($(filter x86_64-%,$(HOST)),)
CARTE_LINK += -C link-arg=-Wl,-e,carte_entry
endif
build:
	$(CARGO) build --release --workspace --bins --exclude carte
	$(CARGO) rustc --release -p carte --bin carte -- $(CARTE_LINK)

# Regenerate runtime/layout.ld from an unstripped build of the same code (uprobes on every function:
# root, tracefs; about five minutes, most of it the kernel removing the probes). The symbols are kept
# with rustc's -C strip, not the profile's: cargo hashes the profile into the crate's metadata, and that
# into the name of every generic function instantiated in carte.
layout:
	CARGO_TARGET_DIR=target/layout $(CARGO) rustc --release -p carte --bin carte -- $(CARTE_LINK) -C strip=none
	bench/layout.sh target/layout/release/carte runtime/layout.ld

# The conformance suite's in-container probe must be static (--target keeps +crt-static off build scripts).
probe:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release -p carte-conformance --bin carte-probe --target $(HOST)

images:
	tests/setup.sh
	tests/images.sh $(IMAGES)

# Set up and run a container from an image tarball: busybox image → bundle → carte run.
demo: build images
	rm -rf $(DEMO)
	$(REL)/carte-bundle unpack -q $(IMAGES)/busybox-oci.tar $(DEMO)/bundle \
	    --args sh -c 'echo "hello from $$(hostname), pid $$$$ in its own namespace, as uid $$(id -u)"; ls /'
	$(REL)/carte --root $(DEMO)/state run --bundle $(DEMO)/bundle demo-$$$$

# Everything: unit, integration and conformance tests; installs what it needs.
test:
	tests/run.sh

# The cgroup v2 host (issue 15): Debian's kernel booted with cgroup_no_v1=all under qemu (TCG), the lifecycle,
# cgroup, v2, verbs and rootless tests run there against carte and runc; `make test` runs it too. Pick test files with
# CARTE_VM_TESTS="cgroup_v2 verbs"; logs in target/vm/. Then the same kernel with systemd as PID 1 (the systemd
# cgroup driver, containerd with SystemdCgroup, rootless podman --memory through delegation; logs in
# target/vm-systemd/). See tests/vm/run.sh.
test-vm: build
	tests/setup.sh
	tests/vm/run.sh
	tests/vm/run.sh --systemd

conformance: build probe
	$(REL)/carte-conformance --runtime $(REL)/carte $(foreach r,$(RUNTIMES),--runtime $(r))

# setup.sh first: the tests crate's CRI client (k8s-cri) runs protoc in its build script.
lint:
	tests/setup.sh
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Side by side with runc and crun (and youki when installed), on this host and in the cgroup v2 guest;
# the tables land in bench/README.md.
bench: build
	BENCH_README=bench/README.md bench/runtime.sh
	BENCH_README=bench/README.md bench/vm.sh
	bench/bundle.sh

clean:
	$(CARGO) clean

# Reliability under faults at full counts (issue 9): 1,000-lifecycle soak, SIGKILL sweeps of create/run -d/
# start/delete, 10 race rounds, every corrupt-state case, 2,000 garbage configs; prints the figures.
.PHONY: soak fuzz
soak: build
	CARTE_SOAK=1 $(CARGO) test --release -p carte-tests --test reliability -- --nocapture --test-threads 1

# libFuzzer targets (cargo-fuzz on the nightly toolchain; `cargo install cargo-fuzz`), FUZZ_SECONDS each.
# New corpus entries go to */fuzz/corpus/ (not committed); crash inputs to */fuzz/artifacts/. A fixed crash input
# is committed in */fuzz/seeds/<target>/, which every run replays first.
FUZZ_SECONDS ?= 60
FUZZ_TOOLCHAIN ?= +nightly
fuzz:
	set -e; cd runtime/fuzz && for t in config seccomp mount_options; do \
	    mkdir -p corpus/$$t; \
	    cargo $(FUZZ_TOOLCHAIN) fuzz run -O $$t corpus/$$t seeds/$$t -- -max_total_time=$(FUZZ_SECONDS); \
	done
	set -e; cd bundle-tools/fuzz && mkdir -p corpus/tar_confine && \
	    cargo $(FUZZ_TOOLCHAIN) fuzz run -O tar_confine corpus/tar_confine seeds/tar_confine -- -max_total_time=$(FUZZ_SECONDS)
