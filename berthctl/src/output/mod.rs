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

// ---------------------------------------------------------------------
// pods

fn pod_state(state: i32) -> &'static str {
    match pb::PodSandboxState::try_from(state) {
        Ok(pb::PodSandboxState::SandboxReady) => "Ready",
        Ok(pb::PodSandboxState::SandboxNotready) => "NotReady",
        // crictl exits here; a new state should not kill the listing.
        Err(_) => "Unknown",
    }
}

fn runtime_handler(handler: &str) -> &str {
    if handler.is_empty() {
        "(default)"
    } else {
        handler
    }
}

/// `berthctl pods`.
pub fn print_pods(
    w: &mut impl Write,
    format: OutputFormat,
    items: &[pb::PodSandbox],
    opts: &ListOptions,
    now: Timestamp,
) -> Result<()> {
    match format {
        OutputFormat::Table => {
            w.write_all(render_pods(items, opts, now, &TimeZone::system()).as_bytes())?;
            Ok(())
        }
        _ => print_value(
            w,
            format,
            &pb::ListPodSandboxResponse {
                items: items.to_vec(),
            },
        ),
    }
}

fn render_pods(
    items: &[pb::PodSandbox],
    opts: &ListOptions,
    now: Timestamp,
    tz: &TimeZone,
) -> String {
    let mut out = String::new();
    let mut t = Table::new();
    if !opts.verbose && !opts.quiet {
        t.row([
            "POD ID",
            "CREATED",
            "STATE",
            "NAME",
            "NAMESPACE",
            "ATTEMPT",
            "RUNTIME",
        ]);
    }
    for pod in items {
        if opts.quiet {
            out.push_str(&pod.id);
            out.push('\n');
            continue;
        }
        let meta = pod.metadata.clone().unwrap_or_default();
        if !opts.verbose {
            t.row([
                truncate_id(&pod.id, opts.no_trunc),
                age(now, pod.created_at),
                pod_state(pod.state).to_owned(),
                meta.name,
                meta.namespace,
                meta.attempt.to_string(),
                runtime_handler(&pod.runtime_handler).to_owned(),
            ]);
            continue;
        }
        out.push_str(&format!("ID: {}\n", pod.id));
        if pod.metadata.is_some() {
            if !meta.name.is_empty() {
                out.push_str(&format!("Name: {}\n", meta.name));
            }
            if !meta.uid.is_empty() {
                out.push_str(&format!("UID: {}\n", meta.uid));
            }
            if !meta.namespace.is_empty() {
                out.push_str(&format!("Namespace: {}\n", meta.namespace));
            }
            if meta.attempt != 0 {
                out.push_str(&format!("Attempt: {}\n", meta.attempt));
            }
        }
        out.push_str(&format!("Status: {}\n", pod_state(pod.state)));
        out.push_str(&format!(
            "Created: {}\n",
            go_time_string(pod.created_at, tz)
        ));
        write_sorted_map(&mut out, "Labels", &pod.labels);
        write_sorted_map(&mut out, "Annotations", &pod.annotations);
        out.push_str(&format!(
            "Runtime: {}\n\n",
            runtime_handler(&pod.runtime_handler)
        ));
    }
    out.push_str(&t.render());
    out
}

// ---------------------------------------------------------------------
// ps

fn container_state(state: i32) -> &'static str {
    match pb::ContainerState::try_from(state) {
        Ok(pb::ContainerState::ContainerCreated) => "Created",
        Ok(pb::ContainerState::ContainerRunning) => "Running",
        Ok(pb::ContainerState::ContainerExited) => "Exited",
        Ok(pb::ContainerState::ContainerUnknown) | Err(_) => "Unknown",
    }
}

/// The value of a kubelet label, or `unknown` as crictl shows it.
fn label_or_unknown<'a>(labels: &'a HashMap<String, String>, key: &str) -> &'a str {
    labels.get(key).map_or("unknown", String::as_str)
}

const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";

/// Is `s` an OCI digest that go-digest accepts (`sha256:<64 hex>`, ...)?
/// Kubelet-created containers carry the image ID there, which crictl
/// shortens like any other ID.
fn parse_digest(s: &str) -> Option<(&str, &str)> {
    let (alg, hex) = s.split_once(':')?;
    let len = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return None,
    };
    (hex.len() == len
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some((alg, hex))
}

