#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;

use super::*;

/// A locator over files in a temp dir: pod `default/web` with containers
/// `app` (current `0.log`, previous `prev.log`) and `side` (no previous).
struct Files {
    _dir: tempfile::TempDir,
    containers: HashMap<&'static str, (PathBuf, Option<PathBuf>)>,
    running: AtomicBool,
    calls: AtomicUsize,
}

impl Files {
    fn new(current: &str) -> Arc<Self> {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir(&app).unwrap();
        std::fs::write(app.join("1.log"), current).unwrap();
        std::fs::write(app.join("0.log"), rec(1, "stdout", "F", "from before")).unwrap();
        let side = dir.path().join("side");
        std::fs::create_dir(&side).unwrap();
        std::fs::write(side.join("0.log"), rec(1, "stderr", "F", "side")).unwrap();
        let containers = HashMap::from([
            ("app", (app.join("1.log"), Some(app.join("0.log")))),
            ("side", (side.join("0.log"), None)),
            ("gone", (dir.path().join("missing.log"), None)),
        ]);
        Arc::new(Files {
            _dir: dir,
            containers,
            running: AtomicBool::new(true),
            calls: AtomicUsize::new(0),
        })
    }

    fn current(&self) -> &Path {
        &self.containers["app"].0
    }
}

impl LogLocator for Files {
    fn locate<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        container: &'a str,
        previous: bool,
    ) -> BoxFuture<'a, Result<LogTarget, LogsError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if (namespace, pod) != ("default", "web") {
                return Err(LogsError::PodNotFound { pod: pod.into() });
            }
            let (cur, prev) =
                self.containers
                    .get(container)
                    .ok_or_else(|| LogsError::ContainerNotFound {
                        container: container.into(),
                        pod: pod.into(),
                    })?;
            let path = if previous {
                prev.clone().ok_or_else(|| {
                    LogsError::Unavailable(format!(
                        "previous terminated container {container:?} in pod {pod:?} not found"
                    ))
                })?
            } else {
                cur.clone()
            };
            Ok(LogTarget {
                path,
                pod_uid: "uid-1".into(),
                container_id: container.into(),
            })
        })
    }

    fn is_running<'a>(&'a self, _: &'a LogTarget) -> BoxFuture<'a, bool> {
        Box::pin(async move { self.running.load(Ordering::SeqCst) })
    }
}

/// A CRI record `secs` seconds after 2024-05-01T10:00:00Z.
fn rec(secs: u32, stream: &str, tag: &str, text: &str) -> String {
    format!(
        "2024-05-01T10:{:02}:{:02}.000000000Z {stream} {tag} {text}\n",
        secs / 60,
        secs % 60
    )
}

fn numbered(n: u32) -> String {
    (0..n)
        .map(|i| rec(i, "stdout", "F", &format!("line {i}")))
        .collect()
}

fn want(range: std::ops::Range<u32>) -> String {
    range.map(|i| format!("line {i}\n")).collect()
}

async fn get(loc: &Arc<Files>, uri: &str) -> (StatusCode, String) {
    let loc: Arc<dyn LogLocator> = loc.clone();
    let (path, query) = match uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (uri, None),
    };
    let resp = container_logs(loc, &Method::GET, path, query).await;
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

const APP: &str = "/containerLogs/default/web/app";

