//! A well-formedness check of the dashboard's pages (tests only): every element closed and
//! properly nested (void elements excepted), attributes quoted, entities complete, ids unique,
//! every visible form control labelled, and `lang` on `<html>`. Stricter than HTML5 parsing —
//! our own pages should pass it — and without a parser dependency.

use std::collections::{BTreeMap, BTreeSet};

const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr",
];

/// One start tag: its name and attributes.
#[derive(Debug)]
struct Tag {
    name: String,
    attrs: BTreeMap<String, String>,
}

fn parse_attrs(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut attrs = BTreeMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let name = rest[..end].to_ascii_lowercase();
        if name.is_empty() {
            return Err(format!("attribute without a name in `{text}`"));
        }
        rest = rest[end..].trim_start();
        let value = if let Some(r) = rest.strip_prefix('=') {
            let r = r.trim_start();
            let quote = r.chars().next().filter(|q| *q == '"' || *q == '\'');
            let Some(q) = quote else {
                return Err(format!("unquoted value of {name} in `{text}`"));
            };
            let close = r[1..]
                .find(q)
                .ok_or_else(|| format!("unclosed value of {name}"))?;
            let v = r[1..1 + close].to_string();
            rest = r[close + 2..].trim_start();
            v
        } else {
            String::new()
        };
        check_entities(&value)?;
        if attrs.insert(name.clone(), value).is_some() {
            return Err(format!("attribute {name} twice in `{text}`"));
        }
    }
    Ok(attrs)
}

fn check_entities(text: &str) -> Result<(), String> {
    for (i, _) in text.match_indices('&') {
        let tail = &text[i + 1..];
        let end = tail.find(';').filter(|e| *e <= 10);
        let ok = end.is_some_and(|e| {
            let ent = &tail[..e];
            ent.strip_prefix('#')
                .map(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
                .unwrap_or(!ent.is_empty() && ent.chars().all(|c| c.is_ascii_alphanumeric()))
        });
        if !ok {
            return Err(format!("bare & in `{}`", &text[i..text.len().min(i + 20)]));
        }
    }
    Ok(())
}

/// Checks a whole page; the first problem found.
pub fn check(page: &str) -> Result<(), String> {
    let mut stack: Vec<String> = Vec::new();
    let mut ids = BTreeSet::new();
    let mut labels = BTreeSet::new();
    let mut controls: Vec<Tag> = Vec::new();
    let mut html_lang = false;
    let mut rest = page;
    while let Some(start) = rest.find('<') {
        check_entities(&rest[..start])?;
        rest = &rest[start..];
        if let Some(r) = rest.strip_prefix("<!--") {
            let end = r.find("-->").ok_or("unclosed comment")?;
            rest = &r[end + 3..];
            continue;
        }
        let end = rest.find('>').ok_or("unclosed tag")?;
        let inner = &rest[1..end];
        rest = &rest[end + 1..];
        if inner.starts_with('!') {
            if !inner.eq_ignore_ascii_case("!doctype html") {
                return Err(format!("unexpected declaration <{inner}>"));
            }
            continue;
        }
        if let Some(name) = inner.strip_prefix('/') {
            let name = name.trim().to_ascii_lowercase();
            match stack.pop() {
                Some(open) if open == name => continue,
                Some(open) => return Err(format!("</{name}> closes <{open}>")),
                None => return Err(format!("</{name}> without an open element")),
            }
        }
        let self_closing = inner.ends_with('/');
        let inner = inner.trim_end_matches('/');
        let name_end = inner.find(char::is_whitespace).unwrap_or(inner.len());
        let name = inner[..name_end].to_ascii_lowercase();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!("bad tag <{inner}>"));
        }
        let tag = Tag {
            name: name.clone(),
            attrs: parse_attrs(&inner[name_end..])?,
        };
        if let Some(id) = tag.attrs.get("id")
            && !ids.insert(id.clone())
        {
            return Err(format!("id {id:?} twice"));
        }
        if name == "html" {
            html_lang = tag.attrs.get("lang").is_some_and(|l| !l.is_empty());
        }
        if name == "label" {
            labels.extend(tag.attrs.get("for").cloned());
        }
        if matches!(name.as_str(), "input" | "select" | "textarea") {
            controls.push(tag);
        }
        if name == "script" || name == "style" {
            let close = format!("</{name}>");
            let end = rest
                .find(&close)
                .ok_or_else(|| format!("unclosed <{name}>"))?;
            rest = &rest[end + close.len()..];
            continue;
        }
        if !VOID.contains(&name.as_str()) && !self_closing {
            stack.push(name);
        }
    }
    check_entities(rest)?;
    if let Some(open) = stack.last() {
        return Err(format!("<{open}> is never closed"));
    }
    if !html_lang {
        return Err("<html> has no lang".into());
    }
    for c in &controls {
        let kind = c.attrs.get("type").map(String::as_str).unwrap_or("text");
        if matches!(kind, "hidden" | "submit" | "button") || c.attrs.contains_key("aria-label") {
            continue;
        }
        let labelled = c.attrs.get("id").is_some_and(|id| labels.contains(id));
        if !labelled {
            return Err(format!(
                "<{} name={:?}> has no label",
                c.name,
                c.attrs.get("name")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    fn wrap(body: &str) -> String {
        format!("<!DOCTYPE html><html lang=\"en\"><body>{body}</body></html>")
    }

    #[test]
    fn the_checker_catches_what_it_is_for() {
        assert_eq!(check(&wrap("<p>ok &amp; fine<br></p>")), Ok(()));
        assert!(
            check(&wrap("<p><b>x</p></b>"))
                .unwrap_err()
                .contains("closes")
        );
        assert_eq!(check(&wrap("<div>")).unwrap_err(), "</body> closes <div>");
        assert!(
            check(&(wrap("") + "<p>"))
                .unwrap_err()
                .contains("never closed")
        );
        assert!(
            check(&wrap(r#"<p id="a"></p><p id="a"></p>"#))
                .unwrap_err()
                .contains("twice")
        );
        assert!(
            check(&wrap(r#"<input name="q">"#))
                .unwrap_err()
                .contains("no label")
        );
        assert_eq!(
            check(&wrap(r#"<label for="q">Q</label><input id="q" name="q">"#)),
            Ok(())
        );
        assert!(check(&wrap("a & b")).unwrap_err().contains("bare &"));
        assert!(
            check(&wrap("<p class=x></p>"))
                .unwrap_err()
                .contains("unquoted")
        );
        assert!(
            check("<!DOCTYPE html><html><body></body></html>")
                .unwrap_err()
                .contains("lang")
        );
    }
}
