//! The Google Cloud Monitoring (Stackdriver) provider for the project in the Secret's `project`
//! key (Flagger's). A query whose first word is `fetch` is MQL — Flagger's documented form —
//! and goes to `POST /v3/projects/<p>/timeSeries:query`; any other query is PromQL for the
//! project's Prometheus API (`/v1/projects/<p>/location/global/prometheus`, answered by the
//! Prometheus provider). The OAuth token comes from, in this order: the Secret's `token` (as
//! is), its `serviceAccountKey` (Flagger's key: a JSON key, exchanged for a token with a signed
//! JWT), or the GKE metadata server (Workload Identity; `GCE_METADATA_HOST` overrides its host).
//! Tokens are cached until a minute before they expire. MQL: the newest point of the only series;
//! none is `NoData`. Google's `error.message` makes a rejected query's error. Must not import the
//! controller.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::{
    Auth, HttpSettings, MetricError, PrometheusProvider, TemplateSource, finite, parse_url,
    secret_key,
};

/// Largest answer read, in bytes.
const MAX_BODY: usize = 8 << 20;
/// Cloud Monitoring's API.
pub const DEFAULT_ADDRESS: &str = "https://monitoring.googleapis.com";
/// The metadata server of GKE and GCE.
const METADATA_HOST: &str = "metadata.google.internal";
/// The scope a service-account token is asked for.
const SCOPE: &str = "https://www.googleapis.com/auth/monitoring.read";

/// Where the OAuth token comes from.
enum TokenSource {
    /// The Secret's `token`.
    Fixed(String),
    /// A service-account JSON key: its email, private key (PKCS#8 DER) and token URI.
    ServiceAccount {
        email: String,
        key: Vec<u8>,
        token_uri: String,
    },
    /// The metadata server at this host.
    Metadata(String),
}

/// One Google Cloud project.
pub struct StackdriverProvider {
    client: reqwest::Client,
    http: HttpSettings,
    base: reqwest::Url,
    project: String,
    tokens: TokenSource,
}

/// Tokens by source (service-account email or metadata host), with their expiry.
static TOKENS: Mutex<Option<HashMap<String, (String, Instant)>>> = Mutex::new(None);

fn service_account(json: &str) -> Result<TokenSource, MetricError> {
    let bad = |why: &str| MetricError::Config(format!("serviceAccountKey: {why}"));
    let key: Value = serde_json::from_str(json).map_err(|_| bad("not JSON"))?;
    let field = |name: &str| {
        key[name]
            .as_str()
            .map(String::from)
            .ok_or_else(|| bad(&format!("no {name}")))
    };
    let pem = field("private_key")?;
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    let der = STANDARD
        .decode(body.trim())
        .map_err(|_| bad("private_key is not a PEM key"))?;
    RsaKeyPair::from_pkcs8(&der).map_err(|_| bad("private_key is not an RSA PKCS#8 key"))?;
    Ok(TokenSource::ServiceAccount {
        email: field("client_email")?,
        key: der,
        token_uri: field("token_uri")
            .unwrap_or_else(|_| "https://oauth2.googleapis.com/token".into()),
    })
}

impl StackdriverProvider {
    /// A provider for the Secret's project (the template's address overrides Google's API).
    pub fn new(source: TemplateSource<'_>) -> Result<StackdriverProvider, MetricError> {
        let project = secret_key(source.secret, "project", "stackdriver")?;
        let tokens = if let Some(t) = source.secret.get("token") {
            TokenSource::Fixed(t.clone())
        } else if let Some(k) = source.secret.get("serviceAccountKey") {
            service_account(k)?
        } else {
            let host = std::env::var("GCE_METADATA_HOST").unwrap_or_else(|_| METADATA_HOST.into());
            TokenSource::Metadata(host)
        };
        let base = parse_url(source.address.as_deref().unwrap_or(DEFAULT_ADDRESS))?;
        Ok(StackdriverProvider {
            client: source.http.client()?,
            http: source.http,
            base,
            project,
            tokens,
        })
    }

    /// Runs an MQL (`fetch ...`) or PromQL query.
    pub async fn query(&self, query: &str) -> Result<f64, MetricError> {
        let http = self.authorized().await?;
        if is_mql(query) {
            self.mql(http, query).await
        } else {
            self.promql(http)?.query(query).await
        }
    }

    /// A token is had and the project answers PromQL.
    pub async fn is_online(&self) -> Result<(), MetricError> {
        let http = self.authorized().await?;
        self.promql(http)?.is_online().await
    }

    fn promql(&self, http: HttpSettings) -> Result<PrometheusProvider, MetricError> {
        let base = self.base.as_str().trim_end_matches('/');
        let address = format!(
            "{base}/v1/projects/{}/location/global/prometheus",
            self.project
        );
        PrometheusProvider::new(&address, http)
    }

