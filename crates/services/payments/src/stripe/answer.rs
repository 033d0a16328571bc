//! What one call's HTTP answer means: a decided payment (paid or declined, with the
//! provider's reason), a refusal that retrying cannot change, or "try again" (with
//! the `Retry-After` it asked for); and the parts of Stripe's JSON that say so.

use std::time::Duration;

use contracts::PaymentOutcome;
use serde::Deserialize;
use service_skeleton::ErrorChain;

use crate::provider::Decision;

/// One call's answer, classified.
pub(super) enum Answer {
    /// Paid, or declined: the payment is decided.
    Decided(Decision),
    /// The request refused, or a state retrying cannot change: give up now.
    Refused(String),
    /// No answer (or "not now"): try again, at the earliest after `retry_after`.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
}

/// A call that got no HTTP answer.
pub(super) fn transport_error(err: &reqwest::Error) -> (Answer, &'static str) {
    let outcome = if err.is_timeout() {
        "timeout"
    } else {
        "network"
    };
    (
        Answer::Retry {
            reason: ErrorChain(err).to_string(),
            retry_after: None,
        },
        outcome,
    )
}

/// `Retry-After` in seconds (the form Stripe and proxies send); a date is ignored.
pub(super) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[derive(Debug, Deserialize)]
struct PaymentIntent {
    id: String,
    status: String,
    #[serde(default)]
    last_payment_error: Option<StripeError>,
}

#[derive(Debug, Default, Deserialize)]
struct StripeError {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    decline_code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    payment_intent: Option<PaymentIntentRef>,
}

#[derive(Debug, Deserialize)]
struct PaymentIntentRef {
    id: String,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: StripeError,
}

impl StripeError {
    /// `code (decline_code): message`, with what Stripe gave of it.
    fn reason(&self, fallback: &str) -> String {
        let code = self
            .code
            .as_deref()
            .or(self.kind.as_deref())
            .unwrap_or(fallback);
        let mut reason = code.to_owned();
        if let Some(decline) = &self.decline_code {
            reason.push_str(&format!(" ({decline})"));
        }
        if let Some(message) = &self.message {
            reason.push_str(&format!(": {message}"));
        }
        reason
    }
}

/// What an HTTP answer means; see the module docs.
pub(super) fn classify(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> (Answer, &'static str) {
    let error = || {
        serde_json::from_slice::<ErrorBody>(body)
            .map(|body| body.error)
            .unwrap_or_default()
    };
    let retry = |reason: String| Answer::Retry {
        reason,
        retry_after,
    };
    match status {
        200..=299 => match serde_json::from_slice::<PaymentIntent>(body) {
            Ok(intent) => intent_answer(intent),
            Err(err) => (
                retry(format!("unreadable PaymentIntent (HTTP {status}): {err}")),
                "retryable",
            ),
        },
        402 => {
            let error = error();
            let decision = Decision {
                outcome: PaymentOutcome::Failed,
                reason: Some(error.reason("declined")),
                reference: error
                    .payment_intent
                    .as_ref()
                    .map(|intent| intent.id.clone()),
            };
            (Answer::Decided(decision), "declined")
        }
        401 | 403 | 409 | 429 | 500..=599 => (
            retry(format!(
                "HTTP {status}: {}",
                error().reason("no error code")
            )),
            "retryable",
        ),
        _ => (
            Answer::Refused(format!(
                "the payment provider refused the request (HTTP {status}): {}",
                error().reason("no error code")
            )),
            "refused",
        ),
    }
}

/// A PaymentIntent's status as a decision.
fn intent_answer(intent: PaymentIntent) -> (Answer, &'static str) {
    let failed = |why: &str| Decision {
        outcome: PaymentOutcome::Failed,
        reason: Some(intent.last_payment_error.as_ref().map_or_else(
            || why.to_owned(),
            |error| format!("{why}: {}", error.reason("declined")),
        )),
        reference: Some(intent.id.clone()),
    };
    match intent.status.as_str() {
        "succeeded" => (
            Answer::Decided(Decision {
                outcome: PaymentOutcome::Succeeded,
                reason: None,
                reference: Some(intent.id),
            }),
            "succeeded",
        ),
        "requires_payment_method" | "canceled" | "requires_action" => {
            (Answer::Decided(failed(&intent.status)), "declined")
        }
        other => (
            Answer::Refused(format!(
                "PaymentIntent {} is {other}: not decided; check it in Stripe's dashboard",
                intent.id
            )),
            "refused",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decline_is_a_failed_payment_with_its_reason() {
        let body = br#"{"error": {"type": "card_error", "code": "card_declined",
            "decline_code": "insufficient_funds", "message": "Your card has insufficient funds.",
            "payment_intent": {"id": "pi_1"}}}"#;
        let (Answer::Decided(decision), "declined") = classify(402, None, body) else {
            panic!("not a decline");
        };
        assert_eq!(decision.outcome, PaymentOutcome::Failed);
        assert_eq!(
            decision.reason.as_deref(),
            Some("card_declined (insufficient_funds): Your card has insufficient funds.")
        );
        assert_eq!(decision.reference.as_deref(), Some("pi_1"));
    }

    #[test]
    fn overload_and_server_errors_are_retried_honouring_retry_after() {
        for status in [429, 500, 503, 409] {
            let (answer, outcome) = classify(status, Some(Duration::from_secs(2)), b"{}");
            assert_eq!(outcome, "retryable", "{status}");
            let Answer::Retry { retry_after, .. } = answer else {
                panic!("{status} not retried");
            };
            assert_eq!(retry_after, Some(Duration::from_secs(2)));
        }
    }

    #[test]
    fn a_refused_request_gives_up_at_once() {
        let body = br#"{"error": {"type": "invalid_request_error", "message": "Received unknown parameter: bogus"}}"#;
        let (Answer::Refused(reason), "refused") = classify(400, None, body) else {
            panic!("not refused");
        };
        assert!(reason.contains("unknown parameter"), "{reason}");
    }
}
