//! HTML building blocks of the dashboard's pages: escaping (every value from a Canary, an Event
//! or a request passes through `esc` before it reaches a page) and the page frame. Pure string
//! building; must not import kube or axum.

/// Escapes text for HTML text and double- or single-quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Encodes one path segment or query value (namespaces and names are DNS labels, but a query
/// string is whatever the browser sent).
pub fn url_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The link of one Canary's page.
pub fn canary_href(ns: &str, name: &str) -> String {
    format!("/canaries/{}/{}", url_part(ns), url_part(name))
}

/// What the page header offers besides the link home.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    /// The `csrf` token for the header's forms (log out).
    pub csrf: String,
    /// Show "Log in" / "Log out": actions are on and need a bearer token (controller mode).
    pub login: bool,
    /// A bearer token cookie is set.
    pub signed_in: bool,
}

/// A whole page: `title` (plain text) and `body` (HTML, already escaped).
pub fn page(title: &str, body: &str, frame: &Frame) -> String {
    let account = if !frame.login {
        String::new()
    } else if frame.signed_in {
        format!(
            r#"<form class="logout" method="post" action="/logout"><input type="hidden" name="csrf" value="{}"><button type="submit">Log out</button></form>"#,
            esc(&frame.csrf)
        )
    } else {
        r#"<a href="/login">Log in</a>"#.to_string()
    };
    format!(
        r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{title} · Serin</title>
<link rel="stylesheet" href="/assets/dashboard.css">
<script src="/assets/dashboard.js" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top"><nav aria-label="Main"><a class="home" href="/">Serin canaries</a>{account}</nav></header>
<main id="main">
{body}
</main>
</body>
</html>
"##,
        title = esc(title),
    )
}

/// One `<dt>`/`<dd>` pair; `value` is HTML.
pub fn dl_item(term: &str, value: &str) -> String {
    format!("<dt>{}</dt><dd>{value}</dd>", esc(term))
}

/// The phase badge: `<span class="badge phase-progressing">Progressing</span>`; `id` adds the
/// live-updated id and `data-phase` of the detail page.
pub fn phase_badge(phase: &str, id: Option<&str>) -> String {
    let shown = if phase.is_empty() { "Unknown" } else { phase };
    let id = id
        .map(|i| format!(r#" id="{}" data-phase="{}""#, esc(i), esc(phase)))
        .unwrap_or_default();
    format!(
        r#"<span{id} class="badge phase-{}">{}</span>"#,
        esc(&shown.to_ascii_lowercase()),
        esc(shown)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_values_is_escaped_for_text_and_attributes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(esc("plain podinfo-1.2"), "plain podinfo-1.2");
        assert_eq!(url_part("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(canary_href("test", "podinfo"), "/canaries/test/podinfo");
    }

    #[test]
    fn the_page_frame_declares_its_language_and_escapes_the_title() {
        let p = page("<x>", "<p>body</p>", &Frame::default());
        assert!(p.contains(r#"<html lang="en">"#));
        assert!(p.contains("<title>&lt;x&gt; · Serin</title>"));
        assert!(!p.contains("Log in"));
        let p = page(
            "t",
            "",
            &Frame {
                csrf: "abc".into(),
                login: true,
                signed_in: true,
            },
        );
        assert!(p.contains(r#"name="csrf" value="abc""#));
    }
}