/// `berthctl ps`. The IMAGE column shows the container's image as the
/// runtime reports it (crictl's `--resolve-image-path` is not offered).
pub fn print_containers(
    w: &mut impl Write,
    format: OutputFormat,
    items: &[pb::Container],
    opts: &ListOptions,
    now: Timestamp,
) -> Result<()> {
    match format {
        OutputFormat::Table => {
            w.write_all(render_containers(items, opts, now).as_bytes())?;
            Ok(())
        }
        _ => print_value(
            w,
            format,
            &pb::ListContainersResponse {
                containers: items.to_vec(),
            },
        ),
    }
}

fn render_containers(items: &[pb::Container], opts: &ListOptions, now: Timestamp) -> String {
    let mut out = String::new();
    let mut t = Table::new();
    if !opts.verbose && !opts.quiet {
        t.row([
            "CONTAINER",
            "IMAGE",
            "CREATED",
            "STATE",
            "NAME",
            "ATTEMPT",
            "POD ID",
            "POD",
            "NAMESPACE",
        ]);
    }
    for c in items {
        if opts.quiet {
            out.push_str(&c.id);
            out.push('\n');
            continue;
        }
        let created = age(now, c.created_at);
        let namespace = label_or_unknown(&c.labels, POD_NAMESPACE_LABEL);
        let meta = c.metadata.clone().unwrap_or_default();
        if !opts.verbose {
            let mut image = c
                .image
                .as_ref()
                .map_or_else(String::new, |i| i.image.clone());
            if !opts.no_trunc
                && let Some((alg, hex)) = parse_digest(&image)
            {
                image = truncate_prefixed(&format!("{alg}:{hex}"), &format!("{alg}:"));
            }
            t.row([
                truncate_id(&c.id, opts.no_trunc),
                image,
                created,
                container_state(c.state).to_owned(),
                meta.name,
                meta.attempt.to_string(),
                truncate_id(&c.pod_sandbox_id, opts.no_trunc),
                label_or_unknown(&c.labels, POD_NAME_LABEL).to_owned(),
                namespace.to_owned(),
            ]);
            continue;
        }
        out.push_str(&format!(
            "ID: {}\nPodID: {}\nNamespace: {namespace}\n",
            c.id, c.pod_sandbox_id
        ));
        if c.metadata.is_some() {
            if !meta.name.is_empty() {
                out.push_str(&format!("Name: {}\n", meta.name));
            }
            out.push_str(&format!("Attempt: {}\n", meta.attempt));
        }
        out.push_str(&format!("State: {}\n", container_state(c.state)));
        if let Some(image) = &c.image {
            out.push_str(&format!("Image: {}\n", image.image));
        }
        out.push_str(&format!("Created: {created}\n"));
        write_sorted_map(&mut out, "Labels", &c.labels);
        write_sorted_map(&mut out, "Annotations", &c.annotations);
        out.push('\n');
    }
    out.push_str(&t.render());
    out
}

// ---------------------------------------------------------------------
// images

/// crictl's `imageByRef` order: by first tag, else first digest, else ID.
fn image_less(a: &pb::Image, b: &pb::Image) -> bool {
    if let (Some(x), Some(y)) = (a.repo_tags.first(), b.repo_tags.first()) {
        return x < y;
    }
    if let (Some(x), Some(y)) = (a.repo_digests.first(), b.repo_digests.first()) {
        return x < y;
    }
    a.id < b.id
}

fn sorted_images(images: &[pb::Image]) -> Vec<pb::Image> {
    let mut v = images.to_vec();
    // A stable insertion sort: image_less is not a total order (it mixes
    // keys), which `sort_by` may reject.
    for i in 1..v.len() {
        let mut j = i;
        while j > 0
            && v.get(j)
                .zip(v.get(j - 1))
                .is_some_and(|(b, a)| image_less(b, a))
        {
            v.swap(j, j - 1);
            j -= 1;
        }
    }
    v
}

/// `normalizeRepoDigest`: the repository and digest of the first repo
/// digest, `<none>` for none.
fn repo_digest(digests: &[String]) -> (String, String) {
    let Some(first) = digests.first() else {
        return ("<none>".into(), "<none>".into());
    };
    let parts: Vec<&str> = first.split('@').collect();
    match parts.as_slice() {
        [repo, digest] => ((*repo).to_owned(), (*digest).to_owned()),
        _ => ("errorName".into(), "errorRepoDigest".into()),
    }
}

/// `normalizeRepoTagPair`: one (repository, tag) per repo tag; an
/// untagged image shows its digest's repository and `<none>`.
fn repo_tag_pairs(tags: &[String], image_name: &str) -> Vec<(String, String)> {
    if tags.is_empty() {
        return vec![(image_name.to_owned(), "<none>".to_owned())];
    }
    tags.iter()
        .map(|tag| match tag.rsplit_once(':') {
            None => ("errorRepoTag".to_owned(), "errorRepoTag".to_owned()),
            Some((name, t)) => {
                let name = if name == "<none>" { image_name } else { name };
                (name.to_owned(), t.to_owned())
            }
        })
        .collect()
}