#[tokio::test]
async fn whole_log_as_text_plain() {
    let loc = Files::new(&(numbered(3) + &rec(9, "stderr", "F", "oops")));
    let dyn_loc: Arc<dyn LogLocator> = loc.clone();
    let resp = container_logs(dyn_loc, &Method::GET, APP, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[http::header::CONTENT_TYPE], "text/plain");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, format!("{}oops\n", want(0..3)));
    // A trailing slash is the same route.
    assert_eq!(get(&loc, &format!("{APP}/")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn tail_lines_and_the_old_tail_parameter() {
    let loc = Files::new(&numbered(10));
    assert_eq!(
        get(&loc, &format!("{APP}?tailLines=3")).await.1,
        want(7..10)
    );
    assert_eq!(get(&loc, &format!("{APP}?tailLines=0")).await.1, "");
    assert_eq!(
        get(&loc, &format!("{APP}?tailLines=99")).await.1,
        want(0..10)
    );
    // `tail` wins over tailLines, and `all` means everything.
    assert_eq!(
        get(&loc, &format!("{APP}?tailLines=3&tail=2")).await.1,
        want(8..10)
    );
    assert_eq!(
        get(&loc, &format!("{APP}?tailLines=3&tail=all")).await.1,
        want(0..10)
    );
    // The first of repeated values counts, as in Go.
    assert_eq!(
        get(&loc, &format!("{APP}?tailLines=1&tailLines=5")).await.1,
        want(9..10)
    );
}

#[tokio::test]
async fn since_time_and_since_seconds() {
    let loc = Files::new(&numbered(10));
    let (code, body) = get(&loc, &format!("{APP}?sinceTime=2024-05-01T10:00:07Z")).await;
    assert_eq!((code, body), (StatusCode::OK, want(7..10)));
    // Percent-encoded, with an offset: 12:00:08+02:00 is 10:00:08Z.
    let (_, body) = get(
        &loc,
        &format!("{APP}?sinceTime=2024-05-01T12%3A00%3A08%2B02%3A00"),
    )
    .await;
    assert_eq!(body, want(8..10));
    // Every line is from 2024: a minute back shows nothing, a long time back
    // everything.
    assert_eq!(get(&loc, &format!("{APP}?sinceSeconds=60")).await.1, "");
    assert_eq!(
        get(&loc, &format!("{APP}?sinceSeconds=9000000000")).await.1,
        want(0..10)
    );
    // A recent line passes sinceSeconds.
    let now = jiff::Timestamp::now();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(loc.current())
        .unwrap();
    writeln!(f, "{now} stdout F fresh").unwrap();
    assert_eq!(
        get(&loc, &format!("{APP}?sinceSeconds=60")).await.1,
        "fresh\n"
    );
}

#[tokio::test]
async fn timestamps_limit_bytes_partials_and_stream() {
    let content =
        rec(0, "stdout", "P", "hel") + &rec(1, "stdout", "F", "lo") + &rec(2, "stderr", "F", "err");
    let loc = Files::new(&content);
    assert_eq!(get(&loc, APP).await.1, "hello\nerr\n");
    assert_eq!(
        get(&loc, &format!("{APP}?timestamps=true")).await.1,
        "2024-05-01T10:00:00.000000000Z hello\n2024-05-01T10:00:02.000000000Z err\n"
    );
    assert_eq!(get(&loc, &format!("{APP}?limitBytes=4")).await.1, "hell");
    assert_eq!(
        get(&loc, &format!("{APP}?limitBytes=100")).await.1,
        "hello\nerr\n"
    );
    assert_eq!(get(&loc, &format!("{APP}?stream=Stderr")).await.1, "err\n");
    assert_eq!(
        get(&loc, &format!("{APP}?stream=Stdout")).await.1,
        "hello\n"
    );
    assert_eq!(
        get(&loc, &format!("{APP}?stream=All")).await.1,
        "hello\nerr\n"
    );
    // Go's booleans: "false" and "0" are false, anything else true.
    assert_eq!(
        get(&loc, &format!("{APP}?timestamps=false")).await.1,
        "hello\nerr\n"
    );
    assert_eq!(
        get(&loc, &format!("{APP}?timestamps=0")).await.1,
        "hello\nerr\n"
    );
    assert!(
        get(&loc, &format!("{APP}?timestamps"))
            .await
            .1
            .starts_with("2024-")
    );
}

#[tokio::test]
async fn previous_instance() {
    let loc = Files::new(&numbered(1));
    assert_eq!(
        get(&loc, &format!("{APP}?previous=true")).await,
        (StatusCode::OK, "from before\n".into())
    );
    let (code, body) = get(&loc, "/containerLogs/default/web/side?previous=true").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        "previous terminated container \"side\" in pod \"web\" not found\n"
    );
    assert_eq!(
        get(&loc, "/containerLogs/default/web/side").await,
        (StatusCode::OK, "side\n".into())
    );
}

#[tokio::test]
async fn unknown_pod_or_container_is_404_and_a_missing_file_400() {
    let loc = Files::new("");
    assert_eq!(
        get(&loc, "/containerLogs/default/nope/app").await,
        (
            StatusCode::NOT_FOUND,
            "pod \"nope\" does not exist\n".into()
        )
    );
    assert_eq!(
        get(&loc, "/containerLogs/other/web/app").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&loc, "/containerLogs/default/web/nope").await,
        (
            StatusCode::NOT_FOUND,
            "container \"nope\" not found in pod \"web\"\n".into()
        )
    );
    let (code, body) = get(&loc, "/containerLogs/default/web/gone").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        body.starts_with("failed to open log file") && body.contains("missing.log"),
        "{body}"
    );
}

