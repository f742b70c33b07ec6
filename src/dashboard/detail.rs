//! One Canary's page: phase and weight (live), the weight chart, each check's value against its
//! bound per tick, the webhooks and their last results, its Kubernetes Events, the decision
//! record, the spec summary and — when actions are on — the action buttons. Pure: must not
//! import kube clients or axum.

use chrono::{DateTime, Utc};

use super::chart::weight_svg;
use super::html::{canary_href, dl_item, esc, phase_badge};
use super::overview::Row;
use crate::api::{Canary, CheckRecord, DecisionRecord, Verdict};

/// One Kubernetes Event of the Canary, as shown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventRow {
    /// When it last happened (RFC 3339), or empty.
    pub time: String,
    /// Normal or Warning.
    pub kind: String,
    /// Reason.
    pub reason: String,
    /// Note.
    pub note: String,
}

/// The outcome of an action, shown above everything else.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Refused (role="alert") or done (role="status").
    pub refused: bool,
    /// One sentence.
    pub message: String,
}

/// What the page needs besides the Canary.
#[derive(Debug, Clone)]
pub struct Extras {
    /// The Canary's Events, newest first, or why they could not be read (said on the page).
    pub events: Result<Vec<EventRow>, String>,
    /// The csrf token for the action forms; None: actions are off.
    pub actions_csrf: Option<String>,
    /// The result of the action just requested.
    pub outcome: Option<Outcome>,
}

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::NoData => "nodata",
        Verdict::Skipped => "skipped",
        Verdict::Unreachable => "unreachable",
    }
}

fn check_text(k: &CheckRecord) -> String {
    let value = k
        .value
        .map(|v| format!("{v}"))
        .unwrap_or_else(|| "–".into());
    format!("{value}{}", k.bound_and_verdict())
}

/// The checks table: one row per check name, its values per tick (oldest first).
fn checks_table(decisions: &[DecisionRecord]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for d in decisions {
        for k in &d.checks {
            if !names.contains(&k.name.as_str()) {
                names.push(&k.name);
            }
        }
    }
    let mut out = String::from(
        r#"<table id="checks"><caption>Each check's value against its bound, per analysis tick (oldest first)</caption><thead><tr><th scope="col">Check</th><th scope="col">Bound</th><th scope="col">Last verdict</th><th scope="col">Per tick</th></tr></thead><tbody>"#,
    );
    for name in &names {
        let ticks: Vec<(&DecisionRecord, &CheckRecord)> = decisions
            .iter()
            .flat_map(|d| {
                d.checks
                    .iter()
                    .filter(|k| k.name == *name)
                    .map(move |k| (d, k))
            })
            .collect();
        let last = ticks.last().map(|t| t.1);
        let bound = last
            .and_then(|k| k.bound.clone())
            .unwrap_or_else(|| "–".into());
        let verdict = last.map(|k| k.verdict).unwrap_or_default();
        let items: String = ticks
            .iter()
            .map(|(d, k)| {
                format!(
                    r#"<li class="verdict-{}"><time datetime="{}">{}</time> {}</li>"#,
                    verdict_class(k.verdict),
                    d.time.to_rfc3339(),
                    d.time.format("%H:%M:%S"),
                    esc(&check_text(k))
                )
            })
            .collect();
        out.push_str(&format!(
            r#"<tr class="check" data-check="{n}"><th scope="row">{n}</th><td>{b}</td><td><span class="badge verdict-{vc}">{v:?}</span></td><td><ol class="ticks">{items}</ol></td></tr>"#,
            n = esc(name),
            b = esc(&bound),
            vc = verdict_class(verdict),
            v = verdict,
        ));
    }
    if names.is_empty() {
        out.push_str(r#"<tr class="empty"><td colspan="4">No checks recorded yet.</td></tr>"#);
    }
    out.push_str("</tbody></table>");
    out
}

/// A webhook's address without what may hold a secret (user info, query, fragment).
fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            format!(
                "{}://{}{}",
                u.scheme(),
                u.host_str().unwrap_or_default(),
                u.port().map(|p| format!(":{p}")).unwrap_or_default()
            ) + u.path()
        }
        Err(_) => "(not a URL)".into(),
    }
}