/// `berthctl images`, sorted as crictl sorts them.
pub fn print_images(
    w: &mut impl Write,
    format: OutputFormat,
    images: &[pb::Image],
    opts: &ImageListOptions,
) -> Result<()> {
    let images = sorted_images(images);
    match format {
        OutputFormat::Table => {
            w.write_all(render_images(&images, opts).as_bytes())?;
            Ok(())
        }
        _ => print_value(w, format, &pb::ListImagesResponse { images }),
    }
}

fn render_images(images: &[pb::Image], opts: &ImageListOptions) -> String {
    let mut out = String::new();
    let mut t = Table::new();
    if !opts.verbose && !opts.quiet {
        let mut header = vec!["IMAGE", "TAG"];
        if opts.digests {
            header.push("DIGEST");
        }
        header.extend(["IMAGE ID", "SIZE"]);
        if opts.pinned {
            header.push("PINNED");
        }
        t.row(header);
    }
    for image in images {
        if opts.quiet {
            out.push_str(&image.id);
            out.push('\n');
            continue;
        }
        if !opts.verbose {
            let (name, mut digest) = repo_digest(&image.repo_digests);
            let size = human_size_with_precision(image.size as f64, 3);
            let mut id = image.id.clone();
            if !opts.no_trunc {
                id = truncate_prefixed(&id, "sha256:");
                digest = truncate_prefixed(&digest, "sha256:");
            }
            for (repo, tag) in repo_tag_pairs(&image.repo_tags, &name) {
                let mut row = vec![repo, tag];
                if opts.digests {
                    row.push(digest.clone());
                }
                row.extend([id.clone(), size.clone()]);
                if opts.pinned {
                    row.push(image.pinned.to_string());
                }
                t.row(row);
            }
            continue;
        }
        out.push_str(&format!("ID: {}\n", image.id));
        for tag in &image.repo_tags {
            out.push_str(&format!("RepoTags: {tag}\n"));
        }
        for digest in &image.repo_digests {
            out.push_str(&format!("RepoDigests: {digest}\n"));
        }
        if image.size != 0 {
            out.push_str(&format!("Size: {}\n", image.size));
        }
        if let Some(uid) = &image.uid {
            // Go prints the Int64Value message in text format.
            out.push_str(&format!("Uid: value:{}\n", uid.value));
        }
        if !image.username.is_empty() {
            out.push_str(&format!("Username: {}\n", image.username));
        }
        if image.pinned {
            out.push_str("Pinned: true\n");
        }
        out.push('\n');
    }
    out.push_str(&t.render());
    out
}

// ---------------------------------------------------------------------
// inspect, inspectp, inspecti, info, imagefsinfo: crictl's outputStatusData

/// One status document: `status`, any extra keys, then the runtime's
/// `info` map where values that look like JSON objects are parsed and
/// other values lose their surrounding quotes.
fn status_document(
    status: Option<Json>,
    extra: Vec<(String, Json)>,
    info: &HashMap<String, String>,
) -> Json {
    let mut doc = Json::Object(Vec::new());
    if let Some(status) = status {
        doc.set("status", status);
    }
    for (k, v) in extra {
        doc.set(&k, v);
    }
    for (k, v) in info {
        let value = if v.starts_with('{') {
            // crictl fails on a malformed object; showing the raw text is
            // more useful than no output at all.
            serde_json::from_str::<Json>(v).unwrap_or_else(|_| Json::String(v.clone()))
        } else {
            Json::String(v.trim_matches('"').to_owned())
        };
        doc.set(k, value);
    }
    doc.sort_all_keys();
    doc
}

/// Prints status documents; like crictl, several are wrapped in an array.
fn write_status_documents(
    w: &mut impl Write,
    format: OutputFormat,
    mut docs: Vec<Json>,
    command: &'static str,
) -> Result<()> {
    if docs.is_empty() {
        return Ok(());
    }
    let doc = if docs.len() == 1 {
        docs.remove(0)
    } else {
        Json::Array(docs)
    };
    match format {
        OutputFormat::Json => writeln!(w, "{}", json::to_pretty(&doc, Dialect::Go))?,
        OutputFormat::Yaml => writeln!(w, "{}", yaml::to_yaml(&doc, Dialect::Go))?,
        OutputFormat::Table => {
            return Err(OutputError::Unsupported {
                command,
                format: format.name(),
            });
        }
    }
    Ok(())
}

