//! GET and LIST served from a snapshot. Under the state lock a read takes only what it needs: the
//! stored objects' `Arc`s and the resourceVersion they are at (or a continue page, itself an
//! `Arc`), which costs a pointer copy per object. Presenting (apiVersion, kind, the core/v1
//! Event view), selecting and encoding happen after the lock is released, so a list of a
//! thousand objects no longer holds every writer and watcher for the time it takes to copy and
//! encode them. A paginated list takes the lock once more, briefly, to keep its rest for
//! `continue`. Must not import the controller or the decision core.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::handlers::{Query, Target, scale_of, selected, selectors};
use super::selector::{FieldSelector, LabelSelector};
use super::state::{SimState, present};
use super::status::{self, Reply};
use super::table::{self, Representation};

/// The rest of a paginated list, kept for its `continue` token: the presented, selected items of
/// the first page's snapshot, shared by every later page.
#[derive(Debug, Clone)]
pub struct Page {
    items: Arc<Vec<Value>>,
    from: usize,
}

/// How many continue pages are kept (the oldest goes first).
const PAGES_KEPT: usize = 256;

/// A read whose snapshot was taken under the lock; `finish` answers it without the lock.
pub enum Read {
    /// GET of one object (or its status or scale).
    Get(Box<GetRead>),
    /// LIST of a collection.
    List(Box<ListRead>),
}

/// The snapshot of a GET.
pub struct GetRead {
    target: Target,
    /// The object as stored.
    object: Arc<Value>,
    repr: Representation,
    /// The CRD of a custom type, for a Table's printer columns.
    crd: Option<Value>,
}

/// The snapshot of a LIST.
pub struct ListRead {
    target: Target,
    labels: LabelSelector,
    fields: FieldSelector,
    /// Whether the request named a selector (then no remainingItemCount, as kube-apiserver).
    selective: bool,
    source: Source,
    rv: u64,
    limit: Option<usize>,
    repr: Representation,
    crd: Option<Value>,
}

enum Source {
    /// The stored objects of the collection, in key order.
    Store(Vec<Arc<Value>>),
    /// A page kept by an earlier paginated list.
    Page(Page),
}

/// Under the lock: the snapshot a GET or LIST needs, or its error answer.
pub fn begin(st: &SimState, t: &Target, q: &Query, accept: &str) -> Result<Read, Reply> {
    let repr = table::representation(accept);
    let crd = || {
        (repr == Representation::Table)
            .then(|| st.crd_of(&t.rt))
            .flatten()
    };
    if let Some(name) = t.name.as_deref() {
        let Some(object) = st.store.get_shared(&t.key(name)) else {
            return Err(status::not_found(&t.rt, name));
        };
        let crd = if t.sub.is_none() { crd() } else { None };
        return Ok(Read::Get(Box::new(GetRead {
            target: t.clone(),
            object,
            repr,
            crd,
        })));
    }
    let (labels, fields) = selectors(t, q)?;
    let ns = if t.rt.namespaced {
        t.namespace.as_deref()
    } else {
        None
    };
    let (source, rv) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (page, rv) = decode_continue(st, token)?;
            (Source::Page(page), rv)
        }
        None => {
            let objects = st.store.list_shared(&t.rt.storage_key(), ns);
            (Source::Store(objects), st.store.rv())
        }
    };
    Ok(Read::List(Box::new(ListRead {
        target: t.clone(),
        labels,
        fields,
        selective: q.get("labelSelector").is_some() || q.get("fieldSelector").is_some(),
        source,
        rv,
        limit: q
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0),
        repr,
        crd: crd(),
    })))
}

impl Read {
    /// How many objects the answer holds at most (what encoding it costs).
    pub fn size(&self) -> usize {
        match self {
            Read::Get(_) => 1,
            Read::List(l) => match &l.source {
                Source::Store(objects) => objects.len(),
                Source::Page(p) => p.items.len().saturating_sub(p.from),
            },
        }
    }

    /// After the lock: the answer. `state` is locked again only to keep a paginated list's rest.
    pub fn finish(self, state: &Mutex<SimState>) -> Reply {
        match self {
            Read::Get(g) => get(&g.target, &g.object, g.repr, g.crd.as_ref()),
            Read::List(l) => l.finish(state),
        }
    }
}

