//! The committed header `include/tollgate.h` is exactly what cbindgen generates from the
//! code. Run with `TOLLGATE_BLESS=1` to rewrite it after changing the C API.

use std::path::Path;

#[test]
fn header_matches_the_code() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let path = dir.join("include/tollgate.h");
    if std::env::var_os("TOLLGATE_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write the header");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    if committed != generated {
        let committed = String::from_utf8_lossy(&committed);
        let generated = String::from_utf8_lossy(&generated);
        let first = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "include/tollgate.h is out of date (first difference at line {}):\n  committed: {:?}\n  generated: {:?}\n\
             rerun with TOLLGATE_BLESS=1 to rewrite it, and commit it",
            first + 1,
            committed.lines().nth(first),
            generated.lines().nth(first)
        );
    }
}

#[test]
fn header_version_defines_match_the_crate() {
    let header =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/tollgate.h"))
            .expect("the committed header");
    for (name, value) in [
        ("TOLLGATE_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("TOLLGATE_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("TOLLGATE_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        let line = format!("#define {name} {value}");
        assert!(header.contains(&line), "the header lacks `{line}`");
    }
}