/// Adds `null` for every field of `template` missing from `value`, as
/// crictl's `marshalMapInOrder` does for unset messages.
fn fill_nulls(value: &mut Json, template: &Json) {
    if let Json::Object(fields) = template {
        for (k, _) in fields {
            if value.get(k).is_none() {
                value.set(k, Json::Null);
            }
        }
    }
}

/// crictl's `marshalContainerStatus`: times as RFC 3339 in local time,
/// zero time for "not started/finished", null for unset messages.
fn container_status_json(status: &pb::ContainerStatus, tz: &TimeZone) -> Result<Json> {
    let mut json = encode(status, "container status")?;
    let template = encode(
        &pb::ContainerStatus {
            metadata: Some(Default::default()),
            image: Some(Default::default()),
            resources: Some(Default::default()),
            user: Some(Default::default()),
            ..Default::default()
        },
        "container status",
    )?;
    fill_nulls(&mut json, &template);
    let state = pb::ContainerState::try_from(status.state).ok();
    json.set(
        "createdAt",
        Json::String(rfc3339_nano(status.created_at, tz)),
    );
    let started = if state == Some(pb::ContainerState::ContainerCreated) {
        GO_ZERO_TIME.to_owned()
    } else {
        rfc3339_nano(status.started_at, tz)
    };
    json.set("startedAt", Json::String(started));
    let finished = state == Some(pb::ContainerState::ContainerExited)
        || (state == Some(pb::ContainerState::ContainerUnknown) && status.finished_at > 0);
    let finished = if finished {
        rfc3339_nano(status.finished_at, tz)
    } else {
        GO_ZERO_TIME.to_owned()
    };
    json.set("finishedAt", Json::String(finished));
    Ok(json)
}

fn pod_status_json(status: &pb::PodSandboxStatus, tz: &TimeZone) -> Result<Json> {
    let mut json = encode(status, "pod sandbox status")?;
    let template = encode(
        &pb::PodSandboxStatus {
            metadata: Some(Default::default()),
            network: Some(Default::default()),
            linux: Some(Default::default()),
            ..Default::default()
        },
        "pod sandbox status",
    )?;
    fill_nulls(&mut json, &template);
    json.set(
        "createdAt",
        Json::String(rfc3339_nano(status.created_at, tz)),
    );
    Ok(json)
}

/// `berthctl inspect` of one container.
pub fn print_inspect(
    w: &mut impl Write,
    format: OutputFormat,
    resp: &pb::ContainerStatusResponse,
    now: Timestamp,
) -> Result<()> {
    print_inspect_many(w, format, std::slice::from_ref(resp), now)
}

/// `berthctl inspect` of several containers (one JSON array, as crictl).
pub fn print_inspect_many(
    w: &mut impl Write,
    format: OutputFormat,
    resps: &[pb::ContainerStatusResponse],
    now: Timestamp,
) -> Result<()> {
    let tz = TimeZone::system();
    if format == OutputFormat::Table {
        for r in resps {
            w.write_all(render_container_status(r, now).as_bytes())?;
        }
        return Ok(());
    }
    let docs = inspect_documents(resps, &tz)?;
    write_status_documents(w, format, docs, "inspect")
}

fn inspect_documents(resps: &[pb::ContainerStatusResponse], tz: &TimeZone) -> Result<Vec<Json>> {
    resps
        .iter()
        .map(|r| {
            let status = container_status_json(&r.status.clone().unwrap_or_default(), tz)?;
            Ok(status_document(Some(status), Vec::new(), &r.info))
        })
        .collect()
}

/// crictl's `outputContainerStatusTable`. crictl prints `Info:` whenever
/// it asked for verbose status; berthctl prints it when there is some.
fn render_container_status(r: &pb::ContainerStatusResponse, now: Timestamp) -> String {
    let s = r.status.clone().unwrap_or_default();
    let mut out = format!("ID: {}\n", s.id);
    if let Some(meta) = &s.metadata {
        if !meta.name.is_empty() {
            out.push_str(&format!("Name: {}\n", meta.name));
        }
        if meta.attempt != 0 {
            out.push_str(&format!("Attempt: {}\n", meta.attempt));
        }
    }
    let state = pb::ContainerState::try_from(s.state).ok();
    let state_name = state.map_or_else(|| s.state.to_string(), |st| st.as_str_name().to_owned());
    out.push_str(&format!("State: {state_name}\n"));
    out.push_str(&format!("Created: {}\n", age(now, s.created_at)));
    if state != Some(pb::ContainerState::ContainerCreated) {
        out.push_str(&format!("Started: {}\n", age(now, s.started_at)));
    }
    if state == Some(pb::ContainerState::ContainerExited) {
        if s.finished_at > 0 {
            out.push_str(&format!("Finished: {}\n", age(now, s.finished_at)));
        }
        out.push_str(&format!("Exit Code: {}\n", s.exit_code));
    }
    write_sorted_map(&mut out, "Labels", &s.labels);
    write_sorted_map(&mut out, "Annotations", &s.annotations);
    if !r.info.is_empty() {
        out.push_str(&format!("Info: {}\n", go_map_string(&r.info)));
    }
    out
}

