//! Kubernetes Events (events.k8s.io/v1) about Canaries, sent as kube-rs's `Recorder` sends them
//! (a POST, then a merge patch of `series` when the same Event happens again — transcript 13),
//! with two differences that matter here: an Event is "the same" only when its reason AND its
//! message are (kube's recorder folds a new message into the series of the last Event with that
//! reason, so a new refusal would show the old text), and the Event's name is cut to fit the
//! 253-character limit (a Canary name of 236+ characters made every Event invalid).
//! Must not decide anything; a failure to record is the caller's to log.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};

/// How long an Event is continued as a series rather than sent anew (kube's recorder: 6 min).
const SERIES_TTL: Duration = Duration::from_secs(6 * 60);
/// Longest Kubernetes object name.
const MAX_NAME: usize = 253;

/// What makes two Events the same: the regarded object (namespace, name, uid), the type, the
/// reason and the message. Kept as a 128-bit digest of them, not the strings: the series cache
/// holds every Event sent in the last 6 minutes (9 per Canary per rollout), and its copies of the
/// messages were ~1 MiB of the heap at 300 Canaries (docs/performance.md, "Controller memory").
type Key = [u8; 16];

/// The [`Key`] of an Event. Each field is length-prefixed, so ("ab", "c") and ("a", "bc") differ.
fn key(namespace: &str, name: &str, uid: &str, warning: bool, reason: &str, note: &str) -> Key {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for field in [namespace, name, uid, reason, note] {
        h.update((field.len() as u64).to_le_bytes());
        h.update(field.as_bytes());
    }
    h.update([u8::from(warning)]);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize()[..16]);
    out
}

/// Sends Events for one controller instance.
pub struct Recorder {
    client: kube::Client,
    controller: String,
    instance: String,
    sent: tokio::sync::Mutex<HashMap<Key, (String, i32, Instant)>>,
}

/// The Event name for an object: its name (cut short when needed) and a unique suffix.
pub fn event_name(object: &str, nanos: i128) -> String {
    let suffix = format!(".{nanos:x}");
    let room = MAX_NAME - suffix.len();
    let mut prefix: String = object.chars().take(room).collect();
    // A name must end with an alphanumeric character before the dot.
    while prefix.ends_with(['-', '.']) {
        prefix.pop();
    }
    format!("{prefix}{suffix}")
}

impl Recorder {
    /// A recorder reporting as `controller` (instance: the pod name, else the controller).
    pub fn new(client: kube::Client, controller: &str, instance: Option<String>) -> Recorder {
        Recorder {
            client,
            controller: controller.to_string(),
            instance: instance.unwrap_or_else(|| controller.to_string()),
            sent: Default::default(),
        }
    }

    /// Records an Event about `regarding`; the same reason and message again within a few minutes
    /// continues the series of the first (one Event object with a count).
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        warning: bool,
        reason: &str,
        note: &str,
    ) -> kube::Result<()> {
        let ns = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let object = regarding.name.clone().unwrap_or_default();
        let uid = regarding.uid.as_deref().unwrap_or_default();
        let key = key(&ns, &object, uid, warning, reason, note);
        let now = jiff::Timestamp::now();
        let mut sent = self.sent.lock().await;
        sent.retain(|_, (_, _, at)| at.elapsed() < SERIES_TTL);
        if let Some((name, count, _)) = sent.get(&key).cloned() {
            let series = EventSeries {
                count: count + 1,
                last_observed_time: MicroTime(now),
            };
            let patch = serde_json::json!({"series": series});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
            sent.insert(key, (name, count + 1, Instant::now()));
            return Ok(());
        }
        let name = event_name(&object, now.as_nanosecond());
        let event = Event {
            action: Some(reason.to_string()),
            reason: Some(reason.to_string()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            note: Some(note.to_string()),
            metadata: ObjectMeta {
                namespace: Some(ns),
                name: Some(name.clone()),
                ..Default::default()
            },
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(if warning { "Warning" } else { "Normal" }.to_string()),
            ..Default::default()
        };
        api.create(&PostParams::default(), &event).await?;
        sent.insert(key, (name, 1, Instant::now()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_event_has_the_same_key_and_any_difference_another() {
        let k = key("ns", "web", "u1", false, "Synced", "Advance weight 10");
        assert_eq!(
            k,
            key("ns", "web", "u1", false, "Synced", "Advance weight 10")
        );
        let others = [
            key("ns2", "web", "u1", false, "Synced", "Advance weight 10"),
            key("ns", "web2", "u1", false, "Synced", "Advance weight 10"),
            key("ns", "web", "u2", false, "Synced", "Advance weight 10"),
            key("ns", "web", "u1", true, "Synced", "Advance weight 10"),
            key("ns", "web", "u1", false, "Rollback", "Advance weight 10"),
            key("ns", "web", "u1", false, "Synced", "Advance weight 20"),
        ];
        for o in others {
            assert_ne!(k, o);
        }
        // Fields do not run into each other.
        assert_ne!(
            key("ab", "c", "", false, "r", "n"),
            key("a", "bc", "", false, "r", "n")
        );
    }

    #[test]
    fn event_names_fit_the_limit_whatever_the_object_name() {
        for len in [1, 200, 236, 240, 253] {
            let object = "a".repeat(len);
            let name = event_name(&object, 0x187a_5c1d_2e3f_4a5b);
            assert!(name.len() <= MAX_NAME, "{len}: {}", name.len());
            assert!(name.starts_with('a') && name.ends_with("4a5b"));
        }
        assert_eq!(event_name("web", 255), "web.ff");
        let dashed = format!("{}-{}", "a".repeat(235), "b".repeat(20));
        assert!(!event_name(&dashed, 0x1234_5678_9abc_def0).contains("-."));
    }
}
