//! The embedded API server's network front: its own accept loop on 127.0.0.1 that keeps every
//! connection task in one `JoinSet`, so that an outage closes the listening socket and every open
//! connection (watch streams included) at once, and a restart listens again on the same port.
//! `axum::serve` cannot do that: the connection tasks it spawns outlive its own task.
//! HTTP/1.1 only, like the axum server this replaces (axum is built without http2 here).
//! Must not import the controller or the decision core.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// A lock that survives a panicked holder: the data here (a listener, task handles) stays usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The listening socket and the connection tasks while the server is up.
struct Live {
    /// Shared with the accept loop, which only borrows it inside `poll_accept`, so `go_down` can
    /// drop it synchronously: a connect made right after `go_down` returns is refused.
    listener: Arc<Mutex<Option<TcpListener>>>,
    accept: JoinHandle<()>,
    connections: Arc<Mutex<JoinSet<()>>>,
}

/// The server's front door on a fixed address.
pub struct Front {
    addr: SocketAddr,
    router: axum::Router,
    live: Mutex<Option<Live>>,
}

impl Front {
    /// Starts serving `router` on a bound listener (its address is kept for restarts).
    pub fn start(listener: std::net::TcpListener, router: axum::Router) -> std::io::Result<Front> {
        let addr = listener.local_addr()?;
        let front = Front {
            addr,
            router,
            live: Mutex::new(None),
        };
        front.serve(listener)?;
        Ok(front)
    }

    /// The address the server listens on (the same across outages).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the server is listening.
    pub fn is_up(&self) -> bool {
        lock(&self.live).is_some()
    }

    /// Closes the listening socket and every open connection. A request being handled on another
    /// thread at this instant may still reach the state, but its answer is never delivered, as
    /// when a real kube-apiserver process dies.
    pub fn go_down(&self) {
        let Some(live) = lock(&self.live).take() else {
            return;
        };
        drop(lock(&live.listener).take());
        live.accept.abort();
        // Aborted tasks are dropped by the runtime before they run again, and their sockets
        // with them; nothing is polled in between, so no further request is served.
        lock(&live.connections).abort_all();
    }

    /// Listens again on the same address (idempotent while up). Binding happens under the lock
    /// so two concurrent calls cannot race for the port.
    pub fn come_back(&self) -> std::io::Result<()> {
        let mut live = lock(&self.live);
        if live.is_some() {
            return Ok(());
        }
        // std's bind sets SO_REUSEADDR on Unix, so connections we closed (now in TIME_WAIT on
        // this port) do not keep the port from being bound again.
        let std_listener = std::net::TcpListener::bind(self.addr)?;
        *live = Some(self.spawn(std_listener)?);
        Ok(())
    }

    fn serve(&self, std_listener: std::net::TcpListener) -> std::io::Result<()> {
        let live = self.spawn(std_listener)?;
        *lock(&self.live) = Some(live);
        Ok(())
    }

    fn spawn(&self, std_listener: std::net::TcpListener) -> std::io::Result<Live> {
        std_listener.set_nonblocking(true)?;
        let listener = Arc::new(Mutex::new(Some(TcpListener::from_std(std_listener)?)));
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let accept = tokio::spawn(accept_loop(
            listener.clone(),
            connections.clone(),
            self.router.clone(),
        ));
        Ok(Live {
            listener,
            accept,
            connections,
        })
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.go_down();
    }
}

/// Accepts connections until the listener is taken away, serving each in a tracked task.
async fn accept_loop(
    listener: Arc<Mutex<Option<TcpListener>>>,
    connections: Arc<Mutex<JoinSet<()>>>,
    router: axum::Router,
) {
    loop {
        let accepted = std::future::poll_fn(|cx| match lock(&listener).as_ref() {
            Some(l) => l.poll_accept(cx).map(Some),
            None => Poll::Ready(None),
        })
        .await;
        let stream = match accepted {
            None => return,
            Some(Ok((stream, _))) => stream,
            // Out of file descriptors and the like: wait a little instead of spinning.
            Some(Err(_)) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Watch events are small writes; Nagle plus delayed ACKs would hold them back ~40 ms.
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let mut set = lock(&connections);
        // Forget finished connections so the set does not grow with every client that came.
        while set.try_join_next().is_some() {}
        set.spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