/// `berthctl inspectp` of one pod.
pub fn print_inspectp(
    w: &mut impl Write,
    format: OutputFormat,
    resp: &pb::PodSandboxStatusResponse,
) -> Result<()> {
    print_inspectp_many(w, format, std::slice::from_ref(resp))
}

/// `berthctl inspectp` of several pods (one JSON array, as crictl).
pub fn print_inspectp_many(
    w: &mut impl Write,
    format: OutputFormat,
    resps: &[pb::PodSandboxStatusResponse],
) -> Result<()> {
    let tz = TimeZone::system();
    if format == OutputFormat::Table {
        for r in resps {
            w.write_all(render_pod_status(r, &tz).as_bytes())?;
        }
        return Ok(());
    }
    let docs = inspectp_documents(resps, &tz)?;
    write_status_documents(w, format, docs, "inspectp")
}

fn inspectp_documents(resps: &[pb::PodSandboxStatusResponse], tz: &TimeZone) -> Result<Vec<Json>> {
    resps
        .iter()
        .map(|r| {
            let status = pod_status_json(&r.status.clone().unwrap_or_default(), tz)?;
            Ok(status_document(Some(status), Vec::new(), &r.info))
        })
        .collect()
}

/// crictl's `outputPodSandboxStatusTable`.
fn render_pod_status(r: &pb::PodSandboxStatusResponse, tz: &TimeZone) -> String {
    let s = r.status.clone().unwrap_or_default();
    let mut out = format!("ID: {}\n", s.id);
    if let Some(meta) = &s.metadata {
        for (label, value) in [
            ("Name", &meta.name),
            ("UID", &meta.uid),
            ("Namespace", &meta.namespace),
        ] {
            if !value.is_empty() {
                out.push_str(&format!("{label}: {value}\n"));
            }
        }
        out.push_str(&format!("Attempt: {}\n", meta.attempt));
    }
    let state = pb::PodSandboxState::try_from(s.state)
        .map_or_else(|_| s.state.to_string(), |st| st.as_str_name().to_owned());
    out.push_str(&format!("Status: {state}\n"));
    out.push_str(&format!("Created: {}\n", go_time_string(s.created_at, tz)));
    if let Some(net) = &s.network {
        out.push_str(&format!("IP Addresses: {}\n", net.ip));
        for ip in &net.additional_ips {
            out.push_str(&format!("Additional IP: {}\n", ip.ip));
        }
    }
    write_sorted_map(&mut out, "Labels", &s.labels);
    write_sorted_map(&mut out, "Annotations", &s.annotations);
    if !r.info.is_empty() {
        out.push_str(&format!("Info: {}\n", go_map_string(&r.info)));
    }
    out
}

/// `berthctl inspecti` of one image.
pub fn print_inspecti(
    w: &mut impl Write,
    format: OutputFormat,
    resp: &pb::ImageStatusResponse,
) -> Result<()> {
    print_inspecti_many(w, format, std::slice::from_ref(resp))
}

/// `berthctl inspecti` of several images (one JSON array, as crictl).
pub fn print_inspecti_many(
    w: &mut impl Write,
    format: OutputFormat,
    resps: &[pb::ImageStatusResponse],
) -> Result<()> {
    if format == OutputFormat::Table {
        for r in resps {
            w.write_all(render_image_status(r)?.as_bytes())?;
        }
        return Ok(());
    }
    let docs = inspecti_documents(resps)?;
    write_status_documents(w, format, docs, "inspecti")
}

fn inspecti_documents(resps: &[pb::ImageStatusResponse]) -> Result<Vec<Json>> {
    resps
        .iter()
        .map(|r| {
            let image = r.image.as_ref().ok_or(OutputError::NoSuchImage)?;
            Ok(status_document(
                Some(encode(image, "image status")?),
                Vec::new(),
                &r.info,
            ))
        })
        .collect()
}

