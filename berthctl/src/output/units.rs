//! Human-readable durations and sizes, worded exactly like docker/go-units
//! (`HumanDuration`, `HumanSize`, `HumanSizeWithPrecision`), which crictl
//! uses for its CREATED, SIZE, MEM and DISK columns.

/// `units.HumanDuration`: "Less than a second", "1 second", "About a
/// minute", "2 hours", ... Negative durations read "Less than a second",
/// as in Go.
pub fn human_duration(nanos: i128) -> String {
    // Go converts to float seconds/minutes and truncates toward zero.
    let secs_f = nanos as f64 / 1e9;
    let seconds = secs_f as i64;
    if seconds < 1 {
        return "Less than a second".to_owned();
    }
    if seconds == 1 {
        return "1 second".to_owned();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = (secs_f / 60.0) as i64;
    if minutes == 1 {
        return "About a minute".to_owned();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    // Hours are rounded (half away from zero, like math.Round).
    let hours_f = secs_f / 3600.0;
    let hours = hours_f.round() as i64;
    if hours == 1 {
        return "About an hour".to_owned();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", (hours_f as i64) / 24 / 365)
}

const DECIMAL_UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];

/// `units.HumanSizeWithPrecision`: divide by 1000 until below 1000, then
/// Go's `%.*g` with `precision` significant digits ("2MB", "10.4MB").
pub fn human_size_with_precision(size: f64, precision: usize) -> String {
    let mut size = size;
    let mut unit = 0;
    while size >= 1000.0 && unit < DECIMAL_UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    let suffix = DECIMAL_UNITS.get(unit).copied().unwrap_or("B");
    format!("{}{suffix}", go_format_g(size, Some(precision.max(1))))
}

/// `units.HumanSize`: four significant digits ("1.282MB", "20.48kB").
pub fn human_size(size: f64) -> String {
    human_size_with_precision(size, 4)
}

/// Decimal digits of a finite float: `digits` without leading/trailing
/// zeros and `point`, the position of the decimal point (Go's
/// `decimal.nd` / `decimal.dp`). Zero has no digits and point 0.
struct Digits {
    neg: bool,
    digits: Vec<u8>,
    point: i32,
}

fn decimal_digits(x: f64, precision: Option<usize>) -> Digits {
    let neg = x.is_sign_negative();
    let text = match precision {
        Some(p) => format!("{:.*e}", p.saturating_sub(1), x.abs()),
        None => format!("{:e}", x.abs()),
    };
    let (mantissa, exp) = text.split_once('e').unwrap_or((text.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    if digits.is_empty() {
        return Digits {
            neg,
            digits,
            point: 0,
        };
    }
    Digits {
        neg,
        digits,
        point: exp + 1,
    }
}

fn digit_at(d: &Digits, i: i32) -> char {
    usize::try_from(i)
        .ok()
        .and_then(|i| d.digits.get(i))
        .map_or('0', |b| char::from(*b))
}

fn fmt_f(d: &Digits, decimals: i32) -> String {
    let mut s = String::new();
    if d.neg {
        s.push('-');
    }
    if d.point > 0 {
        for i in 0..d.point {
            s.push(digit_at(d, i));
        }
    } else {
        s.push('0');
    }
    if decimals > 0 {
        s.push('.');
        for i in 0..decimals {
            s.push(digit_at(d, d.point + i));
        }
    }
    s
}

fn fmt_e(d: &Digits, decimals: i32) -> String {
    let mut s = String::new();
    if d.neg {
        s.push('-');
    }
    s.push(digit_at(d, 0));
    if decimals > 0 {
        s.push('.');
        for i in 1..=decimals {
            s.push(digit_at(d, i));
        }
    }
    let exp = if d.digits.is_empty() { 0 } else { d.point - 1 };
    s.push('e');
    s.push(if exp < 0 { '-' } else { '+' });
    s.push_str(&format!("{:02}", exp.abs()));
    s
}

/// Go's `%g` (`strconv.FormatFloat(x, 'g', prec, 64)`): `precision`
/// significant digits, or the shortest exact form for `None`, switching to
/// exponent form the way Go does ("1e+03", "1e+06").
pub fn go_format_g(x: f64, precision: Option<usize>) -> String {
    if x.is_nan() {
        return "NaN".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let d = decimal_digits(x, precision);
    let nd = i32::try_from(d.digits.len()).unwrap_or(i32::MAX);
    let mut prec = match precision {
        Some(p) => i32::try_from(p).unwrap_or(i32::MAX),
        None => nd,
    };
    let mut eprec = prec;
    if eprec > nd && nd >= d.point {
        eprec = nd;
    }
    if precision.is_none() {
        eprec = 6;
    }
    let exp = d.point - 1;
    if exp < -4 || exp >= eprec {
        if prec > nd {
            prec = nd;
        }
        return fmt_e(&d, (prec - 1).max(0));
    }
    if prec > d.point {
        prec = nd;
    }
    fmt_f(&d, (prec - d.point).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i128 = 1_000_000_000;
    const MIN: i128 = 60 * SEC;
    const HOUR: i128 = 60 * MIN;
    const DAY: i128 = 24 * HOUR;
    const WEEK: i128 = 7 * DAY;
    const MONTH: i128 = 30 * DAY;
    const YEAR: i128 = 365 * DAY;

    #[test]
    fn duration_thresholds_match_go_units() {
        let cases: &[(i128, &str)] = &[
            (-5 * SEC, "Less than a second"),
            (450_000_000, "Less than a second"),
            (SEC, "1 second"),
            (SEC + 999_999_999, "1 second"),
            (45 * SEC, "45 seconds"),
            (59 * SEC, "59 seconds"),
            (60 * SEC, "About a minute"),
            (MIN + 59 * SEC, "About a minute"),
            (2 * MIN, "2 minutes"),
            (35 * MIN + 40 * SEC, "35 minutes"),
            (59 * MIN, "59 minutes"),
            (HOUR, "About an hour"),
            (HOUR + 29 * MIN, "About an hour"),
            (HOUR + 31 * MIN, "2 hours"),
            (3 * HOUR + 29 * MIN, "3 hours"),
            (3 * HOUR + 31 * MIN, "4 hours"),
            (24 * HOUR, "24 hours"),
            (DAY + 12 * HOUR, "36 hours"),
            (2 * DAY, "2 days"),
            (13 * DAY + 5 * HOUR, "13 days"),
            (2 * WEEK, "2 weeks"),
            (4 * WEEK + 3 * DAY, "4 weeks"),
            (MONTH, "4 weeks"),
            (MONTH + 2 * WEEK, "6 weeks"),
            (2 * MONTH, "2 months"),
            (5 * MONTH + 2 * WEEK, "5 months"),
            (24 * MONTH, "24 months"),
            (24 * MONTH + 2 * WEEK, "2 years"),
            (3 * YEAR + 2 * MONTH, "3 years"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(*d), *want, "duration {d}ns");
        }
    }

    #[test]
    fn sizes_match_crictl_samples_and_go_g_format() {
        // SIZE column values from images.txt (precision 3).
        assert_eq!(human_size_with_precision(1_997_402.0, 3), "2MB");
        assert_eq!(human_size_with_precision(10_400_717.0, 3), "10.4MB");
        assert_eq!(human_size_with_precision(35_753_682.0, 3), "35.8MB");
        assert_eq!(human_size_with_precision(303_846.0, 3), "304kB");
        // MEM/DISK/SWAP from stats.txt (precision 4).
        assert_eq!(human_size(1_282_048.0), "1.282MB");
        assert_eq!(human_size(20_480.0), "20.48kB");
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(human_size(999.0), "999B");
        assert_eq!(human_size(1000.0), "1kB");
        // Rounding up to the next power switches Go's %g to exponent form.
        assert_eq!(human_size_with_precision(999_900.0, 3), "1e+03kB");
        assert_eq!(human_size(1e30), "1e+06YB");
    }

    #[test]
    fn shortest_g_matches_strconv() {
        assert_eq!(go_format_g(1.5, None), "1.5");
        assert_eq!(go_format_g(100.0, None), "100");
        assert_eq!(go_format_g(1_000_000.0, None), "1e+06");
        assert_eq!(go_format_g(123_456.0, None), "123456");
        assert_eq!(go_format_g(0.0001, None), "0.0001");
        assert_eq!(go_format_g(0.00001, None), "1e-05");
        assert_eq!(go_format_g(-2.5, None), "-2.5");
    }
}
