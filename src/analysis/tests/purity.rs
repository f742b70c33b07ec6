//! The core stays pure: no I/O crates, no clock reads, anywhere under src/analysis.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .expect("src/analysis readable")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn analysis_imports_no_io_crates_and_reads_no_clock() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/analysis");
    let crates = ["kube", "k8s_openapi", "tokio", "reqwest", "hyper", "axum"];
    // Built from parts so this file does not match its own patterns.
    let clocks = ["Utc", "SystemTime", "Instant"].map(|c| format!("{c}::{}", "now"));
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    assert!(files.len() > 5, "scan found too few files: {files:?}");
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for c in crates {
                let used = code.contains(&format!("{c}::"))
                    || code.trim_start().starts_with(&format!("use {c}"));
                let word_start = code.find(&format!("{c}::")).is_none_or(|i| {
                    i == 0 || !code[..i].ends_with(|ch: char| ch.is_alphanumeric() || ch == '_')
                });
                if used && word_start {
                    found.push(format!("{}:{}: uses {c}", file.display(), n + 1));
                }
            }
            for clock in &clocks {
                if code.contains(clock.as_str()) {
                    found.push(format!(
                        "{}:{}: reads the clock ({clock})",
                        file.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "src/analysis must stay pure (DESIGN.md section 3):\n{}",
        found.join("\n")
    );
}
