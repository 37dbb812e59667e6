//! The event recorder against the real control plane of
//! `tests/env/control-plane` (start it with `tests/env/up --control-plane`).
//!
//! Each test creates a Pod with a unique name in `default`, bound to a node
//! that does not exist (so nothing runs it), records events about it through
//! [`kubelet::events::start`] and reads them back from the apiserver. The pod
//! and its events are deleted afterwards, and those left by earlier failed
//! runs (labelled [`TEST_LABEL`]) at the start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Event, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kubelet::events::{EventType, ObjectRef, Recorder, start};

const TEST_LABEL: &str = "berth-test";
const TEST_LABEL_VALUE: &str = "events-apiserver";

/// The admin client, once the apiserver answers `/readyz`, with the
/// leftovers of earlier runs swept.
async fn control_plane() -> kube::Client {
    let client = test_support::cluster::admin_client().await;
    sweep_stale(&client).await;
    client
}

/// Deletes the pods (and their events) of earlier runs that did not clean up.
async fn sweep_stale(client: &kube::Client) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let lp = ListParams::default().labels(&format!("{TEST_LABEL}={TEST_LABEL_VALUE}"));
    let Ok(list) = pods.list(&lp).await else {
        return;
    };
    let ours = format!("events-{}-", std::process::id());
    for pod in list.items {
        let name = pod.metadata.name.unwrap_or_default();
        if !name.starts_with(&ours) {
            cleanup(client, &name, None).await;
        }
    }
}

fn unique(test: &str) -> String {
    format!(
        "events-{}-{test}-{:x}",
        std::process::id(),
        fastrand::u32(..)
    )
}

