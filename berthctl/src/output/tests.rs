//! Output checked against real crictl 1.36 output (testdata/, taken from
//! containerd 1.6.20) and against crictl's rules for the cases the
//! samples do not show.

use super::lists::{
    POD_NAME_LABEL, POD_NAMESPACE_LABEL, render_containers, render_pods, repo_digest,
    repo_tag_pairs,
};
use super::stats::print_statsp_sampled;
use super::status::{
    container_status_json, inspect_documents, inspectp_documents, print_inspecti_many,
    render_container_status, render_pod_status, status_document, write_status_documents,
};
use super::*;

const PODS_JSON: &str = include_str!("testdata/pods.json");
const PODS_YAML: &str = include_str!("testdata/pods.yaml");
const PODS_TXT: &str = include_str!("testdata/pods.txt");
const PS_JSON: &str = include_str!("testdata/ps.json");
const PS_TXT: &str = include_str!("testdata/ps.txt");
const IMAGES_JSON: &str = include_str!("testdata/images.json");
const IMAGES_TXT: &str = include_str!("testdata/images.txt");
const STATS_JSON: &str = include_str!("testdata/stats.json");
const STATS_TXT: &str = include_str!("testdata/stats.txt");
const INSPECT_JSON: &str = include_str!("testdata/inspect.json");
const INSPECTP_JSON: &str = include_str!("testdata/inspectp.json");
const INSPECTI_JSON: &str = include_str!("testdata/inspecti.json");
const INFO_JSON: &str = include_str!("testdata/info.json");
const IMAGEFSINFO_JSON: &str = include_str!("testdata/imagefsinfo.json");
const VERSION_TXT: &str = include_str!("testdata/version.txt");

fn ts(ns: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(ns)).unwrap()
}

fn out(f: impl FnOnce(&mut Vec<u8>) -> Result<()>) -> String {
    let mut buf = Vec::new();
    f(&mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

fn pods() -> Vec<pb::PodSandbox> {
    serde_json::from_str::<pb::ListPodSandboxResponse>(PODS_JSON)
        .unwrap()
        .items
}

fn containers() -> Vec<pb::Container> {
    serde_json::from_str::<pb::ListContainersResponse>(PS_JSON)
        .unwrap()
        .containers
}

fn images() -> Vec<pb::Image> {
    serde_json::from_str::<pb::ListImagesResponse>(IMAGES_JSON)
        .unwrap()
        .images
}

fn stats() -> pb::ListContainerStatsResponse {
    serde_json::from_str(STATS_JSON).unwrap()
}

/// Info map values as containerd sends them: JSON text.
fn info_map(doc: &serde_json::Value, skip: &[&str]) -> HashMap<String, String> {
    doc.as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), serde_json::to_string(v).unwrap()))
        .collect()
}

/// Turns crictl's RFC 3339 times back into CRI nanoseconds.
fn ns_field(status: &mut serde_json::Value, key: &str) {
    let text = status[key].as_str().unwrap().to_owned();
    let ns = if text == GO_ZERO_TIME {
        0
    } else {
        text.parse::<Timestamp>().unwrap().as_nanosecond()
    };
    status[key] = serde_json::Value::String(ns.to_string());
}

#[test]
fn format_parsing() {
    assert_eq!(
        OutputFormat::parse_or("", OutputFormat::Json).unwrap(),
        OutputFormat::Json
    );
    assert_eq!(
        OutputFormat::parse_or("yaml", OutputFormat::Json).unwrap(),
        OutputFormat::Yaml
    );
    assert_eq!(
        OutputFormat::parse_or("table", OutputFormat::Json).unwrap(),
        OutputFormat::Table
    );
    let err = OutputFormat::parse_or("xml", OutputFormat::Table)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "output format \"xml\" is not supported: use table, json or yaml"
    );
    let err = OutputFormat::parse_or("go-template", OutputFormat::Table)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("go-template") && err.contains("-o json"),
        "{err}"
    );
}

