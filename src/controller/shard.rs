//! Sharding (`--shard-selector`): a Kubernetes label selector on Canaries, so that several
//! controller Deployments each own a disjoint set of them (Flux's `sharding.fluxcd.io/key`
//! convention). The API server does the filtering (the selector goes on the Canary watch); this
//! module checks the selector's grammar at start-up, so a typo is a clear error instead of a watch
//! the API server refuses forever, matches Canaries read around the cache, and names the shard's
//! leader-election Lease. Must not import the decision core or do any I/O.

use std::collections::BTreeMap;

/// The Lease name without sharding; a shard's Lease is `serin-leader-<shard>` (see
/// [`ShardSelector::lease_name`]).
pub const LEASE_PREFIX: &str = "serin-leader";

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    /// `key=value`, `key==value`, `key in (a,b)`.
    In(String, Vec<String>),
    /// `key!=value`, `key notin (a,b)`: also matches Canaries without the key.
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
}

/// A parsed `--shard-selector` (an AND of its requirements), with its text as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSelector {
    text: String,
    requirements: Vec<Requirement>,
}

impl std::fmt::Display for ShardSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for ShardSelector {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        ShardSelector::parse(s)
    }
}

impl ShardSelector {
    /// Parses a label selector in the API server's grammar (`k=v`, `k==v`, `k!=v`,
    /// `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, comma-separated); the error is one sentence
    /// naming `--shard-selector`.
    pub fn parse(text: &str) -> Result<ShardSelector, String> {
        let fail =
            |why: String| format!("--shard-selector '{text}' is not a label selector: {why}");
        let text_trimmed = text.trim();
        if text_trimmed.is_empty() {
            return Err(fail(
                "it is empty (leave the flag out to own every Canary)".into(),
            ));
        }
        let mut requirements = Vec::new();
        for part in split_top_level(text_trimmed).map_err(&fail)? {
            requirements.push(requirement(part.trim()).map_err(&fail)?);
        }
        Ok(ShardSelector {
            text: text_trimmed.to_string(),
            requirements,
        })
    }

    /// The selector as given (for the watch's `labelSelector`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a Canary with these labels belongs to this shard.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k));
        self.requirements.iter().all(|r| match r {
            Requirement::In(k, vs) => get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }

    /// The shard's name: the value of a one-requirement `key=value` selector, `unlabelled` for
    /// `!key`, otherwise `s` and 8 hex digits of a hash of the selector (stable across builds).
    pub fn shard_name(&self) -> String {
        let named = match self.requirements.as_slice() {
            [Requirement::In(_, v)] if v.len() == 1 => dns_label(&v[0]),
            [Requirement::DoesNotExist(_)] => Some("unlabelled".to_string()),
            _ => None,
        };
        named.unwrap_or_else(|| format!("s{:08x}", fnv1a(self.text.as_bytes())))
    }

    /// The shard's leader-election Lease: `serin-leader-<shard name>`, so each shard elects its
    /// own leader (`serin-leader-a` for `sharding.fluxcd.io/key=a`, `serin-leader-unlabelled`
    /// for `!sharding.fluxcd.io/key`).
    pub fn lease_name(&self) -> String {
        format!("{LEASE_PREFIX}-{}", self.shard_name())
    }
}

/// The Lease name for an optional shard: `serin-leader` without one.
pub fn lease_name(shard: Option<&ShardSelector>) -> String {
    shard.map_or_else(|| LEASE_PREFIX.to_string(), ShardSelector::lease_name)
}

/// A label value as a DNS label (lower case, `_` and `.` as `-`), if it makes one.
fn dns_label(value: &str) -> Option<String> {
    let s: String = value
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c == '_' || c == '.' { '-' } else { c })
        .collect();
    let edges_ok = s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    (edges_ok && s.len() <= 50).then_some(s)
}

/// 32-bit FNV-1a: a stable hash, unlike std's (which may change between Rust releases).
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Splits at the commas outside parentheses.
fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err("its parentheses do not pair up".into());
        }
    }
    if depth != 0 {
        return Err("its parentheses do not pair up".into());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

/// A label name (or value when non-empty): 63 characters at most, alphanumeric at both ends,
/// `-`, `_`, `.` inside.
fn valid_name(s: &str) -> bool {
    s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// A label key: `[prefix/]name`, the prefix a DNS subdomain.
fn key(k: &str) -> Result<String, String> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && l.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
    });
    if !prefix_ok || !valid_name(name) {
        return Err(format!("\"{k}\" is not a valid label key"));
    }
    Ok(k.to_string())
}

/// A label value: empty, or a valid name.
fn value(v: &str) -> Result<String, String> {
    if v.is_empty() || valid_name(v) {
        Ok(v.to_string())
    } else {
        Err(format!("\"{v}\" is not a valid label value"))
    }
}

