//! The overview: one row per Canary (the same summary the `/events` stream sends), its order —
//! rollouts in flight and failed ones first — the namespace filter and search, and the page.
//! Pure: Canaries and `now` in, HTML out; must not import kube clients or axum.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::html::{canary_href, esc, phase_badge};
use crate::api::{Canary, CanaryPhase};
use crate::cli::operate::{human, next_step, step};

/// What the overview shows of one Canary, and what `/events` sends when it changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Phase as the API spells it (empty: not seen by the controller yet).
    pub phase: String,
    /// Percentage of traffic on the canary.
    pub canary_weight: i32,
    /// Percentage of traffic on the primary.
    pub primary_weight: i32,
    /// Failed checks in the current analysis.
    pub failed_checks: i32,
    /// Failed checks that roll back.
    pub threshold: i32,
    /// `weight 20/50`, `iteration 3/10` or `-`.
    pub step: String,
    /// `in 40s`, `now`, `paused`, `suspended` or `-`.
    pub next_step: String,
    /// `5m ago` or `-`.
    pub last_transition: String,
    /// When the phase last changed (RFC 3339), for scripts.
    pub last_transition_time: Option<String>,
    /// Paused by an operator.
    pub paused: bool,
}

impl Row {
    /// The row of `c` at `now`.
    pub fn of(c: &Canary, now: DateTime<Utc>) -> Row {
        let s = c.status.clone().unwrap_or_default();
        let canary_weight = s.canary_weight.clamp(0, 100);
        Row {
            namespace: c.metadata.namespace.clone().unwrap_or_default(),
            name: c.metadata.name.clone().unwrap_or_default(),
            phase: s.phase.as_str().to_string(),
            canary_weight,
            primary_weight: 100 - canary_weight,
            failed_checks: s.failed_checks,
            threshold: c.spec.analysis.threshold,
            step: step(c),
            next_step: next_step(c, now),
            last_transition: s
                .last_transition_time
                .map(|t| format!("{} ago", human(now - t)))
                .unwrap_or_else(|| "-".into()),
            last_transition_time: s.last_transition_time.map(|t| t.to_rfc3339()),
            paused: s.paused_at.is_some(),
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The row without what changes by itself as time passes (`5m ago`, `in 40s`): a changed
    /// row is one whose Canary changed, so the stream does not resend every row on every change.
    pub fn clockless(&self) -> Row {
        let mut r = self.clone();
        r.last_transition.clear();
        if r.next_step.starts_with("in ") || r.next_step == "now" {
            r.next_step = "due".into();
        }
        r
    }

    /// Moving now or failed: what someone opening the dashboard during an incident looks for.
    pub fn needs_eyes(&self) -> bool {
        self.phase == CanaryPhase::Failed.as_str() || in_progress(&self.phase)
    }
}

/// Whether a phase is a rollout in flight (Waiting* included: a change is queued).
pub fn in_progress(phase: &str) -> bool {
    [
        CanaryPhase::Progressing,
        CanaryPhase::Promoting,
        CanaryPhase::Finalising,
        CanaryPhase::Waiting,
        CanaryPhase::WaitingPromotion,
    ]
    .iter()
    .any(|p| p.as_str() == phase)
}

/// The overview's query: `namespace=NS` and `q=TEXT`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Filter {
    /// Only this namespace (empty: all).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only Canaries whose `namespace/name` or phase contains this (case-insensitive).
    #[serde(default)]
    pub q: Option<String>,
}

impl Filter {
    fn keeps(&self, row: &Row) -> bool {
        let ns_ok = self
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .is_none_or(|n| n == row.namespace);
        let q = self.q.as_deref().unwrap_or_default().trim().to_lowercase();
        ns_ok
            && (q.is_empty()
                || row.key().to_lowercase().contains(&q)
                || row.phase.to_lowercase().contains(&q))
    }
}

/// The rows the overview shows, in its order: in flight and failed first, then the rest; by
/// namespace and name within each group.
pub fn rows(
    canaries: &[impl std::borrow::Borrow<Canary>],
    filter: &Filter,
    now: DateTime<Utc>,
) -> Vec<Row> {
    let mut rows: Vec<Row> = canaries
        .iter()
        .map(|c| Row::of(c.borrow(), now))
        .filter(|r| filter.keeps(r))
        .collect();
    rows.sort_by(|a, b| {
        (!a.needs_eyes(), &a.namespace, &a.name).cmp(&(!b.needs_eyes(), &b.namespace, &b.name))
    });
    rows
}

/// The weight cell's bar and text, shared by the page and (by its DOM) the live updates.
pub fn weight_cell(row: &Row) -> String {
    format!(
        r#"<td class="weight" data-canary-weight="{c}"><div class="bar" role="img" aria-label="primary {p}%, canary {c}%"><span class="primary" style="width:{p}%"></span><span class="canary" style="width:{c}%"></span></div><span class="pct">{c}%</span></td>"#,
        c = row.canary_weight,
        p = row.primary_weight,
    )
}

fn row_html(row: &Row) -> String {
    let paused = if row.paused {
        r#" <span class="badge paused">paused</span>"#
    } else {
        ""
    };
    format!(
        r#"<tr data-canary="{key}" data-phase="{phase}"><th scope="row" class="name"><a href="{href}">{key}</a></th><td class="phase">{badge}{paused}</td>{weight}<td class="failed">{failed} / {threshold}</td><td class="step">{step}</td><td class="next">{next}</td><td class="since">{since}</td></tr>"#,
        key = esc(&row.key()),
        phase = esc(&row.phase),
        href = esc(&canary_href(&row.namespace, &row.name)),
        badge = phase_badge(&row.phase, None),
        weight = weight_cell(row),
        failed = row.failed_checks,
        threshold = row.threshold,
        step = esc(&row.step),
        next = esc(&row.next_step),
        since = match &row.last_transition_time {
            Some(t) => format!(
                r#"<time datetime="{}">{}</time>"#,
                esc(t),
                esc(&row.last_transition)
            ),
            None => esc(&row.last_transition),
        },
    )
}

/// The overview's main content: the filter form and the table. `namespaces`: those to offer.
pub fn body(rows: &[Row], namespaces: &[String], filter: &Filter, cache_ready: bool) -> String {
    let selected = filter.namespace.clone().unwrap_or_default();
    let mut options = format!(
        r#"<option value=""{}>All namespaces</option>"#,
        if selected.is_empty() { " selected" } else { "" }
    );
    for ns in namespaces {
        let sel = if *ns == selected { " selected" } else { "" };
        options.push_str(&format!(
            r#"<option value="{0}"{sel}>{0}</option>"#,
            esc(ns)
        ));
    }
    let mut out = format!(
        r#"<h1>Canaries</h1>
<form id="filter" class="filter" method="get" action="/" role="search">
<label for="namespace">Namespace</label> <select id="namespace" name="namespace">{options}</select>
<label for="q">Search</label> <input id="q" name="q" type="search" value="{q}">
<button type="submit">Filter</button>
</form>
"#,
        q = esc(filter.q.as_deref().unwrap_or_default()),
    );
    if !cache_ready {
        out.push_str(r#"<p class="notice" role="status">This instance has no Canary cache now (not leading, or not started yet); the list fills when it has.</p>"#);
    }
    out.push_str(r#"<table id="canaries"><caption>Rollouts in progress and failed ones first; live.</caption>
<thead><tr><th scope="col">Canary</th><th scope="col">Phase</th><th scope="col">Weight (canary)</th><th scope="col">Failed checks / threshold</th><th scope="col">Step</th><th scope="col">Next step</th><th scope="col">Last transition</th></tr></thead>
<tbody>
"#);
    for row in rows {
        out.push_str(&row_html(row));
        out.push('\n');
    }
    if rows.is_empty() {
        out.push_str(r#"<tr class="empty"><td colspan="7">No Canaries match.</td></tr>"#);
    }
    out.push_str("</tbody></table>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canary(ns: &str, name: &str, phase: &str, weight: i32) -> Canary {
        serde_json::from_value(json!({
            "apiVersion": "serin.io/v1beta1", "kind": "Canary",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "service": {"port": 80}, "analysis": {"interval": "1m", "threshold": 3, "stepWeight": 10, "maxWeight": 50}},
            "status": {"phase": phase, "canaryWeight": weight}
        }))
        .unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2026-11-29T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn rollouts_in_flight_and_failed_ones_come_first_then_the_rest_by_name() {
        let list = vec![
            canary("a", "zeta", "Succeeded", 0),
            canary("b", "beta", "Progressing", 20),
            canary("a", "alpha", "Initialized", 0),
            canary("a", "gamma", "Failed", 0),
            canary("c", "delta", "WaitingPromotion", 50),
        ];
        let keys: Vec<String> = rows(&list, &Filter::default(), now())
            .iter()
            .map(Row::key)
            .collect();
        assert_eq!(keys, ["a/gamma", "b/beta", "c/delta", "a/alpha", "a/zeta"]);
    }

    #[test]
    fn the_filter_keeps_one_namespace_and_matches_names_case_insensitively() {
        let list = vec![
            canary("a", "podinfo", "Succeeded", 0),
            canary("b", "podinfo", "Succeeded", 0),
            canary("a", "checkout", "Progressing", 10),
        ];
        let f = Filter {
            namespace: Some("a".into()),
            q: None,
        };
        assert_eq!(rows(&list, &f, now()).len(), 2);
        let f = Filter {
            namespace: Some(String::new()),
            q: Some("PODinfo".into()),
        };
        let keys: Vec<String> = rows(&list, &f, now()).iter().map(Row::key).collect();
        assert_eq!(keys, ["a/podinfo", "b/podinfo"]);
        let f = Filter {
            namespace: None,
            q: Some("progress".into()),
        };
        assert_eq!(rows(&list, &f, now())[0].key(), "a/checkout");
    }

    #[test]
    fn a_row_shows_the_weight_bar_and_escapes_names() {
        let row = Row::of(&canary("t", "p<x>", "Progressing", 20), now());
        assert_eq!(
            (row.canary_weight, row.primary_weight, row.threshold),
            (20, 80, 3)
        );
        let html = body(&[row], &["t".into()], &Filter::default(), true);
        assert!(
            html.contains(r#"<tr data-canary="t/p&lt;x&gt;" data-phase="Progressing">"#),
            "{html}"
        );
        assert!(html.contains(r#"data-canary-weight="20""#));
        assert!(html.contains(r#"aria-label="primary 80%, canary 20%""#));
        assert!(html.contains(r#"href="/canaries/t/p%3Cx%3E""#));
    }
}