#[test]
fn truncates_ids_to_13() {
    assert_eq!(
        truncate_id("59d578ca4f2110b6460030eb", false),
        "59d578ca4f211"
    );
    assert_eq!(
        truncate_id("59d578ca4f2110b6460030eb", true),
        "59d578ca4f2110b6460030eb"
    );
    assert_eq!(truncate_id("short", false), "short");
    assert_eq!(
        truncate_prefixed("sha256:e05e6500aaa432395961", "sha256:"),
        "e05e6500aaa43"
    );
}

#[test]
fn pods_json_and_yaml_match_crictl_byte_for_byte() {
    let opts = ListOptions::default();
    let json = out(|w| print_pods(w, OutputFormat::Json, &pods(), &opts, now()));
    assert_eq!(json, PODS_JSON);
    let yaml = out(|w| print_pods(w, OutputFormat::Yaml, &pods(), &opts, now()));
    assert_eq!(yaml, PODS_YAML);
}

#[test]
fn pods_table_matches_crictl() {
    let items = pods();
    let now = ts(items[0].created_at + 1_500_000_000);
    let text = render_pods(&items, &ListOptions::default(), now, &TimeZone::UTC);
    assert_eq!(text, PODS_TXT);
    let quiet = ListOptions {
        quiet: true,
        ..Default::default()
    };
    assert_eq!(
        render_pods(&items, &quiet, now, &TimeZone::UTC),
        format!("{}\n", items[0].id)
    );
    let full = ListOptions {
        no_trunc: true,
        ..Default::default()
    };
    assert!(
        render_pods(&items, &full, now, &TimeZone::UTC)
            .contains(&format!("\n{}   1 second ago", items[0].id))
    );
}

#[test]
fn pods_verbose_blocks() {
    let mut items = pods();
    items[0].labels.insert("b".into(), "2".into());
    items[0].labels.insert("a".into(), "1".into());
    items[0].runtime_handler = "kata".into();
    let verbose = ListOptions {
        verbose: true,
        ..Default::default()
    };
    let text = render_pods(&items, &verbose, now(), &TimeZone::UTC);
    assert_eq!(
        text,
        "ID: 59d578ca4f2110b6460030ebbbcc374b160f9dc57f5a2ef2d294b96319f7dcb3\n\
         Name: raw1\nUID: raw-uid-1\nNamespace: bench\nStatus: Ready\n\
         Created: 2026-11-22 08:36:41.717424319 +0000 UTC\n\
         Labels:\n\ta -> 1\n\tb -> 2\nRuntime: kata\n\n"
    );
}

#[test]
fn ps_json_and_table_match_crictl() {
    let items = containers();
    let opts = ListOptions::default();
    assert_eq!(
        out(|w| print_containers(w, OutputFormat::Json, &items, &opts, now())),
        PS_JSON
    );
    let now = ts(items[0].created_at + 1_000_000_000);
    assert_eq!(render_containers(&items, &opts, now), PS_TXT);
}

#[test]
fn ps_shortens_image_ids_and_reads_pod_labels() {
    let mut items = containers();
    let c = &mut items[0];
    c.image = Some(pb::ImageSpec {
        image: "sha256:e05e6500aaa432395961db58067aa4ce5c59c834ebfbe85a9a03ef43a4232e43".into(),
        ..Default::default()
    });
    c.labels.insert(POD_NAME_LABEL.into(), "web-0".into());
    c.labels.insert(POD_NAMESPACE_LABEL.into(), "prod".into());
    c.state = pb::ContainerState::ContainerExited as i32;
    let now = ts(c.created_at + 3 * 3600 * 1_000_000_000);
    let text = render_containers(&items, &ListOptions::default(), now);
    let row = text.lines().nth(1).unwrap();
    let cells: Vec<&str> = row
        .split("   ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        cells,
        [
            "7929cade07a75",
            "e05e6500aaa43",
            "3 hours ago",
            "Exited",
            "c",
            "0",
            "59d578ca4f211",
            "web-0",
            "prod"
        ]
    );
    // Not a valid digest (wrong length): shown as is.
    items[0].image = Some(pb::ImageSpec {
        image: "sha256:abc".into(),
        ..Default::default()
    });
    assert!(render_containers(&items, &ListOptions::default(), now).contains("sha256:abc"));
}