#[tokio::test]
async fn invalid_options_are_400_naming_the_parameter() {
    let loc = Files::new(&numbered(3));
    let cases = [
        (
            "tailLines=-1",
            "tailLines: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            "tailLines=abc",
            "tailLines: Invalid value: \"abc\": must be an integer",
        ),
        ("tailLines=1.5", "tailLines"),
        ("tail=-2", "tailLines: Invalid value: -2"),
        (
            "limitBytes=0",
            "limitBytes: Invalid value: 0: must be greater than 0",
        ),
        ("limitBytes=-5", "limitBytes: Invalid value: -5"),
        (
            "limitBytes=99999999999999999999",
            "limitBytes: Invalid value",
        ),
        (
            "sinceSeconds=0",
            "sinceSeconds: Invalid value: 0: must be greater than 0",
        ),
        ("sinceSeconds=x", "sinceSeconds: Invalid value: \"x\""),
        (
            "sinceTime=yesterday",
            "sinceTime: Invalid value: \"yesterday\"",
        ),
        ("sinceTime=2024-05-01", "sinceTime"),
        (
            "sinceSeconds=5&sinceTime=2024-05-01T10:00:00Z",
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
        ),
        ("stream=Both", "stream: Unsupported value: \"Both\""),
        ("stream=Stdout&tailLines=1", "tailLines: Forbidden"),
        ("tailLines=%zz", "malformed percent-encoding"),
    ];
    for (q, want) in cases {
        let (code, body) = get(&loc, &format!("{APP}?{q}")).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{q}: {body}");
        assert!(body.contains(want), "{q}: {body:?} lacks {want:?}");
    }
    // Several problems at once are all named.
    let (_, body) = get(&loc, &format!("{APP}?tailLines=-1&limitBytes=0")).await;
    assert!(
        body.contains("tailLines") && body.contains("limitBytes"),
        "{body}"
    );
    // Empty values are unset, "null" sinceTime too, and unknown keys ignored.
    let (code, body) = get(
        &loc,
        &format!("{APP}?tailLines=&sinceSeconds=&sinceTime=null&limitBytes=&bogus=1&=x&&"),
    )
    .await;
    assert_eq!((code, body), (StatusCode::OK, want(0..3)));
}

