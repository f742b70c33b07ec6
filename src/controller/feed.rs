//! The controller's Canary cache shared with a reader outside the controller (the dashboard), so
//! that the reader never lists or watches Canaries itself. Must not import the dashboard.

use std::sync::Arc;

use kube::runtime::reflector::Store;
use tokio::sync::watch;

use crate::api::Canary;

/// The controller's Canary cache shared with a reader outside it (the dashboard), so that it never
/// lists or watches Canaries itself: the store of the running controller (None while standing by
/// for the lease) and a counter that moves on every event of the Canary watch, so the reader
/// waits for changes instead of polling.
#[derive(Clone)]
pub struct CanaryFeed {
    store: Arc<watch::Sender<Option<Store<Canary>>>>,
    changes: Arc<watch::Sender<u64>>,
}

impl Default for CanaryFeed {
    fn default() -> Self {
        let (store, changes) = (watch::Sender::new(None), watch::Sender::new(0));
        CanaryFeed {
            store: store.into(),
            changes: changes.into(),
        }
    }
}

/// Withdraws a shared store when dropped (the controller stopped: leadership lost, shutdown).
pub struct Shared(CanaryFeed);

impl Drop for Shared {
    fn drop(&mut self) {
        self.0.publish(None);
    }
}

impl CanaryFeed {
    /// Shares `store` (None: there is none now) and tells readers.
    pub fn publish(&self, store: Option<Store<Canary>>) {
        self.store.send_replace(store);
        self.touch();
    }

    /// Shares `store` until the returned guard is dropped.
    pub fn share(&self, store: Store<Canary>) -> Shared {
        self.publish(Some(store));
        Shared(self.clone())
    }

    /// Tells readers the store changed.
    pub fn touch(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Every cached Canary, or None when no store is shared.
    pub fn snapshot(&self) -> Option<Vec<Arc<Canary>>> {
        self.store.borrow().as_ref().map(|s| s.state())
    }

    /// A receiver that sees the counter move on every change.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}
