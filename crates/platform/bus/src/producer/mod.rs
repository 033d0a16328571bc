//! The producer side, client-neutral: [`api`] holds what both producers take
//! (configuration, record, retry backoff); [`dispatch`] is the public
//! [`Producer`](crate::Producer), which runs on one of them
//! (`crate::kafka_crate::producer` or `crate::rd::producer`).

pub(crate) mod api;
pub(crate) mod dispatch;
