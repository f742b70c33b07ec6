//! The transcripts' check-path syntax: dotted keys, `[N]` (negative from the end), `[*]`,
//! `["key.with.dots"]`, `[field=value]` (dotted field), and a trailing `|unordered`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(i64),
    All,
    Select(String, String),
}

fn parse(path: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    let mut chars = path.chars().peekable();
    let mut key = String::new();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if !key.is_empty() {
                    segs.push(Seg::Key(std::mem::take(&mut key)));
                }
            }
            '[' => {
                if !key.is_empty() {
                    segs.push(Seg::Key(std::mem::take(&mut key)));
                }
                let mut inner = String::new();
                let mut depth = 1;
                for c in chars.by_ref() {
                    match c {
                        '[' => depth += 1,
                        ']' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    inner.push(c);
                }
                segs.push(if inner == "*" {
                    Seg::All
                } else if let Ok(n) = inner.parse::<i64>() {
                    Seg::Index(n)
                } else if inner.starts_with('"') {
                    Seg::Key(inner.trim_matches('"').to_string())
                } else if let Some((f, v)) = inner.split_once('=') {
                    Seg::Select(f.to_string(), v.to_string())
                } else {
                    Seg::Key(inner)
                });
            }
            _ => key.push(c),
        }
    }
    if !key.is_empty() {
        segs.push(Seg::Key(key));
    }
    segs
}

fn dotted<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |cur, k| cur.get(k))
}

fn resolve_segs(v: &Value, segs: &[Seg]) -> Option<Value> {
    let Some((first, rest)) = segs.split_first() else {
        return Some(v.clone());
    };
    match first {
        Seg::Key(k) => resolve_segs(v.get(k)?, rest),
        Seg::Index(i) => {
            let a = v.as_array()?;
            let idx = if *i < 0 { a.len() as i64 + i } else { *i };
            resolve_segs(a.get(usize::try_from(idx).ok()?)?, rest)
        }
        Seg::All => Some(Value::Array(
            v.as_array()?
                .iter()
                .map(|x| resolve_segs(x, rest).unwrap_or(Value::Null))
                .collect(),
        )),
        Seg::Select(f, want) => {
            let item = v
                .as_array()?
                .iter()
                .find(|x| dotted(x, f).and_then(Value::as_str) == Some(want.as_str()))?;
            resolve_segs(item, rest)
        }
    }
}

/// Resolves a check path against a response `{status, body, headers}`; None when absent.
pub fn resolve(response: &Value, path: &str) -> (Option<Value>, bool) {
    let (path, unordered) = match path.strip_suffix("|unordered") {
        Some(p) => (p, true),
        None => (path, false),
    };
    (resolve_segs(response, &parse(path)), unordered)
}

/// Compares two resolved values, as a multiset when `unordered`.
pub fn same(a: &Option<Value>, b: &Option<Value>, unordered: bool) -> bool {
    match (a, b, unordered) {
        (Some(Value::Array(x)), Some(Value::Array(y)), true) => {
            let mut x: Vec<String> = x.iter().map(|v| v.to_string()).collect();
            let mut y: Vec<String> = y.iter().map(|v| v.to_string()).collect();
            x.sort();
            y.sort();
            x == y
        }
        _ => a == b,
    }
}
