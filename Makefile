# Carte — the two commands a newcomer needs are `make demo` and `make test`.
CARGO   ?= cargo
REL     := target/release
HOST    := $(shell rustc -vV | sed -n 's/^host: //p')
PROBE   := target/$(HOST)/release/carte-probe
IMAGES  := target/images
DEMO    := target/demo

.PHONY: all build probe images demo test conformance lint bench clean

all: build

build:
	$(CARGO) build --release --workspace --bins

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

conformance: build probe
	$(REL)/carte-conformance --runtime $(REL)/carte $(foreach r,$(RUNTIMES),--runtime $(r))

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Side by side with runc and crun (and youki when installed); see bench/README.md.
bench: build
	bench/runtime.sh
	bench/bundle.sh

clean:
	$(CARGO) clean
