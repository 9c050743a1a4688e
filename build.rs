//! Records the versions of the crypto and transport crates this build links, read from
//! Cargo.lock, so that `evospikenet audit` can check them against its minimum-version
//! table (`crypto_backends()` in the extension).

use std::path::Path;

/// The crates whose versions the audit checks.
const TRACKED: &[(&str, &str)] = &[
    ("ring", "EVOSPIKENET_VERSION_RING"),
    ("x25519-dalek", "EVOSPIKENET_VERSION_X25519_DALEK"),
    ("curve25519-dalek", "EVOSPIKENET_VERSION_CURVE25519_DALEK"),
    ("zenoh", "EVOSPIKENET_VERSION_ZENOH"),
];

fn main() {
    let lock = Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    for (name, var) in TRACKED {
        println!("cargo:rustc-env={var}={}", locked_version(&text, name));
    }
}

/// The version of `name` in a Cargo.lock (`[[package]]` blocks of `name = ` and
/// `version = ` lines); "unknown" without a lock file.
fn locked_version(lock: &str, name: &str) -> String {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            if let Some(v) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = "))
            {
                return v.trim_matches('"').to_owned();
            }
        }
    }
    "unknown".to_owned()
}