fn get(t: &Target, object: &Value, repr: Representation, crd: Option<&Value>) -> Reply {
    let obj = present(&t.rt, object);
    match (t.sub.as_deref(), repr) {
        (Some("scale"), _) => Reply::json(StatusCode::OK, scale_of(&t.rt, &obj)),
        (None, Representation::Table) => {
            let rv = obj["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            Reply::json(StatusCode::OK, table::table(&t.rt, crd, &[obj], &rv))
        }
        (None, Representation::Metadata) => Reply::json(StatusCode::OK, table::partial(&obj)),
        _ => Reply::json(StatusCode::OK, obj),
    }
}

impl ListRead {
    fn finish(self, state: &Mutex<SimState>) -> Reply {
        let rt = &self.target.rt;
        let (items, from) = match self.source {
            Source::Store(objects) => {
                let items: Vec<Value> = objects
                    .iter()
                    .map(|o| present(rt, o))
                    .filter(|o| selected(o, &self.labels, &self.fields))
                    .collect();
                (Arc::new(items), 0)
            }
            Source::Page(p) => (p.items, p.from),
        };
        let available = items.len() - from.min(items.len());
        let mut meta = json!({"resourceVersion": self.rv.to_string()});
        let end = match self.limit {
            Some(n) if available > n => {
                if !self.selective {
                    meta["remainingItemCount"] = json!(available - n);
                }
                let rest = Page {
                    items: items.clone(),
                    from: from + n,
                };
                meta["continue"] = json!(keep(state, self.rv, rest));
                from + n
            }
            _ => items.len(),
        };
        let page: Vec<Value> = match Arc::try_unwrap(items) {
            // Nobody kept a page of it: the items move into the answer without a copy.
            Ok(mut all) => {
                all.truncate(end);
                all.drain(..from.min(all.len()));
                all
            }
            Err(shared) => shared[from.min(end)..end].to_vec(),
        };
        let rv = self.rv.to_string();
        let body = match self.repr {
            Representation::Table => table::table(rt, self.crd.as_ref(), &page, &rv),
            Representation::Metadata => table::partial_list(&page, meta),
            Representation::Full => {
                json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": meta, "items": page})
            }
        };
        Reply::json(StatusCode::OK, body)
    }
}

/// Keeps the rest of a list for its continue token (under the lock, briefly); the token.
fn keep(state: &Mutex<SimState>, rv: u64, rest: Page) -> String {
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    let id = rv * 1000 + st.snapshots.len() as u64;
    st.snapshots.insert(id, rest);
    if st.snapshots.len() > PAGES_KEPT {
        let oldest = st.snapshots.keys().min().copied();
        if let Some(o) = oldest {
            st.snapshots.remove(&o);
        }
    }
    encode_continue(id, rv)
}

fn encode_continue(id: u64, rv: u64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .encode(json!({"v": "meta.k8s.io/v1", "rv": rv, "start": id.to_string()}).to_string())
}

fn go_json_char_error(bytes: &[u8]) -> String {
    let c = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .copied()
        .unwrap_or(0);
    let shown = if c.is_ascii_graphic() {
        (c as char).to_string()
    } else {
        format!("\\u{c:04x}")
    };
    format!("invalid character '{shown}' looking for beginning of value")
}

fn decode_continue(st: &SimState, token: &str) -> Result<(Page, u64), Reply> {
    use base64::Engine;
    let bad = |why: String| {
        status::bad_request(format!(
            "invalid continue token: continue key is not valid: {why}"
        ))
    };
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let bytes = engine
        .decode(token.trim_end_matches('='))
        .map_err(|e| bad(e.to_string()))?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad(go_json_char_error(&bytes)))?;
    let id: u64 = v["start"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("missing start".into()))?;
    let rv = v["rv"].as_u64().unwrap_or(0);
    let page = st
        .snapshots
        .get(&id)
        .cloned()
        .ok_or_else(status::expired_reply)?;
    Ok((page, rv))
}
