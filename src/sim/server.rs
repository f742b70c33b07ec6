//! HTTP front of the embedded API server: path routing (discovery, resources, subresources),
//! body limits, content types, and the dispatch of each verb; watches stream from `watch`.

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::discovery;
use super::handlers::{self, Query, Target};
use super::state::{Ctx, FieldValidation, SimState};
use super::status::{self, Reply};
use super::watch;

/// Largest request body accepted (kube-apiserver's limit is 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// What the HTTP layer shares.
#[derive(Clone)]
pub struct App {
    /// The state behind one lock (handlers hold it briefly; watches never while waiting).
    pub state: Arc<Mutex<SimState>>,
    /// host:port the server listens on (for /api's serverAddressByClientCIDRs).
    pub addr: String,
}

fn to_response(r: Reply) -> Response {
    let mut resp = match &r.body {
        Value::String(text)
            if r.code == StatusCode::NOT_FOUND
                && r.body.as_str().is_some_and(|t| t.starts_with("404 page")) =>
        {
            let mut resp = (r.code, text.clone()).into_response();
            resp.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            resp
        }
        body => {
            let mut resp = (r.code, serde_json::to_vec(body).unwrap_or_default()).into_response();
            resp.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            resp
        }
    };
    for w in r.warnings {
        if let Ok(v) = HeaderValue::from_str(&w) {
            resp.headers_mut().append("warning", v);
        }
    }
    resp
}

fn parse_query(uri: &Uri) -> Query {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

fn ctx_for(headers: &HeaderMap, q: &Query) -> Ctx {
    let agent = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    let manager = q
        .get("fieldManager")
        .cloned()
        .unwrap_or_else(|| agent.split('/').next().unwrap_or(agent).to_string());
    let field_validation = match q.get("fieldValidation").map(String::as_str) {
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        _ => FieldValidation::Warn,
    };
    Ctx {
        manager,
        field_validation,
        dry_run: q.get("dryRun").is_some_and(|d| d == "All"),
        now: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }
}

enum Route {
    Doc(Value),
    Resource(Box<Target>),
    NotFound,
}

fn route(st: &SimState, app_addr: &str, path: &str) -> Route {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segs.as_slice() {
        ["version"] => Route::Doc(discovery::version()),
        ["openapi", "v3"] => Route::Doc(discovery::openapi_root(&st.types)),
        ["openapi", "v3", rest @ ..] => {
            discovery::openapi_gv(&st.types, &rest.join("/")).map_or(Route::NotFound, Route::Doc)
        }
        ["api"] => Route::Doc(discovery::api(app_addr)),
        ["apis"] => Route::Doc(discovery::apis(&st.types)),
        ["api", "v1"] => {
            discovery::resources(&st.types, "", "v1").map_or(Route::NotFound, Route::Doc)
        }
        ["apis", g] => discovery::group(&st.types, g).map_or(Route::NotFound, Route::Doc),
        ["apis", g, v] => discovery::resources(&st.types, g, v).map_or(Route::NotFound, Route::Doc),
        ["api", "v1", rest @ ..] => resource_route(st, "", "v1", rest),
        ["apis", g, v, rest @ ..] => resource_route(st, g, v, rest),
        _ => Route::NotFound,
    }
}

fn resource_route(st: &SimState, group: &str, version: &str, rest: &[&str]) -> Route {
    let target = |plural: &str, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        let rt = st.find(group, version, plural)?;
        if rt.namespaced != ns.is_some() && !(name.is_none() && ns.is_none()) {
            return None;
        }
        if let Some(s) = sub {
            let ok = (s == "status" && rt.status) || (s == "scale" && rt.scale);
            if !ok {
                return None;
            }
        }
        Some(Target {
            rt,
            namespace: ns.map(String::from),
            name: name.map(String::from),
            sub: sub.map(String::from),
        })
    };
    let found = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if group.is_empty() || st.find(group, version, plural).is_some() =>
        {
            match tail {
                [] => target(plural, Some(ns), None, None),
                [name] => target(plural, Some(ns), Some(name), None),
                [name, sub] => target(plural, Some(ns), Some(name), Some(sub)),
                _ => None,
            }
            .or_else(|| {
                if group.is_empty()
                    && tail.is_empty()
                    && (*plural == "status" || *plural == "finalize")
                {
                    target("namespaces", None, Some(ns), Some(plural))
                } else {
                    None
                }
            })
        }
        [plural] => target(plural, None, None, None),
        [plural, name] => target(plural, None, Some(name), None),
        [plural, name, sub] => target(plural, None, Some(name), Some(sub)),
        _ => None,
    };
    found.map_or(Route::NotFound, |t| Route::Resource(Box::new(t)))
}

