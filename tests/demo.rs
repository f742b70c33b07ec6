//! `serin demo`, the README's first command, run as a user would (stdout not a terminal, so
//! plain lines): both rollouts end as expected, exit code 0, and the output shows them.

use std::process::Command;

#[test]
fn the_demo_promotes_v2_and_rolls_back_v3() {
    let out = Command::new(env!("CARGO_BIN_EXE_serin"))
        .arg("demo")
        .output()
        .expect("serin demo runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("SIMULATED traffic source"), "{text}");
    assert!(text.contains("✔ VERDICT v2 (healthy): promoted"), "{text}");
    assert!(
        text.contains("✘ VERDICT v3 (15% errors): rolled back"),
        "{text}"
    );
    // The view shows the weight bar, the checks against their bounds, hooks and decisions.
    assert!(
        text.contains("primary  60% [████░░░░░░] canary  40%"),
        "{text}"
    );
    assert!(
        text.contains("error-rate") && text.contains("(<= 5) FAIL"),
        "{text}"
    );
    assert!(
        text.contains("hooks: ") && text.contains("smoke-test×"),
        "{text}"
    );
    assert!(text.contains("decision Progressing"), "{text}");
}
