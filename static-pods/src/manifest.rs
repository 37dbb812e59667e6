//! Parsing a manifest file into its documents: static [`Pod`]s, defaulted and validated, and
//! the [`ConfigMap`]s and [`Secret`]s they may use (see [`crate::objects`]).
//!
//! A YAML file may hold several documents separated by `---`; a JSON file holds one.

use std::fmt;
use std::path::Path;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use serde::Deserialize;

use crate::error::{ManifestError, ManifestErrorKind};
use crate::identity;
use crate::objects::{self, RedactedSecret};

/// Default refusal threshold for a manifest file.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 10 * 1024 * 1024;
/// Most documents one file may hold; more is refused as a whole.
pub const MAX_DOCUMENTS: usize = 1024;

/// Nesting a Pod never needs; deeper input is refused before it can exhaust the stack.
const MAX_DEPTH: usize = 64;
/// Alias replay budget; real manifests use few or no aliases.
const MAX_ALIAS_REPLAYED_EVENTS: usize = 20_000;

/// One document of a manifest file after defaulting and validation.
#[derive(Clone, PartialEq)]
pub enum ManifestObject {
    /// A static pod, named and annotated as [`load_manifest`] describes (boxed: a Pod is
    /// several times the size of the other kinds).
    Pod(Box<Pod>),
    /// A ConfigMap, namespace defaulted to `default`.
    ConfigMap(ConfigMap),
    /// A Secret with `stringData` merged into `data` and `type` defaulted to `Opaque`.
    Secret(Secret),
}

impl ManifestObject {
    /// "pod", "configmap" or "secret", as the apiserver names the resources.
    pub fn kind(&self) -> &'static str {
        match self {
            ManifestObject::Pod(_) => "pod",
            ManifestObject::ConfigMap(_) => "configmap",
            ManifestObject::Secret(_) => "secret",
        }
    }
}

/// Secrets print their keys only.
impl fmt::Debug for ManifestObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestObject::Pod(pod) => f.debug_tuple("Pod").field(pod).finish(),
            ManifestObject::ConfigMap(cm) => f.debug_tuple("ConfigMap").field(cm).finish(),
            ManifestObject::Secret(secret) => f
                .debug_tuple("Secret")
                .field(&RedactedSecret(secret))
                .finish(),
        }
    }
}

/// What one document of a file turned into.
pub type DocumentResult = Result<ManifestObject, ManifestError>;

/// Parses every document of a manifest file.
///
/// The outer error is a problem of the whole file (too large, not UTF-8, empty, more than
/// [`MAX_DOCUMENTS`]); otherwise each document succeeds or fails on its own, in file order.
/// Empty documents (only comments, or nothing between two `---`) are skipped and not
/// counted. Errors of a file with several documents name the document (1-based).
pub fn load_documents(
    path: &Path,
    bytes: &[u8],
    node_name: &str,
    max_size: u64,
) -> Result<Vec<DocumentResult>, ManifestError> {
    let err = |kind| ManifestError::new(path, kind);
    let size = bytes.len() as u64;
    if size > max_size {
        return Err(err(ManifestErrorKind::TooLarge {
            size,
            limit: max_size,
        }));
    }
    let text =
        std::str::from_utf8(bytes).map_err(|e| err(ManifestErrorKind::NotUtf8(e.to_string())))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let docs = match path.extension() {
        Some(ext) if ext.eq_ignore_ascii_case("json") => {
            if text.trim().is_empty() {
                Vec::new()
            } else {
                vec![Source {
                    text,
                    format: Format::Json,
                    line_offset: 0,
                }]
            }
        }
        _ => split_yaml(text),
    };
    if docs.is_empty() {
        return Err(err(ManifestErrorKind::Empty));
    }
    if docs.len() > MAX_DOCUMENTS {
        return Err(err(ManifestErrorKind::TooManyDocuments {
            limit: MAX_DOCUMENTS,
        }));
    }
    let numbered = docs.len() > 1;
    Ok(docs
        .iter()
        .enumerate()
        .map(|(i, src)| {
            load_document(src, path, node_name)
                .map_err(|kind| err(kind).in_document(numbered.then_some(i + 1)))
        })
        .collect())
}

