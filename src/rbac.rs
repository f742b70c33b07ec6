//! The shape of an RBAC rule, a leaf every seam uses to declare the permissions its calls need next
//! to the code that makes them (`controller::RBAC`, `workload::RBAC`, each router's `RBAC`,
//! `controller::leader::RBAC`); the collection lives with the controller (`controller::rbac`).
//! The dashboard's action reviews are declared here ([`DASHBOARD_ACTIONS_RBAC`]) so the chart's
//! rules and their test do not depend on the dashboard's module.
//! Pure data: must not import kube or any module that declares rules.

/// When a rule is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needed {
    /// Always, in the namespaces the controller watches.
    Always,
    /// Only with leader election, in the controller's own namespace.
    LeaderElection,
    /// Only when this router is enabled (the chart's `routers.<name>` value).
    Router(&'static str),
    /// Only when this integration is enabled (the chart's `integrations.<name>` value): Keptn's
    /// metrics, KEDA's ScaledObjects, the External Metrics API. Off by default.
    Integration(&'static str),
    /// Granted to every authenticated user by Kubernetes itself (the `system:basic-user`
    /// ClusterRole): the chart does not grant it, and a Role could not (it is cluster-scoped).
    Everyone,
    /// Only where Secrets are tracked (`--secret-namespaces`; the chart's `secretTracking`):
    /// in the watched namespaces by default, in a Role per named namespace, or nowhere.
    SecretTracking,
    /// Only when the dashboard may act (`serin controller --dashboard-actions`; the chart's
    /// `dashboard.actions`): the reviews that authorize a browser's action. Cluster-scoped
    /// resources, so always in a ClusterRole.
    DashboardActions,
}

/// One RBAC rule: these verbs on these resources of one API group.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// API group (`""` for core).
    pub group: &'static str,
    /// Plural resources, with `/subresource` where one is meant.
    pub resources: &'static [&'static str],
    /// RBAC verbs.
    pub verbs: &'static [&'static str],
    /// When the rule applies.
    pub needed: Needed,
    /// Why Serin needs it (shown in the README's Security section).
    pub why: &'static str,
}

/// One permission as an authorizer sees it: (group, resource, verb).
pub type Grant = (String, String, String);

/// The calls the controller's dashboard makes before it acts for a browser (dashboard contract,
/// "Authorisation of actions"): who the bearer token belongs to, then whether that user may patch
/// the Canary. Only then does the controller set the action annotation (its own `patch`).
pub const DASHBOARD_ACTIONS_RBAC: &[Rule] = &[
    Rule {
        group: "authentication.k8s.io",
        resources: &["tokenreviews"],
        verbs: &["create"],
        needed: Needed::DashboardActions,
        why: "dashboard actions: who a browser's bearer token belongs to (TokenReview), before acting for it",
    },
    Rule {
        group: "authorization.k8s.io",
        resources: &["subjectaccessreviews"],
        verbs: &["create"],
        needed: Needed::DashboardActions,
        why: "dashboard actions: whether that user may patch the Canary (SubjectAccessReview); only then is the `serin.io/action` annotation set",
    },
];
