//! Unit-bearing config strings: rate limits, durations and the mass-removal limit.

use std::time::Duration;

use headcount::config::{MaxRemovals, parse_duration, parse_max_removals, parse_rate_limit};
use headcount::planner::MaxRemovalsSpec;

#[test]
fn rate_limit_table() {
    let table: &[(&str, Option<(u32, u64)>)] = &[
        ("120/min", Some((120, 60))),
        ("10/s", Some((10, 1))),
        ("1/sec", Some((1, 1))),
        ("600/minute", Some((600, 60))),
        (" 50 / s ", Some((50, 1))),
        ("0/min", None),
        ("-5/min", None),
        ("120", None),
        ("/min", None),
        ("ten/s", None),
        ("10/day", None),
        ("2.5/s", None),
        ("", None),
    ];
    for (text, want) in table {
        let got = parse_rate_limit(text);
        match want {
            Some((n, secs)) => assert_eq!(got, Ok((*n, Duration::from_secs(*secs))), "{text:?}"),
            None => assert!(got.is_err(), "{text:?} must be refused, got {got:?}"),
        }
    }
}

#[test]
fn duration_table() {
    let table: &[(&str, Option<u64>)] = &[
        ("30s", Some(30_000)),
        ("2m", Some(120_000)),
        ("500ms", Some(500)),
        ("6h", Some(21_600_000)),
        ("1h30m", Some(5_400_000)),
        ("0.5s", Some(500)),
        ("30", None),
        ("", None),
        ("s", None),
        ("3 fortnights", None),
        ("-1s", None),
    ];
    for (text, want) in table {
        let got = parse_duration(text);
        match want {
            Some(ms) => assert_eq!(got, Ok(Duration::from_millis(*ms)), "{text:?}"),
            None => assert!(got.is_err(), "{text:?} must be refused, got {got:?}"),
        }
    }
}

#[test]
fn max_removals_table() {
    let text = |s: &str| MaxRemovals::Text(s.to_string());
    let table: &[(MaxRemovals, Option<MaxRemovalsSpec>)] = &[
        (text("10%"), Some(MaxRemovalsSpec::Percent(10.0))),
        (text("0%"), Some(MaxRemovalsSpec::Percent(0.0))),
        (text("100%"), Some(MaxRemovalsSpec::Percent(100.0))),
        (text("12.5%"), Some(MaxRemovalsSpec::Percent(12.5))),
        (text("3"), Some(MaxRemovalsSpec::Count(3))),
        (MaxRemovals::Count(3), Some(MaxRemovalsSpec::Count(3))),
        (text("-1"), None),
        (text("-10%"), None),
        (text("101%"), None),
        (text("ten"), None),
        (text("%"), None),
        (text("1.5"), None),
        (text(""), None),
    ];
    for (value, want) in table {
        let got = parse_max_removals(value);
        match want {
            Some(w) => assert_eq!(got.as_ref(), Ok(w), "{value:?}"),
            None => assert!(got.is_err(), "{value:?} must be refused, got {got:?}"),
        }
    }
}