fn webhooks_table(c: &Canary, decisions: &[DecisionRecord]) -> String {
    let mut out = String::from(
        r#"<table id="webhooks"><caption>Webhooks and their last results</caption><thead><tr><th scope="col">Name</th><th scope="col">Type</th><th scope="col">Address</th><th scope="col">Last result</th></tr></thead><tbody>"#,
    );
    let hooks = c.spec.analysis.webhooks.clone().unwrap_or_default();
    for h in &hooks {
        let last = decisions
            .iter()
            .rev()
            .find_map(|d| d.checks.iter().find(|k| k.name == h.name).map(|k| (d, k)));
        let result = match last {
            Some((d, k)) => format!(
                r#"<span class="badge verdict-{}">{:?}</span> {} <time datetime="{}">{}</time>"#,
                verdict_class(k.verdict),
                k.verdict,
                esc(k.message.as_deref().unwrap_or_default()),
                d.time.to_rfc3339(),
                d.time.format("%H:%M:%S")
            ),
            None => "not called in the recorded ticks".into(),
        };
        let kind = h
            .r#type
            .as_ref()
            .and_then(|t| serde_json::to_value(t).ok())
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_else(|| "rollout".into());
        out.push_str(&format!(
            r#"<tr class="webhook"><th scope="row">{}</th><td>{}</td><td><code>{}</code></td><td>{result}</td></tr>"#,
            esc(&h.name),
            esc(&kind),
            esc(&shown_url(&h.url)),
        ));
    }
    if hooks.is_empty() {
        out.push_str(r#"<tr class="empty"><td colspan="4">No webhooks.</td></tr>"#);
    }
    out.push_str("</tbody></table>");
    out
}

fn events_table(events: Result<&[EventRow], &str>) -> String {
    let mut out = String::from(
        r#"<table id="events"><caption>Kubernetes Events of this Canary (newest first)</caption><thead><tr><th scope="col">Time</th><th scope="col">Type</th><th scope="col">Reason</th><th scope="col">Message</th></tr></thead><tbody>"#,
    );
    match events {
        Err(why) => out.push_str(&format!(
            r#"<tr class="empty"><td colspan="4">The Events could not be read: {}</td></tr>"#,
            esc(why)
        )),
        Ok([]) => out.push_str(r#"<tr class="empty"><td colspan="4">No Events.</td></tr>"#),
        Ok(list) => {
            for e in list {
                out.push_str(&format!(
                    r#"<tr class="event event-{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                    esc(&e.kind.to_ascii_lowercase()),
                    esc(&e.time),
                    esc(&e.kind),
                    esc(&e.reason),
                    esc(&e.note)
                ));
            }
        }
    }
    out.push_str("</tbody></table>");
    out
}

fn decisions_table(decisions: &[DecisionRecord]) -> String {
    let mut out = String::from(
        r#"<table id="decisions"><caption>Decision record (newest first)</caption><thead><tr><th scope="col">Time</th><th scope="col">Phase</th><th scope="col">Weight</th><th scope="col">Decision</th><th scope="col">Checks</th></tr></thead><tbody>"#,
    );
    for d in decisions.iter().rev() {
        let checks: Vec<String> = d
            .checks
            .iter()
            .map(|k| format!("{} {}", k.name, check_text(k)))
            .collect();
        out.push_str(&format!(
            r#"<tr class="decision"><td><time datetime="{}">{}</time></td><td>{}</td><td>{}%</td><td>{}</td><td>{}</td></tr>"#,
            d.time.to_rfc3339(),
            d.time.format("%Y-%m-%d %H:%M:%S"),
            esc(d.phase.as_str()),
            d.weight,
            esc(&d.action),
            esc(&checks.join("; "))
        ));
    }
    if decisions.is_empty() {
        out.push_str(r#"<tr class="empty"><td colspan="5">No decisions yet.</td></tr>"#);
    }
    out.push_str("</tbody></table>");
    out
}

fn spec_summary(c: &Canary) -> String {
    let s = &c.spec;
    let a = &s.analysis;
    let plan = crate::analysis::Plan::new(s, s.provider.as_deref().unwrap_or("kubernetes"));
    let metrics: Vec<String> = a.metrics.iter().flatten().map(|m| m.name.clone()).collect();
    let mut items = vec![
        (
            "Target",
            format!("{:?} {}", s.target_ref.kind, s.target_ref.name),
        ),
        (
            "Provider",
            s.provider
                .clone()
                .unwrap_or_else(|| "(controller default)".into()),
        ),
        ("Strategy", format!("{:?}", plan.strategy)),
        ("Interval", a.interval.clone()),
        ("Threshold", a.threshold.to_string()),
    ];
    if !plan.weights.is_empty() {
        let w: Vec<String> = plan.weights.iter().map(|w| format!("{w}%")).collect();
        items.push(("Weights", w.join(", ")));
    }
    if plan.iterations > 0 {
        items.push(("Iterations", plan.iterations.to_string()));
    }
    items.push((
        "Metrics",
        if metrics.is_empty() {
            "none".into()
        } else {
            metrics.join(", ")
        },
    ));
    items.push(("Suspended", s.suspend.unwrap_or(false).to_string()));
    items.push((
        "Skip analysis",
        s.skip_analysis.unwrap_or(false).to_string(),
    ));
    let body: String = items.iter().map(|(k, v)| dl_item(k, &esc(v))).collect();
    format!(r#"<dl id="spec">{body}</dl>"#)
}

fn action_forms(ns: &str, name: &str, csrf: &str) -> String {
    let action = format!("{}/action", canary_href(ns, name));
    let mut out = String::from(
        r#"<section aria-labelledby="actions-h"><h2 id="actions-h">Actions</h2><div class="actions">"#,
    );
    for (verb, label) in [
        ("promote", "Promote"),
        ("abort", "Abort"),
        ("pause", "Pause"),
        ("resume", "Resume"),
    ] {
        out.push_str(&format!(
            r#"<form class="action" method="post" action="{a}"><input type="hidden" name="csrf" value="{c}"><button type="submit" name="action" value="{verb}">{label}</button></form>"#,
            a = esc(&action),
            c = esc(csrf),
        ));
    }
    out.push_str("</div></section>");
    out
}

/// The page's main content.
pub fn body(c: &Canary, extras: &Extras, now: DateTime<Utc>) -> String {
    let row = Row::of(c, now);
    let status = c.status.clone().unwrap_or_default();
    let mut out = format!("<h1>{}</h1>\n", esc(&row.key()));
    if let Some(o) = &extras.outcome {
        let role = if o.refused { "alert" } else { "status" };
        out.push_str(&format!(
            r#"<p id="action-result" role="{role}">{}</p>"#,
            esc(&o.message)
        ));
    }
    let mut state = String::new();
    state.push_str(&dl_item("Phase", &phase_badge(&row.phase, Some("phase"))));
    state.push_str(&dl_item(
        "Canary weight",
        &format!(
            r#"<span id="canary-weight" data-canary-weight="{0}">{0}%</span>"#,
            row.canary_weight
        ),
    ));
    state.push_str(&dl_item(
        "Failed checks",
        &format!(
            r#"<span id="failed-checks">{} / {}</span>"#,
            row.failed_checks, row.threshold
        ),
    ));
    // Ids so that /events keeps them current (dashboard.js), like the phase and the weight.
    let live = |id: &str, v: &str| format!(r#"<span id="{id}">{}</span>"#, esc(v));
    state.push_str(&dl_item("Step", &live("step", &row.step)));
    state.push_str(&dl_item("Next step", &live("next-step", &row.next_step)));
    state.push_str(&dl_item("Last transition", &esc(&row.last_transition)));
    if let Some(a) = &status.last_action {
        state.push_str(&dl_item("Last operator action", &esc(a)));
    }
    out.push_str(&format!(
        r#"<dl id="state" class="state" data-canary="{}">{state}</dl>"#,
        esc(&row.key())
    ));
    if let Some(csrf) = &extras.actions_csrf {
        out.push_str(&action_forms(&row.namespace, &row.name, csrf));
    }
    let d = &status.decisions;
    out.push_str(r#"<section aria-labelledby="chart-h"><h2 id="chart-h">Weight over time</h2>"#);
    out.push_str(&weight_svg(d, row.canary_weight, now));
    out.push_str("</section>\n");
    for (id, title, table) in [
        ("checks-h", "Checks", checks_table(d)),
        ("webhooks-h", "Webhooks", webhooks_table(c, d)),
        (
            "events-h",
            "Events",
            events_table(extras.events.as_deref().map_err(String::as_str)),
        ),
        ("decisions-h", "Decisions", decisions_table(d)),
        ("spec-h", "Spec", spec_summary(c)),
    ] {
        out.push_str(&format!(
            r#"<section aria-labelledby="{id}"><h2 id="{id}">{title}</h2>{table}</section>"#
        ));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_addresses_lose_user_info_and_query_strings() {
        assert_eq!(
            shown_url("https://user:pw@hooks.example.com:8443/gate/check?token=s3cret#x"),
            "https://hooks.example.com:8443/gate/check"
        );
        assert_eq!(shown_url("not a url"), "(not a URL)");
    }
}