#[test]
fn ps_verbose_blocks() {
    let items = containers();
    let now = ts(items[0].created_at + 61_000_000_000);
    let verbose = ListOptions {
        verbose: true,
        ..Default::default()
    };
    assert_eq!(
        render_containers(&items, &verbose, now),
        "ID: 7929cade07a754cba4d988e8e13de57d3fe929acde6086c38b65af3a1bca61b7\n\
         PodID: 59d578ca4f2110b6460030ebbbcc374b160f9dc57f5a2ef2d294b96319f7dcb3\n\
         Namespace: unknown\nName: c\nAttempt: 0\nState: Running\n\
         Image: docker.io/library/busybox:latest\nCreated: About a minute ago\n\n"
    );
}

#[test]
fn images_json_and_table_match_crictl() {
    let mut shuffled = images();
    shuffled.reverse();
    let opts = ImageListOptions::default();
    // Sorted by first tag whatever order the runtime used.
    assert_eq!(
        out(|w| print_images(w, OutputFormat::Json, &shuffled, &opts)),
        IMAGES_JSON
    );
    assert_eq!(
        out(|w| print_images(w, OutputFormat::Table, &shuffled, &opts)),
        IMAGES_TXT
    );
}

#[test]
fn images_digest_pinned_and_untagged() {
    let mut list = images();
    list.truncate(1);
    list.push(pb::Image {
        id: "sha256:7db93a6c45e878cbd45b640396cfb171df34d652f3978b470c3ce136b6732222".into(),
        repo_digests: vec!["localhost:5000/pause@sha256:0123456789abcdef0123".into()],
        size: 999_900,
        pinned: true,
        ..Default::default()
    });
    let opts = ImageListOptions {
        digests: true,
        pinned: true,
        ..Default::default()
    };
    let text = out(|w| print_images(w, OutputFormat::Table, &list, &opts));
    assert_eq!(
        text,
        "IMAGE                       TAG                 DIGEST              IMAGE ID            SIZE                PINNED\n\
         docker.io/library/busybox   latest              cf7cdfb93346e       e05e6500aaa43       2MB                 false\n\
         localhost:5000/busybox      latest              cf7cdfb93346e       e05e6500aaa43       2MB                 false\n\
         localhost:5000/pause        <none>              0123456789abc       7db93a6c45e87       1e+03kB             true\n"
    );
    let quiet = ImageListOptions {
        quiet: true,
        ..Default::default()
    };
    let ids = out(|w| print_images(w, OutputFormat::Table, &list, &quiet));
    assert_eq!(ids.lines().count(), 2);
    assert!(ids.starts_with("sha256:e05e6500"));
}

#[test]
fn image_name_rules() {
    assert_eq!(repo_digest(&[]), ("<none>".into(), "<none>".into()));
    assert_eq!(
        repo_digest(&["a@b@c".into()]),
        ("errorName".into(), "errorRepoDigest".into())
    );
    assert_eq!(
        repo_tag_pairs(&["notag".into()], "x"),
        [("errorRepoTag".into(), "errorRepoTag".into())]
    );
    assert_eq!(
        repo_tag_pairs(&["<none>:<none>".into()], "repo"),
        [("repo".into(), "<none>".into())]
    );
    assert_eq!(
        repo_tag_pairs(&["localhost:5000/a:v1".into()], "x"),
        [("localhost:5000/a".into(), "v1".into())]
    );
}

#[test]
fn images_verbose_blocks() {
    let list = images();
    let opts = ImageListOptions {
        verbose: true,
        ..Default::default()
    };
    let text = out(|w| print_images(w, OutputFormat::Table, &list[3..], &opts));
    assert_eq!(
        text,
        "ID: sha256:7db93a6c45e878cbd45b640396cfb171df34d652f3978b470c3ce136b6732222\n\
         RepoTags: registry.k8s.io/pause:3.6\nSize: 303846\nUid: value:65535\n\n"
    );
}