/// Parses, defaults and validates a manifest that holds exactly one Pod.
///
/// `path` is used for the UID and in error messages; a `.json` extension selects JSON,
/// anything else YAML. Bytes over [`DEFAULT_MAX_FILE_SIZE`] are refused. The result has
/// every annotation except `kubernetes.io/config.seen`, which needs a clock and is set by
/// the watching source (in Go the config merger sets it). The directory source reads files
/// of several documents, and ConfigMaps and Secrets, with [`load_documents`].
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
    let mut docs = load_documents(path, bytes, node_name, max_size)?;
    if docs.len() > 1 {
        return Err(err(ManifestErrorKind::MultipleDocuments));
    }
    match docs.pop() {
        Some(Ok(ManifestObject::Pod(pod))) => Ok(*pod),
        Some(Ok(other)) => Err(err(ManifestErrorKind::Kind(format!(
            "unsupported value {:?}: expected a \"Pod\"",
            match other {
                ManifestObject::ConfigMap(_) => "ConfigMap",
                _ => "Secret",
            }
        )))),
        Some(Err(e)) => Err(e),
        None => Err(err(ManifestErrorKind::Empty)),
    }
}

fn load_document(
    src: &Source<'_>,
    path: &Path,
    node_name: &str,
) -> Result<ManifestObject, ManifestErrorKind> {
    // Check the type first so a Deployment gets "kind: ..." instead of a field error.
    let meta: TypeMeta = src.decode()?;
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
        Some("Pod") => load_pod(src, path, node_name).map(|pod| ManifestObject::Pod(Box::new(pod))),
        Some("ConfigMap") => objects::load_config_map(src).map(ManifestObject::ConfigMap),
        Some("Secret") => objects::load_secret(src).map(ManifestObject::Secret),
        None => Err(ManifestErrorKind::Kind("required value".into())),
        Some(other) => Err(ManifestErrorKind::Kind(format!(
            "unsupported value {other:?}: must be one of \"Pod\", \"ConfigMap\", \"Secret\""
        ))),
    }
}

fn load_pod(src: &Source<'_>, path: &Path, node_name: &str) -> Result<Pod, ManifestErrorKind> {
    let mut pod: Pod = src.decode()?;
    api::apply_api_defaults(&mut pod);
    identity::apply_identity(&mut pod, node_name, path);
    api::check_pod(&pod).map_err(|invalid| ManifestErrorKind::Invalid(invalid.0))?;
    Ok(pod)
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Format {
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

/// One document's text and where it sits in its file.
#[derive(Debug)]
pub(crate) struct Source<'a> {
    text: &'a str,
    format: Format,
    /// Lines of the file before this document; added to the decoder's line numbers.
    line_offset: usize,
}

/// A decoder failure: its one-line message and, when known, where (line, column) in the file.
pub(crate) struct DecodeFailure {
    pub message: String,
    pub location: Option<(u64, u64)>,
    multiple_documents: bool,
}

impl Source<'_> {
    pub(crate) fn format(&self) -> Format {
        self.format
    }

    /// Decodes the document into `T`; the error kind says which decoder failed.
    pub(crate) fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, ManifestErrorKind> {
        self.decode_raw().map_err(|failure| match self.format {
            Format::Json => ManifestErrorKind::Json(failure.message),
            Format::Yaml if failure.multiple_documents => ManifestErrorKind::MultipleDocuments,
            Format::Yaml => ManifestErrorKind::Yaml(failure.message),
        })
    }

    /// Decodes the document into `T`, keeping the failure for the caller to word.
    pub(crate) fn decode_raw<T: serde::de::DeserializeOwned>(&self) -> Result<T, DecodeFailure> {
        match self.format {
            Format::Json => {
                check_json_depth(self.text).map_err(|message| DecodeFailure {
                    message,
                    location: None,
                    multiple_documents: false,
                })?;
                serde_json::from_str(self.text).map_err(|e| DecodeFailure {
                    message: e.to_string(),
                    location: (e.line() > 0).then(|| (e.line() as u64, e.column() as u64)),
                    multiple_documents: false,
                })
            }
            Format::Yaml => serde_saphyr::from_str_with_options(self.text, yaml_options())
                .map_err(|e| self.yaml_failure(e.without_snippet())),
        }
    }

    fn yaml_failure(&self, e: &serde_saphyr::Error) -> DecodeFailure {
        if let serde_saphyr::Error::MultipleDocuments { .. } = e {
            // Cannot happen after splitting, but keep the kind if it does.
            return DecodeFailure {
                message: String::new(),
                location: None,
                multiple_documents: true,
            };
        }
        let mut message = one_line(&e.to_string());
        let location = e.location().filter(|l| l.line() > 0);
        let offset = self.line_offset as u64;
        if let Some(l) = location
            && offset > 0
        {
            // The decoder counts lines from the start of the document; make them the file's.
            let local = format!("line {}, column {}", l.line(), l.column());
            if let Some(at) = message.rfind(&local) {
                let shifted = format!("line {}, column {}", l.line() + offset, l.column());
                message.replace_range(at..at + local.len(), &shifted);
            }
        }
        DecodeFailure {
            message,
            location: location.map(|l| (l.line() + offset, l.column())),
            multiple_documents: false,
        }
    }
}

