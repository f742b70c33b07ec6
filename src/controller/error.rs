//! Reconcile errors, each with a short metric label; reconcile errors become Warning Events with
//! a readable message (never a secret value).

/// What can stop a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A router could not create or move routes.
    #[error("routing: {0}")]
    Router(#[from] crate::router::RouterError),
    /// A write lost a race with another writer (409); retried, never surfaced as a failure.
    #[error("conflict while writing {0}; retrying")]
    Conflict(String),
    /// The permissions preflight found calls the ServiceAccount may not make; the text names them
    /// and the chart value that grants them.
    #[error("{0}")]
    Permissions(String),
}

impl Error {
    /// Label for the reconcile-errors metric.
    pub fn metric_label(&self) -> &'static str {
        if self.is_conflict() {
            return "conflict";
        }
        match self {
            Error::Kube(_) => "kube",
            Error::Router(_) => "router",
            Error::Conflict(_) => "conflict",
            Error::Permissions(_) => "forbidden",
        }
    }

    /// Whether the error is a 409 from the API server (retried quickly, not reported).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict(_))
            || matches!(self, Error::Kube(kube::Error::Api(s)) if s.code == 409)
            || matches!(self, Error::Router(crate::router::RouterError::Kube(kube::Error::Api(s))) if s.code == 409)
    }
}

/// Result of a reconcile step.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("x", "Conflict").with_code(code),
        ))
    }

    #[test]
    fn conflicts_are_recognised_wherever_they_come_from() {
        assert!(Error::Kube(api_error(409)).is_conflict());
        assert!(Error::Router(crate::router::RouterError::Kube(api_error(409))).is_conflict());
        assert!(!Error::Kube(api_error(500)).is_conflict());
        assert_eq!(Error::Kube(api_error(500)).metric_label(), "kube");
        assert_eq!(Error::Kube(api_error(409)).metric_label(), "conflict");
    }
}
