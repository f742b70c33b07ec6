//! Webhook and alert adapters of a reconcile: gating webhooks are called before the decision (the
//! core reads their outcomes), post-rollout hooks when an effect asks, and `event` hooks and
//! alerts are sent in the background so they never hold up or fail a reconcile. Secrets (signing
//! keys, chat webhook URLs) are read here and go nowhere but the outgoing request.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::Context;
use super::act::publish;
use crate::analysis::{EventType, HookOutcome, hooks_of};
use crate::api::{AlertProvider, AlertSeverity, Canary, CanaryStatus, HookType};
use crate::hooks::{self, EventInfo, Prepared, Subject};
use crate::notify::{Notification, Notifier, routes};
use crate::telemetry::CallLabels;

/// The payload's view of the Canary with this status.
pub fn subject(canary: &Canary, status: &CanaryStatus) -> Subject {
    Subject {
        name: canary.metadata.name.clone().unwrap_or_default(),
        namespace: canary.namespace_or_default(),
        phase: status.phase.to_string(),
        checksum: status.last_applied_spec.clone().unwrap_or_default(),
    }
}

async fn secret_key(
    ctx: &Context,
    ns: &str,
    name: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, String> {
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| format!("cannot read Secret {ns}/{name}: {e}"))?
        .ok_or_else(|| format!("Secret {ns}/{name} not found"))?;
    Ok(secret.data.and_then(|d| d.get(key).map(|v| v.0.clone())))
}

/// Calls every hook of `kinds` at once; outcomes by hook name. A hook whose signing Secret
/// cannot be read is not called and counts as unreachable, with the reason.
pub async fn call_hooks(
    ctx: &Context,
    canary: &Canary,
    kinds: &[HookType],
    subject: &Subject,
    event: Option<&EventInfo>,
) -> BTreeMap<String, HookOutcome> {
    let ns = canary.namespace_or_default();
    let mut ready = Vec::new();
    let mut out = BTreeMap::new();
    let mut kind_of = BTreeMap::new();
    for kind in kinds {
        for hook in hooks_of(&canary.spec, *kind) {
            kind_of.insert(hook.name.clone(), *kind);
            let key = match &hook.secret_ref {
                Some(s) => match secret_key(ctx, &ns, &s.name, "token").await {
                    Ok(k) => k,
                    Err(e) => {
                        out.insert(hook.name.clone(), HookOutcome::Unreachable(e));
                        continue;
                    }
                },
                None => None,
            };
            ready.push(Prepared { hook, key });
        }
    }
    out.extend(hooks::call_all(&ready, subject, event).await);
    for (name, outcome) in &out {
        let kind = kind_of.get(name).map(label_of).unwrap_or_default();
        let outcome = if outcome.is_success() {
            "success"
        } else {
            "failure"
        };
        ctx.settings
            .telemetry
            .webhooks
            .get_or_create(&CallLabels {
                kind,
                outcome: outcome.into(),
            })
            .inc();
    }
    out
}