#[tokio::test]
async fn missing_parts_and_hostile_paths_are_400_and_never_located() {
    let loc = Files::new(&numbered(1));
    let cases = [
        ("/containerLogs/default//app", "Missing podID."),
        ("/containerLogs/default/web", "Missing container name."),
        ("/containerLogs/default/web/", "Missing container name."),
        ("/containerLogs//web/app", "Missing podNamespace."),
        ("/containerLogs", "Missing podID."),
        ("/containerLogs/", "Missing podID."),
        (
            "/containerLogs/default/web/app/extra",
            "too many path segments",
        ),
        (
            "/containerLogs/default/web/../../etc",
            "too many path segments",
        ),
        ("/containerLogs/default/../app", "may not be '.' or '..'"),
        ("/containerLogs/default/web/..", "may not be '.' or '..'"),
        (
            "/containerLogs/default/web/%2e%2e",
            "may not be '.' or '..'",
        ),
        (
            "/containerLogs/default/%2E%2E/app",
            "may not be '.' or '..'",
        ),
        ("/containerLogs/default/web/a%2Fb", "contain '/'"),
        ("/containerLogs/default/web/a%2fb", "contain '/'"),
        ("/containerLogs/default/web/a%5Cb", "contain '/'"),
        ("/containerLogs/default/web/a%00b", "contain '/'"),
        (
            "/containerLogs/default/web/a%zz",
            "malformed percent-encoding",
        ),
        (
            "/containerLogs/default/web/a%2",
            "malformed percent-encoding",
        ),
        ("/containerLogs/default/web/%ff", "not UTF-8"),
        (
            "/containerLogs/default/web/App",
            "container name \"App\" is invalid",
        ),
        ("/containerLogs/default/web/-app", "RFC 1123 label"),
        ("/containerLogs/default/web/a.b", "RFC 1123 label"),
        (
            "/containerLogs/Default/web/app",
            "namespace \"Default\" is invalid",
        ),
        (
            "/containerLogs/default/web_1/app",
            "pod name \"web_1\" is invalid",
        ),
        ("/containerLogs/default/web./app", "RFC 1123 subdomain"),
        ("/containerLogs/default/.web/app", "RFC 1123 subdomain"),
        (
            "/containerLogsX/default/web/app",
            "not a /containerLogs path",
        ),
    ];
    for (path, want) in cases {
        let (code, body) = get(&loc, path).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(body.contains(want), "{path}: {body:?} lacks {want:?}");
    }
    let long = "a".repeat(64);
    let (code, body) = get(&loc, &format!("/containerLogs/default/web/{long}")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body.contains("no more than 63 characters"), "{body}");
    let long_pod = [
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(63),
    ]
    .join(".");
    let (code, body) = get(&loc, &format!("/containerLogs/default/{long_pod}/app")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body.contains("no more than 253 characters"), "{body}");
    assert_eq!(
        loc.calls.load(Ordering::SeqCst),
        0,
        "a bad path reached the locator"
    );
    // A dotted pod name is a valid subdomain and does reach it.
    let (code, _) = get(&loc, "/containerLogs/default/web.v1/app").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(loc.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn huge_query_strings_are_answered_quickly_and_echo_little() {
    let loc = Files::new(&numbered(3));
    let junk = "x".repeat(1 << 20);
    let start = Instant::now();
    let (code, body) = get(&loc, &format!("{APP}?junk={junk}&tailLines=1")).await;
    assert_eq!((code, body), (StatusCode::OK, want(2..3)));
    let (code, body) = get(&loc, &format!("{APP}?tailLines={junk}")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body.len() < 300, "the error echoes {} bytes", body.len());
    let many = "a=1&".repeat(200_000);
    let (code, _) = get(&loc, &format!("{APP}?{many}tailLines=1")).await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = get(&loc, &format!("/containerLogs/default/web/{junk}")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn methods() {
    let loc = Files::new(&numbered(3));
    let dyn_loc: Arc<dyn LogLocator> = loc.clone();
    let r = container_logs(dyn_loc.clone(), &Method::POST, APP, None).await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()[http::header::ALLOW], "GET, HEAD");
    let r = container_logs(dyn_loc, &Method::HEAD, APP, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.into_body().collect().await.unwrap().to_bytes().is_empty());
}

fn gz(path: &Path, content: &str) {
    let mut enc = flate2_writer(path);
    enc.write_all(content.as_bytes()).unwrap();
    enc.finish().unwrap();
}

fn flate2_writer(path: &Path) -> flate2::write::GzEncoder<std::fs::File> {
    flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    )
}

#[tokio::test]
async fn rotated_and_gzipped_files_come_first() {
    let range = |r: std::ops::Range<u32>| -> String {
        r.map(|i| rec(i, "stdout", "F", &format!("line {i}")))
            .collect()
    };
    let loc = Files::new(&range(20..30));
    let dir = loc.current().parent().unwrap();
    gz(&dir.join("1.log.20240501-100010.gz"), &range(0..10));
    std::fs::write(dir.join("1.log.20240501-100020"), range(10..20)).unwrap();
    assert_eq!(get(&loc, APP).await.1, want(0..30));
    assert_eq!(
        get(&loc, &format!("{APP}?tailLines=25")).await.1,
        want(5..30)
    );
    assert_eq!(
        get(&loc, &format!("{APP}?tailLines=15")).await.1,
        want(15..30)
    );
    assert_eq!(
        get(&loc, &format!("{APP}?sinceTime=2024-05-01T10:00:12Z"))
            .await
            .1,
        want(12..30)
    );
    assert_eq!(
        get(&loc, &format!("{APP}?limitBytes=14&tailLines=25"))
            .await
            .1,
        "line 5\nline 6\n"
    );
}

/// The next chunk of a streaming body, or None at its end.
async fn next_chunk(body: &mut LogsBody) -> Option<String> {
    let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("no log output within 10 s")?;
    Some(String::from_utf8(frame.unwrap().into_data().unwrap().to_vec()).unwrap())
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[tokio::test]
async fn follow_streams_appends_and_rotation_until_the_container_stops() {
    let loc = Files::new(&numbered(2));
    let dyn_loc: Arc<dyn LogLocator> = loc.clone();
    let resp = container_logs(dyn_loc, &Method::GET, APP, Some("follow=true&tailLines=1")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    assert_eq!(next_chunk(&mut body).await.unwrap(), "line 1\n");
    append(loc.current(), &rec(2, "stdout", "F", "line 2"));
    assert_eq!(next_chunk(&mut body).await.unwrap(), "line 2\n");
    // Rotation as the kubelet does it: rename, the runtime reopens.
    let dir = loc.current().parent().unwrap().to_owned();
    std::fs::rename(loc.current(), dir.join("1.log.20240501-100003")).unwrap();
    std::fs::write(loc.current(), rec(3, "stdout", "F", "line 3")).unwrap();
    assert_eq!(next_chunk(&mut body).await.unwrap(), "line 3\n");
    // The container exits after one last line: it is sent, then the end.
    append(loc.current(), &rec(4, "stdout", "F", "line 4"));
    loc.running.store(false, Ordering::SeqCst);
    let mut rest = String::new();
    while let Some(c) = next_chunk(&mut body).await {
        rest.push_str(&c);
    }
    assert_eq!(rest, "line 4\n");
    // The reader task is gone and holds the locator no more.
    wait_for_release(&loc).await;
}

async fn wait_for_release(loc: &Arc<Files>) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Arc::strong_count(loc) > 1 {
        assert!(Instant::now() < deadline, "the reader task still runs");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_client_that_leaves_while_following_ends_the_task() {
    let loc = Files::new(&numbered(2));
    let dyn_loc: Arc<dyn LogLocator> = loc.clone();
    let resp = container_logs(dyn_loc, &Method::GET, APP, Some("follow=1")).await;
    let mut body = resp.into_body();
    assert_eq!(next_chunk(&mut body).await.unwrap(), want(0..2));
    // Idle, waiting for lines that never come; the client goes away.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        Arc::strong_count(&loc) > 1,
        "the follower should be running"
    );
    let gone = Instant::now();
    drop(body);
    wait_for_release(&loc).await;
    assert!(
        gone.elapsed() < Duration::from_millis(500),
        "{:?}",
        gone.elapsed()
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_a_big_log_ends_the_task() {
    // Far more than the channel holds: the task waits on the channel, then
    // sees it closed.
    let loc = Files::new(&numbered(200_000));
    let dyn_loc: Arc<dyn LogLocator> = loc.clone();
    let resp = container_logs(dyn_loc, &Method::GET, APP, None).await;
    let mut body = resp.into_body();
    assert!(next_chunk(&mut body).await.unwrap().starts_with("line 0\n"));
    drop(body);
    wait_for_release(&loc).await;
}

#[test]
fn container_id_follows_the_published_status() {
    let pod = |statuses: serde_json::Value| -> k8s_openapi::api::core::v1::Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u"},
            "spec": {"containers": [{"name": "app"}]},
            "status": {"containerStatuses": statuses},
        }))
        .unwrap()
    };
    let running = pod(serde_json::json!([{
        "name": "app", "image": "i", "imageID": "", "ready": true, "restartCount": 1,
        "containerID": "containerd://new",
        "state": {"running": {}},
        "lastState": {"terminated": {"exitCode": 1, "containerID": "containerd://old"}},
    }]));
    let id = |p: &k8s_openapi::api::core::v1::Pod, c: &str, prev: bool| {
        locator::container_id(p, "web", c, prev)
    };
    assert_eq!(id(&running, "app", false).unwrap(), "new");
    assert_eq!(id(&running, "app", true).unwrap(), "old");
    assert_eq!(
        id(&running, "side", false).unwrap_err().to_string(),
        "container \"side\" in pod \"web\" is not available"
    );
    let first = pod(serde_json::json!([{
        "name": "app", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
        "containerID": "containerd://a", "state": {"running": {}},
    }]));
    assert_eq!(
        id(&first, "app", true).unwrap_err().to_string(),
        "previous terminated container \"app\" in pod \"web\" not found"
    );
    let waiting = |reason: &str| {
        pod(serde_json::json!([{
            "name": "app", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": reason}},
        }]))
    };
    assert_eq!(
        id(&waiting("ImagePullBackOff"), "app", false)
            .unwrap_err()
            .to_string(),
        "container \"app\" in pod \"web\" is waiting to start: trying and failing to pull image"
    );
    assert_eq!(
        id(&waiting("ContainerCreating"), "app", false)
            .unwrap_err()
            .to_string(),
        "container \"app\" in pod \"web\" is waiting to start: ContainerCreating"
    );
    // Crash-looping: waiting now, the last instance's log is shown.
    let looping = pod(serde_json::json!([{
        "name": "app", "image": "i", "imageID": "", "ready": false, "restartCount": 3,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "containerID": "containerd://dead"}},
    }]));
    assert_eq!(id(&looping, "app", false).unwrap(), "dead");
    let done = pod(serde_json::json!([{
        "name": "app", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
        "containerID": "containerd://fin",
        "state": {"terminated": {"exitCode": 0, "containerID": "containerd://fin"}},
    }]));
    assert_eq!(id(&done, "app", false).unwrap(), "fin");
}

