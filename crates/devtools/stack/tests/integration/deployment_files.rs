//! docker-compose.yaml and the Nix flake agree with the code: compose runs only
//! images the flake builds (checked by `nix/check-compose.py`), and every
//! environment variable compose sets is one the service actually reads (its own, the
//! logging and the tracing `OTEL_*` variables).

use std::{collections::BTreeMap, path::PathBuf, process::Command};

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

#[test]
fn compose_images_are_the_flakes_and_its_variables_are_read_by_the_services() {
    let root = repository_root();
    let output = Command::new("python3")
        .arg(root.join("nix/check-compose.py"))
        .current_dir(&root)
        .output()
        .expect("python3 runs (scripts/setup-test-tools.sh installs PyYAML)");
    assert!(
        output.status.success(),
        "nix/check-compose.py failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let compose_env: BTreeMap<String, Vec<String>> =
        serde_json::from_slice(&output.stdout).unwrap();

    // The Kafka-using services read the Kafka connection's variables besides their own.
    let with_kafka = |own: &[&'static str]| [own, &settings::KafkaConnection::ENV_VARS].concat();
    let read_by: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        ("orders", with_kafka(orders::config::ENV_VARS)),
        ("payments", with_kafka(payments::config::ENV_VARS)),
        ("notifications", with_kafka(notifications::config::ENV_VARS)),
        ("gateway", gateway::config::ENV_VARS.to_vec()),
    ]);
    assert_eq!(
        compose_env.keys().map(String::as_str).collect::<Vec<_>>(),
        read_by.keys().copied().collect::<Vec<_>>(),
        "compose runs exactly the four services"
    );
    for (service, variables) in &compose_env {
        let known = &read_by[service.as_str()];
        for variable in variables {
            assert!(
                known.contains(&variable.as_str())
                    || lifecycle::ENV_VARS.contains(&variable.as_str())
                    || telemetry::ENV_VARS.contains(&variable.as_str()),
                "docker-compose.yaml sets {variable} for {service}, which {service} does not read"
            );
        }
    }
}
