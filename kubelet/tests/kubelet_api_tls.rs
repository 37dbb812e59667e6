//! The kubelet API over real TLS connections on an ephemeral port: client
//! certificate authentication, the routes, and what slow, idle or greedy
//! clients can cost. No apiserver needed.

#![allow(clippy::unwrap_used)]

mod api_common;

use std::time::{Duration, Instant};

use api_common::{Ca, connect, get, request, server_config, start, whoami};
use kubelet::server::api::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server trusting `ca` for client certificates, AlwaysAllow.
async fn with_ca(ca: &Ca, dir: &std::path::Path, limits: Limits) -> std::net::SocketAddr {
    let ca_file = dir.join("ca.crt");
    ca.write(&ca_file);
    let mut config = server_config(&dir.join("pki"));
    config.authentication.client_ca_file = Some(ca_file);
    start(config, None, limits, vec![("/whoami/", whoami())]).await
}

#[tokio::test]
async fn client_certificates_decide_who_gets_in() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test-ca");
    let addr = with_ca(&ca, dir.path(), Limits::default()).await;
    // The self-signed serving pair was made in the cert dir.
    assert!(dir.path().join("pki/kubelet.crt").is_file());
    assert!(dir.path().join("pki/kubelet.key").is_file());

    // No certificate: 401, Go's body.
    assert_eq!(
        get(addr, None, "/healthz").await,
        (401, "Unauthorized".into())
    );
    // A bearer token without token authentication: still 401.
    let r = request(
        addr,
        None,
        "GET",
        "/healthz",
        &[("authorization", "Bearer x")],
    )
    .await;
    assert_eq!(r.unwrap().0, 401);
    // A certificate from another CA: 401 (the handshake accepts it; the
    // authenticator does not).
    let other = Ca::new("other-ca").client("mallory", &["system:masters"]);
    assert_eq!(get(addr, Some(&other), "/healthz").await.0, 401);

    // A valid certificate: CN is the user, O the groups (rcgen writes one O).
    let alice = ca.client("alice", &["devs"]);
    assert_eq!(
        get(addr, Some(&alice), "/healthz").await,
        (200, "ok".into())
    );
    assert_eq!(
        get(addr, Some(&alice), "/whoami/x").await,
        (200, "alice devs,system:authenticated".into())
    );
    let (code, body) = get(addr, Some(&alice), "/pods").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["kind"], "PodList");
    let (code, body) = get(addr, Some(&alice), "/runningpods/").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["kind"], "PodList");
    assert_eq!(v["items"], serde_json::json!([]));
    let (code, body) = get(addr, Some(&alice), "/configz").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["kubeletconfig"]["port"], 10250);
    // No stats provider here: the read-only port's answer.
    assert_eq!(get(addr, Some(&alice), "/stats/summary").await.0, 404);
    assert_eq!(
        get(addr, Some(&alice), "/nope").await,
        (404, "404 page not found\n".into())
    );
    // Nothing routed there yet.
    assert_eq!(
        get(addr, Some(&alice), "/containerLogs/ns/p/c").await.0,
        404
    );
    // A certificate without a CN authenticates nobody.
    let nameless = ca.client("", &["devs"]);
    assert_eq!(get(addr, Some(&nameless), "/healthz").await.0, 401);
}

#[tokio::test]
async fn anonymous_and_disabled_debugging_handlers() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = server_config(dir.path());
    config.authentication.anonymous = true;
    config.enable_debugging_handlers = false;
    let addr = start(
        config,
        None,
        Limits::default(),
        vec![("/containerLogs/", whoami()), ("/whoami/", whoami())],
    )
    .await;
    assert_eq!(
        get(addr, None, "/whoami/").await,
        (200, "system:anonymous system:unauthenticated".into())
    );
    // Go's answer for the debugging paths, whatever is routed there.
    for path in [
        "/containerLogs/a/b/c",
        "/exec/a/b/c",
        "/runningpods/",
        "/logs/x",
    ] {
        assert_eq!(
            get(addr, None, path).await,
            (405, "Debug endpoints are disabled.\n".into()),
            "{path}"
        );
    }
    assert_eq!(get(addr, None, "/configz").await.0, 404);
    assert_eq!(get(addr, None, "/healthz").await.0, 200);
}

#[tokio::test]
async fn tls13_only_refuses_tls12_clients() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = server_config(dir.path());
    config.authentication.anonymous = true;
    config.tls_min_version = kubelet::server::tls::TlsVersion::Tls13;
    let addr = start(config, None, Limits::default(), vec![]).await;
    assert_eq!(get(addr, None, "/healthz").await.0, 200);
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls12 = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let r = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls12))
        .connect("localhost".try_into().unwrap(), tcp)
        .await;
    let e = match r {
        Ok(_) => panic!("a TLS 1.2 handshake succeeded"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("ProtocolVersion") || e.contains("version"),
        "{e}"
    );
}

