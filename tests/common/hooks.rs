//! A webhook and the payload's subject as the hook tests build them.

use serde_json::json;
use serin::api::CanaryWebhook;
use serin::hooks::Subject;

/// A webhook named `h` to `url` (timeout 500 ms) with `extra` fields merged in.
pub fn hook(url: String, extra: serde_json::Value) -> CanaryWebhook {
    let mut v = json!({"name": "h", "url": url, "timeout": "500ms"});
    json_patch::merge(&mut v, &extra);
    serde_json::from_value(v).unwrap()
}

/// The payload's view of a Canary podinfo.test in Progressing.
pub fn subject() -> Subject {
    Subject {
        name: "podinfo".into(),
        namespace: "test".into(),
        phase: "Progressing".into(),
        checksum: "abc".into(),
    }
}