fn render_image_status(r: &pb::ImageStatusResponse) -> Result<String> {
    let image = r.image.as_ref().ok_or(OutputError::NoSuchImage)?;
    let mut out = format!("ID: {}\n", image.id);
    for tag in &image.repo_tags {
        out.push_str(&format!("Tag: {tag}\n"));
    }
    for digest in &image.repo_digests {
        out.push_str(&format!("Digest: {digest}\n"));
    }
    out.push_str(&format!(
        "Size: {}\n",
        human_size_with_precision(image.size as f64, 3)
    ));
    if !r.info.is_empty() {
        out.push_str(&format!("Info: {}\n", go_map_string(&r.info)));
    }
    Ok(out)
}

/// `berthctl imagefsinfo`: `{"status": ...}`, or crictl's plain listing
/// for `-o table`.
pub fn print_imagefsinfo(
    w: &mut impl Write,
    format: OutputFormat,
    resp: &pb::ImageFsInfoResponse,
) -> Result<()> {
    if format == OutputFormat::Table {
        w.write_all(render_imagefsinfo(resp).as_bytes())?;
        return Ok(());
    }
    let doc = status_document(
        Some(encode(resp, "image filesystem info")?),
        Vec::new(),
        &HashMap::new(),
    );
    write_status_documents(w, format, vec![doc], "imagefsinfo")
}

fn render_imagefsinfo(resp: &pb::ImageFsInfoResponse) -> String {
    let mut out = String::new();
    for (label, filesystems) in [
        ("Container", &resp.container_filesystems),
        ("Image", &resp.image_filesystems),
    ] {
        out.push_str(&format!("{label} Filesystem \n"));
        for (i, fs) in filesystems.iter().enumerate() {
            let used = fs.used_bytes.as_ref().map_or(0, |v| v.value);
            let inodes = fs.inodes_used.as_ref().map_or(0, |v| v.value);
            let mountpoint = fs.fs_id.as_ref().map_or("", |f| f.mountpoint.as_str());
            out.push_str(&format!(
                "TimeStamp[{i}]: {}\nDisk[{i}]: {}\nInodes[{i}]: {inodes}\nMountpoint[{i}]: {mountpoint}\n",
                fs.timestamp,
                human_size(used as f64)
            ));
        }
    }
    out
}

/// `berthctl info`: the runtime's conditions under `status`, runtime
/// handlers and features when the runtime reports them (as Go's
/// encoding/json spells those: snake_case, false values left out), and
/// the verbose info map merged in at the top level.
pub fn print_info(
    w: &mut impl Write,
    format: OutputFormat,
    resp: &pb::StatusResponse,
) -> Result<()> {
    let doc = info_document(resp)?;
    write_status_documents(w, format, vec![doc], "info")
}

fn info_document(resp: &pb::StatusResponse) -> Result<Json> {
    let status = encode(&resp.status.clone().unwrap_or_default(), "runtime status")?;
    let mut extra = Vec::new();
    if !resp.runtime_handlers.is_empty() {
        let handlers = resp
            .runtime_handlers
            .iter()
            .map(|h| {
                let mut o = Json::Object(Vec::new());
                if !h.name.is_empty() {
                    o.set("name", Json::String(h.name.clone()));
                }
                if let Some(f) = &h.features {
                    let mut fo = Json::Object(Vec::new());
                    if f.recursive_read_only_mounts {
                        fo.set("recursive_read_only_mounts", Json::Bool(true));
                    }
                    if f.user_namespaces {
                        fo.set("user_namespaces", Json::Bool(true));
                    }
                    o.set("features", fo);
                }
                o
            })
            .collect();
        extra.push(("runtimeHandlers".to_owned(), Json::Array(handlers)));
    }
    if let Some(f) = &resp.features {
        let mut fo = Json::Object(Vec::new());
        if f.supplemental_groups_policy {
            fo.set("supplemental_groups_policy", Json::Bool(true));
        }
        extra.push(("features".to_owned(), fo));
    }
    Ok(status_document(Some(status), extra, &resp.info))
}

/// `berthctl version`: crictl's four lines (`fmt.Println("Version: ", v)`
/// puts two spaces after the colon), or the response as JSON/YAML.
pub fn print_version(
    w: &mut impl Write,
    format: OutputFormat,
    resp: &pb::VersionResponse,
) -> Result<()> {
    match format {
        OutputFormat::Table => {
            write!(
                w,
                "Version:  {}\nRuntimeName:  {}\nRuntimeVersion:  {}\nRuntimeApiVersion:  {}\n",
                resp.version, resp.runtime_name, resp.runtime_version, resp.runtime_api_version
            )?;
            Ok(())
        }
        _ => print_value(w, format, resp),
    }
}