    async fn mql(&self, http: HttpSettings, query: &str) -> Result<f64, MetricError> {
        let mut url = self.base.clone();
        let prefix = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!(
            "{prefix}/v3/projects/{}/timeSeries:query",
            self.project
        ));
        let request = self.client.post(url).json(&json!({"query": query}));
        let body = call(&http, request).await?;
        value_of(&body)
    }

    /// These settings with `Authorization: Bearer <token>`, the token fetched when not cached.
    async fn authorized(&self) -> Result<HttpSettings, MetricError> {
        let token = match &self.tokens {
            TokenSource::Fixed(t) => t.clone(),
            TokenSource::ServiceAccount { email, .. } => self.cached(email).await?,
            TokenSource::Metadata(host) => self.cached(host).await?,
        };
        let mut http = self.http.clone();
        http.auth = Auth::Bearer(token);
        Ok(http)
    }

    async fn cached(&self, key: &str) -> Result<String, MetricError> {
        let now = Instant::now();
        if let Ok(cache) = TOKENS.lock()
            && let Some((token, until)) = cache.as_ref().and_then(|c| c.get(key))
            && *until > now
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = self.fetch_token().await?;
        // Renewed a minute early, so that no query goes out with a token about to lapse.
        let until = now + lifetime.saturating_sub(Duration::from_secs(60));
        if let Ok(mut cache) = TOKENS.lock() {
            cache
                .get_or_insert_with(HashMap::new)
                .insert(key.to_string(), (token.clone(), until));
        }
        Ok(token)
    }

    async fn fetch_token(&self) -> Result<(String, Duration), MetricError> {
        let request = match &self.tokens {
            TokenSource::Fixed(t) => return Ok((t.clone(), Duration::from_secs(3600))),
            TokenSource::Metadata(host) => self
                .client
                .get(format!(
                    "http://{host}/computeMetadata/v1/instance/service-accounts/default/token"
                ))
                .header("Metadata-Flavor", "Google"),
            TokenSource::ServiceAccount {
                email,
                key,
                token_uri,
            } => {
                let assertion = jwt(email, key, token_uri)?;
                self.client.post(token_uri).form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", assertion.as_str()),
                ])
            }
        };
        let body = call(&self.http, request).await.map_err(|e| match e {
            MetricError::Query(m) => MetricError::Query(format!("no Google token: {m}")),
            other => other,
        })?;
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| MetricError::Answer("the token answer has no access_token".into()))?;
        let lifetime = Duration::from_secs(body["expires_in"].as_u64().unwrap_or(300));
        Ok((token.to_string(), lifetime))
    }
}

/// Whether `query` is MQL: its first word (after a `{` opening a join) is `fetch`.
fn is_mql(query: &str) -> bool {
    let q = query.trim_start().trim_start_matches('{').trim_start();
    q.split_whitespace().next() == Some("fetch")
}

/// A JWT asserting the service account, signed RS256 with its key, valid for an hour.
fn jwt(email: &str, der: &[u8], audience: &str) -> Result<String, MetricError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims =
        json!({"iss": email, "scope": SCOPE, "aud": audience, "iat": now, "exp": now + 3600});
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let key = RsaKeyPair::from_pkcs8(der)
        .map_err(|_| MetricError::Config("serviceAccountKey: unusable private key".into()))?;
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| MetricError::Config("serviceAccountKey: signing failed".into()))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// Sends a request and returns its JSON; Google's `error.message` (or OAuth's
/// `error_description`) makes the error when it gave one.
async fn call(http: &HttpSettings, request: reqwest::RequestBuilder) -> Result<Value, MetricError> {
    let (status, bytes) = http.exchange(request, MAX_BODY).await?;
    let body: Option<Value> = serde_json::from_slice(&bytes).ok();
    let words = body.as_ref().and_then(|b| {
        b["error"]["message"]
            .as_str()
            .or_else(|| b["error_description"].as_str())
            .map(String::from)
    });
    http.judge(status, words.as_deref().map_or(&bytes[..], str::as_bytes))?;
    body.ok_or_else(|| MetricError::Answer("the answer is not JSON".into()))
}

/// The newest point of the only series of an MQL answer (Google lists points newest first).
pub fn value_of(body: &Value) -> Result<f64, MetricError> {
    let series = body["timeSeriesData"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let one = match series.as_slice() {
        [] => return Err(MetricError::NoData),
        [one] => one,
        many => return Err(MetricError::ManySeries(many.len())),
    };
    let Some(value) = one.pointer("/pointData/0/values/0") else {
        return Err(MetricError::NoData);
    };
    let number = match (&value["doubleValue"], &value["int64Value"]) {
        (Value::Number(n), _) => n.as_f64(),
        // JSON has no 64-bit integers: Google sends them as strings.
        (_, Value::String(s)) => s.parse().ok(),
        (_, Value::Number(n)) => n.as_f64(),
        _ => None,
    };
    match number {
        Some(v) => finite(v),
        None => Err(MetricError::Answer(format!("{value} is not a number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_queries_are_mql_and_the_rest_promql() {
        assert!(is_mql("fetch k8s_container\n| metric 'x'"));
        assert!(is_mql("{ fetch a ; fetch b } | ratio"));
        assert!(!is_mql("sum(rate(x[1m]))"));
        assert!(!is_mql("{__name__=\"up\"}"));
    }

    #[test]
    fn the_newest_point_of_the_only_series() {
        let one = |v: Value| json!({"timeSeriesData": [{"pointData": [{"values": [v]}, {"values": [{"doubleValue": 9}]}]}]});
        assert_eq!(value_of(&one(json!({"doubleValue": 2.5}))), Ok(2.5));
        assert_eq!(value_of(&one(json!({"int64Value": "42"}))), Ok(42.0));
        assert_eq!(
            value_of(&json!({"timeSeriesDescriptor": {}})),
            Err(MetricError::NoData)
        );
        assert_eq!(
            value_of(&json!({"timeSeriesData": [{}, {}]})),
            Err(MetricError::ManySeries(2))
        );
    }
}
