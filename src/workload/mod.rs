//! Workloads: pure builders for the `-primary` Deployment, pod-template fingerprints, tracked
//! config references and checksums, readiness from a Deployment's status; and the thin adapter
//! functions that apply them (`apply`). The builders must not import tokio or do I/O.

pub mod apply;
mod configs;
pub mod primary;
mod readiness;

pub use configs::{ConfigRef, config_checksum, referenced_configs, rewrite_config_refs};
pub use primary::{PRIMARY_SUFFIX, build_primary, primary_name, template_hash};
pub use readiness::readiness;
