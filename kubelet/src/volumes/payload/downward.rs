//! The downward API's values for volume files: Go's
//! `fieldpath.ExtractFieldPathAsString` and
//! `resource.ExtractResourceValueByContainerNameAndNodeAllocatable`.

use std::collections::BTreeMap;
use std::fmt::Write;

use api::Quantity;
use k8s_openapi::api::core::v1::{Container, Pod, ResourceFieldSelector};

/// A fieldRef's value. Volumes may read metadata only (the API refuses
/// `spec.*` and `status.*` fieldRefs in downwardAPI volumes).
pub(super) fn field_value(pod: &Pod, field_path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    let empty = BTreeMap::new();
    let labels = meta.labels.as_ref().unwrap_or(&empty);
    let annotations = meta.annotations.as_ref().unwrap_or(&empty);
    if let Some((path, key)) = split_subscript(field_path) {
        return match path {
            "metadata.annotations" => {
                qualified_name(&key.to_lowercase())
                    .map_err(|e| format!("invalid key subscript in {field_path}: {e}"))?;
                Ok(annotations.get(key).cloned().unwrap_or_default())
            }
            "metadata.labels" => {
                qualified_name(key)
                    .map_err(|e| format!("invalid key subscript in {field_path}: {e}"))?;
                Ok(labels.get(key).cloned().unwrap_or_default())
            }
            _ => Err(format!(
                "fieldPath {field_path:?} does not support subscript"
            )),
        };
    }
    match field_path {
        "metadata.annotations" => Ok(format_map(annotations)),
        "metadata.labels" => Ok(format_map(labels)),
        "metadata.name" => Ok(meta.name.clone().unwrap_or_default()),
        "metadata.namespace" => Ok(meta.namespace.clone().unwrap_or_default()),
        "metadata.uid" => Ok(meta.uid.clone().unwrap_or_default()),
        _ => Err(format!("unsupported fieldPath: {field_path}")),
    }
}

/// `metadata.labels['app']` → (`metadata.labels`, `app`).
fn split_subscript(field_path: &str) -> Option<(&str, &str)> {
    let inner = field_path.strip_suffix("']")?;
    let (path, key) = inner.split_once("['")?;
    (!path.is_empty()).then_some((path, key))
}

/// Go's `validation.IsQualifiedName`: `[prefix/]name`, the prefix a DNS
/// subdomain, the name at most 63 alphanumerics, `-`, `_`, `.`, starting
/// and ending alphanumeric.
fn qualified_name(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err("prefix part must be non-empty".to_string());
        }
        api::names::dns1123_subdomain(prefix, 253).map_err(|e| format!("prefix part {e}"))?;
    }
    if name.contains('/') {
        return Err("a qualified name must have at most one '/'".to_string());
    }
    if name.is_empty() {
        return Err("name part must be non-empty".to_string());
    }
    if name.len() > 63 {
        return Err("name part must be no more than 63 characters".to_string());
    }
    let b = name.as_bytes();
    let alnum = |c: &u8| c.is_ascii_alphanumeric();
    let ok = b.first().is_some_and(alnum)
        && b.last().is_some_and(alnum)
        && b.iter()
            .all(|c| alnum(c) || matches!(c, b'-' | b'_' | b'.'));
    if !ok {
        return Err("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character".to_string());
    }
    Ok(())
}

/// Labels or annotations as the downward API writes them: one
/// `key="value"` line per entry, sorted by key, the value quoted as Go's
/// `%q` does, no newline after the last.
pub fn format_map(m: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(k);
        out.push('=');
        go_quote(v, &mut out);
    }
    out
}

/// Go's `strconv.Quote`: `"` and `\` escaped, the C escapes for control
/// characters, `\xNN` for other ASCII controls, `\uNNNN`/`\UNNNNNNNN` for
/// characters Go does not print (controls, spaces other than U+0020, format
/// characters, private use and noncharacters; Go's full table of
/// unassigned code points is not reproduced).
fn go_quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_ascii() || go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
}

/// Whether Go's `strconv.IsPrint` holds for a non-ASCII character, for the
/// classes that matter in practice.
fn go_printable(c: char) -> bool {
    let u = c as u32;
    let format_char = matches!(u,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
        | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F);
    let private_use = matches!(u, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD);
    let noncharacter = matches!(u, 0xFDD0..=0xFDEF) || (u & 0xFFFE) == 0xFFFE;
    !(c.is_control() || c.is_whitespace() || format_char || private_use || noncharacter)
}

/// A container's request or limit in units of the divisor, rounded up.
/// Limits the container does not set (or sets to zero) of cpu, memory and
/// ephemeral-storage are the node's allocatable, as in Go.
pub(super) fn container_resource_value(
    r: &ResourceFieldSelector,
    container: &Container,
    node_allocatable: &BTreeMap<String, String>,
) -> Result<String, String> {
    let unsupported = || format!("unsupported container resource : {}", r.resource);
    let (kind, resource) = r.resource.split_once('.').ok_or_else(unsupported)?;
    let supported = matches!(resource, "cpu" | "memory" | "ephemeral-storage")
        || resource.starts_with("hugepages-");
    let resources = container.resources.as_ref();
    let list = match kind {
        "requests" if supported => resources.and_then(|r| r.requests.as_ref()),
        "limits" if supported => resources.and_then(|r| r.limits.as_ref()),
        _ => return Err(unsupported()),
    };
    let mut value = match list.and_then(|l| l.get(resource)) {
        Some(q) => nanos(&q.0, &r.resource)?,
        None => 0,
    };
    // Hugepages are never overcommitted, so Go does not fill them in.
    let from_node = kind == "limits" && !resource.starts_with("hugepages-");
    if from_node
        && value == 0
        && let Some(alloc) = node_allocatable.get(resource)
    {
        value = nanos(alloc, &format!("node allocatable {resource}"))?;
    }
    // Go treats an unset or zero divisor as 1.
    let divisor = match &r.divisor {
        Some(d) => nanos(&d.0, "divisor")?,
        None => 0,
    };
    let divisor = if divisor == 0 {
        NANOS_PER_UNIT
    } else {
        divisor
    };
    // CPU in millicores (`MilliValue`), the rest in units (`Value`), each
    // rounded up before dividing, as Go does.
    let scale = if resource == "cpu" {
        NANOS_PER_MILLI
    } else {
        NANOS_PER_UNIT
    };
    let (numerator, denominator) = (ceil_div(value, scale), ceil_div(divisor, scale));
    if denominator <= 0 {
        let shown = r.divisor.as_ref().map_or("1", |d| d.0.as_str());
        return Err(format!("divisor {shown} must be positive"));
    }
    Ok(ceil_div(numerator, denominator).to_string())
}

const NANOS_PER_UNIT: i128 = 1_000_000_000;
const NANOS_PER_MILLI: i128 = 1_000_000;

fn nanos(q: &str, what: &str) -> Result<i128, String> {
    Quantity::parse(q)
        .map(|q| q.as_nanos())
        .map_err(|e| format!("{what}: {e}"))
}

/// `⌈a / b⌉` for `b > 0`, exactly (Go divides as float64, which agrees
/// for every value below 2^53).
fn ceil_div(a: i128, b: i128) -> i128 {
    a.div_euclid(b) + i128::from(a.rem_euclid(b) != 0)
}
