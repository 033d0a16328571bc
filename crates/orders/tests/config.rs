//! An invalid setting stops the real binary with a non-zero exit and a message that
//! names the variable.
#![allow(clippy::unwrap_used)]

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

fn run_with(var: &str, value: &str) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orders"));
    for name in orders::config::ENV_VARS {
        command.env_remove(name);
    }
    let mut child = command
        .env_remove(orders::config::CONFIG_FILE_VAR)
        .env("RUST_BACKTRACE", "0")
        .env(var, value)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("orders with {var}={value:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn invalid_values_stop_the_binary_naming_the_variable() {
    for (var, value, expected) in [
        ("ORDERS_GRPC_ADDR", "nonsense", "is not a number"),
        (
            "ORDERS_HEALTH_ADDR",
            ":99999",
            "not a number from 0 to 65535",
        ),
        ("ORDERS_DB_TIMEOUT", "soon", "Go duration"),
        ("ORDERS_DB_POOL_SIZE", "lots", ""),
        ("ORDERS_DB_POOL_SIZE", "0", "at least 1"),
        ("KAFKA_BROKERS", "", ""),
    ] {
        let (code, stderr) = run_with(var, value);
        assert!(
            code.is_some_and(|code| code != 0),
            "{var}={value:?}: exit {code:?}\n{stderr}"
        );
        assert!(stderr.contains(var), "{var}={value:?}: {stderr}");
        assert!(stderr.contains(expected), "{var}={value:?}: {stderr}");
    }
}
