//! The containerd event protos must keep containerd 1.6's wire format:
//! every message, field number and type Berth declares is pinned here, as
//! checked against containerd's `api/services/events/v1/events.proto` and
//! `api/events/{task,container}.proto`.

use std::path::PathBuf;

use prost_reflect::{DescriptorPool, Kind};

fn pool() -> DescriptorPool {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("containerd");
    let files = [
        "services/events/v1/events.proto",
        "events/task.proto",
        "events/container.proto",
    ];
    let fds = protox::compile(files, [dir]).expect("containerd protos compile");
    DescriptorPool::from_file_descriptor_set(fds).expect("descriptor pool")
}

fn kind(k: &Kind) -> String {
    match k {
        Kind::Message(m) => m.full_name().to_string(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// `(field, number, type)`.
type Field = (&'static str, u32, &'static str);

/// `(message, fields)`, containerd's declarations.
const EXPECTED: &[(&str, &[Field])] = &[
    (
        "containerd.services.events.v1.SubscribeRequest",
        &[("filters", 1, "string")],
    ),
    (
        "containerd.services.events.v1.Envelope",
        &[
            ("timestamp", 1, "google.protobuf.Timestamp"),
            ("namespace", 2, "string"),
            ("topic", 3, "string"),
            ("event", 4, "google.protobuf.Any"),
        ],
    ),
    (
        "containerd.events.TaskStart",
        &[("container_id", 1, "string"), ("pid", 2, "uint32")],
    ),
    (
        "containerd.events.TaskExit",
        &[
            ("container_id", 1, "string"),
            ("id", 2, "string"),
            ("pid", 3, "uint32"),
            ("exit_status", 4, "uint32"),
            ("exited_at", 5, "google.protobuf.Timestamp"),
        ],
    ),
    (
        "containerd.events.TaskDelete",
        &[
            ("container_id", 1, "string"),
            ("pid", 2, "uint32"),
            ("exit_status", 3, "uint32"),
            ("exited_at", 4, "google.protobuf.Timestamp"),
            ("id", 5, "string"),
        ],
    ),
    (
        "containerd.events.TaskOOM",
        &[("container_id", 1, "string")],
    ),
    (
        "containerd.events.TaskExecStarted",
        &[
            ("container_id", 1, "string"),
            ("exec_id", 2, "string"),
            ("pid", 3, "uint32"),
        ],
    ),
    (
        "containerd.events.TaskPaused",
        &[("container_id", 1, "string")],
    ),
    (
        "containerd.events.TaskResumed",
        &[("container_id", 1, "string")],
    ),
    (
        "containerd.events.ContainerCreate",
        &[
            ("id", 1, "string"),
            ("image", 2, "string"),
            ("runtime", 3, "containerd.events.ContainerCreate.Runtime"),
        ],
    ),
    (
        "containerd.events.ContainerCreate.Runtime",
        &[("name", 1, "string"), ("options", 2, "google.protobuf.Any")],
    ),
    ("containerd.events.ContainerDelete", &[("id", 1, "string")]),
];

#[test]
fn messages_match_containerd_1_6() {
    let pool = pool();
    let mut problems = Vec::new();
    for (name, fields) in EXPECTED {
        let Some(msg) = pool.get_message_by_name(name) else {
            problems.push(format!("missing message {name}"));
            continue;
        };
        let ours: Vec<(String, u32, String)> = msg
            .fields()
            .map(|f| (f.name().to_string(), f.number(), kind(&f.kind())))
            .collect();
        let want: Vec<(String, u32, String)> = fields
            .iter()
            .map(|(f, n, k)| (f.to_string(), *n, k.to_string()))
            .collect();
        if ours != want {
            problems.push(format!("{name}: ours {ours:?}, containerd {want:?}"));
        }
        if msg
            .fields()
            .any(|f| f.is_list() != (*name == "containerd.services.events.v1.SubscribeRequest"))
        {
            problems.push(format!("{name}: wrong repeated-ness"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn subscribe_is_a_server_stream_at_containerds_path() {
    let pool = pool();
    let svc = pool
        .get_service_by_name("containerd.services.events.v1.Events")
        .expect("Events service");
    let methods: Vec<_> = svc.methods().collect();
    assert_eq!(methods.len(), 1, "only Subscribe is declared");
    let m = &methods[0];
    assert_eq!(m.name(), "Subscribe");
    assert!(m.is_server_streaming() && !m.is_client_streaming());
    assert_eq!(
        m.input().full_name(),
        "containerd.services.events.v1.SubscribeRequest"
    );
    assert_eq!(
        m.output().full_name(),
        "containerd.services.events.v1.Envelope"
    );
}
