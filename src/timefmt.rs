//! How the agent writes times: RFC3339 in UTC, the format the API's clients
//! parse (seconds for response timestamps, milliseconds for sample times).

use chrono::{DateTime, SecondsFormat, Utc};

/// RFC3339 UTC with seconds.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// RFC3339 UTC with milliseconds, for sample times.
pub fn rfc3339_ms(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Now, as [`rfc3339`].
pub fn now() -> String {
    rfc3339(Utc::now())
}
