//! The trace proxy in front of the real containerd that `tests/env/up`
//! starts (`BERTH_TEST_ENDPOINT`, default
//! unix:///run/berth-test/containerd.sock): calls made through the proxy
//! must get exactly what containerd answers directly, and each must be
//! reported once with the right method, subject and code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cri_client::endpoint::Endpoint;
use cri_client::trace::{self, TraceError, TraceEvent, TraceSink};
use cri_proto::v1 as pb;
use cri_proto::v1::image_service_client::ImageServiceClient;
use cri_proto::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Request};

const DEFAULT_ENDPOINT: &str = "unix:///run/berth-test/containerd.sock";
const TIMEOUT: Duration = Duration::from_secs(10);

async fn containerd() -> Channel {
    let endpoint = std::env::var("BERTH_TEST_ENDPOINT").unwrap_or_else(|_| DEFAULT_ENDPOINT.into());
    let ep = Endpoint::parse(&endpoint)
        .unwrap_or_else(|e| panic!("BERTH_TEST_ENDPOINT={endpoint:?}: {e}"));
    ep.connect(TIMEOUT).await.unwrap_or_else(|e| {
        panic!("the test containerd is not reachable ({e}); run tests/env/up first")
    })
}

async fn connect_proxy(sock: &Path) -> Channel {
    // serve() binds in its own task (replacing the stale file the test
    // left there), so retry until it answers.
    let ep = Endpoint::parse(sock.to_str().unwrap()).unwrap();
    let mut last = None;
    for _ in 0..100 {
        match ep.connect(TIMEOUT).await {
            Ok(ch) => return ch,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the trace proxy never answered on {}: {last:?}",
        sock.display()
    )
}

fn busybox() -> String {
    std::env::var("BERTH_TEST_BUSYBOX_IMAGE")
        .unwrap_or_else(|_| "localhost:5000/busybox:latest".into())
}

fn image_spec(image: &str) -> Option<pb::ImageSpec> {
    Some(pb::ImageSpec {
        image: image.into(),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_forwards_and_reports_every_call() {
    let direct = containerd().await;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("trace.sock");

    // A socket file left behind by a dead proxy must not stop a new one.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());

    let events: Arc<Mutex<Vec<TraceEvent>>> = Arc::default();
    let sink: Arc<dyn TraceSink> = {
        let events = Arc::clone(&events);
        Arc::new(move |ev: &TraceEvent| events.lock().unwrap().push(ev.clone()))
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let (sock, upstream, sink) = (sock.clone(), direct.clone(), Arc::clone(&sink));
        async move {
            trace::serve(&sock, upstream, sink, async {
                stopped.await.ok();
            })
            .await
        }
    });
    let proxied = connect_proxy(&sock).await;

    // A second proxy on the same, live socket is refused, not hijacked.
    let second = trace::serve(&sock, direct.clone(), Arc::clone(&sink), async {}).await;
    assert!(
        matches!(second, Err(TraceError::SocketInUse { .. })),
        "{second:?}"
    );

    let mut rt = RuntimeServiceClient::new(proxied.clone());
    let mut img = ImageServiceClient::new(proxied);
    let mut rt_direct = RuntimeServiceClient::new(direct.clone());
    let mut img_direct = ImageServiceClient::new(direct);

    // Version, with a caller deadline that must survive the hop.
    let mut req = Request::new(pb::VersionRequest::default());
    req.set_timeout(Duration::from_secs(5));
    let via_proxy = rt.version(req).await.unwrap().into_inner();
    let straight = rt_direct
        .version(pb::VersionRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(via_proxy, straight);
    assert_eq!(via_proxy.runtime_name, "containerd");

    rt.list_pod_sandbox(pb::ListPodSandboxRequest::default())
        .await
        .unwrap();

    let image = busybox();
    img.pull_image(pb::PullImageRequest {
        image: image_spec(&image),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("pulling {image} through the proxy: {e}"));
    let status_req = pb::ImageStatusRequest {
        image: image_spec(&image),
        verbose: false,
    };
    let via_proxy = img
        .image_status(status_req.clone())
        .await
        .unwrap()
        .into_inner();
    let straight = img_direct
        .image_status(status_req)
        .await
        .unwrap()
        .into_inner();
    assert!(via_proxy.image.is_some(), "{image} missing after the pull");
    assert_eq!(via_proxy, straight);

    // Errors come back exactly as containerd sent them.
    let missing = "ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000";
    let status_req = pb::ContainerStatusRequest {
        container_id: missing.into(),
        verbose: false,
    };
    let via_proxy = rt.container_status(status_req.clone()).await.unwrap_err();
    let straight = rt_direct.container_status(status_req).await.unwrap_err();
    assert_eq!(via_proxy.code(), Code::NotFound, "{via_proxy:?}");
    assert_eq!(via_proxy.code(), straight.code());
    assert_eq!(via_proxy.message(), straight.message());

    // containerd 1.6 does not implement the event stream; callers must see
    // that, not some proxy error.
    let events_err = rt
        .get_container_events(pb::GetEventsRequest::default())
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(events_err.code(), Code::Unimplemented, "{events_err:?}");

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(!sock.exists(), "serve left {} behind", sock.display());

    let events = events.lock().unwrap();
    let seen: Vec<(&str, Code, &str)> = events
        .iter()
        .map(|e| (e.method, e.code, e.subject.as_str()))
        .collect();
    let image_subject = format!("image={image}");
    assert_eq!(
        seen,
        [
            ("Version", Code::Ok, ""),
            ("ListPodSandbox", Code::Ok, ""),
            ("PullImage", Code::Ok, image_subject.as_str()),
            ("ImageStatus", Code::Ok, image_subject.as_str()),
            ("ContainerStatus", Code::NotFound, "container=ffff0000ffff"),
            ("GetContainerEvents", Code::Unimplemented, ""),
        ]
    );
    let not_found = &events[4];
    assert_eq!(not_found.message, via_proxy.message());
    assert!(events[0].message.is_empty());
    assert!(
        events.iter().all(|e| e.latency < Duration::from_secs(60)),
        "{events:?}"
    );
    let line = trace::format_event(not_found);
    assert!(
        line.contains("ContainerStatus") && line.contains("NotFound") && line.contains(missing),
        "{line}"
    );
}
