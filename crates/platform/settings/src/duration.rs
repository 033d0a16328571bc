//! Go's `time.ParseDuration` syntax, which the Go platform's `.env` files use.

use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A non-negative duration written the way Go writes it: `1s`, `500ms`, `1h30m`, `0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub const fn from_millis(millis: u64) -> Self {
        Self(Duration::from_millis(millis))
    }

    pub const fn get(self) -> Duration {
        self.0
    }

    /// The duration, or `default` for `0`: what the Go services do with a zero relay
    /// tick or Redis timeout (they fall back to their default).
    pub const fn or_if_zero(self, default: Duration) -> Duration {
        if self.0.is_zero() { default } else { self.0 }
    }
}

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (expected a Go duration such as 500ms, 1s, 1h30m)")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

const UNITS: &[(&str, f64)] = &[
    ("ns", 1e-9),
    ("us", 1e-6),
    ("µs", 1e-6),
    ("μs", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
];

impl FromStr for GoDuration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason| DurationError {
            input: input.to_owned(),
            reason,
        };
        let text = input.trim();
        if text == "0" {
            return Ok(Self(Duration::ZERO));
        }
        if text.is_empty() {
            return Err(fail("empty"));
        }
        if text.starts_with('-') {
            return Err(fail("must not be negative"));
        }
        let mut rest = text.strip_prefix('+').unwrap_or(text);
        let mut total_secs = 0.0_f64;
        while !rest.is_empty() {
            let number_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| fail("missing unit"))?;
            let number: f64 = rest[..number_len].parse().map_err(|_| fail("bad number"))?;
            rest = &rest[number_len..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            let scale = UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, scale)| *scale)
                .ok_or_else(|| fail("unknown unit (use ns, us, ms, s, m or h)"))?;
            total_secs += number * scale;
            rest = &rest[unit_len..];
        }
        Duration::try_from_secs_f64(total_secs)
            .map(Self)
            .map_err(|_| fail("out of range"))
    }
}

impl fmt::Display for GoDuration {
    /// Prints the shortest exact Go form: `48h`, `1s`, `250ms`, `1500us`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        const UNITS: &[(&str, u128)] = &[
            ("h", 3_600_000_000_000),
            ("m", 60_000_000_000),
            ("s", 1_000_000_000),
            ("ms", 1_000_000),
            ("us", 1_000),
        ];
        if nanos == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in UNITS {
            if nanos.is_multiple_of(*size) {
                return write!(f, "{}{unit}", nanos / size);
            }
        }
        write!(f, "{nanos}ns")
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = GoDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Go duration such as 500ms, 1s, 1h30m")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<GoDuration, E> {
                value.parse().map_err(E::custom)
            }

            // The environment provider turns a bare `0` into a number.
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<GoDuration, E> {
                self.visit_str(&value.to_string())
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<GoDuration, E> {
                self.visit_str(&value.to_string())
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Duration, DurationError> {
        text.parse::<GoDuration>().map(GoDuration::get)
    }

    #[test]
    fn accepts_go_forms() {
        assert_eq!(parse("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("48h").unwrap(), Duration::from_secs(48 * 3600));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn refuses_what_go_refuses_and_negatives() {
        for bad in ["", "1", "s", "1x", "-1s", "1.2.3s", "ms1"] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
        assert!(
            parse("1d")
                .unwrap_err()
                .to_string()
                .contains("unknown unit")
        );
        assert!(parse("-1s").unwrap_err().to_string().contains("negative"));
    }

    #[test]
    fn prints_back_in_go_form() {
        for text in ["48h", "1s", "250ms", "90m", "0s"] {
            assert_eq!(text.parse::<GoDuration>().unwrap().to_string(), text);
        }
    }
}
