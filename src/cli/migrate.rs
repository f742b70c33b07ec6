//! `serin migrate` and `serin completions`: file handling around the pure `crate::migrate`, and
//! clap's completion scripts.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::CommandFactory;

/// Converts every file; the YAML goes to `out`, notes to `err`. Exit 1 when a file cannot be read
/// or parsed, or something could not be carried over.
pub fn migrate(
    files: &[PathBuf],
    mesh_provider: &str,
    out: &mut impl Write,
    err: &mut impl Write,
) -> i32 {
    let mut code = 0;
    let mut streams = Vec::new();
    for file in files {
        let label = file.display().to_string();
        let text = if label == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map(|_| s)
        } else {
            std::fs::read_to_string(file)
        };
        let text = match text {
            Ok(t) => t,
            Err(e) => {
                let _ = writeln!(err, "error: {label}: {e}");
                code = 1;
                continue;
            }
        };
        match crate::migrate::migrate(&text, mesh_provider) {
            Ok(m) => {
                for note in &m.notes {
                    let _ = writeln!(err, "{label}: {note}");
                }
                if !m.notes.is_empty() {
                    code = 1;
                }
                let _ = writeln!(err, "{label}: {} Flagger object(s) converted", m.converted);
                streams.push(m.yaml);
            }
            Err(e) => {
                let _ = writeln!(err, "error: {label}: {e}");
                code = 1;
            }
        }
    }
    let _ = out.write_all(streams.join("---\n").as_bytes());
    code
}

/// Prints the completion script of `shell`.
pub fn completions(shell: clap_complete::Shell) -> i32 {
    let mut command = super::Cli::command();
    clap_complete::generate(shell, &mut command, "serin", &mut std::io::stdout());
    0
}
