//! Every example passes `serin check`; every invalid example fails with exactly the errors its
//! `# expect:` lines name; `serin check` never panics on mutated examples.

use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::prelude::*;
use serde_json::Value;
use serin::manifest;

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn serin(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_serin"))
        .args(args)
        .output()
        .expect("serin runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn every_example_is_valid() {
    let files = yaml_files("examples");
    assert!(
        files.len() >= 6,
        "expected at least 6 examples, found {files:?}"
    );
    for file in files {
        let (code, out) = serin(&["check", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{}:\n{out}", file.display());
        assert!(out.lines().all(|l| l.ends_with(": ok")), "{out}");
    }
}

#[test]
fn every_invalid_example_fails_with_its_expected_errors() {
    let files = yaml_files("examples/invalid");
    assert!(files.len() >= 3);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{} has no `# expect:` line",
            file.display()
        );
        let (code, out) = serin(&["check", file.to_str().unwrap()]);
        assert_eq!(code, 1, "{out}");
        let got: Vec<&str> = out
            .lines()
            .filter_map(|l| l.split_once(": Canary test/podinfo: ").map(|(_, e)| e))
            .collect();
        assert_eq!(got, expected, "{}", file.display());
    }
}

#[test]
fn check_reports_unreadable_files_and_bad_yaml_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: serin.io/v1beta1\nkind: Canary\nspec: [unclosed\n",
    )
    .unwrap();
    let (code, out) = serin(&["check", bad.to_str().unwrap(), "/no/such/file.yaml"]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains("bad.yaml: invalid YAML: "), "{out}");
    assert!(
        lines[1].starts_with("/no/such/file.yaml: cannot read: "),
        "{out}"
    );
}

#[test]
fn crds_command_prints_the_committed_crds() {
    let (code, out) = serin(&["crds"]);
    assert_eq!(code, 0);
    let committed: String = [
        "serin.io_canaries.yaml",
        "serin.io_metrictemplates.yaml",
        "serin.io_alertproviders.yaml",
    ]
    .iter()
    .map(|f| {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("crds").join(f)).unwrap()
    })
    .collect();
    assert_eq!(out, committed);
}

#[test]
fn controller_without_any_kubeconfig_fails_clearly() {
    let out = Command::new(env!("CARGO_BIN_EXE_serin"))
        .args(["controller"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env("HOME", "/nonexistent")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: cannot read kubeconfig /nonexistent/kubeconfig"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

fn example_texts() -> Vec<String> {
    let mut all: Vec<PathBuf> = yaml_files("examples");
    all.extend(yaml_files("examples/invalid"));
    all.iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

fn mutate_value(v: &mut Value, path: &[usize], replacement: &Value) {
    let Some((first, rest)) = path.split_first() else {
        *v = replacement.clone();
        return;
    };
    match v {
        Value::Object(map) if !map.is_empty() => {
            let key = map.keys().nth(first % map.len()).cloned().unwrap();
            mutate_value(map.get_mut(&key).unwrap(), rest, replacement);
        }
        Value::Array(items) if !items.is_empty() => {
            let n = items.len();
            mutate_value(&mut items[first % n], rest, replacement);
        }
        _ => *v = replacement.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn check_never_panics_on_text_mutations(idx in 0usize..64, at in 0usize..4096, cut in 0usize..40, junk in "\\PC{0,12}") {
        let texts = example_texts();
        let text = &texts[idx % texts.len()];
        let mut at = at % (text.len() + 1);
        while !text.is_char_boundary(at) { at -= 1; }
        let mut end = (at + cut).min(text.len());
        while !text.is_char_boundary(end) { end -= 1; }
        let mutated = format!("{}{}{}", &text[..at], junk, &text[end.max(at)..]);
        let _ = manifest::check_text(&mutated, "kubernetes");
    }

    #[test]
    fn check_never_panics_on_value_mutations(
        idx in 0usize..64,
        path in prop::collection::vec(0usize..16, 1..6),
        replacement in prop_oneof![
            Just(Value::Null), Just(Value::from(-1)), Just(Value::from(1e300)), Just(Value::from("")),
            Just(Value::from("1x")), Just(Value::Bool(true)), Just(serde_json::json!([])), Just(serde_json::json!({"x": 1})),
        ],
    ) {
        let texts = example_texts();
        let docs = manifest::parse_documents(&texts[idx % texts.len()]).unwrap();
        for mut doc in docs {
            mutate_value(&mut doc, &path, &replacement);
            let report = manifest::check_document(&doc);
            for e in &report.errors {
                prop_assert!(!e.contains('\n'), "multi-line error: {e}");
            }
        }
    }
}
