//! An invalid setting stops the real binary with a non-zero exit and a message that
//! names the variable.
#![allow(clippy::unwrap_used)]

use std::path::Path;

#[test]
fn invalid_retention_settings_stop_the_binary_naming_the_variable() {
    let mut clear = payments::config::ENV_VARS.to_vec();
    clear.push(payments::config::CONFIG_FILE_VAR);
    for case in [
        ("OUTBOX_RETENTION", "a week", "Go duration"),
        ("PROCESSED_EVENTS_RETENTION", "-1h", "negative"),
        ("PROCESSED_EVENTS_RETENTION", "10m", "at least 1h"),
        ("DEAD_LETTERS_RETENTION", "30d", "unknown unit"),
        ("RETENTION_INTERVAL", "0", "must not be 0"),
        ("RETENTION_INTERVAL", "often", "Go duration"),
        ("RETENTION_BATCH", "0", "from 1 to 100000"),
        ("RETENTION_BATCH", "1000000", "from 1 to 100000"),
        ("RETENTION_BATCH", "many", ""),
    ] {
        testkit::assert_setting_refused(
            Path::new(env!("CARGO_BIN_EXE_payments")),
            &clear,
            &[],
            case,
        );
    }
}
