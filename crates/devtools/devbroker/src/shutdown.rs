//! The broker's stop signal: a `watch<bool>` that turns `true` once shutdown is asked for.

use tokio::sync::watch;

/// Resolves once shutdown is requested (or the broker handle is gone). Unlike
/// `changed()`, it also resolves if the request was already seen by an earlier select.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