fn stats_with_earlier_sample() -> (
    pb::ListContainerStatsResponse,
    pb::ListContainerStatsResponse,
) {
    let current = stats();
    let mut previous = current.clone();
    let cpu = previous.stats[0].cpu.as_mut().unwrap();
    cpu.timestamp -= 1_000_000_000;
    (previous, current)
}

#[test]
fn stats_json_and_table_match_crictl() {
    let (previous, current) = stats_with_earlier_sample();
    assert_eq!(
        out(|w| print_stats(w, OutputFormat::Json, &previous, &current)),
        STATS_JSON
    );
    assert_eq!(
        out(|w| print_stats(w, OutputFormat::Table, &previous, &current)),
        STATS_TXT
    );
}

#[test]
fn stats_cpu_percent_is_the_cpu_time_delta_over_the_interval() {
    let (previous, mut current) = stats_with_earlier_sample();
    // 250ms of CPU in the 1s between samples.
    current.stats[0]
        .cpu
        .as_mut()
        .unwrap()
        .usage_core_nano_seconds
        .as_mut()
        .unwrap()
        .value += 250_000_000;
    let text = out(|w| print_stats(w, OutputFormat::Table, &previous, &current));
    assert!(
        text.contains("c                   25.00               1.282MB"),
        "{text}"
    );
    // A container missing from the first sample is left out.
    let text = out(|w| {
        print_stats(
            w,
            OutputFormat::Table,
            &pb::ListContainerStatsResponse::default(),
            &current,
        )
    });
    assert_eq!(text.lines().count(), 1);
    // The same timestamp twice cannot give a rate.
    let err = out_err(|w| print_stats(w, OutputFormat::Table, &current, &current));
    assert!(err.contains("not updated between the two samples"), "{err}");
}

fn out_err(f: impl FnOnce(&mut Vec<u8>) -> Result<()>) -> String {
    let mut buf = Vec::new();
    f(&mut buf).unwrap_err().to_string()
}