// ---------------------------------------------------------------------
// stats, statsp

fn cpu_percent(id: &str, cpu: u64, old_cpu: u64, ts: i64, old_ts: i64) -> Result<f64> {
    if cpu == 0 {
        return Ok(0.0);
    }
    let duration = ts.saturating_sub(old_ts);
    if duration == 0 {
        return Err(OutputError::StaleCpuSample { id: id.to_owned() });
    }
    // Go subtracts as uint64 and wraps; a counter that went backwards
    // shows 0 here instead of an absurd number.
    Ok(cpu.saturating_sub(old_cpu) as f64 / duration as f64 * 100.0)
}

fn sorted_container_stats(resp: &pb::ListContainerStatsResponse) -> Vec<pb::ContainerStats> {
    let mut stats = resp.stats.clone();
    stats.sort_by(|a, b| {
        let ida = a.attributes.as_ref().map_or("", |x| x.id.as_str());
        let idb = b.attributes.as_ref().map_or("", |x| x.id.as_str());
        ida.cmp(idb)
    });
    stats
}

/// `berthctl stats`. The table needs two samples (CPU % is the change in
/// CPU time between them, as crictl computes it); JSON and YAML print the
/// newer one. crictl also hides rows with no CPU and memory unless `-a`;
/// the caller already filters to running containers for that.
pub fn print_stats(
    w: &mut impl Write,
    format: OutputFormat,
    previous: &pb::ListContainerStatsResponse,
    current: &pb::ListContainerStatsResponse,
) -> Result<()> {
    let current_sorted = sorted_container_stats(current);
    if format != OutputFormat::Table {
        return print_value(
            w,
            format,
            &pb::ListContainerStatsResponse {
                stats: current_sorted,
            },
        );
    }
    let text = render_stats(previous, &current_sorted)?;
    w.write_all(text.as_bytes())?;
    Ok(())
}

fn render_stats(
    previous: &pb::ListContainerStatsResponse,
    current: &[pb::ContainerStats],
) -> Result<String> {
    let old: HashMap<&str, &pb::ContainerStats> = previous
        .stats
        .iter()
        .filter_map(|s| s.attributes.as_ref().map(|a| (a.id.as_str(), s)))
        .collect();
    let mut t = Table::new();
    t.row([
        "CONTAINER",
        "NAME",
        "CPU %",
        "MEM",
        "DISK",
        "INODES",
        "SWAP",
    ]);
    for s in current {
        let attrs = s.attributes.clone().unwrap_or_default();
        let Some(prev) = old.get(attrs.id.as_str()) else {
            // Appeared between the samples: no CPU rate yet.
            continue;
        };
        let cpu_of = |st: &pb::ContainerStats| {
            st.cpu.as_ref().map_or((0, 0), |c| {
                (
                    c.usage_core_nano_seconds.as_ref().map_or(0, |v| v.value),
                    c.timestamp,
                )
            })
        };
        let (cpu, ts) = cpu_of(s);
        let (old_cpu, old_ts) = cpu_of(prev);
        let mem = s
            .memory
            .as_ref()
            .and_then(|m| m.working_set_bytes.as_ref())
            .map_or(0, |v| v.value);
        let disk = s
            .writable_layer
            .as_ref()
            .and_then(|l| l.used_bytes.as_ref())
            .map_or(0, |v| v.value);
        let inodes = s
            .writable_layer
            .as_ref()
            .and_then(|l| l.inodes_used.as_ref())
            .map_or(0, |v| v.value);
        let swap = s
            .swap
            .as_ref()
            .and_then(|x| x.swap_usage_bytes.as_ref())
            .map_or(0, |v| v.value);
        let perc = cpu_percent(&attrs.id, cpu, old_cpu, ts, old_ts)?;
        t.row([
            truncate_id(&attrs.id, false),
            attrs.metadata.map(|m| m.name).unwrap_or_default(),
            format!("{perc:.2}"),
            human_size(mem as f64),
            human_size(disk as f64),
            inodes.to_string(),
            human_size(swap as f64),
        ]);
    }
    Ok(format!("{CLEAR_SCREEN}{}", t.render()))
}