/// Reads what the server sends until it closes or `limit` passes.
async fn read_all(tls: &mut api_common::Tls, limit: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    let closed = tokio::time::timeout(limit, read).await.is_ok();
    (out, closed)
}

#[tokio::test]
async fn huge_headers_get_431_and_others_are_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("ca");
    let addr = with_ca(&ca, dir.path(), Limits::default()).await;
    let alice = ca.client("alice", &[]);
    let mut tls = connect(addr, Some(&alice)).await.unwrap();
    let big = "a".repeat(200 * 1024);
    let req = format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n");
    // The server may close before it has read it all.
    let _ = tls.write_all(req.as_bytes()).await;
    let (resp, _) = read_all(&mut tls, Duration::from_secs(5)).await;
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
    assert_eq!(
        get(addr, Some(&alice), "/healthz").await,
        (200, "ok".into())
    );
}

#[tokio::test]
async fn a_slow_client_is_cut_off_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("ca");
    let limits = Limits {
        header_read_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let addr = with_ca(&ca, dir.path(), limits).await;
    let alice = ca.client("alice", &[]);

    // Half a request, then silence.
    let mut tls = connect(addr, Some(&alice)).await.unwrap();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let t = Instant::now();
    let (_, closed) = read_all(&mut tls, Duration::from_secs(10)).await;
    assert!(closed, "the connection stayed open");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(4),
        "{took:?}"
    );

    // An idle keep-alive connection goes the same way.
    let mut tls = connect(addr, Some(&alice)).await.unwrap();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let t = Instant::now();
    let (resp, closed) = read_all(&mut tls, Duration::from_secs(10)).await;
    assert!(String::from_utf8_lossy(&resp).starts_with("HTTP/1.1 200"));
    assert!(
        closed && t.elapsed() < Duration::from_secs(4),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn a_thousand_idle_connections_do_not_lock_out_a_client() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("ca");
    let addr = with_ca(&ca, dir.path(), Limits::default()).await;
    let alice = ca.client("alice", &[]);
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let t = Instant::now();
    assert_eq!(
        get(addr, Some(&alice), "/healthz").await,
        (200, "ok".into())
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    drop(idle);
}

#[tokio::test]
async fn at_the_connection_cap_idle_clients_time_out_and_make_room() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("ca");
    let limits = Limits {
        max_connections: 20,
        handshake_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let addr = with_ca(&ca, dir.path(), limits).await;
    let alice = ca.client("alice", &[]);
    let mut idle = Vec::new();
    for _ in 0..60 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // 60 idle connections, 20 at a time, each given 0.5 s to handshake:
    // about 1.5 s before the client's turn.
    let t = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(10), get(addr, Some(&alice), "/healthz"))
        .await
        .expect("served within 10 s");
    assert_eq!(r, (200, "ok".into()));
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    drop(idle);
}

#[tokio::test]
async fn without_a_way_to_authenticate_there_is_no_server() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = |config| kubelet::server::setup::ApiInputs {
        config,
        node_name: "n".into(),
        node_ips: vec![],
        client: None,
        state: kubelet::server::api::ApiState {
            status: kubelet::status::StatusManager::new(),
            stats: None,
            pod_cache: kubelet::container::PodCache::new(),
            configz: serde_json::json!({}),
            enable_debugging_handlers: true,
            healthz: kubelet::server::healthz::Healthz::new(Default::default()),
        },
        limits: Limits::default(),
    };
    // Standalone defaults: no client CA, no tokens, no anonymous.
    let config = server_config(dir.path());
    let r = kubelet::server::setup::prepare(inputs(config))
        .await
        .unwrap();
    assert!(r.is_none());
    // A client CA that is not there is an error naming it.
    let mut config = server_config(dir.path());
    config.authentication.client_ca_file = Some(dir.path().join("missing-ca.crt"));
    let e = kubelet::server::setup::prepare(inputs(config))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("missing-ca.crt"), "{e}");
    // Webhook authorization without a client cannot start.
    let mut config = server_config(dir.path());
    config.authentication.anonymous = true;
    config.authorization.mode = kubelet::config::AuthorizationMode::Webhook;
    let e = kubelet::server::setup::prepare(inputs(config))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("Webhook authorization needs the apiserver client"),
        "{e}"
    );
}

#[tokio::test]
async fn http2_by_alpn_and_idle_h2_connections_are_closed() {
    use http_body_util::BodyExt;
    let dir = tempfile::tempdir().unwrap();
    let mut config = server_config(dir.path());
    config.authentication.anonymous = true;
    let limits = Limits {
        header_read_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let addr = start(config, None, limits, vec![("/whoami/", whoami())]).await;
    let mut client = (*api_common::client_config(None)).clone();
    client.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(b"h2".as_slice()));
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    for path in ["/healthz", "/whoami/"] {
        let req = http::Request::get(format!("https://localhost{path}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(!body.is_empty());
    }
    // Idle: the server closes the connection after about a second.
    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the idle h2 connection was closed")
        .unwrap()
        .ok();
    assert!(
        t.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );
}
