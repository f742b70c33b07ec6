//! Cross-site request forgery protection for every POST of the dashboard, two checks that must
//! both pass: the form's `csrf` field is HMAC-SHA256(per-process random key, the `serin_session`
//! cookie) — another site can neither read the cookie nor compute the token — and the request's
//! Origin (or, without one, its Referer) names the host the request was sent to. Pure apart from
//! drawing the random key; must not import axum or kube.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The per-process key; a restart invalidates every outstanding token (a reload fixes it).
#[derive(Clone)]
pub struct CsrfKey([u8; 32]);

/// Why a POST was refused. The sentences are shown on the 403 page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No session cookie or no `csrf` field.
    Missing,
    /// The token is not the session's.
    Mismatch,
    /// Neither Origin nor Referer.
    NoOrigin,
    /// Origin or Referer names another site.
    CrossOrigin(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Missing => f.write_str("the form carried no CSRF token for this session; reload the page and try again"),
            Refusal::Mismatch => f.write_str("the form's CSRF token does not belong to this session; reload the page and try again"),
            Refusal::NoOrigin => f.write_str("the request named neither its Origin nor its Referer, so it cannot be told from a cross-site one"),
            Refusal::CrossOrigin(o) => write!(f, "the request came from {o}, not from this dashboard"),
        }
    }
}

/// Random bytes from the operating system's generator, hex-encoded (session ids).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // The system generator does not fail on Linux; should it, the zero-filled buffer still works
    // as a session id, while the CSRF key below refuses to start without randomness.
    let _ = aws_lc_rs::rand::fill(&mut buf);
    hex(&buf)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl CsrfKey {
    /// A fresh random key.
    pub fn random() -> Result<CsrfKey, String> {
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).map_err(|_| {
            "the system random generator failed; cannot make a CSRF key".to_string()
        })?;
        Ok(CsrfKey(key))
    }

    /// A key from fixed bytes (tests).
    pub fn from_bytes(key: [u8; 32]) -> CsrfKey {
        CsrfKey(key)
    }

    fn mac(&self, session: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(session.as_bytes());
        mac
    }

    /// The token of a session.
    pub fn token(&self, session: &str) -> String {
        hex(&self.mac(session).finalize().into_bytes())
    }

    /// Whether `token` is the session's (compared in constant time).
    pub fn verify(&self, session: Option<&str>, token: Option<&str>) -> Result<(), Refusal> {
        let (Some(session), Some(token)) = (
            session.filter(|s| !s.is_empty()),
            token.filter(|t| !t.is_empty()),
        ) else {
            return Err(Refusal::Missing);
        };
        let Some(raw) = unhex(token) else {
            return Err(Refusal::Mismatch);
        };
        self.mac(session)
            .verify_slice(&raw)
            .map_err(|_| Refusal::Mismatch)
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `host[:port]` of an Origin or Referer URL, None when it is not one (`null` included).
fn authority(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let host = u.host_str()?;
    Some(match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

/// Whether the request comes from a page of this dashboard: its Origin, or else its Referer,
/// names `host` (the Host header, which the browser sets to the address it connected to).
pub fn same_origin(
    host: Option<&str>,
    origin: Option<&str>,
    referer: Option<&str>,
) -> Result<(), Refusal> {
    let claimed = match (origin, referer) {
        (Some(o), _) => o,
        (None, Some(r)) => r,
        (None, None) => return Err(Refusal::NoOrigin),
    };
    let host = host.unwrap_or_default().to_ascii_lowercase();
    match authority(claimed) {
        Some(a) if !host.is_empty() && a.to_ascii_lowercase() == host => Ok(()),
        _ => Err(Refusal::CrossOrigin(claimed.chars().take(100).collect())),
    }
}

/// Both checks of a POST.
pub struct PostCheck<'a> {
    /// The `serin_session` cookie.
    pub session: Option<&'a str>,
    /// The form's `csrf` field.
    pub token: Option<&'a str>,
    /// Host header.
    pub host: Option<&'a str>,
    /// Origin header.
    pub origin: Option<&'a str>,
    /// Referer header.
    pub referer: Option<&'a str>,
}

impl CsrfKey {
    /// Runs both checks: origin first (it needs no secret), then the token.
    pub fn check(&self, post: &PostCheck<'_>) -> Result<(), Refusal> {
        same_origin(post.host, post.origin, post.referer)?;
        self.verify(post.session, post.token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CsrfKey {
        CsrfKey::from_bytes([7; 32])
    }

    fn post<'a>(
        token: Option<&'a str>,
        origin: Option<&'a str>,
        referer: Option<&'a str>,
    ) -> PostCheck<'a> {
        PostCheck {
            session: Some("session-1"),
            token,
            host: Some("127.0.0.1:8081"),
            origin,
            referer,
        }
    }

    #[test]
    fn a_token_of_the_session_from_the_same_origin_passes() {
        let t = key().token("session-1");
        assert_eq!(t.len(), 64);
        assert_eq!(
            key().check(&post(Some(&t), Some("http://127.0.0.1:8081"), None)),
            Ok(())
        );
    }

    #[test]
    fn a_missing_or_foreign_token_is_refused() {
        let k = key();
        assert_eq!(
            k.check(&post(None, Some("http://127.0.0.1:8081"), None)),
            Err(Refusal::Missing)
        );
        let other = k.token("session-2");
        assert_eq!(
            k.check(&post(Some(&other), Some("http://127.0.0.1:8081"), None)),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            k.check(&post(Some("zz"), Some("http://127.0.0.1:8081"), None)),
            Err(Refusal::Mismatch)
        );
        // A token made with another process's key is no good either.
        let foreign = CsrfKey::from_bytes([8; 32]).token("session-1");
        assert_eq!(
            k.check(&post(Some(&foreign), Some("http://127.0.0.1:8081"), None)),
            Err(Refusal::Mismatch)
        );
        let no_session = PostCheck {
            session: None,
            ..post(Some(&other), Some("http://127.0.0.1:8081"), None)
        };
        assert_eq!(k.check(&no_session), Err(Refusal::Missing));
    }

    #[test]
    fn another_origin_is_refused_even_with_a_valid_token() {
        let t = key().token("session-1");
        let e = key()
            .check(&post(Some(&t), Some("https://evil.example"), None))
            .unwrap_err();
        assert_eq!(e, Refusal::CrossOrigin("https://evil.example".into()));
        assert_eq!(
            e.to_string(),
            "the request came from https://evil.example, not from this dashboard"
        );
        assert!(key().check(&post(Some(&t), Some("null"), None)).is_err());
        assert!(
            key()
                .check(&post(Some(&t), Some("http://127.0.0.1:9999"), None))
                .is_err()
        );
    }

    #[test]
    fn without_an_origin_the_referer_decides_and_without_both_it_is_refused() {
        let t = key().token("session-1");
        let k = key();
        assert_eq!(
            k.check(&post(
                Some(&t),
                None,
                Some("http://127.0.0.1:8081/canaries/test/podinfo")
            )),
            Ok(())
        );
        assert!(
            k.check(&post(Some(&t), None, Some("http://other:8081/")))
                .is_err()
        );
        assert_eq!(k.check(&post(Some(&t), None, None)), Err(Refusal::NoOrigin));
    }
}
