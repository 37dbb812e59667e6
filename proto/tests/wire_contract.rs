//! Wire-contract test: `proto/api.proto` must describe exactly the same
//! CRI runtime.v1 API as upstream k8s.io/cri-api of Kubernetes 1.36.
//!
//! Both files are compiled with protox and flattened into a canonical,
//! sorted, line-per-fact description (services, methods, messages, fields,
//! enums, values, reserved ranges, options). Upstream's description is
//! committed as `upstream/cri-api-v1.36.txt`; comments and layout do not
//! take part, so Berth can keep its own comments.
//!
//! To regenerate the golden file from an upstream `api.proto`:
//!
//! ```text
//! CRI_UPSTREAM_PROTO=/path/to/api.proto \
//!   cargo test -p berth-cri-proto --test wire_contract -- --ignored regenerate_golden
//! ```

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use prost_reflect::{
    DescriptorPool, DynamicMessage, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor,
    MethodDescriptor, Value,
};

/// How many differing lines of each side to print before giving up.
const SHOWN_DIFFS: usize = 25;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn golden_path() -> PathBuf {
    crate_dir().join("upstream/cri-api-v1.36.txt")
}

/// Compiles `file` (relative to `dir`) and returns its descriptor pool.
fn compile(dir: &Path, file: &str) -> Result<DescriptorPool, String> {
    let mut compiler = protox::Compiler::new([dir])
        .map_err(|e| format!("protox include dir {}: {e}", dir.display()))?;
    compiler.include_imports(false);
    compiler
        .open_file(file)
        .map_err(|e| format!("compiling {} in {}: {e:?}", file, dir.display()))?;
    Ok(compiler.descriptor_pool())
}

