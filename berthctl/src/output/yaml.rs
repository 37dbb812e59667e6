//! YAML as crictl prints it: `sigs.k8s.io/yaml.JSONToYAML`, which reads the
//! JSON with go-yaml v2 and writes it back out. So keys are sorted with
//! go-yaml's "natural" order, block sequences are not indented under their
//! key, strings that would read back as another type are double-quoted,
//! and long lines fold at 80 columns.

use std::cmp::Ordering;
use std::sync::LazyLock;

use regex::Regex;

use super::json::{Dialect, Json, go_float};
use super::units::go_format_g;

/// go-yaml's preferred line width.
const BEST_WIDTH: usize = 80;

/// Renders `value`, ending with a newline (crictl then adds one more with
/// `fmt.Println`; callers do that).
pub fn to_yaml(value: &Json, dialect: Dialect) -> String {
    let mut out = String::new();
    match value {
        Json::Object(f) if !f.is_empty() => write_node(&mut out, value, 0, false, dialect),
        Json::Array(a) if !a.is_empty() => write_node(&mut out, value, 0, false, dialect),
        scalar => write_scalar(&mut out, scalar, 2, false, dialect),
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn line_start(out: &mut String, indent: usize) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.extend(std::iter::repeat_n(' ', indent));
}

fn is_block(v: &Json) -> bool {
    matches!(v, Json::Object(f) if !f.is_empty()) || matches!(v, Json::Array(a) if !a.is_empty())
}

fn write_node(out: &mut String, value: &Json, indent: usize, inline: bool, dialect: Dialect) {
    match value {
        Json::Object(fields) => {
            let mut sorted: Vec<&(String, Json)> = fields.iter().collect();
            insertion_sort(&mut sorted, |a, b| key_less(&a.0, &b.0));
            for (i, (key, val)) in sorted.into_iter().enumerate() {
                if i > 0 || !inline {
                    line_start(out, indent);
                }
                write_string(out, key, indent + 2, true);
                out.push(':');
                match val {
                    Json::Object(_) if is_block(val) => {
                        write_node(out, val, indent + 2, false, dialect)
                    }
                    // go-yaml does not indent a sequence under its key.
                    Json::Array(_) if is_block(val) => write_node(out, val, indent, false, dialect),
                    _ => {
                        out.push(' ');
                        write_scalar(out, val, indent + 2, false, dialect);
                    }
                }
            }
        }
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 || !inline {
                    line_start(out, indent);
                }
                out.push_str("- ");
                if is_block(item) {
                    write_node(out, item, indent + 2, true, dialect);
                } else {
                    write_scalar(out, item, indent + 2, false, dialect);
                }
            }
        }
        scalar => write_scalar(out, scalar, indent + 2, false, dialect),
    }
}

/// go-yaml sorts with `sort.Sort`; an insertion sort with the same "less"
/// gives the same order and cannot panic on an inconsistent comparison.
fn insertion_sort<T>(items: &mut [T], less: impl Fn(&T, &T) -> bool) {
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 {
            let (left, right) = items.split_at_mut(j);
            match (left.last_mut(), right.first_mut()) {
                (Some(a), Some(b)) if less(b, a) => std::mem::swap(a, b),
                _ => break,
            }
            j -= 1;
        }
    }
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

fn digit_value(c: char) -> i64 {
    c.to_digit(10).map_or(0, i64::from)
}