#[tokio::test]
async fn the_cri_locator_finds_pods_in_the_status_manager() {
    let status = crate::status::StatusManager::new();
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u"},
        "spec": {"containers": [{"name": "app"}], "initContainers": [{"name": "init"}]},
    }))
    .unwrap();
    status.set_pod_status(&Arc::new(pod), Default::default());
    let ch = tonic::transport::Endpoint::from_static("http://localhost").connect_lazy();
    let client = cri_client::RuntimeClient::from_channels(
        "unix:///nonexistent".into(),
        ch.clone(),
        ch,
        Default::default(),
    );
    let loc = CriLogLocator::new(status, client);
    assert_eq!(
        loc.locate("default", "nope", "app", false)
            .await
            .unwrap_err(),
        LogsError::PodNotFound { pod: "nope".into() }
    );
    assert_eq!(
        loc.locate("other", "web", "app", false).await.unwrap_err(),
        LogsError::PodNotFound { pod: "web".into() }
    );
    assert_eq!(
        loc.locate("default", "web", "x", false).await.unwrap_err(),
        LogsError::ContainerNotFound {
            container: "x".into(),
            pod: "web".into()
        }
    );
    // Known, but no status published yet.
    assert_eq!(
        loc.locate("default", "web", "init", false)
            .await
            .unwrap_err()
            .to_string(),
        "container \"init\" in pod \"web\" is not available"
    );
}
