//! Readiness of a service's dependencies, as last checked.

use std::{collections::BTreeMap, sync::Mutex};

use serde_json::{Value, json};

/// The `code` of a not-ready answer from every service's operations server
/// (orders, payments, notifications), in the style of the Go gateway's
/// `ORDERS_UNAVAILABLE`; `error` and `checks` say which dependency and why.
pub const NOT_READY_CODE: &str = "NOT_READY";

/// The last known state of each dependency (`"database"`, `"broker"`, `"redis"`...).
#[derive(Debug)]
pub struct Health {
    checks: Mutex<BTreeMap<&'static str, Result<(), String>>>,
}

impl Health {
    /// Every dependency starts as "not checked yet", so a service is not ready
    /// before its first successful check.
    pub fn new(dependencies: &[&'static str]) -> Self {
        let checks = dependencies
            .iter()
            .map(|name| (*name, Err("not checked yet".to_owned())))
            .collect();
        Self {
            checks: Mutex::new(checks),
        }
    }

    pub fn set(&self, dependency: &'static str, result: Result<(), String>) {
        let mut checks = self
            .checks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let was_ok = checks.get(dependency).is_some_and(Result::is_ok);
        match (&result, was_ok) {
            (Ok(()), false) => tracing::info!(dependency, "dependency is reachable"),
            (Err(reason), true) => tracing::warn!(dependency, %reason, "dependency is unreachable"),
            _ => {}
        }
        checks.insert(dependency, result);
    }

    pub fn is_ready(&self) -> bool {
        let checks = self
            .checks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        checks.values().all(Result::is_ok)
    }

    /// `(ready, body)`: the `/readyz` answer. Ready:
    /// `{"status": "ready", "checks": {name: "ok", ...}}`. Not ready, the Go services'
    /// error fields plus the same detail:
    /// `{"error": "not ready: <name>: <reason>[; ...]", "code": "NOT_READY",
    /// "status": "not ready", "checks": {name: "ok" | reason, ...}}`.
    pub fn report(&self) -> (bool, Value) {
        let checks = self
            .checks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let details: serde_json::Map<String, Value> = checks
            .iter()
            .map(|(name, result)| {
                let state = match result {
                    Ok(()) => "ok".to_owned(),
                    Err(reason) => reason.clone(),
                };
                ((*name).to_owned(), Value::String(state))
            })
            .collect();
        let failing: Vec<String> = checks
            .iter()
            .filter_map(|(name, result)| {
                result
                    .as_ref()
                    .err()
                    .map(|reason| format!("{name}: {reason}"))
            })
            .collect();
        if failing.is_empty() {
            return (true, json!({ "status": "ready", "checks": details }));
        }
        let body = json!({
            "error": format!("not ready: {}", failing.join("; ")),
            "code": NOT_READY_CODE,
            "status": "not ready",
            "checks": details,
        });
        (false, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_and_not_ready_bodies_carry_the_go_fields_and_the_checks() {
        let health = Health::new(&["database", "broker"]);
        assert_eq!(
            health.report(),
            (
                false,
                json!({"error": "not ready: broker: not checked yet; database: not checked yet",
                       "code": "NOT_READY", "status": "not ready",
                       "checks": {"broker": "not checked yet", "database": "not checked yet"}})
            )
        );
        health.set("database", Ok(()));
        health.set("broker", Err("connection refused".to_owned()));
        assert!(!health.is_ready());
        assert_eq!(
            health.report(),
            (
                false,
                json!({"error": "not ready: broker: connection refused", "code": "NOT_READY",
                       "status": "not ready",
                       "checks": {"broker": "connection refused", "database": "ok"}})
            )
        );
        health.set("broker", Ok(()));
        assert!(health.is_ready());
        assert_eq!(
            health.report(),
            (
                true,
                json!({"status": "ready", "checks": {"broker": "ok", "database": "ok"}})
            )
        );
    }
}
