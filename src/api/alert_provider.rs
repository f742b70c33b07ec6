//! The `AlertProvider` kind: a chat or webhook destination for canary alerts. Pure data.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SecretRef;

/// AlertProviderSpec says where alerts go: the service type and its address (inline or from a Secret).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "serin.io",
    version = "v1beta1",
    kind = "AlertProvider",
    namespaced,
    doc = "AlertProvider is a destination for canary alerts: Slack, Microsoft Teams, Discord, Rocket.Chat, Google Chat or a generic JSON webhook.",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "has(self.address) != has(self.secretRef)", "message": "set exactly one of address and secretRef"}]))]
pub struct AlertProviderSpec {
    /// Kind of service alerts are sent to.
    pub r#type: AlertProviderType,
    /// Channel to post to, where the service supports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// User name the alerts are posted as, where the service supports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Incoming-webhook URL of the service. Prefer secretRef: a URL with a token in it is a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// HTTP(S) proxy URL alerts are sent through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Secret (in the provider's namespace) with key `address` (the webhook URL) and optional `token`
    /// (an HMAC key used to sign the payload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
}

/// Kinds of alert destination.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertProviderType {
    /// Slack incoming webhook.
    #[default]
    Slack,
    /// Microsoft Teams incoming webhook.
    Msteams,
    /// Discord webhook (Slack-compatible endpoint).
    Discord,
    /// Rocket.Chat incoming webhook.
    Rocket,
    /// Google Chat webhook.
    Gchat,
    /// Generic JSON webhook (Serin's addition).
    Webhook,
}
