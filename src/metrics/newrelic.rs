//! The New Relic provider: NRQL, with Flagger's `SINCE <window> seconds ago` appended, over
//! NerdGraph (`POST /graphql`, header `Api-Key`) when the Secret has `newrelic_api_key`, else
//! over the Insights query API (`GET /v1/accounts/<id>/query?nrql=`, header `X-Query-Key`) with
//! `newrelic_query_key` — the keys Flagger reads, with `newrelic_account_id` for both. The value is
//! the only number of the only result row: no row (or a null) is `NoData`, several rows (a
//! `FACET`) an error naming the count. GraphQL errors and Insights' `error` are query errors;
//! a 5xx or 429 answer is `Unavailable`. Must not import the controller.

use serde_json::{Value, json};

use super::{Auth, HttpSettings, MetricError, TemplateSource, finite, parse_url, secret_key};

/// Largest answer read, in bytes.
const MAX_BODY: usize = 4 << 20;
/// NerdGraph's address.
pub const NERDGRAPH_ADDRESS: &str = "https://api.newrelic.com/graphql";
/// The Insights query API's address.
pub const INSIGHTS_ADDRESS: &str = "https://insights-api.newrelic.com";

/// Which New Relic API answers.
enum Api {
    /// NerdGraph (GraphQL) at this URL.
    NerdGraph(reqwest::Url),
    /// The Insights query API: the account's query URL.
    Insights(reqwest::Url),
}

/// One New Relic account.
pub struct NewRelicProvider {
    client: reqwest::Client,
    http: HttpSettings,
    api: Api,
    account: String,
    since_secs: u64,
}

impl NewRelicProvider {
    /// A provider for the account of the template's Secret.
    pub fn new(source: TemplateSource<'_>) -> Result<NewRelicProvider, MetricError> {
        let secret = source.secret;
        let account = secret_key(secret, "newrelic_account_id", "newrelic")?;
        if account.parse::<u64>().is_err() {
            return Err(MetricError::Config(
                "newrelic_account_id must be a number (the account id)".into(),
            ));
        }
        let mut http = source.http;
        let api = if let Some(key) = secret.get("newrelic_api_key") {
            http.auth = Auth::Headers([("Api-Key".to_string(), key.clone())].into());
            let address = source.address.as_deref().unwrap_or(NERDGRAPH_ADDRESS);
            Api::NerdGraph(parse_url(address)?)
        } else {
            let key = secret_key(secret, "newrelic_query_key", "newrelic").map_err(|_| {
                MetricError::Config(
                    "the newrelic provider needs 'newrelic_api_key' (NerdGraph) or 'newrelic_query_key' (Insights) in the template's secretRef".into(),
                )
            })?;
            http.auth = Auth::Headers([("X-Query-Key".to_string(), key)].into());
            let base = source.address.as_deref().unwrap_or(INSIGHTS_ADDRESS);
            let url = format!("{}/v1/accounts/{account}/query", base.trim_end_matches('/'));
            Api::Insights(parse_url(&url)?)
        };
        Ok(NewRelicProvider {
            client: http.client()?,
            http,
            api,
            account,
            since_secs: source.window.as_secs().max(1),
        })
    }

    /// Runs `nrql` over the window ending now.
    pub async fn query(&self, nrql: &str) -> Result<f64, MetricError> {
        let nrql = format!("{} SINCE {} seconds ago", nrql.trim(), self.since_secs);
        let results = match &self.api {
            Api::NerdGraph(url) => {
                let body = self.graphql(url, &nrql).await?;
                body.pointer("/data/actor/account/nrql/results")
                    .cloned()
                    .ok_or_else(|| {
                        MetricError::Answer("no data.actor.account.nrql.results".into())
                    })?
            }
            Api::Insights(url) => {
                let request = self.client.get(url.clone()).query(&[("nrql", &nrql)]);
                let body = self.call(request).await?;
                body["results"].clone()
            }
        };
        value_of(&results)
    }

    /// The key is accepted: NerdGraph answers `actor { user { name } }`, Insights a trivial NRQL.
    pub async fn is_online(&self) -> Result<(), MetricError> {
        match &self.api {
            Api::NerdGraph(url) => {
                let request = self
                    .client
                    .post(url.clone())
                    .json(&json!({"query": "{ actor { user { name } } }"}));
                self.call(request).await.map(|_| ())
            }
            Api::Insights(url) => {
                let request = self
                    .client
                    .get(url.clone())
                    .query(&[("nrql", "SELECT count(*) FROM Metric SINCE 1 minute ago")]);
                self.call(request).await.map(|_| ())
            }
        }
    }

