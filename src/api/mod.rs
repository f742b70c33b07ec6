//! The Serin API: `Canary`, `MetricTemplate` and `AlertProvider` in `serin.io/v1beta1`.
//!
//! Field names, types and defaults follow Flagger's `flagger.app/v1beta1` so that a Flagger manifest
//! works after changing only `apiVersion`. Every field carries a `///` doc: it becomes the
//! `kubectl explain` text. This module holds plain data plus pure validation; it must not import
//! `tokio`, `reqwest` or anything that performs I/O.

mod alert_provider;
mod analysis;
pub mod baseline;
mod canary;
pub mod crd;
pub mod duration;
mod judge;
pub mod knative;
mod mesh;
mod metric_template;
mod post_promotion;
mod router_limits;
mod service;
mod status;
mod targets;
pub mod validate;
mod validate_providers;

pub use alert_provider::*;
pub use analysis::*;
pub use canary::*;
pub use judge::*;
pub use metric_template::*;
pub use post_promotion::*;
pub use service::*;
pub use status::*;
pub use validate::{FieldError, validate};

/// API group of every Serin kind.
pub const GROUP: &str = "serin.io";
/// API version served and stored.
pub const VERSION: &str = "v1beta1";
/// `apiVersion` value of Serin objects.
pub const API_VERSION: &str = "serin.io/v1beta1";
/// `apiVersion` of the Flagger objects Serin can read and convert.
pub const FLAGGER_API_VERSION: &str = "flagger.app/v1beta1";
/// Finalizer set on Canaries with `revertOnDeletion`.
pub const FINALIZER: &str = "serin.io/finalizer";
/// Field manager of every server-side apply Serin makes.
pub const FIELD_MANAGER: &str = "serin";

/// Schema helper: a JSON object of string values (labels, annotations, metadata).
pub type StringMap = std::collections::BTreeMap<String, String>;
