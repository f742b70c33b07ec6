//! `serin demo`, the README's first command, run as a user would (stdout not a terminal, so
//! plain lines): both rollouts end as expected, exit code 0, and the output shows them, with the
//! statistical judge's line (per-pod latency against the primary) passing v2 and failing v3.

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
    judge_lines(&text);
}

/// The judge's line under the decisions: medians, effect, p-value, samples and verdict. v2
/// answers like v1 (every judgement passes); v3 is 30 % slower on every pod (a judgement fails).
fn judge_lines(text: &str) {
    let (v2, v3) = text
        .split_once("── rollout v3")
        .unwrap_or_else(|| panic!("no v3 rollout: {text}"));
    let judged = |part: &str| -> Vec<String> {
        part.lines()
            .filter(|l| l.trim_start().starts_with("judge latency: canary median "))
            .map(String::from)
            .collect()
    };
    let (v2, v3) = (judged(v2), judged(v3));
    assert!(!v2.is_empty(), "v2 is judged: {text}");
    for line in &v2 {
        let numbers = line.contains(" vs primary ")
            && (line.contains(", effect +") || line.contains(", effect -"))
            && line.contains(", p = ")
            && line.contains(" samples)");
        assert!(numbers, "medians, effect, p and samples: {line}");
        assert!(line.ends_with("→ ok"), "v2 passes the judge: {line}");
    }
    assert!(
        v3.iter().any(|l| l.ends_with("→ FAIL")),
        "v3 fails the judge: {v3:?}\n{text}"
    );
    assert!(
        text.contains(", latency +") && text.contains("vs primary p="),
        "the status line shows the judged metric: {text}"
    );
}
