//! The `web` provider (Serin's addition, for users without Prometheus): an HTTP GET or POST to
//! the template's address answering JSON; the template's query is a JSONPath (`$.data.rate`,
//! `$.items[0].value`, `$['p99']`) picking a number or numeric string. A missing or null value is
//! `NoData` (so is NaN). At most 1 MiB of an answer is read. A 5xx or 429 answer is `Unavailable`,
//! another non-2xx a query error; credentials go per request on the shared client.

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::{HttpSettings, MetricError, finite};

/// Largest answer read, in bytes.
pub const MAX_BODY: usize = 1 << 20;

/// One JSON endpoint.
pub struct WebProvider {
    client: reqwest::Client,
    headers: HeaderMap,
    http: HttpSettings,
    url: reqwest::Url,
    body: Option<String>,
}

impl WebProvider {
    /// GET `address`, or POST `body` (JSON) to it when a body is given.
    pub fn new(
        address: &str,
        body: Option<String>,
        http: HttpSettings,
    ) -> Result<WebProvider, MetricError> {
        let url = reqwest::Url::parse(address)
            .map_err(|e| MetricError::Config(format!("address '{address}' is not a URL: {e}")))?;
        Ok(WebProvider {
            client: http.client()?,
            headers: http.headers()?,
            http,
            url,
            body,
        })
    }

    async fn fetch(&self) -> Result<Value, MetricError> {
        let req = match &self.body {
            Some(b) => self
                .client
                .post(self.url.clone())
                .header("content-type", "application/json")
                .body(b.clone()),
            None => self.client.get(self.url.clone()),
        };
        let resp = req
            .timeout(self.http.timeout)
            .headers(self.headers.clone())
            .send()
            .await
            .map_err(|e| self.http.classify(&e))?;
        let status = resp.status();
        let bytes = self.http.read(resp, MAX_BODY).await?;
        if let Some(busy) = self.http.unavailable(status, &bytes) {
            return Err(busy);
        }
        if !status.is_success() {
            return Err(MetricError::Query(self.http.status_line(status, &bytes)));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| MetricError::Answer(format!("the answer is not JSON: {e}")))
    }

    /// Fetches the document and picks the value at `path`.
    pub async fn query(&self, path: &str) -> Result<f64, MetricError> {
        let doc = self.fetch().await?;
        pick(&doc, path)
    }

    /// The endpoint answers with JSON.
    pub async fn is_online(&self) -> Result<(), MetricError> {
        self.fetch().await.map(|_| ())
    }
}

#[derive(Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn parse_path(path: &str) -> Result<Vec<Step>, MetricError> {
    let bad = |why: &str| MetricError::Config(format!("JSONPath '{path}': {why}"));
    let mut rest = path.trim().strip_prefix('$').unwrap_or(path.trim());
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return Err(bad("empty key"));
            }
            steps.push(Step::Key(r[..end].to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(|| bad("unclosed '['"))?;
            let inner = r[..end].trim();
            let quoted = inner
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
            match quoted {
                Some(k) => steps.push(Step::Key(k.to_string())),
                None => steps.push(Step::Index(
                    inner
                        .parse()
                        .map_err(|_| bad("an index must be a number"))?,
                )),
            }
            rest = &r[end + 1..];
        } else {
            return Err(bad("expected '.' or '['"));
        }
    }
    Ok(steps)
}

/// The number at `path` in `doc`.
pub fn pick(doc: &Value, path: &str) -> Result<f64, MetricError> {
    let mut cur = doc;
    for step in parse_path(path)? {
        let next = match step {
            Step::Key(k) => cur.get(&k),
            Step::Index(i) => cur.get(i),
        };
        match next {
            Some(v) => cur = v,
            None => return Err(MetricError::NoData),
        }
    }
    match cur {
        Value::Null => Err(MetricError::NoData),
        Value::Number(n) => finite(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(v) => finite(v),
            Err(_) => Err(MetricError::Answer(format!(
                "'{s}' at {path} is not a number"
            ))),
        },
        Value::Array(a) if a.is_empty() => Err(MetricError::NoData),
        other => Err(MetricError::Answer(format!(
            "{path} is {}, not a number",
            match other {
                Value::Bool(_) => "a boolean",
                Value::Array(_) => "an array",
                _ => "an object",
            }
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn paths_pick_numbers_and_numeric_strings() {
        let doc = json!({"data": {"rate": 99.5, "items": [{"v": "12.25"}], "p 99": 3}});
        assert_eq!(pick(&doc, "$.data.rate"), Ok(99.5));
        assert_eq!(pick(&doc, "$.data.items[0].v"), Ok(12.25));
        assert_eq!(pick(&doc, "$.data['p 99']"), Ok(3.0));
        assert_eq!(pick(&doc, ".data.rate"), Ok(99.5));
    }

    #[test]
    fn missing_and_null_are_no_data_and_others_are_errors() {
        let doc = json!({"a": null, "b": [], "c": true, "d": "x"});
        assert_eq!(pick(&doc, "$.a"), Err(MetricError::NoData));
        assert_eq!(pick(&doc, "$.nope.x"), Err(MetricError::NoData));
        assert_eq!(pick(&doc, "$.b"), Err(MetricError::NoData));
        assert_eq!(
            pick(&doc, "$.c"),
            Err(MetricError::Answer("$.c is a boolean, not a number".into()))
        );
        assert!(matches!(pick(&doc, "$.d"), Err(MetricError::Answer(_))));
        assert!(matches!(pick(&doc, "$.a[x]"), Err(MetricError::Config(_))));
        assert!(matches!(pick(&doc, "$..a"), Err(MetricError::Config(_))));
    }

    proptest! {
        #[test]
        fn path_parsing_never_panics(p in "\\PC{0,40}") {
            let _ = pick(&json!({"a": [1, {"b": 2}]}), &p);
        }
    }
}
