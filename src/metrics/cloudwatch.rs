//! The Amazon CloudWatch provider: `GetMetricData` (AWS JSON 1.0 protocol, signed with SigV4 by
//! AWS's `aws-sigv4`) in the template's `region`, the query being Flagger's JSON array of
//! `MetricDataQuery`, over ten windows ending now as Flagger asks (CloudWatch publishes points
//! minutes late). Credentials, in this order: the Secret's `aws_access_key_id`,
//! `aws_secret_access_key` (and `aws_session_token`); the standard environment
//! (`AWS_ACCESS_KEY_ID`...); EKS IRSA (`AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`, exchanged
//! at STS, cached). The template's address overrides the endpoint. The value is the newest point
//! of the only returned result: no point is `NoData`, several results an error naming the count.
//! AWS's `message` makes a rejected query's error; a 5xx or 429 (throttling) is `Unavailable`.
//! Must not import the controller.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde_json::{Value, json};

use super::{Auth, HttpSettings, MetricError, TemplateSource, finite, parse_url};

/// Largest answer read, in bytes.
const MAX_BODY: usize = 8 << 20;
/// How many windows back the query reaches (Flagger's `cloudWatchStartDeltaMultiplierOnMetricInterval`).
const WINDOWS: u32 = 10;
/// The operation, in AWS JSON 1.0's target form.
const TARGET: &str = "GraniteServiceVersion20100801.GetMetricData";
/// AWS JSON 1.0's content type.
const JSON_1_0: &str = "application/x-amz-json-1.0";

/// AWS credentials; never printed.
#[derive(Clone)]
struct Keys {
    access_key: String,
    secret_key: String,
    session_token: Option<String>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(***)")
    }
}

/// Where the credentials come from.
enum KeySource {
    /// The Secret or the environment.
    Fixed(Keys),
    /// IRSA: a role assumed with the projected service-account token.
    WebIdentity { role: String, token_file: String },
}

/// One region's CloudWatch.
pub struct CloudWatchProvider {
    client: reqwest::Client,
    http: HttpSettings,
    endpoint: reqwest::Url,
    region: String,
    keys: KeySource,
    reach: Duration,
}

/// STS credentials by role, until they expire.
static ASSUMED: Mutex<Option<HashMap<String, (Keys, Instant)>>> = Mutex::new(None);

fn keys_from(secret: &std::collections::BTreeMap<String, String>) -> Option<Keys> {
    // The Secret's keys as a set, else the environment's as a set: never half of each.
    let from = |get: &dyn Fn(&str) -> Option<String>| {
        Some(Keys {
            access_key: get("aws_access_key_id")?,
            secret_key: get("aws_secret_access_key")?,
            session_token: get("aws_session_token"),
        })
    };
    from(&|k: &str| secret.get(k).cloned().filter(|v| !v.is_empty())).or_else(|| {
        from(&|k: &str| {
            std::env::var(k.to_uppercase())
                .ok()
                .filter(|v| !v.is_empty())
        })
    })
}

impl CloudWatchProvider {
    /// A provider for the template's region.
    pub fn new(source: TemplateSource<'_>) -> Result<CloudWatchProvider, MetricError> {
        let region = source
            .region
            .clone()
            .filter(|r| !r.is_empty())
            .ok_or_else(|| {
                MetricError::Config("the cloudwatch provider needs spec.provider.region".into())
            })?;
        let keys = match keys_from(source.secret) {
            Some(k) => KeySource::Fixed(k),
            None => match (
                std::env::var("AWS_ROLE_ARN"),
                std::env::var("AWS_WEB_IDENTITY_TOKEN_FILE"),
            ) {
                (Ok(role), Ok(token_file)) => KeySource::WebIdentity { role, token_file },
                _ => {
                    return Err(MetricError::Config(
                        "no AWS credentials: set aws_access_key_id and aws_secret_access_key in the template's secretRef, the AWS_ environment, or IRSA (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE)".into(),
                    ));
                }
            },
        };
        let endpoint = match &source.address {
            Some(a) => parse_url(a)?,
            None => parse_url(&format!("https://monitoring.{region}.amazonaws.com/"))?,
        };
        Ok(CloudWatchProvider {
            client: source.http.client()?,
            http: source.http,
            endpoint,
            region,
            keys,
            reach: source.window * WINDOWS,
        })
    }

