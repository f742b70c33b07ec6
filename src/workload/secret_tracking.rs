//! Where Secrets are tracked (`serin controller --secret-namespaces`): in every namespace the
//! controller watches (the default), only in named namespaces, or nowhere. Where they are not
//! tracked, Serin never watches, reads or copies a Secret for config tracking: the primary uses a
//! target's Secrets by their own names and a Secret change is not a new revision. ConfigMaps are
//! tracked either way. Pure: must not import kube or tokio.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::api::core::v1::PodSpec;

use super::{ConfigRef, referenced_configs};

/// The flag's value for "wherever the controller watches".
pub const WATCHED: &str = "*";
/// The flag's value for "nowhere".
pub const OFF: &str = "none";

/// Where the Secrets that targets reference are tracked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SecretTracking {
    /// In every namespace the controller watches (`*`).
    #[default]
    Watched,
    /// Only in these namespaces (one metadata watch each, never a cluster-wide one).
    Namespaces(BTreeSet<String>),
    /// Nowhere (`none`): no Secret watch, no Secret reads, no `-primary` Secret copies.
    Off,
}

impl SecretTracking {
    /// Parses the flag: `*`, `none`, or comma-separated namespace names.
    pub fn parse(value: &str) -> Result<SecretTracking, String> {
        let value = value.trim();
        match value {
            WATCHED => return Ok(SecretTracking::Watched),
            OFF => return Ok(SecretTracking::Off),
            "" => {
                return Err(format!(
                    "is empty: give `{WATCHED}`, `{OFF}` or namespace names"
                ));
            }
            _ => {}
        }
        let mut names = BTreeSet::new();
        for name in value.split(',').map(str::trim) {
            if name.is_empty() {
                return Err("has an empty namespace name (a stray comma?)".into());
            }
            if name == WATCHED || name == OFF {
                return Err(format!("`{name}` cannot be combined with namespace names"));
            }
            if !is_namespace_name(name) {
                return Err(format!(
                    "`{name}` is not a namespace name (lowercase letters, digits and '-', at most 63)"
                ));
            }
            names.insert(name.to_string());
        }
        Ok(SecretTracking::Namespaces(names))
    }

    /// Whether Secrets referenced from namespace `ns` are tracked.
    pub fn tracks(&self, ns: &str) -> bool {
        match self {
            SecretTracking::Watched => true,
            SecretTracking::Namespaces(names) => names.contains(ns),
            SecretTracking::Off => false,
        }
    }

    /// Whether a reference from namespace `ns` is tracked (ConfigMaps always are).
    pub fn tracks_ref(&self, ns: &str, r: &ConfigRef) -> bool {
        matches!(r, ConfigRef::ConfigMap(_)) || self.tracks(ns)
    }

    /// The ConfigMaps and Secrets of a pod spec in namespace `ns` that are tracked: checksummed,
    /// copied to `-primary` and renamed in the primary.
    pub fn tracked_refs(&self, ns: &str, pod: &PodSpec) -> Vec<ConfigRef> {
        let mut refs = referenced_configs(pod);
        refs.retain(|r| self.tracks_ref(ns, r));
        refs
    }

    /// The names of the Secrets a pod spec in namespace `ns` references that are not tracked.
    pub fn untracked_secrets(&self, ns: &str, pod: &PodSpec) -> Vec<String> {
        referenced_configs(pod)
            .into_iter()
            .filter(|r| !self.tracks_ref(ns, r))
            .map(|r| r.name().to_string())
            .collect()
    }

    /// The named namespaces that a controller limited to `watched` (None: all) never sees.
    pub fn unwatched<'a>(&'a self, watched: Option<&str>) -> Vec<&'a str> {
        match (self, watched) {
            (SecretTracking::Namespaces(names), Some(ns)) => names
                .iter()
                .map(String::as_str)
                .filter(|n| *n != ns)
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl std::str::FromStr for SecretTracking {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SecretTracking::parse(s)
    }
}

/// The flag's text for this value (what `parse` reads back).
impl fmt::Display for SecretTracking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretTracking::Watched => f.write_str(WATCHED),
            SecretTracking::Off => f.write_str(OFF),
            SecretTracking::Namespaces(names) => {
                f.write_str(&names.iter().cloned().collect::<Vec<_>>().join(","))
            }
        }
    }
}

/// An RFC 1123 label, as namespace names are.
fn is_namespace_name(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| alnum(c) || c == '-')
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms_and_prints_them_back() {
        assert_eq!(SecretTracking::parse("*"), Ok(SecretTracking::Watched));
        assert_eq!(SecretTracking::parse("none"), Ok(SecretTracking::Off));
        let named = SecretTracking::parse("shop, apps").unwrap();
        assert_eq!(
            named,
            SecretTracking::Namespaces(["apps".to_string(), "shop".to_string()].into())
        );
        for t in [SecretTracking::Watched, SecretTracking::Off, named] {
            assert_eq!(SecretTracking::parse(&t.to_string()), Ok(t));
        }
    }

    #[test]
    fn a_bad_value_is_one_clear_sentence() {
        for (bad, says) in [
            ("", "is empty"),
            ("apps,", "empty namespace name"),
            ("Apps", "`Apps` is not a namespace name"),
            ("apps,none", "`none` cannot be combined"),
            ("*,apps", "`*` cannot be combined"),
            ("-x", "`-x` is not a namespace name"),
        ] {
            let err = SecretTracking::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
        assert!(SecretTracking::parse(&"a".repeat(64)).is_err());
    }

    #[test]
    fn configmaps_are_tracked_whatever_the_secrets_do() {
        let cm = ConfigRef::ConfigMap("cm".into());
        let secret = ConfigRef::Secret("s".into());
        let named = SecretTracking::parse("apps").unwrap();
        for t in [&SecretTracking::Watched, &SecretTracking::Off, &named] {
            assert!(t.tracks_ref("shop", &cm));
        }
        assert!(SecretTracking::Watched.tracks_ref("shop", &secret));
        assert!(!SecretTracking::Off.tracks_ref("apps", &secret));
        assert!(named.tracks_ref("apps", &secret));
        assert!(!named.tracks_ref("shop", &secret));
    }

    #[test]
    fn untracked_secrets_are_left_out_of_a_pod_specs_references() {
        let pod: PodSpec =
            serde_json::from_value(serde_json::json!({"containers": [{"name": "app",
            "envFrom": [{"configMapRef": {"name": "cm"}}, {"secretRef": {"name": "token"}}]}]}))
            .unwrap();
        let keys = |t: &SecretTracking| -> Vec<String> {
            t.tracked_refs("apps", &pod)
                .iter()
                .map(ConfigRef::key)
                .collect()
        };
        assert_eq!(
            keys(&SecretTracking::Watched),
            ["configmap/cm", "secret/token"]
        );
        assert_eq!(keys(&SecretTracking::Off), ["configmap/cm"]);
        assert_eq!(
            keys(&SecretTracking::parse("shop").unwrap()),
            ["configmap/cm"]
        );
    }

    #[test]
    fn named_namespaces_outside_the_watched_one_are_reported() {
        let named = SecretTracking::parse("apps,shop").unwrap();
        assert_eq!(named.unwatched(Some("apps")), ["shop"]);
        assert!(named.unwatched(None).is_empty());
        assert!(SecretTracking::Off.unwatched(Some("apps")).is_empty());
    }
}