/// CPU time, memory and CPU timestamp of a pod's stats, Linux or Windows.
fn pod_usage(s: &pb::PodSandboxStats, id: &str) -> Result<(u64, u64, i64, u64)> {
    match (&s.linux, &s.windows) {
        (Some(_), Some(_)) => Err(OutputError::MixedPodStats { id: id.to_owned() }),
        (Some(l), None) => {
            let cpu = l.cpu.unwrap_or_default();
            Ok((
                cpu.usage_core_nano_seconds.map_or(0, |v| v.value),
                l.memory
                    .as_ref()
                    .and_then(|m| m.working_set_bytes.as_ref())
                    .map_or(0, |v| v.value),
                cpu.timestamp,
                cpu.usage_nano_cores.map_or(0, |v| v.value),
            ))
        }
        (None, Some(wi)) => {
            let cpu = wi.cpu.unwrap_or_default();
            Ok((
                cpu.usage_core_nano_seconds.map_or(0, |v| v.value),
                wi.memory
                    .as_ref()
                    .and_then(|m| m.working_set_bytes.as_ref())
                    .map_or(0, |v| v.value),
                cpu.timestamp,
                cpu.usage_nano_cores.map_or(0, |v| v.value),
            ))
        }
        (None, None) => Ok((0, 0, 0, 0)),
    }
}

fn sorted_pod_stats(resp: &pb::ListPodSandboxStatsResponse) -> Vec<pb::PodSandboxStats> {
    let mut stats = resp.stats.clone();
    stats.sort_by(|a, b| {
        let ida = a.attributes.as_ref().map_or("", |x| x.id.as_str());
        let idb = b.attributes.as_ref().map_or("", |x| x.id.as_str());
        ida.cmp(idb)
    });
    stats
}

/// `berthctl statsp` from a single sample. crictl samples twice and
/// divides the CPU time used by the time between; with one sample this
/// uses the runtime's own `usageNanoCores` rate instead. See
/// [`print_statsp_sampled`] for crictl's two-sample way.
pub fn print_statsp(
    w: &mut impl Write,
    format: OutputFormat,
    resp: &pb::ListPodSandboxStatsResponse,
) -> Result<()> {
    let stats = sorted_pod_stats(resp);
    if format != OutputFormat::Table {
        return print_value(w, format, &pb::ListPodSandboxStatsResponse { stats });
    }
    let mut t = Table::new();
    t.row(["POD", "POD ID", "CPU %", "MEM"]);
    for s in &stats {
        let attrs = s.attributes.clone().unwrap_or_default();
        let id = truncate_id(&attrs.id, false);
        let (cpu, mem, _, nano_cores) = pod_usage(s, &id)?;
        if cpu == 0 && mem == 0 {
            continue;
        }
        t.row([
            attrs.metadata.map(|m| m.name).unwrap_or_default(),
            id,
            format!("{:.2}", nano_cores as f64 / 1e9 * 100.0),
            human_size(mem as f64),
        ]);
    }
    write!(w, "{CLEAR_SCREEN}{}", t.render())?;
    Ok(())
}

/// `berthctl statsp` exactly as crictl computes it, from two samples.
// main.rs samples once today; kept for a crictl-exact `statsp`.
#[allow(dead_code)]
pub fn print_statsp_sampled(
    w: &mut impl Write,
    format: OutputFormat,
    previous: &pb::ListPodSandboxStatsResponse,
    current: &pb::ListPodSandboxStatsResponse,
) -> Result<()> {
    let stats = sorted_pod_stats(current);
    if format != OutputFormat::Table {
        return print_value(w, format, &pb::ListPodSandboxStatsResponse { stats });
    }
    let old: HashMap<&str, &pb::PodSandboxStats> = previous
        .stats
        .iter()
        .filter_map(|s| s.attributes.as_ref().map(|a| (a.id.as_str(), s)))
        .collect();
    let mut t = Table::new();
    t.row(["POD", "POD ID", "CPU %", "MEM"]);
    for s in &stats {
        let attrs = s.attributes.clone().unwrap_or_default();
        let id = truncate_id(&attrs.id, false);
        let (cpu, mem, ts, _) = pod_usage(s, &id)?;
        if cpu == 0 && mem == 0 {
            continue;
        }
        let Some(prev) = old.get(attrs.id.as_str()) else {
            continue;
        };
        let (old_cpu, _, old_ts, _) = pod_usage(prev, &id)?;
        let perc = cpu_percent(&id, cpu, old_cpu, ts, old_ts)?;
        t.row([
            attrs.metadata.map(|m| m.name).unwrap_or_default(),
            id,
            format!("{perc:.2}"),
            human_size(mem as f64),
        ]);
    }
    write!(w, "{CLEAR_SCREEN}{}", t.render())?;
    Ok(())
}

#[cfg(test)]
mod tests;
