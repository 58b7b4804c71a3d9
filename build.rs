//! Link settings for the `gatehouse` binary.
//!
//! On x86_64 GNU/Linux the binary's relative relocations are packed (`-z pack-relative-relocs`,
//! DT_RELR): a position-independent executable carries one 24-byte `.rela.dyn` entry for every
//! pointer in its read-only data (vtables, string tables, static slices), about 420 KB here;
//! packed, they take a few KB. The binary stays PIE with full RELRO (ASLR unchanged); it then
//! needs glibc 2.36 or newer (Debian 12, Ubuntu 22.10): the .deb's `depends` in Cargo.toml
//! states it, as dpkg-shlibdeps does not see it. `GATEHOUSE_LINK_RELR=0` builds without it,
//! for an older glibc. Other targets (the Raspberry Pi cross builds link with the cross
//! toolchain's GNU ld) are left as they are.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=GATEHOUSE_LINK_RELR");
    let target = std::env::var("TARGET").unwrap_or_default();
    let wanted = !matches!(std::env::var("GATEHOUSE_LINK_RELR").as_deref(), Ok("0"));
    if wanted && target == "x86_64-unknown-linux-gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