/// The serde name of an enum value (`confirm-rollout`, `slack`) for metric labels.
fn label_of(v: &impl serde::Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// Posts an Event to the `event` hooks and the controller's `--event-webhook`, in the background.
pub fn post_event(
    ctx: &Arc<Context>,
    canary: &Canary,
    subject: Subject,
    kind: EventType,
    message: &str,
) {
    let has_hooks = hooks_of(&canary.spec, HookType::Event).next().is_some();
    if !has_hooks && ctx.settings.event_webhook.is_none() {
        return;
    }
    let info = EventInfo {
        message: message.to_string(),
        kind: format!("{kind:?}"),
        timestamp: chrono::Utc::now().timestamp_millis().to_string(),
    };
    let (ctx, canary) = (ctx.clone(), canary.clone());
    tokio::spawn(async move {
        let outcomes = call_hooks(&ctx, &canary, &[HookType::Event], &subject, Some(&info)).await;
        for (name, o) in outcomes.iter().filter(|(_, o)| !o.is_success()) {
            tracing::warn!(hook = %name, outcome = %o.describe(), "event webhook failed");
        }
        if let Some(url) = &ctx.settings.event_webhook {
            let hook = crate::api::CanaryWebhook {
                name: "event-webhook".into(),
                url: url.clone(),
                ..Default::default()
            };
            let body = hooks::payload(&subject, &hook, Some(&info));
            let outcome = hooks::call(
                &Prepared {
                    hook: &hook,
                    key: None,
                },
                &body,
            )
            .await;
            if !outcome.is_success() {
                tracing::warn!(outcome = %outcome.describe(), "--event-webhook failed");
            }
        }
    });
}

fn count_alert(ctx: &Context, notifier: &Notifier, ok: bool) {
    ctx.settings
        .telemetry
        .alerts
        .get_or_create(&CallLabels {
            kind: label_of(&notifier.kind),
            outcome: if ok { "success" } else { "failure" }.into(),
        })
        .inc();
}

/// The notifier of one AlertProvider (address and signing key from its Secret when it has one).
async fn notifier_of(ctx: &Context, ns: &str, name: &str) -> Result<Notifier, String> {
    let p = Api::<AlertProvider>::namespaced(ctx.client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| format!("cannot read AlertProvider {ns}/{name}: {e}"))?
        .ok_or_else(|| format!("AlertProvider {ns}/{name} not found"))?;
    let (mut url, mut key) = (p.spec.address.clone(), None);
    if let Some(s) = &p.spec.secret_ref {
        let text = |v: Vec<u8>| String::from_utf8_lossy(&v).trim().to_string();
        url = secret_key(ctx, ns, &s.name, "address")
            .await?
            .map(text)
            .or(url);
        key = secret_key(ctx, ns, &s.name, "token").await?;
        if url.is_none() {
            return Err(format!(
                "Secret {ns}/{} of AlertProvider {name} has no key 'address'",
                s.name
            ));
        }
    }
    Ok(Notifier {
        kind: p.spec.r#type,
        url: url.ok_or_else(|| format!("AlertProvider {ns}/{name} has no address"))?,
        channel: p.spec.channel.clone(),
        username: p.spec.username.clone(),
        proxy: p.spec.proxy.clone(),
        key,
        timeout: crate::notify::TIMEOUT,
    })
}

/// Sends an alert to the Canary's alert providers (by severity), or to the controller's default
/// provider when the Canary names none; in the background.
pub fn alert(
    ctx: &Arc<Context>,
    canary: &Canary,
    phase: String,
    severity: AlertSeverity,
    message: &str,
) {
    let n = Notification {
        name: canary.metadata.name.clone().unwrap_or_default(),
        namespace: canary.namespace_or_default(),
        phase,
        severity,
        message: message.to_string(),
        cluster: ctx.settings.cluster_name.clone(),
    };
    let (ctx, canary) = (ctx.clone(), canary.clone());
    tokio::spawn(async move {
        let alerts = canary.spec.analysis.alerts.clone().unwrap_or_default();
        if alerts.is_empty() {
            if let Some((notifier, min)) = &ctx.settings.default_alerts
                && routes(*min, n.severity)
            {
                let sent = notifier.send(&n).await;
                count_alert(&ctx, notifier, sent.is_ok());
                if let Err(e) = sent {
                    tracing::warn!(error = %e, "default alert provider");
                }
            }
            return;
        }
        for a in alerts
            .iter()
            .filter(|a| routes(a.severity.unwrap_or_default(), n.severity))
        {
            let ns = a
                .provider_ref
                .namespace
                .clone()
                .unwrap_or_else(|| canary.namespace_or_default());
            let sent = match notifier_of(&ctx, &ns, &a.provider_ref.name).await {
                Ok(notifier) => {
                    let sent = notifier.send(&n).await;
                    count_alert(&ctx, &notifier, sent.is_ok());
                    sent
                }
                Err(e) => Err(e),
            };
            if let Err(e) = sent {
                tracing::warn!(alert = %a.name, error = %e, "alert not delivered");
                publish(
                    &ctx,
                    &canary,
                    EventType::Warning,
                    "AlertFailed",
                    &format!("alert '{}': {e}", a.name),
                )
                .await;
            }
        }
    });
}