/// go-yaml v2's map key order: letters by code point, a non-letter before
/// a letter (after a digit, the other way round), runs of digits compared
/// as numbers, a prefix before the longer key.
pub fn key_less(a: &str, b: &str) -> bool {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let mut digits = false;
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        let (ca, cb) = (ar[i], br[i]);
        if ca == cb {
            digits = is_digit(ca);
            i += 1;
            continue;
        }
        let (al, bl) = (ca.is_alphabetic(), cb.is_alphabetic());
        if al && bl {
            return ca < cb;
        }
        if al || bl {
            return if digits { al } else { bl };
        }
        let (mut an, mut bn) = (0i64, 0i64);
        if ca == '0' || cb == '0' {
            let mut j = i;
            while j > 0 && is_digit(ar[j - 1]) {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && is_digit(ar[ai]) {
            an = an.wrapping_mul(10).wrapping_add(digit_value(ar[ai]));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && is_digit(br[bi]) {
            bn = bn.wrapping_mul(10).wrapping_add(digit_value(br[bi]));
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ca < cb;
    }
    ar.len().cmp(&br.len()) == Ordering::Less
}

fn write_scalar(out: &mut String, value: &Json, indent: usize, simple_key: bool, dialect: Dialect) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Int(i) => match dialect {
            Dialect::Proto => out.push_str(&i.to_string()),
            Dialect::Go => out.push_str(&yaml_number(&go_float(*i as f64))),
        },
        Json::Uint(u) => match dialect {
            Dialect::Proto => out.push_str(&u.to_string()),
            Dialect::Go => out.push_str(&yaml_number(&go_float(*u as f64))),
        },
        Json::Float(f) => out.push_str(&yaml_number(&go_float(*f))),
        Json::String(s) => write_string(out, s, indent, simple_key),
        Json::Array(_) => out.push_str("[]"),
        Json::Object(_) => out.push_str("{}"),
    }
}

/// A JSON number as go-yaml re-reads and re-writes it: integers stay as
/// they are, anything else becomes a float64 in strconv's shortest form.
fn yaml_number(text: &str) -> String {
    if text.parse::<i64>().is_ok() || text.parse::<u64>().is_ok() {
        return text.to_owned();
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_nan() => ".nan".to_owned(),
        Ok(f) if f.is_infinite() => if f > 0.0 { ".inf" } else { "-.inf" }.to_owned(),
        Ok(f) => go_format_g(f, None),
        Err(_) => text.to_owned(),
    }
}

static YAML_FLOAT: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$").ok());
static BASE60_FLOAT: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$").ok());
static TIMESTAMP: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(([Tt][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2}))|( [0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]+)?))?$").ok()
});

fn matches(re: &LazyLock<Option<Regex>>, s: &str) -> bool {
    re.as_ref().is_some_and(|r| r.is_match(s))
}

const RESERVED: &[&str] = &[
    "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
    "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
    ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf",
    "-.INF", "<<",
];

fn prefixed_int(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (digits, radix) = match body.get(..2) {
        Some("0x" | "0X") => (&body[2..], 16),
        Some("0o" | "0O") => (&body[2..], 8),
        Some("0b" | "0B") => (&body[2..], 2),
        _ => return false,
    };
    !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix))
}

/// Would go-yaml read this plain scalar back as something other than a
/// string (null, bool, int, float, timestamp)? Then it must be quoted.
fn resolves_to_non_string(s: &str) -> bool {
    if RESERVED.contains(&s) {
        return true;
    }
    match s.chars().next() {
        Some('0'..='9' | '+' | '-') => {
            if matches(&TIMESTAMP, s) {
                return true;
            }
            let plain = s.replace('_', "");
            matches(&YAML_FLOAT, &plain) || prefixed_int(&plain) || matches(&BASE60_FLOAT, s)
        }
        Some('.') => s.parse::<f64>().is_ok(),
        _ => false,
    }
}

fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_printable(c: char) -> bool {
    matches!(c as u32, 0x0A | 0x20..=0x7E | 0x85 | 0xA0..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
        && c != '\u{FEFF}'
}

#[derive(Default)]
struct Analysis {
    multiline: bool,
    plain_allowed: bool,
    single_allowed: bool,
    block_allowed: bool,
}

/// libyaml's `analyze_scalar`, block context only.
fn analyze(s: &str) -> Analysis {
    let chars: Vec<char> = s.chars().collect();
    let mut indicators = s.starts_with("---") || s.starts_with("...");
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break, mut prev_space, mut prev_break) =
        (false, false, false, false);
    let (mut special, mut line_breaks) = (false, false);
    let mut preceded_by_ws = true;
    let last = chars.len().saturating_sub(1);
    for (i, &c) in chars.iter().enumerate() {
        let next = chars.get(i + 1).copied();
        let followed_by_ws = next.is_none_or(|n| n == ' ' || n == '\t' || is_break(n));
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => indicators = true,
                '?' | ':' | '-' if followed_by_ws => indicators = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_ws => indicators = true,
                '#' if preceded_by_ws => indicators = true,
                _ => {}
            }
        }
        if !is_printable(c) {
            special = true;
        }
        if is_break(c) {
            line_breaks = true;
        }
        if c == ' ' {
            leading_space |= i == 0;
            trailing_space |= i == last;
            break_space |= prev_break;
            prev_space = true;
            prev_break = false;
        } else if is_break(c) {
            leading_break |= i == 0;
            trailing_break |= i == last;
            space_break |= prev_space;
            prev_break = true;
            prev_space = false;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_by_ws = c == ' ' || c == '\t' || is_break(c);
    }
    let mut a = Analysis {
        multiline: line_breaks,
        plain_allowed: true,
        single_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space {
        a.plain_allowed = false;
        a.single_allowed = false;
    }
    if space_break || special {
        a.plain_allowed = false;
        a.single_allowed = false;
        a.block_allowed = false;
    }
    if line_breaks || indicators {
        a.plain_allowed = false;
    }
    a
}

enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

fn column(out: &str) -> usize {
    out.rsplit('\n').next().map_or(0, |l| l.chars().count())
}

fn write_string(out: &mut String, s: &str, indent: usize, simple_key: bool) {
    let a = analyze(s);
    // go-yaml asks for a literal block if there is a newline, plain if the
    // text reads back as a string, double quotes otherwise; libyaml then
    // steps down to what the text allows.
    let mut style = if s.contains('\n') {
        Style::Literal
    } else if resolves_to_non_string(s) {
        Style::Double
    } else {
        Style::Plain
    };
    if simple_key && a.multiline {
        style = Style::Double;
    }
    if matches!(style, Style::Plain) && (!a.plain_allowed || (s.is_empty() && simple_key)) {
        style = Style::Single;
    }
    if matches!(style, Style::Single) && !a.single_allowed {
        style = Style::Double;
    }
    if matches!(style, Style::Literal) && (!a.block_allowed || simple_key) {
        style = Style::Double;
    }
    let allow_breaks = !simple_key;
    match style {
        Style::Plain => write_folded(out, s, indent, allow_breaks, None),
        Style::Single => {
            out.push('\'');
            write_folded(out, s, indent, allow_breaks, Some('\''));
            out.push('\'');
        }
        Style::Double => write_double(out, s, indent, allow_breaks),
        Style::Literal => write_literal(out, s, indent),
    }
}

/// Plain and single-quoted text: a space past column 80 becomes a line
/// break (not at either end of a quoted string, nor before another space).
fn write_folded(out: &mut String, s: &str, indent: usize, allow_breaks: bool, quote: Option<char>) {
    let chars: Vec<char> = s.chars().collect();
    let last = chars.len().saturating_sub(1);
    let mut col = column(out);
    let mut spaces = false;
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let next_space = chars.get(i + 1) == Some(&' ');
            let ends_ok = quote.is_none() || (i != 0 && i != last);
            if allow_breaks && !spaces && col > BEST_WIDTH && ends_ok && !next_space {
                out.push('\n');
                out.extend(std::iter::repeat_n(' ', indent));
                col = indent;
            } else {
                out.push(c);
                col += 1;
            }
            spaces = true;
        } else {
            if Some(c) == quote {
                out.push(c);
                col += 1;
            }
            out.push(c);
            col += 1;
            spaces = false;
        }
    }
}

fn write_double(out: &mut String, s: &str, indent: usize, allow_breaks: bool) {
    let chars: Vec<char> = s.chars().collect();
    let last = chars.len().saturating_sub(1);
    out.push('"');
    let mut col = column(out);
    let mut spaces = false;
    for (i, &c) in chars.iter().enumerate() {
        if !is_printable(c) || is_break(c) || c == '"' || c == '\\' {
            let esc = match c {
                '\0' => "0".to_owned(),
                '\u{7}' => "a".to_owned(),
                '\u{8}' => "b".to_owned(),
                '\t' => "t".to_owned(),
                '\n' => "n".to_owned(),
                '\u{b}' => "v".to_owned(),
                '\u{c}' => "f".to_owned(),
                '\r' => "r".to_owned(),
                '\u{1b}' => "e".to_owned(),
                '"' => "\"".to_owned(),
                '\\' => "\\".to_owned(),
                '\u{85}' => "N".to_owned(),
                '\u{2028}' => "L".to_owned(),
                '\u{2029}' => "P".to_owned(),
                c if (c as u32) <= 0xFF => format!("x{:02X}", c as u32),
                c if (c as u32) <= 0xFFFF => format!("u{:04X}", c as u32),
                c => format!("U{:08X}", c as u32),
            };
            out.push('\\');
            out.push_str(&esc);
            col += 1 + esc.len();
            spaces = false;
        } else if c == ' ' {
            if allow_breaks && !spaces && col > BEST_WIDTH && i != 0 && i != last {
                out.push('\n');
                out.extend(std::iter::repeat_n(' ', indent));
                col = indent;
                if chars.get(i + 1) == Some(&' ') {
                    out.push('\\');
                    col += 1;
                }
            } else {
                out.push(' ');
                col += 1;
            }
            spaces = true;
        } else {
            out.push(c);
            col += 1;
            spaces = false;
        }
    }
    out.push('"');
}