fn pod_stats(id: &str, cpu_ns: u64, nano_cores: u64, ts: i64) -> pb::PodSandboxStats {
    pb::PodSandboxStats {
        attributes: Some(pb::PodSandboxAttributes {
            id: id.into(),
            metadata: Some(pb::PodSandboxMetadata {
                name: "web".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        linux: Some(pb::LinuxPodSandboxStats {
            cpu: Some(pb::CpuUsage {
                timestamp: ts,
                usage_core_nano_seconds: Some(pb::UInt64Value { value: cpu_ns }),
                usage_nano_cores: Some(pb::UInt64Value { value: nano_cores }),
                ..Default::default()
            }),
            memory: Some(pb::MemoryUsage {
                working_set_bytes: Some(pb::UInt64Value { value: 2_000_000 }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        windows: None,
    }
}

#[test]
fn statsp_tables() {
    let id = "0123456789abcdef0123";
    let cur = pb::ListPodSandboxStatsResponse {
        stats: vec![pod_stats(id, 2_000_000_000, 500_000_000, 2_000_000_000)],
    };
    let prev = pb::ListPodSandboxStatsResponse {
        stats: vec![pod_stats(id, 1_900_000_000, 0, 1_000_000_000)],
    };
    let want = format!(
        "{CLEAR_SCREEN}POD                 POD ID              CPU %               MEM\n\
         web                 0123456789abc       10.00               2MB\n"
    );
    assert_eq!(
        out(|w| print_statsp_sampled(w, OutputFormat::Table, &prev, &cur)),
        want
    );
    let single = out(|w| print_statsp(w, OutputFormat::Table, &cur));
    assert!(
        single.contains("0123456789abc       50.00               2MB"),
        "{single}"
    );
    let mut mixed = cur.clone();
    mixed.stats[0].windows = Some(Default::default());
    assert!(
        out_err(|w| print_statsp(w, OutputFormat::Table, &mixed))
            .contains("both linux and windows")
    );
}

#[test]
fn inspect_json_matches_crictl() {
    let expected = INSPECT_JSON.to_string();
    let sample: serde_json::Value = serde_json::from_str(&expected).unwrap();
    let mut status = sample["status"].clone();
    for key in ["createdAt", "startedAt", "finishedAt"] {
        ns_field(&mut status, key);
    }
    let resp = pb::ContainerStatusResponse {
        status: Some(serde_json::from_value(status).unwrap()),
        info: [(
            "info".to_owned(),
            serde_json::to_string(&sample["info"]).unwrap(),
        )]
        .into(),
    };
    let docs = inspect_documents(std::slice::from_ref(&resp), &TimeZone::UTC).unwrap();
    let text = out(|w| write_status_documents(w, OutputFormat::Json, docs, "inspect"));
    assert_eq!(text, expected);
}

#[test]
fn inspect_of_created_and_exited_containers() {
    let status = pb::ContainerStatus {
        id: "abc".into(),
        state: pb::ContainerState::ContainerCreated as i32,
        created_at: 1_000_000_000,
        started_at: 5,
        finished_at: 5,
        ..Default::default()
    };
    let json = container_status_json(&status, &TimeZone::UTC).unwrap();
    assert_eq!(
        json.get("createdAt"),
        Some(&Json::String("1970-01-01T00:00:01Z".into()))
    );
    assert_eq!(
        json.get("startedAt"),
        Some(&Json::String(GO_ZERO_TIME.into()))
    );
    assert_eq!(
        json.get("finishedAt"),
        Some(&Json::String(GO_ZERO_TIME.into()))
    );
    assert_eq!(json.get("metadata"), Some(&Json::Null));
    let exited = pb::ContainerStatus {
        state: pb::ContainerState::ContainerExited as i32,
        finished_at: 2_500_000_000,
        ..status
    };
    let json = container_status_json(&exited, &TimeZone::UTC).unwrap();
    assert_eq!(
        json.get("finishedAt"),
        Some(&Json::String("1970-01-01T00:00:02.5Z".into()))
    );
    let tz = TimeZone::fixed(jiff::tz::offset(2));
    assert_eq!(rfc3339_nano(0, &tz), "1970-01-01T02:00:00+02:00");
}

#[test]
fn inspect_table() {
    let resp = pb::ContainerStatusResponse {
        status: Some(pb::ContainerStatus {
            id: "abc".into(),
            metadata: Some(pb::ContainerMetadata {
                name: "c".into(),
                attempt: 2,
            }),
            state: pb::ContainerState::ContainerExited as i32,
            created_at: 0,
            started_at: 60_000_000_000,
            finished_at: 3_540_000_000_000,
            exit_code: 137,
            labels: [("k".to_owned(), "v".to_owned())].into(),
            ..Default::default()
        }),
        info: [("pid".to_owned(), "7".to_owned())].into(),
    };
    let now = ts(3_600_000_000_000);
    assert_eq!(
        render_container_status(&resp, now),
        "ID: abc\nName: c\nAttempt: 2\nState: CONTAINER_EXITED\nCreated: About an hour ago\n\
         Started: 59 minutes ago\nFinished: About a minute ago\nExit Code: 137\nLabels:\n\tk -> v\nInfo: map[pid:7]\n"
    );
}

#[test]
fn inspectp_json_matches_crictl() {
    let sample: serde_json::Value = serde_json::from_str(INSPECTP_JSON).unwrap();
    let mut status = sample["status"].clone();
    ns_field(&mut status, "createdAt");
    let resp = pb::PodSandboxStatusResponse {
        status: Some(serde_json::from_value(status).unwrap()),
        info: [(
            "info".to_owned(),
            serde_json::to_string(&sample["info"]).unwrap(),
        )]
        .into(),
        ..Default::default()
    };
    let docs = inspectp_documents(std::slice::from_ref(&resp), &TimeZone::UTC).unwrap();
    assert_eq!(
        out(|w| write_status_documents(w, OutputFormat::Json, docs, "inspectp")),
        INSPECTP_JSON
    );
    let table = render_pod_status(&resp, &TimeZone::UTC);
    assert!(table.starts_with(
        "ID: 59d578ca4f2110b6460030ebbbcc374b160f9dc57f5a2ef2d294b96319f7dcb3\nName: raw1\nUID: raw-uid-1\n\
         Namespace: bench\nAttempt: 0\nStatus: SANDBOX_READY\nCreated: 2026-11-22 08:36:41.717424319 +0000 UTC\n\
         IP Addresses: 10.88.1.157\nInfo: map[info:{"
    ));
}

#[test]
fn inspecti_json_matches_crictl() {
    let sample: serde_json::Value = serde_json::from_str(INSPECTI_JSON).unwrap();
    let resp = pb::ImageStatusResponse {
        image: Some(serde_json::from_value(sample["status"].clone()).unwrap()),
        info: [(
            "info".to_owned(),
            serde_json::to_string(&sample["info"]).unwrap(),
        )]
        .into(),
    };
    assert_eq!(
        out(|w| print_inspecti(w, OutputFormat::Json, &resp)),
        INSPECTI_JSON
    );
    let table = out(|w| {
        print_inspecti(
            w,
            OutputFormat::Table,
            &pb::ImageStatusResponse {
                info: HashMap::new(),
                ..resp
            },
        )
    });
    assert_eq!(
        table,
        "ID: sha256:e05e6500aaa432395961db58067aa4ce5c59c834ebfbe85a9a03ef43a4232e43\n\
         Tag: docker.io/library/busybox:latest\nTag: localhost:5000/busybox:latest\n\
         Digest: localhost:5000/busybox@sha256:cf7cdfb93346e2acd4af6cce770167941aef25e86cf33e7a8614fcd2823c967d\n\
         Size: 2MB\n"
    );
    let err =
        out_err(|w| print_inspecti(w, OutputFormat::Json, &pb::ImageStatusResponse::default()));
    assert!(err.contains("no such image"));
}

#[test]
fn several_statuses_print_as_an_array() {
    let resp = pb::ImageStatusResponse {
        image: Some(pb::Image {
            id: "x".into(),
            ..Default::default()
        }),
        info: HashMap::new(),
    };
    let text = out(|w| print_inspecti_many(w, OutputFormat::Json, &[resp.clone(), resp]));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v.as_array().map(Vec::len), Some(2));
    assert_eq!(v[1]["status"]["id"], "x");
}

#[test]
fn info_json_matches_crictl() {
    let sample: serde_json::Value = serde_json::from_str(INFO_JSON).unwrap();
    let mut info = info_map(&sample, &["status"]);
    // containerd sends plain strings JSON-quoted; crictl strips the quotes.
    assert_eq!(info.get("golang").map(String::as_str), Some("\"go1.19.8\""));
    info.insert("lastCNILoadStatus".into(), "OK".into());
    let resp = pb::StatusResponse {
        status: Some(serde_json::from_value(sample["status"].clone()).unwrap()),
        info,
        ..Default::default()
    };
    assert_eq!(out(|w| print_info(w, OutputFormat::Json, &resp)), INFO_JSON);
    let err = out_err(|w| print_info(w, OutputFormat::Table, &resp));
    assert_eq!(err, "info has no table output: use json or yaml");
}

#[test]
fn info_adds_handlers_and_features_like_go() {
    let resp = pb::StatusResponse {
        runtime_handlers: vec![pb::RuntimeHandler {
            name: "runc".into(),
            features: Some(pb::RuntimeHandlerFeatures {
                recursive_read_only_mounts: true,
                user_namespaces: false,
            }),
        }],
        features: Some(pb::RuntimeFeatures {
            supplemental_groups_policy: false,
            ..Default::default()
        }),
        ..Default::default()
    };
    let text = out(|w| print_info(w, OutputFormat::Json, &resp));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "features": {},
            "runtimeHandlers": [{"features": {"recursive_read_only_mounts": true}, "name": "runc"}],
            "status": {"conditions": []}
        })
    );
}

#[test]
fn imagefsinfo_json_and_table() {
    let sample: serde_json::Value = serde_json::from_str(IMAGEFSINFO_JSON).unwrap();
    let resp: pb::ImageFsInfoResponse = serde_json::from_value(sample["status"].clone()).unwrap();
    assert_eq!(
        out(|w| print_imagefsinfo(w, OutputFormat::Json, &resp)),
        IMAGEFSINFO_JSON
    );
    assert_eq!(
        out(|w| print_imagefsinfo(w, OutputFormat::Table, &resp)),
        "Container Filesystem \nImage Filesystem \nTimeStamp[0]: 1795336602858415155\nDisk[0]: 147.6MB\n\
         Inodes[0]: 64\nMountpoint[0]: /var/lib/containerd/io.containerd.snapshotter.v1.overlayfs\n"
    );
}

#[test]
fn status_yaml_is_sorted_go_yaml() {
    let resp = pb::ImageStatusResponse {
        image: Some(pb::Image {
            id: "sha256:x".into(),
            size: 5,
            ..Default::default()
        }),
        info: [("pid".to_owned(), "{\"pid\":12}".to_owned())].into(),
    };
    assert_eq!(
        out(|w| print_inspecti(w, OutputFormat::Yaml, &resp)),
        "pid:\n  pid: 12\nstatus:\n  id: sha256:x\n  pinned: false\n  repoDigests: []\n  repoTags: []\n  size: \"5\"\n  username: \"\"\n\n"
    );
}

#[test]
fn info_values_that_are_not_objects_stay_strings() {
    let info: HashMap<String, String> = [
        ("a".to_owned(), "{not json".to_owned()),
        ("b".to_owned(), "\"quoted\"".to_owned()),
        ("c".to_owned(), "[1,2]".to_owned()),
    ]
    .into();
    let doc = status_document(None, Vec::new(), &info);
    let text = json::to_pretty(&doc, Dialect::Go);
    assert_eq!(
        text,
        "{\n  \"a\": \"{not json\",\n  \"b\": \"quoted\",\n  \"c\": \"[1,2]\"\n}"
    );
}

#[test]
fn version_text_matches_crictl() {
    let resp = pb::VersionResponse {
        version: "0.1.0".into(),
        runtime_name: "containerd".into(),
        runtime_version: "1.6.20~ds1".into(),
        runtime_api_version: "v1".into(),
    };
    assert_eq!(
        out(|w| print_version(w, OutputFormat::Table, &resp)),
        VERSION_TXT
    );
    assert_eq!(
        out(|w| print_version(w, OutputFormat::Json, &resp)),
        "{\n  \"version\": \"0.1.0\",\n  \"runtimeName\": \"containerd\",\n  \"runtimeVersion\": \"1.6.20~ds1\",\n  \"runtimeApiVersion\": \"v1\"\n}\n"
    );
}

#[test]
fn map_fields_are_sorted_in_list_json() {
    let mut items = pods();
    for k in ["zeta", "alpha", "mid", "beta", "omega"] {
        items[0].labels.insert(k.into(), "x".into());
    }
    let text = out(|w| {
        print_pods(
            w,
            OutputFormat::Json,
            &items,
            &ListOptions::default(),
            now(),
        )
    });
    let keys: Vec<usize> = ["alpha", "beta", "mid", "omega", "zeta"]
        .iter()
        .map(|k| text.find(&format!("\"{k}\"")).unwrap())
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{text}");
}

#[test]
fn go_time_and_map_strings() {
    assert_eq!(
        go_time_string(1_500_000_000, &TimeZone::UTC),
        "1970-01-01 00:00:01.5 +0000 UTC"
    );
    assert_eq!(
        go_map_string(
            &[
                ("b".to_owned(), "2".to_owned()),
                ("a".to_owned(), "1".to_owned())
            ]
            .into()
        ),
        "map[a:1 b:2]"
    );
}

#[test]
fn yaml_of_the_status_samples_reads_back_as_the_same_data() {
    for sample in [
        INSPECT_JSON,
        INSPECTP_JSON,
        INSPECTI_JSON,
        INFO_JSON,
        IMAGEFSINFO_JSON,
        PS_JSON,
        STATS_JSON,
    ] {
        let doc: Json = serde_json::from_str(sample).unwrap();
        let text = yaml::to_yaml(&doc, Dialect::Go);
        let back: serde_json::Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let want: serde_json::Value = serde_json::from_str(sample).unwrap();
        assert_eq!(back, want, "{text}");
    }
}
