//! The per-user request limit (`GATEWAY_USER_RATE`, `GATEWAY_USER_BURST`): a token
//! bucket per user id, refilled at the rate, holding at most the burst. A request
//! that finds its bucket empty is 429 with the wait until the next token.
//!
//! Only verified tokens name users, so the map grows with real users only; it is
//! still bounded: past [`MAX_TRACKED_USERS`], full buckets (idle users, who lose
//! nothing by being forgotten) are dropped.

use std::{
    collections::HashMap,
    fmt,
    str::FromStr,
    sync::Mutex,
    time::{Duration, Instant},
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::AuthError;

/// Users whose buckets are kept before idle ones are forgotten.
pub const MAX_TRACKED_USERS: usize = 100_000;

/// `GATEWAY_USER_RATE`: requests per second, minute or hour (`20/s`, `600/m`,
/// `1000/h`); empty: no limit.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct UserRate {
    /// Requests a second; 0 = no limit.
    per_second: f64,
}

impl UserRate {
    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    pub fn is_unlimited(&self) -> bool {
        self.per_second == 0.0
    }

    /// The burst when `GATEWAY_USER_BURST` is not set: one second's worth, at least 1.
    pub fn default_burst(&self) -> u32 {
        // Saturating float-to-int conversion: an absurd rate gives u32::MAX.
        (self.per_second.ceil() as u32).max(1)
    }
}

impl FromStr for UserRate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self::default());
        }
        let form = || format!("{text:?} is not a rate: expected <count>/s, /m or /h (e.g. 20/s)");
        let (count, unit) = text.split_once('/').ok_or_else(form)?;
        let count: u32 = count.trim().parse().map_err(|_| form())?;
        let seconds = match unit.trim() {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(form()),
        };
        if count == 0 {
            return Err(format!(
                "{text:?}: the count must be at least 1 (leave it empty for no limit)"
            ));
        }
        Ok(Self {
            per_second: f64::from(count) / seconds,
        })
    }
}

impl fmt::Display for UserRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_unlimited() {
            Ok(())
        } else {
            write!(f, "{}/s", self.per_second)
        }
    }
}

impl Serialize for UserRate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UserRate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every user seen.
pub struct UserLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<i64, Bucket>>,
}

impl UserLimiter {
    pub fn new(rate: UserRate, burst: u32) -> Self {
        Self {
            per_second: rate.per_second,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token of `user`'s bucket, or says how long until there is one.
    pub fn admit(&self, user: i64) -> Result<(), AuthError> {
        self.admit_at(user, Instant::now())
    }

    fn admit_at(&self, user: i64, now: Instant) -> Result<(), AuthError> {
        let mut buckets = match self.buckets.lock() {
            Ok(buckets) => buckets,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buckets.len() >= MAX_TRACKED_USERS && !buckets.contains_key(&user) {
            let (per_second, burst) = (self.per_second, self.burst);
            buckets.retain(|_, bucket| refilled(bucket, now, per_second, burst) < burst);
        }
        let bucket = buckets.entry(user).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        bucket.tokens = refilled(bucket, now, self.per_second, self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / self.per_second;
        Err(AuthError::RateLimited {
            retry_after: Duration::from_secs_f64(wait),
        })
    }
}

fn refilled(bucket: &Bucket, now: Instant, per_second: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    (bucket.tokens + elapsed * per_second).min(burst)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_read_in_their_units() {
        assert_eq!("20/s".parse::<UserRate>().unwrap().per_second(), 20.0);
        assert_eq!("120/m".parse::<UserRate>().unwrap().per_second(), 2.0);
        assert_eq!(" 3600 / h ".parse::<UserRate>().unwrap().per_second(), 1.0);
        assert!("".parse::<UserRate>().unwrap().is_unlimited());
        for bad in ["20", "20/d", "x/s", "-1/s", "0/s", "/s"] {
            let err = bad.parse::<UserRate>().unwrap_err();
            assert!(err.contains(bad.trim()), "{bad}: {err}");
        }
        assert_eq!("20/s".parse::<UserRate>().unwrap().default_burst(), 20);
        assert_eq!("1/m".parse::<UserRate>().unwrap().default_burst(), 1);
    }

    #[test]
    fn a_user_gets_the_burst_then_the_rate_and_others_are_not_affected() {
        let limiter = UserLimiter::new("2/s".parse().unwrap(), 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.admit_at(1, start), Ok(()));
        }
        let Err(AuthError::RateLimited { retry_after }) = limiter.admit_at(1, start) else {
            panic!("the fourth request passed");
        };
        assert_eq!(retry_after, Duration::from_millis(500));
        assert_eq!(
            limiter.admit_at(2, start),
            Ok(()),
            "another user has a bucket of its own"
        );
        let later = start + Duration::from_millis(500);
        assert_eq!(limiter.admit_at(1, later), Ok(()));
        assert!(limiter.admit_at(1, later).is_err());
    }
}
