//! berthctl's output: the tables, JSON and YAML crictl 1.36 prints, so
//! scripts written against crictl keep working.
//!
//! Everything writes to a `Write` and takes "now" (and, internally, the
//! time zone) as arguments so tests are deterministic.
//!
//! Two JSON flavours, as in crictl:
//! - lists (`pods`, `ps`, `images`, `stats`, ...) print protojson with
//!   default values emitted: fields in proto order, unset messages left
//!   out. pbjson (built with `emit_fields`) gives the same except that map
//!   fields come in `HashMap` order, so those are sorted here.
//! - statuses (`inspect*`, `info`, `imagefsinfo`) go through Go's
//!   `map[string]any`: every key sorted, `<>&` escaped, numbers float64,
//!   and each `info` value parsed as JSON when it looks like an object.

mod json;
mod lists;
mod stats;
mod status;
mod table;
mod units;
mod yaml;

use std::collections::HashMap;
use std::io::Write;

use cri_client::proto as pb;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use json::{Dialect, Json};
pub use lists::{print_containers, print_images, print_pods};
pub use stats::{print_stats, print_statsp};
pub use status::{
    print_imagefsinfo, print_info, print_inspect, print_inspecti, print_inspectp, print_version,
};
use table::Table;
pub use units::{human_duration, human_size, human_size_with_precision};

/// crictl shows IDs cut to this many characters unless `--no-trunc`.
const TRUNCATED_ID_LEN: usize = 13;

/// Clears the terminal before each `stats` table, as crictl does.
const CLEAR_SCREEN: &str = "\x1b[2J\x1b[H";

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("output format {given:?} is not supported: use table, json or yaml")]
    UnknownFormat { given: String },
    #[error(
        "output format \"go-template\" is not supported by berthctl: use -o json (and jq) instead"
    )]
    GoTemplate,
    #[error("{command} has no {format} output: use json or yaml")]
    Unsupported {
        command: &'static str,
        format: &'static str,
    },
    #[error("encoding the {what} as JSON: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("the runtime returned no image status (no such image)")]
    NoSuchImage,
    #[error("cpu stats of {id} were not updated between the two samples")]
    StaleCpuSample { id: String },
    #[error("pod {id} has both linux and windows stats, which is not supported")]
    MixedPodStats { id: String },
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

type Result<T, E = OutputError> = std::result::Result<T, E>;

/// The `-o/--output` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

impl OutputFormat {
    /// Parses an `-o` value; empty means the command's default.
    pub fn parse_or(value: &str, default: OutputFormat) -> Result<OutputFormat> {
        match value {
            "" => Ok(default),
            "table" => Ok(OutputFormat::Table),
            "json" => Ok(OutputFormat::Json),
            "yaml" => Ok(OutputFormat::Yaml),
            "go-template" => Err(OutputError::GoTemplate),
            other => Err(OutputError::UnknownFormat {
                given: other.to_owned(),
            }),
        }
    }

    fn name(self) -> &'static str {
        match self {
            OutputFormat::Table => "table",
            OutputFormat::Json => "json",
            OutputFormat::Yaml => "yaml",
        }
    }
}

/// `pods` and `ps` flags that shape the table.
#[derive(Debug, Default, Clone, Copy)]
pub struct ListOptions {
    /// `-q`: IDs only.
    pub quiet: bool,
    /// `--no-trunc`: full IDs.
    pub no_trunc: bool,
    /// `-v`: one block per item instead of a table.
    pub verbose: bool,
}

/// `images` flags that shape the table.
#[derive(Debug, Default, Clone, Copy)]
pub struct ImageListOptions {
    pub quiet: bool,
    pub no_trunc: bool,
    /// `--digests`: add a DIGEST column.
    pub digests: bool,
    /// `--pinned`: add a PINNED column.
    pub pinned: bool,
    pub verbose: bool,
}

/// The current time, for CREATED columns.
pub fn now() -> Timestamp {
    Timestamp::now()
}

/// crictl's `getTruncatedID(id, "")`: the first 13 characters.
pub fn truncate_id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        id.to_owned()
    } else {
        id.chars().take(TRUNCATED_ID_LEN).collect()
    }
}

/// `getTruncatedID(id, prefix)`: strips `prefix` first (`sha256:` for
/// image IDs and digests).
fn truncate_prefixed(id: &str, prefix: &str) -> String {
    truncate_id(id.strip_prefix(prefix).unwrap_or(id), false)
}

// ---------------------------------------------------------------------
// Generic JSON / YAML

