//! An invalid setting stops the real gateway binary with a non-zero exit and a
//! message that names the variable.
#![allow(clippy::unwrap_used)]

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

fn run_with(var: &str, value: &str) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
    for name in gateway::config::ENV_VARS {
        command.env_remove(name);
    }
    let mut child = command
        .env_remove(gateway::config::CONFIG_FILE_VAR)
        .env("RUST_BACKTRACE", "0")
        // Should the value be accepted by mistake, do not take port 8080.
        .env("GATEWAY_HTTP_ADDR", "127.0.0.1:0")
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
            panic!("gateway with {var}={value:?} did not exit");
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
        ("GATEWAY_ORDERS_TIMEOUT", "soon", "expected a Go duration"),
        ("GATEWAY_ORDERS_TIMEOUT", "-1s", "must not be negative"),
        ("GATEWAY_ORDERS_TIMEOUT", "0", "must be greater than 0"),
        (
            "ORDERS_GRPC_ADDR",
            "nonsense",
            "expected host:port or http://host:port",
        ),
        ("ORDERS_GRPC_ADDR", "ftp://orders:1", "unsupported scheme"),
        (
            "ORDERS_GRPC_ADDR",
            "https://orders:50051",
            "https is not supported",
        ),
        (
            "GATEWAY_HTTP_ADDR",
            "x:y",
            "is not a number from 0 to 65535",
        ),
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
