//! Parsing one manifest file into a defaulted, validated static [`Pod`].

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

use crate::error::{ManifestError, ManifestErrorKind};
use crate::identity;

/// Default refusal threshold for a manifest file.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 10 * 1024 * 1024;

/// Nesting a Pod never needs; deeper input is refused before it can exhaust the stack.
const MAX_DEPTH: usize = 64;
/// Alias replay budget; real manifests use few or no aliases.
const MAX_ALIAS_REPLAYED_EVENTS: usize = 20_000;

/// Parses, defaults and validates one manifest, as the file source does.
///
/// `path` is used for the UID and in error messages; a `.json` extension selects JSON,
/// anything else YAML. Bytes over [`DEFAULT_MAX_FILE_SIZE`] are refused. The result has
/// every annotation except `kubernetes.io/config.seen`, which needs a clock and is set by
/// the watching source (in Go the config merger sets it).
pub fn load_manifest(path: &Path, bytes: &[u8], node_name: &str) -> Result<Pod, ManifestError> {
    load_manifest_with_limit(path, bytes, node_name, DEFAULT_MAX_FILE_SIZE)
}

/// [`load_manifest`] with an explicit size limit.
pub fn load_manifest_with_limit(
    path: &Path,
    bytes: &[u8],
    node_name: &str,
    max_size: u64,
) -> Result<Pod, ManifestError> {
    let err = |kind| ManifestError::new(path, kind);
    let size = bytes.len() as u64;
    if size > max_size {
        return Err(err(ManifestErrorKind::TooLarge {
            size,
            limit: max_size,
        }));
    }
    let mut pod = parse_pod(path, bytes).map_err(err)?;
    api::apply_api_defaults(&mut pod);
    identity::apply_identity(&mut pod, node_name, path);
    api::check_pod(&pod).map_err(|invalid| err(ManifestErrorKind::Invalid(invalid.0)))?;
    Ok(pod)
}

#[derive(Debug, PartialEq)]
enum Format {
    Yaml,
    Json,
}

/// The fields that say what kind of object a document is.
#[derive(Deserialize)]
struct TypeMeta {
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
    kind: Option<String>,
}

fn parse_pod(path: &Path, bytes: &[u8]) -> Result<Pod, ManifestErrorKind> {
    let text = std::str::from_utf8(bytes).map_err(|e| ManifestErrorKind::NotUtf8(e.to_string()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(ManifestErrorKind::Empty);
    }
    let format = match path.extension() {
        Some(ext) if ext.eq_ignore_ascii_case("json") => Format::Json,
        _ => Format::Yaml,
    };
    // Check the type first so a Deployment gets "kind: ..." instead of a field error.
    let meta: TypeMeta = decode(text, &format)?;
    match meta.api_version.as_deref() {
        Some("v1") => {}
        None => return Err(ManifestErrorKind::ApiVersion("required value".into())),
        Some(other) => {
            return Err(ManifestErrorKind::ApiVersion(format!(
                "unsupported value {other:?}: must be \"v1\""
            )));
        }
    }
    match meta.kind.as_deref() {
        Some("Pod") => {}
        None => return Err(ManifestErrorKind::Kind("required value".into())),
        Some(other) => {
            return Err(ManifestErrorKind::Kind(format!(
                "unsupported value {other:?}: a static pod manifest must be a \"Pod\""
            )));
        }
    }
    decode(text, &format)
}

fn decode<T: serde::de::DeserializeOwned>(
    text: &str,
    format: &Format,
) -> Result<T, ManifestErrorKind> {
    match format {
        Format::Json => {
            check_json_depth(text)?;
            serde_json::from_str(text).map_err(|e| ManifestErrorKind::Json(e.to_string()))
        }
        Format::Yaml => serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| {
            match e.without_snippet() {
                serde_saphyr::Error::MultipleDocuments { .. } => {
                    ManifestErrorKind::MultipleDocuments
                }
                other => ManifestErrorKind::Yaml(one_line(&other.to_string())),
            }
        }),
    }
}

/// serde_json's own 128-level recursion limit does not cover values it skips (unknown
/// fields), so nesting is measured up front with the same bound as YAML.
fn check_json_depth(text: &str) -> Result<(), ManifestErrorKind> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, b) in text.bytes().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(ManifestErrorKind::Json(format!(
                        "nesting deeper than {MAX_DEPTH} levels at byte {offset}"
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Budgets that turn alias bombs and deep nesting into errors instead of hangs or crashes.
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            max_reader_input_bytes: Some(DEFAULT_MAX_FILE_SIZE as usize),
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_ALIAS_REPLAYED_EVENTS,
            max_replay_stack_depth: 16,
        },
    }
}

