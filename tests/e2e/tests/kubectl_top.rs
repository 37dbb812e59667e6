//! `kubectl top` on a joined berth, against the real control plane and
//! containerd: metrics-server (run by `tests/env/control-plane` behind the
//! apiserver's aggregation layer) scrapes berth's `/metrics/resource`, and
//! `kubectl top node`, `kubectl top pod` and the metrics.k8s.io API show a
//! CPU burner's usage. Needs `tests/env/up --control-plane` (an up to date
//! `tests/env/control-plane up`: it starts metrics-server) and a berth that
//! serves `/metrics/resource`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::berth::exclusive;
use test_support::cluster::{Joined, TestNamespace, kubectl, require_control_plane};

const CLUSTER_CA: &str = "/etc/berth-test/control-plane/ca.crt";
const METRICS_SERVER_LOG: &str = "/var/log/berth-test/metrics-server.log";
/// metrics-server scrapes every 15 s and needs two scrapes for a CPU rate.
const LIMIT: Duration = Duration::from_secs(90);

fn running(p: &Value) -> bool {
    p["status"]["containerStatuses"][0]["state"]["running"].is_object()
}

/// A CPU quantity in millicores: `250m`, `1`, `1500000n`, `3u`.
fn millicores(q: &str) -> Option<f64> {
    let q = q.trim();
    let (num, scale) = match q.char_indices().last()? {
        (i, 'n') => (&q[..i], 1e-6),
        (i, 'u') => (&q[..i], 1e-3),
        (i, 'm') => (&q[..i], 1.0),
        _ => (q, 1000.0),
    };
    num.parse::<f64>().ok().map(|n| n * scale)
}

/// A memory quantity in bytes: `17Mi`, `17408Ki`, `1Gi`, `123`.
fn bytes(q: &str) -> Option<f64> {
    let q = q.trim();
    const UNITS: [(&str, f64); 6] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
    ];
    for (suffix, scale) in UNITS {
        if let Some(num) = q.strip_suffix(suffix) {
            return num.parse::<f64>().ok().map(|n| n * scale);
        }
    }
    q.parse().ok()
}

/// The row of `kubectl top <args>` whose first column is `name`, split
/// into columns; Err(what kubectl said) until there is one.
fn top_row(args: &[&str], name: &str) -> Result<Vec<String>, String> {
    let mut all = vec!["top"];
    all.extend_from_slice(args);
    let out = kubectl(&all)?;
    out.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|cols| cols.first().is_some_and(|c| c == name))
        .ok_or(out)
}

/// Polls `check` until it gives a value or LIMIT passes; the failure then
/// says what was seen last and what metrics-server logged about the node.
fn poll<T>(what: &str, node: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let t = Instant::now();
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) if t.elapsed() >= LIMIT => {
                let log = std::fs::read_to_string(METRICS_SERVER_LOG).unwrap_or_default();
                let about: Vec<&str> = log.lines().filter(|l| l.contains(node)).collect();
                panic!(
                    "{what}: nothing after {LIMIT:?}; last seen: {last}\n\
                     {METRICS_SERVER_LOG} about {node} (last 5 lines):\n{}",
                    about[about.len().saturating_sub(5)..].join("\n")
                );
            }
            Err(_) => std::thread::sleep(Duration::from_secs(2)),
        }
    }
}

#[test]
fn kubectl_top_shows_a_cpu_burner_on_berth() {
    require_control_plane();
    match kubectl(&[
        "get",
        "apiservice",
        "v1beta1.metrics.k8s.io",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Available\")].status}",
    ]) {
        Ok(s) if s.trim() == "True" => {}
        other => panic!(
            "metrics.k8s.io is not served ({other:?}): run tests/env/control-plane up \
             (it starts metrics-server)"
        ),
    }
    let _one = exclusive();
    let node = Joined::start_with(&["--client-ca-file", CLUSTER_CA]);
    let ns = TestNamespace::create("top");
    // The burner spins within a 200m limit and holds 16 MiB in a shell
    // variable.
    ns.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: burner}}
spec:
  nodeName: {node}
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 0
  containers:
  - name: spin
    image: {img}
    command: ["sh", "-c", "x=$(yes | head -c 16777216); while :; do :; done"]
    resources:
      requests: {{cpu: 100m, memory: 64Mi}}
      limits: {{cpu: 200m, memory: 128Mi}}
"#,
        node = node.node(),
        img = test_support::busybox_image()
    ));
    ns.wait_pod("burner", "running", Duration::from_secs(60), running);

    // The node: NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%).
    let row = poll("kubectl top node", node.node(), || {
        top_row(&["node", node.node()], node.node())
    });
    eprintln!("kubectl top node: {row:?}");
    let cpu = millicores(&row[1]).unwrap_or_else(|| panic!("node CPU {row:?}"));
    let mem = bytes(&row[3]).unwrap_or_else(|| panic!("node memory {row:?}"));
    assert!(
        cpu > 50.0,
        "the node runs the burner, yet uses {cpu}m: {row:?}"
    );
    assert!(mem > 0.0, "node memory {row:?}");

    // The pod: NAME CPU(cores) MEMORY(bytes). The first rate needs two
    // scrapes, so a row may come before the burner shows its load.
    let row = poll("kubectl top pod", node.node(), || {
        let row = top_row(&["pod", "-n", &ns.name, "burner"], "burner")?;
        match millicores(&row[1]) {
            Some(c) if c > 50.0 => Ok(row),
            _ => Err(format!("{row:?}")),
        }
    });
    eprintln!("kubectl top pod: {row:?}");
    let cpu = millicores(&row[1]).unwrap();
    let mem = bytes(&row[2]).unwrap_or_else(|| panic!("pod memory {row:?}"));
    assert!(
        cpu <= 300.0,
        "the burner is limited to 200m, yet uses {cpu}m: {row:?}"
    );
    assert!(
        mem >= 8.0 * 1048576.0,
        "the burner holds 16 MiB, yet uses {mem} bytes: {row:?}"
    );

    // The API behind it: one entry per container, by name.
    let path = format!(
        "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods/burner",
        ns.name
    );
    let metrics: Value = serde_json::from_str(&kubectl(&["get", "--raw", &path]).unwrap()).unwrap();
    eprintln!("{path}: {metrics}");
    let containers = metrics["containers"].as_array().expect("containers");
    let spin = containers
        .iter()
        .find(|c| c["name"] == "spin")
        .unwrap_or_else(|| panic!("no container spin in {metrics}"));
    let cpu = millicores(spin["usage"]["cpu"].as_str().unwrap()).unwrap();
    let mem = bytes(spin["usage"]["memory"].as_str().unwrap()).unwrap();
    assert!(cpu > 50.0, "{metrics}");
    assert!(mem > 0.0, "{metrics}");
}

#[test]
fn quantities_parse() {
    let near = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9 * b.max(1.0));
    assert!(near(millicores("250m"), 250.0));
    assert!(near(millicores("2"), 2000.0));
    assert!(near(millicores("1500000n"), 1.5));
    assert!(near(millicores("3u"), 0.003));
    assert!(near(bytes("17Mi"), 17.0 * 1024.0 * 1024.0));
    assert!(near(bytes("2048Ki"), 2048.0 * 1024.0));
    assert!(near(bytes("64M"), 64e6));
    assert!(near(bytes("123"), 123.0));
    assert_eq!(millicores("x"), None);
    assert_eq!(bytes("1Qi"), None);
}