/// The single handler behind every path.
pub async fn dispatch(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if body.len() > MAX_BODY {
        return to_response(status::too_large());
    }
    let q = parse_query(&uri);
    let ctx = ctx_for(&headers, &q);
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let is_watch = q.get("watch").is_some_and(|w| w == "1" || w == "true");
    let accept = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let mut st = match app.state.lock() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    };
    if method == Method::GET
        && accept
            .split(',')
            .next()
            .is_some_and(|a| a.contains("as=APIGroupDiscoveryList"))
        && matches!(uri.path(), "/apis" | "/api")
    {
        let doc = discovery::aggregated(&st.types, uri.path() == "/api");
        let mut resp = to_response(Reply::json(StatusCode::OK, doc));
        resp.headers_mut().insert(
            "content-type",
            HeaderValue::from_static(
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            ),
        );
        return resp;
    }
    // client-go's typed clients send some built-in kinds as protobuf (kubectl create secret,
    // Helm's release records); those are read and handled as their JSON form.
    let (ctype, body) = if ctype.contains("protobuf") && !body.is_empty() {
        match super::protobuf::to_json(&body) {
            Ok(obj) => ("application/json".to_string(), Bytes::from(obj.to_string())),
            Err(why) => {
                return to_response(status::unsupported_media(format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml ({why})"
                )));
            }
        }
    } else {
        (ctype, body)
    };
    let target = match route(&st, &app.addr, uri.path()) {
        Route::Doc(doc) if method == Method::GET => {
            return to_response(Reply::json(StatusCode::OK, doc));
        }
        Route::Doc(_) => return to_response(status::method_not_allowed(method.as_str())),
        Route::NotFound => return to_response(status::not_found_text("")),
        Route::Resource(t) => *t,
    };
    let verb = match (&method, target.name.is_some(), is_watch) {
        (&Method::GET, _, true) => "watch",
        (&Method::GET, true, _) => "get",
        (&Method::GET, false, _) => "list",
        _ => "write",
    };
    let sub = target
        .sub
        .as_deref()
        .map(|s| format!("/{s}"))
        .unwrap_or_default();
    *st.request_counts
        .entry(format!("{method} {}{sub} {verb}", target.rt.qualified()))
        .or_default() += 1;
    let agent = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split('/').next())
        .unwrap_or("unknown");
    if is_watch && method == Method::GET && target.name.is_none() {
        record_access(&mut st, agent, &target, "watch");
        return match watch::start(&st, &target, &q) {
            Ok(stream) => {
                drop(st);
                let mut resp = Response::new(Body::from_stream(stream));
                resp.headers_mut()
                    .insert("content-type", HeaderValue::from_static("application/json"));
                resp
            }
            Err(r) => to_response(r),
        };
    }
    let writes = matches!(method, Method::PUT | Method::PATCH | Method::DELETE);
    if writes
        && let Some(name) = target.name.as_deref()
        && st.take_injected_conflict(&target.rt.qualified())
    {
        return to_response(status::conflict(&target.rt, name));
    }
    let reply = match (method.clone(), target.name.is_some()) {
        (Method::GET, true) => handlers::get(&st, &target, &accept),
        (Method::GET, false) => handlers::list(&mut st, &target, &q, &accept),
        (Method::POST, false) => match handlers::parse_body(&ctype, &body, &target.rt) {
            Ok(obj) => handlers::create(&mut st, &target, obj, &ctx),
            Err(r) => r,
        },
        (Method::PUT, true) => match handlers::parse_body(&ctype, &body, &target.rt) {
            Ok(obj) => handlers::update(&mut st, &target, obj, &ctx),
            Err(r) => r,
        },
        (Method::PATCH, true) => handlers::patch(&mut st, &target, &ctype, &body, &q, &ctx),
        (Method::DELETE, true) => handlers::delete(&mut st, &target, &q, &body, &ctx),
        (Method::DELETE, false) => handlers::delete_collection(&mut st, &target, &q, &ctx),
        (m, _) => status::method_not_allowed(m.as_str()),
    };
    for verb in rbac_verbs(&method, target.name.is_some(), reply.code) {
        record_access(&mut st, agent, &target, verb);
    }
    drop(st);
    to_response(reply)
}

/// The RBAC verbs kube-apiserver's authorizer checks for a request: an apply PATCH that created
/// the object needs `create` as well as `patch`.
fn rbac_verbs(method: &Method, named: bool, code: StatusCode) -> Vec<&'static str> {
    match (method, named) {
        (&Method::GET, true) => vec!["get"],
        (&Method::GET, false) => vec!["list"],
        (&Method::POST, _) => vec!["create"],
        (&Method::PUT, _) => vec!["update"],
        (&Method::PATCH, _) if code == StatusCode::CREATED => vec!["patch", "create"],
        (&Method::PATCH, _) => vec!["patch"],
        (&Method::DELETE, true) => vec!["delete"],
        (&Method::DELETE, false) => vec!["deletecollection"],
        _ => vec![],
    }
}

fn record_access(st: &mut SimState, agent: &str, target: &Target, verb: &'static str) {
    let resource = match &target.sub {
        Some(sub) => format!("{}/{sub}", target.rt.plural),
        None => target.rt.plural.clone(),
    };
    let access = super::state::Access {
        agent: agent.to_string(),
        group: target.rt.group.clone(),
        resource,
        verb,
        all_namespaces: target.rt.namespaced && target.namespace.is_none(),
    };
    *st.access_log.entry(access).or_default() += 1;
}
