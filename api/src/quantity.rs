//! A small parser for Kubernetes resource quantities (`500m`, `128Mi`, `1e3`, `0.5`).
//!
//! Values are held exactly as a count of nano-units. Like the Go `resource.Quantity`
//! documentation says, values finer than 1n round up and magnitudes above 2^63-1 units are
//! capped. Unlike Go, more than 20 significant digits are refused instead of carried in a
//! big decimal: no real manifest needs them and it keeps the arithmetic exact in `u128`.

use std::cmp::Ordering;
use std::fmt;

/// Why a string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantity is empty")]
    Empty,
    #[error("quantity {0:?} has no number")]
    NoNumber(String),
    #[error("quantity {0:?} has an invalid number")]
    InvalidNumber(String),
    #[error("quantity {0:?} has an unknown suffix {1:?}")]
    InvalidSuffix(String, String),
    #[error("quantity {0:?} has more than 20 significant digits")]
    TooManyDigits(String),
}

const NANOS_PER_UNIT: u128 = 1_000_000_000;
/// 2^63-1 units, the documented ceiling of a Kubernetes quantity.
const MAX_NANOS: u128 = (i64::MAX as u128) * NANOS_PER_UNIT;
const MAX_SIGNIFICANT_DIGITS: usize = 20;

/// A parsed quantity; ordered by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quantity {
    nanos: i128,
}

impl Quantity {
    /// Parses the canonical Kubernetes quantity syntax:
    /// `[+-]digits[.digits]` then one of `Ki Mi Gi Ti Pi Ei`, `n u m k M G T P E`, `e<exp>`/`E<exp>`,
    /// or nothing.
    pub fn parse(input: &str) -> Result<Self, QuantityError> {
        if input.is_empty() {
            return Err(QuantityError::Empty);
        }
        let (negative, rest) = match input.as_bytes().first() {
            Some(b'-') => (true, &input[1..]),
            Some(b'+') => (false, &input[1..]),
            _ => (false, input),
        };
        let number_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let (number, suffix) = rest.split_at(number_len);
        if number.is_empty() {
            return Err(QuantityError::NoNumber(input.to_string()));
        }
        let (int_part, frac_part) = match number.split_once('.') {
            Some((i, f)) => (i, f),
            None => (number, ""),
        };
        if frac_part.contains('.') || (int_part.is_empty() && frac_part.is_empty()) {
            return Err(QuantityError::InvalidNumber(input.to_string()));
        }
        let (exp10, exp2) = parse_suffix(suffix)
            .ok_or_else(|| QuantityError::InvalidSuffix(input.to_string(), suffix.to_string()))?;

        // Significant digits as one integer; `scale` is the power of ten that applies to it.
        let int_trimmed = int_part.trim_start_matches('0');
        let frac_trimmed = frac_part.trim_end_matches('0');
        let mut digits = String::with_capacity(int_trimmed.len() + frac_trimmed.len());
        digits.push_str(int_trimmed);
        digits.push_str(frac_trimmed);
        let leading_zeros = digits.len() - digits.trim_start_matches('0').len();
        let digits = &digits[leading_zeros..];
        if digits.is_empty() {
            return Ok(Self { nanos: 0 });
        }
        if digits.len() > MAX_SIGNIFICANT_DIGITS {
            return Err(QuantityError::TooManyDigits(input.to_string()));
        }
        let mantissa: u128 = digits
            .parse()
            .map_err(|_| QuantityError::InvalidNumber(input.to_string()))?;
        // i64 suffices: the exponent is bounded by the parse below.
        let scale = exp10 + 9 - frac_trimmed.len() as i64;
        let magnitude = scaled_magnitude(mantissa, scale, exp2);
        let nanos = magnitude.min(MAX_NANOS) as i128;
        Ok(Self {
            nanos: if negative { -nanos } else { nanos },
        })
    }

    /// The exact value in nano-units.
    pub fn as_nanos(&self) -> i128 {
        self.nanos
    }

    /// The value in milli-units, rounded up (how CPU requests become millicores).
    pub fn as_millis_ceil(&self) -> i64 {
        let v =
            self.nanos.div_euclid(1_000_000) + i128::from(self.nanos.rem_euclid(1_000_000) != 0);
        v as i64
    }

