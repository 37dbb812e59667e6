//! Go `time.Duration` strings, as the config file and flags write them.

use std::time::Duration;

/// Parses a Go `time.Duration` string: "300ms", "1m30s", "1.5h", "0".
/// Units: ns, us (µs), ms, s, m, h. Returns `None` for anything else,
/// negative values, and values beyond Go's ~292-year range.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => a.split_at(a.bytes().take_while(u8::is_ascii_digit).count()),
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        total = total.checked_add(whole.checked_mul(per_unit)?)?;
        // Digits past nanosecond precision cannot matter; 18 keeps this in range.
        let (mut frac, mut scale) = (0u128, 1u128);
        for d in frac_part.bytes().take(18) {
            frac = frac * 10 + u128::from(d - b'0');
            scale *= 10;
        }
        total = total.checked_add(frac * per_unit / scale)?;
        rest = after;
    }
    if total > i64::MAX as u128 {
        return None;
    }
    Some(Duration::from_nanos(total as u64))
}

/// Writes a duration as Go's `time.Duration.String` does: "0s", "300ms",
/// "20s", "1m0s", "1h2m3.5s".
pub fn format_go_duration(d: Duration) -> String {
    fn with_fraction(whole: u128, rem: u128, width: usize, unit: &str) -> String {
        if rem == 0 {
            return format!("{whole}{unit}");
        }
        let digits = format!("{rem:0width$}");
        format!("{whole}.{}{unit}", digits.trim_end_matches('0'))
    }
    let nanos = d.as_nanos();
    match nanos {
        0 => "0s".to_string(),
        n if n < 1_000 => format!("{n}ns"),
        n if n < 1_000_000 => with_fraction(n / 1_000, n % 1_000, 3, "µs"),
        n if n < 1_000_000_000 => with_fraction(n / 1_000_000, n % 1_000_000, 6, "ms"),
        n => {
            let secs = n / 1_000_000_000;
            let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
            let mut out = String::new();
            if h > 0 {
                out.push_str(&format!("{h}h"));
            }
            if h > 0 || m > 0 {
                out.push_str(&format!("{m}m"));
            }
            out.push_str(&with_fraction(s, n % 1_000_000_000, 9, "s"));
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_go() {
        let f = format_go_duration;
        assert_eq!(f(Duration::ZERO), "0s");
        assert_eq!(f(Duration::from_millis(300)), "300ms");
        assert_eq!(f(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(f(Duration::from_secs(20)), "20s");
        assert_eq!(f(Duration::from_secs(60)), "1m0s");
        assert_eq!(f(Duration::from_secs(120)), "2m0s");
        assert_eq!(f(Duration::from_millis(3_723_500)), "1h2m3.5s");
        assert_eq!(f(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(
            parse_go_duration(&f(Duration::from_millis(3_723_500))),
            Some(Duration::from_millis(3_723_500))
        );
    }
}