fn write_literal(out: &mut String, s: &str, indent: usize) {
    out.push('|');
    if s.starts_with([' ', '\n']) {
        out.push('2');
    }
    let trailing = s.len() - s.trim_end_matches('\n').len();
    match trailing {
        0 => out.push('-'),
        1 => {}
        _ => out.push('+'),
    }
    out.push('\n');
    let mut at_line_start = true;
    for c in s.chars() {
        if c == '\n' {
            out.push('\n');
            at_line_start = true;
        } else {
            if at_line_start {
                out.extend(std::iter::repeat_n(' ', indent));
                at_line_start = false;
            }
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(json: &str) -> String {
        let v: Json = serde_json::from_str(json).unwrap();
        to_yaml(&v, Dialect::Proto)
    }

    #[test]
    fn layout_of_maps_and_sequences() {
        assert_eq!(
            yaml(r#"{"b":[{"y":1,"x":[]},"s"],"a":{"k":{}},"c":[[1,2]]}"#),
            "a:\n  k: {}\nb:\n- x: []\n  \"y\": 1\n- s\nc:\n- - 1\n  - 2\n"
        );
    }

    #[test]
    fn quotes_what_would_read_back_as_another_type() {
        assert_eq!(
            yaml(
                r#"{"a":"","b":"123","c":"true","d":"yes","e":"1.5e3","f":"0x1F","g":"12:30","h":"2026-11-22T08:36:41.8Z","i":"v1.2","j":"null"}"#
            ),
            "a: \"\"\nb: \"123\"\nc: \"true\"\nd: \"yes\"\ne: \"1.5e3\"\nf: \"0x1F\"\ng: \"12:30\"\nh: \"2026-11-22T08:36:41.8Z\"\ni: v1.2\nj: \"null\"\n"
        );
    }

    #[test]
    fn indicators_and_spaces_use_single_quotes() {
        assert_eq!(
            yaml(
                r#"{"a":"*x","b":" lead","c":"a: b","d":"it's","e":"a #b","f":"x:y","g":"tab\there"}"#
            ),
            "a: '*x'\nb: ' lead'\nc: 'a: b'\nd: it's\ne: 'a #b'\nf: x:y\ng: \"tab\\there\"\n"
        );
    }

    #[test]
    fn newlines_use_literal_blocks() {
        assert_eq!(
            yaml(r#"{"a":"x\ny","b":"x\n","c":"x\n\n"}"#),
            "a: |-\n  x\n  y\nb: |\n  x\nc: |+\n  x\n\n"
        );
    }

    #[test]
    fn long_plain_text_folds_after_column_80() {
        let words = vec!["word"; 30].join(" ");
        let out = yaml(&format!(r#"{{"k":"{words}"}}"#));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(
            lines[0].chars().count() > 80 && lines[0].chars().count() < 90,
            "{out}"
        );
        assert!(lines[1].starts_with("  word"), "{out}");
        assert_eq!(out.replace("\n  ", " "), format!("k: {words}\n"));
    }

    #[test]
    fn natural_key_order() {
        let mut keys = vec![
            "a10",
            "a9",
            "B",
            "a",
            "_x",
            "a2b",
            "lastCNILoadStatus.default",
            "lastCNILoadStatus",
        ];
        insertion_sort(&mut keys, |a, b| key_less(a, b));
        assert_eq!(
            keys,
            [
                "_x",
                "B",
                "a",
                "a2b",
                "a9",
                "a10",
                "lastCNILoadStatus",
                "lastCNILoadStatus.default"
            ]
        );
    }

    #[test]
    fn go_dialect_numbers_are_float64() {
        let v: Json = serde_json::from_str(r#"{"a":32071,"b":1.5,"c":1e21}"#).unwrap();
        assert_eq!(to_yaml(&v, Dialect::Go), "a: 32071\nb: 1.5\nc: 1e+21\n");
    }
}
