//! `inspect`, `inspectp`, `inspecti`, `info`, `imagefsinfo` and `version`:
//! crictl's status documents (outputStatusData) and their tables.

use super::*;

/// One status document: `status`, any extra keys, then the runtime's
/// `info` map where values that look like JSON objects are parsed and
/// other values lose their surrounding quotes.
pub(super) fn status_document(
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
pub(super) fn write_status_documents(
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
pub(super) fn container_status_json(status: &pb::ContainerStatus, tz: &TimeZone) -> Result<Json> {
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

pub(super) fn inspect_documents(
    resps: &[pb::ContainerStatusResponse],
    tz: &TimeZone,
) -> Result<Vec<Json>> {
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
pub(super) fn render_container_status(r: &pb::ContainerStatusResponse, now: Timestamp) -> String {
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

pub(super) fn inspectp_documents(
    resps: &[pb::PodSandboxStatusResponse],
    tz: &TimeZone,
) -> Result<Vec<Json>> {
    resps
        .iter()
        .map(|r| {
            let status = pod_status_json(&r.status.clone().unwrap_or_default(), tz)?;
            Ok(status_document(Some(status), Vec::new(), &r.info))
        })
        .collect()
}

/// crictl's `outputPodSandboxStatusTable`.
pub(super) fn render_pod_status(r: &pb::PodSandboxStatusResponse, tz: &TimeZone) -> String {
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
