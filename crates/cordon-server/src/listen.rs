//! The accept loop, with the bounds `axum::serve` does not set: at most `max_connections` open at
//! once (the next connection waits in the kernel's backlog until one closes), a header that must
//! arrive within `header_timeout` (hyper closes the connection otherwise; without a timer hyper
//! waits forever, so one client holding many half-sent requests could hold the server's memory and
//! every slot), and a whole request — the body included — within `request_timeout` (408).
//! Graceful shutdown: stop accepting, let each connection finish the request it is serving (an
//! acknowledged batch is always stored), then return once every connection has closed.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// The bounds one server holds to (flags of `cordon server`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
}

/// Adds the whole-request bound to the router.
pub fn bounded(router: Router, limits: Limits) -> Router {
    let t = limits.request_timeout;
    router.layer(axum::middleware::from_fn(move |req: Request, next: Next| within(t, req, next)))
}

async fn within(t: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(t, next.run(req)).await {
        Ok(r) => r,
        Err(_) => crate::http::json_error(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request took longer than {} s (a slow body?): send it again, or smaller", t.as_secs_f64()),
        ),
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains the open connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Sent once, at shutdown: each connection then finishes its request and closes.
    let (stop_tx, stop_rx) = watch::channel(false);
    let router = bounded(router, limits);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let (stream, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                // A failed accept (EMFILE, a reset before accept) ends one connection, not the
                // server; a short pause keeps EMFILE from spinning.
                Err(e) => {
                    eprintln!("cordon server: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a slot until it has closed: all slots back means all done.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
    Ok(())
}