/// A pod bound to `node`, which does not exist: the apiserver keeps it and
/// no kubelet acts on it.
async fn create_pod(client: &kube::Client, name: &str, node: &str) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(
                TEST_LABEL.to_string(),
                TEST_LABEL_VALUE.to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            containers: vec![Container {
                name: "app".into(),
                image: Some("registry.k8s.io/pause:3.10".into()),
                ..Default::default()
            }],
            init_containers: Some(vec![Container {
                name: "setup".into(),
                image: Some("registry.k8s.io/pause:3.10".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create the test pod")
}

/// A recorder writing with `client`, and the handle of its writer task.
fn recorder(client: &kube::Client, node: &str) -> (Recorder, tokio::task::JoinHandle<()>) {
    let c = client.clone();
    let (rec, task) = start(Arc::new(move || c.clone()), node);
    (rec, tokio::spawn(task))
}

/// Drops the recorder and waits until the writer has written everything.
async fn flush(rec: Recorder, task: tokio::task::JoinHandle<()>) {
    drop(rec);
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("the writer finishes once the recorder is dropped")
        .expect("the writer does not panic");
}

/// The events about `name` in `namespace`.
async fn events_of(client: &kube::Client, namespace: &str, name: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default().fields(&format!("involvedObject.name={name}"));
    api.list(&lp).await.expect("list events").items
}

/// Deletes the pod named `pod` (if any) and the events about it and `node`.
async fn cleanup(client: &kube::Client, pod: &str, node: Option<&str>) {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    let names = [Some(pod), node];
    for name in names.into_iter().flatten() {
        for ev in events_of(client, "default", name).await {
            if let Some(n) = ev.metadata.name {
                let _ = api.delete(&n, &DeleteParams::default()).await;
            }
        }
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let _ = pods
        .delete(pod, &DeleteParams::default().grace_period(0))
        .await;
}

fn by_reason<'a>(events: &'a [Event], reason: &str) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

#[tokio::test]
async fn events_reach_the_apiserver_with_source_counts_and_aggregation() {
    let client = control_plane().await;
    let name = unique("pod");
    let node = format!("events-{}-absent-node", std::process::id());
    let pod = create_pod(&client, &name, &node).await;
    let uid = pod.metadata.uid.clone().unwrap_or_default();

    let (rec, task) = recorder(&client, &node);
    let app = ObjectRef::container(&pod, "app");
    rec.event(
        &app,
        EventType::Normal,
        "Pulling",
        "Pulling image \"registry.k8s.io/pause:3.10\"",
    );
    for _ in 0..3 {
        rec.event(
            &ObjectRef::container(&pod, "setup"),
            EventType::Normal,
            "Started",
            "Started container setup",
        );
    }
    for i in 1..=11 {
        rec.event(
            &app,
            EventType::Warning,
            "Unhealthy",
            format!("Liveness probe failed: attempt {i}"),
        );
    }
    rec.event(
        &ObjectRef::node(&node),
        EventType::Normal,
        "Starting",
        "Starting kubelet.",
    );
    flush(rec, task).await;

    let events = events_of(&client, "default", &name).await;
    let node_events = events_of(&client, "default", &node).await;
    cleanup(&client, &name, Some(&node)).await;

    // Pulling: one Normal event about the container, from this node's kubelet.
    let pulling = by_reason(&events, "Pulling");
    assert_eq!(pulling.len(), 1, "{events:#?}");
    let e = pulling[0];
    assert_eq!(
        e.message.as_deref(),
        Some("Pulling image \"registry.k8s.io/pause:3.10\"")
    );
    assert_eq!(e.type_.as_deref(), Some("Normal"));
    assert_eq!(e.count, Some(1));
    let src = e.source.clone().unwrap_or_default();
    assert_eq!(src.component.as_deref(), Some("kubelet"));
    assert_eq!(src.host.as_deref(), Some(node.as_str()));
    assert_eq!(e.reporting_component.as_deref(), Some("kubelet"));
    assert_eq!(e.reporting_instance.as_deref(), Some(node.as_str()));
    let o = &e.involved_object;
    assert_eq!(o.kind.as_deref(), Some("Pod"));
    assert_eq!(o.api_version.as_deref(), Some("v1"));
    assert_eq!(o.namespace.as_deref(), Some("default"));
    assert_eq!(o.uid.as_deref(), Some(uid.as_str()));
    assert_eq!(o.field_path.as_deref(), Some("spec.containers{app}"));
    assert!(
        e.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with(&format!("{name}."))),
        "event name is <pod>.<hex nanos>: {:?}",
        e.metadata.name
    );

    // Started three times: one event, patched to count 3.
    let started = by_reason(&events, "Started");
    assert_eq!(started.len(), 1, "{started:#?}");
    assert_eq!(started[0].count, Some(3));
    assert_eq!(
        started[0].involved_object.field_path.as_deref(),
        Some("spec.initContainers{setup}")
    );
    assert!(started[0].last_timestamp >= started[0].first_timestamp);

    // Eleven distinct Unhealthy messages: nine events as they are, then the
    // aggregate, created by the tenth and patched by the eleventh.
    let unhealthy = by_reason(&events, "Unhealthy");
    assert_eq!(unhealthy.len(), 10, "{unhealthy:#?}");
    for e in &unhealthy {
        assert_eq!(e.type_.as_deref(), Some("Warning"));
    }
    let aggregate: Vec<_> = unhealthy
        .iter()
        .filter(|e| {
            e.message
                .as_deref()
                .is_some_and(|m| m.starts_with("(combined from similar events): "))
        })
        .collect();
    assert_eq!(aggregate.len(), 1, "{unhealthy:#?}");
    assert_eq!(
        aggregate[0].message.as_deref(),
        Some("(combined from similar events): Liveness probe failed: attempt 11")
    );
    assert_eq!(aggregate[0].count, Some(2));
    for i in 1..=9 {
        let m = format!("Liveness probe failed: attempt {i}");
        assert!(
            unhealthy.iter().any(|e| e.message.as_deref() == Some(&m)),
            "missing {m:?}"
        );
    }

    // The Node's event lives in `default`, its UID the node's name.
    assert_eq!(node_events.len(), 1, "{node_events:#?}");
    let n = &node_events[0];
    assert_eq!(n.reason.as_deref(), Some("Starting"));
    assert_eq!(n.involved_object.kind.as_deref(), Some("Node"));
    assert_eq!(n.involved_object.uid.as_deref(), Some(node.as_str()));
    assert_eq!(n.involved_object.namespace, None);

    assert!(events_of(&client, "default", &name).await.is_empty());
}

#[tokio::test]
async fn a_deleted_event_is_created_again_on_the_next_duplicate() {
    let client = control_plane().await;
    let name = unique("recreate");
    let node = format!("events-{}-absent-node", std::process::id());
    let pod = create_pod(&client, &name, &node).await;
    let obj = ObjectRef::pod(&pod);

    // First writer: one event, then it is deleted behind the recorder's back.
    let (rec, task) = recorder(&client, &node);
    rec.event(&obj, EventType::Warning, "FailedMount", "volume not found");
    // Wait for the create to land, so the duplicate patches.
    let mut first = Vec::new();
    for _ in 0..100 {
        first = events_of(&client, "default", &name).await;
        if !first.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(first.len(), 1, "{first:#?}");
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    let first_name = first[0].metadata.name.clone().unwrap_or_default();
    api.delete(&first_name, &DeleteParams::default())
        .await
        .expect("delete the event");

    rec.event(&obj, EventType::Warning, "FailedMount", "volume not found");
    flush(rec, task).await;
    let events = events_of(&client, "default", &name).await;
    cleanup(&client, &name, None).await;

    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(
        events[0].metadata.name.as_deref(),
        Some(first_name.as_str())
    );
    assert_eq!(events[0].count, Some(2));
    assert_eq!(events[0].type_.as_deref(), Some("Warning"));
    assert_eq!(events[0].message.as_deref(), Some("volume not found"));
}
