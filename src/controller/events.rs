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

/// What makes two Events the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    namespace: String,
    name: String,
    uid: String,
    warning: bool,
    reason: String,
    note: String,
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
        let key = Key {
            namespace: ns.clone(),
            name: regarding.name.clone().unwrap_or_default(),
            uid: regarding.uid.clone().unwrap_or_default(),
            warning,
            reason: reason.to_string(),
            note: note.to_string(),
        };
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
        let name = event_name(&key.name, now.as_nanosecond());
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