    /// The NRQL query as NerdGraph takes it: the account id in the document, the NRQL as a
    /// variable (so that no quoting of the user's text is needed).
    async fn graphql(&self, url: &reqwest::Url, nrql: &str) -> Result<Value, MetricError> {
        let document = format!(
            "query ($nrql: Nrql!) {{ actor {{ account(id: {}) {{ nrql(query: $nrql) {{ results }} }} }} }}",
            self.account
        );
        let request = self
            .client
            .post(url.clone())
            .json(&json!({"query": document, "variables": {"nrql": nrql}}));
        self.call(request).await
    }

    /// Sends a request and returns its JSON; New Relic's own words (GraphQL `errors`, Insights'
    /// `error`) make the error when it gave them.
    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, MetricError> {
        let request = request.header("accept", "application/json");
        let (status, bytes) = self.http.exchange(request, MAX_BODY).await?;
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        let words = body.as_ref().and_then(errors_of);
        self.http
            .judge(status, words.as_deref().map_or(&bytes[..], str::as_bytes))?;
        if let Some(words) = words {
            return Err(MetricError::Query(self.http.scrub(&words)));
        }
        body.ok_or_else(|| MetricError::Answer("the answer is not JSON".into()))
    }
}

/// The error messages of an answer: GraphQL's `errors[].message` or Insights' `error`.
fn errors_of(body: &Value) -> Option<String> {
    if let Some(e) = body["error"].as_str() {
        return Some(e.to_string());
    }
    let messages: Vec<&str> = body["errors"]
        .as_array()?
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    (!messages.is_empty()).then(|| messages.join("; "))
}

/// The only value of the only result row. A row holds one entry per selected expression
/// (`{"result": 1.5}`, `{"count": 3}`); with several, the one named `result` is the answer.
pub fn value_of(results: &Value) -> Result<f64, MetricError> {
    let rows = results
        .as_array()
        .ok_or_else(|| MetricError::Answer("results is not a list".into()))?;
    let row = match rows.as_slice() {
        [] => return Err(MetricError::NoData),
        [one] => one,
        many => return Err(MetricError::ManySeries(many.len())),
    };
    let fields = row
        .as_object()
        .ok_or_else(|| MetricError::Answer("a result row is not an object".into()))?;
    let value = match fields.len() {
        1 => fields.values().next(),
        _ => fields.get("result"),
    };
    match value {
        Some(Value::Null) => Err(MetricError::NoData),
        Some(Value::Number(n)) => finite(n.as_f64().unwrap_or(f64::NAN)),
        Some(other) => Err(MetricError::Answer(format!(
            "the result is {other}, not a number"
        ))),
        None => Err(MetricError::Answer(format!(
            "a row with {} values and none named 'result': select one expression",
            fields.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_only_value_of_the_only_row() {
        assert_eq!(value_of(&json!([{"result": 1.5}])), Ok(1.5));
        assert_eq!(value_of(&json!([{"count": 3}])), Ok(3.0));
        assert_eq!(value_of(&json!([{"count": 3, "result": 0.5}])), Ok(0.5));
        assert_eq!(value_of(&json!([])), Err(MetricError::NoData));
        assert_eq!(
            value_of(&json!([{"result": null}])),
            Err(MetricError::NoData)
        );
        assert_eq!(
            value_of(&json!([{"result": 1}, {"result": 2}])),
            Err(MetricError::ManySeries(2))
        );
        assert!(matches!(
            value_of(&json!([{"a": 1, "b": 2}])),
            Err(MetricError::Answer(_))
        ));
    }

    #[test]
    fn errors_are_new_relics_own_words() {
        assert_eq!(
            errors_of(&json!({"errors": [{"message": "NRQL Syntax Error"}]})).as_deref(),
            Some("NRQL Syntax Error")
        );
        assert_eq!(
            errors_of(&json!({"error": "Invalid query key"})).as_deref(),
            Some("Invalid query key")
        );
        assert_eq!(errors_of(&json!({"data": {}})), None);
    }
}
