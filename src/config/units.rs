//! Small parsers for the unit-bearing strings of the config: rate limits (`120/min`), durations
//! (`30s`, `1h30m`) and the mass-removal limit (`10%`, `3`). Hand-written because each is a few
//! lines and the messages can say exactly what is wrong.

use super::model::MaxRemovals;
use crate::planner::MaxRemovalsSpec;

pub use crate::model::units::{parse_duration, parse_rate_limit};

/// Parses `limits.max_removals`: a count (`3`, `"3"`) or a percentage from 0 to 100 (`"10%"`).
pub fn parse_max_removals(value: &MaxRemovals) -> Result<MaxRemovalsSpec, String> {
    let text = match value {
        MaxRemovals::Count(n) => return Ok(MaxRemovalsSpec::Count(*n)),
        MaxRemovals::Text(t) => t.trim(),
    };
    let hint = "write a count like `5` or a percentage of the managed accounts like `\"10%\"`";
    if text.is_empty() {
        return Err(format!("`max_removals` is empty: {hint}"));
    }
    if text.starts_with('-') {
        return Err(format!(
            "`max_removals` is `{text}`: it cannot be negative; {hint}"
        ));
    }
    let plain_number = |s: &str| {
        !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && s.bytes().filter(|b| *b == b'.').count() <= 1
            && !s.starts_with('.')
            && !s.ends_with('.')
    };
    if let Some(pct) = text.strip_suffix('%') {
        let pct = pct.trim();
        if !plain_number(pct) {
            return Err(format!(
                "`max_removals` is `{text}`: not a percentage; {hint}"
            ));
        }
        let p: f64 = pct
            .parse()
            .map_err(|_| format!("`max_removals` is `{text}`: not a percentage; {hint}"))?;
        if p > 100.0 {
            return Err(format!(
                "`max_removals` is `{text}`: a percentage cannot exceed 100%"
            ));
        }
        return Ok(MaxRemovalsSpec::Percent(p));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(MaxRemovalsSpec::Count)
            .map_err(|_| format!("`max_removals` is `{text}`: too large"));
    }
    if plain_number(text) {
        return Err(format!(
            "`max_removals` is `{text}`: a count must be a whole number (for a share, add `%`)"
        ));
    }
    Err(format!("`max_removals` is `{text}`: {hint}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rate_limits() {
        let ok = [
            ("120/min", (120, 60)),
            ("10/s", (10, 1)),
            (" 5 / sec ", (5, 1)),
            ("1/minute", (1, 60)),
            ("3600/h", (3600, 3600)),
        ];
        for (text, (n, secs)) in ok {
            assert_eq!(
                parse_rate_limit(text),
                Ok((n, Duration::from_secs(secs))),
                "{text}"
            );
        }
        for bad in [
            "",
            "120",
            "0/min",
            "-1/s",
            "x/s",
            "10/fortnight",
            "1.5/s",
            "99999999999/s",
        ] {
            assert!(parse_rate_limit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        let ok = [
            ("30s", 30_000),
            ("2m", 120_000),
            ("500ms", 500),
            ("1h30m", 5_400_000),
            ("1.5s", 1_500),
            ("1d", 86_400_000),
            ("0s", 0),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in ["", "30", "s", "5 parsecs", "-1s", "1..2s", "1e400s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn max_removals() {
        let t = |s: &str| parse_max_removals(&MaxRemovals::Text(s.to_string()));
        assert_eq!(
            parse_max_removals(&MaxRemovals::Count(3)),
            Ok(MaxRemovalsSpec::Count(3))
        );
        assert_eq!(t("10%"), Ok(MaxRemovalsSpec::Percent(10.0)));
        assert_eq!(t(" 2.5 %"), Ok(MaxRemovalsSpec::Percent(2.5)));
        assert_eq!(t("100%"), Ok(MaxRemovalsSpec::Percent(100.0)));
        assert_eq!(t("0"), Ok(MaxRemovalsSpec::Count(0)));
        assert_eq!(t("3"), Ok(MaxRemovalsSpec::Count(3)));
        for bad in [
            "", "-3", "-5%", "150%", "ten", "10 %%", "1.5", "%", "nan%", "inf%", ".5%",
        ] {
            assert!(t(bad).is_err(), "{bad}");
        }
        assert!(t("-3").unwrap_err().contains("negative"));
        assert!(t("150%").unwrap_err().contains("100%"));
    }
}
