//! HTTP front of the embedded API server: path routing (discovery, resources, subresources),
//! body limits, content types, and the dispatch of each verb in kube-apiserver's order — latency,
//! priority and fairness (injected 429s), authorization (before routing), routing, storage faults,
//! the verb; watches stream from `watch`. Reads (GET, LIST, a watch's initial events) hold the
//! lock only to take their snapshot and are encoded after it (`reads`, `watch`), big ones on the
//! blocking pool so that small requests are not queued behind them; writes run under it. Every request's latency is recorded (`latency`). Must not import the controller or the
//! decision core.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::authz::{self, Attributes};
use super::discovery;
use super::faults::{self, Stage};
use super::handlers::{self, Query, Target};
use super::latency::{self, Latencies};
use super::reads;
use super::resources::Builtin;
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
    /// The server's own request latency, by client and verb.
    pub latencies: Arc<Latencies>,
}

fn lock(state: &Mutex<SimState>) -> std::sync::MutexGuard<'_, SimState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn to_response(r: Reply) -> Response {
    let mut resp = match &r.body {
        // Text bodies: the plain `404 page not found`, and Go's `http.Error` answers (429).
        Value::String(text) => {
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
    for (name, value) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
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

/// One request as the dispatcher reads it.
struct Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    q: Query,
    is_watch: bool,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The single handler behind every path.
pub async fn dispatch(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Instant::now();
    let q = parse_query(&uri);
    let is_watch = q.get("watch").is_some_and(|w| w == "1" || w == "true");
    if !is_watch {
        // Read under the lock, slept without it: a slow answer never stalls anyone else.
        let latency = lock(&app.state).latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }
    let req = Request {
        method,
        uri,
        headers,
        body,
        q,
        is_watch,
    };
    let agent = authz::short_agent(req.header("user-agent").unwrap_or("unknown")).to_string();
    let mut verb = "other";
    let resp = serve(&app, req, &mut verb).finish(&app).await;
    app.latencies.record(&agent, verb, received.elapsed());
    resp
}

/// Everything after the latency: the bookkeeping and the writes under the state lock; reads take
/// their snapshot under it and are answered after it (`reads`, `watch`, `Served::finish`).
fn serve(app: &App, req: Request, verb_out: &mut &'static str) -> Served {
    if req.body.len() > MAX_BODY {
        return done(status::too_large());
    }
    let mut st = lock(&app.state);
    if let Some(resp) = aggregated_discovery(&st, &req) {
        *verb_out = "discovery";
        return Served::Done(resp);
    }
    let (ctype, body) = match decode_body(&req) {
        Ok(x) => x,
        Err(r) => return done(r),
    };
    let agent = req.header("user-agent").unwrap_or("unknown").to_string();
    if let Some(a) = authz::attributes(&req.method, req.uri.path(), &req.q)
        && let Some(r) = before_routing(&mut st, &agent, &a)
    {
        return done(r);
    }
    let target = match route(&st, &app.addr, req.uri.path()) {
        Route::Doc(doc) if req.method == Method::GET => {
            *verb_out = "discovery";
            drop(st);
            return done(Reply::json(StatusCode::OK, doc));
        }
        Route::Doc(_) => return done(status::method_not_allowed(req.method.as_str())),
        Route::NotFound => return done(status::not_found_text("")),
        Route::Resource(t) => *t,
    };
    *verb_out = latency::verb_of(&req.method, target.name.is_some(), req.is_watch);
    count_request(&mut st, &req, &target);
    let named_write =
        target.name.is_some() && matches!(req.method, Method::PUT | Method::PATCH | Method::DELETE);
    let qualified = target.rt.qualified();
    if let Some(code) = st.faults.take(&qualified, Stage::Storage { named_write }) {
        return done(faults::injected_reply(
            code,
            &target.rt.plural,
            &target.rt.group,
            target.name.as_deref(),
        ));
    }
    let short = authz::short_agent(&agent).to_string();
    if req.is_watch && req.method == Method::GET && target.name.is_none() {
        authz::record_access(&mut st, &short, &target, "watch");
        let accept = req.header("accept").unwrap_or("application/json");
        let opened = watch::open(&st, &target, &req.q, accept);
        drop(st);
        return opened.map_or_else(done, |o| Served::Watch(Box::new(o)));
    }
    if req.method == Method::GET && target.rt.builtin != Some(Builtin::Review) {
        let accept = req.header("accept").unwrap_or("application/json");
        let read = reads::begin(&st, &target, &req.q, accept);
        // A GET needs get or list whatever its answer (`authz::rbac_verbs`).
        for verb in authz::rbac_verbs(&req.method, target.name.is_some(), StatusCode::OK) {
            authz::record_access(&mut st, &short, &target, verb);
        }
        drop(st);
        return read.map_or_else(done, Served::Read);
    }
    let ctx = ctx_for(&req.headers, &req.q);
    let reply = if target.rt.builtin == Some(Builtin::Review) {
        review(&st, &target, &req, &agent, &ctype, &body, &ctx)
    } else {
        verb(&mut st, &target, &req, &ctype, &body, &ctx)
    };
    for verb in authz::rbac_verbs(&req.method, target.name.is_some(), reply.code) {
        authz::record_access(&mut st, &short, &target, verb);
    }
    drop(st);
    done(reply)
}

fn done(r: Reply) -> Served {
    Served::Done(to_response(r))
}

/// What `serve` leaves for after the state lock.
enum Served {
    /// The answer.
    Done(Response),
    /// A read's snapshot, to present and encode.
    Read(reads::Read),
    /// An opened watch, to encode its initial events.
    Watch(Box<watch::Opened>),
}

/// Reads bigger than this many objects are encoded on the blocking pool: encoding a thousand
/// takes tens of milliseconds, and on a runtime worker it would hold up every small request
/// queued behind it (patches waited 40 ms behind lists that the lock no longer blocked).
const ENCODE_INLINE_MAX: usize = 64;

impl Served {
    async fn finish(self, app: &App) -> Response {
        let (work, large): (Box<dyn FnOnce() -> Response + Send>, bool) = match self {
            Served::Done(resp) => return resp,
            Served::Read(read) => {
                let state = app.state.clone();
                let large = read.size() > ENCODE_INLINE_MAX;
                (Box::new(move || to_response(read.finish(&state))), large)
            }
            Served::Watch(opened) => {
                let large = opened.size() > ENCODE_INLINE_MAX;
                (Box::new(move || watch_response(*opened)), large)
            }
        };
        if !large {
            return work();
        }
        match tokio::task::spawn_blocking(work).await {
            Ok(resp) => resp,
            Err(e) => to_response(status::bare(
                500,
                format!("encoding the answer failed: {e}"),
            )),
        }
    }
}

fn watch_response(opened: watch::Opened) -> Response {
    let mut resp = Response::new(Body::from_stream(opened.stream()));
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    resp
}

/// Aggregated discovery (`Accept: ...;as=APIGroupDiscoveryList` on /api or /apis).
fn aggregated_discovery(st: &SimState, req: &Request) -> Option<Response> {
    let path = req.uri.path();
    let wanted = req.method == Method::GET
        && req
            .header("accept")
            .unwrap_or("application/json")
            .split(',')
            .next()
            .is_some_and(|a| a.contains("as=APIGroupDiscoveryList"))
        && matches!(path, "/apis" | "/api");
    if !wanted {
        return None;
    }
    let doc = discovery::aggregated(&st.types, path == "/api");
    let mut resp = to_response(Reply::json(StatusCode::OK, doc));
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        ),
    );
    Some(resp)
}

