//! Sets the shared library's soname at link time: `libtollgate.so.N`, N being
//! `TOLLGATE_ABI_VERSION` (src/types.rs, the one place it is written), so a program
//! linked against one ABI is never run against another. The Makefile installs the
//! cdylib under that name (`libtollgate.so.N.VERSION`, with the `libtollgate.so.N` and
//! `libtollgate.so` links); the build itself names it `libtollgate_ffi.so`, as cargo
//! names a library after its crate.

use std::env;
use std::fs;
use std::path::Path;

fn main() {
    let types =
        Path::new(&env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("src/types.rs");
    println!("cargo:rerun-if-changed=src/types.rs");
    println!("cargo:rerun-if-changed=build.rs");
    let source = fs::read_to_string(&types).expect("src/types.rs");
    let abi: u32 = source
        .lines()
        .find_map(|l| l.strip_prefix("pub const TOLLGATE_ABI_VERSION: u32 = "))
        .and_then(|rest| rest.strip_suffix(';'))
        .and_then(|n| n.parse().ok())
        .expect("src/types.rs defines `pub const TOLLGATE_ABI_VERSION: u32 = N;`");
    let family = env::var("CARGO_CFG_TARGET_FAMILY").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "macos" || os == "ios" {
        // Mach-O's equivalent of the soname.
        println!("cargo:rustc-cdylib-link-arg=-Wl,-install_name,@rpath/libtollgate.{abi}.dylib");
    } else if family.split(',').any(|f| f == "unix") {
        // ELF: Linux, the BSDs, illumos.
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libtollgate.so.{abi}");
    }
}
