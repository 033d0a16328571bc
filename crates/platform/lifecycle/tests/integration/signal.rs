//! A SIGTERM that arrives the moment `shutdown_on_signal` has returned cancels the
//! token; it must never hit the default action, which would kill the process (and
//! this test with it) before in-flight work is finished.

use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "current_thread")]
async fn sigterm_right_after_start_up_cancels_the_token() {
    let token = lifecycle::shutdown_on_signal();
    // On a current-thread runtime the spawned task has not run yet: the handler
    // must already be in place when the signal arrives.
    let sent = Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    tokio::time::timeout(Duration::from_secs(10), token.cancelled())
        .await
        .expect("SIGTERM did not cancel the shutdown token");
}
