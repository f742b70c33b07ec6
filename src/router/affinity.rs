//! Session affinity for the weighted routers (pure): while a canary takes part of the traffic,
//! responses from the canary set the canary cookie and requests carrying it stay on the canary
//! (and, with `primaryCookieName`, requests carrying the primary cookie stay on the primary).
//! Once a rollout ends, the primary's responses expire the retired cookie. The cookies
//! themselves are minted by the decision core into the status.

use crate::analysis::Routes;
use crate::api::{Canary, SameSite, SessionAffinity};

/// The cookies in play for one set of routes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sticky {
    /// `name=value` that pins clients to the canary (while it takes part of the traffic).
    pub canary: Option<String>,
    /// `name=value` that pins clients to the primary.
    pub primary: Option<String>,
    /// A retired canary cookie the primary's responses expire.
    pub expire: Option<String>,
}

/// What session affinity asks of a route with these weights; None without session affinity.
pub fn sticky(canary: &Canary, routes: Routes) -> Option<(&SessionAffinity, Sticky)> {
    let sa = canary.spec.analysis.session_affinity.as_ref()?;
    let st = canary.status.clone().unwrap_or_default();
    let split = routes.canary > 0 && routes.canary < 100 && !routes.ab_match;
    let s = Sticky {
        canary: st.session_affinity_cookie.clone().filter(|_| split),
        primary: st.primary_session_affinity_cookie.clone().filter(|_| split),
        expire: st
            .previous_session_affinity_cookie
            .clone()
            .filter(|_| st.session_affinity_cookie.is_none()),
    };
    Some((sa, s))
}

/// The `Set-Cookie` value for `cookie` (`name=value`) with the configured attributes.
pub fn set_cookie(sa: &SessionAffinity, cookie: &str, max_age: i64) -> String {
    let mut v = format!("{cookie}; Max-Age={max_age}");
    if let Some(p) = &sa.path {
        v.push_str(&format!("; Path={p}"));
    }
    if let Some(d) = &sa.domain {
        v.push_str(&format!("; Domain={d}"));
    }
    if sa.secure == Some(true) {
        v.push_str("; Secure");
    }
    if sa.http_only == Some(true) {
        v.push_str("; HttpOnly");
    }
    if let Some(s) = sa.same_site {
        let s = match s {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        };
        v.push_str(&format!("; SameSite={s}"));
    }
    if sa.partitioned == Some(true) {
        v.push_str("; Partitioned");
    }
    v
}

/// The regular expression a `Cookie` header carrying `cookie` matches.
pub fn cookie_regex(cookie: &str) -> String {
    format!(".*{}.*", regex::escape(cookie))
}

/// Whether a header condition (name, regex) is one of the sticky rules this module writes.
pub fn is_sticky_match(canary: &Canary, name: &str, value: &str) -> bool {
    let st = canary.status.clone().unwrap_or_default();
    name.eq_ignore_ascii_case("cookie")
        && [
            st.session_affinity_cookie,
            st.primary_session_affinity_cookie,
        ]
        .into_iter()
        .flatten()
        .any(|c| value == cookie_regex(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_cookie_carries_every_attribute() {
        let sa: SessionAffinity = serde_json::from_value(
            serde_json::json!({"cookieName": "canary", "path": "/", "domain": "example.com",
            "secure": true, "httpOnly": true, "sameSite": "Lax", "partitioned": true}),
        )
        .unwrap();
        assert_eq!(
            set_cookie(&sa, "canary=abc", 600),
            "canary=abc; Max-Age=600; Path=/; Domain=example.com; Secure; HttpOnly; SameSite=Lax; Partitioned"
        );
        assert_eq!(cookie_regex("c=a.b"), ".*c=a\\.b.*");
    }
}