/// Error texts may carry a multi-line source snippet; keep log lines to one line.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: nginx:1.25\n";

    /// Loads and returns the error text, asserting it came back quickly.
    fn load_err(name: &str, bytes: &[u8]) -> String {
        let start = Instant::now();
        let result = load_manifest(Path::new(name), bytes, "node1");
        let elapsed = start.elapsed();
        assert!(elapsed < Duration::from_secs(2), "{name} took {elapsed:?}");
        match result {
            Ok(pod) => panic!("{name} unexpectedly loaded as {:?}", pod.metadata.name),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn yaml_and_json_load() {
        let pod = load_manifest(Path::new("web.yaml"), POD.as_bytes(), "node1").unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("web-node1"));
        let json = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},"spec":{"containers":[{"name":"c","image":"nginx:1.25","resources":{"limits":{"cpu":1}}}]}}"#;
        let from_json = load_manifest(Path::new("web.json"), json, "node1").unwrap();
        assert_eq!(from_json.metadata.name.as_deref(), Some("web-node1"));
        // A leading byte order mark is tolerated.
        let bom = format!("\u{feff}{POD}");
        assert!(load_manifest(Path::new("web.yaml"), bom.as_bytes(), "node1").is_ok());
    }

    #[test]
    fn type_and_shape_errors() {
        assert_eq!(
            load_err("d.yaml", b"apiVersion: apps/v1\nkind: Deployment\n"),
            "d.yaml: apiVersion: unsupported value \"apps/v1\": must be \"v1\""
        );
        assert_eq!(
            load_err("s.yaml", b"apiVersion: v1\nkind: Service\n"),
            "s.yaml: kind: unsupported value \"Service\": a static pod manifest must be a \"Pod\""
        );
        assert_eq!(
            load_err("k.yaml", b"kind: Pod\n"),
            "k.yaml: apiVersion: required value"
        );
        assert_eq!(
            load_err("k.yaml", b"apiVersion: v1\n"),
            "k.yaml: kind: required value"
        );
        assert_eq!(load_err("e.yaml", b" \n\n"), "e.yaml: file is empty");
        assert_eq!(
            load_err("m.yaml", format!("{POD}---\n{POD}").as_bytes()),
            "m.yaml: file holds more than one YAML document; a static pod manifest holds exactly one Pod"
        );
        assert_eq!(
            load_err("x.yaml", b"apiVersion: v1\nkind: Pod\nmetadata: [\n"),
            "x.yaml: invalid YAML: unclosed bracket '[' at line 3, column 11"
        );
        assert_eq!(
            load_err(
                "t.yaml",
                b"apiVersion: v1\nkind: Pod\nspec:\n  containers: 5\n"
            ),
            "t.yaml: invalid YAML: expected sequence start at line 4, column 15"
        );
        assert!(
            load_err("j.json", b"{\"apiVersion\": \"v1\",").starts_with("j.json: invalid JSON: ")
        );
        assert!(load_err("u.yaml", b"\xff\xfe").starts_with("u.yaml: file is not valid UTF-8"));
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut yaml = String::from(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels:\n    a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n",
        );
        let mut prev = 'a';
        for c in 'b'..='i' {
            yaml.push_str(&format!(
                "    {c}: &{c} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
            ));
            prev = c;
        }
        let err = load_err("bomb.yaml", yaml.as_bytes());
        assert!(
            err.starts_with("bomb.yaml: invalid YAML: alias replay limit exceeded"),
            "{err}"
        );
    }

    #[test]
    fn deep_yaml_is_refused() {
        let flow = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nx: {}{}\n",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        let err = load_err("flow.yaml", flow.as_bytes());
        assert!(
            err.starts_with("flow.yaml: invalid YAML: recursion limit exceeded"),
            "{err}"
        );

        let block = format!("apiVersion: v1\nkind: Pod\nx:\n{}a\n", "- ".repeat(10_000));
        let err = load_err("block.yaml", block.as_bytes());
        assert!(
            err.starts_with("block.yaml: invalid YAML: budget breached: Depth"),
            "{err}"
        );
    }

    #[test]
    fn deep_json_is_refused() {
        // Nested under an unknown field, which serde_json skips without its depth limit.
        let unknown = format!(
            r#"{{"apiVersion":"v1","kind":"Pod","x":{}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert_eq!(
            load_err("u.json", unknown.as_bytes()),
            "u.json: invalid JSON: nesting deeper than 64 levels at byte 99"
        );
        // Brackets inside strings do not count.
        let quoted = format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"web","labels":{{"a":"{}\"{}"}}}},"spec":{{"containers":[{{"name":"c","image":"x"}}]}}}}"#,
            "[".repeat(100),
            "{".repeat(100)
        );
        assert!(load_manifest(Path::new("q.json"), quoted.as_bytes(), "n").is_ok());
    }

    #[test]
    fn oversized_input_is_refused() {
        let mut big = POD.as_bytes().to_vec();
        big.resize(11 * 1024 * 1024, b'\n');
        assert_eq!(
            load_err("big.yaml", &big),
            "big.yaml: file is larger than the 10485760-byte limit (11534336 bytes); refusing to read it"
        );
    }
}
