//! `make build` links carte with `-T runtime/layout.ld` (the order of its functions; bench/layout.sh).
//! Cargo does not see files named only in linker arguments: this makes a new layout relink carte.
fn main() {
    println!("cargo:rerun-if-changed=layout.ld");
}