fn requirement(part: &str) -> Result<Requirement, String> {
    if part.is_empty() {
        return Err("it has an empty requirement (a stray comma)".into());
    }
    if let Some(k) = part.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(key(k.trim())?));
    }
    for (op, negate) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((k, v)) = part.split_once(op) {
            let (k, v) = (key(k.trim())?, value(v.trim())?);
            return Ok(if negate {
                Requirement::NotIn(k, vec![v])
            } else {
                Requirement::In(k, vec![v])
            });
        }
    }
    let mut words = part.splitn(2, char::is_whitespace);
    let k = key(words.next().unwrap_or_default())?;
    let Some(rest) = words.next().map(str::trim) else {
        return Ok(Requirement::Exists(k));
    };
    let (negate, list) = if let Some(r) = rest.strip_prefix("notin") {
        (true, r.trim())
    } else if let Some(r) = rest.strip_prefix("in") {
        (false, r.trim())
    } else {
        return Err(format!("\"{part}\" has no operator (=, ==, !=, in, notin)"));
    };
    let Some(inner) = list.strip_prefix('(').and_then(|r| r.strip_suffix(')')) else {
        return Err(format!("\"{part}\" needs its values in parentheses"));
    };
    let values = inner
        .split(',')
        .map(|v| value(v.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(if negate {
        Requirement::NotIn(k, values)
    } else {
        Requirement::In(k, values)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn flux_style_selectors_split_canaries_into_disjoint_shards() {
        let a = ShardSelector::parse("sharding.fluxcd.io/key=a").unwrap();
        let b = ShardSelector::parse("sharding.fluxcd.io/key==b").unwrap();
        let rest = ShardSelector::parse("!sharding.fluxcd.io/key").unwrap();
        for (l, owner) in [
            (labels(&[("sharding.fluxcd.io/key", "a")]), 0),
            (labels(&[("sharding.fluxcd.io/key", "b"), ("app", "x")]), 1),
            (labels(&[("app", "x")]), 2),
        ] {
            let owners: Vec<bool> = [&a, &b, &rest]
                .iter()
                .map(|s| s.matches(Some(&l)))
                .collect();
            assert_eq!(owners.iter().filter(|m| **m).count(), 1, "{l:?}");
            assert!(owners[owner], "{l:?}");
        }
        assert!(
            rest.matches(None),
            "no labels at all is the unlabelled shard"
        );
        let set = ShardSelector::parse("tier in (web, db), env notin (dev), team").unwrap();
        assert!(set.matches(Some(&labels(&[("tier", "db"), ("team", "x")]))));
        assert!(!set.matches(Some(&labels(&[
            ("tier", "db"),
            ("team", "x"),
            ("env", "dev")
        ]))));
        assert!(!set.matches(Some(&labels(&[("tier", "db")]))));
    }

    #[test]
    fn malformed_selectors_are_one_sentence_naming_the_flag() {
        for (bad, says) in [
            ("", "empty"),
            ("  ", "empty"),
            ("a=b,", "stray comma"),
            ("sharding.fluxcd.io/key=a b", "not a valid label value"),
            ("-bad=x", "not a valid label key"),
            ("Upper.Case/key=x", "not a valid label key"),
            ("key in a,b", "parentheses"),
            ("key in (a,b", "parentheses"),
            ("key) in (a", "parentheses"),
            ("key is a", "no operator"),
            ("!", "not a valid label key"),
            ("k=v=w", "not a valid label value"),
        ] {
            let e = ShardSelector::parse(bad).unwrap_err();
            assert!(e.starts_with("--shard-selector '"), "{bad}: {e}");
            assert!(e.contains(says), "{bad}: {e}");
            assert!(
                !e.contains('\n') && e.matches(": ").count() == 1,
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn each_shard_elects_on_its_own_lease() {
        let lease = |s: &str| ShardSelector::parse(s).unwrap().lease_name();
        assert_eq!(lease_name(None), "serin-leader");
        assert_eq!(
            lease("sharding.fluxcd.io/key=shard1"),
            "serin-leader-shard1"
        );
        assert_eq!(
            lease("sharding.fluxcd.io/key=Team_A"),
            "serin-leader-team-a"
        );
        assert_eq!(lease("!sharding.fluxcd.io/key"), "serin-leader-unlabelled");
        let other = lease("tier in (web,db)");
        assert!(
            other.starts_with("serin-leader-s") && other.len() == 22,
            "{other}"
        );
        assert_ne!(other, lease("tier in (web)"));
        assert_eq!(other, lease("tier in (web,db)"), "stable");
    }
}
