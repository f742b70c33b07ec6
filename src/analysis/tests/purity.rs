//! The core stays pure, and clippy is what enforces it (`cargo clippy -- -D warnings` in
//! scripts/test.sh): clippy.toml lists the clock, environment, file, process and task calls and
//! the I/O client types, and src/analysis/mod.rs denies them. This test keeps that wiring from
//! being dropped unnoticed.

use std::path::Path;

#[test]
#[allow(clippy::disallowed_methods)] // reads the sources it checks, as a test may
fn clippy_denies_clock_reads_and_io_in_the_core() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let module = std::fs::read_to_string(root.join("src/analysis/mod.rs")).unwrap();
    assert!(
        module.contains("#![deny(clippy::disallowed_methods, clippy::disallowed_types)]"),
        "src/analysis/mod.rs must deny clippy's disallowed methods and types"
    );
    let config = std::fs::read_to_string(root.join("clippy.toml")).unwrap();
    for listed in [
        "chrono::Utc::now",
        "std::time::SystemTime::now",
        "std::time::Instant::now",
        "tokio::spawn",
        "kube::Client",
        "reqwest::Client",
    ] {
        assert!(
            config.contains(&format!("\"{listed}\"")),
            "clippy.toml lacks {listed}"
        );
    }
}
