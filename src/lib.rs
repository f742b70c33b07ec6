//! Serin: a progressive-delivery operator for Kubernetes.
//!
//! `api` holds the kinds; `analysis` the pure decision core; the adapters (controller, routers,
//! metrics, notifiers, hooks) do the I/O around it. See `../shared/DESIGN.md` for the picture.
#![forbid(unsafe_code)]

pub mod analysis;
pub mod api;
pub mod cli;
pub mod controller;
pub mod dashboard;
pub mod demo;
pub mod hooks;
pub mod loadtester;
pub mod manifest;
pub mod metrics;
pub mod migrate;
pub mod notify;
pub mod rbac;
pub mod router;

pub mod schema;
pub mod signing;
pub mod sim;
pub mod telemetry;
pub mod workload;