fn encode<T: Serialize + ?Sized>(value: &T, what: &'static str) -> Result<Json> {
    Json::from_proto(value).map_err(|source| OutputError::Encode { what, source })
}

/// Writes a value as crictl's `-o json` does: two-space indentation, then
/// a newline. CRI messages keep proto field order.
pub fn print_json<T: Serialize + ?Sized>(w: &mut impl Write, value: &T) -> Result<()> {
    let json = encode(value, "output")?;
    writeln!(w, "{}", json::to_pretty(&json, Dialect::Proto))?;
    Ok(())
}

/// Writes a value as crictl's `-o yaml` does (JSON through
/// sigs.k8s.io/yaml, then `fmt.Println`, hence the blank last line).
pub fn print_yaml<T: Serialize + ?Sized>(w: &mut impl Write, value: &T) -> Result<()> {
    let json = encode(value, "output")?;
    writeln!(w, "{}", yaml::to_yaml(&json, Dialect::Proto))?;
    Ok(())
}

/// JSON or YAML of any value. There is no generic table, so `table` prints
/// JSON (crictl has no table for these commands either).
pub fn print_value<T: Serialize + ?Sized>(
    w: &mut impl Write,
    format: OutputFormat,
    value: &T,
) -> Result<()> {
    match format {
        OutputFormat::Yaml => print_yaml(w, value),
        OutputFormat::Json | OutputFormat::Table => print_json(w, value),
    }
}

// ---------------------------------------------------------------------
// Time formatting

/// Nanoseconds from `created_ns` to `now`, for "... ago".
fn age(now: Timestamp, created_ns: i64) -> String {
    let d = now.as_nanosecond() - i128::from(created_ns);
    format!("{} ago", human_duration(d))
}

fn zoned(ns: i64, tz: &TimeZone) -> Option<jiff::Zoned> {
    Timestamp::from_nanosecond(i128::from(ns))
        .ok()
        .map(|ts| ts.to_zoned(tz.clone()))
}

fn fraction(nanos: i32) -> String {
    if nanos == 0 {
        return String::new();
    }
    let digits = format!("{nanos:09}");
    format!(".{}", digits.trim_end_matches('0'))
}

/// Go's `time.Unix(0, ns).Format(time.RFC3339Nano)`.
fn rfc3339_nano(ns: i64, tz: &TimeZone) -> String {
    let Some(z) = zoned(ns, tz) else {
        return ns.to_string();
    };
    let offset = z.offset().seconds();
    let zone = if offset == 0 {
        "Z".to_owned()
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let abs = offset.unsigned_abs();
        format!("{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60)
    };
    format!(
        "{}{}{zone}",
        z.strftime("%Y-%m-%dT%H:%M:%S"),
        fraction(z.subsec_nanosecond())
    )
}

/// Go's zero `time.Time` in RFC3339Nano: what crictl prints for a
/// container that has not started or finished.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Go's `time.Time.String()` of `time.Unix(0, ns)`:
/// `2006-01-02 15:04:05.999999999 -0700 MST`.
fn go_time_string(ns: i64, tz: &TimeZone) -> String {
    let Some(z) = zoned(ns, tz) else {
        return ns.to_string();
    };
    let offset = z.offset().seconds();
    let sign = if offset < 0 { '-' } else { '+' };
    let abs = offset.unsigned_abs();
    let abbrev = tz.to_offset_info(z.timestamp()).abbreviation().to_owned();
    format!(
        "{}{} {sign}{:02}{:02} {abbrev}",
        z.strftime("%Y-%m-%d %H:%M:%S"),
        fraction(z.subsec_nanosecond()),
        abs / 3600,
        abs % 3600 / 60
    )
}

/// Go's `%v` of a `map[string]string`: `map[a:1 b:2]`, keys sorted.
fn go_map_string(map: &HashMap<String, String>) -> String {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let body: Vec<String> = keys
        .into_iter()
        .map(|k| format!("{k}:{}", map.get(k).map_or("", String::as_str)))
        .collect();
    format!("map[{}]", body.join(" "))
}

fn write_sorted_map(out: &mut String, title: &str, map: &HashMap<String, String>) {
    // crictl tests for a nil map; an empty map from the wire is nil in Go.
    if map.is_empty() {
        return;
    }
    out.push_str(title);
    out.push_str(":\n");
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for k in keys {
        out.push_str(&format!(
            "\t{k} -> {}\n",
            map.get(k).map_or("", String::as_str)
        ));
    }
}

#[cfg(test)]
mod tests;