    /// Runs the `MetricDataQuery` array `query`.
    pub async fn query(&self, query: &str) -> Result<f64, MetricError> {
        let queries: Value = serde_json::from_str(query).map_err(|e| {
            MetricError::Config(format!(
                "a cloudwatch query must be a JSON array of MetricDataQuery: {e}"
            ))
        })?;
        if !queries.is_array() {
            return Err(MetricError::Config(
                "a cloudwatch query must be a JSON array of MetricDataQuery".into(),
            ));
        }
        let end = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let body = json!({
            "MetricDataQueries": queries,
            "StartTime": end.saturating_sub(self.reach.as_secs()),
            "EndTime": end,
            "ScanBy": "TimestampDescending",
            "MaxDatapoints": 100,
        });
        let answer = self.call(&body).await?;
        value_of(&answer)
    }

    /// The credentials are accepted: an empty `GetMetricData` is refused only as invalid (400),
    /// as Flagger checks, not as unauthorized.
    pub async fn is_online(&self) -> Result<(), MetricError> {
        let body = json!({"MetricDataQueries": [], "StartTime": 0, "EndTime": 0});
        match self.call(&body).await {
            Ok(_) => Ok(()),
            Err(MetricError::Query(m)) if m.starts_with("HTTP 400") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Signs and sends one `GetMetricData`.
    async fn call(&self, body: &Value) -> Result<Value, MetricError> {
        let keys = self.keys().await?;
        let payload = body.to_string();
        let mut http = self.http.clone();
        http.auth = Auth::Headers(self.signed_headers(&keys, &payload)?);
        let request = self
            .client
            .post(self.endpoint.clone())
            .header("content-type", JSON_1_0)
            .header("x-amz-target", TARGET)
            .body(payload);
        let (status, bytes) = http.exchange(request, MAX_BODY).await?;
        let answer: Option<Value> = serde_json::from_slice(&bytes).ok();
        let words = answer
            .as_ref()
            .and_then(json_error)
            .or_else(|| xml_error(&bytes));
        http.judge(status, words.as_deref().map_or(&bytes[..], str::as_bytes))?;
        answer.ok_or_else(|| MetricError::Answer("the answer is not JSON".into()))
    }

    /// The request's headers with SigV4's (`Authorization`, `X-Amz-Date`, the session token).
    fn signed_headers(
        &self,
        keys: &Keys,
        payload: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, MetricError> {
        let signed = [("content-type", JSON_1_0), ("x-amz-target", TARGET)];
        let identity = Credentials::new(
            &keys.access_key,
            &keys.secret_key,
            keys.session_token.clone(),
            None,
            "serin",
        )
        .into();
        let bad = |e: &dyn std::fmt::Display| MetricError::Config(format!("cannot sign: {e}"));
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("monitoring")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| bad(&e))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            self.endpoint.as_str(),
            signed.into_iter(),
            SignableBody::Bytes(payload.as_bytes()),
        )
        .map_err(|e| bad(&e))?;
        let (instructions, _) = sign(signable, &params).map_err(|e| bad(&e))?.into_parts();
        // Only SigV4's own headers (Authorization, X-Amz-Date, X-Amz-Security-Token) travel as
        // credentials: sensitive on the wire, scrubbed from any error text.
        Ok(instructions
            .headers()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect())
    }

    async fn keys(&self) -> Result<Keys, MetricError> {
        match &self.keys {
            KeySource::Fixed(k) => Ok(k.clone()),
            KeySource::WebIdentity { role, token_file } => {
                if let Ok(cache) = ASSUMED.lock()
                    && let Some((keys, until)) = cache.as_ref().and_then(|c| c.get(role))
                    && *until > Instant::now()
                {
                    return Ok(keys.clone());
                }
                let (keys, lifetime) = self.assume(role, token_file).await?;
                // Renewed five minutes early, as the AWS SDKs do.
                let until = Instant::now() + lifetime.saturating_sub(Duration::from_secs(300));
                if let Ok(mut cache) = ASSUMED.lock() {
                    cache
                        .get_or_insert_with(HashMap::new)
                        .insert(role.clone(), (keys.clone(), until));
                }
                Ok(keys)
            }
        }
    }

    /// `AssumeRoleWithWebIdentity` (unsigned, as STS takes it) with the projected token.
    async fn assume(&self, role: &str, token_file: &str) -> Result<(Keys, Duration), MetricError> {
        let token = std::fs::read_to_string(token_file).map_err(|e| {
            MetricError::Config(format!("cannot read AWS_WEB_IDENTITY_TOKEN_FILE: {e}"))
        })?;
        let sts = std::env::var("AWS_ENDPOINT_URL_STS")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|_| format!("https://sts.{}.amazonaws.com/", self.region));
        let session = std::env::var("AWS_ROLE_SESSION_NAME").unwrap_or_else(|_| "serin".into());
        let http = &self.http;
        let token = token.trim();
        // The token goes in the form only; any echo of it in an error is cut out.
        let scrub = |m: String| m.replace(token, "***");
        let request = self.client.post(parse_url(&sts)?).form(&[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", role),
            ("RoleSessionName", session.as_str()),
            ("WebIdentityToken", token),
        ]);
        let (status, bytes) = http.exchange(request, MAX_BODY).await?;
        let words = xml_error(&bytes);
        http.judge(status, words.as_deref().map_or(&bytes[..], str::as_bytes))
            .map_err(|e| match e {
                MetricError::Query(m) => MetricError::Query(scrub(format!("STS: {m}"))),
                MetricError::Unavailable(m) => MetricError::Unavailable(scrub(m)),
                other => other,
            })?;
        // STS answers in XML (the query protocol): the Credentials element's fields.
        let text = String::from_utf8_lossy(&bytes);
        let field = |name: &str| {
            tag(&text, name)
                .ok_or_else(|| MetricError::Answer(format!("STS's answer has no {name}")))
        };
        let keys = Keys {
            access_key: field("AccessKeyId")?,
            secret_key: field("SecretAccessKey")?,
            session_token: Some(field("SessionToken")?),
        };
        let expires = chrono::DateTime::parse_from_rfc3339(&field("Expiration")?)
            .map(|t| t.timestamp().max(0) as u64)
            .unwrap_or_default();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        Ok((
            keys,
            Duration::from_secs(expires.saturating_sub(now).max(60)),
        ))
    }
}

