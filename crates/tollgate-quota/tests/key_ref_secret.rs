//! A fleet's key references agree: every process given the same secret
//! ([`KeyRef::set_secret`]) gives a key the same reference. One test in its own binary:
//! the secret is per process, chosen once.

use std::process::Command;

use tollgate_quota::{KeyRef, KeyRefSecretError};

const CHILD_ENV: &str = "TOLLGATE_KEYREF_CHILD";
const SECRET: &[u8; 32] = b"fleet secret: 32 bytes, random.!";
const KEY: &str = "sk_live_0123456789";

#[test]
fn processes_with_the_same_secret_agree() {
    if std::env::var_os(CHILD_ENV).is_some() {
        KeyRef::set_secret(SECRET).unwrap();
        println!("REF {}", KeyRef::of(KEY));
        return;
    }
    assert_eq!(
        KeyRef::set_secret(b"short"),
        Err(KeyRefSecretError::TooShort { len: 5 })
    );
    KeyRef::set_secret(SECRET).unwrap();
    KeyRef::set_secret(SECRET).expect("the same secret again is fine");
    let other = KeyRef::set_secret(b"another secret of 32 bytes......").unwrap_err();
    assert_eq!(other, KeyRefSecretError::AlreadyChosen);
    assert!(!other.to_string().contains("32 bytes"), "{other}");
    let here = KeyRef::of(KEY).to_string();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "processes_with_the_same_secret_agree",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let there = stdout
        .lines()
        .find_map(|l| l.strip_prefix("REF "))
        .unwrap_or_else(|| panic!("no reference in {stdout:?}"));
    assert_eq!(here, there, "another process with the same secret");
    assert_ne!(here, KeyRef::of("sk_live_0123456780").to_string());
}