/// The body's content type and bytes. client-go's typed clients send some built-in kinds as
/// protobuf (kubectl create secret, Helm's release records); those are read as their JSON form.
fn decode_body(req: &Request) -> Result<(String, Bytes), Reply> {
    let ctype = req
        .header("content-type")
        .unwrap_or("application/json")
        .to_string();
    if !ctype.contains("protobuf") || req.body.is_empty() {
        return Ok((ctype, req.body.clone()));
    }
    match super::protobuf::to_json(&req.body) {
        Ok(obj) => Ok(("application/json".to_string(), Bytes::from(obj.to_string()))),
        Err(why) => Err(status::unsupported_media(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml ({why})"
        ))),
    }
}

/// The stages before routing: API Priority and Fairness (injected 429s), then authorization.
fn before_routing(st: &mut SimState, agent: &str, a: &Attributes) -> Option<Reply> {
    if let Some(code) = st.faults.take(&a.qualified(), Stage::Fairness) {
        return Some(faults::injected_reply(
            code,
            &a.resource,
            &a.group,
            a.name.as_deref(),
        ));
    }
    authz::check(st, agent, a)
}

fn count_request(st: &mut SimState, req: &Request, target: &Target) {
    let kind = match (&req.method, target.name.is_some(), req.is_watch) {
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
        .entry(format!(
            "{} {}{sub} {kind}",
            req.method,
            target.rt.qualified()
        ))
        .or_default() += 1;
}

/// A review (TokenReview, SubjectAccessReview, SelfSubjectAccessReview): only POST to the
/// collection exists.
fn review(
    st: &SimState,
    target: &Target,
    req: &Request,
    agent: &str,
    ctype: &str,
    body: &[u8],
    ctx: &Ctx,
) -> Reply {
    if req.method != Method::POST || target.name.is_some() {
        return status::method_not_allowed(req.method.as_str());
    }
    match handlers::parse_body(ctype, body, &target.rt) {
        Ok(review) => super::reviews::answer(st, &target.rt, agent, &review, ctx),
        Err(r) => r,
    }
}

/// The verb on a resource.
fn verb(
    st: &mut SimState,
    target: &Target,
    req: &Request,
    ctype: &str,
    body: &[u8],
    ctx: &Ctx,
) -> Reply {
    match (req.method.clone(), target.name.is_some()) {
        (Method::POST, false) => match handlers::parse_body(ctype, body, &target.rt) {
            Ok(obj) => handlers::create(st, target, obj, ctx),
            Err(r) => r,
        },
        (Method::PUT, true) => match handlers::parse_body(ctype, body, &target.rt) {
            Ok(obj) => handlers::update(st, target, obj, ctx),
            Err(r) => r,
        },
        (Method::PATCH, true) => handlers::patch(st, target, ctype, body, &req.q, ctx),
        (Method::DELETE, true) => handlers::delete(st, target, &req.q, body, ctx),
        (Method::DELETE, false) => handlers::delete_collection(st, target, &req.q, ctx),
        (m, _) => status::method_not_allowed(m.as_str()),
    }
}
