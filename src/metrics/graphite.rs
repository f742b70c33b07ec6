//! The Graphite provider: the render API (`GET <address>/render?<query>&format=json`), the query
//! being render parameters as Flagger writes them (`target=summarize(...)`, optionally
//! `&from=-10min`), with runs of whitespace collapsed as Flagger does so that a template may
//! spread a target over lines. Credentials are basic auth (`username`/`password`) or a bearer
//! `token`. The value is the last non-null point of the only series: `[]` or only nulls is
//! `NoData`, several series an error naming the count. Graphite's own text makes a rejected
//! query's error; a 5xx or 429 answer is `Unavailable`. Must not import the controller.

use serde_json::Value;

use super::{HttpSettings, MetricError, TemplateSource, finite, parse_url};

/// Largest answer read, in bytes.
const MAX_BODY: usize = 8 << 20;

/// One graphite-web.
pub struct GraphiteProvider {
    client: reqwest::Client,
    http: HttpSettings,
    render: reqwest::Url,
}

impl GraphiteProvider {
    /// A provider for the graphite-web at the template's address (credentials as the caller set
    /// them: basic auth from `username`/`password`).
    pub fn new(source: TemplateSource<'_>) -> Result<GraphiteProvider, MetricError> {
        let address = source.address.as_deref().ok_or_else(|| {
            MetricError::Config("the graphite provider needs the address of graphite-web".into())
        })?;
        let mut render = parse_url(address)?;
        let prefix = render.path().trim_end_matches('/').to_string();
        render.set_path(&format!("{prefix}/render"));
        Ok(GraphiteProvider {
            client: source.http.client()?,
            http: source.http,
            render,
        })
    }

    /// Runs the render parameters `query` (`target=...&from=...`).
    pub async fn query(&self, query: &str) -> Result<f64, MetricError> {
        let params = render_params(query)?;
        let request = self.client.get(self.render.clone()).query(&params);
        let (status, bytes) = self.http.exchange(request, MAX_BODY).await?;
        self.http.judge(status, &bytes)?;
        let body: Value = serde_json::from_slice(&bytes)
            .map_err(|e| MetricError::Answer(format!("the answer is not JSON: {e}")))?;
        value_of(&body)
    }

    /// graphite-web renders a target (an unknown metric renders as `[]`).
    pub async fn is_online(&self) -> Result<(), MetricError> {
        match self.query("target=serin.online.check&from=-1min").await {
            Ok(_) | Err(MetricError::NoData) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The query's parameters (`format` is always json), decoded as a query string is — `+` and
/// `%XX` as Flagger's Go `url.Query` reads them — after Flagger's whitespace collapse.
fn render_params(query: &str) -> Result<Vec<(String, String)>, MetricError> {
    let flat = query.split_whitespace().collect::<Vec<_>>().join(" ");
    let flat = flat.trim_start_matches('?');
    let mut params: Vec<(String, String)> = url::form_urlencoded::parse(flat.as_bytes())
        .filter(|(k, _)| k != "format")
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    if !params.iter().any(|(k, v)| k == "target" && !v.is_empty()) {
        return Err(MetricError::Config(
            "a graphite query must hold render parameters with a target: target=<expression>"
                .into(),
        ));
    }
    params.push(("format".into(), "json".into()));
    Ok(params)
}

/// A point's value: a number, a numeric string, or null (no value in that interval).
fn point(p: &Value) -> Option<f64> {
    match p.get(0)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The last non-null point of the only series.
pub fn value_of(body: &Value) -> Result<f64, MetricError> {
    let series = body
        .as_array()
        .ok_or_else(|| MetricError::Answer("the answer is not a list of series".into()))?;
    let one = match series.as_slice() {
        [] => return Err(MetricError::NoData),
        [one] => one,
        many => return Err(MetricError::ManySeries(many.len())),
    };
    let last = one["datapoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(point)
        .next_back();
    match last {
        Some(v) => finite(v),
        None => Err(MetricError::NoData),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whitespace_collapses_and_format_is_json() {
        let q = "target=summarize(\n  asPercent(a.b, c.d),\n  1min,\n  'avg'\n)&from=-10min";
        assert_eq!(
            render_params(q).unwrap(),
            vec![
                (
                    "target".to_string(),
                    "summarize( asPercent(a.b, c.d), 1min, 'avg' )".to_string()
                ),
                ("from".to_string(), "-10min".to_string()),
                ("format".to_string(), "json".to_string()),
            ]
        );
        assert!(matches!(
            render_params("a.b.c"),
            Err(MetricError::Config(_))
        ));
    }

    #[test]
    fn the_last_non_null_point_of_the_only_series() {
        let one = json!([{"target": "t", "datapoints": [[1.0, 10], ["2.5", 20], [null, 30]]}]);
        assert_eq!(value_of(&one), Ok(2.5));
        assert_eq!(value_of(&json!([])), Err(MetricError::NoData));
        assert_eq!(
            value_of(&json!([{"datapoints": [[null, 1]]}])),
            Err(MetricError::NoData)
        );
        assert_eq!(
            value_of(&json!([{"datapoints": []}, {"datapoints": []}])),
            Err(MetricError::ManySeries(2))
        );
    }
}
