//! Durations on the command line: `20ms`, `500us`, `2s`, `1h 30m` (humantime's
//! syntax), or a bare number in the flag's own unit, so every invocation
//! written before units were accepted keeps its meaning.

use std::time::Duration;

/// The unit a flag counts in (and reads a bare number in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Nanos,
    Micros,
    Millis,
    Secs,
    Hours,
}

impl Unit {
    fn nanos(self) -> u128 {
        match self {
            Unit::Nanos => 1,
            Unit::Micros => 1_000,
            Unit::Millis => 1_000_000,
            Unit::Secs => 1_000_000_000,
            Unit::Hours => 3_600_000_000_000,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Nanos => "nanoseconds",
            Unit::Micros => "microseconds",
            Unit::Millis => "milliseconds",
            Unit::Secs => "seconds",
            Unit::Hours => "hours",
        }
    }

    /// `n` of this unit as a duration.
    pub fn duration(self, n: u64) -> Duration {
        match self {
            Unit::Nanos => Duration::from_nanos(n),
            Unit::Micros => Duration::from_micros(n),
            Unit::Millis => Duration::from_millis(n),
            Unit::Secs => Duration::from_secs(n),
            Unit::Hours => Duration::from_secs(n.saturating_mul(3600)),
        }
    }
}

/// `text` as a whole number of `unit`: a bare number is taken as is, a
/// duration with a unit must be a whole multiple of `unit`.
pub fn parse_count(text: &str, unit: Unit) -> Result<u64, String> {
    let text = text.trim();
    if let Ok(n) = text.parse::<u64>() {
        return Ok(n);
    }
    let d = humantime::parse_duration(text).map_err(|e| {
        format!("'{text}' is not a duration ({e}); write e.g. 20ms, 500us or 2s, or a bare number of {}", unit.name())
    })?;
    let nanos = d.as_nanos();
    if nanos % unit.nanos() != 0 {
        return Err(format!("'{text}' is not a whole number of {}", unit.name()));
    }
    u64::try_from(nanos / unit.nanos()).map_err(|_| format!("'{text}' is too long"))
}

/// A clap value parser: a duration read as a count of `unit` within
/// `min..=max` (in `unit`); the error shows the bounds with units.
pub fn count_in(
    unit: Unit,
    min: u64,
    max: u64,
) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
    move |text| {
        let n = parse_count(text, unit)?;
        if (min..=max).contains(&n) {
            return Ok(n);
        }
        let show = |n| humantime::format_duration(unit.duration(n)).to_string();
        Err(format!(
            "'{text}' is out of range: {}..={} (a bare number is {})",
            show(min),
            show(max),
            unit.name()
        ))
    }
}

/// A clap value parser for a duration with `unit` as the unit of a bare
/// number, at least `min` of `unit`.
pub fn at_least(
    unit: Unit,
    min: u64,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |text| {
        let text = text.trim();
        let d = match text.parse::<u64>() {
            Ok(n) => unit.duration(n),
            Err(_) => Duration::from_nanos(parse_count(text, Unit::Nanos)?),
        };
        if d < unit.duration(min) {
            return Err(format!(
                "'{text}' is below {}",
                humantime::format_duration(unit.duration(min))
            ));
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_numbers_keep_the_flags_unit_and_units_convert() {
        assert_eq!(parse_count("5000", Unit::Micros), Ok(5000));
        assert_eq!(parse_count("20ms", Unit::Micros), Ok(20_000));
        assert_eq!(parse_count("500us", Unit::Micros), Ok(500));
        assert_eq!(parse_count("2s", Unit::Millis), Ok(2000));
        assert_eq!(parse_count("1h 30m", Unit::Secs), Ok(5400));
        assert_eq!(parse_count("20ms", Unit::Nanos), Ok(20_000_000));
        assert_eq!(parse_count("2d", Unit::Hours), Ok(48));
        let e = parse_count("1500us", Unit::Millis).unwrap_err();
        assert!(e.contains("whole number of milliseconds"), "{e}");
        let e = parse_count("fast", Unit::Millis).unwrap_err();
        assert!(e.contains("'fast' is not a duration"), "{e}");
        assert!(e.contains("bare number of milliseconds"), "{e}");
        assert!(parse_count("-5", Unit::Millis).is_err());
    }

    #[test]
    fn ranges_are_checked_after_conversion_and_shown_with_units() {
        let slice = count_in(Unit::Micros, 50, 1_000_000);
        assert_eq!(slice("50us"), Ok(50));
        assert_eq!(slice("1s"), Ok(1_000_000));
        let e = slice("2s").unwrap_err();
        assert!(e.contains("50us..=1s"), "{e}");
        assert!(e.contains("a bare number is microseconds"), "{e}");
        assert!(slice("49").is_err());
    }

    #[test]
    fn durations_keep_sub_unit_precision() {
        let timeout = at_least(Unit::Secs, 1);
        assert_eq!(timeout("10"), Ok(Duration::from_secs(10)));
        assert_eq!(timeout("1500ms"), Ok(Duration::from_millis(1500)));
        assert!(timeout("999ms").unwrap_err().contains("below 1s"));
        assert!(timeout("0").is_err());
    }
}
