use serde_json::json;

use super::*;

fn note(severity: AlertSeverity) -> Notification {
    Notification {
        name: "podinfo".into(),
        namespace: "test".into(),
        phase: "Failed".into(),
        severity,
        message: "Rolling back podinfo.test failed checks threshold reached 2 (request-success-rate 75.00 not >= 99)".into(),
        cluster: Some("prod-eu".into()),
    }
}

fn notifier(kind: AlertProviderType) -> Notifier {
    Notifier {
        kind,
        url: "http://127.0.0.1:1/hook".into(),
        channel: Some("#deploys".into()),
        username: Some("serin".into()),
        proxy: None,
        key: None,
        timeout: TIMEOUT,
    }
}

const MSG: &str = "Rolling back podinfo.test failed checks threshold reached 2 (request-success-rate 75.00 not >= 99)";

#[test]
fn slack_payload() {
    assert_eq!(
        notifier(AlertProviderType::Slack).payload(&note(AlertSeverity::Error)),
        json!({"channel": "#deploys", "username": "serin", "attachments": [{"color": "danger", "author_name": "podinfo.test",
            "text": MSG, "mrkdwn_in": ["text"],
            "fields": [{"title": "Phase", "value": "Failed", "short": true}, {"title": "Cluster", "value": "prod-eu", "short": true}]}]})
    );
}

#[test]
fn msteams_payload() {
    assert_eq!(
        notifier(AlertProviderType::Msteams).payload(&note(AlertSeverity::Warn)),
        json!({"@type": "MessageCard", "@context": "http://schema.org/extensions", "themeColor": "DAA038", "summary": "podinfo.test",
            "sections": [{"activityTitle": "podinfo.test", "activitySubtitle": MSG,
                "facts": [{"name": "Phase", "value": "Failed"}, {"name": "Cluster", "value": "prod-eu"}]}]})
    );
}

#[test]
fn discord_payload() {
    assert_eq!(
        notifier(AlertProviderType::Discord).payload(&note(AlertSeverity::Info)),
        json!({"username": "serin", "embeds": [{"title": "podinfo.test", "description": MSG, "color": 0x2eb886,
            "fields": [{"name": "Phase", "value": "Failed", "inline": true}, {"name": "Cluster", "value": "prod-eu", "inline": true}]}]})
    );
}

#[test]
fn rocket_payload() {
    assert_eq!(
        notifier(AlertProviderType::Rocket).payload(&note(AlertSeverity::Error)),
        json!({"channel": "#deploys", "alias": "serin", "text": "podinfo.test", "attachments": [{"color": "danger", "title": "podinfo.test", "text": MSG,
            "fields": [{"title": "Phase", "value": "Failed", "short": true}, {"title": "Cluster", "value": "prod-eu", "short": true}]}]})
    );
}

#[test]
fn gchat_payload() {
    assert_eq!(
        notifier(AlertProviderType::Gchat).payload(&note(AlertSeverity::Error)),
        json!({"cards": [{"header": {"title": "podinfo.test", "subtitle": "Serin"}, "sections": [{"widgets": [
            {"textParagraph": {"text": MSG}},
            {"keyValue": {"topLabel": "Phase", "content": "Failed"}},
            {"keyValue": {"topLabel": "Cluster", "content": "prod-eu"}}]}]}]})
    );
}

#[test]
fn webhook_payload() {
    assert_eq!(
        notifier(AlertProviderType::Webhook).payload(&note(AlertSeverity::Warn)),
        json!({"name": "podinfo", "namespace": "test", "phase": "Failed", "severity": "warn", "message": MSG, "cluster": "prod-eu"})
    );
}

#[test]
fn severity_routing() {
    use AlertSeverity::*;
    let taken = |min| {
        [Info, Warn, Error]
            .into_iter()
            .filter(|s| routes(min, *s))
            .collect::<Vec<_>>()
    };
    assert_eq!(taken(Info), [Info, Warn, Error]);
    assert_eq!(taken(Warn), [Warn, Error]);
    assert_eq!(taken(Error), [Error]);
}

#[test]
fn debug_never_shows_the_url() {
    let mut n = notifier(AlertProviderType::Slack);
    n.url = "https://hooks.slack.com/services/T000/B000/s3cr3t".into();
    assert!(!format!("{n:?}").contains("s3cr3t"));
}
