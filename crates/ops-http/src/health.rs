//! Readiness of a service's dependencies, as last checked.

use std::{collections::BTreeMap, sync::Mutex};

use serde_json::{Value, json};

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

    /// `(ready, {"status": "ready"|"not ready", "checks": {name: "ok"|reason}})`.
    pub fn report(&self) -> (bool, Value) {
        let checks = self
            .checks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let ready = checks.values().all(Result::is_ok);
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
        let status = if ready { "ready" } else { "not ready" };
        (ready, json!({ "status": status, "checks": details }))
    }
}