    /// The value in whole units, rounded up (how memory becomes bytes).
    pub fn as_units_ceil(&self) -> i64 {
        let v = self.nanos.div_euclid(1_000_000_000)
            + i128::from(self.nanos.rem_euclid(1_000_000_000) != 0);
        v as i64
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Quantity {
    /// Plain decimal units, e.g. `0.5` or `134217728`; not the Go canonical form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.nanos < 0 { "-" } else { "" };
        let abs = self.nanos.unsigned_abs();
        let units = abs / NANOS_PER_UNIT;
        let frac = abs % NANOS_PER_UNIT;
        if frac == 0 {
            write!(f, "{sign}{units}")
        } else {
            let frac = format!("{frac:09}");
            write!(f, "{sign}{units}.{}", frac.trim_end_matches('0'))
        }
    }
}

/// Returns (power of ten, power of two) for a suffix, or None when it is not one.
fn parse_suffix(suffix: &str) -> Option<(i64, u32)> {
    let pair = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        _ => {
            let exp = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            (exp.parse::<i64>().ok()?, 0)
        }
    };
    Some(pair)
}

/// `mantissa * 10^scale * 2^exp2`, rounded up, saturating at `u128::MAX`.
/// `mantissa < 10^20 < 2^67` and `exp2 <= 60`, so `mantissa << exp2` fits in a u128.
fn scaled_magnitude(mantissa: u128, scale: i64, exp2: u32) -> u128 {
    let base = mantissa << exp2;
    if scale >= 0 {
        let mut value = base;
        for _ in 0..scale {
            value = match value.checked_mul(10) {
                Some(v) => v,
                None => return u128::MAX,
            };
        }
        value
    } else {
        let down = scale.unsigned_abs();
        // 10^38 is the largest power of ten in a u128; past it the value is below 1n.
        if down > 38 {
            return 1;
        }
        let divisor = 10u128.pow(down as u32);
        base / divisor + u128::from(!base.is_multiple_of(divisor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(s: &str) -> i128 {
        Quantity::parse(s).unwrap().as_nanos()
    }

    #[test]
    fn decimal_and_binary_suffixes() {
        assert_eq!(nanos("1"), 1_000_000_000);
        assert_eq!(nanos("500m"), 500_000_000);
        assert_eq!(nanos("0.5"), 500_000_000);
        assert_eq!(nanos(".5"), 500_000_000);
        assert_eq!(nanos("1."), 1_000_000_000);
        assert_eq!(nanos("2k"), 2_000 * 1_000_000_000);
        assert_eq!(nanos("1Ki"), 1024 * 1_000_000_000);
        assert_eq!(nanos("128Mi"), 134_217_728 * 1_000_000_000);
        assert_eq!(nanos("0.5Gi"), 536_870_912 * 1_000_000_000);
        assert_eq!(nanos("1n"), 1);
        assert_eq!(nanos("3u"), 3_000);
        assert_eq!(nanos("-1"), -1_000_000_000);
        assert_eq!(nanos("+7"), 7_000_000_000);
        assert_eq!(nanos("0"), 0);
        assert_eq!(nanos("000.000"), 0);
    }

    #[test]
    fn exponent_forms() {
        assert_eq!(nanos("1e3"), 1_000 * 1_000_000_000);
        assert_eq!(nanos("1E3"), 1_000 * 1_000_000_000);
        assert_eq!(nanos("1e-3"), 1_000_000);
        assert_eq!(nanos("1.5e+2"), 150 * 1_000_000_000);
        // A bare `E` is the exa suffix, not an exponent.
        assert_eq!(nanos("1E"), 1_000_000_000_000_000_000 * 1_000_000_000);
    }

    #[test]
    fn rounding_and_capping() {
        // Below a nano-unit rounds up, as the Go type documents.
        assert_eq!(nanos("0.1n"), 1);
        assert_eq!(nanos("1e-40"), 1);
        assert_eq!(nanos("1e400"), MAX_NANOS as i128);
        assert_eq!(nanos("100Ei"), MAX_NANOS as i128);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "", "m", "abc", "1..2", "1.2.3", ".", "1K", "1ki", "1mi", "1e", "1e+", "1 m", " 1",
            "1m ", "1Kib", "0x10", "1e99999", "--1", "1e1.5",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(
            Quantity::parse("1.0000000000000000000001").unwrap_err(),
            QuantityError::TooManyDigits("1.0000000000000000000001".into())
        );
        assert_eq!(
            Quantity::parse("1K").unwrap_err().to_string(),
            r#"quantity "1K" has an unknown suffix "K""#
        );
    }

    #[test]
    fn ordering_and_conversions() {
        let q = |s: &str| Quantity::parse(s).unwrap();
        assert!(q("500m") < q("1"));
        assert_eq!(q("1024"), q("1Ki"));
        assert_eq!(q("1000m"), q("1"));
        assert!(q("1G") < q("1Gi"));
        assert_eq!(q("250m").as_millis_ceil(), 250);
        assert_eq!(q("0.1m").as_millis_ceil(), 1);
        assert_eq!(q("1.5").as_units_ceil(), 2);
        assert_eq!(q("64Mi").as_units_ceil(), 67_108_864);
        assert_eq!(q("0.25").to_string(), "0.25");
        assert_eq!(q("-2k").to_string(), "-2000");
    }
}