fn kind_name(kind: &Kind) -> String {
    match kind {
        Kind::Double => "double".into(),
        Kind::Float => "float".into(),
        Kind::Int32 => "int32".into(),
        Kind::Int64 => "int64".into(),
        Kind::Uint32 => "uint32".into(),
        Kind::Uint64 => "uint64".into(),
        Kind::Sint32 => "sint32".into(),
        Kind::Sint64 => "sint64".into(),
        Kind::Fixed32 => "fixed32".into(),
        Kind::Fixed64 => "fixed64".into(),
        Kind::Sfixed32 => "sfixed32".into(),
        Kind::Sfixed64 => "sfixed64".into(),
        Kind::Bool => "bool".into(),
        Kind::String => "string".into(),
        Kind::Bytes => "bytes".into(),
        Kind::Message(m) => format!("message {}", m.full_name()),
        Kind::Enum(e) => format!("enum {}", e.full_name()),
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::Bool(b) => b.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::EnumNumber(n) => n.to_string(),
        Value::I32(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::U32(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

/// Set options (known and unknown) as ` [a=b, c=d]`, or "" when none.
fn options_text(options: &DynamicMessage) -> String {
    let mut parts: Vec<String> = options
        .fields()
        .map(|(f, v)| format!("{}={}", f.name(), value_text(v)))
        .collect();
    parts.extend(
        options
            .unknown_fields()
            .map(|u| format!("unknown#{}", u.number())),
    );
    parts.sort();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" [{}]", parts.join(", "))
    }
}

fn method_line(m: &MethodDescriptor) -> String {
    let stream = |yes: bool| if yes { "stream " } else { "" };
    format!(
        "rpc {}({}{}) returns ({}{}){}",
        m.full_name(),
        stream(m.is_client_streaming()),
        m.input().full_name(),
        stream(m.is_server_streaming()),
        m.output().full_name(),
        options_text(&m.options()),
    )
}

fn field_line(msg: &MessageDescriptor, f: &FieldDescriptor) -> String {
    let proto = f.field_descriptor_proto();
    // Maps are repeated entry messages on the wire; name both sides instead.
    let shape = if f.is_map() {
        let Kind::Message(entry) = f.kind() else {
            return format!(
                "field {}.{} = {} <map without entry>",
                msg.full_name(),
                f.name(),
                f.number()
            );
        };
        let key = kind_name(&entry.map_entry_key_field().kind());
        let value = kind_name(&entry.map_entry_value_field().kind());
        format!("map<{key}, {value}>")
    } else if f.is_list() {
        format!("repeated {}", kind_name(&f.kind()))
    } else if proto.proto3_optional() {
        format!("optional {}", kind_name(&f.kind()))
    } else {
        format!("singular {}", kind_name(&f.kind()))
    };
    let oneof = match f.containing_oneof() {
        Some(o) if !o.is_synthetic() => format!(" oneof={}", o.name()),
        _ => String::new(),
    };
    format!(
        "field {}.{} = {} {shape} json={}{oneof}{}",
        msg.full_name(),
        f.name(),
        f.number(),
        f.json_name(),
        options_text(&f.options()),
    )
}

fn describe_message(out: &mut Vec<String>, msg: &MessageDescriptor) {
    out.push(format!(
        "message {}{}",
        msg.full_name(),
        options_text(&msg.options())
    ));
    for r in msg.reserved_ranges() {
        // Ranges are half-open in descriptors; print them inclusive like .proto.
        out.push(format!(
            "reserved {} {} to {}",
            msg.full_name(),
            r.start,
            r.end.saturating_sub(1)
        ));
    }
    let mut names: Vec<&str> = msg.reserved_names().collect();
    names.sort_unstable();
    for n in names {
        out.push(format!("reserved {} {n:?}", msg.full_name()));
    }
    for o in msg.oneofs().filter(|o| !o.is_synthetic()) {
        out.push(format!("oneof {}.{}", msg.full_name(), o.name()));
    }
    let mut fields: Vec<FieldDescriptor> = msg.fields().collect();
    fields.sort_by_key(FieldDescriptor::number);
    for f in &fields {
        out.push(field_line(msg, f));
    }
}

fn describe_enum(out: &mut Vec<String>, e: &EnumDescriptor) {
    out.push(format!(
        "enum {}{}",
        e.full_name(),
        options_text(&e.options())
    ));
    for r in e.reserved_ranges() {
        out.push(format!(
            "reserved {} {} to {}",
            e.full_name(),
            r.start(),
            r.end()
        ));
    }
    let mut names: Vec<&str> = e.reserved_names().collect();
    names.sort_unstable();
    for n in names {
        out.push(format!("reserved {} {n:?}", e.full_name()));
    }
    let mut values: Vec<_> = e.values().collect();
    values.sort_by(|a, b| {
        a.number()
            .cmp(&b.number())
            .then_with(|| a.name().cmp(b.name()))
    });
    for v in values {
        out.push(format!(
            "value {}.{} = {}{}",
            e.full_name(),
            v.name(),
            v.number(),
            options_text(&v.options())
        ));
    }
}

/// The canonical description of every file in `pool`, one fact per line:
/// files, then services, messages and enums, each sorted by full name, with
/// methods by name, fields and enum values by number.
fn describe(pool: &DescriptorPool) -> Vec<String> {
    let mut out = Vec::new();
    let mut files: Vec<_> = pool.files().collect();
    files.sort_by(|a, b| a.name().cmp(b.name()));
    for file in &files {
        let proto = file.file_descriptor_proto();
        let mut deps: Vec<&str> = proto.dependency.iter().map(String::as_str).collect();
        deps.sort_unstable();
        out.push(format!(
            "file syntax={} package={} imports=[{}]{}",
            proto.syntax(),
            file.package_name(),
            deps.join(", "),
            options_text(&file.options()),
        ));
    }

    let mut services: Vec<_> = pool.services().collect();
    services.sort_by(|a, b| a.full_name().cmp(b.full_name()));
    for s in &services {
        out.push(format!(
            "service {}{}",
            s.full_name(),
            options_text(&s.options())
        ));
        let mut methods: Vec<_> = s.methods().collect();
        methods.sort_by(|a, b| a.name().cmp(b.name()));
        out.extend(methods.iter().map(method_line));
    }

    let mut messages: Vec<_> = pool.all_messages().filter(|m| !m.is_map_entry()).collect();
    messages.sort_by(|a, b| a.full_name().cmp(b.full_name()));
    for m in &messages {
        describe_message(&mut out, m);
    }

    let mut enums: Vec<_> = pool.all_enums().collect();
    enums.sort_by(|a, b| a.full_name().cmp(b.full_name()));
    for e in &enums {
        describe_enum(&mut out, e);
    }
    out
}

fn describe_ours() -> Result<Vec<String>, String> {
    Ok(describe(&compile(&crate_dir().join("proto"), "api.proto")?))
}

/// Golden lines without its `#` header.
fn read_golden() -> Result<Vec<String>, String> {
    let path = golden_path();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("reading golden file {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_owned)
        .collect())
}

/// A readable difference report, or `None` when both sides are equal.
/// Each line is self-contained (it names its message/service), so listing
/// the lines missing from each side is enough to see what changed.
fn diff(upstream: &[String], ours: &[String]) -> Option<String> {
    if upstream == ours {
        return None;
    }
    let up: HashSet<&String> = upstream.iter().collect();
    let our: HashSet<&String> = ours.iter().collect();
    let missing: Vec<&String> = upstream.iter().filter(|l| !our.contains(l)).collect();
    let extra: Vec<&String> = ours.iter().filter(|l| !up.contains(l)).collect();
    let mut report = format!(
        "proto/api.proto differs from upstream CRI v1.36 ({} upstream lines missing, {} extra lines)\n",
        missing.len(),
        extra.len()
    );
    for (title, lines) in [
        ("upstream has, ours lacks", &missing),
        ("ours has, upstream lacks", &extra),
    ] {
        if lines.is_empty() {
            continue;
        }
        let _ = writeln!(report, "--- {title}:");
        for l in lines.iter().take(SHOWN_DIFFS) {
            let _ = writeln!(report, "  {l}");
        }
        if lines.len() > SHOWN_DIFFS {
            let _ = writeln!(report, "  ... and {} more", lines.len() - SHOWN_DIFFS);
        }
    }
    if missing.is_empty() && extra.is_empty() {
        report.push_str("same lines in a different order or with duplicates\n");
    }
    Some(report)
}

#[test]
fn api_proto_matches_upstream_cri_v1_36() {
    let golden = read_golden().expect("golden file");
    let ours = describe_ours().expect("our api.proto compiles");
    if let Some(report) = diff(&golden, &ours) {
        panic!("{report}");
    }
}

#[test]
fn golden_file_covers_the_1_36_additions() {
    // Guards against an accidentally truncated or stale golden file.
    let golden = read_golden().expect("golden file");
    for needle in [
        "rpc runtime.v1.RuntimeService.UpdatePodSandboxResources(",
        "rpc runtime.v1.RuntimeService.StreamPodSandboxes(runtime.v1.StreamPodSandboxesRequest) returns (stream runtime.v1.StreamPodSandboxesResponse)",
        "rpc runtime.v1.ImageService.StreamImages(",
        "field runtime.v1.ContainerConfig.stop_signal = 18 singular enum runtime.v1.Signal",
        "field runtime.v1.Mount.image_sub_path = 10 singular string",
        "field runtime.v1.ImageFsInfoResponse.container_filesystems = 2 repeated message runtime.v1.FilesystemUsage",
        "value runtime.v1.Signal.SIGRTMAX = 65",
    ] {
        assert!(
            golden.iter().any(|l| l.starts_with(needle)),
            "golden file lacks a line starting with {needle:?}"
        );
    }
    let rpcs = golden.iter().filter(|l| l.starts_with("rpc ")).count();
    assert_eq!(rpcs, 41, "RuntimeService 35 + ImageService 6 RPCs");
}

/// Proves the comparison catches a one-character wire change: renumbering
/// a single field in a copy of our file must make the diff name it.
#[test]
fn a_changed_field_number_is_reported() {
    let src = std::fs::read_to_string(crate_dir().join("proto/api.proto")).expect("read api.proto");
    let needle = "string pod_cidr = 1;";
    assert_eq!(src.matches(needle).count(), 1, "test anchor must be unique");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("api.proto"),
        src.replace(needle, "string pod_cidr = 2;"),
    )
    .expect("write mutated copy");

    let golden = read_golden().expect("golden file");
    let mutated = describe(&compile(dir.path(), "api.proto").expect("mutated copy compiles"));
    let report = diff(&golden, &mutated).expect("a renumbered field must be a difference");
    assert!(
        report.contains("field runtime.v1.NetworkConfig.pod_cidr = 1 singular string")
            && report.contains("field runtime.v1.NetworkConfig.pod_cidr = 2 singular string"),
        "report should show both numbers:\n{report}"
    );
}

/// Proves a field upstream lacks is reported as extra (the kind of slip
/// that copying a post-1.36 field, like 1.37's audit_request_id, would be).
#[test]
fn an_extra_field_is_reported() {
    let src = std::fs::read_to_string(crate_dir().join("proto/api.proto")).expect("read api.proto");
    let needle = "message ExecResponse {";
    assert_eq!(src.matches(needle).count(), 1, "test anchor must be unique");
    let mutated_src = src.replacen(
        needle,
        "message ExecResponse {\n    string audit_request_id = 7;",
        1,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("api.proto"), mutated_src).expect("write mutated copy");

    let golden = read_golden().expect("golden file");
    let mutated = describe(&compile(dir.path(), "api.proto").expect("mutated copy compiles"));
    let report = diff(&golden, &mutated).expect("an extra field must be a difference");
    assert!(
        report.contains("ours has, upstream lacks")
            && report.contains("field runtime.v1.ExecResponse.audit_request_id = 7"),
        "report should list the extra field:\n{report}"
    );
}

/// Writes the golden file from the upstream proto named by
/// `CRI_UPSTREAM_PROTO`. Ignored: run by hand when moving to a new release.
#[test]
#[ignore = "regenerates upstream/cri-api-v1.36.txt from CRI_UPSTREAM_PROTO"]
fn regenerate_golden() {
    let path = PathBuf::from(std::env::var("CRI_UPSTREAM_PROTO").expect("set CRI_UPSTREAM_PROTO"));
    let dir = path.parent().expect("proto path has a directory");
    let file = path
        .file_name()
        .and_then(|f| f.to_str())
        .expect("proto file name");
    let lines = describe(&compile(dir, file).expect("upstream proto compiles"));
    let header = std::env::var("CRI_UPSTREAM_HEADER").unwrap_or_default();
    let mut text = String::new();
    for h in header.lines() {
        let _ = writeln!(text, "# {h}");
    }
    for l in &lines {
        let _ = writeln!(text, "{l}");
    }
    std::fs::create_dir_all(golden_path().parent().expect("golden dir")).expect("mkdir upstream");
    std::fs::write(golden_path(), text).expect("write golden");
}
