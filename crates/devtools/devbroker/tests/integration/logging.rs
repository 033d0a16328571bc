//! Logging settings every binary shares (through `lifecycle`), checked on the
//! devbroker binary because it needs no database: `LOG_FORMAT=json` writes one JSON
//! object per line, and an invalid `LOG_FORMAT` or `RUST_LOG` stops the process with
//! a message naming the variable instead of logging differently than asked.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn devbroker() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_devbroker"));
    command
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .env_remove("LOG_FORMAT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let mut child = devbroker().env("LOG_FORMAT", "json").spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("listening on "), "{first:?}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{stderr}");

    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"))
        })
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .map(|line| {
            assert!(line["timestamp"].is_string(), "{line}");
            assert_eq!(line["level"], "INFO", "{line}");
            line["fields"]["message"].as_str().unwrap()
        })
        .collect();
    assert!(messages.contains(&"devbroker stopped"), "{messages:?}");
}

#[test]
fn invalid_logging_settings_stop_the_binary_naming_the_variable() {
    for (var, value, expected) in [
        (
            "LOG_FORMAT",
            "yaml",
            "LOG_FORMAT = \"yaml\": expected `text` or `json`",
        ),
        (
            "RUST_LOG",
            "devbroker=loud",
            "RUST_LOG = \"devbroker=loud\": not a log filter",
        ),
    ] {
        let mut child = devbroker().env(var, value).spawn().unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                panic!("{var}={value}: devbroker kept running");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{var}={value}: {stderr}");
        assert!(stderr.contains(expected), "{var}={value}: {stderr}");
        assert!(output.stdout.is_empty(), "{var}={value}: started anyway");
    }
}
