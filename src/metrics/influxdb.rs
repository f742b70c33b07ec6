//! The InfluxDB provider: a Flux query over the v2 API (`POST /api/v2/query?org=<org>`,
//! `Authorization: Token <token>`, Secret keys `token` and `org` as Flagger names them), the
//! answer read as annotated CSV. The value is the last non-null `_value` of the only table: no
//! row is `NoData`, several tables (series) an error naming the count; `double`, `long` and
//! `unsignedLong` values are numbers. InfluxDB's `message` makes a rejected query's error, and an
//! error table inside a 200 answer is a query error too; a 5xx or 429 answer is `Unavailable`.
//! Must not import the controller.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{Auth, HttpSettings, MetricError, TemplateSource, finite, parse_url, secret_key};

/// Largest answer read, in bytes (one value is a few hundred).
const MAX_BODY: usize = 8 << 20;

/// One InfluxDB v2 organisation.
pub struct InfluxDbProvider {
    client: reqwest::Client,
    http: HttpSettings,
    base: reqwest::Url,
    org: Option<String>,
}

impl InfluxDbProvider {
    /// A provider for the server at the template's address; with a Secret, its `token` and
    /// `org` are required (as in Flagger).
    pub fn new(source: TemplateSource<'_>) -> Result<InfluxDbProvider, MetricError> {
        let address = source.address.as_deref().ok_or_else(|| {
            MetricError::Config("the influxdb provider needs the server's address".into())
        })?;
        let mut http = source.http;
        let mut org = None;
        if !source.secret.is_empty() {
            http.auth = Auth::Scheme {
                scheme: "Token".into(),
                token: secret_key(source.secret, "token", "influxdb")?,
            };
            org = Some(secret_key(source.secret, "org", "influxdb")?);
        }
        Ok(InfluxDbProvider {
            client: http.client()?,
            http,
            base: parse_url(address)?,
            org,
        })
    }

    /// Runs the Flux `query`.
    pub async fn query(&self, query: &str) -> Result<f64, MetricError> {
        let csv = self.run(query).await?;
        value_of(&csv)
    }

    /// The server answers a query with the token (`buckets()` needs no data).
    pub async fn is_online(&self) -> Result<(), MetricError> {
        self.run("buckets() |> limit(n: 1)").await.map(|_| ())
    }

    async fn run(&self, flux: &str) -> Result<String, MetricError> {
        let mut url = self.base.clone();
        let prefix = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{prefix}/api/v2/query"));
        let mut request = self
            .client
            .post(url)
            .header("accept", "application/csv")
            .json(&json!({
                "query": flux,
                "type": "flux",
                "dialect": {"annotations": ["datatype", "group", "default"], "header": true},
            }));
        if let Some(org) = &self.org {
            request = request.query(&[("org", org)]);
        }
        let (status, bytes) = self.http.exchange(request, MAX_BODY).await?;
        let message = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|b| b["message"].as_str().map(String::from));
        self.http
            .judge(status, message.as_deref().map_or(&bytes[..], str::as_bytes))?;
        String::from_utf8(bytes)
            .map_err(|_| MetricError::Answer("the answer is not UTF-8 CSV".into()))
    }
}

/// The fields of one CSV line (RFC 4180 quoting; no line breaks inside fields).
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// One block of the answer: its datatypes and header, then rows.
#[derive(Default)]
struct Block {
    types: Vec<String>,
    header: Vec<String>,
}

/// The last non-null `_value` of the only table of an annotated-CSV answer.
pub fn value_of(csv: &str) -> Result<f64, MetricError> {
    let mut block = Block::default();
    let mut tables = BTreeSet::new();
    let mut last: Option<(String, String)> = None;
    for line in csv.lines().map(|l| l.trim_end_matches('\r')) {
        if line.is_empty() {
            block = Block::default();
            continue;
        }
        let row = fields(line);
        if row[0].starts_with('#') {
            if row[0] == "#datatype" {
                block.types = row;
            }
            continue;
        }
        if block.header.is_empty() {
            block.header = row;
            continue;
        }
        let col = |name: &str| block.header.iter().position(|h| h == name);
        if let Some(e) = col("error") {
            let text = row.get(e).cloned().unwrap_or_default();
            return Err(MetricError::Query(text));
        }
        let v = col("_value").ok_or_else(|| {
            MetricError::Answer("the table has no _value column; keep _value in the result".into())
        })?;
        let table = (
            col("result")
                .and_then(|i| row.get(i))
                .cloned()
                .unwrap_or_default(),
            col("table")
                .and_then(|i| row.get(i))
                .cloned()
                .unwrap_or_default(),
        );
        tables.insert(table);
        let value = row.get(v).cloned().unwrap_or_default();
        if !value.is_empty() {
            let ty = block.types.get(v).cloned().unwrap_or_default();
            last = Some((ty, value));
        }
    }
    if tables.len() > 1 {
        return Err(MetricError::ManySeries(tables.len()));
    }
    let Some((ty, value)) = last else {
        return Err(MetricError::NoData);
    };
    match ty.as_str() {
        "double" | "long" | "unsignedLong" | "" => value
            .parse::<f64>()
            .map_err(|_| MetricError::Answer(format!("_value '{value}' is not a number")))
            .and_then(finite),
        other => Err(MetricError::Answer(format!(
            "_value is a {other} ('{value}'), not a number"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "#datatype,string,long,dateTime:RFC3339,double,string\n#group,false,false,false,false,true\n#default,_result,,,,\n,result,table,_time,_value,_field\n";

    #[test]
    fn the_last_value_of_the_only_table() {
        let csv = format!(
            "{HEAD},,0,2026-01-01T00:00:00Z,1.5,f\r\n,,0,2026-01-01T00:01:00Z,2.5,f\r\n\r\n"
        );
        assert_eq!(value_of(&csv), Ok(2.5));
        let long = "#datatype,string,long,long\n#group,false,false,false\n#default,_result,,\n,result,table,_value\n,,0,42\n";
        assert_eq!(value_of(long), Ok(42.0));
        assert_eq!(value_of("\r\n"), Err(MetricError::NoData));
        let two = format!("{HEAD},,0,2026-01-01T00:00:00Z,1,f\n,,1,2026-01-01T00:00:00Z,2,f\n");
        assert_eq!(value_of(&two), Err(MetricError::ManySeries(2)));
        let text = "#datatype,string,long,string\n#group,false,false,false\n#default,_result,,\n,result,table,_value\n,,0,\"a,b\"\n";
        assert!(matches!(value_of(text), Err(MetricError::Answer(m)) if m.contains("'a,b'")));
    }

    #[test]
    fn an_error_table_is_a_query_error() {
        let csv = "#datatype,string,string\n#group,true,true\n#default,,\n,error,reference\n,\"type error 3:8-3:20: missing required argument \"\"fn\"\"\",\n";
        assert_eq!(
            value_of(csv),
            Err(MetricError::Query(
                "type error 3:8-3:20: missing required argument \"fn\"".into()
            ))
        );
    }
}