/// Splits a YAML stream at its document markers: a line starting with `---` or `...`
/// followed by nothing or whitespace. YAML forbids such lines inside any content, so the
/// split is exact. Each document keeps its `---` line (which may carry content or a tag);
/// documents with nothing but comments, directives and markers are dropped.
fn split_yaml(text: &str) -> Vec<Source<'_>> {
    let mut docs = Vec::new();
    let mut push = |start: usize, end: usize, line_offset: usize| {
        let chunk = &text[start..end];
        if !is_blank_document(chunk) {
            docs.push(Source {
                text: chunk,
                format: Format::Yaml,
                line_offset,
            });
        }
    };
    let (mut start, mut start_line, mut pos) = (0, 0, 0);
    for (line_no, line) in text.split_inclusive('\n').enumerate() {
        if is_marker(line, "---") && pos > start {
            push(start, pos, start_line);
            start = pos;
            start_line = line_no;
        }
        pos += line.len();
        if is_marker(line, "...") {
            push(start, pos, start_line);
            start = pos;
            start_line = line_no + 1;
        }
    }
    if pos > start {
        push(start, pos, start_line);
    }
    docs
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

fn is_blank_document(chunk: &str) -> bool {
    chunk.lines().all(|line| {
        let trimmed = line.trim();
        let bare_marker = ["---", "..."].iter().any(|m| {
            is_marker(line, m) && {
                let rest = line[m.len()..].trim();
                rest.is_empty() || rest.starts_with('#')
            }
        });
        trimmed.is_empty() || trimmed.starts_with('#') || line.starts_with('%') || bare_marker
    })
}

/// serde_json's own 128-level recursion limit does not cover values it skips (unknown
/// fields), so nesting is measured up front with the same bound as YAML.
fn check_json_depth(text: &str) -> Result<(), String> {
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
                    return Err(format!(
                        "nesting deeper than {MAX_DEPTH} levels at byte {offset}"
                    ));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Budgets that turn alias bombs and deep nesting into errors instead of
/// hangs or crashes; and YAML 1.1 octal numbers (`defaultMode: 0644`), which
/// kubectl's YAML reader accepts and manifests everywhere use.
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        legacy_octal_numbers: true,
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
            "s.yaml: kind: unsupported value \"Service\": must be one of \"Pod\", \"ConfigMap\", \"Secret\""
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
            "m.yaml: file holds more than one document; expected exactly one Pod"
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
