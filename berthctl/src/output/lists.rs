//! `pods`, `ps` and `images`: sorting and the rows of their tables.

use super::*;

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

pub(super) fn render_pods(
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

pub(super) const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
pub(super) const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";

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

pub(super) fn render_containers(
    items: &[pb::Container],
    opts: &ListOptions,
    now: Timestamp,
) -> String {
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
pub(super) fn repo_digest(digests: &[String]) -> (String, String) {
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
pub(super) fn repo_tag_pairs(tags: &[String], image_name: &str) -> Vec<(String, String)> {
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
