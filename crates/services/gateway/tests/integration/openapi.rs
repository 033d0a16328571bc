//! The gateway's OpenAPI description (`crates/services/gateway/openapi.yaml`, served at
//! `GET /openapi.yaml`) agrees with what the gateway does: schemathesis generates
//! valid and invalid requests from it, sends them to a real gateway in front of a
//! real orders on PostgreSQL, and checks every answer: no 5xx, only documented
//! statuses and content types, bodies matching their schemas, invalid data refused,
//! other methods 405 with `Allow`, a created order readable by its id.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
};

use testkit::{TestDatabase, runtime};

use crate::common;

#[test]
fn the_served_description_is_the_file_in_the_repository() {
    common::with_gateway("gateway_openapi_served", async |_orders, gateway, _db| {
        let response = reqwest::get(gateway.url("/openapi.yaml")).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/yaml");
        let served = response.text().await.unwrap();
        let file = std::fs::read_to_string(manifest_dir().join("openapi.yaml")).unwrap();
        assert_eq!(served, file);
    });
}

#[test]
fn schemathesis_finds_no_answer_that_disagrees_with_the_description() {
    let db = TestDatabase::new("gateway_openapi");
    let runtime = runtime();
    // The services keep running on the runtime's worker threads while this thread
    // waits for schemathesis.
    let (_orders, gateway) = runtime.block_on(common::orders_and_gateway(&db));
    let work_dir = tempfile::tempdir().unwrap();
    let output = Command::new("schemathesis")
        .arg("--config-file")
        .arg(manifest_dir().join("schemathesis.toml"))
        .args(["--no-color", "run"])
        // The file (which the other test shows is what the gateway serves): given the
        // served URL, schemathesis would leave `GET /openapi.yaml` itself untested.
        .arg(manifest_dir().join("openapi.yaml"))
        .args(["--url", &gateway.url("")])
        // A fixed seed: the same cases on every run, so a failure reproduces.
        .args(["--seed", "1", "--max-examples", "40"])
        .args(["--generation-database", "none", "--request-timeout", "10"])
        .current_dir(work_dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| {
            panic!("cannot run schemathesis ({err}); scripts/setup-test-tools.sh installs it")
        });
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found disagreements ({}):\n{report}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    // It really tested something: every operation, in every phase.
    assert!(report.contains("Tested: 8"), "{report}");
    for phase in ["Examples", "Coverage", "Fuzzing", "Stateful"] {
        assert!(report.contains(&format!("✅ {phase}")), "{phase}: {report}");
    }
    assert!(report.contains("No issues found"), "{report}");
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