/// AWS JSON's error words: `message` (or `Message`) after the error type's short name.
fn json_error(body: &Value) -> Option<String> {
    let message = body["message"]
        .as_str()
        .or_else(|| body["Message"].as_str())?;
    let kind = body["__type"]
        .as_str()
        .or_else(|| body["Code"].as_str())
        .map(|t| t.rsplit('#').next().unwrap_or(t));
    Some(match kind {
        Some(k) => format!("{k}: {message}"),
        None => message.to_string(),
    })
}

/// The text of the first `<name>` element of an XML answer.
fn tag(text: &str, name: &str) -> Option<String> {
    let start = text.find(&format!("<{name}>"))? + name.len() + 2;
    let end = text[start..].find(&format!("</{name}>"))? + start;
    Some(text[start..end].trim().to_string())
}

/// AWS query-protocol (XML) error words: `<Code>: <Message>`, as an auth layer answers.
fn xml_error(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let message = tag(&text, "Message")?;
    Some(match tag(&text, "Code") {
        Some(code) => format!("{code}: {message}"),
        None => message,
    })
}

/// The newest point of the only returned result.
pub fn value_of(body: &Value) -> Result<f64, MetricError> {
    let results = body["MetricDataResults"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let one = match results.as_slice() {
        [] => return Err(MetricError::NoData),
        [one] => one,
        many => return Err(MetricError::ManySeries(many.len())),
    };
    match one["Values"].as_array().and_then(|v| v.first()) {
        Some(v) => finite(
            v.as_f64()
                .ok_or_else(|| MetricError::Answer(format!("{v} is not a number")))?,
        ),
        None => Err(MetricError::NoData),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_point_of_the_only_result() {
        let body = json!({"MetricDataResults": [{"Id": "e1", "Values": [0.25, 0.5], "StatusCode": "Complete"}]});
        assert_eq!(value_of(&body), Ok(0.25));
        assert_eq!(
            value_of(&json!({"MetricDataResults": [{"Id": "e1", "Values": []}]})),
            Err(MetricError::NoData)
        );
        assert_eq!(
            value_of(&json!({"MetricDataResults": [{"Values": [1]}, {"Values": [2]}]})),
            Err(MetricError::ManySeries(2))
        );
    }

    #[test]
    fn errors_in_json_and_xml() {
        let j = json!({"__type": "com.amazonaws.cloudwatch#InvalidParameterValueException", "message": "bad Id"});
        assert_eq!(
            json_error(&j).as_deref(),
            Some("InvalidParameterValueException: bad Id")
        );
        let x = b"<ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error></Errors></ErrorResponse>";
        assert_eq!(xml_error(x).as_deref(), Some("SignatureDoesNotMatch: no"));
    }

    #[test]
    fn keys_never_print() {
        let k = Keys {
            access_key: "AKIA".into(),
            secret_key: "s3cret".into(),
            session_token: None,
        };
        assert_eq!(format!("{k:?}"), "Keys(***)");
    }
}
