//! Unit-bearing values of the config parsed into typed values once: rate limits (`120/min`)
//! and durations (`30s`, `1h30m`). The HTTP layer and the connectors take these types, never
//! config text. Hand-written because each is a few lines and the messages can say exactly what
//! is wrong.

use std::time::Duration;

/// Parses `N/min` or `N/s` (also `N/sec`, `N/second`, `N/minute`, `N/h`, `N/hour`) with `N > 0`
/// into the number of requests and the window they are allowed in.
pub fn parse_rate_limit(text: &str) -> Result<(u32, Duration), String> {
    let t = text.trim();
    let Some((count, unit)) = t.split_once('/') else {
        return Err(format!(
            "rate limit `{t}` has no unit: write it as `N/min` or `N/s`, e.g. `120/min`"
        ));
    };
    let count = count.trim();
    let n: u32 = match count.parse() {
        Ok(n) => n,
        Err(_) if !count.is_empty() && count.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(format!("rate limit `{t}` is too large"));
        }
        Err(_) => {
            return Err(format!(
                "rate limit `{t}`: `{count}` is not a whole number of requests; write `N/min` or `N/s`, e.g. `120/min`"
            ));
        }
    };
    if n == 0 {
        return Err(format!(
            "rate limit `{t}` allows no requests: use a number above 0"
        ));
    }
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        other => {
            return Err(format!(
                "rate limit `{t}`: unknown unit `{other}`; use `/min` or `/s`"
            ));
        }
    };
    Ok((n, per))
}

/// Parses a duration such as `500ms`, `30s`, `2m`, `6h`, `1d` or a sum like `1h30m`. A bare
/// number is refused: `30` could mean seconds or minutes.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("the duration is empty: write e.g. `30s`, `2m` or `500ms`".to_string());
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(digits);
        if num.is_empty() {
            return Err(format!(
                "duration `{t}` is not a number with a unit: write e.g. `30s`, `2m` or `500ms`"
            ));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let secs_per_unit: f64 = match unit.trim() {
            "ms" => 0.001,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "" => {
                return Err(format!(
                    "duration `{t}` has no unit: write e.g. `{num}s` or `{num}m`"
                ));
            }
            other => {
                return Err(format!(
                    "duration `{t}`: unknown unit `{other}`; use ms, s, m, h or d"
                ));
            }
        };
        let value: f64 = num
            .parse()
            .map_err(|_| format!("duration `{t}`: `{num}` is not a number"))?;
        let part = Duration::try_from_secs_f64(value * secs_per_unit)
            .map_err(|_| format!("duration `{t}` is too long"))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("duration `{t}` is too long"))?;
        rest = next;
    }
    Ok(total)
}

/// A request rate: `count` requests per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per: Duration,
}

/// The `rate_limit` and `timeout` of an HTTP connector, parsed. `None` means the vendor's
/// default (rate) or the HTTP layer's default (timeout).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpSettings {
    pub rate_limit: Option<RateLimit>,
    pub timeout: Option<Duration>,
}

impl HttpSettings {
    /// Parses the config text. The message names the setting (`rate_limit`, `timeout`) and
    /// what to write instead.
    pub fn parse(
        rate_limit: Option<&str>,
        timeout: Option<&str>,
    ) -> Result<Self, HttpSettingsError> {
        let rate_limit = rate_limit
            .map(|t| {
                parse_rate_limit(t)
                    .map(|(count, per)| RateLimit { count, per })
                    .map_err(HttpSettingsError::RateLimit)
            })
            .transpose()?;
        let timeout = timeout
            .map(|t| match parse_duration(t) {
                Ok(d) if d.is_zero() => Err(HttpSettingsError::Timeout(format!(
                    "timeout `{}` is zero: every request would time out",
                    t.trim()
                ))),
                Ok(d) => Ok(d),
                Err(e) => Err(HttpSettingsError::Timeout(e)),
            })
            .transpose()?;
        Ok(HttpSettings {
            rate_limit,
            timeout,
        })
    }
}

/// Which of the HTTP settings is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpSettingsError {
    #[error("{0}")]
    RateLimit(String),
    #[error("{0}")]
    Timeout(String),
}

impl HttpSettingsError {
    /// The config key at fault.
    pub fn key(&self) -> &'static str {
        match self {
            HttpSettingsError::RateLimit(_) => "rate_limit",
            HttpSettingsError::Timeout(_) => "timeout",
        }
    }
}
